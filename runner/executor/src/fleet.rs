//! Fleet mode in the executor (docs/fleet.md, "Fleet mode in the runner").
//!
//! The executor keeps writing its SQLite [`Journal`] (everything else reads it), and
//! [`FleetMirror`] is that journal's write-through store: every write of an
//! execution's core record (creation, status, engine events, history, capability
//! calls) goes to the fleet journal (etcd) first, with the fencing token this runner
//! won for the execution's environment. A refused or failed write is not written
//! locally and stops the execution on this runner at once (fail closed): the
//! execution stays RUNNING in the fleet journal for whoever owns it next, who imports
//! it ([`FleetMirror::take_over`]) and resumes it by replay.
//!
//! Capability calls are fenced too ([`Fenced`]): before each one the runner checks it
//! still holds the lease its token was won under, by the lease's local deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use runbook_caps::{BoxFuture, CapCall, CapError, ConnectInfo, ErrorKind, Provider};
use runbook_journal::{
    BackendError, CallRow, Claimant, ExecutionRow, FaultRow, Fence, GameDayBackend, GameDayThrough,
    Imported, Journal, JournalBackend, JournalError, LagRow, LedgerRow, LeverState, NewHistory,
    SessionRow, SessionState, TaskTokenRow, TokenAnswer, TokenBackend, TokenRefusal, TokenThrough,
    WriteThrough,
};
use serde_json::Value;

/// What fleet mode needs from the fleet's shared journal (the CLI hands it the etcd
/// journal of `runbook-fleet`).
pub trait FleetStore: Send + Sync {
    fn backend(&self) -> &dyn JournalBackend;
    /// Game-day records (sessions, ledgers, faults, the lever) in the same store.
    fn gameday(&self) -> &dyn GameDayBackend;
    /// Task tokens in the same store.
    fn tokens(&self) -> &dyn TokenBackend;
    /// This runner still holds the lease `fence` was won under, alive by its local
    /// deadline: it may act on what the fence guards.
    fn may_act_on(&self, fence: &Fence) -> bool;
    /// Give the ownership up (clean hand-over after an execution ends).
    fn release(&self, fence: &Fence) -> Result<(), BackendError>;
    fn runner_id(&self) -> &str;
}

/// The write-through mirror of one runner, and the fences it drives executions with.
pub struct FleetMirror {
    store: Arc<dyn FleetStore>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    fences: HashMap<String, Fence>,
    /// Executions this runner stopped driving: the first refusal's code and message.
    lost: HashMap<String, (&'static str, String)>,
    /// Traffic sessions this runner started: their drivers write this runner's journal
    /// too, so reading them needs no refresh from the store.
    own_sessions: std::collections::HashSet<String>,
}

fn mirror_error(code: &'static str, message: String) -> JournalError {
    JournalError::Mirror { code, message }
}

/// A read from the fleet journal failed: its own code, no loss recorded.
fn read_error(e: BackendError) -> JournalError {
    match e {
        BackendError::Journal(j) => j,
        e => mirror_error(e.code(), format!("{}: fleet journal: {e}", e.code())),
    }
}

impl FleetMirror {
    pub fn new(store: Arc<dyn FleetStore>) -> Arc<FleetMirror> {
        Arc::new(FleetMirror {
            store,
            state: Mutex::new(State::default()),
        })
    }

