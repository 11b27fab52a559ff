//! Readiness (what AWS ARC Region switch calls plan evaluation): regularly dry-run the
//! environment's failover against the provider (`plan` of failover.yaml with
//! `Force=true`: reads for real, mutating calls recorded) and check directly what a
//! failover will need. The answer is `ready` or `not ready: <reasons>`, journaled and
//! notified when it changes, so a failover that would fail is found on a quiet
//! afternoon, not during the outage.

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::{CapCall, Provider};
use runbook_journal::now_ms;
use serde_json::{Value, json};

use crate::config::EnvironmentConfig;
use crate::{ReadinessEntry, Serve, signals, watch};

async fn call(p: &Arc<dyn Provider>, c: CapCall) -> Result<Value, String> {
    let name = c.iam_name();
    crate::signals::bounded(p, c, Duration::from_secs(10))
        .await
        .map_err(|e| format!("{name}: {} ({})", e.message, e.code))
}

/// The direct checks; each failure is one reason.
async fn direct_checks(p: &Arc<dyn Provider>, env: &EnvironmentConfig) -> Vec<String> {
    let mut reasons = Vec::new();
    // The replica exists, is available and is a replica.
    match call(
        p,
        CapCall {
            service: "rds".into(),
            action: "DescribeDBInstances".into(),
            region: Some(env.replica_region.clone()),
            resource: Some(env.replica()),
            args: json!({"identifier": env.replica()}),
        },
    )
    .await
    {
        Ok(v) => match v.as_array().and_then(|a| a.first()) {
            None => reasons.push(format!("replica {} does not exist", env.replica())),
            Some(db) => {
                let status = db["status"].as_str().unwrap_or("?");
                if status != "available" {
                    reasons.push(format!(
                        "replica {} is {status}, not available",
                        env.replica()
                    ));
                }
                if db["read_replica_source"].is_null() {
                    reasons.push(format!(
                        "{} is not a read replica (already promoted?)",
                        env.replica()
                    ));
                }
            }
        },
        Err(e) if e.contains("NotFound") => {
            reasons.push(format!("replica {} does not exist ({e})", env.replica()))
        }
        Err(e) => reasons.push(format!("cannot describe the replica: {e}")),
    }
    // The secret is readable in the replica region (failover reads only that copy).
    if let Err(e) = call(
        p,
        CapCall {
            service: "secretsmanager".into(),
            action: "DescribeSecret".into(),
            region: Some(env.replica_region.clone()),
            resource: Some(env.secret()),
            args: json!({"secret_id": env.secret()}),
        },
    )
    .await
    {
        reasons.push(format!(
            "secret {} is not readable in {} ({e})",
            env.secret(),
            env.replica_region
        ));
    }
    // The replica streams and is within the RPO guard.
    let g = signals::gather(p, env).await;
    let r = &g.replica;
    if !r.reachable {
        reasons.push(format!("replica does not answer: {}", r.detail));
    } else {
        if r.in_recovery == Some(false) {
            reasons.push("replica is not in recovery (it is a primary)".into());
        }
        if r.receiving_from_primary == Some(false) {
            reasons.push(format!(
                "replica is not streaming from the primary: {}",
                r.detail
            ));
        }
        if let Some(lag) = r.lag_seconds
            && lag > env.watcher.max_lag_seconds
        {
            reasons.push(format!(
                "replica lags {lag:.1} s, beyond the {:.0} s guard",
                env.watcher.max_lag_seconds
            ));
        }
    }
    // The health check and the alarm the watcher reads exist.
    for (sig, reading) in &g.readings {
        if let runbook_watcher::Reading::Unknown { detail } = reading
            && (detail.starts_with("no health check") || detail.starts_with("no alarm"))
        {
            reasons.push(format!("{}: {detail}", sig.name()));
        }
    }
    reasons
}

