//! A plain SVG line chart of probe metrics by hook.

use crate::probe::{HookMetrics, Method};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Render AUROC by hook: the primary probe with its bootstrap 95% band, the other method,
/// the control task and the random-direction baseline; the chosen hook is marked.
///
/// Why: a reviewer should see at a glance where the property becomes linearly readable and
/// how far it stands above the baselines, without running anything.
pub fn metric_by_layer(
    per_hook: &[HookMetrics],
    method: Method,
    chosen: usize,
    title: &str,
) -> String {
    // When every hook is `blocks.N.<same tail>`, label the axis by block number.
    let tails: Vec<Option<(String, String)>> = per_hook
        .iter()
        .map(|hm| {
            let rest = hm.hook.strip_prefix("blocks.")?;
            let (n, tail) = rest.split_once('.')?;
            Some((n.to_string(), tail.to_string()))
        })
        .collect();
    let common_tail = match tails.first() {
        Some(Some((_, t0)))
            if tails
                .iter()
                .all(|t| t.as_ref().is_some_and(|(_, t)| t == t0)) =>
        {
            Some(t0.clone())
        }
        _ => None,
    };
    let (w, h) = (820.0, 420.0);
    let (l, r, t, b) = (
        90.0,
        230.0,
        40.0,
        if common_tail.is_some() { 60.0 } else { 130.0 },
    );
    let pw = w - l - r;
    let ph = h - t - b;
    let n = per_hook.len().max(1);
    let x = |i: usize| {
        l + if n == 1 {
            pw / 2.0
        } else {
            pw * i as f64 / (n - 1) as f64
        }
    };
    let (ymin, ymax) = (0.3, 1.0);
    let y = |v: f64| t + ph * (1.0 - (v.clamp(ymin, ymax) - ymin) / (ymax - ymin));
    let mut s = String::new();
    s += &format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s += &format!(
        "<text x=\"{l}\" y=\"22\" font-size=\"14\">{}</text>\n",
        esc(title)
    );
    for k in 0..=7 {
        let v = ymin + k as f64 * 0.1;
        s += &format!(
            "<line x1=\"{l}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text>\n",
            l + pw,
            l - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    s += &format!(
        "<text x=\"40\" y=\"{:.1}\" transform=\"rotate(-90 40 {:.1})\" text-anchor=\"middle\">AUROC (out-of-fold)</text>\n",
        t + ph / 2.0,
        t + ph / 2.0
    );
    if let Some(tail) = &common_tail {
        for (i, tl) in tails.iter().enumerate() {
            let num = tl.as_ref().map_or("", |(n, _)| n.as_str());
            s += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                x(i),
                t + ph + 16.0,
                esc(num)
            );
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">block N of blocks.N.{}</text>\n",
            l + pw / 2.0,
            t + ph + 38.0,
            esc(tail)
        );
    }
    let step = (n / 16).max(1);
    for (i, hm) in per_hook.iter().enumerate() {
        if common_tail.is_none() && (i % step == 0 || i == chosen) {
            s += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" transform=\"rotate(-50 {:.1} {:.1})\" text-anchor=\"end\">{}</text>\n",
                x(i),
                t + ph + 12.0,
                x(i),
                t + ph + 12.0,
                esc(&hm.hook)
            );
        }
    }
    // CI band of the primary method.
    let prim = |hm: &HookMetrics| hm.primary(method).clone();
    let mut band = String::new();
    for (i, hm) in per_hook.iter().enumerate() {
        let ci = prim(hm).auroc_ci95.unwrap_or([prim(hm).auroc; 2]);
        band += &format!("{:.1},{:.1} ", x(i), y(ci[1]));
    }
    for (i, hm) in per_hook.iter().enumerate().rev() {
        let ci = prim(hm).auroc_ci95.unwrap_or([prim(hm).auroc; 2]);
        band += &format!("{:.1},{:.1} ", x(i), y(ci[0]));
    }
    s += &format!(
        "<polygon points=\"{band}\" fill=\"#1f77b4\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
    );
    let other = match method {
        Method::Logreg => Method::MassMean,
        Method::MassMean => Method::Logreg,
    };
    let name = |m: Method| match m {
        Method::Logreg => "logistic regression",
        Method::MassMean => "mass-mean",
    };
    let series: Vec<(String, &str, &str, Vec<f64>)> = vec![
        (
            format!("{} (95% CI)", name(method)),
            "#1f77b4",
            "",
            per_hook.iter().map(|h| h.primary(method).auroc).collect(),
        ),
        (
            name(other).to_string(),
            "#ff7f0e",
            "6 3",
            per_hook.iter().map(|h| h.primary(other).auroc).collect(),
        ),
        (
            "control task".into(),
            "#d62728",
            "2 3",
            per_hook.iter().map(|h| h.control_auroc).collect(),
        ),
        (
            "random direction".into(),
            "#7f7f7f",
            "1 3",
            per_hook
                .iter()
                .map(|h| h.random_direction_auroc_mean)
                .collect(),
        ),
    ];
    for (k, (label, color, dash, vals)) in series.iter().enumerate() {
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        s += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>\n",
            pts.join(" ")
        );
        let ly = t + 14.0 + 18.0 * k as f64;
        s += &format!(
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            l + pw + 12.0,
            l + pw + 36.0,
            l + pw + 40.0,
            ly + 4.0,
            esc(label)
        );
    }
    if let Some(hm) = per_hook.get(chosen) {
        let v = hm.primary(method).auroc;
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"none\" stroke=\"black\" stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{:.1}\">chosen (circled), AUROC {v:.3}:</text><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            x(chosen),
            y(v),
            l + pw + 12.0,
            t + 14.0 + 18.0 * 4.5,
            l + pw + 12.0,
            t + 14.0 + 18.0 * 5.5,
            esc(&hm.hook)
        );
    }
    s += "</svg>\n";
    s
}

