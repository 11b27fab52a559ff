//! Failover policy with an RPO guard (the Patroni `maximum_lag_on_failover` rule):
//! promote the replica when the primary is unhealthy, unless the replica lags beyond
//! `MaxLagSeconds`; `Force` promotes anyway (drills, operator decisions). The decision
//! and the lag it was based on are the step's result, so they land in the journal.
use runbook_plugin_sdk::{StepError, export_step, info, warn};
use serde_json::{Value, json};

use runbook_policy_common as decide;

fn run(input: Value) -> Result<Value, StepError> {
    let f = decide::Facts::from(&input)?;
    let base = decide::preconditions(&f);
    let (decision, reason) = match base {
        Some(d) => d,
        None if f.force => ("promote", "forced by the operator".to_string()),
        None if f.primary_healthy => ("none", "the primary is healthy".to_string()),
        None => match f.lag_seconds {
            Some(lag) if lag > f.max_lag_seconds => (
                "refuse",
                format!("replica lag {lag:.1} s exceeds {:.1} s: promoting could lose that much; run with Force=true to accept", f.max_lag_seconds),
            ),
            Some(lag) => ("promote", format!("the primary is unhealthy and the replica lag {lag:.1} s is within {:.1} s", f.max_lag_seconds)),
            None if f.require_lag => ("refuse", "no replica lag measurement: cannot bound data loss".to_string()),
            None => ("promote", "the primary is unhealthy (no lag measurement)".to_string()),
        },
    };
    if decision == "refuse" { warn!("{reason}") } else { info!("decision: {decision}: {reason}") }
    Ok(json!({ "Policy": "lag-guard", "Decision": decision, "Reason": reason, "LagSeconds": f.lag_seconds, "MaxLagSeconds": f.max_lag_seconds, "PrimaryHealthy": f.primary_healthy, "Forced": f.force }))
}

export_step!(run);
