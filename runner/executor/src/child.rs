//! Child executions: a Task that runs another runbook and waits for it, in Step
//! Functions' own form (`Resource: arn:aws:states:::states:startExecution.sync:2`,
//! `Parameters: {StateMachineArn: failover.yaml, Input: {...}}`).
//!
//! The child is a journaled execution of its own, linked to its parent. Its id is
//! derived from the parent's id and the Task's id, so a parent that is resumed after a
//! crash finds the child it started instead of starting a second one: a finished child
//! gives its result at once, a running one is waited for, one whose runner died is
//! resumed. With a worker command configured, children run in runner processes of
//! their own (a crashed child runner is resumed by its parent); without, in this one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use runbook_engine::{Event, TaskId, Timestamp};
use runbook_journal::ExecutionRow;
use serde_json::{Value, json};

use crate::{Prepared, Progress, RunError, Runner, StartOptions, process_alive};

/// Everything a parent Task knows about the child it starts.
pub(crate) struct ChildRequest {
    pub parent: ExecutionRow,
    pub parent_dir: PathBuf,
    pub child_id: String,
    pub state_path: String,
    /// The Task's effective input: `{StateMachineArn, Input, Name?}`.
    pub input: Value,
    pub json_output: bool,
    pub prepared: Option<Arc<Prepared>>,
}

/// The child's id: a UUID derived from the parent's execution and the Task (the
/// engine's task ids are deterministic, so a replayed parent derives the same one).
pub(crate) fn child_id(parent_id: &str, task_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("runbook:{parent_id}/{task_id}").as_bytes(),
    )
    .to_string()
}

fn failed(task_id: TaskId, error: &str, cause: impl Into<String>) -> Event {
    Event::TaskFailed {
        task_id,
        error: error.into(),
        cause: cause.into(),
    }
}

