//! `shell.exec`: an interpreter for a documented subset of POSIX `sh`
//! (`docs/shell.md`) over the world's virtual filesystem, web and package
//! manager. Every program is a built-in that calls the same operations as the
//! dedicated tools, so effects are identical whichever way the agent acts.
//!
//! Each call starts a fresh shell in `world.cwd` with `world.env`; `cd` and
//! `export` last until the end of that call.

mod archive;
mod cmds;
mod files;
mod parse;
mod sed;

use std::collections::BTreeMap;

use assay_trace::{Effect, EffectKind};

use crate::World;
use crate::ops::effect;
use parse::{AndOr, ParamOp, Part, ROp, Simple, Word};

/// `via` of every shell effect.
pub(crate) const VIA: &str = "shell.exec";
/// Deepest nesting of `$(...)`, `sh -c` and programs run by other programs
/// (`env`, `xargs`, `find -exec`, `sudo`).
const MAX_DEPTH: u32 = 8;
/// One command's argument list may hold this many times `variable_bytes`.
const ARGS_FACTOR: usize = 4;
/// Most words one brace expansion may produce.
const MAX_BRACE: usize = 4096;

/// What one command produced.
#[derive(Debug, Default)]
pub(crate) struct Io {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

impl Io {
    pub fn ok(stdout: String) -> Io {
        Io {
            stdout,
            stderr: String::new(),
            status: 0,
        }
    }
    pub fn err(stderr: String, status: i32) -> Io {
        Io {
            stdout: String::new(),
            stderr,
            status,
        }
    }
}

/// One running shell.
pub(crate) struct Sh<'a> {
    pub w: &'a mut World,
    pub fx: &'a mut Vec<Effect>,
    pub cwd: String,
    pub vars: BTreeMap<String, String>,
    /// Names assigned in this shell (their reads are not world `env` reads).
    pub assigned: std::collections::BTreeSet<String>,
    pub status: i32,
    term: String,
    capture: Vec<String>,
    depth: u32,
    pub exit: bool,
    /// `set -e`: stop after a failing command list.
    pub errexit: bool,
    /// `set -o pipefail`: a pipeline fails when any of its programs fails.
    pub pipefail: bool,
    /// `shell_output_bytes`: the output of the call, and any one stream
    /// between programs.
    pub out_max: usize,
    /// `variable_bytes`: one variable, command substitution or argument list.
    pub var_max: usize,
    /// `trace_bytes`: the effects one call may record.
    fx_max: usize,
    /// Effects already counted in `fx_bytes`.
    fx_seen: usize,
    fx_bytes: usize,
}

/// Runs a command line; returns `ok` (exit status 0) and the output text.
pub(crate) fn exec(w: &mut World, command: &str, fx: &mut Vec<Effect>) -> (bool, String) {
    let cwd = w.cwd();
    let vars = w.env.clone();
    let lim = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let (out_max, var_max, fx_max) = (
        lim(w.limits.shell_output_bytes),
        lim(w.limits.variable_bytes),
        lim(w.limits.trace_bytes),
    );
    let fx_seen = fx.len();
    let mut sh = Sh {
        w,
        fx,
        cwd,
        vars,
        assigned: Default::default(),
        status: 0,
        term: String::new(),
        capture: Vec::new(),
        depth: 0,
        exit: false,
        errexit: false,
        pipefail: false,
        out_max,
        var_max,
        fx_max,
        fx_seen,
        fx_bytes: 0,
    };
    let status = sh.run_source(command);
    let mut out = std::mem::take(&mut sh.term);
    if status != 0 {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("[exit {status}]"));
    }
    (status == 0, out)
}

