//! The overlay against a scripted provider (a fake, for this unit only): reads are
//! answered from a fixed world; any mutating call reaching it fails the test.

use std::sync::{Arc, Mutex};

use runbook_caps::{BoxFuture, CapCall, CapError, Provider};
use serde_json::{Value, json};

use crate::{Effect, Plan};

#[derive(Default)]
struct World {
    seen: Mutex<Vec<String>>,
}

impl Provider for World {
    fn name(&self) -> &str {
        "fake"
    }
    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        Box::pin(async move {
            self.seen.lock().unwrap().push(call.iam_name());
            let spec = runbook_caps::action_by_iam(&call.service, &call.action);
            let sql_read = call.service == "postgres";
            assert!(
                sql_read || spec.is_some_and(|s| !s.mutating),
                "a mutating call reached the provider: {}",
                call.iam_name()
            );
            match call.action.as_str() {
                "DescribeDBInstances" => match call.arg("identifier").as_str() {
                    None | Some("primary") => Ok(json!([db("primary", None)])),
                    Some(other) => Err(CapError::not_found(
                        "DBInstanceNotFound",
                        format!("{other} not found"),
                    )),
                },
                "DescribeAlarms" => Ok(json!([alarm("cpu", 80.0)])),
                "ListResourceRecordSets" => {
                    Ok(json!([record("primary", 100), record("replica", 0),]))
                }
                "GetHostedZone" => Ok(json!({
                    "id": "Z1", "name": "db.internal.", "private_zone": true,
                    "comment": null, "vpcs": [], "record_count": 4
                })),
                "ListTopics" => Ok(json!(["arn:aws:sns:us-east-1:123:alerts"])),
                "DescribeSecret" => {
                    match (call.region.as_deref(), call.arg("secret_id").as_str()) {
                        (Some("us-east-1"), Some("creds")) => Ok(json!({
                            "arn": "arn:aws:secretsmanager:us-east-1:123:secret:creds-AbCdEf",
                            "name": "creds", "description": null, "created_date": null,
                            "deleted_date": null, "primary_region": null, "replication_status": []
                        })),
                        (_, id) => Err(CapError::not_found(
                            "ResourceNotFoundException",
                            format!("{id:?} not found"),
                        )),
                    }
                }
                "Query" => Ok(json!({"columns": ["x"], "rows": [["true"]], "rows_affected": 1})),
                "DescribeVpcs" => {
                    if call
                        .arg("vpc_ids")
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
                    {
                        Err(CapError::invalid_parameter("malformed vpc id"))
                    } else {
                        Ok(json!([]))
                    }
                }
                _ => Ok(json!([])),
            }
        })
    }
}

fn db(id: &str, source: Option<&str>) -> Value {
    let mut d = serde_json::to_value(runbook_caps::types::rds::DbInstance {
        identifier: id.into(),
        arn: format!("arn:aws:rds:us-east-1:123:db:{id}"),
        region: "us-east-1".into(),
        status: "available".into(),
        engine: "postgres".into(),
        engine_version: "15.4".into(),
        ..Default::default()
    })
    .unwrap();
    d["read_replica_source"] = json!(source);
    d
}

fn alarm(name: &str, threshold: f64) -> Value {
    json!({
        "spec": spec(name, threshold),
        "alarm_arn": format!("arn:aws:cloudwatch:us-east-1:123:alarm:{name}"),
        "state_value": "OK", "state_reason": "", "state_updated": ""
    })
}

fn spec(name: &str, threshold: f64) -> Value {
    serde_json::to_value(runbook_caps::types::cloudwatch::MetricAlarmSpec {
        alarm_name: name.into(),
        namespace: "AWS/RDS".into(),
        metric_name: "CPUUtilization".into(),
        statistic: "Average".into(),
        period: 60,
        evaluation_periods: 3,
        threshold,
        comparison_operator: "GreaterThanThreshold".into(),
        ..Default::default()
    })
    .unwrap()
}

fn record(set: &str, weight: u32) -> Value {
    json!({
        "name": "postgres.db.internal.", "record_type": "CNAME", "ttl": 60,
        "values": [format!("{set}.example")], "set_identifier": set, "weight": weight,
        "failover": null, "health_check_id": null
    })
}

fn call(service: &str, action: &str, region: Option<&str>, args: Value) -> CapCall {
    CapCall {
        service: service.into(),
        action: action.into(),
        region: region.map(String::from),
        resource: None,
        args,
    }
}

