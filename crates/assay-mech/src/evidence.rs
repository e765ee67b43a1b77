//! The evidence record every mech command writes (documented in `docs/evidence.md`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::{FileDigest, bytes_digest};
use crate::error::{MechError, Result};
use crate::model::ModelInfo;

/// Schema identifier of [`EvidenceRecord`].
pub const EVIDENCE_SCHEMA: &str = "assay.evidence/v1";

/// One piece of mechanistic evidence, self-describing enough to be weighed without re-running.
///
/// Why: the assurance layer weighs evidence per claim; it needs the evidence class, the
/// access the measurement required, exactly what it was computed on (digests), how
/// (parameters, seed, tool version) and what came out — in one stable format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// Always [`EVIDENCE_SCHEMA`].
    pub schema_version: String,
    /// Content digest of this record with `id` blank: identical inputs give identical ids.
    pub id: String,
    /// `linear_probe`, `probe_application`, ...
    pub evidence_class: String,
    /// Access the measurement needed: `weights_read`, `activations_read`, `activations_write`.
    pub access: Vec<String>,
    /// The smallest named access level (`black_box`, `grey_box`, `white_box`) holding every
    /// capability in `access`, outside-the-box capabilities aside: see [`access_level`].
    pub access_level: String,
    /// The claim this evidence is meant to bear on, if the user said.
    pub claim: Option<String>,
    /// Producer.
    pub tool: ToolInfo,
    /// The model, with file digests and quantisation.
    pub model: ModelInfo,
    /// The second model of a two-model comparison (`training_diff`: the model after
    /// training, `model` being the one before); absent for single-model evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_model: Option<ModelInfo>,
    /// Data files used, with digests.
    pub data: Vec<DataRef>,
    /// Every random choice derives from this.
    pub seed: u64,
    /// Method parameters as given or defaulted.
    pub parameters: serde_json::Value,
    /// Results (class-specific; see docs/evidence.md).
    pub results: serde_json::Value,
    /// Files written alongside, with digests.
    pub artifacts: Vec<FileDigest>,
    /// Caveats a reader must know (e.g. "weights dequantised from Q4_1").
    pub caveats: Vec<String>,
    /// How to produce this record again: the command as run, the tool and the seed.
    pub reproduction: Reproduction,
}

/// The recipe to reproduce an evidence record.
///
/// Why: evidence nobody independent can reproduce supports a claim only fragilely; the
/// record names the exact command (with every random choice pinned by `--seed`) so a
/// reviewer can run it again and compare ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reproduction {
    /// The argv as run, `argv[0]` replaced by `assay`, `--seed N` appended when the command
    /// takes a seed and none was given. Empty when the caller passed no argv (library use):
    /// such a record has no runnable recipe.
    pub command: Vec<String>,
    /// Producer that must be run (name and version).
    pub tool: ToolInfo,
    /// The seed every random choice derived from (also in `command` when it takes one).
    pub seed: u64,
    /// How to run `command`.
    pub note: String,
}

/// What [`Reproduction::note`] says for every record.
pub const REPRODUCTION_NOTE: &str = "run from the directory the relative paths are relative to";

impl Reproduction {
    /// Build the recipe from the process argv.
    ///
    /// `seed` is `Some` for commands that take `--seed`: when `argv` holds no `--seed` (as
    /// `--seed N` or `--seed=N`), `--seed N` is appended so the default cannot drift.
    pub fn from_argv(argv: &[String], seed: Option<u64>) -> Reproduction {
        let mut command: Vec<String> = Vec::with_capacity(argv.len() + 2);
        if let Some((_, rest)) = argv.split_first() {
            command.push("assay".into());
            command.extend(rest.iter().cloned());
            if let Some(s) = seed {
                let given = rest
                    .iter()
                    .any(|a| a == "--seed" || a.starts_with("--seed="));
                if !given {
                    command.push("--seed".into());
                    command.push(s.to_string());
                }
            }
        }
        Reproduction {
            command,
            tool: ToolInfo::current(),
            seed: seed.unwrap_or(0),
            note: REPRODUCTION_NOTE.into(),
        }
    }
}

