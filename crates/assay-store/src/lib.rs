//! The run store: one SQLite file holding every run's identity, the cases it
//! ran (each stored once), every episode's verdict, and every trace, so runs
//! can be listed, resumed, compared and exported long after they ended.
//!
//! Traces keep their exact JSONL bytes, so their hash chains verify as
//! written. They are compressed with zstd using the episode's case document as
//! a raw dictionary: the copy of the case every trace embeds becomes a
//! reference into the stored case instead of a repeat, which is what makes an
//! episode cost about a kilobyte instead of thirty.
//!
//! Writes go through one [`Writer`] thread in batched transactions; an
//! episode is in the store once its transaction commits, so a run killed at
//! any point loses only episodes that had not yet committed, and resuming
//! re-runs exactly those.

mod codec;
mod digest;
mod elide;
mod schema;

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assay_report::{EpisodeResult, Integrity, RunResults};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

pub use digest::{ResultsHasher, episode_key};

/// Where the store lives when no `--store` is given.
pub const DEFAULT_STORE: &str = ".assay/assay.db";

/// Largest decompressed trace or verdict read back (a store is input too:
/// a crafted blob must not exhaust memory).
const MAX_BLOB: usize = 256 * 1024 * 1024;

/// zstd level for traces and verdicts: fast enough to keep up with thousands
/// of episodes a second on one core, and within a few percent of level 9 on
/// dictionary-heavy traces.
const LEVEL: i32 = 3;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (locked, corrupt, disk full).
    #[error("run store {path}: {source}")]
    Sql {
        /// The store file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The store's folder could not be created.
    #[error("cannot create the folder of run store {path}: {source}")]
    Io {
        /// The store file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// No store at the path (read-only commands never create one).
    #[error(
        "no run store at {0} (runs are stored there by `assay run`; pass --store FILE to read another)"
    )]
    Missing(PathBuf),
    /// The file was written by a newer or unknown schema.
    #[error("run store {path} has schema version {found}, this assay reads version {expected}")]
    Schema {
        /// The store file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Version this build reads.
        expected: i64,
    },
    /// No run of that name.
    #[error("no run named `{name}` in {path} (see `assay runs`)")]
    NoRun {
        /// The store file.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// A blob could not be decoded: the store was damaged or edited.
    #[error("run store {path}: {what} is damaged: {why}")]
    Damaged {
        /// The store file.
        path: PathBuf,
        /// Which row.
        what: String,
        /// What failed.
        why: String,
    },
    /// The writer thread stopped (its own error is reported by `finish`).
    #[error("run store writer stopped: {0}")]
    Writer(String),
}

/// What identifies a run across sessions: a resumed run must have the same
/// identity, or its stored episodes would be mixed with different work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// Run seed.
    pub seed: u64,
    /// Epochs per case × agent.
    pub epochs: u32,
    /// Agent names, in run order.
    pub agents: Vec<String>,
    /// Spec or case file path → SHA-256 of its bytes.
    pub inputs: std::collections::BTreeMap<String, String>,
    /// SHA-256 over the sorted digests of every case run.
    pub cases: String,
    /// Digest of the technique catalog used, when cases were synthesised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// SHA-256 of the agents file, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents_file: Option<String>,
    /// The judge agent and how often it is asked, when episodes are judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    /// Assay version: another version may score differently, so its
    /// verdicts are not mixed into the same run.
    pub assay_version: String,
}

impl RunIdentity {
    /// One digest over the whole identity.
    pub fn digest(&self) -> String {
        let v = serde_json::to_value(self).expect("identity serialises");
        assay_trace::canonical_digest(&v)
    }