fn rds(action: &str, args: Value) -> CapCall {
    call("rds", action, Some("us-east-1"), args)
}

fn setup() -> (Arc<World>, Arc<Plan>, Arc<dyn Provider>) {
    let world = Arc::new(World::default());
    let plan = Plan::new(world.clone());
    let view = plan.for_state("Deploy/Create");
    (world, plan, view)
}

fn create_request(id: &str) -> Value {
    serde_json::to_value(runbook_caps::types::rds::CreateDbInstanceRequest {
        identifier: id.into(),
        engine: "postgres".into(),
        engine_version: "15".into(),
        instance_class: "db.t3.large".into(),
        allocated_storage: 100,
        storage_type: "gp3".into(),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_created_instance_is_seen_by_later_reads_and_never_made() {
    let (world, plan, p) = setup();
    let made = p
        .call(rds(
            "CreateDBInstance",
            json!({"request": create_request("new")}),
        ))
        .await
        .unwrap();
    assert_eq!(made["status"], "available");
    let seen = p
        .call(rds("DescribeDBInstances", json!({"identifier": "new"})))
        .await
        .unwrap();
    assert_eq!(seen[0]["identifier"], "new");
    assert_eq!(seen[0]["allocated_storage"], 100);
    let all = p
        .call(rds("DescribeDBInstances", json!({"identifier": null})))
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");

    // Creating it again is predicted to fail as RDS would.
    let again = p
        .call(rds(
            "CreateDBInstance",
            json!({"request": create_request("new")}),
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code, "DBInstanceAlreadyExists");

    let calls = plan.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].effect, Effect::Create);
    assert_eq!(calls[0].state, "Deploy/Create");
    assert!(
        calls[1]
            .error
            .as_deref()
            .unwrap()
            .starts_with("DBInstanceAlreadyExists")
    );
    assert!(
        world
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|c| c == "rds:DescribeDBInstances"),
        "{:?}",
        world.seen.lock().unwrap()
    );
}

#[tokio::test]
async fn a_deleted_real_instance_disappears_and_cannot_be_deleted_twice() {
    let (_, plan, p) = setup();
    let del = json!({"request": {"identifier": "primary", "skip_final_snapshot": false, "final_snapshot_identifier": "last"}});
    let out = p.call(rds("DeleteDBInstance", del.clone())).await.unwrap();
    assert_eq!(out["status"], "deleting");
    let e = p
        .call(rds("DescribeDBInstances", json!({"identifier": "primary"})))
        .await
        .unwrap_err();
    assert_eq!(e.code, "DBInstanceNotFound");
    let all = p
        .call(rds("DescribeDBInstances", json!({"identifier": null})))
        .await
        .unwrap();
    assert_eq!(all, json!([]));
    let snaps = p
        .call(rds(
            "DescribeDBSnapshots",
            json!({"snapshot_identifier": "last", "instance_identifier": null}),
        ))
        .await
        .unwrap();
    assert_eq!(snaps[0]["instance_identifier"], "primary");
    assert_eq!(
        p.call(rds("DeleteDBInstance", del)).await.unwrap_err().code,
        "DBInstanceNotFound"
    );
    let calls = plan.calls();
    assert_eq!(calls[0].effect, Effect::Delete);
    assert_eq!(calls[0].detail.as_deref(), Some("final snapshot last"));
}

#[tokio::test]
async fn unchanged_alarms_are_no_ops_and_changed_ones_updates() {
    let (_, plan, p) = setup();
    let put = |t: f64| {
        call(
            "cloudwatch",
            "PutMetricAlarm",
            Some("us-east-1"),
            json!({"spec": spec("cpu", t)}),
        )
    };
    p.call(put(80.0)).await.unwrap();
    p.call(put(90.0)).await.unwrap();
    p.call(call(
        "cloudwatch",
        "PutMetricAlarm",
        Some("us-east-1"),
        json!({"spec": spec("new", 1.0)}),
    ))
    .await
    .unwrap();
    let effects: Vec<Effect> = plan.calls().iter().map(|c| c.effect).collect();
    assert_eq!(effects, [Effect::NoOp, Effect::Update, Effect::Create]);
    let alarms = p
        .call(call(
            "cloudwatch",
            "DescribeAlarms",
            Some("us-east-1"),
            json!({"alarm_names": [], "name_prefix": null}),
        ))
        .await
        .unwrap();
    let th: Vec<f64> = alarms
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["spec"]["threshold"].as_f64().unwrap())
        .collect();
    assert_eq!(th, [90.0, 1.0]);
}

