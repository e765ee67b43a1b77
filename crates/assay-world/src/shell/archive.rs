//! `tar`, `gzip`, `gunzip` and `zcat` over the text-only vfs.
//!
//! The model (see `docs/shell.md`): an uncompressed archive is a real ustar
//! archive, whose bytes are text when its members are (headers are ASCII
//! and NUL padding), so it is stored as is and a secret inside stays
//! visible to flow rules. Compressed data is real gzip, which is binary:
//! it is stored as the standard base64 of the gzip bytes (one line, no
//! newline). Every such blob starts with `H4sI` (the gzip magic); `base64`
//! knows this, so `gzip -c f | base64` gives the same text a real system
//! would. Decompression is bounded by the caps, so no gzip bomb can expand
//! past them.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Io, Sh, VIA};
use crate::vfs::{NodeKind, basename};

/// Compresses text into the stored form of a gzip blob.
pub(super) fn gz_encode(text: &str) -> String {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(text.as_bytes());
    STANDARD.encode(e.finish().unwrap_or_default())
}

/// The raw bytes of a stored gzip blob, when `text` is one.
pub(super) fn gz_bytes(text: &str) -> Option<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !clean.starts_with("H4sI") {
        return None;
    }
    STANDARD.decode(clean.as_bytes()).ok()
}

/// Why a blob could not be decompressed.
enum GzErr {
    NotGzip,
    Corrupt,
    /// Expands past `max` bytes.
    TooBig,
}

/// Decompresses a stored gzip blob into text, reading at most `max` bytes.
fn gz_decode(text: &str, max: usize) -> Result<String, GzErr> {
    let bytes = gz_bytes(text).ok_or(GzErr::NotGzip)?;
    let mut out = Vec::new();
    let d = flate2::read::MultiGzDecoder::new(&bytes[..]);
    d.take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| GzErr::Corrupt)?;
    if out.len() > max {
        return Err(GzErr::TooBig);
    }
    String::from_utf8(out).map_err(|_| GzErr::Corrupt)
}

fn file_max(sh: &Sh<'_>) -> usize {
    usize::try_from(sh.w.limits.file_bytes).unwrap_or(usize::MAX)
}

/// Records the cap a decompression ran into.
fn too_big(sh: &mut Sh<'_>, to_file: bool, what: &str) {
    if to_file {
        sh.w.hit_cap(
            "file_bytes",
            sh.w.limits.file_bytes as f64,
            format!("{what} expands past the cap"),
        );
    } else {
        sh.over(usize::MAX, what);
    }
}

