//! Gathering one watcher round: four independent readings of the primary and the
//! replica's own view, all through the provider (the same calls a runbook's plugins
//! make), concurrently, each bounded by a timeout. A call that cannot be made — the
//! monitoring API is down, throttled, too slow, or the secret cannot be read — is
//! `Unknown`, never `Failed`.

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::{CapCall, CapError, ErrorKind, Provider};
use runbook_watcher::{Reading, ReplicaView, Signal};
use serde_json::{Value, json};

use crate::config::EnvironmentConfig;

/// Everything gathered in one round, before the lever and lock facts are added.
pub(crate) struct Gathered {
    pub readings: Vec<(Signal, Reading)>,
    pub replica: ReplicaView,
}

fn target(env: &EnvironmentConfig, endpoint: String, region: &str, timeout: Duration) -> Value {
    json!({
        "endpoint": endpoint,
        "region": region,
        "database": env.database,
        "secret_id": env.secret(),
        // The replica region's copy: nothing in a lost primary region is needed.
        "secret_region": env.replica_region,
        "connect_timeout_ms": timeout.as_millis() as u32,
    })
}

fn query_call(
    env: &EnvironmentConfig,
    endpoint: String,
    region: &str,
    sql: &str,
    timeout: Duration,
) -> CapCall {
    CapCall {
        service: "postgres".into(),
        action: "Query".into(),
        region: Some(region.to_string()),
        resource: Some(endpoint.clone()),
        args: json!({"target": target(env, endpoint, region, timeout), "sql": sql, "params": []}),
    }
}