/// Access capabilities of the named level `black_box` (Casper et al. 2024).
pub const BLACK_BOX: &[&str] = &["query_outputs", "sampling_params", "tool_trajectory"];
/// Capabilities `grey_box` adds to `black_box`.
pub const GREY_BOX_EXTRA: &[&str] = &["logits", "activations_read"];
/// Capabilities `white_box` adds to `grey_box`.
pub const WHITE_BOX_EXTRA: &[&str] =
    &["activations_write", "weights_read", "gradients", "finetune"];
/// Capabilities orthogonal to the box levels (`outside_the_box`).
pub const OUTSIDE_THE_BOX: &[&str] = &[
    "checkpoints_history",
    "training_data",
    "training_code_config",
    "internal_eval_results",
    "deployment_telemetry",
];

/// The smallest named box level whose capabilities include every capability in `access`;
/// outside-the-box capabilities (`checkpoints_history`, ...) do not move it.
///
/// Why: the assurance layer compares the level a measurement needed with the level an
/// assessment achieved; deriving it from `access` keeps the two fields consistent.
/// Unknown capabilities are an error (fail closed: a record cannot claim a level it
/// cannot justify).
pub fn access_level(access: &[&str]) -> Result<&'static str> {
    let mut level = "black_box";
    for a in access {
        if BLACK_BOX.contains(a) || OUTSIDE_THE_BOX.contains(a) {
            continue;
        } else if GREY_BOX_EXTRA.contains(a) {
            if level == "black_box" {
                level = "grey_box";
            }
        } else if WHITE_BOX_EXTRA.contains(a) {
            level = "white_box";
        } else {
            return Err(MechError::Invalid(format!(
                "unknown access capability `{a}` (see docs/evidence.md)"
            )));
        }
    }
    Ok(level)
}

/// Producer of an evidence record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ToolInfo {
    /// `assay-mech`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

impl ToolInfo {
    /// This crate, at its version.
    pub fn current() -> ToolInfo {
        ToolInfo {
            name: "assay-mech".into(),
            version: crate::TOOL_VERSION.into(),
        }
    }
}

/// A data file an evidence record was computed on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRef {
    /// Its role (`train`, `apply`).
    pub role: String,
    /// Path and digest.
    pub file: FileDigest,
    /// Rows read.
    pub rows: usize,
}