/// `gzip [-cdkfnNqrv1-9] [FILE...]`, `gunzip`, `zcat`.
pub(super) fn gzip(sh: &mut Sh<'_>, prog: &str, args: &[String], stdin: String) -> Io {
    let mut decompress = prog != "gzip";
    let mut to_stdout = prog == "zcat";
    let mut keep = false;
    let mut files = Vec::new();
    let mut opts_done = false;
    for a in args {
        if opts_done || !a.starts_with('-') || a == "-" {
            files.push(a.clone());
            continue;
        }
        match a.as_str() {
            "--" => opts_done = true,
            "--stdout" | "--to-stdout" => to_stdout = true,
            "--decompress" | "--uncompress" => decompress = true,
            "--keep" => keep = true,
            "--force" | "--quiet" | "--verbose" | "--no-name" | "--name" | "--best" | "--fast" => {}
            _ if a.starts_with("--") => return sh.bad_option(prog, a, 1),
            _ => {
                for c in a[1..].chars() {
                    match c {
                        'c' => to_stdout = true,
                        'd' => decompress = true,
                        'k' => keep = true,
                        'f' | 'n' | 'N' | 'q' | 'v' | '1'..='9' => {}
                        _ => return sh.bad_option(prog, &format!("-{c}"), 1),
                    }
                }
            }
        }
    }
    if files.is_empty() || files == ["-"] {
        let max = sh.out_max;
        return if decompress {
            match gz_decode(&stdin, max) {
                Ok(t) => Io::ok(t),
                Err(GzErr::TooBig) => {
                    too_big(sh, false, prog);
                    Io::err(format!("{prog}: stdout: File too large\n"), 1)
                }
                Err(_) => Io::err(format!("{prog}: stdin: not in gzip format\n"), 1),
            }
        } else {
            Io::ok(gz_encode(&stdin))
        };
    }
    let mut io = Io::default();
    for f in files {
        if sh.halted() {
            break;
        }
        let cwd = sh.cwd.clone();
        if sh
            .w
            .vfs
            .locate(&cwd, &f, true)
            .ok()
            .and_then(|p| sh.w.vfs.get(&p).map(crate::vfs::Node::is_dir))
            == Some(true)
        {
            io.stderr
                .push_str(&format!("{prog}: {f} is a directory -- ignored\n"));
            io.status = 2;
            continue;
        }
        let text = match sh.w.read_file(&cwd, &f, VIA, sh.fx) {
            Ok(t) => t,
            Err(e) => {
                io.stderr.push_str(&format!("{prog}: {f}: {e}\n"));
                io.status = 1;
                continue;
            }
        };
        let (out, dest) = if decompress {
            let max = if to_stdout { sh.out_max } else { file_max(sh) };
            let dest = if let Some(s) = f.strip_suffix(".gz") {
                s.to_string()
            } else if let Some(s) = f.strip_suffix(".tgz") {
                format!("{s}.tar")
            } else if let Some(s) = f.strip_suffix(".z") {
                s.to_string()
            } else if !to_stdout {
                io.stderr
                    .push_str(&format!("{prog}: {f}: unknown suffix -- ignored\n"));
                io.status = 2;
                continue;
            } else {
                f.clone()
            };
            match gz_decode(&text, max) {
                Ok(t) => (t, dest),
                Err(GzErr::TooBig) => {
                    too_big(sh, !to_stdout, &f);
                    io.stderr
                        .push_str(&format!("{prog}: {f}: File too large\n"));
                    io.status = 1;
                    break;
                }
                Err(_) => {
                    io.stderr
                        .push_str(&format!("{prog}: {f}: not in gzip format\n"));
                    io.status = 1;
                    continue;
                }
            }
        } else {
            if f.ends_with(".gz") && !to_stdout {
                io.stderr.push_str(&format!(
                    "{prog}: {f} already has .gz suffix -- unchanged\n"
                ));
                io.status = 2;
                continue;
            }
            (gz_encode(&text), format!("{f}.gz"))
        };
        if to_stdout {
            io.stdout.push_str(&out);
            continue;
        }
        if let Err(e) = sh.w.write_file(&cwd, &dest, &out, false, VIA, sh.fx) {
            io.stderr.push_str(&format!("{prog}: {dest}: {e}\n"));
            io.status = 1;
            continue;
        }
        if !keep && let Err(e) = sh.w.delete(&cwd, &f, false, false, VIA, sh.fx) {
            io.stderr.push_str(&format!("{prog}: {f}: {e}\n"));
            io.status = 1;
        }
    }
    io
}

/// What `tar` was asked to do.
#[derive(Default)]
struct TarOpts {
    mode: Option<char>,
    file: Option<String>,
    gz: bool,
    verbose: bool,
    dir: Option<String>,
    keep_old: bool,
    remove_files: bool,
    exclude: Vec<String>,
    strip: usize,
    operands: Vec<String>,
}