impl Runner {
    /// Start (or find) the child, wait for it, and turn its end into the Task's result.
    /// Boxed with an explicit `Send`: child → resume → drive → child is a cycle the
    /// compiler cannot see through otherwise.
    pub(crate) fn run_child(
        self,
        req: ChildRequest,
        task_id: TaskId,
        progress: Arc<dyn Progress>,
    ) -> runbook_caps::BoxFuture<'static, Event> {
        Box::pin(async move { self.child_outcome(req, task_id, progress).await })
    }

    async fn child_outcome(
        &self,
        req: ChildRequest,
        task_id: TaskId,
        progress: Arc<dyn Progress>,
    ) -> Event {
        let row = match self.journal.execution(&req.child_id) {
            Ok(row) => row,
            Err(runbook_journal::JournalError::NotFound(_)) => match self.create_child(&req) {
                Ok(row) => row,
                Err(e) => {
                    return failed(
                        task_id,
                        "States.TaskFailed",
                        format!(
                            "state '{}': cannot start the child execution: {e:#}",
                            req.state_path
                        ),
                    );
                }
            },
            Err(e) => return failed(task_id, "States.Runtime", e.to_string()),
        };
        let ended = match self.wait_child(&row, progress).await {
            Ok(r) => r,
            Err(e) => {
                return failed(
                    task_id,
                    "States.Runtime",
                    format!(
                        "state '{}': child execution {}: {e:#}",
                        req.state_path, row.id
                    ),
                );
            }
        };
        let described = describe_execution(&ended, req.json_output);
        if ended.status == "SUCCEEDED" {
            Event::TaskSucceeded {
                task_id,
                output: described,
            }
        } else {
            // As Step Functions: the parent's Task fails with States.TaskFailed and the
            // cause is the child's DescribeExecution, carrying its Error and Cause.
            failed(task_id, "States.TaskFailed", described.to_string())
        }
    }

    fn create_child(&self, req: &ChildRequest) -> Result<ExecutionRow, RunError> {
        let arn = req
            .input
            .get("StateMachineArn")
            .and_then(Value::as_str)
            .ok_or_else(|| RunError::Invalid("StateMachineArn must be a string".into()))?;
        let prepared = match &req.prepared {
            Some(p) => p.clone(),
            None => {
                let path =
                    crate::resolve_child_path(&req.parent_dir, arn).map_err(RunError::Invalid)?;
                Arc::new(self.prepare(&path)?)
            }
        };
        // Step Functions takes Input as JSON or as a string holding JSON.
        let input = match req.input.get("Input") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map_err(|e| RunError::Invalid(format!("Input is a string but not JSON: {e}")))?,
            Some(v) => v.clone(),
        };
        let mut input = input;
        if let Value::Object(o) = &mut input {
            // Step Functions' convention for linking executions; the journal links them.
            o.remove("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID");
        }
        let input = runbook_engine::build_input(&prepared.runbook.meta, input, &[])
            .map_err(|e| RunError::Invalid(format!("{}: {e}", prepared.path.display())))?;
        self.create(
            &prepared,
            input,
            req.parent.provider.as_deref(),
            StartOptions {
                id: Some(req.child_id.clone()),
                parent_id: Some(req.parent.id.clone()),
            },
            None,
        )
    }

    /// Drive or watch the child until it ends; resumes it when its runner is gone.
    async fn wait_child(
        &self,
        row: &ExecutionRow,
        progress: Arc<dyn Progress>,
    ) -> Result<ExecutionRow, RunError> {
        let mut worker: Option<tokio::process::Child> = None;
        loop {
            let now = self.journal.execution(&row.id)?;
            if now.status != "RUNNING" {
                if let Some(mut w) = worker.take() {
                    let _ = w.wait().await;
                }
                return Ok(now);
            }
            let our_worker_alive = match &mut worker {
                Some(w) => matches!(w.try_wait(), Ok(None)),
                None => false,
            };
            let held = now.runner_pid.is_some_and(process_alive);
            if !held && !our_worker_alive {
                match &self.config.worker {
                    Some(cmd) => {
                        let mut c = cmd.command();
                        c.arg("resume").arg(&row.id);
                        c.stdin(std::process::Stdio::null())
                            .stdout(std::process::Stdio::null());
                        c.kill_on_drop(false);
                        worker = Some(c.spawn().map_err(|e| {
                            anyhow::anyhow!("starting a runner for child {}: {e}", row.id)
                        })?);
                    }
                    None => match Box::pin(self.resume(&row.id, progress.clone())).await {
                        Ok(_) | Err(RunError::Busy { .. }) => {}
                        Err(e) => return Err(e),
                    },
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Step Functions' DescribeExecution of a child, the result of a `.sync` Task.
fn describe_execution(row: &ExecutionRow, json_output: bool) -> Value {
    let ts = |ms: i64| Timestamp::from_unix_millis(ms).to_rfc3339();
    let as_payload = |v: &Value| {
        if json_output {
            v.clone()
        } else {
            Value::String(v.to_string())
        }
    };
    let mut d = json!({
        "ExecutionArn": format!("arn:aws:states:local:000000000000:execution:{}:{}", row.name, row.id),
        "StateMachineArn": format!("arn:aws:states:local:000000000000:stateMachine:{}", row.name),
        "Name": row.id,
        "Status": row.status,
        "StartDate": ts(row.started_ms),
        "Input": as_payload(&row.input),
        "InputDetails": {"Included": true},
        "RedriveCount": row.redrive_count,
    });
    if let Some(end) = row.ended_ms {
        d["StopDate"] = json!(ts(end));
    }
    if let Some(out) = &row.output {
        d["Output"] = as_payload(out);
        d["OutputDetails"] = json!({"Included": true});
    }
    if let Some(e) = &row.error {
        d["Error"] = json!(e);
    }
    if let Some(c) = &row.cause {
        d["Cause"] = json!(c);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_ids_are_stable_per_parent_task() {
        assert_eq!(child_id("p", "Failover#1"), child_id("p", "Failover#1"));
        assert_ne!(child_id("p", "Failover#1"), child_id("p", "Failover#2"));
        assert_ne!(child_id("p", "Failover#1"), child_id("q", "Failover#1"));
    }
}
