//! Validation of stateful custom tools (`world.tools[].state`) and of record
//! tables: unknown tables and columns, bindings named before they exist,
//! preconditions without a test. Each problem comes with its YAML pointer and
//! a fix.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::{CustomTool, Spec, StateOp, UpdateOp};
use crate::suggest::did_you_mean;
use crate::yaml::escape;

/// A problem: pointer, message, hint.
pub(crate) type Problem = (String, String, Option<String>);

/// Names a binding may not take: they are placeholder kinds already.
const RESERVED: &[&str] = &["args", "secret", "slot", "result", "read"];

/// Conversions a state template may name after `|` (`{{args.day|date}}`).
pub(crate) const FILTERS: &[&str] = &["datetime", "date"];

/// Keys of a `where` column matcher.
const MATCHERS: &[&str] = &["equals", "in", "contains", "prefix", "ignore_case"];

/// Every `|filter` of the placeholders in a text.
fn filters_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("{{").map(|i| i + from) {
        let Some(end) = text[start + 2..].find("}}").map(|i| i + start + 2) else {
            break;
        };
        if let Some((_, f)) = text[start + 2..end].split_once('|') {
            out.push(f.trim().to_string());
        }
        from = end + 2;
    }
    out
}

/// Columns a `where` names (inside `any` alternatives too), each with its
/// pointer, and problems of its matchers.
fn where_columns(
    filter: &BTreeMap<String, Value>,
    ptr: &str,
    cols: &mut Vec<(String, String)>,
    out: &mut Vec<Problem>,
) {
    for (c, v) in filter {
        let at = format!("{ptr}/{}", escape(c));
        if c == "any" {
            let alts = v.as_array().filter(|a| a.iter().all(Value::is_object));
            let Some(alts) = alts else {
                out.push((
                    at,
                    "`any` takes a list of `where` maps (a row matches when one of them does)"
                        .into(),
                    Some("write `any: [ { COL: VALUE }, { COL: { contains: TEXT } } ]`".into()),
                ));
                continue;
            };
            for (i, a) in alts.iter().enumerate() {
                let m: BTreeMap<String, Value> = a
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                where_columns(&m, &format!("{at}/{i}"), cols, out);
            }
            continue;
        }
        if let Value::Object(m) = v {
            for k in m.keys() {
                if !MATCHERS.contains(&k.as_str()) {
                    let hint = did_you_mean(k, MATCHERS.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .or(Some(format!("matchers: {}", MATCHERS.join(", "))));
                    out.push((
                        format!("{at}/{}", escape(k)),
                        format!("unknown `where` matcher `{k}`"),
                        hint,
                    ));
                }
            }
            if !m
                .keys()
                .any(|k| k != "ignore_case" && MATCHERS.contains(&k.as_str()))
            {
                out.push((
                    at.clone(),
                    format!("the matcher of column `{c}` has no test"),
                    Some("add one of: equals, in, contains, prefix".into()),
                ));
            }
            if m.get("ignore_case").is_some_and(|b| !b.is_boolean()) {
                out.push((
                    format!("{at}/ignore_case"),
                    "`ignore_case` is true or false".into(),
                    None,
                ));
            }
        }
        cols.push((c.clone(), at));
    }
}

/// Every `{{HEAD...}}` with a bare or dotted head (not `kind:name`), as
/// (head, rest after the first dot).
pub(crate) fn bound_refs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("{{").map(|i| i + from) {
        let Some(end) = text[start + 2..].find("}}").map(|i| i + start + 2) else {
            break;
        };
        let inner = text[start + 2..end].trim();
        let inner = inner.split_once('|').map_or(inner, |(i, _)| i.trim());
        if !inner.contains(':') {
            let (h, rest) = inner.split_once('.').unwrap_or((inner, ""));
            if !h.is_empty() {
                out.push((h.to_string(), rest.to_string()));
            }
        }
        from = end + 2;
    }
    out
}

