//! Task tokens of `.waitForTaskToken` Tasks (Step Functions' callback pattern).
//!
//! The runner that waits registers the token before it runs the Task's plugin and marks
//! when the plugin returned (a resumed runner then waits again without re-running it).
//! `runbook task success|failure|heartbeat` — possibly another process — writes the
//! answer here; the waiting runner polls the row, feeds the answer to the engine as a
//! journaled event and closes the token. Every change is one conditional UPDATE, so an
//! answer racing a timeout or a second answer is decided by SQLite, once.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Journal, Result, json, parse};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS task_tokens (
    token TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    heartbeat_seconds REAL,
    timeout_seconds REAL,
    plugin_done_ms INTEGER,
    status TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cause TEXT,
    answered_ms INTEGER,
    heartbeats INTEGER NOT NULL DEFAULT 0,
    heartbeats_seen INTEGER NOT NULL DEFAULT 0,
    last_heartbeat_ms INTEGER,
    closed_reason TEXT
);
CREATE INDEX IF NOT EXISTS task_tokens_execution ON task_tokens (execution_id, status);
"#;

/// `waiting` until answered; `succeeded` / `failed` once answered and not yet taken by
/// the runner; `closed` once the Task ended (answered, timed out, cancelled, or the
/// execution ended).
pub const TOKEN_WAITING: &str = "waiting";
pub const TOKEN_SUCCEEDED: &str = "succeeded";
pub const TOKEN_FAILED: &str = "failed";
pub const TOKEN_CLOSED: &str = "closed";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskTokenRow {
    pub token: String,
    pub execution_id: String,
    pub task_id: String,
    /// The Task's state path.
    pub state: String,
    pub created_ms: i64,
    pub heartbeat_seconds: Option<f64>,
    pub timeout_seconds: Option<f64>,
    /// When the Task's plugin returned (the wait proper started).
    pub plugin_done_ms: Option<i64>,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub answered_ms: Option<i64>,
    /// Heartbeats sent (`runbook task heartbeat`) and heartbeats the runner has fed in.
    pub heartbeats: i64,
    pub heartbeats_seen: i64,
    pub last_heartbeat_ms: Option<i64>,
    pub closed_reason: Option<String>,
}

impl TaskTokenRow {
    /// When a missing heartbeat fails the Task (from the last heartbeat, else the start).
    pub fn heartbeat_deadline_ms(&self) -> Option<i64> {
        let since = self.last_heartbeat_ms.unwrap_or(self.created_ms);
        self.heartbeat_seconds
            .map(|h| since + (h * 1000.0).round() as i64)
    }
    /// When TimeoutSeconds fails the Task, heartbeats or not.
    pub fn timeout_deadline_ms(&self) -> Option<i64> {
        self.timeout_seconds
            .map(|t| self.created_ms + (t * 1000.0).round() as i64)
    }
}

/// A new token, as the runner registers it.
#[derive(Debug, Clone)]
pub struct NewTaskToken<'a> {
    pub token: &'a str,
    pub execution_id: &'a str,
    pub task_id: &'a str,
    pub state: &'a str,
    pub at_ms: i64,
    pub heartbeat_seconds: Option<f64>,
    pub timeout_seconds: Option<f64>,
}

/// An answer to a token (SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat).
#[derive(Debug, Clone)]
pub enum TokenAnswer {
    Success(Value),
    Failure { error: String, cause: String },
    Heartbeat,
}

/// Why an answer was refused, with Step Functions' error names.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenRefusal {
    /// No such token.
    #[error("InvalidToken: no task is waiting for token '{0}'")]
    InvalidToken(String),
    /// The Task has already been answered, timed out or ended with its execution.
    #[error("TaskTimedOut: the task of token '{token}' is already closed ({reason})")]
    TaskTimedOut { token: String, reason: String },
}

impl TokenRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            TokenRefusal::InvalidToken(_) => "InvalidToken",
            TokenRefusal::TaskTimedOut { .. } => "TaskTimedOut",
        }
    }
}

