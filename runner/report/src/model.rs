//! The report model: plain data the runner fills from its journal and ledger.
//!
//! Times are Unix epoch milliseconds (`*_ms`) unless a field says seconds.

use serde::{Deserialize, Serialize};

use crate::timeline::Event;

/// Everything a game-day report shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameDay {
    pub execution_id: String,
    pub runbook: String,
    #[serde(default)]
    pub environment: Option<String>,
    pub provider: String,
    /// What the run measured: everything, or (`DataPlane=false`) only the control plane.
    #[serde(default)]
    pub scope: Scope,
    pub fault: FaultInfo,
    pub started_ms: i64,
    #[serde(default)]
    pub finished_ms: Option<i64>,
    /// Execution status as journaled: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    pub targets: Targets,
    pub measured: Measured,
    #[serde(default)]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub timeline: Vec<Event>,
    #[serde(default)]
    pub series: Series,
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// `full`: a client drove traffic and its ledger is judged. `control-plane`: the
/// fault, failover and undo ran with no client (an emulator with no database): no RTO
/// or lost writes exist, so such a run can fail but never pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    #[default]
    Full,
    ControlPlane,
}

/// The injected fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultInfo {
    /// e.g. `region-loss`, `primary-crash`, `network-partition`.
    pub kind: String,
    pub target: String,
    #[serde(default)]
    pub region: Option<String>,
    /// `None` when the run stopped before injecting.
    #[serde(default)]
    pub injected_at_ms: Option<i64>,
    #[serde(default)]
    pub undone_at_ms: Option<i64>,
}

/// What the game day must achieve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    pub rto_seconds: f64,
    pub max_lost_writes: u64,
    #[serde(default)]
    pub rpo_seconds: Option<f64>,
}

/// What the client and the observers saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Client-seen RTO: fault injection → first acknowledged write after it.
    #[serde(default)]
    pub rto_seconds: Option<f64>,
    /// Acknowledged writes missing from the new primary.
    pub lost_writes: u64,
    #[serde(default)]
    pub lost_ids: Vec<u64>,
    pub acked_writes: u64,
    pub failed_writes: u64,
    /// Writes whose outcome the client never learned (connection lost mid-commit).
    pub unknown_writes: u64,
    /// Of the unknown writes, those found committed afterwards.
    pub unknown_committed: u64,
    #[serde(default)]
    pub rpo_seconds: Option<f64>,
    #[serde(default)]
    pub lag_at_fault_seconds: Option<f64>,
    #[serde(default)]
    pub latency_p50_ms: Option<f64>,
    #[serde(default)]
    pub latency_p99_ms: Option<f64>,
}

impl Measured {
    /// Writes the client attempted at all.
    pub fn total_writes(&self) -> u64 {
        self.acked_writes + self.failed_writes + self.unknown_writes
    }
}

/// One phase of the game day (steady-state, inject, failover, recovery, failback, rollback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub started_ms: i64,
    #[serde(default)]
    pub finished_ms: Option<i64>,
    /// SUCCEEDED, FAILED, RUNNING, SKIPPED, ...
    pub status: String,
    /// The child execution that ran this phase (a failover runbook), if any.
    #[serde(default)]
    pub execution_id: Option<String>,
}

/// Time series for the charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Contiguous per-interval buckets of client writes (see [`crate::buckets`]).
    #[serde(default)]
    pub writes: Vec<Bucket>,
    #[serde(default)]
    pub lag: Vec<LagSample>,
}

/// Client writes that completed in `[t_ms, t_ms + bucket)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub t_ms: i64,
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Median latency of the bucket's acknowledged writes.
    #[serde(default)]
    pub p50_latency_ms: Option<f64>,
}

/// One replica-lag sample; `lag_seconds` is `None` when the replica could not be sampled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    pub t_ms: i64,
    #[serde(default)]
    pub lag_seconds: Option<f64>,
}

/// A named pass/fail check (steady state, data verification, topology restored...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    #[serde(default)]
    pub detail: String,
}

