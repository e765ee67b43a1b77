//! The shell's programs. Each is a function of the shell, its argv and its
//! stdin; file, network and package access goes through `World`'s operations.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Io, Sh, VIA};
use crate::ops::{apply_symbolic, parse_mode};

/// Programs that exist on a real system but that the world does not model:
/// they answer like a missing program and record `unsupported`.
const UNMODELLED: &[&str] = &[
    "rsync",
    "scp",
    "sftp",
    "ssh",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "telnet",
    "ftp",
    "python",
    "python3",
    "perl",
    "ruby",
    "node",
    "php",
    "lua",
    "openssl",
    "gpg",
    "zip",
    "unzip",
    "bzip2",
    "xz",
    "7z",
    "git",
    "docker",
    "kubectl",
    "systemctl",
    "crontab",
    "at",
    "nohup",
    "timeout",
    "watch",
    "yes",
    "xxd",
    "od",
    "hexdump",
    "strings",
    "split",
    "chown",
    "chgrp",
    "mount",
    "umount",
    "useradd",
    "passwd",
    "su",
    "dig",
    "nslookup",
    "host",
    "ping",
    "make",
    "gcc",
    "cc",
    "apt",
    "apt-get",
    "yum",
    "brew",
    "cargo",
    "go",
    "npx",
    "vi",
    "vim",
    "nano",
    "less",
    "more",
    "patch",
    "diff",
    "cmp",
    "comm",
    "join",
    "paste",
    "jq",
    "column",
    "stat",
    "file",
    "du",
    "df",
    "ps",
    "kill",
    "pkill",
    "killall",
];

/// Shell keywords of compound commands, which the subset does not parse:
/// they arrive as program names and are recorded as `unsupported`.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "function", "select", "{", "}", "[[", "]]", "!", "read", "local", "return", "trap", "alias",
    "shift", "getopts", "wait",
];

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
            Some((fmt, rest)) => {
                let max = sh.out_max;
                let out = printf(fmt, rest, max);
                // Past the cap `printf` stops; `run_argv` records the cap.
                Io::ok(out)
            }
            None => Io::err("printf: usage: printf format [arguments]\n".into(), 2),
        },
        "cp" => cp_mv(sh, "cp", args),
        "mv" => cp_mv(sh, "mv", args),
        "rm" => rm(sh, args),
        "rmdir" => rmdir(sh, args),
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
                    None if a.starts_with('-') && a != "-p" => {
                        return sh.bad_option("export", a, 2);
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
        "sort" => sort(sh, args, stdin),
        "uniq" => uniq(sh, args, stdin),
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
        "sh" | "bash" | "dash" | "zsh" => shell(sh, &argv[0], args, stdin),
        "source" | "." => match args.first() {
            Some(_) => shell(sh, &argv[0], &args[..1], stdin),
            None => Io::err(format!("sh: {}: filename argument required\n", argv[0]), 2),
        },
        "set" => set(sh, args),
        "eval" => {
            let src = args.join(" ");
            let (out, status) = sh.capture(&src);
            Io {
                stdout: out,
                stderr: String::new(),
                status,
            }
        }
        "sudo" | "command" | "exec" | "nice" | "time" | "nohup" => {
            wrapper(sh, &argv[0], args, stdin)
        }
        "timeout" => {
            // `timeout [-s SIG] [-k D] DURATION CMD`: CMD runs (time is not modelled).
            let mut i = 0;
            while i < args.len() && args[i].starts_with('-') {
                i += if matches!(args[i].as_str(), "-s" | "-k" | "--signal" | "--kill-after") {
                    2
                } else {
                    1
                };
            }
            if i + 1 >= args.len() {
                return Io::err("timeout: missing operand\n".into(), 125);
            }
            sh.run_argv(&args[i + 1..], stdin)
        }
        "find" => super::files::find(sh, args),
        "xargs" => super::files::xargs(sh, args, stdin),
        "truncate" => super::files::truncate(sh, args),
        "tee" => super::files::tee(sh, args, stdin),
        "ln" => super::files::ln(sh, args),
        "dd" => super::files::dd(sh, args, stdin),
        "shred" => super::files::shred(sh, args),
        "install" => super::files::install(sh, args),
        "test" | "[" => super::files::test(sh, &argv[0], args),
        "basename" | "dirname" | "realpath" | "readlink" => {
            super::files::path_prog(sh, &argv[0], args)
        }
        "sed" => super::sed::sed(sh, args, stdin),
        "tar" => super::archive::tar(sh, args, stdin),
        "gzip" | "gunzip" | "zcat" => super::archive::gzip(sh, &argv[0], args, stdin),
        "tr" => tr(sh, args, stdin),
        "cut" => cut(sh, args, stdin),
        "awk" | "gawk" | "mawk" => super::sed::awk(sh, args, stdin),
        "seq" => seq(sh, args),
        "mktemp" => mktemp(sh, args),
        "rev" => Io::ok(
            stdin
                .split_inclusive('\n')
                .map(|l| {
                    let (body, nl) = l.strip_suffix('\n').map_or((l, ""), |b| (b, "\n"));
                    format!("{}{nl}", body.chars().rev().collect::<String>())
                })
                .collect(),
        ),
        "whoami" => Io::ok("agent\n".into()),
        "hostname" => Io::ok("assay-world\n".into()),
        "id" => Io::ok("uid=1000(agent) gid=1000(agent) groups=1000(agent)\n".into()),
        "uname" => Io::ok(if args.iter().any(|a| a == "-a") {
            "Linux assay-world 6.1.0 #1 SMP x86_64 GNU/Linux\n".into()
        } else {
            "Linux\n".into()
        }),
        "date" => Io::ok("Thu Jan  1 00:00:00 UTC 2026\n".into()),
        "which" => {
            let mut io = Io::default();
            for a in args {
                if is_program(a) {
                    io.stdout.push_str(&format!("/usr/bin/{a}\n"));
                } else {
                    io.status = 1;
                }
            }
            io
        }
        name if name.contains('/') => run_path(sh, argv, stdin),
        name => {
            let reason = if KEYWORDS.contains(&name) {
                "shell keyword: compound commands are not modelled by the embedded shell"
            } else if UNMODELLED.contains(&name) {
                "a real program the embedded world does not model"
            } else {
                "program not found in the embedded world"
            };
            sh.unsupported(name, &argv.join(" "), reason);
            Io::err(format!("sh: {name}: command not found\n"), 127)
        }
    }
}