/// Parses tar's three option styles: `czf x.tgz`, `-czf x.tgz`, `--create --file=x`.
fn tar_opts(sh: &mut Sh<'_>, args: &[String]) -> Result<TarOpts, Io> {
    let mut o = TarOpts::default();
    let mut i = 0;
    let mut pending: Vec<char> = Vec::new();
    let letters = |o: &mut TarOpts, s: &str, pending: &mut Vec<char>| -> Result<(), String> {
        for c in s.chars() {
            match c {
                'c' | 'x' | 't' => o.mode = Some(c),
                'z' => o.gz = true,
                'v' => o.verbose = true,
                'k' => o.keep_old = true,
                'p' | 'o' | 'm' | 'h' | 'P' => {}
                'f' | 'C' => pending.push(c),
                other => return Err(format!("-{other}")),
            }
        }
        Ok(())
    };
    while i < args.len() {
        let a = args[i].clone();
        let take = |i: &mut usize| -> Option<String> {
            *i += 1;
            args.get(*i).cloned()
        };
        if i == 0 && !a.starts_with('-') {
            if let Err(bad) = letters(&mut o, &a, &mut pending) {
                return Err(sh.bad_option("tar", &bad, 2));
            }
        } else if let Some(long) = a.strip_prefix("--") {
            let (name, val) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match name {
                "create" => o.mode = Some('c'),
                "extract" | "get" => o.mode = Some('x'),
                "list" => o.mode = Some('t'),
                "gzip" | "gunzip" => o.gz = true,
                "verbose" => o.verbose = true,
                "keep-old-files" => o.keep_old = true,
                "remove-files" => o.remove_files = true,
                "file" => o.file = val.or_else(|| take(&mut i)),
                "directory" => o.dir = val.or_else(|| take(&mut i)),
                "exclude" => o.exclude.extend(val.or_else(|| take(&mut i))),
                "strip-components" => {
                    o.strip = val
                        .or_else(|| take(&mut i))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                }
                "preserve-permissions"
                | "same-owner"
                | "no-same-owner"
                | "overwrite"
                | "absolute-names" => {}
                _ => return Err(sh.bad_option("tar", &a, 2)),
            }
        } else if a.starts_with('-') && a.len() > 1 {
            if let Err(bad) = letters(&mut o, &a[1..], &mut pending) {
                return Err(sh.bad_option("tar", &bad, 2));
            }
        } else if let Some(c) = (!pending.is_empty()).then(|| pending.remove(0)) {
            if c == 'f' {
                o.file = Some(a);
            } else {
                o.dir = Some(a);
            }
        } else {
            o.operands.push(a);
        }
        // Values of bundled `f`/`C` follow as the next arguments.
        while !pending.is_empty() && i + 1 < args.len() {
            i += 1;
            let v = args[i].clone();
            if pending.remove(0) == 'f' {
                o.file = Some(v);
            } else {
                o.dir = Some(v);
            }
        }
        i += 1;
    }
    if !pending.is_empty() {
        return Err(Io::err(
            "tar: option requires an argument -- 'f'\n".into(),
            2,
        ));
    }
    Ok(o)
}

/// An archive member name as GNU tar stores it: no leading `/`.
fn member(name: &str) -> String {
    let t = name.trim_start_matches('/');
    if t.is_empty() {
        ".".into()
    } else {
        t.to_string()
    }
}

/// `tar c|x|t [-z] [-v] [-f FILE|-] [-C DIR] [--exclude=P] [--remove-files]
/// [--strip-components=N] [PATH...]`.
pub(super) fn tar(sh: &mut Sh<'_>, args: &[String], stdin: String) -> Io {
    let o = match tar_opts(sh, args) {
        Ok(o) => o,
        Err(io) => return io,
    };
    match o.mode {
        Some('c') => tar_create(sh, &o),
        Some('x') | Some('t') => tar_read(sh, &o, stdin),
        _ => Io::err(
            "tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options\n"
                .into(),
            2,
        ),
    }
}