    pub fn store(&self) -> &Arc<dyn FleetStore> {
        &self.store
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fence this runner drives `id` with, or why it may not write it.
    fn fence(&self, id: &str) -> Result<Fence, JournalError> {
        let st = self.state();
        if let Some((code, message)) = st.lost.get(id) {
            return Err(mirror_error(code, message.clone()));
        }
        st.fences.get(id).cloned().ok_or_else(|| {
            mirror_error(
                "fleet.fenced",
                format!(
                    "fleet.fenced: runner {} holds no fencing token for execution {id}; \
                     `runbook resume {id}` takes it over",
                    self.store.runner_id()
                ),
            )
        })
    }

    /// This runner stops driving `id`: every later write and call for it is refused
    /// with the first reason.
    fn lose(&self, id: &str, code: &'static str, message: String) -> JournalError {
        let mut st = self.state();
        let (code, message) = st.lost.entry(id.to_string()).or_insert_with(|| {
            tracing::error!(execution = id, code, "{message}");
            (code, message)
        });
        mirror_error(code, message.clone())
    }

    fn written<T>(&self, id: &str, r: Result<T, BackendError>) -> Result<T, JournalError> {
        r.map_err(|e| {
            let code = e.code();
            self.lose(
                id,
                code,
                format!(
                    "{code}: execution {id}: the fleet journal refused or failed a write ({e}); \
                     this runner stops driving it (it stays RUNNING there for its owner)"
                ),
            )
        })
    }

    /// Whether this runner may still act for `id` (checked before every capability
    /// call and on every tick of the drive loop): it drives `id` and still holds the
    /// lease its token was won under, by the lease's local deadline.
    pub fn may_act(&self, id: &str) -> Result<(), JournalError> {
        let fence = self.fence(id)?;
        if self.store.may_act_on(&fence) {
            return Ok(());
        }
        let (scope, token) = match &fence {
            Fence::Token {
                scope, revision, ..
            } => (scope.as_str(), *revision),
            Fence::Local => ("?", 0),
        };
        Err(self.lose(
            id,
            "fleet.fenced",
            format!(
                "fleet.fenced: execution {id}: runner {}'s lease for {scope} (fencing token \
                 {token}) is past its local deadline; it may no longer act on it and stops \
                 driving it (it stays RUNNING for the next owner)",
                self.store.runner_id()
            ),
        ))
    }

    /// Take `id` over from the fleet journal: claim it (a new, higher fencing token;
    /// refused with `fleet.taken` while its owner's lease lives), then replace
    /// `journal`'s copy with the fleet journal's (after the claim nobody else writes
    /// it, so the copy is complete). `Ok(false)`: it is not RUNNING (copied anyway, so
    /// the caller can say what it is).
    pub fn take_over(&self, journal: &Journal, id: &str) -> Result<bool, JournalError> {
        let b = self.store.backend();
        let head = b.execution(id).map_err(read_error)?;
        if head.status != "RUNNING" {
            journal.import_execution(&self.read(head, None)?)?;
            return Ok(false);
        }
        let who = Claimant {
            pid: std::process::id(),
            alive: &crate::process_alive,
        };
        let Some(fence) = b.claim(id, &who).map_err(read_error)? else {
            return Err(mirror_error(
                "fleet.taken",
                format!(
                    "fleet.taken: execution {id} is driven by another runner (the owner key of \
                     its environment is bound to a live lease); it can be taken over once that \
                     runner stops renewing its lease"
                ),
            ));
        };
        self.adopt(journal, id, fence)?;
        Ok(true)
    }

    /// `id` was claimed with `fence`: drive it from now on, and copy it (and its
    /// children) from the store, which nobody else writes after the claim.
    fn adopt(&self, journal: &Journal, id: &str, fence: Fence) -> Result<(), JournalError> {
        {
            let mut st = self.state();
            st.lost.remove(id);
            st.fences.insert(id.to_string(), fence);
        }
        let head = self.store.backend().execution(id).map_err(read_error)?;
        journal.import_execution(&self.read(head, Some(std::process::id()))?)?;
        // Its children as the store has them (a game day's report names the failover
        // its previous owner ran); a RUNNING one is claimed when the parent resumes it.
        self.import_children(journal, id)
    }

    /// Become the driver of a FAILED or TIMED_OUT execution to redrive it: claim its
    /// environment (`fleet.taken` while another runner holds it) and copy it here.
    pub fn take_over_for_redrive(&self, journal: &Journal, id: &str) -> Result<(), JournalError> {
        let b = self.store.backend();
        let Some(fence) = b.claim_redrive(id).map_err(read_error)? else {
            let head = b.execution(id).map_err(read_error)?;
            if matches!(head.status.as_str(), "FAILED" | "TIMED_OUT") {
                return Err(mirror_error(
                    "fleet.taken",
                    format!(
                        "fleet.taken: execution {id}'s environment is held by another runner; \
                         redrive it once that runner is done"
                    ),
                ));
            }
            // Not redrivable: copied, so the caller says what it is.
            journal.import_execution(&self.read(head, None)?)?;
            return Ok(());
        };
        self.adopt(journal, id, fence)
    }

    /// The fleet journal's children of `id`.
    pub fn children(&self, id: &str) -> Result<Vec<ExecutionRow>, JournalError> {
        Ok(self
            .store
            .backend()
            .executions(usize::MAX)
            .map_err(read_error)?
            .into_iter()
            .filter(|h| h.parent_id.as_deref() == Some(id))
            .collect())
    }

    /// Copy `id` and its child executions from the fleet journal into `journal`
    /// without claiming them (`show`, `report` on any runner).
    pub fn import_tree(&self, journal: &Journal, id: &str) -> Result<ExecutionRow, JournalError> {
        let row = self.import(journal, id)?;
        self.import_children(journal, id)?;
        Ok(row)
    }

    fn import_children(&self, journal: &Journal, id: &str) -> Result<(), JournalError> {
        for h in self.children(id)? {
            journal.import_execution(&self.read(h, None)?)?;
        }
        Ok(())
    }

    /// Whether this runner started traffic session `id` (its driver runs here and
    /// writes this runner's journal as well as the store).
    pub fn started_session(&self, id: &str) -> bool {
        self.state().own_sessions.contains(id)
    }

    /// Replace `journal`'s copy of `execution_id`'s game-day records (sessions with
    /// their ledgers, faults) with the store's: a driver on another machine, or the
    /// previous owner, may have written since.
    pub fn refresh_gameday(
        &self,
        journal: &Journal,
        execution_id: &str,
    ) -> Result<(), JournalError> {
        let r = self
            .store
            .gameday()
            .gameday_records(execution_id)
            .map_err(read_error)?;
        journal.import_gameday(execution_id, &r)
    }

    /// Copy `id` from the fleet journal into `journal` without claiming it (`show`).
    pub fn import(&self, journal: &Journal, id: &str) -> Result<ExecutionRow, JournalError> {
        let head = self.store.backend().execution(id).map_err(read_error)?;
        let x = self.read(head, None)?;
        journal.import_execution(&x)?;
        Ok(x.execution)
    }

    fn read(&self, mut head: ExecutionRow, pid: Option<u32>) -> Result<Imported, JournalError> {
        let b = self.store.backend();
        let id = head.id.clone();
        // A PID of another machine means nothing here: the local claim is by our PID.
        head.runner_pid = pid;
        Ok(Imported {
            gameday: self
                .store
                .gameday()
                .gameday_records(&id)
                .map_err(read_error)?,
            tokens: self
                .store
                .tokens()
                .execution_task_tokens(&id)
                .map_err(read_error)?,
            events: b.events(&id).map_err(read_error)?,
            history: b.history(&id).map_err(read_error)?,
            calls: b.calls(&id).map_err(read_error)?,
            logs: b.logs(&id).map_err(read_error)?,
            execution: head,
        })
    }

    /// `id` ended here: forget its fence and give its environment up unless another
    /// execution this runner drives (a child) holds the same ownership.
    pub fn release(&self, id: &str) {
        let fence = {
            let mut st = self.state();
            if st.lost.contains_key(id) {
                return;
            }
            let Some(fence) = st.fences.remove(id) else {
                return;
            };
            if st.fences.values().any(|f| f == &fence) {
                return;
            }
            fence
        };
        if let Err(e) = self.store.release(&fence) {
            tracing::warn!(
                execution = id,
                code = e.code(),
                "fleet: releasing ownership: {e}"
            );
        }
    }
}

impl WriteThrough for FleetMirror {
    fn create_execution(&self, e: &ExecutionRow) -> Result<(), JournalError> {
        let fence = self.store.backend().create_execution(e).map_err(|err| {
            let code = err.code();
            mirror_error(
                code,
                format!(
                    "{code}: execution {} not started: the fleet journal refused it ({err})",
                    e.id
                ),
            )
        })?;
        self.state().fences.insert(e.id.clone(), fence);
        Ok(())
    }

