//! `.waitForTaskToken` Tasks: run the plugin (which hands the token to someone, e.g.
//! by SNS), then wait until the token is answered in the journal — by `runbook task
//! success|failure|heartbeat`, from any process. Heartbeats are fed to the engine as
//! they arrive; HeartbeatSeconds and TimeoutSeconds are the engine's own timers.

use std::sync::Arc;
use std::time::Duration;

use runbook_engine::{Event, TaskId};
use runbook_host::{Host, Plugin, RunRequest};
use runbook_journal::{Journal, TOKEN_CLOSED, TOKEN_FAILED, TOKEN_SUCCEEDED, now_ms};
use tokio::sync::mpsc::UnboundedSender;

/// How often a waiting runner looks at its token's row. A journal read is a primary-key
/// lookup (microseconds), so an answer is taken within this period at negligible cost.
const POLL: Duration = Duration::from_millis(200);

/// The Task's final event (heartbeats go to `tx` on the way).
pub(crate) async fn run(
    journal: Arc<Journal>,
    host: Arc<Host>,
    plugin: Arc<Plugin>,
    request: Option<RunRequest>,
    token: String,
    task_id: TaskId,
    tx: &UnboundedSender<Event>,
) -> Event {
    if let Some(request) = request {
        // An answer may come before the plugin returns (it already sent the token on):
        // whichever is first ends this phase, as in Step Functions.
        tokio::select! {
            r = host.run(&plugin, request) => match r {
                Ok(_) => {
                    if let Err(e) = journal.task_token_plugin_done(&token, now_ms()) {
                        return runtime(task_id, format!("journal: {e}"));
                    }
                }
                // The integration itself failed: the Task fails with its error.
                Err(f) => return Event::TaskFailed { task_id, error: f.error, cause: f.cause },
            },
            event = wait(&journal, &token, task_id.clone(), tx) => return event,
        }
    }
    wait(&journal, &token, task_id, tx).await
}

async fn wait(
    journal: &Journal,
    token: &str,
    task_id: TaskId,
    tx: &UnboundedSender<Event>,
) -> Event {
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        let row = match journal.task_token(token) {
            Ok(Some(row)) => row,
            Ok(None) => return runtime(task_id, format!("task token {token} vanished")),
            // Fleet mode: the store did not answer this poll; the next one asks again
            // (the Task's own timeout and heartbeat timers still bound the wait).
            Err(e @ runbook_journal::JournalError::Mirror { .. }) => {
                tracing::warn!(token, "task token poll: {e}");
                continue;
            }
            Err(e) => return runtime(task_id, format!("journal: {e}")),
        };
        match row.status.as_str() {
            TOKEN_SUCCEEDED => {
                return Event::TaskSucceeded {
                    task_id,
                    output: row.output.unwrap_or(serde_json::Value::Null),
                };
            }
            TOKEN_FAILED => {
                return Event::TaskFailed {
                    task_id,
                    error: row.error.unwrap_or_default(),
                    cause: row.cause.unwrap_or_default(),
                };
            }
            // Closed under us (the execution was stopped): the engine has moved on.
            TOKEN_CLOSED => std::future::pending::<()>().await,
            _ => {}
        }
        if row.heartbeats > row.heartbeats_seen {
            // Several heartbeats between two polls reset the clock once, at the last.
            if let Err(e) = journal.task_token_heartbeats_seen(token, row.heartbeats) {
                return runtime(task_id, format!("journal: {e}"));
            }
            let _ = tx.send(Event::TaskHeartbeat {
                task_id: task_id.clone(),
            });
        }
    }
}

fn runtime(task_id: TaskId, cause: String) -> Event {
    Event::TaskFailed {
        task_id,
        error: "States.Runtime".into(),
        cause,
    }
}
