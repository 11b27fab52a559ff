//! RDS on real PostgreSQL: a primary's life cycle, errors, snapshots and restore.

use std::time::Duration;

use runbook_test_support::local::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_lifecycle_snapshot_and_restore() {
    let env = Env::new();
    env.secret(US, "postgres-credentials-dev").await;
    // Secret files are private.
    let secret = env
        .provider
        .secret_get("postgres-credentials-dev", None)
        .unwrap();
    assert_eq!(secret["username"], "postgres");
    assert_eq!(secret["password"].as_str().unwrap().len(), 32);

    let created = env
        .create_primary(
            US,
            "primary-postgres-dev",
            "postgres-credentials-dev",
            false,
            json!({}),
        )
        .await;
    assert_eq!(created["status"], "creating");
    assert_eq!(
        created["arn"],
        "arn:aws:rds:us-east-1:000000000000:db:primary-postgres-dev"
    );
    let addr = created["endpoint_address"].as_str().unwrap();
    assert!(
        addr.starts_with("primary-postgres-dev.") && addr.ends_with(".us-east-1.rds.amazonaws.com"),
        "{addr}"
    );

    // Same identifier again.
    let err = env
        .call("rds", "CreateDBInstance", Some(US), json!({"request": {
            "identifier": "primary-postgres-dev", "engine": "postgres", "engine_version": "15", "instance_class": "db.t3.large",
            "allocated_storage": 20, "storage_type": "gp3", "storage_encrypted": false, "multi_az": false,
            "backup_retention_period": 0, "master_username": "postgres", "master_user_secret": "postgres-credentials-dev",
            "db_name": null, "port": null, "db_subnet_group": null, "parameter_group": null,
            "vpc_security_groups": [], "deletion_protection": false, "tags": []}}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "DBInstanceAlreadyExists");

    let d = env
        .wait_status(
            US,
            "primary-postgres-dev",
            "available",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(d["engine"], "postgres");
    let err = env.describe(US, "nope").await.unwrap_err();
    assert_eq!(err.code, "DBInstanceNotFound");

    // Real server, scram with the secret's password, the requested database exists.
    let c = env
        .client("primary-postgres-dev", "postgres-credentials-dev")
        .await;
    let row = c.query_one("SELECT current_setting('password_encryption'), (SELECT count(*) FROM pg_database WHERE datname = 'app')", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "scram-sha-256");
    assert_eq!(row.get::<_, i64>(1), 1);
    c.batch_execute(
        "CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'before snapshot')",
    )
    .await
    .unwrap();
    let bad = connect(
        env.provider
            .endpoint("primary-postgres-dev")
            .await
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap(),
        "postgres",
        "wrong",
    )
    .await;
    assert!(bad.is_err(), "wrong password must be refused");

    // `local down` stops servers and daemon; `local up` brings both back with the data.
    drop(c);
    env.provider.down().await.unwrap();
    assert!(env.provider.daemon_pid().is_none());
    assert_eq!(env.provider.status().await.unwrap()["daemon"], "stopped");
    let up = env.provider.up().await.unwrap();
    assert_eq!(up["daemon"], "running");
    env.wait_status(
        US,
        "primary-postgres-dev",
        "available",
        Duration::from_secs(30),
    )
    .await;
    let c = env
        .client("primary-postgres-dev", "postgres-credentials-dev")
        .await;
    let v: String = c
        .query_one("SELECT v FROM t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "before snapshot");

    // Snapshot, then restore it as a new instance.
    let snap = env
        .ok("rds", "CreateDBSnapshot", Some(US), json!({"snapshot_identifier": "snap-1", "instance_identifier": "primary-postgres-dev", "tags": []}))
        .await;
    assert_eq!(snap["status"], "creating");
    env.wait_until("snapshot available", Duration::from_secs(30), || async {
        let s = env
            .ok(
                "rds",
                "DescribeDBSnapshots",
                Some(US),
                json!({"snapshot_identifier": "snap-1", "instance_identifier": null}),
            )
            .await;
        s[0]["status"] == "available"
    })
    .await;
    env.wait_status(
        US,
        "primary-postgres-dev",
        "available",
        Duration::from_secs(30),
    )
    .await;
    env.ok("rds", "RestoreDBInstanceFromDBSnapshot", Some(US), json!({"request": {
        "identifier": "restored-dev", "snapshot_identifier": "snap-1", "instance_class": null, "multi_az": false,
        "db_subnet_group": null, "parameter_group": null, "vpc_security_groups": [], "tags": []}})).await;
    env.wait_status(US, "restored-dev", "available", Duration::from_secs(60))
        .await;
    let r = env.client("restored-dev", "postgres-credentials-dev").await;
    let v: String = r
        .query_one("SELECT v FROM t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "before snapshot");

    // Reboot goes through `rebooting`.
    let rb = env
        .ok(
            "rds",
            "RebootDBInstance",
            Some(US),
            json!({"identifier": "restored-dev", "force_failover": false}),
        )
        .await;
    assert_eq!(rb["status"], "rebooting");
    let err = env
        .call(
            "rds",
            "RebootDBInstance",
            Some(US),
            json!({"identifier": "restored-dev", "force_failover": true}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidParameterCombination");
    env.wait_status(US, "restored-dev", "available", Duration::from_secs(30))
        .await;

    // Stop and start.
    let st = env
        .ok(
            "rds",
            "StopDBInstance",
            Some(US),
            json!({"identifier": "restored-dev"}),
        )
        .await;
    assert_eq!(st["status"], "stopping");
    env.wait_status(US, "restored-dev", "stopped", Duration::from_secs(30))
        .await;
    let err = env.call("rds", "ModifyDBInstance", Some(US), json!({"request": {"identifier": "restored-dev", "instance_class": "db.t3.small",
        "allocated_storage": null, "backup_retention_period": null, "multi_az": null, "parameter_group": null,
        "vpc_security_groups": null, "deletion_protection": null, "apply_immediately": true}})).await.unwrap_err();
    assert_eq!(err.code, "InvalidDBInstanceState");
    env.ok(
        "rds",
        "StartDBInstance",
        Some(US),
        json!({"identifier": "restored-dev"}),
    )
    .await;
    env.wait_status(US, "restored-dev", "available", Duration::from_secs(30))
        .await;

    // Delete: a final snapshot is required unless skipped.
    let err = env
        .call("rds", "DeleteDBInstance", Some(US), json!({"request": {"identifier": "restored-dev", "skip_final_snapshot": false, "final_snapshot_identifier": null}}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidParameterCombination");
    let del = env
        .ok("rds", "DeleteDBInstance", Some(US), json!({"request": {"identifier": "restored-dev", "skip_final_snapshot": false, "final_snapshot_identifier": "restored-final"}}))
        .await;
    assert_eq!(del["status"], "deleting");
    env.ok("rds", "DeleteDBInstance", Some(US), json!({"request": {"identifier": "primary-postgres-dev", "skip_final_snapshot": true, "final_snapshot_identifier": null}})).await;
    env.wait_gone(US, "restored-dev", Duration::from_secs(30))
        .await;
    env.wait_gone(US, "primary-postgres-dev", Duration::from_secs(30))
        .await;
    let snaps = env
        .ok(
            "rds",
            "DescribeDBSnapshots",
            Some(US),
            json!({"snapshot_identifier": null, "instance_identifier": null}),
        )
        .await;
    let ids: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["identifier"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"restored-final") && ids.contains(&"snap-1"),
        "{ids:?}"
    );
    // No server left running.
    let status = env.provider.status().await.unwrap();
    assert!(
        status["regions"][US]["instances"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{status}"
    );
    env.provider.down().await.unwrap();
}
