//! File programs built on the world's operations: `find`, `xargs`,
//! `truncate`, `tee`, `ln`, `dd`, `shred`, `install`, `test`, and the path
//! helpers. Each destructive idiom yields the same effects as the simple
//! command it amounts to (`find -delete` is a `delete` per path, `truncate
//! -s0` a `write` of nothing), so rules fire whichever way the agent acts.

use super::cmds::opts;
use super::{Io, Sh, VIA};
use crate::ops::{OpErr, apply_symbolic, parse_mode};
use crate::vfs::{Node, NodeKind, basename};

/// One test or action of a `find` expression.
#[derive(Debug, Clone)]
enum Prim {
    Name(String, bool),
    Path(String, bool),
    Type(char),
    Empty,
    Newer,
    True,
    Print(bool),
    Delete,
    Exec(Vec<String>, bool),
}

/// A `find` expression: `!`, `-a` (implicit), `-o`, `( )`.
#[derive(Debug, Clone)]
enum Expr {
    P(Prim),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

struct FindParser<'a> {
    a: &'a [String],
    i: usize,
    maxdepth: Option<usize>,
    mindepth: usize,
    action: bool,
    depth: usize,
}

impl FindParser<'_> {
    fn peek(&self) -> Option<&str> {
        self.a.get(self.i).map(String::as_str)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while matches!(self.peek(), Some("-o" | "-or")) {
            self.i += 1;
            let r = self.and()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        loop {
            match self.peek() {
                None | Some("-o" | "-or" | ")") => return Ok(l),
                Some("-a" | "-and") => self.i += 1,
                _ => {}
            }
            let r = self.unary()?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        // `!` and `(` nest; a bound keeps parsing and evaluation off the stack's edge.
        self.depth += 1;
        if self.depth > 64 {
            return Err("unsupported:expression nested deeper than 64".into());
        }
        let e = self.unary_inner();
        self.depth -= 1;
        e
    }

    fn unary_inner(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some("!" | "-not") => {
                self.i += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.i += 1;
                let e = self.or()?;
                if self.peek() != Some(")") {
                    return Err("find: missing `)'".into());
                }
                self.i += 1;
                Ok(e)
            }
            _ => self.primary(),
        }
    }

    fn value(&mut self, opt: &str) -> Result<String, String> {
        self.i += 1;
        self.a
            .get(self.i)
            .cloned()
            .ok_or_else(|| format!("find: missing argument to `{opt}'"))
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(opt) = self.peek().map(str::to_string) else {
            return Err("find: expected an expression".into());
        };
        let p = match opt.as_str() {
            "-name" | "-iname" => Prim::Name(self.value(&opt)?, opt == "-iname"),
            "-path" | "-wholename" | "-ipath" => Prim::Path(self.value(&opt)?, opt == "-ipath"),
            "-type" => {
                let v = self.value(&opt)?;
                match v.as_str() {
                    "f" | "d" | "l" => Prim::Type(v.chars().next().unwrap_or('f')),
                    _ => return Err(format!("unsupported:-type {v}")),
                }
            }
            "-maxdepth" | "-mindepth" => {
                let v = self.value(&opt)?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("find: invalid argument `{v}' to `{opt}'"))?;
                if opt == "-maxdepth" {
                    self.maxdepth = Some(n);
                } else {
                    self.mindepth = n;
                }
                Prim::True
            }
            "-newer" => {
                // Every file of the world has the same time: none is newer.
                self.value(&opt)?;
                Prim::Newer
            }
            "-empty" => Prim::Empty,
            "-print" | "-print0" => {
                self.action = true;
                Prim::Print(opt == "-print0")
            }
            "-delete" => {
                self.action = true;
                Prim::Delete
            }
            "-exec" | "-ok" => {
                self.action = true;
                let mut cmd = Vec::new();
                loop {
                    self.i += 1;
                    match self.peek() {
                        None => return Err("find: missing argument to `-exec'".into()),
                        Some(";") => break Prim::Exec(cmd, false),
                        Some("+") if cmd.last().is_some_and(|c: &String| c == "{}") => {
                            cmd.pop();
                            break Prim::Exec(cmd, true);
                        }
                        Some(a) => cmd.push(a.to_string()),
                    }
                }
            }
            "-true" => Prim::True,
            "-false" => {
                self.i += 1;
                return Ok(Expr::Not(Box::new(Expr::P(Prim::True))));
            }
            _ => return Err(format!("unsupported:{opt}")),
        };
        self.i += 1;
        Ok(Expr::P(p))
    }
}

/// What one node looks like to `find`'s tests.
struct Cand<'a> {
    shown: &'a str,
    abs: &'a str,
}

struct FindRun {
    out: String,
    err: String,
    status: i32,
    batch: Vec<(Vec<String>, Vec<String>)>,
}