fn tar_create(sh: &mut Sh<'_>, o: &TarOpts) -> Io {
    if o.operands.is_empty() {
        return Io::err(
            "tar: Cowardly refusing to create an empty archive\n".into(),
            2,
        );
    }
    let base = match &o.dir {
        Some(d) => match sh.w.vfs.locate(&sh.cwd, d, true) {
            Ok(p) => p,
            Err(e) => return Io::err(format!("tar: {d}: Cannot open: {e}\n"), 2),
        },
        None => sh.cwd.clone(),
    };
    let mut b = tar::Builder::new(Vec::new());
    let mut io = Io::default();
    let mut listing = String::new();
    let mut added: Vec<String> = Vec::new();
    let max = file_max(sh);
    let mut size = 0usize;
    for op in &o.operands {
        let abs = match sh.w.locate(&base, op, false, "read", VIA, sh.fx) {
            Ok(p) => p,
            Err(e) => {
                io.stderr
                    .push_str(&format!("tar: {op}: Cannot stat: {e}\n"));
                io.status = 2;
                continue;
            }
        };
        if sh.w.vfs.get(&abs).is_none() {
            io.stderr.push_str(&format!(
                "tar: {op}: Cannot stat: No such file or directory\n"
            ));
            io.status = 2;
            continue;
        }
        if op.starts_with('/') {
            io.stderr
                .push_str("tar: Removing leading `/' from member names\n");
        }
        let mut nodes = vec![abs.clone()];
        if sh.w.vfs.get(&abs).is_some_and(crate::vfs::Node::is_dir) {
            nodes.extend(sh.w.vfs.descendants(&abs));
        }
        for n in nodes {
            if sh.halted() {
                break;
            }
            let name = member(&format!("{}{}", op.trim_end_matches('/'), &n[abs.len()..]));
            if o.exclude
                .iter()
                .any(|p| super::wildcard(p, basename(&n)) || super::wildcard(p, &name))
            {
                continue;
            }
            let Some(node) = sh.w.vfs.get(&n).cloned() else {
                continue;
            };
            let mut h = tar::Header::new_ustar();
            h.set_mode(node.mode);
            h.set_mtime(0);
            h.set_uid(1000);
            h.set_gid(1000);
            let r = match &node.kind {
                NodeKind::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{name}/"), std::io::empty())
                }
                NodeKind::Link(t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, &name, t)
                }
                NodeKind::File(_) => {
                    let cwd = sh.cwd.clone();
                    let text = match sh.w.read_file(&cwd, &n, VIA, sh.fx) {
                        Ok(t) => t,
                        Err(e) => {
                            io.stderr.push_str(&format!("tar: {name}: {e}\n"));
                            io.status = 2;
                            continue;
                        }
                    };
                    size += text.len() + 1024;
                    if size > max {
                        sh.w.hit_cap(
                            "file_bytes",
                            sh.w.limits.file_bytes as f64,
                            "the archive grows past the cap".into(),
                        );
                        break;
                    }
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(text.len() as u64);
                    b.append_data(&mut h, &name, text.as_bytes())
                }
            };
            if let Err(e) = r {
                io.stderr.push_str(&format!("tar: {name}: {e}\n"));
                io.status = 2;
                continue;
            }
            listing.push_str(&name);
            if matches!(node.kind, NodeKind::Dir) {
                listing.push('/');
            }
            listing.push('\n');
            added.push(n);
        }
    }
    let bytes = b.into_inner().unwrap_or_default();
    let Ok(text) = String::from_utf8(bytes) else {
        sh.unsupported(
            "tar",
            "binary member",
            "an archive that is not text cannot be stored",
        );
        return Io::err("tar: archive is not text\n".into(), 2);
    };
    let data = if o.gz { gz_encode(&text) } else { text };
    let to_stdout = matches!(o.file.as_deref(), None | Some("-"));
    if o.verbose {
        if to_stdout {
            io.stderr.push_str(&listing);
        } else {
            io.stdout.push_str(&listing);
        }
    }
    if to_stdout {
        io.stdout.push_str(&data);
    } else if let Some(f) = &o.file {
        let cwd = sh.cwd.clone();
        if let Err(e) = sh.w.write_file(&cwd, f, &data, false, VIA, sh.fx) {
            io.stderr.push_str(&format!("tar: {f}: Cannot open: {e}\n"));
            return Io { status: 2, ..io };
        }
    }
    if o.remove_files {
        // Deepest first, so directories are empty when their turn comes.
        for n in added.iter().rev() {
            let cwd = sh.cwd.clone();
            let _ = sh.w.delete(&cwd, n, false, true, VIA, sh.fx);
        }
    }
    io
}