#[tokio::test]
async fn weight_changes_are_described_and_replayed_to_later_reads() {
    let (_, plan, p) = setup();
    let swap = json!({"zone_id": "/hostedzone/Z1", "changes": [
        {"action": "Upsert", "record_set": record("primary", 0)},
        {"action": "Upsert", "record_set": record("replica", 100)},
    ]});
    let r53 = |action: &str, args: Value| call("route53", action, None, args);
    p.call(r53("ChangeResourceRecordSets", swap.clone()))
        .await
        .unwrap();
    p.call(r53("ChangeResourceRecordSets", swap)).await.unwrap();
    let calls = plan.calls();
    assert_eq!(calls[0].effect, Effect::Update);
    assert_eq!(
        calls[0].detail.as_deref(),
        Some(
            "UPSERT postgres.db.internal. CNAME [primary] weight 100 → 0; \
             UPSERT postgres.db.internal. CNAME [replica] weight 0 → 100"
        )
    );
    assert_eq!(calls[1].effect, Effect::NoOp);
    let now = p
        .call(r53(
            "ListResourceRecordSets",
            json!({"zone_id": "Z1", "name": "postgres.db.internal"}),
        ))
        .await
        .unwrap();
    assert_eq!(now[0]["weight"], 0);
    assert_eq!(now[1]["weight"], 100);
    // Deleting a record that is not there fails the whole batch, as in Route 53.
    let bad = json!({"zone_id": "Z1", "changes": [
        {"action": "Delete", "record_set": record("gone", 0)},
    ]});
    let e = p
        .call(r53("ChangeResourceRecordSets", bad))
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidChangeBatch");
}

#[tokio::test]
async fn read_only_sql_runs_and_everything_else_is_recorded() {
    let (world, plan, p) = setup();
    let q = |sql: &str| {
        call(
            "postgres",
            "Query",
            None,
            json!({"target": {}, "sql": sql, "params": []}),
        )
    };
    let probe = p.call(q("SELECT pg_is_in_recovery()::text")).await.unwrap();
    assert_eq!(probe["rows"][0][0], "true");
    let write = p
        .call(q("INSERT INTO t VALUES (1) RETURNING id"))
        .await
        .unwrap();
    assert_eq!(write["rows"], json!([]));
    assert_eq!(world.seen.lock().unwrap().as_slice(), ["postgres:Query"]);
    assert_eq!(plan.calls().len(), 1);
    assert_eq!(plan.calls()[0].effect, Effect::Action);
}

#[tokio::test]
async fn planned_ids_never_reach_the_provider() {
    let (_, plan, p) = setup();
    let ec2 = |action: &str, args: Value| call("ec2", action, Some("us-east-1"), args);
    let tags = json!([{"key": "Name", "value": "dr"}]);
    let vpc = p
        .call(ec2(
            "CreateVpc",
            json!({"cidr_block": "10.0.0.0/16", "tags": tags}),
        ))
        .await
        .unwrap();
    let id = vpc["vpc_id"].as_str().unwrap().to_string();
    // The fake rejects any id list as malformed: this only passes if the plan
    // answers from the overlay.
    let by_id = p
        .call(ec2("DescribeVpcs", json!({"vpc_ids": [id], "filters": []})))
        .await
        .unwrap();
    assert_eq!(by_id[0]["cidr_block"], "10.0.0.0/16");
    let by_tag = p
        .call(ec2(
            "DescribeVpcs",
            json!({"vpc_ids": [], "filters": [{"name": "tag:Name", "values": ["dr"]}]}),
        ))
        .await
        .unwrap();
    assert_eq!(by_tag.as_array().unwrap().len(), 1);
    let other = p
        .call(ec2(
            "DescribeVpcs",
            json!({"vpc_ids": [], "filters": [{"name": "tag:Name", "values": ["other"]}]}),
        ))
        .await
        .unwrap();
    assert_eq!(other, json!([]));
    p.call(ec2(
        "CreateSubnet",
        json!({"vpc_id": id, "cidr_block": "10.0.1.0/24", "availability_zone": "us-east-1a", "tags": []}),
    ))
    .await
    .unwrap();
    assert_eq!(plan.calls().len(), 2);
    assert!(plan.calls().iter().all(|c| c.effect == Effect::Create));
}

