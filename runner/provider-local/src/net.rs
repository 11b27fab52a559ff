//! Daemon-owned TCP plumbing: the cross-region link (one forwarder per cross-region
//! replica: latency, cut/restore, peering and security-group enforcement) and the
//! routing endpoints of Route 53 names (weighted/failover choice among healthy targets,
//! fencing of connections whose target left routing).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use runbook_caps::CapError;
use runbook_caps::types::route53::RecordSet;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::daemon::Ctx;
use crate::state::{InstanceRec, State};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ListenerKey {
    Link {
        region: String,
        id: String,
        port: u16,
    },
    Endpoint {
        name: String,
        port: u16,
    },
}

#[derive(Debug, Clone)]
enum ConnKind {
    Link {
        region: String,
        id: String,
    },
    /// `target` identifies the record (set identifier and value) the connection went to.
    Endpoint {
        name: String,
        target: String,
    },
}

struct Conn {
    kind: ConnKind,
    // Dropping the sender wakes the connection task, which closes both sockets.
    _kill: oneshot::Sender<()>,
}

#[derive(Default)]
pub struct Runtime {
    listeners: Mutex<HashMap<ListenerKey, JoinHandle<()>>>,
    conns: Mutex<HashMap<u64, Conn>>,
    next: AtomicU64,
    reconciling: tokio::sync::Mutex<()>,
}

/// Bring listeners, connections and health checks in line with the persisted state.
pub(crate) async fn reconcile(ctx: &Arc<Ctx>) {
    let _g = ctx.net.reconciling.lock().await;
    assign_endpoint_ports(ctx);
    let desired: HashSet<ListenerKey> = ctx.read(|s| {
        let mut d = HashSet::new();
        for (region, r) in &s.regions {
            for (id, i) in &r.instances {
                if let (Some(port), Some(_)) = (i.link_port, &i.source) {
                    d.insert(ListenerKey::Link {
                        region: region.clone(),
                        id: id.clone(),
                        port,
                    });
                }
            }
        }
        for name in record_names(s) {
            if let Some(port) = s.global.endpoint_ports.get(&name) {
                d.insert(ListenerKey::Endpoint { name, port: *port });
            }
        }
        d
    });
    {
        let mut ls = ctx.net.listeners.lock().expect("listeners");
        ls.retain(|k, task| {
            let keep = desired.contains(k) && !task.is_finished();
            if !keep {
                task.abort();
                debug!(?k, "listener stopped");
            }
            keep
        });
        for k in desired {
            if ls.contains_key(&k) {
                continue;
            }
            let port = match &k {
                ListenerKey::Link { port, .. } | ListenerKey::Endpoint { port, .. } => *port,
            };
            let std_l = match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                Ok(l) => l,
                Err(e) => {
                    warn!(?k, error = %e, "cannot listen; will retry");
                    continue;
                }
            };
            let _ = std_l.set_nonblocking(true);
            let Ok(listener) = TcpListener::from_std(std_l) else {
                continue;
            };
            info!(?k, "listening");
            let task = tokio::spawn(accept_loop(ctx.clone(), k.clone(), listener));
            ls.insert(k, task);
        }
    }
    enforce(ctx);
    crate::health::reconcile(ctx);
}

async fn accept_loop(ctx: Arc<Ctx>, key: ListenerKey, listener: TcpListener) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        let ctx = ctx.clone();
        match key.clone() {
            ListenerKey::Link { region, id, .. } => {
                tokio::spawn(async move { link_conn(ctx, region, id, sock).await });
            }
            ListenerKey::Endpoint { name, .. } => {
                tokio::spawn(async move { endpoint_conn(ctx, name, sock).await });
            }
        }
    }
}

