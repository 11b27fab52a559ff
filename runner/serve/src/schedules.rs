//! The schedule loop: poll each schedule on the wall clock, journal each decision,
//! start runs, persist the state after each decision.

use std::sync::Arc;
use std::time::Duration;

use runbook_journal::{ServeRun, now_ms};
use runbook_scheduler::jiff::Timestamp;
use runbook_scheduler::{Decision, ScheduleState, SkipReason};
use serde_json::{Value, json};

use crate::config::ScheduleConfig;
use crate::runs::{StartError, StartRequest};
use crate::{ScheduleEntry, Serve};

const KIND: &str = "schedule";

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn state_json(e: &ScheduleEntry) -> Value {
    json!({
        "last_slot_ms": e.st.last_slot.map(ms),
        "buffered_ms": e.st.buffered.map(ms),
        "paused": e.st.paused,
        "failed_paused": e.st.failed_paused,
        "fired": e.fired, "skipped": e.skipped, "missed": e.missed,
        "last_execution": e.last_execution, "last_status": e.last_status,
    })
}

fn from_json(v: &Value) -> ScheduleEntry {
    ScheduleEntry {
        st: ScheduleState {
            last_slot: v["last_slot_ms"].as_i64().map(ts),
            running: 0,
            buffered: v["buffered_ms"].as_i64().map(ts),
            paused: v["paused"].as_str().map(String::from),
            failed_paused: v["failed_paused"].as_bool().unwrap_or(false),
        },
        fired: v["fired"].as_u64().unwrap_or(0),
        skipped: v["skipped"].as_u64().unwrap_or(0),
        missed: v["missed"].as_u64().unwrap_or(0),
        last_execution: v["last_execution"].as_str().map(String::from),
        last_status: v["last_status"].as_str().map(String::from),
    }
}

/// Load every schedule's state; `running` is recounted from the runs serve started
/// that have not been settled (the journal, not the saved counter, is the truth).
pub(crate) fn load(s: &Serve) -> Result<(), runbook_journal::JournalError> {
    let unsettled = s.journal().serve_runs(true)?;
    let mut shared = s.shared();
    for sc in &s.cfg.schedules {
        let name = &sc.schedule.name;
        let mut e = match s.journal().serve_state(KIND, name)? {
            Some(v) => from_json(&v),
            None => {
                // A new schedule starts from now, as EventBridge's does: slots before it
                // existed are neither fired nor reported missed.
                let mut e = ScheduleEntry::default();
                e.st.last_slot = Some(Timestamp::now());
                s.journal()
                    .put_serve_state(KIND, name, &state_json(&e), now_ms())?;
                e
            }
        };
        e.st.running = unsettled
            .iter()
            .filter(|r| r.source == "schedule" && &r.subject == name)
            .count() as u32;
        shared.schedules.insert(name.clone(), e);
    }
    Ok(())
}

fn save(s: &Serve, name: &str, e: &ScheduleEntry) {
    if let Err(err) = s
        .journal()
        .put_serve_state(KIND, name, &state_json(e), now_ms())
    {
        tracing::error!(schedule = name, error = %err, "saving schedule state");
    }
}

/// The deterministic execution id of a schedule slot: the journal's primary key makes
/// "fire this slot" happen at most once, whatever crashes in between.
pub(crate) fn slot_execution_id(name: &str, slot: Timestamp) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("runbook:schedule:{name}:{}", slot.as_millisecond()).as_bytes(),
    )
    .to_string()
}

fn reason_name(r: SkipReason) -> &'static str {
    match r {
        SkipReason::Overlap => "overlap",
        SkipReason::Blackout => "blackout",
        SkipReason::Paused => "paused",
        SkipReason::OutsideWindow => "outside-window",
    }
}

fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Poll one schedule and act on what is due. Returns when to poll it next.
/// The start of a schedule slot's execution; its id is the slot's, so a second start of
/// the same slot finds the first.
fn slot_request<'a>(name: &'a str, sc: &'a ScheduleConfig, slot: Timestamp) -> StartRequest<'a> {
    StartRequest {
        id: slot_execution_id(name, slot),
        source: "schedule",
        subject: name,
        slot_ms: Some(ms(slot)),
        runbook: &sc.runbook,
        provider: &sc.provider,
        params: &sc.params,
    }
}

