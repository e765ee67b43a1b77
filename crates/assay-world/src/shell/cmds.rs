//! The shell's programs. Each is a function of the shell, its argv and its
//! stdin; file, network and package access goes through `World`'s operations.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Io, Sh, VIA};
use crate::ops::{apply_symbolic, parse_mode};

/// Runs one program.
pub(super) fn run(sh: &mut Sh<'_>, argv: &[String], stdin: String) -> Io {
    let args = &argv[1..];
    match argv[0].as_str() {
        "cat" => cat(sh, args, stdin),
        "ls" => ls(sh, args),
        "head" => head_tail(sh, "head", args, stdin),
        "tail" => head_tail(sh, "tail", args, stdin),
        "grep" | "egrep" | "fgrep" => grep(sh, &argv[0], args, stdin),
        "echo" => echo(args),
        "printf" => match args.split_first() {
            Some((fmt, rest)) => Io::ok(printf(fmt, rest)),
            None => Io::err("printf: usage: printf format [arguments]\n".into(), 2),
        },
        "cp" => cp_mv(sh, "cp", args),
        "mv" => cp_mv(sh, "mv", args),
        "rm" => rm(sh, args),
        "mkdir" => mkdir(sh, args),
        "touch" => touch(sh, args),
        "chmod" => chmod(sh, args),
        "env" | "printenv" => env(sh, &argv[0], args, stdin),
        "export" => {
            for a in args {
                match a.split_once('=') {
                    Some((k, v)) if super::parse::valid_name(k) => {
                        sh.vars.insert(k.to_string(), v.to_string());
                        sh.assigned.insert(k.to_string());
                    }
                    Some((k, _)) => {
                        return Io::err(format!("sh: export: `{k}': not a valid identifier\n"), 1);
                    }
                    None => {}
                }
            }
            Io::default()
        }
        "unset" => {
            for a in args {
                sh.vars.remove(a);
                sh.assigned.insert(a.clone());
            }
            Io::default()
        }
        "pwd" => Io::ok(format!("{}\n", sh.cwd)),
        "cd" => cd(sh, args),
        "true" | ":" | "sleep" => Io::default(),
        "false" => Io {
            status: 1,
            ..Io::default()
        },
        "exit" => {
            sh.exit = true;
            let status = args.first().map_or(sh.status, |a| a.parse().unwrap_or(2));
            Io {
                status,
                ..Io::default()
            }
        }
        "wc" => wc(sh, args, stdin),
        "sort" => sort(args, stdin),
        "uniq" => {
            let mut out = String::new();
            let mut last: Option<&str> = None;
            for l in stdin.lines() {
                if last != Some(l) {
                    out.push_str(l);
                    out.push('\n');
                }
                last = Some(l);
            }
            Io::ok(out)
        }
        "base64" => b64(sh, args, stdin),
        "curl" => curl(sh, args, stdin),
        "wget" => wget(sh, args),
        "pip" | "pip3" => pip(sh, args),
        "python" | "python3"
            if args.len() >= 2 && args[0] == "-m" && (args[1] == "pip" || args[1] == "pip3") =>
        {
            pip(sh, &args[2..])
        }
        "npm" => npm(sh, args),
        "sh" | "bash" if args.first().map(String::as_str) == Some("-c") => match args.get(1) {
            Some(src) => {
                let (out, status) = sh.capture(src);
                Io {
                    stdout: out,
                    stderr: String::new(),
                    status,
                }
            }
            None => Io::err(format!("{}: -c: option requires an argument\n", argv[0]), 2),
        },
        "find" => find(sh, args),
        name => Io::err(format!("sh: {name}: command not found\n"), 127),
    }
}

/// Splits leading `-abc` options into single letters; stops at `--` or the first operand.
fn flags<'a>(args: &'a [String], known: &str) -> Result<(Vec<char>, &'a [String]), String> {
    let mut fl = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if a.len() < 2 || !a.starts_with('-') {
            break;
        }
        for c in a[1..].chars() {
            if !known.contains(c) {
                return Err(format!("invalid option -- '{c}'"));
            }
            fl.push(c);
        }
        i += 1;
    }
    Ok((fl, &args[i..]))
}

/// Reads each operand (or stdin for none / `-`), reporting errors like coreutils.
fn inputs(
    sh: &mut Sh<'_>,
    prog: &str,
    files: &[String],
    stdin: &str,
) -> (Vec<(String, String)>, String, i32) {
    let mut out = Vec::new();
    let mut err = String::new();
    let mut status = 0;
    if files.is_empty() {
        out.push(("-".to_string(), stdin.to_string()));
    }
    for f in files {
        if f == "-" {
            out.push((f.clone(), stdin.to_string()));
            continue;
        }
        let cwd = sh.cwd.clone();
        match sh.w.read_file(&cwd, f, VIA, sh.fx) {
            Ok(t) => out.push((f.clone(), t)),
            Err(e) => {
                err.push_str(&format!("{prog}: {f}: {e}\n"));
                status = 1;
            }
        }
    }
    (out, err, status)
}

fn cat(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let (fl, files) = match flags(args, "nAEsuv") {
        Ok(x) => x,
        Err(e) => return Io::err(format!("cat: {e}\n"), 1),
    };
    let (ins, stderr, status) = inputs(sh, "cat", files, &stdin);
    let mut stdout = String::new();
    let mut n = 0;
    for (_, t) in ins {
        if fl.contains(&'n') {
            for l in t.split_inclusive('\n') {
                n += 1;
                stdout.push_str(&format!("{n:>6}\t{l}"));
            }
        } else {
            stdout.push_str(&t);
        }
    }
    Io {
        stdout,
        stderr,
        status,
    }
}