    fn set_running(&self, id: &str, pid: u32, redrive_count: u32) -> Result<(), JournalError> {
        let fence = self.fence(id)?;
        let r = self
            .store
            .backend()
            .set_running(id, &fence, pid, redrive_count);
        self.written(id, r)
    }

    fn append_event(&self, id: &str, at_ms: i64, event: &Value) -> Result<(), JournalError> {
        let fence = self.fence(id)?;
        let r = self.store.backend().append_event(id, &fence, at_ms, event);
        self.written(id, r).map(|_| ())
    }

    fn append_history(&self, id: &str, rows: &[NewHistory]) -> Result<(), JournalError> {
        let fence = self.fence(id)?;
        let r = self.store.backend().append_history(id, &fence, rows);
        self.written(id, r)
    }

    fn record_call(&self, id: &str, at_ms: i64, row: &CallRow) -> Result<(), JournalError> {
        let fence = self.fence(id)?;
        let r = self.store.backend().record_call(id, &fence, at_ms, row);
        self.written(id, r)
    }

    fn record_log(
        &self,
        id: &str,
        at_ms: i64,
        state: &str,
        plugin: &str,
        level: &str,
        message: &str,
    ) -> Result<(), JournalError> {
        let fence = self.fence(id)?;
        let r = self
            .store
            .backend()
            .record_log(id, &fence, at_ms, state, plugin, level, message);
        self.written(id, r)
    }