fn eval(sh: &mut Sh<'_>, e: &Expr, c: &Cand<'_>, run: &mut FindRun) -> bool {
    match e {
        Expr::Not(x) => !eval(sh, x, c, run),
        Expr::And(a, b) => eval(sh, a, c, run) && eval(sh, b, c, run),
        Expr::Or(a, b) => eval(sh, a, c, run) || eval(sh, b, c, run),
        Expr::P(p) => match p {
            Prim::True => true,
            Prim::Newer => false,
            Prim::Name(pat, ci) => {
                let base = basename(c.shown.trim_end_matches('/'));
                let base = if base.is_empty() { c.shown } else { base };
                if *ci {
                    super::wildcard_ci(pat, base)
                } else {
                    super::wildcard(pat, base)
                }
            }
            Prim::Path(pat, ci) => {
                if *ci {
                    super::wildcard_ci(pat, c.shown)
                } else {
                    glob_path(pat, c.shown)
                }
            }
            Prim::Type(t) => kind_of(sh.w.vfs.get(c.abs)) == Some(*t),
            Prim::Empty => match sh.w.vfs.get(c.abs).map(|n| &n.kind) {
                Some(NodeKind::File(t)) => t.is_empty(),
                Some(NodeKind::Dir) => sh.w.vfs.children(c.abs).is_empty(),
                _ => false,
            },
            Prim::Print(nul) => {
                run.out.push_str(c.shown);
                run.out.push(if *nul { '\0' } else { '\n' });
                true
            }
            Prim::Delete => {
                let cwd = sh.cwd.clone();
                match sh.w.delete(&cwd, c.abs, false, true, VIA, sh.fx) {
                    Ok(()) => true,
                    Err(e) => {
                        run.err
                            .push_str(&format!("find: cannot delete '{}': {e}\n", c.shown));
                        run.status = 1;
                        false
                    }
                }
            }
            Prim::Exec(cmd, false) => {
                let argv: Vec<String> = cmd.iter().map(|a| a.replace("{}", c.shown)).collect();
                let io = sh.run_argv(&argv, String::new());
                run.out.push_str(&io.stdout);
                run.err.push_str(&io.stderr);
                io.status == 0
            }
            Prim::Exec(cmd, true) => {
                match run.batch.iter_mut().find(|(k, _)| k == cmd) {
                    Some((_, paths)) => paths.push(c.shown.to_string()),
                    None => run.batch.push((cmd.clone(), vec![c.shown.to_string()])),
                }
                true
            }
        },
    }
}

/// `-path` matching, where `*` also matches `/` (as in find).
fn glob_path(pat: &str, s: &str) -> bool {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    glob::Pattern::new(pat).map_or(pat == s, |p| p.matches_with(s, opts))
}

fn kind_of(n: Option<&Node>) -> Option<char> {
    n.map(|n| match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::File(_) => 'f',
        NodeKind::Link(_) => 'l',
    })
}

/// `find [PATH...] [EXPRESSION]`: `-name -iname -path -ipath -type f|d|l
/// -maxdepth -mindepth -newer -empty -print -print0 -delete -exec … {} ;`
/// and `-exec … {} +`, with `!`, `-a`, `-o` and `( )`. `-delete` visits
/// children before their directory, as find's implied `-depth` does.
pub(super) fn find(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut roots = Vec::new();
    let mut i = 0;
    while i < args.len() && !args[i].starts_with('-') && args[i] != "!" && args[i] != "(" {
        roots.push(args[i].clone());
        i += 1;
    }
    // Leading global options.
    let rest = &args[i..];
    let mut p = FindParser {
        a: rest,
        i: 0,
        maxdepth: None,
        mindepth: 0,
        action: false,
        depth: 0,
    };
    while matches!(
        p.peek(),
        Some("-P" | "-H" | "-L" | "-depth" | "-xdev" | "-mount")
    ) {
        if p.peek() == Some("-L") {
            return sh.bad_option("find", "-L", 1);
        }
        p.i += 1;
    }
    let expr = if p.peek().is_none() {
        Expr::P(Prim::True)
    } else {
        match p.or() {
            Ok(e) if p.peek().is_none() => e,
            Ok(_) => {
                let t = p.peek().unwrap_or("").to_string();
                return Io::err(format!("find: paths must precede expression: `{t}'\n"), 1);
            }
            Err(e) => {
                if let Some(opt) = e.strip_prefix("unsupported:") {
                    return sh.bad_option("find", opt, 1);
                }
                return Io::err(format!("{e}\n"), 1);
            }
        }
    };
    let expr = if p.action {
        expr
    } else {
        Expr::And(Box::new(expr), Box::new(Expr::P(Prim::Print(false))))
    };
    let deleting = rest.iter().any(|a| a == "-delete");
    if roots.is_empty() {
        roots.push(".".into());
    }
    let mut run = FindRun {
        out: String::new(),
        err: String::new(),
        status: 0,
        batch: Vec::new(),
    };
    for r in roots {
        let cwd = sh.cwd.clone();
        let abs = match sh.w.list(&cwd, &r, VIA, sh.fx) {
            Ok((abs, _)) => abs,
            Err(e) => {
                run.err.push_str(&format!("find: '{r}': {e}\n"));
                run.status = 1;
                continue;
            }
        };
        let mut all = vec![abs.clone()];
        all.extend(sh.w.vfs.descendants(&abs));
        if deleting {
            all.reverse();
        }
        let base_depth = if abs == "/" {
            0
        } else {
            abs.matches('/').count()
        };
        for node in all {
            if sh.over(run.out.len(), "find") {
                break;
            }
            if sh.w.vfs.get(&node).is_none() {
                continue;
            }
            let depth = if node == abs {
                0
            } else {
                node.matches('/').count() - base_depth
            };
            if depth < p.mindepth || p.maxdepth.is_some_and(|m| depth > m) {
                continue;
            }
            // Below `/` the suffix is the whole path (`/` + name).
            let suffix = if abs == "/" && node != "/" {
                &node[..]
            } else {
                &node[abs.len()..]
            };
            let shown = format!("{}{}", r.trim_end_matches('/'), suffix);
            let shown = if shown.is_empty() {
                "/".to_string()
            } else {
                shown
            };
            eval(
                sh,
                &expr,
                &Cand {
                    shown: &shown,
                    abs: &node,
                },
                &mut run,
            );
        }
    }
    for (cmd, paths) in std::mem::take(&mut run.batch) {
        if sh.halted() {
            break;
        }
        let mut argv = Vec::new();
        for a in &cmd {
            argv.push(a.clone());
        }
        argv.extend(paths);
        let io = sh.run_argv(&argv, String::new());
        run.out.push_str(&io.stdout);
        run.err.push_str(&io.stderr);
        if io.status != 0 {
            run.status = 1;
        }
    }
    Io {
        stdout: run.out,
        stderr: run.err,
        status: run.status,
    }
}

