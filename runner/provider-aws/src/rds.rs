//! `rds` on aws-sdk-rds.

use aws_sdk_rds::Client;
use aws_sdk_rds::types as t;
use runbook_caps::types::common::Tag;
use runbook_caps::types::rds::*;
use runbook_caps::{CapCall, CapError};
use serde_json::Value;

use crate::error::send;
use crate::{AwsProvider, rfc3339, to_value};

fn tags(v: &[Tag]) -> Option<Vec<t::Tag>> {
    Some(
        v.iter()
            .map(|x| t::Tag::builder().key(&x.key).value(&x.value).build())
            .collect(),
    )
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn u32_of(v: Option<i32>) -> u32 {
    v.and_then(|x| u32::try_from(x).ok()).unwrap_or(0)
}

pub(crate) fn instance(region: &str, d: &t::DbInstance) -> DbInstance {
    DbInstance {
        identifier: d.db_instance_identifier().unwrap_or_default().into(),
        arn: d.db_instance_arn().unwrap_or_default().into(),
        region: region.into(),
        status: d.db_instance_status().unwrap_or_default().into(),
        engine: d.engine().unwrap_or_default().into(),
        engine_version: d.engine_version().unwrap_or_default().into(),
        instance_class: d.db_instance_class().unwrap_or_default().into(),
        allocated_storage: u32_of(d.allocated_storage()),
        storage_type: d.storage_type().unwrap_or_default().into(),
        storage_encrypted: d.storage_encrypted().unwrap_or(false),
        multi_az: d.multi_az().unwrap_or(false),
        availability_zone: d.availability_zone().map(str::to_string),
        secondary_availability_zone: d.secondary_availability_zone().map(str::to_string),
        backup_retention_period: u32_of(d.backup_retention_period()),
        endpoint_address: d.endpoint().and_then(|e| e.address()).map(str::to_string),
        endpoint_port: d
            .endpoint()
            .and_then(|e| e.port())
            .and_then(|p| u16::try_from(p).ok()),
        master_username: d.master_username().unwrap_or_default().into(),
        db_subnet_group: d
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_name())
            .map(str::to_string),
        parameter_group: d
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .map(str::to_string),
        vpc_security_groups: d
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
        read_replica_source: d
            .read_replica_source_db_instance_identifier()
            .map(str::to_string),
        read_replica_identifiers: d.read_replica_db_instance_identifiers().to_vec(),
        deletion_protection: d.deletion_protection().unwrap_or(false),
        tags: d
            .tag_list()
            .iter()
            .map(|x| Tag {
                key: x.key().unwrap_or_default().into(),
                value: x.value().unwrap_or_default().into(),
            })
            .collect(),
    }
}

fn snapshot(region: &str, s: &t::DbSnapshot) -> DbSnapshot {
    DbSnapshot {
        identifier: s.db_snapshot_identifier().unwrap_or_default().into(),
        arn: s.db_snapshot_arn().unwrap_or_default().into(),
        region: region.into(),
        instance_identifier: s.db_instance_identifier().unwrap_or_default().into(),
        status: s.status().unwrap_or_default().into(),
        engine_version: s.engine_version().unwrap_or_default().into(),
        allocated_storage: u32_of(s.allocated_storage()),
        created_at: s.snapshot_create_time().map(rfc3339),
    }
}

fn subnet_group(g: &t::DbSubnetGroup) -> DbSubnetGroup {
    DbSubnetGroup {
        name: g.db_subnet_group_name().unwrap_or_default().into(),
        arn: g.db_subnet_group_arn().unwrap_or_default().into(),
        description: g.db_subnet_group_description().unwrap_or_default().into(),
        vpc_id: g.vpc_id().unwrap_or_default().into(),
        subnet_ids: g
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(str::to_string))
            .collect(),
        status: g.subnet_group_status().unwrap_or_default().into(),
    }
}