impl Sh<'_> {
    /// Parses and runs source text; syntax errors are reported like `sh`
    /// (status 2), and syntax the shell does not model is also recorded as
    /// `unsupported`.
    pub fn run_source(&mut self, src: &str) -> i32 {
        match parse::parse(src) {
            Ok(list) => {
                for ao in &list {
                    if self.halted() {
                        break;
                    }
                    self.status = self.run_and_or(ao);
                    if self.exit || (self.errexit && self.status != 0) {
                        break;
                    }
                }
                self.status
            }
            Err(e) => {
                if let Some(construct) = e.unsupported {
                    self.unsupported(
                        "sh",
                        construct,
                        "shell syntax the embedded shell does not model",
                    );
                }
                self.stderr(&format!("sh: {}\n", e.msg));
                self.status = 2;
                2
            }
        }
    }

    /// Runs `src` in this shell and returns what it wrote to stdout.
    pub fn capture(&mut self, src: &str) -> (String, i32) {
        if !self.enter() {
            return (String::new(), 2);
        }
        self.capture.push(String::new());
        let status = self.run_source(src);
        let out = self.capture.pop().unwrap_or_default();
        self.depth -= 1;
        self.exit = false;
        (out, status)
    }

    /// Enters one nesting level; false (with an `unsupported` effect) past
    /// [`MAX_DEPTH`], so no input can exhaust the stack.
    fn enter(&mut self) -> bool {
        if self.depth >= MAX_DEPTH {
            self.unsupported(
                "sh",
                "nesting deeper than 8 levels",
                "command substitutions and nested programs are limited to 8 levels",
            );
            self.stderr("sh: maximum nesting depth exceeded\n");
            return false;
        }
        self.depth += 1;
        true
    }

    /// Records that the shell could not model something: the episode cannot
    /// be judged safe on what the world saw.
    pub fn unsupported(&mut self, program: &str, detail: &str, reason: &str) {
        self.fx.push(effect(
            EffectKind::Unsupported,
            VIA,
            vec![
                ("program", program.into()),
                ("detail", detail.into()),
                ("reason", reason.into()),
            ],
        ));
    }

    /// An option a program does not model: an `unsupported` effect and the
    /// program's usual complaint.
    pub fn bad_option(&mut self, prog: &str, opt: &str, status: i32) -> Io {
        self.unsupported(prog, opt, "option not modelled by the embedded shell");
        Io::err(format!("{prog}: unrecognized option '{opt}'\n"), status)
    }

    /// Whether the call must stop: a cap was hit (here or in the world), the
    /// deadline passed, or the effects recorded exceed `trace_bytes`.
    pub fn halted(&mut self) -> bool {
        if self.w.halted() {
            return true;
        }
        for e in &self.fx[self.fx_seen.min(self.fx.len())..] {
            self.fx_bytes += e.kind.name().len()
                + e.fields
                    .iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(8, str::len))
                    .sum::<usize>();
        }
        self.fx_seen = self.fx.len();
        if self.fx_bytes > self.fx_max {
            self.w.hit_cap(
                "trace_bytes",
                self.fx_max as f64,
                format!("shell.exec recorded {} bytes of effects", self.fx_bytes),
            );
            return true;
        }
        false
    }

    /// Checks a stream a program is building against `shell_output_bytes`;
    /// true (and the cap recorded) when it is over, so the program stops.
    pub fn over(&mut self, len: usize, what: &str) -> bool {
        if len > self.out_max {
            self.w.hit_cap(
                "shell_output_bytes",
                self.out_max as f64,
                format!("{what} produced more than {} bytes", self.out_max),
            );
            return true;
        }
        self.halted()
    }

    /// Checks a variable, substitution or argument list against `variable_bytes`.
    fn over_var(&mut self, len: usize, what: &str) -> bool {
        if len > self.var_max {
            self.w.hit_cap(
                "variable_bytes",
                self.var_max as f64,
                format!("{what} is larger than {} bytes", self.var_max),
            );
            return true;
        }
        false
    }

    /// Checks one command's argument list: at most [`ARGS_FACTOR`] ×
    /// `variable_bytes`, so a full-size variable can still be passed on.
    fn over_args(&mut self, len: usize) -> bool {
        let max = self.var_max.saturating_mul(ARGS_FACTOR);
        if len > max {
            self.w.hit_cap(
                "variable_bytes",
                self.var_max as f64,
                format!("the argument list is larger than {max} bytes ({ARGS_FACTOR} x the cap)"),
            );
            return true;
        }
        false
    }

    fn stdout(&mut self, s: &str) {
        let (max, limit) = if self.capture.is_empty() {
            (self.out_max, "shell_output_bytes")
        } else {
            (self.var_max, "variable_bytes")
        };
        let buf = self.capture.last_mut().unwrap_or(&mut self.term);
        if buf.len() + s.len() > max {
            let room = max.saturating_sub(buf.len());
            buf.push_str(&s[..floor_char(s, room)]);
            let what = if limit == "variable_bytes" {
                "a command substitution"
            } else {
                "the command's output"
            };
            self.w
                .hit_cap(limit, max as f64, format!("{what} grew past {max} bytes"));
        } else {
            buf.push_str(s);
        }
    }

    fn stderr(&mut self, s: &str) {
        if self.term.len() + s.len() > self.out_max {
            let room = self.out_max.saturating_sub(self.term.len());
            self.term.push_str(&s[..floor_char(s, room)]);
            self.w.hit_cap(
                "shell_output_bytes",
                self.out_max as f64,
                format!("the command's output grew past {} bytes", self.out_max),
            );
        } else {
            self.term.push_str(s);
        }
    }

    fn run_and_or(&mut self, ao: &AndOr) -> i32 {
        let mut status = self.run_pipeline(&ao.first);
        for (and, p) in &ao.rest {
            if self.exit || self.halted() {
                break;
            }
            if (*and && status == 0) || (!*and && status != 0) {
                status = self.run_pipeline(p);
            }
        }
        status
    }

    fn run_pipeline(&mut self, p: &[Simple]) -> i32 {
        let mut input: Option<String> = None;
        let mut status = 0;
        let mut failed = 0;
        for (i, cmd) in p.iter().enumerate() {
            let io = self.run_simple(cmd, input.take());
            self.stderr(&io.stderr);
            if i + 1 == p.len() {
                self.stdout(&io.stdout);
            } else {
                input = Some(io.stdout);
            }
            status = if self.pipefail && io.status == 0 && i + 1 == p.len() {
                failed
            } else {
                io.status
            };
            if io.status != 0 {
                failed = io.status;
            }
            self.status = status;
            if self.exit || self.halted() {
                break;
            }
        }
        status
    }

    /// Value of a variable; a world `env` variable read records a `read` effect.
    fn var(&mut self, name: &str) -> String {
        if let Some(v) = self.vars.get(name)
            && self.assigned.contains(name)
        {
            return v.clone();
        }
        match name {
            "?" => return self.status.to_string(),
            "$" => return "1".into(),
            "#" => return "0".into(),
            "0" => return "sh".into(),
            _ => {}
        }
        let v = self.vars.get(name).cloned().unwrap_or_default();
        if !self.assigned.contains(name)
            && let Some(orig) = self.w.env.get(name)
        {
            self.w.env_read(name, orig, VIA, self.fx);
        }
        v
    }

    /// Expands a word into fields: braces, `~`, variables, command
    /// substitution, splitting of unquoted expansions on whitespace, and
    /// globbing of unquoted `*`/`?`/`[...]`. Stops (with the cap recorded)
    /// when the word grows past `variable_bytes`.
    pub fn expand(&mut self, w: &Word) -> Vec<String> {
        let words = match brace_expand(w) {
            Ok(ws) => ws,
            Err(detail) => {
                self.unsupported(
                    "sh",
                    &detail,
                    "brace expansion beyond what the shell models",
                );
                vec![w.clone()]
            }
        };
        let mut all = Vec::new();
        for w in &words {
            all.extend(self.expand_one(w));
            if self.halted() {
                break;
            }
        }
        all
    }

    fn expand_one(&mut self, w: &Word) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        let mut cur = String::new();
        let mut has = false;
        let mut glob = false;
        for (i, p) in w.iter().enumerate() {
            match p {
                Part::Lit(s, q) => {
                    let s = if i == 0 && !q && (s == "~" || s.starts_with("~/")) {
                        format!("{}{}", self.var("HOME"), &s[1..])
                    } else {
                        s.clone()
                    };
                    glob |= !q && s.contains(['*', '?', '[']);
                    cur.push_str(&s);
                    has = true;
                }
                Part::Var(name, q) => {
                    let v = self.var(name);
                    if *q {
                        cur.push_str(&v);
                        has = true;
                    } else {
                        split_into(&v, &mut fields, &mut cur, &mut has);
                    }
                }
                Part::Param(name, op, word, q) => {
                    let v = self.param(name, *op, word);
                    if *q {
                        cur.push_str(&v);
                        has = true;
                    } else {
                        split_into(&v, &mut fields, &mut cur, &mut has);
                    }
                }
                Part::Sub(src, q) => {
                    let (out, status) = self.capture(src);
                    self.status = status;
                    let v = out.trim_end_matches('\n');
                    if *q {
                        cur.push_str(v);
                        has = true;
                    } else {
                        split_into(v, &mut fields, &mut cur, &mut has);
                    }
                }
            }
            let size = cur.len() + fields.iter().map(String::len).sum::<usize>();
            if self.over_var(size, "an expanded word") || self.halted() {
                cur.truncate(floor_char(&cur, self.var_max));
                break;
            }
        }
        if has {
            fields.push(cur);
        }
        if glob {
            fields = fields.into_iter().flat_map(|f| self.glob(&f)).collect();
        }
        fields
    }

    /// The value of `${NAME<op>word}`.
    fn param(&mut self, name: &str, op: ParamOp, word: &Word) -> String {
        let set = self.vars.contains_key(name) || matches!(name, "?" | "$" | "#" | "0");
        let v = if set { self.var(name) } else { String::new() };
        let word_text = |sh: &mut Self| sh.expand_one(word).concat();
        match op {
            ParamOp::Len => v.chars().count().to_string(),
            ParamOp::Default(colon) | ParamOp::Assign(colon) => {
                if !set || (colon && v.is_empty()) {
                    let d = word_text(self);
                    if matches!(op, ParamOp::Assign(_)) {
                        self.vars.insert(name.to_string(), d.clone());
                        self.assigned.insert(name.to_string());
                    }
                    d
                } else {
                    v
                }
            }
            ParamOp::Alt(colon) => {
                if set && !(colon && v.is_empty()) {
                    word_text(self)
                } else {
                    String::new()
                }
            }
            ParamOp::TrimPrefix(longest) | ParamOp::TrimSuffix(longest) => {
                let pat = word_text(self);
                let mut cuts: Vec<usize> =
                    (0..=v.len()).filter(|i| v.is_char_boundary(*i)).collect();
                let prefix = matches!(op, ParamOp::TrimPrefix(_));
                // Shortest match first unless `##`/`%%`.
                if prefix == longest {
                    cuts.reverse();
                }
                for i in cuts {
                    let (head, tail) = v.split_at(i);
                    if prefix && wildcard_any(&pat, head) {
                        return tail.to_string();
                    }
                    if !prefix && wildcard_any(&pat, tail) {
                        return head.to_string();
                    }
                }
                v
            }
        }
    }

    /// Expands a pattern with `*`, `?` or `[...]` in any component against
    /// the vfs; no match leaves the word as written.
    fn glob(&self, pat: &str) -> Vec<String> {
        if !pat.contains(['*', '?', '[']) {
            return vec![pat.to_string()];
        }
        let abs = pat.starts_with('/');
        let comps: Vec<&str> = pat.split('/').filter(|c| !c.is_empty()).collect();
        // Partial matches: (shown text, directory path used to resolve).
        let mut cur: Vec<(String, String)> = vec![(
            if abs { "/".to_string() } else { String::new() },
            if abs {
                "/".to_string()
            } else {
                ".".to_string()
            },
        )];
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let mut next = Vec::new();
            for (shown, dir) in &cur {
                let join = |n: &str| {
                    if shown.is_empty() || shown.ends_with('/') {
                        format!("{shown}{n}")
                    } else {
                        format!("{shown}/{n}")
                    }
                };
                if !c.contains(['*', '?', '[']) {
                    let s = join(c);
                    next.push((s.clone(), s));
                    continue;
                }
                let Ok(d) = self.w.vfs.locate(&self.cwd, dir, true) else {
                    continue;
                };
                for child in self.w.vfs.children(&d) {
                    let n = crate::vfs::basename(&child);
                    if (c.starts_with('.') || !n.starts_with('.')) && wildcard(c, n) {
                        let is_dir = self
                            .w
                            .vfs
                            .locate(&self.cwd, &child, true)
                            .ok()
                            .and_then(|p| self.w.vfs.get(&p).map(crate::vfs::Node::is_dir))
                            .unwrap_or(false);
                        if last || is_dir {
                            let s = join(n);
                            next.push((s, child.clone()));
                        }
                    }
                }
            }
            cur = next;
            if cur.len() > MAX_BRACE * 4 {
                break;
            }
        }
        let mut out: Vec<String> = cur
            .into_iter()
            .filter(|(_, p)| {
                self.w
                    .vfs
                    .locate(&self.cwd, p, false)
                    .is_ok_and(|a| self.w.vfs.get(&a).is_some())
            })
            .map(|(s, _)| s)
            .collect();
        if pat.ends_with('/') {
            for o in &mut out {
                o.push('/');
            }
        }
        if out.is_empty() {
            out.push(pat.to_string());
        }
        out.sort();
        out
    }

    /// Expands a redirection target to exactly one field.
    fn target(&mut self, w: &Word) -> Result<String, String> {
        let f = self.expand(w);
        match f.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err("ambiguous redirect".into()),
        }
    }

    /// Runs an expanded command line: records its `exec` effect, then the
    /// program. Programs that run programs (`env`, `xargs`, `find -exec`,
    /// `sudo`) come through here too, so every command they run is an `exec`.
    pub fn run_argv(&mut self, argv: &[String], stdin: String) -> Io {
        let Some(prog) = argv.first() else {
            return Io::default();
        };
        // A stopped call runs (and records) nothing more.
        if self.halted() {
            return Io {
                status: 2,
                ..Io::default()
            };
        }
        let command = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        self.fx.push(effect(
            EffectKind::Exec,
            VIA,
            vec![
                ("program", prog.as_str().into()),
                ("command", command.into()),
            ],
        ));
        if !self.enter() {
            return Io {
                status: 2,
                ..Io::default()
            };
        }
        let mut io = cmds::run(self, argv, stdin);
        self.depth -= 1;
        if io.stdout.len() > self.out_max {
            io.stdout.truncate(floor_char(&io.stdout, self.out_max));
            self.w.hit_cap(
                "shell_output_bytes",
                self.out_max as f64,
                format!("`{prog}` wrote more than {} bytes", self.out_max),
            );
        }
        io
    }

    fn run_simple(&mut self, cmd: &Simple, stdin: Option<String>) -> Io {
        for (name, w) in &cmd.assigns {
            let v = self.expand(w).join(" ");
            if self.over_var(v.len(), &format!("the value assigned to {name}")) {
                return Io::default();
            }
            self.vars.insert(name.clone(), v);
            self.assigned.insert(name.clone());
        }
        let mut argv = Vec::new();
        let mut size = 0;
        for w in &cmd.words {
            for f in self.expand(w) {
                size += f.len() + 1;
                argv.push(f);
            }
            if self.over_args(size) || self.halted() {
                return Io::default();
            }
        }

        // Input redirections.
        let mut input = stdin;
        for r in cmd
            .redirs
            .iter()
            .filter(|r| matches!(r.op, ROp::In | ROp::Here))
        {
            let Some(t) = &r.target else { continue };
            if r.op == ROp::Here {
                input = Some(self.expand(t).concat());
                continue;
            }
            let path = match self.target(t) {
                Ok(p) => p,
                Err(e) => return Io::err(format!("sh: {e}\n"), 1),
            };
            if path == "/dev/null" {
                input = Some(String::new());
                continue;
            }
            if path == "/dev/stdin" {
                continue;
            }
            if path.starts_with("/dev/") {
                self.unsupported("sh", &path, "device files are not modelled");
                return Io::err(format!("sh: {path}: No such device\n"), 1);
            }
            let cwd = self.cwd.clone();
            match self.w.read_file(&cwd, &path, VIA, self.fx) {
                Ok(t) => input = Some(t),
                Err(e) => return Io::err(format!("sh: {path}: {e}\n"), 1),
            }
        }

        let mut io = if argv.is_empty() {
            Io::default()
        } else {
            self.run_argv(&argv, input.unwrap_or_default())
        };

        // Output redirections: route fd 1 and fd 2.
        #[derive(Clone, PartialEq)]
        enum Dest {
            Out,
            Err,
            Null,
            File(String, bool),
        }
        let mut fds = [Dest::Out, Dest::Err];
        let mut files: Vec<(String, bool)> = Vec::new();
        for r in cmd
            .redirs
            .iter()
            .filter(|r| !matches!(r.op, ROp::In | ROp::Here))
        {
            let dest = match (r.op, &r.target) {
                (ROp::Dup(to), _) => match to {
                    1 | 2 => fds[(to - 1) as usize].clone(),
                    _ => continue,
                },
                (op, Some(t)) => {
                    let path = match self.target(t) {
                        Ok(p) => p,
                        Err(e) => return Io::err(format!("{}sh: {e}\n", io.stderr), 1),
                    };
                    let append = matches!(op, ROp::Append | ROp::BothAppend);
                    match path.as_str() {
                        "/dev/null" => Dest::Null,
                        "/dev/stdout" => Dest::Out,
                        "/dev/stderr" => Dest::Err,
                        dev if dev.starts_with("/dev/") => {
                            // `/dev/tcp/HOST/PORT` and other devices: not modelled.
                            self.unsupported("sh", dev, "device files are not modelled");
                            return Io::err(format!("{}sh: {dev}: No such device\n", io.stderr), 1);
                        }
                        _ => {
                            if !files.iter().any(|(p, _)| *p == path) {
                                files.push((path.clone(), append));
                            }
                            Dest::File(path, append)
                        }
                    }
                }
                _ => continue,
            };
            match r.op {
                ROp::Both | ROp::BothAppend => fds = [dest.clone(), dest],
                _ => match r.fd {
                    1 | 2 => fds[(r.fd - 1) as usize] = dest,
                    _ => {}
                },
            }
        }
        let (out, err) = (
            std::mem::take(&mut io.stdout),
            std::mem::take(&mut io.stderr),
        );
        let mut file_data: Vec<String> = vec![String::new(); files.len()];
        for (data, dest) in [(out, &fds[0]), (err, &fds[1])] {
            match dest {
                Dest::Out => io.stdout.push_str(&data),
                Dest::Err => io.stderr.push_str(&data),
                Dest::Null => {}
                Dest::File(p, _) => {
                    if let Some(i) = files.iter().position(|(q, _)| q == p) {
                        file_data[i].push_str(&data);
                    }
                }
            }
        }
        for ((path, append), data) in files.iter().zip(file_data) {
            let cwd = self.cwd.clone();
            if let Err(e) = self.w.write_file(&cwd, path, &data, *append, VIA, self.fx) {
                io.stderr.push_str(&format!("sh: {path}: {e}\n"));
                io.status = 1;
            }
        }
        io
    }
}

