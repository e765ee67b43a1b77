//! Results of a run and what is made of them: the `results.json` format, the
//! per spec × agent metrics, release gates, the control-agent expectations, and
//! the terminal renderings (summary table, annotated trace).
//!
//! This crate computes from finished episodes only; it must not run anything.

mod aggregate;
mod coverage;
mod diff;
mod filter;
mod html;
mod junit;
mod metrics;
mod otel;
mod render;
mod results;
mod sarif;
mod stats;

pub use aggregate::{Aggregate, Aggregator};
pub use coverage::{CoverageAcc, RuleKind, SpecCoverage, UncoveredRule, coverage, render_coverage};
pub use diff::{
    EpisodeKey, Rate, RateDelta, RunDiff, Verdict, VerdictChange, diff_runs, newcombe, render_diff,
};
pub use filter::{EpisodeFilter, FilterError, FilterKey};
pub use html::{HTML_TEXT_CAP, HTML_TRACE_CAP, html, is_failing};
pub use junit::{JunitError, junit};
pub use metrics::{
    BreakdownRow, Breakdowns, ControlCheck, EpochRate, GateResult, SummaryRow, breakdowns,
    summarize,
};
pub use otel::{OtelError, SYNTHETIC_EPOCH_NANOS, otel, otel_trace_id};
pub use render::{
    group_lines, render_breakdown, render_failures, render_qa, render_summary, render_trace,
};
pub use results::{
    DIGEST_ALGORITHM, EpisodeResult, Integrity, IntegrityProblem, IntegrityStatus, JudgeAnswer,
    JudgeResult, QA_SCHEMA, QaReport, QaResult, RESULTS_SCHEMA, ResultsSignature, Role, RunResults,
    SIGNATURE_ALGORITHM, SpecRef, Status, UsageTotals, check_integrity, results_digest,
    signed_message,
};
pub use sarif::{SarifError, sarif};
pub use stats::{Z95, wilson};