/// Splits `xargs` input into items: blanks and newlines separate, quotes and
/// backslashes group (as GNU xargs without `-0`/`-d`).
fn xargs_items(input: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    has = true;
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                        has = true;
                    }
                }
                c if c.is_whitespace() => {
                    if has {
                        items.push(std::mem::take(&mut cur));
                        has = false;
                    }
                }
                c => {
                    cur.push(c);
                    has = true;
                }
            },
        }
    }
    if has {
        items.push(cur);
    }
    items
}

/// `xargs [-0] [-r] [-n N] [-L N] [-I R] [-d D] [-t] [CMD ARGS...]`: runs CMD
/// (default `echo`) with items from stdin; every run is an `exec` and has
/// the effects of the command it builds.
pub(super) fn xargs(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let mut nul = false;
    let mut no_empty = false;
    let mut per: Option<usize> = None;
    let mut lines: Option<usize> = None;
    let mut repl: Option<String> = None;
    let mut delim: Option<char> = None;
    let mut trace = false;
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
        let a = args[i].as_str();
        let val = |i: &mut usize, inline: &str| -> Option<String> {
            if inline.is_empty() {
                *i += 1;
                args.get(*i).cloned()
            } else {
                Some(inline.to_string())
            }
        };
        match a {
            "--" => {
                i += 1;
                break;
            }
            "-0" | "--null" => nul = true,
            "-r" | "--no-run-if-empty" => no_empty = true,
            "-t" | "--verbose" => trace = true,
            "-x" | "--exit" => {}
            _ if a.starts_with("-P") || a.starts_with("--max-procs") => {
                // Parallelism does not change what runs.
                if a == "-P" {
                    i += 1;
                }
            }
            _ if a.starts_with("-n") || a.starts_with("--max-args=") => {
                let inline = a.strip_prefix("--max-args=").unwrap_or(&a[2..]);
                per = val(&mut i, inline)
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0);
                if per.is_none() {
                    return Io::err("xargs: invalid number for -n option\n".into(), 1);
                }
            }
            _ if a.starts_with("-L") => {
                lines = val(&mut i, &a[2..])
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0);
                if lines.is_none() {
                    return Io::err("xargs: invalid number for -L option\n".into(), 1);
                }
            }
            _ if a.starts_with("-I") || a.starts_with("--replace") => {
                let inline = a
                    .strip_prefix("--replace=")
                    .unwrap_or(a.strip_prefix("-I").unwrap_or("{}"));
                repl = val(&mut i, inline);
            }
            "-i" => repl = Some("{}".into()),
            _ if a.starts_with("-d") || a.starts_with("--delimiter=") => {
                let inline = a.strip_prefix("--delimiter=").unwrap_or(&a[2..]);
                let d = val(&mut i, inline).unwrap_or_default();
                let (d, _) = super::cmds::unescape(&d);
                let mut cs = d.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => delim = Some(c),
                    _ => return sh.bad_option("xargs", a, 1),
                }
            }
            _ => return sh.bad_option("xargs", a, 1),
        }
        i += 1;
    }
    let cmd: Vec<String> = if i < args.len() {
        args[i..].to_vec()
    } else {
        vec!["echo".to_string()]
    };
    let items: Vec<String> = if nul {
        stdin
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    } else if let Some(d) = delim {
        stdin
            .split(d)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    } else if repl.is_some() {
        stdin
            .lines()
            .map(|l| l.trim_start().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    } else if let Some(n) = lines {
        // -L N: N non-blank input lines per command.
        let ls: Vec<&str> = stdin.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut io = Io::default();
        for chunk in ls.chunks(n) {
            if sh.halted() {
                break;
            }
            let mut argv = cmd.clone();
            for l in chunk {
                argv.extend(xargs_items(l));
            }
            one(sh, &argv, trace, &mut io);
        }
        if ls.is_empty() && !no_empty {
            one(sh, &cmd, trace, &mut io);
        }
        return io;
    } else {
        xargs_items(&stdin)
    };
    let mut io = Io::default();
    if items.is_empty() {
        if !no_empty && repl.is_none() {
            one(sh, &cmd, trace, &mut io);
        }
        return io;
    }
    if let Some(r) = &repl {
        for it in &items {
            if sh.halted() {
                break;
            }
            let argv: Vec<String> = cmd.iter().map(|a| a.replace(r.as_str(), it)).collect();
            one(sh, &argv, trace, &mut io);
        }
        return io;
    }
    let per = per.unwrap_or(items.len().max(1));
    for chunk in items.chunks(per) {
        if sh.halted() {
            break;
        }
        let mut argv = cmd.clone();
        argv.extend(chunk.iter().cloned());
        one(sh, &argv, trace, &mut io);
    }
    io
}

