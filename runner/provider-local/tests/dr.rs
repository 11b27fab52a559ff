//! The DR topology end to end against real PostgreSQL: Multi-AZ primary, cross-region
//! replica through the enforced link, routing endpoint with fencing, promote.

use std::time::Duration;

use runbook_test_support::local::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_region_topology() {
    let env = Env::new();
    let started = std::time::Instant::now();
    let d = env.deploy(true).await;
    eprintln!("deploy took {:?}", started.elapsed());

    // Multi-AZ standby and cross-region replica both stream from the writer.
    env.wait_until(
        "standby and replica streaming",
        Duration::from_secs(20),
        || async {
            let s = env.streaming().await;
            s.iter().any(|a| a.starts_with(REPLICA)) && s.iter().any(|a| a.starts_with(PRIMARY))
        },
    )
    .await;
    let c = env.client(PRIMARY, SECRET).await;
    let sync: String = c.query_one("SELECT string_agg(sync_state, ',') FROM pg_stat_replication WHERE application_name LIKE 'primary%'", &[]).await.unwrap().get(0);
    assert_eq!(sync, "sync");
    let log_statement: String = c.query_one("SHOW log_statement", &[]).await.unwrap().get(0);
    assert_eq!(log_statement, "all", "parameter group applied");
    let desc = env.describe(EU, REPLICA).await.unwrap();
    assert_eq!(
        desc["read_replica_source"],
        format!("arn:aws:rds:{US}:000000000000:db:{PRIMARY}")
    );
    let p = env.describe(US, PRIMARY).await.unwrap();
    assert_eq!(
        p["read_replica_identifiers"][0],
        format!("arn:aws:rds:{EU}:000000000000:db:{REPLICA}")
    );
    assert_eq!(p["secondary_availability_zone"], "us-east-1b");

    // A row written through the routing endpoint is read on the replica.
    let ep = env.client(NAME, SECRET).await;
    assert!(
        !ep.query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    );
    ep.batch_execute("CREATE TABLE orders (id int primary key, note text); INSERT INTO orders VALUES (1, 'through the endpoint')").await.unwrap();
    let rc = env.client(REPLICA, SECRET).await;
    env.wait_until("row on replica", Duration::from_secs(10), || async {
        rc.query("SELECT note FROM orders WHERE id = 1", &[])
            .await
            .map(|r| r.len() == 1)
            .unwrap_or(false)
    })
    .await;

    // Health check speaks PostgreSQL.
    let hs = env
        .ok(
            "route53",
            "GetHealthCheckStatus",
            None,
            json!({"id": d.health_check_id}),
        )
        .await;
    assert_eq!(hs["healthy"], true, "{hs}");

    // Revoking the security-group rule breaks replication; re-authorising restores it.
    let rule = json!([{"ip_protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_blocks": ["10.1.0.0/16"], "source_security_groups": []}]);
    env.ok(
        "ec2",
        "RevokeSecurityGroupIngress",
        Some(US),
        json!({"group_id": d.us_sg, "permissions": rule}),
    )
    .await;
    env.wait_until(
        "replica disconnected after revoke",
        Duration::from_secs(10),
        || async { !env.streaming().await.iter().any(|a| a.starts_with(REPLICA)) },
    )
    .await;
    env.ok(
        "ec2",
        "AuthorizeSecurityGroupIngress",
        Some(US),
        json!({"group_id": d.us_sg, "permissions": rule}),
    )
    .await;
    env.wait_until(
        "replica back after authorize",
        Duration::from_secs(15),
        || async { env.streaming().await.iter().any(|a| a.starts_with(REPLICA)) },
    )
    .await;

    // Partition and heal.
    env.provider.partition().await.unwrap();
    env.wait_until("replica cut off", Duration::from_secs(10), || async {
        !env.streaming().await.iter().any(|a| a.starts_with(REPLICA))
    })
    .await;
    ep.batch_execute("INSERT INTO orders VALUES (2, 'during partition')")
        .await
        .unwrap();
    env.provider.heal().await.unwrap();
    env.wait_until(
        "row 2 on replica after heal",
        Duration::from_secs(15),
        || async {
            rc.query("SELECT 1 FROM orders WHERE id = 2", &[])
                .await
                .map(|r| r.len() == 1)
                .unwrap_or(false)
        },
    )
    .await;

    // Fencing: shifting weight closes connections to the target that left routing, and
    // new connections go to the replica at once.
    let held = env.client(NAME, SECRET).await;
    held.query_one("SELECT 1", &[]).await.unwrap();
    env.set_weights(
        &d.zone_id,
        &d.primary_address,
        &d.replica_address,
        0,
        100,
        Some(&d.health_check_id),
    )
    .await;
    env.wait_until(
        "fenced connection closed",
        Duration::from_secs(5),
        || async { held.query_one("SELECT 1", &[]).await.is_err() },
    )
    .await;
    let fresh = env.client(NAME, SECRET).await;
    assert!(
        fresh
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get::<_, bool>(0),
        "new connections reach the replica"
    );

    // Killing the daemon loses nothing: the next call restarts it with the same endpoint.
    let before = env.provider.endpoint(NAME).await.unwrap();
    let pid = env.provider.daemon_pid().expect("daemon running");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    env.wait_until("daemon dead", Duration::from_secs(5), || async {
        !alive(pid)
    })
    .await;
    let after = env.provider.endpoint(NAME).await.unwrap();
    assert_eq!(before, after);
    assert_ne!(env.provider.daemon_pid(), Some(pid));
    env.wait_until(
        "replica streams again via the restarted link",
        Duration::from_secs(15),
        || async { env.streaming().await.iter().any(|a| a.starts_with(REPLICA)) },
    )
    .await;
    let fresh = env.client(NAME, SECRET).await;
    let n: i64 = fresh
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    // Deleting the peering breaks replication.
    env.ok(
        "ec2",
        "DeleteVpcPeeringConnection",
        Some(US),
        json!({"peering_id": d.peering_id}),
    )
    .await;
    env.wait_until(
        "replica disconnected after peering deletion",
        Duration::from_secs(10),
        || async { !env.streaming().await.iter().any(|a| a.starts_with(REPLICA)) },
    )
    .await;

    // Promote makes the replica writable.
    let pr = env
        .ok(
            "rds",
            "PromoteReadReplica",
            Some(EU),
            json!({"identifier": REPLICA, "backup_retention_period": 7}),
        )
        .await;
    assert_eq!(pr["status"], "modifying");
    let desc = env
        .wait_status(EU, REPLICA, "available", Duration::from_secs(30))
        .await;
    assert!(desc["read_replica_source"].is_null());
    let rc = env.client(REPLICA, SECRET).await;
    rc.batch_execute("INSERT INTO orders VALUES (3, 'after promote')")
        .await
        .unwrap();
    let p = env.describe(US, PRIMARY).await.unwrap();
    assert!(p["read_replica_identifiers"].as_array().unwrap().is_empty());

    // Multi-AZ failover: the standby takes over with the data.
    let rb = env
        .ok(
            "rds",
            "RebootDBInstance",
            Some(US),
            json!({"identifier": PRIMARY, "force_failover": true}),
        )
        .await;
    assert_eq!(rb["status"], "rebooting");
    let p = env
        .wait_status(US, PRIMARY, "available", Duration::from_secs(60))
        .await;
    assert_eq!(p["availability_zone"], "us-east-1b");
    let c = env.client(PRIMARY, SECRET).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    env.wait_until(
        "old writer streams as standby",
        Duration::from_secs(20),
        || async {
            env.streaming()
                .await
                .iter()
                .any(|a| a == "primary-postgres-dev-us-east-1a")
        },
    )
    .await;

    env.provider.down().await.unwrap();
    assert!(env.provider.daemon_pid().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peering_rules() {
    let env = Env::new();
    let a = env
        .ok(
            "ec2",
            "CreateVpc",
            Some(US),
            json!({"cidr_block": "10.0.0.0/16", "tags": []}),
        )
        .await;
    let b = env
        .ok(
            "ec2",
            "CreateVpc",
            Some(EU),
            json!({"cidr_block": "10.0.128.0/17", "tags": []}),
        )
        .await;
    let id = a["vpc_id"].as_str().unwrap();
    assert_eq!(id.len(), 21);
    let p = env
        .ok(
            "ec2",
            "CreateVpcPeeringConnection",
            Some(US),
            json!({"vpc_id": id, "peer_vpc_id": b["vpc_id"], "peer_region": EU, "tags": []}),
        )
        .await;
    assert_eq!(p["status"], "failed", "overlapping CIDRs are refused");
    let err = env
        .call(
            "ec2",
            "AcceptVpcPeeringConnection",
            Some(EU),
            json!({"peering_id": p["id"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidStateTransition");
    let err = env
        .call(
            "ec2",
            "DescribeVpcs",
            Some(US),
            json!({"vpc_ids": ["vpc-00000000000000000"], "filters": []}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidVpcID.NotFound");
    let err = env
        .call(
            "ec2",
            "DescribeVpcPeeringConnections",
            Some(US),
            json!({"peering_ids": ["pcx-00000000000000000"], "filters": []}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidVpcPeeringConnectionID.NotFound");
    let sn = env.ok("ec2", "CreateSubnet", Some(US), json!({"vpc_id": id, "cidr_block": "10.0.1.0/24", "availability_zone": "us-east-1a", "tags": []})).await;
    let err = env
        .call("ec2", "DeleteVpc", Some(US), json!({"vpc_id": id}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "DependencyViolation");
    let rtb = env
        .ok(
            "ec2",
            "CreateRouteTable",
            Some(US),
            json!({"vpc_id": id, "tags": []}),
        )
        .await;
    env.ok(
        "ec2",
        "AssociateRouteTable",
        Some(US),
        json!({"route_table_id": rtb["route_table_id"], "subnet_id": sn["subnet_id"]}),
    )
    .await;
    let vpce = env
        .ok(
            "ec2",
            "CreateVpcEndpoint",
            Some(US),
            json!({"vpc_id": id, "service_name": "com.amazonaws.us-east-1.s3",
        "endpoint_type": "Gateway", "route_table_ids": [rtb["route_table_id"]], "tags": []}),
        )
        .await;
    assert!(
        vpce["vpc_endpoint_id"]
            .as_str()
            .unwrap()
            .starts_with("vpce-")
    );
    let tables = env
        .ok(
            "ec2",
            "DescribeRouteTables",
            Some(US),
            json!({"route_table_ids": [rtb["route_table_id"]], "filters": []}),
        )
        .await;
    assert_eq!(tables[0]["endpoint_ids"][0], vpce["vpc_endpoint_id"]);
    let named = env
        .ok(
            "ec2",
            "DescribeVpcs",
            Some(US),
            json!({"vpc_ids": [], "filters": [{"name": "cidr", "values": ["10.0.0.0/16"]}]}),
        )
        .await;
    assert_eq!(named.as_array().unwrap().len(), 1);
    env.provider.down().await.unwrap();
}

/// Failover then failback through the API only: promote the replica, rebuild the old
/// region as a replica of the new primary (reverse link), switch back with zero loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_and_failback() {
    let env = Env::new();
    let d = env.deploy(false).await;
    let ep = env.client(NAME, SECRET).await;
    ep.batch_execute("CREATE TABLE ledger (id int primary key); INSERT INTO ledger SELECT generate_series(1, 100)").await.unwrap();
    let rc = env.client(REPLICA, SECRET).await;
    env.wait_until("replica caught up", Duration::from_secs(10), || async {
        rc.query_one("SELECT count(*) FROM ledger", &[])
            .await
            .map(|r| r.get::<_, i64>(0) == 100)
            .unwrap_or(false)
    })
    .await;

    // Failover: fence the primary out of routing, promote the replica.
    env.set_weights(
        &d.zone_id,
        &d.primary_address,
        &d.replica_address,
        0,
        100,
        None,
    )
    .await;
    env.ok(
        "rds",
        "PromoteReadReplica",
        Some(EU),
        json!({"identifier": REPLICA, "backup_retention_period": null}),
    )
    .await;
    env.wait_status(EU, REPLICA, "available", Duration::from_secs(30))
        .await;
    let ep = env.client(NAME, SECRET).await;
    ep.batch_execute("INSERT INTO ledger VALUES (101)")
        .await
        .unwrap();

    // Failback: the EU security group must admit the US VPC for the reverse link.
    let eu_sg = env.describe(EU, REPLICA).await.unwrap()["vpc_security_groups"][0].clone();
    env.ok("ec2", "AuthorizeSecurityGroupIngress", Some(EU), json!({"group_id": eu_sg, "permissions": [
        {"ip_protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_blocks": ["10.0.0.0/16"], "source_security_groups": []}]})).await;
    env.ok("rds", "DeleteDBInstance", Some(US), json!({"request": {"identifier": PRIMARY, "skip_final_snapshot": true, "final_snapshot_identifier": null}})).await;
    env.wait_gone(US, PRIMARY, Duration::from_secs(30)).await;
    let eu_arn = env.describe(EU, REPLICA).await.unwrap()["arn"].clone();
    let back = env
        .ok("rds", "CreateDBInstanceReadReplica", Some(US), json!({"request": {
            "identifier": PRIMARY, "source": eu_arn, "source_region": EU, "instance_class": "db.t3.large",
            "storage_type": null, "storage_encrypted": true, "multi_az": false, "db_subnet_group": "primary-subnets",
            "parameter_group": null, "vpc_security_groups": [d.us_sg], "tags": []}}))
        .await;
    env.wait_status(US, PRIMARY, "available", Duration::from_secs(60))
        .await;
    // Planned switchover: stop writes, wait for zero lag, promote, route back.
    env.set_weights(
        &d.zone_id,
        back["endpoint_address"].as_str().unwrap(),
        &d.replica_address,
        0,
        0,
        None,
    )
    .await;
    let us = env.client(PRIMARY, SECRET).await;
    env.wait_until("US caught up", Duration::from_secs(10), || async {
        us.query_one("SELECT count(*) FROM ledger", &[])
            .await
            .map(|r| r.get::<_, i64>(0) == 101)
            .unwrap_or(false)
    })
    .await;
    env.ok(
        "rds",
        "PromoteReadReplica",
        Some(US),
        json!({"identifier": PRIMARY, "backup_retention_period": 7}),
    )
    .await;
    env.wait_status(US, PRIMARY, "available", Duration::from_secs(30))
        .await;
    env.set_weights(
        &d.zone_id,
        back["endpoint_address"].as_str().unwrap(),
        &d.replica_address,
        100,
        0,
        None,
    )
    .await;
    let ep = env.client(NAME, SECRET).await;
    assert!(
        !ep.query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    );
    let n: i64 = ep
        .query_one("SELECT count(*) FROM ledger", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 101, "no acknowledged write lost");
    env.provider.down().await.unwrap();
}

/// A Multi-AZ writer that dies is replaced by its standby without losing commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_az_automatic_failover() {
    let env = Env::new();
    env.secret(US, SECRET).await;
    env.create_primary(US, PRIMARY, SECRET, true, json!({}))
        .await;
    env.wait_status(US, PRIMARY, "available", Duration::from_secs(60))
        .await;
    let c = env.client(PRIMARY, SECRET).await;
    c.batch_execute("CREATE TABLE acked (id int); INSERT INTO acked VALUES (1)")
        .await
        .unwrap();
    drop(c);
    let killed = env.provider.crash(PRIMARY, None, false).await.unwrap();
    assert_eq!(killed["killed"].as_array().unwrap().len(), 1);
    env.wait_until("failover done", Duration::from_secs(60), || async {
        let d = env.describe(US, PRIMARY).await.unwrap();
        d["status"] == "available" && d["availability_zone"] == "us-east-1b"
    })
    .await;
    let c = env.client(PRIMARY, SECRET).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM acked", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "synchronous standby had the commit");
    c.batch_execute("INSERT INTO acked VALUES (2)")
        .await
        .unwrap();
    env.wait_until(
        "old writer rebuilt as standby",
        Duration::from_secs(30),
        || async {
            env.streaming()
                .await
                .iter()
                .any(|a| a == "primary-postgres-dev-us-east-1a")
        },
    )
    .await;
    env.provider.down().await.unwrap();
}
