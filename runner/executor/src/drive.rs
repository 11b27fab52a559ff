//! Driving one execution: the loop that carries out the engine's actions (plugins,
//! child executions, timers), journals every input before the engine sees it, and
//! honours stop requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use runbook_caps::Provider;
use runbook_engine::{Action, Event, Execution, Timestamp};
use runbook_host::{Limits, Observer, RunRequest};
use runbook_journal::{ExecutionRow, NewTaskToken, now_ms};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::observe::JournalObserver;
use crate::prepare::{Prepared, Runs};
use crate::{Outcome, Progress, RunError, Runner, callback, child, history_row, status_name};

impl Runner {
    pub(crate) async fn drive(
        &self,
        row: &ExecutionRow,
        exec: &mut Execution,
        prepared: &Prepared,
        provider: Arc<dyn Provider>,
        mut pending: Vec<Action>,
        progress: Arc<dyn Progress>,
    ) -> Result<Outcome, RunError> {
        let id = row.id.as_str();
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let mut tasks: HashMap<String, AbortHandle> = HashMap::new();
        // Child executions started by running Tasks, to stop when the Task is cancelled.
        let mut children: HashMap<String, String> = HashMap::new();
        let mut timers: HashMap<String, AbortHandle> = HashMap::new();
        // Task tokens of running `.waitForTaskToken` Tasks, by task id.
        let mut tokens: HashMap<String, String> = HashMap::new();
        let observer: Arc<dyn Observer> = Arc::new(JournalObserver {
            id: id.to_string(),
            journal: self.journal.clone(),
            progress: progress.clone(),
        });
        // Stop requests (`runbook stop`, a parent stopping its child) are seen within
        // this period.
        let mut stop_check = tokio::time::interval(Duration::from_millis(500));
        let result = loop {
            // Write-ahead: the history that explains these actions lands first.
            let now = now_ms();
            let rows: Vec<_> = pending
                .iter()
                .filter_map(|a| {
                    if let Action::History(h) = a {
                        Some(history_row(now, h))
                    } else {
                        None
                    }
                })
                .collect();
            self.journal.append_history(id, &rows)?;
            let mut finished = None;
            for action in pending.drain(..) {
                match action {
                    Action::History(h) => progress.history(id, &h),
                    Action::RunTask {
                        task_id,
                        state_name,
                        state_path,
                        resource,
                        input,
                        timeout,
                        heartbeat,
                        task_token,
                        ..
                    } => {
                        let Some(task) = prepared.task_for(&state_path, &state_name, &resource)
                        else {
                            let _ = tx.send(Event::TaskFailed {
                                task_id,
                                error: "States.Runtime".into(),
                                cause: format!(
                                    "state '{state_path}': no prepared plugin for this Task"
                                ),
                            });
                            continue;
                        };
                        let tx = tx.clone();
                        let key = task_id.0.clone();
                        let handle = match &task.runs {
                            Runs::Plugin { plugin, grants } if task_token.is_some() => {
                                let token = task_token.expect("checked");
                                tokens.insert(key.clone(), token.clone());
                                let registered =
                                    self.journal.register_task_token(&NewTaskToken {
                                        token: &token,
                                        execution_id: id,
                                        task_id: &task_id.0,
                                        state: &state_path,
                                        at_ms: now_ms(),
                                        heartbeat_seconds: heartbeat.map(|d| d.as_secs_f64()),
                                        timeout_seconds: timeout.map(|d| d.as_secs_f64()),
                                    })?;
                                // A resumed runner whose plugin already returned only
                                // waits; it never notifies twice.
                                let request =
                                    (registered.plugin_done_ms.is_none()).then(|| RunRequest {
                                        state: state_path.clone(),
                                        input: input.to_string(),
                                        grants: grants.clone(),
                                        limits: Limits {
                                            deadline: self.config.default_task_deadline,
                                            memory_bytes: self.config.plugin_memory_bytes,
                                        },
                                        provider: provider.clone(),
                                        observer: observer.clone(),
                                    });
                                let host = self.host()?.clone();
                                let plugin = plugin.clone();
                                let journal = self.journal.clone();
                                tokio::spawn(async move {
                                    let event = callback::run(
                                        journal, host, plugin, request, token, task_id, &tx,
                                    )
                                    .await;
                                    let _ = tx.send(event);
                                })
                            }
                            Runs::Plugin { plugin, grants } => {
                                let host = self.host()?.clone();
                                let plugin = plugin.clone();
                                let request = RunRequest {
                                    state: state_path.clone(),
                                    input: input.to_string(),
                                    grants: grants.clone(),
                                    limits: Limits {
                                        // The engine's own timer reports States.Timeout
                                        // first; the host deadline is the backstop.
                                        deadline: timeout
                                            .map(|t| t + Duration::from_millis(500))
                                            .unwrap_or(self.config.default_task_deadline),
                                        memory_bytes: self.config.plugin_memory_bytes,
                                    },
                                    provider: provider.clone(),
                                    observer: observer.clone(),
                                };
                                tokio::spawn(async move {
                                    let event = match host.run(&plugin, request).await {
                                        Ok(out) => match serde_json::from_str::<Value>(&out) {
                                            Ok(output) => Event::TaskSucceeded { task_id, output },
                                            Err(e) => Event::TaskFailed {
                                                task_id,
                                                error: "States.Runtime".into(),
                                                cause: format!("plugin output is not JSON: {e}"),
                                            },
                                        },
                                        Err(f) => Event::TaskFailed {
                                            task_id,
                                            error: f.error,
                                            cause: f.cause,
                                        },
                                    };
                                    let _ = tx.send(event);
                                })
                            }
                            Runs::Child { json_output, child } => {
                                let child_id = child::child_id(id, &task_id.0);
                                children.insert(key.clone(), child_id.clone());
                                let req = child::ChildRequest {
                                    parent: row.clone(),
                                    parent_dir: prepared.base_dir(),
                                    child_id,
                                    state_path: state_path.clone(),
                                    input,
                                    json_output: *json_output,
                                    prepared: child.clone(),
                                };
                                let runner = self.clone();
                                let progress = progress.clone();
                                tokio::spawn(async move {
                                    let event = runner.run_child(req, task_id, progress).await;
                                    let _ = tx.send(event);
                                })
                            }
                        };
                        tasks.insert(key, handle.abort_handle());
                    }
                    Action::CancelTask { task_id } => {
                        if let Some(h) = tasks.remove(&task_id.0) {
                            h.abort();
                        }
                        if let Some(token) = tokens.remove(&task_id.0) {
                            self.journal
                                .close_task_token(&token, "the task timed out or was cancelled")?;
                        }
                        if let Some(child) = children.remove(&task_id.0) {
                            self.journal.request_stop(
                                &child,
                                Some("States.Cancelled"),
                                Some("the parent's Task was cancelled"),
                            )?;
                        }
                    }
                    Action::StartTimer {
                        timer_id, fire_at, ..
                    } => {
                        let wait =
                            Duration::from_millis((fire_at.unix_millis() - now_ms()).max(0) as u64);
                        let tx = tx.clone();
                        let key = timer_id.0.clone();
                        let handle = tokio::spawn(async move {
                            tokio::time::sleep(wait).await;
                            let _ = tx.send(Event::TimerFired { timer_id });
                        });
                        timers.insert(key, handle.abort_handle());
                    }
                    Action::CancelTimer { timer_id } => {
                        if let Some(h) = timers.remove(&timer_id.0) {
                            h.abort();
                        }
                    }
                    Action::Finished {
                        status,
                        output,
                        error,
                        cause,
                    } => {
                        finished = Some(Outcome {
                            execution_id: id.to_string(),
                            status: status_name(status).to_string(),
                            output,
                            error,
                            cause,
                        });
                    }
                }
            }
            if let Some(outcome) = finished {
                break outcome;
            }
            let event = tokio::select! {
                event = rx.recv() => event,
                _ = stop_check.tick() => {
                    // Fleet mode: stop acting the moment the lease is past its local
                    // deadline, even with nothing to write.
                    if let Some(mirror) = &self.fleet
                        && let Err(e) = mirror.may_act(id)
                    {
                        for (_, h) in tasks.drain().chain(timers.drain()) {
                            h.abort();
                        }
                        return Err(e.into());
                    }
                    let request = match self.journal.stop_request(id) {
                        Ok(r) => r,
                        // Fleet mode: the store did not answer this tick (a member
                        // died, an election): ask again at the next one. Writes that
                        // fail still stop the execution here (fail closed).
                        Err(e @ runbook_journal::JournalError::Mirror { .. }) => {
                            tracing::warn!(execution = id, "stop check: {e}");
                            None
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if let Some((error, cause)) = request {
                        let at = now_ms();
                        self.journal.append_event(
                            id,
                            at,
                            &json!({"type": "Abort", "error": error, "cause": cause}),
                        )?;
                        pending = exec.abort(error, cause, Timestamp::from_unix_millis(at));
                    }
                    continue;
                }
            };
            let Some(event) = event else {
                return Err(RunError::Other(anyhow::anyhow!("executor channel closed")));
            };
            match &event {
                Event::TaskSucceeded { task_id, .. } | Event::TaskFailed { task_id, .. } => {
                    tasks.remove(&task_id.0);
                    children.remove(&task_id.0);
                    if let Some(token) = tokens.remove(&task_id.0) {
                        self.journal.close_task_token(&token, "the task ended")?;
                    }
                }
                Event::TimerFired { timer_id } => {
                    timers.remove(&timer_id.0);
                }
                Event::TaskHeartbeat { .. } => {}
            }
            let at = now_ms();
            self.journal.append_event(
                id,
                at,
                &serde_json::to_value(&event).expect("events serialize"),
            )?;
            pending = exec.handle(event, Timestamp::from_unix_millis(at));
        };
        for (_, h) in tasks.drain().chain(timers.drain()) {
            h.abort();
        }
        for (_, child) in children.drain() {
            self.journal.request_stop(
                &child,
                Some("States.Cancelled"),
                Some("the parent execution ended"),
            )?;
        }
        self.journal
            .close_execution_task_tokens(id, &format!("the execution ended ({})", result.status))?;
        self.journal.finish(
            id,
            &result.status,
            now_ms(),
            result.output.as_ref(),
            result.error.as_deref(),
            result.cause.as_deref(),
        )?;
        if let Some(mirror) = &self.fleet {
            mirror.release(id);
        }
        progress.finished(&result);
        Ok(result)
    }
}
