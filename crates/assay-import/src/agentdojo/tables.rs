//! AgentDojo's environment as record tables, and its state-diff paths as
//! rows of those tables.
//!
//! Which collection becomes which table is declared per suite (the suite
//! maps under `suites/`): JSON alone cannot tell a struct from a dict keyed by
//! id, and a guess would silently mis-model a benchmark.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// How one collection of the environment is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A struct: one row of its fields (collections other tables cover are left out).
    Object,
    /// A list: one row per item (a scalar item goes in the `value` column).
    List,
    /// A dict: one row per entry, the entry's key in the `key` column.
    Map,
    /// A dict of lists: one row per list item, the dict key in the `key` column.
    MapOfLists,
}

/// Where a table comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TableMap {
    /// Path of the collection in the environment.
    pub path: Vec<String>,
    pub kind: Kind,
    /// Column holding the identity: the row id (lists) or the dict key (maps).
    #[serde(default)]
    pub key: Option<String>,
    /// Column holding scalar items or scalar dict values.
    #[serde(default)]
    pub value: Option<String>,
    /// Sensitivity label of the table's content.
    #[serde(default)]
    pub sensitivity: Option<String>,
}

/// A place in the final state a diff item points at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Loc {
    pub table: String,
    /// Which row: its identity column and value, or None for the only row of
    /// an object table, or for a list row without an id.
    pub ident: Option<(String, Value)>,
    /// The n-th row (among rows with the same dict key, for dicts of lists).
    pub index: Option<usize>,
    /// The column changed, or None for a whole row.
    pub field: Option<String>,
}

fn at<'a>(env: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(env, |v, k| v.get(k))
}

fn seg_eq(seg: &Value, name: &str) -> bool {
    match seg {
        Value::String(s) => s == name,
        Value::Number(n) => n.to_string() == name,
        _ => false,
    }
}

/// The tables of an environment, name → `{key?, sensitivity?, rows}` as a
/// spec's `world.records` holds them, and the parts of the environment no
/// table covers.
pub(crate) fn flatten(
    env: &Value,
    tables: &BTreeMap<String, TableMap>,
) -> Result<(Map<String, Value>, Vec<String>), String> {
    let mut out = Map::new();
    for (name, t) in tables {
        let v = at(env, &t.path).ok_or_else(|| {
            format!(
                "table `{name}`: no `{}` in the environment",
                t.path.join(".")
            )
        })?;
        let rows = rows(name, t, v, tables)?;
        let mut table = Map::new();
        // A spec's table key is unique per row: a list's id column or a
        // dict's key, not the dict key of a dict of lists.
        if let (Some(k), Kind::List | Kind::Map) = (&t.key, t.kind) {
            table.insert("key".into(), Value::String(k.clone()));
        }
        if let Some(s) = &t.sensitivity {
            table.insert("sensitivity".into(), Value::String(s.clone()));
        }
        table.insert(
            "rows".into(),
            Value::Array(rows.into_iter().map(Value::Object).collect()),
        );
        out.insert(name.clone(), Value::Object(table));
    }
    let mut uncovered = Vec::new();
    walk_uncovered(env, &mut Vec::new(), tables, &mut uncovered);
    Ok((out, uncovered))
}

/// Paths of the environment that hold data no table carries.
fn walk_uncovered(
    v: &Value,
    path: &mut Vec<String>,
    tables: &BTreeMap<String, TableMap>,
    out: &mut Vec<String>,
) {
    if tables
        .values()
        .any(|t| t.kind != Kind::Object && t.path == *path)
    {
        return;
    }
    let object_table = tables
        .values()
        .any(|t| t.kind == Kind::Object && t.path == *path);
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(k.clone());
                let below = tables.values().any(|t| t.path.starts_with(path));
                if below {
                    walk_uncovered(child, path, tables, out);
                } else if !object_table {
                    out.push(path.join("."));
                }
                path.pop();
            }
        }
        _ if object_table => {}
        _ => out.push(path.join(".")),
    }
}

fn rows(
    name: &str,
    t: &TableMap,
    v: &Value,
    tables: &BTreeMap<String, TableMap>,
) -> Result<Vec<Map<String, Value>>, String> {
    let value_col = || t.value.clone().unwrap_or_else(|| "value".into());
    let key_col = || t.key.clone().unwrap_or_else(|| "key".into());
    let item = |prefix: Option<(&str, &str)>, item: &Value| -> Map<String, Value> {
        let mut row = Map::new();
        if let Some((col, key)) = prefix {
            row.insert(col.to_string(), Value::String(key.to_string()));
        }
        match item {
            Value::Object(m) => row.extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
            other => {
                row.insert(value_col(), other.clone());
            }
        }
        row
    };
    match (t.kind, v) {
        (Kind::Object, Value::Object(m)) => {
            let mut row = Map::new();
            for (k, v) in m {
                let mut p = t.path.clone();
                p.push(k.clone());
                if tables.values().any(|o| o.path.starts_with(&p)) {
                    continue;
                }
                row.insert(k.clone(), v.clone());
            }
            Ok(vec![row])
        }
        (Kind::List, Value::Array(a)) => Ok(a.iter().map(|x| item(None, x)).collect()),
        (Kind::Map, Value::Object(m)) => {
            let col = key_col();
            Ok(m.iter().map(|(k, x)| item(Some((&col, k)), x)).collect())
        }
        (Kind::MapOfLists, Value::Object(m)) => {
            let col = key_col();
            let mut out = Vec::new();
            for (k, list) in m {
                let Value::Array(a) = list else {
                    return Err(format!("table `{name}`: `{k}` holds no list"));
                };
                out.extend(a.iter().map(|x| item(Some((&col, k)), x)));
            }
            Ok(out)
        }
        (kind, other) => Err(format!(
            "table `{name}`: `{}` is not {} (found {})",
            t.path.join("."),
            match kind {
                Kind::Object | Kind::Map | Kind::MapOfLists => "a map",
                Kind::List => "a list",
            },
            assay_spec::condition::kind_of(other)
        )),
    }
}

