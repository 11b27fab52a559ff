//! Provider-level integration tests: `Provider::call` against a moto server (one per
//! test), results checked through the AWS SDK directly.
//!
//! moto makes every resource `available` at once and never evaluates alarms; where it
//! lacks a call or a behaviour the test says so (comment + an assertion on what moto
//! does), and the README lists the gap.

use runbook_caps::{CapCall, ErrorKind, Provider};
use runbook_provider_aws::{AwsOptions, AwsProvider};
use runbook_test_support::moto::Moto;
use serde_json::{Value, json};

mod common;
use common::{E, Env, W, env, env_on};

fn tags(name: &str) -> Value {
    json!([{"key": "Name", "value": name}, {"key": "project", "value": "runbook"}])
}

/// A VPC with two subnets in two AZs, for subnet groups.
async fn network(e: &Env, region: &str, cidr16: &str) -> (String, Vec<String>) {
    let vpc = e
        .ok(
            "ec2",
            "CreateVpc",
            Some(region),
            json!({"cidr_block": format!("{cidr16}.0.0/16"), "tags": tags("vpc")}),
        )
        .await;
    let vpc_id = vpc["vpc_id"].as_str().unwrap().to_string();
    let azs = e
        .ok("ec2", "DescribeAvailabilityZones", Some(region), json!({}))
        .await;
    let mut subnets = vec![];
    for (i, az) in azs.as_array().unwrap().iter().take(2).enumerate() {
        let s = e
            .ok(
                "ec2",
                "CreateSubnet",
                Some(region),
                json!({"vpc_id": vpc_id, "cidr_block": format!("{cidr16}.{i}.0/24"), "availability_zone": az, "tags": tags("db")}),
            )
            .await;
        subnets.push(s["subnet_id"].as_str().unwrap().to_string());
    }
    (vpc_id, subnets)
}

#[tokio::test]
async fn secretsmanager_generates_passwords_host_side() {
    let e = env();
    let s = e
        .ok(
            "secretsmanager",
            "CreateSecret",
            Some(E),
            json!({"request": {"name": "postgres-credentials-dev", "description": "db", "username": "dbadmin",
                   "generate_password": {"length": 32, "exclude_punctuation": true}, "tags": tags("s")}}),
        )
        .await;
    assert_eq!(s["name"], "postgres-credentials-dev");
    assert!(
        s["arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:secretsmanager:us-east-1:")
    );
    assert!(s["created_date"].is_string());
    // The value is only visible through the SDK, never in the capability result.
    assert!(!s.to_string().contains("password\""));
    let sm = aws_sdk_secretsmanager::Client::new(&e.sdk(E).await);
    let v = sm
        .get_secret_value()
        .secret_id("postgres-credentials-dev")
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(v.secret_string().unwrap()).unwrap();
    assert_eq!(v["username"], "dbadmin");
    let pw = v["password"].as_str().unwrap();
    assert_eq!(pw.len(), 32);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()), "{pw}");

    let again = e
        .err("secretsmanager", "CreateSecret", Some(E), json!({"request": {"name": "postgres-credentials-dev", "description": null, "username": null, "generate_password": null, "tags": []}}))
        .await;
    assert_eq!(
        (again.kind, again.code.as_str()),
        (ErrorKind::AlreadyExists, "ResourceExistsException")
    );
    assert!(again.message.contains("request id"), "{}", again.message);

    let d = e
        .ok(
            "secretsmanager",
            "DescribeSecret",
            Some(E),
            json!({"secret_id": "postgres-credentials-dev"}),
        )
        .await;
    assert_eq!(d["arn"], s["arn"]);
    let l = e
        .ok(
            "secretsmanager",
            "ListSecrets",
            Some(E),
            json!({"name_prefix": "postgres-"}),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    let l = e
        .ok(
            "secretsmanager",
            "ListSecrets",
            Some(E),
            json!({"name_prefix": "nope"}),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 0);

    // Scheduled deletion: still describable, with a deleted date; gone from lists.
    e.ok(
        "secretsmanager",
        "DeleteSecret",
        Some(E),
        json!({"secret_id": "postgres-credentials-dev", "force_delete_without_recovery": false}),
    )
    .await;
    let d = e
        .ok(
            "secretsmanager",
            "DescribeSecret",
            Some(E),
            json!({"secret_id": "postgres-credentials-dev"}),
        )
        .await;
    assert!(d["deleted_date"].is_string(), "{d}");
    let l = e
        .ok(
            "secretsmanager",
            "ListSecrets",
            Some(E),
            json!({"name_prefix": null}),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 0);

    let missing = e
        .err(
            "secretsmanager",
            "DescribeSecret",
            Some(E),
            json!({"secret_id": "nope"}),
        )
        .await;
    assert_eq!(
        (missing.kind, missing.code.as_str()),
        (ErrorKind::NotFound, "ResourceNotFoundException")
    );
}

