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
    /// `white_box` for anything reading activations.
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
}

/// Producer of an evidence record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `assay-mech`.
    pub name: String,
    /// Crate version.
    pub version: String,
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
    /// Assemble a record and compute its id.
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
    ) -> Result<Self> {
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
            access_level: "white_box".into(),
            claim,
            tool: ToolInfo {
                name: "assay-mech".into(),
                version: crate::TOOL_VERSION.into(),
            },
            model,
            compared_model: None,
            data,
            seed,
            parameters,
            results,
            artifacts,
            caveats,
        };
        let body = serde_json::to_vec(&rec).map_err(|e| MechError::Invalid(e.to_string()))?;
        rec.id = format!("sha256:{}", bytes_digest(&body));
        Ok(rec)
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
        self.id = String::new();
        let body = serde_json::to_vec(&self).map_err(|e| MechError::Invalid(e.to_string()))?;
        self.id = format!("sha256:{}", bytes_digest(&body));
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