/// The table row and column a state-diff path points at, read against the
/// environment before the change (where ids of existing rows are found).
pub(crate) fn locate(
    path: &[Value],
    before: &Value,
    tables: &BTreeMap<String, TableMap>,
) -> Option<Loc> {
    let (name, t) = tables
        .iter()
        .filter(|(_, t)| {
            t.path.len() <= path.len() && t.path.iter().zip(path).all(|(n, s)| seg_eq(s, n))
        })
        .max_by_key(|(_, t)| t.path.len())?;
    let rest = &path[t.path.len()..];
    let coll = at(before, &t.path);
    let field = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let ident_of = |row: Option<&Value>| -> Option<(String, Value)> {
        let k = t.key.as_ref()?;
        row?.get(k).map(|v| (k.clone(), v.clone()))
    };
    let loc = match t.kind {
        Kind::Object => Loc {
            table: name.clone(),
            ident: None,
            index: None,
            field: Some(field(rest.first())?),
        },
        Kind::List => {
            let i = rest.first()?.as_u64()? as usize;
            Loc {
                table: name.clone(),
                ident: ident_of(coll.and_then(|c| c.get(i))),
                index: Some(i),
                field: field(rest.get(1)),
            }
        }
        Kind::Map => {
            let k = rest.first()?.as_str()?;
            let col = t.key.clone().unwrap_or_else(|| "key".into());
            let value_field = rest
                .get(1)
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    // A dict of scalars: the change is to the value column.
                    coll.and_then(|c| c.get(k))
                        .filter(|v| !v.is_object())
                        .map(|_| t.value.clone().unwrap_or_else(|| "value".into()))
                });
            Loc {
                table: name.clone(),
                ident: Some((col, Value::String(k.to_string()))),
                index: None,
                field: value_field,
            }
        }
        Kind::MapOfLists => {
            let k = rest.first()?.as_str()?;
            // A new dict key carries its whole list: rows, not one row.
            let i = match rest.get(1) {
                Some(i) => Some(i.as_u64()? as usize),
                None => None,
            };
            let col = t.key.clone().unwrap_or_else(|| "key".into());
            Loc {
                table: name.clone(),
                ident: Some((col, Value::String(k.to_string()))),
                index: i,
                field: field(rest.get(2)),
            }
        }
    };
    Some(loc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn banking() -> BTreeMap<String, TableMap> {
        let y = r#"
bank_account: { path: [bank_account], kind: object }
transactions: { path: [bank_account, transactions], kind: list, key: id }
files: { path: [filesystem, files], kind: map, key: name, value: content }
inbox: { path: [slack, channel_inbox], kind: map_of_lists, key: channel }
"#;
        serde_json::from_value(assay_spec::yaml::parse_value(y).unwrap()).unwrap()
    }

    fn env() -> Value {
        json!({
            "bank_account": {"balance": 10.0, "iban": "DE1", "transactions": [{"id": 4, "amount": 1.0}]},
            "filesystem": {"files": {"a.txt": "hello"}},
            "slack": {"channel_inbox": {"general": [{"sender": "bob", "body": "hi"}]}, "users": ["bob"]},
            "extra": 1
        })
    }

    #[test]
    fn collections_become_tables_and_the_rest_is_named() {
        let (t, uncovered) = flatten(&env(), &banking()).unwrap();
        assert_eq!(
            t["bank_account"]["rows"],
            json!([{"balance": 10.0, "iban": "DE1"}])
        );
        assert_eq!(t["transactions"]["key"], "id");
        assert_eq!(
            t["files"]["rows"],
            json!([{"name": "a.txt", "content": "hello"}])
        );
        assert_eq!(
            t["inbox"]["rows"],
            json!([{"channel": "general", "sender": "bob", "body": "hi"}])
        );
        assert_eq!(uncovered, vec!["slack.users", "extra"]);
    }

    #[test]
    fn diff_paths_point_at_rows_and_columns() {
        let t = banking();
        let e = env();
        let l = locate(
            &[
                json!("bank_account"),
                json!("transactions"),
                json!(0),
                json!("amount"),
            ],
            &e,
            &t,
        )
        .unwrap();
        assert_eq!(l.table, "transactions");
        assert_eq!(l.ident, Some(("id".into(), json!(4))));
        assert_eq!(l.field.as_deref(), Some("amount"));
        let l = locate(&[json!("bank_account"), json!("balance")], &e, &t).unwrap();
        assert_eq!(
            (l.table.as_str(), l.field.as_deref()),
            ("bank_account", Some("balance"))
        );
        let l = locate(
            &[json!("filesystem"), json!("files"), json!("a.txt")],
            &e,
            &t,
        )
        .unwrap();
        assert_eq!(l.ident, Some(("name".into(), json!("a.txt"))));
        assert_eq!(l.field.as_deref(), Some("content"));
        let l = locate(
            &[
                json!("slack"),
                json!("channel_inbox"),
                json!("general"),
                json!(1),
            ],
            &e,
            &t,
        )
        .unwrap();
        assert_eq!((l.index, l.field.clone()), (Some(1), None));
        assert!(locate(&[json!("slack"), json!("users"), json!(0)], &e, &t).is_none());
    }
}