/// Plan the failover with Force=true; a plan that would not promote is a reason.
async fn plan_reasons(s: &Arc<Serve>, env: &EnvironmentConfig) -> Vec<String> {
    let runner = s.runner.clone();
    let env2 = env.clone();
    let handle = tokio::runtime::Handle::current();
    let res = tokio::task::spawn_blocking(move || {
        let prepared = runner.prepare(&env2.failover_runbook)?;
        let mut params = env2.params.clone();
        for (k, v) in &env2.failover_params {
            params.insert(k.clone(), v.clone());
        }
        params.insert("Force".into(), Value::Bool(true));
        let input =
            runbook_engine::build_input(&prepared.runbook.meta, Value::Object(params), &[])?;
        runner.plan(&prepared, input, Some(&env2.provider), &handle)
    })
    .await;
    match res {
        Err(e) => vec![format!("planning the failover panicked: {e}")],
        Ok(Err(e)) => vec![format!("failover runbook: {e:#}")],
        Ok(Ok(report)) => {
            if report.status == "SUCCEEDED" {
                return if report
                    .calls
                    .iter()
                    .any(|c| c.action == "PromoteReadReplica")
                {
                    Vec::new()
                } else {
                    vec!["a forced failover would not promote the replica".into()]
                };
            }
            // A plan records mutating calls without making them, so a step that waits
            // for one to take effect on a live server (the fence making the primary
            // read-only) cannot pass in a plan. Everything before the first recorded
            // mutation was verified against the provider: a failure there is a reason,
            // one after it is the plan's horizon.
            let first_failure = report.steps.iter().position(|st| st.result != "ok");
            let first_mutation = report
                .calls
                .first()
                .and_then(|c| report.steps.iter().position(|st| st.state == c.state));
            match (first_failure, first_mutation) {
                (Some(f), Some(m)) if f > m => {
                    tracing::debug!(
                        environment = %env.name,
                        horizon = %report.steps[f].state,
                        "readiness plan verified the failover up to its first recorded mutation"
                    );
                    Vec::new()
                }
                _ => vec![format!(
                    "a forced failover would fail{}: {} {}",
                    first_failure
                        .map(|f| format!(" at {}", report.steps[f].state))
                        .unwrap_or_default(),
                    report.error.unwrap_or_default(),
                    report.cause.unwrap_or_default()
                )],
            }
        }
    }
}

pub(crate) async fn check(
    s: &Arc<Serve>,
    env: &EnvironmentConfig,
    p: &Arc<dyn Provider>,
) -> Vec<String> {
    let mut reasons = direct_checks(p, env).await;
    // The plan repeats what the direct checks found missing; only plan when they pass,
    // so the reasons stay short and each names one cause.
    if reasons.is_empty() {
        reasons.extend(plan_reasons(s, env).await);
    }
    reasons
}

pub(crate) async fn run_loop(
    s: Arc<Serve>,
    env: EnvironmentConfig,
    mut rx: tokio::sync::watch::Receiver<bool>,
) {
    let Some(interval) = env.readiness_interval else {
        return;
    };
    let p = match s.runner.providers().make(&env.provider) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(environment = %env.name, error = %e, "readiness has no provider");
            return;
        }
    };
    loop {
        let reasons = check(&s, &env, &p).await;
        let ready = reasons.is_empty();
        let at = now_ms();
        let prev = s
            .shared()
            .readiness
            .get(&env.name)
            .cloned()
            .unwrap_or_default();
        let changed = prev.ready != Some(ready) || (!ready && prev.reasons != reasons);
        s.shared().readiness.insert(
            env.name.clone(),
            ReadinessEntry {
                ready: Some(ready),
                reasons: reasons.clone(),
                checked_ms: Some(at),
            },
        );
        if changed {
            let action = if ready { "ready" } else { "not-ready" };
            let _ = s.journal().record_decision(
                at,
                "readiness",
                &env.name,
                action,
                &json!({"ready": ready, "reasons": reasons}),
            );
            tracing::info!(environment = %env.name, ready, ?reasons, "readiness changed");
            // The first check after start is news only when it is bad.
            if prev.ready.is_some() || !ready {
                let subject = if ready {
                    format!("runbook serve: {} is ready to fail over", env.name)
                } else {
                    format!("runbook serve: {} is NOT ready to fail over", env.name)
                };
                let message = if ready {
                    "every readiness check passed".to_string()
                } else {
                    reasons.join("\n")
                };
                if let Err(e) = watch::notify(&s, &p, &env, &subject, &message).await {
                    tracing::warn!(environment = %env.name, error = %e, "readiness notification not sent");
                }
            }
        }
        if crate::pause(&mut rx, interval).await {
            return;
        }
    }
}