impl EvidenceRecord {
    /// Assemble a record and compute its id. `access_level` is derived from `access`
    /// ([`access_level`]); `reproduction` is the recipe to produce the record again.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        evidence_class: &str,
        access: &[&str],
        claim: Option<String>,
        model: ModelInfo,
        data: Vec<DataRef>,
        seed: u64,
        parameters: serde_json::Value,
        results: serde_json::Value,
        artifacts: Vec<FileDigest>,
        reproduction: Reproduction,
    ) -> Result<Self> {
        let level = access_level(access)?;
        let mut caveats = Vec::new();
        if model.dequantized {
            let q: Vec<String> = model
                .quantization
                .iter()
                .filter(|(k, _)| k.as_str() != "F32")
                .map(|(k, v)| format!("{k}×{v}"))
                .collect();
            caveats.push(format!(
                "weights were dequantised to f32 from a quantised GGUF ({}); results describe the dequantised model",
                q.join(", ")
            ));
        }
        let mut rec = EvidenceRecord {
            schema_version: EVIDENCE_SCHEMA.into(),
            id: String::new(),
            evidence_class: evidence_class.into(),
            access: access.iter().map(|s| s.to_string()).collect(),
            access_level: level.into(),
            claim,
            tool: ToolInfo::current(),
            model,
            compared_model: None,
            data,
            seed,
            parameters,
            results,
            artifacts,
            caveats,
            reproduction,
        };
        rec.seal()?;
        Ok(rec)
    }

    /// Recompute `id` from every other field.
    fn seal(&mut self) -> Result<()> {
        self.id = String::new();
        let body = serde_json::to_vec(&*self).map_err(|e| MechError::Invalid(e.to_string()))?;
        self.id = format!("sha256:{}", bytes_digest(&body));
        Ok(())
    }

    /// The id this record's content implies; differs from `id` when a field was edited.
    ///
    /// Why: a reader checks a record was not altered after it was written. The id is the
    /// SHA-256 of the compact JSON serialisation (fields in declaration order, `id` empty,
    /// floats in shortest round-trip form); a reader in another language recomputes it the
    /// same way. Parsing must be float-exact (serde_json's `float_roundtrip`, which this
    /// crate enables): the default parser can be 1 ULP off and change the id.
    pub fn expected_id(&self) -> Result<String> {
        let mut copy = self.clone();
        copy.seal()?;
        Ok(copy.id)
    }

    /// Add a caveat (what a reader must keep in mind) and recompute the id.
    pub fn with_caveat(mut self, caveat: impl Into<String>) -> Result<Self> {
        self.caveats.push(caveat.into());
        self.seal()?;
        Ok(self)
    }

    /// Attach the second model of a two-model comparison (with a caveat if it was
    /// dequantised) and recompute the id.
    pub fn with_compared_model(mut self, model: ModelInfo) -> Result<Self> {
        if model.dequantized {
            self.caveats.push(format!(
                "the compared model's weights were dequantised to f32 from a quantised GGUF ({}); results describe the dequantised model",
                model.quantization.iter().filter(|(k, _)| k.as_str() != "F32").map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(", ")
            ));
        }
        self.compared_model = Some(model);
        self.seal()?;
        Ok(self)
    }

    /// Write as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let s =
            serde_json::to_string_pretty(self).map_err(|e| MechError::Invalid(e.to_string()))?;
        std::fs::write(path, s + "\n").map_err(|e| MechError::io(path, e))
    }

    /// Read back.
    pub fn read(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).map_err(|e| MechError::io(path, e))?;
        serde_json::from_str(&s).map_err(|e| MechError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn reproduction_replaces_argv0_and_pins_the_seed() {
        let r =
            Reproduction::from_argv(&argv("/x/target/release/assay mech probe --out o"), Some(0));
        assert_eq!(r.command, argv("assay mech probe --out o --seed 0"));
        assert_eq!(r.seed, 0);
        assert_eq!(r.tool, ToolInfo::current());
        assert_eq!(r.note, REPRODUCTION_NOTE);
        let r = Reproduction::from_argv(&argv("a mech probe --seed 7 --out o"), Some(7));
        assert_eq!(r.command, argv("assay mech probe --seed 7 --out o"));
        let r = Reproduction::from_argv(&argv("a mech diff --seed=3"), Some(3));
        assert_eq!(r.command, argv("assay mech diff --seed=3"));
        assert_eq!(r.seed, 3);
        let r = Reproduction::from_argv(&argv("a mech behave --out o"), None);
        assert_eq!(r.command, argv("assay mech behave --out o"));
        assert!(Reproduction::from_argv(&[], Some(0)).command.is_empty());
    }

    #[test]
    fn access_level_is_the_smallest_box_holding_every_capability() {
        assert_eq!(access_level(&["query_outputs"]).unwrap(), "black_box");
        assert_eq!(
            access_level(&["query_outputs", "logits"]).unwrap(),
            "grey_box"
        );
        assert_eq!(
            access_level(&["activations_read", "activations_write"]).unwrap(),
            "white_box"
        );
        assert_eq!(
            access_level(&["weights_read", "activations_read", "checkpoints_history"]).unwrap(),
            "white_box"
        );
        let e = access_level(&["mind_reading"]).unwrap_err().to_string();
        assert!(e.contains("mind_reading"), "{e}");
    }
}
