//! A game day's report, assembled from the journal alone (execution, children, faults,
//! the traffic session's ledger and lag samples), so it can be written for an execution
//! that was killed and resumed, or that is still running. The figures are recomputed
//! from the client's ledger, never taken from what the runbook itself concluded.

mod timeline;

use runbook_journal::{ExecutionRow, HistoryRow, Journal};
use runbook_report::{
    Bucket, Check, FaultInfo, GameDay, LagSample, Measured, Phase, Scope, Series, Targets,
};
use serde_json::Value;

use crate::RunError;

/// Task states of `gameday.yaml` and the phase each belongs to; states of other game
/// day runbooks show under their own names.
fn phase_of(state: &str) -> &str {
    match state {
        "Preflight" | "RoutedWritable" | "ReplicaProbe" | "ReplicaAvailable" | "StartTraffic"
        | "SteadyState" | "CatchUp" => "steady-state",
        "Inject" | "InjectRunnerCrash" => "inject",
        "Failover" => "failover",
        "AwaitRecovery" => "recovery",
        "Undo" => "undo",
        "Failback" => "failback",
        "StopTraffic" | "Verify" | "Evaluate" => "verify",
        "RollbackUndo"
        | "RollbackUndoThen"
        | "RollbackUndoFirst"
        | "StopTrafficAfterFailure"
        | "StopTrafficAfterFailureNow" => "rollback",
        "AwaitLag" | "InjectThen" | "Hold" => "inject",
        "Lever" | "StopConditions" => "guardrails",
        "UndoThen" => "undo",
        other => other,
    }
}

fn num(input: &Value, key: &str) -> Option<f64> {
    input.get(key).and_then(Value::as_f64)
}

