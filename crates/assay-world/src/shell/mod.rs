//! `shell.exec`: an interpreter for a documented subset of POSIX `sh`
//! (`docs/shell.md`) over the world's virtual filesystem, web and package
//! manager. Every program is a built-in that calls the same operations as the
//! dedicated tools, so effects are identical whichever way the agent acts.
//!
//! Each call starts a fresh shell in `world.cwd` with `world.env`; `cd` and
//! `export` last until the end of that call.

mod cmds;
mod parse;

use std::collections::BTreeMap;

use assay_trace::{Effect, EffectKind};

use crate::World;
use crate::ops::effect;
use parse::{AndOr, Part, ROp, Simple, Word};

/// `via` of every shell effect.
pub(crate) const VIA: &str = "shell.exec";
/// Deepest nesting of `$(...)` and `sh -c`.
const MAX_DEPTH: u32 = 8;
/// Output beyond this is cut, so a runaway pipeline cannot exhaust memory.
const MAX_OUTPUT: usize = 1 << 20;

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
}

/// Runs a command line; returns `ok` (exit status 0) and the output text.
pub(crate) fn exec(w: &mut World, command: &str, fx: &mut Vec<Effect>) -> (bool, String) {
    let cwd = w.cwd();
    let vars = w.env.clone();
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
    /// Parses and runs source text; syntax errors are reported like `sh` (status 2).
    pub fn run_source(&mut self, src: &str) -> i32 {
        match parse::parse(src) {
            Ok(list) => {
                for ao in &list {
                    self.status = self.run_and_or(ao);
                    if self.exit {
                        break;
                    }
                }
                self.status
            }
            Err(e) => {
                self.term.push_str(&format!("sh: {e}\n"));
                self.status = 2;
                2
            }
        }
    }

    /// Runs `src` in this shell and returns what it wrote to stdout.
    pub fn capture(&mut self, src: &str) -> (String, i32) {
        if self.depth >= MAX_DEPTH {
            self.term.push_str("sh: maximum nesting depth exceeded\n");
            return (String::new(), 2);
        }
        self.depth += 1;
        self.capture.push(String::new());
        let status = self.run_source(src);
        let out = self.capture.pop().unwrap_or_default();
        self.depth -= 1;
        self.exit = false;
        (out, status)
    }

    fn stdout(&mut self, s: &str) {
        let buf = self.capture.last_mut().unwrap_or(&mut self.term);
        if buf.len() < MAX_OUTPUT {
            buf.push_str(s);
        }
    }

    fn stderr(&mut self, s: &str) {
        if self.term.len() < MAX_OUTPUT {
            self.term.push_str(s);
        }
    }

    fn run_and_or(&mut self, ao: &AndOr) -> i32 {
        let mut status = self.run_pipeline(&ao.first);
        for (and, p) in &ao.rest {
            if self.exit {
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
        for (i, cmd) in p.iter().enumerate() {
            let io = self.run_simple(cmd, input.take());
            self.stderr(&io.stderr);
            if i + 1 == p.len() {
                self.stdout(&io.stdout);
            } else {
                input = Some(io.stdout);
            }
            status = io.status;
            self.status = status;
            if self.exit {
                break;
            }
        }
        status
    }

    /// Value of a variable; a world `env` variable read records a `read` effect.
    fn var(&mut self, name: &str) -> String {
        match name {
            "?" => return self.status.to_string(),
            "$" => return "1".into(),
            "#" => return "0".into(),
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

    /// Expands a word into fields: variables, command substitution, splitting of
    /// unquoted expansions on whitespace, and globbing of unquoted `*`/`?`.
    pub fn expand(&mut self, w: &Word) -> Vec<String> {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut has = false;
        let mut glob = false;
        for p in w {
            match p {
                Part::Lit(s, q) => {
                    cur.push_str(s);
                    has = true;
                    glob |= !q && s.contains(['*', '?']);
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
        }
        if has {
            fields.push(cur);
        }
        if glob {
            fields = fields.into_iter().flat_map(|f| self.glob(&f)).collect();
        }
        fields
    }

    /// Expands a pattern whose last component holds `*`/`?` against the vfs.
    fn glob(&self, pat: &str) -> Vec<String> {
        if !pat.contains(['*', '?']) {
            return vec![pat.to_string()];
        }
        let (dir, name) = match pat.rfind('/') {
            Some(i) => (&pat[..=i], &pat[i + 1..]),
            None => ("", pat),
        };
        if dir.contains(['*', '?']) {
            return vec![pat.to_string()];
        }
        let Ok(abs) = self
            .w
            .vfs
            .locate(&self.cwd, if dir.is_empty() { "." } else { dir }, true)
        else {
            return vec![pat.to_string()];
        };
        let mut out: Vec<String> = self
            .w
            .vfs
            .children(&abs)
            .iter()
            .map(|c| crate::vfs::basename(c))
            .filter(|n| (name.starts_with('.') || !n.starts_with('.')) && wildcard(name, n))
            .map(|n| format!("{dir}{n}"))
            .collect();
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

    fn run_simple(&mut self, cmd: &Simple, stdin: Option<String>) -> Io {
        for (name, w) in &cmd.assigns {
            let v = self.expand(w).join(" ");
            self.vars.insert(name.clone(), v);
            self.assigned.insert(name.clone());
        }
        let mut argv = Vec::new();
        for w in &cmd.words {
            argv.extend(self.expand(w));
        }
        if let Some(prog) = argv.first() {
            let command = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
            self.fx.push(effect(
                EffectKind::Exec,
                VIA,
                vec![
                    ("program", prog.as_str().into()),
                    ("command", command.into()),
                ],
            ));
        }

        // Input redirections.
        let mut input = stdin;
        for r in cmd.redirs.iter().filter(|r| r.op == ROp::In) {
            let Some(t) = &r.target else { continue };
            let path = match self.target(t) {
                Ok(p) => p,
                Err(e) => return Io::err(format!("sh: {e}\n"), 1),
            };
            if path == "/dev/null" {
                input = Some(String::new());
                continue;
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
            cmds::run(self, &argv, input.unwrap_or_default())
        };
        if io.stdout.len() > MAX_OUTPUT {
            io.stdout.truncate(floor_char(&io.stdout, MAX_OUTPUT));
        }

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
        for r in cmd.redirs.iter().filter(|r| r.op != ROp::In) {
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
fn floor_char(s: &str, mut i: usize) -> usize {
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

/// `*` / `?` wildcard match.
pub(crate) fn wildcard(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}
