//! Game-day pieces of the aws provider against moto (one server per test): the `fault`
//! kinds injected and undone, Secrets Manager replica regions, and `connect_info`.
//! Resources are set up and checked through the AWS SDK directly, so what the provider
//! changed is seen the way AWS reports it.

use std::collections::BTreeSet;

use aws_sdk_ec2::types as ec2t;
use runbook_caps::types::postgres::Target;
use runbook_caps::{CapError, ErrorKind, Provider};
use serde_json::{Value, json};

mod common;
use common::{E, Env, W, env};

impl Env {
    async fn inject(&self, kind: &str, target: &str) -> Result<Value, CapError> {
        self.call(
            "fault",
            "InjectFault",
            None,
            json!({"spec": {"kind": kind, "target": target, "region": E, "params": "{}",
                            "client_token": format!("{kind}-{target}")}}),
        )
        .await
    }

    /// Undo as the executor asks it: the journaled record, id assigned.
    async fn undo(&self, fault: &Value) -> Value {
        let mut f = fault.clone();
        f["id"] = json!("fault-test");
        self.ok(
            "fault",
            "UndoFault",
            None,
            json!({"id": "fault-test", "fault": f}),
        )
        .await
    }

    async fn rds(&self) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&self.sdk(E).await)
    }

    async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk(E).await)
    }

    async fn create_db(&self, id: &str, multi_az: bool, groups: &[&str]) {
        self.rds()
            .await
            .create_db_instance()
            .db_instance_identifier(id)
            .engine("postgres")
            .engine_version("15.7")
            .db_instance_class("db.t3.medium")
            .allocated_storage(20)
            .master_username("dbadmin")
            .master_user_password("secret-password-1")
            .port(5432)
            .multi_az(multi_az)
            .set_vpc_security_group_ids(Some(groups.iter().map(|g| g.to_string()).collect()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create {id}: {e:?}"));
    }

    async fn status(&self, id: &str) -> String {
        let o = self
            .rds()
            .await
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .unwrap();
        o.db_instances()[0]
            .db_instance_status()
            .unwrap()
            .to_string()
    }

    /// A group's ingress as (protocol, from, to, source, description) rows.
    async fn ingress(&self, group: &str) -> BTreeSet<(String, i32, i32, String, String)> {
        let o = self
            .ec2()
            .await
            .describe_security_groups()
            .group_ids(group)
            .send()
            .await
            .unwrap();
        let mut out = BTreeSet::new();
        for p in o.security_groups()[0].ip_permissions() {
            let row = |src: &str, d: Option<&str>| {
                (
                    p.ip_protocol().unwrap_or_default().to_string(),
                    p.from_port().unwrap_or(-1),
                    p.to_port().unwrap_or(-1),
                    src.to_string(),
                    d.unwrap_or_default().to_string(),
                )
            };
            for r in p.ip_ranges() {
                out.insert(row(r.cidr_ip().unwrap(), r.description()));
            }
            for g in p.user_id_group_pairs() {
                out.insert(row(g.group_id().unwrap(), g.description()));
            }
        }
        out
    }
}

fn tcp(port: i32) -> aws_sdk_ec2::types::builders::IpPermissionBuilder {
    ec2t::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
}

fn cidr(c: &str, description: Option<&str>) -> ec2t::IpRange {
    ec2t::IpRange::builder()
        .cidr_ip(c)
        .set_description(description.map(str::to_string))
        .build()
}

#[tokio::test]
async fn isolate_primary_revokes_and_restores_exactly_its_rules() {
    let e = env();
    let ec2 = e.ec2().await;
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let mut sg = vec![];
    for name in ["db", "db-extra", "app", "empty"] {
        let g = ec2
            .create_security_group()
            .group_name(name)
            .description(name)
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        sg.push(g.group_id().unwrap().to_string());
    }
    let (db, extra, app, empty) = (&sg[0], &sg[1], &sg[2], &sg[3]);
    ec2.authorize_security_group_ingress()
        .group_id(db)
        .ip_permissions(
            tcp(5432)
                .ip_ranges(cidr("10.1.0.0/16", Some("replica vpc")))
                .user_id_group_pairs(
                    ec2t::UserIdGroupPair::builder()
                        .group_id(app)
                        .description("app")
                        .build(),
                )
                .build(),
        )
        .ip_permissions(tcp(22).ip_ranges(cidr("10.9.0.0/24", None)).build())
        .send()
        .await
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(extra)
        .ip_permissions(tcp(5432).ip_ranges(cidr("10.2.0.0/16", None)).build())
        .send()
        .await
        .unwrap();
    let before_db = e.ingress(db).await;
    let before_extra = e.ingress(extra).await;
    assert_eq!(before_db.len(), 3, "{before_db:?}");
    assert_eq!(before_extra.len(), 1);
    let app_before = e.ingress(app).await;
    e.create_db("primary", true, &[db, extra]).await;

    let f = e.inject("isolate-primary", "primary").await.unwrap();
    assert_eq!(
        (&f["kind"], &f["target"], &f["region"], &f["state"]),
        (
            &json!("isolate-primary"),
            &json!("primary"),
            &json!(E),
            &json!("active")
        )
    );
    let details: Value = serde_json::from_str(f["details"].as_str().unwrap()).unwrap();
    let groups = details["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{details}");
    assert_eq!(groups[0]["group_id"], json!(db));
    assert_eq!(groups[0]["rules"].as_array().unwrap().len(), 3, "{details}");
    assert!(
        groups[0]["rules"].as_array().unwrap().contains(
            &json!({"protocol": "tcp", "from_port": 5432, "to_port": 5432,
                               "cidr_ipv4": "10.1.0.0/16", "description": "replica vpc"})
        ),
        "{details}"
    );
    // Through EC2: the primary's groups accept nothing; other groups are untouched.
    assert!(e.ingress(db).await.is_empty());
    assert!(e.ingress(extra).await.is_empty());
    assert_eq!(e.ingress(app).await, app_before);

    // Someone re-adds one rule by hand before the undo: undo adds only the others.
    ec2.authorize_security_group_ingress()
        .group_id(db)
        .ip_permissions(tcp(22).ip_ranges(cidr("10.9.0.0/24", None)).build())
        .send()
        .await
        .unwrap();
    let u = e.undo(&f).await;
    assert_eq!(u["state"], "undone");
    assert_eq!(u["id"], "fault-test");
    let ud: Value = serde_json::from_str(u["details"].as_str().unwrap()).unwrap();
    assert_eq!(
        ud["undone"]["security_groups"],
        json!([{"group_id": db, "authorized": 2, "already_present": 1},
               {"group_id": extra, "authorized": 1, "already_present": 0}]),
        "{ud}"
    );
    assert_eq!(e.ingress(db).await, before_db, "descriptions included");
    assert_eq!(e.ingress(extra).await, before_extra);

    // Undoing twice is harmless and changes nothing.
    let again = e.undo(&f).await;
    let ad: Value = serde_json::from_str(again["details"].as_str().unwrap()).unwrap();
    assert_eq!(ad["undone"]["security_groups"][0]["authorized"], 0);
    assert_eq!(ad["undone"]["security_groups"][0]["already_present"], 3);
    assert_eq!(e.ingress(db).await, before_db);

    // Nothing to revoke: refused rather than a fault that does nothing.
    e.create_db("closed", false, &[empty]).await;
    let err = e.inject("isolate-primary", "closed").await.unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue");
    assert!(err.message.contains("no ingress rules"), "{}", err.message);
}

#[tokio::test]
async fn reboot_failover_and_stop_instance() {
    let e = env();
    e.create_db("primary", true, &[]).await;
    e.create_db("single", false, &[]).await;

    // reboot-failover: accepted on Multi-AZ, nothing to undo.
    let f = e.inject("reboot-failover", "primary").await.unwrap();
    assert_eq!(f["state"], "active");
    let d: Value = serde_json::from_str(f["details"].as_str().unwrap()).unwrap();
    assert_eq!(d["force_failover"], true);
    let u = e.undo(&f).await;
    assert_eq!(u["state"], "undone");
    let ud: Value = serde_json::from_str(u["details"].as_str().unwrap()).unwrap();
    assert!(
        ud["undone"]
            .as_str()
            .unwrap()
            .starts_with("nothing to undo"),
        "{ud}"
    );
    assert_eq!(e.status("primary").await, "available");
    // moto ignores ForceFailover (README, moto gaps): the writer stays in its AZ.
    let az = e
        .rds()
        .await
        .describe_db_instances()
        .db_instance_identifier("primary")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json!(az.db_instances()[0].availability_zone()),
        d["availability_zone_before"]
    );
    // Refused for a single-AZ instance, saying why.
    let err = e.inject("reboot-failover", "single").await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::InvalidState, "InvalidDBInstanceState")
    );
    assert!(err.message.contains("not Multi-AZ"), "{}", err.message);

    // stop-instance: stopped through RDS, started again by undo; undo is idempotent.
    let f = e.inject("stop-instance", "single").await.unwrap();
    assert_eq!(e.status("single").await, "stopped");
    let d: Value = serde_json::from_str(f["details"].as_str().unwrap()).unwrap();
    assert_eq!(d["action"], "StopDBInstance");
    // Stopping it again meets RDS's own refusal, passed on as is.
    let err = e.inject("stop-instance", "single").await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::InvalidState, "InvalidDBInstanceState")
    );
    let u = e.undo(&f).await;
    assert_eq!(e.status("single").await, "available");
    let ud: Value = serde_json::from_str(u["details"].as_str().unwrap()).unwrap();
    assert_eq!(ud["undone"]["action"], "StartDBInstance");
    let again = e.undo(&f).await;
    let ad: Value = serde_json::from_str(again["details"].as_str().unwrap()).unwrap();
    assert_eq!(
        ad["undone"],
        json!({"action": "none", "status": "available"})
    );
    assert_eq!(e.status("single").await, "available");

    // RDS refuses to stop a read replica: its error, as is.
    e.rds()
        .await
        .create_db_instance_read_replica()
        .db_instance_identifier("replica")
        .source_db_instance_identifier("primary")
        .send()
        .await
        .unwrap();
    let err = e.inject("stop-instance", "replica").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState, "{err:?}");
    assert_eq!(e.status("replica").await, "available");

    let err = e.inject("stop-instance", "nope").await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::NotFound, "DBInstanceNotFound")
    );
    let err = e.inject("writer-crash", "primary").await.unwrap_err();
    assert_eq!(err.code, "UnsupportedOperation");
    assert!(err.message.contains("writer-crash"), "{}", err.message);
}

