//! The game day's timeline on one clock (the runner host's, which journals executions,
//! faults and the traffic driver's ledger alike): the parent's states, the faults, what
//! the client saw, and the milestones of the failover and failback child executions,
//! taken from the children's own history.

use runbook_journal::{ExecutionRow, FaultRow, HistoryRow};
use runbook_report::milestone as ms;
use runbook_report::{AckedWrite, Event};
use runbook_traffic::{Entry, Kind, Measurement, Outcome};
use serde_json::Value;

/// Everything the timeline is built from.
pub(super) struct Sources<'a> {
    pub history: &'a [HistoryRow],
    pub faults: &'a [FaultRow],
    pub main_fault: Option<&'a FaultRow>,
    pub ledger: &'a [Entry],
    pub measurement: &'a Measurement,
    /// Each child with its own history.
    pub children: &'a [(ExecutionRow, Vec<HistoryRow>)],
}

/// The timeline, in time order (ties keep the order they were found in).
pub(super) fn timeline(s: &Sources<'_>) -> Vec<Event> {
    let mut out = states(s.history);
    faults(&mut out, s);
    client(&mut out, s);
    for (child, history) in s.children {
        child_events(&mut out, child, history);
    }
    out.sort_by_key(|e| e.at_ms);
    out
}

/// The parent's own states: entered, failed, and its end.
fn states(history: &[HistoryRow]) -> Vec<Event> {
    history
        .iter()
        .filter_map(|h| {
            let state = h.state.as_deref();
            let (event, text) = match (h.kind.as_str(), state) {
                ("TaskStateEntered", Some(state)) => ("state_entered", format!("{state} entered")),
                ("TaskFailed", Some(state)) => (
                    "state_failed",
                    format!(
                        "{state} failed: {} {}",
                        h.details["error"].as_str().unwrap_or(""),
                        short(h.details["cause"].as_str().unwrap_or(""))
                    ),
                ),
                ("ExecutionFailed" | "ExecutionSucceeded" | "ExecutionAborted", _) => {
                    ("execution_ended", h.kind.clone())
                }
                _ => return None,
            };
            Some(Event::new(h.at_ms, event, "state", text))
        })
        .collect()
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

fn faults(out: &mut Vec<Event>, s: &Sources<'_>) {
    for f in s.faults {
        let main = s.main_fault.is_some_and(|m| m.id == f.id);
        let (injected, undone) = if main {
            (ms::FAULT_INJECTED, "fault_undone")
        } else {
            ("secondary_fault_injected", "secondary_fault_undone")
        };
        let target = f.record["target"].as_str().unwrap_or("");
        out.push(Event::new(
            f.injected_ms,
            injected,
            "fault",
            format!("{} {} injected ({target})", f.id, f.kind),
        ));
        if let Some(u) = f.undone_ms {
            out.push(Event::new(
                u,
                undone,
                "fault",
                format!("{} {} undone", f.id, f.kind),
            ));
        }
    }
}

/// The first write at or after the fault whose failure the client learned of, by the
/// time it learned it.
fn first_client_error(ledger: &[Entry], fault_at: Option<i64>) -> Option<&Entry> {
    ledger
        .iter()
        .filter(|e| {
            e.kind == Kind::Write && matches!(e.outcome, Outcome::Failed | Outcome::Unknown)
        })
        .filter(|e| fault_at.is_none_or(|f| e.done_ms.unwrap_or(e.sent_ms) >= f))
        .min_by_key(|e| e.done_ms.unwrap_or(e.sent_ms))
}

fn client(out: &mut Vec<Event>, s: &Sources<'_>) {
    let fault_at = s.main_fault.map(|f| f.injected_ms);
    let m = s.measurement;
    if let Some(e) = first_client_error(s.ledger, fault_at) {
        out.push(Event::new(
            e.done_ms.unwrap_or(e.sent_ms),
            ms::FIRST_CLIENT_ERROR,
            "client",
            format!(
                "write {} {}: {}",
                e.id,
                e.outcome.as_str(),
                short(e.error.as_deref().unwrap_or("no error text"))
            ),
        ));
    }
    if let Some(o) = &m.outage {
        out.push(Event::new(
            o.from_ms,
            "last_ack_before_outage",
            "client",
            format!(
                "last acknowledged write before the outage ({} failed, {} unknown){}",
                o.failed,
                o.unknown,
                o.first_error
                    .as_deref()
                    .map(|e| format!("; first error: {e}"))
                    .unwrap_or_default()
            ),
        ));
    }
    // The RTO's own end: fault + RTO (the outage's first acknowledgement, or without an
    // outage the first acknowledged write sent after the fault).
    if let (Some(f), Some(rto)) = (fault_at, m.rto_seconds) {
        let text = match &m.outage {
            Some(_) => "first acknowledged write after the outage",
            None => "first acknowledged write after the fault (no outage)",
        };
        out.push(Event::new(
            f + (rto * 1000.0).round() as i64,
            ms::FIRST_SUCCESSFUL_WRITE,
            "client",
            format!("{text} (RTO {rto:.3} s)"),
        ));
    }
}

/// The last path segment of a history row's state (`Inspect/branch[0]/X` → `X`).
fn state_name(h: &HistoryRow) -> Option<&str> {
    h.state
        .as_deref()
        .map(|s| s.rsplit('/').next().unwrap_or(s))
}

/// When Task `name` (any of `names`) finished: its first success, or else its last
/// failure (after which a Catch moved on). The row and whether it succeeded.
fn task_done<'h>(history: &'h [HistoryRow], names: &[&str]) -> Option<(&'h HistoryRow, bool)> {
    let of = |h: &&HistoryRow| state_name(h).is_some_and(|n| names.contains(&n));
    history
        .iter()
        .filter(of)
        .find(|h| h.kind == "TaskSucceeded")
        .map(|h| (h, true))
        .or_else(|| {
            history
                .iter()
                .rev()
                .filter(of)
                .find(|h| matches!(h.kind.as_str(), "TaskFailed" | "TaskTimedOut"))
                .map(|h| (h, false))
        })
}

