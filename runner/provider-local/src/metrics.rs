//! Metrics: samples taken from the servers (`ReplicaLag`, `CPUUtilization`,
//! `DatabaseConnections`, `FreeStorageSpace` in `AWS/RDS`) plus put-metric-data, kept in
//! memory for three hours and appended to `regions/R/metrics.jsonl` so a restarted
//! daemon still has its history.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runbook_caps::types::cloudwatch::Dimension;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::daemon::Ctx;
use crate::layout::Layout;
use crate::state::{InstanceRec, State};

const KEEP_SECS: f64 = 3.0 * 3600.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub namespace: String,
    pub metric: String,
    pub dims: Vec<Dimension>,
    pub ts: f64,
    pub value: f64,
    pub unit: Option<String>,
}

#[derive(Default)]
struct Store {
    by_region: HashMap<String, Vec<Sample>>,
}

#[derive(Default)]
pub struct Metrics {
    store: Mutex<Store>,
    /// Per instance: CPU ticks and wall time of the previous sample.
    cpu_prev: Mutex<HashMap<String, (u64, f64)>>,
    /// Per replica: when it was last seen caught up (for lag while disconnected).
    caught_up: Mutex<HashMap<String, f64>>,
    clients: tokio::sync::Mutex<HashMap<String, tokio_postgres::Client>>,
}

fn sorted(mut d: Vec<Dimension>) -> Vec<Dimension> {
    d.sort_by(|a, b| a.name.cmp(&b.name));
    d
}

