//! Placeholders in spec text: `{{secret:NAME}}`, `{{slot:NAME}}`, `{{args.NAME}}`,
//! `{{result:N}}`, `{{read:PATH}}`. One scanner for all consumers so that the
//! validator, the world and the agents agree on what a placeholder is.

use std::ops::Range;

/// One `{{...}}` occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder<'a> {
    /// Byte range of the whole `{{...}}` in the text.
    pub span: Range<usize>,
    /// Part before `:` or `.` (`secret`, `slot`, `args`, `result`, `read`).
    pub kind: &'a str,
    /// Part after it.
    pub name: &'a str,
}

/// All placeholders in `text`, in order. Text without a recognised separator is skipped.
pub fn placeholders(text: &str) -> Vec<Placeholder<'_>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("{{").map(|i| i + from) {
        let Some(end) = text[start + 2..].find("}}").map(|i| i + start + 2) else {
            break;
        };
        let inner = text[start + 2..end].trim();
        let sep = inner.find([':', '.']);
        if let Some(sep) = sep {
            out.push(Placeholder {
                span: start..end + 2,
                kind: inner[..sep].trim(),
                name: inner[sep + 1..].trim(),
            });
        }
        from = end + 2;
    }
    out
}

/// Replaces each placeholder for which `f` returns `Some`, leaving others as written.
pub fn render(text: &str, mut f: impl FnMut(&Placeholder<'_>) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for p in placeholders(text) {
        if let Some(v) = f(&p) {
            out.push_str(&text[last..p.span.start]);
            out.push_str(&v);
            last = p.span.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_renders() {
        let t = "KEY={{secret:stripe}} and {{ slot:inbox }} {{args.env}} {{nope}}";
        let ps = placeholders(t);
        assert_eq!(ps.len(), 3);
        assert_eq!((ps[0].kind, ps[0].name), ("secret", "stripe"));
        assert_eq!((ps[1].kind, ps[1].name), ("slot", "inbox"));
        assert_eq!((ps[2].kind, ps[2].name), ("args", "env"));
        let r = render(t, |p| (p.kind == "secret").then(|| "sk_1".to_string()));
        assert!(r.starts_with("KEY=sk_1 and {{ slot:inbox }}"));
    }
}
