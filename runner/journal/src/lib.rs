//! The execution journal: the single source of truth for every execution.
//!
//! SQLite in WAL mode. Rows are written *before* the executor acts on them (an event is
//! appended before the engine sees it, a task is recorded as scheduled before it runs),
//! and every append is its own committed transaction, so a SIGKILL at any instant loses
//! nothing that was acted upon. `synchronous=NORMAL` in WAL mode survives process death;
//! only a power cut can lose the last commits.
//!
//! Four streams per execution:
//! - `events`: the engine's inputs (start, task results, timers, aborts) with the time
//!   they were fed in. Replaying them into a fresh engine reproduces its state exactly.
//! - `history`: the engine's Step Functions–shaped history, for `runbook show`.
//! - `calls`: every capability call (service, action, region, resource, outcome, duration,
//!   and its arguments and result, secrets redacted, for `runbook plugin test --replay`).
//! - `logs`: plugin log lines, by state.

mod backend;
mod executions;
mod gameday;
mod gameday_fleet;
mod history;
mod rows;
mod schema;
mod serve;
mod tokens;
mod tokens_fleet;
mod write_through;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("journal: execution '{0}' not found")]
    NotFound(String),
    #[error("journal: corrupt record: {0}")]
    Corrupt(String),
    #[error(
        "environment {environment} is held by execution {holder} ({holder_name}, RUNNING); \
         wait for it, `runbook resume {holder}` if its runner died, or `runbook stop {holder}`"
    )]
    EnvironmentBusy {
        environment: String,
        holder: String,
        holder_name: String,
    },
    /// The write-through store (fleet mode's etcd) refused or failed a write; `code`
    /// is its stable code (`fleet.fenced`, `fleet.unavailable`, ...). Nothing was
    /// written locally.
    #[error("{message}")]
    Mirror { code: &'static str, message: String },
}

impl JournalError {
    pub fn code(&self) -> &'static str {
        match self {
            JournalError::Sql(_) => "E-JOURNAL-SQL",
            JournalError::NotFound(_) => "E-JOURNAL-NOT-FOUND",
            JournalError::Corrupt(_) => "E-JOURNAL-CORRUPT",
            JournalError::EnvironmentBusy { .. } => "E-ENV-BUSY",
            JournalError::Mirror { code, .. } => code,
        }
    }
}

pub type Result<T> = std::result::Result<T, JournalError>;

pub use backend::{
    BackendError, BackendResult, Claimant, Fence, GameDayBackend, JournalBackend, NewHistory,
    TokenBackend,
};
pub use gameday::{FaultRow, LagRow, LedgerRow, LeverState, SessionRow};
pub use gameday_fleet::{
    GameDayRecords, GameDayThrough, ImportedSession, SessionState, merge_ledger,
};
pub use rows::{
    CallRow, EventRow, ExecutionRow, HistoryRow, LogRow, MAX_CALL_RESULT_BYTES, redact,
};
pub use serve::{DecisionRow, ServeRun};
pub use tokens::{
    NewTaskToken, TOKEN_CLOSED, TOKEN_FAILED, TOKEN_SUCCEEDED, TOKEN_WAITING, TaskTokenRow,
    TokenAnswer, TokenRefusal,
};
pub use tokens_fleet::TokenThrough;
pub use write_through::{Imported, WriteThrough};

// The JSON column codec, used by every table's module.
pub(crate) use rows::{json, parse};

