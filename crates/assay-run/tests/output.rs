//! The output folder: nothing is written outside `--out`, episode directory
//! names are safe whatever the names they are made from, a reused folder is
//! refused unless forced, and forcing removes only what a run wrote.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use assay_agent::{Agent, AgentError, Env};
use assay_run::{RunConfig, episode_dir_name, prepare_out, run};
use proptest::prelude::*;

fn example(rel: &str) -> assay_spec::LoadedSpec {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(rel);
    assay_spec::load_file(&p).unwrap()
}

fn benign_case(spec: &assay_spec::LoadedSpec) -> Vec<Arc<assay_run::PreparedCase>> {
    let catalog = assay_synth::Catalog::embedded().unwrap();
    let cases: Vec<_> = assay_synth::synthesize(spec, &catalog, &Default::default())
        .unwrap()
        .into_iter()
        .filter(|c| c.case.provenance.threat.is_none())
        .map(|c| (c.case, spec.path.clone()))
        .collect();
    assay_run::prepare(cases).unwrap()
}

fn cfg(out: &Path) -> RunConfig {
    RunConfig {
        seed: 0,
        epochs: 1,
        jobs: 2,
        out: Some(out.to_path_buf()),
        judge: None,
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// An agent with a hostile name that replies once.
struct Named(String);

#[async_trait::async_trait]
impl Agent for Named {
    fn name(&self) -> &str {
        &self.0
    }
    async fn run(&self, env: &mut dyn Env) -> Result<(), AgentError> {
        while env.next_user_turn().is_some() {
            env.reply("ok");
        }
        Ok(())
    }
}

/// Every file and directory under `dir`, recursively (symlinks not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        all.push(p.clone());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            all.extend(walk(&p));
        }
    }
    all
}

#[test]
fn hostile_agent_names_stay_inside_out() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let names = [
        "../../escape".to_string(),
        "/etc/passwd".to_string(),
        "..".to_string(),
        format!("exec:{}", "python3 -c 'print(1)' ".repeat(40)),
        "a\0b\\c\nd".to_string(),
        "control:naive".to_string(),
    ];
    let agents: Vec<Arc<dyn Agent>> = names
        .iter()
        .map(|n| Arc::new(Named(n.clone())) as Arc<dyn Agent>)
        .collect();
    let r = block_on(run(
        &benign_case(&example("support/refund-request.yaml")),
        &agents,
        &cfg(&out),
        vec![],
    ))
    .unwrap();
    assert_eq!(r.episodes.len(), names.len());
    // Nothing but `out` was created beside it.
    let top: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, ["out"]);
    let mut dirs = std::collections::BTreeSet::new();
    for e in &r.episodes {
        assert!(e.episode.len() <= 180, "{}", e.episode);
        let comps: Vec<_> = Path::new(&e.episode).components().collect();
        assert!(matches!(comps[..], [Component::Normal(_)]), "{}", e.episode);
        assert!(out.join(&e.trace).is_file(), "{}", e.trace);
        assert!(
            dirs.insert(e.episode.clone()),
            "two episodes share {}",
            e.episode
        );
    }
    for p in walk(&out) {
        assert!(p.starts_with(&out), "{}", p.display());
    }
}

#[test]
fn a_non_empty_out_is_refused_unless_forced_and_force_removes_only_run_files() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    prepare_out(&out, false).unwrap();
    assert!(out.is_dir(), "a missing folder is created");
    let cases = benign_case(&example("support/refund-request.yaml"));
    let agents: Vec<Arc<dyn Agent>> = vec![Arc::new(Named("a".into()))];
    let first = block_on(run(&cases, &agents, &cfg(&out), vec![])).unwrap();
    let old_dir = out.join(&first.episodes[0].episode);
    assert!(old_dir.join("trace.jsonl").is_file());

    // The user's own files in the folder.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir(out.join("keep")).unwrap();
    std::fs::write(out.join("keep/trace.jsonl"), "not a trace of ours\n").unwrap();
    // An episode directory of a run killed before it wrote results.json.
    let orphan = out.join("spec--benign--b--0--0123456789");
    std::fs::create_dir(&orphan).unwrap();
    std::fs::copy(old_dir.join("trace.jsonl"), orphan.join("trace.jsonl")).unwrap();
    let text = std::fs::read_to_string(orphan.join("trace.jsonl")).unwrap();
    let first_line = text.lines().next().unwrap().replace(
        &format!("\"episode\":\"{}\"", first.episodes[0].episode),
        "\"episode\":\"spec--benign--b--0--0123456789\"",
    );
    std::fs::write(orphan.join("trace.jsonl"), first_line + "\n").unwrap();
    // A results.json listing a path outside the folder must not reach it.
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("trace.jsonl"), "precious").unwrap();
    let mut listed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    listed["episodes"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"episode": "../outside"}));
    std::fs::write(out.join("results.json"), listed.to_string()).unwrap();

    let refused = prepare_out(&out, false).unwrap_err();
    assert!(refused.to_string().contains("--force"), "{refused}");
    assert!(out.join("results.json").exists(), "refusal removes nothing");

    prepare_out(&out, true).unwrap();
    assert!(!out.join("results.json").exists());
    assert!(!old_dir.exists(), "the listed episode directory is removed");
    assert!(
        !orphan.exists(),
        "an unlisted episode directory of a killed run is removed"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(out.join("keep/trace.jsonl").is_file(), "not ours: kept");
    assert_eq!(
        std::fs::read_to_string(outside.join("trace.jsonl")).unwrap(),
        "precious"
    );

    // The second run writes only its own episodes beside the user's files.
    let second = block_on(run(&cases, &agents, &cfg(&out), vec![])).unwrap();
    assert_eq!(second.episodes.len(), 1);
}

#[test]
fn results_are_written_atomically_over_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("results.json");
    std::fs::write(&p, "old").unwrap();
    assay_run::write_atomic(&p, b"new").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file is left behind");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Property (c): whatever the spec, case and agent names, the episode
    /// directory is one plain component inside `--out`, bounded in length, and
    /// distinct names give distinct directories.
    #[test]
    fn episode_dirs_never_leave_out(
        spec in "\\PC{0,80}|[./\\\\]{0,12}|.{0,300}",
        case in "\\PC{0,80}|[./\\\\]{0,12}|\\.\\./[a-z/]{0,20}",
        agent in "\\PC{0,400}|[./\\\\:]{0,12}",
        other in "\\PC{0,40}",
        epoch in 0u32..1000,
    ) {
        let out = Path::new("/tmp/assay-out");
        let name = episode_dir_name(&spec, &case, &agent, epoch);
        prop_assert!(name.len() <= 180, "{} bytes", name.len());
        prop_assert!(!name.starts_with('.'));
        prop_assert!(!name.contains(['/', '\\', '\0']));
        let joined = out.join(&name);
        let rel: Vec<_> = joined.strip_prefix(out).unwrap().components().collect();
        prop_assert!(matches!(rel[..], [Component::Normal(n)] if n == name.as_str()), "{name}");
        prop_assert!(joined.join("trace.jsonl").starts_with(out));
        if other != agent {
            prop_assert_ne!(name, episode_dir_name(&spec, &case, &other, epoch));
        }
    }
}
