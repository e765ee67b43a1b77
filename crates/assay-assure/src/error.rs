//! Errors: every problem in an input, with its file and place.

use std::fmt;
use std::path::PathBuf;

/// One problem in an input file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// The file.
    pub file: String,
    /// 1-based line (0 when the place is not a line).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Problem {
    /// A problem at `file:line:col`.
    pub fn new(
        file: &str,
        line: usize,
        col: usize,
        message: String,
        hint: Option<String>,
    ) -> Problem {
        Problem {
            file: file.to_string(),
            line,
            col,
            message,
            hint,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )?;
        } else {
            write!(f, "{}: {}", self.file, self.message)?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Why an assessment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AssureError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Input problems, all of them.
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    let mut s = format!("{} problem(s):", problems.len());
    for p in problems {
        s.push('\n');
        s.push_str(&p.to_string());
    }
    s
}

/// JSON Pointer of a serde path.
pub(crate) fn path_to_pointer(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{}", assay_spec::yaml::escape(key))),
            Segment::Enum { variant } => {
                out.push_str(&format!("/{}", assay_spec::yaml::escape(variant)))
            }
            Segment::Unknown => {}
        }
    }
    out
}