    /// What differs from `other`, in words (empty when identical).
    pub fn differences(&self, other: &RunIdentity) -> Vec<String> {
        let mut d = Vec::new();
        if self.seed != other.seed {
            d.push(format!("seed {} vs {}", self.seed, other.seed));
        }
        if self.epochs != other.epochs {
            d.push(format!("epochs {} vs {}", self.epochs, other.epochs));
        }
        if self.agents != other.agents {
            d.push(format!(
                "agents [{}] vs [{}]",
                self.agents.join(", "),
                other.agents.join(", ")
            ));
        }
        for (path, h) in &self.inputs {
            match other.inputs.get(path) {
                None => d.push(format!("{path} was not an input")),
                Some(o) if o != h => d.push(format!("{path} changed")),
                Some(_) => {}
            }
        }
        for path in other.inputs.keys() {
            if !self.inputs.contains_key(path) {
                d.push(format!("{path} is a new input"));
            }
        }
        if self.cases != other.cases {
            d.push("the set of cases differs".into());
        }
        if self.catalog != other.catalog {
            d.push("the technique catalog differs".into());
        }
        if self.agents_file != other.agents_file {
            d.push("the agents file differs".into());
        }
        if self.judge != other.judge {
            d.push(format!(
                "judge {} vs {}",
                self.judge.as_deref().unwrap_or("none"),
                other.judge.as_deref().unwrap_or("none")
            ));
        }
        if self.assay_version != other.assay_version {
            d.push(format!(
                "assay {} vs {}",
                self.assay_version, other.assay_version
            ));
        }
        d
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Started and not finished: running now, or killed (resume it).
    Running,
    /// Stopped by a signal; the episodes that completed are stored.
    Interrupted,
    /// Every planned episode has a verdict and the run is sealed.
    Complete,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Interrupted => "interrupted",
            RunState::Complete => "complete",
        }
    }

    fn parse(s: &str) -> RunState {
        match s {
            "complete" => RunState::Complete,
            "interrupted" => RunState::Interrupted,
            _ => RunState::Running,
        }
    }
}

/// One run as the store lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Row id (internal).
    #[serde(skip)]
    pub id: i64,
    /// Unique name (`--name`, or generated).
    pub name: String,
    /// When the run was first started (UTC, RFC 3339).
    pub created: String,
    /// The command line that started it.
    pub command: Vec<String>,
    /// Assay version that started it.
    pub assay_version: String,
    /// What the run is.
    pub identity: RunIdentity,
    /// Episodes planned.
    pub planned: u64,
    /// Episodes with a verdict.
    pub stored: u64,
    /// Where it stands.
    pub state: RunState,
    /// Whether its gates and control expectations held (complete runs only).
    pub passed: Option<bool>,
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Unique name.
    pub name: String,
    /// The command line.
    pub command: Vec<String>,
    /// What the run is.
    pub identity: RunIdentity,
    /// Episodes planned.
    pub planned: u64,
}

/// One finished episode, ready to store: its verdict and trace, compressed
/// against its case document by [`EpisodeRow::new`].
#[derive(Debug, Clone)]
pub struct EpisodeRow {
    id: String,
    spec: String,
    case: String,
    agent: String,
    epoch: u32,
    case_digest: String,
    status: String,
    trace_head: String,
    verdict: Vec<u8>,
    trace: Vec<u8>,
    /// 1 when the trace is stored with its `prev` hashes elided (see `elide`).
    trace_form: u8,
}

impl EpisodeRow {
    /// Compresses a verdict and its trace bytes with the case document as
    /// dictionary. Costly (a few tens of microseconds): call it where the
    /// episode ran, not on the writer thread.
    pub fn new(result: &EpisodeResult, trace: &[u8], case: &CaseDoc) -> EpisodeRow {
        let verdict = serde_json::to_vec(result).expect("verdicts serialise");
        let (trace_form, body) = match elide::elide(trace) {
            Some(short) => (1, short),
            None => (0, trace.to_vec()),
        };
        EpisodeRow {
            id: result.episode.clone(),
            spec: result.spec.clone(),
            case: result.case.clone(),
            agent: result.agent.clone(),
            epoch: result.epoch,
            case_digest: case.digest.clone(),
            status: format!("{:?}", result.status).to_lowercase(),
            trace_head: result.trace_head.clone(),
            verdict: codec::compress(&verdict, &case.bytes),
            trace: codec::compress(&body, &case.bytes),
            trace_form,
        }
    }

