//! The internal operations every tool goes through. `files.read` and `cat`,
//! `http.get` and `curl`, `packages.install` and `pip install` all call the same
//! function here, which is what makes their effects identical (only `via`
//! differs). Each operation records its own effects, including `denied`.

use std::fmt;

use assay_trace::{Effect, EffectKind, SentMail};
use serde_json::{Map, Value};

use crate::World;
use crate::vfs::{self, Node, NodeKind, basename, fmt_mode, parent};

/// Builds an effect whose first field is `via`.
pub(crate) fn effect(kind: EffectKind, via: &str, fields: Vec<(&str, Value)>) -> Effect {
    let mut m = Map::with_capacity(fields.len() + 1);
    m.insert("via".to_string(), Value::String(via.to_string()));
    for (k, v) in fields {
        m.insert(k.to_string(), v);
    }
    Effect { kind, fields: m }
}

/// A `denied` effect.
pub(crate) fn denied(via: &str, action: &str, target: &str, reason: &str) -> Effect {
    effect(
        EffectKind::Denied,
        via,
        vec![
            ("action", action.into()),
            ("target", target.into()),
            ("reason", reason.into()),
        ],
    )
}

/// Why an operation failed, worded like the C library so shell output looks familiar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OpErr {
    NotFound,
    IsDir,
    NotDir,
    Exists,
    NotEmpty,
    /// Refused by policy; a `denied` effect was recorded.
    Denied(String),
    Invalid(String),
}

impl fmt::Display for OpErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpErr::NotFound => f.write_str("No such file or directory"),
            OpErr::IsDir => f.write_str("Is a directory"),
            OpErr::NotDir => f.write_str("Not a directory"),
            OpErr::Exists => f.write_str("File exists"),
            OpErr::NotEmpty => f.write_str("Directory not empty"),
            OpErr::Denied(r) => write!(f, "Permission denied ({r})"),
            OpErr::Invalid(r) => f.write_str(r),
        }
    }
}

/// An entry of a directory listing.
pub(crate) struct Entry {
    pub name: String,
    pub kind: char,
    pub mode: u32,
    pub size: usize,
    pub target: Option<String>,
}

impl World {
    /// The working directory tools resolve relative paths against.
    pub(crate) fn cwd(&self) -> String {
        self.tpl.cwd.clone()
    }

