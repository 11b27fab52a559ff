//! Game-day traffic sessions (`traffic` capability): an application-like client that
//! writes through the routed name while a game day runs. The driver runs in a runner
//! process of its own (`runbook traffic-driver SESSION`), detached from the runner
//! that started it, so it keeps writing — and keeps its ledger in the journal — while
//! that runner is killed and resumed. It stops when asked, when its execution is no
//! longer RUNNING, or after its `max-seconds`.

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::types::traffic::{SessionSpec, SessionSummary};
use runbook_caps::{CapCall, CapError, ErrorKind, Provider};
use runbook_engine::Timestamp;
use runbook_journal::{LedgerRow, SessionRow, now_ms};
use serde_json::Value;

use crate::Runner;

fn rfc3339(ms: i64) -> String {
    Timestamp::from_unix_millis(ms).to_rfc3339()
}

fn internal(e: impl std::fmt::Display) -> CapError {
    CapError::internal(format!("journal: {e}"))
}

fn no_session(id: &str) -> CapError {
    CapError::not_found("SessionNotFound", format!("no traffic session {id}"))
}

pub(crate) async fn handle(
    runner: &Runner,
    execution_id: &str,
    provider: &Arc<dyn Provider>,
    call: CapCall,
) -> Result<Value, CapError> {
    let to_json = |s: SessionSummary| serde_json::to_value(s).expect("serializes");
    match call.action.as_str() {
        "StartSession" => start(runner, execution_id, &call).await.map(to_json),
        "DescribeSession" => {
            let id: String = call.arg_as("id")?;
            summary(runner, &id).map(to_json)
        }
        "StopSession" => {
            let id: String = call.arg_as("id")?;
            stop(runner, &id).await.map(to_json)
        }
        "VerifySession" => {
            let id: String = call.arg_as("id")?;
            verify(runner, provider, &id).await
        }
        "MeasureSession" => {
            let id: String = call.arg_as("id")?;
            let context: String = call.arg_as("context")?;
            measure(runner, &id, &context)
        }
        _ => Err(CapError::unsupported(&call, "runbook")),
    }
}

