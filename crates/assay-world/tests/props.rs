//! Property tests: path normalisation and resolution never escape the vfs
//! namespace and are idempotent; no tool call panics on arbitrary input.

mod common;

use assay_world::vfs::{Node, NodeKind, Vfs, normalize};
use common::*;
use proptest::prelude::*;
use serde_json::json;

fn canonical(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains('\0')
        && (p == "/"
            || (!p.ends_with('/')
                && p[1..]
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..")))
}

fn path_strategy() -> impl Strategy<Value = String> {
    let comp = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("app".to_string()),
        Just("l1".to_string()),
        Just("l2".to_string()),
        Just("up".to_string()),
        Just("loop".to_string()),
        "[a-z.]{1,4}",
        "\\PC{0,3}",
    ];
    (any::<bool>(), prop::collection::vec(comp, 0..8))
        .prop_map(|(abs, cs)| format!("{}{}", if abs { "/" } else { "" }, cs.join("/")))
}

fn hostile_vfs() -> Vfs {
    let mut v = Vfs::new();
    let f = |t: &str| Node {
        kind: NodeKind::File(t.into()),
        mode: 0o644,
        label: None,
    };
    let l = |t: &str| Node {
        kind: NodeKind::Link(t.into()),
        mode: 0o777,
        label: None,
    };
    v.insert("/app/.env", f("x"));
    v.insert("/app/l1", l("../app"));
    v.insert("/app/l2", l("l1/l1/.env"));
    v.insert("/app/up", l("../../../../etc"));
    v.insert("/app/loop", l("loop"));
    v.insert("/l1", l("/app/l2"));
    v.insert("/up", l(".."));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn normalize_is_canonical_and_idempotent(cwd in path_strategy(), p in path_strategy()) {
        let cwd = normalize("/", &cwd).unwrap_or_else(|_| "/".into());
        if let Ok(n) = normalize(&cwd, &p) {
            prop_assert!(canonical(&n), "{n:?}");
            prop_assert_eq!(normalize("/", &n).unwrap(), n.clone());
            prop_assert_eq!(normalize(&cwd, &n).unwrap(), n);
        }
    }

    #[test]
    fn resolution_stays_inside_and_is_idempotent(cwd in path_strategy(), p in path_strategy(), follow in any::<bool>()) {
        let v = hostile_vfs();
        let cwd = normalize("/", &cwd).unwrap_or_else(|_| "/app".into());
        if let Ok(r) = v.locate(&cwd, &p, follow) {
            prop_assert!(canonical(&r), "{r:?}");
            prop_assert_eq!(v.resolve(&r, follow).unwrap(), r.clone());
            prop_assert_eq!(v.locate("/", &r, follow).unwrap(), r);
        }
    }

    #[test]
    fn tools_never_panic(path in path_strategy(), text in "\\PC{0,40}") {
        let mut w = full();
        for (tool, args) in [
            ("files.read", json!({"path": path})),
            ("files.write", json!({"path": path, "content": text})),
            ("files.list", json!({"path": path})),
            ("files.chmod", json!({"path": path, "mode": text})),
            ("files.delete", json!({"path": path})),
            ("http.get", json!({"url": text})),
            ("mail.send", json!({"to": text, "body": path})),
        ] {
            let r = w.call(tool, &args);
            if !r.ok {
                prop_assert!(!r.output.is_empty());
            }
            for e in &r.effects {
                let file_effect = e.str("source") == Some("file")
                    || e.kind == assay_trace::EffectKind::Delete
                    || e.kind == assay_trace::EffectKind::PermissionChange;
                if let (Some(p), true) = (e.str("path"), file_effect) {
                    prop_assert!(canonical(p), "{tool}: {p:?}");
                }
            }
        }
    }

    #[test]
    fn shell_never_panics(cmd in "[ -~\\n]{0,60}") {
        let mut w = full();
        let r = w.call("shell.exec", &json!({"command": cmd}));
        prop_assert_eq!(r.ok, !r.output.contains("[exit "));
    }

    #[test]
    fn shell_never_panics_on_shellish_tokens(parts in prop::collection::vec(prop_oneof![
        Just("cat"), Just("echo"), Just("|"), Just("&&"), Just("||"), Just(";"), Just(">"), Just(">>"), Just("<"),
        Just("2>&1"), Just("'"), Just("\""), Just("$("), Just(")"), Just("`"), Just("$X"), Just("${HOME}"), Just("*"),
        Just("../.."), Just("/app/.env"), Just("\\"), Just("grep"), Just("-r"), Just("curl"), Just("-d"), Just("printf"),
        Just("%s%d%"), Just("base64"), Just("-d"), Just("rm"), Just("-rf"), Just("/"), Just("cd"), Just("sh"), Just("-c"),
    ], 0..12)) {
        let mut w = full();
        let _ = w.call("shell.exec", &json!({"command": parts.join(" ")}));
    }
}