const COLUMNS: &str = "token, execution_id, task_id, state, created_ms, heartbeat_seconds, \
     timeout_seconds, plugin_done_ms, status, output, error, cause, answered_ms, heartbeats, \
     heartbeats_seen, last_heartbeat_ms, closed_reason";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TaskTokenRow, Option<String>)> {
    Ok((
        TaskTokenRow {
            token: r.get(0)?,
            execution_id: r.get(1)?,
            task_id: r.get(2)?,
            state: r.get(3)?,
            created_ms: r.get(4)?,
            heartbeat_seconds: r.get(5)?,
            timeout_seconds: r.get(6)?,
            plugin_done_ms: r.get(7)?,
            status: r.get(8)?,
            output: None,
            error: r.get(10)?,
            cause: r.get(11)?,
            answered_ms: r.get(12)?,
            heartbeats: r.get(13)?,
            heartbeats_seen: r.get(14)?,
            last_heartbeat_ms: r.get(15)?,
            closed_reason: r.get(16)?,
        },
        r.get(9)?,
    ))
}

fn finish(rows: Vec<(TaskTokenRow, Option<String>)>) -> Result<Vec<TaskTokenRow>> {
    rows.into_iter()
        .map(|(mut t, out)| {
            t.output = out.as_deref().map(parse).transpose()?;
            Ok(t)
        })
        .collect()
}

