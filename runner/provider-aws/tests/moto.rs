//! Provider-level integration tests: `Provider::call` against a moto server (one per
//! test), results checked through the AWS SDK directly.
//!
//! moto makes every resource `available` at once and never evaluates alarms; where it
//! lacks a call or a behaviour the test says so (comment + an assertion on what moto
//! does), and the README lists the gap.

mod support {
    pub mod moto;
}

use aws_config::Region;
use runbook_caps::{CapCall, CapError, ErrorKind, Provider};
use runbook_provider_aws::{AwsOptions, AwsProvider};
use serde_json::{Value, json};
use support::moto::Moto;

const E: &str = "us-east-1";
const W: &str = "eu-west-1";

struct Env {
    _moto: Moto,
    p: AwsProvider,
}

fn env() -> Env {
    let moto = Moto::start();
    let p = AwsProvider::new(AwsOptions {
        region: Some(E.into()),
        endpoint_url: Some(moto.url()),
        static_credentials: Some(("testing".into(), "testing".into())),
        max_attempts: Some(2),
        ..Default::default()
    });
    Env { _moto: moto, p }
}

impl Env {
    async fn call(
        &self,
        service: &str,
        action: &str,
        region: Option<&str>,
        args: Value,
    ) -> Result<Value, CapError> {
        let spec = runbook_caps::action_by_iam(service, action)
            .unwrap_or_else(|| panic!("{service}:{action} is not in the catalogue"));
        let resource = spec.resource.and_then(|path| {
            let mut v = &args;
            for part in path.split('.') {
                v = v.get(part)?;
            }
            v.as_str().map(str::to_string)
        });
        self.p
            .call(CapCall {
                service: service.into(),
                action: action.into(),
                region: region.map(str::to_string),
                resource,
                args,
            })
            .await
    }

    async fn ok(&self, service: &str, action: &str, region: Option<&str>, args: Value) -> Value {
        self.call(service, action, region, args)
            .await
            .unwrap_or_else(|e| panic!("{service}:{action}: {e:?}"))
    }

    async fn err(
        &self,
        service: &str,
        action: &str,
        region: Option<&str>,
        args: Value,
    ) -> CapError {
        match self.call(service, action, region, args).await {
            Ok(v) => panic!("{service}:{action} succeeded: {v}"),
            Err(e) => e,
        }
    }

    async fn sdk(&self, region: &str) -> aws_config::SdkConfig {
        self.p
            .sdk_config()
            .await
            .to_builder()
            .region(Region::new(region.to_string()))
            .build()
    }
}

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
    assert_eq!(
        r.db_instances()[0].read_replica_source_db_instance_identifier(),
        None
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
