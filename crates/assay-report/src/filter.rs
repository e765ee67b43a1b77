//! Episode filters: pick the episodes of one spec, threat, technique, case,
//! agent or status out of a run of thousands, from one short string such as
//! `spec=support-*,status=error`.

use std::fmt;
use std::str::FromStr;

use crate::results::{EpisodeResult, Role, Status};

/// A field an [`EpisodeFilter`] can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKey {
    /// Spec id.
    Spec,
    /// Threat id (empty for benign episodes).
    Threat,
    /// Technique id (empty when none).
    Technique,
    /// Evasion axis (empty when none).
    Axis,
    /// Case label.
    Case,
    /// Agent name.
    Agent,
    /// `subject` or `control`.
    Role,
    /// `ok`, `error` or `inconclusive`.
    Status,
}

impl FilterKey {
    /// Every key, in the order error messages list them.
    pub const ALL: [FilterKey; 8] = [
        FilterKey::Spec,
        FilterKey::Threat,
        FilterKey::Technique,
        FilterKey::Axis,
        FilterKey::Case,
        FilterKey::Agent,
        FilterKey::Role,
        FilterKey::Status,
    ];

    /// The key as written in a filter.
    pub fn name(self) -> &'static str {
        match self {
            FilterKey::Spec => "spec",
            FilterKey::Threat => "threat",
            FilterKey::Technique => "technique",
            FilterKey::Axis => "axis",
            FilterKey::Case => "case",
            FilterKey::Agent => "agent",
            FilterKey::Role => "role",
            FilterKey::Status => "status",
        }
    }

    /// The value the key reads from an episode (absent optional fields read
    /// as the empty string, so `threat=` selects benign episodes).
    fn value(self, e: &EpisodeResult) -> &str {
        match self {
            FilterKey::Spec => &e.spec,
            FilterKey::Threat => e.threat.as_deref().unwrap_or(""),
            FilterKey::Technique => e.technique.as_deref().unwrap_or(""),
            FilterKey::Axis => e.axis.as_deref().unwrap_or(""),
            FilterKey::Case => &e.case,
            FilterKey::Agent => &e.agent,
            FilterKey::Role => match e.role {
                Role::Subject => "subject",
                Role::Control => "control",
            },
            FilterKey::Status => match e.status {
                Status::Ok => "ok",
                Status::Error => "error",
                Status::Inconclusive => "inconclusive",
            },
        }
    }

    /// The only values the key can take, when they are a closed set.
    fn closed_values(self) -> Option<&'static [&'static str]> {
        match self {
            FilterKey::Role => Some(&["subject", "control"]),
            FilterKey::Status => Some(&["ok", "error", "inconclusive"]),
            _ => None,
        }
    }
}

impl fmt::Display for FilterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn valid_keys() -> String {
    FilterKey::ALL.map(FilterKey::name).join(", ")
}

/// Why a filter string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A clause names a key filters do not know.
    #[error("unknown filter key `{key}`; valid keys: {valid}", valid = valid_keys())]
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// A clause is not `key=value`.
    #[error("filter clause `{clause}` is not key=value (valid keys: {valid})", valid = valid_keys())]
    NotKeyValue {
        /// The clause as written.
        clause: String,
    },
    /// A value no episode can have (for `status` and `role`).
    #[error("`{value}` is not a valid {key}; valid values: {valid}")]
    BadValue {
        /// The key.
        key: FilterKey,
        /// The value as written.
        value: String,
        /// The values the key takes.
        valid: String,
    },
}

/// A value to match: exact, or a glob where `*` stands for any run of
/// characters. Only `*` is special, so labels holding `?`, `[` or `.` still
/// match themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(String);