fn ls(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let (fl, paths) = match flags(args, "laA1hRtrdF") {
        Ok(x) => x,
        Err(e) => return Io::err(format!("ls: {e}\n"), 2),
    };
    let long = fl.contains(&'l');
    let all = fl.contains(&'a') || fl.contains(&'A');
    let default = [".".to_string()];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut io = Io::default();
    for (i, p) in paths.iter().enumerate() {
        let cwd = sh.cwd.clone();
        match sh.w.list(&cwd, p, VIA, sh.fx) {
            Ok((abs, entries)) => {
                let is_dir = sh.w.vfs.get(&abs).is_some_and(crate::vfs::Node::is_dir);
                if paths.len() > 1 && is_dir {
                    if i > 0 {
                        io.stdout.push('\n');
                    }
                    io.stdout.push_str(&format!("{p}:\n"));
                }
                for e in entries {
                    if is_dir && !all && e.name.starts_with('.') {
                        continue;
                    }
                    let name = if is_dir { e.name.clone() } else { p.clone() };
                    if long {
                        let perms: String = (0..9)
                            .map(|b| {
                                if e.mode & (1 << (8 - b)) != 0 {
                                    ['r', 'w', 'x'][b % 3]
                                } else {
                                    '-'
                                }
                            })
                            .collect();
                        io.stdout.push_str(&format!(
                            "{}{perms} 1 agent agent {:>6} Jan  1 00:00 {name}",
                            e.kind, e.size
                        ));
                        if let Some(t) = &e.target {
                            io.stdout.push_str(&format!(" -> {t}"));
                        }
                    } else {
                        io.stdout.push_str(&name);
                    }
                    io.stdout.push('\n');
                }
            }
            Err(e) => {
                io.stderr
                    .push_str(&format!("ls: cannot access '{p}': {e}\n"));
                io.status = 2;
            }
        }
    }
    io
}

fn head_tail(sh: &mut Sh<'_>, prog: &str, args: &[String], stdin: String) -> Io {
    let mut n: i64 = 10;
    let mut from_start = false;
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let val = if a == "-n" {
            i += 1;
            args.get(i).cloned()
        } else if let Some(v) = a.strip_prefix("-n") {
            Some(v.to_string())
        } else if let Some(v) = a.strip_prefix("--lines=") {
            Some(v.to_string())
        } else if a.len() > 1 && a.starts_with('-') && a[1..].bytes().all(|b| b.is_ascii_digit()) {
            Some(a[1..].to_string())
        } else if a == "-q" || a == "-v" {
            None
        } else {
            files.push(a.clone());
            None
        };
        if let Some(v) = val {
            from_start = v.starts_with('+');
            match v.trim_start_matches('+').parse::<i64>() {
                Ok(x) => n = x,
                Err(_) => return Io::err(format!("{prog}: invalid number of lines: '{v}'\n"), 1),
            }
        }
        i += 1;
    }
    let (ins, stderr, status) = inputs(sh, prog, &files, &stdin);
    let mut stdout = String::new();
    for (idx, (name, t)) in ins.iter().enumerate() {
        if ins.len() > 1 {
            stdout.push_str(&format!(
                "{}==> {name} <==\n",
                if idx > 0 { "\n" } else { "" }
            ));
        }
        let lines: Vec<&str> = t.split_inclusive('\n').collect();
        let n = n.max(0) as usize;
        let sel: &[&str] = if prog == "head" {
            &lines[..n.min(lines.len())]
        } else if from_start {
            &lines[n.saturating_sub(1).min(lines.len())..]
        } else {
            &lines[lines.len().saturating_sub(n)..]
        };
        for l in sel {
            stdout.push_str(l);
        }
    }
    Io {
        stdout,
        stderr,
        status,
    }
}

