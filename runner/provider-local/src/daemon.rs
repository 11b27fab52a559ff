//! The local control plane daemon: owns the persisted state and everything that must
//! outlive one command (servers' lifecycle, the cross-region link, routing endpoints,
//! health checks, metrics, alarms, SNS delivery). One per state dir, guarded by a lock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runbook_caps::{CapCall, CapError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{error, info, warn};

use crate::error::{LocalError, Result};
use crate::layout::Layout;
use crate::pg::PgEnv;
use crate::proto::{Request, Response};
use crate::state::State;

pub(crate) struct Ctx {
    pub layout: Layout,
    pub pg: PgEnv,
    state: Mutex<State>,
    pub net: crate::net::Runtime,
    pub health: crate::health::Health,
    pub metrics: crate::metrics::Metrics,
    pub shutdown: tokio::sync::Notify,
    /// Serialises background operations per instance (region/id).
    pub ops: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Requests served, so an idle daemon can tell that nobody is talking to it.
    requests: std::sync::atomic::AtomicU64,
    /// Scaled AWS durations of background operations (`RUNBOOK_LOCAL_CONTROL_PLANE_SCALE`).
    pub pace: crate::pace::Pace,
}

impl Ctx {
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().expect("state lock"))
    }

    /// Apply `f` to a copy and commit (memory and disk) only if it succeeds, so a
    /// failed call never leaves half a change behind.
    pub fn mutate<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, CapError>,
    ) -> Result<T, CapError> {
        let mut guard = self.state.lock().expect("state lock");
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        copy.save(&self.layout)
            .map_err(|e| CapError::internal(format!("saving state: {e}")))?;
        *guard = copy;
        Ok(out)
    }

    pub fn op_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.ops
            .lock()
            .expect("ops lock")
            .entry(key.to_string())
            .or_default()
            .clone()
    }
}

/// Entry point of `runbook local daemon --state-dir DIR`. Returns when shut down.
pub async fn run_daemon(state_dir: impl AsRef<Path>) -> Result<()> {
    let layout = Layout::new(state_dir.as_ref());
    layout.create()?;
    let _lock = lock_exclusive(&layout)?;
    let pid = std::process::id();
    std::fs::write(layout.pidfile(), format!("{pid}\n"))
        .map_err(LocalError::io("write", layout.pidfile()))?;
    let pg = PgEnv::detect()?;
    // A bad scale stops the daemon here, with the reason in daemon.log, rather than
    // silently running at full speed.
    let pace = crate::pace::Pace::from_env()?;
    let state = State::load(&layout)?;
    let ctx = Arc::new(Ctx {
        metrics: crate::metrics::Metrics::load(&layout, &state),
        layout: layout.clone(),
        pg,
        state: Mutex::new(state),
        net: Default::default(),
        health: Default::default(),
        shutdown: tokio::sync::Notify::new(),
        ops: Default::default(),
        requests: Default::default(),
        pace,
    });
    info!(pid, state_dir = %layout.state_dir.display(), control_plane_scale = pace.scale(), "local daemon starting");

    let sock = layout.sock();
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(LocalError::io("bind", &sock))?;
    crate::layout::chmod(&sock, 0o600)?;

    crate::rds::recover(&ctx).await;
    crate::net::reconcile(&ctx).await;
    spawn_loops(&ctx);
    info!("local daemon ready");

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { serve(ctx, stream).await });
                }
                Err(e) => warn!(error = %e, "accept failed"),
            },
            _ = ctx.shutdown.notified() => break,
        }
    }
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(layout.pidfile());
    info!("local daemon stopped");
    Ok(())
}

fn lock_exclusive(layout: &Layout) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = layout.lockfile();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(LocalError::io("open", &path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(LocalError::DaemonRunning(layout.state_dir.clone()));
    }
    Ok(f)
}

fn spawn_loops(ctx: &Arc<Ctx>) {
    // Re-check link rules (peering, security groups, partition) and routing: violations
    // close existing connections within half a second.
    let c = ctx.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            crate::net::reconcile(&c).await;
        }
    });
    crate::metrics::spawn_sampler(ctx.clone());
    crate::rds::spawn_multi_az_monitor(ctx.clone());
    crate::cloudwatch::spawn_evaluator(ctx.clone());
    spawn_idle_exit(ctx.clone());
}

/// Once everything the daemon served is gone (teardown deleted the last instance, zone,
/// health check and alarm), it exits, so teardown leaves no process behind. It starts
/// again on demand. A daemon that never served anything (`runbook local up` on an
/// empty state dir) stays up.
/// Seconds without a request after which a daemon with nothing running exits even if
/// it never ran anything (started on demand by reads only: a plan, a failover that
/// declined). Its state is on disk; the next call starts it again.
/// `RUNBOOK_LOCAL_QUIET_EXIT_SECS` overrides it (tests).
fn quiet_exit_secs() -> u32 {
    std::env::var("RUNBOOK_LOCAL_QUIET_EXIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn spawn_idle_exit(ctx: Arc<Ctx>) {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        let mut served = false;
        let mut idle = 0u32;
        let mut quiet = 0u32;
        let mut seen = 0u64;
        let quiet_exit = quiet_exit_secs();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let busy = ctx.read(|s| {
                !s.global.zones.is_empty()
                    || !s.global.health_checks.is_empty()
                    || s.regions
                        .values()
                        .any(|r| !r.instances.is_empty() || !r.alarms.is_empty())
            });
            let requests = ctx.requests.load(Ordering::Relaxed);
            if requests == seen {
                quiet += 1;
            } else {
                (seen, quiet) = (requests, 0);
            }
            if busy {
                served = true;
                idle = 0;
                continue;
            }
            idle += 1;
            if (served && idle >= 3) || quiet >= quiet_exit {
                info!("nothing left to serve: exiting");
                crate::net::stop_all(&ctx);
                ctx.shutdown.notify_one();
                return;
            }
        }
    });
}