#[tokio::test]
async fn rds_primary_replica_and_groups() {
    let e = env();
    e.ok(
        "secretsmanager",
        "CreateSecret",
        Some(E),
        json!({"request": {"name": "db-secret", "description": null, "username": "dbadmin",
               "generate_password": {"length": 24, "exclude_punctuation": true}, "tags": []}}),
    )
    .await;
    let (_, subnets_e) = network(&e, E, "10.0").await;
    let (_, subnets_w) = network(&e, W, "10.1").await;
    for (region, subnets) in [(E, &subnets_e), (W, &subnets_w)] {
        let g = e
            .ok("rds", "CreateDBSubnetGroup", Some(region), json!({"name": "db-subnets-dev", "description": "db", "subnet_ids": subnets, "tags": tags("g")}))
            .await;
        assert_eq!(g["name"], "db-subnets-dev");
        assert_eq!(g["subnet_ids"].as_array().unwrap().len(), 2);
        let pg = e
            .ok("rds", "CreateDBParameterGroup", Some(region), json!({"name": "postgres15-dev", "family": "postgres15", "description": "dr", "tags": []}))
            .await;
        assert_eq!(pg["family"], "postgres15");
        e.ok(
            "rds",
            "ModifyDBParameterGroup",
            Some(region),
            json!({"name": "postgres15-dev", "parameters": [
                {"name": "log_min_duration_statement", "value": "500", "apply_method": "immediate"},
                {"name": "wal_keep_size", "value": "2048", "apply_method": "immediate"}]}),
        )
        .await;
    }
    let params = e
        .ok(
            "rds",
            "DescribeDBParameters",
            Some(E),
            json!({"name": "postgres15-dev"}),
        )
        .await;
    let names: Vec<&str> = params
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"log_min_duration_statement") && names.contains(&"wal_keep_size"),
        "{params}"
    );
    let groups = e
        .ok(
            "rds",
            "DescribeDBSubnetGroups",
            Some(W),
            json!({"name": "db-subnets-dev"}),
        )
        .await;
    assert_eq!(groups.as_array().unwrap().len(), 1);

    let create = json!({"request": {
        "identifier": "primary-postgres-dev", "engine": "postgres", "engine_version": "15.7",
        "instance_class": "db.t3.medium", "allocated_storage": 100, "storage_type": "gp3",
        "storage_encrypted": true, "multi_az": true, "backup_retention_period": 7,
        "master_username": "dbadmin", "master_user_secret": "db-secret", "db_name": "app",
        "port": 5432, "db_subnet_group": "db-subnets-dev", "parameter_group": "postgres15-dev",
        "vpc_security_groups": [], "deletion_protection": false, "tags": tags("primary")}});
    let db = e
        .ok("rds", "CreateDBInstance", Some(E), create.clone())
        .await;
    assert_eq!(db["identifier"], "primary-postgres-dev");
    assert_eq!(db["region"], E);

    // Through the SDK: what the runbooks promise about the primary.
    let rds_e = aws_sdk_rds::Client::new(&e.sdk(E).await);
    let d = rds_e
        .describe_db_instances()
        .db_instance_identifier("primary-postgres-dev")
        .send()
        .await
        .unwrap();
    let d = &d.db_instances()[0];
    assert_eq!(d.engine(), Some("postgres"));
    assert!(d.engine_version().unwrap().starts_with("15"));
    assert_eq!(d.db_instance_class(), Some("db.t3.medium"));
    assert_eq!(d.multi_az(), Some(true));
    assert_eq!(d.allocated_storage(), Some(100));
    assert_eq!(d.storage_type(), Some("gp3"));
    assert_eq!(d.storage_encrypted(), Some(true));
    assert_eq!(d.backup_retention_period(), Some(7));
    assert_eq!(
        d.db_parameter_groups()[0].db_parameter_group_name(),
        Some("postgres15-dev")
    );
    assert_eq!(
        d.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("db-subnets-dev")
    );
    assert_eq!(d.publicly_accessible(), Some(false));

    let again = e.err("rds", "CreateDBInstance", Some(E), create).await;
    assert_eq!(
        (again.kind, again.code.as_str()),
        (ErrorKind::AlreadyExists, "DBInstanceAlreadyExists")
    );
    let missing = e
        .err(
            "rds",
            "DescribeDBInstances",
            Some(E),
            json!({"identifier": "nope"}),
        )
        .await;
    assert_eq!(
        (missing.kind, missing.code.as_str(), missing.retryable),
        (ErrorKind::NotFound, "DBInstanceNotFound", false)
    );
    assert!(
        missing.message.contains("(request id: "),
        "{}",
        missing.message
    );
    let bad_secret = e
        .err("rds", "CreateDBInstance", Some(E), json!({"request": {
            "identifier": "other", "engine": "postgres", "engine_version": "15.7", "instance_class": "db.t3.medium",
            "allocated_storage": 20, "storage_type": "gp3", "storage_encrypted": false, "multi_az": false,
            "backup_retention_period": 1, "master_username": "u", "master_user_secret": "no-such-secret",
            "db_name": null, "port": null, "db_subnet_group": null, "parameter_group": null,
            "vpc_security_groups": [], "deletion_protection": false, "tags": []}}))
        .await;
    assert_eq!(bad_secret.kind, ErrorKind::NotFound);

    // Cross-region replica from the source ARN, with groups of the destination region.
    let arn = db["arn"].as_str().unwrap();
    let replica = e
        .ok("rds", "CreateDBInstanceReadReplica", Some(W), json!({"request": {
            "identifier": "replica-postgres-dev", "source": arn, "source_region": E,
            "instance_class": "db.t3.medium", "storage_type": "gp3", "storage_encrypted": true,
            "multi_az": false, "db_subnet_group": "db-subnets-dev", "parameter_group": "postgres15-dev",
            "vpc_security_groups": [], "tags": tags("replica")}}))
        .await;
    assert_eq!(replica["region"], W);
    let rds_w = aws_sdk_rds::Client::new(&e.sdk(W).await);
    let r = rds_w
        .describe_db_instances()
        .db_instance_identifier("replica-postgres-dev")
        .send()
        .await
        .unwrap();
    let r = &r.db_instances()[0];
    assert_eq!(r.read_replica_source_db_instance_identifier(), Some(arn));
    assert_eq!(
        r.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("db-subnets-dev")
    );
    assert_eq!(
        r.db_parameter_groups()[0].db_parameter_group_name(),
        Some("postgres15-dev")
    );
    // A source that is not an ARN of the source region is refused before calling AWS.
    let bad = e
        .err("rds", "CreateDBInstanceReadReplica", Some(W), json!({"request": {
            "identifier": "replica-2", "source": "primary-postgres-dev", "source_region": E,
            "instance_class": "db.t3.medium", "storage_type": null, "storage_encrypted": false,
            "multi_az": false, "db_subnet_group": null, "parameter_group": null, "vpc_security_groups": [], "tags": []}}))
        .await;
    assert_eq!(bad.kind, ErrorKind::InvalidParameter);

    let all = e
        .ok(
            "rds",
            "DescribeDBInstances",
            Some(W),
            json!({"identifier": null}),
        )
        .await;
    assert_eq!(all.as_array().unwrap().len(), 1);

    // Day-2 operations.
    let m = e
        .ok("rds", "ModifyDBInstance", Some(E), json!({"request": {"identifier": "primary-postgres-dev",
            "instance_class": null, "allocated_storage": null, "backup_retention_period": 14, "multi_az": null,
            "parameter_group": null, "vpc_security_groups": null, "deletion_protection": null, "apply_immediately": true}}))
        .await;
    assert_eq!(m["identifier"], "primary-postgres-dev");
    e.ok(
        "rds",
        "RebootDBInstance",
        Some(E),
        json!({"identifier": "primary-postgres-dev", "force_failover": false}),
    )
    .await;
    let snap = e
        .ok("rds", "CreateDBSnapshot", Some(E), json!({"snapshot_identifier": "pre-failover", "instance_identifier": "primary-postgres-dev", "tags": []}))
        .await;
    assert_eq!(snap["instance_identifier"], "primary-postgres-dev");
    let snaps = e
        .ok(
            "rds",
            "DescribeDBSnapshots",
            Some(E),
            json!({"snapshot_identifier": null, "instance_identifier": "primary-postgres-dev"}),
        )
        .await;
    assert!(
        snaps
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["identifier"] == "pre-failover")
    );
    let restored = e
        .ok("rds", "RestoreDBInstanceFromDBSnapshot", Some(E), json!({"request": {"identifier": "restored", "snapshot_identifier": "pre-failover",
            "instance_class": "db.t3.medium", "multi_az": false, "db_subnet_group": "db-subnets-dev", "parameter_group": null,
            "vpc_security_groups": [], "tags": []}}))
        .await;
    assert_eq!(restored["identifier"], "restored");
    e.ok(
        "rds",
        "StopDBInstance",
        Some(E),
        json!({"identifier": "restored"}),
    )
    .await;
    e.ok(
        "rds",
        "StartDBInstance",
        Some(E),
        json!({"identifier": "restored"}),
    )
    .await;

    let promoted = e
        .ok(
            "rds",
            "PromoteReadReplica",
            Some(W),
            json!({"identifier": "replica-postgres-dev", "backup_retention_period": 7}),
        )
        .await;
    assert_eq!(promoted["identifier"], "replica-postgres-dev");
    let r = rds_w
        .describe_db_instances()
        .db_instance_identifier("replica-postgres-dev")
        .send()
        .await
        .unwrap();
    // Standalone, as on RDS: through moto_fixes.py (moto itself keeps the source, see
    // `promote_keeps_the_replica_source_on_unpatched_moto`).
    assert_eq!(
        r.db_instances()[0].read_replica_source_db_instance_identifier(),
        None
    );
    let p = rds_e
        .describe_db_instances()
        .db_instance_identifier("primary-postgres-dev")
        .send()
        .await
        .unwrap();
    assert!(
        p.db_instances()[0]
            .read_replica_db_instance_identifiers()
            .is_empty(),
        "{:?}",
        p.db_instances()[0].read_replica_db_instance_identifiers()
    );

    // Teardown.
    for (region, id) in [
        (W, "replica-postgres-dev"),
        (E, "restored"),
        (E, "primary-postgres-dev"),
    ] {
        e.ok("rds", "DeleteDBInstance", Some(region), json!({"request": {"identifier": id, "skip_final_snapshot": true, "final_snapshot_identifier": null}})).await;
    }
    e.ok(
        "rds",
        "DeleteDBSnapshot",
        Some(E),
        json!({"snapshot_identifier": "pre-failover"}),
    )
    .await;
    for region in [E, W] {
        e.ok(
            "rds",
            "DeleteDBSubnetGroup",
            Some(region),
            json!({"name": "db-subnets-dev"}),
        )
        .await;
        e.ok(
            "rds",
            "DeleteDBParameterGroup",
            Some(region),
            json!({"name": "postgres15-dev"}),
        )
        .await;
    }
    let gone = e
        .err(
            "rds",
            "DescribeDBParameterGroups",
            Some(E),
            json!({"name": "postgres15-dev"}),
        )
        .await;
    assert_eq!(
        (gone.kind, gone.code.as_str()),
        (ErrorKind::NotFound, "DBParameterGroupNotFound")
    );
    let gone = e
        .err(
            "rds",
            "DescribeDBSubnetGroups",
            Some(E),
            json!({"name": "db-subnets-dev"}),
        )
        .await;
    assert_eq!(
        (gone.kind, gone.code.as_str()),
        (ErrorKind::NotFound, "DBSubnetGroupNotFoundFault")
    );
    assert!(
        rds_e
            .describe_db_instances()
            .send()
            .await
            .unwrap()
            .db_instances()
            .is_empty()
    );
}