/// The outcome of a game day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Pass,
    Fail,
    /// The run did not get to measure (no traffic, no fault injected, aborted).
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Inconclusive => "INCONCLUSIVE",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Execution statuses meaning the run went to its end on its own (as opposed to being
/// stopped or timed out, or still running).
fn ran_to_end(status: &str) -> bool {
    matches!(status, "SUCCEEDED" | "FAILED")
}

impl GameDay {
    /// True when the run produced the measurements the targets are judged on: there was
    /// client traffic and a fault was injected.
    pub fn measured_anything(&self) -> bool {
        self.measured.total_writes() > 0 && self.fault.injected_at_ms.is_some()
    }

    /// Human-readable lines, one per target the measurements missed.
    ///
    /// A target that was not measured is not "missed", with one exception: when the run
    /// went to its end with traffic and a fault but no write was ever acknowledged after
    /// the fault, the RTO is unbounded and so missed.
    pub fn missed_targets(&self) -> Vec<String> {
        let (t, m) = (&self.targets, &self.measured);
        let mut out = Vec::new();
        match m.rto_seconds {
            Some(rto) if rto > t.rto_seconds => out.push(format!(
                "RTO {} exceeds target {}",
                fmt_secs(rto),
                fmt_secs(t.rto_seconds)
            )),
            None if self.measured_anything() && ran_to_end(&self.status) => out.push(format!(
                "RTO not reached: no acknowledged write after the fault (target {})",
                fmt_secs(t.rto_seconds)
            )),
            _ => {}
        }
        if m.lost_writes > t.max_lost_writes {
            out.push(format!(
                "{} acknowledged write{} lost (target at most {})",
                m.lost_writes,
                if m.lost_writes == 1 { "" } else { "s" },
                t.max_lost_writes
            ));
        }
        if let (Some(target), Some(rpo)) = (t.rpo_seconds, m.rpo_seconds)
            && rpo > target
        {
            out.push(format!(
                "RPO {} exceeds target {}",
                fmt_secs(rpo),
                fmt_secs(target)
            ));
        }
        out
    }

    /// Fail when a target was missed, a check failed or the execution itself failed;
    /// Inconclusive when the run did not get to measure; Pass otherwise.
    pub fn verdict(&self) -> Verdict {
        // Stopped before it touched anything (steady state not met, lever engaged): the
        // system was not put to the test, so this is neither a pass nor a fail.
        if self.fault.injected_at_ms.is_none()
            && self.measured.total_writes() == 0
            && self.status != "SUCCEEDED"
        {
            return Verdict::Inconclusive;
        }
        if self.checks.iter().any(|c| !c.passed) || !self.missed_targets().is_empty() {
            return Verdict::Fail;
        }
        if self.scope == Scope::ControlPlane {
            return if self.status == "FAILED" {
                Verdict::Fail
            } else {
                Verdict::Inconclusive
            };
        }
        if !self.measured_anything() || !ran_to_end(&self.status) {
            return Verdict::Inconclusive;
        }
        if self.status == "FAILED" {
            return Verdict::Fail;
        }
        Verdict::Pass
    }

    /// Why the verdict is what it is, one line each: missed targets, failed checks, a
    /// failed execution; for an inconclusive run, what it did not get to. Empty on Pass.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = self.missed_targets();
        for c in self.checks.iter().filter(|c| !c.passed) {
            out.push(format!("check failed: {}", c.name));
        }
        if self.status == "FAILED" {
            out.push("execution FAILED".to_string());
        }
        if self.verdict() == Verdict::Inconclusive {
            if self.scope == Scope::ControlPlane {
                out.push(
                    "control-plane game day (DataPlane=false): no client, so no RTO or lost writes were measured"
                        .to_string(),
                );
            } else if self.measured.total_writes() == 0 {
                out.push("no client traffic was recorded".to_string());
            }
            if self.fault.injected_at_ms.is_none() {
                out.push("no fault was injected".to_string());
            }
            if !ran_to_end(&self.status) {
                out.push(format!("execution {}", self.status));
            }
        }
        out
    }

    /// When clients saw the database back: injection + measured RTO.
    pub fn recovered_at_ms(&self) -> Option<i64> {
        let inj = self.fault.injected_at_ms?;
        let rto = self.measured.rto_seconds?;
        Some(inj + (rto * 1000.0).round() as i64)
    }

    /// The last instant anything in the report refers to.
    pub fn end_ms(&self) -> i64 {
        let mut end = self.finished_ms.unwrap_or(self.started_ms);
        let phase_ends = self
            .phases
            .iter()
            .flat_map(|p| [Some(p.started_ms), p.finished_ms]);
        let others = [self.fault.injected_at_ms, self.fault.undone_at_ms];
        for t in phase_ends.chain(others).flatten() {
            end = end.max(t);
        }
        for t in self.timeline.iter().map(|e| e.at_ms) {
            end = end.max(t);
        }
        if let Some(b) = self.series.writes.last() {
            end = end.max(b.t_ms);
        }
        if let Some(l) = self.series.lag.last() {
            end = end.max(l.t_ms);
        }
        end
    }
}

