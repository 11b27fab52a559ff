//! Game-day traffic sessions (`traffic` capability): an application-like client that
//! writes through the routed name while a game day runs. The driver runs in a runner
//! process of its own (`runbook traffic-driver SESSION`), detached from the runner
//! that started it, so it keeps writing — and keeps its ledger in the journal — while
//! that runner is killed and resumed. It stops when asked, when its execution is no
//! longer RUNNING, or after its `max-seconds`.

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::types::traffic::{SessionSpec, SessionSummary, Verification};
use runbook_caps::{BoxFuture, CapCall, CapError, ConnectInfo, ErrorKind, Provider};
use runbook_engine::Timestamp;
use runbook_journal::{LagRow, LedgerRow, SessionRow, now_ms};
use serde_json::{Value, json};

use crate::{RunError, Runner};

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
    let Some(worker) = runner
        .config
        .traffic_driver
        .clone()
        .or_else(|| runner.config.worker.clone())
    else {
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

/// Fleet mode, a session this runner did not start: its driver writes the store (the
/// fleet's mirror, returned), not this runner's journal.
fn driver_elsewhere<'a>(runner: &'a Runner, id: &str) -> Option<&'a Arc<crate::FleetMirror>> {
    runner.fleet().filter(|m| !m.started_session(id))
}

/// Fleet mode, a session this runner did not start: bring the local copy of its
/// execution's game-day records up to what the fleet's store has (its driver writes
/// there, maybe from another machine, for the previous owner).
fn refresh(runner: &Runner, id: &str) {
    let Some(mirror) = driver_elsewhere(runner, id) else {
        return;
    };
    let Ok(s) = runner.journal.session(id) else {
        return;
    };
    // A store that does not answer leaves the local copy as it is (what this runner
    // or its own driver wrote); the next read refreshes again.
    if let Err(e) = mirror.refresh_gameday(&runner.journal, &s.execution_id) {
        tracing::warn!(
            session = id,
            "refreshing the session from the fleet journal: {e}"
        );
    }
}