pub(crate) async fn bounded(
    p: &Arc<dyn Provider>,
    call: CapCall,
    timeout: Duration,
) -> Result<Value, CapError> {
    match tokio::time::timeout(timeout, p.call(call)).await {
        Ok(r) => r,
        Err(_) => Err(CapError::unavailable(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// Errors of a monitoring API: we could not look, which says nothing about the primary.
fn unknown(e: &CapError) -> Reading {
    Reading::unknown(format!("{}: {}", e.code, e.message))
}

async fn probe(p: &Arc<dyn Provider>, env: &EnvironmentConfig) -> Reading {
    let call = query_call(
        env,
        env.primary(),
        &env.primary_region,
        "SELECT 1",
        env.probe_timeout,
    );
    match bounded(p, call, env.probe_timeout + Duration::from_millis(200)).await {
        Ok(_) => Reading::healthy("SELECT 1 answered"),
        // The credentials could not be read (Secrets Manager down): the probe never ran.
        Err(e) if e.message.contains("secretsmanager") || e.kind == ErrorKind::AccessDenied => {
            unknown(&e)
        }
        Err(e) if e.kind == ErrorKind::NotFound && e.message.contains("ecret") => unknown(&e),
        // Connection refused, reset, timed out, or the server refuses sessions.
        Err(e) => Reading::failed(format!("{}: {}", e.code, e.message)),
    }
}

async fn control_plane(
    p: &Arc<dyn Provider>,
    env: &EnvironmentConfig,
    timeout: Duration,
) -> Reading {
    let call = CapCall {
        service: "rds".into(),
        action: "DescribeDBInstances".into(),
        region: Some(env.primary_region.clone()),
        resource: Some(env.primary()),
        args: json!({"identifier": env.primary()}),
    };
    match bounded(p, call, timeout).await {
        Ok(v) => {
            let status = v
                .as_array()
                .and_then(|a| a.first())
                .and_then(|d| d["status"].as_str())
                .unwrap_or("")
                .to_string();
            match status.as_str() {
                "available"
                | "backing-up"
                | "modifying"
                | "configuring-enhanced-monitoring"
                | "configuring-log-exports"
                | "upgrading"
                | "storage-optimization"
                | "maintenance"
                | "renaming" => Reading::healthy(format!("status {status}")),
                "" => Reading::unknown("DescribeDBInstances returned no instance"),
                s => Reading::failed(format!("status {s}")),
            }
        }
        Err(e) if e.kind == ErrorKind::NotFound => {
            Reading::failed(format!("{}: {}", e.code, e.message))
        }
        Err(e) => unknown(&e),
    }
}

async fn health_check(
    p: &Arc<dyn Provider>,
    env: &EnvironmentConfig,
    timeout: Duration,
) -> Reading {
    let list = CapCall {
        service: "route53".into(),
        action: "ListHealthChecks".into(),
        region: None,
        resource: None,
        args: json!({}),
    };
    let checks = match bounded(p, list, timeout).await {
        Ok(v) => v,
        Err(e) => return unknown(&e),
    };
    let primary = env.primary();
    let Some(id) = checks.as_array().and_then(|a| {
        a.iter()
            .find(|h| h["name"].as_str() == Some(primary.as_str()))
            .and_then(|h| h["id"].as_str().map(String::from))
    }) else {
        return Reading::unknown(format!("no health check named {primary}"));
    };
    let get = CapCall {
        service: "route53".into(),
        action: "GetHealthCheckStatus".into(),
        region: None,
        resource: Some(id.clone()),
        args: json!({"id": id}),
    };
    match bounded(p, get, timeout).await {
        Ok(v) => {
            let last = v["observations"]
                .as_array()
                .and_then(|o| o.last())
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if v["healthy"].as_bool() == Some(true) {
                Reading::healthy(
                    format!("health check {id} healthy {last}")
                        .trim()
                        .to_string(),
                )
            } else {
                Reading::failed(
                    format!("health check {id} unhealthy {last}")
                        .trim()
                        .to_string(),
                )
            }
        }
        Err(e) => unknown(&e),
    }
}

async fn alarm(p: &Arc<dyn Provider>, env: &EnvironmentConfig, timeout: Duration) -> Reading {
    let name = format!("{}-health", env.primary());
    let call = CapCall {
        service: "cloudwatch".into(),
        action: "DescribeAlarms".into(),
        region: Some(env.primary_region.clone()),
        resource: None,
        args: json!({"alarm_names": [name], "name_prefix": null}),
    };
    match bounded(p, call, timeout).await {
        Ok(v) => match v
            .as_array()
            .and_then(|a| a.first())
            .and_then(|a| a["state_value"].as_str())
        {
            Some("ALARM") => Reading::failed(format!("alarm {name} in ALARM")),
            Some("OK") => Reading::healthy(format!("alarm {name} OK")),
            Some(s) => Reading::unknown(format!("alarm {name} {s}")),
            None => Reading::unknown(format!("no alarm named {name}")),
        },
        Err(e) => unknown(&e),
    }
}

const REPLICA_SQL: &str = "SELECT pg_is_in_recovery()::text, \
     COALESCE((SELECT status FROM pg_stat_wal_receiver), 'none'), \
     COALESCE((SELECT EXTRACT(EPOCH FROM now() - last_msg_receipt_time)::text FROM pg_stat_wal_receiver), ''), \
     COALESCE((pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn())::text, 'false'), \
     COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::text, '')";

async fn replica(p: &Arc<dyn Provider>, env: &EnvironmentConfig) -> ReplicaView {
    let timeout = env.probe_timeout.max(Duration::from_millis(500));
    let call = query_call(
        env,
        env.replica(),
        &env.replica_region,
        REPLICA_SQL,
        timeout,
    );
    match bounded(p, call, timeout + Duration::from_millis(500)).await {
        Err(e) => ReplicaView {
            reachable: false,
            in_recovery: None,
            receiving_from_primary: None,
            lag_seconds: None,
            detail: format!("{}: {}", e.code, e.message),
        },
        Ok(v) => {
            let row: Vec<Option<String>> = v["rows"]
                .as_array()
                .and_then(|r| r.first())
                .and_then(|r| serde_json::from_value(r.clone()).ok())
                .unwrap_or_default();
            let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let in_recovery = cell(0) == "true";
            let status = cell(1);
            let msg_age: Option<f64> = cell(2).parse().ok();
            let behind = cell(3) == "true";
            let replay_age: Option<f64> = cell(4).parse().ok();
            let receiving = status == "streaming"
                && msg_age.is_some_and(|a| a <= env.receiving_window.as_secs_f64());
            // Lag is only what is received and not yet replayed; time since the last
            // replayed commit is idleness, not lag, when nothing waits to be replayed.
            let lag = if behind {
                replay_age.or(Some(0.0))
            } else {
                Some(0.0)
            };
            ReplicaView {
                reachable: true,
                in_recovery: Some(in_recovery),
                receiving_from_primary: Some(receiving),
                lag_seconds: lag,
                detail: format!(
                    "wal receiver {status}, last message {} ago, {}",
                    msg_age
                        .map(|a| format!("{a:.1}s"))
                        .unwrap_or_else(|| "never".into()),
                    if behind {
                        "replaying"
                    } else {
                        "caught up with what it received"
                    }
                ),
            }
        }
    }
}

/// One round's readings and the replica view, gathered at once.
pub(crate) async fn gather(p: &Arc<dyn Provider>, env: &EnvironmentConfig) -> Gathered {
    // Monitoring APIs get most of the round; a slow one reads Unknown.
    let api_timeout = env.interval.max(Duration::from_millis(800));
    let (probe, cp, hc, al, rep) = tokio::join!(
        probe(p, env),
        control_plane(p, env, api_timeout),
        health_check(p, env, api_timeout),
        alarm(p, env, api_timeout),
        replica(p, env),
    );
    Gathered {
        readings: vec![
            (Signal::Probe, probe),
            (Signal::HealthCheck, hc),
            (Signal::Alarm, al),
            (Signal::ControlPlane, cp),
        ],
        replica: rep,
    }
}
