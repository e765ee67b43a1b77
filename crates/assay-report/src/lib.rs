//! Results of a run and what is made of them: the `results.json` format, the
//! per spec × agent metrics, release gates, the control-agent expectations, and
//! the terminal renderings (summary table, annotated trace).
//!
//! This crate computes from finished episodes only; it must not run anything.

mod coverage;
mod junit;
mod metrics;
mod otel;
mod render;
mod results;
mod sarif;
mod stats;

pub use coverage::{RuleKind, SpecCoverage, UncoveredRule, coverage, render_coverage};
pub use junit::{JunitError, junit};
pub use metrics::{
    BreakdownRow, Breakdowns, ControlCheck, GateResult, SummaryRow, breakdowns, summarize,
};
pub use otel::{OtelError, SYNTHETIC_EPOCH_NANOS, otel, otel_trace_id};
pub use render::{render_breakdown, render_qa, render_summary, render_trace};
pub use results::{
    DIGEST_ALGORITHM, EpisodeResult, Integrity, IntegrityProblem, IntegrityStatus, JudgeAnswer,
    JudgeResult, QA_SCHEMA, QaReport, QaResult, RESULTS_SCHEMA, ResultsSignature, Role, RunResults,
    SIGNATURE_ALGORITHM, SpecRef, Status, UsageTotals, check_integrity, results_digest,
    signed_message,
};
pub use sarif::{SarifError, sarif};
pub use stats::{Z95, wilson};
