//! Hook points with TransformerLens names, selective caching and interventions.
//!
//! A forward pass calls [`HookCtx::at`] at every hook point. What happens there is decided by
//! a [`RunPlan`]: nothing (the fast path), an intervention that rewrites the activation, and/or
//! storing the activation (optionally reduced to one vector per prompt) in the
//! [`ActivationCache`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};

use crate::error::{MechError, Result};

/// One place in the forward pass where activations can be read or changed.
///
/// Why: the string forms are TransformerLens's (`blocks.3.hook_resid_post`), which are the de
/// facto standard that SAE releases and papers refer to; an enum keeps the hot path free of
/// string handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPoint {
    /// Token embeddings, `[batch, pos, d_model]`.
    Embed,
    /// Learned position embeddings (GPT-2, BERT), `[batch, pos, d_model]`.
    PosEmbed,
    /// Residual stream entering block `l`.
    ResidPre(usize),
    /// Attention probabilities of block `l`, `[batch, head, query_pos, key_pos]`.
    AttnPattern(usize),
    /// Per-head attention output of block `l` before the output projection (the heads'
    /// pattern-weighted values), `[batch, pos, head, d_head]`: where single heads are patched.
    AttnZ(usize),
    /// Output of the attention sublayer of block `l` (after the output projection).
    AttnOut(usize),
    /// Residual stream between attention and MLP of block `l`.
    ResidMid(usize),
    /// Output of the MLP sublayer of block `l`.
    MlpOut(usize),
    /// Residual stream leaving block `l`.
    ResidPost(usize),
    /// Output of the final normalisation, just before the unembedding.
    LnFinal,
}

impl HookPoint {
    /// Position in the forward pass, so hooks sort in the order they are computed.
    fn forward_order(&self) -> (usize, usize) {
        match self {
            HookPoint::Embed => (0, 0),
            HookPoint::PosEmbed => (0, 1),
            HookPoint::ResidPre(l) => (1 + l, 0),
            HookPoint::AttnPattern(l) => (1 + l, 1),
            HookPoint::AttnZ(l) => (1 + l, 2),
            HookPoint::AttnOut(l) => (1 + l, 3),
            HookPoint::ResidMid(l) => (1 + l, 4),
            HookPoint::MlpOut(l) => (1 + l, 5),
            HookPoint::ResidPost(l) => (1 + l, 6),
            HookPoint::LnFinal => (usize::MAX, 0),
        }
    }

    /// The block index, if this hook belongs to a block.
    pub fn layer(&self) -> Option<usize> {
        match self {
            HookPoint::ResidPre(l)
            | HookPoint::AttnPattern(l)
            | HookPoint::AttnZ(l)
            | HookPoint::AttnOut(l)
            | HookPoint::ResidMid(l)
            | HookPoint::MlpOut(l)
            | HookPoint::ResidPost(l) => Some(*l),
            _ => None,
        }
    }

    /// Which tensor dimension indexes token positions (the query position for patterns).
    pub fn position_dim(&self) -> usize {
        match self {
            HookPoint::AttnPattern(_) => 2,
            _ => 1,
        }
    }
}

impl PartialOrd for HookPoint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Hooks order as the forward pass computes them.
impl Ord for HookPoint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.forward_order().cmp(&other.forward_order())
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::Embed => write!(f, "hook_embed"),
            HookPoint::PosEmbed => write!(f, "hook_pos_embed"),
            HookPoint::ResidPre(l) => write!(f, "blocks.{l}.hook_resid_pre"),
            HookPoint::AttnPattern(l) => write!(f, "blocks.{l}.attn.hook_pattern"),
            HookPoint::AttnZ(l) => write!(f, "blocks.{l}.attn.hook_z"),
            HookPoint::AttnOut(l) => write!(f, "blocks.{l}.hook_attn_out"),
            HookPoint::ResidMid(l) => write!(f, "blocks.{l}.hook_resid_mid"),
            HookPoint::MlpOut(l) => write!(f, "blocks.{l}.hook_mlp_out"),
            HookPoint::ResidPost(l) => write!(f, "blocks.{l}.hook_resid_post"),
            HookPoint::LnFinal => write!(f, "ln_final.hook_normalized"),
        }
    }
}