async fn tick_one(s: &Arc<Serve>, sc: &ScheduleConfig, now: Timestamp) -> Option<Timestamp> {
    let name = sc.schedule.name.clone();
    let _guard = s.act.lock().await;
    let lever = s.journal().lever().ok().filter(|l| l.engaged);
    let mut entry = s.shared().schedules.get(&name).cloned().unwrap_or_default();
    // A disabled schedule or an engaged safety lever skips what comes due, as a pause.
    let mut view = entry.st.clone();
    let pause_reason = if !sc.enabled {
        Some("disabled in the config (Enabled: false)".to_string())
    } else {
        lever.as_ref().map(|l| {
            format!(
                "safety lever engaged{}",
                l.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        })
    };
    if let Some(r) = &pause_reason {
        view.pause(r.clone());
    }
    let decisions = runbook_scheduler::poll(&sc.schedule, &view, now);
    let mut next = None;
    for d in decisions {
        match &d {
            Decision::Wait { until } => {
                next = *until;
                continue;
            }
            Decision::Fire { slot, at } => {
                let req = slot_request(&name, sc, *slot);
                if let Some(outcome) = fleet_claim(s, &name, *slot, &req.id).await {
                    // Another runner fired it, or this one may not act: not started.
                    if outcome {
                        entry.skipped += 1;
                    }
                    runbook_scheduler::apply(
                        &mut entry.st,
                        &Decision::Skip {
                            slot: *slot,
                            reason: SkipReason::Overlap,
                        },
                    );
                    continue;
                }
                match s.start_execution(&req) {
                    Ok(id) | Err(StartError::Exists(id)) => {
                        record(
                            s,
                            &name,
                            "fire",
                            json!({"slot": iso(*slot), "due": iso(*at), "execution_id": id}),
                        );
                        runbook_scheduler::apply(&mut entry.st, &d);
                        entry.fired += 1;
                        entry.last_execution = Some(id);
                        entry.last_status = Some("RUNNING".into());
                    }
                    Err(StartError::Busy {
                        environment,
                        holder,
                        holder_name,
                    }) => {
                        // Conflict policy for schedules: skip the slot, never queue
                        // behind a failover or another game day.
                        record(
                            s,
                            &name,
                            "skip",
                            json!({"slot": iso(*slot), "reason": "environment-busy",
                            "detail": format!("environment {environment} is held by execution {holder} ({holder_name})")}),
                        );
                        runbook_scheduler::apply(
                            &mut entry.st,
                            &Decision::Skip {
                                slot: *slot,
                                reason: SkipReason::Overlap,
                            },
                        );
                        entry.skipped += 1;
                    }
                    Err(e) => {
                        record(
                            s,
                            &name,
                            "error",
                            json!({"slot": iso(*slot), "error": e.to_string()}),
                        );
                        runbook_scheduler::apply(
                            &mut entry.st,
                            &Decision::Skip {
                                slot: *slot,
                                reason: SkipReason::Paused,
                            },
                        );
                        entry.skipped += 1;
                        entry.last_status = Some("NOT STARTED".into());
                        if sc.schedule.pause_on_failure {
                            entry.st.failed_paused = true;
                        }
                    }
                }
            }
            Decision::Skip { slot, reason } => {
                let detail = match (reason, &pause_reason) {
                    (SkipReason::Paused, Some(r)) => r.clone(),
                    (SkipReason::Paused, None) => entry
                        .st
                        .paused
                        .clone()
                        .unwrap_or_else(|| "paused after a failed run (PauseOnFailure)".into()),
                    _ => String::new(),
                };
                record(
                    s,
                    &name,
                    "skip",
                    json!({"slot": iso(*slot), "reason": reason_name(*reason), "detail": detail}),
                );
                runbook_scheduler::apply(&mut entry.st, &d);
                entry.skipped += 1;
            }
            Decision::Buffer { slot } => {
                record(s, &name, "buffer", json!({"slot": iso(*slot)}));
                runbook_scheduler::apply(&mut entry.st, &d);
            }
            Decision::Missed { first, last, count } => {
                record(
                    s,
                    &name,
                    "missed",
                    json!({"first": iso(*first), "last": iso(*last), "count": count,
                    "why": "older than the CatchUp window, or superseded by a later slot"}),
                );
                runbook_scheduler::apply(&mut entry.st, &d);
                entry.missed += count;
            }
        }
        save(s, &name, &entry);
        s.shared().schedules.insert(name.clone(), entry.clone());
    }
    next
}

/// Fleet mode: claim `slot` across the fleet before starting it (`execution` is the
/// slot's id). `None`: start it (not in fleet mode, or this runner won the claim now
/// or with an earlier attempt). `Some(false)`: another runner fired it (journaled as
/// `fired-elsewhere` with the winner). `Some(true)`: this runner may not act or the
/// claim got no answer (journaled as a skip).
async fn fleet_claim(s: &Serve, name: &str, slot: Timestamp, execution: &str) -> Option<bool> {
    let f = s.fleet.as_ref()?;
    if let Some(why) = f.refusal() {
        tracing::error!(schedule = name, slot = %iso(slot), "not fired: {why}");
        record(
            s,
            name,
            "skip",
            json!({"slot": iso(slot), "reason": "fleet-no-quorum", "detail": why}),
        );
        return Some(true);
    }
    match f.claim_slot(name, ms(slot), execution).await {
        Ok(runbook_fleet::Claimed::Lost {
            record: r,
            revision,
        }) => {
            record(
                s,
                name,
                "fired-elsewhere",
                json!({"slot": iso(slot), "runner": r.runner, "execution_id": r.execution,
                       "claim_revision": revision,
                       "summary": format!("fired by runner {} (execution {})", r.runner, r.execution)}),
            );
            Some(false)
        }
        Ok(_) => None,
        Err(e) => {
            record(
                s,
                name,
                "skip",
                json!({"slot": iso(slot), "reason": "fleet-claim-failed",
                       "detail": format!("{}: {e}", e.code())}),
            );
            Some(true)
        }
    }
}

fn record(s: &Serve, name: &str, action: &str, body: Value) {
    tracing::info!(schedule = name, action, %body, "schedule decision");
    if let Err(e) = s
        .journal()
        .record_decision(now_ms(), KIND, name, action, &body)
    {
        tracing::error!(schedule = name, error = %e, "journaling a schedule decision");
    }
}

/// A run of a schedule ended: update its state, fire a buffered slot if one waits.
pub(crate) async fn finished(s: &Arc<Serve>, run: &ServeRun, status: &str, succeeded: bool) {
    let Some(sc) = s
        .cfg
        .schedules
        .iter()
        .find(|c| c.schedule.name == run.subject)
    else {
        return;
    };
    let name = sc.schedule.name.clone();
    let mut entry = s.shared().schedules.get(&name).cloned().unwrap_or_default();
    if entry.last_execution.as_deref() == Some(run.execution_id.as_str()) {
        entry.last_status = Some(status.to_string());
    }
    if run.source == "trigger" {
        // Ad-hoc runs do not count against overlap, but a failure still pauses.
        if !succeeded && sc.schedule.pause_on_failure {
            entry.st.failed_paused = true;
        }
    } else if let Some(d) = runbook_scheduler::on_finished(&mut entry.st, succeeded, &sc.schedule) {
        if let Decision::Fire { slot, at } = d {
            let req = slot_request(&name, sc, slot);
            let claimed = fleet_claim(s, &name, slot, &req.id).await;
            if claimed.is_some() {
                entry.st.buffered = None;
                if claimed == Some(true) {
                    entry.skipped += 1;
                }
            } else {
                match s.start_execution(&req) {
                    Ok(id) | Err(StartError::Exists(id)) => {
                        record(
                            s,
                            &name,
                            "fire",
                            json!({"slot": iso(slot), "due": iso(at), "execution_id": id, "buffered": true}),
                        );
                        entry.fired += 1;
                        entry.last_execution = Some(id);
                        entry.last_status = Some("RUNNING".into());
                        runbook_scheduler::apply(&mut entry.st, &d);
                    }
                    Err(e) => {
                        record(
                            s,
                            &name,
                            "skip",
                            json!({"slot": iso(slot), "reason": "start-failed", "detail": e.to_string()}),
                        );
                        entry.st.buffered = None;
                        entry.skipped += 1;
                    }
                }
            }
        } else {
            if let Decision::Skip { slot, reason } = &d {
                record(
                    s,
                    &name,
                    "skip",
                    json!({"slot": iso(*slot), "reason": reason_name(*reason)}),
                );
                entry.skipped += 1;
            }
            runbook_scheduler::apply(&mut entry.st, &d);
        }
    }
    if entry.st.failed_paused && !succeeded {
        record(
            s,
            &name,
            "pause",
            json!({"reason": format!("run {} ended {status} (PauseOnFailure)", run.execution_id)}),
        );
    }
    save(s, &name, &entry);
    s.shared().schedules.insert(name, entry);
}

pub(crate) async fn run_loop(s: Arc<Serve>, mut rx: tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = Timestamp::now();
        let mut wake = now + runbook_scheduler::jiff::SignedDuration::from_secs(1);
        for sc in s.cfg.schedules.clone() {
            if let Some(n) = tick_one(&s, &sc, now).await
                && n < wake
            {
                wake = n;
            }
        }
        let d = wake
            .duration_since(Timestamp::now())
            .try_into()
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        if crate::pause(&mut rx, d).await {
            return;
        }
    }
}