    /// Normalises and resolves a path, recording a `denied` effect when refused.
    pub(crate) fn locate(
        &self,
        cwd: &str,
        path: &str,
        follow: bool,
        action: &str,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<String, OpErr> {
        self.vfs.locate(cwd, path, follow).map_err(|e| {
            let r = e.to_string();
            fx.push(denied(via, action, path, &r));
            OpErr::Denied(r)
        })
    }

    fn read_effect(
        via: &str,
        source: &str,
        path: &str,
        label: Option<&str>,
        content: &str,
    ) -> Effect {
        let mut f = vec![("source", source.into()), ("path", path.into())];
        if let Some(l) = label {
            f.push(("sensitivity", l.into()));
            f.push(("content", content.into()));
        }
        f.push(("bytes", content.len().into()));
        effect(EffectKind::Read, via, f)
    }

    /// Reads a file: `files.read`, `cat`, `head`, `grep`, `<`, `cp`, `base64`, ...
    pub(crate) fn read_file(
        &self,
        cwd: &str,
        path: &str,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<String, OpErr> {
        let p = self.locate(cwd, path, true, "read", via, fx)?;
        match self.vfs.get(&p) {
            None => Err(self.missing(&p)),
            Some(n) => match &n.kind {
                NodeKind::File(t) => {
                    fx.push(Self::read_effect(via, "file", &p, n.label.as_deref(), t));
                    Ok(t.clone())
                }
                NodeKind::Dir => Err(OpErr::IsDir),
                NodeKind::Link(_) => Err(OpErr::NotFound),
            },
        }
    }

    /// NotDir when an ancestor of `p` is a file, else NotFound.
    fn missing(&self, p: &str) -> OpErr {
        match self.first_existing_ancestor(p) {
            Some(n) if !n.is_dir() => OpErr::NotDir,
            _ => OpErr::NotFound,
        }
    }

    fn first_existing_ancestor(&self, p: &str) -> Option<&Node> {
        let mut a = parent(p);
        loop {
            if let Some(n) = self.vfs.get(a) {
                return Some(n);
            }
            if a == "/" {
                return None;
            }
            a = parent(a);
        }
    }

    /// Writes (or appends to) a file, creating it and its directories if missing.
    pub(crate) fn write_file(
        &mut self,
        cwd: &str,
        path: &str,
        content: &str,
        append: bool,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<String, OpErr> {
        let p = self.locate(cwd, path, true, "write", via, fx)?;
        if self
            .first_existing_ancestor(&p)
            .is_some_and(|n| !n.is_dir())
        {
            return Err(OpErr::NotDir);
        }
        // One file may not grow past `file_bytes`: like a filesystem quota, the
        // part below the cap is written, the call stops with the cap recorded,
        // and the effect carries only what was written (bounded content).
        let max = usize::try_from(self.limits.file_bytes).unwrap_or(usize::MAX);
        let old_len = match self.vfs.get(&p) {
            Some(Node {
                kind: NodeKind::File(old),
                ..
            }) if append => old.len(),
            _ => 0,
        };
        let mut capped = false;
        let content = if old_len.saturating_add(content.len()) > max {
            capped = true;
            let room = max.saturating_sub(old_len);
            self.hit_cap(
                "file_bytes",
                self.limits.file_bytes as f64,
                format!(
                    "a write of {} bytes to {p} would make the file larger than the cap",
                    content.len()
                ),
            );
            &content[..crate::shell::floor_char(content, room)]
        } else {
            content
        };
        let (created, node) = match self.vfs.get(&p) {
            Some(Node {
                kind: NodeKind::Dir,
                ..
            }) => return Err(OpErr::IsDir),
            Some(
                n @ Node {
                    kind: NodeKind::File(old),
                    ..
                },
            ) => {
                let text = if append {
                    format!("{old}{content}")
                } else {
                    content.to_string()
                };
                (
                    false,
                    Node {
                        kind: NodeKind::File(text),
                        mode: n.mode,
                        label: n.label.clone(),
                    },
                )
            }
            _ => (
                true,
                Node {
                    kind: NodeKind::File(content.to_string()),
                    mode: 0o644,
                    label: None,
                },
            ),
        };
        self.vfs.insert(&p, node);
        fx.push(effect(
            EffectKind::Write,
            via,
            vec![
                ("source", "file".into()),
                ("path", p.as_str().into()),
                ("content", content.into()),
                ("bytes", content.len().into()),
                ("append", append.into()),
                ("created", created.into()),
            ],
        ));
        if capped {
            return Err(OpErr::Invalid("File too large".into()));
        }
        Ok(p)
    }

    /// Creates a symbolic link at `link` pointing to `target` (`ln -s`): a
    /// `write` of the link path with a `symlink` field. `force` replaces an
    /// existing non-directory (a `delete` of it first). Returns the link's path.
    pub(crate) fn symlink(
        &mut self,
        cwd: &str,
        target: &str,
        link: &str,
        force: bool,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<String, OpErr> {
        if target.contains('\0') {
            fx.push(denied(via, "write", target, "path contains a NUL byte"));
            return Err(OpErr::Denied("path contains a NUL byte".into()));
        }
        let mut p = self.locate(cwd, link, false, "write", via, fx)?;
        if self.vfs.get(&p).is_some_and(Node::is_dir)
            || (link.ends_with('/') && self.vfs.get(&p).is_none())
        {
            let name = basename(target.trim_end_matches('/'));
            let inside = if p == "/" {
                format!("/{name}")
            } else {
                format!("{p}/{name}")
            };
            p = self.locate("/", &inside, false, "write", via, fx)?;
        }
        if self
            .first_existing_ancestor(&p)
            .is_some_and(|n| !n.is_dir())
        {
            return Err(OpErr::NotDir);
        }
        let created = match self.vfs.get(&p) {
            None => true,
            Some(n) if n.is_dir() => return Err(OpErr::IsDir),
            Some(_) if !force => return Err(OpErr::Exists),
            Some(_) => {
                self.vfs.remove(&p);
                fx.push(effect(
                    EffectKind::Delete,
                    via,
                    vec![("path", p.as_str().into())],
                ));
                false
            }
        };
        self.vfs.insert(
            &p,
            Node {
                kind: NodeKind::Link(target.to_string()),
                mode: 0o777,
                label: None,
            },
        );
        fx.push(effect(
            EffectKind::Write,
            via,
            vec![
                ("source", "file".into()),
                ("path", p.as_str().into()),
                ("content", "".into()),
                ("bytes", 0.into()),
                ("append", false.into()),
                ("created", created.into()),
                ("symlink", target.into()),
            ],
        ));
        Ok(p)
    }

    /// Lists a directory (or names a single file), recording a listing `read`.
    pub(crate) fn list(
        &self,
        cwd: &str,
        path: &str,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<(String, Vec<Entry>), OpErr> {
        let p = self.locate(cwd, path, true, "list", via, fx)?;
        let Some(n) = self.vfs.get(&p) else {
            return Err(self.missing(&p));
        };
        let entries = if n.is_dir() {
            self.vfs
                .children(&p)
                .into_iter()
                .filter_map(|c| self.vfs.get(&c).map(|n| entry(basename(&c), n)))
                .collect()
        } else {
            vec![entry(basename(&p), n)]
        };
        fx.push(effect(
            EffectKind::Read,
            via,
            vec![
                ("source", "file".into()),
                ("path", p.as_str().into()),
                ("listing", true.into()),
                ("entries", entries.len().into()),
            ],
        ));
        Ok((p, entries))
    }

    /// Deletes a path. Directories need `recursive`, or `empty_dir_ok` when empty.
    pub(crate) fn delete(
        &mut self,
        cwd: &str,
        path: &str,
        recursive: bool,
        empty_dir_ok: bool,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<(), OpErr> {
        let p = self.locate(cwd, path, false, "delete", via, fx)?;
        if p == "/" {
            let r = "refusing to remove the filesystem root";
            fx.push(denied(via, "delete", path, r));
            return Err(OpErr::Denied(r.into()));
        }
        let Some(n) = self.vfs.get(&p) else {
            return Err(self.missing(&p));
        };
        let mut doomed = Vec::new();
        if n.is_dir() {
            let below = self.vfs.descendants(&p);
            if !recursive {
                if !below.is_empty() {
                    return Err(if empty_dir_ok {
                        OpErr::NotEmpty
                    } else {
                        OpErr::IsDir
                    });
                }
                if !empty_dir_ok {
                    return Err(OpErr::IsDir);
                }
            }
            doomed.extend(below.into_iter().rev());
        }
        doomed.push(p);
        for d in doomed {
            self.vfs.remove(&d);
            fx.push(effect(EffectKind::Delete, via, vec![("path", d.into())]));
        }
        Ok(())
    }

    /// Changes permission bits (follows links, like chmod(1)).
    pub(crate) fn chmod(
        &mut self,
        cwd: &str,
        path: &str,
        mode: Result<u32, &str>,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<(), OpErr> {
        let p = self.locate(cwd, path, true, "chmod", via, fx)?;
        let Some(n) = self.vfs.nodes.get_mut(&p) else {
            return Err(OpErr::NotFound);
        };
        let previous = n.mode;
        let new = match mode {
            Ok(m) => m,
            Err(sym) => apply_symbolic(previous, sym)
                .ok_or_else(|| OpErr::Invalid(format!("invalid mode: '{sym}'")))?,
        };
        n.mode = new;
        fx.push(effect(
            EffectKind::PermissionChange,
            via,
            vec![
                ("path", p.into()),
                ("mode", fmt_mode(new).into()),
                ("previous", fmt_mode(previous).into()),
            ],
        ));
        Ok(())
    }

    /// Creates a directory (`mkdir`, `mkdir -p`).
    pub(crate) fn mkdir(
        &mut self,
        cwd: &str,
        path: &str,
        parents: bool,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<(), OpErr> {
        let p = self.locate(cwd, path, true, "mkdir", via, fx)?;
        if let Some(n) = self.vfs.get(&p) {
            return if parents && n.is_dir() {
                Ok(())
            } else {
                Err(OpErr::Exists)
            };
        }
        match self.vfs.get(parent(&p)) {
            Some(n) if !n.is_dir() => return Err(OpErr::NotDir),
            None if !parents => return Err(self.missing(&p)),
            None if self
                .first_existing_ancestor(&p)
                .is_some_and(|n| !n.is_dir()) =>
            {
                return Err(OpErr::NotDir);
            }
            _ => {}
        }
        self.vfs.ensure_dirs(&p);
        fx.push(effect(
            EffectKind::Write,
            via,
            vec![
                ("source", "file".into()),
                ("path", p.into()),
                ("content", "".into()),
                ("bytes", 0.into()),
                ("append", false.into()),
                ("created", true.into()),
                ("directory", true.into()),
            ],
        ));
        Ok(())
    }

    /// Destination of `cp`/`mv`: inside `dst` when it is a directory.
    fn dest(&self, cwd: &str, src: &str, dst: &str) -> String {
        if let Ok(d) = self.vfs.locate(cwd, dst, true)
            && self.vfs.get(&d).is_some_and(Node::is_dir)
        {
            let name = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
            return format!("{}/{}", d.trim_end_matches('/'), name);
        }
        dst.to_string()
    }

    /// Copies a file: a `read` of the source then a `write` of the destination.
    /// The source's sensitivity label travels with a newly created copy.
    pub(crate) fn copy(
        &mut self,
        cwd: &str,
        src: &str,
        dst: &str,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<(), OpErr> {
        let content = self.read_file(cwd, src, via, fx)?;
        let label = self
            .vfs
            .locate(cwd, src, true)
            .ok()
            .and_then(|p| self.vfs.get(&p).and_then(|n| n.label.clone()));
        let dst = self.dest(cwd, src, dst);
        let p = self.write_file(cwd, &dst, &content, false, via, fx)?;
        if let Some(n) = self.vfs.nodes.get_mut(&p)
            && n.label.is_none()
        {
            n.label = label;
        }
        Ok(())
    }

    /// Moves a file, link or directory tree: per file a `read`, a `write` of the
    /// new path and a `delete` of the old one.
    pub(crate) fn rename(
        &mut self,
        cwd: &str,
        src: &str,
        dst: &str,
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<(), OpErr> {
        let from = self.locate(cwd, src, false, "move", via, fx)?;
        if self.vfs.get(&from).is_none() {
            return Err(self.missing(&from));
        }
        let dst = self.dest(cwd, src, dst);
        let to = self.locate(cwd, &dst, false, "move", via, fx)?;
        if from == "/" || to == from || to.starts_with(&format!("{from}/")) {
            let r = "cannot move a directory into itself";
            fx.push(denied(via, "move", src, r));
            return Err(OpErr::Denied(r.into()));
        }
        if self.vfs.get(&to).is_some_and(Node::is_dir) {
            return Err(OpErr::IsDir);
        }
        let mut moving = vec![from.clone()];
        moving.extend(self.vfs.descendants(&from));
        for old in moving {
            let Some(node) = self.vfs.remove(&old) else {
                continue;
            };
            let new = format!("{to}{}", &old[from.len()..]);
            let content = match &node.kind {
                NodeKind::File(t) => {
                    fx.push(Self::read_effect(
                        via,
                        "file",
                        &old,
                        node.label.as_deref(),
                        t,
                    ));
                    t.clone()
                }
                _ => String::new(),
            };
            let created = self.vfs.get(&new).is_none();
            fx.push(effect(
                EffectKind::Write,
                via,
                vec![
                    ("source", "file".into()),
                    ("path", new.as_str().into()),
                    ("content", content.as_str().into()),
                    ("bytes", content.len().into()),
                    ("append", false.into()),
                    ("created", created.into()),
                ],
            ));
            fx.push(effect(EffectKind::Delete, via, vec![("path", old.into())]));
            self.vfs.insert(&new, node);
        }
        Ok(())
    }

    /// One HTTP exchange: a `request` (every plausible host of the URL is in
    /// `world.network.allow`) or `egress` effect, then a `read` of the page when
    /// the world has one. Returns status and body.
    ///
    /// The URL is parsed once, by `assay_spec::net`, exactly as the spec's
    /// allow-list and page URLs are: the host is the one a WHATWG client would
    /// contact, and a URL whose text parsers read differently is `ambiguous`
    /// and stays inside only when every reading does. A text that is not an
    /// http(s) URL (another scheme, no host, unparseable) is `denied`, never a
    /// request.
    pub(crate) fn http(
        &self,
        method: &str,
        url: &str,
        body: &str,
        headers: &[String],
        via: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<(u16, String), String> {
        let target = match assay_spec::net::parse_http_url(url) {
            Ok(t) => t,
            Err(e) => {
                let e = e.to_string();
                fx.push(denied(via, "request", url, &e));
                return Err(e);
            }
        };
        let judged = self.tpl.boundary.judge(&target);
        let kind = if judged.inside {
            EffectKind::Request
        } else {
            EffectKind::Egress
        };
        let mut f = vec![
            ("method", method.into()),
            ("url", url.into()),
            ("host", judged.host.into()),
            ("body", body.into()),
        ];
        if !headers.is_empty() {
            f.push(("headers", headers.join("\n").into()));
        }
        f.push(("ambiguous", target.ambiguous().into()));
        if target.ambiguous() {
            f.push(("ambiguity", target.ambiguity_text().into()));
            f.push(("hosts", target.hosts.join(" ").into()));
        }
        fx.push(effect(kind, via, f));
        // Exact URL first, then without query/fragment, each also with the
        // trailing `/` toggled; then the page whose WHATWG form is the one requested.
        let bare = url.split(['?', '#']).next().unwrap_or(url);
        let page = [url, bare]
            .into_iter()
            .find_map(|u| {
                self.tpl.web.get_key_value(u).or_else(|| {
                    let alt = match u.strip_suffix('/') {
                        Some(x) => x.to_string(),
                        None => format!("{u}/"),
                    };
                    self.tpl.web.get_key_value(alt.as_str())
                })
            })
            .or_else(|| {
                self.tpl.web.iter().find(|(k, _)| {
                    assay_spec::net::parse_http_url(k)
                        .is_ok_and(|p| p.normalized == target.normalized)
                })
            });
        match page {
            Some((key, p)) => {
                let text = p.body.render(&self.cx(), None);
                fx.push(Self::read_effect(
                    via,
                    "web",
                    key,
                    p.label.as_deref(),
                    &text,
                ));
                Ok((p.status, text))
            }
            None => Ok((404, "404 Not Found".to_string())),
        }
    }

    /// Installs a package (`packages.install`, `pip install`, `npm install`).
    pub(crate) fn install(
        &mut self,
        manager: &str,
        name: &str,
        version: Option<&str>,
        via: &str,
        fx: &mut Vec<Effect>,
    ) {
        fx.push(effect(
            EffectKind::Install,
            via,
            vec![
                ("manager", manager.into()),
                ("name", name.into()),
                ("version", version.map_or(Value::Null, Value::from)),
            ],
        ));
        self.installed.insert(match version {
            Some(v) => format!("{name}=={v}"),
            None => name.to_string(),
        });
    }

    /// Sends a mail from the agent's address.
    pub(crate) fn send_mail(
        &mut self,
        to: &str,
        subject: &str,
        body: &str,
        via: &str,
        fx: &mut Vec<Effect>,
    ) {
        let own = &self.tpl.mail_domain;
        let external = to
            .split([',', ';'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .any(|a| !crate::domain_of(a).eq_ignore_ascii_case(own));
        fx.push(effect(
            EffectKind::Send,
            via,
            vec![
                ("channel", "mail".into()),
                ("from", self.tpl.mail_address.as_str().into()),
                ("to", to.into()),
                ("subject", subject.into()),
                ("body", body.into()),
                ("external", external.into()),
            ],
        ));
        self.outbox.push(SentMail {
            to: to.to_string(),
            subject: subject.to_string(),
            body: body.to_string(),
        });
    }

    /// Reads an environment variable of the world (shell `$VAR`, `printenv
    /// VAR`). A variable labelled in `world.env` reads like a labelled file:
    /// the effect carries its `sensitivity` and the value as `content`.
    pub(crate) fn env_read(&self, name: &str, value: &str, via: &str, fx: &mut Vec<Effect>) {
        let label = self.tpl.env_labels.get(name).map(|l| l.as_ref());
        fx.push(Self::read_effect(via, "env", name, label, value));
    }

    /// Reads the whole environment (`env`, `printenv` without arguments): one
    /// `read` of `*` for the listing, then one labelled `read` per labelled
    /// world variable it showed. `vars` is the shell's environment and
    /// `assigned` the names the shell itself set (not world reads).
    pub(crate) fn env_read_all(
        &self,
        vars: &std::collections::BTreeMap<String, String>,
        assigned: &std::collections::BTreeSet<String>,
        listing: &str,
        via: &str,
        fx: &mut Vec<Effect>,
    ) {
        fx.push(Self::read_effect(via, "env", "*", None, listing));
        for (name, label) in &self.tpl.env_labels {
            if assigned.contains(name) {
                continue;
            }
            if let Some(v) = vars.get(name) {
                fx.push(Self::read_effect(via, "env", name, Some(label), v));
            }
        }
    }
}

/// The listing entry of one node.
pub(crate) fn entry(name: &str, n: &Node) -> Entry {
    let (kind, size, target) = match &n.kind {
        NodeKind::File(t) => ('-', t.len(), None),
        NodeKind::Dir => ('d', 0, None),
        NodeKind::Link(t) => ('l', t.len(), Some(t.clone())),
    };
    Entry {
        name: name.to_string(),
        kind,
        mode: n.mode,
        size,
        target,
    }
}

/// Applies a symbolic mode (`+x`, `u+x`, `go-w`, `a=r`) to `mode`.
pub(crate) fn apply_symbolic(mode: u32, sym: &str) -> Option<u32> {
    let mut m = mode;
    for clause in sym.split(',') {
        let pos = clause.find(['+', '-', '='])?;
        let (who, rest) = clause.split_at(pos);
        let op = rest.chars().next()?;
        let perms = &rest[1..];
        let mut mask = 0;
        for c in if who.is_empty() {
            "a".chars()
        } else {
            who.chars()
        } {
            mask |= match c {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                'a' => 0o777,
                _ => return None,
            };
        }
        let mut bits = 0;
        for c in perms.chars() {
            bits |= match c {
                'r' => 0o444,
                'w' => 0o222,
                'x' => 0o111,
                _ => return None,
            };
        }
        let bits = bits & mask;
        m = match op {
            '+' => m | bits,
            '-' => m & !bits,
            _ => (m & !mask) | bits,
        };
    }
    Some(m)
}

pub(crate) use vfs::parse_mode;