impl FromStr for HookPoint {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "hook_embed" => return Ok(HookPoint::Embed),
            "hook_pos_embed" => return Ok(HookPoint::PosEmbed),
            "ln_final.hook_normalized" => return Ok(HookPoint::LnFinal),
            _ => {}
        }
        let rest = s
            .strip_prefix("blocks.")
            .ok_or_else(|| format!("`{s}` is not a hook name"))?;
        let (num, tail) = rest
            .split_once('.')
            .ok_or_else(|| format!("`{s}` is not a hook name"))?;
        let l: usize = num
            .parse()
            .map_err(|_| format!("`{s}`: `{num}` is not a layer index"))?;
        Ok(match tail {
            "hook_resid_pre" => HookPoint::ResidPre(l),
            "attn.hook_pattern" => HookPoint::AttnPattern(l),
            "attn.hook_z" => HookPoint::AttnZ(l),
            "hook_attn_out" => HookPoint::AttnOut(l),
            "hook_resid_mid" => HookPoint::ResidMid(l),
            "hook_mlp_out" => HookPoint::MlpOut(l),
            "hook_resid_post" => HookPoint::ResidPost(l),
            _ => return Err(format!("`{s}` is not a hook name")),
        })
    }
}

/// Resolve comma-separated hook names or `*` patterns against the hooks a model has.
///
/// Why: users write `blocks.*.hook_resid_post`; a pattern or name that matches nothing must
/// fail with the full list of valid names rather than silently probing nothing.
pub fn resolve_hooks(spec: &str, valid: &[HookPoint]) -> Result<Vec<HookPoint>> {
    let names: Vec<String> = valid.iter().map(|h| h.to_string()).collect();
    let mut out = BTreeSet::new();
    for pat in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut matched = false;
        for (h, n) in valid.iter().zip(&names) {
            if glob_match(pat, n) {
                out.insert(*h);
                matched = true;
            }
        }
        if !matched {
            return Err(MechError::UnknownHook {
                name: pat.to_string(),
                valid: names,
            });
        }
    }
    if out.is_empty() {
        return Err(MechError::UnknownHook {
            name: spec.to_string(),
            valid: names,
        });
    }
    Ok(out.into_iter().collect())
}

/// `*` matches any run of characters except `.`.
fn glob_match(pat: &str, s: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') => {
                let mut i = 0;
                loop {
                    if rec(&p[1..], &s[i..]) {
                        return true;
                    }
                    if i >= s.len() || s[i] == b'.' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(c) => s.first() == Some(c) && rec(&p[1..], &s[1..]),
        }
    }
    rec(pat.as_bytes(), s.as_bytes())
}

/// Which token positions an intervention or a cached reduction refers to.
///
/// Why: probes read one vector per prompt (last token or mean), and patching edits one
/// position; with right-padded batches "last" differs per row, so it is resolved per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// Every position.
    All,
    /// The last non-padding token of each prompt.
    Last,
    /// A fixed position index (counted from the start of each prompt).
    Index(usize),
}

impl FromStr for Position {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "all" => Ok(Position::All),
            "last" => Ok(Position::Last),
            n => n
                .parse()
                .map(Position::Index)
                .map_err(|_| format!("position must be `all`, `last` or an index, got `{s}`")),
        }
    }
}

/// How a cached activation is reduced over positions before storing.
///
/// Why: caching every position of every layer for a probe dataset would cost
/// `n_texts × seq × layers × d` floats; reducing at the hook bounds memory by what is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    /// Keep the full tensor.
    None,
    /// Keep only each prompt's last real token: `[batch, d]`.
    Last,
    /// Mean over each prompt's real tokens: `[batch, d]`.
    Mean,
    /// Keep one fixed position: `[batch, d]` (rows shorter than it are an error).
    Index(usize),
}

impl FromStr for Reduce {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "last" => Ok(Reduce::Last),
            "mean" => Ok(Reduce::Mean),
            "all" | "none" => Ok(Reduce::None),
            n => n
                .parse()
                .map(Reduce::Index)
                .map_err(|_| format!("position must be `last`, `mean` or an index, got `{s}`")),
        }
    }
}

impl fmt::Display for Reduce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reduce::None => write!(f, "all"),
            Reduce::Last => write!(f, "last"),
            Reduce::Mean => write!(f, "mean"),
            Reduce::Index(i) => write!(f, "{i}"),
        }
    }
}

/// What an intervention does to the selected positions of an activation.
///
/// Why: these four edits are the building blocks of steering, ablation and activation
/// patching.
#[derive(Debug, Clone)]
pub enum Action {
    /// Replace with this tensor (broadcast to the activation's shape, e.g. a `[d]` vector).
    Replace(Tensor),
    /// Add this tensor (broadcast, e.g. a steering vector `[d]`).
    Add(Tensor),
    /// Set to zero (zero-ablation).
    Zero,
    /// Copy from the same hook of another run; the tensor must have the full activation
    /// shape (as cached with [`Reduce::None`]).
    Patch(Tensor),
}

/// An edit at one hook point and position.
///
/// Why: interventions are data, so a run's full set of edits can be recorded in evidence.
#[derive(Debug, Clone)]
pub struct Intervention {
    /// Where.
    pub hook: HookPoint,
    /// Which positions.
    pub position: Position,
    /// What.
    pub action: Action,
}