impl Journal {
    /// Register a token before the Task's plugin runs; registering it again (a resumed
    /// runner re-issuing the same Task) keeps the existing row and its answer.
    pub fn register_task_token(&self, t: &NewTaskToken<'_>) -> Result<TaskTokenRow> {
        // Fleet mode: the store's registration wins (a runner that took the execution
        // over finds the token its previous owner registered, plugin completion included).
        if let Some(through) = self.token_through() {
            let remote = through.register_task_token(&TaskTokenRow {
                token: t.token.to_string(),
                execution_id: t.execution_id.to_string(),
                task_id: t.task_id.to_string(),
                state: t.state.to_string(),
                created_ms: t.at_ms,
                heartbeat_seconds: t.heartbeat_seconds,
                timeout_seconds: t.timeout_seconds,
                plugin_done_ms: None,
                status: TOKEN_WAITING.into(),
                output: None,
                error: None,
                cause: None,
                answered_ms: None,
                heartbeats: 0,
                heartbeats_seen: 0,
                last_heartbeat_ms: None,
                closed_reason: None,
            })?;
            self.sync_task_token(&remote)?;
            return self
                .local_task_token(t.token)?
                .ok_or_else(|| crate::JournalError::NotFound(t.token.to_string()));
        }
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO task_tokens (token, execution_id, task_id, state,
                 created_ms, heartbeat_seconds, timeout_seconds, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    t.token,
                    t.execution_id,
                    t.task_id,
                    t.state,
                    t.at_ms,
                    t.heartbeat_seconds,
                    t.timeout_seconds,
                    TOKEN_WAITING
                ],
            )
        })?;
        self.task_token(t.token)?
            .ok_or_else(|| crate::JournalError::NotFound(t.token.to_string()))
    }

    /// A token as this runner knows it; in fleet mode brought up to the store's first
    /// (an answer given on any machine).
    pub fn task_token(&self, token: &str) -> Result<Option<TaskTokenRow>> {
        if let Some(through) = self.token_through() {
            match through.task_token(token)? {
                Some(remote) => self.sync_task_token(&remote)?,
                None => return Ok(None),
            }
        }
        self.local_task_token(token)
    }

    fn local_task_token(&self, token: &str) -> Result<Option<TaskTokenRow>> {
        let r = self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM task_tokens WHERE token = ?1"),
                [token],
                row,
            )
            .optional()
        })?;
        Ok(finish(r.into_iter().collect())?.pop())
    }

    /// Tokens of an execution that are not closed (waiting, or answered and not yet fed
    /// to the engine), oldest first.
    pub fn open_task_tokens(&self, execution_id: &str) -> Result<Vec<TaskTokenRow>> {
        let rows = self.with(|c| {
            c.prepare(&format!(
                "SELECT {COLUMNS} FROM task_tokens WHERE execution_id = ?1 AND status != ?2
                 ORDER BY created_ms"
            ))?
            .query_map(params![execution_id, TOKEN_CLOSED], row)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        finish(rows)
    }

    /// The Task's plugin returned: from now on the Task only waits for its token.
    pub fn task_token_plugin_done(&self, token: &str, at_ms: i64) -> Result<()> {
        if let Some(through) = self.token_through() {
            through.task_token_plugin_done(token, at_ms)?;
        }
        self.with(|c| {
            c.execute(
                "UPDATE task_tokens SET plugin_done_ms = ?2
                 WHERE token = ?1 AND plugin_done_ms IS NULL",
                params![token, at_ms],
            )
        })?;
        Ok(())
    }

    /// The runner fed heartbeats up to `seen` to the engine.
    pub fn task_token_heartbeats_seen(&self, token: &str, seen: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE task_tokens SET heartbeats_seen = ?2 WHERE token = ?1",
                params![token, seen],
            )
        })?;
        Ok(())
    }

    /// Answer a token. Refused (with the row left unchanged) when the token is unknown,
    /// already answered or closed, or its execution is no longer RUNNING.
    pub fn answer_task_token(
        &self,
        token: &str,
        answer: &TokenAnswer,
        at_ms: i64,
    ) -> Result<std::result::Result<TaskTokenRow, TokenRefusal>> {
        // Fleet mode: the store decides (the first answer wins across the fleet).
        if let Some(through) = self.token_through() {
            let decided = through.answer_task_token(token, answer, at_ms)?;
            if let Ok(row) = &decided {
                self.sync_task_token(row)?;
            }
            return Ok(decided);
        }
        let changed = self.with(|c| {
            // Only a waiting token of a RUNNING execution takes an answer.
            let open = "token = ?1 AND status = 'waiting' AND execution_id IN
                        (SELECT id FROM executions WHERE status = 'RUNNING')";
            match answer {
                TokenAnswer::Success(v) => c.execute(
                    &format!(
                        "UPDATE task_tokens SET status = ?2, output = ?3, answered_ms = ?4
                         WHERE {open}"
                    ),
                    params![token, TOKEN_SUCCEEDED, json(v), at_ms],
                ),
                TokenAnswer::Failure { error, cause } => c.execute(
                    &format!(
                        "UPDATE task_tokens SET status = ?2, error = ?3, cause = ?4,
                         answered_ms = ?5 WHERE {open}"
                    ),
                    params![token, TOKEN_FAILED, error, cause, at_ms],
                ),
                TokenAnswer::Heartbeat => c.execute(
                    &format!(
                        "UPDATE task_tokens SET heartbeats = heartbeats + 1,
                         last_heartbeat_ms = ?2 WHERE {open}"
                    ),
                    params![token, at_ms],
                ),
            }
        })?;
        let Some(row) = self.task_token(token)? else {
            return Ok(Err(TokenRefusal::InvalidToken(token.to_string())));
        };
        if changed == 1 {
            return Ok(Ok(row));
        }
        let reason = match row.status.as_str() {
            TOKEN_SUCCEEDED | TOKEN_FAILED => format!("already answered: {}", row.status),
            TOKEN_CLOSED => row.closed_reason.clone().unwrap_or_else(|| "closed".into()),
            _ => {
                let status = self.execution(&row.execution_id)?.status;
                format!("its execution is {status}")
            }
        };
        Ok(Err(TokenRefusal::TaskTimedOut {
            token: token.to_string(),
            reason,
        }))
    }

    /// The Task ended (answer taken, timed out, cancelled): no answer is accepted any more.
    pub fn close_task_token(&self, token: &str, reason: &str) -> Result<()> {
        if let Some(through) = self.token_through() {
            through.close_task_token(token, reason)?;
        }
        self.with(|c| {
            c.execute(
                "UPDATE task_tokens SET status = ?2, closed_reason = ?3
                 WHERE token = ?1 AND status != ?2",
                params![token, TOKEN_CLOSED, reason],
            )
        })?;
        Ok(())
    }

    /// The execution ended: close every token it still had open.
    pub fn close_execution_task_tokens(&self, execution_id: &str, reason: &str) -> Result<()> {
        if let Some(through) = self.token_through() {
            through.close_execution_task_tokens(execution_id, reason)?;
        }
        self.with(|c| {
            c.execute(
                "UPDATE task_tokens SET status = ?2, closed_reason = ?3
                 WHERE execution_id = ?1 AND status != ?2",
                params![execution_id, TOKEN_CLOSED, reason],
            )
        })?;
        Ok(())
    }
}
