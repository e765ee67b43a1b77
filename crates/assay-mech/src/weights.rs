//! Named tensors from a checkpoint, with complete reporting of what is missing or misshapen.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::error::{MechError, Result};

/// A bag of named f32 tensors read from safetensors or dequantised from GGUF.
///
/// Why: architecture code asks for tensors by name and shape; collecting every missing name
/// before failing lets a user fix a broken checkpoint in one go.
pub struct Weights {
    map: HashMap<String, Tensor>,
    prefixes: Vec<String>,
    missing: RefCell<Vec<String>>,
    device: Device,
}

impl Weights {
    /// Wrap a map of tensors. `prefixes` are tried in order before each name (e.g. `""`,
    /// `"transformer."`).
    pub fn new(map: HashMap<String, Tensor>, prefixes: &[&str], device: &Device) -> Self {
        Weights {
            map,
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            missing: RefCell::new(Vec::new()),
            device: device.clone(),
        }
    }

    /// Whether a tensor exists under any prefix.
    pub fn contains(&self, name: &str) -> bool {
        self.prefixes
            .iter()
            .any(|p| self.map.contains_key(&format!("{p}{name}")))
    }

    /// Fetch a tensor of the given shape as f32. A missing tensor is recorded (see
    /// [`Weights::finish`]) and a zero placeholder returned; a wrong shape fails at once.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        for p in &self.prefixes {
            let full = format!("{p}{name}");
            if let Some(t) = self.map.get(&full) {
                if t.dims() != shape {
                    return Err(MechError::ShapeMismatch {
                        name: full,
                        expected: shape.to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                return Ok(t.to_dtype(DType::F32)?);
            }
        }
        self.missing.borrow_mut().push(name.to_string());
        Ok(Tensor::zeros(shape, DType::F32, &self.device)?)
    }

    /// Fetch a tensor if present (no missing-record), checking its shape.
    pub fn get_opt(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.contains(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fail with the complete list if anything was missing.
    pub fn finish(&self) -> Result<()> {
        let missing = self.missing.borrow();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(MechError::MissingTensors {
                missing: missing.clone(),
            })
        }
    }
}