/// What a forward pass should record and change.
///
/// Why: hooks cost nothing unless asked for; the plan lists exactly what is asked for, so
/// memory is bounded by the request and the pass can stop after the last needed layer.
#[derive(Debug, Clone, Default)]
pub struct RunPlan {
    /// Hooks to store, with the reduction to apply.
    pub cache: BTreeMap<HookPoint, Reduce>,
    /// Edits to apply, in order.
    pub interventions: Vec<Intervention>,
    /// Whether to compute the output (logits, or final hidden states for encoders).
    pub want_output: bool,
}

impl RunPlan {
    /// A plan that only computes the output.
    pub fn output_only() -> Self {
        RunPlan {
            want_output: true,
            ..Default::default()
        }
    }

    /// Cache these hooks with the given reduction; no output unless set.
    pub fn caching(hooks: &[HookPoint], reduce: Reduce) -> Self {
        RunPlan {
            cache: hooks.iter().map(|h| (*h, reduce)).collect(),
            ..Default::default()
        }
    }

    /// The deepest block any requested hook or intervention touches, if the output is not
    /// needed (so the forward pass can stop there). `None` means run everything.
    pub(crate) fn last_needed_layer(&self, n_layers: usize) -> Option<usize> {
        if self.want_output {
            return None;
        }
        let mut max = 0usize;
        for h in self
            .cache
            .keys()
            .chain(self.interventions.iter().map(|i| &i.hook))
        {
            match h.layer() {
                Some(l) => max = max.max(l),
                None if *h == HookPoint::LnFinal => return None,
                None => {}
            }
        }
        Some(max.min(n_layers.saturating_sub(1)))
    }
}

/// Activations stored during one forward pass, keyed by hook point.
///
/// Why: the Rust counterpart of TransformerLens's `ActivationCache`, holding only what the
/// plan asked for.
#[derive(Debug, Clone, Default)]
pub struct ActivationCache {
    /// The stored tensors.
    pub tensors: BTreeMap<HookPoint, Tensor>,
}

impl ActivationCache {
    /// The activation at a hook, if it was cached.
    pub fn get(&self, hook: &HookPoint) -> Option<&Tensor> {
        self.tensors.get(hook)
    }

    /// The activation at a hook given by name.
    pub fn get_by_name(&self, name: &str) -> Option<&Tensor> {
        name.parse::<HookPoint>()
            .ok()
            .and_then(|h| self.tensors.get(&h))
    }
}

/// Per-forward-pass state given to model code at each hook point.
pub(crate) struct HookCtx<'a> {
    plan: &'a RunPlan,
    lengths: &'a [usize],
    seq_len: usize,
    device: Device,
    pub(crate) cache: ActivationCache,
}

impl<'a> HookCtx<'a> {
    pub(crate) fn new(
        plan: &'a RunPlan,
        lengths: &'a [usize],
        seq_len: usize,
        device: &Device,
    ) -> Self {
        HookCtx {
            plan,
            lengths,
            seq_len,
            device: device.clone(),
            cache: ActivationCache::default(),
        }
    }

    /// Whether the plan caches or edits `hook`, so the model must materialise it.
    pub(crate) fn touches(&self, hook: HookPoint) -> bool {
        self.plan.cache.contains_key(&hook)
            || self.plan.interventions.iter().any(|i| i.hook == hook)
    }

    /// Apply interventions for `hook` and cache it if requested; returns the (possibly
    /// edited) activation.
    pub(crate) fn at(&mut self, hook: HookPoint, x: Tensor) -> Result<Tensor> {
        let mut x = x;
        for iv in self.plan.interventions.iter().filter(|i| i.hook == hook) {
            x = self.apply(&iv.position, &iv.action, hook, x)?;
        }
        if let Some(reduce) = self.plan.cache.get(&hook) {
            let stored = self.reduce(hook, &x, *reduce)?;
            self.cache.tensors.insert(hook, stored);
        }
        Ok(x)
    }

    /// A `[batch, seq]` u8 mask selecting the positions, shaped to broadcast over `x`.
    fn position_mask(&self, position: &Position, hook: HookPoint, x: &Tensor) -> Result<Tensor> {
        let b = self.lengths.len();
        let t = self.seq_len;
        let mut m = vec![0u8; b * t];
        for (row, &len) in self.lengths.iter().enumerate() {
            match position {
                Position::All => m[row * t..row * t + t].iter_mut().for_each(|v| *v = 1),
                Position::Last => m[row * t + len - 1] = 1,
                Position::Index(i) => {
                    if *i >= t {
                        return Err(MechError::Invalid(format!(
                            "intervention at position {i} but the batch has {t} positions"
                        )));
                    }
                    m[row * t + i] = 1
                }
            }
        }
        let mask = Tensor::from_vec(m, (b, t), &self.device)?;
        let mask = if hook.position_dim() == 2 {
            mask.reshape((b, 1, t, 1))?
        } else if x.rank() == 4 {
            mask.reshape((b, t, 1, 1))?
        } else {
            mask.reshape((b, t, 1))?
        };
        Ok(mask.broadcast_as(x.shape())?)
    }