async fn start(
    runner: &Runner,
    execution_id: &str,
    call: &CapCall,
) -> Result<SessionSummary, CapError> {
    let spec: SessionSpec = call.arg_as("spec")?;
    if spec.client_token.is_empty() {
        return Err(CapError::invalid_parameter(
            "traffic:StartSession: client-token is required (it makes the start idempotent)",
        ));
    }
    let Some(worker) = runner.config.worker.clone() else {
        return Err(CapError::new(
            ErrorKind::InvalidParameter,
            "UnsupportedOperation",
            "traffic sessions run in a driver process: this runner has no worker command (the runbook CLI has one)",
        ));
    };
    let journal = runner.journal.clone();
    let row = journal
        .create_session(&SessionRow {
            id: format!(
                "traffic-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            execution_id: execution_id.to_string(),
            client_token: spec.client_token.clone(),
            spec: serde_json::to_value(&spec).expect("serializes"),
            state: "starting".into(),
            pid: None,
            started_ms: now_ms(),
            stopped_ms: None,
            stop_requested: false,
            error: None,
            verification: None,
        })
        .map_err(internal)?;
    if row.state == "starting" && !row.pid.is_some_and(crate::process_alive) {
        let logs = runner.config.state_dir.join("traffic");
        std::fs::create_dir_all(&logs)
            .map_err(|e| CapError::internal(format!("{}: {e}", logs.display())))?;
        let log = std::fs::File::create(logs.join(format!("{}.log", row.id)))
            .map_err(|e| CapError::internal(format!("traffic log: {e}")))?;
        let mut c = std::process::Command::new(&worker.program);
        c.args(&worker.args)
            .arg("traffic-driver")
            .arg(&row.id)
            .stdin(std::process::Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| CapError::internal(e.to_string()))?,
            )
            .stderr(log);
        // Its own session: neither a terminal's Ctrl-C nor the death of this runner
        // reaches the client, as with a real application.
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = c
            .spawn()
            .map_err(|e| CapError::internal(format!("starting the traffic driver: {e}")))?;
        journal
            .set_session_state(&row.id, "starting", Some(child.id()), None, None)
            .map_err(internal)?;
        // Reap it when it exits, so it never lingers as a zombie of this runner.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
    }
    // The driver reports `running` once its pool is connected and the table exists.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = journal.session(&row.id).map_err(internal)?;
        match s.state.as_str() {
            "running" | "stopped" => return summary(runner, &row.id),
            "failed" => {
                return Err(CapError::new(
                    ErrorKind::InvalidState,
                    "TrafficStartFailed",
                    format!(
                        "traffic session {} could not start: {}",
                        row.id,
                        s.error.unwrap_or_default()
                    ),
                ));
            }
            _ if std::time::Instant::now() > deadline => {
                return Err(CapError::unavailable(format!(
                    "traffic session {} did not start within 30 s (see {}/traffic/{}.log)",
                    row.id,
                    runner.config.state_dir.display(),
                    row.id
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn stop(runner: &Runner, id: &str) -> Result<SessionSummary, CapError> {
    let journal = runner.journal.clone();
    let s = journal.session(id).map_err(|_| no_session(id))?;
    if matches!(s.state.as_str(), "starting" | "running") {
        journal.request_session_stop(id).map_err(internal)?;
        let spec: SessionSpec = serde_json::from_value(s.spec.clone()).unwrap_or_default();
        let grace = Duration::from_millis(u64::from(spec.write_timeout_ms.max(1000)) + 10_000);
        let deadline = std::time::Instant::now() + grace;
        loop {
            let now = journal.session(id).map_err(internal)?;
            if !matches!(now.state.as_str(), "starting" | "running") {
                break;
            }
            if !now.pid.is_some_and(crate::process_alive) || std::time::Instant::now() > deadline {
                // The driver is gone (or hung): what it journaled is the ledger.
                journal
                    .set_session_state(
                        id,
                        "stopped",
                        None,
                        Some(now_ms()),
                        Some("driver ended without stopping"),
                    )
                    .map_err(internal)?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    summary(runner, id)
}

/// A session's summary, recomputed from the journaled ledger (so it is the same
/// before and after a runner restart).
pub(crate) fn summary(runner: &Runner, id: &str) -> Result<SessionSummary, CapError> {
    let journal = &runner.journal;
    let s = journal.session(id).map_err(|_| no_session(id))?;
    let ledger = journal.ledger(id).map_err(internal)?;
    let lag = journal.lag_samples(id).map_err(internal)?;
    Ok(summarize(&s, &ledger, lag.last().and_then(|l| l.lag)))
}

pub(crate) fn summarize(s: &SessionRow, ledger: &[LedgerRow], lag: Option<f64>) -> SessionSummary {
    let mut out = SessionSummary {
        id: s.id.clone(),
        state: s.state.clone(),
        started_at: rfc3339(s.started_ms),
        stopped_at: s.stopped_ms.map(rfc3339),
        replica_lag_seconds: lag,
        ..SessionSummary::default()
    };
    let mut last_ack: Option<i64> = None;
    let mut last_err: Option<(i64, Option<String>)> = None;
    for r in ledger {
        match (r.kind.as_str(), r.outcome.as_str()) {
            ("write", outcome) => {
                out.writes_sent += 1;
                match outcome {
                    "acked" => {
                        out.acked += 1;
                        out.acked_since_error += 1;
                        let at = r.done_ms.unwrap_or(r.sent_ms);
                        last_ack = Some(last_ack.map_or(at, |a| a.max(at)));
                    }
                    "failed" | "unknown" => {
                        if outcome == "failed" {
                            out.failed += 1;
                        } else {
                            out.unknown += 1;
                        }
                        out.acked_since_error = 0;
                        let at = r.done_ms.unwrap_or(r.sent_ms);
                        if last_err.as_ref().is_none_or(|(t, _)| at >= *t) {
                            last_err = Some((at, r.error.clone()));
                        }
                    }
                    _ => {} // still in flight
                }
            }
            ("read", "ok") => out.reads_ok += 1,
            ("read", "failed") => out.reads_failed += 1,
            _ => {}
        }
    }
    out.last_ack_at = last_ack.map(rfc3339);
    if let Some((at, e)) = last_err {
        out.last_error_at = Some(rfc3339(at));
        out.last_error = e;
    }
    out
}

async fn verify(
    _runner: &Runner,
    _provider: &Arc<dyn Provider>,
    id: &str,
) -> Result<Value, CapError> {
    Err(CapError::unavailable(format!(
        "traffic:VerifySession {id}: verification is not available in this build"
    )))
}

fn measure(_runner: &Runner, id: &str, _context: &str) -> Result<Value, CapError> {
    Err(CapError::unavailable(format!(
        "traffic:MeasureSession {id}: measurement is not available in this build"
    )))
}
