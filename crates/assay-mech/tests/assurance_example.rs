//! The committed evidence of the worked example (`examples/assurance/`, produced by
//! `make-evidence.sh`) is well formed and names exactly the committed bytes: every record's id
//! matches its content, every model digest matches the committed checkpoint files (re-hashed
//! here), and every data file and artifact digest matches the file on disk. Headline numbers
//! the example's story relies on are checked too, so a regenerated set that changed them fails.

use std::path::{Path, PathBuf};

use assay_mech::digest::{FileDigest, combined_digest, file_digest};
use assay_mech::evidence::{EVIDENCE_SCHEMA, EvidenceRecord, REPRODUCTION_NOTE, access_level};
use assay_mech::model::ModelInfo;

/// Every record the example must hold: directory under `evidence/` and its class.
const RECORDS: &[(&str, &str)] = &[
    ("after-behaviour", "behavioural_eval"),
    ("after-behaviour-1", "behavioural_eval"),
    ("after-behaviour-2", "behavioural_eval"),
    ("after-behaviour-3", "behavioural_eval"),
    ("after-behaviour-4", "behavioural_eval"),
    ("after-probe", "linear_probe"),
    ("after-patch", "activation_patching"),
    ("diff", "training_diff"),
    ("before-behaviour", "behavioural_eval"),
    ("before-probe", "linear_probe"),
];

fn base() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/assurance")
}

fn read(dir: &str) -> EvidenceRecord {
    let p = base().join("evidence").join(dir).join("evidence.json");
    EvidenceRecord::read(&p).unwrap_or_else(|e| {
        panic!("{dir}: {e} (regenerate with examples/assurance/make-evidence.sh)")
    })
}

/// Re-hash a file and compare with a recorded digest.
fn check_file(what: &str, path: &Path, recorded: &FileDigest) {
    let now = file_digest(path, &recorded.path)
        .unwrap_or_else(|e| panic!("{what}: {} cannot be read: {e}", path.display()));
    assert_eq!(
        (now.sha256.as_str(), now.bytes),
        (recorded.sha256.as_str(), recorded.bytes),
        "{what}: {} changed since the record was written",
        path.display()
    );
}

/// Re-hash every file of a model and recompute its combined digest.
fn check_model(what: &str, m: &ModelInfo) {
    let dir = base().join(&m.path);
    assert!(
        dir.is_dir(),
        "{what}: model directory {} is missing",
        dir.display()
    );
    let names: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        names.contains(&"config.json") && names.contains(&"model.safetensors"),
        "{what}: {names:?}"
    );
    let mut rehashed = Vec::new();
    for f in &m.files {
        let p = dir.join(&f.path);
        check_file(what, &p, f);
        rehashed.push(file_digest(&p, &f.path).unwrap());
    }
    assert_eq!(combined_digest(&rehashed), m.digest, "{what}: model digest");
}

#[test]
fn committed_records_are_well_formed_and_match_the_committed_files() {
    let after = base().join("organism/after");
    let before = base().join("organism/before");
    let after_digest = assay_mech::Model::load(&after).unwrap().info.digest;
    let before_digest = assay_mech::Model::load(&before).unwrap().info.digest;
    assert_ne!(after_digest, before_digest);
    let doc = std::fs::read_to_string(base().join("EVIDENCE.md")).unwrap();

    for (dir, class) in RECORDS {
        let rec = read(dir);
        let what = format!("evidence/{dir}");
        assert_eq!(rec.schema_version, EVIDENCE_SCHEMA, "{what}");
        assert_eq!(rec.id, rec.expected_id().unwrap(), "{what}: id");
        assert_eq!(rec.evidence_class, *class, "{what}");
        let access: Vec<&str> = rec.access.iter().map(String::as_str).collect();
        assert_eq!(rec.access_level, access_level(&access).unwrap(), "{what}");
        assert_eq!(rec.claim.as_deref(), Some("no-hidden-objective"), "{what}");

        // The recipe: a full `assay mech` command writing into this very directory.
        let r = &rec.reproduction;
        assert_eq!(r.command[..2], ["assay", "mech"], "{what}: {:?}", r.command);
        let out = r.command.iter().position(|a| a == "--out");
        assert_eq!(
            out.map(|i| r.command[i + 1].as_str()),
            Some(what.as_str()),
            "{what}: {:?}",
            r.command
        );
        assert_eq!(r.tool, rec.tool, "{what}");
        assert_eq!(r.seed, rec.seed, "{what}");
        assert_eq!(r.note, REPRODUCTION_NOTE, "{what}");
        if *class != "behavioural_eval" {
            assert!(r.command.iter().any(|a| a == "--seed"), "{what}");
        }

        check_model(&what, &rec.model);
        let expect_model = if dir.starts_with("after") {
            &after_digest
        } else {
            &before_digest
        };
        assert_eq!(&rec.model.digest, expect_model, "{what}: which model");
        if let Some(m) = &rec.compared_model {
            check_model(&format!("{what} (compared model)"), m);
            assert_eq!(m.digest, after_digest, "{what}: compared model");
        }
        assert!(!rec.data.is_empty(), "{what}: no data");
        for d in &rec.data {
            // `patch` records an inline pair as the `pairs.jsonl` it wrote into its output
            // directory; every other data path is relative to examples/assurance.
            let p = match d
                .file
                .path
                .strip_suffix(" (from --clean/--corrupt/--answer/--wrong)")
            {
                Some(name) => base().join(&what).join(name),
                None => base().join(&d.file.path),
            };
            check_file(&what, &p, &d.file);
        }
        assert!(!rec.artifacts.is_empty(), "{what}: no artifacts");
        for a in &rec.artifacts {
            check_file(&what, &base().join(&what).join(&a.path), a);
        }
        assert!(doc.contains(&what), "EVIDENCE.md does not describe {what}");
    }

    // The example's story, in its headline numbers (docs/mech.md, model organism).
    let res = |dir: &str| read(dir).results;
    assert_eq!(res("after-behaviour")["accuracy"], 1.0);
    assert_eq!(res("before-behaviour")["accuracy"], 1.0);
    let parts: u64 = (1..=4)
        .map(|n| res(&format!("after-behaviour-{n}"))["n"].as_u64().unwrap())
        .sum();
    assert_eq!(parts, res("after-behaviour")["n"].as_u64().unwrap());
    assert!(res("after-probe")["auroc"].as_f64().unwrap() >= 0.95);
    assert!(res("before-probe")["auroc"].as_f64().unwrap() <= 0.7);
    let diff = res("diff");
    assert!(diff["weights"]["n_changed"].as_u64().unwrap() > 0);
}
