//! Game-day faults and Secrets Manager replica regions on the local provider, against
//! real PostgreSQL, through the provider API (as the executor calls it).

use std::time::{Duration, Instant};

use runbook_caps::types::postgres::Target;
use runbook_caps::{CapError, Provider};
use runbook_test_support::local::*;
use serde_json::{Value, json};

async fn inject(env: &Env, kind: &str, target: &str, region: &str, params: Value) -> Value {
    env.ok(
        "fault",
        "InjectFault",
        None,
        json!({"spec": {"kind": kind, "target": target, "region": region,
                        "params": params.to_string(), "client_token": format!("t-{kind}")}}),
    )
    .await
}

async fn undo(env: &Env, fault: &Value) -> Value {
    env.ok(
        "fault",
        "UndoFault",
        None,
        json!({"id": "fault-test", "fault": fault}),
    )
    .await
}

fn target(endpoint: &str, secret_region: &str) -> Target {
    Target {
        endpoint: endpoint.into(),
        region: None,
        database: "postgres".into(),
        secret_id: SECRET.into(),
        secret_region: secret_region.into(),
        connect_timeout_ms: 2000,
    }
}

/// A client through `connect_info` (what the traffic driver uses).
async fn client_via(env: &Env, t: &Target) -> Result<tokio_postgres::Client, String> {
    let ci = env
        .provider
        .connect_info(t)
        .await
        .map_err(|e| e.to_string())?;
    connect(ci.port, &ci.user, &ci.password)
        .await
        .map_err(|e| e.to_string())
}

