//! `fault`: game-day faults on the local environment. The executor assigns fault ids,
//! makes injection idempotent and journals the records; this module makes the effect
//! and takes it back. Every active fault is kept in the global state (`faults`), so an
//! undo from another process or after a daemon restart finds what it must restore, and
//! undoing a fault that is no longer active changes nothing.
//!
//! Kinds: `writer-crash` (SIGKILL an instance's writer; Multi-AZ fails over by itself),
//! `region-loss` (every server of a region killed, its control plane unavailable),
//! `partition` (cross-region link cut), `slow-link` (latency / bandwidth on the link),
//! `probe-partition` (the runner's `postgres:Query` probes to an instance fail while
//! replication and clients carry on).

use std::sync::Arc;

use runbook_caps::types::fault::{Fault, FaultSpec};
use runbook_caps::{CapCall, CapError, ErrorKind};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::daemon::Ctx;
use crate::state::FaultRec;

/// Route 53's control plane lives in us-east-1, as on AWS.
const ROUTE53_CONTROL_REGION: &str = "us-east-1";

fn conflict(msg: impl Into<String>) -> CapError {
    CapError::invalid_state("ConflictException", msg)
}

fn unsupported(kind: &str) -> CapError {
    CapError::new(
        ErrorKind::InvalidParameter,
        "UnsupportedOperation",
        format!(
            "the local provider cannot inject '{kind}' (it knows writer-crash, region-loss, \
             partition, slow-link, probe-partition)"
        ),
    )
}

pub(crate) fn region_lost(ctx: &Ctx, region: &str) -> bool {
    ctx.read(|s| s.global.lost_regions.contains_key(region))
}

/// The control plane of a lost region answers nothing; Route 53's API is down with
/// us-east-1 while its data plane (routing, health checks) keeps running. `postgres`
/// is data plane (its servers are down anyway) and `fault` must stay usable to undo.
pub(crate) fn gate(ctx: &Ctx, call: &CapCall) -> Result<(), CapError> {
    let region = match call.service.as_str() {
        "fault" | "postgres" => return Ok(()),
        "route53" => ROUTE53_CONTROL_REGION,
        _ => match call.region.as_deref() {
            Some(r) => r,
            None => return Ok(()),
        },
    };
    if region_lost(ctx, region) {
        return Err(CapError::unavailable(format!(
            "{}: the {region} endpoint is not answering (region-loss fault)",
            call.iam_name()
        )));
    }
    Ok(())
}

/// Secrets read host-side (probe credentials, client connections) come from the
/// region's Secrets Manager, which a lost region does not answer.
pub(crate) fn secret_region_gate(ctx: &Ctx, region: &str) -> Result<(), CapError> {
    if region_lost(ctx, region) {
        return Err(CapError::unavailable(format!(
            "secretsmanager:GetSecretValue: the {region} endpoint is not answering \
             (region-loss fault); read a replica region's copy"
        )));
    }
    Ok(())
}

/// `probe-partition`: whether the runner's probe to `port` (reached through `endpoint`)
/// is cut off.
pub(crate) fn probe_blocked(ctx: &Ctx, endpoint: &str, port: u16) -> bool {
    let blocked: Vec<u16> = ctx.read(|s| {
        s.global
            .probe_blocked
            .keys()
            .filter_map(|k| {
                let (r, id) = k.split_once('/')?;
                Some(
                    s.instance(r, id)?
                        .nodes
                        .iter()
                        .map(|n| n.port)
                        .collect::<Vec<_>>(),
                )
            })
            .flatten()
            .collect()
    });
    if blocked.is_empty() {
        return false;
    }
    if blocked.contains(&port) {
        return true;
    }
    let routed = crate::net::routed_ports(ctx, endpoint);
    !routed.is_empty() && routed.iter().all(|p| blocked.contains(p))
}

pub(crate) async fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    match call.action.as_str() {
        "InjectFault" => {
            let spec: FaultSpec = call.arg_as("spec")?;
            inject(ctx, spec).await.map(|f| json(&f))
        }
        "UndoFault" => {
            let fault: Fault = call.arg_as("fault")?;
            undo(ctx, fault).await.map(|f| json(&f))
        }
        _ => Err(CapError::unsupported(call, "local")),
    }
}

fn json(f: &Fault) -> Value {
    serde_json::to_value(f).expect("fault serializes")
}

