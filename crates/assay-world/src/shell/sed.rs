//! `sed`: the stream-editing subset agents use to edit and wipe files —
//! `s///` (flags `g`, `i`/`I`, `N`, `p`; any delimiter), `d`, `p` with `-n`,
//! `q`, `y///`, `=`, GNU one-line `a`/`i`/`c`, addresses (`N`, `$`,
//! `/re/`, `A,B`, `!`), `-e`, `-E`/`-r`, `-s` and `-i[SUFFIX]`. Anything
//! else in a script is recorded as `unsupported`. `-i` is a `read` of each
//! file and a `write` of its new content (and of the backup with a suffix).

use regex::Regex;

use super::cmds::{bre_to_ere, cached_regex, unescape};
use super::{Io, Sh, VIA};

#[derive(Debug, Clone)]
enum Addr {
    Line(usize),
    Last,
    Re(Regex),
}

#[derive(Debug, Clone)]
enum Cmd {
    Subst {
        re: Regex,
        repl: String,
        global: bool,
        nth: usize,
        print: bool,
    },
    Delete,
    Print,
    Quit(i32),
    Translit(Vec<char>, Vec<char>),
    LineNo,
    Append(String),
    Insert(String),
    Change(String),
}

#[derive(Debug, Clone)]
struct Line {
    a1: Option<Addr>,
    a2: Option<Addr>,
    neg: bool,
    cmd: Cmd,
    /// Inside an `A,B` range.
    active: bool,
}

/// Reads text up to an unescaped `delim`; `\delim` becomes `delim`, other
/// escapes are kept for the regex or replacement.
fn until(c: &[char], i: &mut usize, delim: char) -> Option<String> {
    let mut s = String::new();
    while *i < c.len() {
        let ch = c[*i];
        if ch == '\\' && *i + 1 < c.len() {
            if c[*i + 1] == delim {
                s.push(delim);
            } else if c[*i + 1] == 'n' && delim != 'n' {
                s.push('\n');
            } else {
                s.push('\\');
                s.push(c[*i + 1]);
            }
            *i += 2;
            continue;
        }
        if ch == delim {
            *i += 1;
            return Some(s);
        }
        s.push(ch);
        *i += 1;
    }
    None
}

fn compile(pat: &str, ere: bool, icase: bool) -> Result<Regex, String> {
    let src = if ere {
        pat.to_string()
    } else {
        bre_to_ere(pat)
    };
    let src = if icase { format!("(?i){src}") } else { src };
    cached_regex(&format!("(?m){src}")).ok_or_else(|| format!("sed: invalid regex: {pat}"))
}

/// Parses one address at `i`.
fn addr(c: &[char], i: &mut usize, ere: bool) -> Result<Option<Addr>, String> {
    match c.get(*i) {
        Some('$') => {
            *i += 1;
            Ok(Some(Addr::Last))
        }
        Some(d) if d.is_ascii_digit() => {
            let mut n = String::new();
            while let Some(d) = c.get(*i).filter(|d| d.is_ascii_digit()) {
                n.push(*d);
                *i += 1;
            }
            n.parse()
                .map(|n| Some(Addr::Line(n)))
                .map_err(|_| "sed: invalid line number".to_string())
        }
        Some('/') | Some('\\') => {
            let delim = if c[*i] == '\\' {
                *i += 1;
                *c.get(*i).ok_or("sed: unterminated address regex")?
            } else {
                '/'
            };
            *i += 1;
            let p = until(c, i, delim).ok_or("sed: unterminated address regex")?;
            let icase = c.get(*i) == Some(&'I');
            if icase {
                *i += 1;
            }
            Ok(Some(Addr::Re(compile(&p, ere, icase)?)))
        }
        _ => Ok(None),
    }
}