    fn apply(
        &self,
        position: &Position,
        action: &Action,
        hook: HookPoint,
        x: Tensor,
    ) -> Result<Tensor> {
        let shape = x.shape().clone();
        let new = match action {
            Action::Zero => x.zeros_like()?,
            Action::Replace(v) => v.to_dtype(x.dtype())?.broadcast_as(&shape)?.contiguous()?,
            Action::Add(v) => x.broadcast_add(&v.to_dtype(x.dtype())?)?,
            Action::Patch(src) => {
                if src.dims() != x.dims() {
                    return Err(MechError::Invalid(format!(
                        "patch source for {hook} has shape {:?}, the activation has {:?}",
                        src.dims(),
                        x.dims()
                    )));
                }
                src.to_dtype(x.dtype())?
            }
        };
        if matches!(position, Position::All) {
            return Ok(new);
        }
        let mask = self.position_mask(position, hook, &x)?;
        Ok(mask.where_cond(&new, &x)?)
    }

    fn reduce(&self, hook: HookPoint, x: &Tensor, reduce: Reduce) -> Result<Tensor> {
        let pd = hook.position_dim();
        match reduce {
            Reduce::None => Ok(x.clone()),
            Reduce::Index(i) => {
                if let Some(len) = self.lengths.iter().find(|&&l| l <= i) {
                    return Err(MechError::Invalid(format!(
                        "position {i} requested but a prompt has only {len} tokens"
                    )));
                }
                Ok(x.narrow(pd, i, 1)?.squeeze(pd)?)
            }
            Reduce::Last => {
                let rows = self
                    .lengths
                    .iter()
                    .enumerate()
                    .map(|(r, &len)| x.narrow(0, r, 1)?.narrow(pd, len - 1, 1)?.squeeze(pd))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Ok(Tensor::cat(&rows, 0)?)
            }
            Reduce::Mean => {
                let b = self.lengths.len();
                let t = self.seq_len;
                let mut w = vec![0f32; b * t];
                for (r, &len) in self.lengths.iter().enumerate() {
                    for p in 0..len {
                        w[r * t + p] = 1.0 / len as f32;
                    }
                }
                let w = Tensor::from_vec(w, (b, t), &self.device)?.to_dtype(x.dtype())?;
                let w = if pd == 2 {
                    w.reshape((b, 1, t, 1))?
                } else if x.rank() == 4 {
                    w.reshape((b, t, 1, 1))?
                } else {
                    w.reshape((b, t, 1))?
                };
                Ok(x.broadcast_mul(&w)?.sum(pd)?)
            }
        }
    }
}

/// Convert a `[rows, d]` tensor to f32 rows.
pub(crate) fn rows_f32(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for h in [
            HookPoint::Embed,
            HookPoint::PosEmbed,
            HookPoint::ResidPre(3),
            HookPoint::AttnPattern(0),
            HookPoint::AttnOut(11),
            HookPoint::ResidMid(2),
            HookPoint::MlpOut(4),
            HookPoint::ResidPost(29),
            HookPoint::LnFinal,
        ] {
            assert_eq!(h.to_string().parse::<HookPoint>().unwrap(), h);
        }
        assert!("blocks.x.hook_resid_pre".parse::<HookPoint>().is_err());
        let mut v = vec![
            HookPoint::ResidPost(0),
            HookPoint::ResidPre(1),
            HookPoint::LnFinal,
            HookPoint::Embed,
            HookPoint::MlpOut(0),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                HookPoint::Embed,
                HookPoint::MlpOut(0),
                HookPoint::ResidPost(0),
                HookPoint::ResidPre(1),
                HookPoint::LnFinal
            ]
        );
    }

    #[test]
    fn patterns_resolve_and_unknown_lists_valid() {
        let valid = vec![
            HookPoint::Embed,
            HookPoint::ResidPost(0),
            HookPoint::ResidPost(1),
            HookPoint::ResidPost(10),
            HookPoint::MlpOut(1),
        ];
        let got = resolve_hooks("blocks.*.hook_resid_post", &valid).unwrap();
        assert_eq!(
            got,
            vec![
                HookPoint::ResidPost(0),
                HookPoint::ResidPost(1),
                HookPoint::ResidPost(10)
            ]
        );
        let err = resolve_hooks("blocks.1.hook_resid_max", &valid).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("blocks.1.hook_resid_max") && msg.contains("blocks.10.hook_resid_post"),
            "{msg}"
        );
    }
}
