//! failover.yaml's RequireApproval on the local provider, with real PostgreSQL: the
//! runbook pauses after the decision, before anything is fenced, on a
//! `notify.waitForTaskToken` Task. The operator's path is the test's path: the token
//! comes from the SNS notification (a file subscription on the alert topic stands in
//! for the pager) and is answered with `runbook task failure|success`. A rejection
//! fails the execution with the operator's error and leaves the environment as it was;
//! an approval carries the forced failover through to a writable routed name on the new
//! primary.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use runbook_test_support::client::{self, client, missing};
use runbook_test_support::runbook::{RunbookHome, runbook, stderr, tail};
use runbook_test_support::wait;
use serde_json::{Value, json};

/// Deadline for the notification of a paused failover (it normally takes seconds).
const LONG: Duration = Duration::from_secs(300);

/// States that fence the old primary or promote the replica: none may run unapproved.
const MOVING: [&str; 6] = [
    "FenceDead",
    "FenceLive",
    "WaitFenced",
    "EndSessions",
    "Promote",
    "ShiftWeights",
];

/// `runbook run failover.yaml --json` with approval required, in the background; its
/// stderr goes to a file (a pipe nobody reads could fill up and stall the runner).
fn start_failover(env: &RunbookHome, log: &str) -> Child {
    let file = runbook("failover.yaml");
    env.cmd(&[
        "run",
        file.to_str().unwrap(),
        "--json",
        "--param",
        "RequireApproval=true",
        "--param",
        "Force=true",
    ])
    .stdout(Stdio::piped())
    .stderr(File::create(env.path().join(log)).expect("stderr log"))
    .spawn()
    .expect("spawn runbook run")
}

/// Exit code and result object of a background run; `log` holds its stderr.
fn finish(env: &RunbookHome, child: Child, log: &str) -> (i32, Value) {
    let out = child.wait_with_output().expect("runner output");
    let err = std::fs::read_to_string(env.path().join(log)).unwrap_or_default();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout not JSON ({e}); stderr: {}", tail(&err, 60)));
    (out.status.code().unwrap_or(-1), v)
}

/// Every notification delivered to the pager file, as (subject, message object).
fn pages(pager: &Path) -> Vec<(String, Value)> {
    let Ok(text) = std::fs::read_to_string(pager) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let note: Value = serde_json::from_str(l).expect("notification JSON");
            let msg = note["Message"].as_str().expect("Message string");
            let msg = serde_json::from_str(msg).unwrap_or_else(|_| json!(msg));
            (
                note["Subject"].as_str().unwrap_or_default().to_string(),
                msg,
            )
        })
        .collect()
}

/// The `n`th (from 1) approval request the pager received, once it arrived.
fn approval_request(pager: &Path, n: usize) -> (String, Value) {
    wait::poll_some(LONG, Duration::from_millis(200), || {
        pages(pager)
            .into_iter()
            .filter(|(_, m)| m["Event"] == "failover-approval")
            .nth(n - 1)
    })
    .unwrap_or_else(|| panic!("approval request #{n} never paged: {:?}", pages(pager)))
}

/// The token the runner itself lists as awaited, for the one waiting execution.
fn listed_token(env: &RunbookHome) -> (String, String) {
    wait::poll_some(LONG, Duration::from_millis(200), || {
        let (code, list) = env.json(&["executions", "--json"]);
        if code != 0 {
            return None;
        }
        list.as_array()?.iter().find_map(|ex| {
            let w = ex["waiting_for_task_token"].as_array()?.first()?;
            Some((
                ex["execution_id"].as_str()?.to_string(),
                w["token"].as_str()?.to_string(),
            ))
        })
    })
    .expect("an execution waiting for a task token")
}

fn instances(env: &RunbookHome) -> Value {
    serde_json::from_str::<Value>(&env.text(&["local", "status"])).unwrap()["regions"].clone()
}

