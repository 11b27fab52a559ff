//! Failover policy without an RPO guard: promote whenever the primary is unhealthy (or
//! when forced), whatever the replica lag. Availability over durability.
use runbook_plugin_sdk::{StepError, export_step, info};
use serde_json::{Value, json};

use runbook_policy_common as decide;

fn run(input: Value) -> Result<Value, StepError> {
    let f = decide::Facts::from(&input)?;
    let (decision, reason) = match decide::preconditions(&f) {
        Some(d) => d,
        None if f.force => ("promote", "forced by the operator".to_string()),
        None if f.primary_healthy => ("none", "the primary is healthy".to_string()),
        None => ("promote", format!("the primary is unhealthy (replica lag {} not considered)", f.lag_seconds.map(|l| format!("{l:.1} s")).unwrap_or_else(|| "unknown".into()))),
    };
    info!("decision: {decision}: {reason}");
    Ok(json!({ "Policy": "always", "Decision": decision, "Reason": reason, "LagSeconds": f.lag_seconds, "PrimaryHealthy": f.primary_healthy, "Forced": f.force }))
}

export_step!(run);