impl Pattern {
    fn matches(&self, s: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or("");
        let Some(mut rest) = s.strip_prefix(first) else {
            return false;
        };
        let middle: Vec<&str> = parts.collect();
        let Some((last, middle)) = middle.split_last() else {
            // No `*`: exact match.
            return rest.is_empty();
        };
        for p in middle {
            match rest.find(p) {
                Some(i) => rest = &rest[i + p.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// A conjunction of `key=value` clauses over episodes. Clauses on different
/// keys must all hold; repeated clauses on one key are alternatives
/// (`agent=a,agent=b` selects both agents).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EpisodeFilter {
    clauses: Vec<(FilterKey, Pattern)>,
}

impl EpisodeFilter {
    /// True when the episode satisfies every key of the filter (an empty
    /// filter matches everything).
    pub fn matches(&self, e: &EpisodeResult) -> bool {
        FilterKey::ALL.iter().all(|&k| {
            let mut on_key = self.clauses.iter().filter(|(c, _)| *c == k).peekable();
            on_key.peek().is_none() || on_key.any(|(_, p)| p.matches(k.value(e)))
        })
    }

    /// True when the filter has no clause.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }
}

impl FromStr for EpisodeFilter {
    type Err = FilterError;

    /// Parses `key=value,key=value`; whitespace around keys and values is
    /// ignored; an empty string is the filter that matches everything.
    fn from_str(s: &str) -> Result<Self, FilterError> {
        let mut clauses = Vec::new();
        for clause in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let Some((key, value)) = clause.split_once('=') else {
                return Err(FilterError::NotKeyValue {
                    clause: clause.to_string(),
                });
            };
            let (key, value) = (key.trim(), value.trim());
            let Some(k) = FilterKey::ALL.into_iter().find(|k| k.name() == key) else {
                return Err(FilterError::UnknownKey {
                    key: key.to_string(),
                });
            };
            let pattern = Pattern(value.to_string());
            if let Some(valid) = k.closed_values()
                && !valid.iter().any(|v| pattern.matches(v))
            {
                return Err(FilterError::BadValue {
                    key: k,
                    value: value.to_string(),
                    valid: valid.join(", "),
                });
            }
            clauses.push((k, pattern));
        }
        Ok(EpisodeFilter { clauses })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::ep;

    #[test]
    fn globs_match_only_with_star() {
        let p = |s: &str| Pattern(s.into());
        assert!(p("leak").matches("leak"));
        assert!(!p("leak").matches("leaky"));
        assert!(!p("leak").matches("lea"));
        assert!(p("leak*").matches("leaky"));
        assert!(p("*key").matches("leak-key"));
        assert!(p("l*k*y").matches("leak-key"));
        assert!(!p("l*k*y").matches("leak-kex"));
        assert!(p("*").matches(""));
        assert!(p("a*a").matches("aa"));
        assert!(!p("a*a").matches("a"));
        assert!(p("x?[1]").matches("x?[1]"), "only `*` is special");
        assert!(!p("x?").matches("xy"));
        assert!(p("").matches(""));
        assert!(!p("").matches("x"));
    }

    #[test]
    fn filters_select_episodes() {
        let benign = ep("support-refund", "m", Role::Subject, None);
        let mut attacked = ep("support-refund", "m", Role::Subject, Some("leak-key"));
        attacked.status = Status::Error;
        let other = ep("ops-deploy", "control:naive", Role::Control, Some("wipe"));
        let eps = [&benign, &attacked, &other];
        let pick = |f: &str| -> Vec<usize> {
            let f: EpisodeFilter = f.parse().unwrap();
            (0..3).filter(|&i| f.matches(eps[i])).collect()
        };
        assert_eq!(pick(""), [0, 1, 2]);
        assert_eq!(pick("spec=support-*"), [0, 1]);
        assert_eq!(pick("spec=support-*, status=error"), [1]);
        assert_eq!(pick("threat="), [0]);
        assert_eq!(pick("threat=leak*"), [1]);
        assert_eq!(pick("threat=leak"), Vec::<usize>::new());
        assert_eq!(pick("agent=control:*"), [2]);
        assert_eq!(pick("role=control"), [2]);
        assert_eq!(pick("agent=m,agent=control:naive,status=ok"), [0, 2]);
        assert_eq!(pick("case=benign"), [0]);
        assert_eq!(pick("technique=plain"), [1, 2]);
    }

    #[test]
    fn bad_filters_name_the_problem() {
        let e = "spec=x,colour=red".parse::<EpisodeFilter>().unwrap_err();
        assert_eq!(
            e,
            FilterError::UnknownKey {
                key: "colour".into()
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("`colour`"), "{msg}");
        assert!(
            msg.contains("spec, threat, technique, axis, case, agent, role, status"),
            "{msg}"
        );
        let e = "spec".parse::<EpisodeFilter>().unwrap_err();
        assert!(matches!(e, FilterError::NotKeyValue { .. }));
        assert!(e.to_string().contains("valid keys"));
        let e = "status=failed".parse::<EpisodeFilter>().unwrap_err();
        assert!(e.to_string().contains("ok, error, inconclusive"), "{e}");
        assert!("status=err*".parse::<EpisodeFilter>().is_ok());
    }
}
