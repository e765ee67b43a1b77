//! Stateful custom tools: the `state:` operations of `world.tools[]` run
//! against the record tables, all or nothing, with one effect per row touched.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use assay_spec::{RequireOp, StateOp};
use assay_trace::{Effect, EffectKind};
use serde_json::{Map, Value};

use crate::World;
use crate::ops::effect;

type Row = BTreeMap<String, Value>;

/// Rows an operation bound with `as`, by name.
pub(crate) type Binds = BTreeMap<String, Vec<Row>>;

/// What templates of one call can refer to.
pub(crate) struct Env<'a> {
    pub secrets: &'a BTreeMap<String, String>,
    pub slots: &'a [(String, String)],
    pub args: &'a Value,
    pub binds: &'a Binds,
}

/// One `{{...}}` of a state template.
enum Ref<'a> {
    Secret(&'a str),
    Slot(&'a str),
    Arg(&'a str),
    Bound(&'a str, &'a str),
}

/// A conversion after a placeholder (`{{args.start|datetime}}`): tools
/// store dates in one form whatever form the caller wrote them in.
#[derive(Clone, Copy)]
enum Filter {
    /// `YYYY-MM-DD[ T]HH:MM[:SS]` or `YYYY-MM-DD` → `YYYY-MM-DDTHH:MM:SS`.
    Datetime,
    /// A date or date-time → `YYYY-MM-DD`.
    Date,
}

fn filter_named(name: &str) -> Option<Filter> {
    match name.trim() {
        "datetime" => Some(Filter::Datetime),
        "date" => Some(Filter::Date),
        _ => None,
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn is_time(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_digit()))
}

/// Applies a filter; text it cannot read is left as it is.
fn apply(filter: Filter, v: Value) -> Value {
    let Value::String(s) = &v else { return v };
    let t = s.trim();
    let (date, time) = match t.split_once(['T', ' ']) {
        Some((d, tm)) => (d, Some(tm)),
        None => (t, None),
    };
    if !is_date(date) || time.is_some_and(|tm| !is_time(tm)) {
        return v;
    }
    match filter {
        Filter::Date => Value::String(date.to_string()),
        Filter::Datetime => {
            let tm = match time {
                None => "00:00:00".to_string(),
                Some(tm) if tm.len() == 5 => format!("{tm}:00"),
                Some(tm) => tm.to_string(),
            };
            Value::String(format!("{date}T{tm}"))
        }
    }
}

/// Placeholders of a state template with their byte ranges. Unlike the
/// general scanner this one also sees `{{NAME}}` (no separator).
fn refs(text: &str) -> Vec<(std::ops::Range<usize>, Ref<'_>, Option<Filter>)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("{{").map(|i| i + from) {
        let Some(end) = text[start + 2..].find("}}").map(|i| i + start + 2) else {
            break;
        };
        let inner = text[start + 2..end].trim();
        let (inner, filter) = match inner.split_once('|') {
            Some((i, f)) => (i.trim(), filter_named(f)),
            None => (inner, None),
        };
        let r = if let Some((k, n)) = inner.split_once(':') {
            match k.trim() {
                "secret" => Some(Ref::Secret(n.trim())),
                "slot" => Some(Ref::Slot(n.trim())),
                _ => None,
            }
        } else {
            let (head, path) = inner.split_once('.').unwrap_or((inner, ""));
            if head == "args" {
                Some(Ref::Arg(path))
            } else if !head.is_empty()
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                Some(Ref::Bound(head, path))
            } else {
                None
            }
        };
        if let Some(r) = r {
            out.push((start..end + 2, r, filter));
        }
        from = end + 2;
    }
    out
}

/// Every `{{NAME...}}` binding reference in a text (for validation and for
/// registering secrets at compile time).
pub(crate) fn secret_and_slot_names(text: &str) -> (Vec<String>, Vec<String>) {
    let mut secrets = Vec::new();
    let mut slots = Vec::new();
    for (_, r, _) in refs(text) {
        match r {
            Ref::Secret(n) => secrets.push(n.to_string()),
            Ref::Slot(n) => slots.push(n.to_string()),
            _ => {}
        }
    }
    (secrets, slots)
}

