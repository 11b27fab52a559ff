//! rust-lag-guard: a failover policy for runbook (a copy of the built-in `lag-guard` to start
//! from). Promote the replica when the primary is unhealthy, unless it lags beyond
//! `MaxLagSeconds`; `Force` promotes anyway.
//!
//! Input (what `runbooks/failover.yaml` passes its policy): `{Primary: {Status,
//! Reachable}, Replica: {Status, IsReplica, Exists}, Lag: {LagSeconds}, Force,
//! MaxLagSeconds, RequireLag}`. Output: `{Decision: promote | none | refuse, Reason, ...}`.
//!
//! Build:  cargo build --target wasm32-wasip2 --release
//! Test:   runbook plugin test target/wasm32-wasip2/release/rust_lag_guard.wasm --input @examples/primary-down.json

// The `policy` world imports `log` only: a policy needs no capability grant.
wit_bindgen::generate!({
    path: "wit",
    world: "runbook:plugin/policy",
});

use runbook::plugin::log::{Level, log};
use serde_json::{Value, json};

struct Policy;

impl Guest for Policy {
    fn run(input: String) -> Result<String, StepError> {
        let input: Value = serde_json::from_str(&input).map_err(|e| StepError {
            error: "States.Runtime".into(),
            cause: format!("input is not JSON: {e}"),
        })?;
        let out = decide(&input)?;
        let level = if out["Decision"] == "refuse" { Level::Warn } else { Level::Info };
        let say = |k: &str| out[k].as_str().unwrap_or_default().to_string();
        log(level, &format!("decision: {}: {}", say("Decision"), say("Reason")));
        Ok(out.to_string())
    }
}

export!(Policy);

fn truthy(v: &Value) -> bool {
    v.as_bool().unwrap_or(false) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// The decision, as a pure function of the input (unit-testable with `cargo test`).
pub fn decide(input: &Value) -> Result<Value, StepError> {
    let (p, r) = (&input["Primary"], &input["Replica"]);
    if !p.is_object() || !r.is_object() {
        // An ASL error name: a runbook's Retry/Catch can match it.
        return Err(StepError {
            error: "InvalidParameterValue".into(),
            cause: "policy input needs Primary and Replica objects".into(),
        });
    }
    let primary_healthy = p["Status"].as_str() == Some("available") && truthy(&p["Reachable"]);
    let replica_status = r["Status"].as_str().unwrap_or("unknown");
    let lag = input["Lag"]["LagSeconds"].as_f64();
    let max_lag = input["MaxLagSeconds"].as_f64().unwrap_or(60.0);
    let force = truthy(&input["Force"]);
    let (decision, reason) = if !r["Exists"].as_bool().unwrap_or(false) {
        ("refuse", "there is no replica to promote".to_string())
    } else if !r["IsReplica"].as_bool().unwrap_or(false) {
        ("none", "the replica is already standalone".to_string())
    } else if replica_status != "available" {
        ("refuse", format!("the replica is {replica_status}, not available"))
    } else if force {
        ("promote", "forced by the operator".to_string())
    } else if primary_healthy {
        ("none", "the primary is healthy".to_string())
    } else {
        match lag {
            Some(l) if l > max_lag => (
                "refuse",
                format!("replica lag {l:.1} s exceeds {max_lag:.1} s; run with Force=true to accept"),
            ),
            Some(l) => ("promote", format!("the primary is unhealthy and the replica lag {l:.1} s is within {max_lag:.1} s")),
            None if truthy(&input["RequireLag"]) => {
                ("refuse", "no replica lag measurement: cannot bound data loss".to_string())
            }
            None => ("promote", "the primary is unhealthy (no lag measurement)".to_string()),
        }
    };
    Ok(json!({
        "Policy": "rust-lag-guard",
        "Decision": decision,
        "Reason": reason,
        "LagSeconds": lag,
        "MaxLagSeconds": max_lag,
        "PrimaryHealthy": primary_healthy,
        "Forced": force,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(primary: &str, lag: f64) -> Value {
        json!({
            "Primary": {"Status": primary, "Reachable": primary == "available"},
            "Replica": {"Status": "available", "IsReplica": true, "Exists": true},
            "Lag": {"LagSeconds": lag},
            "MaxLagSeconds": 60,
        })
    }

    #[test]
    fn promotes_an_unhealthy_primary_within_the_lag_bound() {
        assert_eq!(decide(&facts("failed", 5.0)).unwrap()["Decision"], "promote");
        assert_eq!(decide(&facts("failed", 600.0)).unwrap()["Decision"], "refuse");
        assert_eq!(decide(&facts("available", 5.0)).unwrap()["Decision"], "none");
    }
}
