//! The attack catalog: techniques as data (`catalog/techniques/*.yaml`).
//!
//! Techniques are reviewed text, versioned like code. They are embedded at
//! build time and can be replaced at run time with `--catalog DIR`. Loading
//! checks every field and every template variable, and names the file and the
//! technique in each error.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SynthError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/catalog_files.rs"));
}

/// Template variables a technique may use.
pub const VARIABLES: &[&str] = &[
    "goal",
    "goal_plain",
    "part1",
    "part2",
    "task",
    "filler",
    "decode_hint",
];

/// Slot kinds a technique may declare.
pub const SLOT_KINDS: &[&str] = &[
    "file",
    "mail",
    "web",
    "tool_output",
    "record",
    "memory",
    "tool_description",
    "user_turn",
    "any",
];

/// Transforms of the goal text.
pub const TRANSFORMS: &[&str] = &[
    "none",
    "base64",
    "hex",
    "rot13",
    "zero_width",
    "unicode_tags",
    "reverse",
];

/// Evasion axes.
pub const AXES: &[&str] = &["none", "temporal", "spatial", "semantic"];

/// One attack technique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Technique {
    /// Always `assay/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `Technique`.
    pub kind: String,
    /// Identifier (the file name without `.yaml`).
    pub id: String,
    /// Version; bumped when the payload text changes.
    pub version: u32,
    /// Human name.
    pub name: String,
    /// `direct` (the user's own channel) or `indirect` (data the agent reads).
    pub family: String,
    /// Evasion axis: `none`, `temporal`, `spatial`, `semantic`.
    pub axis: String,
    /// What it does and why it works.
    pub description: String,
    /// Slot kinds it can be planted in (`any` for all).
    #[serde(default)]
    pub slots: Vec<String>,
    /// Transform applied to the goal text.
    #[serde(default = "Technique::default_transform")]
    pub transform: String,
    /// Single-slot payload templates; each is a variant.
    #[serde(default)]
    pub payloads: Vec<String>,
    /// Two templates for two different slots (spatial split).
    #[serde(default)]
    pub parts: Vec<String>,
    /// User turns appended after the task's turns.
    #[serde(default)]
    pub turns: Vec<String>,
    /// How its payload fills a slot with default text (`append` when absent);
    /// a threat's own `mode` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<assay_spec::PayloadMode>,
    /// `all`: one case plants the payload in every compatible slot of the
    /// threat at once, whatever `--slots` says; `one` (default): one case per slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<crate::synth::SlotFill>,
    /// Public sources.
    pub references: Vec<String>,
}

impl Technique {
    fn default_transform() -> String {
        "none".into()
    }

    /// Whether the technique can be planted in a slot of this kind.
    pub fn accepts(&self, kind: &str) -> bool {
        self.slots.iter().any(|s| s == "any" || s == kind)
    }

    /// Whether the technique needs no slot (it only adds user turns).
    pub fn turn_only(&self) -> bool {
        self.payloads.is_empty() && self.parts.is_empty()
    }
}

/// A loaded, validated catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Techniques sorted by id.
    pub techniques: Vec<Technique>,
}

fn template_vars(t: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i + 2..].find("}}") else {
            break;
        };
        out.push(rest[i + 2..i + 2 + j].trim());
        rest = &rest[i + 2 + j + 2..];
    }
    out
}