fn params_of(spec: &FaultSpec) -> Result<Value, CapError> {
    if spec.params.trim().is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_str(&spec.params)
        .map_err(|e| CapError::invalid_parameter(format!("fault params: {e}")))?;
    if !v.is_object() {
        return Err(CapError::invalid_parameter(
            "fault params must be a JSON object",
        ));
    }
    Ok(v)
}

async fn inject(ctx: &Arc<Ctx>, spec: FaultSpec) -> Result<Fault, CapError> {
    let params = params_of(&spec)?;
    let local_id = format!("lf-{}", crate::ids::rand_lower(10));
    let (region, mut details) = match spec.kind.as_str() {
        "writer-crash" => writer_crash(ctx, &spec)?,
        "region-loss" => region_loss(ctx, &spec, &local_id)?,
        "partition" => partition(ctx, &spec).await?,
        "slow-link" => slow_link(ctx, &spec, &params).await?,
        "probe-partition" => probe_partition(ctx, &spec, &local_id)?,
        other => return Err(unsupported(other)),
    };
    details["local-id"] = json!(local_id);
    let injected_at = crate::ids::now_str();
    let rec = FaultRec {
        kind: spec.kind.clone(),
        target: spec.target.clone(),
        region: region.clone(),
        injected_at: injected_at.clone(),
        details: details.clone(),
    };
    ctx.mutate(|s| {
        s.global.faults.insert(local_id.clone(), rec);
        Ok(())
    })?;
    crate::net::reconcile(ctx).await;
    info!(kind = %spec.kind, target = %spec.target, region, local_id, "fault injected");
    Ok(Fault {
        id: String::new(),
        kind: spec.kind,
        target: spec.target,
        region,
        state: "active".into(),
        injected_at,
        undone_at: None,
        details: details.to_string(),
    })
}

/// Region of an instance target: the spec's, else wherever the identifier lives.
fn instance_region(ctx: &Ctx, spec: &FaultSpec) -> Result<(String, String), CapError> {
    let region = (!spec.region.is_empty()).then_some(spec.region.as_str());
    ctx.read(|s| s.find_instance(&spec.target, region))
        .ok_or_else(|| {
            CapError::not_found(
                "DBInstanceNotFound",
                format!("DBInstance {} not found", spec.target),
            )
        })
}

fn writer_crash(ctx: &Arc<Ctx>, spec: &FaultSpec) -> Result<(String, Value), CapError> {
    let (region, id) = instance_region(ctx, spec)?;
    if region_lost(ctx, &region) {
        return Err(conflict(format!("{region} is lost; nothing runs there")));
    }
    let rec = crate::rds::get(ctx, &region, &id)?;
    let out = crate::rds::crash(ctx, &id, Some(&region), false)?;
    if out["killed"].as_array().is_none_or(Vec::is_empty) {
        return Err(CapError::invalid_state(
            "InvalidDBInstanceState",
            format!("the writer of {id} is not running"),
        ));
    }
    let multi_az = rec.nodes.len() > 1 && rec.source.is_none();
    let undo = if multi_az {
        "nothing to restore: the Multi-AZ standby takes over (status rebooting, then \
         available) and the old writer is rebuilt as the new standby"
    } else {
        "restart the writer if it is still down"
    };
    Ok((
        region,
        json!({"instance": id, "killed": out["killed"], "multi-az": multi_az, "undo": undo}),
    ))
}