#[tokio::test]
async fn promoting_clears_the_source_and_topics_are_idempotent() {
    let (_, plan, p) = setup();
    // A replica of the real primary, then its promotion.
    let req = json!({"request": {
        "identifier": "replica", "source": "arn:aws:rds:us-east-1:123:db:primary",
        "source_region": "us-east-1", "instance_class": "db.t3.large", "storage_type": null,
        "storage_encrypted": true, "multi_az": false, "db_subnet_group": null,
        "parameter_group": null, "vpc_security_groups": [], "tags": []
    }});
    let rep = p
        .call(rds("CreateDBInstanceReadReplica", req))
        .await
        .unwrap();
    assert_eq!(rep["engine_version"], "15.4");
    let promoted = p
        .call(rds(
            "PromoteReadReplica",
            json!({"identifier": "replica", "backup_retention_period": 7}),
        ))
        .await
        .unwrap();
    assert_eq!(promoted["read_replica_source"], Value::Null);
    let again = p
        .call(rds(
            "PromoteReadReplica",
            json!({"identifier": "replica", "backup_retention_period": null}),
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code, "InvalidDBInstanceState");

    let sns = |name: &str| {
        call(
            "sns",
            "CreateTopic",
            Some("us-east-1"),
            json!({"name": name, "tags": []}),
        )
    };
    let existing = p.call(sns("alerts")).await.unwrap();
    assert_eq!(existing, "arn:aws:sns:us-east-1:123:alerts");
    p.call(sns("fresh")).await.unwrap();
    let effects: Vec<Effect> = plan.calls().iter().map(|c| c.effect).collect();
    assert_eq!(
        effects,
        [
            Effect::Create,
            Effect::Update,
            Effect::Update,
            Effect::NoOp,
            Effect::Create
        ]
    );
}

#[tokio::test]
async fn secret_replication_and_faults_are_modelled() {
    let (_world, plan, p) = setup();
    let sm = |action: &str, region: &str, args: Value| {
        call("secretsmanager", action, Some(region), args)
    };
    p.call(sm(
        "CreateSecret",
        "us-east-1",
        json!({"request": {"name": "creds-local", "description": null, "username": "postgres",
               "generate_password": null, "tags": []}}),
    ))
    .await
    .unwrap();
    let s = p
        .call(sm(
            "ReplicateSecretToRegions",
            "us-east-1",
            json!({"secret_id": "creds-local", "add_replica_regions": ["eu-west-1"]}),
        ))
        .await
        .unwrap();
    assert_eq!(s["primary_region"], "us-east-1");
    assert_eq!(s["replication_status"][0]["region"], "eu-west-1");
    // The planned replica is seen by later reads in its region.
    let r = p
        .call(sm(
            "DescribeSecret",
            "eu-west-1",
            json!({"secret_id": "creds-local"}),
        ))
        .await
        .unwrap();
    assert_eq!(r["primary_region"], "us-east-1");
    // Asking again changes nothing.
    p.call(sm(
        "ReplicateSecretToRegions",
        "us-east-1",
        json!({"secret_id": "creds-local", "add_replica_regions": ["eu-west-1"]}),
    ))
    .await
    .unwrap();
    p.call(sm(
        "RemoveRegionsFromReplication",
        "us-east-1",
        json!({"secret_id": "creds-local", "remove_replica_regions": ["eu-west-1"]}),
    ))
    .await
    .unwrap();
    let gone = p
        .call(sm(
            "DescribeSecret",
            "eu-west-1",
            json!({"secret_id": "creds-local"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code, "ResourceNotFoundException");

    let f = p
        .call(call(
            "fault",
            "InjectFault",
            None,
            json!({"spec": {"kind": "region-loss", "target": "us-east-1", "region": "us-east-1",
                   "params": "", "client_token": "t"}}),
        ))
        .await
        .unwrap();
    assert_eq!(f["state"], "active");
    let calls = plan.calls();
    let effects: Vec<(&str, Effect)> = calls
        .iter()
        .map(|c| (c.action.as_str(), c.effect))
        .collect();
    assert_eq!(
        effects,
        [
            ("CreateSecret", Effect::Create),
            ("ReplicateSecretToRegions", Effect::Update),
            ("ReplicateSecretToRegions", Effect::NoOp),
            ("RemoveRegionsFromReplication", Effect::Update),
            ("InjectFault", Effect::Action),
        ]
    );
    assert_eq!(
        calls[4].detail.as_deref(),
        Some("would inject region-loss on us-east-1")
    );
}
