//! Route 53 health checks run by the daemon: PostgreSQL protocol probes (`POSTGRES`),
//! TCP connects (`TCP`, `HTTP`, `HTTPS`), or an alarm's state (`CLOUDWATCH_METRIC`),
//! every `request-interval` seconds, flipping after `failure-threshold` results in a row.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runbook_caps::types::route53::{HealthCheck, HealthCheckStatus};
use tokio::task::JoinHandle;
use tracing::info;

use crate::daemon::Ctx;

#[derive(Debug, Clone)]
struct Status {
    healthy: bool,
    failures: u32,
    successes: u32,
    observations: VecDeque<String>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            healthy: true,
            failures: 0,
            successes: 0,
            observations: VecDeque::new(),
        }
    }
}

struct Check {
    config: String,
    task: JoinHandle<()>,
    status: Arc<Mutex<Status>>,
}

#[derive(Default)]
pub struct Health {
    checks: Mutex<HashMap<String, Check>>,
}

impl Health {
    /// Unknown checks count as healthy (Route 53 starts a new check healthy too).
    pub fn is_healthy(&self, id: &str) -> bool {
        self.checks
            .lock()
            .expect("health")
            .get(id)
            .is_none_or(|c| c.status.lock().expect("status").healthy)
    }

    pub fn status(&self, id: &str) -> HealthCheckStatus {
        let checks = self.checks.lock().expect("health");
        let st = checks
            .get(id)
            .map(|c| c.status.lock().expect("status").clone())
            .unwrap_or_default();
        HealthCheckStatus {
            id: id.to_string(),
            healthy: st.healthy,
            observations: st.observations.into_iter().collect(),
        }
    }
}

/// Start checks that appeared (or changed), stop those deleted.
pub(crate) fn reconcile(ctx: &Arc<Ctx>) {
    let desired: HashMap<String, HealthCheck> =
        ctx.read(|s| s.global.health_checks.clone().into_iter().collect());
    let mut checks = ctx.health.checks.lock().expect("health");
    checks.retain(|id, c| {
        let keep = desired
            .get(id)
            .is_some_and(|hc| serde_json::to_string(&hc.config).unwrap_or_default() == c.config);
        if !keep {
            c.task.abort();
        }
        keep
    });
    for (id, hc) in desired {
        if checks.contains_key(&id) {
            continue;
        }
        let status = Arc::new(Mutex::new(Status::default()));
        let task = tokio::spawn(run(ctx.clone(), hc.clone(), status.clone()));
        checks.insert(
            id,
            Check {
                config: serde_json::to_string(&hc.config).unwrap_or_default(),
                task,
                status,
            },
        );
    }
}

async fn run(ctx: Arc<Ctx>, hc: HealthCheck, status: Arc<Mutex<Status>>) {
    let cfg = hc.config.clone();
    let interval = Duration::from_secs(u64::from(cfg.request_interval.max(1)));
    let threshold = cfg.failure_threshold.max(1);
    loop {
        let result = probe(&ctx, &hc).await;
        {
            let mut st = status.lock().expect("status");
            let now = crate::ids::now_str();
            match &result {
                Ok(msg) => {
                    st.successes += 1;
                    st.failures = 0;
                    st.observations
                        .push_front(format!("Success: {msg} ({now})"));
                    if !st.healthy && st.successes >= threshold {
                        st.healthy = true;
                        info!(id = %hc.id, "health check healthy");
                    }
                }
                Err(msg) => {
                    st.failures += 1;
                    st.successes = 0;
                    st.observations
                        .push_front(format!("Failure: {msg} ({now})"));
                    if st.healthy && st.failures >= threshold {
                        st.healthy = false;
                        info!(id = %hc.id, reason = %msg, "health check unhealthy");
                    }
                }
            }
            st.observations.truncate(8);
        }
        tokio::time::sleep(interval).await;
    }
}

async fn probe(ctx: &Ctx, hc: &HealthCheck) -> Result<String, String> {
    let cfg = &hc.config;
    let timeout = Duration::from_secs(2);
    match cfg.check_type.as_str() {
        "CLOUDWATCH_METRIC" => {
            let (Some(name), Some(region)) = (&cfg.alarm_name, &cfg.alarm_region) else {
                return Err("no alarm configured".into());
            };
            let state = ctx.read(|s| {
                s.region(region)
                    .and_then(|r| r.alarms.get(name))
                    .map(|a| a.alarm.spec.alarm_name.clone() + "|" + &a.alarm.state_value)
            });
            match state.as_deref().and_then(|s| s.split('|').nth(1)) {
                Some("OK") => Ok("alarm state OK".into()),
                Some("ALARM") => Err("alarm state ALARM".into()),
                _ => match cfg.insufficient_data_health_status.as_deref() {
                    Some("Unhealthy") => Err("alarm has insufficient data".into()),
                    _ => Ok("alarm has insufficient data".into()),
                },
            }
        }
        kind => {
            let port = target_port(ctx, hc).ok_or_else(|| "target does not resolve".to_string())?;
            if kind == "POSTGRES" {
                crate::pg::probe(port, timeout).await
            } else {
                match tokio::time::timeout(
                    timeout,
                    tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
                )
                .await
                {
                    Ok(Ok(_)) => Ok("TCP connection established".into()),
                    Ok(Err(e)) => Err(format!("TCP connect: {e}")),
                    Err(_) => Err("TCP connect timed out".into()),
                }
            }
        }
    }
}

fn target_port(ctx: &Ctx, hc: &HealthCheck) -> Option<u16> {
    let cfg = &hc.config;
    if let Some(id) = &cfg.db_instance_identifier {
        return ctx.read(|s| {
            let (r, i) = s.find_instance(id, cfg.db_instance_region.as_deref())?;
            s.instance(&r, &i).map(|x| x.nodes[0].port)
        });
    }
    if let Some(fqdn) = &cfg.fqdn {
        return crate::net::resolve_for_client(ctx, fqdn, None);
    }
    if let (Some(ip), Some(port)) = (&cfg.ip_address, cfg.port)
        && (ip == "127.0.0.1" || ip == "localhost")
    {
        return Some(port);
    }
    None
}
