//! How many episodes run at once: agents that declare a concurrency of their
//! own (model agents waiting on an endpoint) run that many episodes whatever
//! `--jobs` says; every other agent shares the `--jobs` pool.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assay_agent::{Agent, AgentError, Env};
use assay_run::{RunConfig, run};

/// Replies once per turn after a short wait, counting episodes in flight.
struct Counting {
    name: String,
    concurrency: Option<usize>,
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Counting {
    fn new(name: &str, concurrency: Option<usize>) -> Arc<Counting> {
        Arc::new(Counting {
            name: name.into(),
            concurrency,
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }
}

#[async_trait::async_trait]
impl Agent for Counting {
    fn name(&self) -> &str {
        &self.name
    }
    fn concurrency(&self) -> Option<usize> {
        self.concurrency
    }
    async fn run(&self, env: &mut dyn Env) -> Result<(), AgentError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        // Long enough that every episode the scheduler admits is started
        // before the first one ends (they are all spawned at once).
        tokio::time::sleep(Duration::from_millis(200)).await;
        while env.next_user_turn().is_some() {
            env.reply("ok");
        }
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn model_agents_follow_their_own_concurrency_not_jobs() {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support/refund-request.yaml");
    let spec = assay_spec::load_file(&p).unwrap();
    let catalog = assay_synth::Catalog::embedded().unwrap();
    let cases: Vec<_> = assay_synth::synthesize(&spec, &catalog, &Default::default())
        .unwrap()
        .into_iter()
        .filter(|c| c.case.provenance.threat.is_none())
        .map(|c| (c.case, spec.path.clone()))
        .collect();
    let cases = assay_run::prepare(cases).unwrap();
    let model = Counting::new("model", Some(6));
    let program = Counting::new("program", None);
    let agents: Vec<Arc<dyn Agent>> = vec![model.clone(), program.clone()];
    let out = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        seed: 0,
        epochs: 12,
        jobs: 1,
        out: Some(out.path().join("out")),
        judge: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(run(&cases, &agents, &cfg, vec![])).unwrap();
    assert_eq!(r.episodes.len(), 24 * cases.len());
    assert_eq!(
        model.peak.load(Ordering::SeqCst),
        6,
        "the model agent's own limit"
    );
    assert_eq!(
        program.peak.load(Ordering::SeqCst),
        1,
        "--jobs 1 for the rest"
    );
}
