//! What an execution needs from its journal, as a trait: the SQLite [`Journal`] (one
//! machine, the default) and the etcd journal of fleet mode (`runbook-fleet`,
//! docs/fleet.md) both implement it, so the executor can be written against either.
//!
//! Writes that only the execution's driver may make carry a [`Fence`]: the proof that
//! the caller still owns the execution. SQLite has one machine and guards by runner
//! PID ([`Journal::claim`]), so its fence is [`Fence::Local`] and checks nothing more;
//! etcd compares a fencing token in the same transaction as the write, so a runner
//! whose ownership expired is refused ([`BackendError::Fenced`]).

use serde_json::Value;

use crate::{
    CallRow, EventRow, ExecutionRow, FaultRow, GameDayRecords, HistoryRow, Journal, JournalError,
    LagRow, LedgerRow, LeverState, LogRow, SessionRow, SessionState, TaskTokenRow, TokenAnswer,
    TokenRefusal,
};

/// Proof that the caller drives an execution, carried by every owner-only write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fence {
    /// One machine (SQLite): the runner PID claim is the guard; nothing to compare.
    Local,
    /// Fleet mode: the owner key of `scope` (an environment, or the execution itself
    /// when it declares none) was created at `revision`. A write is accepted only while
    /// the owner key still has that create revision.
    Token {
        scope: String,
        owner_key: String,
        revision: i64,
    },
}

/// One history row to append: `(at_ms, kind, state, details)`, as [`Journal::append_history`].
pub type NewHistory = (i64, String, Option<String>, Value);

/// Errors of a journal backend, with stable codes (they reach the CLI and logs).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The fence no longer owns the execution: another runner took it over (or the
    /// lease expired). The caller must stop driving it.
    #[error("{0}")]
    Fenced(String),
    /// The execution's environment (or the execution) is owned by another runner.
    #[error("{0}")]
    Taken(String),
    /// The store failed; `code` is the store's stable code (e.g. `fleet.ambiguous`:
    /// the write may have been applied; repeating the same call is safe).
    #[error("{message}")]
    Store { code: &'static str, message: String },
}

impl BackendError {
    pub fn code(&self) -> &'static str {
        match self {
            BackendError::Journal(e) => e.code(),
            BackendError::Fenced(_) => "fleet.fenced",
            BackendError::Taken(_) => "fleet.taken",
            BackendError::Store { code, .. } => code,
        }
    }
}

pub type BackendResult<T> = std::result::Result<T, BackendError>;

/// Who is claiming an execution (resume, takeover).
pub struct Claimant<'a> {
    /// This runner's PID (the SQLite journal records it).
    pub pid: u32,
    /// Whether a recorded runner PID still runs (SQLite: a live holder keeps it).
    pub alive: &'a dyn Fn(u32) -> bool,
}

/// Game-day records in a fleet's shared store (see [`crate::GameDayThrough`] for who
/// writes what). Fenced writes are the owner's; the others are idempotent.
pub trait GameDayBackend: Send + Sync {
    fn create_session(&self, fence: &Fence, s: &SessionRow) -> BackendResult<()>;
    fn put_session_state(
        &self,
        execution_id: &str,
        session: &str,
        s: &SessionState,
    ) -> BackendResult<()>;
    fn request_session_stop(&self, execution_id: &str, session: &str) -> BackendResult<()>;
    /// A stop was requested, or the execution is no longer RUNNING.
    fn session_stop_requested(&self, execution_id: &str, session: &str) -> BackendResult<bool>;
    fn set_session_verification(
        &self,
        fence: &Fence,
        execution_id: &str,
        session: &str,
        v: &Value,
    ) -> BackendResult<()>;
    fn append_ledger(
        &self,
        execution_id: &str,
        session: &str,
        rows: &[LedgerRow],
    ) -> BackendResult<()>;
    fn append_lag(&self, execution_id: &str, session: &str, rows: &[LagRow]) -> BackendResult<()>;
    fn put_fault(&self, fence: &Fence, f: &FaultRow) -> BackendResult<()>;
    fn set_lever(&self, l: &LeverState) -> BackendResult<()>;
    fn lever_history(&self) -> BackendResult<Vec<LeverState>>;
    /// An execution's sessions (merged), ledgers, lag samples and faults.
    fn gameday_records(&self, execution_id: &str) -> BackendResult<GameDayRecords>;
}