impl Metrics {
    pub fn load(layout: &Layout, state: &State) -> Metrics {
        let m = Metrics::default();
        let cutoff = crate::ids::unix_now() - KEEP_SECS;
        let mut store = m.store.lock().expect("metrics");
        for region in state.regions.keys() {
            let path = layout.metrics_file(region);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let kept: Vec<Sample> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Sample>(l).ok())
                .filter(|s| s.ts >= cutoff)
                .collect();
            // Rewrite without the expired samples so the file stays bounded.
            let body: String = kept
                .iter()
                .map(|s| serde_json::to_string(s).unwrap() + "\n")
                .collect();
            let _ = std::fs::write(&path, body);
            store.by_region.insert(region.clone(), kept);
        }
        drop(store);
        m
    }

    pub fn put(&self, layout: &Layout, region: &str, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        let path = layout.metrics_file(region);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let body: String = samples
                .iter()
                .map(|s| serde_json::to_string(s).unwrap() + "\n")
                .collect();
            let _ = f.write_all(body.as_bytes());
        }
        let cutoff = crate::ids::unix_now() - KEEP_SECS;
        let mut store = self.store.lock().expect("metrics");
        let v = store.by_region.entry(region.to_string()).or_default();
        v.retain(|s| s.ts >= cutoff);
        v.extend(samples.into_iter().map(|mut s| {
            s.dims = sorted(s.dims);
            s
        }));
    }

    /// Samples of one metric with exactly these dimensions in [start, end).
    pub fn query(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dims: &[Dimension],
        start: f64,
        end: f64,
    ) -> Vec<Sample> {
        let dims = sorted(dims.to_vec());
        let store = self.store.lock().expect("metrics");
        store
            .by_region
            .get(region)
            .map(|v| {
                v.iter()
                    .filter(|s| {
                        s.namespace == namespace
                            && s.metric == metric
                            && s.dims == dims
                            && s.ts >= start
                            && s.ts < end
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(crate) fn spawn_sampler(ctx: Arc<Ctx>) {
    tokio::spawn(async move {
        loop {
            let every = ctx.read(|s| s.global.sample_interval_ms.unwrap_or(1000));
            tokio::time::sleep(Duration::from_millis(every)).await;
            let all: Vec<(String, InstanceRec)> = ctx.read(|s| {
                s.regions
                    .iter()
                    .flat_map(|(r, x)| x.instances.values().map(move |i| (r.clone(), i.clone())))
                    .filter(|(_, i)| {
                        i.running
                            && matches!(
                                i.db.status.as_str(),
                                "available" | "modifying" | "backing-up"
                            )
                    })
                    .collect()
            });
            for (region, rec) in all {
                let samples = sample(&ctx, &region, &rec).await;
                ctx.metrics.put(&ctx.layout, &region, samples);
            }
        }
    });
}

async fn sample(ctx: &Ctx, region: &str, rec: &InstanceRec) -> Vec<Sample> {
    let key = format!("{region}/{}", rec.db.identifier);
    let now = crate::ids::unix_now();
    let dims = vec![Dimension {
        name: "DBInstanceIdentifier".into(),
        value: rec.db.identifier.clone(),
    }];
    let mk = |metric: &str, value: f64, unit: &str| Sample {
        namespace: "AWS/RDS".into(),
        metric: metric.into(),
        dims: dims.clone(),
        ts: now,
        value,
        unit: Some(unit.into()),
    };
    let mut out = Vec::new();
    let data = ctx.layout.node_dir(region, &rec.nodes[0].name);
    let Some(pid) = crate::pg::postmaster_pid(&data) else {
        // A dead replica has no lag reading; a breaching alarm on missing data covers it.
        return out;
    };
    if let Some(ticks) = cpu_ticks(pid) {
        let mut prev = ctx.metrics.cpu_prev.lock().expect("cpu");
        if let Some((t0, w0)) = prev.get(&key).copied()
            && now > w0
        {
            let hz = 100.0;
            let cpus = std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0);
            let pct = ((ticks.saturating_sub(t0)) as f64 / hz) / (now - w0) / cpus * 100.0;
            out.push(mk("CPUUtilization", pct.clamp(0.0, 100.0), "Percent"));
        }
        prev.insert(key.clone(), (ticks, now));
    }
    let mut clients = ctx.metrics.clients.lock().await;
    if clients.get(&key).is_none_or(|c| c.is_closed()) {
        match crate::rds::node_client(ctx, rec, 0).await {
            Ok(c) => {
                clients.insert(key.clone(), c);
            }
            Err(e) => {
                debug!(key, error = %e, "metrics connection failed");
                return out;
            }
        }
    }
    let client = clients.get(&key).expect("inserted");
    let q = "SELECT pg_is_in_recovery(), \
             (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::float8, \
             (SELECT sum(pg_database_size(oid)) FROM pg_database)::float8, \
             (SELECT status FROM pg_stat_wal_receiver LIMIT 1), \
             coalesce(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), true), \
             extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8";
    let row = match tokio::time::timeout(Duration::from_secs(2), client.query_one(q, &[])).await {
        Ok(Ok(r)) => r,
        _ => {
            clients.remove(&key);
            return out;
        }
    };
    let in_recovery: bool = row.get(0);
    out.push(mk("DatabaseConnections", row.get::<_, f64>(1), "Count"));
    let used: f64 = row.get::<_, Option<f64>>(2).unwrap_or(0.0);
    out.push(mk(
        "FreeStorageSpace",
        (f64::from(rec.db.allocated_storage) * 1024f64.powi(3) - used).max(0.0),
        "Bytes",
    ));
    if in_recovery {
        let streaming = row.get::<_, Option<String>>(3).as_deref() == Some("streaming");
        let replayed_all: bool = row.get(4);
        let replay_age: Option<f64> = row.get(5);
        let mut caught = ctx.metrics.caught_up.lock().expect("lag");
        // Caught up and connected means no lag, however old the last transaction is;
        // disconnected, the lag grows from the last moment it was caught up.
        let lag = if streaming && replayed_all {
            caught.insert(key.clone(), now);
            0.0
        } else if streaming {
            replay_age.unwrap_or(0.0).max(0.0)
        } else {
            match caught.get(&key) {
                Some(t) => now - t,
                None => replay_age.unwrap_or(0.0).max(0.0),
            }
        };
        out.push(mk("ReplicaLag", lag, "Seconds"));
    }
    out
}

/// utime+stime of the postmaster, its reaped children and its live children.
fn cpu_ticks(pid: i32) -> Option<u64> {
    let parse = |text: &str| -> Option<(i32, u64, u64)> {
        let rest = text.rsplit(')').next()?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Fields after the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
        let ppid = f.get(1)?.parse().ok()?;
        let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        let reaped = f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?;
        Some((ppid, own, reaped))
    };
    let (_, own, reaped) = parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let mut total = own + reaped;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{child}/stat"))
            && let Some((ppid, own, _)) = parse(&text)
            && ppid == pid
        {
            total += own;
        }
    }
    Some(total)
}