fn entered<'h>(history: &'h [HistoryRow], name: &str) -> Option<&'h HistoryRow> {
    history
        .iter()
        .find(|h| h.kind.ends_with("StateEntered") && state_name(h) == Some(name))
}

fn failure(h: &HistoryRow) -> String {
    format!(
        "{}: {}",
        h.details["error"].as_str().unwrap_or(""),
        short(h.details["cause"].as_str().unwrap_or(""))
    )
}

fn child_events(out: &mut Vec<Event>, child: &ExecutionRow, history: &[HistoryRow]) {
    let kind = child.name.as_str();
    let failover = kind == "failover";
    let failback = kind == "failback";
    out.push(Event::new(
        child.started_ms,
        if failover {
            ms::DETECTION
        } else {
            "child_started"
        },
        kind,
        format!("{} started ({})", child.name, child.id),
    ));
    if let Some(e) = child.ended_ms {
        out.push(Event::new(
            e,
            if failback {
                ms::FAILBACK_DONE
            } else {
                "child_ended"
            },
            kind,
            format!(
                "{} {}{}",
                child.name,
                child.status,
                child
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if !failover {
        return;
    }
    if let Some((h, ok)) = task_done(history, &["Decide"]) {
        let d: &Value = &h.details["output"];
        let text = if ok {
            format!(
                "policy: {} ({})",
                d["Decision"].as_str().unwrap_or("?"),
                d["Reason"].as_str().unwrap_or("")
            )
        } else {
            format!("policy failed: {}", failure(h))
        };
        out.push(Event::new(h.at_ms, ms::DECISION, kind, text));
    }
    if let Some((h, ok)) = task_done(history, &["FenceLive", "FenceDead"]) {
        let how = state_name(h).unwrap_or("");
        let text = if ok {
            format!("old primary fenced read-only ({how})")
        } else {
            format!("fence attempted ({how}): {}", failure(h))
        };
        out.push(Event::new(h.at_ms, ms::FENCE, kind, text));
    }
    if let Some((h, true)) = task_done(history, &["Promote"]) {
        out.push(Event::new(
            h.at_ms,
            ms::PROMOTE,
            kind,
            "replica promotion accepted",
        ));
    }
    match (
        task_done(history, &["ShiftWeights"]),
        entered(history, "WeightsPending"),
    ) {
        (Some((h, true)), _) => out.push(Event::new(
            h.at_ms,
            ms::WEIGHTS_MOVED,
            kind,
            "routing weights moved to the replica",
        )),
        (_, Some(h)) => out.push(Event::new(
            h.at_ms,
            ms::WEIGHTS_MOVED,
            kind,
            "weights pending: the routing API is down, clients move by health checks",
        )),
        _ => {}
    }
    if let Some((h, true)) = task_done(history, &["CanaryWrite"]) {
        out.push(Event::new(
            h.at_ms,
            "canary_write",
            kind,
            "canary write through the routed name succeeded",
        ));
    }
}

/// The acknowledged writes of `ledger`, each marked lost when its id is in `lost_ids`.
pub(super) fn acked_writes(ledger: &[Entry], lost_ids: &[u64]) -> Vec<AckedWrite> {
    let lost: std::collections::HashSet<u64> = lost_ids.iter().copied().collect();
    ledger
        .iter()
        .filter(|e| e.kind == Kind::Write && e.outcome == Outcome::Acked)
        .filter_map(|e| {
            Some(AckedWrite {
                sent_ms: e.sent_ms,
                acked_ms: e.done_ms?,
                survived: !lost.contains(&e.id),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(at_ms: i64, kind: &str, state: &str, details: Value) -> HistoryRow {
        HistoryRow {
            seq: at_ms,
            at_ms,
            kind: kind.into(),
            state: Some(state.into()),
            details,
        }
    }

    fn child(name: &str, started: i64, ended: i64) -> ExecutionRow {
        ExecutionRow {
            id: format!("{name}-1"),
            name: name.into(),
            runbook_path: format!("{name}.yaml"),
            runbook_text: String::new(),
            input: json!({}),
            provider: Some("local".into()),
            status: "SUCCEEDED".into(),
            started_ms: started,
            ended_ms: Some(ended),
            output: None,
            error: None,
            cause: None,
            seed: 0,
            redrive_count: 0,
            runner_pid: None,
            parent_id: Some("gd".into()),
            environment: None,
        }
    }

    /// A region-loss failover: the fence of the dead primary fails and is caught, the
    /// promotion is retried once, the routing API is down.
    #[test]
    fn failover_milestones_come_from_the_child_history() {
        let history = vec![
            h(100, "TaskStateEntered", "Decide", json!({})),
            h(
                110,
                "TaskSucceeded",
                "Decide",
                json!({"output": {"Decision": "promote", "Reason": "the primary is unhealthy"}}),
            ),
            h(
                150,
                "TaskFailed",
                "FenceDead",
                json!({"error": "ServiceUnavailable", "cause": "us-east-1 is down"}),
            ),
            h(
                200,
                "TaskFailed",
                "Promote",
                json!({"error": "InvalidDBInstanceState"}),
            ),
            h(300, "TaskSucceeded", "Promote", json!({"output": {}})),
            h(
                400,
                "TaskFailed",
                "ShiftWeights",
                json!({"error": "ServiceUnavailable"}),
            ),
            h(410, "PassStateEntered", "WeightsPending", json!({})),
            h(500, "TaskSucceeded", "CanaryWrite", json!({"output": {}})),
        ];
        let mut out = Vec::new();
        child_events(&mut out, &child("failover", 90, 600), &history);
        child_events(&mut out, &child("failback", 700, 900), &[]);
        let at = |event: &str| {
            out.iter()
                .find(|e| e.event == event)
                .map(|e| (e.at_ms, e.text.clone()))
        };
        assert_eq!(at(ms::DETECTION).unwrap().0, 90);
        let (t, text) = at(ms::DECISION).unwrap();
        assert_eq!((t, text.contains("promote")), (110, true), "{text}");
        let (t, text) = at(ms::FENCE).unwrap();
        assert_eq!(
            (t, text.contains("ServiceUnavailable")),
            (150, true),
            "{text}"
        );
        assert_eq!(
            at(ms::PROMOTE).unwrap().0,
            300,
            "the promotion that succeeded"
        );
        let (t, text) = at(ms::WEIGHTS_MOVED).unwrap();
        assert_eq!((t, text.contains("pending")), (410, true), "{text}");
        assert_eq!(at("canary_write").unwrap().0, 500);
        assert_eq!(at(ms::FAILBACK_DONE).unwrap().0, 900);
        assert_eq!(at("child_ended").unwrap().0, 600);
    }

    #[test]
    fn first_client_error_is_when_the_client_learned_it_after_the_fault() {
        let e = |id: u64, sent: i64, done: Option<i64>, outcome: Outcome| Entry {
            kind: Kind::Write,
            id,
            conn: 0,
            sent_ms: sent,
            done_ms: done,
            outcome,
            error: Some(format!("e{id}")),
        };
        let ledger = vec![
            e(1, 10, Some(20), Outcome::Failed), // before the fault: not this game day's
            e(2, 90, Some(2_100), Outcome::Unknown),
            e(3, 120, Some(1_130), Outcome::Failed),
            e(4, 130, Some(135), Outcome::Acked),
        ];
        assert_eq!(
            first_client_error(&ledger, Some(100)).map(|e| e.id),
            Some(3)
        );
        assert_eq!(first_client_error(&ledger, None).map(|e| e.id), Some(1));
        let lost = acked_writes(&ledger, &[4]);
        assert_eq!(lost.len(), 1);
        assert!(!lost[0].survived);
    }
}