    /// Bytes this row stores for the verdict and the trace.
    pub fn stored_bytes(&self) -> usize {
        self.verdict.len() + self.trace.len()
    }
}

/// A case document as stored: the exact JSON bytes every trace of the case
/// embeds, and their SHA-256.
#[derive(Debug, Clone)]
pub struct CaseDoc {
    /// SHA-256 of `bytes`, hex.
    pub digest: String,
    /// Compact JSON of the case document.
    pub bytes: Vec<u8>,
}

impl CaseDoc {
    /// The stored form of a case document.
    pub fn new(doc: &serde_json::Value) -> CaseDoc {
        let bytes = serde_json::to_vec(doc).expect("case documents serialise");
        CaseDoc {
            digest: assay_trace::sha256_hex(&bytes),
            bytes,
        }
    }
}

/// An open run store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Dictionary and context for reading single traces (`trace`), kept
    /// between calls so exporting a case's episodes loads its document once.
    unpacker: RefCell<codec::Unpacker>,
}

impl Store {
    /// Opens the store at `path`, creating it (and its folder) if missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Store::connect(path)
    }

    /// Opens an existing store; read commands use this so a typo never
    /// creates an empty store that then reports "no runs".
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        Store::connect(path)
    }

    fn connect(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            unpacker: RefCell::default(),
        };
        schema::prepare(&store.conn).map_err(|e| match e {
            schema::SchemaError::Sql(source) => store.sql(source),
            schema::SchemaError::Version(found) => StoreError::Schema {
                path: path.to_path_buf(),
                found,
                expected: schema::VERSION,
            },
        })?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        self.query_runs("", [])
    }

    /// The run named `name`.
    pub fn run(&self, name: &str) -> Result<RunRow, StoreError> {
        self.query_runs("WHERE r.name = ?1", [name])?
            .pop()
            .ok_or_else(|| StoreError::NoRun {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// The run named `name`, if there is one.
    pub fn find_run(&self, name: &str) -> Result<Option<RunRow>, StoreError> {
        Ok(self.query_runs("WHERE r.name = ?1", [name])?.pop())
    }

    /// The most recently created run.
    pub fn latest_run(&self) -> Result<Option<RunRow>, StoreError> {
        Ok(self.runs()?.pop())
    }

    fn query_runs<P: rusqlite::Params>(
        &self,
        filter: &str,
        p: P,
    ) -> Result<Vec<RunRow>, StoreError> {
        let sql = format!(
            "SELECT r.id, r.name, r.created, r.command, r.assay_version, r.identity, r.planned,
                    r.state, r.passed,
                    (SELECT count(*) FROM episodes e WHERE e.run = r.id)
             FROM runs r {filter} ORDER BY r.id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(p, |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                    row.get::<_, String>(7)?,
                    row.get::<_, Option<bool>>(8)?,
                    row.get::<_, i64>(9)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (id, name, created, command, version, identity, planned, state, passed, stored) =
                r.map_err(|e| self.sql(e))?;
            let damaged = |why: String| StoreError::Damaged {
                path: self.path.clone(),
                what: format!("run `{name}`"),
                why,
            };
            out.push(RunRow {
                id,
                command: serde_json::from_str(&command).map_err(|e| damaged(e.to_string()))?,
                identity: serde_json::from_str(&identity).map_err(|e| damaged(e.to_string()))?,
                name,
                created,
                assay_version: version,
                planned: planned as u64,
                stored: stored as u64,
                state: RunState::parse(&state),
                passed,
            });
        }
        Ok(out)
    }

    /// Records a new run. Fails when the name is taken.
    pub fn create_run(&self, new: &NewRun) -> Result<RunRow, StoreError> {
        self.conn
            .execute(
                "INSERT INTO runs (name, created, command, assay_version, identity, identity_digest,
                                   planned, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running')",
                params![
                    new.name,
                    now_rfc3339(),
                    serde_json::to_string(&new.command).expect("strings serialise"),
                    env!("CARGO_PKG_VERSION"),
                    serde_json::to_string(&new.identity).expect("identity serialises"),
                    new.identity.digest(),
                    new.planned as i64,
                ],
            )
            .map_err(|e| self.sql(e))?;
        self.run(&new.name)
    }

    /// Marks a run as running again (a resume) with its new plan size.
    pub fn reopen_run(&self, run: &RunRow, planned: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET state = 'running', planned = ?2, header = NULL, integrity = NULL,
                                 passed = NULL
                 WHERE id = ?1",
                params![run.id, planned as i64],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Stores case documents not stored yet (each once, whatever the run).
    pub fn put_cases<'a>(
        &self,
        run: &RunRow,
        cases: impl IntoIterator<Item = &'a CaseDoc>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.sql(e))?;
        {
            let mut put = tx
                .prepare_cached("INSERT OR IGNORE INTO cases (digest, doc) VALUES (?1, ?2)")
                .map_err(|e| self.sql(e))?;
            let mut link = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO run_cases (run, case_digest) VALUES (?1, ?2)",
                )
                .map_err(|e| self.sql(e))?;
            for c in cases {
                let packed = codec::compress(&c.bytes, &[]);
                put.execute(params![c.digest, packed])
                    .map_err(|e| self.sql(e))?;
                link.execute(params![run.id, c.digest])
                    .map_err(|e| self.sql(e))?;
            }
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// A stored case document's bytes.
    pub fn case_doc(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        self.case_doc_with(&mut self.unpacker.borrow_mut(), digest)
    }

    fn case_doc_with(
        &self,
        unpacker: &mut codec::Unpacker,
        digest: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let packed: Vec<u8> = self
            .conn
            .query_row("SELECT doc FROM cases WHERE digest = ?1", [digest], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))?
            .ok_or_else(|| self.damaged(format!("case {digest}"), "missing".into()))?;
        let bytes = unpacker
            .decompress_plain(&packed)
            .map_err(|e| self.damaged(format!("case {digest}"), e))?;
        if assay_trace::sha256_hex(&bytes) != digest {
            return Err(self.damaged(
                format!("case {digest}"),
                "its bytes do not match its digest".into(),
            ));
        }
        Ok(bytes)
    }

    /// Makes case `digest` the dictionary `unpacker` reads with, loading
    /// (and checking) its document only when another case was loaded.
    fn load_case(&self, unpacker: &mut codec::Unpacker, digest: &str) -> Result<(), StoreError> {
        if !unpacker.holds(digest) {
            let doc = self.case_doc_with(unpacker, digest)?;
            unpacker.load(digest, &doc);
        }
        Ok(())
    }

    fn damaged(&self, what: String, why: String) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            what,
            why,
        }
    }

    /// Keys ([`episode_key`]) of the episodes of `run` that have a verdict:
    /// a resumed run skips them. Hashes, not ids, so a million episodes cost
    /// 16 MB rather than a hundred.
    pub fn done(&self, run: &RunRow) -> Result<HashSet<u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM episodes WHERE run = ?1")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([run.id], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql(e))?;
        let mut done = HashSet::new();
        for r in rows {
            done.insert(episode_key(&r.map_err(|e| self.sql(e))?));
        }
        Ok(done)
    }

    /// Starts the writer thread for `run` (its own connection).
    pub fn writer(&self, run: &RunRow) -> Result<Writer, StoreError> {
        let conn = Connection::open(&self.path).map_err(|e| self.sql(e))?;
        schema::tune(&conn).map_err(|e| self.sql(e))?;
        let (tx, rx) = mpsc::sync_channel::<EpisodeRow>(WRITER_QUEUE);
        let path = self.path.clone();
        let run_id = run.id;
        let handle = std::thread::Builder::new()
            .name("assay-store-writer".into())
            .spawn(move || {
                write_loop(conn, run_id, rx).map_err(|source| StoreError::Sql { path, source })
            })
            .map_err(|e| StoreError::Writer(e.to_string()))?;
        Ok(Writer {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Visits the episodes of `run` in results order (spec, case, agent,
    /// epoch), one at a time, so a million episodes never sit in memory.
    pub fn for_each_episode(
        &self,
        run: &RunRow,
        mut f: impl FnMut(EpisodeResult) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut unpacker = codec::Unpacker::default();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, case_digest, verdict FROM episodes WHERE run = ?1
                 ORDER BY spec, case_label, agent, epoch",
            )
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt.query([run.id]).map_err(|e| self.sql(e))?;
        while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
            let id: String = row.get(0).map_err(|e| self.sql(e))?;
            let digest: String = row.get(1).map_err(|e| self.sql(e))?;
            let blob: Vec<u8> = row.get(2).map_err(|e| self.sql(e))?;
            self.load_case(&mut unpacker, &digest)?;
            let bytes = unpacker
                .decompress(&blob)
                .map_err(|e| self.damaged(format!("verdict of {id}"), e))?;
            let r: EpisodeResult = serde_json::from_slice(&bytes)
                .map_err(|e| self.damaged(format!("verdict of {id}"), e.to_string()))?;
            if r.episode != id {
                return Err(self.damaged(
                    format!("verdict of {id}"),
                    format!("it names episode {}", r.episode),
                ));
            }
            f(r)?;
        }
        Ok(())
    }

    /// Every episode of `run`, in results order (for exports and reports
    /// of runs that fit in memory).
    pub fn episodes(&self, run: &RunRow) -> Result<Vec<EpisodeResult>, StoreError> {
        let mut v = Vec::new();
        self.for_each_episode(run, |e| {
            v.push(e);
            Ok(())
        })?;
        Ok(v)
    }

    /// The exact trace bytes (JSONL) of one episode, if stored.
    pub fn trace(&self, run: &RunRow, episode: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String, Vec<u8>, i64)> = self
            .conn
            .query_row(
                "SELECT case_digest, trace, trace_form FROM episodes WHERE run = ?1 AND id = ?2",
                params![run.id, episode],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some((digest, blob, form)) = row else {
            return Ok(None);
        };
        let what = || format!("trace of {episode}");
        let bytes = {
            let mut unpacker = self.unpacker.borrow_mut();
            self.load_case(&mut unpacker, &digest)?;
            unpacker.decompress(&blob)
        }
        .map_err(|e| self.damaged(what(), e))?;
        let bytes = match form {
            0 => bytes,
            1 => elide::restore(&bytes)
                .ok_or_else(|| self.damaged(what(), "its lines are not a chain".into()))?,
            other => return Err(self.damaged(what(), format!("unknown trace form {other}"))),
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| self.damaged(what(), e.to_string()))
    }

    /// Seals a finished (or interrupted) run: its results without episodes
    /// (`header`, whose `episodes` is empty) and the seal over the whole
    /// results, episodes included (see [`ResultsHasher`]).
    pub fn finish_run(
        &self,
        run: &RunRow,
        header: &RunResults,
        state: RunState,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(header).expect("results serialise");
        let integrity = header
            .integrity
            .as_ref()
            .map(|i| serde_json::to_string(i).expect("integrity serialises"));
        self.conn
            .execute(
                "UPDATE runs SET state = ?2, header = ?3, integrity = ?4, passed = ?5 WHERE id = ?1",
                params![run.id, state.as_str(), json, integrity, header.passed],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The sealed header of a run that finished (see [`Store::finish_run`]).
    pub fn header(&self, run: &RunRow) -> Result<Option<RunResults>, StoreError> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT header FROM runs WHERE id = ?1", [run.id], |r| {
                r.get(0)
            })
            .map_err(|e| self.sql(e))?;
        json.map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| self.damaged(format!("results of run `{}`", run.name), e.to_string()))
        })
        .transpose()
    }

    /// The whole results of a finished run, episodes included, as
    /// `results.json` holds them.
    pub fn results(&self, run: &RunRow) -> Result<Option<RunResults>, StoreError> {
        let Some(mut r) = self.header(run)? else {
            return Ok(None);
        };
        r.episodes = self.episodes(run)?;
        Ok(Some(r))
    }

    /// Recomputes the seal of a finished run from its stored episodes; a
    /// verdict edited in the store no longer matches the recorded digest.
    pub fn recompute_digest(&self, run: &RunRow) -> Result<Option<String>, StoreError> {
        let Some(header) = self.header(run)? else {
            return Ok(None);
        };
        let mut h = ResultsHasher::new(&header);
        self.for_each_episode(run, |e| {
            h.add(&e);
            Ok(())
        })?;
        Ok(Some(h.finish()))
    }

    /// Bytes the store spends on a run's episodes (verdicts and traces) and
    /// on its cases, for the size benchmark.
    pub fn stored_bytes(&self, run: &RunRow) -> Result<(u64, u64), StoreError> {
        let episodes: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(sum(length(verdict) + length(trace) + length(id) + length(trace_head)
                         + length(spec) + length(case_label) + length(agent) + 80), 0)
                 FROM episodes WHERE run = ?1",
                [run.id],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        let cases: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(sum(length(c.doc)), 0) FROM cases c
                 JOIN run_cases rc ON rc.case_digest = c.digest WHERE rc.run = ?1",
                [run.id],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        Ok((episodes as u64, cases as u64))
    }
}