fn tar_read(sh: &mut Sh<'_>, o: &TarOpts, stdin: String) -> Io {
    let cwd = sh.cwd.clone();
    let raw = match o.file.as_deref() {
        None | Some("-") => stdin,
        Some(f) => match sh.w.read_file(&cwd, f, VIA, sh.fx) {
            Ok(t) => t,
            Err(e) => return Io::err(format!("tar: {f}: Cannot open: {e}\n"), 2),
        },
    };
    let max = file_max(sh);
    let text = if o.gz || gz_bytes(&raw).is_some() {
        match gz_decode(&raw, max) {
            Ok(t) => t,
            Err(GzErr::TooBig) => {
                too_big(sh, true, "the archive");
                return Io::err("tar: archive too large\n".into(), 2);
            }
            Err(_) => {
                return Io::err(
                    "gzip: stdin: not in gzip format\ntar: Child returned status 1\ntar: Error is not recoverable: exiting now\n"
                        .into(),
                    2,
                );
            }
        }
    } else {
        raw
    };
    let base = o.dir.clone().unwrap_or_else(|| cwd.clone());
    let mut io = Io::default();
    let mut ar = tar::Archive::new(text.as_bytes());
    let entries = match ar.entries() {
        Ok(e) => e,
        Err(_) => {
            return Io::err(
                "tar: This does not look like a tar archive\ntar: Exiting with failure status due to previous errors\n"
                    .into(),
                2,
            );
        }
    };
    let mut any = false;
    for e in entries {
        if sh.halted() {
            break;
        }
        let mut e = match e {
            Ok(e) => e,
            Err(_) => {
                if !any {
                    return Io::err(
                        "tar: This does not look like a tar archive\ntar: Exiting with failure status due to previous errors\n"
                            .into(),
                        2,
                    );
                }
                io.stderr.push_str("tar: Unexpected EOF in archive\n");
                io.status = 2;
                break;
            }
        };
        any = true;
        let name = match e.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(_) => continue,
        };
        let kind = e.header().entry_type();
        let mode = e.header().mode().unwrap_or(0o644);
        let link = e
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.to_string_lossy().into_owned());
        if o.mode == Some('t') {
            io.stdout.push_str(&name);
            io.stdout.push('\n');
            continue;
        }
        if o.verbose {
            io.stdout.push_str(&name);
            io.stdout.push('\n');
        }
        let parts: Vec<&str> = name
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.contains(&"..") {
            io.stderr
                .push_str(&format!("tar: {name}: Member name contains '..'\n"));
            io.status = 2;
            continue;
        }
        if parts.len() <= o.strip {
            continue;
        }
        let rel = parts[o.strip..].join("/");
        let dest = format!("{}/{rel}", base.trim_end_matches('/'));
        let exists =
            sh.w.vfs
                .locate(&cwd, &dest, false)
                .ok()
                .is_some_and(|p| sh.w.vfs.get(&p).is_some());
        let r = if kind.is_dir() {
            sh.w.mkdir(&cwd, &dest, true, VIA, sh.fx)
        } else if o.keep_old && exists {
            io.stderr
                .push_str(&format!("tar: {rel}: Cannot open: File exists\n"));
            io.status = 2;
            continue;
        } else if kind.is_symlink() {
            let t = link.unwrap_or_default();
            sh.w.symlink(&cwd, &t, &dest, true, VIA, sh.fx).map(|_| ())
        } else if kind.is_file() {
            let mut s = String::new();
            if e.by_ref()
                .take(max as u64 + 1)
                .read_to_string(&mut s)
                .is_err()
            {
                io.stderr.push_str(&format!("tar: {rel}: not text\n"));
                io.status = 2;
                continue;
            }
            sh.w.write_file(&cwd, &dest, &s, false, VIA, sh.fx)
                .and_then(|p| {
                    let now = sh.w.vfs.get(&p).map_or(0, |n| n.mode);
                    if now == mode & 0o7777 {
                        Ok(())
                    } else {
                        sh.w.chmod(&cwd, &p, Ok(mode & 0o7777), VIA, sh.fx)
                    }
                })
        } else {
            sh.unsupported(
                "tar",
                &name,
                "archive member type not modelled (hard link, device, fifo)",
            );
            continue;
        };
        if let Err(e) = r {
            io.stderr
                .push_str(&format!("tar: {rel}: Cannot open: {e}\n"));
            io.status = 2;
        }
    }
    io
}
