//! SVG heatmaps of patching effects (layers × positions or layers × heads).

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A value on a diverging blue–white–red scale: `center` is white, `center ± range` full
/// blue / red.
fn colour(v: f64, center: f64, range: f64) -> String {
    if !v.is_finite() {
        return "#cccccc".into();
    }
    let x = ((v - center) / range).clamp(-1.0, 1.0);
    let (r, g, b) = if x >= 0.0 {
        // white → #b2182b
        (
            255.0 - x * (255.0 - 178.0),
            255.0 - x * (255.0 - 24.0),
            255.0 - x * (255.0 - 43.0),
        )
    } else {
        let x = -x;
        // white → #2166ac
        (
            255.0 - x * (255.0 - 33.0),
            255.0 - x * (255.0 - 102.0),
            255.0 - x * (255.0 - 172.0),
        )
    };
    format!("#{:02x}{:02x}{:02x}", r as u8, g as u8, b as u8)
}

/// What a heatmap shows.
///
/// Why: one renderer serves the per-hook (layers × positions) and per-head (layers × heads)
/// maps, so both read the same way.
pub struct Heatmap<'a> {
    /// Title line.
    pub title: &'a str,
    /// Label of each row (top to bottom).
    pub row_labels: &'a [String],
    /// Label of each column (left to right), e.g. the tokens.
    pub col_labels: &'a [String],
    /// Axis title for rows.
    pub row_axis: &'a str,
    /// Axis title for columns.
    pub col_axis: &'a str,
    /// `values[row][col]`.
    pub values: &'a [Vec<f64>],
    /// The value drawn white (the unpatched run's effect).
    pub center: f64,
    /// What the colour means, for the legend.
    pub legend: &'a str,
}

/// Render a heatmap with a diverging colour scale centred on [`Heatmap::center`], symmetric
/// and at least ±1 wide, with every cell's value in its tooltip.
///
/// Why: a reviewer should see at a glance which layer and token (or head) carries the
/// effect, and its sign, without running anything.
pub fn render(h: &Heatmap) -> String {
    let n_rows = h.values.len().max(1);
    let n_cols = h.values.first().map_or(1, |r| r.len().max(1));
    let cw = (640.0 / n_cols as f64).clamp(14.0, 48.0);
    let ch = (560.0 / n_rows as f64).clamp(10.0, 28.0);
    let label_chars = h
        .col_labels
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(1)
        .min(24) as f64;
    let (l, t) = (70.0, 46.0);
    let bottom = 30.0 + 6.5 * label_chars;
    let pw = cw * n_cols as f64;
    let ph = ch * n_rows as f64;
    let w = l + pw + 150.0;
    let hgt = t + ph + bottom;
    let range = h
        .values
        .iter()
        .flatten()
        .filter(|v| v.is_finite())
        .map(|v| (v - h.center).abs())
        .fold(1.0f64, f64::max);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{hgt:.0}\" viewBox=\"0 0 {w:.0} {hgt:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s += &format!(
        "<text x=\"{l}\" y=\"22\" font-size=\"14\">{}</text>\n",
        esc(h.title)
    );
    for (r, row) in h.values.iter().enumerate() {
        let y = t + ch * r as f64;
        for (c, v) in row.iter().enumerate() {
            let x = l + cw * c as f64;
            let rl = h.row_labels.get(r).map_or("", String::as_str);
            let cl = h.col_labels.get(c).map_or("", String::as_str);
            s += &format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cw:.1}\" height=\"{ch:.1}\" fill=\"{}\"><title>{} / {}: {v:.4}</title></rect>\n",
                colour(*v, h.center, range),
                esc(rl),
                esc(cl)
            );
        }
    }
    s += &format!(
        "<rect x=\"{l}\" y=\"{t}\" width=\"{pw:.1}\" height=\"{ph:.1}\" fill=\"none\" stroke=\"#888\"/>\n"
    );
    let step = (n_rows / 30).max(1);
    for (r, lab) in h.row_labels.iter().enumerate() {
        if r % step == 0 {
            s += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                l - 4.0,
                t + ch * (r as f64 + 0.5) + 4.0,
                esc(lab)
            );
        }
    }
    for (c, lab) in h.col_labels.iter().enumerate() {
        let x = l + cw * (c as f64 + 0.5);
        let y = t + ph + 8.0;
        let lab: String = lab.chars().take(24).collect();
        s += &format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" transform=\"rotate(-60 {x:.1} {y:.1})\" text-anchor=\"end\" font-family=\"monospace\">{}</text>\n",
            esc(&lab)
        );
    }
    s += &format!(
        "<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">{}</text>\n",
        t + ph / 2.0,
        t + ph / 2.0,
        esc(h.row_axis)
    );
    s += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
        l + pw / 2.0,
        hgt - 6.0,
        esc(h.col_axis)
    );
    // Legend: a vertical colour bar from center + range (top) to center − range (bottom).
    let lx = l + pw + 24.0;
    let steps = 20;
    let bar_h = (ph.min(220.0)) / steps as f64;
    for k in 0..steps {
        let v = h.center + range * (1.0 - 2.0 * (k as f64 + 0.5) / steps as f64);
        s += &format!(
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"14\" height=\"{:.1}\" fill=\"{}\"/>\n",
            t + bar_h * k as f64,
            bar_h + 0.5,
            colour(v, h.center, range)
        );
    }
    for (frac, v) in [
        (0.0, h.center + range),
        (0.5, h.center),
        (1.0, h.center - range),
    ] {
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\">{v:.2}</text>\n",
            lx + 18.0,
            t + bar_h * steps as f64 * frac + 4.0
        );
    }
    s += &format!(
        "<text x=\"{lx:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>\n",
        t + bar_h * steps as f64 + 18.0,
        esc(h.legend)
    );
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_has_a_cell_per_value_and_escapes_labels() {
        let values = vec![vec![0.0, 1.0, -0.5], vec![0.25, 2.0, f64::NAN]];
        let rows = vec!["0".to_string(), "1".to_string()];
        let cols = vec!["<a>".to_string(), " b".to_string(), "\"c\"".to_string()];
        let s = render(&Heatmap {
            title: "t & u",
            row_labels: &rows,
            col_labels: &cols,
            row_axis: "layer",
            col_axis: "position",
            values: &values,
            center: 0.0,
            legend: "effect",
        });
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<title>").count(), 6);
        assert!(s.contains("t &amp; u") && s.contains("&lt;a&gt;") && s.contains("&quot;c&quot;"));
        // The range widens to the largest |value − center| (2.0): 2.0 is full red.
        assert!(s.contains("fill=\"#b2182b\"><title>1 /  b: 2.0000"));
        assert_eq!(colour(0.0, 0.0, 1.0), "#ffffff");
        assert_eq!(colour(-1.0, 0.0, 1.0), "#2166ac");
    }
}
