//! A game day in fleet mode (issues 11 and 15): its client ledger, lag samples, fault
//! and lever live in etcd, so the runner that takes a game day over finishes it with
//! a correct report, and any runner can report it.
//!
//! Runner A starts `gameday.yaml` (region loss of the primary's region, failover and
//! failback as child executions) and is SIGKILLed the moment etcd has the game day's
//! `AwaitRecovery` Task scheduled: the fault is in place, the failover done, the
//! traffic driver (a process of its own, the application's stand-in) still writing.
//! Runner B (its own SQLite, which never saw the game day) takes it over: it reads the
//! driver's ledger from etcd while the driver keeps writing, undoes A's fault, runs
//! the failback, stops the driver through etcd and verifies every acknowledged write.
//! Runner C, which took no part, reports the same figures from etcd alone.

use std::time::Duration;

use runbook_test_support::etcd::Cluster;
use runbook_test_support::fleet::{
    self, Background, executions, kill_when_scheduled, take_over_at,
};
use runbook_test_support::runbook::{RunbookHome, runbook, tail};
use runbook_test_support::wait;
use serde_json::Value;

const DEV_OWNER_KEY: &str = "/runbook/owners/local/dev";

fn report(r: &RunbookHome, id: &str) -> (i32, Value) {
    r.json(&["report", id, "--format", "json"])
}

/// Acknowledged writes in the game day's ledger as the fleet journal has it now.
fn acked_now(r: &RunbookHome, id: &str) -> u64 {
    let (_, rep) = report(r, id);
    rep["measured"]["acked_writes"].as_u64().unwrap_or(0)
}

#[test]
fn a_game_day_taken_over_mid_run_finishes_with_one_report_readable_from_any_runner() {
    let cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet::url(&cluster);
    let a = fleet::home(&url, "runner-a", None);
    let b = fleet::home(&url, "runner-b", Some(a.path()));
    let c = fleet::home(&url, "runner-c", Some(a.path()));

    a.run_book(&runbook("deploy.yaml"), &[], "SUCCEEDED");

    let gameday = runbook("gameday.yaml");
    let mut run_a = Background::start(
        &a,
        &["run", gameday.to_str().unwrap(), "--json"],
        "gameday-a",
    );
    let killed = kill_when_scheduled(&cluster, &mut run_a, "AwaitRecovery");
    let id = executions(&c)
        .iter()
        .find(|e| e["name"] == "gameday")
        .and_then(|e| e["execution_id"].as_str())
        .expect("the game day in etcd")
        .to_string();

    // The driver outlives its runner and keeps its ledger in etcd: another runner
    // sees it grow while nobody drives the game day.
    let before = acked_now(&c, &id);
    wait::until(
        "the driver's ledger to grow in etcd after A died",
        Duration::from_secs(60),
        || acked_now(&c, &id) > before + 20,
    );

    let mut resume = take_over_at(&b, "runner-b", &cluster, &id, DEV_OWNER_KEY);
    println!(
        "game day takeover: runner-b owns local/dev {:.2} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    wait::until("B to finish the game day", Duration::from_secs(600), || {
        resume.exited()
    });
    let v = resume.json();
    assert_eq!(
        v["status"],
        "SUCCEEDED",
        "{v:#}\n{}",
        tail(&resume.stderr(), 60)
    );

    // B's report and C's (which never ran any of it) are the same, from etcd.
    let (rc_b, rep_b) = report(&b, &id);
    let (rc_c, rep_c) = report(&c, &id);
    assert_eq!(
        (rc_c, rep_c["verdict"].as_str()),
        (0, Some("pass")),
        "{rep_c:#}"
    );
    assert_eq!(rc_b, rc_c);
    for field in [
        "acked_writes",
        "lost_writes",
        "unknown_writes",
        "rto_seconds",
    ] {
        assert_eq!(
            rep_b["measured"][field], rep_c["measured"][field],
            "{field}: B {rep_b:#} C {rep_c:#}"
        );
    }
    assert_eq!(rep_c["measured"]["lost_writes"], 0, "{rep_c:#}");
    assert!(
        rep_c["measured"]["acked_writes"].as_u64().unwrap() > before + 20,
        "the report counts what the driver acknowledged after A died: {rep_c:#}"
    );
    assert!(
        rep_c["fault"]["undone_at_ms"].as_i64().is_some(),
        "B undid the fault A injected: {rep_c:#}"
    );

    // One failover (A's) and one failback (B's), both children of the game day.
    let shown = c.show(&id);
    for child in ["failover", "failback"] {
        let n = shown["children"]
            .as_array()
            .expect("children")
            .iter()
            .filter(|x| x["name"] == child)
            .count();
        assert_eq!(n, 1, "one {child}: {shown:#}");
    }

    // The lever is the fleet's: engaged on C, B sees it; released on B, C sees that.
    let out = c.run(&["lever", "engage", "--reason", "fleet-wide freeze"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, status) = b.json(&["lever", "status", "--json"]);
    assert_eq!(status["engaged"], true, "{status:#}");
    assert_eq!(status["reason"], "fleet-wide freeze");
    let out = b.run(&["lever", "release"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, status) = c.json(&["lever", "status", "--json"]);
    assert_eq!(status["engaged"], false, "{status:#}");

    println!(
        "fleet game day: RTO {:?} s, {} acknowledged, {} lost; {} acknowledged when A died",
        rep_c["measured"]["rto_seconds"],
        rep_c["measured"]["acked_writes"],
        rep_c["measured"]["lost_writes"],
        before
    );
    b.run_book(&runbook("teardown.yaml"), &[], "SUCCEEDED");
}