/// Integrity of a stored run, as [`Integrity`] of its results.
pub fn run_integrity(header: &RunResults) -> Option<&Integrity> {
    header.integrity.as_ref()
}

/// Rows waiting for the writer before `put` blocks: bounds memory when the
/// disk is slower than the episodes.
const WRITER_QUEUE: usize = 4096;

/// Longest a finished episode waits before its transaction commits.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// Most episodes in one transaction.
const BATCH: usize = 2048;

/// The store's writer thread: episodes go in with [`Writer::put`] and are
/// committed in batches.
pub struct Writer {
    tx: Option<mpsc::SyncSender<EpisodeRow>>,
    handle: Option<std::thread::JoinHandle<Result<u64, StoreError>>>,
}

impl Writer {
    /// Queues an episode. Fails only when the writer thread has stopped
    /// (its error comes from [`Writer::finish`]).
    pub fn put(&self, row: EpisodeRow) -> Result<(), StoreError> {
        self.tx
            .as_ref()
            .expect("writer open until finish")
            .send(row)
            .map_err(|_| StoreError::Writer("the writer thread ended early".into()))
    }

    /// Commits what is queued and stops; returns the episodes written.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        drop(self.tx.take());
        match self.handle.take().expect("joined once").join() {
            Ok(r) => r,
            Err(_) => Err(StoreError::Writer("the writer thread panicked".into())),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn write_loop(
    mut conn: Connection,
    run: i64,
    rx: mpsc::Receiver<EpisodeRow>,
) -> Result<u64, rusqlite::Error> {
    let mut written = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let until = Instant::now() + COMMIT_EVERY;
        while batch.len() < BATCH {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO episodes (run, id, spec, case_label, agent, epoch, case_digest,
                                       status, trace_head, verdict, trace, trace_form)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for r in &batch {
                insert.execute(params![
                    run,
                    r.id,
                    r.spec,
                    r.case,
                    r.agent,
                    r.epoch,
                    r.case_digest,
                    r.status,
                    r.trace_head,
                    r.verdict,
                    r.trace,
                    r.trace_form
                ])?;
            }
        }
        tx.commit()?;
        written += batch.len() as u64;
    }
    Ok(written)
}

/// Current time as RFC 3339 UTC (seconds).
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests;
