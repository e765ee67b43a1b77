//! The store's tables, created on first open and checked on every open.

use rusqlite::Connection;

/// Schema version this build writes and reads (`PRAGMA user_version`).
pub(crate) const VERSION: i64 = 1;

pub(crate) enum SchemaError {
    Sql(rusqlite::Error),
    Version(i64),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(e: rusqlite::Error) -> Self {
        SchemaError::Sql(e)
    }
}

/// Connection settings every connection uses: WAL so readers (`assay runs`
/// during a run) never block the writer; NORMAL sync, which in WAL mode loses
/// at most the last transactions on power loss and never corrupts (a lost
/// episode is re-run by resume); a busy timeout for the moment two
/// connections meet.
pub(crate) fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

pub(crate) fn prepare(conn: &Connection) -> Result<(), SchemaError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        // Episode rows are 1-3 KB: 16 KB pages hold several, where 4 KB pages
        // leave a third of every page empty. Only takes effect on a new file.
        conn.pragma_update(None, "page_size", 16_384)?;
    }
    tune(conn)?;
    match version {
        0 => {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE runs (
                     id INTEGER PRIMARY KEY,
                     name TEXT NOT NULL UNIQUE,
                     created TEXT NOT NULL,
                     command TEXT NOT NULL,
                     assay_version TEXT NOT NULL,
                     identity TEXT NOT NULL,
                     identity_digest TEXT NOT NULL,
                     planned INTEGER NOT NULL,
                     state TEXT NOT NULL,
                     passed INTEGER,
                     header TEXT,
                     integrity TEXT
                 );
                 CREATE TABLE cases (
                     digest TEXT NOT NULL UNIQUE,
                     doc BLOB NOT NULL
                 );
                 CREATE TABLE run_cases (
                     run INTEGER NOT NULL REFERENCES runs(id),
                     case_digest TEXT NOT NULL REFERENCES cases(digest),
                     PRIMARY KEY (run, case_digest)
                 ) WITHOUT ROWID;
                 CREATE TABLE episodes (
                     run INTEGER NOT NULL REFERENCES runs(id),
                     id TEXT NOT NULL,
                     spec TEXT NOT NULL,
                     case_label TEXT NOT NULL,
                     agent TEXT NOT NULL,
                     epoch INTEGER NOT NULL,
                     case_digest TEXT NOT NULL REFERENCES cases(digest),
                     status TEXT NOT NULL,
                     trace_head TEXT NOT NULL,
                     verdict BLOB NOT NULL,
                     trace BLOB NOT NULL,
                     trace_form INTEGER NOT NULL,
                     UNIQUE (run, id)
                 );
                 CREATE INDEX episodes_order ON episodes (run, spec, case_label, agent, epoch);
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
            Ok(())
        }
        VERSION => Ok(()),
        other => Err(SchemaError::Version(other)),
    }
}
