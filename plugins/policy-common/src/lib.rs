//! What every failover policy shares (`lag-guard`, `always`): the facts a policy decides
//! on, parsed from its input, and the preconditions of any promotion.
//!
//! Input: `{Primary: {Status, Reachable}, Replica: {Status, IsReplica, Exists}, Lag:
//! {LagSeconds}, Force, MaxLagSeconds, RequireLag}`.
use runbook_plugin_sdk::StepError;
use serde_json::Value;

pub struct Facts {
    pub primary_healthy: bool,
    pub replica_status: String,
    pub replica_exists: bool,
    pub replica_is_replica: bool,
    pub lag_seconds: Option<f64>,
    pub max_lag_seconds: f64,
    pub force: bool,
    pub require_lag: bool,
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl Facts {
    pub fn from(input: &Value) -> Result<Facts, StepError> {
        let p = &input["Primary"];
        let r = &input["Replica"];
        if !p.is_object() || !r.is_object() {
            return Err(StepError::new("InvalidParameterValue", "policy input needs Primary and Replica objects"));
        }
        // Healthy = the control plane says available AND the server answered probes.
        let primary_healthy = p["Status"].as_str() == Some("available") && truthy(&p["Reachable"]);
        Ok(Facts {
            primary_healthy,
            replica_status: r["Status"].as_str().unwrap_or("unknown").to_string(),
            replica_exists: r["Exists"].as_bool().unwrap_or(false),
            replica_is_replica: r["IsReplica"].as_bool().unwrap_or(false),
            lag_seconds: input["Lag"]["LagSeconds"].as_f64(),
            max_lag_seconds: input["MaxLagSeconds"].as_f64().unwrap_or(60.0),
            force: truthy(&input["Force"]),
            require_lag: truthy(&input["RequireLag"]),
        })
    }
}

/// Decisions every policy shares: there must be a replica to promote.
pub fn preconditions(f: &Facts) -> Option<(&'static str, String)> {
    if !f.replica_exists {
        return Some(("refuse", "there is no replica to promote".to_string()));
    }
    if !f.replica_is_replica {
        return Some(("none", "the replica is already standalone (failover done before?)".to_string()));
    }
    if f.replica_status != "available" {
        return Some(("refuse", format!("the replica is {}, not available", f.replica_status)));
    }
    None
}