fn check(t: &Technique, file: &str) -> Vec<String> {
    let mut e = Vec::new();
    let mut bad = |m: String| e.push(format!("{file}: technique `{}`: {m}", t.id));
    if t.api_version != "assay/v1" {
        bad(format!(
            "apiVersion must be assay/v1, found `{}`",
            t.api_version
        ));
    }
    if t.kind != "Technique" {
        bad(format!("kind must be Technique, found `{}`", t.kind));
    }
    if let Some(problem) = assay_spec::names::id_problem(&t.id) {
        bad(format!(
            "invalid id `{}` (it names case files): {problem}",
            t.id.escape_debug()
        ));
    }
    if format!("{}.yaml", t.id) != file {
        bad(format!("id must match the file name (`{}.yaml`)", t.id));
    }
    if !matches!(t.family.as_str(), "direct" | "indirect") {
        bad(format!(
            "family must be direct or indirect, found `{}`",
            t.family
        ));
    }
    if !AXES.contains(&t.axis.as_str()) {
        bad(format!(
            "axis must be one of {}, found `{}`",
            AXES.join(", "),
            t.axis
        ));
    }
    if !TRANSFORMS.contains(&t.transform.as_str()) {
        bad(format!(
            "transform must be one of {}, found `{}`",
            TRANSFORMS.join(", "),
            t.transform
        ));
    }
    for s in &t.slots {
        if !SLOT_KINDS.contains(&s.as_str()) {
            bad(format!(
                "unknown slot kind `{s}`; expected one of {}",
                SLOT_KINDS.join(", ")
            ));
        }
    }
    if t.payloads.is_empty() && t.parts.is_empty() && t.turns.is_empty() {
        bad("needs at least one of payloads, parts, turns".into());
    }
    if !t.payloads.is_empty() && !t.parts.is_empty() {
        bad("payloads and parts are mutually exclusive".into());
    }
    if !t.parts.is_empty() && t.parts.len() != 2 {
        bad(format!(
            "parts takes exactly two templates, found {}",
            t.parts.len()
        ));
    }
    if t.fill == Some(crate::synth::SlotFill::All) && t.payloads.is_empty() {
        bad("`fill: all` needs `payloads` (parts already fill two slots; turns need none)".into());
    }
    if !t.turn_only() && t.slots.is_empty() {
        bad("a technique with payloads or parts must declare the slot kinds it can use".into());
    }
    if t.references.is_empty() {
        bad("needs at least one reference".into());
    }
    for (what, list) in [
        ("payloads", &t.payloads),
        ("parts", &t.parts),
        ("turns", &t.turns),
    ] {
        for (i, tmpl) in list.iter().enumerate() {
            for v in template_vars(tmpl) {
                if !VARIABLES.contains(&v) {
                    bad(format!(
                        "{what}[{i}] uses unknown template variable `{{{{{v}}}}}`; allowed: {}",
                        VARIABLES.join(", ")
                    ));
                }
            }
        }
    }
    let carries_goal = t
        .payloads
        .iter()
        .chain(&t.parts)
        .chain(&t.turns)
        .any(|tmpl| {
            template_vars(tmpl)
                .iter()
                .any(|v| matches!(*v, "goal" | "goal_plain" | "part1" | "part2"))
        });
    if !carries_goal {
        bad(
            "no template carries the goal ({{goal}}, {{goal_plain}}, {{part1}} or {{part2}})"
                .into(),
        );
    }
    e
}

impl Catalog {
    /// The catalog built into this binary.
    pub fn embedded() -> Result<Catalog, SynthError> {
        Catalog::from_files(
            embedded::EMBEDDED
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string())),
        )
    }

    /// Loads every `*.yaml` in a directory.
    pub fn load_dir(dir: &Path) -> Result<Catalog, SynthError> {
        let rd = std::fs::read_dir(dir).map_err(|e| {
            SynthError::Catalog(vec![format!(
                "cannot read catalog directory {}: {e}",
                dir.display()
            )])
        })?;
        let mut files = Vec::new();
        for entry in rd.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| SynthError::Catalog(vec![format!("{}: {e}", p.display())]))?;
                files.push((
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string(),
                    text,
                ));
            }
        }
        Catalog::from_files(files)
    }

    /// Builds a catalog from (file name, text) pairs, reporting every problem.
    pub fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalog, SynthError> {
        let mut errors = Vec::new();
        let mut techniques = Vec::new();
        for (name, text) in files {
            let value: Value = match assay_spec::yaml::parse_value(&text) {
                Ok(v) => v,
                Err((m, pos)) => {
                    errors.push(format!(
                        "{name}:{}:{}: invalid YAML: {m}",
                        pos.line, pos.col
                    ));
                    continue;
                }
            };
            match serde_json::from_value::<Technique>(value).map_err(|e| e.to_string()) {
                Ok(t) => {
                    errors.extend(check(&t, &name));
                    techniques.push(t);
                }
                Err(m) => errors.push(format!("{name}: {m}")),
            }
        }
        let mut seen = BTreeSet::new();
        for t in &techniques {
            if !seen.insert(t.id.clone()) {
                errors.push(format!("technique id `{}` is defined twice", t.id));
            }
        }
        if !errors.is_empty() {
            return Err(SynthError::Catalog(errors));
        }
        techniques.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Catalog { techniques })
    }

    /// A technique by id.
    pub fn get(&self, id: &str) -> Option<&Technique> {
        self.techniques.iter().find(|t| t.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid_and_large() {
        let c = Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            c.techniques.len() >= 30,
            "{} techniques",
            c.techniques.len()
        );
        for axis in AXES {
            assert!(
                c.techniques.iter().any(|t| &t.axis == axis),
                "no technique on axis {axis}"
            );
        }
    }

    #[test]
    fn bad_templates_are_named() {
        let text = "apiVersion: assay/v1\nkind: Technique\nid: t\nversion: 1\nname: T\nfamily: indirect\naxis: none\ndescription: d\nslots: [file]\npayloads: [\"do {{goal}} with {{gaol}}\"]\nreferences: [x]\n";
        let err = Catalog::from_files([("t.yaml".to_string(), text.to_string())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "t.yaml: technique `t`: payloads[0] uses unknown template variable `{{gaol}}`"
            ),
            "{err}"
        );
        let err = Catalog::from_files([(
            "t.yaml".to_string(),
            text.replace("slots: [file]", "slots: [fax]"),
        )])
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown slot kind `fax`"), "{err}");
    }
}