/// Close connections that the current rules no longer allow.
fn enforce(ctx: &Arc<Ctx>) {
    let (link_verdicts, fence_sets) = ctx.read(|s| {
        let mut lv: HashMap<(String, String), Result<(), String>> = HashMap::new();
        let mut fs: HashMap<String, HashSet<String>> = HashMap::new();
        for c in ctx.net.conns.lock().expect("conns").values() {
            match &c.kind {
                ConnKind::Link { region, id } => {
                    lv.entry((region.clone(), id.clone()))
                        .or_insert_with(|| link_allowed_in(s, region, id));
                }
                ConnKind::Endpoint { name, .. } => {
                    // In routing: weighted in, or chosen right now (a zero-weight or
                    // secondary record serving while the others are unhealthy).
                    fs.entry(name.clone()).or_insert_with(|| {
                        let mut set: HashSet<String> = records_for(s, name)
                            .iter()
                            .filter(|r| r.weight.is_none_or(|w| w > 0))
                            .map(ident)
                            .collect();
                        set.extend(routing_choices(ctx, s, name).into_iter().map(|c| c.0));
                        set
                    });
                }
            }
        }
        (lv, fs)
    });
    let mut conns = ctx.net.conns.lock().expect("conns");
    conns.retain(|cid, c| match &c.kind {
        ConnKind::Link { region, id } => match link_verdicts.get(&(region.clone(), id.clone())) {
            Some(Err(why)) => {
                info!(cid, region, id, why, "closing cross-region connection");
                false
            }
            _ => true,
        },
        ConnKind::Endpoint { name, target } => {
            let keep = fence_sets.get(name).is_some_and(|set| set.contains(target));
            if !keep {
                info!(
                    cid,
                    name, target, "fencing: target left routing; closing connection"
                );
            }
            keep
        }
    });
}

pub(crate) fn stop_all(ctx: &Ctx) {
    for (_, t) in ctx.net.listeners.lock().expect("listeners").drain() {
        t.abort();
    }
    ctx.net.conns.lock().expect("conns").clear();
}

fn register(ctx: &Ctx, kind: ConnKind) -> (u64, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    let cid = ctx.net.next.fetch_add(1, Ordering::Relaxed);
    ctx.net
        .conns
        .lock()
        .expect("conns")
        .insert(cid, Conn { kind, _kill: tx });
    (cid, rx)
}

/// Shaping of one spliced connection: added one-way latency, optional throughput cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Shape {
    latency: Duration,
    bandwidth_kbps: Option<u64>,
}

async fn splice(ctx: &Ctx, kind: ConnKind, client: TcpStream, upstream: TcpStream, shape: Shape) {
    let (cid, kill) = register(ctx, kind);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::select! {
        _ = async { tokio::join!(pump(cr, uw, shape), pump(ur, cw, shape)) } => {}
        _ = kill => {}
    }
    ctx.net.conns.lock().expect("conns").remove(&cid);
}

/// Close every cross-region connection, so the replicas reconnect under the current
/// link settings (latency and bandwidth are fixed per connection).
pub(crate) fn reset_link_conns(ctx: &Ctx) {
    ctx.net
        .conns
        .lock()
        .expect("conns")
        .retain(|_, c| !matches!(c.kind, ConnKind::Link { .. }));
}