async fn stop(runner: &Runner, id: &str) -> Result<SessionSummary, CapError> {
    let journal = runner.journal.clone();
    refresh(runner, id);
    let s = journal.session(id).map_err(|_| no_session(id))?;
    if matches!(s.state.as_str(), "starting" | "running") {
        journal.request_session_stop(id).map_err(internal)?;
        let spec: SessionSpec = serde_json::from_value(s.spec.clone()).unwrap_or_default();
        let grace = Duration::from_millis(u64::from(spec.write_timeout_ms.max(1000)) + 10_000);
        let deadline = std::time::Instant::now() + grace;
        // A driver this runner did not start (fleet mode, after a takeover) may run on
        // another machine, where its PID means nothing here; it answers through the
        // store, or the grace runs out.
        let fleet = driver_elsewhere(runner, id).is_some();
        loop {
            refresh(runner, id);
            let now = journal.session(id).map_err(internal)?;
            if !matches!(now.state.as_str(), "starting" | "running") {
                break;
            }
            let gone = !fleet && !now.pid.is_some_and(crate::process_alive);
            if gone || std::time::Instant::now() > deadline {
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
            tokio::time::sleep(Duration::from_millis(if fleet { 250 } else { 50 })).await;
        }
    }
    summary(runner, id)
}

/// A session's summary, recomputed from the journaled ledger (so it is the same
/// before and after a runner restart).
pub(crate) fn summary(runner: &Runner, id: &str) -> Result<SessionSummary, CapError> {
    refresh(runner, id);
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

pub(crate) fn to_entry(r: &LedgerRow) -> runbook_traffic::Entry {
    use runbook_traffic::{Kind, Outcome};
    runbook_traffic::Entry {
        kind: if r.kind == "read" {
            Kind::Read
        } else {
            Kind::Write
        },
        id: r.id,
        conn: r.conn,
        sent_ms: r.sent_ms,
        done_ms: r.done_ms,
        outcome: match r.outcome.as_str() {
            "acked" => Outcome::Acked,
            "failed" => Outcome::Failed,
            "unknown" => Outcome::Unknown,
            "ok" => Outcome::Ok,
            _ => Outcome::InFlight,
        },
        error: r.error.clone(),
    }
}

fn to_row(e: &runbook_traffic::Entry) -> LedgerRow {
    use runbook_traffic::{Kind, Outcome};
    LedgerRow {
        kind: match e.kind {
            Kind::Read => "read",
            Kind::Write => "write",
        }
        .into(),
        id: e.id,
        conn: e.conn,
        sent_ms: e.sent_ms,
        done_ms: e.done_ms,
        outcome: match e.outcome {
            Outcome::Acked => "acked",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
            Outcome::Ok => "ok",
            Outcome::InFlight => "in-flight",
        }
        .into(),
        error: e.error.clone(),
    }
}

/// The session's spec, as the driver and the verifier both read it.
fn spec_of(s: &SessionRow) -> Result<SessionSpec, CapError> {
    serde_json::from_value(s.spec.clone())
        .map_err(|e| CapError::internal(format!("traffic session {}: spec: {e}", s.id)))
}

/// Resolves the session's target (and replica) through the provider on every connect,
/// so a routed name that moves is followed as an application's driver would.
struct ProviderTarget {
    provider: Arc<dyn Provider>,
    spec: SessionSpec,
}

impl runbook_traffic::Resolver for ProviderTarget {
    fn resolve(
        &self,
        which: runbook_traffic::Which,
    ) -> BoxFuture<'_, Result<ConnectInfo, runbook_traffic::TrafficError>> {
        Box::pin(async move {
            let target = match which {
                runbook_traffic::Which::Target => &self.spec.target,
                runbook_traffic::Which::Replica => self.spec.replica.as_ref().ok_or_else(|| {
                    runbook_traffic::TrafficError::Connect("the session samples no replica".into())
                })?,
            };
            self.provider
                .connect_info(target)
                .await
                .map_err(|e| runbook_traffic::TrafficError::Connect(e.to_string()))
        })
    }
}

/// The driver's ledger goes to the journal; it stops when asked, or when the execution
/// that started it is no longer RUNNING (and no runner will come back for it).
struct JournalSink {
    journal: Arc<runbook_journal::Journal>,
    session: String,
    execution: String,
    started: bool,
    checked_ms: i64,
    /// Fleet mode: when the store was last asked (less often than the local journal).
    fleet_checked_ms: i64,
}

impl runbook_traffic::Sink for JournalSink {
    fn write(&mut self, batch: &runbook_traffic::Batch) -> Result<(), String> {
        if !self.started {
            self.started = true;
            self.journal
                .set_session_state(
                    &self.session,
                    "running",
                    Some(std::process::id()),
                    None,
                    None,
                )
                .map_err(|e| e.to_string())?;
        }
        let rows: Vec<LedgerRow> = batch.entries.iter().map(to_row).collect();
        self.journal
            .append_ledger(&self.session, &rows)
            .map_err(|e| e.to_string())?;
        let lag: Vec<LagRow> = batch
            .lag
            .iter()
            .map(|l| LagRow {
                at_ms: l.at_ms,
                lag: l.lag,
            })
            .collect();
        self.journal
            .append_lag(&self.session, &lag)
            .map_err(|e| e.to_string())
    }

    fn stop_requested(&mut self) -> bool {
        let now = now_ms();
        if now - self.checked_ms < 200 {
            return false;
        }
        self.checked_ms = now;
        let asked = self
            .journal
            .session(&self.session)
            .map(|s| s.stop_requested)
            .unwrap_or(false);
        let ended = self
            .journal
            .execution(&self.execution)
            .map(|e| e.status != "RUNNING")
            .unwrap_or(true);
        if asked || ended {
            return true;
        }
        // Fleet mode: the owner may be another runner now, whose stop request and
        // whose end of the execution only the store has.
        if now - self.fleet_checked_ms >= 1000 {
            self.fleet_checked_ms = now;
            match self
                .journal
                .fleet_session_stop_requested(&self.execution, &self.session)
            {
                Ok(Some(true)) => return true,
                Ok(_) => {}
                Err(e) => tracing::warn!(session = self.session, "fleet stop check: {e}"),
            }
        }
        false
    }
}

impl Runner {
    /// The body of `runbook traffic-driver SESSION`: drive one session's client until it
    /// is stopped, journaling its ledger.
    pub async fn traffic_driver(&self, session: &str) -> Result<(), RunError> {
        let journal = self.journal.clone();
        let s = journal.session(session)?;
        let spec = spec_of(&s).map_err(|e| anyhow::anyhow!("{e}"))?;
        let row = journal.execution(&s.execution_id)?;
        journal.set_session_state(session, &s.state, Some(std::process::id()), None, None)?;
        // The client is the application's stand-in, not an actor: in fleet mode it holds
        // no fencing token and resolves the routed name without one.
        let resolver = Arc::new(ProviderTarget {
            provider: self.unfenced_provider_for(&row),
            spec: spec.clone(),
        });
        let sink = Box::new(JournalSink {
            journal: journal.clone(),
            session: session.to_string(),
            execution: s.execution_id.clone(),
            started: false,
            checked_ms: 0,
            fleet_checked_ms: 0,
        });
        let config = runbook_traffic::Config::from_spec(session, &spec);
        match runbook_traffic::run(config, resolver, sink).await {
            Ok(_) => {
                journal.set_session_state(session, "stopped", None, Some(now_ms()), None)?;
                Ok(())
            }
            Err(e) => {
                let msg = format!("{} {e}", e.code());
                journal.set_session_state(session, "failed", None, Some(now_ms()), Some(&msg))?;
                Err(RunError::Other(anyhow::anyhow!(
                    "traffic session {session}: {msg}"
                )))
            }
        }
    }
}

/// Read every acknowledged write back through the target: the lost writes, as the
/// application would find them. Kept in the journal, so a report after a restart
/// does not need the database.
async fn verify(
    runner: &Runner,
    provider: &Arc<dyn Provider>,
    id: &str,
) -> Result<Value, CapError> {
    refresh(runner, id);
    let journal = &runner.journal;
    let s = journal.session(id).map_err(|_| no_session(id))?;
    if matches!(s.state.as_str(), "starting" | "running") {
        return Err(CapError::invalid_state(
            "InvalidSessionState",
            format!(
                "traffic session {id} is {}: stop it before verifying",
                s.state
            ),
        ));
    }
    let spec = spec_of(&s)?;
    let ledger: Vec<runbook_traffic::Entry> = journal
        .ledger(id)
        .map_err(internal)?
        .iter()
        .map(to_entry)
        .collect();
    let resolver = Arc::new(ProviderTarget {
        provider: provider.clone(),
        spec: spec.clone(),
    });
    let config = runbook_traffic::Config::from_spec(id, &spec);
    let report = runbook_traffic::verify(&config, resolver, &ledger)
        .await
        .map_err(|e| CapError::unavailable(format!("traffic:VerifySession {id}: {e}")))?;
    let v = serde_json::to_value(Verification {
        checked: report.checked,
        acked_missing: report.acked_missing,
        unknown_present: report.unknown_present,
        unknown_absent: report.unknown_absent,
    })
    .expect("serializes");
    journal.set_session_verification(id, &v).map_err(internal)?;
    Ok(v)
}

/// Client-seen figures of a session so far. `context` may name the fault time
/// (`{"fault-at": RFC 3339}` or `{"fault-at-ms": N}`); without it the largest outage
/// is measured from its own start.
fn measure(runner: &Runner, id: &str, context: &str) -> Result<Value, CapError> {
    refresh(runner, id);
    let journal = &runner.journal;
    let s = journal.session(id).map_err(|_| no_session(id))?;
    let ctx: Value = if context.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(context).map_err(|e| {
            CapError::invalid_parameter(format!("traffic:MeasureSession context is not JSON: {e}"))
        })?
    };
    let fault_at = fault_time(&ctx)?;
    let ledger: Vec<runbook_traffic::Entry> = journal
        .ledger(id)
        .map_err(internal)?
        .iter()
        .map(to_entry)
        .collect();
    let lag: Vec<runbook_traffic::LagSample> = journal
        .lag_samples(id)
        .map_err(internal)?
        .iter()
        .map(|l| runbook_traffic::LagSample {
            at_ms: l.at_ms,
            lag: l.lag,
        })
        .collect();
    let m = runbook_traffic::measure(&ledger, &lag, fault_at);
    let lost = s
        .verification
        .as_ref()
        .and_then(|v| v.get("acked_missing"))
        .and_then(Value::as_array)
        .map(|a| a.len() as u64);
    // measure-session returns JSON text (a WIT string).
    Ok(Value::String(
        json!({
            "session": id,
            "state": s.state,
            "fault-at": fault_at.map(rfc3339),
            "rto-seconds": m.rto_seconds,
            "outage": m.outage.as_ref().map(|o| json!({
                "from": rfc3339(o.from_ms),
                "to": rfc3339(o.to_ms),
                "failed": o.failed,
                "unknown": o.unknown,
                "first-error": o.first_error,
            })),
            "acked": m.acked,
            "failed": m.failed,
            "unknown": m.unknown,
            "lost-writes": lost,
            "verified": s.verification.is_some(),
            "latency-p50-ms": m.latency_p50_ms,
            "latency-p99-ms": m.latency_p99_ms,
            "lag-at-fault-seconds": m.lag_at_fault_seconds,
            "max-lag-seconds": m.max_lag_seconds,
        })
        .to_string(),
    ))
}

fn fault_time(ctx: &Value) -> Result<Option<i64>, CapError> {
    if let Some(ms) = ctx.get("fault-at-ms").and_then(Value::as_i64) {
        return Ok(Some(ms));
    }
    match ctx.get("fault-at") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Timestamp::parse(t)
            .map(|t| Some(t.unix_millis()))
            .ok_or_else(|| {
                CapError::invalid_parameter(format!(
                    "traffic:MeasureSession: fault-at is not an RFC 3339 time: {t}"
                ))
            }),
        Some(other) => Err(CapError::invalid_parameter(format!(
            "traffic:MeasureSession: fault-at must be a string, got {other}"
        ))),
    }
}