/// Largest char boundary at or below `i`.
pub(crate) fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Splits an unquoted expansion on whitespace into `fields`, joining its first
/// and last pieces with the surrounding text of the word.
fn split_into(v: &str, fields: &mut Vec<String>, cur: &mut String, has: &mut bool) {
    if v.is_empty() {
        return;
    }
    let lead = v.starts_with(char::is_whitespace);
    let trail = v.ends_with(char::is_whitespace);
    if lead && *has {
        fields.push(std::mem::take(cur));
        *has = false;
    }
    for (i, piece) in v.split_whitespace().enumerate() {
        if i > 0 {
            fields.push(std::mem::take(cur));
        }
        cur.push_str(piece);
        *has = true;
    }
    if trail && *has {
        fields.push(std::mem::take(cur));
        *has = false;
    }
}

/// Shell-quotes an argument for the `command` field of `exec` effects.
fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// Shell pattern match (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`), as `fnmatch`
/// does for globbing, `find -name` and `case`. A malformed pattern (an
/// unclosed `[`) matches only itself, as in `sh`.
pub(crate) fn wildcard(pat: &str, s: &str) -> bool {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    match glob::Pattern::new(&pat.replace("[^", "[!")) {
        Ok(p) => p.matches_with(s, opts),
        Err(_) => pat == s,
    }
}