/// moto gap (README), corrected by `moto_fixes.py` (runbook-test-support) for every other test: moto
/// 5.2.5's PromoteReadReplica leaves `ReadReplicaSourceDBInstanceIdentifier` on the
/// promoted instance and the instance in its source's replica list; real RDS clears
/// both. When moto fixes this, this test fails and the fix (and the gap) can go.
#[tokio::test]
async fn promote_keeps_the_replica_source_on_unpatched_moto() {
    let e = env_on(Moto::start_unpatched());
    let rds_e = aws_sdk_rds::Client::new(&e.sdk(E).await);
    let rds_w = aws_sdk_rds::Client::new(&e.sdk(W).await);
    let p = rds_e
        .create_db_instance()
        .db_instance_identifier("primary")
        .engine("postgres")
        .db_instance_class("db.t3.medium")
        .allocated_storage(20)
        .master_username("dbadmin")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .unwrap();
    let arn = p.db_instance().unwrap().db_instance_arn().unwrap();
    rds_w
        .create_db_instance_read_replica()
        .db_instance_identifier("replica")
        .source_db_instance_identifier(arn)
        .send()
        .await
        .unwrap();
    e.ok(
        "rds",
        "PromoteReadReplica",
        Some(W),
        json!({"identifier": "replica", "backup_retention_period": 7}),
    )
    .await;

    let r = rds_w
        .describe_db_instances()
        .db_instance_identifier("replica")
        .send()
        .await
        .unwrap();
    let p = rds_e
        .describe_db_instances()
        .db_instance_identifier("primary")
        .send()
        .await
        .unwrap();
    let fixed = "moto now clears the source on promotion: drop the fix in \
                 moto_fixes.py (runbook-test-support) and this gap from the README";
    assert_eq!(
        r.db_instances()[0].read_replica_source_db_instance_identifier(),
        Some(arn),
        "{fixed}"
    );
    assert_eq!(
        p.db_instances()[0].read_replica_db_instance_identifiers(),
        [r.db_instances()[0].db_instance_arn().unwrap().to_string()],
        "{fixed}"
    );
}