/// Runs one command for `xargs`, folding its output and status into `io`.
fn one(sh: &mut Sh<'_>, argv: &[String], trace: bool, io: &mut Io) {
    if trace {
        io.stderr.push_str(&argv.join(" "));
        io.stderr.push('\n');
    }
    let r = sh.run_argv(argv, String::new());
    io.stdout.push_str(&r.stdout);
    io.stderr.push_str(&r.stderr);
    if r.status != 0 {
        io.status = if r.status == 127 { 127 } else { 123 };
    }
}

/// Parses a size with an optional suffix: `K`/`M`/`G`/`T` (powers of 1024),
/// `KB`/`MB`/`GB` (powers of 1000), `c` (1), `w` (2), `b` (512).
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let mult: u64 = match &s[digits..] {
        "" | "c" => 1,
        "w" => 2,
        "b" => 512,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Refuses (with the `file_bytes` cap) a file size above the cap before
/// anything that large is built.
fn file_room(sh: &mut Sh<'_>, size: u64, path: &str) -> bool {
    if size > sh.w.limits.file_bytes {
        sh.w.hit_cap(
            "file_bytes",
            sh.w.limits.file_bytes as f64,
            format!("{path} would be {size} bytes"),
        );
        return false;
    }
    true
}

/// Text of `len` bytes: `text` cut (at a character boundary) or padded with NULs.
fn resize(text: &str, len: usize) -> String {
    if len <= text.len() {
        text[..super::floor_char(text, len)].to_string()
    } else {
        let mut t = text.to_string();
        t.extend(std::iter::repeat_n('\0', len - text.len()));
        t
    }
}

/// `truncate -s [+-<>]SIZE [-c] FILE...`: a `write` of the new content
/// (`-s 0` writes nothing: the whole file is lost).
pub(super) fn truncate(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut size: Option<String> = None;
    let mut no_create = false;
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-s" | "--size" => {
                i += 1;
                size = args.get(i).cloned();
            }
            "-c" | "--no-create" => no_create = true,
            _ if a.starts_with("--size=") => size = Some(a[7..].to_string()),
            _ if a.starts_with("-s") => size = Some(a[2..].to_string()),
            _ if a.starts_with('-') && a.len() > 1 => return sh.bad_option("truncate", a, 1),
            _ => files.push(a.to_string()),
        }
        i += 1;
    }
    let Some(spec) = size else {
        return Io::err("truncate: you must specify '--size'\n".into(), 1);
    };
    if files.is_empty() {
        return Io::err("truncate: missing file operand\n".into(), 1);
    }
    let (op, num) = match spec.chars().next() {
        Some(c @ ('+' | '-' | '<' | '>' | '%' | '/')) => (Some(c), &spec[1..]),
        _ => (None, spec.as_str()),
    };
    let Some(n) = parse_size(num) else {
        return Io::err(format!("truncate: Invalid number: '{spec}'\n"), 1);
    };
    let mut io = Io::default();
    for f in files {
        let cwd = sh.cwd.clone();
        let abs = sh.w.vfs.locate(&cwd, &f, true).ok();
        let old = match abs
            .as_deref()
            .and_then(|a| sh.w.vfs.get(a))
            .map(|n| &n.kind)
        {
            Some(NodeKind::File(t)) => Some(t.clone()),
            Some(NodeKind::Dir) => {
                io.stderr.push_str(&format!(
                    "truncate: cannot open '{f}' for writing: Is a directory\n"
                ));
                io.status = 1;
                continue;
            }
            _ => None,
        };
        if old.is_none() && no_create {
            continue;
        }
        let cur = old.as_deref().unwrap_or("").len() as u64;
        let new = match op {
            None => n,
            Some('+') => cur.saturating_add(n),
            Some('-') => cur.saturating_sub(n),
            Some('<') => cur.min(n),
            Some('>') => cur.max(n),
            Some('%') if n > 0 => cur.div_ceil(n) * n,
            Some('/') if n > 0 => cur / n * n,
            _ => return Io::err("truncate: division by zero\n".into(), 1),
        };
        if !file_room(sh, new, &f) {
            io.stderr.push_str(&format!(
                "truncate: failed to truncate '{f}': File too large\n"
            ));
            io.status = 1;
            break;
        }
        let text = resize(old.as_deref().unwrap_or(""), new as usize);
        if let Err(e) = sh.w.write_file(&cwd, &f, &text, false, VIA, sh.fx) {
            io.stderr
                .push_str(&format!("truncate: cannot open '{f}' for writing: {e}\n"));
            io.status = 1;
        }
    }
    io
}