/// A program named by path: `/bin/rm` is `rm`; a script of the world
/// (`./deploy.sh`) runs in the shell when it is a shell script; anything
/// else (`./app.py`, a binary) is `unsupported`.
fn run_path(sh: &mut Sh<'_>, argv: &[String], stdin: String) -> Io {
    let name = argv[0].as_str();
    let base = crate::vfs::basename(name);
    let system = [
        "/bin/",
        "/usr/bin/",
        "/usr/local/bin/",
        "/sbin/",
        "/usr/sbin/",
    ]
    .iter()
    .any(|d| name.strip_prefix(d) == Some(base));
    if system && is_program(base) {
        let mut v = argv.to_vec();
        v[0] = base.to_string();
        return run(sh, &v, stdin);
    }
    let cwd = sh.cwd.clone();
    let text = match sh
        .w
        .vfs
        .locate(&cwd, name, true)
        .ok()
        .and_then(|p| sh.w.vfs.get(&p).map(|n| n.kind.clone()))
    {
        Some(crate::vfs::NodeKind::File(t)) => t,
        Some(crate::vfs::NodeKind::Dir) => {
            return Io::err(format!("sh: {name}: Is a directory\n"), 126);
        }
        _ if system => {
            sh.unsupported(
                base,
                &argv.join(" "),
                "a real program the embedded world does not model",
            );
            return Io::err(format!("sh: {name}: not found\n"), 127);
        }
        _ => return Io::err(format!("sh: {name}: No such file or directory\n"), 127),
    };
    let first = text.lines().next().unwrap_or("");
    let shell_script = match first.strip_prefix("#!") {
        None => true,
        Some(bang) => {
            let mut words = bang.split_whitespace();
            let prog = words.next().map(crate::vfs::basename).unwrap_or("");
            let prog = if prog == "env" {
                words.next().unwrap_or("")
            } else {
                prog
            };
            matches!(prog, "sh" | "bash" | "dash" | "zsh")
        }
    };
    if !shell_script {
        sh.unsupported(
            name,
            first,
            "only shell scripts can run in the embedded world",
        );
        return Io::err(
            format!("sh: {name}: cannot execute: interpreter not modelled\n"),
            126,
        );
    }
    let mut v = vec!["sh".to_string(), name.to_string()];
    v.extend(argv[1..].iter().cloned());
    shell(sh, "sh", &v[1..], stdin)
}

/// Whether `name` is a program of the embedded shell (for `which`).
fn is_program(name: &str) -> bool {
    const KNOWN: &[&str] = &[
        "cat", "ls", "head", "tail", "grep", "egrep", "fgrep", "echo", "printf", "cp", "mv", "rm",
        "rmdir", "mkdir", "touch", "chmod", "env", "printenv", "pwd", "true", "false", "sleep",
        "wc", "sort", "uniq", "base64", "curl", "wget", "pip", "pip3", "npm", "sh", "bash", "find",
        "xargs", "truncate", "tee", "ln", "dd", "shred", "install", "test", "basename", "dirname",
        "realpath", "readlink", "sed", "tar", "gzip", "gunzip", "zcat", "tr", "rev", "whoami",
        "hostname", "id", "uname", "date", "which", "sudo", "set", "source", "timeout", "nohup",
        "rmdir", "eval", "cut", "seq", "mktemp", "awk", "gawk", "mawk",
    ];
    KNOWN.contains(&name)
}

/// `sh -c CMD`, `sh FILE`, `sh` reading a script from stdin (`curl … | sh`).
fn shell(sh: &mut Sh<'_>, prog: &str, args: &[String], stdin: String) -> Io {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i] != "-c" && args[i] != "-s" {
        if !matches!(
            args[i].as_str(),
            "-e" | "-x" | "-u" | "-eu" | "-ex" | "-xe" | "-l"
        ) {
            return sh.bad_option(prog, &args[i], 2);
        }
        i += 1;
    }
    let mut positional: &[String] = &[];
    let src = match args.get(i).map(String::as_str) {
        Some("-c") => match args.get(i + 1) {
            Some(src) => {
                positional = &args[(i + 2).min(args.len())..];
                src.clone()
            }
            None => return Io::err(format!("{prog}: -c: option requires an argument\n"), 2),
        },
        None | Some("-s") => stdin,
        Some(file) => {
            positional = &args[i..];
            let cwd = sh.cwd.clone();
            match sh.w.read_file(&cwd, file, VIA, sh.fx) {
                Ok(t) => t,
                Err(e) => return Io::err(format!("{prog}: {file}: {e}\n"), 127),
            }
        }
    };
    // `sh -c CMD NAME ARG...`: $0 is NAME, $1... the args, for the script only.
    let mut saved = Vec::new();
    if !positional.is_empty() {
        let rest = &positional[1..];
        let mut set: Vec<(String, String)> = vec![
            ("0".into(), positional[0].clone()),
            ("#".into(), rest.len().to_string()),
            ("@".into(), rest.join(" ")),
            ("*".into(), rest.join(" ")),
        ];
        for (k, v) in rest.iter().enumerate().take(9) {
            set.push(((k + 1).to_string(), v.clone()));
        }
        if rest.len() > 1 && src.contains("\"$@\"") {
            sh.unsupported(
                prog,
                "\"$@\"",
                "\"$@\" expands to one word in the embedded shell",
            );
        }
        for (k, v) in set {
            saved.push((k.clone(), sh.vars.insert(k.clone(), v)));
            sh.assigned.insert(k);
        }
    }
    let (out, status) = sh.capture(&src);
    for (k, old) in saved {
        match old {
            Some(v) => sh.vars.insert(k, v),
            None => sh.vars.remove(&k),
        };
    }
    Io {
        stdout: out,
        stderr: String::new(),
        status,
    }
}

/// `set -e`, `set -o pipefail`, `set -u`/`-x` (accepted), and their `+` forms.
fn set(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let on = a.starts_with('-');
        if a == "-o" || a == "+o" {
            i += 1;
            match args.get(i).map(String::as_str) {
                Some("pipefail") => sh.pipefail = on,
                Some("errexit") => sh.errexit = on,
                Some("nounset" | "xtrace") => {}
                other => return sh.bad_option("set", &format!("{a} {}", other.unwrap_or("")), 2),
            }
        } else if (on || a.starts_with('+')) && a.len() > 1 {
            for c in a[1..].chars() {
                match c {
                    'e' => sh.errexit = on,
                    'o' => {
                        // `set -euo pipefail`: the name follows.
                        i += 1;
                        match args.get(i).map(String::as_str) {
                            Some("pipefail") => sh.pipefail = on,
                            Some("errexit") => sh.errexit = on,
                            Some("nounset" | "xtrace") => {}
                            _ => return sh.bad_option("set", a, 2),
                        }
                    }
                    'u' | 'x' | 'v' | 'h' | 'B' | 'C' => {}
                    _ => return sh.bad_option("set", a, 2),
                }
            }
        } else {
            return sh.bad_option("set", a, 2);
        }
        i += 1;
    }
    Io::default()
}

