//! The virtual filesystem: a flat map from canonical absolute path to node, plus
//! the path rules that keep every access inside it.
//!
//! Paths are normalised lexically (`.` and `..` folded, repeated `/` collapsed)
//! against a working directory; a `..` that would climb above `/` is refused
//! rather than clamped, because an attempt to escape is itself evidence.
//! Symbolic links are then resolved component by component, at most
//! [`MAX_LINKS`] hops; a link target is normalised relative to the link's
//! directory under the same rules.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Most symbolic links followed while resolving one path.
pub const MAX_LINKS: usize = 16;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path holds a NUL byte, which no real filesystem accepts.
    #[error("path contains a NUL byte")]
    Nul,
    /// A `..` would climb above `/`.
    #[error("path escapes the filesystem root")]
    Escape,
    /// A symbolic link points above `/`.
    #[error("symbolic link escapes the filesystem root")]
    LinkEscape,
    /// Too many links (a loop, or a chain longer than [`MAX_LINKS`]).
    #[error("too many levels of symbolic links")]
    Loop,
}

/// Normalises `path` against the working directory `cwd` into a canonical
/// absolute path: starts with `/`, no empty, `.` or `..` components, no
/// trailing `/` (except the root itself).
pub fn normalize(cwd: &str, path: &str) -> Result<String, PathError> {
    if path.contains('\0') || cwd.contains('\0') {
        return Err(PathError::Nul);
    }
    let mut parts: Vec<&str> = Vec::new();
    if !path.starts_with('/') {
        fold(cwd, &mut parts)?;
    }
    fold(path, &mut parts)?;
    Ok(join(&parts))
}

fn fold<'a>(path: &'a str, parts: &mut Vec<&'a str>) -> Result<(), PathError> {
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::Escape);
                }
            }
            c => parts.push(c),
        }
    }
    Ok(())
}

fn join<S: AsRef<str>>(parts: &[S]) -> String {
    if parts.is_empty() {
        return "/".to_string();
    }
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(p.as_ref());
    }
    s
}

/// Parent directory of a canonical path (`/` for top-level entries and the root).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Last component of a canonical path (empty for the root).
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// What a path holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A regular text file.
    File(String),
    /// A symbolic link to the given (unnormalised) target.
    Link(String),
    /// A directory.
    Dir,
}

/// One filesystem entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// File, link or directory.
    pub kind: NodeKind,
    /// Permission bits (`0o644`).
    pub mode: u32,
    /// Sensitivity label from the spec; kept when the file is rewritten.
    pub label: Option<Arc<str>>,
}

impl Node {
    /// A directory with mode 0755.
    pub fn dir() -> Node {
        Node {
            kind: NodeKind::Dir,
            mode: 0o755,
            label: None,
        }
    }
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir)
    }
}

/// The filesystem of one episode. Directories are explicit nodes; the root always exists.
#[derive(Debug, Clone, Default)]
pub struct Vfs {
    /// Canonical path → node.
    pub nodes: BTreeMap<String, Node>,
    /// Number of symbolic links, so resolution can skip the walk when there are none.
    pub links: usize,
}

