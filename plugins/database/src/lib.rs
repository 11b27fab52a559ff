//! RDS steps of the DR runbooks. Every "ensure" step describes first and creates only
//! what is missing, so re-running a runbook converges instead of duplicating. Waiting is
//! the runbook's job: `WaitAvailable`/`WaitDeleted` fail with a retryable error that the
//! Task's `Retry` backs off on.
use runbook_plugin_sdk::cap::rds::{self, DbInstance};
use runbook_plugin_sdk::{StepError, deleted, export_step, info, tag, warn};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(tag = "Op")]
enum Op {
    /// Parameter group (PostgreSQL 15 settings) and subnet group of one region.
    EnsureGroups {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "ParameterGroup")]
        parameter_group: String,
        #[serde(rename = "SubnetGroup")]
        subnet_group: String,
        #[serde(rename = "SubnetIds")]
        subnet_ids: Vec<String>,
        #[serde(rename = "ForceSsl", default)]
        force_ssl: bool,
    },
    EnsurePrimary(Primary),
    EnsureReplica(Replica),
    /// Fails with `InstanceNotReady` (retry) until the instance is `available`, and
    /// with `InstanceFailed` when it cannot become so.
    WaitAvailable {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Identifier")]
        identifier: String,
        /// Also require that it is no longer a read replica (after a promotion).
        #[serde(rename = "Standalone", default)]
        standalone: bool,
    },
    /// Never fails for a missing instance: reports `Exists: false`.
    Describe {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Identifier")]
        identifier: String,
    },
    /// Promotes a read replica; a no-op for an instance that is already standalone.
    Promote {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Identifier")]
        identifier: String,
        #[serde(rename = "BackupRetentionDays", default)]
        backup_retention_days: Option<u32>,
    },
    /// Deletes an instance; tolerates one that is gone or already being deleted.
    Delete {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Identifier")]
        identifier: String,
        #[serde(rename = "FinalSnapshot", default)]
        final_snapshot: Option<String>,
    },
    /// Fails with `InstanceStillExists` (retry) until the instance is gone.
    WaitDeleted {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Identifier")]
        identifier: String,
    },
    /// Converges Multi-AZ (a promoted cross-region replica starts single-AZ).
    SetMultiAz {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Identifier")]
        identifier: String,
        #[serde(rename = "MultiAZ")]
        multi_az: bool,
    },
    DeleteGroups {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "ParameterGroup")]
        parameter_group: String,
        #[serde(rename = "SubnetGroup")]
        subnet_group: String,
    },
    /// Fencing through the region's parameter group: `default_transaction_read_only`
    /// applies to every instance using the group, survives restarts of the server and,
    /// unlike `ALTER DATABASE`, is not replicated to the instance that takes over.
    SetReadOnly {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "ParameterGroup")]
        parameter_group: String,
        #[serde(rename = "ReadOnly")]
        read_only: bool,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Primary {
    region: String,
    identifier: String,
    instance_class: String,
    allocated_storage: u32,
    #[serde(rename = "MultiAZ")]
    multi_az: bool,
    backup_retention_days: u32,
    secret_id: String,
    #[serde(default = "master")]
    master_username: String,
    parameter_group: String,
    subnet_group: String,
    security_group_ids: Vec<String>,
    #[serde(default)]
    tags: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Replica {
    region: String,
    identifier: String,
    source_identifier: String,
    source_region: String,
    instance_class: String,
    #[serde(rename = "MultiAZ", default)]
    multi_az: bool,
    parameter_group: String,
    subnet_group: String,
    security_group_ids: Vec<String>,
    #[serde(default)]
    tags: serde_json::Map<String, Value>,
}

fn master() -> String {
    "postgres".into()
}

fn tags(m: &serde_json::Map<String, Value>) -> Vec<runbook_plugin_sdk::cap::types::Tag> {
    m.iter()
        .map(|(k, v)| tag(k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()).as_str()))
        .collect()
}

fn summary(db: &DbInstance) -> Value {
    json!({
        "Exists": true,
        "Identifier": db.identifier,
        "Arn": db.arn,
        "Region": db.region,
        "Status": db.status,
        "Endpoint": db.endpoint_address,
        "Port": db.endpoint_port,
        "IsReplica": db.read_replica_source.is_some(),
        "Source": db.read_replica_source,
        "Replicas": db.read_replica_identifiers,
        "MultiAZ": db.multi_az,
        "InstanceClass": db.instance_class,
        "EngineVersion": db.engine_version,
        "ParameterGroup": db.parameter_group,
    })
}