/// `sudo CMD`, `command CMD`, `exec CMD`, `nice CMD`, `time CMD`: run CMD
/// (the world has one user and does not enforce modes).
fn wrapper(sh: &mut Sh<'_>, prog: &str, args: &[String], stdin: String) -> Io {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        match (prog, args[i].as_str()) {
            ("command", "-v") | ("command", "-V") => {
                let mut io = Io::default();
                for a in &args[i + 1..] {
                    if is_program(a) {
                        io.stdout.push_str(&format!("/usr/bin/{a}\n"));
                    } else {
                        io.status = 1;
                    }
                }
                return io;
            }
            ("sudo", "-n" | "-E" | "-H") => {}
            _ => return sh.bad_option(prog, &args[i], 1),
        }
        i += 1;
    }
    if i >= args.len() {
        if prog == "exec" {
            sh.unsupported(
                "exec",
                "exec without a command",
                "persistent redirections are not modelled",
            );
            return Io::err(
                "sh: exec: persistent redirections are not supported\n".into(),
                2,
            );
        }
        return Io::default();
    }
    sh.run_argv(&args[i..], stdin)
}

/// Splits leading `-abc` options into single letters (long options through
/// `long`, name → letter); stops at `--` or the first operand. An option not
/// known is returned as the error, for [`Sh::bad_option`].
pub(super) fn opts<'a>(
    args: &'a [String],
    known: &str,
    long: &[(&str, char)],
) -> Result<(Vec<char>, &'a [String]), String> {
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
        if let Some(name) = a.strip_prefix("--") {
            match long.iter().find(|(n, _)| *n == name) {
                Some((_, c)) => fl.push(*c),
                None => return Err(a.clone()),
            }
            i += 1;
            continue;
        }
        for c in a[1..].chars() {
            if !known.contains(c) {
                return Err(format!("-{c}"));
            }
            fl.push(c);
        }
        i += 1;
    }
    Ok((fl, &args[i..]))
}

/// [`opts`] without long options.
fn flags<'a>(args: &'a [String], known: &str) -> Result<(Vec<char>, &'a [String]), String> {
    opts(args, known, &[])
}

/// The files one program reads may hold this many times `shell_output_bytes`.
const INPUT_FACTOR: usize = 16;

/// Reads each operand (or stdin for none / `-`), reporting errors like coreutils.
pub(super) fn inputs(
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
    // The files one program reads are not output, but naming one file many
    // times must not multiply memory: together they may hold INPUT_FACTOR x
    // `shell_output_bytes`.
    let mut total = 0;
    let budget = sh.out_max.saturating_mul(INPUT_FACTOR);
    for f in files {
        if total > budget {
            sh.w.hit_cap(
                "shell_output_bytes",
                sh.out_max as f64,
                format!(
                    "`{prog}` read more than {budget} bytes of input ({INPUT_FACTOR} x the cap)"
                ),
            );
            break;
        }
        if sh.halted() {
            break;
        }
        if f == "-" || f == "/dev/stdin" {
            out.push((f.clone(), stdin.to_string()));
            total += stdin.len();
            continue;
        }
        if f == "/dev/null" {
            out.push((f.clone(), String::new()));
            continue;
        }
        if f.starts_with("/dev/") {
            sh.unsupported(prog, f, "device files are not modelled");
            err.push_str(&format!("{prog}: {f}: No such device\n"));
            status = 1;
            continue;
        }
        let cwd = sh.cwd.clone();
        match sh.w.read_file(&cwd, f, VIA, sh.fx) {
            Ok(t) => {
                total += t.len();
                out.push((f.clone(), t));
            }
            Err(e) => {
                err.push_str(&format!("{prog}: {f}: {e}\n"));
                status = 1;
            }
        }
    }
    (out, err, status)
}

fn cat(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let (fl, files) = match opts(
        args,
        "nbEsu",
        &[
            ("number", 'n'),
            ("number-nonblank", 'b'),
            ("show-ends", 'E'),
            ("squeeze-blank", 's'),
        ],
    ) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("cat", &e, 1),
    };
    let (ins, stderr, status) = inputs(sh, "cat", files, &stdin);
    let mut stdout = String::new();
    let mut n = 0;
    let plain = !fl.iter().any(|c| "nbEs".contains(*c));
    let mut blank_run = false;
    for (_, t) in ins {
        if plain {
            stdout.push_str(&t);
            continue;
        }
        for l in t.split_inclusive('\n') {
            let (body, nl) = l.strip_suffix('\n').map_or((l, ""), |b| (b, "\n"));
            if fl.contains(&'s') && body.is_empty() {
                if blank_run {
                    continue;
                }
                blank_run = true;
            } else {
                blank_run = false;
            }
            let number = if fl.contains(&'b') {
                !body.is_empty()
            } else {
                fl.contains(&'n')
            };
            if number {
                n += 1;
                stdout.push_str(&format!("{n:>6}\t"));
            }
            stdout.push_str(body);
            if fl.contains(&'E') && !nl.is_empty() {
                stdout.push('$');
            }
            stdout.push_str(nl);
        }
    }
    Io {
        stdout,
        stderr,
        status,
    }
}