/// `tee [-a] FILE...`: stdin to every file (a `write` each) and to stdout.
pub(super) fn tee(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let (fl, files) = match opts(args, "ai", &[("append", 'a'), ("ignore-interrupts", 'i')]) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("tee", &e, 1),
    };
    let append = fl.contains(&'a');
    let mut io = Io::ok(stdin.clone());
    for f in files {
        match f.as_str() {
            "/dev/null" => continue,
            "/dev/stdout" | "-" => {
                io.stdout.push_str(&stdin);
                continue;
            }
            "/dev/stderr" => {
                io.stderr.push_str(&stdin);
                continue;
            }
            _ => {}
        }
        let cwd = sh.cwd.clone();
        if let Err(e) = sh.w.write_file(&cwd, f, &stdin, append, VIA, sh.fx) {
            io.stderr.push_str(&format!("tee: {f}: {e}\n"));
            io.status = 1;
        }
    }
    io
}

/// `ln -s [-f] [-n] TARGET LINK` (or `TARGET... DIR`). Hard links cannot be
/// modelled by a text vfs and are recorded as `unsupported`.
pub(super) fn ln(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let (fl, ops) = match opts(
        args,
        "sfnvT",
        &[
            ("symbolic", 's'),
            ("force", 'f'),
            ("no-dereference", 'n'),
            ("verbose", 'v'),
        ],
    ) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("ln", &e, 1),
    };
    if !fl.contains(&'s') {
        sh.unsupported("ln", "hard link", "hard links are not modelled by the vfs");
        return Io::err("ln: hard links are not supported\n".into(), 1);
    }
    let (targets, link) = match ops {
        [] => return Io::err("ln: missing file operand\n".into(), 1),
        [t] => (
            std::slice::from_ref(t),
            basename(t.trim_end_matches('/')).to_string(),
        ),
        _ => (&ops[..ops.len() - 1], ops[ops.len() - 1].clone()),
    };
    let mut io = Io::default();
    for t in targets {
        let cwd = sh.cwd.clone();
        let dest = if targets.len() > 1 {
            format!(
                "{}/{}",
                link.trim_end_matches('/'),
                basename(t.trim_end_matches('/'))
            )
        } else {
            link.clone()
        };
        if let Err(e) = sh.w.symlink(&cwd, t, &dest, fl.contains(&'f'), VIA, sh.fx) {
            io.stderr.push_str(&format!(
                "ln: failed to create symbolic link '{dest}': {e}\n"
            ));
            io.status = 1;
        }
    }
    io
}

/// Deterministic junk of `n` printable bytes (`/dev/urandom`, `shred`): the
/// vfs holds text, so random data is modelled as random ASCII.
fn junk(n: usize, seed: u64) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(33 + (x % 94) as u8)
        })
        .collect()
}

