//! A realistic game day built from a simulated client ledger (shared by tests and bench).
#![allow(dead_code)] // each test binary uses a different part

use runbook_report::{
    Check, Event, FaultInfo, GameDay, LagSample, Measured, Phase, Series, Targets, buckets,
};

/// 2025-12-06T22:00:00Z.
pub const T0: i64 = 1_765_058_400_000;

/// The shape of a simulated run.
pub struct Sim {
    pub seconds: i64,
    pub writes_per_s: i64,
    pub fault_at_s: i64,
    /// Client-seen outage after the fault, in milliseconds.
    pub outage_ms: i64,
    pub failback_at_s: i64,
}

/// Ledger entries `(sent_ms, done_ms, outcome)`: steady writes; during the outage each
/// write fails after a 1 s timeout; commits in flight in the 300 ms before the fault never
/// answer (outcome unknown); latency varies deterministically between 3 and 14 ms.
pub fn ledger(sim: &Sim) -> Vec<(i64, Option<i64>, &'static str)> {
    let fault = T0 + sim.fault_at_s * 1000;
    let back = fault + sim.outage_ms;
    let gap = 1000 / sim.writes_per_s;
    (0..sim.seconds * sim.writes_per_s)
        .map(|i| {
            let sent = T0 + i * gap;
            let latency = 3 + (i * 7919) % 12;
            if (fault - 300..fault).contains(&sent) {
                (sent, None, "unknown")
            } else if (fault..back).contains(&sent) {
                (sent, Some(sent + 1000), "failed")
            } else {
                (sent, Some(sent + latency), "acked")
            }
        })
        .collect()
}

/// A finished region-loss game day that missed its RTO target (12.4 s against 5 s),
/// with user-supplied text that must be escaped everywhere.
pub fn game_day(sim: &Sim) -> GameDay {
    let entries = ledger(sim);
    let count = |o: &str| entries.iter().filter(|e| e.2 == o).count() as u64;
    let fault = T0 + sim.fault_at_s * 1000;
    let recovered = fault + sim.outage_ms;
    let end = T0 + sim.seconds * 1000;
    let failback = T0 + sim.failback_at_s * 1000;
    let lag: Vec<LagSample> = (0..sim.seconds)
        .map(|s| {
            let t = T0 + s * 1000;
            // The replica is the primary while the fault lasts: no lag to sample.
            let lag = if (fault..failback).contains(&t) {
                None
            } else {
                Some(0.05 + ((s * 37) % 10) as f64 * 0.03)
            };
            LagSample {
                t_ms: t,
                lag_seconds: lag,
            }
        })
        .collect();
    let phase = |name: &str, a: i64, b: i64, exec: Option<&str>| Phase {
        name: name.into(),
        started_ms: a,
        finished_ms: Some(b),
        status: "SUCCEEDED".into(),
        execution_id: exec.map(String::from),
    };
    let ev = |at: i64, event: &str, kind: &str, text: &str| Event::new(at, event, kind, text);
    GameDay {
        execution_id: "gd-2026-12-06-a1b2c3".into(),
        runbook: "gameday <region-loss>".into(),
        environment: Some("dev".into()),
        provider: "local".into(),
        scope: runbook_report::Scope::Full,
        fault: FaultInfo {
            kind: "region-loss".into(),
            target: "pg-primary".into(),
            region: Some("eu-west-1".into()),
            injected_at_ms: Some(fault),
            undone_at_ms: Some(failback - 2000),
        },
        started_ms: T0,
        finished_ms: Some(end),
        status: "SUCCEEDED".into(),
        targets: Targets {
            rto_seconds: 5.0,
            max_lost_writes: 0,
            rpo_seconds: Some(1.0),
        },
        measured: Measured {
            rto_seconds: Some(sim.outage_ms as f64 / 1000.0),
            lost_writes: 0,
            lost_ids: vec![],
            acked_writes: count("acked"),
            failed_writes: count("failed"),
            unknown_writes: count("unknown"),
            unknown_committed: count("unknown").min(1),
            rpo_seconds: Some(0.0),
            lag_at_fault_seconds: Some(0.08),
            latency_p50_ms: Some(8.0),
            latency_p99_ms: Some(14.0),
        },
        phases: vec![
            phase("steady-state", T0, fault - 500, None),
            phase("inject", fault - 500, fault + 200, None),
            phase("failover", fault + 200, recovered - 300, Some("fo-77e1")),
            phase("recovery", recovered - 300, failback - 2000, None),
            phase("failback", failback - 2000, end - 3000, Some("fb-91aa")),
            Phase {
                status: "SKIPPED".into(),
                ..phase("rollback", end - 3000, end - 2900, None)
            },
        ],
        timeline: vec![
            ev(
                T0,
                "state_entered",
                "phase",
                "steady state: 2 regions streaming, lag 0.05 s",
            ),
            ev(
                fault,
                "fault_injected",
                "fault",
                "injected region-loss on eu-west-1 (pg-primary stopped)",
            ),
            ev(
                fault + 3_000,
                "detection",
                "failover",
                "primary unreachable from 3 of 3 probes",
            ),
            ev(
                fault + 4_100,
                "promote",
                "failover",
                "promoting replica in eu-central-1",
            ),
            ev(
                recovered,
                "first_successful_write",
                "client",
                "first acknowledged write after the fault",
            ),
            ev(
                fault + 700,
                "first_client_error",
                "client",
                "connection reset: <img src=\"http://evil.example/x.png\"> & co",
            ),
            ev(
                failback,
                "failback_done",
                "failback",
                "pg_rewind done; old primary follows the new one",
            ),
        ],
        series: Series {
            writes: buckets(&entries, 1000),
            lag,
        },
        checks: vec![
            Check {
                name: "steady state".into(),
                passed: true,
                detail: "lag 0.05 s < 1 s".into(),
            },
            Check {
                name: "no acknowledged write lost".into(),
                passed: true,
                detail: "verified on the new primary".into(),
            },
            Check {
                name: "topology restored".into(),
                passed: false,
                detail: "replica in eu-west-1 still catching up after <script>alert(1)</script>"
                    .into(),
            },
        ],
        errors: vec!["failback: slot \"gd_slot\" <busy> & retried".into()],
    }
}

/// The run used by the Chromium test: 90 s at 5 writes/s (450 entries), 12.4 s outage.
pub fn small() -> GameDay {
    game_day(&Sim {
        seconds: 90,
        writes_per_s: 5,
        fault_at_s: 25,
        outage_ms: 12_400,
        failback_at_s: 60,
    })
}
