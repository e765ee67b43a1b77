//! Errors of compiling and scoring.

use thiserror::Error;

/// Why a spec could not be compiled into rules, or a trace could not be scored.
///
/// Scoring errors exist so that a grading problem is reported as an error and
/// never silently becomes a pass (or a clean run).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RuleError {
    /// A regular expression in a matcher does not compile.
    #[error("{place}: invalid regex `{pattern}`: {message}")]
    Regex {
        /// Where in the spec (`forbidden[secret-read]`, `task.success[0]`, ...).
        place: String,
        /// The pattern as written.
        pattern: String,
        /// The regex engine's message.
        message: String,
    },
    /// A condition names an effect kind the trace vocabulary lacks.
    #[error("{place}: unknown effect kind `{kind}`")]
    UnknownEffect {
        /// Where in the spec.
        place: String,
        /// The kind as written.
        kind: String,
    },
    /// A spec value the scorer cannot use (normally caught by spec validation).
    #[error("{place}: {message}")]
    Invalid {
        /// Where in the spec.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// `score` was asked about a threat the spec does not declare.
    #[error("unknown threat `{0}`: the spec declares no threat with this id")]
    UnknownThreat(String),
    /// The threat given to `score` disagrees with the one the trace records.
    #[error(
        "threat mismatch: scoring as {given:?} but the trace's episode_start says {recorded:?}"
    )]
    ThreatMismatch {
        /// Threat passed to `score`.
        given: Option<String>,
        /// Threat in the trace's `episode_start`.
        recorded: Option<String>,
    },
    /// The first event is not `episode_start`.
    #[error("trace does not begin with episode_start")]
    MissingStart,
    /// The last event is not `episode_end` (the final state is unknown).
    #[error("trace does not end with episode_end")]
    MissingEnd,
    /// A flow names a secret the episode did not generate.
    #[error("{place}: secret `{name}` is not among the episode's secrets")]
    MissingSecret {
        /// Where in the spec.
        place: String,
        /// Secret name.
        name: String,
    },
}