#[tokio::test]
async fn ec2_vpcs_peering_routes_endpoints() {
    let e = env();
    let v1 = e
        .ok(
            "ec2",
            "CreateVpc",
            Some(E),
            json!({"cidr_block": "10.0.0.0/16", "tags": tags("primary-vpc")}),
        )
        .await;
    let v2 = e
        .ok(
            "ec2",
            "CreateVpc",
            Some(W),
            json!({"cidr_block": "10.1.0.0/16", "tags": tags("replica-vpc")}),
        )
        .await;
    let (id1, id2) = (
        v1["vpc_id"].as_str().unwrap(),
        v2["vpc_id"].as_str().unwrap(),
    );
    assert_eq!(
        (v1["region"].as_str(), v1["enable_dns_support"].as_bool()),
        (Some(E), Some(true))
    );
    e.ok(
        "ec2",
        "ModifyVpcAttribute",
        Some(E),
        json!({"vpc_id": id1, "enable_dns_support": true, "enable_dns_hostnames": true}),
    )
    .await;
    let d = e
        .ok(
            "ec2",
            "DescribeVpcs",
            Some(E),
            json!({"vpc_ids": [], "filters": [{"name": "tag:Name", "values": ["primary-vpc"]}]}),
        )
        .await;
    assert_eq!(d.as_array().unwrap().len(), 1);
    assert_eq!(d[0]["enable_dns_hostnames"], true);
    assert_eq!(d[0]["cidr_block"], "10.0.0.0/16");
    let missing = e
        .err(
            "ec2",
            "DescribeVpcs",
            Some(E),
            json!({"vpc_ids": ["vpc-00000000"], "filters": []}),
        )
        .await;
    assert_eq!(
        (missing.kind, missing.code.as_str()),
        (ErrorKind::NotFound, "InvalidVpcID.NotFound")
    );

    let sub = e
        .ok("ec2", "CreateSubnet", Some(E), json!({"vpc_id": id1, "cidr_block": "10.0.1.0/24", "availability_zone": "us-east-1a", "tags": tags("db-a")}))
        .await;
    let sub_id = sub["subnet_id"].as_str().unwrap();
    assert_eq!(sub["availability_zone"], "us-east-1a");
    let subs = e
        .ok(
            "ec2",
            "DescribeSubnets",
            Some(E),
            json!({"subnet_ids": [], "filters": [{"name": "vpc-id", "values": [id1]}]}),
        )
        .await;
    assert_eq!(subs.as_array().unwrap().len(), 1);

    let sg = e
        .ok("ec2", "CreateSecurityGroup", Some(E), json!({"group_name": "db-sg", "description": "postgres", "vpc_id": id1, "tags": tags("db-sg")}))
        .await;
    let sg_id = sg["group_id"].as_str().unwrap();
    let perm = json!([{"ip_protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_blocks": ["10.1.0.0/16"], "source_security_groups": []}]);
    e.ok(
        "ec2",
        "AuthorizeSecurityGroupIngress",
        Some(E),
        json!({"group_id": sg_id, "permissions": perm}),
    )
    .await;
    let dup = e
        .err(
            "ec2",
            "AuthorizeSecurityGroupIngress",
            Some(E),
            json!({"group_id": sg_id, "permissions": perm}),
        )
        .await;
    assert_eq!(
        (dup.kind, dup.code.as_str()),
        (ErrorKind::AlreadyExists, "InvalidPermission.Duplicate")
    );
    let g = e
        .ok(
            "ec2",
            "DescribeSecurityGroups",
            Some(E),
            json!({"group_ids": [sg_id], "filters": []}),
        )
        .await;
    assert_eq!(g[0]["ingress"][0]["from_port"], 5432);
    assert_eq!(g[0]["ingress"][0]["cidr_blocks"], json!(["10.1.0.0/16"]));
    e.ok(
        "ec2",
        "RevokeSecurityGroupIngress",
        Some(E),
        json!({"group_id": sg_id, "permissions": perm}),
    )
    .await;
    let g = e
        .ok(
            "ec2",
            "DescribeSecurityGroups",
            Some(E),
            json!({"group_ids": [sg_id], "filters": []}),
        )
        .await;
    assert!(g[0]["ingress"].as_array().unwrap().is_empty());

    // Cross-region peering: requested in us-east-1, accepted in eu-west-1.
    let pcx = e
        .ok("ec2", "CreateVpcPeeringConnection", Some(E), json!({"vpc_id": id1, "peer_vpc_id": id2, "peer_region": W, "tags": tags("dr-peering")}))
        .await;
    let pcx_id = pcx["id"].as_str().unwrap();
    assert_eq!(
        (
            pcx["requester_region"].as_str(),
            pcx["accepter_region"].as_str()
        ),
        (Some(E), Some(W))
    );
    let acc = e
        .ok(
            "ec2",
            "AcceptVpcPeeringConnection",
            Some(W),
            json!({"peering_id": pcx_id}),
        )
        .await;
    assert_eq!(acc["status"], "active");
    let ec2_e = aws_sdk_ec2::Client::new(&e.sdk(E).await);
    let p = ec2_e
        .describe_vpc_peering_connections()
        .vpc_peering_connection_ids(pcx_id)
        .send()
        .await
        .unwrap();
    let p = &p.vpc_peering_connections()[0];
    assert_eq!(
        p.status().and_then(|s| s.code()).map(|c| c.as_str()),
        Some("active")
    );
    assert_eq!(p.accepter_vpc_info().and_then(|a| a.vpc_id()), Some(id2));
    let d = e
        .ok(
            "ec2",
            "DescribeVpcPeeringConnections",
            Some(E),
            json!({"peering_ids": [], "filters": [{"name": "tag:Name", "values": ["dr-peering"]}]}),
        )
        .await;
    assert_eq!(d.as_array().unwrap().len(), 1);

    // moto gap (README): EC2 fails a peering between overlapping CIDRs (status
    // `failed`, "overlapping CIDR"); moto accepts it (`initiating-request`).
    let v3 = e
        .ok(
            "ec2",
            "CreateVpc",
            Some(E),
            json!({"cidr_block": "10.0.0.0/16", "tags": []}),
        )
        .await;
    let overlap = e
        .ok(
            "ec2",
            "CreateVpcPeeringConnection",
            Some(E),
            json!({"vpc_id": id1, "peer_vpc_id": v3["vpc_id"], "peer_region": null, "tags": []}),
        )
        .await;
    assert_ne!(
        overlap["status"], "failed",
        "moto now fails overlapping peerings: update the README"
    );

    // Routes over the peering, and an S3 gateway endpoint.
    let rt = e
        .ok(
            "ec2",
            "CreateRouteTable",
            Some(E),
            json!({"vpc_id": id1, "tags": tags("db-rt")}),
        )
        .await;
    let rt_id = rt["route_table_id"].as_str().unwrap();
    assert_eq!(rt["routes"][0]["target"], "local");
    let assoc = e
        .ok(
            "ec2",
            "AssociateRouteTable",
            Some(E),
            json!({"route_table_id": rt_id, "subnet_id": sub_id}),
        )
        .await;
    assert!(assoc.as_str().unwrap().starts_with("rtbassoc-"));
    e.ok(
        "ec2",
        "CreateRoute",
        Some(E),
        json!({"route_table_id": rt_id, "destination_cidr": "10.1.0.0/16", "target": pcx_id}),
    )
    .await;
    let ep = e
        .ok("ec2", "CreateVpcEndpoint", Some(E), json!({"vpc_id": id1, "service_name": "com.amazonaws.us-east-1.s3", "endpoint_type": "Gateway", "route_table_ids": [rt_id], "tags": tags("s3")}))
        .await;
    let ep_id = ep["vpc_endpoint_id"].as_str().unwrap();
    assert_eq!(
        (ep["endpoint_type"].as_str(), ep["state"].as_str()),
        (Some("Gateway"), Some("available"))
    );
    let t = e
        .ok(
            "ec2",
            "DescribeRouteTables",
            Some(E),
            json!({"route_table_ids": [rt_id], "filters": []}),
        )
        .await;
    let routes = t[0]["routes"].as_array().unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r["destination_cidr"] == "10.1.0.0/16" && r["target"] == pcx_id),
        "{t}"
    );
    assert_eq!(t[0]["subnet_associations"], json!([sub_id]));
    let eps = e
        .ok(
            "ec2",
            "DescribeVpcEndpoints",
            Some(E),
            json!({"vpc_endpoint_ids": [], "filters": [{"name": "vpc-id", "values": [id1]}]}),
        )
        .await;
    assert_eq!(eps.as_array().unwrap().len(), 1);
    assert_eq!(eps[0]["route_table_ids"], json!([rt_id]));
    let ec2_sdk_ep = ec2_e
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(ep_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ec2_sdk_ep.vpc_endpoints()[0].service_name(),
        Some("com.amazonaws.us-east-1.s3")
    );

    e.ok(
        "ec2",
        "CreateTags",
        Some(E),
        json!({"resource_ids": [id1, sg_id], "tags": [{"key": "env", "value": "dev"}]}),
    )
    .await;
    let d = e
        .ok(
            "ec2",
            "DescribeVpcs",
            Some(E),
            json!({"vpc_ids": [id1], "filters": []}),
        )
        .await;
    assert!(
        d[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "env")
    );

    // Teardown in dependency order.
    e.ok(
        "ec2",
        "DeleteVpcEndpoints",
        Some(E),
        json!({"vpc_endpoint_ids": [ep_id]}),
    )
    .await;
    e.ok(
        "ec2",
        "DeleteRoute",
        Some(E),
        json!({"route_table_id": rt_id, "destination_cidr": "10.1.0.0/16"}),
    )
    .await;
    let busy = e
        .err("ec2", "DeleteVpc", Some(E), json!({"vpc_id": id1}))
        .await;
    assert_eq!(
        (busy.kind, busy.code.as_str()),
        (ErrorKind::DependencyViolation, "DependencyViolation")
    );
    e.ok(
        "ec2",
        "DeleteVpcPeeringConnection",
        Some(E),
        json!({"peering_id": pcx_id}),
    )
    .await;
    e.ok(
        "ec2",
        "DeleteSecurityGroup",
        Some(E),
        json!({"group_id": sg_id}),
    )
    .await;
    e.ok("ec2", "DeleteSubnet", Some(E), json!({"subnet_id": sub_id}))
        .await;
    e.ok(
        "ec2",
        "DeleteRouteTable",
        Some(E),
        json!({"route_table_id": rt_id}),
    )
    .await;
    e.ok("ec2", "DeleteVpc", Some(E), json!({"vpc_id": id1}))
        .await;
    e.ok("ec2", "DeleteVpc", Some(W), json!({"vpc_id": id2}))
        .await;
    let gone = e
        .err(
            "ec2",
            "DescribeVpcs",
            Some(E),
            json!({"vpc_ids": [id1], "filters": []}),
        )
        .await;
    assert_eq!(gone.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn route53_private_zone_weights_and_metric_health_checks() {
    let e = env();
    let v1 = e
        .ok(
            "ec2",
            "CreateVpc",
            Some(E),
            json!({"cidr_block": "10.0.0.0/16", "tags": []}),
        )
        .await;
    let v2 = e
        .ok(
            "ec2",
            "CreateVpc",
            Some(W),
            json!({"cidr_block": "10.1.0.0/16", "tags": []}),
        )
        .await;
    let zone = e
        .ok(
            "route53",
            "CreateHostedZone",
            None,
            json!({"name": "db-dev.internal", "caller_reference": "runbook-db-dev",
            "vpc": {"vpc_id": v1["vpc_id"], "vpc_region": E}, "comment": "DR endpoint"}),
        )
        .await;
    let zid = zone["id"].as_str().unwrap().to_string();
    assert!(!zid.starts_with("/hostedzone/"));
    assert_eq!(
        (zone["name"].as_str(), zone["private_zone"].as_bool()),
        (Some("db-dev.internal."), Some(true))
    );
    assert_eq!(
        zone["vpcs"],
        json!([{"vpc_id": v1["vpc_id"], "vpc_region": E}])
    );
    e.ok("route53", "AssociateVPCWithHostedZone", None, json!({"id": format!("/hostedzone/{zid}"), "vpc": {"vpc_id": v2["vpc_id"], "vpc_region": W}})).await;
    let z = e
        .ok("route53", "GetHostedZone", None, json!({"id": zid}))
        .await;
    assert_eq!(z["vpcs"].as_array().unwrap().len(), 2);
    let r53 = aws_sdk_route53::Client::new(&e.sdk(E).await);
    let sdk_zone = r53.get_hosted_zone().id(&zid).send().await.unwrap();
    assert_eq!(sdk_zone.vpcs().len(), 2);
    let l = e
        .ok(
            "route53",
            "ListHostedZonesByName",
            None,
            json!({"dns_name": "db-dev.internal"}),
        )
        .await;
    assert_eq!(l[0]["id"], zid.as_str());
    assert_eq!(l[0]["vpcs"].as_array().unwrap().len(), 2);
    let missing = e
        .err(
            "route53",
            "GetHostedZone",
            None,
            json!({"id": "ZNOSUCHZONE"}),
        )
        .await;
    assert_eq!(
        (missing.kind, missing.code.as_str()),
        (ErrorKind::NotFound, "NoSuchHostedZone")
    );

    // Alarms that decide health, and CLOUDWATCH_METRIC checks tied to them.
    for (region, name) in [(E, "primary-health"), (W, "replica-health")] {
        e.ok("cloudwatch", "PutMetricAlarm", Some(region), json!({"spec": {
            "alarm_name": name, "alarm_description": null, "namespace": "AWS/RDS", "metric_name": "DatabaseConnections",
            "dimensions": [{"name": "DBInstanceIdentifier", "value": name}], "statistic": "Average", "period": 60,
            "evaluation_periods": 3, "datapoints_to_alarm": null, "threshold": 0.0, "comparison_operator": "LessThanOrEqualToThreshold",
            "treat_missing_data": "breaching", "alarm_actions": [], "ok_actions": [], "insufficient_data_actions": []}})).await;
    }
    let mut checks = vec![];
    for (region, name) in [(E, "primary-health"), (W, "replica-health")] {
        let hc = e
            .ok("route53", "CreateHealthCheck", None, json!({"caller_reference": format!("runbook-{name}"), "name": name, "config": {
                "check_type": "CLOUDWATCH_METRIC", "fqdn": null, "ip_address": null, "port": null, "resource_path": null,
                "request_interval": 30, "failure_threshold": 3, "alarm_name": name, "alarm_region": region,
                "insufficient_data_health_status": "LastKnownStatus", "db_instance_identifier": null, "db_instance_region": null}}))
            .await;
        assert_eq!(hc["config"]["check_type"], "CLOUDWATCH_METRIC");
        // moto gap (README): moto drops AlarmIdentifier and InsufficientDataHealthStatus
        // of a health check (what we send is unit-tested in route53.rs); real Route 53
        // returns them.
        assert_eq!(
            hc["config"]["alarm_name"],
            Value::Null,
            "moto now keeps AlarmIdentifier ({region}): update the README"
        );
        assert_eq!(hc["name"], name);
        checks.push(hc["id"].as_str().unwrap().to_string());
    }
    let sdk_hc = r53
        .get_health_check()
        .health_check_id(&checks[0])
        .send()
        .await
        .unwrap();
    let cfg = sdk_hc
        .health_check()
        .unwrap()
        .health_check_config()
        .unwrap();
    assert_eq!(cfg.r#type().as_str(), "CLOUDWATCH_METRIC");
    // The moto gap above, seen through the SDK.
    assert!(cfg.alarm_identifier().is_none() && cfg.insufficient_data_health_status().is_none());
    let got = e
        .ok("route53", "GetHealthCheck", None, json!({"id": checks[1]}))
        .await;
    assert_eq!(got["name"], "replica-health");
    let all = e.ok("route53", "ListHealthChecks", None, json!({})).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let pg = e
        .err("route53", "CreateHealthCheck", None, json!({"caller_reference": "pg", "name": null, "config": {
            "check_type": "POSTGRES", "fqdn": null, "ip_address": null, "port": null, "resource_path": null,
            "request_interval": 10, "failure_threshold": 3, "alarm_name": null, "alarm_region": null,
            "insufficient_data_health_status": null, "db_instance_identifier": "primary-postgres-dev", "db_instance_region": E}}))
        .await;
    assert_eq!(pg.kind, ErrorKind::InvalidParameter);
    // moto answers every status with one canned "Success" observation (it never
    // evaluates the alarm).
    let st = e
        .ok(
            "route53",
            "GetHealthCheckStatus",
            None,
            json!({"id": checks[0]}),
        )
        .await;
    assert_eq!(
        (st["id"].as_str(), st["healthy"].as_bool()),
        (Some(checks[0].as_str()), Some(true))
    );
    assert!(
        st["observations"][0]
            .as_str()
            .unwrap()
            .starts_with("Success")
    );

    // Weighted records 100/0, then the failover flip 0/100.
    let rs = |action: &str, id: &str, value: &str, weight: u32, hc: &str| {
        json!({"action": action, "record_set": {"name": "postgres.db-dev.internal", "record_type": "CNAME", "ttl": 60,
            "values": [value], "set_identifier": id, "weight": weight, "failover": null, "health_check_id": hc}})
    };
    e.ok(
        "route53",
        "ChangeResourceRecordSets",
        None,
        json!({"zone_id": zid, "changes": [
        rs("Create", "primary", "primary.abc.us-east-1.rds.amazonaws.com", 100, &checks[0]),
        rs("Create", "replica", "replica.abc.eu-west-1.rds.amazonaws.com", 0, &checks[1])]}),
    )
    .await;
    let dup = e
        .err(
            "route53",
            "ChangeResourceRecordSets",
            None,
            json!({"zone_id": zid, "changes": [
        rs("Create", "primary", "primary.abc.us-east-1.rds.amazonaws.com", 100, &checks[0])]}),
        )
        .await;
    assert_eq!(
        (dup.kind, dup.code.as_str()),
        (ErrorKind::InvalidParameter, "InvalidChangeBatch")
    );
    let all = e
        .ok(
            "route53",
            "ListResourceRecordSets",
            None,
            json!({"zone_id": zid, "name": null}),
        )
        .await;
    let types: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"NS") && types.contains(&"SOA"), "{all}");
    e.ok(
        "route53",
        "ChangeResourceRecordSets",
        None,
        json!({"zone_id": zid, "changes": [
        rs("Upsert", "primary", "primary.abc.us-east-1.rds.amazonaws.com", 0, &checks[0]),
        rs("Upsert", "replica", "replica.abc.eu-west-1.rds.amazonaws.com", 100, &checks[1])]}),
    )
    .await;
    let named = e
        .ok(
            "route53",
            "ListResourceRecordSets",
            None,
            json!({"zone_id": zid, "name": "postgres.db-dev.internal"}),
        )
        .await;
    let weights: Vec<(String, u64)> = named
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["set_identifier"].as_str().unwrap().to_string(),
                r["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(weights.len(), 2, "{named}");
    assert!(
        weights.contains(&("primary".into(), 0)) && weights.contains(&("replica".into(), 100)),
        "{weights:?}"
    );
    let sdk_rr = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zid)
        .send()
        .await
        .unwrap();
    let replica = sdk_rr
        .resource_record_sets()
        .iter()
        .find(|r| r.set_identifier() == Some("replica"))
        .unwrap();
    assert_eq!(
        (replica.weight(), replica.health_check_id()),
        (Some(100), Some(checks[1].as_str()))
    );

    let busy = e
        .err("route53", "DeleteHostedZone", None, json!({"id": zid}))
        .await;
    assert_eq!(
        (busy.kind, busy.code.as_str()),
        (ErrorKind::DependencyViolation, "HostedZoneNotEmpty")
    );
    e.ok(
        "route53",
        "ChangeResourceRecordSets",
        None,
        json!({"zone_id": zid, "changes": [
        rs("Delete", "primary", "primary.abc.us-east-1.rds.amazonaws.com", 0, &checks[0]),
        rs("Delete", "replica", "replica.abc.eu-west-1.rds.amazonaws.com", 100, &checks[1])]}),
    )
    .await;
    for id in &checks {
        e.ok("route53", "DeleteHealthCheck", None, json!({"id": id}))
            .await;
    }
    let info = e
        .ok("route53", "DeleteHostedZone", None, json!({"id": zid}))
        .await;
    assert!(
        info["status"] == "INSYNC" || info["status"] == "PENDING",
        "{info}"
    );
    assert!(
        r53.list_hosted_zones()
            .send()
            .await
            .unwrap()
            .hosted_zones()
            .is_empty()
    );
    assert!(
        r53.list_health_checks()
            .send()
            .await
            .unwrap()
            .health_checks()
            .is_empty()
    );
}