fn param_group(g: &t::DbParameterGroup) -> DbParameterGroup {
    DbParameterGroup {
        name: g.db_parameter_group_name().unwrap_or_default().into(),
        arn: g.db_parameter_group_arn().unwrap_or_default().into(),
        family: g.db_parameter_group_family().unwrap_or_default().into(),
        description: g.description().unwrap_or_default().into(),
    }
}

fn one(region: &str, d: Option<&t::DbInstance>, id: &str) -> Result<Value, CapError> {
    d.map(|d| to_value(instance(region, d)))
        .ok_or_else(|| CapError::internal(format!("AWS answered without the DB instance {id}")))
}

/// The master password of a new instance, read host-side from its secret so it never
/// crosses into a plugin.
async fn master_password(
    p: &AwsProvider,
    call: &CapCall,
    region: &str,
    secret: &str,
) -> Result<String, CapError> {
    let (_, password) = crate::secrets::credentials(p, call, region, secret).await?;
    Ok(password)
}

pub(crate) async fn describe(
    p: &AwsProvider,
    call: &CapCall,
    region: &str,
    id: Option<&str>,
) -> Result<Vec<DbInstance>, CapError> {
    let c = p.rds(region).await;
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let o = send(
            call,
            "DescribeDBInstances",
            c.describe_db_instances()
                .set_db_instance_identifier(id.map(str::to_string))
                .set_marker(marker.take())
                .send(),
        )
        .await?;
        out.extend(o.db_instances().iter().map(|d| instance(region, d)));
        match o.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

pub(crate) async fn handle(p: &AwsProvider, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let r = region.as_str();
    let c: Client = p.rds(r).await;
    match call.action.as_str() {
        "CreateDBInstance" => {
            let q: CreateDbInstanceRequest = call.arg_as("request")?;
            let password = master_password(p, call, r, &q.master_user_secret).await?;
            let o = send(
                call,
                "CreateDBInstance",
                c.create_db_instance()
                    .db_instance_identifier(&q.identifier)
                    .engine(&q.engine)
                    .engine_version(&q.engine_version)
                    .db_instance_class(&q.instance_class)
                    .allocated_storage(i32_of(q.allocated_storage))
                    .storage_type(&q.storage_type)
                    .storage_encrypted(q.storage_encrypted)
                    .multi_az(q.multi_az)
                    .backup_retention_period(i32_of(q.backup_retention_period))
                    .master_username(&q.master_username)
                    .master_user_password(password)
                    .set_db_name(q.db_name.clone())
                    .set_port(q.port.map(i32::from))
                    .set_db_subnet_group_name(q.db_subnet_group.clone())
                    .set_db_parameter_group_name(q.parameter_group.clone())
                    .set_vpc_security_group_ids(Some(q.vpc_security_groups.clone()))
                    .deletion_protection(q.deletion_protection)
                    .publicly_accessible(false)
                    .set_tags(tags(&q.tags))
                    .send(),
            )
            .await?;
            one(r, o.db_instance(), &q.identifier)
        }
        "CreateDBInstanceReadReplica" => {
            let q: CreateReadReplicaRequest = call.arg_as("request")?;
            // Cross-region: the source is named by its ARN, which carries the source
            // region. The Rust SDK has no `SourceRegion` member (in botocore and the CLI it
            // is a client-side pseudo-parameter that only generates `PreSignedUrl`), and
            // RDS ignores `PreSignedUrl` outside GovCloud and China, presigning the
            // source-region request itself. So we check that the ARN names
            // `source_region` and send the ARN. An encrypted cross-region replica needs
            // a KMS key of the destination region: the AWS-managed `alias/aws/rds` (the
            // WIT contract has no key field).
            let cross_region = q.source_region != r;
            if cross_region {
                let arn_region = q.source.split(':').nth(3).unwrap_or_default();
                if !q.source.starts_with("arn:") || arn_region != q.source_region {
                    return Err(CapError::invalid_parameter(format!(
                        "a cross-region read replica names its source by ARN in {} \
                         (arn:aws:rds:{}:ACCOUNT:db:ID), not '{}'",
                        q.source_region, q.source_region, q.source
                    )));
                }
            }
            let o = send(
                call,
                "CreateDBInstanceReadReplica",
                c.create_db_instance_read_replica()
                    .db_instance_identifier(&q.identifier)
                    .source_db_instance_identifier(&q.source)
                    .set_kms_key_id(
                        (cross_region && q.storage_encrypted).then(|| "alias/aws/rds".to_string()),
                    )
                    .db_instance_class(&q.instance_class)
                    .set_storage_type(q.storage_type.clone())
                    .multi_az(q.multi_az)
                    .set_db_subnet_group_name(q.db_subnet_group.clone())
                    .set_db_parameter_group_name(q.parameter_group.clone())
                    .set_vpc_security_group_ids(Some(q.vpc_security_groups.clone()))
                    .publicly_accessible(false)
                    .set_tags(tags(&q.tags))
                    .send(),
            )
            .await?;
            one(r, o.db_instance(), &q.identifier)
        }
        "DescribeDBInstances" => {
            let id: Option<String> = call.arg_as("identifier")?;
            describe(p, call, r, id.as_deref()).await.map(to_value)
        }
        "ModifyDBInstance" => {
            let q: ModifyDbInstanceRequest = call.arg_as("request")?;
            let o = send(
                call,
                "ModifyDBInstance",
                c.modify_db_instance()
                    .db_instance_identifier(&q.identifier)
                    .set_db_instance_class(q.instance_class.clone())
                    .set_allocated_storage(q.allocated_storage.map(i32_of))
                    .set_backup_retention_period(q.backup_retention_period.map(i32_of))
                    .set_multi_az(q.multi_az)
                    .set_db_parameter_group_name(q.parameter_group.clone())
                    .set_vpc_security_group_ids(q.vpc_security_groups.clone())
                    .set_deletion_protection(q.deletion_protection)
                    .apply_immediately(q.apply_immediately)
                    .send(),
            )
            .await?;
            one(r, o.db_instance(), &q.identifier)
        }
        "DeleteDBInstance" => {
            let q: DeleteDbInstanceRequest = call.arg_as("request")?;
            let o = send(
                call,
                "DeleteDBInstance",
                c.delete_db_instance()
                    .db_instance_identifier(&q.identifier)
                    .skip_final_snapshot(q.skip_final_snapshot)
                    .set_final_db_snapshot_identifier(q.final_snapshot_identifier.clone())
                    .send(),
            )
            .await?;
            one(r, o.db_instance(), &q.identifier)
        }
        "RebootDBInstance" => {
            let id: String = call.arg_as("identifier")?;
            let force: bool = call.arg_as("force_failover")?;
            let o = send(
                call,
                "RebootDBInstance",
                c.reboot_db_instance()
                    .db_instance_identifier(&id)
                    .force_failover(force)
                    .send(),
            )
            .await?;
            one(r, o.db_instance(), &id)
        }
        "StopDBInstance" => {
            let id: String = call.arg_as("identifier")?;
            let o = send(
                call,
                "StopDBInstance",
                c.stop_db_instance().db_instance_identifier(&id).send(),
            )
            .await?;
            one(r, o.db_instance(), &id)
        }
        "StartDBInstance" => {
            let id: String = call.arg_as("identifier")?;
            let o = send(
                call,
                "StartDBInstance",
                c.start_db_instance().db_instance_identifier(&id).send(),
            )
            .await?;
            one(r, o.db_instance(), &id)
        }
        "PromoteReadReplica" => {
            let id: String = call.arg_as("identifier")?;
            let keep: Option<u32> = call.arg_as("backup_retention_period")?;
            let o = send(
                call,
                "PromoteReadReplica",
                c.promote_read_replica()
                    .db_instance_identifier(&id)
                    .set_backup_retention_period(keep.map(i32_of))
                    .send(),
            )
            .await?;
            one(r, o.db_instance(), &id)
        }
        "CreateDBSnapshot" => {
            let sid: String = call.arg_as("snapshot_identifier")?;
            let iid: String = call.arg_as("instance_identifier")?;
            let tg: Vec<Tag> = call.arg_as("tags")?;
            let o = send(
                call,
                "CreateDBSnapshot",
                c.create_db_snapshot()
                    .db_snapshot_identifier(&sid)
                    .db_instance_identifier(&iid)
                    .set_tags(tags(&tg))
                    .send(),
            )
            .await?;
            o.db_snapshot()
                .map(|s| to_value(snapshot(r, s)))
                .ok_or_else(|| CapError::internal("AWS answered without the snapshot"))
        }
        "DescribeDBSnapshots" => {
            let sid: Option<String> = call.arg_as("snapshot_identifier")?;
            let iid: Option<String> = call.arg_as("instance_identifier")?;
            let mut out = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "DescribeDBSnapshots",
                    c.describe_db_snapshots()
                        .set_db_snapshot_identifier(sid.clone())
                        .set_db_instance_identifier(iid.clone())
                        .set_marker(marker.take())
                        .send(),
                )
                .await?;
                out.extend(o.db_snapshots().iter().map(|s| snapshot(r, s)));
                match o.marker() {
                    Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                    _ => break,
                }
            }
            if let (Some(n), true) = (&sid, out.is_empty()) {
                return Err(CapError::not_found(
                    "DBSnapshotNotFound",
                    format!("DBSnapshot {n} not found."),
                ));
            }
            Ok(to_value(out))
        }
        "DeleteDBSnapshot" => {
            let sid: String = call.arg_as("snapshot_identifier")?;
            let o = send(
                call,
                "DeleteDBSnapshot",
                c.delete_db_snapshot().db_snapshot_identifier(&sid).send(),
            )
            .await?;
            o.db_snapshot()
                .map(|s| to_value(snapshot(r, s)))
                .ok_or_else(|| CapError::internal("AWS answered without the snapshot"))
        }
        "RestoreDBInstanceFromDBSnapshot" => {
            let q: RestoreFromSnapshotRequest = call.arg_as("request")?;
            let o = send(
                call,
                "RestoreDBInstanceFromDBSnapshot",
                c.restore_db_instance_from_db_snapshot()
                    .db_instance_identifier(&q.identifier)
                    .db_snapshot_identifier(&q.snapshot_identifier)
                    .set_db_instance_class(q.instance_class.clone())
                    .multi_az(q.multi_az)
                    .set_db_subnet_group_name(q.db_subnet_group.clone())
                    .set_db_parameter_group_name(q.parameter_group.clone())
                    .set_vpc_security_group_ids(Some(q.vpc_security_groups.clone()))
                    .publicly_accessible(false)
                    .set_tags(tags(&q.tags))
                    .send(),
            )
            .await?;
            one(r, o.db_instance(), &q.identifier)
        }
        "CreateDBSubnetGroup" => {
            let name: String = call.arg_as("name")?;
            let description: String = call.arg_as("description")?;
            let subnets: Vec<String> = call.arg_as("subnet_ids")?;
            let tg: Vec<Tag> = call.arg_as("tags")?;
            let o = send(
                call,
                "CreateDBSubnetGroup",
                c.create_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .db_subnet_group_description(&description)
                    .set_subnet_ids(Some(subnets))
                    .set_tags(tags(&tg))
                    .send(),
            )
            .await?;
            o.db_subnet_group()
                .map(|g| to_value(subnet_group(g)))
                .ok_or_else(|| CapError::internal("AWS answered without the subnet group"))
        }
        "DescribeDBSubnetGroups" => {
            let name: Option<String> = call.arg_as("name")?;
            let mut out = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "DescribeDBSubnetGroups",
                    c.describe_db_subnet_groups()
                        .set_db_subnet_group_name(name.clone())
                        .set_marker(marker.take())
                        .send(),
                )
                .await?;
                out.extend(o.db_subnet_groups().iter().map(subnet_group));
                match o.marker() {
                    Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                    _ => break,
                }
            }
            // Named and absent is an error (as RDS and the local provider answer; some
            // emulators return an empty list).
            if let (Some(n), true) = (&name, out.is_empty()) {
                return Err(CapError::not_found(
                    "DBSubnetGroupNotFoundFault",
                    format!("DB subnet group {n} not found."),
                ));
            }
            Ok(to_value(out))
        }
        "DeleteDBSubnetGroup" => {
            let name: String = call.arg_as("name")?;
            send(
                call,
                "DeleteDBSubnetGroup",
                c.delete_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        "CreateDBParameterGroup" => {
            let name: String = call.arg_as("name")?;
            let family: String = call.arg_as("family")?;
            let description: String = call.arg_as("description")?;
            let tg: Vec<Tag> = call.arg_as("tags")?;
            let o = send(
                call,
                "CreateDBParameterGroup",
                c.create_db_parameter_group()
                    .db_parameter_group_name(&name)
                    .db_parameter_group_family(&family)
                    .description(&description)
                    .set_tags(tags(&tg))
                    .send(),
            )
            .await?;
            o.db_parameter_group()
                .map(|g| to_value(param_group(g)))
                .ok_or_else(|| CapError::internal("AWS answered without the parameter group"))
        }
        "DescribeDBParameterGroups" => {
            let name: Option<String> = call.arg_as("name")?;
            let mut out = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "DescribeDBParameterGroups",
                    c.describe_db_parameter_groups()
                        .set_db_parameter_group_name(name.clone())
                        .set_marker(marker.take())
                        .send(),
                )
                .await?;
                out.extend(o.db_parameter_groups().iter().map(param_group));
                match o.marker() {
                    Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                    _ => break,
                }
            }
            if let (Some(n), true) = (&name, out.is_empty()) {
                return Err(CapError::not_found(
                    "DBParameterGroupNotFound",
                    format!("DB parameter group {n} not found."),
                ));
            }
            Ok(to_value(out))
        }
        "ModifyDBParameterGroup" => {
            let name: String = call.arg_as("name")?;
            let params: Vec<Parameter> = call.arg_as("parameters")?;
            // RDS takes at most 20 parameters per call.
            for chunk in params.chunks(20) {
                let list: Vec<t::Parameter> = chunk
                    .iter()
                    .map(|x| {
                        t::Parameter::builder()
                            .parameter_name(&x.name)
                            .set_parameter_value(x.value.clone())
                            .apply_method(t::ApplyMethod::from(x.apply_method.as_str()))
                            .build()
                    })
                    .collect();
                send(
                    call,
                    "ModifyDBParameterGroup",
                    c.modify_db_parameter_group()
                        .db_parameter_group_name(&name)
                        .set_parameters(Some(list))
                        .send(),
                )
                .await?;
            }
            Ok(Value::Null)
        }
        "DescribeDBParameters" => {
            let name: String = call.arg_as("name")?;
            let mut out = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "DescribeDBParameters",
                    c.describe_db_parameters()
                        .db_parameter_group_name(&name)
                        .source("user")
                        .set_marker(marker.take())
                        .send(),
                )
                .await?;
                out.extend(
                    o.parameters()
                        .iter()
                        // moto ignores the Source filter; keep what the user set.
                        .filter(|x| x.source().is_none_or(|s| s == "user"))
                        .map(|x| Parameter {
                            name: x.parameter_name().unwrap_or_default().into(),
                            value: x.parameter_value().map(str::to_string),
                            apply_method: x
                                .apply_method()
                                .map(|m| m.as_str().to_string())
                                .unwrap_or_else(|| "pending-reboot".into()),
                        }),
                );
                match o.marker() {
                    Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "DeleteDBParameterGroup" => {
            let name: String = call.arg_as("name")?;
            send(
                call,
                "DeleteDBParameterGroup",
                c.delete_db_parameter_group()
                    .db_parameter_group_name(&name)
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        _ => Err(CapError::unsupported(call, "aws")),
    }
}