async fn serve(ctx: Arc<Ctx>, stream: UnixStream) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    ctx.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let resp: Response = match serde_json::from_str::<Request>(&line) {
        Ok(req) => handle(&ctx, req).await.into(),
        Err(e) => Err(CapError::invalid_parameter(format!("bad request: {e}"))).into(),
    };
    let mut out = serde_json::to_string(&resp).expect("response serializes");
    out.push('\n');
    let _ = w.write_all(out.as_bytes()).await;
}

async fn handle(ctx: &Arc<Ctx>, req: Request) -> Result<Value, CapError> {
    match req {
        Request::Call { call } => {
            let mutating =
                runbook_caps::action_by_iam(&call.service, &call.action).is_none_or(|s| s.mutating);
            let out = dispatch(ctx, call).await;
            if mutating {
                crate::net::reconcile(ctx).await;
            }
            out
        }
        Request::Status => Ok(status(ctx)),
        Request::ConnectInfo { target } => crate::query::connect_info(ctx, &target),
        Request::Endpoint { name } => crate::net::endpoint_addr(ctx, &name),
        Request::Crash {
            instance,
            region,
            all_nodes,
        } => crate::rds::crash(ctx, &instance, region.as_deref(), all_nodes),
        Request::Partition | Request::Heal => {
            let cut = matches!(req, Request::Partition);
            ctx.mutate(|s| {
                s.global.link.partitioned = cut;
                Ok(())
            })?;
            info!(partitioned = cut, "cross-region link");
            crate::net::reconcile(ctx).await;
            Ok(Value::Null)
        }
        Request::SetLatency { ms } => ctx.mutate(|s| {
            s.global.link.latency_ms = ms;
            Ok(Value::Null)
        }),
        Request::SetSampleInterval { ms } => ctx.mutate(|s| {
            s.global.sample_interval_ms = Some(ms.max(50));
            Ok(Value::Null)
        }),
        Request::Shutdown { stop_servers } => {
            if stop_servers {
                crate::net::stop_all(ctx);
                stop_all_servers(&ctx.layout)
                    .await
                    .map_err(|e| CapError::internal(e.to_string()))?;
            }
            ctx.shutdown.notify_one();
            Ok(Value::Null)
        }
        Request::RenderDashboard { region, name } => {
            crate::dashboard::render_dashboard(ctx, &region, &name)
                .map(|p| Value::String(p.display().to_string()))
        }
    }
}

pub(crate) async fn dispatch(ctx: &Arc<Ctx>, call: CapCall) -> Result<Value, CapError> {
    let gate = crate::fault::gate(ctx, &call);
    let out = match call.service.as_str() {
        _ if gate.is_err() => gate.map(|()| Value::Null),
        "fault" => crate::fault::handle(ctx, &call).await,
        "rds" => crate::rds::handle(ctx, &call).await,
        "secretsmanager" => crate::secrets::handle(ctx, &call),
        "ec2" => crate::ec2::handle(ctx, &call),
        "route53" => crate::route53::handle(ctx, &call).await,
        "cloudwatch" => crate::cloudwatch::handle(ctx, &call).await,
        "sns" => crate::sns::handle(ctx, &call).await,
        "postgres" => crate::query::handle(ctx, &call).await,
        _ => Err(CapError::unsupported(&call, "local")),
    };
    match &out {
        Ok(_) => tracing::debug!(call = %call.iam_name(), resource = ?call.resource, "ok"),
        Err(e) => {
            info!(call = %call.iam_name(), resource = ?call.resource, code = %e.code, "failed")
        }
    }
    out
}

fn status(ctx: &Ctx) -> Value {
    ctx.read(|s| {
        let mut regions = serde_json::Map::new();
        for (rname, r) in &s.regions {
            let insts: Vec<Value> = r
                .instances
                .values()
                .map(|i| {
                    let nodes: Vec<Value> = i
                        .nodes
                        .iter()
                        .map(|n| {
                            let pid = crate::pg::postmaster_pid(&ctx.layout.node_dir(rname, &n.name));
                            json!({"name": n.name, "az": n.az, "port": n.port, "pid": pid})
                        })
                        .collect();
                    json!({"identifier": i.db.identifier, "status": i.db.status, "nodes": nodes, "link_port": i.link_port,
                           "source": i.source})
                })
                .collect();
            regions.insert(rname.clone(), json!({"instances": insts}));
        }
        json!({
            "daemon": "running",
            "pid": std::process::id(),
            "state_dir": ctx.layout.state_dir,
            "link": s.global.link,
            "endpoints": s.global.endpoint_ports,
            "regions": regions,
        })
    })
}

/// Stop every server found under the state dir, by the PIDs in their pidfiles.
pub(crate) async fn stop_all_servers(layout: &Layout) -> Result<()> {
    let pg = PgEnv::detect()?;
    let Ok(regions) = std::fs::read_dir(&layout.pg_base) else {
        return Ok(());
    };
    for region in regions.flatten() {
        let clusters = region.path().join("clusters");
        let Ok(nodes) = std::fs::read_dir(&clusters) else {
            continue;
        };
        for node in nodes.flatten() {
            if node.path().join("PG_VERSION").exists()
                && let Err(e) = pg.stop(&node.path()).await
            {
                error!(node = %node.path().display(), error = %e, "stop failed");
            }
        }
    }
    Ok(())
}