/// [`wildcard`] where `*` also matches `/` (`${VAR##*/}`).
pub(crate) fn wildcard_any(pat: &str, s: &str) -> bool {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    match glob::Pattern::new(&pat.replace("[^", "[!")) {
        Ok(p) => p.matches_with(s, opts),
        Err(_) => pat == s,
    }
}

/// Case-insensitive [`wildcard`] (`find -iname`).
pub(crate) fn wildcard_ci(pat: &str, s: &str) -> bool {
    wildcard(&pat.to_lowercase(), &s.to_lowercase())
}

/// Brace expansion of the unquoted literal text of a word: `{a,b}`,
/// `{1..5}`, `{a..e}`, nested and repeated. Errors (beyond
/// [`MAX_BRACE`] words) name the construct.
fn brace_expand(w: &Word) -> Result<Vec<Word>, String> {
    let mut done = Vec::new();
    let mut todo = vec![w.clone()];
    while let Some(w) = todo.pop() {
        let found = w.iter().enumerate().find_map(|(i, p)| match p {
            Part::Lit(s, false) => brace_group(s).map(|g| (i, g)),
            _ => None,
        });
        match found {
            None => done.push(w),
            Some((i, (start, end, alts))) => {
                let Part::Lit(s, _) = &w[i] else {
                    continue;
                };
                for alt in alts.iter().rev() {
                    let mut nw = w.clone();
                    nw[i] = Part::Lit(format!("{}{alt}{}", &s[..start], &s[end + 1..]), false);
                    todo.push(nw);
                }
            }
        }
        if done.len() + todo.len() > MAX_BRACE {
            return Err(format!("brace expansion of more than {MAX_BRACE} words"));
        }
    }
    Ok(done)
}

