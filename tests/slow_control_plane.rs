//! The DR runbooks against a local control plane as slow as AWS, scaled down:
//! `RUNBOOK_LOCAL_CONTROL_PLANE_SCALE` keeps every RDS operation in its transitional
//! status for scale × AWS's typical duration (see provider-local's pace.rs). Deploy, a
//! forced failover drill, failback, a region-loss game day (its own failover and
//! failback) and teardown must all succeed by waiting, not by the operations being
//! instant: each run lasts at least the paced durations of its operations, and the
//! failover's wait for the promotion retried while RDS was still promoting.
//!
//! Figures are printed, never asserted on beyond those lower bounds.

use std::time::Instant;

use runbook_test_support::runbook::{RunbookHome, runbook, stderr, stdout_json};
use serde_json::Value;

/// 1/200 of AWS: a promotion (210 s on AWS) takes 1.05 s, a Multi-AZ create 4.5 s, a
/// cross-region replica 6 s, a delete 2.1 s. About 80 s more than at full speed for
/// everything below.
const SCALE: f64 = 0.005;

/// Seconds AWS typically takes, as provider-local's pace table says.
const PROMOTE: f64 = 210.0;
const CREATE: f64 = 900.0;
const CREATE_REPLICA: f64 = 1200.0;
const DELETE: f64 = 420.0;
const MODIFY_MULTI_AZ: f64 = 900.0;

/// TaskFailed events whose error is `InstanceNotReady`: a wait that found RDS still busy
/// and retried.
fn not_ready_retries(env: &RunbookHome, id: &str) -> usize {
    let (_, show) = env.json(&["show", id, "--json"]);
    show["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["kind"] == "TaskFailed" && h.to_string().contains("InstanceNotReady"))
        .count()
}

fn timed(env: &RunbookHome, file: &str, extra: &[&str]) -> (Value, f64) {
    let t = Instant::now();
    let v = env.run_book(&runbook(file), extra, "SUCCEEDED");
    (v, t.elapsed().as_secs_f64())
}

#[test]
fn runbooks_wait_for_a_control_plane_as_slow_as_aws() {
    let env = RunbookHome::new()
        .with_env([("RUNBOOK_LOCAL_CONTROL_PLANE_SCALE", Some(SCALE.to_string()))]);

    let (_, deploy) = timed(&env, "deploy.yaml", &[]);
    let deploy_floor = SCALE * (CREATE + CREATE_REPLICA);
    assert!(
        deploy >= deploy_floor,
        "deploy took {deploy:.1} s, less than its paced create + replica ({deploy_floor:.1} s): the knob is not applied"
    );

    // A drill on a healthy primary: fence, catch up, promote (paced), weights, canary.
    let (fo, failover) = timed(&env, "failover.yaml", &["--param", "Force=true"]);
    assert_eq!(fo["output"]["Promoted"], true, "{fo:#}");
    assert_eq!(fo["output"]["Canary"]["Written"], true, "{fo:#}");
    let promote_floor = SCALE * PROMOTE;
    assert!(
        failover >= promote_floor,
        "failover took {failover:.1} s, less than its paced promotion ({promote_floor:.1} s)"
    );
    let fo_id = fo["execution_id"].as_str().expect("execution id");
    let retries = not_ready_retries(&env, fo_id);
    assert!(
        retries >= 1,
        "WaitStandalone never found the replica still promoting: nothing was paced"
    );

    // Back: delete, a replica in the old region, promotion, Multi-AZ, a fresh replica.
    let (_, failback) = timed(&env, "failback.yaml", &[]);
    let failback_floor =
        SCALE * (DELETE + CREATE_REPLICA + PROMOTE + MODIFY_MULTI_AZ.max(DELETE + CREATE_REPLICA));
    assert!(
        failback >= failback_floor,
        "failback took {failback:.1} s, less than its paced operations ({failback_floor:.1} s)"
    );

    // A region-loss game day: its failover and failback are child executions.
    let t = Instant::now();
    let file = runbook("gameday.yaml");
    let out = env.run(&["run", file.to_str().unwrap(), "--json"]);
    let gameday = t.elapsed().as_secs_f64();
    let gd = stdout_json(&out, "run gameday.yaml");
    assert_eq!(
        gd["status"],
        "SUCCEEDED",
        "game day under a slow control plane: {gd:#}\n{}",
        stderr(&out)
    );
    let id = gd["execution_id"].as_str().expect("execution id");
    let rep = env.run(&["report", id, "--format", "json"]);
    let rep = stdout_json(&rep, "runbook report --format json");
    assert!(
        gameday >= failback_floor + promote_floor,
        "game day took {gameday:.1} s, less than its paced failover and failback"
    );

    let (_, teardown) = timed(&env, "teardown.yaml", &[]);

    eprintln!(
        "control plane at {SCALE} × AWS: deploy {deploy:.1} s (paced floor {deploy_floor:.1}), \
         failover {failover:.1} s (promotion {promote_floor:.2} s, {retries} not-ready polls, \
         DurationSeconds {}), failback {failback:.1} s (floor {failback_floor:.1}), \
         game day {gameday:.1} s (verdict {}, RTO {} s, lost writes {}), teardown {teardown:.1} s",
        fo["output"]["DurationSeconds"], rep["verdict"], rep["rto_seconds"], rep["lost_writes"],
    );
}
