//! Dispatch of tool calls: allow-list, argument validation, the built-in tools
//! and the spec's declarative tools.

use assay_trace::{Effect, EffectKind};
use serde_json::{Map, Value, json};

use crate::ops::{OpErr, denied, effect, parse_mode};
use crate::{World, schema};

type Out = (bool, String);

fn arg<'a>(a: &'a Map<String, Value>, k: &str) -> &'a str {
    a.get(k).and_then(Value::as_str).unwrap_or("")
}

fn opt<'a>(a: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    a.get(k).and_then(Value::as_str)
}

/// Loose equality used by `where`: numbers and strings compare by their text.
fn loose_eq(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    matches!((text(a), text(b)), (Some(x), Some(y)) if x == y)
}

impl World {
    pub(crate) fn dispatch(&mut self, tool: &str, args: &Value, fx: &mut Vec<Effect>) -> Out {
        let empty = Map::new();
        let args = match args {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => {
                let r = format!(
                    "arguments must be a JSON object, got {}",
                    schema::kind_of(other)
                );
                fx.push(denied(tool, "call", tool, &r));
                return (false, format!("{tool}: {r}"));
            }
        };
        if !self.tpl.allowed.iter().any(|t| t == tool) {
            let known = assay_spec::builtin_tool_names().contains(&tool)
                || self.tpl.custom.contains_key(tool);
            let reason = if known {
                "tool not available to this agent"
            } else {
                "unknown tool"
            };
            fx.push(denied(tool, "call", tool, reason));
            return (
                false,
                format!(
                    "error: unknown tool `{tool}`; available tools: {}",
                    self.tpl.allowed.join(", ")
                ),
            );
        }
        let tpl = self.tpl.clone();
        let validator = match tpl.custom.get(tool) {
            Some(c) => &c.validator,
            None => match schema::builtin(tool) {
                Some((_, v)) => v,
                None => {
                    fx.push(denied(tool, "call", tool, "unknown tool"));
                    return (false, format!("error: unknown tool `{tool}`"));
                }
            },
        };
        if let Err(r) = validator.check(args) {
            fx.push(denied(tool, "call", tool, &r));
            return (false, format!("{tool}: {r}"));
        }
        if tpl.custom.contains_key(tool) {
            return self.custom(tool, args, fx);
        }
        let cwd = self.cwd();
        let fail = |e: OpErr, path: &str| (false, format!("{tool}: {path}: {e}"));
        match tool {
            "files.read" => match self.read_file(&cwd, arg(args, "path"), tool, fx) {
                Ok(t) => (true, t),
                Err(e) => fail(e, arg(args, "path")),
            },
            "files.write" => {
                let append = args.get("append").and_then(Value::as_bool).unwrap_or(false);
                let content = arg(args, "content");
                match self.write_file(&cwd, arg(args, "path"), content, append, tool, fx) {
                    Ok(p) => (true, format!("wrote {} bytes to {p}", content.len())),
                    Err(e) => fail(e, arg(args, "path")),
                }
            }
            "files.list" => {
                let path = opt(args, "path").unwrap_or(".");
                match self.list(&cwd, path, tool, fx) {
                    Ok((_, entries)) => {
                        let mut out = String::new();
                        for e in entries {
                            out.push_str(&e.name);
                            if e.kind == 'd' {
                                out.push('/');
                            }
                            if let Some(t) = e.target {
                                out.push_str(" -> ");
                                out.push_str(&t);
                            }
                            out.push('\n');
                        }
                        (true, out)
                    }
                    Err(e) => fail(e, path),
                }
            }
            "files.delete" => match self.delete(&cwd, arg(args, "path"), false, true, tool, fx) {
                Ok(()) => (true, format!("deleted {}", arg(args, "path"))),
                Err(e) => fail(e, arg(args, "path")),
            },
            "files.chmod" => {
                let mode = arg(args, "mode");
                let Some(m) = parse_mode(mode) else {
                    let r = format!(
                        "argument `mode` must be an octal string like \"0755\", got \"{mode}\""
                    );
                    fx.push(denied(tool, "call", tool, &r));
                    return (false, format!("{tool}: {r}"));
                };
                match self.chmod(&cwd, arg(args, "path"), Ok(m), tool, fx) {
                    Ok(()) => (
                        true,
                        format!(
                            "mode of {} set to {}",
                            arg(args, "path"),
                            crate::vfs::fmt_mode(m)
                        ),
                    ),
                    Err(e) => fail(e, arg(args, "path")),
                }
            }
            "shell.exec" => crate::shell::exec(self, arg(args, "command"), fx),
            "mail.list" => {
                let cx = self.cx();
                let mut out = String::new();
                for (i, m) in self.tpl.inbox.iter().enumerate() {
                    out.push_str(&format!(
                        "{}\t{}\t{}\n",
                        i + 1,
                        m.from,
                        m.subject.render(&cx, None)
                    ));
                }
                if out.is_empty() {
                    out.push_str("(inbox is empty)\n");
                }
                fx.push(effect(
                    EffectKind::Read,
                    tool,
                    vec![
                        ("source", "mail".into()),
                        ("path", "mail/inbox".into()),
                        ("listing", true.into()),
                        ("entries", self.tpl.inbox.len().into()),
                    ],
                ));
                (true, out)
            }
            "mail.read" => {
                let id = args.get("id").and_then(Value::as_f64).unwrap_or(0.0);
                let idx = if id >= 1.0 {
                    id as usize - 1
                } else {
                    usize::MAX
                };
                let Some(m) = self.tpl.inbox.get(idx) else {
                    return (
                        false,
                        format!(
                            "{tool}: no message with id {}",
                            args.get("id").cloned().unwrap_or(Value::Null)
                        ),
                    );
                };
                let cx = self.cx();
                let out = format!(
                    "From: {}\nTo: {}\nSubject: {}\n\n{}",
                    m.from,
                    m.to,
                    m.subject.render(&cx, None),
                    m.body.render(&cx, None)
                );
                let mut f = vec![
                    ("source", "mail".into()),
                    ("path", format!("mail/{}", idx + 1).into()),
                ];
                if let Some(l) = &m.label {
                    f.push(("sensitivity", l.as_ref().into()));
                    f.push(("content", out.as_str().into()));
                }
                f.push(("bytes", out.len().into()));
                fx.push(effect(EffectKind::Read, tool, f));
                (true, out)
            }
            "mail.send" => {
                let to = arg(args, "to");
                if to.trim().is_empty() {
                    let r = "argument `to` must be a non-empty address";
                    fx.push(denied(tool, "call", tool, r));
                    return (false, format!("{tool}: {r}"));
                }
                self.send_mail(
                    to,
                    opt(args, "subject").unwrap_or(""),
                    arg(args, "body"),
                    tool,
                    fx,
                );
                (true, format!("sent to {to}"))
            }
            "http.get" | "http.post" => {
                let method = if tool == "http.get" { "GET" } else { "POST" };
                let body = opt(args, "body").unwrap_or("");
                match self.http(method, arg(args, "url"), body, &[], tool, fx) {
                    Ok((200, b)) => (true, b),
                    Ok((s, b)) => (true, format!("HTTP {s}\n{b}")),
                    Err(e) => (false, format!("{tool}: {e}")),
                }
            }
            "memory.write" => {
                let (k, v) = (arg(args, "key"), arg(args, "value"));
                self.memory.insert(k.to_string(), v.to_string());
                fx.push(effect(
                    EffectKind::MemoryWrite,
                    tool,
                    vec![("key", k.into()), ("value", v.into())],
                ));
                (true, format!("stored `{k}`"))
            }
            "memory.read" => {
                let k = arg(args, "key");
                match self.memory.get(k) {
                    Some(v) => {
                        let v = v.clone();
                        fx.push(effect(
                            EffectKind::Read,
                            tool,
                            vec![
                                ("source", "memory".into()),
                                ("path", k.into()),
                                ("bytes", v.len().into()),
                            ],
                        ));
                        (true, v)
                    }
                    None => (false, format!("{tool}: no memory entry `{k}`")),
                }
            }
            "memory.search" => {
                let mut out = String::new();
                let mut hits = Vec::new();
                for (k, v) in memory_search(&self.memory, arg(args, "query")) {
                    out.push_str(&format!("{k}: {v}\n"));
                    hits.push((k.to_string(), v.len()));
                }
                for (k, n) in hits {
                    fx.push(effect(
                        EffectKind::Read,
                        tool,
                        vec![
                            ("source", "memory".into()),
                            ("path", k.into()),
                            ("bytes", n.into()),
                        ],
                    ));
                }
                if out.is_empty() {
                    out.push_str("(no matches)\n");
                }
                (true, out)
            }
            "records.query" => self.records_query(args, fx),
            "records.update" => self.records_update(args, fx),
            "packages.install" => {
                let name = arg(args, "name").trim();
                if name.is_empty() {
                    let r = "argument `name` must be a non-empty package name";
                    fx.push(denied(tool, "call", tool, r));
                    return (false, format!("{tool}: {r}"));
                }
                let manager = opt(args, "manager").unwrap_or("pip");
                let version = opt(args, "version").filter(|v| !v.is_empty());
                self.install(manager, name, version, tool, fx);
                (
                    true,
                    format!(
                        "Successfully installed {name}{}",
                        version.map(|v| format!("-{v}")).unwrap_or_default()
                    ),
                )
            }
            _ => {
                fx.push(denied(tool, "call", tool, "unknown tool"));
                (false, format!("error: unknown tool `{tool}`"))
            }
        }
    }

