//! What each mutating call would do, applied to the overlay instead of the provider.
//! Reads the current state through the real provider (seen through the overlay) where
//! the answer depends on it, and predicts the errors the real call would get.

use runbook_caps::types::cloudwatch::{MetricAlarm, MetricAlarmSpec};
use runbook_caps::types::common::Tag;
use runbook_caps::types::ec2::{
    IpPermission, Route, RouteTable, SecurityGroup, Subnet, Vpc, VpcEndpoint, VpcPeeringConnection,
};
use runbook_caps::types::rds::{
    CreateDbInstanceRequest, CreateReadReplicaRequest, DbInstance, DbParameterGroup, DbSnapshot,
    DbSubnetGroup, DeleteDbInstanceRequest, ModifyDbInstanceRequest, Parameter,
    RestoreFromSnapshotRequest,
};
use runbook_caps::types::route53::{
    Change, ChangeAction, ChangeInfo, HealthCheck, HealthCheckConfig, HostedZone, RecordSet,
    ZoneVpc, fqdn, zone_id,
};
use runbook_caps::types::secretsmanager::{CreateSecretRequest, ReplicationStatus, Secret};
use runbook_caps::{CapCall, CapError, ErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::overlay::{Kind, nf, region_key, s};
use crate::{Applied, Effect, Plan, is_not_found};

/// The account of ARNs the plan makes up.
const ACCOUNT: &str = "000000000000";

fn v<T: Serialize>(x: &T) -> Value {
    serde_json::to_value(x).expect("WIT records serialize")
}

fn from<T: DeserializeOwned>(x: Value) -> Result<T, CapError> {
    serde_json::from_value(x)
        .map_err(|e| CapError::internal(format!("plan: unexpected shape: {e}")))
}

fn exists(code: &str, id: &str) -> CapError {
    CapError::already_exists(code, format!("{id} already exists"))
}

/// `arn:aws:rds:REGION:ACCOUNT:db:ID` → (REGION, ID).
fn arn_parts(arn: &str) -> Option<(String, String)> {
    let p: Vec<&str> = arn.split(':').collect();
    (p.len() >= 7 && p[0] == "arn").then(|| (p[3].to_string(), p[6].to_string()))
}

macro_rules! tryp {
    ($e:expr, $effect:expr) => {
        match $e {
            Ok(x) => x,
            Err(e) => return Applied::err(e, $effect),
        }
    };
}

/// The resource as it stands, or return the NotFound error the real call would get.
macro_rules! need {
    ($plan:ident, $t:ty, $k:expr, $r:expr, $id:expr, $code:literal, $effect:expr) => {
        match $plan.current_as::<$t>($k, $r, $id).await {
            Ok(Some(x)) => x,
            Ok(None) => return Applied::err(nf($code, $id), $effect),
            Err(e) => return Applied::err(e, $effect),
        }
    };
}

/// Return the AlreadyExists error the real call would get if the resource exists.
macro_rules! absent {
    ($plan:ident, $k:expr, $r:expr, $id:expr, $code:literal, $effect:expr) => {
        match $plan.current($k, $r, $id).await {
            Ok(None) => {}
            Ok(Some(_)) => return Applied::err(exists($code, $id), $effect),
            Err(e) => return Applied::err(e, $effect),
        }
    };
}

impl Plan {
    /// The describe call that finds one resource.
    fn describe_call(k: Kind, region: &str, id: &str) -> CapCall {
        let (service, action, args) = match k {
            Kind::DbInstance => ("rds", "DescribeDBInstances", json!({"identifier": id})),
            Kind::DbSnapshot => (
                "rds",
                "DescribeDBSnapshots",
                json!({"snapshot_identifier": id, "instance_identifier": null}),
            ),
            Kind::SubnetGroup => ("rds", "DescribeDBSubnetGroups", json!({"name": id})),
            Kind::ParamGroup => ("rds", "DescribeDBParameterGroups", json!({"name": id})),
            Kind::Params => ("rds", "DescribeDBParameters", json!({"name": id})),
            Kind::Vpc => (
                "ec2",
                "DescribeVpcs",
                json!({"vpc_ids": [id], "filters": []}),
            ),
            Kind::Subnet => (
                "ec2",
                "DescribeSubnets",
                json!({"subnet_ids": [id], "filters": []}),
            ),
            Kind::SecurityGroup => (
                "ec2",
                "DescribeSecurityGroups",
                json!({"group_ids": [id], "filters": []}),
            ),
            Kind::Peering => (
                "ec2",
                "DescribeVpcPeeringConnections",
                json!({"peering_ids": [id], "filters": []}),
            ),
            Kind::RouteTable => (
                "ec2",
                "DescribeRouteTables",
                json!({"route_table_ids": [id], "filters": []}),
            ),
            Kind::Endpoint => (
                "ec2",
                "DescribeVpcEndpoints",
                json!({"vpc_endpoint_ids": [id], "filters": []}),
            ),
            Kind::Zone => ("route53", "GetHostedZone", json!({"id": id})),
            Kind::Records => (
                "route53",
                "ListResourceRecordSets",
                json!({"zone_id": id, "name": null}),
            ),
            Kind::HealthCheck => ("route53", "GetHealthCheck", json!({"id": id})),
            Kind::Alarm => (
                "cloudwatch",
                "DescribeAlarms",
                json!({"alarm_names": [id], "name_prefix": null}),
            ),
            Kind::Dashboard => ("cloudwatch", "GetDashboard", json!({"name": id})),
            Kind::Topic => ("sns", "ListTopics", json!({})),
            Kind::Secret => ("secretsmanager", "DescribeSecret", json!({"secret_id": id})),
        };
        CapCall {
            service: service.into(),
            action: action.into(),
            region: (region != "global").then(|| region.to_string()),
            resource: Some(id.to_string()),
            args,
        }
    }

    /// The resource as it stands (real, seen through the overlay), or None.
    async fn current(&self, k: Kind, region: &str, id: &str) -> Result<Option<Value>, CapError> {
        let got = match self.read(&Self::describe_call(k, region, id)).await {
            Ok(x) => x,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(match (k, got) {
            (Kind::Params | Kind::Records, list) => Some(list),
            (Kind::Topic, Value::Array(a)) => a.into_iter().find(|t| t.as_str() == Some(id)),
            (_, Value::Array(a)) => a.into_iter().find(|x| k.id(x) == id),
            (_, one) => Some(one),
        })
    }

    async fn current_as<T: DeserializeOwned>(
        &self,
        k: Kind,
        region: &str,
        id: &str,
    ) -> Result<Option<T>, CapError> {
        match self.current(k, region, id).await? {
            Some(x) => from(x).map(Some),
            None => Ok(None),
        }
    }

    fn put(&self, k: Kind, region: &str, x: Value) {
        self.overlay().put(k, region, x);
    }

    fn gone(&self, k: Kind, region: &str, id: &str) {
        self.overlay().gone(k, region, id);
    }

    /// Record a created resource: in the overlay, and as an id the real provider
    /// has never seen.
    fn created(&self, k: Kind, region: &str, x: Value) {
        self.mark_planned(&k.id(&x));
        self.put(k, region, x);
    }

    pub(crate) async fn apply(&self, call: &CapCall) -> Applied {
        let region = region_key(call);
        let r = region.as_str();
        macro_rules! arg {
            ($name:literal) => {
                tryp!(call.arg_as($name), Effect::Action)
            };
        }
        match (call.service.as_str(), call.action.as_str()) {
            // ---- rds ----
            ("rds", "CreateDBInstance") => {
                let q: CreateDbInstanceRequest = arg!("request");
                absent!(
                    self,
                    Kind::DbInstance,
                    r,
                    &q.identifier,
                    "DBInstanceAlreadyExists",
                    Effect::Create
                );
                let db = DbInstance {
                    arn: format!("arn:aws:rds:{r}:{ACCOUNT}:db:{}", q.identifier),
                    identifier: q.identifier.clone(),
                    region: r.into(),
                    status: "available".into(),
                    engine: q.engine,
                    engine_version: q.engine_version,
                    instance_class: q.instance_class,
                    allocated_storage: q.allocated_storage,
                    storage_type: q.storage_type,
                    storage_encrypted: q.storage_encrypted,
                    multi_az: q.multi_az,
                    backup_retention_period: q.backup_retention_period,
                    endpoint_address: Some(planned_endpoint(&q.identifier, r)),
                    endpoint_port: Some(q.port.unwrap_or(5432)),
                    master_username: q.master_username,
                    db_subnet_group: q.db_subnet_group,
                    parameter_group: q.parameter_group,
                    vpc_security_groups: q.vpc_security_groups,
                    deletion_protection: q.deletion_protection,
                    tags: q.tags,
                    ..Default::default()
                };
                self.created(Kind::DbInstance, r, v(&db));
                Applied::ok(v(&db), Effect::Create)
            }
            ("rds", "CreateDBInstanceReadReplica") => {
                let q: CreateReadReplicaRequest = arg!("request");
                absent!(
                    self,
                    Kind::DbInstance,
                    r,
                    &q.identifier,
                    "DBInstanceAlreadyExists",
                    Effect::Create
                );
                let (src_region, src_id) =
                    arn_parts(&q.source).unwrap_or((q.source_region.clone(), q.source.clone()));
                let Some(mut src) = tryp!(
                    self.current_as::<DbInstance>(Kind::DbInstance, &src_region, &src_id)
                        .await,
                    Effect::Create
                ) else {
                    return Applied::err(
                        nf("DBInstanceNotFound", &format!("source {}", q.source)),
                        Effect::Create,
                    );
                };
                let db = DbInstance {
                    arn: format!("arn:aws:rds:{r}:{ACCOUNT}:db:{}", q.identifier),
                    identifier: q.identifier.clone(),
                    region: r.into(),
                    status: "available".into(),
                    engine: src.engine.clone(),
                    engine_version: src.engine_version.clone(),
                    instance_class: q.instance_class,
                    allocated_storage: src.allocated_storage,
                    storage_type: q.storage_type.unwrap_or_else(|| src.storage_type.clone()),
                    storage_encrypted: q.storage_encrypted,
                    multi_az: q.multi_az,
                    endpoint_address: Some(planned_endpoint(&q.identifier, r)),
                    endpoint_port: src.endpoint_port,
                    master_username: src.master_username.clone(),
                    db_subnet_group: q.db_subnet_group,
                    parameter_group: q.parameter_group,
                    vpc_security_groups: q.vpc_security_groups,
                    read_replica_source: Some(q.source.clone()),
                    tags: q.tags,
                    ..Default::default()
                };
                src.read_replica_identifiers.push(db.arn.clone());
                self.put(Kind::DbInstance, &src_region, v(&src));
                self.created(Kind::DbInstance, r, v(&db));
                Applied::ok(v(&db), Effect::Create).detail(format!("replica of {}", q.source))
            }
            ("rds", "ModifyDBInstance") => {
                let q: ModifyDbInstanceRequest = arg!("request");
                let mut db = need!(
                    self,
                    DbInstance,
                    Kind::DbInstance,
                    r,
                    &q.identifier,
                    "DBInstanceNotFound",
                    Effect::Update
                );
                let before = db.clone();
                let mut changed = Vec::new();
                macro_rules! set {
                    ($field:ident, $val:expr) => {
                        if let Some(x) = $val
                            && db.$field != x
                        {
                            changed.push(format!(
                                "{} {:?} → {:?}",
                                stringify!($field),
                                db.$field,
                                x
                            ));
                            db.$field = x;
                        }
                    };
                }
                set!(instance_class, q.instance_class);
                set!(allocated_storage, q.allocated_storage);
                set!(backup_retention_period, q.backup_retention_period);
                set!(multi_az, q.multi_az);
                set!(parameter_group, q.parameter_group.map(Some));
                set!(vpc_security_groups, q.vpc_security_groups);
                set!(deletion_protection, q.deletion_protection);
                if db == before {
                    return Applied::ok(v(&db), Effect::NoOp);
                }
                self.put(Kind::DbInstance, r, v(&db));
                Applied::ok(v(&db), Effect::Update).detail(changed.join(", "))
            }
            ("rds", "DeleteDBInstance") => {
                let q: DeleteDbInstanceRequest = arg!("request");
                let mut db = need!(
                    self,
                    DbInstance,
                    Kind::DbInstance,
                    r,
                    &q.identifier,
                    "DBInstanceNotFound",
                    Effect::Delete
                );
                let mut detail = None;
                if !q.skip_final_snapshot
                    && let Some(snap) = q.final_snapshot_identifier
                {
                    let sn = snapshot_of(&db, &snap, r);
                    self.created(Kind::DbSnapshot, r, v(&sn));
                    detail = Some(format!("final snapshot {snap}"));
                }
                self.gone(Kind::DbInstance, r, &q.identifier);
                db.status = "deleting".into();
                Applied {
                    detail,
                    ..Applied::ok(v(&db), Effect::Delete)
                }
            }
            ("rds", "RebootDBInstance" | "StopDBInstance" | "StartDBInstance") => {
                let id: String = arg!("identifier");
                let mut db = need!(
                    self,
                    DbInstance,
                    Kind::DbInstance,
                    r,
                    &id,
                    "DBInstanceNotFound",
                    Effect::Action
                );
                db.status = match call.action.as_str() {
                    "StopDBInstance" => "stopped",
                    _ => "available",
                }
                .into();
                self.put(Kind::DbInstance, r, v(&db));
                let force = call.arg("force_failover").as_bool() == Some(true);
                Applied {
                    detail: force.then(|| "forced failover to the standby".into()),
                    ..Applied::ok(v(&db), Effect::Action)
                }
            }
            ("rds", "PromoteReadReplica") => {
                let id: String = arg!("identifier");
                let mut db = need!(
                    self,
                    DbInstance,
                    Kind::DbInstance,
                    r,
                    &id,
                    "DBInstanceNotFound",
                    Effect::Update
                );
                let Some(src) = db.read_replica_source.take() else {
                    return Applied::err(
                        CapError::invalid_state(
                            "InvalidDBInstanceState",
                            format!("{id} is not a read replica"),
                        ),
                        Effect::Update,
                    );
                };
                if let Some(brp) = call.arg("backup_retention_period").as_u64() {
                    db.backup_retention_period = brp as u32;
                }
                self.put(Kind::DbInstance, r, v(&db));
                Applied::ok(v(&db), Effect::Update).detail(format!("no longer a replica of {src}"))
            }
            ("rds", "CreateDBSnapshot") => {
                let snap: String = arg!("snapshot_identifier");
                let inst: String = arg!("instance_identifier");
                absent!(
                    self,
                    Kind::DbSnapshot,
                    r,
                    &snap,
                    "DBSnapshotAlreadyExists",
                    Effect::Create
                );
                let db = need!(
                    self,
                    DbInstance,
                    Kind::DbInstance,
                    r,
                    &inst,
                    "DBInstanceNotFound",
                    Effect::Create
                );
                let sn = snapshot_of(&db, &snap, r);
                self.created(Kind::DbSnapshot, r, v(&sn));
                Applied::ok(v(&sn), Effect::Create)
            }
            ("rds", "DeleteDBSnapshot") => {
                let snap: String = arg!("snapshot_identifier");
                let mut sn = need!(
                    self,
                    DbSnapshot,
                    Kind::DbSnapshot,
                    r,
                    &snap,
                    "DBSnapshotNotFound",
                    Effect::Delete
                );
                self.gone(Kind::DbSnapshot, r, &snap);
                sn.status = "deleting".into();
                Applied::ok(v(&sn), Effect::Delete)
            }
            ("rds", "RestoreDBInstanceFromDBSnapshot") => {
                let q: RestoreFromSnapshotRequest = arg!("request");
                absent!(
                    self,
                    Kind::DbInstance,
                    r,
                    &q.identifier,
                    "DBInstanceAlreadyExists",
                    Effect::Create
                );
                let sn = need!(
                    self,
                    DbSnapshot,
                    Kind::DbSnapshot,
                    r,
                    &q.snapshot_identifier,
                    "DBSnapshotNotFound",
                    Effect::Create
                );
                let db = DbInstance {
                    arn: format!("arn:aws:rds:{r}:{ACCOUNT}:db:{}", q.identifier),
                    identifier: q.identifier.clone(),
                    region: r.into(),
                    status: "available".into(),
                    engine: "postgres".into(),
                    engine_version: sn.engine_version,
                    instance_class: q.instance_class.unwrap_or_default(),
                    allocated_storage: sn.allocated_storage,
                    multi_az: q.multi_az,
                    endpoint_address: Some(planned_endpoint(&q.identifier, r)),
                    endpoint_port: Some(5432),
                    db_subnet_group: q.db_subnet_group,
                    parameter_group: q.parameter_group,
                    vpc_security_groups: q.vpc_security_groups,
                    tags: q.tags,
                    ..Default::default()
                };
                self.created(Kind::DbInstance, r, v(&db));
                Applied::ok(v(&db), Effect::Create)
                    .detail(format!("from snapshot {}", q.snapshot_identifier))
            }
            ("rds", "CreateDBSubnetGroup") => {
                let name: String = arg!("name");
                absent!(
                    self,
                    Kind::SubnetGroup,
                    r,
                    &name,
                    "DBSubnetGroupAlreadyExists",
                    Effect::Create
                );
                let subnet_ids: Vec<String> = arg!("subnet_ids");
                let vpc_id = match subnet_ids.first() {
                    Some(sn) => tryp!(self.current(Kind::Subnet, r, sn).await, Effect::Create)
                        .map(|x| s(&x, "vpc_id").to_string())
                        .unwrap_or_default(),
                    None => String::new(),
                };
                let g = DbSubnetGroup {
                    arn: format!("arn:aws:rds:{r}:{ACCOUNT}:subgrp:{name}"),
                    name,
                    description: arg!("description"),
                    vpc_id,
                    subnet_ids,
                    status: "Complete".into(),
                };
                self.created(Kind::SubnetGroup, r, v(&g));
                Applied::ok(v(&g), Effect::Create)
            }
            ("rds", "DeleteDBSubnetGroup") => {
                let name: String = arg!("name");
                self.delete(Kind::SubnetGroup, r, &name, "DBSubnetGroupNotFoundFault")
                    .await
            }
            ("rds", "CreateDBParameterGroup") => {
                let name: String = arg!("name");
                absent!(
                    self,
                    Kind::ParamGroup,
                    r,
                    &name,
                    "DBParameterGroupAlreadyExists",
                    Effect::Create
                );
                let g = DbParameterGroup {
                    arn: format!("arn:aws:rds:{r}:{ACCOUNT}:pg:{name}"),
                    name,
                    family: arg!("family"),
                    description: arg!("description"),
                };
                self.created(Kind::ParamGroup, r, v(&g));
                Applied::ok(v(&g), Effect::Create)
            }
            ("rds", "ModifyDBParameterGroup") => {
                let name: String = arg!("name");
                let wanted: Vec<Parameter> = arg!("parameters");
                let Some(now) = tryp!(self.current(Kind::Params, r, &name).await, Effect::Update)
                else {
                    return Applied::err(nf("DBParameterGroupNotFound", &name), Effect::Update);
                };
                let now: Vec<Parameter> = tryp!(from(now), Effect::Update);
                let changes: Vec<String> = wanted
                    .iter()
                    .filter(|p| !now.iter().any(|q| q.name == p.name && q.value == p.value))
                    .map(|p| format!("{} = {}", p.name, p.value.as_deref().unwrap_or("(default)")))
                    .collect();
                if changes.is_empty() {
                    return Applied::ok(Value::Null, Effect::NoOp);
                }
                let mut over: Vec<Parameter> = self
                    .overlay()
                    .live(Kind::Params, r, &name)
                    .and_then(|x| serde_json::from_value(x.clone()).ok())
                    .unwrap_or_default();
                for p in wanted {
                    over.retain(|q| q.name != p.name);
                    over.push(p);
                }
                self.overlay().put_id(Kind::Params, r, &name, v(&over));
                Applied::ok(Value::Null, Effect::Update).detail(changes.join(", "))
            }
            ("rds", "DeleteDBParameterGroup") => {
                let name: String = arg!("name");
                self.delete(Kind::ParamGroup, r, &name, "DBParameterGroupNotFound")
                    .await
            }

            // ---- ec2 ----
            ("ec2", "CreateVpc") => {
                let vpc = Vpc {
                    vpc_id: self.new_id("vpc"),
                    region: r.into(),
                    cidr_block: arg!("cidr_block"),
                    state: "available".into(),
                    enable_dns_support: true,
                    enable_dns_hostnames: false,
                    tags: arg!("tags"),
                };
                self.created(Kind::Vpc, r, v(&vpc));
                Applied::ok(v(&vpc), Effect::Create).detail(vpc.cidr_block)
            }
            ("ec2", "ModifyVpcAttribute") => {
                let id: String = arg!("vpc_id");
                let mut vpc = need!(
                    self,
                    Vpc,
                    Kind::Vpc,
                    r,
                    &id,
                    "InvalidVpcID.NotFound",
                    Effect::Update
                );
                let before = vpc.clone();
                if let Some(x) = call.arg("enable_dns_support").as_bool() {
                    vpc.enable_dns_support = x;
                }
                if let Some(x) = call.arg("enable_dns_hostnames").as_bool() {
                    vpc.enable_dns_hostnames = x;
                }
                if vpc == before {
                    return Applied::ok(Value::Null, Effect::NoOp);
                }
                self.put(Kind::Vpc, r, v(&vpc));
                Applied::ok(Value::Null, Effect::Update)
            }
            ("ec2", "DeleteVpc") => {
                let id: String = arg!("vpc_id");
                self.delete(Kind::Vpc, r, &id, "InvalidVpcID.NotFound")
                    .await
            }
            ("ec2", "CreateSubnet") => {
                let vpc_id: String = arg!("vpc_id");
                need!(
                    self,
                    Value,
                    Kind::Vpc,
                    r,
                    &vpc_id,
                    "InvalidVpcID.NotFound",
                    Effect::Create
                );
                let sn = Subnet {
                    subnet_id: self.new_id("subnet"),
                    vpc_id,
                    cidr_block: arg!("cidr_block"),
                    availability_zone: arg!("availability_zone"),
                    state: "available".into(),
                    tags: arg!("tags"),
                };
                self.created(Kind::Subnet, r, v(&sn));
                Applied::ok(v(&sn), Effect::Create)
                    .detail(format!("{} in {}", sn.cidr_block, sn.availability_zone))
            }
            ("ec2", "DeleteSubnet") => {
                let id: String = arg!("subnet_id");
                self.delete(Kind::Subnet, r, &id, "InvalidSubnetID.NotFound")
                    .await
            }
            ("ec2", "CreateSecurityGroup") => {
                let vpc_id: String = arg!("vpc_id");
                need!(
                    self,
                    Value,
                    Kind::Vpc,
                    r,
                    &vpc_id,
                    "InvalidVpcID.NotFound",
                    Effect::Create
                );
                let sg = SecurityGroup {
                    group_id: self.new_id("sg"),
                    group_name: arg!("group_name"),
                    vpc_id,
                    description: arg!("description"),
                    ingress: Vec::new(),
                    tags: arg!("tags"),
                };
                self.created(Kind::SecurityGroup, r, v(&sg));
                Applied::ok(v(&sg), Effect::Create)
            }
            ("ec2", "AuthorizeSecurityGroupIngress" | "RevokeSecurityGroupIngress") => {
                let id: String = arg!("group_id");
                let perms: Vec<IpPermission> = arg!("permissions");
                let mut sg = need!(
                    self,
                    SecurityGroup,
                    Kind::SecurityGroup,
                    r,
                    &id,
                    "InvalidGroup.NotFound",
                    Effect::Update
                );
                let authorize = call.action == "AuthorizeSecurityGroupIngress";
                for p in &perms {
                    let present = sg.ingress.iter().any(|q| same_permission(q, p));
                    if authorize && present {
                        return Applied::err(
                            exists("InvalidPermission.Duplicate", &format!("{id} rule")),
                            Effect::Update,
                        );
                    }
                    if !authorize && !present {
                        return Applied::err(
                            nf("InvalidPermission.NotFound", &format!("{id} rule")),
                            Effect::Update,
                        );
                    }
                }
                if authorize {
                    sg.ingress.extend(perms.iter().cloned());
                } else {
                    sg.ingress
                        .retain(|q| !perms.iter().any(|p| same_permission(q, p)));
                }
                self.put(Kind::SecurityGroup, r, v(&sg));
                Applied::ok(Value::Null, Effect::Update).detail(describe_permissions(&perms))
            }
            ("ec2", "DeleteSecurityGroup") => {
                let id: String = arg!("group_id");
                self.delete(Kind::SecurityGroup, r, &id, "InvalidGroup.NotFound")
                    .await
            }
            ("ec2", "CreateVpcPeeringConnection") => {
                let (vpc_id, peer_vpc_id): (String, String) = (arg!("vpc_id"), arg!("peer_vpc_id"));
                let peer_region: String = arg!("peer_region");
                let mine = need!(
                    self,
                    Vpc,
                    Kind::Vpc,
                    r,
                    &vpc_id,
                    "InvalidVpcID.NotFound",
                    Effect::Create
                );
                let peer = need!(
                    self,
                    Vpc,
                    Kind::Vpc,
                    &peer_region,
                    &peer_vpc_id,
                    "InvalidVpcID.NotFound",
                    Effect::Create
                );
                let pcx = VpcPeeringConnection {
                    id: self.new_id("pcx"),
                    requester_vpc_id: vpc_id,
                    requester_region: r.into(),
                    requester_cidr: mine.cidr_block,
                    accepter_vpc_id: peer_vpc_id,
                    accepter_region: peer_region,
                    accepter_cidr: peer.cidr_block,
                    status: "pending-acceptance".into(),
                    tags: arg!("tags"),
                };
                self.put_peering(&pcx);
                Applied::ok(v(&pcx), Effect::Create).detail(format!(
                    "{} ({}) ↔ {} ({})",
                    pcx.requester_cidr,
                    pcx.requester_region,
                    pcx.accepter_cidr,
                    pcx.accepter_region
                ))
            }
            ("ec2", "AcceptVpcPeeringConnection") => {
                let id: String = arg!("peering_id");
                let mut pcx = need!(
                    self,
                    VpcPeeringConnection,
                    Kind::Peering,
                    r,
                    &id,
                    "InvalidVpcPeeringConnectionID.NotFound",
                    Effect::Update
                );
                if pcx.status == "active" {
                    return Applied::ok(v(&pcx), Effect::NoOp);
                }
                pcx.status = "active".into();
                self.put_peering(&pcx);
                Applied::ok(v(&pcx), Effect::Update)
            }
            ("ec2", "DeleteVpcPeeringConnection") => {
                let id: String = arg!("peering_id");
                let pcx = need!(
                    self,
                    VpcPeeringConnection,
                    Kind::Peering,
                    r,
                    &id,
                    "InvalidVpcPeeringConnectionID.NotFound",
                    Effect::Delete
                );
                let mut o = self.overlay();
                o.gone(Kind::Peering, &pcx.requester_region, &id);
                o.gone(Kind::Peering, &pcx.accepter_region, &id);
                Applied::ok(Value::Null, Effect::Delete)
            }
            ("ec2", "CreateRouteTable") => {
                let vpc_id: String = arg!("vpc_id");
                let vpc = need!(
                    self,
                    Vpc,
                    Kind::Vpc,
                    r,
                    &vpc_id,
                    "InvalidVpcID.NotFound",
                    Effect::Create
                );
                let rt = RouteTable {
                    route_table_id: self.new_id("rtb"),
                    vpc_id,
                    routes: vec![Route {
                        destination_cidr: vpc.cidr_block,
                        target: "local".into(),
                        state: "active".into(),
                    }],
                    subnet_associations: Vec::new(),
                    endpoint_ids: Vec::new(),
                    tags: arg!("tags"),
                };
                self.created(Kind::RouteTable, r, v(&rt));
                Applied::ok(v(&rt), Effect::Create)
            }
            ("ec2", "AssociateRouteTable" | "CreateRoute" | "DeleteRoute") => {
                let id: String = arg!("route_table_id");
                let mut rt = need!(
                    self,
                    RouteTable,
                    Kind::RouteTable,
                    r,
                    &id,
                    "InvalidRouteTableID.NotFound",
                    Effect::Update
                );
                let (result, detail) = match call.action.as_str() {
                    "AssociateRouteTable" => {
                        let subnet: String = arg!("subnet_id");
                        if rt.subnet_associations.contains(&subnet) {
                            return Applied::ok(json!(self.new_id("rtbassoc")), Effect::NoOp);
                        }
                        rt.subnet_associations.push(subnet.clone());
                        (json!(self.new_id("rtbassoc")), format!("subnet {subnet}"))
                    }
                    "CreateRoute" => {
                        let dest: String = arg!("destination_cidr");
                        let target: String = arg!("target");
                        if rt.routes.iter().any(|x| x.destination_cidr == dest) {
                            return Applied::err(
                                exists("RouteAlreadyExists", &dest),
                                Effect::Update,
                            );
                        }
                        rt.routes.push(Route {
                            destination_cidr: dest.clone(),
                            target: target.clone(),
                            state: "active".into(),
                        });
                        (Value::Null, format!("{dest} → {target}"))
                    }
                    _ => {
                        let dest: String = arg!("destination_cidr");
                        if !rt.routes.iter().any(|x| x.destination_cidr == dest) {
                            return Applied::err(
                                nf("InvalidRoute.NotFound", &dest),
                                Effect::Update,
                            );
                        }
                        rt.routes.retain(|x| x.destination_cidr != dest);
                        (Value::Null, format!("remove {dest}"))
                    }
                };
                self.put(Kind::RouteTable, r, v(&rt));
                Applied::ok(result, Effect::Update).detail(detail)
            }
            ("ec2", "DeleteRouteTable") => {
                let id: String = arg!("route_table_id");
                self.delete(Kind::RouteTable, r, &id, "InvalidRouteTableID.NotFound")
                    .await
            }
            ("ec2", "CreateVpcEndpoint") => {
                let vpc_id: String = arg!("vpc_id");
                need!(
                    self,
                    Value,
                    Kind::Vpc,
                    r,
                    &vpc_id,
                    "InvalidVpcID.NotFound",
                    Effect::Create
                );
                let ep = VpcEndpoint {
                    vpc_endpoint_id: self.new_id("vpce"),
                    vpc_id,
                    service_name: arg!("service_name"),
                    endpoint_type: arg!("endpoint_type"),
                    route_table_ids: arg!("route_table_ids"),
                    state: "available".into(),
                    tags: arg!("tags"),
                };
                self.created(Kind::Endpoint, r, v(&ep));
                Applied::ok(v(&ep), Effect::Create).detail(ep.service_name)
            }
            ("ec2", "DeleteVpcEndpoints") => {
                let ids: Vec<String> = arg!("vpc_endpoint_ids");
                for id in &ids {
                    need!(
                        self,
                        Value,
                        Kind::Endpoint,
                        r,
                        id,
                        "InvalidVpcEndpointId.NotFound",
                        Effect::Delete
                    );
                }
                for id in &ids {
                    self.gone(Kind::Endpoint, r, id);
                }
                Applied::ok(Value::Null, Effect::Delete).detail(ids.join(", "))
            }
            ("ec2", "CreateTags") => {
                let ids: Vec<String> = arg!("resource_ids");
                let tags: Vec<Tag> = arg!("tags");
                let mut changed = false;
                for id in &ids {
                    let k = match id.split('-').next().unwrap_or_default() {
                        "vpc" => Kind::Vpc,
                        "subnet" => Kind::Subnet,
                        "sg" => Kind::SecurityGroup,
                        "pcx" => Kind::Peering,
                        "rtb" => Kind::RouteTable,
                        "vpce" => Kind::Endpoint,
                        // Other resources are not modelled: the call is recorded as is.
                        _ => {
                            changed = true;
                            continue;
                        }
                    };
                    let Some(mut x) = tryp!(self.current(k, r, id).await, Effect::Update) else {
                        return Applied::err(nf("InvalidID.NotFound", id), Effect::Update);
                    };
                    let mut have: Vec<Tag> =
                        serde_json::from_value(x["tags"].clone()).unwrap_or_default();
                    for t in &tags {
                        match have.iter_mut().find(|h| h.key == t.key) {
                            Some(h) if h.value == t.value => {}
                            Some(h) => {
                                h.value = t.value.clone();
                                changed = true;
                            }
                            None => {
                                have.push(t.clone());
                                changed = true;
                            }
                        }
                    }
                    x["tags"] = v(&have);
                    self.put(k, r, x);
                }
                let effect = if changed {
                    Effect::Update
                } else {
                    Effect::NoOp
                };
                Applied::ok(Value::Null, effect)
            }

            // ---- route53 ----
            ("route53", "CreateHostedZone") => {
                let name: String = arg!("name");
                let vpc: Option<ZoneVpc> = arg!("vpc");
                let z = HostedZone {
                    id: self.new_id("Z"),
                    name: fqdn(&name),
                    private_zone: vpc.is_some(),
                    comment: arg!("comment"),
                    vpcs: vpc.into_iter().collect(),
                    record_count: 2,
                };
                self.put(Kind::Zone, r, v(&z));
                Applied::ok(v(&z), Effect::Create).detail(z.name)
            }
            ("route53", "AssociateVPCWithHostedZone") => {
                let id: String = arg!("id");
                let id = zone_id(&id);
                let vpc: ZoneVpc = arg!("vpc");
                let mut z = need!(
                    self,
                    HostedZone,
                    Kind::Zone,
                    r,
                    &id,
                    "NoSuchHostedZone",
                    Effect::Update
                );
                let info = v(&ChangeInfo {
                    id: self.new_id("change"),
                    status: "INSYNC".into(),
                });
                if z.vpcs.contains(&vpc) {
                    return Applied::ok(info, Effect::NoOp);
                }
                let detail = format!("{} ({})", vpc.vpc_id, vpc.vpc_region);
                z.vpcs.push(vpc);
                self.put(Kind::Zone, r, v(&z));
                Applied::ok(info, Effect::Update).detail(detail)
            }
            ("route53", "DeleteHostedZone") => {
                let id: String = arg!("id");
                let id = zone_id(&id);
                need!(
                    self,
                    Value,
                    Kind::Zone,
                    r,
                    &id,
                    "NoSuchHostedZone",
                    Effect::Delete
                );
                self.gone(Kind::Zone, r, &id);
                let info = ChangeInfo {
                    id: self.new_id("change"),
                    status: "INSYNC".into(),
                };
                Applied::ok(v(&info), Effect::Delete)
            }
            ("route53", "ChangeResourceRecordSets") => {
                let id: String = arg!("zone_id");
                let id = zone_id(&id);
                let changes: Vec<Change> = arg!("changes");
                let Some(records) =
                    tryp!(self.current(Kind::Records, r, &id).await, Effect::Update)
                else {
                    return Applied::err(nf("NoSuchHostedZone", &id), Effect::Update);
                };
                let before: Vec<RecordSet> = tryp!(from(records), Effect::Update);
                let (after, detail, kinds) = match apply_changes(&before, &changes) {
                    Ok(x) => x,
                    Err(e) => return Applied::err(e, Effect::Update),
                };
                let info = v(&ChangeInfo {
                    id: self.new_id("change"),
                    status: "INSYNC".into(),
                });
                if after == before {
                    return Applied::ok(info, Effect::NoOp).detail(detail);
                }
                let changed: Vec<Effect> =
                    kinds.into_iter().filter(|k| *k != Effect::NoOp).collect();
                let effect = if changed.iter().all(|k| *k == Effect::Create) {
                    Effect::Create
                } else if changed.iter().all(|k| *k == Effect::Delete) {
                    Effect::Delete
                } else {
                    Effect::Update
                };
                self.overlay().put_id(Kind::Records, r, &id, v(&after));
                Applied::ok(info, effect).detail(detail)
            }
            ("route53", "CreateHealthCheck") => {
                let caller: String = arg!("caller_reference");
                let name: Option<String> = arg!("name");
                let config: HealthCheckConfig = arg!("config");
                let all = tryp!(
                    self.read(&CapCall {
                        service: "route53".into(),
                        action: "ListHealthChecks".into(),
                        region: None,
                        resource: None,
                        args: json!({}),
                    })
                    .await,
                    Effect::Create
                );
                let all: Vec<HealthCheck> = tryp!(from(all), Effect::Create);
                if let Some(hc) = all.into_iter().find(|h| h.caller_reference == caller) {
                    // Route 53 is idempotent on the caller reference for the same config.
                    return if hc.config == config {
                        Applied::ok(v(&hc), Effect::NoOp)
                    } else {
                        Applied::err(exists("HealthCheckAlreadyExists", &caller), Effect::Create)
                    };
                }
                let hc = HealthCheck {
                    id: self.new_id("hc"),
                    caller_reference: caller,
                    config,
                    name,
                };
                self.put(Kind::HealthCheck, r, v(&hc));
                let c = &hc.config;
                let what = c
                    .alarm_name
                    .clone()
                    .or(c.db_instance_identifier.clone())
                    .or(c.fqdn.clone())
                    .unwrap_or_default();
                Applied::ok(v(&hc), Effect::Create)
                    .detail(format!("{} {what}", hc.config.check_type))
            }
            ("route53", "DeleteHealthCheck") => {
                let id: String = arg!("id");
                self.delete(Kind::HealthCheck, r, &id, "NoSuchHealthCheck")
                    .await
            }

            // ---- cloudwatch ----
            ("cloudwatch", "PutMetricData") => {
                let ns: String = arg!("namespace");
                let names: Vec<String> = call
                    .arg("data")
                    .as_array()
                    .map(|a| a.iter().map(|d| s(d, "metric_name").to_string()).collect())
                    .unwrap_or_default();
                Applied::ok(Value::Null, Effect::Action)
                    .detail(format!("{ns}: {}", names.join(", ")))
            }
            ("cloudwatch", "PutMetricAlarm") => {
                let spec: MetricAlarmSpec = arg!("spec");
                let cur = tryp!(
                    self.current_as::<MetricAlarm>(Kind::Alarm, r, &spec.alarm_name)
                        .await,
                    Effect::Create
                );
                let (alarm, effect) = match cur {
                    Some(a) if a.spec == spec => return Applied::ok(Value::Null, Effect::NoOp),
                    Some(a) => (MetricAlarm { spec, ..a }, Effect::Update),
                    None => (
                        MetricAlarm {
                            alarm_arn: format!(
                                "arn:aws:cloudwatch:{r}:{ACCOUNT}:alarm:{}",
                                spec.alarm_name
                            ),
                            spec,
                            state_value: "INSUFFICIENT_DATA".into(),
                            state_reason: "plan: not created yet".into(),
                            state_updated: String::new(),
                        },
                        Effect::Create,
                    ),
                };
                let detail = format!(
                    "{} {} {} {}",
                    alarm.spec.metric_name,
                    alarm.spec.statistic,
                    alarm.spec.comparison_operator,
                    alarm.spec.threshold
                );
                self.put(Kind::Alarm, r, v(&alarm));
                Applied::ok(Value::Null, effect).detail(detail)
            }
            ("cloudwatch", "SetAlarmState") => {
                let name: String = arg!("alarm_name");
                let mut a = need!(
                    self,
                    MetricAlarm,
                    Kind::Alarm,
                    r,
                    &name,
                    "ResourceNotFound",
                    Effect::Action
                );
                a.state_value = arg!("state_value");
                let detail = a.state_value.clone();
                self.put(Kind::Alarm, r, v(&a));
                Applied::ok(Value::Null, Effect::Action).detail(detail)
            }
            ("cloudwatch", "DeleteAlarms") => {
                let names: Vec<String> = arg!("alarm_names");
                let mut found = 0;
                for n in &names {
                    if tryp!(self.current(Kind::Alarm, r, n).await, Effect::Delete).is_some() {
                        found += 1;
                        self.gone(Kind::Alarm, r, n);
                    }
                }
                let effect = if found == 0 {
                    Effect::NoOp
                } else {
                    Effect::Delete
                };
                Applied::ok(Value::Null, effect).detail(names.join(", "))
            }
            ("cloudwatch", "PutDashboard") => {
                let name: String = arg!("name");
                let body: String = arg!("body");
                let cur = tryp!(
                    self.current(Kind::Dashboard, r, &name).await,
                    Effect::Create
                );
                let same = |a: &str, b: &str| {
                    serde_json::from_str::<Value>(a).ok() == serde_json::from_str::<Value>(b).ok()
                };
                let effect = match &cur {
                    Some(d) if same(s(d, "body"), &body) => {
                        return Applied::ok(Value::Null, Effect::NoOp);
                    }
                    Some(_) => Effect::Update,
                    None => Effect::Create,
                };
                let d = json!({
                    "name": name,
                    "arn": format!("arn:aws:cloudwatch::{ACCOUNT}:dashboard/{name}"),
                    "body": body,
                });
                self.put(Kind::Dashboard, r, d);
                Applied::ok(Value::Null, effect)
            }
            ("cloudwatch", "DeleteDashboards") => {
                let names: Vec<String> = arg!("names");
                for n in &names {
                    need!(
                        self,
                        Value,
                        Kind::Dashboard,
                        r,
                        n,
                        "ResourceNotFound",
                        Effect::Delete
                    );
                }
                for n in &names {
                    self.gone(Kind::Dashboard, r, n);
                }
                Applied::ok(Value::Null, Effect::Delete).detail(names.join(", "))
            }

            // ---- sns ----
            ("sns", "CreateTopic") => {
                let name: String = arg!("name");
                let all = tryp!(
                    self.read(&Self::describe_call(Kind::Topic, r, "")).await,
                    Effect::Create
                );
                let suffix = format!(":{name}");
                if let Some(arn) = all.as_array().and_then(|a| {
                    a.iter()
                        .find(|t| t.as_str().is_some_and(|t| t.ends_with(&suffix)))
                }) {
                    // CreateTopic is idempotent: it returns the existing ARN.
                    return Applied::ok(arn.clone(), Effect::NoOp);
                }
                let arn = format!("arn:aws:sns:{r}:{ACCOUNT}:{name}");
                self.mark_planned(&arn);
                self.overlay().put_id(Kind::Topic, r, &arn, json!(arn));
                Applied::ok(json!(arn), Effect::Create)
            }
            ("sns", "DeleteTopic") => {
                let arn: String = arg!("topic_arn");
                // SNS deletes idempotently.
                if tryp!(self.current(Kind::Topic, r, &arn).await, Effect::Delete).is_none() {
                    return Applied::ok(Value::Null, Effect::NoOp);
                }
                self.gone(Kind::Topic, r, &arn);
                Applied::ok(Value::Null, Effect::Delete)
            }
            ("sns", "Subscribe") => {
                let arn: String = arg!("topic_arn");
                let protocol: String = arg!("protocol");
                Applied::ok(
                    json!(format!("{arn}:{}", self.new_id("sub"))),
                    Effect::Create,
                )
                .detail(protocol)
            }
            ("sns", "Unsubscribe") => Applied::ok(Value::Null, Effect::Delete),
            ("sns", "Publish") => {
                let subject: Option<String> = arg!("subject");
                Applied::ok(json!(self.new_id("message")), Effect::Action)
                    .detail(subject.unwrap_or_default())
            }

            // ---- secretsmanager ----
            ("secretsmanager", "CreateSecret") => {
                let q: CreateSecretRequest = arg!("request");
                let cur = tryp!(
                    self.current_as::<Secret>(Kind::Secret, r, &q.name).await,
                    Effect::Create
                );
                if cur.is_some_and(|x| x.deleted_date.is_none()) {
                    return Applied::err(
                        CapError::new(
                            ErrorKind::AlreadyExists,
                            "ResourceExistsException",
                            format!("{} already exists", q.name),
                        ),
                        Effect::Create,
                    );
                }
                let secret = Secret {
                    arn: format!(
                        "arn:aws:secretsmanager:{r}:{ACCOUNT}:secret:{}-plan",
                        q.name
                    ),
                    name: q.name,
                    description: q.description,
                    created_date: None,
                    deleted_date: None,
                    ..Default::default()
                };
                self.mark_planned(&secret.arn);
                self.created(Kind::Secret, r, v(&secret));
                let detail = if q.generate_password.is_some() {
                    "generated password"
                } else {
                    ""
                };
                Applied::ok(v(&secret), Effect::Create).detail(detail)
            }
            ("secretsmanager", "DeleteSecret") => {
                let id: String = arg!("secret_id");
                let name = self.overlay().secret_name(r, &id);
                self.delete(Kind::Secret, r, &name, "ResourceNotFoundException")
                    .await
            }

            ("secretsmanager", "ReplicateSecretToRegions") => {
                let id: String = arg!("secret_id");
                let add: Vec<String> = arg!("add_replica_regions");
                let name = self.overlay().secret_name(r, &id);
                let mut cur = need!(
                    self,
                    Secret,
                    Kind::Secret,
                    r,
                    &name,
                    "ResourceNotFoundException",
                    Effect::Update
                );
                let new: Vec<&String> = add
                    .iter()
                    .filter(|x| x.as_str() != r)
                    .filter(|x| !cur.replication_status.iter().any(|s| &s.region == *x))
                    .collect();
                if new.is_empty() {
                    return Applied::ok(v(&cur), Effect::NoOp).detail(add.join(", "));
                }
                for x in &new {
                    cur.replication_status.push(ReplicationStatus {
                        region: x.to_string(),
                        status: "InSync".into(),
                        status_message: None,
                    });
                    let replica = Secret {
                        arn: cur.arn.replacen(&format!(":{r}:"), &format!(":{x}:"), 1),
                        primary_region: Some(r.to_string()),
                        replication_status: Vec::new(),
                        ..cur.clone()
                    };
                    self.put(Kind::Secret, x, v(&replica));
                }
                cur.primary_region = Some(r.to_string());
                self.put(Kind::Secret, r, v(&cur));
                let regions: Vec<&str> = new.iter().map(|x| x.as_str()).collect();
                Applied::ok(v(&cur), Effect::Update)
                    .detail(format!("replicate {name} to {}", regions.join(", ")))
            }
            ("secretsmanager", "RemoveRegionsFromReplication") => {
                let id: String = arg!("secret_id");
                let remove: Vec<String> = arg!("remove_replica_regions");
                let name = self.overlay().secret_name(r, &id);
                let mut cur = need!(
                    self,
                    Secret,
                    Kind::Secret,
                    r,
                    &name,
                    "ResourceNotFoundException",
                    Effect::Update
                );
                let before = cur.replication_status.len();
                cur.replication_status
                    .retain(|x| !remove.contains(&x.region));
                if cur.replication_status.len() == before {
                    return Applied::ok(v(&cur), Effect::NoOp).detail(remove.join(", "));
                }
                if cur.replication_status.is_empty() {
                    cur.primary_region = None;
                }
                for x in &remove {
                    self.gone(Kind::Secret, x, &name);
                }
                self.put(Kind::Secret, r, v(&cur));
                Applied::ok(v(&cur), Effect::Update)
                    .detail(format!("stop replicating {name} to {}", remove.join(", ")))
            }

            // ---- fault (game days): recorded, never injected by a plan ----
            // ---- postgres ----
            ("postgres", "Query") => {
                let sql: String = arg!("sql");
                let first = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
                Applied::ok(
                    json!({"columns": [], "rows": [], "rows_affected": 0}),
                    Effect::Action,
                )
                .detail(format!("{first} …"))
            }

            _ => Applied::err(
                CapError::new(
                    ErrorKind::InvalidParameter,
                    "UnsupportedOperation",
                    format!("{}: the plan cannot model this call", call.iam_name()),
                ),
                Effect::Action,
            ),
        }
    }

    /// Delete one resource that must exist.
    async fn delete(&self, k: Kind, region: &str, id: &str, code: &str) -> Applied {
        if tryp!(self.current(k, region, id).await, Effect::Delete).is_none() {
            return Applied::err(nf(code, id), Effect::Delete);
        }
        self.gone(k, region, id);
        Applied::ok(Value::Null, Effect::Delete)
    }

    /// A peering is visible from both its regions.
    fn put_peering(&self, pcx: &VpcPeeringConnection) {
        self.mark_planned(&pcx.id);
        let mut o = self.overlay();
        o.put(Kind::Peering, &pcx.requester_region, v(pcx));
        o.put(Kind::Peering, &pcx.accepter_region, v(pcx));
    }
}

/// An instance's address is assigned at creation; the plan shows where it will be.
fn planned_endpoint(id: &str, region: &str) -> String {
    format!("{id}.planned.{region}.rds.amazonaws.com")
}

fn snapshot_of(db: &DbInstance, id: &str, region: &str) -> DbSnapshot {
    DbSnapshot {
        identifier: id.to_string(),
        arn: format!("arn:aws:rds:{region}:{ACCOUNT}:snapshot:{id}"),
        region: region.to_string(),
        instance_identifier: db.identifier.clone(),
        status: "available".into(),
        engine_version: db.engine_version.clone(),
        allocated_storage: db.allocated_storage,
        created_at: None,
    }
}

fn same_permission(a: &IpPermission, b: &IpPermission) -> bool {
    a.ip_protocol == b.ip_protocol
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && b.cidr_blocks.iter().all(|c| a.cidr_blocks.contains(c))
        && b.source_security_groups
            .iter()
            .all(|g| a.source_security_groups.contains(g))
}

fn describe_permissions(perms: &[IpPermission]) -> String {
    perms
        .iter()
        .map(|p| {
            let from: Vec<&str> = p
                .cidr_blocks
                .iter()
                .chain(&p.source_security_groups)
                .map(String::as_str)
                .collect();
            format!("{}/{} from {}", p.ip_protocol, p.from_port, from.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn record_key(r: &RecordSet) -> (String, String, Option<String>) {
    (
        fqdn(&r.name),
        r.record_type.clone(),
        r.set_identifier.clone(),
    )
}

/// A Route 53 change batch, all or nothing: the records after it, a one-line
/// description per change (`UPSERT postgres.db-dev.internal. CNAME [primary] weight
/// 100 → 0`) and what each change does.
fn apply_changes(
    before: &[RecordSet],
    changes: &[Change],
) -> Result<(Vec<RecordSet>, String, Vec<Effect>), CapError> {
    let mut after = before.to_vec();
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for c in changes {
        let mut rs = c.record_set.clone();
        rs.name = fqdn(&rs.name);
        let key = record_key(&rs);
        let pos = after.iter().position(|x| record_key(x) == key);
        let label = format!(
            "{} {} {}{}",
            match c.action {
                ChangeAction::Create => "CREATE",
                ChangeAction::Delete => "DELETE",
                ChangeAction::Upsert => "UPSERT",
            },
            rs.name,
            rs.record_type,
            rs.set_identifier
                .as_ref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default()
        );
        let invalid = |why: &str| {
            CapError::new(
                ErrorKind::InvalidParameter,
                "InvalidChangeBatch",
                format!("{label}: {why}"),
            )
        };
        match (c.action, pos) {
            (ChangeAction::Create, Some(_)) => return Err(invalid("it already exists")),
            (ChangeAction::Delete, None) => return Err(invalid("it was not found")),
            (ChangeAction::Delete, Some(i)) => {
                after.remove(i);
                lines.push(label);
                kinds.push(Effect::Delete);
            }
            (_, Some(i)) => {
                let old = &after[i];
                let mut what = Vec::new();
                if old.weight != rs.weight {
                    what.push(format!("weight {} → {}", opt(old.weight), opt(rs.weight)));
                }
                if old.values != rs.values {
                    what.push(format!(
                        "{} → {}",
                        old.values.join(","),
                        rs.values.join(",")
                    ));
                }
                if old.health_check_id != rs.health_check_id {
                    what.push("health check".to_string());
                }
                if old.ttl != rs.ttl {
                    what.push(format!("ttl {} → {}", opt(old.ttl), opt(rs.ttl)));
                }
                lines.push(if what.is_empty() {
                    format!("{label} unchanged")
                } else {
                    format!("{label} {}", what.join(", "))
                });
                kinds.push(if what.is_empty() {
                    Effect::NoOp
                } else {
                    Effect::Update
                });
                after[i] = rs;
            }
            (_, None) => {
                lines.push(format!(
                    "{label} {}{}",
                    rs.values.join(","),
                    rs.weight
                        .map(|w| format!(" weight {w}"))
                        .unwrap_or_default()
                ));
                after.push(rs);
                kinds.push(Effect::Create);
            }
        }
    }
    Ok((after, lines.join("; "), kinds))
}

fn opt<T: std::fmt::Display>(x: Option<T>) -> String {
    x.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}
