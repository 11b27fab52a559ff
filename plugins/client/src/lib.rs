//! The game day's application-like client, measured from its own side: the host's
//! `traffic` capability writes through the routed name like an application and keeps
//! a ledger of every acknowledged write; the verdict compares what that client saw
//! with the targets.
//!
//! Waiting ops fail with a retryable error (`GameDay.NotSteady`,
//! `GameDay.NotRecovered`) and the Task's Retry backs off.
use runbook_plugin_sdk::cap::{fault, postgres, traffic};
use runbook_plugin_sdk::{StepError, export_step, info, warn};
use serde::Deserialize;
use serde_json::{Value, json};

use runbook_plugin_sdk::target::Target;


#[derive(Deserialize)]
#[serde(tag = "Op")]
enum Op {
    StartTraffic {
        #[serde(rename = "Target")]
        target: Target,
        #[serde(rename = "Replica", default)]
        replica: Option<Target>,
        #[serde(rename = "WritesPerSecond", default = "wps")]
        writes_per_second: u32,
        #[serde(rename = "ReadsPerSecond", default)]
        reads_per_second: u32,
        #[serde(rename = "Connections", default = "conns")]
        connections: u32,
        #[serde(rename = "MaxSeconds", default = "max_seconds")]
        max_seconds: u32,
        #[serde(rename = "Token")]
        token: String,
    },
    /// The client writes and every write so far was acknowledged.
    SteadyState {
        #[serde(rename = "SessionId")]
        session_id: String,
        #[serde(rename = "MinAcked", default = "min_acked")]
        min_acked: u64,
    },
    /// Recovered once the client has had `Streak` acknowledged writes in a row after
    /// its last failure, and at least one after the fault.
    AwaitRecovery {
        #[serde(rename = "SessionId")]
        session_id: String,
        #[serde(rename = "Since")]
        since: String,
        #[serde(rename = "Streak", default = "streak")]
        streak: u64,
    },
    /// The replica lags (in the client's terms) beyond `MinLagSeconds`.
    AwaitLag {
        #[serde(rename = "SessionId")]
        session_id: String,
        #[serde(rename = "MinLagSeconds")]
        min_lag_seconds: f64,
    },
    /// The replica has caught up: its lag (in the client's terms) is at most
    /// `MaxLagSeconds`.
    AwaitCaughtUp {
        #[serde(rename = "SessionId")]
        session_id: String,
        #[serde(rename = "MaxLagSeconds")]
        max_lag_seconds: f64,
    },
    StopTraffic {
        #[serde(rename = "SessionId")]
        session_id: String,
    },
    Verify {
        #[serde(rename = "SessionId")]
        session_id: String,
    },
    /// The verdict: client-seen RTO and lost acknowledged writes against the targets.
    Evaluate {
        #[serde(rename = "SessionId")]
        session_id: String,
        #[serde(rename = "FaultAt")]
        fault_at: String,
        #[serde(rename = "RtoTargetSeconds")]
        rto_target_seconds: f64,
        #[serde(rename = "MaxLostWrites")]
        max_lost_writes: u64,
        /// `recover` (the client must recover within the target), `refuse` (the
        /// failover must be refused and nothing lost, e.g. the RPO guard on a lagging
        /// replica) or `stay` (the primary kept serving: recover within the target, and
        /// the failover must not promote, e.g. a cut replication link).
        #[serde(rename = "Expect", default = "expect")]
        expect: String,
        #[serde(rename = "Failover", default)]
        failover: Value,
    },
}

fn wps() -> u32 {
    50
}
fn conns() -> u32 {
    4
}
fn max_seconds() -> u32 {
    900
}
fn min_acked() -> u64 {
    50
}
fn streak() -> u64 {
    25
}
fn expect() -> String {
    "recover".into()
}

fn cap(e: runbook_plugin_sdk::CapError) -> StepError {
    e.into()
}

fn summary_json(s: &traffic::SessionSummary) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn secs(t: &str) -> Result<f64, StepError> {
    runbook_plugin_sdk::time::parse_time(t)
        .ok_or_else(|| StepError::new("States.Runtime", format!("not an RFC 3339 time: {t}")))
}