/// Every string inside a JSON value (templates), with its pointer suffix.
fn strings(v: &Value, ptr: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((ptr.to_string(), s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings(x, &format!("{ptr}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                strings(x, &format!("{ptr}/{}", escape(k)), out);
            }
        }
        _ => {}
    }
}

/// Every template text of one operation, with its pointer (below the op).
pub(crate) fn op_texts(op: &StateOp) -> Vec<(String, String)> {
    let v = serde_json::to_value(op).unwrap_or(Value::Null);
    let mut out = Vec::new();
    if let Value::Object(m) = &v {
        for (k, inner) in m {
            if let Value::Object(fields) = inner {
                for (f, x) in fields {
                    if matches!(f.as_str(), "table" | "as" | "order_by" | "select") {
                        continue;
                    }
                    strings(x, &format!("/{k}/{}", escape(f)), &mut out);
                    // Keys of a `merge` map are templates too.
                    if f == "merge"
                        && let Value::Object(cols) = x
                    {
                        for (c, entries) in cols {
                            if let Value::Object(entries) = entries {
                                for key in entries.keys() {
                                    out.push((
                                        format!("/{k}/merge/{}/{}", escape(c), escape(key)),
                                        key.clone(),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Columns a table is known to have: those of its rows, its key, and those
/// the spec's tools write. `None` when the table declares no rows and no
/// tool writes it (then any column is accepted).
pub(crate) fn declared_columns(spec: &Spec, table: &str) -> Option<BTreeSet<String>> {
    let t = spec.world.records.get(table)?;
    let written = written_columns(spec, table);
    if t.rows.is_empty() && written.is_empty() {
        return None;
    }
    let mut cols: BTreeSet<String> = t.rows.iter().flat_map(|r| r.keys().cloned()).collect();
    cols.extend(t.key.clone());
    cols.extend(written);
    Some(cols)
}

/// Columns tools add to a table (insert values, update sets): they may be
/// named by checks although no initial row has them.
pub(crate) fn written_columns(spec: &Spec, table: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in &spec.world.tools {
        for op in &t.state {
            match op {
                StateOp::Insert(o) if o.table == table => out.extend(o.values.keys().cloned()),
                StateOp::Update(o) if o.table == table => {
                    out.extend(o.set.keys().cloned());
                    out.extend(o.append.keys().cloned());
                    out.extend(o.merge.keys().cloned());
                }
                _ => {}
            }
        }
    }
    out
}

fn column_problem(spec: &Spec, table: &str, col: &str, at: String, out: &mut Vec<Problem>) {
    let Some(mut cols) = declared_columns(spec, table) else {
        return;
    };
    cols.extend(written_columns(spec, table));
    if cols.contains(col) {
        return;
    }
    let hint = did_you_mean(col, cols.iter().map(String::as_str))
        .map(|s| format!("did you mean `{s}`?"))
        .or(Some(format!(
            "columns of `{table}`: {}",
            cols.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    out.push((at, format!("table `{table}` has no column `{col}`"), hint));
}

/// An `append` or `merge` adds to a list or map a row already has, so its
/// column must come from the rows, an insert or a `set` (not only from other
/// appends and merges: that is a misspelling).
fn extended_column_problem(
    spec: &Spec,
    table: &str,
    col: &str,
    at: String,
    out: &mut Vec<Problem>,
) {
    let Some(t) = spec.world.records.get(table) else {
        return;
    };
    let mut cols: BTreeSet<String> = t.rows.iter().flat_map(|r| r.keys().cloned()).collect();
    cols.extend(t.key.clone());
    for tool in &spec.world.tools {
        for op in &tool.state {
            match op {
                StateOp::Insert(o) if o.table == table => cols.extend(o.values.keys().cloned()),
                StateOp::Update(o) if o.table == table => cols.extend(o.set.keys().cloned()),
                _ => {}
            }
        }
    }
    if cols.is_empty() || cols.contains(col) {
        return;
    }
    let hint = did_you_mean(col, cols.iter().map(String::as_str))
        .map(|s| format!("did you mean `{s}`?"))
        .or(Some(format!(
            "columns of `{table}`: {}",
            cols.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    out.push((at, format!("table `{table}` has no column `{col}`"), hint));
}

fn table_problem(spec: &Spec, table: &str, at: String, out: &mut Vec<Problem>) -> bool {
    if spec.world.records.contains_key(table) {
        return true;
    }
    let hint = did_you_mean(table, spec.world.records.keys().map(String::as_str))
        .map(|s| format!("did you mean `{s}`?"))
        .or(Some(
            "declare the table under `world.records` (with `rows: []` if it starts empty)".into(),
        ));
    out.push((at, format!("unknown record table `{table}`"), hint));
    false
}

/// Problems of one tool's `state` operations and its templates.
pub(crate) fn tool_problems(spec: &Spec, i: usize, t: &CustomTool, out: &mut Vec<Problem>) {
    let base = format!("/world/tools/{i}");
    // Bindings so far: name → table.
    let mut bound: BTreeMap<String, Option<String>> = BTreeMap::new();
    let check_refs = |text: &str,
                      at: &str,
                      bound: &BTreeMap<String, Option<String>>,
                      out: &mut Vec<Problem>| {
        for (head, rest) in bound_refs(text) {
            if head == "args" {
                continue;
            }
            match bound.get(&head) {
                None => {
                    let hint = did_you_mean(&head, bound.keys().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .or(Some(if bound.is_empty() {
                            "bind rows first with `as: NAME` on an earlier find, insert, update or delete".into()
                        } else {
                            format!(
                                "names bound before this point: {}",
                                bound.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                            )
                        }));
                    out.push((
                        at.to_string(),
                        format!(
                            "`{{{{{head}{}}}}}` names no earlier `as`",
                            if rest.is_empty() {
                                String::new()
                            } else {
                                format!(".{rest}")
                            }
                        ),
                        hint,
                    ));
                }
                Some(Some(table)) if !rest.is_empty() => {
                    let col = rest.split('.').next().unwrap_or("");
                    column_problem(spec, table, col, at.to_string(), out);
                }
                _ => {}
            }
        }
    };
    for (j, op) in t.state.iter().enumerate() {
        let ptr = format!("{base}/state/{j}/{}", op.name());
        if let Some(table) = op.table() {
            let known = table_problem(spec, table, format!("{ptr}/table"), out);
            if known {
                let mut cols: Vec<(String, String)> = Vec::new();
                let wptr = format!("{ptr}/where");
                match op {
                    StateOp::Find(o) => {
                        if let Some(f) = &o.filter {
                            where_columns(f, &wptr, &mut cols, out);
                        }
                        if let Some(c) = &o.order_by {
                            cols.push((c.clone(), format!("{ptr}/order_by")));
                        }
                        for (i, c) in o.select.iter().flatten().enumerate() {
                            cols.push((c.clone(), format!("{ptr}/select/{i}")));
                        }
                    }
                    StateOp::Update(o) => {
                        if let Some(f) = &o.filter {
                            where_columns(f, &wptr, &mut cols, out);
                        }
                        for c in o.set.keys() {
                            cols.push((c.clone(), format!("{ptr}/set/{}", escape(c))));
                        }
                        for (field, m) in [("append", &o.append), ("merge", &o.merge)] {
                            for c in m.keys() {
                                extended_column_problem(
                                    spec,
                                    table,
                                    c,
                                    format!("{ptr}/{field}/{}", escape(c)),
                                    out,
                                );
                            }
                        }
                    }
                    StateOp::Delete(o) => where_columns(&o.filter, &wptr, &mut cols, out),
                    StateOp::Insert(_) | StateOp::Require(_) => {}
                }
                for (c, at) in cols {
                    column_problem(spec, table, &c, at, out);
                }
            }
        }
        if let StateOp::Update(o) = op {
            update_problems(o, &ptr, out);
        }
        if let StateOp::Require(r) = op
            && r.matchers().is_empty()
        {
            out.push((
                ptr.clone(),
                "a `require` needs a test besides `value`".into(),
                Some("add one of: equals, contains, not_contains, regex, not_regex, in, not_in, exists, at_least, at_most, greater, less".into()),
            ));
        }
        if let StateOp::Require(r) = op {
            for re in [&r.regex, &r.not_regex].into_iter().flatten() {
                if !re.contains("{{")
                    && let Err(e) = regex::Regex::new(re)
                {
                    let msg = e.to_string();
                    out.push((
                        ptr.clone(),
                        format!(
                            "invalid regex `{re}`: {}",
                            msg.lines().last().unwrap_or("").trim()
                        ),
                        None,
                    ));
                }
            }
        }
        for (suffix, text) in op_texts(op) {
            check_refs(&text, &format!("{ptr}{suffix}"), &bound, out);
            for f in filters_of(&text) {
                if !FILTERS.contains(&f.as_str()) {
                    let hint = did_you_mean(&f, FILTERS.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .or(Some(format!("filters: {}", FILTERS.join(", "))));
                    out.push((
                        format!("{ptr}{suffix}"),
                        format!("unknown template filter `{f}`"),
                        hint,
                    ));
                }
            }
        }
        if let Some(name) = op.bind() {
            if RESERVED.contains(&name)
                || name.is_empty()
                || name.contains(['.', ':', '{', '}', ' '])
            {
                out.push((
                    format!("{ptr}/as"),
                    format!("`{name}` cannot name rows"),
                    Some(format!(
                        "use a plain name (letters, digits, `_`), not one of: {}",
                        RESERVED.join(", ")
                    )),
                ));
            }
            bound.insert(name.to_string(), op.table().map(str::to_string));
        }
    }
    if !t.state.is_empty() {
        check_refs(&t.response, &format!("{base}/response"), &bound, out);
        for (j, e) in t.effects.iter().enumerate() {
            for (k, fields) in e {
                for (f, v) in fields {
                    check_refs(
                        v,
                        &format!("{base}/effects/{j}/{}/{}", escape(k), escape(f)),
                        &bound,
                        out,
                    );
                }
            }
        }
    }
}

/// Problems of an `update`'s changes: none at all, a column changed two
/// ways at once, a `merge` that is no map of keys.
fn update_problems(o: &UpdateOp, ptr: &str, out: &mut Vec<Problem>) {
    if o.set.is_empty() && o.append.is_empty() && o.merge.is_empty() {
        out.push((
            ptr.to_string(),
            "an `update` changes nothing".into(),
            Some("give `set: { COL: VALUE }`, `append: { LIST_COL: VALUE }` or `merge: { MAP_COL: { KEY: VALUE } }`".into()),
        ));
    }
    let parts = [("set", &o.set), ("append", &o.append), ("merge", &o.merge)];
    for (i, (a, ma)) in parts.iter().enumerate() {
        for (b, mb) in &parts[i + 1..] {
            for c in ma.keys().filter(|c| mb.contains_key(*c)) {
                out.push((
                    format!("{ptr}/{b}/{}", escape(c)),
                    format!("column `{c}` is changed by both `{a}` and `{b}`"),
                    Some(
                        "change each column one way in one `update` (use two updates in order)"
                            .into(),
                    ),
                ));
            }
        }
    }
    for (c, v) in &o.merge {
        let whole_template = v.as_str().is_some_and(|s| {
            let s = s.trim();
            s.starts_with("{{") && s.ends_with("}}") && s.matches("{{").count() == 1
        });
        if !v.is_object() && !whole_template {
            out.push((
                format!("{ptr}/merge/{}", escape(c)),
                format!("`merge` of column `{c}` takes a map of keys to values"),
                Some(format!(
                    "write `merge: {{ {c}: {{ \"{{{{args.KEY}}}}\": VALUE }} }}`, or one placeholder that holds a map"
                )),
            ));
        }
    }
}

/// Problems of the record tables: a `key` or `sensitivity_column` that is
/// no column of the rows, duplicate keys.
pub(crate) fn table_problems(spec: &Spec, out: &mut Vec<Problem>) {
    for (name, t) in &spec.world.records {
        let ptr = format!("/world/records/{}", escape(name));
        let cols: BTreeSet<String> = t.rows.iter().flat_map(|r| r.keys().cloned()).collect();
        for (field, col) in [
            ("key", &t.key),
            ("sensitivity_column", &t.sensitivity_column),
        ] {
            let Some(col) = col else { continue };
            if !t.rows.is_empty() && !cols.contains(col) {
                let hint = did_you_mean(col, cols.iter().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"))
                    .or(Some(format!(
                        "columns of `{name}`: {}",
                        cols.iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                out.push((
                    format!("{ptr}/{field}"),
                    format!("table `{name}` has no column `{col}`"),
                    hint,
                ));
            }
        }
        if let Some(k) = &t.key {
            let mut seen: Vec<&Value> = Vec::new();
            for (i, r) in t.rows.iter().enumerate() {
                match r.get(k) {
                    None | Some(Value::Null) => out.push((
                        format!("{ptr}/rows/{i}"),
                        format!("row {i} of `{name}` has no key `{k}`"),
                        Some("every row needs a value in the key column".into()),
                    )),
                    Some(v) if seen.contains(&v) => out.push((
                        format!("{ptr}/rows/{i}/{}", escape(k)),
                        format!("key {v} appears twice in `{name}`"),
                        Some("keys identify rows: make them unique".into()),
                    )),
                    Some(v) => seen.push(v),
                }
            }
        }
    }
}

/// Sensitivity labels rows carry through a table's `sensitivity_column`.
pub(crate) fn row_labels(spec: &Spec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in spec.world.records.values() {
        if let Some(c) = &t.sensitivity_column {
            for r in &t.rows {
                if let Some(Value::String(s)) = r.get(c)
                    && !s.is_empty()
                {
                    out.insert(s.clone());
                }
            }
        }
    }
    out
}

/// Problems of an `unchanged.except` list against the spec: unknown tables.
pub(crate) fn except_problems(spec: &Spec, except: &[String], ptr: &str, out: &mut Vec<Problem>) {
    for (i, e) in except.iter().enumerate() {
        if let Some(rest) = e.strip_prefix("records.") {
            let (table, sel) = rest.split_once('#').unwrap_or((rest, ""));
            if table_problem(spec, table, format!("{ptr}/except/{i}"), out)
                && let Some((col, _)) = sel.split_once('=')
            {
                column_problem(spec, table, col, format!("{ptr}/except/{i}"), out);
            }
        }
    }
}