/// One named series of a [`line_chart`].
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub color: String,
    /// One value per x position (non-finite values are left out of the line).
    pub values: Vec<f64>,
}

/// Shared frame of the generic charts: y axis from 0 to a rounded maximum, thinned x labels.
struct Frame {
    l: f64,
    t: f64,
    pw: f64,
    ph: f64,
    ymax: f64,
}

impl Frame {
    fn y(&self, v: f64) -> f64 {
        self.t + self.ph * (1.0 - (v / self.ymax).clamp(0.0, 1.0))
    }
}

fn nice_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= max {
            return m * mag;
        }
    }
    10.0 * mag
}

fn frame(s: &mut String, title: &str, y_label: &str, x_title: &str, max: f64, right: f64) -> Frame {
    let (w, h) = (820.0, 420.0);
    let (l, r, t, b) = (90.0, right, 40.0, 70.0);
    let f = Frame {
        l,
        t,
        pw: w - l - r,
        ph: h - t - b,
        ymax: nice_max(max),
    };
    *s += &format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    *s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    *s += &format!(
        "<text x=\"{l}\" y=\"22\" font-size=\"14\">{}</text>\n",
        esc(title)
    );
    for k in 0..=5 {
        let v = f.ymax * k as f64 / 5.0;
        *s += &format!(
            "<line x1=\"{l}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            l + f.pw,
            l - 6.0,
            f.y(v) + 4.0,
            fmt_tick(v, f.ymax),
            y = f.y(v)
        );
    }
    *s += &format!(
        "<text x=\"30\" y=\"{:.1}\" transform=\"rotate(-90 30 {:.1})\" text-anchor=\"middle\">{}</text>\n",
        t + f.ph / 2.0,
        t + f.ph / 2.0,
        esc(y_label)
    );
    *s += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
        l + f.pw / 2.0,
        t + f.ph + 40.0,
        esc(x_title)
    );
    f
}

/// One number format per axis: plain decimals for axes up to between 0.05 and 10,000,
/// scientific otherwise.
fn fmt_tick(v: f64, ymax: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (0.05..10000.0).contains(&ymax) {
        format!("{}", (v * 1e4).round() / 1e4)
    } else {
        format!("{v:.1e}")
    }
}

fn x_labels(s: &mut String, f: &Frame, labels: &[String], x: impl Fn(usize) -> f64) {
    let step = labels.len().div_ceil(24).max(1);
    for (i, lab) in labels.iter().enumerate() {
        if i % step == 0 || i + 1 == labels.len() {
            *s += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                x(i),
                f.t + f.ph + 16.0,
                esc(lab)
            );
        }
    }
}