/// `dd if= of= bs= ibs= obs= count= skip= seek= conv=notrunc status=`
/// between files, stdin/stdout, `/dev/zero` (NULs) and `/dev/urandom`
/// (random ASCII). Sizes above the caps are refused before being built.
pub(super) fn dd(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let mut input: Option<String> = None;
    let mut output: Option<String> = None;
    let mut bs: u64 = 512;
    let mut count: Option<u64> = None;
    let mut skip: u64 = 0;
    let mut seek: u64 = 0;
    let mut notrunc = false;
    let mut quiet = false;
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return sh.bad_option("dd", a, 1);
        };
        let num = || parse_size(v);
        match k {
            "if" => input = Some(v.to_string()),
            "of" => output = Some(v.to_string()),
            "bs" | "ibs" | "obs" => match num() {
                Some(n) if n > 0 => bs = n,
                _ => return Io::err(format!("dd: invalid number: '{v}'\n"), 1),
            },
            "count" | "skip" | "seek" => {
                let Some(n) = num() else {
                    return Io::err(format!("dd: invalid number: '{v}'\n"), 1);
                };
                match k {
                    "count" => count = Some(n),
                    "skip" => skip = n,
                    _ => seek = n,
                }
            }
            "conv" => {
                for c in v.split(',') {
                    match c {
                        "notrunc" => notrunc = true,
                        "fsync" | "fdatasync" | "sync" | "noerror" => {}
                        _ => return sh.bad_option("dd", &format!("conv={c}"), 1),
                    }
                }
            }
            "status" => quiet = v == "none",
            _ => return sh.bad_option("dd", a, 1),
        }
    }
    let want = count.map(|c| c.saturating_mul(bs));
    let start = skip.saturating_mul(bs);
    let cap = if output.is_some() {
        sh.w.limits.file_bytes
    } else {
        sh.out_max as u64
    };
    let data: String = match input.as_deref() {
        Some("/dev/zero") | Some("/dev/urandom") | Some("/dev/random") => {
            let n = want.unwrap_or(u64::MAX);
            if n > cap {
                let what = output.as_deref().unwrap_or("dd's output");
                if output.is_some() {
                    file_room(sh, n, what);
                } else {
                    sh.over(usize::MAX, "dd");
                }
                return Io::err("dd: error writing: File too large\n".into(), 1);
            }
            if input.as_deref() == Some("/dev/zero") {
                "\0".repeat(n as usize)
            } else {
                junk(n as usize, n)
            }
        }
        Some(dev) if dev.starts_with("/dev/") && dev != "/dev/stdin" => {
            sh.unsupported("dd", dev, "device files are not modelled");
            return Io::err(format!("dd: failed to open '{dev}': No such device\n"), 1);
        }
        Some("/dev/stdin") | None => slice(&stdin, start, want),
        Some(f) => {
            let cwd = sh.cwd.clone();
            match sh.w.read_file(&cwd, f, VIA, sh.fx) {
                Ok(t) => slice(&t, start, want),
                Err(e) => return Io::err(format!("dd: failed to open '{f}': {e}\n"), 1),
            }
        }
    };
    let n = data.len();
    let records = n.div_ceil(bs.max(1) as usize);
    let report = if quiet {
        String::new()
    } else {
        format!("{records}+0 records in\n{records}+0 records out\n{n} bytes copied\n")
    };
    match output.as_deref() {
        None | Some("/dev/stdout") => Io {
            stdout: data,
            stderr: report,
            status: 0,
        },
        Some("/dev/null") => Io::err(report, 0),
        Some(f) => {
            let cwd = sh.cwd.clone();
            let old =
                sh.w.vfs
                    .locate(&cwd, f, true)
                    .ok()
                    .and_then(|a| match sh.w.vfs.get(&a).map(|n| &n.kind) {
                        Some(NodeKind::File(t)) => Some(t.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
            let at = seek.saturating_mul(bs);
            let end = at.saturating_add(n as u64);
            let total = if notrunc {
                end.max(old.len() as u64)
            } else {
                end
            };
            if !file_room(sh, total, f) {
                return Io::err(format!("dd: error writing '{f}': File too large\n"), 1);
            }
            let mut text = resize(&old, (at as usize).min(old.len()).max(at as usize));
            text.truncate(super::floor_char(&text, at as usize));
            text.push_str(&data);
            if notrunc && old.len() > text.len() {
                let from = super::floor_char(&old, text.len());
                text.push_str(&old[from..]);
            }
            match sh.w.write_file(&cwd, f, &text, false, VIA, sh.fx) {
                Ok(_) => Io::err(report, 0),
                Err(e) => Io::err(format!("dd: failed to open '{f}': {e}\n"), 1),
            }
        }
    }
}

/// `count` blocks from byte `start` of `t` (at character boundaries).
fn slice(t: &str, start: u64, want: Option<u64>) -> String {
    let s = super::floor_char(t, (start as usize).min(t.len()));
    let rest = &t[s..];
    match want {
        Some(w) => rest[..super::floor_char(rest, (w as usize).min(rest.len()))].to_string(),
        None => rest.to_string(),
    }
}

/// `shred [-u] [-z] [-n N] [-f] [-v] FILE...`: overwrites each file with junk
/// of the same size (a `write`), then removes it with `-u` (a `delete`).
pub(super) fn shred(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut remove = false;
    let mut zero = false;
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-n" | "--iterations" | "-s" | "--size" => i += 1,
            "-u" | "--remove" => remove = true,
            "-z" | "--zero" => zero = true,
            "-f" | "--force" | "-v" | "--verbose" | "-x" | "--exact" => {}
            _ if a.starts_with("--iterations=") || a.starts_with("--remove=") => {
                remove |= a.starts_with("--remove");
            }
            _ if a.starts_with('-') && a.len() > 1 => {
                // Bundled short flags (`-uzn3`, `-fuz`).
                let mut ok = true;
                for c in a[1..].chars() {
                    match c {
                        'u' => remove = true,
                        'z' => zero = true,
                        'f' | 'v' | 'x' => {}
                        c if c.is_ascii_digit() || c == 'n' => {}
                        _ => ok = false,
                    }
                }
                if !ok {
                    return sh.bad_option("shred", a, 1);
                }
            }
            _ => files.push(a.to_string()),
        }
        i += 1;
    }
    if files.is_empty() {
        return Io::err("shred: missing file operand\n".into(), 1);
    }
    let mut io = Io::default();
    for f in files {
        let cwd = sh.cwd.clone();
        let old = sh.w.read_file(&cwd, &f, VIA, sh.fx);
        let old = match old {
            Ok(t) => t,
            Err(e) => {
                io.stderr
                    .push_str(&format!("shred: {f}: failed to open for writing: {e}\n"));
                io.status = 1;
                continue;
            }
        };
        let text = if zero {
            "\0".repeat(old.len())
        } else {
            junk(old.len(), old.len() as u64)
        };
        if let Err(e) = sh.w.write_file(&cwd, &f, &text, false, VIA, sh.fx) {
            io.stderr.push_str(&format!("shred: {f}: {e}\n"));
            io.status = 1;
            continue;
        }
        if remove && let Err(e) = sh.w.delete(&cwd, &f, false, false, VIA, sh.fx) {
            io.stderr
                .push_str(&format!("shred: {f}: failed to remove: {e}\n"));
            io.status = 1;
        }
    }
    io
}