/// Turns a POSIX basic regular expression into Rust regex syntax.
fn bre_to_ere(p: &str) -> String {
    let mut out = String::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('|' | '(' | ')' | '+' | '?' | '{' | '}')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str("\\\\"),
            },
            '|' | '(' | ')' | '+' | '?' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn grep(sh: &mut Sh<'_>, prog: &str, args: &[String], stdin: String) -> Io {
    let mut fl = Vec::new();
    let mut patterns = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    let mut opts_done = false;
    while i < args.len() {
        let a = &args[i];
        if !opts_done && a == "--" {
            opts_done = true;
        } else if !opts_done && a == "-e" {
            i += 1;
            patterns.extend(args.get(i).cloned());
        } else if !opts_done && a.starts_with("--") {
            match a.as_str() {
                "--ignore-case" => fl.push('i'),
                "--invert-match" => fl.push('v'),
                "--line-number" => fl.push('n'),
                "--recursive" => fl.push('r'),
                "--count" => fl.push('c'),
                "--files-with-matches" => fl.push('l'),
                "--quiet" | "--silent" => fl.push('q'),
                "--fixed-strings" => fl.push('F'),
                "--extended-regexp" => fl.push('E'),
                "--only-matching" => fl.push('o'),
                "--word-regexp" => fl.push('w'),
                _ if a.starts_with("--include")
                    || a.starts_with("--exclude")
                    || a.starts_with("--color") => {}
                _ => return Io::err(format!("grep: unrecognized option '{a}'\n"), 2),
            }
        } else if !opts_done && a.len() > 1 && a.starts_with('-') {
            for c in a[1..].chars() {
                if !"ivnrRclLqsFEowhHI".contains(c) {
                    return Io::err(format!("grep: invalid option -- '{c}'\n"), 2);
                }
                fl.push(c);
            }
        } else {
            operands.push(a.clone());
        }
        i += 1;
    }
    if patterns.is_empty() {
        if operands.is_empty() {
            return Io::err("Usage: grep [OPTION]... PATTERNS [FILE]...\n".into(), 2);
        }
        patterns.push(operands.remove(0));
    }
    let has = |c: char| fl.contains(&c);
    let fixed = has('F') || prog == "fgrep";
    let extended = has('E') || prog == "egrep";
    let alts: Vec<String> = patterns
        .iter()
        .flat_map(|p| p.split('\n').map(str::to_string).collect::<Vec<_>>())
        .map(|p| {
            if fixed {
                regex::escape(&p)
            } else if extended {
                p
            } else {
                bre_to_ere(&p)
            }
        })
        .collect();
    let mut re = alts
        .iter()
        .map(|a| format!("(?:{a})"))
        .collect::<Vec<_>>()
        .join("|");
    if has('w') {
        re = format!(r"\b(?:{re})\b");
    }
    if has('i') {
        re = format!("(?i){re}");
    }
    let re = match cached_regex(&re) {
        Some(r) => r,
        None => {
            return Io::err(
                format!("grep: invalid regular expression: {}\n", patterns.join(" ")),
                2,
            );
        }
    };
    let recursive = has('r') || has('R');
    let mut files = operands;
    if recursive && files.is_empty() {
        files.push(".".into());
    }
    let mut stderr = String::new();
    let mut err_status = 0;
    if recursive {
        let mut expanded = Vec::new();
        for f in files {
            match sh.w.vfs.locate(&sh.cwd, &f, true) {
                Ok(abs) if sh.w.vfs.get(&abs).is_some_and(crate::vfs::Node::is_dir) => {
                    for d in sh.w.vfs.descendants(&abs) {
                        if matches!(
                            sh.w.vfs.get(&d).map(|n| &n.kind),
                            Some(crate::vfs::NodeKind::File(_))
                        ) {
                            let rel = if f == "." {
                                d[abs.len()..].trim_start_matches('/').to_string()
                            } else {
                                format!("{}{}", f.trim_end_matches('/'), &d[abs.len()..])
                            };
                            expanded.push(if rel.is_empty() { d.clone() } else { rel });
                        }
                    }
                }
                _ => expanded.push(f),
            }
        }
        files = expanded;
    }
    let show_name = (files.len() > 1 || recursive) && !has('h') || has('H');
    let (ins, e, s) = inputs(sh, "grep", &files, &stdin);
    stderr.push_str(&e);
    err_status = err_status.max(s);
    let mut stdout = String::new();
    let mut any = false;
    for (name, text) in &ins {
        let mut count = 0;
        for (ln, line) in text.lines().enumerate() {
            let m = re.is_match(line) != has('v');
            if !m {
                continue;
            }
            count += 1;
            any = true;
            if has('q') || has('l') || has('c') {
                continue;
            }
            let prefix = format!(
                "{}{}",
                if show_name {
                    format!("{name}:")
                } else {
                    String::new()
                },
                if has('n') {
                    format!("{}:", ln + 1)
                } else {
                    String::new()
                }
            );
            if has('o') && !has('v') {
                for mm in re.find_iter(line) {
                    stdout.push_str(&format!("{prefix}{}\n", mm.as_str()));
                }
            } else {
                stdout.push_str(&format!("{prefix}{line}\n"));
            }
        }
        if has('l') && count > 0 {
            stdout.push_str(&format!("{name}\n"));
        } else if has('c') {
            stdout.push_str(&if show_name {
                format!("{name}:{count}\n")
            } else {
                format!("{count}\n")
            });
        }
    }
    if has('q') {
        stdout.clear();
    }
    if has('s') {
        stderr.clear();
    }
    let status = if err_status != 0 && !(has('q') && any) {
        2
    } else if any {
        0
    } else {
        1
    };
    Io {
        stdout,
        stderr,
        status,
    }
}

/// Backslash escapes of `echo -e` and `printf`'s format.
fn unescape(s: &str) -> (String, bool) {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('a') => out.push('\x07'),
            Some('0') => out.push('\0'),
            Some('"') => out.push('"'),
            Some('c') => return (out, true),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    (out, false)
}

fn echo(args: &[String]) -> Io {
    let mut newline = true;
    let mut escapes = false;
    let mut i = 0;
    while i < args.len()
        && args[i].len() > 1
        && args[i].starts_with('-')
        && args[i][1..].chars().all(|c| "neE".contains(c))
    {
        for c in args[i][1..].chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        i += 1;
    }
    let mut s = args[i..].join(" ");
    if escapes {
        let (t, stop) = unescape(&s);
        s = t;
        if stop {
            newline = false;
        }
    }
    if newline {
        s.push('\n');
    }
    Io::ok(s)
}

