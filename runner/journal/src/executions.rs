//! An execution's header row: creation (with the one-tree-per-environment check),
//! claims, stop requests, RUNNING/finished status, and lookups.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::{ExecutionRow, Journal, JournalError, Result, now_ms};
use crate::{json, parse};

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
pub(crate) fn root_of(c: &Connection, id: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT COALESCE(root_id, id) FROM executions WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()?)
}

impl Journal {
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
        // Fleet mode: the driver may be another runner, which reads the store.
        if let Some(w) = self.through() {
            w.request_stop(id, error, cause)?;
        }
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
        if let Some(w) = self.through()
            && let Some(req) = w.stop_request(id)?
        {
            return Ok(Some(req));
        }
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
}
