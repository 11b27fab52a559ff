//! Stopping an execution (Step Functions' StopExecution), on one machine and in fleet
//! mode.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use runbook_engine::{Action, Status, Timestamp};
use runbook_journal::{ExecutionRow, now_ms};
use serde_json::json;

use crate::{
    FleetMirror, Outcome, Quiet, RunError, Runner, history_row, outcome_of, process_alive,
};

impl Runner {
    /// Stop a RUNNING execution (Step Functions' StopExecution): the runner driving it
    /// aborts it at its next step, cancelling running Tasks and stopping its children;
    /// when no runner drives it (it died), it is aborted here from its journal.
    pub async fn stop(
        &self,
        id: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<Outcome, RunError> {
        if let Some(mirror) = &self.fleet {
            return self.stop_in_fleet(mirror, id, error, cause).await;
        }
        let row = self.journal.resolve(id)?;
        if row.status != "RUNNING" {
            return Err(not_running(&row));
        }
        self.journal
            .request_stop(&row.id, error.as_deref(), cause.as_deref())?;
        for child in self.journal.children(&row.id)? {
            if child.status == "RUNNING" {
                Box::pin(self.stop(&child.id, error.clone(), cause.clone())).await?;
            }
        }
        if self
            .journal
            .claim(&row.id, std::process::id(), process_alive)?
        {
            return self.abort_here(&row, error, cause);
        }
        // A live runner drives it: wait (bounded) until it has aborted.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.journal.execution(&row.id)?;
            if now.status != "RUNNING" || std::time::Instant::now() > deadline {
                return Ok(outcome_of(&now));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `stop` in fleet mode: the request goes to the fleet journal, where its driver
    /// (any runner) reads it; when nobody drives it (its owner's lease is gone, at most
    /// one TTL after it died), this runner takes it over and aborts it from the fleet
    /// journal.
    async fn stop_in_fleet(
        &self,
        mirror: &Arc<FleetMirror>,
        id: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<Outcome, RunError> {
        let full = self.full_id(id);
        let head = || {
            mirror.store().backend().execution(&full).map_err(|e| {
                RunError::Journal(runbook_journal::JournalError::Mirror {
                    code: e.code(),
                    message: format!("{}: fleet journal: {e}", e.code()),
                })
            })
        };
        let row = head()?;
        if row.status != "RUNNING" {
            return Err(not_running(&row));
        }
        self.journal
            .request_stop(&full, error.as_deref(), cause.as_deref())?;
        for child in mirror.children(&full)? {
            if child.status == "RUNNING" {
                Box::pin(self.stop(&child.id, error.clone(), cause.clone())).await?;
            }
        }
        // Its driver, if alive, reads the request and aborts; if its owner died, this
        // runner can take it over once the owner's lease is gone, and aborts it here.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match mirror.take_over(&self.journal, &full) {
                Ok(true) => {
                    let row = self.journal.execution(&full)?;
                    let outcome = self.abort_here(&row, error, cause);
                    mirror.release(&full);
                    return outcome;
                }
                Ok(false) => return Ok(outcome_of(&self.journal.execution(&full)?)),
                Err(e) if e.code() == "fleet.taken" => {
                    let now = head()?;
                    if now.status != "RUNNING" || std::time::Instant::now() > deadline {
                        return Ok(outcome_of(&now));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Nobody drives `row` (its runner died): abort it here from its journal.
    fn abort_here(
        &self,
        row: &ExecutionRow,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<Outcome, RunError> {
        let prepared = self.prepare_text(Path::new(&row.runbook_path), row.runbook_text.clone())?;
        let (mut exec, _) = self.replay(row, &prepared)?;
        if exec.status() == Status::Running {
            let at = now_ms();
            self.journal.append_event(
                &row.id,
                at,
                &json!({"type": "Abort", "error": error, "cause": cause}),
            )?;
            let actions = exec.abort(error, cause, Timestamp::from_unix_millis(at));
            let rows: Vec<_> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::History(h) => Some(history_row(at, h)),
                    _ => None,
                })
                .collect();
            self.journal.append_history(&row.id, &rows)?;
        }
        self.finish_from_engine(&row.id, &exec, Arc::new(Quiet))
    }
}

fn not_running(row: &ExecutionRow) -> RunError {
    RunError::WrongStatus {
        id: row.id.clone(),
        status: row.status.clone(),
        what: "only a RUNNING execution can be stopped".into(),
    }
}