impl Vfs {
    /// An empty filesystem holding only `/`.
    pub fn new() -> Vfs {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), Node::dir());
        Vfs { nodes, links: 0 }
    }

    /// Inserts a node, creating missing parent directories. Replaces whatever was there.
    pub fn insert(&mut self, path: &str, node: Node) {
        self.ensure_dirs(parent(path));
        if matches!(node.kind, NodeKind::Link(_)) {
            self.links += 1;
        }
        if let Some(old) = self.nodes.insert(path.to_string(), node)
            && matches!(old.kind, NodeKind::Link(_))
        {
            self.links -= 1;
        }
    }

    /// Creates `dir` and its ancestors as directories where nothing exists yet.
    pub fn ensure_dirs(&mut self, dir: &str) {
        let mut p = dir;
        let mut missing = Vec::new();
        while !self.nodes.contains_key(p) {
            missing.push(p.to_string());
            if p == "/" {
                break;
            }
            p = parent(p);
        }
        for m in missing {
            self.nodes.insert(m, Node::dir());
        }
    }

    /// Removes one node.
    pub fn remove(&mut self, path: &str) -> Option<Node> {
        let n = self.nodes.remove(path);
        if let Some(Node {
            kind: NodeKind::Link(_),
            ..
        }) = &n
        {
            self.links -= 1;
        }
        n
    }

    /// The node at a canonical path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Canonical paths directly inside directory `dir`, sorted.
    pub fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every canonical path strictly below `dir`, sorted.
    pub fn descendants(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Resolves symbolic links in the canonical path `abs`. With `follow_last`
    /// false a link in the final component is left as is (for `rm`, `ls -l`).
    pub fn resolve(&self, abs: &str, follow_last: bool) -> Result<String, PathError> {
        if self.links == 0 {
            return Ok(abs.to_string());
        }
        let mut pending: Vec<String> = abs
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            cur.push(c);
            let p = join(&cur);
            if let Some(Node {
                kind: NodeKind::Link(target),
                ..
            }) = self.nodes.get(&p)
            {
                if pending.is_empty() && !follow_last {
                    break;
                }
                hops += 1;
                if hops > MAX_LINKS {
                    return Err(PathError::Loop);
                }
                cur.pop();
                let base = join(&cur);
                let t = normalize(&base, target).map_err(|e| match e {
                    PathError::Escape => PathError::LinkEscape,
                    other => other,
                })?;
                cur.clear();
                pending.extend(
                    t.split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
        }
        Ok(join(&cur))
    }

    /// Normalises then resolves: the single entry point every file operation uses.
    pub fn locate(&self, cwd: &str, path: &str, follow_last: bool) -> Result<String, PathError> {
        let abs = normalize(cwd, path)?;
        self.resolve(&abs, follow_last)
    }
}

/// Parses an octal mode (`0755`, `755`, `0o755`).
pub fn parse_mode(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t.strip_prefix("0o").unwrap_or(t);
    if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(t, 8).ok().filter(|m| *m <= 0o7777)
}

/// Formats a mode as four octal digits (`0644`).
pub fn fmt_mode(m: u32) -> String {
    format!("{m:04o}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize("/app", ".env").unwrap(), "/app/.env");
        assert_eq!(normalize("/app", "../etc//x/./y/..").unwrap(), "/etc/x");
        assert_eq!(normalize("/", "").unwrap(), "/");
        assert_eq!(normalize("/a", "/").unwrap(), "/");
        assert_eq!(normalize("/", "..").unwrap_err(), PathError::Escape);
        assert_eq!(
            normalize("/app", "../../etc").unwrap_err(),
            PathError::Escape
        );
        assert_eq!(normalize("/", "/a/../../b").unwrap_err(), PathError::Escape);
        assert_eq!(normalize("/", "a\0b").unwrap_err(), PathError::Nul);
    }

    #[test]
    fn resolves_links() {
        let mut v = Vfs::new();
        v.insert(
            "/app/.env",
            Node {
                kind: NodeKind::File("x".into()),
                mode: 0o600,
                label: None,
            },
        );
        v.insert(
            "/tmp/l",
            Node {
                kind: NodeKind::Link("../app/.env".into()),
                mode: 0o777,
                label: None,
            },
        );
        v.insert(
            "/tmp/d",
            Node {
                kind: NodeKind::Link("/app".into()),
                mode: 0o777,
                label: None,
            },
        );
        v.insert(
            "/tmp/up",
            Node {
                kind: NodeKind::Link("../../../etc".into()),
                mode: 0o777,
                label: None,
            },
        );
        v.insert(
            "/tmp/a",
            Node {
                kind: NodeKind::Link("b".into()),
                mode: 0o777,
                label: None,
            },
        );
        v.insert(
            "/tmp/b",
            Node {
                kind: NodeKind::Link("a".into()),
                mode: 0o777,
                label: None,
            },
        );
        assert_eq!(v.resolve("/tmp/l", true).unwrap(), "/app/.env");
        assert_eq!(v.resolve("/tmp/l", false).unwrap(), "/tmp/l");
        assert_eq!(v.resolve("/tmp/d/.env", false).unwrap(), "/app/.env");
        assert_eq!(
            v.resolve("/tmp/up/passwd", true).unwrap_err(),
            PathError::LinkEscape
        );
        assert_eq!(v.resolve("/tmp/a", true).unwrap_err(), PathError::Loop);
        assert_eq!(v.children("/tmp").len(), 5);
        assert_eq!(
            v.children("/"),
            vec!["/app".to_string(), "/tmp".to_string()]
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755"), Some(0o755));
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        assert_eq!(parse_mode("999"), None);
        assert_eq!(parse_mode("+x"), None);
        assert_eq!(fmt_mode(0o644), "0644");
    }
}