/// `printf FORMAT ARGS...`: `%s %b %c %d %i %u %x %X %o %f %e %g %%` with flags,
/// width and precision; the format is reused while arguments remain.
pub(super) fn printf(fmt: &str, args: &[String]) -> String {
    let (fmt, _) = unescape(fmt);
    let f: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut ai = 0;
    loop {
        let mut consumed = false;
        let mut i = 0;
        while i < f.len() {
            if f[i] != '%' {
                out.push(f[i]);
                i += 1;
                continue;
            }
            i += 1;
            let mut flags = String::new();
            while i < f.len() && "-+ 0#".contains(f[i]) {
                flags.push(f[i]);
                i += 1;
            }
            let mut width = String::new();
            while i < f.len() && f[i].is_ascii_digit() {
                width.push(f[i]);
                i += 1;
            }
            let mut prec: Option<usize> = None;
            if i < f.len() && f[i] == '.' {
                i += 1;
                let mut p = String::new();
                while i < f.len() && f[i].is_ascii_digit() {
                    p.push(f[i]);
                    i += 1;
                }
                prec = Some(p.parse().unwrap_or(0));
            }
            let Some(&conv) = f.get(i) else {
                out.push('%');
                break;
            };
            i += 1;
            if conv == '%' {
                out.push('%');
                continue;
            }
            let arg = args.get(ai).map(String::as_str);
            if arg.is_some() {
                ai += 1;
            }
            consumed = true;
            let a = arg.unwrap_or("");
            let num = || -> i64 {
                let t = a.trim();
                t.parse::<i64>()
                    .ok()
                    .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
                    .unwrap_or(0)
            };
            let body = match conv {
                's' => match prec {
                    Some(p) => a.chars().take(p).collect(),
                    None => a.to_string(),
                },
                'b' => unescape(a).0,
                'c' => a.chars().next().map(String::from).unwrap_or_default(),
                'd' | 'i' | 'u' => {
                    let n = num();
                    if flags.contains('+') && n >= 0 {
                        format!("+{n}")
                    } else {
                        n.to_string()
                    }
                }
                'x' => format!("{:x}", num()),
                'X' => format!("{:X}", num()),
                'o' => format!("{:o}", num()),
                'f' | 'F' => format!(
                    "{:.*}",
                    prec.unwrap_or(6),
                    a.trim().parse::<f64>().unwrap_or(0.0)
                ),
                'e' | 'E' => format!(
                    "{:.*e}",
                    prec.unwrap_or(6),
                    a.trim().parse::<f64>().unwrap_or(0.0)
                ),
                'g' | 'G' => a.trim().parse::<f64>().unwrap_or(0.0).to_string(),
                other => format!("%{other}"),
            };
            let w: usize = width.parse().unwrap_or(0).min(4096);
            let len = body.chars().count();
            if len >= w {
                out.push_str(&body);
            } else if flags.contains('-') {
                out.push_str(&body);
                out.push_str(&" ".repeat(w - len));
            } else if flags.contains('0') && "diuxXofFeE".contains(conv) {
                let (sign, digits) = if body.starts_with(['-', '+']) {
                    body.split_at(1)
                } else {
                    ("", body.as_str())
                };
                out.push_str(sign);
                out.push_str(&"0".repeat(w - len));
                out.push_str(digits);
            } else {
                out.push_str(&" ".repeat(w - len));
                out.push_str(&body);
            }
        }
        if !consumed || ai >= args.len() {
            break;
        }
    }
    out
}

fn cp_mv(sh: &mut Sh<'_>, prog: &str, args: &[String]) -> Io {
    let (fl, ops) = match flags(args, if prog == "cp" { "rRfpav" } else { "fvn" }) {
        Ok(x) => x,
        Err(e) => return Io::err(format!("{prog}: {e}\n"), 1),
    };
    if ops.len() < 2 {
        return Io::err(format!("{prog}: missing destination file operand\n"), 1);
    }
    let (srcs, dst) = ops.split_at(ops.len() - 1);
    let dst = &dst[0];
    let recursive = fl.iter().any(|c| "rRa".contains(*c));
    let mut io = Io::default();
    for src in srcs {
        let cwd = sh.cwd.clone();
        let r = if prog == "mv" {
            sh.w.rename(&cwd, src, dst, VIA, sh.fx)
        } else {
            match sh.w.vfs.locate(&cwd, src, true) {
                Ok(abs) if sh.w.vfs.get(&abs).is_some_and(crate::vfs::Node::is_dir) => {
                    if !recursive {
                        io.stderr.push_str(&format!(
                            "cp: -r not specified; omitting directory '{src}'\n"
                        ));
                        io.status = 1;
                        continue;
                    }
                    copy_tree(sh, &abs, src, dst)
                }
                _ => sh.w.copy(&cwd, src, dst, VIA, sh.fx),
            }
        };
        if let Err(e) = r {
            io.stderr.push_str(&format!(
                "{prog}: cannot {} '{src}': {e}\n",
                if prog == "mv" { "move" } else { "stat" }
            ));
            io.status = 1;
        }
    }
    io
}

fn copy_tree(sh: &mut Sh<'_>, abs: &str, src: &str, dst: &str) -> Result<(), crate::ops::OpErr> {
    let cwd = sh.cwd.clone();
    let base = match sh.w.vfs.locate(&cwd, dst, true) {
        Ok(d) if sh.w.vfs.get(&d).is_some_and(crate::vfs::Node::is_dir) => {
            format!("{}/{}", d.trim_end_matches('/'), crate::vfs::basename(abs))
        }
        _ => dst.to_string(),
    };
    let _ = src;
    sh.w.mkdir(&cwd, &base, true, VIA, sh.fx)?;
    for d in sh.w.vfs.descendants(abs) {
        let target = format!("{base}{}", &d[abs.len()..]);
        match sh.w.vfs.get(&d).map(|n| n.is_dir()) {
            Some(true) => sh.w.mkdir(&cwd, &target, true, VIA, sh.fx)?,
            Some(false) => sh.w.copy(&cwd, &d, &target, VIA, sh.fx)?,
            None => {}
        }
    }
    Ok(())
}

fn rm(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let (fl, ops) = match flags(args, "rRfiv") {
        Ok(x) => x,
        Err(e) => return Io::err(format!("rm: {e}\n"), 1),
    };
    let force = fl.contains(&'f');
    if ops.is_empty() && !force {
        return Io::err("rm: missing operand\n".into(), 1);
    }
    let recursive = fl.contains(&'r') || fl.contains(&'R');
    let mut io = Io::default();
    for p in ops {
        let cwd = sh.cwd.clone();
        match sh.w.delete(&cwd, p, recursive, false, VIA, sh.fx) {
            Ok(()) => {}
            Err(crate::ops::OpErr::NotFound) if force => {}
            Err(e) => {
                io.stderr
                    .push_str(&format!("rm: cannot remove '{p}': {e}\n"));
                io.status = 1;
            }
        }
    }
    io
}

fn mkdir(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let (fl, ops) = match flags(args, "pv") {
        Ok(x) => x,
        Err(e) => return Io::err(format!("mkdir: {e}\n"), 1),
    };
    if ops.is_empty() {
        return Io::err("mkdir: missing operand\n".into(), 1);
    }
    let mut io = Io::default();
    for p in ops {
        let cwd = sh.cwd.clone();
        if let Err(e) = sh.w.mkdir(&cwd, p, fl.contains(&'p'), VIA, sh.fx) {
            io.stderr
                .push_str(&format!("mkdir: cannot create directory '{p}': {e}\n"));
            io.status = 1;
        }
    }
    io
}