/// The report of game day `id`; `None` when the execution is not a game day (it may
/// neither inject faults nor drive a client).
pub fn gameday_report(journal: &Journal, id: &str) -> Result<Option<GameDay>, RunError> {
    let row = journal.resolve(id)?;
    let sessions = journal.sessions_of(std::slice::from_ref(&row.id))?;
    let session = sessions.first();
    // A game day that stopped before its traffic started (its steady-state hypothesis
    // failed, the lever was engaged) still gets its report: aborted, with the reason.
    // What makes an execution a game day is its grants: it may inject faults or drive
    // a client.
    let is_gameday = session.is_some()
        || row.runbook_text.contains("fault:InjectFault")
        || row.runbook_text.contains("traffic:StartSession");
    if !is_gameday {
        return Ok(None);
    }
    let children = journal.children(&row.id)?;
    let mut tree = vec![row.id.clone()];
    tree.extend(children.iter().map(|c| c.id.clone()));
    let faults = journal.faults_of(&tree)?;
    let main_fault = faults.iter().find(|f| f.kind != "runner-crash");
    let ledger: Vec<runbook_traffic::Entry> = match session {
        Some(s) => journal
            .ledger(&s.id)?
            .iter()
            .map(crate::traffic::to_entry)
            .collect(),
        None => Vec::new(),
    };
    let lag = match session {
        Some(s) => journal.lag_samples(&s.id)?,
        None => Vec::new(),
    };
    let fault_at = main_fault.map(|f| f.injected_ms);
    let lag_samples: Vec<runbook_traffic::LagSample> = lag
        .iter()
        .map(|l| runbook_traffic::LagSample {
            at_ms: l.at_ms,
            lag: l.lag,
        })
        .collect();
    let m = runbook_traffic::measure(&ledger, &lag_samples, fault_at);

    // DataPlane=false ran no client on purpose (an emulator with no database).
    let scope = if row.input.get("DataPlane").and_then(Value::as_bool) == Some(false) {
        Scope::ControlPlane
    } else {
        Scope::Full
    };
    let verification = session.and_then(|s| s.verification.as_ref());
    let lost_ids: Vec<u64> = verification
        .and_then(|v| v.get("acked_missing"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    // Observed RPO (runbook_report::observed_rpo_seconds): only when the acknowledged
    // writes were read back; 0 when none was lost.
    let rpo_seconds = verification
        .map(|_| runbook_report::observed_rpo_seconds(&timeline::acked_writes(&ledger, &lost_ids)));
    let measured = Measured {
        rto_seconds: m.rto_seconds,
        lost_writes: lost_ids.len() as u64,
        lost_ids: lost_ids.clone(),
        acked_writes: m.acked,
        failed_writes: m.failed,
        unknown_writes: m.unknown,
        unknown_committed: verification
            .and_then(|v| v.get("unknown_present"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
        rpo_seconds,
        lag_at_fault_seconds: m.lag_at_fault_seconds,
        latency_p50_ms: m.latency_p50_ms,
        latency_p99_ms: m.latency_p99_ms,
    };

    let history = journal.history(&row.id)?;
    let phases = phases(&history, &children);
    let child_histories = children
        .iter()
        .map(|c| Ok((c.clone(), journal.history(&c.id)?)))
        .collect::<Result<Vec<_>, RunError>>()?;
    let timeline = timeline::timeline(&timeline::Sources {
        history: &history,
        faults: &faults,
        main_fault,
        ledger: &ledger,
        measurement: &m,
        children: &child_histories,
    });

    let entries: Vec<(i64, Option<i64>, &str)> = ledger
        .iter()
        .filter(|e| e.kind == runbook_traffic::Kind::Write)
        .map(|e| (e.sent_ms, e.done_ms, e.outcome.as_str()))
        .collect();
    let writes: Vec<Bucket> = runbook_report::buckets(&entries, 1000);
    let series = Series {
        writes,
        lag: lag
            .iter()
            .map(|l| LagSample {
                t_ms: l.at_ms,
                lag_seconds: l.lag,
            })
            .collect(),
    };

    Ok(Some(GameDay {
        execution_id: row.id.clone(),
        runbook: row.runbook_path.clone(),
        environment: row.environment.clone(),
        provider: row.provider.clone().unwrap_or_else(|| "local".into()),
        scope,
        fault: FaultInfo {
            kind: main_fault.map(|f| f.kind.clone()).unwrap_or_else(|| {
                row.input
                    .get("Fault")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            }),
            target: main_fault
                .and_then(|f| f.record["target"].as_str().map(String::from))
                .unwrap_or_default(),
            region: main_fault.and_then(|f| f.record["region"].as_str().map(String::from)),
            injected_at_ms: fault_at,
            undone_at_ms: main_fault.and_then(|f| f.undone_ms),
        },
        started_ms: row.started_ms,
        finished_ms: row.ended_ms,
        status: row.status.clone(),
        targets: Targets {
            rto_seconds: num(&row.input, "RtoTargetSeconds").unwrap_or(30.0),
            max_lost_writes: row
                .input
                .get("MaxLostWrites")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            rpo_seconds: num(&row.input, "RpoTargetSeconds"),
        },
        measured,
        phases,
        timeline,
        series,
        checks: checks(&row, &children, verification, &lost_ids, scope, main_fault),
        errors: row
            .error
            .iter()
            .map(|e| format!("{e}: {}", row.cause.clone().unwrap_or_default()))
            .collect(),
    }))
}

/// One phase per run of consecutive Task states of the same phase.
fn phases(history: &[HistoryRow], children: &[ExecutionRow]) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    for h in history {
        let Some(state) = h.state.as_deref() else {
            continue;
        };
        let name = phase_of(state.rsplit('/').next().unwrap_or(state));
        let ended = match h.kind.as_str() {
            "TaskStateEntered" => {
                let fresh = out.last().is_none_or(|p| {
                    p.name != name || p.finished_ms.is_some() && p.status != "SUCCEEDED"
                });
                if fresh {
                    out.push(Phase {
                        name: name.to_string(),
                        started_ms: h.at_ms,
                        finished_ms: None,
                        status: "RUNNING".into(),
                        execution_id: None,
                    });
                } else if let Some(p) = out.last_mut() {
                    p.status = "RUNNING".into();
                }
                None
            }
            "TaskStateExited" => Some("SUCCEEDED"),
            "TaskFailed" | "TaskTimedOut" => Some("FAILED"),
            _ => None,
        };
        if let Some(status) = ended
            && let Some(p) = out.iter_mut().rev().find(|p| p.name == name)
        {
            p.finished_ms = Some(h.at_ms);
            p.status = status.into();
        }
    }
    for p in out.iter_mut() {
        let runbook = match p.name.as_str() {
            "failover" => "failover",
            "failback" => "failback",
            _ => continue,
        };
        if let Some(c) = children.iter().find(|c| c.name == runbook) {
            p.execution_id = Some(c.id.clone());
            if c.status != "RUNNING" {
                p.status = c.status.clone();
            }
        }
    }
    out
}

fn checks(
    row: &ExecutionRow,
    children: &[ExecutionRow],
    verification: Option<&Value>,
    lost: &[u64],
    scope: Scope,
    fault: Option<&runbook_journal::FaultRow>,
) -> Vec<Check> {
    let mut out = Vec::new();
    if scope == Scope::ControlPlane {
        // No client to read writes back; what the control plane must show instead is
        // that the fault was undone.
        out.push(Check {
            name: "fault undone".into(),
            passed: fault.is_none_or(|f| f.undone_ms.is_some()),
            detail: match fault {
                Some(f) if f.undone_ms.is_some() => format!("{} {} undone", f.kind, f.id),
                Some(f) => format!("{} {} still active", f.kind, f.id),
                None => "nothing was injected".into(),
            },
        });
    } else {
        out.push(verification_check(verification, lost));
    }
    let fault_kind = row.input.get("Fault").and_then(Value::as_str);
    for c in children {
        // A cut replication link leaves the primary serving: promoting would split the
        // brain, so the failover must decide there is nothing to do.
        if c.name == "failover" && fault_kind == Some("partition") {
            let promoted = c
                .output
                .as_ref()
                .and_then(|o| o.get("Promoted"))
                .and_then(Value::as_bool);
            out.push(Check {
                name: "no promotion while the primary serves".into(),
                passed: promoted == Some(false),
                detail: format!(
                    "the failover {}",
                    match promoted {
                        Some(true) => "promoted the replica",
                        Some(false) => "promoted nothing",
                        None => "did not say whether it promoted",
                    }
                ),
            });
        }
        out.push(Check {
            name: format!("{} execution", c.name),
            passed: c.status == "SUCCEEDED"
                || (c.name == "failover"
                    && fault_kind == Some("slow-link")
                    && c.error.as_deref() == Some("FailoverRefused")),
            detail: format!(
                "{} {}{}",
                c.id,
                c.status,
                c.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        });
    }
    out
}

fn verification_check(verification: Option<&Value>, lost: &[u64]) -> Check {
    match verification {
        Some(v) => Check {
            name: "every acknowledged write read back".into(),
            passed: lost.is_empty(),
            detail: format!(
                "{} checked, {} missing{}",
                v["checked"],
                lost.len(),
                if lost.is_empty() {
                    String::new()
                } else {
                    format!(" (ids {:?})", &lost[..lost.len().min(20)])
                }
            ),
        },
        None => Check {
            name: "every acknowledged write read back".into(),
            passed: false,
            detail: "not verified (the run stopped before VerifySession)".into(),
        },
    }
}