#[tokio::test]
async fn secret_replicas_are_readable_in_their_region_until_removed() {
    let e = env();
    let sm = |r: &'static str| {
        let e = &e;
        async move { aws_sdk_secretsmanager::Client::new(&e.sdk(r).await) }
    };
    sm(E)
        .await
        .create_secret()
        .name("db-credentials")
        .secret_string(r#"{"username":"dbadmin","password":"pw-in-east"}"#)
        .send()
        .await
        .unwrap();
    let plain = e
        .ok(
            "secretsmanager",
            "DescribeSecret",
            Some(E),
            json!({"secret_id": "db-credentials"}),
        )
        .await;
    assert_eq!(plain["primary_region"], Value::Null);
    assert_eq!(plain["replication_status"], json!([]));

    let s = e
        .ok(
            "secretsmanager",
            "ReplicateSecretToRegions",
            Some(E),
            json!({"secret_id": "db-credentials", "add_replica_regions": [W]}),
        )
        .await;
    assert_eq!(s["primary_region"], E);
    let status = s["replication_status"].as_array().unwrap();
    assert_eq!(status.len(), 1, "{s}");
    assert_eq!(
        (&status[0]["region"], &status[0]["status"]),
        (&json!(W), &json!("InSync"))
    );
    // moto leaves PrimaryRegion out on the primary (README, moto gaps); the provider
    // reports it as AWS does.
    let raw = sm(E)
        .await
        .describe_secret()
        .secret_id("db-credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.primary_region(), None);
    assert_eq!(raw.replication_status().len(), 1);
    // Asking again (a re-run) changes nothing.
    let again = e
        .ok(
            "secretsmanager",
            "ReplicateSecretToRegions",
            Some(E),
            json!({"secret_id": "db-credentials", "add_replica_regions": [W]}),
        )
        .await;
    assert_eq!(again["replication_status"], s["replication_status"]);

    // The replica: readable in eu-west-1 through the SDK, and names its primary.
    let v = sm(W)
        .await
        .get_secret_value()
        .secret_id("db-credentials")
        .send()
        .await
        .unwrap();
    assert!(v.secret_string().unwrap().contains("pw-in-east"));
    let replica = e
        .ok(
            "secretsmanager",
            "DescribeSecret",
            Some(W),
            json!({"secret_id": "db-credentials"}),
        )
        .await;
    assert_eq!(replica["primary_region"], E);
    assert!(replica["arn"].as_str().unwrap().contains(":eu-west-1:"));
    // What a client in the surviving region does: credentials from the replica.
    let ci =
        e.p.connect_info(&Target {
            endpoint: "postgres.db-dev.internal".into(),
            region: Some(W.into()),
            database: "app".into(),
            secret_id: "db-credentials".into(),
            secret_region: W.into(),
            connect_timeout_ms: 1000,
        })
        .await
        .unwrap();
    assert_eq!(
        (
            ci.host.as_str(),
            ci.port,
            ci.user.as_str(),
            ci.password.as_str(),
            ci.database.as_str()
        ),
        (
            "postgres.db-dev.internal",
            5432,
            "dbadmin",
            "pw-in-east",
            "app"
        )
    );

    let s = e
        .ok(
            "secretsmanager",
            "RemoveRegionsFromReplication",
            Some(E),
            json!({"secret_id": "db-credentials", "remove_replica_regions": [W]}),
        )
        .await;
    assert_eq!(s["replication_status"], json!([]));
    assert_eq!(s["primary_region"], Value::Null);
    let gone = sm(W)
        .await
        .get_secret_value()
        .secret_id("db-credentials")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&gone),
        Some("ResourceNotFoundException")
    );
    // Removing again (a teardown re-run) is a no-op.
    e.ok(
        "secretsmanager",
        "RemoveRegionsFromReplication",
        Some(E),
        json!({"secret_id": "db-credentials", "remove_replica_regions": [W]}),
    )
    .await;
}