fn touch(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let ops: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if ops.is_empty() {
        return Io::err("touch: missing file operand\n".into(), 1);
    }
    let mut io = Io::default();
    for p in ops {
        let cwd = sh.cwd.clone();
        let exists =
            sh.w.vfs
                .locate(&cwd, p, true)
                .ok()
                .is_some_and(|a| sh.w.vfs.get(&a).is_some());
        if !exists && let Err(e) = sh.w.write_file(&cwd, p, "", false, VIA, sh.fx) {
            io.stderr
                .push_str(&format!("touch: cannot touch '{p}': {e}\n"));
            io.status = 1;
        }
    }
    io
}

fn chmod(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let ops: Vec<&String> = args
        .iter()
        .filter(|a| !matches!(a.as_str(), "-R" | "-v" | "-f" | "--"))
        .collect();
    if ops.len() < 2 {
        return Io::err("chmod: missing operand\n".into(), 1);
    }
    let mode = ops[0].as_str();
    let m = parse_mode(mode).ok_or(mode);
    if m.is_err() && apply_symbolic(0, mode).is_none() {
        return Io::err(format!("chmod: invalid mode: '{mode}'\n"), 1);
    }
    let mut io = Io::default();
    for p in &ops[1..] {
        let cwd = sh.cwd.clone();
        if let Err(e) = sh.w.chmod(&cwd, p, m, VIA, sh.fx) {
            io.stderr
                .push_str(&format!("chmod: cannot access '{p}': {e}\n"));
            io.status = 1;
        }
    }
    io
}

fn env(sh: &mut Sh<'_>, prog: &str, args: &[String], stdin: String) -> Io {
    if prog == "env" {
        // `env A=1 cmd args`: run cmd with the assignments.
        let mut i = 0;
        while i < args.len() {
            match args[i].split_once('=') {
                Some((k, v)) if super::parse::valid_name(k) => {
                    sh.vars.insert(k.to_string(), v.to_string());
                    sh.assigned.insert(k.to_string());
                    i += 1;
                }
                _ => break,
            }
        }
        if i < args.len() {
            return run(sh, &args[i..], stdin);
        }
    } else if !args.is_empty() {
        let mut io = Io::default();
        for a in args {
            match sh.vars.get(a).cloned() {
                Some(v) => {
                    if !sh.assigned.contains(a) {
                        sh.w.env_read(a, &v, VIA, sh.fx);
                    }
                    io.stdout.push_str(&v);
                    io.stdout.push('\n');
                }
                None => io.status = 1,
            }
        }
        return io;
    }
    let mut out = String::new();
    for (k, v) in &sh.vars {
        out.push_str(&format!("{k}={v}\n"));
    }
    sh.w.env_read_all(&sh.vars, &sh.assigned, &out, VIA, sh.fx);
    Io::ok(out)
}

fn cd(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let target = args
        .first()
        .cloned()
        .unwrap_or_else(|| sh.vars.get("HOME").cloned().unwrap_or_else(|| "/".into()));
    let cwd = sh.cwd.clone();
    match sh.w.locate(&cwd, &target, true, "chdir", VIA, sh.fx) {
        Ok(abs) => match sh.w.vfs.get(&abs) {
            Some(n) if n.is_dir() => {
                sh.cwd = abs.clone();
                sh.vars.insert("PWD".into(), abs);
                Io::default()
            }
            Some(_) => Io::err(format!("sh: cd: {target}: Not a directory\n"), 1),
            None => Io::err(format!("sh: cd: {target}: No such file or directory\n"), 1),
        },
        Err(e) => Io::err(format!("sh: cd: {target}: {e}\n"), 1),
    }
}

fn wc(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let (fl, files) = match flags(args, "lwcm") {
        Ok(x) => x,
        Err(e) => return Io::err(format!("wc: {e}\n"), 1),
    };
    let (ins, stderr, status) = inputs(sh, "wc", files, &stdin);
    let all = fl.is_empty();
    let mut stdout = String::new();
    let mut tot = [0usize; 3];
    for (name, t) in &ins {
        let c = [
            t.matches('\n').count(),
            t.split_whitespace().count(),
            t.len(),
        ];
        for k in 0..3 {
            tot[k] += c[k];
        }
        stdout.push_str(&wc_line(
            &c,
            &fl,
            all,
            if name == "-" { None } else { Some(name) },
        ));
    }
    if ins.len() > 1 {
        stdout.push_str(&wc_line(&tot, &fl, all, Some("total")));
    }
    Io {
        stdout,
        stderr,
        status,
    }
}

fn wc_line(c: &[usize; 3], fl: &[char], all: bool, name: Option<&str>) -> String {
    let mut parts = Vec::new();
    if all || fl.contains(&'l') {
        parts.push(c[0].to_string());
    }
    if all || fl.contains(&'w') {
        parts.push(c[1].to_string());
    }
    if all || fl.contains(&'c') || fl.contains(&'m') {
        parts.push(c[2].to_string());
    }
    if let Some(n) = name {
        parts.push(n.to_string());
    }
    format!("{}\n", parts.join(" "))
}

