//! The DR runbooks end to end on the local provider, with real PostgreSQL and real data:
//! deploy → write rows through `postgres.db-dev.internal` (found with `runbook endpoint`,
//! password from `runbook secret get`) → lose the whole primary (both AZs) → failover →
//! every acknowledged row is there and writes go on through the same name → failback
//! under a continuous writer (zero acknowledged rows lost) → the topology of deploy →
//! teardown leaves no process, port or data directory behind. Also: the policy plugin
//! is swapped by one line of YAML and the same binary then decides differently.
//!
//! Figures (deploy time, failover duration, client-seen write outage, rows lost) are
//! printed, never asserted on: they are measurements, not pass/fail criteria.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use runbook_test_support::client::{self, Writer, client, missing};
use runbook_test_support::process::alive;
use runbook_test_support::runbook::{RunbookHome, runbook};
use runbook_test_support::wait;
use serde_json::{Value, json};

/// Deadline for the client's progress (it normally takes a fraction of a second).
const MINUTE: Duration = Duration::from_secs(60);

/// A daemon started on demand by reads alone (here a plan on an empty environment)
/// does not outlive its quiet period: nothing is left running after a plan.
#[test]
fn a_daemon_that_only_served_reads_exits_when_quiet() {
    let env = RunbookHome::new().with_env([("RUNBOOK_LOCAL_QUIET_EXIT_SECS", Some("2"))]);
    let out = env.run(&[
        "plan",
        runbook("failover.yaml").to_str().unwrap(),
        "--provider",
        "local",
    ]);
    let pid = env.daemon_pid().unwrap_or_else(|| {
        panic!(
            "the plan's reads started no daemon: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        wait::poll(Duration::from_secs(60), Duration::from_millis(200), || {
            !alive(pid)
        }),
        "daemon {pid} still running after a read-only plan"
    );
}

fn instances(env: &RunbookHome) -> Value {
    serde_json::from_str::<Value>(&env.text(&["local", "status"])).unwrap()["regions"].clone()
}

