//! Names that become path components.
//!
//! Spec ids, threat ids, slot names and technique ids end up in file and
//! directory names (`assay synth` writes `SPEC/THREAT/TECHNIQUE@SLOT.yaml`,
//! `assay run` one directory per episode). A name with `/`, `\`, `..`, a NUL
//! byte or a control character could write outside the output directory or
//! confuse a terminal, so such names are refused at validation, and writers
//! check again before they touch the disk.

/// Longest name accepted, in bytes: long enough for any readable id, short
/// enough that a file name built from several stays under common limits.
pub const MAX_NAME_BYTES: usize = 64;

/// Why `name` cannot be one component of a path, if it cannot: empty, `.` or
/// `..`, too long, or holding a separator, NUL or another control character.
pub fn component_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("`{name}` names a directory, not an item"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(format!(
            "the name is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '\0') || c.is_control())
    {
        return Some(format!(
            "the name contains {}, which cannot be part of a file name",
            match c {
                '/' => "`/`".to_string(),
                '\\' => "`\\`".to_string(),
                '\0' => "a NUL byte".to_string(),
                c => format!("the control character U+{:04X}", c as u32),
            }
        ));
    }
    None
}

/// Why `name` is not a valid id (spec, threat, technique): lowercase ASCII
/// letters, digits, `-` and `_`, starting with a letter or digit, at most
/// [`MAX_NAME_BYTES`] bytes.
pub fn id_problem(name: &str) -> Option<String> {
    if let Some(p) = component_problem(name) {
        return Some(p);
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Some("an id starts with a lowercase letter or a digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Some(format!(
            "`{}` is not allowed in an id; use lowercase letters, digits, `-` and `_`",
            c.escape_default()
        ));
    }
    None
}

/// Why `name` is not a valid slot name: ASCII letters, digits, `-`, `_` and
/// `.`, starting with a letter or digit, at most [`MAX_NAME_BYTES`] bytes.
pub fn slot_problem(name: &str) -> Option<String> {
    if let Some(p) = component_problem(name) {
        return Some(p);
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("a slot name starts with a letter or a digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "`{}` is not allowed in a slot name; use letters, digits, `-`, `_` and `.`",
            c.escape_default()
        ));
    }
    None
}

/// Whether a relative path (as `/`-separated text, e.g. from a manifest) stays
/// inside the directory it is relative to: not absolute, no `..`, `.` or empty
/// component, no `\`, NUL or control character anywhere.
pub fn is_contained_relative(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && path.split('/').all(file_name_ok)
}

/// Longest file name Assay writes, in bytes: under the 255 bytes of common
/// file systems, with room for a temporary-file prefix. A file name may join
/// several names (a case file is `TECHNIQUE@SLOTS.yaml`), so it is allowed
/// more than [`MAX_NAME_BYTES`].
pub const MAX_FILE_NAME_BYTES: usize = 200;

/// Whether `c` can be one file name Assay writes: not empty, `.` or `..`, at
/// most [`MAX_FILE_NAME_BYTES`], no separator, NUL or control character.
fn file_name_ok(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && c.len() <= MAX_FILE_NAME_BYTES
        && !c
            .chars()
            .any(|ch| matches!(ch, '/' | '\\' | '\0') || ch.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../../x",
            "a/b",
            "a\\b",
            "a\0b",
            "a\nb",
            "\u{1b}[31m",
        ] {
            assert!(component_problem(bad).is_some(), "{bad:?}");
            assert!(slot_problem(bad).is_some(), "{bad:?}");
            assert!(id_problem(bad).is_some(), "{bad:?}");
        }
        assert!(component_problem(&"x".repeat(65)).is_some());
        assert!(component_problem(&"x".repeat(64)).is_none());
        assert!(slot_problem("inbox-body").is_none());
        assert!(slot_problem("s1.v2_x").is_none());
        assert!(slot_problem(".hidden").is_some());
        assert!(slot_problem("é").is_some());
        assert!(id_problem("leak-key_2").is_none());
        assert!(id_problem("Leak").is_some());
        assert!(id_problem("-rf").is_some());
    }

    #[test]
    fn relative_paths_stay_inside() {
        assert!(is_contained_relative("spec/threat/t@s.yaml"));
        for bad in [
            "/tmp/x",
            "../victim",
            "a/../../b",
            "a//b",
            "a/./b",
            "",
            "a\\..\\b",
        ] {
            assert!(!is_contained_relative(bad), "{bad:?}");
        }
    }
}