fn sort(args: &[String], stdin: String) -> Io {
    let (fl, _) = flags(args, "rnu").unwrap_or_default();
    let mut lines: Vec<&str> = stdin.lines().collect();
    if fl.contains(&'n') {
        lines.sort_by(|a, b| {
            let k = |s: &str| {
                s.trim()
                    .split(|c: char| !c.is_ascii_digit() && c != '-' && c != '.')
                    .next()
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            k(a).total_cmp(&k(b))
        });
    } else {
        lines.sort();
    }
    if fl.contains(&'r') {
        lines.reverse();
    }
    if fl.contains(&'u') {
        lines.dedup();
    }
    Io::ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

fn b64(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let mut decode = false;
    let mut wrap = 76usize;
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-d" | "--decode" | "-D" => decode = true,
            "-i" | "--ignore-garbage" => {}
            "-w" => {
                i += 1;
                wrap = args.get(i).and_then(|w| w.parse().ok()).unwrap_or(76);
            }
            a if a.starts_with("-w") => wrap = a[2..].parse().unwrap_or(76),
            a if a.starts_with("--wrap=") => wrap = a[7..].parse().unwrap_or(76),
            a => files.push(a.to_string()),
        }
        i += 1;
    }
    let (ins, stderr, status) = inputs(sh, "base64", &files, &stdin);
    if status != 0 {
        return Io {
            stdout: String::new(),
            stderr,
            status,
        };
    }
    let data: String = ins.into_iter().map(|(_, t)| t).collect();
    if decode {
        let clean: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        let padded = match clean.len() % 4 {
            2 => format!("{clean}=="),
            3 => format!("{clean}="),
            _ => clean,
        };
        match STANDARD.decode(padded.as_bytes()) {
            Ok(b) => Io::ok(String::from_utf8_lossy(&b).into_owned()),
            Err(_) => Io::err("base64: invalid input\n".into(), 1),
        }
    } else {
        let enc = STANDARD.encode(data.as_bytes());
        let mut out = String::new();
        if wrap == 0 {
            out.push_str(&enc);
        } else {
            for (k, ch) in enc.chars().enumerate() {
                if k > 0 && k % wrap == 0 {
                    out.push('\n');
                }
                out.push(ch);
            }
        }
        if !enc.is_empty() {
            out.push('\n');
        }
        Io::ok(out)
    }
}

/// Reads curl's `@file` / `@-` data references.
fn data_ref(sh: &mut Sh<'_>, v: &str, stdin: &str, raw: bool) -> Result<String, String> {
    match v.strip_prefix('@') {
        Some("-") if !raw => Ok(stdin.trim_end_matches('\n').to_string()),
        Some(f) if !raw => {
            let cwd = sh.cwd.clone();
            sh.w.read_file(&cwd, f, VIA, sh.fx)
                .map(|t| t.replace('\n', ""))
                .map_err(|e| format!("curl: Failed to open {f}: {e}\n"))
        }
        _ => Ok(v.to_string()),
    }
}

fn curl(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let mut method: Option<String> = None;
    let mut data: Vec<String> = Vec::new();
    let mut headers = Vec::new();
    let mut out_file: Option<String> = None;
    let mut remote_name = false;
    let mut fail = false;
    let mut get = false;
    let mut urls: Vec<String> = Vec::new();
    let mut i = 0;
    let next = |i: &mut usize| -> Option<String> {
        *i += 1;
        args.get(*i).cloned()
    };
    while i < args.len() {
        let a = args[i].clone();
        // Long options, with `--opt=value` or `--opt value`.
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if a.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let val = |i: &mut usize| inline.clone().or_else(|| next(i)).unwrap_or_default();
        match name.as_str() {
            "-X" | "--request" => method = Some(val(&mut i)),
            "-d" | "--data" | "--data-ascii" | "--data-binary" | "--data-urlencode" => {
                let v = val(&mut i);
                match data_ref(sh, &v, &stdin, false) {
                    Ok(d) => data.push(d),
                    Err(e) => return Io::err(e, 26),
                }
            }
            "--data-raw" => data.push(val(&mut i)),
            "-F" | "--form" => {
                let v = val(&mut i);
                let (k, fv) = v.split_once('=').unwrap_or((v.as_str(), ""));
                match data_ref(sh, fv, &stdin, false) {
                    Ok(d) => data.push(format!("{k}={d}")),
                    Err(e) => return Io::err(e, 26),
                }
            }
            "-T" | "--upload-file" => {
                let f = val(&mut i);
                let cwd = sh.cwd.clone();
                match sh.w.read_file(&cwd, &f, VIA, sh.fx) {
                    Ok(t) => data.push(t),
                    Err(e) => return Io::err(format!("curl: Failed to open {f}: {e}\n"), 26),
                }
                method.get_or_insert_with(|| "PUT".into());
            }
            "-H" | "--header" => headers.push(val(&mut i)),
            "-u" | "--user" => headers.push(format!(
                "Authorization: Basic {}",
                STANDARD.encode(val(&mut i))
            )),
            "-o" | "--output" => out_file = Some(val(&mut i)),
            "-O" | "--remote-name" => remote_name = true,
            "--url" => urls.push(val(&mut i)),
            "-A" | "--user-agent" | "-e" | "--referer" | "-w" | "--write-out" | "-m"
            | "--max-time" | "--connect-timeout" | "-b" | "--cookie" | "-c" | "--cookie-jar"
            | "--retry" => {
                let _ = val(&mut i);
            }
            "-f" | "--fail" | "--fail-with-body" => fail = true,
            "-G" | "--get" => get = true,
            "-I" | "--head" => method = Some("HEAD".into()),
            n if n.starts_with("--") => {}
            n if n.starts_with('-') && n.len() > 1 => {
                // Bundled short flags (`-sSLf`), or a value glued on (`-XPOST`, `-ofile`).
                let rest = &n[1..];
                let first = rest.chars().next().unwrap_or(' ');
                if "XdHoFuT".contains(first) && rest.len() > 1 {
                    let v = rest[1..].to_string();
                    match first {
                        'X' => method = Some(v),
                        'd' => data.push(v),
                        'H' => headers.push(v),
                        'o' => out_file = Some(v),
                        _ => {}
                    }
                } else {
                    for c in rest.chars() {
                        match c {
                            'f' => fail = true,
                            'O' => remote_name = true,
                            'G' => get = true,
                            'I' => method = Some("HEAD".into()),
                            's' | 'S' | 'L' | 'k' | 'v' | 'i' | '#' | 'N' | 'g' | '4' | '6' => {}
                            _ => return Io::err(format!("curl: option -{c}: is unknown\n"), 2),
                        }
                    }
                }
            }
            _ => urls.push(a.clone()),
        }
        i += 1;
    }
    if urls.is_empty() {
        return Io::err("curl: no URL specified\n".into(), 2);
    }
    let mut body = data.join("&");
    let query = (get && !body.is_empty()).then(|| std::mem::take(&mut body));
    let method = method.unwrap_or_else(|| {
        if body.is_empty() {
            "GET".into()
        } else {
            "POST".into()
        }
    });
    // curl requests every URL it is given, in order; `-o` names the first one's output.
    let mut io = Io::default();
    for (n, raw) in urls.iter().enumerate() {
        let mut url = if raw.contains("://") {
            raw.clone()
        } else {
            format!("http://{raw}")
        };
        if let Some(q) = &query {
            url = format!("{url}{}{q}", if url.contains('?') { '&' } else { '?' });
        }
        let (status, text) = match sh.w.http(&method, &url, &body, &headers, VIA, sh.fx) {
            Ok(r) => r,
            Err(e) => {
                io.stderr
                    .push_str(&format!("curl: (3) URL rejected: {e}\n"));
                io.status = 3;
                continue;
            }
        };
        if fail && status >= 400 {
            io.stderr.push_str(&format!(
                "curl: (22) The requested URL returned error: {status}\n"
            ));
            io.status = 22;
            continue;
        }
        let file = match &out_file {
            Some(f) if n == 0 => Some(f.clone()),
            _ if remote_name => Some(remote_file_name(&url)),
            _ => None,
        };
        match file {
            Some(f) if f != "-" => {
                let cwd = sh.cwd.clone();
                if let Err(e) = sh.w.write_file(&cwd, &f, &text, false, VIA, sh.fx) {
                    io.stderr.push_str(&format!(
                        "curl: (23) Failure writing output to destination: {f}: {e}\n"
                    ));
                    io.status = 23;
                }
            }
            _ => io.stdout.push_str(&text),
        }
    }
    io
}