fn region_loss(
    ctx: &Arc<Ctx>,
    spec: &FaultSpec,
    local_id: &str,
) -> Result<(String, Value), CapError> {
    let region = if spec.target.is_empty() {
        spec.region.clone()
    } else {
        spec.target.clone()
    };
    if region.is_empty() {
        return Err(CapError::invalid_parameter(
            "region-loss: target (a region) is required",
        ));
    }
    // Mark the region lost first, so neither the Multi-AZ monitor nor a daemon restart
    // brings a server back while they are being killed.
    let instances: Vec<Value> = ctx.mutate(|s| {
        if s.global.lost_regions.contains_key(&region) {
            return Err(conflict(format!("{region} is already lost")));
        }
        s.global
            .lost_regions
            .insert(region.clone(), local_id.to_string());
        let mut out = Vec::new();
        for (id, i) in s
            .region(&region)
            .map(|r| &r.instances)
            .into_iter()
            .flatten()
        {
            // Replicas elsewhere: if one is promoted while the region is lost, the old
            // primary must not come back writable.
            let replicas: Vec<Value> = s
                .regions
                .iter()
                .flat_map(|(rn, r)| r.instances.iter().map(move |(iid, x)| (rn, iid, x)))
                .filter(|(rn, _, x)| {
                    *rn != &region
                        && x.source
                            .as_ref()
                            .is_some_and(|(sr, sid)| *sr == region && sid == id)
                })
                .map(|(rn, iid, _)| json!({"region": rn, "identifier": iid}))
                .collect();
            out.push(json!({"identifier": id, "replicas": replicas, "writer": i.source.is_none()}));
        }
        Ok(out)
    })?;
    let mut killed = Vec::new();
    for inst in &instances {
        let id = inst["identifier"].as_str().unwrap_or_default();
        if let Ok(v) = crate::rds::crash(ctx, id, Some(&region), true) {
            killed.extend(v["killed"].as_array().cloned().unwrap_or_default());
        }
    }
    warn!(region, servers = killed.len(), "region lost");
    let route53 = region == ROUTE53_CONTROL_REGION;
    Ok((
        region.clone(),
        json!({
            "instances": instances,
            "killed": killed,
            "control-plane": "ServiceUnavailable for every rds, ec2, cloudwatch, sns and secretsmanager call in the region",
            "route53-api-down": route53,
            "undo": "control plane back; servers restarted, except a primary whose replica was promoted meanwhile: it stays stopped (fenced) so it never takes writes as a second primary",
        }),
    ))
}

async fn partition(ctx: &Arc<Ctx>, _spec: &FaultSpec) -> Result<(String, Value), CapError> {
    let was = ctx.mutate(|s| {
        let was = s.global.link.partitioned;
        s.global.link.partitioned = true;
        Ok(was)
    })?;
    Ok((
        String::new(),
        json!({"was-partitioned": was, "undo": "restore the cross-region link (both directions)"}),
    ))
}

async fn slow_link(
    ctx: &Arc<Ctx>,
    _spec: &FaultSpec,
    params: &Value,
) -> Result<(String, Value), CapError> {
    let latency = params.get("latency-ms").and_then(Value::as_u64);
    let bandwidth = params.get("bandwidth-kbps").and_then(Value::as_u64);
    if latency.is_none() && bandwidth.is_none() {
        return Err(CapError::invalid_parameter(
            "slow-link: params need latency-ms and/or bandwidth-kbps",
        ));
    }
    if bandwidth == Some(0) {
        return Err(CapError::invalid_parameter(
            "slow-link: bandwidth-kbps must be positive (use partition to cut the link)",
        ));
    }
    let previous = ctx.mutate(|s| {
        let prev = s.global.link.clone();
        if let Some(ms) = latency {
            s.global.link.latency_ms = ms;
        }
        if bandwidth.is_some() {
            s.global.link.bandwidth_kbps = bandwidth;
        }
        Ok(prev)
    })?;
    crate::net::reset_link_conns(ctx);
    Ok((
        String::new(),
        json!({
            "latency-ms": latency, "bandwidth-kbps": bandwidth,
            "previous": {"latency-ms": previous.latency_ms, "bandwidth-kbps": previous.bandwidth_kbps},
            "undo": "restore the previous latency and bandwidth; replicas reconnect and catch up",
        }),
    ))
}

fn probe_partition(
    ctx: &Arc<Ctx>,
    spec: &FaultSpec,
    local_id: &str,
) -> Result<(String, Value), CapError> {
    let (region, id) = instance_region(ctx, spec)?;
    ctx.mutate(|s| {
        s.global
            .probe_blocked
            .insert(format!("{region}/{id}"), local_id.to_string());
        Ok(())
    })?;
    Ok((
        region,
        json!({"instance": id,
               "undo": "the runner's postgres probes reach the instance again (replication and clients were never cut)"}),
    ))
}