#[tokio::test]
async fn connect_info_resolves_instances_names_and_addresses() {
    let e = env();
    aws_sdk_secretsmanager::Client::new(&e.sdk(E).await)
        .create_secret()
        .name("db-credentials")
        .secret_string(r#"{"username":"dbadmin","password":"pw-1"}"#)
        .send()
        .await
        .unwrap();
    e.create_db("primary", true, &[]).await;
    let d = e
        .rds()
        .await
        .describe_db_instances()
        .db_instance_identifier("primary")
        .send()
        .await
        .unwrap();
    let ep = d.db_instances()[0].endpoint().unwrap();
    let (addr, port) = (ep.address().unwrap().to_string(), ep.port().unwrap());
    assert!(addr.contains("primary"), "{addr}");

    let target = |endpoint: &str, secret: &str| Target {
        endpoint: endpoint.into(),
        region: Some(E.into()),
        database: String::new(),
        secret_id: secret.into(),
        secret_region: E.into(),
        connect_timeout_ms: 1000,
    };
    let ci =
        e.p.connect_info(&target("primary", "db-credentials"))
            .await
            .unwrap();
    assert_eq!(
        (ci.host.as_str(), i32::from(ci.port)),
        (addr.as_str(), port)
    );
    assert_eq!(
        (ci.user.as_str(), ci.password.as_str(), ci.database.as_str()),
        ("dbadmin", "pw-1", "postgres")
    );
    // The password never shows in Debug output (logs).
    assert!(!format!("{ci:?}").contains("pw-1"));
    let ci =
        e.p.connect_info(&target("10.0.1.5:6432", "db-credentials"))
            .await
            .unwrap();
    assert_eq!((ci.host.as_str(), ci.port), ("10.0.1.5", 6432));

    let err =
        e.p.connect_info(&target("nope", "db-credentials"))
            .await
            .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::NotFound, "DBInstanceNotFound")
    );
    let err =
        e.p.connect_info(&target("primary", "missing"))
            .await
            .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::NotFound, "ResourceNotFoundException")
    );
}