/// `conn` with its port swapped for `port` (same server host and credentials).
fn at_port(conn: &str, port: i64) -> String {
    conn.split(' ')
        .map(|kv| {
            if kv.starts_with("port=") {
                format!("port={port}")
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// (in recovery, default_transaction_read_only, server port) of the server at `conn`.
async fn role(conn: &str) -> (bool, String, i32) {
    let c = client(conn).await.expect("connect");
    let r = c
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'), inet_server_port()",
            &[],
        )
        .await
        .expect("role query");
    (r.get(0), r.get(1), r.get(2))
}

/// The states the execution scheduled a Task for, in order.
fn scheduled(env: &RunbookHome, id: &str) -> Vec<String> {
    env.show(id)["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["kind"] == "TaskScheduled")
        .map(|h| h["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_approval_moves_nothing_and_approved_one_fails_over() {
    let env = RunbookHome::new();
    // What the on-call pager receives: the alert topic (replica region, where
    // failover.yaml publishes) delivered to a file.
    let pager = env.deploy_with_pager();

    let conn = env.routed_conn();
    let c = client(&conn).await.unwrap();
    client::create_table(&c).await.unwrap();
    let mut acked: Vec<i64> = Vec::new();
    for id in 1..=50i64 {
        client::insert(&c, id).await.unwrap();
        acked.push(id);
    }
    drop(c);

    // 1. Rejected: the page carries the token and the facts; the answer aborts.
    let child = start_failover(&env, "reject.log");
    let (subject, ask) = approval_request(&pager, 1);
    let (id, listed) = listed_token(&env);
    let token = ask["TaskToken"]
        .as_str()
        .expect("token in the page")
        .to_string();
    assert_eq!(
        token, listed,
        "the paged token is the one the runner awaits"
    );
    assert!(subject.contains("replica-postgres-dev"), "{subject}");
    assert_eq!(ask["Execution"], id.as_str(), "{ask:#}");
    assert_eq!(ask["Decision"]["Decision"], "promote", "{ask:#}");
    assert_eq!(ask["Decision"]["Forced"], true, "{ask:#}");
    assert_eq!(ask["Primary"]["Reachable"], true, "{ask:#}");
    assert_eq!(ask["PrimaryRegion"], "us-east-1");
    assert_eq!(ask["ReplicaRegion"], "eu-west-1");
    assert!(ask.get("Lag").is_some(), "{ask:#}");
    assert_eq!(
        ask["Approve"],
        format!("runbook task success {token}"),
        "{ask:#}"
    );
    assert!(
        ask["Reject"]
            .as_str()
            .is_some_and(|r| r.starts_with(&format!("runbook task failure {token} "))),
        "{ask:#}"
    );
    // Paused before fencing: nothing that moves anything has been scheduled.
    let so_far = scheduled(&env, &id);
    assert!(so_far.contains(&"AwaitApproval".to_string()), "{so_far:?}");
    assert!(
        !so_far.iter().any(|s| MOVING.contains(&s.as_str())),
        "{so_far:?}"
    );

    let out = env.run(&[
        "task",
        "failure",
        &token,
        "--error",
        "FailoverRejected",
        "--cause",
        "drill postponed",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, rejected) = finish(&env, child, "reject.log");
    assert_eq!(
        (code, rejected["status"].as_str()),
        (1, Some("FAILED")),
        "{rejected:#}"
    );
    assert_eq!(rejected["error"], "FailoverRejected", "{rejected:#}");
    assert_eq!(rejected["cause"], "drill postponed", "{rejected:#}");
    let ran = scheduled(&env, &id);
    assert!(ran.contains(&"NotifyNotApproved".to_string()), "{ran:?}");
    assert!(!ran.iter().any(|s| MOVING.contains(&s.as_str())), "{ran:?}");
    let not_approved: Vec<Value> = pages(&pager)
        .into_iter()
        .filter(|(_, m)| m["Event"] == "failover-not-approved")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(not_approved.len(), 1, "{:?}", pages(&pager));
    assert_eq!(
        not_approved[0]["Error"],
        json!({"Error": "FailoverRejected", "Cause": "drill postponed"})
    );

    // The environment as deploy left it: the writer of the Multi-AZ primary in
    // us-east-1 behind the name, not fenced; the replica still streaming from it.
    let regions = instances(&env);
    let primary = &regions["us-east-1"]["instances"][0];
    assert_eq!(primary["identifier"], "primary-postgres-dev", "{regions:#}");
    assert_eq!(primary["nodes"].as_array().unwrap().len(), 2, "{regions:#}");
    let replica = &regions["eu-west-1"]["instances"][0];
    assert_eq!(replica["identifier"], "replica-postgres-dev", "{regions:#}");
    assert_eq!(replica["source"][1], "primary-postgres-dev", "{regions:#}");
    let (recovery, read_only, port) = role(&conn).await;
    assert_eq!(
        (recovery, read_only.as_str(), i64::from(port)),
        (false, "off", primary["nodes"][0]["port"].as_i64().unwrap()),
        "the routed name reaches the unfenced primary"
    );
    let replica_port = replica["nodes"][0]["port"].as_i64().unwrap();
    let (recovery, _, _) = role(&at_port(&conn, replica_port)).await;
    assert!(recovery, "the replica is still a replica");
    let c = client(&conn).await.unwrap();
    client::insert(&c, 100).await.unwrap();
    acked.push(100);
    drop(c);

    // 2. Approved: the same forced failover, carried through.
    let child = start_failover(&env, "approve.log");
    let (_, ask) = approval_request(&pager, 2);
    let (id2, listed) = listed_token(&env);
    assert_ne!(id2, id);
    let token2 = ask["TaskToken"]
        .as_str()
        .expect("token in the page")
        .to_string();
    assert_eq!(token2, listed);
    assert_ne!(token2, token, "a fresh token per execution");
    assert_eq!(ask["Execution"], id2.as_str(), "{ask:#}");
    assert_eq!(ask["Decision"]["Decision"], "promote", "{ask:#}");
    let out = env.run(&["task", "success", &token2]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, fo) = finish(&env, child, "approve.log");
    assert_eq!(
        (code, fo["status"].as_str()),
        (0, Some("SUCCEEDED")),
        "{fo:#}"
    );
    let o = &fo["output"];
    assert_eq!(o["Promoted"], true, "{fo:#}");
    assert_eq!(o["NewPrimary"], "replica-postgres-dev");
    assert_eq!(o["PrimaryWasReachable"], true);
    assert_eq!(o["Weights"], json!({"primary": 0, "replica": 100}));
    assert_eq!(o["Canary"]["Written"], true);
    let ran = scheduled(&env, &id2);
    let at = |s: &str| {
        ran.iter()
            .position(|r| r == s)
            .unwrap_or_else(|| panic!("{s} never ran: {ran:?}"))
    };
    assert!(
        at("AwaitApproval") < at("FenceLive") && at("FenceLive") < at("Promote"),
        "approval before fencing before promotion: {ran:?}"
    );
    assert!(
        pages(&pager)
            .iter()
            .any(|(_, m)| m["Event"] == "failover" && m["NewPrimary"] == "replica-postgres-dev"),
        "{:?}",
        pages(&pager)
    );

    // The routed name now reaches the promoted replica, writable, with every row.
    let regions = instances(&env);
    let new_primary = &regions["eu-west-1"]["instances"][0];
    assert_eq!(new_primary["identifier"], "replica-postgres-dev");
    assert!(new_primary["source"].is_null(), "{regions:#}");
    let (recovery, read_only, port) = role(&conn).await;
    assert_eq!(
        (recovery, read_only.as_str(), i64::from(port)),
        (
            false,
            "off",
            new_primary["nodes"][0]["port"].as_i64().unwrap()
        ),
        "the routed name reaches the new, writable primary"
    );
    let c = client(&conn).await.unwrap();
    client::insert(&c, 200).await.unwrap();
    acked.push(200);
    drop(c);
    assert_eq!(missing(&conn, &acked).await, Vec::<i64>::new(), "rows lost");

    env.run_book(&runbook("teardown.yaml"), &[], "SUCCEEDED");
}