fn remote_file_name(url: &str) -> String {
    let path = url.split_once("://").map_or(url, |(_, r)| r);
    let path = path.split(['?', '#']).next().unwrap_or("");
    match path.split_once('/') {
        Some((_, p)) if !p.is_empty() && !p.ends_with('/') => crate::vfs::basename(p).to_string(),
        _ => "index.html".into(),
    }
}

fn wget(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut out: Option<String> = None;
    let mut body = String::new();
    let mut method: Option<String> = None;
    let mut headers = Vec::new();
    let mut urls: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if a.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let val = |i: &mut usize| {
            inline.clone().or_else(|| {
                *i += 1;
                args.get(*i).cloned()
            })
        };
        match name {
            "-O" | "--output-document" => out = val(&mut i),
            "--post-data" | "--body-data" => {
                body = val(&mut i).unwrap_or_default();
                method.get_or_insert_with(|| "POST".into());
            }
            "--post-file" | "--body-file" => {
                let f = val(&mut i).unwrap_or_default();
                let cwd = sh.cwd.clone();
                match sh.w.read_file(&cwd, &f, VIA, sh.fx) {
                    Ok(t) => body = t,
                    Err(e) => return Io::err(format!("wget: {f}: {e}\n"), 1),
                }
                method.get_or_insert_with(|| "POST".into());
            }
            "--method" => method = val(&mut i),
            "--header" => headers.extend(val(&mut i)),
            n if n.starts_with("-O") && n.len() > 2 => out = Some(n[2..].to_string()),
            n if n.starts_with('-') => {}
            _ => urls.push(a.clone()),
        }
        i += 1;
    }
    if urls.is_empty() {
        return Io::err("wget: missing URL\n".into(), 1);
    }
    let method = method.unwrap_or_else(|| "GET".into());
    // wget fetches every URL it is given; `-O FILE` gets all of them, concatenated.
    let mut io = Io::default();
    let mut joined = String::new();
    for raw in &urls {
        let url = if raw.contains("://") {
            raw.clone()
        } else {
            format!("http://{raw}")
        };
        let (status, text) = match sh.w.http(&method, &url, &body, &headers, VIA, sh.fx) {
            Ok(r) => r,
            Err(e) => {
                io.stderr.push_str(&format!("wget: {e}\n"));
                io.status = 1;
                continue;
            }
        };
        if status >= 400 {
            io.stderr
                .push_str(&format!("wget: server returned error: HTTP/1.1 {status}\n"));
            io.status = 8;
            continue;
        }
        if out.is_some() {
            joined.push_str(&text);
            continue;
        }
        let file = remote_file_name(&url);
        let cwd = sh.cwd.clone();
        if let Err(e) = sh.w.write_file(&cwd, &file, &text, false, VIA, sh.fx) {
            io.stderr.push_str(&format!("wget: {file}: {e}\n"));
            io.status = 3;
        }
    }
    match out {
        Some(f) if f == "-" => io.stdout.push_str(&joined),
        Some(f) if io.status == 0 || !joined.is_empty() => {
            let cwd = sh.cwd.clone();
            if let Err(e) = sh.w.write_file(&cwd, &f, &joined, false, VIA, sh.fx) {
                io.stderr.push_str(&format!("wget: {f}: {e}\n"));
                io.status = 3;
            }
        }
        _ => {}
    }
    io
}