fn data_dirs(root: &Path, found: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.join("PG_VERSION").exists() {
            found.push(p);
        } else if p.is_dir() {
            data_dirs(&p, found);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_failover_failback_teardown_with_real_data() {
    let env = RunbookHome::new();

    // Deploy, twice: the second run converges to the same outputs.
    let t = Instant::now();
    let first = env.run_book(&runbook("deploy.yaml"), &[], "SUCCEEDED");
    let deploy_secs = t.elapsed().as_secs_f64();
    let out = &first["output"];
    assert_eq!(out["Route53CNAME"], "postgres.db-dev.internal");
    assert_eq!(out["Weights"]["primary"], 100);
    assert_eq!(out["Weights"]["replica"], 0);
    assert!(
        out["PrimaryEndpoint"]
            .as_str()
            .unwrap()
            .starts_with("primary-postgres-dev.")
    );
    let again = env.run_book(&runbook("deploy.yaml"), &[], "SUCCEEDED");
    for k in [
        "PrimaryEndpoint",
        "ReplicaEndpoint",
        "VpcIds",
        "PeeringId",
        "Weights",
    ] {
        assert_eq!(again["output"][k], out[k], "second deploy changed {k}");
    }
    // The plan agrees: walking deploy against what now exists finds nothing to change,
    // and a teardown plan would delete both instances without deleting anything.
    let plan: Value = serde_json::from_str(&env.text(&[
        "plan",
        runbook("deploy.yaml").to_str().unwrap(),
        "--provider",
        "local",
        "--json",
    ]))
    .unwrap();
    let s = &plan["summary"];
    assert_eq!(
        (&s["create"], &s["update"], &s["delete"], &plan["status"]),
        (&json!(0), &json!(0), &json!(0), &json!("SUCCEEDED")),
        "{plan:#}"
    );
    let plan: Value = serde_json::from_str(&env.text(&[
        "plan",
        runbook("teardown.yaml").to_str().unwrap(),
        "--provider",
        "local",
        "--json",
    ]))
    .unwrap();
    let deletes: Vec<&str> = plan["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "DeleteDBInstance")
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        deletes,
        ["replica-postgres-dev", "primary-postgres-dev"],
        "{plan:#}"
    );
    let regions = instances(&env);
    assert_eq!(
        regions["us-east-1"]["instances"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        regions["us-east-1"]["instances"][0]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "Multi-AZ"
    );
    assert_eq!(
        regions["eu-west-1"]["instances"][0]["identifier"],
        "replica-postgres-dev"
    );

    // Rows through the routed name, acknowledged by the primary.
    let conn = env.routed_conn();
    let c = client(&conn).await.unwrap();
    client::create_table(&c).await.unwrap();
    let mut acked: Vec<i64> = Vec::new();
    for id in 1..=200i64 {
        client::insert(&c, id).await.unwrap();
        acked.push(id);
    }
    drop(c);

    // A healthy primary: the policy declines, nothing moves.
    let none = env.run_book(&runbook("failover.yaml"), &[], "SUCCEEDED");
    assert_eq!(none["output"]["Promoted"], false);
    assert_eq!(none["output"]["Decision"]["Decision"], "none");

    // Lose the whole primary (both AZs), with a client writing all along.
    let writer = Writer::start(conn.clone(), 1_000);
    let writing = Instant::now();
    assert!(
        writer.wait_acked_since(writing, 5, MINUTE).await,
        "writes before the crash"
    );
    env.text(&["local", "crash", "primary-postgres-dev", "--all-nodes"]);
    let fo = env.run_book(&runbook("failover.yaml"), &[], "SUCCEEDED");
    let fo_out = &fo["output"];
    assert_eq!(fo_out["Promoted"], true);
    assert_eq!(fo_out["PrimaryWasReachable"], false);
    assert_eq!(fo_out["Weights"]["replica"], 100);
    assert_eq!(fo_out["Weights"]["primary"], 0);
    assert_eq!(fo_out["Canary"]["Written"], true);
    let promoted = Instant::now();
    assert!(
        writer.wait_acked_since(promoted, 10, MINUTE).await,
        "writes go on through the same name after failover"
    );
    let (during_failover, outage) = writer.finish().await;
    assert!(!during_failover.is_empty());
    // Every row acknowledged before the crash is on the new primary. (Rows a client saw
    // acknowledged in the last instants before an *unplanned* loss may be missing: the
    // replica is asynchronous across regions; that is the RPO the lag guard bounds.)
    assert_eq!(
        missing(&conn, &acked).await,
        Vec::<i64>::new(),
        "rows lost in failover"
    );
    let lost_async = missing(&conn, &during_failover).await.len();
    let c = client(&conn).await.unwrap();
    let r = c
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        !r.get::<_, bool>(0),
        "the routed name reaches a writable primary"
    );
    client::insert(&c, 500).await.unwrap();
    acked.push(500);
    drop(c);

    // Failback under a continuous writer: a planned switchover loses nothing.
    let writer = Writer::start(conn.clone(), 100_000);
    let fb = env.run_book(&runbook("failback.yaml"), &[], "SUCCEEDED");
    let failed_back = Instant::now();
    assert!(
        writer.wait_acked_since(failed_back, 10, MINUTE).await,
        "writes go on after failback"
    );
    let (during_failback, fb_outage) = writer.finish().await;
    assert!(
        !during_failback.is_empty(),
        "the writer made progress during failback"
    );
    let fb_out = &fb["output"];
    assert_eq!(fb_out["PrimaryIsReplica"], false);
    assert_eq!(fb_out["MultiAZ"], true);
    assert_eq!(fb_out["Weights"]["primary"], 100);
    assert_eq!(fb_out["Weights"]["replica"], 0);
    assert!(
        fb_out["ReplicaSource"]
            .as_str()
            .unwrap()
            .ends_with(":db:primary-postgres-dev")
    );
    let lost_failback = missing(&conn, &during_failback).await;
    assert_eq!(
        lost_failback,
        Vec::<i64>::new(),
        "acknowledged rows lost in failback"
    );
    assert_eq!(
        missing(&conn, &acked).await,
        Vec::<i64>::new(),
        "earlier rows lost in failback"
    );
    let c = client(&conn).await.unwrap();
    let port: i32 = c
        .query_one("SELECT inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    drop(c);
    // Topology as after deploy: Multi-AZ primary in us-east-1 behind the name, its
    // replica streaming in eu-west-1.
    let regions = instances(&env);
    let primary = &regions["us-east-1"]["instances"][0];
    assert_eq!(primary["identifier"], "primary-postgres-dev");
    assert_eq!(
        primary["nodes"].as_array().unwrap().len(),
        2,
        "Multi-AZ again"
    );
    assert_eq!(
        primary["nodes"][0]["port"].as_i64().unwrap(),
        i64::from(port),
        "the name reaches the primary's writer"
    );
    let replica = &regions["eu-west-1"]["instances"][0];
    assert_eq!(replica["identifier"], "replica-postgres-dev");
    assert_eq!(replica["source"][1], "primary-postgres-dev");

    // Swapping the policy is one line of YAML; the same binary then decides otherwise.
    // With the link cut for a while, the replica lags: lag-guard refuses, always promotes.
    let lag_guard = std::fs::read_to_string(runbook("failover.yaml")).unwrap();
    assert!(lag_guard.contains("Resource: plugin:lag-guard"));
    let always = env.home.path().join("failover-always.yaml");
    std::fs::write(
        &always,
        lag_guard.replace("Resource: plugin:lag-guard", "Resource: plugin:always"),
    )
    .unwrap();
    env.text(&["local", "partition"]);
    env.text(&["local", "crash", "primary-postgres-dev", "--all-nodes"]);
    let refused = env.run_book(
        &runbook("failover.yaml"),
        &["--param", "MaxLagSeconds=0.5"],
        "FAILED",
    );
    assert_eq!(refused["error"], "FailoverRefused", "{refused:#}");
    assert!(
        refused["cause"].as_str().unwrap().contains("exceeds"),
        "{refused:#}"
    );
    let promoted = env.run_book(&always, &["--param", "MaxLagSeconds=0.5"], "SUCCEEDED");
    assert_eq!(promoted["output"]["Policy"], "always");
    assert_eq!(promoted["output"]["Promoted"], true);
    env.text(&["local", "heal"]);

    // Teardown: nothing left — no daemon, no server, no port, no data directory.
    let daemon = env.daemon_pid().expect("daemon pid");
    let endpoint = env.text(&["endpoint", "postgres.db-dev.internal"]);
    let endpoint_port: u16 = endpoint.rsplit_once(':').unwrap().1.parse().unwrap();
    let td = env.run_book(&runbook("teardown.yaml"), &[], "SUCCEEDED");
    assert_eq!(td["output"]["Replica"]["Deleted"], true);
    assert!(
        wait::poll(Duration::from_secs(15), Duration::from_millis(200), || {
            !alive(daemon)
        }),
        "the daemon exits once nothing is left"
    );
    let servers = Command::new("pgrep")
        .args(["-f", env.home.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&servers.stdout).trim().is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&servers.stdout)
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", endpoint_port)).is_err(),
        "routing endpoint still listening"
    );
    let mut dirs = Vec::new();
    data_dirs(env.home.path(), &mut dirs);
    assert!(dirs.is_empty(), "data directories left: {dirs:?}");

    eprintln!(
        "[dr figures] deploy {deploy_secs:.2} s; failover {} s (runbook), longest client-seen write outage {:?}; \
         rows acknowledged during the unplanned loss and not replicated: {lost_async} of {}; \
         failback {} s, longest write pause {:?}, acknowledged rows lost in failback: {} of {}",
        fo_out["DurationSeconds"],
        outage,
        during_failover.len(),
        fb_out["Report"]["DurationSeconds"],
        fb_outage,
        lost_failback.len(),
        during_failback.len()
    );
}
