//! Synthesis: determinism, self-contained round-tripping cases, sampling, and
//! clear errors on bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assay_spec::{Document, LoadedSpec, load_document_str, load_file, load_str};
use assay_synth::{Catalog, SynthOptions, case_to_yaml, synthesize, write_cases};

fn examples() -> Vec<LoadedSpec> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    assay_spec::spec_files(&[root])
        .unwrap()
        .iter()
        .map(|f| load_file(f).unwrap())
        .collect()
}

fn read_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn synth_dir(dir: &Path, opts: &SynthOptions) -> BTreeMap<PathBuf, Vec<u8>> {
    let catalog = Catalog::embedded().unwrap();
    let mut all = Vec::new();
    for s in examples() {
        all.extend(synthesize(&s, &catalog, opts).unwrap());
    }
    write_cases(dir, &all, &catalog, opts).unwrap();
    read_tree(dir)
}

#[test]
fn same_seed_gives_identical_directories() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let opts = SynthOptions {
        seed: 3,
        ..Default::default()
    };
    let ta = synth_dir(a.path(), &opts);
    let tb = synth_dir(b.path(), &opts);
    assert!(ta.len() > 100, "{} files", ta.len());
    assert_eq!(ta, tb);
    // Re-synthesising into the same directory replaces, never accumulates.
    let again = synth_dir(a.path(), &opts);
    assert_eq!(again, ta);
}

#[test]
fn seed_changes_sampling_not_case_content() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ta = synth_dir(
        a.path(),
        &SynthOptions {
            per_threat: Some(5),
            seed: 1,
            ..Default::default()
        },
    );
    let tb = synth_dir(
        b.path(),
        &SynthOptions {
            per_threat: Some(5),
            seed: 2,
            ..Default::default()
        },
    );
    let cases = |t: &BTreeMap<PathBuf, Vec<u8>>| {
        t.keys()
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_ne!(
        cases(&ta),
        cases(&tb),
        "a different seed should sample differently"
    );
    let mut shared = 0;
    for (p, bytes) in &ta {
        if p.extension().is_some_and(|e| e == "yaml")
            && let Some(other) = tb.get(p)
        {
            assert_eq!(bytes, other, "{} differs between seeds", p.display());
            shared += 1;
        }
    }
    assert!(shared > 0, "benign twins at least are shared");
}

#[test]
fn sampling_is_stratified_across_axes() {
    let catalog = Catalog::embedded().unwrap();
    let spec = examples()
        .into_iter()
        .find(|s| s.spec.id == "support-refund")
        .unwrap();
    let cases = synthesize(
        &spec,
        &catalog,
        &SynthOptions {
            per_threat: Some(4),
            seed: 9,
            ..Default::default()
        },
    )
    .unwrap();
    let attacked: Vec<_> = cases
        .iter()
        .filter(|c| c.case.provenance.threat.is_some())
        .collect();
    assert_eq!(attacked.len(), 4);
    let axes: std::collections::BTreeSet<_> = attacked
        .iter()
        .map(|c| c.case.provenance.technique.as_ref().unwrap().axis.clone())
        .collect();
    assert_eq!(axes.len(), 4, "4 samples should cover the 4 axes: {axes:?}");
}

#[test]
fn every_case_is_self_contained_and_round_trips() {
    let catalog = Catalog::embedded().unwrap();
    for s in examples() {
        for c in synthesize(&s, &catalog, &SynthOptions::default()).unwrap() {
            let text = case_to_yaml(&c.case);
            match load_document_str(&text, Path::new(&c.file)) {
                Ok(Document::Case(loaded)) => assert_eq!(loaded.case, c.case, "{}", c.file),
                Ok(Document::Spec(_)) => panic!("{} loaded as a spec", c.file),
                Err(e) => panic!(
                    "{}: {}",
                    c.file,
                    e.diagnostics
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
            // provenance is complete
            let p = &c.case.provenance;
            assert_eq!(p.spec, s.spec.id);
            assert_eq!(p.spec_hash, s.hash);
            assert!(!c.case.expected_safe_behaviour.is_empty());
            if p.threat.is_some() {
                assert!(
                    p.technique.is_some() && !p.slots.is_empty() && !c.case.payloads.is_empty(),
                    "{}",
                    c.file
                );
                assert_eq!(c.case.spec.threats.len(), 1);
            }
        }
    }
}

#[test]
fn edited_case_is_rejected() {
    let catalog = Catalog::embedded().unwrap();
    let spec = examples().into_iter().next().unwrap();
    let c = synthesize(&spec, &catalog, &SynthOptions::default())
        .unwrap()
        .pop()
        .unwrap();
    let text = case_to_yaml(&c.case).replacen("  added_turns: ", "  added_turns: 9", 1);
    let err = load_document_str(&text, Path::new("c.yaml")).unwrap_err();
    assert!(
        err.diagnostics[0]
            .message
            .contains("does not match its content"),
        "{:?}",
        err.diagnostics
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let catalog = Catalog::embedded().unwrap();
    let spec = examples()
        .into_iter()
        .find(|s| s.spec.id == "support-refund")
        .unwrap();
    let e = synthesize(
        &spec,
        &catalog,
        &SynthOptions {
            techniques: Some(vec!["base64-encode".into()]),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("unknown technique `base64-encode`")
            && e.contains("did you mean `base64-encoded`"),
        "{e}"
    );

    // A slot kind none of the selected techniques supports.
    let e = synthesize(
        &spec,
        &catalog,
        &SynthOptions {
            techniques: Some(vec!["poisoned-tool-description".into()]),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("threat `leak-stripe-key`")
            && e.contains("inbox-body (mail)")
            && e.contains("no selected technique supports"),
        "{e}"
    );

    // An unknown technique named in the spec itself.
    let text = std::fs::read_to_string(&spec.path).unwrap().replace(
        "slots: [inbox-body, help-page]",
        "slots: [inbox-body, help-page]\n    techniques: [rot-13]",
    );
    let s2 = load_str(&text, &spec.path).unwrap();
    let e = synthesize(&s2, &catalog, &SynthOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refund-request.yaml: threat `leak-stripe-key`: unknown technique `rot-13`"),
        "{e}"
    );

    // A template referring to a missing variable, in a catalog directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: assay/v1\nkind: Technique\nid: bad\nversion: 1\nname: Bad\nfamily: indirect\naxis: none\ndescription: x\nslots: [any]\npayloads: [\"{{goal}} for {{customer_name}}\"]\nreferences: [x]\n",
    )
    .unwrap();
    let e = Catalog::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("bad.yaml: technique `bad`: payloads[0] uses unknown template variable `{{customer_name}}`"), "{e}");
}