    fn finish(
        &self,
        id: &str,
        status: &str,
        at_ms: i64,
        output: Option<&Value>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), JournalError> {
        let fence = self.fence(id)?;
        let r = self
            .store
            .backend()
            .finish(id, &fence, status, at_ms, output, error, cause);
        self.written(id, r)
    }

    fn request_stop(
        &self,
        id: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), JournalError> {
        plain(self.store.backend().request_stop(id, error, cause))
    }

    fn stop_request(
        &self,
        id: &str,
    ) -> Result<Option<(Option<String>, Option<String>)>, JournalError> {
        self.store.backend().stop_request(id).map_err(read_error)
    }

    fn gameday(&self) -> Option<&dyn GameDayThrough> {
        Some(self)
    }

    fn tokens(&self) -> Option<&dyn TokenThrough> {
        Some(self)
    }
}

impl TokenThrough for FleetMirror {
    fn register_task_token(&self, t: &TaskTokenRow) -> Result<TaskTokenRow, JournalError> {
        let fence = self.fence(&t.execution_id)?;
        let r = self.store.tokens().register_task_token(&fence, t);
        self.written(&t.execution_id, r)
    }

    fn task_token(&self, token: &str) -> Result<Option<TaskTokenRow>, JournalError> {
        self.store.tokens().task_token(token).map_err(read_error)
    }

    fn task_token_plugin_done(&self, token: &str, at_ms: i64) -> Result<(), JournalError> {
        plain(self.store.tokens().task_token_plugin_done(token, at_ms))
    }

    fn answer_task_token(
        &self,
        token: &str,
        answer: &TokenAnswer,
        at_ms: i64,
    ) -> Result<Result<TaskTokenRow, TokenRefusal>, JournalError> {
        self.store
            .tokens()
            .answer_task_token(token, answer, at_ms)
            .map_err(read_error)
    }

    fn close_task_token(&self, token: &str, reason: &str) -> Result<(), JournalError> {
        plain(self.store.tokens().close_task_token(token, reason))
    }

    fn close_execution_task_tokens(
        &self,
        execution_id: &str,
        reason: &str,
    ) -> Result<(), JournalError> {
        for t in self.execution_task_tokens(execution_id)? {
            if t.status != runbook_journal::TOKEN_CLOSED {
                self.close_task_token(&t.token, reason)?;
            }
        }
        Ok(())
    }