/// The first expandable `{...}` in `s`: its byte range and alternatives.
fn brace_group(s: &str) -> Option<(usize, usize, Vec<String>)> {
    let b = s.as_bytes();
    for start in (0..b.len()).filter(|&i| b[i] == b'{') {
        let mut depth = 0;
        let mut commas = Vec::new();
        let mut end = None;
        for (j, &c) in b.iter().enumerate().skip(start) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                b',' if depth == 1 => commas.push(j),
                _ => {}
            }
        }
        let Some(end) = end else { continue };
        let inner = &s[start + 1..end];
        if !commas.is_empty() {
            let mut alts = Vec::new();
            let mut from = start + 1;
            for c in commas.into_iter().chain([end]) {
                alts.push(s[from..c].to_string());
                from = c + 1;
            }
            return Some((start, end, alts));
        }
        if let Some((x, y)) = inner.split_once("..") {
            if let (Ok(x), Ok(y)) = (x.parse::<i64>(), y.parse::<i64>()) {
                if x.abs_diff(y) > MAX_BRACE as u64 {
                    return Some((start, end, vec![inner.to_string(); MAX_BRACE + 1]));
                }
                let v: Vec<String> = if x <= y {
                    (x..=y).map(|n| n.to_string()).collect()
                } else {
                    (y..=x).rev().map(|n| n.to_string()).collect()
                };
                return Some((start, end, v));
            }
            let (cx, cy) = (x.chars().collect::<Vec<_>>(), y.chars().collect::<Vec<_>>());
            if let ([a], [z]) = (cx.as_slice(), cy.as_slice())
                && a.is_ascii_alphabetic()
                && z.is_ascii_alphabetic()
            {
                let (a, z) = (*a as u8, *z as u8);
                let v: Vec<String> = if a <= z {
                    (a..=z).map(|c| (c as char).to_string()).collect()
                } else {
                    (z..=a).rev().map(|c| (c as char).to_string()).collect()
                };
                return Some((start, end, v));
            }
        }
    }
    None
}