/// Task tokens in a fleet's shared store (see [`crate::TokenThrough`]).
pub trait TokenBackend: Send + Sync {
    /// Register `t` under the owner's fence unless the token exists; the token as the
    /// store has it.
    fn register_task_token(&self, fence: &Fence, t: &TaskTokenRow) -> BackendResult<TaskTokenRow>;
    fn task_token(&self, token: &str) -> BackendResult<Option<TaskTokenRow>>;
    fn task_token_plugin_done(&self, token: &str, at_ms: i64) -> BackendResult<()>;
    /// The first answer wins; a later one, one to a closed token or to a token of an
    /// execution that is not RUNNING is refused with Step Functions' error.
    fn answer_task_token(
        &self,
        token: &str,
        answer: &TokenAnswer,
        at_ms: i64,
    ) -> BackendResult<std::result::Result<TaskTokenRow, TokenRefusal>>;
    fn close_task_token(&self, token: &str, reason: &str) -> BackendResult<()>;
    fn execution_task_tokens(&self, execution_id: &str) -> BackendResult<Vec<TaskTokenRow>>;
}

/// The journal an execution is written to and resumed from. Every write is durable
/// when it returns; a write that failed with an ambiguous error may be repeated with
/// the same arguments (the backends make that idempotent).
pub trait JournalBackend: Send + Sync {
    /// Insert a new execution and become its driver. Refused when another execution
    /// tree (SQLite) or another runner (etcd) holds its environment.
    fn create_execution(&self, e: &ExecutionRow) -> BackendResult<Fence>;
    /// Take over driving a RUNNING execution (resume, or after its runner died):
    /// `None` when it is not RUNNING or someone alive drives it.
    fn claim(&self, id: &str, who: &Claimant<'_>) -> BackendResult<Option<Fence>>;
    /// Become the driver of a FAILED or TIMED_OUT execution to redrive it: `None` when
    /// it is neither, or another runner holds its environment.
    fn claim_redrive(&self, id: &str) -> BackendResult<Option<Fence>>;
    /// Mark it RUNNING again (resume, redrive).
    fn set_running(
        &self,
        id: &str,
        fence: &Fence,
        pid: u32,
        redrive_count: u32,
    ) -> BackendResult<()>;
    /// Append an engine input; its sequence number (1, 2, ...).
    fn append_event(
        &self,
        id: &str,
        fence: &Fence,
        at_ms: i64,
        event: &Value,
    ) -> BackendResult<i64>;
    /// Append history rows, all or none.
    fn append_history(&self, id: &str, fence: &Fence, rows: &[NewHistory]) -> BackendResult<()>;
    /// Record a capability call (the row's `seq` is assigned by the journal).
    fn record_call(&self, id: &str, fence: &Fence, at_ms: i64, row: &CallRow) -> BackendResult<()>;
    #[allow(clippy::too_many_arguments)]
    fn record_log(
        &self,
        id: &str,
        fence: &Fence,
        at_ms: i64,
        state: &str,
        plugin: &str,
        level: &str,
        message: &str,
    ) -> BackendResult<()>;
    /// The execution ended with `status`.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        id: &str,
        fence: &Fence,
        status: &str,
        at_ms: i64,
        output: Option<&Value>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> BackendResult<()>;
    /// Ask the driver to abort (anyone may ask: not fenced).
    fn request_stop(&self, id: &str, error: Option<&str>, cause: Option<&str>)
    -> BackendResult<()>;
    /// A pending stop request of a RUNNING execution: `(error, cause)`.
    fn stop_request(&self, id: &str) -> BackendResult<Option<(Option<String>, Option<String>)>>;

    fn execution(&self, id: &str) -> BackendResult<ExecutionRow>;
    /// Most recent first.
    fn executions(&self, limit: usize) -> BackendResult<Vec<ExecutionRow>>;
    fn events(&self, id: &str) -> BackendResult<Vec<EventRow>>;
    fn history(&self, id: &str) -> BackendResult<Vec<HistoryRow>>;
    fn calls(&self, id: &str) -> BackendResult<Vec<CallRow>>;
    fn logs(&self, id: &str) -> BackendResult<Vec<LogRow>>;
}

/// The SQLite journal, unchanged: the fence is always [`Fence::Local`].
impl JournalBackend for Journal {
    fn create_execution(&self, e: &ExecutionRow) -> BackendResult<Fence> {
        Journal::create_execution(self, e)?;
        Ok(Fence::Local)
    }