async fn count(c: &tokio_postgres::Client, table: &str) -> Option<i64> {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

async fn ci_port(env: &Env) -> u16 {
    env.provider
        .connect_info(&target(PRIMARY, US))
        .await
        .unwrap()
        .port
}

fn code(r: Result<Value, CapError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e.code,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_crash_fails_over_to_the_multi_az_standby() {
    let env = Env::new();
    env.secret(US, SECRET).await;
    env.create_primary(US, PRIMARY, SECRET, true, json!({}))
        .await;
    env.wait_status(US, PRIMARY, "available", Duration::from_secs(60))
        .await;
    let before = env.describe(US, PRIMARY).await.unwrap();
    let c = client_via(&env, &target(PRIMARY, US)).await.unwrap();
    c.batch_execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)")
        .await
        .unwrap();
    drop(c);

    // Kinds the provider does not know are refused.
    let e = env
        .call(
            "fault",
            "InjectFault",
            None,
            json!({"spec": {"kind": "meteor", "target": PRIMARY, "region": US, "params": "", "client_token": "m"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "UnsupportedOperation");

    let f = inject(&env, "writer-crash", PRIMARY, US, json!({})).await;
    assert_eq!(f["state"], "active");
    let details: Value = serde_json::from_str(f["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["multi-az"], true, "{details}");
    assert_eq!(details["killed"].as_array().unwrap().len(), 1);

    // RDS Multi-AZ: rebooting during the failover, then available on the other AZ.
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let d = env.describe(US, PRIMARY).await.unwrap();
        let st = d["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == "available" && seen.iter().any(|s| s == "rebooting") {
            assert_ne!(
                d["availability_zone"], before["availability_zone"],
                "the writer moved to the standby's AZ"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no failover: {seen:?}\n{}",
            env.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "writer-crash: statuses {seen:?}, available again after {:?}",
        started.elapsed()
    );

    // A client reconnecting to the instance reaches the new writer; nothing was lost.
    let c = client_via(&env, &target(PRIMARY, US)).await.unwrap();
    assert_eq!(count(&c, "t").await, Some(100));
    c.batch_execute("INSERT INTO t VALUES (101)").await.unwrap();
    assert_eq!(count(&c, "t").await, Some(101));

    // connect_info: `host:port` is taken as is.
    let port = ci_port(&env).await;
    let ci = env
        .provider
        .connect_info(&target(&format!("127.0.0.1:{port}"), US))
        .await
        .unwrap();
    assert_eq!(ci.port, port);
    assert_eq!(ci.user, "postgres");

    let u = undo(&env, &f).await;
    assert_eq!(u["state"], "undone");
    // Undo is idempotent.
    let again = undo(&env, &f).await;
    assert_eq!(again["state"], "undone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_loss_keeps_the_other_region_and_the_secret_replica_usable() {
    let env = Env::new();
    let d = env.deploy(true).await;
    let rep = env
        .ok(
            "secretsmanager",
            "ReplicateSecretToRegions",
            Some(US),
            json!({"secret_id": SECRET, "add_replica_regions": [EU]}),
        )
        .await;
    assert_eq!(rep["primary_region"], US);
    assert_eq!(rep["replication_status"][0]["region"], EU);
    assert_eq!(rep["replication_status"][0]["status"], "InSync");
    let eu = env
        .ok(
            "secretsmanager",
            "DescribeSecret",
            Some(EU),
            json!({"secret_id": SECRET}),
        )
        .await;
    assert_eq!(eu["primary_region"], US);
    assert!(eu["arn"].as_str().unwrap().contains(":eu-west-1:"), "{eu}");
    // The replica's value file is private, like the primary's.
    let dir = env.state_dir().join(format!("local/regions/{EU}/secrets"));
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(SECRET))
        .expect("replica value file");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // Secrets Manager refuses to delete a secret that still has replicas.
    assert_eq!(
        code(
            env.call(
                "secretsmanager",
                "DeleteSecret",
                Some(US),
                json!({"secret_id": SECRET, "force_delete_without_recovery": true}),
            )
            .await
        ),
        "InvalidRequestException"
    );

    let ep = env.client(NAME, SECRET).await;
    ep.batch_execute(
        "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 50)",
    )
    .await
    .unwrap();
    let rc = env.client(REPLICA, SECRET).await;
    env.wait_until("rows on the replica", Duration::from_secs(20), || async {
        count(&rc, "orders").await == Some(50)
    })
    .await;
    drop((ep, rc));

    let f = inject(&env, "region-loss", US, US, json!({})).await;
    let details: Value = serde_json::from_str(f["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["route53-api-down"], true);
    assert_eq!(details["killed"].as_array().unwrap().len(), 2, "{details}");

    // The lost region's control plane and the Route 53 API are down ...
    let unavailable = |r: Result<Value, CapError>| {
        let c = code(r);
        assert_eq!(c, "ServiceUnavailable");
    };
    unavailable(env.describe(US, PRIMARY).await);
    unavailable(
        env.call(
            "secretsmanager",
            "DescribeSecret",
            Some(US),
            json!({"secret_id": SECRET}),
        )
        .await,
    );
    unavailable(
        env.call(
            "ec2",
            "DescribeVpcs",
            Some(US),
            json!({"vpc_ids": [], "filters": []}),
        )
        .await,
    );
    unavailable(
        env.call(
            "route53",
            "ChangeResourceRecordSets",
            None,
            json!({"zone_id": d.zone_id, "changes": []}),
        )
        .await,
    );
    let e = env
        .provider
        .connect_info(&target(REPLICA, US))
        .await
        .unwrap_err();
    assert_eq!(e.code, "ServiceUnavailable");
    // ... the other region's is not, and the secret's replica copy is readable.
    env.describe(EU, REPLICA).await.unwrap();
    env.ok(
        "secretsmanager",
        "DescribeSecret",
        Some(EU),
        json!({"secret_id": SECRET}),
    )
    .await;
    let q = env
        .ok(
            "postgres",
            "Query",
            Some(EU),
            json!({"target": target(REPLICA, EU), "sql": "SELECT count(*) FROM orders", "params": []}),
        )
        .await;
    assert_eq!(q["rows"][0][0], "50");

    // Promote the replica; the routed name moves to it by health checks alone (the
    // primary's record fails its check, the replica's zero-weight record takes over).
    env.ok(
        "rds",
        "PromoteReadReplica",
        Some(EU),
        json!({"identifier": REPLICA, "backup_retention_period": 7}),
    )
    .await;
    env.wait_status(EU, REPLICA, "available", Duration::from_secs(60))
        .await;
    let started = Instant::now();
    let name = target(NAME, EU);
    env.wait_until(
        "writes through the routed name",
        Duration::from_secs(60),
        || async {
            match client_via(&env, &name).await {
                Ok(c) => c
                    .batch_execute("INSERT INTO orders VALUES (51)")
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        },
    )
    .await;
    eprintln!(
        "region-loss: writes through the name after {:?}",
        started.elapsed()
    );
    let c = client_via(&env, &name).await.unwrap();
    assert_eq!(count(&c, "orders").await, Some(51));
    drop(c);

    // Undo: the control plane answers again; the old primary stays stopped (fenced)
    // because its replica was promoted meanwhile.
    let u = undo(&env, &f).await;
    assert_eq!(u["state"], "undone");
    let ud: Value = serde_json::from_str(u["details"].as_str().unwrap()).unwrap();
    assert_eq!(ud["undone"]["fenced"][0]["identifier"], PRIMARY, "{ud}");
    let p = env.describe(US, PRIMARY).await.unwrap();
    assert_eq!(p["status"], "stopped");
    env.ok(
        "secretsmanager",
        "DescribeSecret",
        Some(US),
        json!({"secret_id": SECRET}),
    )
    .await;
    env.ok(
        "route53",
        "ListResourceRecordSets",
        None,
        json!({"zone_id": d.zone_id, "name": null}),
    )
    .await;
    // Still one writer behind the name, the promoted one.
    let c = client_via(&env, &name).await.unwrap();
    assert_eq!(count(&c, "orders").await, Some(51));
    assert_eq!(undo(&env, &f).await["state"], "undone");

    // Replication round trip: removing the region deletes the replica copy.
    let rm = env
        .ok(
            "secretsmanager",
            "RemoveRegionsFromReplication",
            Some(US),
            json!({"secret_id": SECRET, "remove_replica_regions": [EU]}),
        )
        .await;
    assert!(rm["replication_status"].as_array().unwrap().is_empty());
    assert_eq!(
        code(
            env.call(
                "secretsmanager",
                "DescribeSecret",
                Some(EU),
                json!({"secret_id": SECRET})
            )
            .await
        ),
        "ResourceNotFoundException"
    );
    assert!(!file.exists());
}

/// Seconds until a row written on the primary is visible on the replica, or None
/// if not within `limit`.
async fn visible_after(
    primary: &tokio_postgres::Client,
    replica: &tokio_postgres::Client,
    id: i32,
    limit: Duration,
) -> Option<Duration> {
    primary
        .execute("INSERT INTO lag VALUES ($1)", &[&id])
        .await
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(r) = replica
            .query("SELECT 1 FROM lag WHERE id = $1", &[&id])
            .await
            && !r.is_empty()
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_faults_make_the_replica_lag_and_undo_catches_up() {
    let env = Env::new();
    env.deploy(false).await;
    let p = env.client(PRIMARY, SECRET).await;
    p.batch_execute("CREATE TABLE lag (id int)").await.unwrap();
    let r = env.client(REPLICA, SECRET).await;
    let healthy = visible_after(&p, &r, 1, Duration::from_secs(20)).await;
    assert!(healthy.is_some(), "replication works before the faults");

    // slow-link: 3 s one way; the replica falls behind by at least that much.
    let f = inject(&env, "slow-link", "", "", json!({"latency-ms": 3000})).await;
    assert!(
        visible_after(&p, &r, 2, Duration::from_millis(2500))
            .await
            .is_none(),
        "a row reached the replica faster than the link allows"
    );
    undo(&env, &f).await;
    let t = visible_after(&p, &r, 3, Duration::from_secs(60)).await;
    assert!(
        t.is_some(),
        "no catch-up after undoing slow-link\n{}",
        env.daemon_log()
    );
    eprintln!("slow-link undone: caught up in {t:?}");

    // partition: nothing crosses until undo.
    let f = env
        .ok(
            "fault",
            "InjectFault",
            None,
            json!({"spec": {"kind": "partition", "target": "", "region": "", "params": "", "client_token": "p"}}),
        )
        .await;
    assert!(
        visible_after(&p, &r, 4, Duration::from_secs(4))
            .await
            .is_none(),
        "a row crossed a cut link"
    );
    // The fault outlives its daemon: undo after a SIGKILL still heals the link.
    let pid = env.provider.daemon_pid().expect("daemon running");
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    env.wait_until("daemon dead", Duration::from_secs(10), || async {
        !alive(pid)
    })
    .await;
    undo(&env, &f).await;
    let t = visible_after(&p, &r, 5, Duration::from_secs(60)).await;
    assert!(
        t.is_some(),
        "no catch-up after healing\n{}",
        env.daemon_log()
    );
    assert_eq!(count(&r, "lag").await, Some(5));

    // probe-partition: the runner's probes fail, replication and clients do not.
    let f = inject(&env, "probe-partition", PRIMARY, US, json!({})).await;
    let probe = || {
        env.call(
            "postgres",
            "Query",
            Some(US),
            json!({"target": target(PRIMARY, US), "sql": "SELECT 1", "params": []}),
        )
    };
    assert_eq!(probe().await.unwrap_err().code, "ServiceUnavailable");
    assert!(
        visible_after(&p, &r, 6, Duration::from_secs(20))
            .await
            .is_some(),
        "replication continues under probe-partition"
    );
    undo(&env, &f).await;
    probe().await.unwrap();
}
