//! Bad input through `cli::run`: exit code 2 with a clear message, never a panic.

use assay_mech::Reduce;
use assay_mech::cli::{InspectArgs, MechCommand, ProbeArgs};
use assay_mech::probe::{Method, read_jsonl};
use assay_mech::synthetic::{TinyLlama, write_tiny_llama};

/// `cli::run` without a command line: records get an empty reproduction recipe.
fn run(cmd: MechCommand) -> anyhow::Result<i32> {
    assay_mech::cli::run(cmd, &[])
}

fn args(
    model: &std::path::Path,
    data: &std::path::Path,
    out: &std::path::Path,
    hooks: &str,
) -> ProbeArgs {
    ProbeArgs {
        model: model.into(),
        data: data.into(),
        hooks: hooks.into(),
        position: Reduce::Last,
        out: out.into(),
        method: Method::Logreg,
        c: 1.0,
        covariance_correction: false,
        shrinkage: 0.1,
        folds: 5,
        bootstrap: 50,
        random_directions: 2,
        seed: 0,
        batch_size: 4,
        chat_template: false,
        no_special_tokens: false,
        claim: None,
    }
}

#[test]
fn bad_inputs_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    let c = TinyLlama {
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 4,
        d_mlp: 64,
        vocab: 30,
        tie: true,
        qkv_bias: false,
    };
    write_tiny_llama(&model, &c, 1).unwrap();
    let out = tmp.path().join("out");
    let write = |name: &str, s: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    let good = write(
        "good.jsonl",
        &(0..20)
            .map(|i| format!("{{\"text\":\"w{} w{}\",\"label\":{}}}\n", i, i + 1, i % 2))
            .collect::<String>(),
    );
    let single = write(
        "single.jsonl",
        "{\"text\":\"w1 w2\",\"label\":1}\n{\"text\":\"w3\",\"label\":1}\n",
    );
    let empty = write("empty.jsonl", "\n");
    let badlabel = write("badlabel.jsonl", "{\"text\":\"w1\",\"label\":\"yes\"}\n");
    let nolabel = write("nolabel.jsonl", "{\"text\":\"w1\"}\n");

    assert_eq!(
        run(MechCommand::Probe(args(
            &model,
            &good,
            &out,
            "blocks.*.hook_resid_post"
        )))
        .unwrap(),
        0
    );
    for (data, hooks) in [
        (&single, "blocks.*.hook_resid_post"),
        (&empty, "blocks.*.hook_resid_post"),
        (&badlabel, "blocks.*.hook_resid_post"),
        (&nolabel, "blocks.*.hook_resid_post"),
        (&good, "blocks.9.hook_resid_post"),
        (&good, "blocks.*.hook_nothing"),
    ] {
        assert_eq!(
            run(MechCommand::Probe(args(&model, data, &out, hooks))).unwrap(),
            2,
            "{} {hooks}",
            data.display()
        );
    }
    assert_eq!(
        run(MechCommand::Probe(args(
            &tmp.path().join("nope"),
            &good,
            &out,
            "blocks.*.hook_resid_post"
        )))
        .unwrap(),
        2
    );
    assert_eq!(
        run(MechCommand::Inspect(InspectArgs {
            model: model.clone(),
            json: true
        }))
        .unwrap(),
        0
    );

    // The messages themselves.
    let e = read_jsonl(&badlabel, true).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("label"), "{e}");
    let rows = read_jsonl(&single, true).unwrap();
    let e = assay_mech::probe::check_labels(&rows)
        .unwrap_err()
        .to_string();
    assert!(e.contains("single-class"), "{e}");
}

#[test]
fn clap_parses_the_documented_command_line() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: MechCommand,
    }
    let cli = Cli::try_parse_from([
        "assay-mech",
        "probe",
        "--model",
        "m",
        "--data",
        "d.jsonl",
        "--hooks",
        "blocks.*.hook_resid_post",
        "--position",
        "mean",
        "--out",
        "o",
        "--method",
        "mass-mean",
        "--covariance-correction",
        "--seed",
        "7",
    ])
    .unwrap();
    match cli.cmd {
        MechCommand::Probe(a) => {
            assert_eq!(a.position, Reduce::Mean);
            assert_eq!(a.method, Method::MassMean);
            assert!(a.covariance_correction);
            assert_eq!(a.seed, 7);
        }
        _ => panic!("wrong subcommand"),
    }
    assert!(
        Cli::try_parse_from([
            "assay-mech",
            "probe",
            "--model",
            "m",
            "--data",
            "d",
            "--out",
            "o",
            "--position",
            "all"
        ])
        .is_err()
    );
    let cli =
        Cli::try_parse_from(["assay-mech", "apply", "--probe", "p", "--data", "d.jsonl"]).unwrap();
    assert!(matches!(cli.cmd, MechCommand::Apply(_)));
}