    fn claim(&self, id: &str, who: &Claimant<'_>) -> BackendResult<Option<Fence>> {
        Ok(Journal::claim(self, id, who.pid, who.alive)?.then_some(Fence::Local))
    }

    fn claim_redrive(&self, id: &str) -> BackendResult<Option<Fence>> {
        let status = Journal::execution(self, id)?.status;
        Ok(matches!(status.as_str(), "FAILED" | "TIMED_OUT").then_some(Fence::Local))
    }

    fn set_running(&self, id: &str, _: &Fence, pid: u32, redrive_count: u32) -> BackendResult<()> {
        Ok(Journal::set_running(self, id, pid, redrive_count)?)
    }

    fn append_event(&self, id: &str, _: &Fence, at_ms: i64, event: &Value) -> BackendResult<i64> {
        Ok(Journal::append_event(self, id, at_ms, event)?)
    }

    fn append_history(&self, id: &str, _: &Fence, rows: &[NewHistory]) -> BackendResult<()> {
        Ok(Journal::append_history(self, id, rows)?)
    }

    fn record_call(&self, id: &str, _: &Fence, at_ms: i64, row: &CallRow) -> BackendResult<()> {
        Ok(Journal::record_call(self, id, at_ms, row)?)
    }

    fn record_log(
        &self,
        id: &str,
        _: &Fence,
        at_ms: i64,
        state: &str,
        plugin: &str,
        level: &str,
        message: &str,
    ) -> BackendResult<()> {
        Ok(Journal::record_log(
            self, id, at_ms, state, plugin, level, message,
        )?)
    }

    fn finish(
        &self,
        id: &str,
        _: &Fence,
        status: &str,
        at_ms: i64,
        output: Option<&Value>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> BackendResult<()> {
        Ok(Journal::finish(
            self, id, status, at_ms, output, error, cause,
        )?)
    }

    fn request_stop(
        &self,
        id: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> BackendResult<()> {
        Ok(Journal::request_stop(self, id, error, cause)?)
    }

    fn stop_request(&self, id: &str) -> BackendResult<Option<(Option<String>, Option<String>)>> {
        Ok(Journal::stop_request(self, id)?)
    }

    fn execution(&self, id: &str) -> BackendResult<ExecutionRow> {
        Ok(Journal::execution(self, id)?)
    }

    fn executions(&self, limit: usize) -> BackendResult<Vec<ExecutionRow>> {
        Ok(Journal::executions(self, limit)?)
    }

    fn events(&self, id: &str) -> BackendResult<Vec<EventRow>> {
        Ok(Journal::events(self, id)?)
    }

    fn history(&self, id: &str) -> BackendResult<Vec<HistoryRow>> {
        Ok(Journal::history(self, id)?)
    }

    fn calls(&self, id: &str) -> BackendResult<Vec<CallRow>> {
        Ok(Journal::calls(self, id)?)
    }

    fn logs(&self, id: &str) -> BackendResult<Vec<LogRow>> {
        Ok(Journal::logs(self, id)?)
    }
}