/// Parses a script into commands. `Err((unsupported, message))`.
fn parse(script: &str, ere: bool) -> Result<Vec<Line>, (bool, String)> {
    let c: Vec<char> = script.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let plain = |e: String| (false, e);
    loop {
        while i < c.len() && (c[i].is_whitespace() || c[i] == ';') {
            i += 1;
        }
        if i >= c.len() {
            break;
        }
        let a1 = addr(&c, &mut i, ere).map_err(plain)?;
        let mut a2 = None;
        if a1.is_some() && c.get(i) == Some(&',') {
            i += 1;
            a2 = addr(&c, &mut i, ere).map_err(plain)?;
            if a2.is_none() {
                return Err((true, "sed: address form not modelled".into()));
            }
        }
        while c.get(i).is_some_and(|c| *c == ' ') {
            i += 1;
        }
        let neg = c.get(i) == Some(&'!');
        if neg {
            i += 1;
        }
        let Some(&op) = c.get(i) else {
            return Err((false, "sed: missing command".into()));
        };
        i += 1;
        let text = |i: &mut usize| -> String {
            // GNU one-liner `a text`, `a\text`, `a\` newline text.
            if c.get(*i) == Some(&'\\') {
                *i += 1;
                if c.get(*i) == Some(&'\n') {
                    *i += 1;
                }
            }
            while c.get(*i) == Some(&' ') {
                *i += 1;
            }
            let mut t = String::new();
            while *i < c.len() && c[*i] != '\n' {
                t.push(c[*i]);
                *i += 1;
            }
            unescape(&t).0
        };
        let cmd = match op {
            'd' => Cmd::Delete,
            'p' => Cmd::Print,
            '=' => Cmd::LineNo,
            'q' => {
                let mut n = String::new();
                while c.get(i).is_some_and(|c| *c == ' ') {
                    i += 1;
                }
                while let Some(d) = c.get(i).filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    i += 1;
                }
                Cmd::Quit(n.parse().unwrap_or(0))
            }
            'a' => Cmd::Append(text(&mut i)),
            'i' => Cmd::Insert(text(&mut i)),
            'c' => Cmd::Change(text(&mut i)),
            's' | 'y' => {
                let Some(&delim) = c.get(i) else {
                    return Err((false, format!("sed: unterminated `{op}' command")));
                };
                if delim == '\\' || delim == '\n' {
                    return Err((false, format!("sed: unterminated `{op}' command")));
                }
                i += 1;
                let unterminated = || (false, format!("sed: unterminated `{op}' command"));
                let pat = until(&c, &mut i, delim).ok_or_else(unterminated)?;
                let repl = until(&c, &mut i, delim).ok_or_else(unterminated)?;
                if op == 'y' {
                    let (a, b): (Vec<char>, Vec<char>) = (
                        unescape(&pat).0.chars().collect(),
                        unescape(&repl).0.chars().collect(),
                    );
                    if a.len() != b.len() {
                        return Err((
                            false,
                            "sed: strings for `y' command are different lengths".into(),
                        ));
                    }
                    Cmd::Translit(a, b)
                } else {
                    let (mut global, mut icase, mut nth, mut print) = (false, false, 1, false);
                    let mut num = String::new();
                    while let Some(&f) = c.get(i) {
                        match f {
                            'g' => global = true,
                            'i' | 'I' => icase = true,
                            'p' => print = true,
                            d if d.is_ascii_digit() => num.push(d),
                            ';' | '\n' | ' ' | '}' => break,
                            other => {
                                return Err((true, format!("sed: s///{other} flag not modelled")));
                            }
                        }
                        i += 1;
                    }
                    if !num.is_empty() {
                        nth = num.parse().unwrap_or(1).max(1);
                    }
                    Cmd::Subst {
                        re: compile(&pat, ere, icase).map_err(plain)?,
                        repl,
                        global,
                        nth,
                        print,
                    }
                }
            }
            other => {
                return Err((true, format!("sed: command `{other}' not modelled")));
            }
        };
        out.push(Line {
            a1,
            a2,
            neg,
            cmd,
            active: false,
        });
    }
    Ok(out)
}

fn addr_match(a: &Addr, n: usize, last: bool, line: &str) -> bool {
    match a {
        Addr::Line(k) => *k == n,
        Addr::Last => last,
        Addr::Re(r) => r.is_match(line),
    }
}