fn walk<'v>(mut v: Option<&'v Value>, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return v;
    }
    for k in path.split('.') {
        v = v.and_then(|v| match v {
            Value::Object(m) => m.get(k),
            Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        });
    }
    v
}

fn rows_value(rows: &[Row]) -> Value {
    let obj = |r: &Row| Value::Object(r.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    match rows {
        [one] => obj(one),
        many => Value::Array(many.iter().map(obj).collect()),
    }
}

impl Env<'_> {
    /// The value a placeholder refers to; `None` when it refers to nothing
    /// (an argument not passed, a column of no row).
    fn resolve(&self, r: &Ref<'_>, filter: Option<Filter>) -> Option<Value> {
        let v = self.resolve_raw(r)?;
        Some(match filter {
            Some(f) => apply(f, v),
            None => v,
        })
    }

    fn resolve_raw(&self, r: &Ref<'_>) -> Option<Value> {
        match r {
            Ref::Secret(n) => self.secrets.get(*n).map(|s| Value::String(s.clone())),
            Ref::Slot(n) => Some(Value::String(
                self.slots
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            )),
            Ref::Arg(path) => walk(Some(self.args), path)
                .filter(|v| !v.is_null())
                .cloned(),
            Ref::Bound(name, path) => {
                let rows = self.binds.get(*name)?;
                if path.is_empty() {
                    return Some(rows_value(rows));
                }
                let (col, rest) = path.split_once('.').unwrap_or((path, ""));
                walk(rows.first()?.get(col), rest).cloned()
            }
        }
    }

    /// Renders a template to text: values that are not text appear as JSON,
    /// placeholders referring to nothing as "".
    pub fn text(&self, t: &str) -> String {
        let mut out = String::with_capacity(t.len());
        let mut last = 0;
        for (span, r, f) in refs(t) {
            out.push_str(&t[last..span.start]);
            match self.resolve(&r, f) {
                Some(Value::String(s)) => out.push_str(&s),
                Some(v) => out.push_str(&v.to_string()),
                None => {}
            }
            last = span.end;
        }
        out.push_str(&t[last..]);
        out
    }

    /// Renders a template value. A string that is exactly one placeholder
    /// keeps the type of what it refers to; `None` when that is nothing
    /// (the entry is skipped). Lists and maps render element by element.
    pub fn value(&self, v: &Value) -> Option<Value> {
        match v {
            Value::String(s) => {
                let rs = refs(s);
                if let [(span, r, f)] = rs.as_slice()
                    && span.start == 0
                    && span.end == s.len()
                {
                    return self.resolve(r, *f);
                }
                Some(Value::String(self.text(s)))
            }
            Value::Array(a) => Some(Value::Array(
                a.iter()
                    .map(|x| self.value(x).unwrap_or(Value::Null))
                    .collect(),
            )),
            Value::Object(m) => Some(Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.value(x).unwrap_or(Value::Null)))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }
}

/// Number of a value: a JSON number, or text that reads as one.
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

/// Equality of `where` and `require`: equal JSON, or equal numbers whatever
/// their form (`5`, `5.0`, `"5"`), or a boolean and its text. Models often
/// send ids as text although the data holds numbers.
pub(crate) fn state_eq(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => {
            matches!((num(a), num(b)), (Some(x), Some(y)) if x == y)
        }
        (Value::Bool(x), Value::String(s)) | (Value::String(s), Value::Bool(x)) => {
            s == if *x { "true" } else { "false" }
        }
        _ => false,
    }
}

fn order(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => match (num(x), num(y)) {
            (Some(p), Some(q)) if x.is_number() && y.is_number() => {
                p.partial_cmp(&q).unwrap_or(Ordering::Equal)
            }
            _ => match (x, y) {
                (Value::String(p), Value::String(q)) => p.cmp(q),
                _ => x.to_string().cmp(&y.to_string()),
            },
        },
    }
}

fn compact(v: &Value) -> String {
    v.to_string()
}