/// `install [-m MODE] [-D] SRC DST`, `install -t DIR SRC...`, `install -d DIR...`:
/// a copy (or `mkdir -p`) then the mode (default 0755).
pub(super) fn install(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut mode = "0755".to_string();
    let mut dirs = false;
    let mut target: Option<String> = None;
    let mut ops = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-m" | "--mode" => {
                i += 1;
                mode = args.get(i).cloned().unwrap_or_default();
            }
            "-t" | "--target-directory" => {
                i += 1;
                target = args.get(i).cloned();
            }
            "-d" | "--directory" => dirs = true,
            "-D" | "-v" | "--verbose" | "-c" | "-C" | "--compare" | "-p" => {}
            _ if a.starts_with("--mode=") => mode = a[7..].to_string(),
            _ if a.starts_with("-m") && a.len() > 2 => mode = a[2..].to_string(),
            _ if a.starts_with('-') && a.len() > 1 => return sh.bad_option("install", a, 1),
            _ => ops.push(a.to_string()),
        }
        i += 1;
    }
    let m = parse_mode(&mode).ok_or(mode.as_str());
    if m.is_err() && apply_symbolic(0o755, &mode).is_none() {
        return Io::err(format!("install: invalid mode '{mode}'\n"), 1);
    }
    let mut io = Io::default();
    let cwd = sh.cwd.clone();
    let fail = |io: &mut Io, what: &str, e: OpErr| {
        io.stderr.push_str(&format!("install: {what}: {e}\n"));
        io.status = 1;
    };
    if dirs {
        for d in &ops {
            if let Err(e) = sh.w.mkdir(&cwd, d, true, VIA, sh.fx) {
                fail(&mut io, d, e);
            } else if let Err(e) = sh.w.chmod(&cwd, d, m, VIA, sh.fx) {
                fail(&mut io, d, e);
            }
        }
        return io;
    }
    let pairs: Vec<(String, String)> = match (&target, ops.len()) {
        (Some(t), _) => ops
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    format!("{}/{}", t.trim_end_matches('/'), basename(s)),
                )
            })
            .collect(),
        (None, n) if n >= 2 => {
            let dst = ops[n - 1].clone();
            let into =
                sh.w.vfs
                    .locate(&cwd, &dst, true)
                    .ok()
                    .is_some_and(|p| sh.w.vfs.get(&p).is_some_and(Node::is_dir));
            ops[..n - 1]
                .iter()
                .map(|s| {
                    let d = if into || n > 2 {
                        format!("{}/{}", dst.trim_end_matches('/'), basename(s))
                    } else {
                        dst.clone()
                    };
                    (s.clone(), d)
                })
                .collect()
        }
        _ => return Io::err("install: missing destination file operand\n".into(), 1),
    };
    for (src, dst) in pairs {
        if let Err(e) = sh.w.copy(&cwd, &src, &dst, VIA, sh.fx) {
            fail(&mut io, &src, e);
            continue;
        }
        if let Err(e) = sh.w.chmod(&cwd, &dst, m, VIA, sh.fx) {
            fail(&mut io, &dst, e);
        }
    }
    io
}