/// Waiting ops look at the safety lever first: engaged mid-run, the game day stops
/// waiting and rolls back at its next state (AWS FIS stops an experiment the same way).
fn lever_released() -> Result<(), StepError> {
    let lever = fault::get_lever().map_err(cap)?;
    if lever.engaged {
        return Err(StepError::new(
            "GameDay.LeverEngaged",
            format!(
                "the safety lever was engaged during the game day ({}): rolling back",
                lever.reason.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn run(op: Op) -> Result<Value, StepError> {
    if matches!(
        op,
        Op::SteadyState { .. } | Op::AwaitRecovery { .. } | Op::AwaitLag { .. } | Op::AwaitCaughtUp { .. }
    ) {
        lever_released()?;
    }
    match op {
        Op::StartTraffic { target, replica, writes_per_second, reads_per_second, connections, max_seconds, token } => {
            let s = traffic::start_session(&traffic::SessionSpec {
                target: target.wit(),
                replica: replica.as_ref().map(Target::wit),
                writes_per_second,
                reads_per_second,
                connections,
                write_timeout_ms: 2000,
                max_seconds,
                client_token: token,
            })
            .map_err(cap)?;
            info!("traffic session {} started: {writes_per_second} writes/s over {connections} connections", s.id);
            Ok(summary_json(&s))
        }
        Op::SteadyState { session_id, min_acked } => {
            let s = traffic::describe_session(&session_id).map_err(cap)?;
            if s.failed + s.unknown > 0 {
                return Err(StepError::new(
                    "GameDay.SteadyStateFailed",
                    format!("the client saw {} failed and {} unknown writes before any fault: {}", s.failed, s.unknown, s.last_error.unwrap_or_default()),
                ));
            }
            if s.acked < min_acked {
                return Err(StepError::new("GameDay.NotSteady", format!("{} of {min_acked} writes acknowledged so far", s.acked)));
            }
            Ok(summary_json(&s))
        }
        Op::AwaitRecovery { session_id, since, streak } => {
            let s = traffic::describe_session(&session_id).map_err(cap)?;
            let since_s = secs(&since)?;
            let acked_after = s.last_ack_at.as_deref().and_then(runbook_plugin_sdk::time::parse_time).is_some_and(|t| t > since_s);
            let clean = s.last_error_at.as_deref().and_then(runbook_plugin_sdk::time::parse_time).is_none_or(|t| t < since_s);
            if acked_after && (clean || s.acked_since_error >= streak) {
                return Ok(summary_json(&s));
            }
            Err(StepError::new(
                "GameDay.NotRecovered",
                format!("{} acknowledged in a row since the last error (need {streak}); last error: {}", s.acked_since_error, s.last_error.unwrap_or_default()),
            ))
        }
        Op::AwaitLag { session_id, min_lag_seconds } => {
            let s = traffic::describe_session(&session_id).map_err(cap)?;
            match s.replica_lag_seconds {
                Some(l) if l > min_lag_seconds => Ok(summary_json(&s)),
                l => Err(StepError::new(
                    "GameDay.LagBelow",
                    format!("replica lag {l:?} s, waiting for more than {min_lag_seconds} s"),
                )),
            }
        }
        Op::AwaitCaughtUp { session_id, max_lag_seconds } => {
            let s = traffic::describe_session(&session_id).map_err(cap)?;
            match s.replica_lag_seconds {
                Some(l) if l <= max_lag_seconds => Ok(summary_json(&s)),
                l => Err(StepError::new(
                    "GameDay.LagAbove",
                    format!("replica lag {l:?} s, waiting for at most {max_lag_seconds} s"),
                )),
            }
        }
        Op::StopTraffic { session_id } => Ok(summary_json(&traffic::stop_session(&session_id).map_err(cap)?)),
        Op::Verify { session_id } => {
            let v = traffic::verify_session(&session_id).map_err(cap)?;
            if !v.acked_missing.is_empty() {
                warn!("{} acknowledged writes are missing: {:?}", v.acked_missing.len(), &v.acked_missing[..v.acked_missing.len().min(20)]);
            }
            Ok(serde_json::to_value(&v).unwrap_or(Value::Null))
        }
        Op::Evaluate { session_id, fault_at, rto_target_seconds, max_lost_writes, expect, failover } => {
            let context = json!({ "fault-at": fault_at }).to_string();
            let m: Value = serde_json::from_str(&traffic::measure_session(&session_id, &context).map_err(cap)?)
                .map_err(|e| StepError::new("States.Runtime", format!("measure-session: {e}")))?;
            let lost = m["lost-writes"].as_u64();
            let rto = m["rto-seconds"].as_f64();
            let mut missed = Vec::new();
            match lost {
                Some(n) if n > max_lost_writes => missed.push(format!("lost {n} acknowledged writes (target ≤ {max_lost_writes})")),
                None => missed.push("lost writes unknown: the session was not verified".to_string()),
                _ => {}
            }
            if expect == "refuse" {
                if failover.pointer("/Output/Promoted").and_then(Value::as_bool) == Some(true) {
                    missed.push("the failover was expected to be refused (RPO guard) but it promoted".to_string());
                }
            } else {
                if expect == "stay" && failover.pointer("/Output/Promoted").and_then(Value::as_bool) == Some(true) {
                    missed.push("the failover promoted although the primary kept serving".to_string());
                }
                match rto {
                    Some(r) if r > rto_target_seconds => missed.push(format!("client-seen RTO {r:.2} s (target ≤ {rto_target_seconds} s)")),
                    _ => {}
                }
            }
            let out = json!({
                "Verdict": if missed.is_empty() { "pass" } else { "fail" },
                "Missed": missed,
                "Targets": { "RtoSeconds": rto_target_seconds, "MaxLostWrites": max_lost_writes, "Expect": expect },
                "Measured": m,
            });
            if !missed.is_empty() {
                return Err(StepError::new("GameDay.TargetMissed", out.to_string()));
            }
            info!("verdict: pass (RTO {:?} s, lost {:?})", rto, lost);
            Ok(out)
        }
    }
}

export_step!(run);