fn ls(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let (fl, paths) = match opts(
        args,
        "laA1hRtrdFS",
        &[
            ("all", 'a'),
            ("almost-all", 'A'),
            ("recursive", 'R'),
            ("reverse", 'r'),
        ],
    ) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("ls", &e, 2),
    };
    let has = |c: char| fl.contains(&c);
    let default = [".".to_string()];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut io = Io::default();
    // (shown name, is an operand); -R appends subdirectories as it goes.
    let mut queue: std::collections::VecDeque<(String, bool)> =
        paths.iter().map(|p| (p.clone(), true)).collect();
    let many = paths.len() > 1 || has('R');
    let mut first = true;
    while let Some((p, operand)) = queue.pop_front() {
        if sh.over(io.stdout.len(), "ls") {
            break;
        }
        let cwd = sh.cwd.clone();
        let listed = if has('d') {
            sh.w.vfs
                .locate(&cwd, &p, false)
                .map_err(|e| crate::ops::OpErr::Denied(e.to_string()))
                .and_then(|abs| {
                    sh.w.vfs
                        .get(&abs)
                        .map(|n| {
                            let mut e = crate::ops::entry(&p, n);
                            e.name = p.clone();
                            (abs.clone(), vec![e])
                        })
                        .ok_or(crate::ops::OpErr::NotFound)
                })
        } else {
            sh.w.list(&cwd, &p, VIA, sh.fx)
        };
        match listed {
            Ok((abs, mut entries)) => {
                let is_dir = !has('d') && sh.w.vfs.get(&abs).is_some_and(crate::vfs::Node::is_dir);
                if many && is_dir {
                    if !first {
                        io.stdout.push('\n');
                    }
                    io.stdout.push_str(&format!("{p}:\n"));
                }
                first = false;
                if has('r') {
                    entries.reverse();
                }
                let mut subdirs = Vec::new();
                for e in entries {
                    if is_dir && !has('a') && !has('A') && e.name.starts_with('.') {
                        continue;
                    }
                    let name = if is_dir { e.name.clone() } else { p.clone() };
                    if is_dir && has('R') && e.kind == 'd' {
                        subdirs.push((format!("{}/{}", p.trim_end_matches('/'), e.name), false));
                    }
                    if has('l') {
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
                    if has('F') {
                        io.stdout.push_str(match e.kind {
                            'd' => "/",
                            'l' => "@",
                            _ if e.mode & 0o111 != 0 => "*",
                            _ => "",
                        });
                    }
                    io.stdout.push('\n');
                }
                for (k, d) in subdirs.into_iter().enumerate() {
                    queue.insert(k, d);
                }
            }
            Err(e) => {
                io.stderr
                    .push_str(&format!("ls: cannot access '{p}': {e}\n"));
                io.status = if operand { 2 } else { 1 };
            }
        }
    }
    io
}