/// Render one value per labelled x position as bars (e.g. relative weight change per block,
/// mean KL per text).
///
/// Why: where a change concentrates (one block, a few texts) should be visible without
/// reading JSON; the largest bar is labelled with its value.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    x_title: &str,
    labels: &[String],
    values: &[f64],
) -> String {
    let mut s = String::new();
    let max = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let f = frame(&mut s, title, y_label, x_title, max, 40.0);
    let n = values.len().max(1);
    let slot = f.pw / n as f64;
    let x = |i: usize| f.l + slot * (i as f64 + 0.5);
    for (i, v) in values.iter().enumerate() {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let top = f.y(v);
        s += &format!(
            "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#1f77b4\"/>\n",
            x(i) - slot * 0.4,
            slot * 0.8,
            f.t + f.ph - top
        );
    }
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .filter(|(_, v)| **v > 0.0)
    {
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            x(i),
            f.y(*v) - 4.0,
            esc(&format!("{v:.3e}"))
        );
    }
    x_labels(&mut s, &f, labels, x);
    s += "</svg>\n";
    s
}

/// Render several series over labelled x positions as lines with a legend (e.g. activation
/// drift and 1 − CKA per block).
///
/// Why: dissimilarity measures on one axis show at which block two models part ways.
pub fn line_chart(
    title: &str,
    y_label: &str,
    x_title: &str,
    labels: &[String],
    series: &[Series],
) -> String {
    let mut s = String::new();
    let max = series
        .iter()
        .flat_map(|se| se.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let f = frame(&mut s, title, y_label, x_title, max, 200.0);
    let n = labels.len().max(1);
    let x = |i: usize| {
        f.l + if n == 1 {
            f.pw / 2.0
        } else {
            f.pw * i as f64 / (n - 1) as f64
        }
    };
    for (k, se) in series.iter().enumerate() {
        let pts: Vec<String> = se
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), f.y(*v)))
            .collect();
        s += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n",
            pts.join(" "),
            esc(&se.color)
        );
        for p in &pts {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            s += &format!(
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"2.5\" fill=\"{}\"/>\n",
                esc(&se.color)
            );
        }
        let ly = f.t + 14.0 + 18.0 * k as f64;
        s += &format!(
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"{}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            f.l + f.pw + 12.0,
            f.l + f.pw + 36.0,
            esc(&se.color),
            f.l + f.pw + 40.0,
            ly + 4.0,
            esc(&se.label)
        );
    }
    x_labels(&mut s, &f, labels, x);
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::MethodMetrics;

    fn hm(i: usize) -> HookMetrics {
        let a = 0.5 + 0.5 * (i as f64 / 11.0);
        let m = MethodMetrics {
            auroc: a,
            auroc_ci95: Some([a - 0.05, (a + 0.05).min(1.0)]),
            accuracy: a,
            recall_at_1pct_fpr: None,
        };
        HookMetrics {
            hook: format!("blocks.{i}.hook_resid_post"),
            d: 8,
            logreg: m.clone(),
            mass_mean: m,
            control_auroc: 0.5,
            control_accuracy: 0.5,
            selectivity_auroc: a - 0.5,
            selectivity_accuracy: a - 0.5,
            random_direction_auroc_mean: 0.55,
            random_direction_auroc_p95: 0.6,
        }
    }

    #[test]
    fn chart_labels_blocks_and_marks_choice() {
        let per: Vec<HookMetrics> = (0..12).map(hm).collect();
        let s = metric_by_layer(&per, Method::Logreg, 11, "t <&>");
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("block N of blocks.N.hook_resid_post"));
        assert!(s.contains("t &lt;&amp;&gt;"));
        assert!(s.contains("blocks.11.hook_resid_post"));
        if let Ok(p) = std::env::var("ASSAY_SVG_OUT") {
            std::fs::write(p, &s).unwrap();
        }
    }

    #[test]
    fn generic_charts_scale_and_escape() {
        let labels: Vec<String> = (0..6).map(|i| i.to_string()).collect();
        let b = bar_chart(
            "bars <x>",
            "relative change",
            "block",
            &labels,
            &[0.0, 0.0, 0.5, 0.0, f64::NAN, 0.1],
        );
        assert!(b.starts_with("<svg") && b.trim_end().ends_with("</svg>"));
        assert!(b.contains("bars &lt;x&gt;") && b.contains("5.000e-1"));
        assert_eq!(nice_max(0.37), 0.5);
        assert_eq!(nice_max(0.0), 1.0);
        let l = line_chart(
            "lines",
            "dissimilarity",
            "block",
            &labels,
            &[Series {
                label: "cosine distance".into(),
                color: "#d62728".into(),
                values: vec![0.0, 0.0, 0.2, 0.3, 0.3, 0.4],
            }],
        );
        assert_eq!(l.matches("<circle").count(), 6);
        assert!(l.contains("cosine distance"));
    }
}
