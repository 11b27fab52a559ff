//! RDS on real PostgreSQL 15 clusters. Calls validate and record the change, answer at
//! once with an AWS-like transitional status (`creating`, `modifying`, `rebooting`,
//! `deleting`, ...) and finish in a background task of the daemon, so describe shows
//! the progression without further calls.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_caps::types::common::Tag;
use runbook_caps::types::rds::*;
use runbook_caps::{CapCall, CapError};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::daemon::Ctx;
use crate::ids;
use crate::pg::{self, NodeConf};
use crate::state::{InstanceRec, Node, ParamGroupRec, SnapshotRec, State};

fn nf(id: &str) -> CapError {
    CapError::not_found("DBInstanceNotFound", format!("DBInstance {id} not found."))
}

fn bad_state(id: &str, status: &str) -> CapError {
    CapError::invalid_state(
        "InvalidDBInstanceState",
        format!("DB instance {id} is not in a valid state for this operation (status: {status})."),
    )
}

fn combo(msg: impl Into<String>) -> CapError {
    CapError::new(
        runbook_caps::ErrorKind::InvalidParameter,
        "InvalidParameterCombination",
        msg,
    )
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("record serializes")
}

pub(crate) async fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let r = region.as_str();
    match call.action.as_str() {
        "CreateDBInstance" => create_instance(ctx, r, call.arg_as("request")?).map(to_value),
        "CreateDBInstanceReadReplica" => create_replica(ctx, r, call.arg_as("request")?)
            .await
            .map(to_value),
        "DescribeDBInstances" => {
            let id: Option<String> = call.arg_as("identifier")?;
            describe(ctx, r, id.as_deref()).map(to_value)
        }
        "ModifyDBInstance" => modify(ctx, r, call.arg_as("request")?).map(to_value),
        "DeleteDBInstance" => delete(ctx, r, call.arg_as("request")?).map(to_value),
        "RebootDBInstance" => reboot(
            ctx,
            r,
            &call.arg_as::<String>("identifier")?,
            call.arg_as("force_failover")?,
        )
        .map(to_value),
        "StopDBInstance" => {
            stop_instance(ctx, r, &call.arg_as::<String>("identifier")?).map(to_value)
        }
        "StartDBInstance" => {
            start_instance(ctx, r, &call.arg_as::<String>("identifier")?).map(to_value)
        }
        "PromoteReadReplica" => promote(
            ctx,
            r,
            &call.arg_as::<String>("identifier")?,
            call.arg_as("backup_retention_period")?,
        )
        .map(to_value),
        "CreateDBSnapshot" => create_snapshot(
            ctx,
            r,
            &call.arg_as::<String>("snapshot_identifier")?,
            &call.arg_as::<String>("instance_identifier")?,
            call.arg_as("tags")?,
        )
        .map(to_value),
        "DescribeDBSnapshots" => {
            let snap: Option<String> = call.arg_as("snapshot_identifier")?;
            let inst: Option<String> = call.arg_as("instance_identifier")?;
            describe_snapshots(ctx, r, snap.as_deref(), inst.as_deref()).map(to_value)
        }
        "DeleteDBSnapshot" => {
            delete_snapshot(ctx, r, &call.arg_as::<String>("snapshot_identifier")?).map(to_value)
        }
        "RestoreDBInstanceFromDBSnapshot" => restore(ctx, r, call.arg_as("request")?).map(to_value),
        "CreateDBSubnetGroup" => create_subnet_group(
            ctx,
            r,
            &call.arg_as::<String>("name")?,
            &call.arg_as::<String>("description")?,
            call.arg_as("subnet_ids")?,
        )
        .map(to_value),
        "DescribeDBSubnetGroups" => {
            let name: Option<String> = call.arg_as("name")?;
            ctx.read(|s| {
                let groups: Vec<DbSubnetGroup> = s
                    .region(r)
                    .map(|x| x.subnet_groups.values().cloned().collect())
                    .unwrap_or_default();
                match name {
                    None => Ok(to_value(groups)),
                    Some(n) => groups
                        .into_iter()
                        .find(|g| g.name == n.to_lowercase())
                        .map(|g| to_value(vec![g]))
                        .ok_or_else(|| subnet_group_nf(&n)),
                }
            })
        }
        "DeleteDBSubnetGroup" => {
            let name = call.arg_as::<String>("name")?.to_lowercase();
            ctx.mutate(|s| {
                let reg = s.region_mut(r);
                if !reg.subnet_groups.contains_key(&name) {
                    return Err(subnet_group_nf(&name));
                }
                if reg
                    .instances
                    .values()
                    .any(|i| i.db.db_subnet_group.as_deref() == Some(&name))
                {
                    return Err(CapError::invalid_state(
                        "InvalidDBSubnetGroupStateFault",
                        format!("DB subnet group {name} is in use"),
                    ));
                }
                reg.subnet_groups.remove(&name);
                Ok(Value::Null)
            })
        }
        "CreateDBParameterGroup" => {
            let name = call.arg_as::<String>("name")?.to_lowercase();
            let family: String = call.arg_as("family")?;
            let description: String = call.arg_as("description")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            ctx.mutate(|s| {
                let reg = s.region_mut(r);
                if reg.parameter_groups.contains_key(&name) {
                    return Err(CapError::already_exists(
                        "DBParameterGroupAlreadyExists",
                        format!("Parameter group {name} already exists"),
                    ));
                }
                if !family.starts_with("postgres") {
                    return Err(CapError::invalid_parameter(format!(
                        "family {family} is not a PostgreSQL family"
                    )));
                }
                let group = DbParameterGroup {
                    arn: ids::arn("rds", r, &format!("pg:{name}")),
                    name: name.clone(),
                    family,
                    description,
                };
                reg.parameter_groups.insert(
                    name,
                    ParamGroupRec {
                        group: group.clone(),
                        params: Default::default(),
                        tags,
                    },
                );
                Ok(to_value(group))
            })
        }
        "DescribeDBParameterGroups" => {
            let name: Option<String> = call.arg_as("name")?;
            ctx.read(|s| {
                let groups: Vec<DbParameterGroup> = s
                    .region(r)
                    .map(|x| {
                        x.parameter_groups
                            .values()
                            .map(|g| g.group.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                match name {
                    None => Ok(to_value(groups)),
                    Some(n) => groups
                        .into_iter()
                        .find(|g| g.name == n.to_lowercase())
                        .map(|g| to_value(vec![g]))
                        .ok_or_else(|| param_group_nf(&n)),
                }
            })
        }
        "ModifyDBParameterGroup" => {
            let name = call.arg_as::<String>("name")?.to_lowercase();
            let params: Vec<Parameter> = call.arg_as("parameters")?;
            for p in &params {
                if !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    || p.name.is_empty()
                {
                    return Err(CapError::invalid_parameter(format!(
                        "invalid parameter name {}",
                        p.name
                    )));
                }
            }
            ctx.mutate(|s| {
                let g = s
                    .region_mut(r)
                    .parameter_groups
                    .get_mut(&name)
                    .ok_or_else(|| param_group_nf(&name))?;
                for p in params {
                    g.params.insert(p.name.clone(), p);
                }
                Ok(())
            })?;
            reapply_params(ctx, r, &name);
            Ok(Value::Null)
        }
        "DescribeDBParameters" => {
            let name = call.arg_as::<String>("name")?.to_lowercase();
            ctx.read(|s| {
                s.region(r)
                    .and_then(|x| x.parameter_groups.get(&name))
                    .map(|g| to_value(g.params.values().collect::<Vec<_>>()))
                    .ok_or_else(|| param_group_nf(&name))
            })
        }
        "DeleteDBParameterGroup" => {
            let name = call.arg_as::<String>("name")?.to_lowercase();
            ctx.mutate(|s| {
                let reg = s.region_mut(r);
                if !reg.parameter_groups.contains_key(&name) {
                    return Err(param_group_nf(&name));
                }
                if reg
                    .instances
                    .values()
                    .any(|i| i.db.parameter_group.as_deref() == Some(&name))
                {
                    return Err(CapError::invalid_state(
                        "InvalidDBParameterGroupState",
                        format!("parameter group {name} is in use"),
                    ));
                }
                reg.parameter_groups.remove(&name);
                Ok(Value::Null)
            })
        }
        _ => Err(CapError::unsupported(call, "local")),
    }
}

fn subnet_group_nf(n: &str) -> CapError {
    CapError::not_found(
        "DBSubnetGroupNotFoundFault",
        format!("DB subnet group {n} not found."),
    )
}
fn param_group_nf(n: &str) -> CapError {
    CapError::not_found(
        "DBParameterGroupNotFound",
        format!("DB parameter group {n} not found."),
    )
}
fn snapshot_nf(n: &str) -> CapError {
    CapError::not_found("DBSnapshotNotFound", format!("DBSnapshot {n} not found."))
}

fn validate_identifier(id: &str) -> Result<String, CapError> {
    let id = id.to_lowercase();
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if ok {
        Ok(id)
    } else {
        Err(CapError::invalid_parameter(format!(
            "invalid DB instance identifier '{id}'"
        )))
    }
}

/// AZs of a subnet group's subnets (primary first), or the region's `a`/`b`.
fn pick_azs(s: &State, region: &str, group: Option<&str>) -> Result<(String, String), CapError> {
    let mut azs: Vec<String> = Vec::new();
    if let Some(g) = group {
        let reg = s.region(region).ok_or_else(|| subnet_group_nf(g))?;
        let grp = reg
            .subnet_groups
            .get(&g.to_lowercase())
            .ok_or_else(|| subnet_group_nf(g))?;
        for sid in &grp.subnet_ids {
            if let Some(sn) = reg.subnets.get(sid)
                && !azs.contains(&sn.availability_zone)
            {
                azs.push(sn.availability_zone.clone());
            }
        }
    }
    let a = azs.first().cloned().unwrap_or_else(|| format!("{region}a"));
    let b = azs.get(1).cloned().unwrap_or_else(|| {
        if a.ends_with('a') {
            format!("{region}b")
        } else {
            format!("{region}a")
        }
    });
    Ok((a, b))
}

fn check_refs(
    s: &State,
    region: &str,
    subnet_group: Option<&str>,
    param_group: Option<&str>,
    sgs: &[String],
) -> Result<(), CapError> {
    let reg = s.region(region);
    if let Some(g) = subnet_group
        && !reg.is_some_and(|r| r.subnet_groups.contains_key(&g.to_lowercase()))
    {
        return Err(subnet_group_nf(g));
    }
    if let Some(g) = param_group
        && !reg.is_some_and(|r| r.parameter_groups.contains_key(&g.to_lowercase()))
    {
        return Err(param_group_nf(g));
    }
    for sg in sgs {
        if !reg.is_some_and(|r| r.security_groups.contains_key(sg)) {
            return Err(CapError::not_found(
                "InvalidGroup.NotFound",
                format!("The security group '{sg}' does not exist"),
            ));
        }
    }
    Ok(())
}

fn new_nodes(id: &str, multi_az: bool, azs: &(String, String)) -> Result<Vec<Node>, CapError> {
    let port =
        |_: ()| pg::free_port().map_err(|e| CapError::internal(format!("no free port: {e}")));
    let mut nodes = vec![Node {
        name: format!("{id}-{}", azs.0),
        az: azs.0.clone(),
        port: port(())?,
    }];
    if multi_az {
        let mut p2 = port(())?;
        while p2 == nodes[0].port {
            p2 = port(())?;
        }
        nodes.push(Node {
            name: format!("{id}-{}", azs.1),
            az: azs.1.clone(),
            port: p2,
        });
    }
    Ok(nodes)
}

fn endpoint_address(s: &State, region: &str, id: &str) -> String {
    let suffix = s
        .region(region)
        .map(|r| r.endpoint_suffix.clone())
        .unwrap_or_default();
    format!("{id}.{suffix}.{region}.rds.amazonaws.com")
}

fn create_instance(
    ctx: &Arc<Ctx>,
    region: &str,
    req: CreateDbInstanceRequest,
) -> Result<DbInstance, CapError> {
    let id = validate_identifier(&req.identifier)?;
    if req.engine != "postgres" {
        return Err(CapError::invalid_parameter(format!(
            "engine {} is not supported locally (postgres only)",
            req.engine
        )));
    }
    if !req.engine_version.is_empty() && !req.engine_version.starts_with("15") {
        return Err(CapError::invalid_parameter(format!(
            "engine version {} is not available locally (15.x)",
            req.engine_version
        )));
    }
    // The secret must exist and hold a password now, not fail later in the background.
    let (user, _) = crate::secrets::credentials(ctx, region, &req.master_user_secret)?;
    if !user.is_empty() && user != req.master_username {
        warn!(secret_user = %user, master = %req.master_username, "secret username differs from master username; using the master username");
    }
    let db = ctx.mutate(|s| {
        s.region_mut(region);
        if s.instance(region, &id).is_some() {
            return Err(CapError::already_exists(
                "DBInstanceAlreadyExists",
                format!("DB instance already exists: {id}"),
            ));
        }
        check_refs(
            s,
            region,
            req.db_subnet_group.as_deref(),
            req.parameter_group.as_deref(),
            &req.vpc_security_groups,
        )?;
        let azs = pick_azs(s, region, req.db_subnet_group.as_deref())?;
        let nodes = new_nodes(&id, req.multi_az, &azs)?;
        let secret_name = crate::secrets::find(s, region, &req.master_user_secret)?
            .secret
            .name
            .clone();
        let db = DbInstance {
            identifier: id.clone(),
            arn: ids::arn("rds", region, &format!("db:{id}")),
            region: region.to_string(),
            status: "creating".into(),
            engine: "postgres".into(),
            engine_version: if req.engine_version.is_empty() {
                "15".into()
            } else {
                req.engine_version.clone()
            },
            instance_class: req.instance_class.clone(),
            allocated_storage: req.allocated_storage.max(20),
            storage_type: if req.storage_type.is_empty() {
                "gp3".into()
            } else {
                req.storage_type.clone()
            },
            storage_encrypted: req.storage_encrypted,
            multi_az: req.multi_az,
            availability_zone: Some(azs.0.clone()),
            secondary_availability_zone: req.multi_az.then(|| azs.1.clone()),
            backup_retention_period: req.backup_retention_period,
            endpoint_address: Some(endpoint_address(s, region, &id)),
            endpoint_port: Some(req.port.unwrap_or(5432)),
            master_username: req.master_username.clone(),
            db_subnet_group: req.db_subnet_group.as_ref().map(|g| g.to_lowercase()),
            parameter_group: Some(
                req.parameter_group
                    .as_ref()
                    .map(|g| g.to_lowercase())
                    .unwrap_or_else(|| "default.postgres15".into()),
            ),
            vpc_security_groups: req.vpc_security_groups.clone(),
            read_replica_source: None,
            read_replica_identifiers: vec![],
            deletion_protection: req.deletion_protection,
            tags: req.tags.clone(),
        };
        s.region_mut(region).instances.insert(
            id.clone(),
            InstanceRec {
                db: db.clone(),
                nodes,
                secret_name,
                secret_region: region.to_string(),
                source: None,
                link_port: None,
                db_name: req.db_name.clone(),
                running: true,
                status_reason: None,
                restored_from: None,
            },
        );
        Ok(db)
    })?;
    info!(region, id = %id, multi_az = req.multi_az, "creating DB instance");
    let (c, r, i) = (ctx.clone(), region.to_string(), id.clone());
    spawn_op(ctx, region, &id, "create", Some("available"), async move {
        provision_primary(&c, &r, &i).await
    });
    Ok(db)
}

async fn create_replica(
    ctx: &Arc<Ctx>,
    region: &str,
    req: CreateReadReplicaRequest,
) -> Result<DbInstance, CapError> {
    let id = validate_identifier(&req.identifier)?;
    let src_region = if req.source_region.is_empty() {
        region.to_string()
    } else {
        req.source_region.clone()
    };
    let db = ctx.mutate(|s| {
        s.region_mut(region);
        if s.instance(region, &id).is_some() {
            return Err(CapError::already_exists(
                "DBInstanceAlreadyExists",
                format!("DB instance already exists: {id}"),
            ));
        }
        let src_id = req
            .source
            .rsplit(":db:")
            .next()
            .unwrap_or(&req.source)
            .to_string();
        let src = s
            .instance(&src_region, &src_id)
            .ok_or_else(|| nf(&req.source))?
            .clone();
        if src.db.status != "available" {
            return Err(bad_state(&src_id, &src.db.status));
        }
        check_refs(
            s,
            region,
            req.db_subnet_group.as_deref(),
            req.parameter_group.as_deref(),
            &req.vpc_security_groups,
        )?;
        let cross = src_region != region;
        let azs = pick_azs(s, region, req.db_subnet_group.as_deref())?;
        // A replica is one server; Multi-AZ replicas are not modelled locally.
        let nodes = new_nodes(&id, false, &azs)?;
        let link_port = if cross {
            Some(pg::free_port().map_err(|e| CapError::internal(e.to_string()))?)
        } else {
            None
        };
        let arn = ids::arn("rds", region, &format!("db:{id}"));
        let db = DbInstance {
            identifier: id.clone(),
            arn: arn.clone(),
            region: region.to_string(),
            status: "creating".into(),
            engine: "postgres".into(),
            engine_version: src.db.engine_version.clone(),
            instance_class: if req.instance_class.is_empty() {
                src.db.instance_class.clone()
            } else {
                req.instance_class.clone()
            },
            allocated_storage: src.db.allocated_storage,
            storage_type: req
                .storage_type
                .clone()
                .unwrap_or_else(|| src.db.storage_type.clone()),
            storage_encrypted: req.storage_encrypted,
            multi_az: false,
            availability_zone: Some(azs.0.clone()),
            secondary_availability_zone: None,
            backup_retention_period: 0,
            endpoint_address: Some(endpoint_address(s, region, &id)),
            endpoint_port: src.db.endpoint_port,
            master_username: src.db.master_username.clone(),
            db_subnet_group: req.db_subnet_group.as_ref().map(|g| g.to_lowercase()),
            parameter_group: Some(
                req.parameter_group
                    .as_ref()
                    .map(|g| g.to_lowercase())
                    .unwrap_or_else(|| "default.postgres15".into()),
            ),
            vpc_security_groups: req.vpc_security_groups.clone(),
            // Cross-region sources are named by ARN, as RDS does.
            read_replica_source: Some(if cross {
                src.db.arn.clone()
            } else {
                src_id.clone()
            }),
            read_replica_identifiers: vec![],
            deletion_protection: false,
            tags: req.tags.clone(),
        };
        s.region_mut(region).instances.insert(
            id.clone(),
            InstanceRec {
                db: db.clone(),
                nodes,
                secret_name: src.secret_name.clone(),
                secret_region: src.secret_region.clone(),
                source: Some((src_region.clone(), src_id.clone())),
                link_port,
                db_name: src.db_name.clone(),
                running: true,
                status_reason: None,
                restored_from: None,
            },
        );
        let src_mut = s.instance_mut(&src_region, &src_id).expect("source exists");
        src_mut
            .db
            .read_replica_identifiers
            .push(if cross { arn } else { id.clone() });
        Ok(db)
    })?;
    info!(region, id = %id, source = %req.source, "creating read replica");
    // The link listener must be up before pg_basebackup goes through it.
    crate::net::reconcile(ctx).await;
    let (c, r, i) = (ctx.clone(), region.to_string(), id.clone());
    spawn_op(
        ctx,
        region,
        &id,
        "create-replica",
        Some("available"),
        async move { provision_replica(&c, &r, &i).await },
    );
    Ok(db)
}

pub(crate) fn get(ctx: &Ctx, region: &str, id: &str) -> Result<InstanceRec, CapError> {
    ctx.read(|s| s.instance(region, id).cloned())
        .ok_or_else(|| nf(id))
}

/// Stored status, except that an instance whose serving postmaster is gone (crashed,
/// killed) reports `failed` until it is rebooted or started.
pub(crate) fn effective_status(ctx: &Ctx, region: &str, rec: &InstanceRec) -> String {
    if rec.db.status == "available"
        && rec.running
        && let Some(n0) = rec.nodes.first()
        && pg::postmaster_pid(&ctx.layout.node_dir(region, &n0.name)).is_none()
    {
        return "failed".into();
    }
    rec.db.status.clone()
}

fn view(ctx: &Ctx, region: &str, rec: &InstanceRec) -> DbInstance {
    let mut db = rec.db.clone();
    db.status = effective_status(ctx, region, rec);
    db
}

fn describe(ctx: &Ctx, region: &str, id: Option<&str>) -> Result<Vec<DbInstance>, CapError> {
    let recs: Vec<InstanceRec> = ctx.read(|s| {
        s.region(region)
            .map(|r| r.instances.values().cloned().collect())
            .unwrap_or_default()
    });
    match id {
        None => Ok(recs.iter().map(|r| view(ctx, region, r)).collect()),
        Some(id) => {
            let id = id.to_lowercase();
            let id = id.rsplit(":db:").next().unwrap_or(&id);
            recs.iter()
                .find(|r| r.db.identifier == id)
                .map(|r| vec![view(ctx, region, r)])
                .ok_or_else(|| nf(id))
        }
    }
}

/// Set the status if the instance still exists.
pub(crate) fn set_status(ctx: &Ctx, region: &str, id: &str, status: &str) {
    let _ = ctx.mutate(|s| {
        if let Some(i) = s.instance_mut(region, id) {
            i.db.status = status.to_string();
            if status == "available" {
                i.status_reason = None;
            }
        }
        Ok(())
    });
}

/// Run a background operation on an instance, one at a time per instance; on success
/// move to `ok_status`, on failure to `failed` (or `incompatible-network` when the
/// cross-region link refused it) with the reason kept.
fn spawn_op<F>(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    what: &'static str,
    ok_status: Option<&'static str>,
    fut: F,
) where
    F: Future<Output = Result<(), CapError>> + Send + 'static,
{
    let ctx = ctx.clone();
    let (region, id) = (region.to_string(), id.to_string());
    tokio::spawn(async move {
        let lock = ctx.op_lock(&format!("{region}/{id}"));
        let _g = lock.lock().await;
        let started = Instant::now();
        // As on AWS, the status stays transitional for a while before the work is done.
        let pace = ctx.pace.delay(what);
        if !pace.is_zero() {
            info!(
                region,
                id,
                what,
                ms = pace.as_millis() as u64,
                "paced like AWS"
            );
            tokio::time::sleep(pace).await;
        }
        match fut.await {
            Ok(()) => {
                info!(
                    region,
                    id,
                    what,
                    ms = started.elapsed().as_millis() as u64,
                    "done"
                );
                if let Some(st) = ok_status {
                    set_status(&ctx, &region, &id, st);
                }
            }
            Err(e) => {
                error!(region, id, what, error = %e, "failed");
                let status = if e.code == "IncompatibleNetwork" {
                    "incompatible-network"
                } else {
                    "failed"
                };
                let _ = ctx.mutate(|s| {
                    if let Some(i) = s.instance_mut(&region, &id) {
                        i.db.status = status.into();
                        i.status_reason = Some(e.to_string());
                    }
                    Ok(())
                });
            }
        }
    });
}

fn node_conf(s: &State, region: &str, rec: &InstanceRec, idx: usize, sync: bool) -> NodeConf {
    let mut conf = NodeConf {
        port: rec.nodes[idx].port,
        cluster_name: rec.nodes[idx].name.clone(),
        ..Default::default()
    };
    if sync && idx == 0 && rec.nodes.len() > 1 {
        conf.sync_standby = Some(rec.nodes[1].name.clone());
    }
    if let Some(g) = rec
        .db
        .parameter_group
        .as_ref()
        .and_then(|g| s.region(region)?.parameter_groups.get(g))
    {
        for p in g.params.values() {
            let Some(v) = &p.value else { continue };
            match p.name.as_str() {
                "rds.force_ssl" => conf.ssl = v == "1",
                // Other rds.* knobs have no server equivalent.
                n if n.starts_with("rds.") => {}
                n => {
                    conf.params.insert(n.to_string(), v.clone());
                }
            }
        }
    }
    conf
}

fn apply_conf(
    ctx: &Ctx,
    region: &str,
    rec: &InstanceRec,
    idx: usize,
    sync: bool,
) -> Result<(), CapError> {
    let conf = ctx.read(|s| node_conf(s, region, rec, idx, sync));
    let data = ctx.layout.node_dir(region, &rec.nodes[idx].name);
    if conf.ssl {
        ensure_cert(ctx, &data)?;
    }
    ctx.pg.write_hba(&data, conf.ssl)?;
    ctx.pg.write_conf(&data, &conf)?;
    Ok(())
}

/// A self-signed certificate for `rds.force_ssl=1`.
fn ensure_cert(ctx: &Ctx, data: &std::path::Path) -> Result<(), CapError> {
    if data.join("server.crt").exists() {
        return Ok(());
    }
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "3650",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-out",
        ])
        .arg(data.join("server.crt"))
        .arg("-keyout")
        .arg(data.join("server.key"))
        .output()
        .map_err(|e| CapError::internal(format!("rds.force_ssl needs openssl: {e}")))?;
    if !out.status.success() {
        return Err(CapError::internal(format!(
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    for f in ["server.crt", "server.key"] {
        ctx.pg.chown(&data.join(f))?;
        pg::set_mode(&data.join(f), 0o600);
    }
    Ok(())
}

fn reload(ctx: &Ctx, region: &str, node: &Node) {
    if let Some(pid) = pg::postmaster_pid(&ctx.layout.node_dir(region, &node.name)) {
        pg::signal(pid, libc::SIGHUP);
    }
}

/// Parameter group changed: rewrite every member's settings and reload them.
fn reapply_params(ctx: &Arc<Ctx>, region: &str, group: &str) {
    let members: Vec<InstanceRec> = ctx.read(|s| {
        s.region(region)
            .map(|r| {
                r.instances
                    .values()
                    .filter(|i| i.db.parameter_group.as_deref() == Some(group))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    });
    for rec in members {
        for idx in 0..rec.nodes.len() {
            let sync = idx == 0 && rec.nodes.len() > 1 && rec.db.multi_az;
            if let Err(e) = apply_conf(ctx, region, &rec, idx, sync) {
                warn!(id = %rec.db.identifier, error = %e, "applying parameters failed");
            }
            reload(ctx, region, &rec.nodes[idx]);
        }
    }
}

fn passfile(ctx: &Ctx, region: &str, id: &str) -> PathBuf {
    ctx.layout
        .clusters_dir(region)
        .join(format!(".{id}.pgpass"))
}

fn write_passfile(
    ctx: &Ctx,
    region: &str,
    rec: &InstanceRec,
) -> Result<(String, String, PathBuf), CapError> {
    let (_, password) = crate::secrets::credentials(ctx, &rec.secret_region, &rec.secret_name)?;
    let user = rec.db.master_username.clone();
    ctx.pg.make_private_dir(&ctx.layout.clusters_dir(region))?;
    let path = passfile(ctx, region, &rec.db.identifier);
    ctx.pg
        .write_private(&path, &pg::passfile_content(&user, &password))?;
    Ok((user, password, path))
}

async fn start_node(ctx: &Ctx, region: &str, node: &Node) -> Result<(), CapError> {
    let data = ctx.layout.node_dir(region, &node.name);
    ctx.pg
        .start(&data, &ctx.layout.node_log(region, &node.name))
        .await
}

async fn stop_node(ctx: &Ctx, region: &str, node: &Node) -> Result<(), CapError> {
    ctx.pg.stop(&ctx.layout.node_dir(region, &node.name)).await
}

/// A superuser connection to one node of an instance.
pub(crate) async fn node_client(
    ctx: &Ctx,
    rec: &InstanceRec,
    idx: usize,
) -> Result<tokio_postgres::Client, CapError> {
    let (_, password) = crate::secrets::credentials(ctx, &rec.secret_region, &rec.secret_name)?;
    pg::connect(
        rec.nodes[idx].port,
        &rec.db.master_username,
        &password,
        "postgres",
        Duration::from_secs(5),
    )
    .await
}

async fn provision_primary(ctx: &Arc<Ctx>, region: &str, id: &str) -> Result<(), CapError> {
    let rec = get(ctx, region, id)?;
    let (user, password, _) = write_passfile(ctx, region, &rec)?;
    let n0 = rec.nodes[0].clone();
    let data = ctx.layout.node_dir(region, &n0.name);
    ctx.pg.stop(&data).await?;
    let _ = std::fs::remove_dir_all(&data);
    ctx.pg.initdb(&data, &user, &password).await?;
    apply_conf(ctx, region, &rec, 0, false)?;
    start_node(ctx, region, &n0).await?;
    if let Some(name) = rec.db_name.as_deref().filter(|n| *n != "postgres") {
        let client = node_client(ctx, &rec, 0).await?;
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
            .map_err(|e| pg::pg_error(&e, n0.port))?;
    }
    backing_up(ctx, region, id, &rec).await
}

/// The end of a primary's creation once its writer serves: `backing-up` (as RDS shows
/// while it takes the first backup) while the Multi-AZ standby is built; the
/// operation then makes it `available`.
async fn backing_up(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    rec: &InstanceRec,
) -> Result<(), CapError> {
    set_status(ctx, region, id, "backing-up");
    if rec.nodes.len() > 1 {
        add_standby(ctx, region, id).await?;
    }
    Ok(())
}

/// Build the Multi-AZ standby from the writer, then make it synchronous.
async fn add_standby(ctx: &Arc<Ctx>, region: &str, id: &str) -> Result<(), CapError> {
    let rec = get(ctx, region, id)?;
    let (user, _, pass) = write_passfile(ctx, region, &rec)?;
    let (n0, n1) = (rec.nodes[0].clone(), rec.nodes[1].clone());
    let data1 = ctx.layout.node_dir(region, &n1.name);
    ctx.pg.stop(&data1).await?;
    ctx.pg
        .basebackup(n0.port, &user, &pass, &data1, true)
        .await?;
    pg::make_standby(
        &ctx.pg,
        &data1,
        &pg::conninfo(n0.port, &user, &pass, &n1.name),
    )?;
    apply_conf(ctx, region, &rec, 1, false)?;
    start_node(ctx, region, &n1).await?;
    wait_streaming(ctx, &rec, &n1.name, Duration::from_secs(30)).await?;
    apply_conf(ctx, region, &rec, 0, true)?;
    reload(ctx, region, &n0);
    Ok(())
}

/// Wait until `app` streams from the instance's writer.
async fn wait_streaming(
    ctx: &Ctx,
    rec: &InstanceRec,
    app: &str,
    timeout: Duration,
) -> Result<(), CapError> {
    let started = Instant::now();
    let client = node_client(ctx, rec, 0).await?;
    loop {
        let rows = client
            .query(
                // Caught up, not just connected: a standby on a diverged timeline streams
                // for a moment and then stops, never reaching the writer's position.
                "SELECT state = 'streaming' AND flush_lsn >= pg_current_wal_lsn() \
                 FROM pg_stat_replication WHERE application_name = $1",
                &[&app],
            )
            .await
            .map_err(|e| pg::pg_error(&e, rec.nodes[0].port))?;
        if rows
            .iter()
            .any(|r| r.get::<_, Option<bool>>(0) == Some(true))
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(CapError::internal(format!(
                "{app} did not start streaming within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn provision_replica(ctx: &Arc<Ctx>, region: &str, id: &str) -> Result<(), CapError> {
    let rec = get(ctx, region, id)?;
    let (src_region, src_id) = rec
        .source
        .clone()
        .ok_or_else(|| CapError::internal("replica without a source"))?;
    let src = get(ctx, &src_region, &src_id)?;
    let (user, _, pass) = write_passfile(ctx, region, &rec)?;
    let upstream = match rec.link_port {
        Some(p) => {
            crate::net::link_allowed(ctx, region, id).map_err(|why| {
                CapError::new(
                    runbook_caps::ErrorKind::InvalidState,
                    "IncompatibleNetwork",
                    format!("cross-region link refused: {why}"),
                )
            })?;
            p
        }
        None => src.nodes[0].port,
    };
    let n0 = rec.nodes[0].clone();
    let data = ctx.layout.node_dir(region, &n0.name);
    ctx.pg.stop(&data).await?;
    ctx.pg
        .basebackup(upstream, &user, &pass, &data, true)
        .await?;
    pg::make_standby(
        &ctx.pg,
        &data,
        &pg::conninfo(upstream, &user, &pass, &n0.name),
    )?;
    apply_conf(ctx, region, &rec, 0, false)?;
    start_node(ctx, region, &n0).await?;
    Ok(())
}

fn modify(
    ctx: &Arc<Ctx>,
    region: &str,
    req: ModifyDbInstanceRequest,
) -> Result<DbInstance, CapError> {
    let id = req.identifier.to_lowercase();
    let rec = get(ctx, region, &id)?;
    let status = effective_status(ctx, region, &rec);
    if status != "available" {
        return Err(bad_state(&id, &status));
    }
    let want_multi = req
        .multi_az
        .filter(|m| *m != rec.db.multi_az && rec.source.is_none());
    let params_changed = req
        .parameter_group
        .as_ref()
        .is_some_and(|g| Some(g.to_lowercase()) != rec.db.parameter_group);
    let db = ctx.mutate(|s| {
        check_refs(
            s,
            region,
            None,
            req.parameter_group.as_deref(),
            req.vpc_security_groups.as_deref().unwrap_or(&[]),
        )?;
        let azs = pick_azs(s, region, rec.db.db_subnet_group.as_deref())?;
        let i = s.instance_mut(region, &id).ok_or_else(|| nf(&id))?;
        if let Some(v) = &req.instance_class {
            i.db.instance_class = v.clone();
        }
        if let Some(v) = req.allocated_storage {
            if v < i.db.allocated_storage {
                return Err(CapError::invalid_parameter(
                    "allocated storage cannot be decreased",
                ));
            }
            i.db.allocated_storage = v;
        }
        if let Some(v) = req.backup_retention_period {
            i.db.backup_retention_period = v;
        }
        if let Some(v) = &req.parameter_group {
            i.db.parameter_group = Some(v.to_lowercase());
        }
        if let Some(v) = &req.vpc_security_groups {
            i.db.vpc_security_groups = v.clone();
        }
        if let Some(v) = req.deletion_protection {
            i.db.deletion_protection = v;
        }
        if let Some(m) = want_multi {
            i.db.multi_az = m;
            i.db.status = "modifying".into();
            if m {
                let other = if i.nodes[0].az == azs.0 {
                    azs.1.clone()
                } else {
                    azs.0.clone()
                };
                let port = pg::free_port().map_err(|e| CapError::internal(e.to_string()))?;
                i.nodes.push(Node {
                    name: format!("{id}-{other}"),
                    az: other.clone(),
                    port,
                });
                i.db.secondary_availability_zone = Some(other);
            }
        }
        Ok(i.db.clone())
    })?;
    if params_changed {
        let rec = get(ctx, region, &id)?;
        for idx in 0..rec.nodes.len() {
            let sync = idx == 0 && rec.nodes.len() > 1 && rec.db.multi_az;
            apply_conf(ctx, region, &rec, idx, sync)?;
            reload(ctx, region, &rec.nodes[idx]);
        }
    }
    if let Some(m) = want_multi {
        let (c, r, i) = (ctx.clone(), region.to_string(), id.clone());
        spawn_op(
            ctx,
            region,
            &id,
            "modify-multi-az",
            Some("available"),
            async move {
                if m {
                    add_standby(&c, &r, &i).await
                } else {
                    let rec = get(&c, &r, &i)?;
                    if let Some(n1) = rec.nodes.get(1).cloned() {
                        apply_conf(&c, &r, &rec, 0, false)?;
                        reload(&c, &r, &rec.nodes[0]);
                        stop_node(&c, &r, &n1).await?;
                        let _ = std::fs::remove_dir_all(c.layout.node_dir(&r, &n1.name));
                        c.mutate(|s| {
                            if let Some(x) = s.instance_mut(&r, &i) {
                                x.nodes.truncate(1);
                                x.db.secondary_availability_zone = None;
                            }
                            Ok(())
                        })?;
                    }
                    Ok(())
                }
            },
        );
    }
    Ok(db)
}

/// The status sequence of an operation on an existing instance: refused unless the
/// status is one of `from`; `during` at once; `op` in the background, one operation at a
/// time per instance; then `after`, or `failed` with the reason. `op` gets owned
/// (ctx, region, id) for its future.
#[allow(clippy::too_many_arguments)]
fn transition<F, Fut>(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    from: &[&str],
    during: &str,
    what: &'static str,
    after: &'static str,
    op: F,
) -> Result<DbInstance, CapError>
where
    F: FnOnce(Arc<Ctx>, String, String) -> Fut,
    Fut: Future<Output = Result<(), CapError>> + Send + 'static,
{
    let db = begin(ctx, region, id, from, during)?;
    let fut = op(ctx.clone(), region.to_string(), db.identifier.clone());
    spawn_op(ctx, region, &db.identifier, what, Some(after), fut);
    Ok(db)
}

fn begin(
    ctx: &Ctx,
    region: &str,
    id: &str,
    allowed: &[&str],
    status: &str,
) -> Result<DbInstance, CapError> {
    let id = id.to_lowercase();
    let rec = get(ctx, region, &id)?;
    let current = effective_status(ctx, region, &rec);
    if !allowed.contains(&current.as_str()) {
        return Err(bad_state(&id, &current));
    }
    ctx.mutate(|s| {
        let i = s.instance_mut(region, &id).ok_or_else(|| nf(&id))?;
        i.db.status = status.to_string();
        Ok(i.db.clone())
    })
}

fn reboot(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    force_failover: bool,
) -> Result<DbInstance, CapError> {
    let rec = get(ctx, region, &id.to_lowercase())?;
    if force_failover && rec.nodes.len() < 2 {
        return Err(combo(format!(
            "Cannot reboot with failover: DB instance {id} is not Multi-AZ"
        )));
    }
    transition(
        ctx,
        region,
        id,
        &["available", "failed"],
        "rebooting",
        if force_failover {
            "reboot-failover"
        } else {
            "reboot"
        },
        "available",
        move |c, r, i| async move {
            if force_failover {
                failover(&c, &r, &i).await
            } else {
                restart(&c, &r, &i).await
            }
        },
    )
}

async fn restart(ctx: &Arc<Ctx>, region: &str, id: &str) -> Result<(), CapError> {
    let rec = get(ctx, region, id)?;
    for n in rec.nodes.iter().rev() {
        stop_node(ctx, region, n).await?;
    }
    for (idx, n) in rec.nodes.iter().enumerate() {
        apply_conf(ctx, region, &rec, idx, idx == 0 && rec.nodes.len() > 1)?;
        start_node(ctx, region, n).await?;
    }
    Ok(())
}

/// Multi-AZ failover: stop the writer, promote the standby, turn the old writer into
/// the new standby (pg_rewind, or a fresh base backup when rewind cannot), then make it
/// synchronous again.
async fn failover(ctx: &Arc<Ctx>, region: &str, id: &str) -> Result<(), CapError> {
    let rec = get(ctx, region, id)?;
    let (old, new) = (rec.nodes[0].clone(), rec.nodes[1].clone());
    // A writer that crashed may have WAL the standby never got; rebuild it from a base
    // backup rather than trust pg_rewind's crash recovery to find the divergence.
    let crashed = pg::postmaster_pid(&ctx.layout.node_dir(region, &old.name)).is_none();
    // Unblock commits waiting for the standby before stopping the writer.
    apply_conf(ctx, region, &rec, 0, false)?;
    reload(ctx, region, &old);
    stop_node(ctx, region, &old).await?;
    let client = node_client(ctx, &rec, 1).await?;
    client
        .query_one("SELECT pg_promote(true, 60)", &[])
        .await
        .map_err(|e| pg::pg_error(&e, new.port))?;
    drop(client);
    let rec = ctx.mutate(|s| {
        let i = s.instance_mut(region, id).ok_or_else(|| nf(id))?;
        i.nodes.swap(0, 1);
        i.db.availability_zone = Some(i.nodes[0].az.clone());
        i.db.secondary_availability_zone = Some(i.nodes[1].az.clone());
        Ok(i.clone())
    })?;
    info!(region, id, writer = %new.name, "Multi-AZ failover: standby promoted");
    let (user, _, pass) = write_passfile(ctx, region, &rec)?;
    let data_old = ctx.layout.node_dir(region, &old.name);
    if crashed {
        ctx.pg
            .basebackup(new.port, &user, &pass, &data_old, true)
            .await?;
    } else if let Err(e) = ctx.pg.rewind(&data_old, new.port, &user, &pass).await {
        warn!(error = %e, "pg_rewind failed; rebuilding the standby from a base backup");
        ctx.pg
            .basebackup(new.port, &user, &pass, &data_old, true)
            .await?;
    }
    let _ = std::fs::remove_file(data_old.join("postmaster.pid"));
    pg::make_standby(
        &ctx.pg,
        &data_old,
        &pg::conninfo(new.port, &user, &pass, &old.name),
    )?;
    apply_conf(ctx, region, &rec, 1, false)?;
    start_node(ctx, region, &old).await?;
    wait_streaming(ctx, &rec, &old.name, Duration::from_secs(30)).await?;
    apply_conf(ctx, region, &rec, 0, true)?;
    reload(ctx, region, &rec.nodes[0]);
    Ok(())
}

fn stop_instance(ctx: &Arc<Ctx>, region: &str, id: &str) -> Result<DbInstance, CapError> {
    let rec = get(ctx, region, &id.to_lowercase())?;
    if rec.source.is_some() || !rec.db.read_replica_identifiers.is_empty() {
        return Err(bad_state(
            id,
            "read replicas cannot be stopped, nor instances that have them",
        ));
    }
    transition(
        ctx,
        region,
        id,
        &["available", "failed"],
        "stopping",
        "stop",
        "stopped",
        |c, r, i| async move {
            let rec = get(&c, &r, &i)?;
            for n in rec.nodes.iter().rev() {
                stop_node(&c, &r, n).await?;
            }
            c.mutate(|s| {
                if let Some(x) = s.instance_mut(&r, &i) {
                    x.running = false;
                }
                Ok(())
            })
        },
    )
}

fn start_instance(ctx: &Arc<Ctx>, region: &str, id: &str) -> Result<DbInstance, CapError> {
    transition(
        ctx,
        region,
        id,
        &["stopped"],
        "starting",
        "start",
        "available",
        |c, r, i| async move {
            c.mutate(|s| {
                if let Some(x) = s.instance_mut(&r, &i) {
                    x.running = true;
                }
                Ok(())
            })?;
            restart(&c, &r, &i).await
        },
    )
}

fn promote(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    retention: Option<u32>,
) -> Result<DbInstance, CapError> {
    let rec = get(ctx, region, &id.to_lowercase())?;
    if rec.source.is_none() {
        return Err(bad_state(id, "not a read replica"));
    }
    transition(
        ctx,
        region,
        id,
        &["available"],
        "modifying",
        "promote",
        "available",
        move |c, r, i| async move { do_promote(&c, &r, &i, retention).await },
    )
}

async fn do_promote(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    retention: Option<u32>,
) -> Result<(), CapError> {
    let rec = get(ctx, region, id)?;
    let client = node_client(ctx, &rec, 0).await?;
    let port = rec.nodes[0].port;
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(|e| pg::pg_error(&e, port))?
        .get(0);
    if in_recovery {
        let ok: bool = client
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .map_err(|e| pg::pg_error(&e, port))?
            .get(0);
        if !ok {
            return Err(CapError::internal(
                "pg_promote did not complete within 60 s",
            ));
        }
    }
    // Separate statements: ALTER SYSTEM cannot run in the implicit transaction of a batch.
    for sql in [
        "ALTER SYSTEM RESET primary_conninfo",
        "SELECT pg_reload_conf()",
    ] {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| pg::pg_error(&e, port))?;
    }
    ctx.mutate(|s| {
        let arn = s
            .instance(region, id)
            .map(|i| i.db.arn.clone())
            .unwrap_or_default();
        if let Some((sr, sid)) = s.instance(region, id).and_then(|i| i.source.clone())
            && let Some(src) = s.instance_mut(&sr, &sid)
        {
            src.db
                .read_replica_identifiers
                .retain(|x| x != id && *x != arn);
        }
        let i = s.instance_mut(region, id).ok_or_else(|| nf(id))?;
        i.source = None;
        i.link_port = None;
        i.db.read_replica_source = None;
        if let Some(r) = retention {
            i.db.backup_retention_period = r;
        }
        Ok(())
    })?;
    info!(region, id, "read replica promoted");
    Ok(())
}

fn delete(
    ctx: &Arc<Ctx>,
    region: &str,
    req: DeleteDbInstanceRequest,
) -> Result<DbInstance, CapError> {
    let id = req.identifier.to_lowercase();
    let rec = get(ctx, region, &id)?;
    if rec.db.deletion_protection {
        return Err(combo(format!(
            "Cannot delete protected DB Instance, please disable deletion protection and try again: {id}"
        )));
    }
    if rec.db.status == "deleting" {
        return Err(bad_state(&id, "deleting"));
    }
    let snap = if req.skip_final_snapshot {
        None
    } else {
        let s = req.final_snapshot_identifier.clone().ok_or_else(|| {
            combo("FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
        })?;
        Some(s.to_lowercase())
    };
    let db = ctx.mutate(|s| {
        if let Some(snap) = &snap {
            insert_snapshot(s, region, snap, &id)?;
        }
        let i = s.instance_mut(region, &id).ok_or_else(|| nf(&id))?;
        i.db.status = "deleting".into();
        Ok(i.db.clone())
    })?;
    info!(region, id = %id, final_snapshot = ?snap, "deleting DB instance");
    let (c, r, i) = (ctx.clone(), region.to_string(), id.clone());
    spawn_op(ctx, region, &id, "delete", None, async move {
        do_delete(&c, &r, &i, snap).await
    });
    Ok(db)
}

async fn do_delete(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    snap: Option<String>,
) -> Result<(), CapError> {
    if let Some(snap) = snap {
        take_snapshot(ctx, region, id, &snap).await?;
    }
    let rec = get(ctx, region, id)?;
    for n in rec.nodes.iter().rev() {
        stop_node(ctx, region, n).await?;
        let _ = std::fs::remove_dir_all(ctx.layout.node_dir(region, &n.name));
    }
    let _ = std::fs::remove_file(passfile(ctx, region, id));
    let orphans = ctx.mutate(|s| {
        let arn = rec.db.arn.clone();
        if let Some((sr, sid)) = &rec.source
            && let Some(src) = s.instance_mut(sr, sid)
        {
            src.db
                .read_replica_identifiers
                .retain(|x| x != id && *x != arn);
        }
        s.region_mut(region).instances.remove(id);
        // Replicas of a deleted source are promoted to standalone instances, as in RDS.
        let mut orphans = Vec::new();
        for (rn, r) in &s.regions {
            for (iid, i) in &r.instances {
                if i.source
                    .as_ref()
                    .is_some_and(|(sr, sid)| sr == region && sid == id)
                {
                    orphans.push((rn.clone(), iid.clone()));
                }
            }
        }
        Ok(orphans)
    })?;
    for (r, i) in orphans {
        // One that is busy (or gone) stays as it is.
        let _ = transition(
            ctx,
            &r,
            &i,
            &["available", "failed"],
            "modifying",
            "promote-orphan",
            "available",
            |c, r, i| async move { do_promote(&c, &r, &i, None).await },
        );
    }
    info!(region, id, "DB instance deleted");
    Ok(())
}

fn insert_snapshot(
    s: &mut State,
    region: &str,
    snap: &str,
    id: &str,
) -> Result<DbSnapshot, CapError> {
    let rec = s.instance(region, id).ok_or_else(|| nf(id))?.clone();
    let reg = s.region_mut(region);
    if reg.snapshots.contains_key(snap) {
        return Err(CapError::already_exists(
            "DBSnapshotAlreadyExists",
            format!(
                "Cannot create the snapshot because a snapshot with the identifier {snap} already exists."
            ),
        ));
    }
    let snapshot = DbSnapshot {
        identifier: snap.to_string(),
        arn: ids::arn("rds", region, &format!("snapshot:{snap}")),
        region: region.to_string(),
        instance_identifier: id.to_string(),
        status: "creating".into(),
        engine_version: rec.db.engine_version.clone(),
        allocated_storage: rec.db.allocated_storage,
        created_at: Some(ids::now_str()),
    };
    reg.snapshots.insert(
        snap.to_string(),
        SnapshotRec {
            snap: snapshot.clone(),
            master_username: rec.db.master_username.clone(),
            secret_name: rec.secret_name.clone(),
            secret_region: rec.secret_region.clone(),
            tags: vec![],
        },
    );
    Ok(snapshot)
}

fn create_snapshot(
    ctx: &Arc<Ctx>,
    region: &str,
    snap: &str,
    id: &str,
    tags: Vec<Tag>,
) -> Result<DbSnapshot, CapError> {
    let (snap, id) = (snap.to_lowercase(), id.to_lowercase());
    let rec = get(ctx, region, &id)?;
    let status = effective_status(ctx, region, &rec);
    if status != "available" && status != "stopped" {
        return Err(bad_state(&id, &status));
    }
    let out = ctx.mutate(|s| {
        let out = insert_snapshot(s, region, &snap, &id)?;
        if let Some(x) = s.region_mut(region).snapshots.get_mut(&snap) {
            x.tags = tags;
        }
        if status == "available" {
            s.instance_mut(region, &id).expect("exists").db.status = "backing-up".into();
        }
        Ok(out)
    })?;
    let (c, r, i, sn) = (ctx.clone(), region.to_string(), id.clone(), snap.clone());
    let back = if status == "available" {
        Some("available")
    } else {
        Some("stopped")
    };
    spawn_op(ctx, region, &id, "snapshot", back, async move {
        take_snapshot(&c, &r, &i, &sn).await
    });
    Ok(out)
}

/// A base backup (or a cold copy of a stopped server) into the snapshot directory.
async fn take_snapshot(ctx: &Arc<Ctx>, region: &str, id: &str, snap: &str) -> Result<(), CapError> {
    let rec = get(ctx, region, id)?;
    let dir = ctx.layout.snapshot_dir(region, snap);
    ctx.pg.make_private_dir(&ctx.layout.snapshots_dir(region))?;
    let data = ctx.layout.node_dir(region, &rec.nodes[0].name);
    let result = if pg::postmaster_pid(&data).is_some() {
        let (user, _, pass) = write_passfile(ctx, region, &rec)?;
        ctx.pg
            .basebackup(rec.nodes[0].port, &user, &pass, &dir, false)
            .await
    } else {
        ctx.pg.copy_tree(&data, &dir).await
    };
    let status = if result.is_ok() {
        "available"
    } else {
        "failed"
    };
    ctx.mutate(|s| {
        if let Some(x) = s.region_mut(region).snapshots.get_mut(snap) {
            x.snap.status = status.into();
        }
        Ok(())
    })?;
    result
}

fn describe_snapshots(
    ctx: &Ctx,
    region: &str,
    snap: Option<&str>,
    inst: Option<&str>,
) -> Result<Vec<DbSnapshot>, CapError> {
    let all: Vec<DbSnapshot> = ctx.read(|s| {
        s.region(region)
            .map(|r| r.snapshots.values().map(|x| x.snap.clone()).collect())
            .unwrap_or_default()
    });
    let out: Vec<DbSnapshot> = all
        .into_iter()
        .filter(|x| snap.is_none_or(|w| x.identifier == w.to_lowercase()))
        .filter(|x| inst.is_none_or(|w| x.instance_identifier == w.to_lowercase()))
        .collect();
    if let Some(w) = snap
        && out.is_empty()
    {
        return Err(snapshot_nf(w));
    }
    Ok(out)
}

fn delete_snapshot(ctx: &Ctx, region: &str, snap: &str) -> Result<DbSnapshot, CapError> {
    let snap = snap.to_lowercase();
    let mut rec = ctx.mutate(|s| {
        let reg = s.region_mut(region);
        match reg.snapshots.get(&snap) {
            None => Err(snapshot_nf(&snap)),
            Some(x) if x.snap.status == "creating" => Err(CapError::invalid_state(
                "InvalidDBSnapshotState",
                format!("snapshot {snap} is being created"),
            )),
            Some(_) => Ok(reg.snapshots.remove(&snap).expect("present")),
        }
    })?;
    let _ = std::fs::remove_dir_all(ctx.layout.snapshot_dir(region, &snap));
    rec.snap.status = "deleted".into();
    Ok(rec.snap)
}

fn restore(
    ctx: &Arc<Ctx>,
    region: &str,
    req: RestoreFromSnapshotRequest,
) -> Result<DbInstance, CapError> {
    let id = validate_identifier(&req.identifier)?;
    let snap_id = req.snapshot_identifier.to_lowercase();
    let db = ctx.mutate(|s| {
        s.region_mut(region);
        if s.instance(region, &id).is_some() {
            return Err(CapError::already_exists(
                "DBInstanceAlreadyExists",
                format!("DB instance already exists: {id}"),
            ));
        }
        let snap = s
            .region(region)
            .and_then(|r| r.snapshots.get(&snap_id))
            .cloned()
            .ok_or_else(|| snapshot_nf(&snap_id))?;
        if snap.snap.status != "available" {
            return Err(CapError::invalid_state(
                "InvalidDBSnapshotState",
                format!("snapshot {snap_id} is {}", snap.snap.status),
            ));
        }
        check_refs(
            s,
            region,
            req.db_subnet_group.as_deref(),
            req.parameter_group.as_deref(),
            &req.vpc_security_groups,
        )?;
        let azs = pick_azs(s, region, req.db_subnet_group.as_deref())?;
        let nodes = new_nodes(&id, req.multi_az, &azs)?;
        let db = DbInstance {
            identifier: id.clone(),
            arn: ids::arn("rds", region, &format!("db:{id}")),
            region: region.into(),
            status: "creating".into(),
            engine: "postgres".into(),
            engine_version: snap.snap.engine_version.clone(),
            instance_class: req
                .instance_class
                .clone()
                .unwrap_or_else(|| "db.t3.large".into()),
            allocated_storage: snap.snap.allocated_storage,
            storage_type: "gp3".into(),
            storage_encrypted: true,
            multi_az: req.multi_az,
            availability_zone: Some(azs.0.clone()),
            secondary_availability_zone: req.multi_az.then(|| azs.1.clone()),
            backup_retention_period: 1,
            endpoint_address: Some(endpoint_address(s, region, &id)),
            endpoint_port: Some(5432),
            master_username: snap.master_username.clone(),
            db_subnet_group: req.db_subnet_group.as_ref().map(|g| g.to_lowercase()),
            parameter_group: Some(
                req.parameter_group
                    .as_ref()
                    .map(|g| g.to_lowercase())
                    .unwrap_or_else(|| "default.postgres15".into()),
            ),
            vpc_security_groups: req.vpc_security_groups.clone(),
            read_replica_source: None,
            read_replica_identifiers: vec![],
            deletion_protection: false,
            tags: req.tags.clone(),
        };
        s.region_mut(region).instances.insert(
            id.clone(),
            InstanceRec {
                db: db.clone(),
                nodes,
                secret_name: snap.secret_name.clone(),
                secret_region: snap.secret_region.clone(),
                source: None,
                link_port: None,
                db_name: None,
                running: true,
                status_reason: None,
                restored_from: Some(snap_id.clone()),
            },
        );
        Ok(db)
    })?;
    let (c, r, i) = (ctx.clone(), region.to_string(), id.clone());
    spawn_op(ctx, region, &id, "restore", Some("available"), async move {
        provision_restore(&c, &r, &i, &snap_id).await
    });
    Ok(db)
}

async fn provision_restore(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    snap: &str,
) -> Result<(), CapError> {
    let rec = get(ctx, region, id)?;
    write_passfile(ctx, region, &rec)?;
    let n0 = rec.nodes[0].clone();
    let data = ctx.layout.node_dir(region, &n0.name);
    ctx.pg.make_private_dir(&ctx.layout.clusters_dir(region))?;
    ctx.pg
        .copy_tree(&ctx.layout.snapshot_dir(region, snap), &data)
        .await?;
    for f in ["standby.signal", "recovery.signal", "postmaster.pid"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    pg::set_auto_conf(&ctx.pg, &data, "primary_conninfo", None)?;
    apply_conf(ctx, region, &rec, 0, false)?;
    start_node(ctx, region, &n0).await?;
    backing_up(ctx, region, id, &rec).await
}

fn create_subnet_group(
    ctx: &Ctx,
    region: &str,
    name: &str,
    description: &str,
    subnet_ids: Vec<String>,
) -> Result<DbSubnetGroup, CapError> {
    let name = name.to_lowercase();
    ctx.mutate(|s| {
        let reg = s.region_mut(region);
        if reg.subnet_groups.contains_key(&name) {
            return Err(CapError::already_exists("DBSubnetGroupAlreadyExists", format!("DB subnet group {name} already exists")));
        }
        let mut vpc = None;
        let mut azs = Vec::new();
        for sid in &subnet_ids {
            let sn = reg
                .subnets
                .get(sid)
                .ok_or_else(|| CapError::not_found("InvalidSubnet", format!("subnet {sid} does not exist")))?;
            if vpc.get_or_insert(sn.vpc_id.clone()) != &sn.vpc_id {
                return Err(CapError::invalid_parameter("all subnets of a DB subnet group must be in one VPC"));
            }
            if !azs.contains(&sn.availability_zone) {
                azs.push(sn.availability_zone.clone());
            }
        }
        if azs.len() < 2 {
            return Err(CapError::invalid_parameter(
                "The DB subnet group doesn't meet Availability Zone (AZ) coverage requirement. Current AZ coverage: 1. Add subnets to cover at least 2 AZs.",
            )
            .with_code("DBSubnetGroupDoesNotCoverEnoughAZs"));
        }
        let g = DbSubnetGroup {
            arn: ids::arn("rds", region, &format!("subgrp:{name}")),
            name: name.clone(),
            description: description.into(),
            vpc_id: vpc.unwrap_or_default(),
            subnet_ids,
            status: "Complete".into(),
        };
        reg.subnet_groups.insert(name, g.clone());
        Ok(g)
    })
}

trait WithCode {
    fn with_code(self, code: &str) -> Self;
}
impl WithCode for CapError {
    fn with_code(mut self, code: &str) -> Self {
        self.code = code.into();
        self
    }
}

/// Bring the servers back after a daemon (re)start: finish or redo what was in flight.
pub(crate) async fn recover(ctx: &Arc<Ctx>) {
    let all: Vec<(String, InstanceRec)> = ctx.read(|s| {
        s.regions
            .iter()
            .flat_map(|(r, x)| x.instances.values().map(move |i| (r.clone(), i.clone())))
            .collect()
    });
    for (region, rec) in all {
        if crate::fault::region_lost(ctx, &region) {
            // A lost region stays down across daemon restarts until its fault is undone.
            continue;
        }
        let id = rec.db.identifier.clone();
        let (c, r, i) = (ctx.clone(), region.clone(), id.clone());
        match rec.db.status.as_str() {
            "creating" | "backing-up"
                if pg::postmaster_pid(&ctx.layout.node_dir(&region, &rec.nodes[0].name))
                    .is_none() =>
            {
                warn!(region, id, "creation was interrupted; starting it again");
                if let Some(snap) = rec.restored_from.clone() {
                    spawn_op(ctx, &region, &id, "create", Some("available"), async move {
                        provision_restore(&c, &r, &i, &snap).await
                    });
                } else if rec.source.is_some() {
                    spawn_op(ctx, &region, &id, "create", Some("available"), async move {
                        provision_replica(&c, &r, &i).await
                    });
                } else {
                    spawn_op(ctx, &region, &id, "create", Some("available"), async move {
                        provision_primary(&c, &r, &i).await
                    });
                }
            }
            "deleting" => spawn_op(ctx, &region, &id, "delete", None, async move {
                do_delete(&c, &r, &i, None).await
            }),
            "stopped" | "failed" | "incompatible-network" => {}
            "stopping" => spawn_op(ctx, &region, &id, "stop", Some("stopped"), async move {
                let rec = get(&c, &r, &i)?;
                for n in rec.nodes.iter().rev() {
                    stop_node(&c, &r, n).await?;
                }
                Ok(())
            }),
            _ if rec.running => {
                let st = rec.db.status.clone();
                let all_up = rec
                    .nodes
                    .iter()
                    .all(|n| pg::postmaster_pid(&ctx.layout.node_dir(&region, &n.name)).is_some());
                if !all_up {
                    // Servers come back in the background; say so instead of `failed`.
                    set_status(ctx, &region, &id, "starting");
                }
                spawn_op(ctx, &region, &id, "resume", Some("available"), async move {
                    let rec = get(&c, &r, &i)?;
                    for n in &rec.nodes {
                        start_node(&c, &r, n).await?;
                    }
                    if st != "available" {
                        info!(region = r, id = i, was = st, "settled after restart");
                    }
                    Ok(())
                });
            }
            _ => {}
        }
    }
}

/// Start the servers of an instance whose postmasters are gone (after a fault), in the
/// background: `starting`, then `available`.
pub(crate) fn resume(ctx: &Arc<Ctx>, region: &str, id: &str) {
    set_status(ctx, region, id, "starting");
    let (c, r, i) = (ctx.clone(), region.to_string(), id.to_string());
    spawn_op(ctx, region, id, "resume", Some("available"), async move {
        let rec = get(&c, &r, &i)?;
        for n in &rec.nodes {
            if pg::postmaster_pid(&c.layout.node_dir(&r, &n.name)).is_none() {
                start_node(&c, &r, n).await?;
            }
        }
        Ok(())
    });
}

/// SIGKILL the postmaster serving an instance (all nodes with `all_nodes`).
pub(crate) fn crash(
    ctx: &Ctx,
    instance: &str,
    region: Option<&str>,
    all_nodes: bool,
) -> Result<Value, CapError> {
    let (region, id) = ctx
        .read(|s| s.find_instance(instance, region))
        .ok_or_else(|| nf(instance))?;
    let rec = get(ctx, &region, &id)?;
    let mut killed = Vec::new();
    for n in rec
        .nodes
        .iter()
        .take(if all_nodes { rec.nodes.len() } else { 1 })
    {
        if let Some(pid) = pg::postmaster_pid(&ctx.layout.node_dir(&region, &n.name)) {
            pg::signal(pid, libc::SIGKILL);
            warn!(region, id, node = %n.name, pid, "crashed on request (SIGKILL)");
            killed.push(json!({"node": n.name, "pid": pid}));
        }
    }
    Ok(json!({"region": region, "identifier": id, "killed": killed}))
}

/// Multi-AZ automatic failover, as RDS does when the writer's host dies: a writer
/// found dead on two checks in a row while its standby lives is replaced by the
/// standby. `crash --all-nodes` (both servers dead) leaves the instance failed.
pub(crate) fn spawn_multi_az_monitor(ctx: Arc<Ctx>) {
    tokio::spawn(async move {
        let mut suspects: std::collections::HashMap<String, u32> = Default::default();
        // Per instance: whether the writer currently commits without its standby.
        let mut async_mode: std::collections::HashMap<String, bool> = Default::default();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let candidates: Vec<(String, InstanceRec)> = ctx.read(|s| {
                s.regions
                    .iter()
                    .flat_map(|(r, x)| x.instances.values().map(move |i| (r.clone(), i.clone())))
                    .filter(|(_, i)| {
                        i.running
                            && i.db.status == "available"
                            && i.nodes.len() > 1
                            && i.source.is_none()
                    })
                    .collect()
            });
            let mut seen = std::collections::HashSet::new();
            for (region, rec) in candidates {
                if crate::fault::region_lost(&ctx, &region) {
                    continue;
                }
                let key = format!("{region}/{}", rec.db.identifier);
                seen.insert(key.clone());
                let dead =
                    |n: &Node| pg::postmaster_pid(&ctx.layout.node_dir(&region, &n.name)).is_none();
                // Like RDS, a lost standby must not stall the writer: commits go
                // asynchronous until the standby is back.
                let want_async = dead(&rec.nodes[1]);
                let is_async = async_mode.get(&key).copied().unwrap_or(false);
                if want_async != is_async && ctx.op_lock(&key).try_lock().is_ok() {
                    if apply_conf(&ctx, &region, &rec, 0, !want_async).is_ok() {
                        reload(&ctx, &region, &rec.nodes[0]);
                        warn!(region, id = %rec.db.identifier, synchronous = !want_async, "standby commit mode changed");
                    }
                    async_mode.insert(key.clone(), want_async);
                }
                if !dead(&rec.nodes[0]) || dead(&rec.nodes[1]) {
                    suspects.remove(&key);
                    continue;
                }
                // Another operation (reboot, stop) owns the servers right now.
                if ctx.op_lock(&key).try_lock().is_err() {
                    continue;
                }
                let n = suspects.entry(key.clone()).or_default();
                *n += 1;
                if *n < 2 {
                    continue;
                }
                suspects.remove(&key);
                let id = rec.db.identifier.clone();
                // Not failed any more (rebooted, deleted meanwhile): nothing to do.
                let _ = transition(
                    &ctx,
                    &region,
                    &id,
                    &["failed"],
                    "rebooting",
                    "multi-az-failover",
                    "available",
                    |c, r, i| {
                        warn!(
                            region = r,
                            id = i,
                            "writer is down; Multi-AZ failover to the standby"
                        );
                        async move { failover(&c, &r, &i).await }
                    },
                );
            }
            suspects.retain(|k, _| seen.contains(k));
            async_mode.retain(|k, _| seen.contains(k));
        }
    });
}