/// Seconds for humans: `4.2 s`, `0.35 s`, `12 s` (two decimals under 10 s, one above,
/// trailing zeros dropped).
pub(crate) fn fmt_secs(s: f64) -> String {
    let text = if s.abs() >= 10.0 {
        format!("{s:.1}")
    } else {
        format!("{s:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text} s")
}

/// Milliseconds as seconds for humans, or an em dash when absent.
pub(crate) fn fmt_opt_secs(s: Option<f64>) -> String {
    s.map(fmt_secs).unwrap_or_else(|| "—".to_string())
}

/// UTC timestamp `2026-12-06 23:48:49.123Z`; falls back to the raw number if out of range.
pub(crate) fn fmt_utc(ms: i64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// RFC 3339 UTC with milliseconds: `2025-12-06T23:50:00.123Z`; the raw number if out of range.
pub(crate) fn fmt_rfc3339(ms: i64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Offset from the start of the game day: `T+12.3 s`.
pub(crate) fn fmt_rel(ms: i64, start_ms: i64) -> String {
    format!("T+{:.1} s", (ms - start_ms) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished game day that met every target.
    fn passing() -> GameDay {
        GameDay {
            execution_id: "e1".into(),
            runbook: "gameday".into(),
            environment: Some("dev".into()),
            provider: "local".into(),
            scope: Scope::Full,
            fault: FaultInfo {
                kind: "region-loss".into(),
                target: "pg-primary".into(),
                region: Some("eu-west-1".into()),
                injected_at_ms: Some(10_000),
                undone_at_ms: Some(40_000),
            },
            started_ms: 0,
            finished_ms: Some(60_000),
            status: "SUCCEEDED".into(),
            targets: Targets {
                rto_seconds: 5.0,
                max_lost_writes: 0,
                rpo_seconds: Some(1.0),
            },
            measured: Measured {
                rto_seconds: Some(3.2),
                acked_writes: 900,
                failed_writes: 40,
                unknown_writes: 2,
                rpo_seconds: Some(0.0),
                ..Measured::default()
            },
            phases: vec![],
            timeline: vec![],
            series: Series::default(),
            checks: vec![Check {
                name: "steady state".into(),
                passed: true,
                detail: String::new(),
            }],
            errors: vec![],
        }
    }

    #[test]
    fn all_targets_met_passes() {
        let g = passing();
        assert!(g.missed_targets().is_empty());
        assert_eq!(g.verdict(), Verdict::Pass);
        assert_eq!(g.recovered_at_ms(), Some(13_200));
    }

    #[test]
    fn stopped_before_the_fault_is_aborted_not_failed() {
        let mut g = passing();
        g.fault.injected_at_ms = None;
        g.measured = Measured::default();
        g.status = "FAILED".into();
        g.checks = vec![Check {
            name: "every acknowledged write read back".into(),
            passed: false,
            detail: "not verified".into(),
        }];
        assert_eq!(g.verdict(), Verdict::Inconclusive);
        assert!(g.reasons().iter().any(|r| r == "no fault was injected"));
    }

    #[test]
    fn slow_rto_fails() {
        let mut g = passing();
        g.measured.rto_seconds = Some(12.5);
        assert_eq!(g.missed_targets(), vec!["RTO 12.5 s exceeds target 5 s"]);
        assert_eq!(g.verdict(), Verdict::Fail);
    }

    #[test]
    fn rto_exactly_on_target_passes() {
        let mut g = passing();
        g.measured.rto_seconds = Some(5.0);
        assert_eq!(g.verdict(), Verdict::Pass);
    }

    #[test]
    fn lost_writes_and_rpo_fail() {
        let mut g = passing();
        g.measured.lost_writes = 3;
        g.measured.rpo_seconds = Some(2.5);
        let missed = g.missed_targets();
        assert_eq!(missed.len(), 2, "{missed:?}");
        assert!(missed[0].starts_with("3 acknowledged writes lost"));
        assert!(
            missed[1].starts_with("RPO 2.5 s exceeds target 1 s"),
            "{missed:?}"
        );
        assert_eq!(g.verdict(), Verdict::Fail);
    }

    #[test]
    fn never_recovering_is_a_missed_rto_once_the_run_ended() {
        let mut g = passing();
        g.measured.rto_seconds = None;
        assert_eq!(g.verdict(), Verdict::Fail);
        assert!(g.missed_targets()[0].starts_with("RTO not reached"));
        // Stopped mid-way: nothing was judged, so inconclusive rather than failed.
        g.status = "ABORTED".into();
        assert!(g.missed_targets().is_empty());
        assert_eq!(g.verdict(), Verdict::Inconclusive);
    }

    #[test]
    fn failed_check_fails_even_without_measurements() {
        let mut g = passing();
        g.checks.push(Check {
            name: "data verified".into(),
            passed: false,
            detail: "x".into(),
        });
        assert_eq!(g.verdict(), Verdict::Fail);
        g.measured = Measured::default();
        g.fault.injected_at_ms = None;
        assert_eq!(g.verdict(), Verdict::Fail);
    }

    #[test]
    fn no_traffic_or_no_fault_is_inconclusive() {
        let mut g = passing();
        g.measured = Measured::default();
        assert_eq!(g.verdict(), Verdict::Inconclusive);
        let mut g = passing();
        g.fault.injected_at_ms = None;
        g.measured.rto_seconds = None;
        assert_eq!(g.verdict(), Verdict::Inconclusive);
        let mut g = passing();
        g.status = "TIMED_OUT".into();
        assert_eq!(g.verdict(), Verdict::Inconclusive);
    }

    #[test]
    fn control_plane_scope_never_passes() {
        let mut g = passing();
        g.scope = Scope::ControlPlane;
        g.measured = Measured::default();
        assert_eq!(g.verdict(), Verdict::Inconclusive);
        assert!(
            g.reasons()
                .iter()
                .any(|r| r.starts_with("control-plane game day")),
            "{:?}",
            g.reasons()
        );
        g.status = "FAILED".into();
        assert_eq!(g.verdict(), Verdict::Fail);
        g.status = "SUCCEEDED".into();
        g.checks.push(Check {
            name: "fault undone".into(),
            passed: false,
            detail: "still active".into(),
        });
        assert_eq!(g.verdict(), Verdict::Fail);
        let json = crate::render_json(&g);
        assert!(json.contains("\"scope\": \"control-plane\""), "{json}");
    }

    #[test]
    fn failed_execution_with_met_targets_fails() {
        let mut g = passing();
        g.status = "FAILED".into();
        assert!(g.missed_targets().is_empty());
        assert_eq!(g.verdict(), Verdict::Fail);
    }

    #[test]
    fn reasons_explain_the_verdict() {
        assert!(passing().reasons().is_empty());
        let mut g = passing();
        g.measured.rto_seconds = Some(9.0);
        g.checks[0].passed = false;
        g.status = "FAILED".into();
        assert_eq!(
            g.reasons(),
            vec![
                "RTO 9 s exceeds target 5 s",
                "check failed: steady state",
                "execution FAILED"
            ]
        );
        let mut g = passing();
        g.measured = Measured::default();
        g.status = "ABORTED".into();
        assert_eq!(
            g.reasons(),
            vec!["no client traffic was recorded", "execution ABORTED"]
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_secs(5.0), "5 s");
        assert_eq!(fmt_secs(3.25), "3.25 s");
        assert_eq!(fmt_secs(3.5), "3.5 s");
        assert_eq!(fmt_secs(10.0), "10 s");
        assert_eq!(fmt_secs(0.004), "0 s");
        assert_eq!(fmt_secs(12.34), "12.3 s");
        assert_eq!(fmt_utc(1_765_065_000_123), "2025-12-06 23:50:00.123Z");
        assert_eq!(fmt_rel(12_345, 0), "T+12.3 s");
        assert_eq!(fmt_rfc3339(1_765_065_000_123), "2025-12-06T23:50:00.123Z");
        assert_eq!(fmt_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            serde_json::to_string(&Verdict::Inconclusive).unwrap(),
            "\"INCONCLUSIVE\""
        );
    }
}