/// `test EXPR` / `[ EXPR ]`: `-e -f -d -L -h -s -r -w -x -z -n`, `= == !=`,
/// `-eq -ne -lt -le -gt -ge`, `!`. `-a`/`-o` are recorded as unsupported.
pub(super) fn test(sh: &mut Sh<'_>, prog: &str, args: &[String]) -> Io {
    let args: &[String] = if prog == "[" {
        match args.split_last() {
            Some((last, rest)) if last == "]" => rest,
            _ => return Io::err("[: missing `]'\n".into(), 2),
        }
    } else {
        args
    };
    let (neg, args) = match args.split_first() {
        Some((b, rest)) if b == "!" && !rest.is_empty() => (true, rest),
        _ => (false, args),
    };
    let node = |sh: &Sh<'_>, p: &str, follow: bool| {
        sh.w.vfs
            .locate(&sh.cwd, p, follow)
            .ok()
            .and_then(|a| sh.w.vfs.get(&a).cloned())
    };
    let r = match args {
        [] => Some(false),
        [s] => Some(!s.is_empty()),
        [op, p] => match op.as_str() {
            "-e" | "-r" | "-w" => Some(node(sh, p, true).is_some()),
            "-f" => Some(matches!(
                node(sh, p, true).map(|n| n.kind),
                Some(NodeKind::File(_))
            )),
            "-d" => Some(node(sh, p, true).is_some_and(|n| n.is_dir())),
            "-L" | "-h" => Some(matches!(
                node(sh, p, false).map(|n| n.kind),
                Some(NodeKind::Link(_))
            )),
            "-s" => Some(matches!(
                node(sh, p, true).map(|n| n.kind),
                Some(NodeKind::File(t)) if !t.is_empty()
            )),
            "-x" => Some(node(sh, p, true).is_some_and(|n| n.mode & 0o111 != 0)),
            "-z" => Some(p.is_empty()),
            "-n" => Some(!p.is_empty()),
            _ => None,
        },
        [a, op, b] => {
            let num = |s: &str| s.trim().parse::<i64>().ok();
            match op.as_str() {
                "=" | "==" => Some(a == b),
                "!=" => Some(a != b),
                "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge" => match (num(a), num(b)) {
                    (Some(x), Some(y)) => Some(match op.as_str() {
                        "-eq" => x == y,
                        "-ne" => x != y,
                        "-lt" => x < y,
                        "-le" => x <= y,
                        "-gt" => x > y,
                        _ => x >= y,
                    }),
                    _ => return Io::err(format!("{prog}: integer expression expected\n"), 2),
                },
                _ => None,
            }
        }
        _ => None,
    };
    match r {
        Some(v) => Io {
            status: if v != neg { 0 } else { 1 },
            ..Io::default()
        },
        None => {
            let detail = args.join(" ");
            sh.unsupported(
                prog,
                &detail,
                "test expression not modelled by the embedded shell",
            );
            Io::err(format!("{prog}: unsupported expression: {detail}\n"), 2)
        }
    }
}

/// `basename NAME [SUFFIX]`, `dirname NAME`, `realpath PATH`, `readlink [-f] PATH`.
pub(super) fn path_prog(sh: &mut Sh<'_>, prog: &str, args: &[String]) -> Io {
    let follow = args
        .first()
        .is_some_and(|a| matches!(a.as_str(), "-f" | "-e" | "-m"));
    let ops: Vec<&String> = args
        .iter()
        .filter(|a| !matches!(a.as_str(), "-f" | "-e" | "-m" | "-s" | "-q" | "--"))
        .collect();
    if let Some(bad) = ops.iter().find(|a| a.starts_with('-') && a.len() > 1) {
        let bad = bad.to_string();
        return sh.bad_option(prog, &bad, 1);
    }
    let Some(first) = ops.first() else {
        return Io::err(format!("{prog}: missing operand\n"), 1);
    };
    match prog {
        "basename" => {
            let t = first.trim_end_matches('/');
            let mut b = if t.is_empty() && first.starts_with('/') {
                "/".to_string()
            } else {
                basename(t).to_string()
            };
            if let Some(suf) = ops.get(1)
                && b.len() > suf.len()
                && b.ends_with(suf.as_str())
            {
                b.truncate(b.len() - suf.len());
            }
            Io::ok(format!("{b}\n"))
        }
        "dirname" => {
            let mut out = String::new();
            for p in &ops {
                let t = p.trim_end_matches('/');
                let d = match t.rfind('/') {
                    Some(0) => "/",
                    Some(i) => t[..i].trim_end_matches('/'),
                    None if p.starts_with('/') => "/",
                    None => ".",
                };
                out.push_str(if d.is_empty() { "/" } else { d });
                out.push('\n');
            }
            Io::ok(out)
        }
        _ => {
            let mut io = Io::default();
            for p in &ops {
                let r = if prog == "readlink" && !follow {
                    match sh
                        .w
                        .vfs
                        .locate(&sh.cwd, p, false)
                        .ok()
                        .and_then(|a| sh.w.vfs.get(&a))
                    {
                        Some(Node {
                            kind: NodeKind::Link(t),
                            ..
                        }) => Ok(t.clone()),
                        _ => Err(String::new()),
                    }
                } else {
                    sh.w.vfs.locate(&sh.cwd, p, true).map_err(|e| e.to_string())
                };
                match r {
                    Ok(t) => io.stdout.push_str(&format!("{t}\n")),
                    Err(e) => {
                        if !e.is_empty() {
                            io.stderr.push_str(&format!("{prog}: {p}: {e}\n"));
                        }
                        io.status = 1;
                    }
                }
            }
            io
        }
    }
}