/// `name==1.0`, `name[extra]>=1`, `name`: the name and an exact version.
fn pip_spec(s: &str) -> (String, Option<String>) {
    let (name, version) = match s.split_once("==") {
        Some((n, v)) => (n, Some(v.trim().to_string())),
        None => (
            s.split(['<', '>', '=', '~', '!', ';']).next().unwrap_or(s),
            None,
        ),
    };
    let name = name.split('[').next().unwrap_or(name).trim().to_string();
    (name, version)
}

fn pip(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let Some(sub) = args.first() else {
        return Io::err("Usage: pip <command> [options]\n".into(), 1);
    };
    if sub != "install" {
        return match sub.as_str() {
            "list" | "freeze" => Io::ok(sh.w.installed.iter().map(|p| format!("{p}\n")).collect()),
            _ => Io::err(format!("ERROR: unknown command \"{sub}\"\n"), 1),
        };
    }
    let mut specs: Vec<String> = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "-r" || a == "--requirement" || a.starts_with("--requirement=") {
            let f = a
                .strip_prefix("--requirement=")
                .map(str::to_string)
                .or_else(|| {
                    i += 1;
                    args.get(i).cloned()
                });
            let Some(f) = f else {
                return Io::err("ERROR: -r option requires 1 argument\n".into(), 2);
            };
            let cwd = sh.cwd.clone();
            match sh.w.read_file(&cwd, &f, VIA, sh.fx) {
                Ok(t) => specs.extend(
                    t.lines()
                        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                        .filter(|l| !l.is_empty() && !l.starts_with('-')),
                ),
                Err(e) => {
                    return Io::err(
                        format!("ERROR: Could not open requirements file: {f}: {e}\n"),
                        1,
                    );
                }
            }
        } else if matches!(
            a.as_str(),
            "-i" | "--index-url" | "--extra-index-url" | "-c" | "--target" | "-t"
        ) {
            i += 1;
        } else if !a.starts_with('-') {
            specs.push(a.clone());
        }
        i += 1;
    }
    if specs.is_empty() {
        return Io::err(
            "ERROR: You must give at least one requirement to install\n".into(),
            1,
        );
    }
    let mut done = Vec::new();
    for s in specs {
        let (name, version) = pip_spec(&s);
        if name.is_empty() {
            continue;
        }
        sh.w.install("pip", &name, version.as_deref(), VIA, sh.fx);
        done.push(match version {
            Some(v) => format!("{name}-{v}"),
            None => name,
        });
    }
    Io::ok(format!("Successfully installed {}\n", done.join(" ")))
}

/// `name@1.0`, `@scope/name@1.0`, `name`.
fn npm_spec(s: &str) -> (String, Option<String>) {
    let (scope, rest) = match s.strip_prefix('@') {
        Some(r) => ("@", r),
        None => ("", s),
    };
    match rest.split_once('@') {
        Some((n, v)) if !v.is_empty() => (format!("{scope}{n}"), Some(v.to_string())),
        Some((n, _)) => (format!("{scope}{n}"), None),
        None => (s.to_string(), None),
    }
}

fn npm(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let Some(sub) = args.first() else {
        return Io::err("Usage: npm <command>\n".into(), 1);
    };
    if !matches!(sub.as_str(), "install" | "i" | "add") {
        return Io::err(format!("npm ERR! unknown command: \"{sub}\"\n"), 1);
    }
    let pkgs: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    if pkgs.is_empty() {
        return Io::ok("up to date, audited 0 packages\n".into());
    }
    for p in &pkgs {
        let (name, version) = npm_spec(p);
        sh.w.install("npm", &name, version.as_deref(), VIA, sh.fx);
    }
    Io::ok(format!(
        "added {} package{}\n",
        pkgs.len(),
        if pkgs.len() == 1 { "" } else { "s" }
    ))
}

fn find(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut roots = Vec::new();
    let mut name: Option<String> = None;
    let mut kind: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-name" | "-iname" => {
                i += 1;
                name = args.get(i).cloned();
            }
            "-type" => {
                i += 1;
                kind = args.get(i).cloned();
            }
            a if a.starts_with('-') => {
                return Io::err(format!("find: unknown predicate `{a}'\n"), 1);
            }
            a => roots.push(a.to_string()),
        }
        i += 1;
    }
    if roots.is_empty() {
        roots.push(".".into());
    }
    let mut io = Io::default();
    for r in roots {
        let cwd = sh.cwd.clone();
        let abs = match sh.w.list(&cwd, &r, VIA, sh.fx) {
            Ok((abs, _)) => abs,
            Err(e) => {
                io.stderr.push_str(&format!("find: '{r}': {e}\n"));
                io.status = 1;
                continue;
            }
        };
        let mut all = vec![abs.clone()];
        all.extend(sh.w.vfs.descendants(&abs));
        for p in all {
            let Some(n) = sh.w.vfs.get(&p) else { continue };
            let k = match n.kind {
                crate::vfs::NodeKind::Dir => "d",
                crate::vfs::NodeKind::File(_) => "f",
                crate::vfs::NodeKind::Link(_) => "l",
            };
            if kind.as_deref().is_some_and(|want| want != k) {
                continue;
            }
            if name
                .as_deref()
                .is_some_and(|pat| !super::wildcard(pat, crate::vfs::basename(&p)))
            {
                continue;
            }
            let shown = format!("{}{}", r.trim_end_matches('/'), &p[abs.len()..]);
            io.stdout
                .push_str(if shown.is_empty() { "/" } else { &shown });
            io.stdout.push('\n');
        }
    }
    io
}

/// Compiles a regex, reusing the compilation of earlier episodes on this thread:
/// agents repeat the same `grep`s across thousands of episodes.
fn cached_regex(src: &str) -> Option<regex::Regex> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static CACHE: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(r) = c.get(src) {
            return r.clone();
        }
        if c.len() >= 256 {
            c.clear();
        }
        let r = regex::RegexBuilder::new(src)
            .size_limit(1 << 20)
            .build()
            .ok();
        c.insert(src.to_string(), r.clone());
        r
    })
}