    fn execution_task_tokens(&self, execution_id: &str) -> Result<Vec<TaskTokenRow>, JournalError> {
        self.store
            .tokens()
            .execution_task_tokens(execution_id)
            .map_err(read_error)
    }
}

/// A write of the store that is not the owner's (the traffic driver, the lever, a stop
/// request): its error is the caller's; nothing is marked lost.
fn plain(r: Result<(), BackendError>) -> Result<(), JournalError> {
    r.map_err(|e| {
        let code = e.code();
        mirror_error(code, format!("{code}: fleet journal: {e}"))
    })
}

impl GameDayThrough for FleetMirror {
    fn create_session(&self, s: &SessionRow) -> Result<(), JournalError> {
        let fence = self.fence(&s.execution_id)?;
        let r = self.store.gameday().create_session(&fence, s);
        self.written(&s.execution_id, r)?;
        self.state().own_sessions.insert(s.id.clone());
        Ok(())
    }

    fn put_session_state(
        &self,
        execution_id: &str,
        session: &str,
        s: &SessionState,
    ) -> Result<(), JournalError> {
        plain(
            self.store
                .gameday()
                .put_session_state(execution_id, session, s),
        )
    }

    fn request_session_stop(&self, execution_id: &str, session: &str) -> Result<(), JournalError> {
        plain(
            self.store
                .gameday()
                .request_session_stop(execution_id, session),
        )
    }

    fn session_stop_requested(
        &self,
        execution_id: &str,
        session: &str,
    ) -> Result<bool, JournalError> {
        self.store
            .gameday()
            .session_stop_requested(execution_id, session)
            .map_err(read_error)
    }

    fn set_session_verification(
        &self,
        execution_id: &str,
        session: &str,
        v: &Value,
    ) -> Result<(), JournalError> {
        let fence = self.fence(execution_id)?;
        let r = self
            .store
            .gameday()
            .set_session_verification(&fence, execution_id, session, v);
        self.written(execution_id, r)
    }

    fn append_ledger(
        &self,
        execution_id: &str,
        session: &str,
        rows: &[LedgerRow],
    ) -> Result<(), JournalError> {
        plain(
            self.store
                .gameday()
                .append_ledger(execution_id, session, rows),
        )
    }

    fn append_lag(
        &self,
        execution_id: &str,
        session: &str,
        rows: &[LagRow],
    ) -> Result<(), JournalError> {
        plain(self.store.gameday().append_lag(execution_id, session, rows))
    }

    fn put_fault(&self, f: &FaultRow) -> Result<(), JournalError> {
        let fence = self.fence(&f.execution_id)?;
        let r = self.store.gameday().put_fault(&fence, f);
        self.written(&f.execution_id, r)
    }

    fn set_lever(&self, l: &LeverState) -> Result<(), JournalError> {
        plain(self.store.gameday().set_lever(l))
    }

    fn lever_history(&self) -> Result<Vec<LeverState>, JournalError> {
        self.store.gameday().lever_history().map_err(read_error)
    }
}

/// A provider whose every call is made only while this runner may act for the
/// execution ([`FleetMirror::may_act`]); otherwise the call is not made and the plugin
/// gets a non-retryable `fleet.fenced` error (its Task's result is then refused by the
/// fleet journal like every later write).
pub(crate) struct Fenced {
    pub(crate) inner: Arc<dyn Provider>,
    pub(crate) mirror: Arc<FleetMirror>,
    pub(crate) id: String,
}

impl Fenced {
    fn allowed(&self) -> Result<(), CapError> {
        self.mirror
            .may_act(&self.id)
            .map_err(|e| CapError::new(ErrorKind::AccessDenied, e.code(), e.to_string()))
    }
}

impl Provider for Fenced {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        Box::pin(async move {
            self.allowed()?;
            self.inner.call(call).await
        })
    }
    fn check<'a>(&'a self, call: &'a CapCall) -> BoxFuture<'a, Result<(), CapError>> {
        self.inner.check(call)
    }
    fn connect_info<'a>(
        &'a self,
        target: &'a runbook_caps::types::postgres::Target,
    ) -> BoxFuture<'a, Result<ConnectInfo, CapError>> {
        Box::pin(async move {
            self.allowed()?;
            self.inner.connect_info(target).await
        })
    }
}