/// Pause or resume one schedule (or all with `None`). Returns the names changed.
pub(crate) fn set_paused(
    s: &Serve,
    target: Option<&str>,
    reason: Option<&str>,
) -> Result<Vec<String>, String> {
    let names: Vec<String> = match target {
        Some(t) => {
            if !s.cfg.schedules.iter().any(|c| c.schedule.name == t) {
                return Err(format!("no schedule named '{t}'"));
            }
            vec![t.to_string()]
        }
        None => s
            .cfg
            .schedules
            .iter()
            .map(|c| c.schedule.name.clone())
            .collect(),
    };
    for n in &names {
        let mut entry = s.shared().schedules.get(n).cloned().unwrap_or_default();
        match reason {
            Some(r) => {
                entry.st.pause(r);
                record(s, n, "pause", json!({"reason": r}));
            }
            None => {
                entry.st.resume();
                record(s, n, "resume", json!({}));
            }
        }
        save(s, n, &entry);
        s.shared().schedules.insert(n.clone(), entry);
    }
    Ok(names)
}

/// Start a schedule's runbook now (`POST /trigger`): an ad-hoc run outside the slots,
/// refused when the environment is busy or the lever engaged.
pub(crate) async fn trigger(s: &Arc<Serve>, name: &str) -> Result<String, StartError> {
    let Some(sc) = s.cfg.schedules.iter().find(|c| c.schedule.name == name) else {
        return Err(StartError::Invalid(format!("no schedule named '{name}'")));
    };
    if let Ok(l) = s.journal().lever()
        && l.engaged
    {
        return Err(StartError::Other(format!(
            "the safety lever is engaged{}; release it with `runbook lever release`",
            l.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        )));
    }
    let _guard = s.act.lock().await;
    let id = uuid::Uuid::new_v4().to_string();
    let req = StartRequest {
        id,
        source: "trigger",
        subject: name,
        slot_ms: None,
        runbook: &sc.runbook,
        provider: &sc.provider,
        params: &sc.params,
    };
    let id = s.start_execution(&req)?;
    record(s, name, "trigger", json!({"execution_id": id}));
    let mut entry = s.shared().schedules.get(name).cloned().unwrap_or_default();
    entry.last_execution = Some(id.clone());
    entry.last_status = Some("RUNNING".into());
    save(s, name, &entry);
    s.shared().schedules.insert(name.to_string(), entry);
    Ok(id)
}
