//! Fleet mode for task tokens: the [`TokenThrough`] store decides answers (the first
//! one wins, across every runner and every `runbook task` process) and keeps each
//! token's registration, so a runner that takes over a waiting execution waits on the
//! same token without running its plugin again, and an answer given on any machine
//! reaches the runner that waits.

use rusqlite::params;

use crate::{Journal, Result, TOKEN_CLOSED, TaskTokenRow, TokenAnswer, TokenRefusal, json};

/// The fleet's store of task tokens. `register_task_token` is the owner's (fenced);
/// answers and heartbeats are anyone's; the store's view of a token is the merge of
/// its registration, answer, heartbeats and close.
pub trait TokenThrough: Send + Sync {
    /// Register `t` unless the token exists; the token as the store has it.
    fn register_task_token(&self, t: &TaskTokenRow) -> Result<TaskTokenRow>;
    fn task_token(&self, token: &str) -> Result<Option<TaskTokenRow>>;
    fn task_token_plugin_done(&self, token: &str, at_ms: i64) -> Result<()>;
    fn answer_task_token(
        &self,
        token: &str,
        answer: &TokenAnswer,
        at_ms: i64,
    ) -> Result<std::result::Result<TaskTokenRow, TokenRefusal>>;
    fn close_task_token(&self, token: &str, reason: &str) -> Result<()>;
    fn close_execution_task_tokens(&self, execution_id: &str, reason: &str) -> Result<()>;
    /// Every token of an execution (an import copies them).
    fn execution_task_tokens(&self, execution_id: &str) -> Result<Vec<TaskTokenRow>>;
}

impl Journal {
    pub(crate) fn token_through(&self) -> Option<&dyn TokenThrough> {
        self.through().and_then(|w| w.tokens())
    }

    /// Bring this journal's row of a token up to the store's: its answer, heartbeats,
    /// close and plugin completion. What this runner fed to its engine
    /// (`heartbeats_seen`) and a close it already made stay.
    pub(crate) fn sync_task_token(&self, r: &TaskTokenRow) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO task_tokens (token, execution_id, task_id, state, created_ms,
                 heartbeat_seconds, timeout_seconds, plugin_done_ms, status, output, error, cause,
                 answered_ms, heartbeats, heartbeats_seen, last_heartbeat_ms, closed_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 0, ?15, ?16)
                 ON CONFLICT (token) DO UPDATE SET
                   plugin_done_ms = COALESCE(plugin_done_ms, ?8),
                   status = CASE WHEN status = ?17 THEN status ELSE ?9 END,
                   output = ?10, error = ?11, cause = ?12, answered_ms = ?13,
                   heartbeats = MAX(heartbeats, ?14), last_heartbeat_ms = ?15,
                   closed_reason = COALESCE(closed_reason, ?16)",
                params![
                    r.token,
                    r.execution_id,
                    r.task_id,
                    r.state,
                    r.created_ms,
                    r.heartbeat_seconds,
                    r.timeout_seconds,
                    r.plugin_done_ms,
                    r.status,
                    r.output.as_ref().map(json),
                    r.error,
                    r.cause,
                    r.answered_ms,
                    r.heartbeats,
                    r.last_heartbeat_ms,
                    r.closed_reason,
                    TOKEN_CLOSED
                ],
            )
            .map(|_| ())
        })
    }

    /// Replace this journal's tokens of `execution_id` with `rows` (an import).
    pub(crate) fn import_task_tokens(
        &self,
        execution_id: &str,
        rows: &[TaskTokenRow],
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM task_tokens WHERE execution_id = ?1",
                [execution_id],
            )
            .map(|_| ())
        })?;
        for r in rows {
            self.sync_task_token(r)?;
        }
        Ok(())
    }
}
