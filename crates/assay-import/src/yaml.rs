//! JSON values written as readable YAML (specs are read and edited by people).

use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter, yaml::Hash};

fn convert(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            // Real keeps the text serde_json prints, which reads back exactly.
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(convert).collect()),
        Value::Object(m) => {
            let mut h = Hash::new();
            for (k, v) in m {
                h.insert(Yaml::String(k.clone()), convert(v));
            }
            Yaml::Hash(h)
        }
    }
}

fn emit(y: &Yaml, blocks: bool) -> String {
    let mut out = String::new();
    let mut e = YamlEmitter::new(&mut out);
    e.multiline_strings(blocks);
    e.dump(y).expect("writing YAML into a String cannot fail");
    out.push('\n');
    out
}

/// `v` as a YAML document, keys in the map's order. Multi-line strings are
/// literal blocks when the document reads back as `v` (the emitter's blocks
/// lose some trailing newlines); otherwise every string is quoted.
pub fn to_yaml(v: &Value) -> String {
    let y = convert(v);
    let readable = emit(&y, true);
    if assay_spec::yaml::parse_value(&readable).is_ok_and(|back| back == *v) {
        readable
    } else {
        emit(&y, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_strings_read_back_unchanged() {
        let v = serde_json::json!({
            "a": "line one\nline two\n",
            "b": "tabs\there\t\t98.70",
            "c": "{{slot:x}}",
            "d": "yes",
            "e": "  leading space",
            "f": 1.5,
            "g": [1, "2", null, true],
            "h": "trailing newlines\n\n",
        });
        let text = to_yaml(&v);
        let back = assay_spec::yaml::parse_value(&text).expect("emitted YAML parses");
        assert_eq!(back, v, "{text}");
    }

    #[test]
    fn multi_line_text_is_a_literal_block_when_it_reads_back() {
        let v = serde_json::json!({"a": "line one\nline two\n", "b": "x"});
        let text = to_yaml(&v);
        assert!(text.contains("a: |"), "{text}");
        assert_eq!(assay_spec::yaml::parse_value(&text).unwrap(), v);
    }
}