pub struct Journal {
    conn: Mutex<Connection>,
    /// Fleet mode: where every write of an execution's core record goes first.
    write_through: OnceLock<Arc<dyn WriteThrough>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal> {
        // Two processes opening a journal that does not exist yet race to create it:
        // while one switches the new file to WAL and creates the schema, the other can
        // get SQLITE_BUSY without its busy handler being consulted (seen as
        // `runbook executions` failing while `runbook run` starts). The schema is
        // idempotent, so opening again after a short pause is safe.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::init(Connection::open(path)?) {
                Err(JournalError::Sql(e))
                    if is_busy(&e) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    pub fn open_in_memory() -> Result<Journal> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Journal> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(schema::SCHEMA)?;
        schema::migrate(&conn)?;
        conn.execute_batch(gameday::SCHEMA)?;
        conn.execute_batch(serve::SCHEMA)?;
        conn.execute_batch(tokens::SCHEMA)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            write_through: OnceLock::new(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn exec(id: &str) -> ExecutionRow {
        ExecutionRow {
            id: id.into(),
            name: "n".into(),
            runbook_path: "r.yaml".into(),
            runbook_text: "StartAt: A".into(),
            input: json!({"a": 1, "Password": "hunter2"}),
            provider: Some("local".into()),
            status: "RUNNING".into(),
            started_ms: 1,
            ended_ms: None,
            output: None,
            error: None,
            cause: None,
            seed: u64::MAX - 3,
            redrive_count: 0,
            runner_pid: Some(42),
            parent_id: None,
            environment: None,
        }
    }

    #[test]
    fn round_trips_and_redacts_secrets() {
        let j = Journal::open_in_memory().unwrap();
        j.create_execution(&exec("e1")).unwrap();
        assert_eq!(j.append_event("e1", 5, &json!({"k": 1})).unwrap(), 1);
        assert_eq!(j.append_event("e1", 6, &json!({"k": 2})).unwrap(), 2);
        j.append_history(
            "e1",
            &[(5, "ExecutionStarted".into(), None, json!({"password": "x"}))],
        )
        .unwrap();
        j.finish("e1", "SUCCEEDED", 9, Some(&json!({"ok": true})), None, None)
            .unwrap();
        let e = j.execution("e1").unwrap();
        assert_eq!(e.status, "SUCCEEDED");
        assert_eq!(e.seed, u64::MAX - 3);
        assert_eq!(e.input, json!({"a": 1, "Password": "***"}));
        assert_eq!(e.output, Some(json!({"ok": true})));
        assert_eq!(j.events("e1").unwrap().len(), 2);
        assert_eq!(
            j.history("e1").unwrap()[0].details,
            json!({"password": "***"})
        );
        assert_eq!(j.resolve("e").unwrap().id, "e1");
        assert!(matches!(
            j.execution("nope"),
            Err(JournalError::NotFound(_))
        ));
    }

    #[test]
    fn concurrent_first_opens_all_succeed() {
        // Many openers race to create the same journal, as `runbook run` and
        // `runbook executions` do when an operator watches a first run start.
        for round in 0..20 {
            let dir = std::env::temp_dir().join(format!(
                "runbook-journal-race-{}-{round}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("j.db");
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || Journal::open(&path).map(|_| ()))
                })
                .collect();
            for o in openers {
                o.join().unwrap().unwrap();
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn survives_reopen() {
        let dir = std::env::temp_dir().join(format!("runbook-journal-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.db");
        {
            let j = Journal::open(&path).unwrap();
            j.create_execution(&exec("e2")).unwrap();
            j.record_call(
                "e2",
                3,
                &CallRow {
                    seq: 0,
                    at_ms: 3,
                    state: "S".into(),
                    plugin: "p".into(),
                    service: "rds".into(),
                    action: "DescribeDBInstances".into(),
                    region: Some("us-east-1".into()),
                    resource: None,
                    outcome: "ok".into(),
                    error_code: None,
                    duration_us: 12,
                    args: Some(serde_json::json!({"identifier": "db", "password": "hunter2"})),
                    result: Some(serde_json::json!([{"status": "available"}])),
                },
            )
            .unwrap();
            j.record_log("e2", 4, "S", "p", "info", "hello").unwrap();
        }
        let j = Journal::open(&path).unwrap();
        let call = &j.calls("e2").unwrap()[0];
        assert_eq!(call.action, "DescribeDBInstances");
        // Arguments and result are kept for replay, secrets redacted.
        assert_eq!(
            call.args,
            Some(serde_json::json!({"identifier": "db", "password": "***"}))
        );
        assert_eq!(
            call.result,
            Some(serde_json::json!([{"status": "available"}]))
        );
        assert_eq!(j.logs("e2").unwrap()[0].message, "hello");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