/// Copy one direction, delaying every chunk by the latency and, with a bandwidth cap,
/// releasing chunks no faster than the cap allows.
async fn pump(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, shape: Shape) {
    let Shape {
        latency,
        bandwidth_kbps,
    } = shape;
    if latency.is_zero() && bandwidth_kbps.is_none() {
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(256);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + latency, buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut free = Instant::now();
        while let Some((at, data)) = rx.recv().await {
            let at = match bandwidth_kbps {
                // kbit/s = bits per millisecond.
                Some(kbps) => {
                    let send = Duration::from_micros(data.len() as u64 * 8 * 1000 / kbps.max(1));
                    free = free.max(at) + send;
                    free
                }
                None => at,
            };
            tokio::time::sleep_until(at).await;
            if w.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reader, writer);
}

// ---- the cross-region link ----------------------------------------------------------

async fn link_conn(ctx: Arc<Ctx>, region: String, id: String, client: TcpStream) {
    let verdict =
        ctx.read(|s| link_allowed_in(s, &region, &id).and_then(|_| source_port(s, &region, &id)));
    let port = match verdict {
        Ok(p) => p,
        Err(why) => {
            debug!(region, id, why, "cross-region connection refused");
            return;
        }
    };
    let shape = ctx.read(|s| Shape {
        latency: Duration::from_millis(s.global.link.latency_ms),
        bandwidth_kbps: s.global.link.bandwidth_kbps,
    });
    tokio::time::sleep(shape.latency).await;
    let Ok(Ok(upstream)) = tokio::time::timeout(
        Duration::from_secs(3),
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
    )
    .await
    else {
        debug!(region, id, port, "source unreachable");
        return;
    };
    let _ = upstream.set_nodelay(true);
    // Link settings changed while this connection was being set up (a slow-link fault
    // injected or undone): drop it, so the replica retries under the new ones instead
    // of keeping the old shaping for the life of the connection.
    let now = ctx.read(|s| Shape {
        latency: Duration::from_millis(s.global.link.latency_ms),
        bandwidth_kbps: s.global.link.bandwidth_kbps,
    });
    if now != shape {
        debug!(region, id, "link settings changed during setup; retry");
        return;
    }
    splice(&ctx, ConnKind::Link { region, id }, client, upstream, shape).await;
}

fn source_port(s: &State, region: &str, id: &str) -> Result<u16, String> {
    let rec = s.instance(region, id).ok_or("replica is gone")?;
    let (sr, sid) = rec.source.as_ref().ok_or("not a replica")?;
    let src = s.instance(sr, sid).ok_or("source is gone")?;
    Ok(src.nodes[0].port)
}

/// Whether the replica `region/id` may reach its source across regions now.
pub(crate) fn link_allowed(ctx: &Ctx, region: &str, id: &str) -> Result<(), String> {
    ctx.read(|s| link_allowed_in(s, region, id))
}

fn link_allowed_in(s: &State, region: &str, id: &str) -> Result<(), String> {
    if s.global.link.partitioned {
        return Err("the cross-region link is cut (partition)".into());
    }
    let rec = s.instance(region, id).ok_or("replica is gone")?;
    let Some((sr, sid)) = &rec.source else {
        return Err("no longer a replica".into());
    };
    let src = s.instance(sr, sid).ok_or("source is gone")?;
    let (Some(rv), Some(sv)) = (vpc_of(s, region, rec), vpc_of(s, sr, src)) else {
        // Instances outside any VPC (no subnet group, no security groups) are in the
        // default network, where RDS replicates without peering.
        return Ok(());
    };
    if rv.0 == sv.0 {
        return Ok(());
    }
    let active = s.global.peerings.values().any(|p| {
        p.status == "active"
            && ((p.requester_vpc_id == rv.0 && p.accepter_vpc_id == sv.0)
                || (p.requester_vpc_id == sv.0 && p.accepter_vpc_id == rv.0))
    });
    if !active {
        return Err(format!(
            "no active VPC peering between {} ({region}) and {} ({sr})",
            rv.0, sv.0
        ));
    }
    let port = i32::from(src.db.endpoint_port.unwrap_or(5432));
    let allowed = src
        .db
        .vpc_security_groups
        .iter()
        .filter_map(|g| s.region(sr)?.security_groups.get(g))
        .any(|sg| {
            sg.ingress.iter().any(|p| {
                (p.ip_protocol == "tcp" || p.ip_protocol == "-1" || p.ip_protocol == "6")
                    && (p.ip_protocol == "-1" || (p.from_port <= port && port <= p.to_port))
                    && p.cidr_blocks.iter().any(|c| cidr_contains(c, &rv.1))
            })
        });
    if !allowed {
        return Err(format!(
            "no security group of {sid} allows tcp/{port} from {} ({})",
            rv.1, rv.0
        ));
    }
    Ok(())
}

/// (vpc id, CIDR) of an instance, from its subnet group or security groups.
fn vpc_of(s: &State, region: &str, rec: &InstanceRec) -> Option<(String, String)> {
    let r = s.region(region)?;
    let vpc_id = rec
        .db
        .db_subnet_group
        .as_ref()
        .and_then(|g| r.subnet_groups.get(g))
        .map(|g| g.vpc_id.clone())
        .or_else(|| {
            rec.db
                .vpc_security_groups
                .iter()
                .find_map(|g| r.security_groups.get(g))
                .map(|g| g.vpc_id.clone())
        })?;
    let cidr = r
        .vpcs
        .get(&vpc_id)
        .map(|v| v.cidr_block.clone())
        .unwrap_or_default();
    Some((vpc_id, cidr))
}

pub(crate) fn parse_cidr(c: &str) -> Option<(u32, u32)> {
    let (addr, len) = c.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    (len <= 32).then_some((u32::from(addr), len))
}

fn mask(len: u32) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// `inner` lies entirely within `outer`.
pub(crate) fn cidr_contains(outer: &str, inner: &str) -> bool {
    match (parse_cidr(outer), parse_cidr(inner)) {
        (Some((oa, ol)), Some((ia, il))) => il >= ol && (ia & mask(ol)) == (oa & mask(ol)),
        _ => false,
    }
}

pub(crate) fn cidrs_overlap(a: &str, b: &str) -> bool {
    match (parse_cidr(a), parse_cidr(b)) {
        (Some((aa, al)), Some((ba, bl))) => {
            let l = al.min(bl);
            (aa & mask(l)) == (ba & mask(l))
        }
        _ => false,
    }
}

// ---- routing endpoints ----------------------------------------------------------------

pub(crate) fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_lowercase()
}

