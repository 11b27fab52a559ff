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
mod gameday;
mod serve;
mod tokens;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

pub use backend::{BackendError, BackendResult, Claimant, Fence, JournalBackend, NewHistory};
pub use gameday::{FaultRow, LagRow, LedgerRow, LeverState, SessionRow};
pub use serve::{DecisionRow, ServeRun};
pub use tokens::{
    NewTaskToken, TOKEN_CLOSED, TOKEN_FAILED, TOKEN_SUCCEEDED, TOKEN_WAITING, TaskTokenRow,
    TokenAnswer, TokenRefusal,
};

/// One execution's header row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecutionRow {
    pub id: String,
    pub name: String,
    /// Path the runbook was read from.
    pub runbook_path: String,
    /// The runbook text as it was when the execution started: resume uses this, not
    /// whatever the file says now.
    pub runbook_text: String,
    pub input: Value,
    pub provider: Option<String>,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub seed: u64,
    pub redrive_count: u32,
    /// PID of the runner driving it, while RUNNING.
    pub runner_pid: Option<u32>,
    /// The execution whose Task started this one (child executions).
    #[serde(default)]
    pub parent_id: Option<String>,
    /// `provider/name` of the environment it acts on (`Runbook.Environment`): at most
    /// one execution tree acts on an environment at a time.
    #[serde(default)]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub at_ms: i64,
    pub event: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryRow {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub state: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallRow {
    pub seq: i64,
    pub at_ms: i64,
    pub state: String,
    pub plugin: String,
    pub service: String,
    pub action: String,
    pub region: Option<String>,
    pub resource: Option<String>,
    /// ok, error, denied, timed_out.
    pub outcome: String,
    pub error_code: Option<String>,
    pub duration_us: i64,
    /// The call's arguments (redacted); `None` in journals written before they were kept.
    #[serde(default)]
    pub args: Option<Value>,
    /// Its result: the `ok` value, or the capability error `{kind, code, message,
    /// retryable}` (redacted); `None` when denied, timed out, too large to keep
    /// ([`MAX_CALL_RESULT_BYTES`]) or written before results were kept.
    #[serde(default)]
    pub result: Option<Value>,
}

/// Results larger than this (as JSON) are not kept: a replay then says so.
pub const MAX_CALL_RESULT_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogRow {
    pub seq: i64,
    pub at_ms: i64,
    pub state: String,
    pub plugin: String,
    pub level: String,
    pub message: String,
}

pub struct Journal {
    conn: Mutex<Connection>,
    /// Fleet mode: where every write of an execution's core record goes first.
    write_through: OnceLock<Arc<dyn WriteThrough>>,
}

/// Fleet mode (docs/fleet.md): a store every write of an execution's core record
/// (creation, status, events, history, capability calls) goes to *before* SQLite, so
/// the local journal is a cache of it. An error stops the write: nothing is written
/// locally, and the caller gets it as [`JournalError::Mirror`].
pub trait WriteThrough: Send + Sync {
    fn create_execution(&self, e: &ExecutionRow) -> Result<()>;
    fn set_running(&self, id: &str, pid: u32, redrive_count: u32) -> Result<()>;
    fn append_event(&self, id: &str, at_ms: i64, event: &Value) -> Result<()>;
    fn append_history(&self, id: &str, rows: &[NewHistory]) -> Result<()>;
    fn record_call(&self, id: &str, at_ms: i64, row: &CallRow) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        id: &str,
        status: &str,
        at_ms: i64,
        output: Option<&Value>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<()>;
}

/// An execution as another store has it, to copy into this journal verbatim.
pub struct Imported {
    pub execution: ExecutionRow,
    pub events: Vec<EventRow>,
    pub history: Vec<HistoryRow>,
    pub calls: Vec<CallRow>,
    pub logs: Vec<LogRow>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    runbook_path TEXT NOT NULL,
    runbook_text TEXT NOT NULL,
    input TEXT NOT NULL,
    provider TEXT,
    status TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    output TEXT,
    error TEXT,
    cause TEXT,
    seed INTEGER NOT NULL,
    redrive_count INTEGER NOT NULL DEFAULT 0,
    runner_pid INTEGER,
    parent_id TEXT,
    root_id TEXT,
    environment TEXT,
    stop_request TEXT
);
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE IF NOT EXISTS history (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE IF NOT EXISTS calls (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    plugin TEXT NOT NULL,
    service TEXT NOT NULL,
    action TEXT NOT NULL,
    region TEXT,
    resource TEXT,
    outcome TEXT NOT NULL,
    error_code TEXT,
    duration_us INTEGER NOT NULL,
    args TEXT,
    result TEXT,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE IF NOT EXISTS logs (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    plugin TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
"#;

fn json(v: &Value) -> String {
    serde_json::to_string(&redact(v.clone())).expect("JSON values serialize")
}

fn parse(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| JournalError::Corrupt(e.to_string()))
}

/// Keys whose values never enter the journal, whatever a plugin returns.
fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password")
        || k == "secret_string"
        || k == "secretstring"
        || k.contains("secret_value")
}

/// Replace secret-looking values with "***" (defence in depth: plugins cannot read
/// secrets through the capability contract, but a task input could carry one).
pub fn redact(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if is_secret_key(&k) && !v.is_null() {
                        (k, Value::String("***".into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(redact).collect()),
        other => other,
    }
}

/// Columns added after the first release: added in place to journals made before.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('executions')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (col, ty) in [
        ("parent_id", "TEXT"),
        ("root_id", "TEXT"),
        ("environment", "TEXT"),
        ("stop_request", "TEXT"),
    ] {
        if !cols.iter().any(|c| c == col) {
            conn.execute_batch(&format!("ALTER TABLE executions ADD COLUMN {col} {ty}"))?;
        }
    }
    let call_cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('calls')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for col in ["args", "result"] {
        if !call_cols.iter().any(|c| c == col) {
            conn.execute_batch(&format!("ALTER TABLE calls ADD COLUMN {col} TEXT"))?;
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS executions_env ON executions (environment, status);
         CREATE INDEX IF NOT EXISTS executions_parent ON executions (parent_id);",
    )
}

/// Refuse when an execution of another tree is RUNNING on `env`.
fn check_environment(tx: &rusqlite::Transaction<'_>, env: &str, root: &str) -> Result<()> {
    let holder: Option<(String, String)> = tx
        .query_row(
            "SELECT COALESCE(root_id, id), name FROM executions
             WHERE environment = ?1 AND status = 'RUNNING' AND COALESCE(root_id, id) != ?2
             ORDER BY started_ms LIMIT 1",
            params![env, root],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match holder {
        Some((holder, holder_name)) => Err(JournalError::EnvironmentBusy {
            environment: env.to_string(),
            holder,
            holder_name,
        }),
        None => Ok(()),
    }
}

/// The root of the execution tree `id` belongs to (None: `id` is not here).
fn root_of(c: &Connection, id: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT COALESCE(root_id, id) FROM executions WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()?)
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
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> Result<Journal> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Journal> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        conn.execute_batch(gameday::SCHEMA)?;
        conn.execute_batch(serve::SCHEMA)?;
        conn.execute_batch(tokens::SCHEMA)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            write_through: OnceLock::new(),
        })
    }

    /// Fleet mode: send every write of an execution's core record to `w` first (once
    /// per journal; a second call is ignored).
    pub fn set_write_through(&self, w: Arc<dyn WriteThrough>) {
        let _ = self.write_through.set(w);
    }

    fn through(&self) -> Option<&Arc<dyn WriteThrough>> {
        self.write_through.get()
    }

    /// Replace this journal's copy of an execution with `x` (its row and its four
    /// streams, sequence numbers kept), in one transaction. Not written through: the
    /// rows come from the write-through store.
    pub fn import_execution(&self, x: &Imported) -> Result<()> {
        let e = &x.execution;
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for table in ["events", "history", "calls", "logs"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE execution_id = ?1"),
                [&e.id],
            )?;
        }
        tx.execute("DELETE FROM executions WHERE id = ?1", [&e.id])?;
        // A child whose parent is not here (yet) keeps no root: nothing to check.
        let root: Option<String> = match &e.parent_id {
            Some(p) => root_of(&tx, p)?,
            None => Some(e.id.clone()),
        };
        tx.execute(
            "INSERT INTO executions (id, name, runbook_path, runbook_text, input, provider, status, started_ms, ended_ms, output, error, cause, seed, redrive_count, runner_pid, parent_id, root_id, environment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            params![
                e.id,
                e.name,
                e.runbook_path,
                e.runbook_text,
                json(&e.input),
                e.provider,
                e.status,
                e.started_ms,
                e.ended_ms,
                e.output.as_ref().map(json),
                e.error,
                e.cause,
                e.seed as i64,
                e.redrive_count,
                e.runner_pid,
                e.parent_id,
                root,
                e.environment
            ],
        )?;
        for r in &x.events {
            tx.execute(
                "INSERT INTO events (execution_id, seq, at_ms, event) VALUES (?1, ?2, ?3, ?4)",
                params![e.id, r.seq, r.at_ms, json(&r.event)],
            )?;
        }
        for r in &x.history {
            tx.execute(
                "INSERT INTO history (execution_id, seq, at_ms, kind, state, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.id, r.seq, r.at_ms, r.kind, r.state, json(&r.details)],
            )?;
        }
        for r in &x.calls {
            tx.execute(
                "INSERT INTO calls (execution_id, seq, at_ms, state, plugin, service, action, region, resource, outcome, error_code, duration_us, args, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    e.id,
                    r.seq,
                    r.at_ms,
                    r.state,
                    r.plugin,
                    r.service,
                    r.action,
                    r.region,
                    r.resource,
                    r.outcome,
                    r.error_code,
                    r.duration_us,
                    r.args.as_ref().map(json),
                    r.result.as_ref().map(json)
                ],
            )?;
        }
        for r in &x.logs {
            tx.execute(
                "INSERT INTO logs (execution_id, seq, at_ms, state, plugin, level, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.id, r.seq, r.at_ms, r.state, r.plugin, r.level, r.message],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }

    /// Insert a new execution. When it declares an environment, the insert and the
    /// check that no other execution tree is RUNNING on that environment are one
    /// transaction: two runners racing for one environment cannot both start.
    pub fn create_execution(&self, e: &ExecutionRow) -> Result<()> {
        let Some(w) = self.through() else {
            return self.create_local(e);
        };
        w.create_execution(e)?;
        let local = self.create_local(e);
        if let Err(err) = &local {
            // Not left RUNNING in the store with nobody to drive it.
            let _ = w.finish(
                &e.id,
                "FAILED",
                now_ms(),
                None,
                Some(err.code()),
                Some(&err.to_string()),
            );
        }
        local
    }

    fn create_local(&self, e: &ExecutionRow) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let root: String = match &e.parent_id {
            Some(p) => root_of(&tx, p)?.ok_or_else(|| JournalError::NotFound(p.clone()))?,
            None => e.id.clone(),
        };
        if let Some(env) = &e.environment {
            check_environment(&tx, env, &root)?;
        }
        tx.execute(
            "INSERT INTO executions (id, name, runbook_path, runbook_text, input, provider, status, started_ms, seed, redrive_count, runner_pid, parent_id, root_id, environment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                e.id,
                e.name,
                e.runbook_path,
                e.runbook_text,
                json(&e.input),
                e.provider,
                e.status,
                e.started_ms,
                e.seed as i64,
                e.redrive_count,
                e.runner_pid,
                e.parent_id,
                root,
                e.environment
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Take over driving a RUNNING execution: succeeds only if no live runner holds it
    /// (`alive` says whether a recorded runner PID still runs). Atomic, so two runners
    /// resuming the same execution cannot both drive it.
    pub fn claim(&self, id: &str, pid: u32, alive: impl Fn(u32) -> bool) -> Result<bool> {
        self.with(|c| {
            let cur: Option<(String, Option<u32>)> = c
                .query_row(
                    "SELECT status, runner_pid FROM executions WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((status, holder)) = cur else {
                return Ok(false);
            };
            if status != "RUNNING" || holder.is_some_and(|h| h != pid && alive(h)) {
                return Ok(false);
            }
            let n = c.execute(
                "UPDATE executions SET runner_pid = ?2 WHERE id = ?1 AND status = 'RUNNING'
                 AND runner_pid IS ?3",
                params![id, pid, holder],
            )?;
            Ok(n == 1)
        })
    }

    /// Ask whoever drives a RUNNING execution to abort it (Step Functions'
    /// StopExecution); the runner sees it within a second.
    pub fn request_stop(&self, id: &str, error: Option<&str>, cause: Option<&str>) -> Result<()> {
        let req = serde_json::json!({"error": error, "cause": cause});
        self.with(|c| {
            c.execute(
                "UPDATE executions SET stop_request = ?2 WHERE id = ?1 AND status = 'RUNNING'",
                params![id, req.to_string()],
            )
            .map(|_| ())
        })
    }

    /// A pending stop request: `(error, cause)`.
    pub fn stop_request(&self, id: &str) -> Result<Option<(Option<String>, Option<String>)>> {
        let raw: Option<Option<String>> = self.with(|c| {
            c.query_row(
                "SELECT stop_request FROM executions WHERE id = ?1 AND status = 'RUNNING'",
                [id],
                |r| r.get(0),
            )
            .optional()
        })?;
        let Some(Some(text)) = raw else {
            return Ok(None);
        };
        let v = parse(&text)?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        Ok(Some((field("error"), field("cause"))))
    }

    /// Children of an execution, oldest first.
    pub fn children(&self, id: &str) -> Result<Vec<ExecutionRow>> {
        let sql = format!(
            "SELECT {} FROM executions WHERE parent_id = ?1 ORDER BY started_ms, rowid",
            Self::COLS
        );
        let raws = self.with(|c| {
            let mut s = c.prepare(&sql)?;
            s.query_map([id], Self::row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raws.into_iter().map(Self::finish_row).collect()
    }

    /// The RUNNING execution tree root holding an environment, if any.
    pub fn environment_holder(&self, environment: &str) -> Result<Option<ExecutionRow>> {
        let sql = format!(
            "SELECT {} FROM executions WHERE environment = ?1 AND status = 'RUNNING'
             ORDER BY started_ms LIMIT 1",
            Self::COLS
        );
        let raw = self.with(|c| c.query_row(&sql, [environment], Self::row).optional())?;
        raw.map(Self::finish_row).transpose()
    }

    /// Append an engine input; returns its sequence number.
    pub fn append_event(&self, id: &str, at_ms: i64, event: &Value) -> Result<i64> {
        if let Some(w) = self.through() {
            w.append_event(id, at_ms, event)?;
        }
        self.with(|c| {
            let seq: i64 = c.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE execution_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            c.execute(
                "INSERT INTO events (execution_id, seq, at_ms, event) VALUES (?1, ?2, ?3, ?4)",
                params![id, seq, at_ms, json(event)],
            )?;
            Ok(seq)
        })
    }

    /// Append history rows in one transaction.
    pub fn append_history(
        &self,
        id: &str,
        rows: &[(i64, String, Option<String>, Value)],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(w) = self.through() {
            w.append_history(id, rows)?;
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // IMMEDIATE: other processes (workers, traffic drivers) write too; a deferred
        // transaction that reads first could not upgrade (SQLITE_BUSY_SNAPSHOT).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut seq: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM history WHERE execution_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO history (execution_id, seq, at_ms, kind, state, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (at, kind, state, details) in rows {
                seq += 1;
                stmt.execute(params![id, seq, at, kind, state, json(details)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn record_call(&self, id: &str, at_ms: i64, row: &CallRow) -> Result<()> {
        if let Some(w) = self.through() {
            w.record_call(id, at_ms, row)?;
        }
        let args = row.args.as_ref().map(json);
        let result = row
            .result
            .as_ref()
            .map(json)
            .filter(|r| r.len() <= MAX_CALL_RESULT_BYTES);
        self.with(|c| {
            c.execute(
                "INSERT INTO calls (execution_id, seq, at_ms, state, plugin, service, action, region, resource, outcome, error_code, duration_us, args, result)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM calls WHERE execution_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    id,
                    at_ms,
                    row.state,
                    row.plugin,
                    row.service,
                    row.action,
                    row.region,
                    row.resource,
                    row.outcome,
                    row.error_code,
                    row.duration_us,
                    args,
                    result
                ],
            )
            .map(|_| ())
        })
    }

    pub fn record_log(
        &self,
        id: &str,
        at_ms: i64,
        state: &str,
        plugin: &str,
        level: &str,
        message: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO logs (execution_id, seq, at_ms, state, plugin, level, message)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM logs WHERE execution_id = ?1), ?2, ?3, ?4, ?5, ?6)",
                params![id, at_ms, state, plugin, level, message],
            )
            .map(|_| ())
        })
    }

    /// Mark an execution RUNNING again (resume, redrive). A redriven execution takes its
    /// environment again, so the environment check applies as at creation.
    pub fn set_running(&self, id: &str, pid: u32, redrive_count: u32) -> Result<()> {
        if let Some(w) = self.through() {
            w.set_running(id, pid, redrive_count)?;
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let cur: Option<(Option<String>, String)> = tx
            .query_row(
                "SELECT environment, COALESCE(root_id, id) FROM executions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((Some(env), root)) = &cur {
            check_environment(&tx, env, root)?;
        }
        tx.execute(
            "UPDATE executions SET status = 'RUNNING', ended_ms = NULL, output = NULL, error = NULL, cause = NULL,
             runner_pid = ?2, redrive_count = ?3, stop_request = NULL WHERE id = ?1",
            params![id, pid, redrive_count],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn finish(
        &self,
        id: &str,
        status: &str,
        at_ms: i64,
        output: Option<&Value>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<()> {
        if let Some(w) = self.through() {
            w.finish(id, status, at_ms, output, error, cause)?;
        }
        self.with(|c| {
            c.execute(
                "UPDATE executions SET status = ?2, ended_ms = ?3, output = ?4, error = ?5, cause = ?6, runner_pid = NULL, stop_request = NULL WHERE id = ?1",
                params![id, status, at_ms, output.map(json), error, cause],
            )
            .map(|_| ())
        })
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ExecutionRow, String, Option<String>)> {
        Ok((
            ExecutionRow {
                id: r.get(0)?,
                name: r.get(1)?,
                runbook_path: r.get(2)?,
                runbook_text: r.get(3)?,
                input: Value::Null,
                provider: r.get(5)?,
                status: r.get(6)?,
                started_ms: r.get(7)?,
                ended_ms: r.get(8)?,
                output: None,
                error: r.get(10)?,
                cause: r.get(11)?,
                seed: r.get::<_, i64>(12)? as u64,
                redrive_count: r.get(13)?,
                runner_pid: r.get(14)?,
                parent_id: r.get(15)?,
                environment: r.get(16)?,
            },
            r.get(4)?,
            r.get(9)?,
        ))
    }

    fn finish_row(
        (mut e, input, output): (ExecutionRow, String, Option<String>),
    ) -> Result<ExecutionRow> {
        e.input = parse(&input)?;
        e.output = output.as_deref().map(parse).transpose()?;
        Ok(e)
    }

    const COLS: &'static str = "id, name, runbook_path, runbook_text, input, provider, status, started_ms, ended_ms, output, error, cause, seed, redrive_count, runner_pid, parent_id, environment";

    pub fn execution(&self, id: &str) -> Result<ExecutionRow> {
        let sql = format!("SELECT {} FROM executions WHERE id = ?1", Self::COLS);
        let raw = self.with(|c| c.query_row(&sql, [id], Self::row).optional())?;
        match raw {
            Some(raw) => Self::finish_row(raw),
            None => Err(JournalError::NotFound(id.to_string())),
        }
    }

    /// Find an execution by full id or unique prefix.
    pub fn resolve(&self, prefix: &str) -> Result<ExecutionRow> {
        if let Ok(e) = self.execution(prefix) {
            return Ok(e);
        }
        let like = format!("{}%", prefix.replace('%', ""));
        let ids: Vec<String> = self.with(|c| {
            let mut s = c.prepare("SELECT id FROM executions WHERE id LIKE ?1 LIMIT 2")?;
            s.query_map([like], |r| r.get(0))?.collect()
        })?;
        match ids.as_slice() {
            [one] => self.execution(one),
            _ => Err(JournalError::NotFound(prefix.to_string())),
        }
    }

    /// Most recent first.
    pub fn executions(&self, limit: usize) -> Result<Vec<ExecutionRow>> {
        let sql = format!(
            "SELECT {} FROM executions ORDER BY started_ms DESC, rowid DESC LIMIT ?1",
            Self::COLS
        );
        let raws = self.with(|c| {
            let mut s = c.prepare(&sql)?;
            s.query_map([limit as i64], Self::row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raws.into_iter().map(Self::finish_row).collect()
    }

    pub fn events(&self, id: &str) -> Result<Vec<EventRow>> {
        let raws: Vec<(i64, i64, String)> = self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, event FROM events WHERE execution_id = ?1 ORDER BY seq",
            )?;
            s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })?;
        raws.into_iter()
            .map(|(seq, at_ms, e)| {
                Ok(EventRow {
                    seq,
                    at_ms,
                    event: parse(&e)?,
                })
            })
            .collect()
    }

    pub fn history(&self, id: &str) -> Result<Vec<HistoryRow>> {
        let raws: Vec<(i64, i64, String, Option<String>, String)> = self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, kind, state, details FROM history WHERE execution_id = ?1 ORDER BY seq",
            )?;
            s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?.collect()
        })?;
        raws.into_iter()
            .map(|(seq, at_ms, kind, state, d)| {
                Ok(HistoryRow {
                    seq,
                    at_ms,
                    kind,
                    state,
                    details: parse(&d)?,
                })
            })
            .collect()
    }

    pub fn calls(&self, id: &str) -> Result<Vec<CallRow>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, state, plugin, service, action, region, resource, outcome, error_code, duration_us, args, result
                 FROM calls WHERE execution_id = ?1 ORDER BY seq",
            )?;
            s.query_map([id], |r| {
                Ok(CallRow {
                    seq: r.get(0)?,
                    at_ms: r.get(1)?,
                    state: r.get(2)?,
                    plugin: r.get(3)?,
                    service: r.get(4)?,
                    action: r.get(5)?,
                    region: r.get(6)?,
                    resource: r.get(7)?,
                    outcome: r.get(8)?,
                    error_code: r.get(9)?,
                    duration_us: r.get(10)?,
                    // A corrupt cell reads as not kept rather than failing the listing.
                    args: r
                        .get::<_, Option<String>>(11)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    result: r
                        .get::<_, Option<String>>(12)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                })
            })?
            .collect()
        })
    }

    pub fn logs(&self, id: &str) -> Result<Vec<LogRow>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, state, plugin, level, message FROM logs WHERE execution_id = ?1 ORDER BY seq",
            )?;
            s.query_map([id], |r| {
                Ok(LogRow {
                    seq: r.get(0)?,
                    at_ms: r.get(1)?,
                    state: r.get(2)?,
                    plugin: r.get(3)?,
                    level: r.get(4)?,
                    message: r.get(5)?,
                })
            })?
            .collect()
        })
    }
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

    /// Refuses every write after the first `allow` ones, as a fenced fleet store does.
    struct Refusing {
        allow: Mutex<usize>,
    }

    impl Refusing {
        fn next(&self) -> Result<()> {
            let mut n = self.allow.lock().unwrap();
            if *n == 0 {
                return Err(JournalError::Mirror {
                    code: "fleet.fenced",
                    message: "fleet.fenced: refused".into(),
                });
            }
            *n -= 1;
            Ok(())
        }
    }

    impl WriteThrough for Refusing {
        fn create_execution(&self, _: &ExecutionRow) -> Result<()> {
            self.next()
        }
        fn set_running(&self, _: &str, _: u32, _: u32) -> Result<()> {
            self.next()
        }
        fn append_event(&self, _: &str, _: i64, _: &Value) -> Result<()> {
            self.next()
        }
        fn append_history(&self, _: &str, _: &[NewHistory]) -> Result<()> {
            self.next()
        }
        fn record_call(&self, _: &str, _: i64, _: &CallRow) -> Result<()> {
            self.next()
        }
        fn finish(
            &self,
            _: &str,
            _: &str,
            _: i64,
            _: Option<&Value>,
            _: Option<&str>,
            _: Option<&str>,
        ) -> Result<()> {
            self.next()
        }
    }

    #[test]
    fn a_refused_write_through_writes_nothing_locally_and_import_replaces() {
        let j = Journal::open_in_memory().unwrap();
        j.set_write_through(Arc::new(Refusing {
            allow: Mutex::new(2),
        }));
        j.create_execution(&exec("e3")).unwrap();
        j.append_event("e3", 5, &json!({"k": 1})).unwrap();
        let e = j.append_event("e3", 6, &json!({"k": 2})).unwrap_err();
        assert_eq!(e.code(), "fleet.fenced");
        assert!(j.finish("e3", "FAILED", 7, None, None, None).is_err());
        assert_eq!(
            j.events("e3").unwrap().len(),
            1,
            "the refused event is not local"
        );
        assert_eq!(j.execution("e3").unwrap().status, "RUNNING");

        // What the store has replaces the local copy, sequence numbers kept.
        let mut head = exec("e3");
        head.status = "SUCCEEDED".into();
        let ev = |seq| EventRow {
            seq,
            at_ms: seq,
            event: json!({"seq": seq}),
        };
        j.import_execution(&Imported {
            execution: head,
            events: vec![ev(1), ev(2), ev(3)],
            history: vec![],
            calls: vec![],
            logs: vec![],
        })
        .unwrap();
        assert_eq!(j.execution("e3").unwrap().status, "SUCCEEDED");
        let events = j.events("e3").unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].event, json!({"seq": 3}));
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