#[tokio::test]
async fn cloudwatch_metrics_alarms_dashboards() {
    let e = env();
    let now = time::OffsetDateTime::now_utc();
    let ts = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    e.ok("cloudwatch", "PutMetricData", Some(E), json!({"namespace": "Runbook/DR", "data": [
        {"metric_name": "ReplicaLag", "dimensions": [{"name": "DBInstanceIdentifier", "value": "replica-postgres-dev"}], "value": 2.0, "unit": "Seconds", "timestamp": null},
        {"metric_name": "ReplicaLag", "dimensions": [{"name": "DBInstanceIdentifier", "value": "replica-postgres-dev"}], "value": 4.0, "unit": "Seconds", "timestamp": ts(now)}]})).await;
    let pts = e
        .ok("cloudwatch", "GetMetricStatistics", Some(E), json!({"request": {"namespace": "Runbook/DR", "metric_name": "ReplicaLag",
            "dimensions": [{"name": "DBInstanceIdentifier", "value": "replica-postgres-dev"}],
            "start_time": ts(now - time::Duration::minutes(10)), "end_time": ts(now + time::Duration::minutes(1)), "period": 3600,
            "statistics": ["Average", "Maximum", "SampleCount"]}}))
        .await;
    assert_eq!(pts.as_array().unwrap().len(), 1, "{pts}");
    assert_eq!(pts[0]["maximum"], 4.0);
    assert_eq!(pts[0]["sample_count"], 2.0);

    let topic = e
        .ok(
            "sns",
            "CreateTopic",
            Some(E),
            json!({"name": "db-alerts-dev", "tags": []}),
        )
        .await;
    e.ok("cloudwatch", "PutMetricAlarm", Some(E), json!({"spec": {
        "alarm_name": "replica-lag-dev", "alarm_description": "replica lag", "namespace": "AWS/RDS", "metric_name": "ReplicaLag",
        "dimensions": [{"name": "DBInstanceIdentifier", "value": "replica-postgres-dev"}], "statistic": "Maximum", "period": 60,
        "evaluation_periods": 5, "datapoints_to_alarm": 3, "threshold": 30.0, "comparison_operator": "GreaterThanThreshold",
        "treat_missing_data": "notBreaching", "alarm_actions": [topic], "ok_actions": [topic], "insufficient_data_actions": []}})).await;
    let cw = aws_sdk_cloudwatch::Client::new(&e.sdk(E).await);
    let a = cw
        .describe_alarms()
        .alarm_names("replica-lag-dev")
        .send()
        .await
        .unwrap();
    let a = &a.metric_alarms()[0];
    assert_eq!(
        (
            a.threshold(),
            a.evaluation_periods(),
            a.datapoints_to_alarm()
        ),
        (Some(30.0), Some(5), Some(3))
    );
    assert_eq!(
        a.comparison_operator().map(|c| c.as_str()),
        Some("GreaterThanThreshold")
    );
    assert_eq!(a.alarm_actions(), [topic.as_str().unwrap().to_string()]);
    let d = e
        .ok(
            "cloudwatch",
            "DescribeAlarms",
            Some(E),
            json!({"alarm_names": [], "name_prefix": "replica-"}),
        )
        .await;
    assert_eq!(d[0]["spec"]["threshold"], 30.0);
    assert_eq!(d[0]["spec"]["treat_missing_data"], "notBreaching");
    assert!(
        d[0]["alarm_arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:cloudwatch:us-east-1:")
    );
    // moto never evaluates alarms: they stay where SetAlarmState puts them.
    e.ok("cloudwatch", "SetAlarmState", Some(E), json!({"alarm_name": "replica-lag-dev", "state_value": "ALARM", "state_reason": "game day"})).await;
    let d = e
        .ok(
            "cloudwatch",
            "DescribeAlarms",
            Some(E),
            json!({"alarm_names": ["replica-lag-dev"], "name_prefix": null}),
        )
        .await;
    assert_eq!(
        (d[0]["state_value"].as_str(), d[0]["state_reason"].as_str()),
        (Some("ALARM"), Some("game day"))
    );
    e.ok(
        "cloudwatch",
        "DeleteAlarms",
        Some(E),
        json!({"alarm_names": ["replica-lag-dev"]}),
    )
    .await;
    assert!(
        cw.describe_alarms()
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .is_empty()
    );

    let body = json!({"widgets": [{"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
        "properties": {"metrics": [["AWS/RDS", "ReplicaLag", "DBInstanceIdentifier", "replica-postgres-dev"]], "region": W, "title": "lag"}}]}).to_string();
    e.ok(
        "cloudwatch",
        "PutDashboard",
        Some(E),
        json!({"name": "postgres-dr-dev", "body": body}),
    )
    .await;
    let dash = e
        .ok(
            "cloudwatch",
            "GetDashboard",
            Some(E),
            json!({"name": "postgres-dr-dev"}),
        )
        .await;
    assert_eq!(dash["name"], "postgres-dr-dev");
    let got: Value = serde_json::from_str(dash["body"].as_str().unwrap()).unwrap();
    assert_eq!(got["widgets"][0]["properties"]["title"], "lag");
    let l = e
        .ok(
            "cloudwatch",
            "ListDashboards",
            Some(E),
            json!({"name_prefix": "postgres-"}),
        )
        .await;
    assert_eq!(l, json!(["postgres-dr-dev"]));
    e.ok(
        "cloudwatch",
        "DeleteDashboards",
        Some(E),
        json!({"names": ["postgres-dr-dev"]}),
    )
    .await;
    let gone = e
        .err(
            "cloudwatch",
            "GetDashboard",
            Some(E),
            json!({"name": "postgres-dr-dev"}),
        )
        .await;
    assert_eq!(gone.kind, ErrorKind::NotFound, "{gone:?}");
}

