//! Renders spec problems as miette diagnostics: file, line, column, the source
//! line with the offending spot underlined, and a hint.

use assay_spec::{Diagnostic as SpecProblem, LoadError};
use miette::{Diagnostic, LabeledSpan, NamedSource, Report, SourceSpan};

#[derive(Debug)]
struct Problem {
    message: String,
    hint: Option<String>,
    src: NamedSource<String>,
    span: Option<SourceSpan>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.span.map(|s| {
            Box::new(std::iter::once(LabeledSpan::new_with_span(
                Some("here".into()),
                s,
            ))) as Box<dyn Iterator<Item = LabeledSpan>>
        })
    }
}

/// Byte offset of a 1-based line and column in `text`.
fn byte_offset(text: &str, line: usize, col: usize) -> Option<usize> {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let within: usize = l
                .chars()
                .take(col.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return Some(off + within);
        }
        off += l.len();
    }
    None
}

/// Prints every problem of a load error to standard error.
pub fn report(e: &LoadError) {
    for d in &e.diagnostics {
        eprintln!("{}", plain_location(d));
        let span = byte_offset(&e.source_text, d.line, d.col).map(|o| {
            let len = e.source_text[o..]
                .find(['\n', ':', ',', '}', ']'])
                .unwrap_or(1)
                .max(1);
            SourceSpan::new(o.into(), len)
        });
        let p = Problem {
            message: d.message.clone(),
            hint: d.hint.clone(),
            src: NamedSource::new(d.file.display().to_string(), e.source_text.clone()),
            span: if e.source_text.is_empty() { None } else { span },
        };
        eprintln!("{:?}", Report::new(p));
    }
}

fn plain_location(d: &SpecProblem) -> String {
    format!(
        "error: {}:{}:{}: {}",
        d.file.display(),
        d.line,
        d.col,
        d.message
    )
}