async fn undo(ctx: &Arc<Ctx>, mut fault: Fault) -> Result<Fault, CapError> {
    let details: Value = serde_json::from_str(&fault.details).unwrap_or(json!({}));
    let local_id = details["local-id"].as_str().unwrap_or_default().to_string();
    let rec = ctx.read(|s| s.global.faults.get(&local_id).cloned());
    let Some(rec) = rec else {
        // Undone already (by another process, or before a crash): nothing to restore.
        fault.state = "undone".into();
        return Ok(fault);
    };
    let mut undone = json!({});
    match rec.kind.as_str() {
        "writer-crash" => {
            let id = rec.details["instance"].as_str().unwrap_or_default();
            let multi_az = rec.details["multi-az"].as_bool().unwrap_or(false);
            if !multi_az
                && !region_lost(ctx, &rec.region)
                && let Ok(i) = crate::rds::get(ctx, &rec.region, id)
                && i.running
                && crate::pg::postmaster_pid(&ctx.layout.node_dir(&rec.region, &i.nodes[0].name))
                    .is_none()
            {
                crate::rds::resume(ctx, &rec.region, id);
                undone["restarted"] = json!(id);
            }
        }
        "region-loss" => undone = undo_region_loss(ctx, &rec, &local_id)?,
        "partition" => {
            let was = rec.details["was-partitioned"].as_bool().unwrap_or(false);
            ctx.mutate(|s| {
                let others = s
                    .global
                    .faults
                    .iter()
                    .any(|(k, f)| *k != local_id && f.kind == "partition");
                if !was && !others {
                    s.global.link.partitioned = false;
                }
                Ok(())
            })?;
        }
        "slow-link" => {
            let prev = &rec.details["previous"];
            ctx.mutate(|s| {
                let others = s
                    .global
                    .faults
                    .iter()
                    .any(|(k, f)| *k != local_id && f.kind == "slow-link");
                if !others {
                    if let Some(ms) = prev["latency-ms"].as_u64() {
                        s.global.link.latency_ms = ms;
                    }
                    s.global.link.bandwidth_kbps = prev["bandwidth-kbps"].as_u64();
                }
                Ok(())
            })?;
            crate::net::reset_link_conns(ctx);
        }
        "probe-partition" => {
            ctx.mutate(|s| {
                s.global.probe_blocked.retain(|_, v| *v != local_id);
                Ok(())
            })?;
        }
        _ => {}
    }
    ctx.mutate(|s| {
        s.global.faults.remove(&local_id);
        Ok(())
    })?;
    crate::net::reconcile(ctx).await;
    info!(kind = %rec.kind, target = %rec.target, local_id, "fault undone");
    let mut d = details;
    d["undone"] = undone;
    fault.details = d.to_string();
    fault.state = "undone".into();
    fault.undone_at = Some(crate::ids::now_str());
    Ok(fault)
}

fn undo_region_loss(ctx: &Arc<Ctx>, rec: &FaultRec, local_id: &str) -> Result<Value, CapError> {
    let region = rec.region.clone();
    ctx.mutate(|s| {
        if s.global.lost_regions.get(&region).map(String::as_str) == Some(local_id) {
            s.global.lost_regions.remove(&region);
        }
        Ok(())
    })?;
    let mut restarted = Vec::new();
    let mut fenced = Vec::new();
    for inst in rec.details["instances"].as_array().into_iter().flatten() {
        let id = inst["identifier"].as_str().unwrap_or_default();
        let Ok(i) = crate::rds::get(ctx, &region, id) else {
            continue;
        };
        if !i.running {
            continue;
        }
        let promoted: Vec<String> = inst["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let (rr, ri) = (r["region"].as_str()?, r["identifier"].as_str()?);
                let x = crate::rds::get(ctx, rr, ri).ok()?;
                x.source.is_none().then(|| format!("{rr}/{ri}"))
            })
            .collect();
        if !promoted.is_empty() && i.source.is_none() {
            let why = format!(
                "fenced after region-loss: {} was promoted while {region} was lost; the old \
                 primary stays stopped so it never takes writes as a second primary",
                promoted.join(", ")
            );
            ctx.mutate(|s| {
                if let Some(x) = s.instance_mut(&region, id) {
                    x.running = false;
                    x.db.status = "stopped".into();
                    x.status_reason = Some(why.clone());
                }
                Ok(())
            })?;
            warn!(region, id, "{why}");
            fenced.push(json!({"identifier": id, "promoted": promoted}));
        } else {
            crate::rds::resume(ctx, &region, id);
            restarted.push(json!(id));
        }
    }
    Ok(json!({"restarted": restarted, "fenced": fenced}))
}