#[tokio::test]
async fn sns_topics_subscriptions_publish() {
    let e = env();
    let t1 = e
        .ok(
            "sns",
            "CreateTopic",
            Some(E),
            json!({"name": "db-alerts-dev", "tags": tags("alerts")}),
        )
        .await;
    let t2 = e
        .ok(
            "sns",
            "CreateTopic",
            Some(E),
            json!({"name": "db-alerts-dev", "tags": tags("alerts")}),
        )
        .await;
    assert_eq!(t1, t2, "CreateTopic is idempotent");
    let arn = t1.as_str().unwrap();
    assert_eq!(
        e.ok("sns", "ListTopics", Some(E), json!({})).await,
        json!([arn])
    );
    let sub = e
        .ok(
            "sns",
            "Subscribe",
            Some(E),
            json!({"topic_arn": arn, "protocol": "email", "endpoint": "oncall@example.com"}),
        )
        .await;
    let subs = e
        .ok(
            "sns",
            "ListSubscriptionsByTopic",
            Some(E),
            json!({"topic_arn": arn}),
        )
        .await;
    assert_eq!(subs[0]["endpoint"], "oncall@example.com");
    assert_eq!(subs[0]["protocol"], "email");
    let id = e
        .ok(
            "sns",
            "Publish",
            Some(E),
            json!({"topic_arn": arn, "subject": "failover", "message": "promoted replica"}),
        )
        .await;
    assert!(!id.as_str().unwrap().is_empty());
    e.ok(
        "sns",
        "Unsubscribe",
        Some(E),
        json!({"subscription_arn": sub}),
    )
    .await;
    let sns = aws_sdk_sns::Client::new(&e.sdk(E).await);
    assert!(
        sns.list_subscriptions_by_topic()
            .topic_arn(arn)
            .send()
            .await
            .unwrap()
            .subscriptions()
            .is_empty()
    );
    e.ok("sns", "DeleteTopic", Some(E), json!({"topic_arn": arn}))
        .await;
    e.ok("sns", "DeleteTopic", Some(E), json!({"topic_arn": arn}))
        .await; // idempotent
    assert!(sns.list_topics().send().await.unwrap().topics().is_empty());
    let missing = e
        .err(
            "sns",
            "Publish",
            Some(E),
            json!({"topic_arn": arn, "subject": null, "message": "x"}),
        )
        .await;
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing:?}");
}

