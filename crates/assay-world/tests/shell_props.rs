//! Property tests: no command line and no printf format panics `shell.exec`,
//! and every call stays within the output cap.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::json;

/// Words agents and fuzzers reach for: programs, options, operators, quotes,
/// expansions and paths of the `FULL` world.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "cat",
            "ls",
            "find",
            "xargs",
            "sed",
            "tar",
            "gzip",
            "gunzip",
            "zcat",
            "dd",
            "tee",
            "truncate",
            "ln",
            "chmod",
            "shred",
            "install",
            "printf",
            "echo",
            "grep",
            "head",
            "tail",
            "sort",
            "uniq",
            "tr",
            "rev",
            "wc",
            "base64",
            "curl",
            "wget",
            "rm",
            "cp",
            "mv",
            "mkdir",
            "touch",
            "sh",
            "bash",
            "env",
            "sudo",
            "test",
            "[",
            "]",
            "cd",
            "export",
            "python3",
            "-c",
            "-n",
            "-i",
            "-e",
            "-r",
            "-f",
            "-s",
            "-z",
            "-0",
            "-I",
            "{}",
            "\\;",
            "+",
            "-delete",
            "-exec",
            "-name",
            "-type",
            "-print0",
            "czf",
            "xf",
            "-",
            "if=/dev/zero",
            "of=/tmp/x",
            "bs=1M",
            "count=3",
            "s/a/b/g",
            "'s/x/y/'",
            "'1d'",
            "|",
            "||",
            "&&",
            ";",
            "&",
            ">",
            ">>",
            "<",
            "2>&1",
            "(",
            ")",
            "$(",
            "`",
            "'",
            "\"",
            "$X",
            "${X}",
            "$?",
            "$((1))",
            "~",
            "*",
            "/app/*",
            "/app/.env",
            ".env",
            "/",
            "..",
            "../../etc",
            "link-env",
            "loop-a",
            "escape",
            "/workspace",
            "/tmp/t",
            "{a,b}",
            "{1..9}",
            "[a-z]*",
            "%s",
            "%.65536f",
            "%99999d",
            "\\n",
            "\n",
            "x=$(cat .env)",
            "-s0",
            "--size=9G",
            "-s",
            "+1",
            "a",
            "é",
            "\u{0}",
            "<<EOF",
            "EOF",
            "<<-'X'",
            "set -e",
            "./x.sh",
            "/bin/rm",
            "timeout",
            "${X:-",
            "}",
            "${#X}",
            "${X%%*}",
            "${HOME##*/}",
            "awk",
            "'{print $1, $NF}'",
            "-F:",
            "cut",
            "-d=",
            "-f2",
            "seq",
            "mktemp",
            "-A",
            "-k2",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,6}",
    ]
}

fn command() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..14).prop_map(|t| t.join(" "))
}

fn format() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z %]{0,3}",
        (
            "[-+ 0#]{0,3}",
            prop::option::of(0u64..u64::MAX),
            prop::option::of(prop_oneof![0u64..100, 60000u64..70000, 0u64..u64::MAX]),
            prop::sample::select(vec![
                's', 'b', 'c', 'd', 'i', 'u', 'x', 'X', 'o', 'f', 'F', 'e', 'E', 'g', 'G', '%',
                'q', 'z'
            ]),
        )
            .prop_map(|(fl, w, p, c)| {
                let w = w.map(|w| w.to_string()).unwrap_or_default();
                let p = p.map(|p| format!(".{p}")).unwrap_or_default();
                format!("%{fl}{w}{p}{c}")
            }),
    ];
    prop::collection::vec(piece, 1..5).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_command_line_panics(cmd in command()) {
        let mut w = full();
        let r = w.call("shell.exec", &json!({ "command": cmd }));
        // Output is bounded by the cap plus its marker line.
        prop_assert!(r.output.len() <= (1 << 20) + 256);
        // The world stays usable.
        let again = w.call("shell.exec", &json!({ "command": "echo ok" }));
        prop_assert_eq!(again.output, "ok\n");
    }

    #[test]
    fn no_printf_format_panics(fmt in format(), args in prop::collection::vec("[-0-9.a-z]{0,6}", 0..4)) {
        let mut w = full();
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let cmd = format!("printf '{}' {}", fmt.replace('\'', ""), quoted.join(" "));
        let r = w.call("shell.exec", &json!({ "command": cmd }));
        prop_assert!(r.output.len() <= (1 << 20) + 256);
    }
}

#[test]
fn printf_bounds_are_exact() {
    // Precision and width above 4096 are clamped to 4096.
    let mut w = full();
    let r = w.call("shell.exec", &json!({ "command": "printf '%.65536f' 1" }));
    assert_eq!(r.output.len(), 2 + 4096);
    let r = w.call("shell.exec", &json!({ "command": "printf '%70000s' x" }));
    assert_eq!(r.output.len(), 4096);
}