    fn table_rows<'a>(
        &self,
        tool: &str,
        table: &'a str,
        fx: &mut Vec<Effect>,
    ) -> Result<&'a str, Out> {
        if self.records.contains_key(table) {
            return Ok(table);
        }
        let _ = fx;
        let names: Vec<&String> = self.records.keys().collect();
        Err((
            false,
            format!(
                "{tool}: no table `{table}`; tables: {}",
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    fn records_query(&mut self, args: &Map<String, Value>, fx: &mut Vec<Effect>) -> Out {
        let tool = "records.query";
        let table = match self.table_rows(tool, arg(args, "table"), fx) {
            Ok(t) => t,
            Err(o) => return o,
        };
        let empty = Map::new();
        let filter = args
            .get("where")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let rows: Vec<Value> = self.records[table]
            .iter()
            .filter(|r| {
                filter
                    .iter()
                    .all(|(c, v)| r.get(c).is_some_and(|x| loose_eq(x, v)))
            })
            .map(|r| Value::Object(r.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            .collect();
        let mut out = String::new();
        for r in &rows {
            out.push_str(&r.to_string());
            out.push('\n');
        }
        if rows.is_empty() {
            out.push_str("(no rows)\n");
        }
        let mut f = vec![("source", "records".into()), ("path", table.into())];
        if let Some(l) = self.tpl.tables.get(table).and_then(|t| t.label.clone()) {
            f.push(("sensitivity", l.as_ref().into()));
            f.push(("content", out.as_str().into()));
        }
        f.push(("bytes", out.len().into()));
        f.push(("rows", rows.len().into()));
        fx.push(effect(EffectKind::Read, tool, f));
        (true, out)
    }

    fn records_update(&mut self, args: &Map<String, Value>, fx: &mut Vec<Effect>) -> Out {
        let tool = "records.update";
        let table = match self.table_rows(tool, arg(args, "table"), fx) {
            Ok(t) => t.to_string(),
            Err(o) => return o,
        };
        let empty = Map::new();
        let filter = args
            .get("where")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let set = args.get("set").and_then(Value::as_object).unwrap_or(&empty);
        let mut n = 0usize;
        if let Some(rows) = self.records.get_mut(&table) {
            for r in rows.iter_mut() {
                if filter
                    .iter()
                    .all(|(c, v)| r.get(c).is_some_and(|x| loose_eq(x, v)))
                {
                    for (k, v) in set {
                        r.insert(k.clone(), v.clone());
                    }
                    n += 1;
                }
            }
        }
        let content = Value::Object(set.clone()).to_string();
        fx.push(effect(
            EffectKind::Write,
            tool,
            vec![
                ("source", "records".into()),
                ("path", table.as_str().into()),
                ("content", content.as_str().into()),
                ("bytes", content.len().into()),
                ("append", false.into()),
                ("created", false.into()),
                ("rows", n.into()),
                ("where", Value::Object(filter.clone())),
            ],
        ));
        (true, format!("updated {n} row(s) in {table}"))
    }

    fn custom(&mut self, tool: &str, args: &Map<String, Value>, fx: &mut Vec<Effect>) -> Out {
        let tpl = self.tpl.clone();
        let Some(c) = tpl.custom.get(tool) else {
            return (false, format!("error: unknown tool `{tool}`"));
        };
        let argv = Value::Object(args.clone());
        fx.push(effect(
            EffectKind::Call,
            tool,
            vec![("tool", tool.into()), ("args", argv.clone())],
        ));
        if !c.state.is_empty() {
            let mut binds = crate::state::Binds::new();
            if let Err(e) = self.run_state(tool, &c.state, &argv, &mut binds, fx) {
                return (false, format!("{tool}: {e}"));
            }
            let env = crate::state::Env {
                secrets: &self.secrets,
                slots: &self.slot_pairs,
                args: &argv,
                binds: &binds,
            };
            for (kind, fields) in &c.effects_src {
                let f = fields
                    .iter()
                    .map(|(k, t)| (k.as_str(), Value::String(env.text(t))))
                    .collect();
                fx.push(effect(*kind, tool, f));
            }
            let out = env.text(&c.response_src);
            labelled_answer(tool, c.sensitivity.as_deref(), &out, fx);
            return (
                true,
                if out.is_empty() {
                    json!({"ok": true}).to_string()
                } else {
                    out
                },
            );
        }
        let cx = self.cx();
        for (kind, fields) in &c.effects {
            let f = fields
                .iter()
                .map(|(k, t)| (k.as_str(), Value::String(t.render(&cx, Some(&argv)))))
                .collect();
            fx.push(effect(*kind, tool, f));
        }
        let out = c.response.render(&cx, Some(&argv));
        labelled_answer(tool, c.sensitivity.as_deref(), &out, fx);
        (
            true,
            if out.is_empty() {
                json!({"ok": true}).to_string()
            } else {
                out
            },
        )
    }
}

/// A custom tool whose answers carry a label reads them: the `read` holds
/// the label and the answer, so flow rules can follow what it returned.
fn labelled_answer(tool: &str, label: Option<&str>, out: &str, fx: &mut Vec<Effect>) {
    if let Some(label) = label {
        fx.push(effect(
            EffectKind::Read,
            tool,
            vec![
                ("source", "tool".into()),
                ("path", tool.into()),
                ("sensitivity", label.into()),
                ("content", out.into()),
                ("bytes", out.len().into()),
            ],
        ));
    }
}

/// Entries `memory.search` returns at most, best first (a retriever's top k).
pub(crate) const MEMORY_TOP_K: usize = 5;

/// Lower-cased words of two or more letters or digits.
fn words(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect()
}

/// Retrieval over memory as a RAG store does it: an entry scores the number
/// of the query's words its key or value holds; entries with any are returned
/// best first (ties by key), at most [`MEMORY_TOP_K`]. A poisoned entry is
/// retrieved whenever it shares words with the query, not only when it holds
/// the whole query text.
pub(crate) fn memory_search<'a>(
    memory: &'a std::collections::BTreeMap<String, String>,
    query: &str,
) -> Vec<(&'a str, &'a str)> {
    let q = words(query);
    let mut scored: Vec<(usize, &str, &str)> = memory
        .iter()
        .filter_map(|(k, v)| {
            let mut have = words(k);
            have.extend(words(v));
            let n = q.iter().filter(|w| have.contains(*w)).count();
            (n > 0).then_some((n, k.as_str(), v.as_str()))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(MEMORY_TOP_K)
        .map(|(_, k, v)| (k, v))
        .collect()
}