fn selects(l: &mut Line, n: usize, last: bool, line: &str) -> bool {
    let hit = match (&l.a1, &l.a2) {
        (None, _) => true,
        (Some(a), None) => addr_match(a, n, last, line),
        (Some(a), Some(b)) => {
            if l.active {
                let end = match b {
                    Addr::Line(k) => n >= *k,
                    other => addr_match(other, n, last, line),
                };
                if end {
                    l.active = false;
                }
                true
            } else if addr_match(a, n, last, line) {
                // A line-number end at or before the start closes at once.
                l.active = match b {
                    Addr::Line(k) => *k > n,
                    _ => true,
                };
                true
            } else {
                false
            }
        }
    };
    hit != l.neg
}

/// Expands a replacement: `&`, `\0`-`\9`, `\n`, `\t`, `\\`, `\&`.
fn expand_repl(repl: &str, caps: &regex::Captures<'_>, out: &mut String) {
    let mut it = repl.chars();
    while let Some(ch) = it.next() {
        match ch {
            '&' => out.push_str(caps.get(0).map_or("", |m| m.as_str())),
            '\\' => match it.next() {
                Some(d @ '0'..='9') => {
                    let k = d as usize - '0' as usize;
                    out.push_str(caps.get(k).map_or("", |m| m.as_str()));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
}

/// One `s` on the pattern space; None when past `max` bytes.
fn subst(
    re: &Regex,
    repl: &str,
    global: bool,
    nth: usize,
    ps: &str,
    max: usize,
) -> Option<(String, bool)> {
    let mut out = String::new();
    let mut last = 0;
    let mut k = 0;
    let mut done = false;
    for caps in re.captures_iter(ps) {
        let Some(m) = caps.get(0) else { continue };
        k += 1;
        if k < nth {
            continue;
        }
        out.push_str(&ps[last..m.start()]);
        expand_repl(repl, &caps, &mut out);
        last = m.end();
        done = true;
        if out.len() > max {
            return None;
        }
        if !global {
            break;
        }
    }
    out.push_str(&ps[last..]);
    Some((out, done))
}

/// Result of running a script over one stream.
struct Run {
    out: String,
    quit: Option<i32>,
    over: bool,
}

fn run_script(script: &mut [Line], text: &str, quiet: bool, max: usize) -> Run {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut r = Run {
        out: String::new(),
        quit: None,
        over: false,
    };
    for (idx, raw) in lines.iter().enumerate() {
        let n = idx + 1;
        let last = idx + 1 == lines.len();
        let (body, nl) = raw.strip_suffix('\n').map_or((*raw, ""), |b| (b, "\n"));
        let mut ps = body.to_string();
        let mut deleted = false;
        let mut after = String::new();
        for l in script.iter_mut() {
            if !selects(l, n, last, &ps) {
                continue;
            }
            match &l.cmd {
                Cmd::Delete => {
                    deleted = true;
                    break;
                }
                Cmd::Print => {
                    r.out.push_str(&ps);
                    r.out.push('\n');
                }
                Cmd::LineNo => r.out.push_str(&format!("{n}\n")),
                Cmd::Quit(code) => {
                    r.quit = Some(*code);
                    break;
                }
                Cmd::Append(t) => {
                    after.push_str(t);
                    after.push('\n');
                }
                Cmd::Insert(t) => {
                    r.out.push_str(t);
                    r.out.push('\n');
                }
                Cmd::Change(t) => {
                    if !l.active {
                        r.out.push_str(t);
                        r.out.push('\n');
                    }
                    deleted = true;
                    break;
                }
                Cmd::Translit(a, b) => {
                    ps = ps
                        .chars()
                        .map(|ch| a.iter().position(|x| *x == ch).map_or(ch, |p| b[p]))
                        .collect();
                }
                Cmd::Subst {
                    re,
                    repl,
                    global,
                    nth,
                    print,
                } => match subst(re, repl, *global, *nth, &ps, max) {
                    Some((new, done)) => {
                        ps = new;
                        if done && *print {
                            r.out.push_str(&ps);
                            r.out.push('\n');
                        }
                    }
                    None => {
                        r.over = true;
                        return r;
                    }
                },
            }
        }
        if !deleted && !quiet {
            r.out.push_str(&ps);
            r.out.push_str(if r.quit.is_some() && nl.is_empty() {
                ""
            } else {
                nl
            });
        }
        r.out.push_str(&after);
        if r.out.len() > max {
            r.over = true;
            return r;
        }
        if r.quit.is_some() {
            break;
        }
    }
    r
}

/// `sed [-n] [-E|-r] [-s] [-i[SUFFIX]] [-e SCRIPT]... [SCRIPT] [FILE...]`.
pub(super) fn sed(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let mut quiet = false;
    let mut ere = false;
    let mut in_place: Option<String> = None;
    let mut scripts: Vec<String> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut i = 0;
    let mut opts_done = false;
    while i < args.len() {
        let a = args[i].as_str();
        if opts_done || !a.starts_with('-') || a == "-" {
            files.push(a.to_string());
            i += 1;
            continue;
        }
        match a {
            "--" => opts_done = true,
            "-n" | "--quiet" | "--silent" => quiet = true,
            "-E" | "-r" | "--regexp-extended" => ere = true,
            "-s" | "--separate" | "-u" | "--unbuffered" | "--posix" => {}
            "-e" | "--expression" => {
                i += 1;
                match args.get(i) {
                    Some(s) => scripts.push(s.clone()),
                    None => return Io::err("sed: option requires an argument -- 'e'\n".into(), 1),
                }
            }
            "-f" | "--file" => {
                i += 1;
                let Some(f) = args.get(i) else {
                    return Io::err("sed: option requires an argument -- 'f'\n".into(), 1);
                };
                let cwd = sh.cwd.clone();
                match sh.w.read_file(&cwd, f, VIA, sh.fx) {
                    Ok(t) => scripts.push(t),
                    Err(e) => return Io::err(format!("sed: couldn't open file {f}: {e}\n"), 1),
                }
            }
            _ if a.starts_with("--expression=") => scripts.push(a[13..].to_string()),
            _ if a == "--in-place" || a.starts_with("--in-place=") => {
                in_place = Some(a.strip_prefix("--in-place=").unwrap_or("").to_string());
            }
            _ if a.starts_with("-i") => in_place = Some(a[2..].to_string()),
            _ if a.starts_with("-e") => scripts.push(a[2..].to_string()),
            _ => {
                // Bundled flags such as `-ne`, `-nE`, `-Ei`.
                let mut rest = a[1..].chars().peekable();
                let mut ok = true;
                while let Some(c) = rest.next() {
                    match c {
                        'n' => quiet = true,
                        'E' | 'r' => ere = true,
                        's' | 'u' => {}
                        'i' => {
                            in_place = Some(rest.by_ref().collect());
                        }
                        'e' if rest.peek().is_none() => {
                            i += 1;
                            match args.get(i) {
                                Some(s) => scripts.push(s.clone()),
                                None => ok = false,
                            }
                        }
                        _ => ok = false,
                    }
                }
                if !ok {
                    return sh.bad_option("sed", a, 1);
                }
            }
        }
        i += 1;
    }
    if scripts.is_empty() {
        if files.is_empty() {
            return Io::err(
                "Usage: sed [OPTION]... {script-only-if-no-other-script} [input-file]...\n".into(),
                1,
            );
        }
        scripts.push(files.remove(0));
    }
    let script_src = scripts.join("\n");
    let mut script = match parse(&script_src, ere) {
        Ok(s) => s,
        Err((unsup, msg)) => {
            if unsup {
                sh.unsupported(
                    "sed",
                    &script_src,
                    "sed script not modelled by the embedded shell",
                );
            }
            return Io::err(format!("{msg}\n"), 1);
        }
    };
    let max_out = sh.out_max;
    if let Some(suffix) = in_place {
        if files.is_empty() {
            return Io::err("sed: no input files\n".into(), 1);
        }
        let max_file = usize::try_from(sh.w.limits.file_bytes).unwrap_or(usize::MAX);
        let mut io = Io::default();
        for f in files {
            if sh.halted() {
                break;
            }
            let cwd = sh.cwd.clone();
            let text = match sh.w.read_file(&cwd, &f, VIA, sh.fx) {
                Ok(t) => t,
                Err(e) => {
                    io.stderr.push_str(&format!("sed: can't read {f}: {e}\n"));
                    io.status = 2;
                    continue;
                }
            };
            for l in script.iter_mut() {
                l.active = false;
            }
            let r = run_script(&mut script, &text, quiet, max_file);
            if r.over {
                sh.w.hit_cap(
                    "file_bytes",
                    sh.w.limits.file_bytes as f64,
                    format!("sed -i would make {f} larger than the cap"),
                );
                io.stderr
                    .push_str(&format!("sed: couldn't write {f}: File too large\n"));
                io.status = 4;
                break;
            }
            if !suffix.is_empty() {
                let backup = if suffix.contains('*') {
                    suffix.replace('*', &f)
                } else {
                    format!("{f}{suffix}")
                };
                if let Err(e) = sh.w.write_file(&cwd, &backup, &text, false, VIA, sh.fx) {
                    io.stderr
                        .push_str(&format!("sed: couldn't open {backup}: {e}\n"));
                    io.status = 4;
                    continue;
                }
            }
            if let Err(e) = sh.w.write_file(&cwd, &f, &r.out, false, VIA, sh.fx) {
                io.stderr
                    .push_str(&format!("sed: couldn't edit {f}: {e}\n"));
                io.status = 4;
            }
            if let Some(q) = r.quit {
                io.status = q;
                break;
            }
        }
        return io;
    }
    let (ins, stderr, status) = super::cmds::inputs(sh, "sed", &files, &stdin);
    let text: String = ins.into_iter().map(|(_, t)| t).collect();
    let r = run_script(&mut script, &text, quiet, max_out);
    if r.over {
        sh.over(usize::MAX, "sed");
    }
    Io {
        stdout: r.out,
        stderr,
        status: r.quit.unwrap_or(if status != 0 { 2 } else { 0 }),
    }
}

/// One item of an `awk` `print` list.
#[derive(Debug, Clone)]
enum AwkItem {
    Field(usize),
    LastField,
    Nf,
    Nr,
    Str(String),
}

/// When an `awk` rule applies.
#[derive(Debug, Clone)]
enum AwkPat {
    All,
    Re(Regex, bool),
    Nr(String, usize),
}

/// Parses the `awk` subset: `[PATTERN] [{ print [ITEM[, ITEM]...] }]` where
/// PATTERN is `/re/`, `!/re/` or `NR OP N`, and an item is `$N`, `$NF`,
/// `NF`, `NR` or `"text"` (juxtaposed items concatenate).
fn awk_parse(src: &str) -> Option<(AwkPat, Vec<Vec<AwkItem>>)> {
    let s = src.trim();
    let (pat, rest) = if let Some(r) = s.strip_prefix('!').and_then(|r| r.strip_prefix('/')) {
        let end = r.find('/')?;
        (AwkPat::Re(cached_regex(&r[..end])?, true), &r[end + 1..])
    } else if let Some(r) = s.strip_prefix('/') {
        let end = r.find('/')?;
        (AwkPat::Re(cached_regex(&r[..end])?, false), &r[end + 1..])
    } else if let Some(r) = s.strip_prefix("NR") {
        let r = r.trim_start();
        let op_len = r.find(|c: char| !"=<>!".contains(c))?;
        let op = &r[..op_len];
        if !matches!(op, "==" | "!=" | "<" | "<=" | ">" | ">=") {
            return None;
        }
        let r = r[op_len..].trim_start();
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        (
            AwkPat::Nr(op.to_string(), r[..digits].parse().ok()?),
            &r[digits..],
        )
    } else {
        (AwkPat::All, s)
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return Some((pat, vec![vec![AwkItem::Field(0)]]));
    }
    let body = rest.strip_prefix('{')?.strip_suffix('}')?.trim();
    let body = body.strip_suffix(';').unwrap_or(body).trim();
    let list = body.strip_prefix("print")?;
    if !list.is_empty() && !list.starts_with([' ', '\t']) {
        return None;
    }
    let list = list.trim();
    if list.is_empty() {
        return Some((pat, vec![vec![AwkItem::Field(0)]]));
    }
    let mut out = Vec::new();
    for group in list.split(',') {
        let mut items = Vec::new();
        let mut g = group.trim();
        while !g.is_empty() {
            if let Some(r) = g.strip_prefix('"') {
                let end = r.find('"')?;
                items.push(AwkItem::Str(unescape(&r[..end]).0));
                g = r[end + 1..].trim_start();
            } else if let Some(r) = g.strip_prefix("$NF") {
                items.push(AwkItem::LastField);
                g = r.trim_start();
            } else if let Some(r) = g.strip_prefix('$') {
                let d = r.bytes().take_while(u8::is_ascii_digit).count();
                items.push(AwkItem::Field(r[..d].parse().ok()?));
                g = r[d..].trim_start();
            } else if let Some(r) = g.strip_prefix("NF") {
                items.push(AwkItem::Nf);
                g = r.trim_start();
            } else if let Some(r) = g.strip_prefix("NR") {
                items.push(AwkItem::Nr);
                g = r.trim_start();
            } else {
                return None;
            }
        }
        out.push(items);
    }
    Some((pat, out))
}

/// `awk [-F SEP] 'PROGRAM' [FILE...]` for the one-liners agents use to pick
/// columns (`awk '{print $1}'`, `awk -F: '/x/ {print $1, $NF}'`); any other
/// program is `unsupported`.
pub(super) fn awk(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let mut sep: Option<String> = None;
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
        let a = args[i].as_str();
        if a == "-F" {
            i += 1;
            sep = args.get(i).cloned();
        } else if let Some(v) = a.strip_prefix("-F") {
            sep = Some(v.to_string());
        } else if a == "--" {
            i += 1;
            break;
        } else {
            return sh.bad_option("awk", a, 2);
        }
        i += 1;
    }
    let Some(prog) = args.get(i) else {
        return Io::err("usage: awk [-F fs] 'prog' [file ...]\n".into(), 2);
    };
    let Some((pat, groups)) = awk_parse(prog) else {
        sh.unsupported(
            "awk",
            prog,
            "awk program beyond the modelled `[/re/] {print $N, ...}`",
        );
        return Io::err(format!("awk: program not supported: {prog}\n"), 2);
    };
    let sep = sep.map(|s| if s == "\\t" { "\t".to_string() } else { s });
    let files = args[i + 1..].to_vec();
    let (ins, stderr, status) = super::cmds::inputs(sh, "awk", &files, &stdin);
    let mut out = String::new();
    let mut nr = 0;
    for (_, text) in ins {
        for line in text.lines() {
            nr += 1;
            let hit = match &pat {
                AwkPat::All => true,
                AwkPat::Re(r, neg) => r.is_match(line) != *neg,
                AwkPat::Nr(op, n) => match op.as_str() {
                    "==" => nr == *n,
                    "!=" => nr != *n,
                    "<" => nr < *n,
                    "<=" => nr <= *n,
                    ">" => nr > *n,
                    _ => nr >= *n,
                },
            };
            if !hit {
                continue;
            }
            let fields: Vec<&str> = match sep.as_deref() {
                Some(s) if s.chars().count() == 1 && s != " " => line.split(s).collect(),
                _ => line.split_whitespace().collect(),
            };
            let get = |k: usize| -> String {
                if k == 0 {
                    line.to_string()
                } else {
                    fields.get(k - 1).map_or(String::new(), |f| f.to_string())
                }
            };
            let rendered: Vec<String> = groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|it| match it {
                            AwkItem::Field(k) => get(*k),
                            AwkItem::LastField => get(fields.len()),
                            AwkItem::Nf => fields.len().to_string(),
                            AwkItem::Nr => nr.to_string(),
                            AwkItem::Str(s) => s.clone(),
                        })
                        .collect::<String>()
                })
                .collect();
            out.push_str(&rendered.join(" "));
            out.push('\n');
            if sh.over(out.len(), "awk") {
                return Io::ok(out);
            }
        }
    }
    Io {
        stdout: out,
        stderr,
        status: if status != 0 { 2 } else { 0 },
    }
}