fn row_obj(r: &Row) -> Value {
    Value::Object(r.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Per-table facts the operations need.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableMeta {
    pub key: Option<String>,
    pub label: Option<std::sync::Arc<str>>,
    pub sensitivity_column: Option<String>,
}

impl World {
    /// Runs a stateful tool's operations; on failure every change is undone
    /// and the error is returned.
    pub(crate) fn run_state(
        &mut self,
        tool: &str,
        ops: &[StateOp],
        args: &Value,
        binds: &mut Binds,
        fx: &mut Vec<Effect>,
    ) -> Result<(), String> {
        let saved = self.records.clone();
        let mut local = Vec::new();
        for op in ops {
            if let Err(e) = self.run_op(tool, op, args, binds, &mut local) {
                self.records = saved;
                return Err(e);
            }
        }
        fx.extend(local);
        Ok(())
    }

    fn env<'a>(&'a self, args: &'a Value, binds: &'a Binds) -> Env<'a> {
        Env {
            secrets: &self.secrets,
            slots: &self.slot_pairs,
            args,
            binds,
        }
    }

    fn matching(&self, table: &str, filter: Option<&Map<String, Value>>) -> Vec<usize> {
        let Some(rows) = self.records.get(table) else {
            return Vec::new();
        };
        rows.iter()
            .enumerate()
            .filter(|(_, r)| filter.is_none_or(|f| row_matches(r, f)))
            .map(|(i, _)| i)
            .collect()
    }

    fn rendered_map(
        &self,
        m: &BTreeMap<String, Value>,
        args: &Value,
        binds: &Binds,
    ) -> Map<String, Value> {
        let env = self.env(args, binds);
        m.iter()
            .filter_map(|(k, v)| env.value(v).map(|v| (k.clone(), v)))
            .collect()
    }

    /// Renders an update's `merge`: column → map of rendered keys and
    /// values. Entries whose value refers to nothing are skipped; a key that
    /// renders empty or a value that is no map fails the call.
    fn rendered_merge(
        &self,
        m: &BTreeMap<String, Value>,
        args: &Value,
        binds: &Binds,
    ) -> Result<BTreeMap<String, Map<String, Value>>, String> {
        let env = self.env(args, binds);
        let mut out = BTreeMap::new();
        for (col, v) in m {
            let entries = match v {
                Value::Object(entries) => {
                    let mut r = Map::new();
                    for (k, x) in entries {
                        let key = env.text(k);
                        if key.is_empty() {
                            return Err(format!(
                                "merge into {col}: the key `{k}` renders to nothing"
                            ));
                        }
                        if let Some(x) = env.value(x) {
                            r.insert(key, x);
                        }
                    }
                    r
                }
                other => match env.value(other) {
                    None => continue,
                    Some(Value::Object(r)) => r,
                    Some(x) => {
                        return Err(format!("merge into {col} needs a map, got {}", compact(&x)));
                    }
                },
            };
            out.insert(col.clone(), entries);
        }
        Ok(out)
    }

    fn no_match(
        &self,
        table: &str,
        filter: Option<&Map<String, Value>>,
        error: Option<&String>,
        args: &Value,
        binds: &Binds,
    ) -> String {
        match error {
            Some(e) => self.env(args, binds).text(e),
            None => match filter {
                Some(f) => format!(
                    "no row of {table} matches {}",
                    compact(&Value::Object(f.clone()))
                ),
                None => format!("table {table} has no rows"),
            },
        }
    }

    fn meta(&self, table: &str) -> TableMeta {
        self.tpl.table_meta.get(table).cloned().unwrap_or_default()
    }

    fn table_exists(&self, table: &str) -> Result<(), String> {
        if self.records.contains_key(table) {
            Ok(())
        } else {
            Err(format!("no table `{table}`"))
        }
    }

    fn run_op(
        &mut self,
        tool: &str,
        op: &StateOp,
        args: &Value,
        binds: &mut Binds,
        fx: &mut Vec<Effect>,
    ) -> Result<(), String> {
        match op {
            StateOp::Find(o) => {
                self.table_exists(&o.table)?;
                let filter = o.filter.as_ref().map(|f| self.rendered_map(f, args, binds));
                let mut rows: Vec<Row> = self
                    .matching(&o.table, filter.as_ref())
                    .into_iter()
                    .map(|i| self.records[&o.table][i].clone())
                    .collect();
                if let Some(col) = &o.order_by {
                    rows.sort_by(|a, b| order(a.get(col), b.get(col)));
                    if o.desc {
                        rows.reverse();
                    }
                }
                // A limit that refers to nothing (an optional argument the
                // call did not pass) cuts nothing.
                if let Some(l) = &o.limit
                    && let Some(v) = self.env(args, binds).value(l)
                {
                    let v = Some(v);
                    let n = v
                        .as_ref()
                        .and_then(num)
                        .filter(|n| *n >= 0.0 && n.fract() == 0.0)
                        .ok_or_else(|| {
                            format!(
                                "limit must be a non-negative integer, got {}",
                                v.map_or("nothing".into(), |v| compact(&v))
                            )
                        })?;
                    rows.truncate(n as usize);
                }
                if rows.is_empty() && !o.optional {
                    return Err(self.no_match(
                        &o.table,
                        filter.as_ref(),
                        o.error.as_ref(),
                        args,
                        binds,
                    ));
                }
                if let Some(cols) = &o.select {
                    // The label column stays so reads keep their labels.
                    let keep = |c: &String| {
                        cols.contains(c)
                            || self.meta(&o.table).sensitivity_column.as_ref() == Some(c)
                    };
                    for r in &mut rows {
                        r.retain(|c, _| keep(c));
                    }
                }
                self.read_effects(tool, &o.table, &rows, fx);
                if let Some(b) = &o.bind {
                    binds.insert(b.clone(), rows);
                }
            }
            StateOp::Insert(o) => {
                self.table_exists(&o.table)?;
                let meta = self.meta(&o.table);
                let mut row: Row = self
                    .rendered_map(&o.values, args, binds)
                    .into_iter()
                    .collect();
                if let Some(k) = &meta.key {
                    let rows = &self.records[&o.table];
                    match row.get(k).filter(|v| !v.is_null()) {
                        None => {
                            row.insert(k.clone(), next_key(rows, k));
                        }
                        Some(v) => {
                            if rows
                                .iter()
                                .any(|r| r.get(k).is_some_and(|x| state_eq(x, v)))
                            {
                                return Err(match &o.error {
                                    Some(e) => self.env(args, binds).text(e),
                                    None => format!(
                                        "a row of {} with {k} = {} already exists",
                                        o.table,
                                        compact(v)
                                    ),
                                });
                            }
                        }
                    }
                }
                let content = compact(&row_obj(&row));
                let mut f = vec![
                    ("source", "records".into()),
                    ("path", o.table.as_str().into()),
                    ("content", content.as_str().into()),
                    ("bytes", content.len().into()),
                    ("append", false.into()),
                    ("created", true.into()),
                    ("rows", 1.into()),
                ];
                if let Some(k) = meta.key.as_ref().and_then(|k| row.get(k)) {
                    f.push(("key", k.clone()));
                }
                f.push(("row", row_obj(&row)));
                fx.push(effect(EffectKind::Write, tool, f));
                if let Some(rows) = self.records.get_mut(&o.table) {
                    rows.push(row.clone());
                }
                if let Some(b) = &o.bind {
                    binds.insert(b.clone(), vec![row]);
                }
            }
            StateOp::Update(o) => {
                self.table_exists(&o.table)?;
                let meta = self.meta(&o.table);
                let filter = o.filter.as_ref().map(|f| self.rendered_map(f, args, binds));
                let set = self.rendered_map(&o.set, args, binds);
                let hit = self.matching(&o.table, filter.as_ref());
                if hit.is_empty() && !o.optional {
                    return Err(self.no_match(
                        &o.table,
                        filter.as_ref(),
                        o.error.as_ref(),
                        args,
                        binds,
                    ));
                }
                let append = self.rendered_map(&o.append, args, binds);
                let merge = self.rendered_merge(&o.merge, args, binds)?;
                // What the call writes, for flow checks: every new value.
                let mut written = set.clone();
                written.extend(append.iter().map(|(k, v)| (k.clone(), v.clone())));
                written.extend(
                    merge
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::Object(v.clone()))),
                );
                let content = compact(&Value::Object(written));
                let mut touched = Vec::new();
                for i in hit {
                    let Some(row) = self.records.get_mut(&o.table).and_then(|r| r.get_mut(i))
                    else {
                        continue;
                    };
                    let before = row.clone();
                    for (k, v) in &set {
                        row.insert(k.clone(), v.clone());
                    }
                    for (k, v) in &append {
                        append_to(row, k, v, &o.table)?;
                    }
                    for (k, m) in &merge {
                        merge_into(row, k, m, &o.table)?;
                    }
                    let after = row.clone();
                    let mut f = vec![
                        ("source", "records".into()),
                        ("path", o.table.as_str().into()),
                        ("content", content.as_str().into()),
                        ("bytes", content.len().into()),
                        ("append", false.into()),
                        ("created", false.into()),
                        ("rows", 1.into()),
                    ];
                    if let Some(w) = &filter {
                        f.push(("where", Value::Object(w.clone())));
                    }
                    if let Some(k) = meta.key.as_ref().and_then(|k| after.get(k)) {
                        f.push(("key", k.clone()));
                    }
                    f.push(("row", row_obj(&after)));
                    f.push(("before", row_obj(&before)));
                    fx.push(effect(EffectKind::Write, tool, f));
                    touched.push(after);
                }
                if let Some(b) = &o.bind {
                    binds.insert(b.clone(), touched);
                }
            }
            StateOp::Delete(o) => {
                self.table_exists(&o.table)?;
                let meta = self.meta(&o.table);
                let filter = self.rendered_map(&o.filter, args, binds);
                let hit = self.matching(&o.table, Some(&filter));
                if hit.is_empty() && !o.optional {
                    return Err(self.no_match(
                        &o.table,
                        Some(&filter),
                        o.error.as_ref(),
                        args,
                        binds,
                    ));
                }
                let mut removed = Vec::new();
                if let Some(rows) = self.records.get_mut(&o.table) {
                    for i in hit.into_iter().rev() {
                        removed.push(rows.remove(i));
                    }
                }
                removed.reverse();
                for row in &removed {
                    let mut f = vec![
                        ("path", Value::from(o.table.as_str())),
                        ("source", "records".into()),
                    ];
                    if let Some(k) = meta.key.as_ref().and_then(|k| row.get(k)) {
                        f.push(("key", k.clone()));
                    }
                    f.push(("row", row_obj(row)));
                    fx.push(effect(EffectKind::Delete, tool, f));
                }
                if let Some(b) = &o.bind {
                    binds.insert(b.clone(), removed);
                }
            }
            StateOp::Require(o) => {
                let env = self.env(args, binds);
                if let Err(why) = require(o, &env) {
                    return Err(match &o.error {
                        Some(e) => env.text(e),
                        None => format!("requirement failed: {why}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The `read` effects of a `find`: one per sensitivity label among the
    /// rows (labelled effects carry the rows as content), or one unlabelled.
    fn read_effects(&self, tool: &str, table: &str, rows: &[Row], fx: &mut Vec<Effect>) {
        let meta = self.meta(table);
        let label_of = |r: &Row| -> Option<String> {
            meta.sensitivity_column
                .as_ref()
                .and_then(|c| r.get(c))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .or_else(|| meta.label.as_deref().map(str::to_string))
        };
        let mut groups: Vec<(Option<String>, Vec<&Row>)> = Vec::new();
        for r in rows {
            let l = label_of(r);
            match groups.iter_mut().find(|(g, _)| *g == l) {
                Some((_, v)) => v.push(r),
                None => groups.push((l, vec![r])),
            }
        }
        if groups.is_empty() {
            groups.push((meta.label.as_deref().map(str::to_string), Vec::new()));
        }
        for (label, rs) in groups {
            let mut content = String::new();
            for r in &rs {
                content.push_str(&compact(&row_obj(r)));
                content.push('\n');
            }
            let mut f = vec![("source", "records".into()), ("path", table.into())];
            if let Some(l) = label {
                f.push(("sensitivity", l.into()));
                f.push(("content", content.as_str().into()));
            }
            f.push(("bytes", content.len().into()));
            f.push(("rows", rs.len().into()));
            fx.push(effect(EffectKind::Read, tool, f));
        }
    }
}

/// Adds a value at the end of a row's list column (each element when the
/// value is a list); a missing or null column starts empty. A column holding
/// anything but a list fails the call.
fn append_to(row: &mut Row, col: &str, v: &Value, table: &str) -> Result<(), String> {
    let cur = row.entry(col.to_string()).or_insert(Value::Null);
    if cur.is_null() {
        *cur = Value::Array(Vec::new());
    }
    let Value::Array(list) = cur else {
        return Err(format!(
            "cannot append to {table}.{col}: it holds {}, not a list",
            compact(cur)
        ));
    };
    match v {
        Value::Array(items) => list.extend(items.iter().cloned()),
        one => list.push(one.clone()),
    }
    Ok(())
}

/// Sets keys inside a row's map column, keeping the others; a missing or
/// null column starts empty. A column holding anything but a map fails the
/// call.
fn merge_into(row: &mut Row, col: &str, m: &Map<String, Value>, table: &str) -> Result<(), String> {
    let cur = row.entry(col.to_string()).or_insert(Value::Null);
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    let Value::Object(map) = cur else {
        return Err(format!(
            "cannot merge into {table}.{col}: it holds {}, not a map",
            compact(cur)
        ));
    };
    for (k, v) in m {
        map.insert(k.clone(), v.clone());
    }
    Ok(())
}

/// The key of a new row: the largest integer key + 1 (or 1). Keys held as
/// text (`"7"`, as AgentDojo's email and event ids are) count by their
/// number, and the new key is text when the existing ones are.
fn next_key(rows: &[Row], k: &str) -> Value {
    let mut text = false;
    let max = rows
        .iter()
        .filter_map(|r| match r.get(k)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => {
                let n = s.trim().parse::<i64>().ok()?;
                text = true;
                Some(n)
            }
            _ => None,
        })
        .max();
    let next = max.map_or(1, |m| m.saturating_add(1));
    if text {
        Value::String(next.to_string())
    } else {
        Value::from(next)
    }
}

/// Text of a value for text matchers (a string as is, others as JSON).
fn as_text(v: &Value, ignore_case: bool) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if ignore_case { s.to_lowercase() } else { s }
}

/// Whether a row satisfies a rendered `where`: every entry holds. An entry
/// is a value (equality, [`state_eq`]), a matcher map, or `any: [where..]`.
pub(crate) fn row_matches(row: &Row, filter: &Map<String, Value>) -> bool {
    filter.iter().all(|(c, v)| match (c.as_str(), v) {
        ("any", Value::Array(alts)) => alts
            .iter()
            .any(|a| a.as_object().is_some_and(|m| row_matches(row, m))),
        (_, Value::Object(m)) => matcher_holds(row.get(c), m),
        (_, v) => row.get(c).is_some_and(|x| state_eq(x, v)),
    })
}

/// One column matcher. Operands that rendered to nothing (null: an
/// argument the call did not pass) are skipped, so optional arguments
/// narrow a search only when given.
fn matcher_holds(x: Option<&Value>, m: &Map<String, Value>) -> bool {
    let ic = m
        .get("ignore_case")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let live = |k: &str| m.get(k).filter(|v| !v.is_null());
    if live("equals").is_none()
        && live("in").is_none()
        && live("contains").is_none()
        && live("prefix").is_none()
    {
        return true;
    }
    let Some(x) = x else { return false };
    let text_eq = |a: &Value, b: &Value| {
        state_eq(a, b)
            || (ic && a.is_string() && b.is_string() && as_text(a, true) == as_text(b, true))
    };
    if let Some(want) = live("equals")
        && !text_eq(x, want)
    {
        return false;
    }
    if let Some(set) = live("in") {
        let hit = match set {
            Value::Array(a) => a.iter().any(|e| text_eq(x, e)),
            other => as_text(other, ic).contains(&as_text(x, ic)),
        };
        if !hit {
            return false;
        }
    }
    if let Some(part) = live("contains") {
        let hit = match x {
            Value::Array(a) => a.iter().any(|e| text_eq(e, part)),
            other => as_text(other, ic).contains(&as_text(part, ic)),
        };
        if !hit {
            return false;
        }
    }
    if let Some(p) = live("prefix")
        && !as_text(x, ic).starts_with(&as_text(p, ic))
    {
        return false;
    }
    true
}

/// A numeric test of `require`: operand, failure text, comparison.
type Bound<'a> = (&'a Option<Value>, &'static str, fn(f64, f64) -> bool);

/// Checks a `require`; the error says what failed.
fn require(o: &RequireOp, env: &Env<'_>) -> Result<(), String> {
    let v = env.value(&o.value);
    let shown = v.as_ref().map_or("nothing".to_string(), compact);
    let operand = |x: &Value| env.value(x);
    let text = |x: &Value| match x {
        Value::String(s) => s.clone(),
        other => compact(other),
    };
    let fail = |what: String| Err(format!("{shown} {what}"));
    if let Some(want) = o.exists
        && v.is_some() != want
    {
        return fail(if want { "is missing" } else { "is present" }.into());
    }
    if let Some(x) = &o.equals {
        let x = operand(x);
        if !matches!((&v, &x), (Some(a), Some(b)) if state_eq(a, b)) {
            return fail(format!(
                "does not equal {}",
                x.map_or("nothing".into(), |x| compact(&x))
            ));
        }
    }
    let contains = |x: &Value| -> bool {
        let Some(needle) = operand(x) else {
            return false;
        };
        match &v {
            Some(Value::Array(a)) => a.iter().any(|e| state_eq(e, &needle)),
            Some(other) => text(other).contains(&text(&needle)),
            None => false,
        }
    };
    if let Some(x) = &o.contains
        && !contains(x)
    {
        return fail(format!("does not contain {}", text(x)));
    }
    if let Some(x) = &o.not_contains
        && (v.is_none() || contains(x))
    {
        return fail(format!("contains {}", text(x)));
    }
    for (re, want) in [(&o.regex, true), (&o.not_regex, false)] {
        if let Some(re) = re {
            let r = regex::Regex::new(re).map_err(|e| format!("invalid regex `{re}`: {e}"))?;
            let hit = v.as_ref().is_some_and(|v| r.is_match(&text(v)));
            if v.is_none() || hit != want {
                return fail(format!(
                    "{} /{re}/",
                    if want { "does not match" } else { "matches" }
                ));
            }
        }
    }
    let member = |l: &Vec<Value>| {
        v.as_ref().is_some_and(|v| {
            l.iter()
                .any(|x| operand(x).is_some_and(|x| state_eq(v, &x)))
        })
    };
    if let Some(l) = &o.one_of
        && !member(l)
    {
        return fail("is not one of the allowed values".into());
    }
    if let Some(l) = &o.not_in
        && (v.is_none() || member(l))
    {
        return fail("is one of the excluded values".into());
    }
    let bounds: [Bound<'_>; 4] = [
        (&o.at_least, "is not at least", |a, b| a >= b),
        (&o.at_most, "is not at most", |a, b| a <= b),
        (&o.greater, "is not greater than", |a, b| a > b),
        (&o.less, "is not less than", |a, b| a < b),
    ];
    for (bound, what, ok) in bounds {
        if let Some(b) = bound {
            let b = operand(b);
            match (v.as_ref().and_then(num), b.as_ref().and_then(num)) {
                (Some(x), Some(y)) if ok(x, y) => {}
                (_, y) => {
                    return fail(format!(
                        "{what} {}",
                        y.map_or_else(
                            || b.map_or("nothing".into(), |b| compact(&b)),
                            |y| y.to_string()
                        )
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_keep_types_and_skip_missing() {
        let secrets = BTreeMap::new();
        let mut binds = Binds::new();
        let row: Row = [("id".to_string(), json!(5)), ("to".to_string(), json!("x"))]
            .into_iter()
            .collect();
        binds.insert("tx".into(), vec![row]);
        let args = json!({"amount": 12.5, "tags": ["a"]});
        let env = Env {
            secrets: &secrets,
            slots: &[],
            args: &args,
            binds: &binds,
        };
        assert_eq!(env.value(&json!("{{args.amount}}")), Some(json!(12.5)));
        assert_eq!(env.value(&json!("{{args.tags}}")), Some(json!(["a"])));
        assert_eq!(env.value(&json!("{{args.missing}}")), None);
        assert_eq!(env.value(&json!("{{tx.id}}")), Some(json!(5)));
        assert_eq!(
            env.text("id {{tx.id}}: {{tx}}"),
            r#"id 5: {"id":5,"to":"x"}"#
        );
        assert_eq!(
            env.value(&json!("n={{args.amount}}")),
            Some(json!("n=12.5"))
        );
    }

    fn row(pairs: &[(&str, Value)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn filt(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn where_matchers_test_membership_substrings_and_prefixes() {
        let r = row(&[
            ("name", json!("Le Baratin")),
            ("title", json!("Team Sync")),
            ("start", json!("2024-05-15T10:00:00")),
            ("tags", json!(["a", "b"])),
        ]);
        let hit = |v: Value| row_matches(&r, &filt(v));
        assert!(hit(json!({"name": {"in": ["x", "Le Baratin"]}})));
        assert!(!hit(json!({"name": {"in": ["x"]}})));
        // Text operand: the column is a substring of it.
        assert!(hit(json!({"name": {"in": "Le Baratin, Chez X"}})));
        assert!(hit(
            json!({"title": {"contains": "sync", "ignore_case": true}})
        ));
        assert!(!hit(json!({"title": {"contains": "sync"}})));
        assert!(hit(json!({"tags": {"contains": "b"}})));
        assert!(hit(json!({"start": {"prefix": "2024-05-15"}})));
        assert!(!hit(json!({"start": {"prefix": "2024-05-16"}})));
        assert!(hit(
            json!({"name": {"equals": "le baratin", "ignore_case": true}})
        ));
        // A null operand (an argument not passed) narrows nothing.
        assert!(hit(json!({"start": {"prefix": null}})));
        assert!(!hit(json!({"missing": {"prefix": "x"}})));
        assert!(hit(
            json!({"any": [{"title": "nope"}, {"name": {"contains": "Bar"}}]})
        ));
        assert!(!hit(json!({"any": [{"title": "nope"}, {"name": "nope"}]})));
        assert!(!hit(json!({"name": "Le Baratin", "title": "x"})));
    }

    #[test]
    fn filters_normalise_dates_and_new_text_keys_count_on() {
        let secrets = BTreeMap::new();
        let binds = Binds::new();
        let args = json!({"d": "2024-05-15", "t": "2024-05-15 10:30", "x": "soon"});
        let env = Env {
            secrets: &secrets,
            slots: &[],
            args: &args,
            binds: &binds,
        };
        assert_eq!(
            env.value(&json!("{{args.d|datetime}}")),
            Some(json!("2024-05-15T00:00:00"))
        );
        assert_eq!(
            env.value(&json!("{{args.t | datetime}}")),
            Some(json!("2024-05-15T10:30:00"))
        );
        assert_eq!(
            env.value(&json!("{{args.t|date}}")),
            Some(json!("2024-05-15"))
        );
        assert_eq!(
            env.value(&json!("{{args.x|datetime}}")),
            Some(json!("soon"))
        );
        assert_eq!(env.text("on {{args.t|date}}"), "on 2024-05-15");
        let rows = vec![row(&[("id", json!("0"))]), row(&[("id", json!("9"))])];
        assert_eq!(next_key(&rows, "id"), json!("10"));
        assert_eq!(next_key(&[row(&[("id", json!(3))])], "id"), json!(4));
        assert_eq!(next_key(&[], "id"), json!(1));
    }

    #[test]
    fn where_equality_is_type_aware() {
        assert!(state_eq(&json!(5), &json!("5")));
        assert!(state_eq(&json!(5), &json!(5.0)));
        assert!(state_eq(&json!("5"), &json!(5)));
        assert!(!state_eq(&json!("5"), &json!("5.0")));
        assert!(!state_eq(&json!(5), &json!("five")));
        assert!(state_eq(&json!(true), &json!("true")));
    }
}