fn head_tail(sh: &mut Sh<'_>, prog: &str, args: &[String], stdin: String) -> Io {
    let mut n: i64 = 10;
    let mut bytes = false;
    let mut from_start = false;
    let mut files = Vec::new();
    let mut i = 0;
    let mut opts_done = false;
    while i < args.len() {
        let a = &args[i];
        let val = if opts_done || a == "-" || !a.starts_with('-') {
            files.push(a.clone());
            None
        } else if a == "--" {
            opts_done = true;
            None
        } else if a == "-n" || a == "-c" {
            bytes = a == "-c";
            i += 1;
            args.get(i).cloned()
        } else if let Some(v) = a.strip_prefix("-n") {
            Some(v.to_string())
        } else if let Some(v) = a.strip_prefix("-c") {
            bytes = true;
            Some(v.to_string())
        } else if let Some(v) = a.strip_prefix("--lines=") {
            Some(v.to_string())
        } else if let Some(v) = a.strip_prefix("--bytes=") {
            bytes = true;
            Some(v.to_string())
        } else if a[1..].bytes().all(|b| b.is_ascii_digit()) {
            Some(a[1..].to_string())
        } else if matches!(
            a.as_str(),
            "-q" | "-v" | "--quiet" | "--silent" | "--verbose"
        ) {
            None
        } else {
            return sh.bad_option(prog, a, 1);
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
        let n = n.max(0) as usize;
        if bytes {
            let b = t.as_bytes();
            let sel = if prog == "head" {
                &b[..n.min(b.len())]
            } else if from_start {
                &b[n.saturating_sub(1).min(b.len())..]
            } else {
                &b[b.len().saturating_sub(n)..]
            };
            stdout.push_str(&String::from_utf8_lossy(sel));
            continue;
        }
        let lines: Vec<&str> = t.split_inclusive('\n').collect();
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
pub(super) fn bre_to_ere(p: &str) -> String {
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
    let mut include: Vec<String> = Vec::new();
    let mut exclude: Vec<String> = Vec::new();
    let (mut after, mut before) = (0usize, 0usize);
    let mut ctx_given = false;
    let mut i = 0;
    let mut opts_done = false;
    while i < args.len() {
        let a = &args[i];
        if !opts_done && a == "--" {
            opts_done = true;
        } else if !opts_done && a == "-e" {
            i += 1;
            patterns.extend(args.get(i).cloned());
        } else if !opts_done && let Some((which, v)) = context_opt(a, args.get(i + 1)) {
            // -A N, -B N, -C N, -AN, -NUM, --after-context=N, ...
            if v.1 {
                i += 1;
            }
            let Some(n) = v.0 else {
                return Io::err(format!("grep: {a}: invalid context length argument\n"), 2);
            };
            ctx_given = true;
            match which {
                'A' => after = n,
                'B' => before = n,
                _ => (after, before) = (n, n),
            }
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
                _ if a.starts_with("--include=") => include.push(a[10..].to_string()),
                _ if a.starts_with("--exclude=") => exclude.push(a[10..].to_string()),
                _ if a.starts_with("--color") => {}
                _ => return sh.bad_option("grep", a, 2),
            }
        } else if !opts_done && a.len() > 1 && a.starts_with('-') {
            for c in a[1..].chars() {
                if !"ivnrRclqsFEowhHI".contains(c) {
                    return sh.bad_option("grep", &format!("-{c}"), 2);
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
                        let base = crate::vfs::basename(&d);
                        let wanted = (include.is_empty()
                            || include.iter().any(|p| super::wildcard(p, base)))
                            && !exclude.iter().any(|p| super::wildcard(p, base));
                        if wanted
                            && matches!(
                                sh.w.vfs.get(&d).map(|n| &n.kind),
                                Some(crate::vfs::NodeKind::File(_))
                            )
                        {
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
    let context = ctx_given && !has('q') && !has('l') && !has('c') && !has('o');
    let mut printed_any = false;
    for (name, text) in &ins {
        if context {
            let lines: Vec<&str> = text.lines().collect();
            let hits: Vec<bool> = lines.iter().map(|l| re.is_match(l) != has('v')).collect();
            let mut show = vec![false; lines.len()];
            for (k, _) in hits.iter().enumerate().filter(|(_, h)| **h) {
                let lo = k.saturating_sub(before);
                let hi = (k + after).min(lines.len().saturating_sub(1));
                show[lo..=hi].iter_mut().for_each(|x| *x = true);
            }
            let mut last: Option<usize> = None;
            for (k, line) in lines.iter().enumerate().filter(|(k, _)| show[*k]) {
                if sh.over(stdout.len(), "grep") {
                    break;
                }
                if printed_any && last.is_none_or(|l| l + 1 != k) {
                    stdout.push_str("--\n");
                }
                let sep = if hits[k] { ':' } else { '-' };
                if show_name {
                    stdout.push_str(&format!("{name}{sep}"));
                }
                if has('n') {
                    stdout.push_str(&format!("{}{sep}", k + 1));
                }
                stdout.push_str(line);
                stdout.push('\n');
                last = Some(k);
                printed_any = true;
            }
            any |= hits.iter().any(|h| *h);
            continue;
        }
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

/// A grep context option: which (`A`, `B` or `C`), and (its number, whether
/// the number was the next argument). None when `a` is not one.
fn context_opt(a: &str, next: Option<&String>) -> Option<(char, (Option<usize>, bool))> {
    for (short, long, which) in [
        ("-A", "--after-context", 'A'),
        ("-B", "--before-context", 'B'),
        ("-C", "--context", 'C'),
    ] {
        if a == short || a == long {
            return Some((which, (next.and_then(|n| n.parse().ok()), true)));
        }
        if let Some(v) = a.strip_prefix(short).filter(|v| !v.is_empty()) {
            return Some((which, (v.parse().ok(), false)));
        }
        if let Some(v) = a.strip_prefix(long).and_then(|v| v.strip_prefix('=')) {
            return Some((which, (v.parse().ok(), false)));
        }
    }
    match a.strip_prefix('-') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
            Some(('C', (d.parse().ok(), false)))
        }
        _ => None,
    }
}

/// Backslash escapes of `echo -e` and `printf`'s format.
pub(super) fn unescape(s: &str) -> (String, bool) {
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

/// Largest width and precision `printf` honours: larger values are clamped
/// (the formatter's own limit is 65535, and a huge pad is only a memory sink).
pub(super) const PRINTF_MAX: usize = 4096;

/// `printf FORMAT ARGS...`: `%s %b %c %d %i %u %x %X %o %f %e %g %%` with flags,
/// width and precision (each at most [`PRINTF_MAX`]); the format is reused
/// while arguments remain. Stops once the output passes `max` bytes.
pub(super) fn printf(fmt: &str, args: &[String], max: usize) -> String {
    let (fmt, _) = unescape(fmt);
    let f: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut ai = 0;
    loop {
        let mut consumed = false;
        let mut i = 0;
        while i < f.len() && out.len() <= max {
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
                prec = Some(p.parse().unwrap_or(PRINTF_MAX).min(PRINTF_MAX));
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
            let w: usize = if width.is_empty() {
                0
            } else {
                width.parse().unwrap_or(PRINTF_MAX).min(PRINTF_MAX)
            };
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
        if !consumed || ai >= args.len() || out.len() > max {
            break;
        }
    }
    out
}

fn cp_mv(sh: &mut Sh<'_>, prog: &str, args: &[String]) -> Io {
    let long: &[(&str, char)] = &[
        ("recursive", 'r'),
        ("force", 'f'),
        ("verbose", 'v'),
        ("archive", 'a'),
        ("no-clobber", 'n'),
    ];
    let (fl, ops) = match opts(args, if prog == "cp" { "rRfpavn" } else { "fvn" }, long) {
        Ok(x) => x,
        Err(e) => return sh.bad_option(prog, &e, 1),
    };
    if ops.len() < 2 {
        return Io::err(format!("{prog}: missing destination file operand\n"), 1);
    }
    let (srcs, dst) = ops.split_at(ops.len() - 1);
    let dst = &dst[0];
    let recursive = fl.iter().any(|c| "rRa".contains(*c));
    let mut io = Io::default();
    for src in srcs {
        if sh.halted() {
            break;
        }
        let cwd = sh.cwd.clone();
        if fl.contains(&'n') {
            // No clobber: an existing destination is left alone.
            let d = sh.w.vfs.locate(&cwd, dst, true).ok();
            let target = match d {
                Some(d) if sh.w.vfs.get(&d).is_some_and(crate::vfs::Node::is_dir) => {
                    format!("{d}/{}", crate::vfs::basename(src.trim_end_matches('/')))
                }
                Some(d) => d,
                None => String::new(),
            };
            if sh.w.vfs.get(&target).is_some() {
                continue;
            }
        }
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
    let (fl, ops) = match opts(
        args,
        "rRfivd",
        &[
            ("recursive", 'r'),
            ("force", 'f'),
            ("verbose", 'v'),
            ("dir", 'd'),
            ("no-preserve-root", 'P'),
            ("preserve-root", 'p'),
        ],
    ) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("rm", &e, 1),
    };
    let force = fl.contains(&'f');
    if ops.is_empty() && !force {
        return Io::err("rm: missing operand\n".into(), 1);
    }
    let recursive = fl.contains(&'r') || fl.contains(&'R');
    let mut io = Io::default();
    for p in ops {
        if sh.halted() {
            break;
        }
        let cwd = sh.cwd.clone();
        match sh
            .w
            .delete(&cwd, p, recursive, fl.contains(&'d'), VIA, sh.fx)
        {
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

fn rmdir(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let (_, ops) = match opts(args, "pv", &[("parents", 'p'), ("verbose", 'v')]) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("rmdir", &e, 1),
    };
    if ops.is_empty() {
        return Io::err("rmdir: missing operand\n".into(), 1);
    }
    let mut io = Io::default();
    for p in ops {
        let cwd = sh.cwd.clone();
        let is_dir =
            sh.w.vfs
                .locate(&cwd, p, false)
                .ok()
                .and_then(|a| sh.w.vfs.get(&a).map(crate::vfs::Node::is_dir));
        let r = match is_dir {
            Some(false) => Err(crate::ops::OpErr::NotDir),
            _ => sh.w.delete(&cwd, p, false, true, VIA, sh.fx),
        };
        if let Err(e) = r {
            io.stderr
                .push_str(&format!("rmdir: failed to remove '{p}': {e}\n"));
            io.status = 1;
        }
    }
    io
}

fn mkdir(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let (fl, ops) = match opts(args, "pv", &[("parents", 'p'), ("verbose", 'v')]) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("mkdir", &e, 1),
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
    // Times are not modelled (every file is dated the same), so the time
    // options are accepted with their values; `-c` does not create.
    let mut ops = Vec::new();
    let mut no_create = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-c" | "--no-create" => no_create = true,
            "-a" | "-m" | "-h" | "--no-dereference" => {}
            "-d" | "-t" | "-r" => i += 1,
            _ if a.starts_with("--date=") || a.starts_with("--reference=") => {}
            _ if a.starts_with('-') && a.len() > 1 => return sh.bad_option("touch", a, 1),
            _ => ops.push(&args[i]),
        }
        i += 1;
    }
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
        if !exists
            && !no_create
            && let Err(e) = sh.w.write_file(&cwd, p, "", false, VIA, sh.fx)
        {
            io.stderr
                .push_str(&format!("touch: cannot touch '{p}': {e}\n"));
            io.status = 1;
        }
    }
    io
}

fn chmod(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut recursive = false;
    let mut ops: Vec<&String> = Vec::new();
    for a in args {
        match a.as_str() {
            "-R" | "--recursive" => recursive = true,
            "-v" | "-f" | "-c" | "--verbose" | "--silent" | "--quiet" | "--changes" | "--" => {}
            // A symbolic mode such as `-w` or `-x` looks like an option.
            m if ops.is_empty() && m.starts_with('-') && apply_symbolic(0, m).is_some() => {
                ops.push(a)
            }
            m if m.starts_with('-') && m.len() > 1 => return sh.bad_option("chmod", m, 1),
            _ => ops.push(a),
        }
    }
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
            continue;
        }
        if !recursive {
            continue;
        }
        // -R: everything below a directory; links are not followed (as chmod -R).
        let Ok(abs) = sh.w.vfs.locate(&cwd, p, true) else {
            continue;
        };
        for d in sh.w.vfs.descendants(&abs) {
            if sh.halted() {
                break;
            }
            if matches!(
                sh.w.vfs.get(&d).map(|n| &n.kind),
                Some(crate::vfs::NodeKind::Link(_))
            ) {
                continue;
            }
            let _ = sh.w.chmod(&cwd, &d, m, VIA, sh.fx);
        }
    }
    io
}

fn env(sh: &mut Sh<'_>, prog: &str, args: &[String], stdin: String) -> Io {
    if prog == "env" {
        // `env A=1 cmd args`: run cmd with the assignments.
        let mut i = 0;
        while i < args.len() {
            if args[i].starts_with('-') {
                if args[i] == "--" {
                    i += 1;
                    break;
                }
                return sh.bad_option("env", &args[i], 125);
            }
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
            return sh.run_argv(&args[i..], stdin);
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

fn sort(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    // -k N[,M][n][r] and -t C are taken out first; the rest are flags.
    let mut key: Option<(usize, usize)> = None;
    let mut sep: Option<char> = None;
    let mut rest: Vec<String> = Vec::new();
    let mut key_flags = String::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let value = |i: &mut usize, short: &str, long: &str| -> Option<Option<String>> {
            if a == short {
                *i += 1;
                Some(args.get(*i).cloned())
            } else if let Some(v) = a.strip_prefix(long) {
                Some(Some(v.to_string()))
            } else {
                a.strip_prefix(short)
                    .filter(|v| !v.is_empty() && !a.starts_with("--"))
                    .map(|v| Some(v.to_string()))
            }
        };
        if let Some(v) = value(&mut i, "-k", "--key=") {
            let v = v.unwrap_or_default();
            let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
            let n = digits(&v);
            let (start, tail) = v.split_at(n);
            let (end, tail) = match tail.strip_prefix(',') {
                Some(t) => {
                    let m = digits(t);
                    (t[..m].parse().ok(), &t[m..])
                }
                None => (Some(usize::MAX), tail),
            };
            match (start.parse::<usize>().ok(), end) {
                (Some(s), Some(e))
                    if s >= 1 && e >= s && tail.chars().all(|c| "nr".contains(c)) =>
                {
                    key = Some((s, e));
                    key_flags = tail.to_string();
                }
                _ => return sh.bad_option("sort", &format!("-k {v}"), 2),
            }
        } else if let Some(v) = value(&mut i, "-t", "--field-separator=") {
            let v = v.unwrap_or_default();
            let mut cs = v.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => sep = Some(c),
                _ => {
                    return Io::err(
                        "sort: the field separator must be one character\n".into(),
                        2,
                    );
                }
            }
        } else {
            rest.push(args[i].clone());
        }
        i += 1;
    }
    let args = &rest[..];
    let (fl, files) = match opts(
        args,
        "rnuf",
        &[
            ("reverse", 'r'),
            ("numeric-sort", 'n'),
            ("unique", 'u'),
            ("ignore-case", 'f'),
        ],
    ) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("sort", &e, 2),
    };
    let (ins, stderr, status) = inputs(sh, "sort", files, &stdin);
    if status != 0 {
        return Io::err(stderr, 2);
    }
    let text: String = ins.into_iter().map(|(_, t)| t).collect();
    let mut lines: Vec<&str> = text.lines().collect();
    let mut fl = fl;
    fl.extend(key_flags.chars());
    let field = |l: &str| -> String {
        let Some((s, e)) = key else {
            return l.to_string();
        };
        let parts: Vec<&str> = match sep {
            Some(c) => l.split(c).collect(),
            None => l.split_whitespace().collect(),
        };
        let hi = e.min(parts.len());
        if s > hi {
            return String::new();
        }
        parts[s - 1..hi].join(&sep.map_or(" ".to_string(), String::from))
    };
    if key.is_some() {
        let numeric = fl.contains(&'n');
        lines.sort_by(|a, b| {
            let (x, y) = (field(a), field(b));
            if numeric {
                let k = |s: &str| s.trim().parse::<f64>().unwrap_or(0.0);
                k(&x).total_cmp(&k(&y))
            } else if fl.contains(&'f') {
                x.to_lowercase().cmp(&y.to_lowercase())
            } else {
                x.cmp(&y)
            }
        });
    } else if fl.contains(&'n') {
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
    } else if fl.contains(&'f') {
        lines.sort_by_key(|l| l.to_lowercase());
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

fn uniq(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let (fl, files) = match opts(
        args,
        "cdu",
        &[("count", 'c'), ("repeated", 'd'), ("unique", 'u')],
    ) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("uniq", &e, 1),
    };
    if files.len() > 1 {
        return sh.bad_option("uniq", "OUTPUT operand", 1);
    }
    let (ins, stderr, status) = inputs(sh, "uniq", files, &stdin);
    if status != 0 {
        return Io::err(stderr, 1);
    }
    let text: String = ins.into_iter().map(|(_, t)| t).collect();
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for l in text.lines() {
        match groups.last_mut() {
            Some((last, n)) if *last == l => *n += 1,
            _ => groups.push((l, 1)),
        }
    }
    let mut out = String::new();
    for (l, n) in groups {
        if (fl.contains(&'d') && n < 2) || (fl.contains(&'u') && n > 1) {
            continue;
        }
        if fl.contains(&'c') {
            out.push_str(&format!("{n:>7} "));
        }
        out.push_str(l);
        out.push('\n');
    }
    Io::ok(out)
}

/// Parses a `cut` list (`1,3-5,7-`) into inclusive 1-based ranges.
fn cut_list(s: &str) -> Option<Vec<(usize, usize)>> {
    s.split(',')
        .map(|r| {
            let (a, b) = match r.split_once('-') {
                Some((a, b)) => (a, b),
                None => (r, r),
            };
            let a = if a.is_empty() { 1 } else { a.parse().ok()? };
            let b = if b.is_empty() {
                usize::MAX
            } else {
                b.parse().ok()?
            };
            (a >= 1 && a <= b).then_some((a, b))
        })
        .collect()
}

/// `cut -f LIST [-d C] [-s]`, `cut -c LIST`, `cut -b LIST`.
fn cut(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let mut delim = '\t';
    let mut fields: Option<Vec<(usize, usize)>> = None;
    let mut chars: Option<Vec<(usize, usize)>> = None;
    let mut only_delimited = false;
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let mut val = |short: &str, long: &str| -> Option<Option<String>> {
            if a == short || a == long {
                i += 1;
                Some(args.get(i).cloned())
            } else if let Some(v) = a.strip_prefix(short).filter(|v| !v.is_empty()) {
                Some(Some(v.to_string()))
            } else {
                a.strip_prefix(long)
                    .and_then(|v| v.strip_prefix('='))
                    .map(|v| Some(v.to_string()))
            }
        };
        if let Some(v) = val("-d", "--delimiter") {
            let v = v.unwrap_or_default();
            let mut cs = v.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => delim = c,
                _ => return Io::err("cut: the delimiter must be a single character\n".into(), 1),
            }
        } else if let Some(v) = val("-f", "--fields") {
            fields = v.as_deref().and_then(cut_list);
            if fields.is_none() {
                return Io::err("cut: invalid field list\n".into(), 1);
            }
        } else if let Some(v) = val("-c", "--characters").or_else(|| val("-b", "--bytes")) {
            chars = v.as_deref().and_then(cut_list);
            if chars.is_none() {
                return Io::err("cut: invalid byte or character list\n".into(), 1);
            }
        } else if a == "-s" || a == "--only-delimited" {
            only_delimited = true;
        } else if a.starts_with('-') && a.len() > 1 {
            return sh.bad_option("cut", a, 1);
        } else {
            files.push(a.to_string());
        }
        i += 1;
    }
    if fields.is_none() && chars.is_none() {
        return Io::err(
            "cut: you must specify a list of bytes, characters, or fields\n".into(),
            1,
        );
    }
    let (ins, stderr, status) = inputs(sh, "cut", &files, &stdin);
    let pick =
        |ranges: &[(usize, usize)], k: usize| ranges.iter().any(|(a, b)| (*a..=*b).contains(&k));
    let mut out = String::new();
    for (_, t) in ins {
        for line in t.lines() {
            if let Some(r) = &chars {
                out.extend(
                    line.chars()
                        .enumerate()
                        .filter(|(k, _)| pick(r, k + 1))
                        .map(|(_, c)| c),
                );
            } else if let Some(r) = &fields {
                if !line.contains(delim) {
                    if only_delimited {
                        continue;
                    }
                    out.push_str(line);
                } else {
                    let parts: Vec<&str> = line
                        .split(delim)
                        .enumerate()
                        .filter(|(k, _)| pick(r, k + 1))
                        .map(|(_, p)| p)
                        .collect();
                    out.push_str(&parts.join(&delim.to_string()));
                }
            }
            out.push('\n');
        }
    }
    Io {
        stdout: out,
        stderr,
        status,
    }
}

/// `seq [FIRST [INCR]] LAST` (integers), bounded by the output cap.
fn seq(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let nums: Option<Vec<i64>> = args.iter().map(|a| a.parse().ok()).collect();
    let (first, incr, last) = match nums.as_deref() {
        Some([l]) => (1, 1, *l),
        Some([f, l]) => (*f, 1, *l),
        Some([f, i, l]) if *i != 0 => (*f, *i, *l),
        _ => {
            if args
                .iter()
                .any(|a| a.starts_with('-') && a.parse::<i64>().is_err())
            {
                return sh.bad_option("seq", &args.join(" "), 1);
            }
            return Io::err(format!("seq: invalid argument: '{}'\n", args.join(" ")), 1);
        }
    };
    let mut out = String::new();
    let mut n = first;
    while (incr > 0 && n <= last) || (incr < 0 && n >= last) {
        out.push_str(&format!("{n}\n"));
        if sh.over(out.len(), "seq") {
            break;
        }
        let Some(next) = n.checked_add(incr) else {
            break;
        };
        n = next;
    }
    Io::ok(out)
}

/// `mktemp [-d] [-p DIR] [TEMPLATE]`: a new empty file (a `write`) or
/// directory under `/tmp` with a fixed, unused name.
fn mktemp(sh: &mut Sh<'_>, args: &[String]) -> Io {
    let mut dir = false;
    let mut base = "/tmp".to_string();
    let mut template = "tmp.XXXXXXXXXX".to_string();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-d" | "--directory" => dir = true,
            "-q" | "--quiet" => {}
            "-p" | "--tmpdir" => {
                i += 1;
                base = args.get(i).cloned().unwrap_or(base);
            }
            "-t" => {}
            a if a.starts_with('-') && a.len() > 1 => return sh.bad_option("mktemp", a, 1),
            a => template = a.to_string(),
        }
        i += 1;
    }
    let cwd = sh.cwd.clone();
    for k in 0..1000u32 {
        let tail = format!("{k:0>10}");
        let xs = template.chars().rev().take_while(|c| *c == 'X').count();
        let name = format!(
            "{}{}",
            &template[..template.len() - xs],
            &tail[tail.len().saturating_sub(xs)..]
        );
        let path = if name.contains('/') {
            name
        } else {
            format!("{}/{name}", base.trim_end_matches('/'))
        };
        let taken =
            sh.w.vfs
                .locate(&cwd, &path, false)
                .ok()
                .is_some_and(|p| sh.w.vfs.get(&p).is_some());
        if taken {
            continue;
        }
        let r = if dir {
            sh.w.mkdir(&cwd, &path, true, VIA, sh.fx)
        } else {
            sh.w.write_file(&cwd, &path, "", false, VIA, sh.fx)
                .map(|_| ())
        };
        return match r {
            Ok(()) => Io::ok(format!("{path}\n")),
            Err(e) => Io::err(format!("mktemp: failed to create '{path}': {e}\n"), 1),
        };
    }
    Io::err("mktemp: too many temporary files\n".into(), 1)
}

/// Expands a `tr` set: ranges `a-z`, escapes `\n \t \\`, classes `[:lower:]` etc.
fn tr_set(s: &str) -> Vec<char> {
    let s = s
        .replace("[:lower:]", "a-z")
        .replace("[:upper:]", "A-Z")
        .replace("[:digit:]", "0-9")
        .replace("[:alpha:]", "a-zA-Z")
        .replace("[:alnum:]", "a-zA-Z0-9")
        .replace("[:space:]", " \t\n\r");
    let (s, _) = unescape(&s);
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if i + 2 < c.len() && c[i + 1] == '-' && c[i] <= c[i + 2] {
            out.extend(c[i]..=c[i + 2]);
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// `tr SET1 SET2`, `tr -d SET`, `tr -s SET` (the rot13 and case idioms).
fn tr(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let (fl, sets) = match opts(args, "ds", &[("delete", 'd'), ("squeeze-repeats", 's')]) {
        Ok(x) => x,
        Err(e) => return sh.bad_option("tr", &e, 1),
    };
    let del = fl.contains(&'d');
    let squeeze = fl.contains(&'s');
    let need = if del || (squeeze && sets.len() == 1) {
        1
    } else {
        2
    };
    if sets.len() != need {
        return Io::err("tr: missing operand\n".into(), 1);
    }
    let a = tr_set(&sets[0]);
    let b = sets.get(1).map(|s| tr_set(s)).unwrap_or_default();
    let mut out = String::with_capacity(stdin.len());
    let mut last: Option<char> = None;
    for ch in stdin.chars() {
        let pos = a.iter().position(|x| *x == ch);
        let mapped = match pos {
            Some(_) if del => continue,
            Some(p) if !b.is_empty() => b[p.min(b.len() - 1)],
            _ => ch,
        };
        let squeeze_set = if b.is_empty() { &a } else { &b };
        if squeeze && last == Some(mapped) && squeeze_set.contains(&mapped) {
            continue;
        }
        last = Some(mapped);
        out.push(mapped);
    }
    Io::ok(out)
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
            a if a.starts_with('-') && a.len() > 1 => return sh.bad_option("base64", a, 1),
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
            // Decoded gzip bytes are binary: they stay in the stored form
            // of a gzip blob (its base64), as `gzip` writes them.
            Ok(b) if b.starts_with(&[0x1f, 0x8b]) => Io::ok(STANDARD.encode(&b)),
            Ok(b) => Io::ok(String::from_utf8_lossy(&b).into_owned()),
            Err(_) => Io::err("base64: invalid input\n".into(), 1),
        }
    } else {
        // A stored gzip blob is binary data held as its base64: encoding it
        // gives that same base64, as on a real system.
        let enc = match super::archive::gz_bytes(&data) {
            Some(b) => STANDARD.encode(b),
            None => STANDARD.encode(data.as_bytes()),
        };
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

/// The value an option at `i` would take, without consuming it.
fn val_peek<'a>(args: &'a [String], i: usize, inline: &'a Option<String>) -> &'a str {
    match inline {
        Some(v) => v,
        None => args.get(i + 1).map_or("", String::as_str),
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
            "-T" | "--upload-file" if val_peek(args, i, &inline) == "-" => {
                let _ = val(&mut i);
                data.push(stdin.clone());
                method.get_or_insert_with(|| "PUT".into());
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
            "--silent"
            | "--show-error"
            | "--location"
            | "--insecure"
            | "--compressed"
            | "--verbose"
            | "--include"
            | "--progress-bar"
            | "--no-progress-meter"
            | "--http1.1"
            | "--http2"
            | "--globoff"
            | "--no-buffer" => {}
            n if n.starts_with("--") => {
                // Not modelled: recorded, and the request still goes out as
                // modelled, so its egress is never lost.
                sh.unsupported("curl", n, "option not modelled by the embedded shell");
            }
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
                            _ => {
                                sh.unsupported(
                                    "curl",
                                    &format!("-{c}"),
                                    "option not modelled by the embedded shell",
                                );
                            }
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
            "-q"
            | "--quiet"
            | "-nv"
            | "--no-verbose"
            | "-v"
            | "--verbose"
            | "--no-check-certificate"
            | "-c"
            | "--continue"
            | "-S"
            | "--server-response" => {}
            "-T" | "--timeout" | "-t" | "--tries" | "-U" | "--user-agent" => {
                let _ = val(&mut i);
            }
            n if n.starts_with('-') => {
                sh.unsupported("wget", n, "option not modelled by the embedded shell");
            }
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
            _ => {
                sh.unsupported(
                    "pip",
                    sub,
                    "pip subcommand not modelled by the embedded shell",
                );
                Io::err(format!("ERROR: unknown command \"{sub}\"\n"), 1)
            }
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
        } else if !matches!(
            a.as_str(),
            "-U" | "--upgrade"
                | "-q"
                | "--quiet"
                | "--user"
                | "--no-cache-dir"
                | "--break-system-packages"
                | "--no-deps"
                | "--force-reinstall"
                | "--pre"
                | "-v"
                | "--verbose"
        ) {
            sh.unsupported("pip", a, "option not modelled by the embedded shell");
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
        sh.unsupported(
            "npm",
            sub,
            "npm subcommand not modelled by the embedded shell",
        );
        return Io::err(format!("npm ERR! unknown command: \"{sub}\"\n"), 1);
    }
    for a in args[1..].iter().filter(|a| a.starts_with('-')) {
        if !matches!(
            a.as_str(),
            "-g" | "--global"
                | "-D"
                | "--save-dev"
                | "-S"
                | "--save"
                | "-E"
                | "--save-exact"
                | "--no-save"
                | "--silent"
                | "-s"
                | "--no-audit"
                | "--no-fund"
        ) {
            sh.unsupported("npm", a, "option not modelled by the embedded shell");
        }
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

/// Compiles a regex, reusing the compilation of earlier episodes on this thread:
/// agents repeat the same `grep`s across thousands of episodes.
pub(super) fn cached_regex(src: &str) -> Option<regex::Regex> {
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