fn record_names(s: &State) -> HashSet<String> {
    s.global
        .zones
        .values()
        .flat_map(|z| z.records.iter())
        .filter(|r| matches!(r.record_type.as_str(), "CNAME" | "A" | "AAAA"))
        .map(|r| normalize(&r.name))
        .collect()
}

fn records_for(s: &State, name: &str) -> Vec<RecordSet> {
    s.global
        .zones
        .values()
        .flat_map(|z| z.records.iter())
        .filter(|r| {
            matches!(r.record_type.as_str(), "CNAME" | "A" | "AAAA") && normalize(&r.name) == name
        })
        .cloned()
        .collect()
}

fn ident(r: &RecordSet) -> String {
    format!(
        "{}|{}",
        r.set_identifier.as_deref().unwrap_or(""),
        r.values.first().map(String::as_str).unwrap_or("")
    )
}

/// Give every record name a port: derived from the name (stable across restarts and
/// state dirs), probing upwards when taken; persisted forever once given.
fn assign_endpoint_ports(ctx: &Ctx) {
    let missing: Vec<String> = ctx.read(|s| {
        record_names(s)
            .into_iter()
            .filter(|n| !s.global.endpoint_ports.contains_key(n))
            .collect()
    });
    if missing.is_empty() {
        return;
    }
    let _ = ctx.mutate(|s| {
        for name in missing {
            let used: HashSet<u16> = s.global.endpoint_ports.values().copied().collect();
            let base = 40000 + (crate::ids::fnv1a(&name) % 10000) as u16;
            let port = (0..10000u16)
                .map(|i| 40000 + (base - 40000 + i) % 10000)
                .find(|p| {
                    !used.contains(p)
                        && std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok()
                })
                .unwrap_or(base);
            info!(name, port, "routing endpoint port assigned");
            s.global.endpoint_ports.insert(name, port);
        }
        Ok(())
    });
}

/// Resolve a record value (instance endpoint address, identifier, `host:port`, or
/// another routed name) to a local port.
fn resolve_value(s: &State, value: &str) -> Option<u16> {
    let v = normalize(value);
    if let Some((region, id)) = s.find_instance(&v, None) {
        return s.instance(&region, &id).map(|i| i.nodes[0].port);
    }
    if let Some((host, port)) = v.rsplit_once(':')
        && matches!(host, "127.0.0.1" | "localhost")
    {
        return port.parse().ok();
    }
    s.global.endpoint_ports.get(&v).copied()
}