fn describe(region: &str, id: &str) -> Result<Option<DbInstance>, StepError> {
    match rds::describe_db_instances(region, Some(id)) {
        Ok(mut list) => Ok(list.pop()),
        Err(e) if e.code == "DBInstanceNotFound" => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn run(op: Op) -> Result<Value, StepError> {
    match op {
        Op::EnsureGroups { region, parameter_group, subnet_group, subnet_ids, force_ssl } => {
            let pg_exists = match rds::describe_db_parameter_groups(&region, Some(&parameter_group)) {
                Ok(list) => !list.is_empty(),
                Err(e) if e.code == "DBParameterGroupNotFound" => false,
                Err(e) => return Err(e.into()),
            };
            if !pg_exists {
                rds::create_db_parameter_group(
                    &region,
                    &parameter_group,
                    "postgres15",
                    "PostgreSQL 15 settings of the DR deployment",
                    &[tag("managed-by", "runbook")],
                )?;
                info!("created parameter group {parameter_group} in {region}");
            }
            // Setting values is idempotent; doing it every time converges drift.
            let p = |name: &str, value: &str, method: &str| rds::Parameter {
                name: name.into(),
                value: Some(value.into()),
                apply_method: method.into(),
            };
            rds::modify_db_parameter_group(
                &region,
                &parameter_group,
                &[
                    p("log_statement", "all", "immediate"),
                    p("rds.force_ssl", if force_ssl { "1" } else { "0" }, "immediate"),
                ],
            )?;
            let sg_exists = match rds::describe_db_subnet_groups(&region, Some(&subnet_group)) {
                Ok(list) => !list.is_empty(),
                Err(e) if e.code == "DBSubnetGroupNotFoundFault" || e.kind == runbook_plugin_sdk::ErrorKind::NotFound => false,
                Err(e) => return Err(e.into()),
            };
            if !sg_exists {
                rds::create_db_subnet_group(
                    &region,
                    &subnet_group,
                    "Private isolated subnets of the DR deployment",
                    &subnet_ids,
                    &[tag("managed-by", "runbook")],
                )?;
                info!("created subnet group {subnet_group} in {region}");
            }
            Ok(json!({ "ParameterGroup": parameter_group, "SubnetGroup": subnet_group, "Created": !pg_exists || !sg_exists }))
        }
        Op::EnsurePrimary(p) => {
            if let Some(db) = describe(&p.region, &p.identifier)? {
                info!("{} already exists ({})", p.identifier, db.status);
                return Ok(with_created(summary(&db), false));
            }
            let db = rds::create_db_instance(
                &p.region,
                &rds::CreateDbInstanceRequest {
                    identifier: p.identifier.clone(),
                    engine: "postgres".into(),
                    engine_version: "15".into(),
                    instance_class: p.instance_class,
                    allocated_storage: p.allocated_storage,
                    storage_type: "gp3".into(),
                    storage_encrypted: true,
                    multi_az: p.multi_az,
                    backup_retention_period: p.backup_retention_days,
                    master_username: p.master_username,
                    master_user_secret: p.secret_id,
                    db_name: None,
                    port: Some(5432),
                    db_subnet_group: Some(p.subnet_group),
                    parameter_group: Some(p.parameter_group),
                    vpc_security_groups: p.security_group_ids,
                    deletion_protection: false,
                    tags: tags(&p.tags),
                },
            )?;
            info!("creating {} in {}", p.identifier, p.region);
            Ok(with_created(summary(&db), true))
        }
        Op::EnsureReplica(r) => {
            if let Some(db) = describe(&r.region, &r.identifier)? {
                if db.read_replica_source.is_none() {
                    warn!("{} exists and is not a read replica: left as it is", r.identifier);
                }
                return Ok(with_created(summary(&db), false));
            }
            // Cross-region replicas name their source by ARN.
            let source = describe(&r.source_region, &r.source_identifier)?.ok_or_else(|| {
                StepError::new(
                    "DBInstanceNotFound",
                    format!("source {} not found in {}", r.source_identifier, r.source_region),
                )
            })?;
            let src = if r.source_region == r.region { source.identifier.clone() } else { source.arn.clone() };
            let db = rds::create_db_instance_read_replica(
                &r.region,
                &rds::CreateReadReplicaRequest {
                    identifier: r.identifier.clone(),
                    source: src,
                    source_region: r.source_region,
                    instance_class: r.instance_class,
                    storage_type: Some("gp3".into()),
                    storage_encrypted: true,
                    multi_az: r.multi_az,
                    db_subnet_group: Some(r.subnet_group),
                    parameter_group: Some(r.parameter_group),
                    vpc_security_groups: r.security_group_ids,
                    tags: tags(&r.tags),
                },
            )?;
            info!("creating read replica {} of {}", r.identifier, source.identifier);
            Ok(with_created(summary(&db), true))
        }
        Op::WaitAvailable { region, identifier, standalone } => {
            let db = describe(&region, &identifier)?.ok_or_else(|| {
                StepError::new("DBInstanceNotFound", format!("{identifier} not found in {region}"))
            })?;
            match db.status.as_str() {
                "available" if !standalone || db.read_replica_source.is_none() => Ok(summary(&db)),
                "failed" | "incompatible-parameters" | "incompatible-restore" | "storage-full"
                | "inaccessible-encryption-credentials" | "stopped" => Err(StepError::new(
                    "InstanceFailed",
                    format!("{identifier} is {}", db.status),
                )),
                s => Err(StepError::new(
                    "InstanceNotReady",
                    format!("{identifier} is {s}{}", if db.read_replica_source.is_some() && standalone { " (still a replica)" } else { "" }),
                )),
            }
        }
        Op::Describe { region, identifier } => Ok(match describe(&region, &identifier)? {
            Some(db) => summary(&db),
            None => json!({ "Exists": false, "Identifier": identifier, "Region": region, "Status": "not-found", "IsReplica": false }),
        }),
        Op::Promote { region, identifier, backup_retention_days } => {
            let db = describe(&region, &identifier)?.ok_or_else(|| {
                StepError::new("DBInstanceNotFound", format!("{identifier} not found in {region}"))
            })?;
            if db.read_replica_source.is_none() {
                info!("{identifier} is already standalone");
                return Ok(with_promoted(summary(&db), false));
            }
            let db = rds::promote_read_replica(&region, &identifier, backup_retention_days)?;
            info!("promoting {identifier} in {region}");
            Ok(with_promoted(summary(&db), true))
        }
        Op::Delete { region, identifier, final_snapshot } => {
            match describe(&region, &identifier)? {
                None => return Ok(json!({ "Identifier": identifier, "Deleted": false, "Reason": "not found" })),
                Some(db) if db.status == "deleting" => {
                    return Ok(json!({ "Identifier": identifier, "Deleted": true, "Reason": "already deleting" }));
                }
                Some(_) => {}
            }
            match rds::delete_db_instance(
                &region,
                &rds::DeleteDbInstanceRequest {
                    identifier: identifier.clone(),
                    skip_final_snapshot: final_snapshot.is_none(),
                    final_snapshot_identifier: final_snapshot,
                },
            ) {
                Ok(_) => {}
                Err(e) if e.code == "DBInstanceNotFound" => {}
                Err(e) => return Err(e.into()),
            }
            info!("deleting {identifier} in {region}");
            Ok(json!({ "Identifier": identifier, "Deleted": true }))
        }
        Op::WaitDeleted { region, identifier } => match describe(&region, &identifier)? {
            None => Ok(json!({ "Identifier": identifier, "Gone": true })),
            Some(db) => Err(StepError::new(
                "InstanceStillExists",
                format!("{identifier} is {}", db.status),
            )),
        },
        Op::SetMultiAz { region, identifier, multi_az } => {
            let db = describe(&region, &identifier)?.ok_or_else(|| {
                StepError::new("DBInstanceNotFound", format!("{identifier} not found in {region}"))
            })?;
            if db.multi_az == multi_az {
                return Ok(with_created(summary(&db), false));
            }
            let db = rds::modify_db_instance(
                &region,
                &rds::ModifyDbInstanceRequest {
                    identifier: identifier.clone(),
                    instance_class: None,
                    allocated_storage: None,
                    backup_retention_period: None,
                    multi_az: Some(multi_az),
                    parameter_group: None,
                    vpc_security_groups: None,
                    deletion_protection: None,
                    apply_immediately: true,
                },
            )?;
            info!("{identifier}: Multi-AZ {multi_az}");
            Ok(with_created(summary(&db), true))
        }
        Op::DeleteGroups { region, parameter_group, subnet_group } => {
            let mut gone = Vec::new();
            if deleted(rds::delete_db_parameter_group(&region, &parameter_group))? {
                gone.push(parameter_group);
            }
            if deleted(rds::delete_db_subnet_group(&region, &subnet_group))? {
                gone.push(subnet_group);
            }
            Ok(json!({ "Deleted": gone }))
        }
        Op::SetReadOnly { region, parameter_group, read_only } => {
            rds::modify_db_parameter_group(
                &region,
                &parameter_group,
                &[rds::Parameter {
                    name: "default_transaction_read_only".into(),
                    value: Some(if read_only { "1" } else { "0" }.into()),
                    apply_method: "immediate".into(),
                }],
            )?;
            info!(
                "{} instances of parameter group {parameter_group} in {region}",
                if read_only { "fenced (read-only)" } else { "unfenced (read-write)" }
            );
            Ok(json!({ "ParameterGroup": parameter_group, "Region": region, "ReadOnly": read_only }))
        }
    }
}

fn with_created(mut v: Value, created: bool) -> Value {
    v["Created"] = json!(created);
    v
}

fn with_promoted(mut v: Value, promoted: bool) -> Value {
    v["PromotionStarted"] = json!(promoted);
    v
}

export_step!(run);
