//! Property (a): in any example spec, misspelling one randomly chosen matcher
//! field name or sensitivity label makes `validate` fail. Before the effect
//! table existed most such typos validated and silently disabled their rule.

use std::path::{Path, PathBuf};

use assay_spec::{effects, yaml};
use proptest::prelude::*;
use serde_json::Value;

/// One place a typo can go.
#[derive(Debug, Clone)]
enum Target {
    /// Rename key `key` of the map at `map` (a JSON Pointer).
    Key { map: String, key: String },
    /// Replace the string at this pointer (a sensitivity label).
    Label { at: String },
}

fn esc(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn fields(v: &Value, ptr: &str, out: &mut Vec<Target>) {
    let Some(m) = v.as_object() else { return };
    for (k, val) in m {
        if !k.contains('.') {
            out.push(Target::Key {
                map: ptr.to_string(),
                key: k.clone(),
            });
        }
        if k == "sensitivity" {
            labels(val, &format!("{ptr}/sensitivity"), out);
        }
    }
}

fn labels(v: &Value, ptr: &str, out: &mut Vec<Target>) {
    match v {
        Value::String(_) => out.push(Target::Label { at: ptr.into() }),
        Value::Object(m) => {
            if let Some(Value::String(_)) = m.get("equals") {
                out.push(Target::Label {
                    at: format!("{ptr}/equals"),
                });
            }
            for op in ["in", "not_in"] {
                if let Some(Value::Array(l)) = m.get(op) {
                    for i in 0..l.len() {
                        out.push(Target::Label {
                            at: format!("{ptr}/{op}/{i}"),
                        });
                    }
                }
            }
        }
        _ => {}
    }
}

fn condition(v: &Value, ptr: &str, out: &mut Vec<Target>) {
    let Some(m) = v.as_object() else { return };
    for (k, val) in m {
        let at = format!("{ptr}/{}", esc(k));
        match k.as_str() {
            "tool" => fields(val, &at, out),
            "all" | "any" => {
                for (i, c) in val.as_array().into_iter().flatten().enumerate() {
                    condition(c, &format!("{at}/{i}"), out);
                }
            }
            "after" => condition(val, &at, out),
            "flow" => {
                if let Some(l) = val.pointer("/from/sensitivity") {
                    labels(l, &format!("{at}/from/sensitivity"), out);
                }
                match val.get("to") {
                    Some(Value::Object(sinks)) => {
                        for (s, f) in sinks {
                            fields(f, &format!("{at}/to/{}", esc(s)), out);
                        }
                    }
                    Some(Value::Array(items)) => {
                        for (i, it) in items.iter().enumerate() {
                            for (s, f) in it.as_object().into_iter().flatten() {
                                fields(f, &format!("{at}/to/{i}/{}", esc(s)), out);
                            }
                        }
                    }
                    _ => {}
                }
            }
            kind if effects::kind(kind).is_some() => fields(val, &at, out),
            _ => {}
        }
    }
}

fn targets(doc: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    for (i, r) in doc["forbidden"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        condition(&r["when"], &format!("/forbidden/{i}/when"), &mut out);
    }
    for (i, t) in doc["threats"].as_array().into_iter().flatten().enumerate() {
        for (j, c) in t["success"].as_array().into_iter().flatten().enumerate() {
            condition(c, &format!("/threats/{i}/success/{j}"), &mut out);
        }
    }
    for (j, c) in doc["task"]["success"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ptr = format!("/task/success/{j}");
        match c.as_object() {
            Some(m) if m.len() == 1 && effects::check(m.keys().next().unwrap()).is_some() => {
                let (k, f) = m.iter().next().unwrap();
                fields(f, &format!("{ptr}/{k}"), &mut out);
            }
            _ => condition(c, &ptr, &mut out),
        }
    }
    out
}

/// Every string value of a `sensitivity` key anywhere: the declared labels
/// (a typo that lands on one of them is not a typo).
fn all_labels(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "sensitivity"
                    && let Some(s) = x.as_str()
                {
                    out.push(s.to_string());
                }
                all_labels(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| all_labels(x, out)),
        _ => {}
    }
}

/// One random edit: insert, delete, substitute or swap.
fn misspell(s: &str, op: u8, pos: usize, c: char) -> String {
    let mut v: Vec<char> = s.chars().collect();
    let i = pos % (v.len() + 1);
    match op % 4 {
        0 => v.insert(i, c),
        1 if !v.is_empty() => {
            let last = v.len() - 1;
            v.remove(i.min(last));
        }
        2 if !v.is_empty() => {
            let last = v.len() - 1;
            v[i.min(last)] = c;
        }
        _ if v.len() >= 2 => {
            let j = i.min(v.len() - 2);
            v.swap(j, j + 1);
        }
        _ => v.push(c),
    }
    v.into_iter().collect()
}

fn examples() -> &'static [(PathBuf, Value)] {
    static EXAMPLES: std::sync::OnceLock<Vec<(PathBuf, Value)>> = std::sync::OnceLock::new();
    EXAMPLES.get_or_init(|| {
        assay_spec::spec_files(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")])
            .unwrap()
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let v = yaml::parse_value(&text).unwrap();
                (p, v)
            })
            .collect()
    })
}

#[test]
fn every_example_has_targets_and_reemits_valid() {
    for (p, v) in examples() {
        assert!(!targets(v).is_empty(), "{}", p.display());
        let text = yaml::emit(v);
        assert!(
            assay_spec::load_str(&text, p).is_ok(),
            "{} does not survive re-emission",
            p.display()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn one_misspelt_field_or_label_fails_validation(
        which in any::<prop::sample::Index>(),
        target in any::<prop::sample::Index>(),
        op in 0u8..4,
        pos in 0usize..64,
        c in prop::char::ranges(vec!['a'..='z', 'A'..='Z', '_'..='_'].into()),
    ) {
        let all = examples();
        let (path, doc) = which.get(all);
        let ts = targets(doc);
        let t = target.get(&ts).clone();
        let mut declared = Vec::new();
        all_labels(doc, &mut declared);
        let mut doc = doc.clone();
        match &t {
            Target::Key { map, key } => {
                let new = misspell(key, op, pos, c);
                let m = doc.pointer_mut(map).and_then(Value::as_object_mut).unwrap();
                prop_assume!(new != *key && !m.contains_key(&new));
                let v = m.remove(key).unwrap();
                m.insert(new, v);
            }
            Target::Label { at } => {
                let slot = doc.pointer_mut(at).unwrap();
                let old = slot.as_str().unwrap().to_string();
                let new = misspell(&old, op, pos, c);
                prop_assume!(!declared.contains(&new));
                *slot = Value::String(new);
            }
        }
        let text = yaml::emit(&doc);
        prop_assert!(
            assay_spec::load_str(&text, path).is_err(),
            "{}: {:?} misspelt still validates:\n{}",
            path.display(),
            t,
            text
        );
    }
}