/// Targets a new connection to `name` may go to: (identity, weight, port).
fn routing_choices(ctx: &Ctx, s: &State, name: &str) -> Vec<(String, u32, u16)> {
    let recs = records_for(s, name);
    let healthy = |r: &RecordSet| {
        r.health_check_id
            .as_deref()
            .is_none_or(|h| ctx.health.is_healthy(h))
    };
    let chosen: Vec<&RecordSet> = if recs.iter().any(|r| r.failover.is_some()) {
        let by = |kind: &str| recs.iter().find(|r| r.failover.as_deref() == Some(kind));
        match (by("PRIMARY"), by("SECONDARY")) {
            (Some(p), _) if healthy(p) => vec![p],
            (_, Some(sec)) if healthy(sec) => vec![sec],
            (Some(p), _) => vec![p],
            (None, Some(sec)) => vec![sec],
            _ => vec![],
        }
    } else {
        let active: Vec<&RecordSet> = recs
            .iter()
            .filter(|r| r.weight.is_none_or(|w| w > 0))
            .collect();
        let up: Vec<&RecordSet> = active.iter().copied().filter(|r| healthy(r)).collect();
        // As Route 53: zero-weight records serve only when every weighted one is
        // unhealthy, and with nothing healthy it answers with all records (fail open).
        let standby: Vec<&RecordSet> = recs
            .iter()
            .filter(|r| r.weight == Some(0) && healthy(r))
            .collect();
        if !up.is_empty() {
            up
        } else if !standby.is_empty() {
            standby
        } else {
            active
        }
    };
    chosen
        .into_iter()
        .filter_map(|r| {
            let port = r.values.iter().find_map(|v| resolve_value(s, v))?;
            Some((ident(r), r.weight.unwrap_or(1).max(1), port))
        })
        .collect()
}

async fn endpoint_conn(ctx: Arc<Ctx>, name: String, client: TcpStream) {
    let choices = ctx.read(|s| routing_choices(&ctx, s, &name));
    let total: u32 = choices.iter().map(|c| c.1).sum();
    if total == 0 {
        debug!(name, "no routable target; closing");
        return;
    }
    let mut pick = rand::rng().random_range(0..total);
    let (target, _, port) = choices
        .iter()
        .find(|c| {
            if pick < c.1 {
                true
            } else {
                pick -= c.1;
                false
            }
        })
        .cloned()
        .expect("weights add up");
    let Ok(Ok(upstream)) = tokio::time::timeout(
        Duration::from_secs(3),
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
    )
    .await
    else {
        debug!(name, target, port, "target unreachable");
        return;
    };
    let _ = upstream.set_nodelay(true);
    debug!(name, target, port, "routed");
    splice(
        &ctx,
        ConnKind::Endpoint { name, target },
        client,
        upstream,
        Shape::default(),
    )
    .await;
}

/// `127.0.0.1:PORT` for a Route 53 name, or for an instance (identifier or address).
pub(crate) fn endpoint_addr(ctx: &Ctx, name: &str) -> Result<Value, CapError> {
    let n = normalize(name);
    ctx.read(|s| {
        if let Some(p) = s.global.endpoint_ports.get(&n)
            && record_names(s).contains(&n)
        {
            return Ok(Value::String(format!("127.0.0.1:{p}")));
        }
        if let Some((r, id)) = s.find_instance(&n, None) {
            let port = s
                .instance(&r, &id)
                .map(|i| i.nodes[0].port)
                .unwrap_or_default();
            return Ok(Value::String(format!("127.0.0.1:{port}")));
        }
        Err(CapError::not_found(
            "NoSuchRecord",
            format!("no Route 53 record or DB instance named {name}"),
        ))
    })
}

/// Ports a new connection to the routed `name` may reach now (empty if not routed).
pub(crate) fn routed_ports(ctx: &Ctx, name: &str) -> Vec<u16> {
    let n = normalize(name);
    ctx.read(|s| {
        routing_choices(ctx, s, &n)
            .into_iter()
            .map(|c| c.2)
            .collect()
    })
}

/// Port a client should use for a name: the routing endpoint, or the instance's server.
pub(crate) fn resolve_for_client(ctx: &Ctx, name: &str, region: Option<&str>) -> Option<u16> {
    let n = normalize(name);
    ctx.read(|s| {
        if s.global.endpoint_ports.contains_key(&n) && record_names(s).contains(&n) {
            return s.global.endpoint_ports.get(&n).copied();
        }
        let (r, id) = s.find_instance(&n, region)?;
        s.instance(&r, &id).map(|i| i.nodes[0].port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        assert!(cidr_contains("10.1.0.0/16", "10.1.0.0/16"));
        assert!(cidr_contains("10.0.0.0/8", "10.1.0.0/16"));
        assert!(!cidr_contains("10.0.0.0/16", "10.1.0.0/16"));
        assert!(cidrs_overlap("10.0.0.0/16", "10.0.128.0/17"));
        assert!(!cidrs_overlap("10.0.0.0/16", "10.1.0.0/16"));
        assert!(cidr_contains("0.0.0.0/0", "10.1.0.0/16"));
    }
}