#[tokio::test]
async fn postgres_query_has_no_database_on_moto() {
    let e = env();
    e.ok(
        "secretsmanager",
        "CreateSecret",
        Some(E),
        json!({"request": {"name": "pg", "description": null, "username": "dbadmin",
        "generate_password": {"length": 16, "exclude_punctuation": true}, "tags": []}}),
    )
    .await;
    // A closed local port: connection refused → Unavailable (retryable).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = |endpoint: &str| {
        json!({"target": {"endpoint": endpoint, "region": E, "database": "postgres",
        "secret_id": "pg", "secret_region": E, "connect_timeout_ms": 500}, "sql": "SELECT $1", "params": ["1"]})
    };
    let err = e
        .err(
            "postgres",
            "Query",
            None,
            target(&format!("127.0.0.1:{port}")),
        )
        .await;
    assert_eq!(
        (err.kind, err.retryable),
        (ErrorKind::Unavailable, true),
        "{err:?}"
    );
    // A DB instance identifier that does not exist.
    let err = e
        .err("postgres", "Query", None, target("primary-postgres-dev"))
        .await;
    assert_eq!(err.code, "DBInstanceNotFound");
}

#[tokio::test]
async fn missing_credentials_say_how_to_configure() {
    // No moto needed: the call fails before any request. Named profile that does not
    // exist, and IMDS pointed at a closed port so the chain gives up quickly.
    let p = AwsProvider::new(AwsOptions {
        region: Some(E.into()),
        profile: Some("runbook-test-no-such-profile".into()),
        endpoint_url: Some("http://127.0.0.1:9".into()),
        max_attempts: Some(1),
        ..Default::default()
    });
    let err = p
        .call(CapCall {
            service: "sns".into(),
            action: "ListTopics".into(),
            region: Some(E.into()),
            resource: None,
            args: json!({}),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err:?}");
    assert!(
        err.message.contains("AWS_ACCESS_KEY_ID") && err.message.contains("aws configure"),
        "{}",
        err.message
    );
}
