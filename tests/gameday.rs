//! Game days end to end on the local provider, real PostgreSQL: `gameday.yaml` drives
//! its own application-like client through the routed name, injects the fault, runs
//! the real failover.yaml and failback.yaml as child executions, and judges the
//! client-seen RTO and lost writes. An independent client (its own connection and
//! ledger, nothing shared with the runner) writes through the same name all along:
//! what it saw is printed next to what the report says, and none of its acknowledged
//! rows may be lost. The report is rendered and loaded in real headless Chromium.
//!
//! Figures are printed, never asserted on (they are measurements).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runbook_test_support::chromium::Chromium;
use runbook_test_support::client::{Writer, missing};
use runbook_test_support::runbook::{RunbookHome, runbook, stderr, stdout_json, tail};
use serde_json::Value;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn gameday(env: &RunbookHome, params: &[&str]) -> (i32, Value, String) {
    let file = runbook("gameday.yaml");
    let mut args = vec!["run", file.to_str().unwrap(), "--json"];
    for p in params {
        args.push("--param");
        args.push(p);
    }
    let out = env.run(&args);
    let v = stdout_json(&out, &format!("{args:?}"));
    (out.status.code().unwrap_or(-1), v, stderr(&out))
}

/// A game day that must end SUCCEEDED (exit 0): its JSON result and wall time.
fn gameday_ok(env: &RunbookHome, params: &[&str]) -> (Value, Duration) {
    let wall = Instant::now();
    let (code, out, err) = gameday(env, params);
    let wall = wall.elapsed();
    assert_eq!(
        (code, out["status"].as_str()),
        (0, Some("SUCCEEDED")),
        "{out:#}\n{}",
        tail(&err, 80)
    );
    (out, wall)
}

fn report(env: &RunbookHome, id: &str) -> (i32, Value) {
    let out = env.run(&["report", id, "--format", "json"]);
    (
        out.status.code().unwrap_or(-1),
        stdout_json(&out, "runbook report --format json"),
    )
}

/// The client's own RTO: from the fault to its first acknowledged write after it that
/// followed a failed one (None when it never failed).
fn independent_rto(w: &Writer, started: (Instant, i64), fault_ms: i64) -> Option<f64> {
    let fault = started.0 + Duration::from_millis((fault_ms - started.1).max(0) as u64);
    let ledger = w.ledger();
    let mut failed = false;
    for a in ledger.attempts.iter().filter(|a| a.at >= fault) {
        if !a.acked {
            failed = true;
        } else if failed {
            return Some(a.at.duration_since(fault).as_secs_f64());
        }
    }
    None
}

/// The report's timeline: the first event named `name` (its `at_ms`).
fn milestone(rep: &Value, name: &str) -> Option<i64> {
    rep["timeline"]
        .as_array()?
        .iter()
        .find(|e| e["event"] == name)
        .and_then(|e| e["at_ms"].as_i64())
}

/// A freshly deployed environment and an independent client writing through its routed
/// name (its start on both clocks, to place the fault on its ledger).
async fn deployed_with_independent_client() -> (RunbookHome, String, (Instant, i64), Writer) {
    let env = RunbookHome::new();
    env.run_book(&runbook("deploy.yaml"), &[], "SUCCEEDED");
    let conn = env.routed_conn();
    let c = runbook_test_support::client::client(&conn).await.unwrap();
    runbook_test_support::client::create_table(&c)
        .await
        .unwrap();
    let started = (Instant::now(), now_ms());
    let writer = Writer::start(conn.clone(), 1);
    (env, conn, started, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_loss_game_day_with_failback_measures_what_clients_saw() {
    let (env, conn, started, writer) = deployed_with_independent_client().await;

    // The plan lists the faults it would inject, and the child runbooks' calls.
    let plan = env.run(&[
        "plan",
        runbook("gameday.yaml").to_str().unwrap(),
        "--provider",
        "local",
        "--json",
    ]);
    let plan = stdout_json(&plan, "plan gameday.yaml --provider local");
    let calls = plan["calls"].as_array().expect("planned calls").clone();
    assert!(
        calls.iter().any(|c| c["action"] == "InjectFault"
            && c["detail"]
                .as_str()
                .is_some_and(|d| d.contains("region-loss") && d.contains("us-east-1"))),
        "the plan names the fault: {calls:#?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c["action"] == "StartSession" && c["service"] == "traffic"),
        "{calls:#?}"
    );

    let (out, wall) = gameday_ok(&env, &[]);
    let id = out["execution_id"].as_str().unwrap().to_string();
    assert_eq!(out["output"]["Verdict"], "pass", "{out:#}");

    // The report, from the journal: a PASS with the client's own figures.
    let (rc, rep) = report(&env, &id);
    assert_eq!(rc, 0, "{rep:#}");
    assert_eq!(rep["schema"], "runbook.gameday.report/v1", "{rep:#}");
    assert_eq!(rep["verdict"], "pass", "{rep:#}");
    assert_eq!(rep["lost_writes"], 0, "{rep:#}");
    assert!(
        rep["measured"]["acked_writes"].as_u64().unwrap() > 100,
        "{rep:#}"
    );
    let rto = rep["rto_seconds"].as_f64().expect("an RTO was measured");
    let fault_ms = rep["fault"]["injected_at_ms"].as_i64().expect("fault time");
    assert_eq!(rep["fault"]["kind"], "region-loss");
    assert_eq!(rep["rpo_seconds"], 0.0, "verified, nothing lost: {rep:#}");

    // One timeline, on one clock, from the parent, the children and the client ledger:
    // every milestone of a region loss, in the order a failover makes them happen.
    let order = [
        "fault_injected",
        "detection",
        "decision",
        "fence",
        "promote",
        "weights_moved",
        "failback_done",
    ];
    let at: Vec<i64> = order
        .iter()
        .map(|m| milestone(&rep, m).unwrap_or_else(|| panic!("no {m} in {:#}", rep["timeline"])))
        .collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{order:?} at {at:?}");
    assert_eq!(at[0], fault_ms);
    let first_error = milestone(&rep, "first_client_error").expect("the client saw the loss");
    let recovered = milestone(&rep, "first_successful_write").expect("the client recovered");
    assert!(
        fault_ms <= first_error && first_error < recovered,
        "{:#}",
        rep["timeline"]
    );
    assert!(
        rep["timeline"][0]["at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{:#}",
        rep["timeline"][0]
    );
    let secs = |m: &str| (milestone(&rep, m).unwrap() - fault_ms) as f64 / 1000.0;
    println!(
        "region-loss timeline (s after the fault): first client error {:.2}, detection {:.2}, decision {:.2}, fence {:.2}, promote {:.2}, weights {:.2}, first successful write {:.2}, failback done {:.2}",
        secs("first_client_error"),
        secs("detection"),
        secs("decision"),
        secs("fence"),
        secs("promote"),
        secs("weights_moved"),
        secs("first_successful_write"),
        secs("failback_done")
    );

    // Parent and children are linked both ways; failover and failback really ran.
    let show = env.show(&id);
    let children = show["children"].as_array().unwrap();
    let names: Vec<&str> = children
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["failover", "failback"], "{show:#}");
    for c in children {
        assert_eq!(c["status"], "SUCCEEDED", "{show:#}");
        let child = env.show(c["execution_id"].as_str().unwrap());
        assert_eq!(child["parent_id"].as_str(), Some(id.as_str()));
    }
    let failover = env.show(children[0]["execution_id"].as_str().unwrap());
    assert_eq!(failover["output"]["Promoted"], true, "{failover:#}");
    assert_eq!(
        failover["output"]["Weights"], "pending",
        "the Route 53 API was down with us-east-1: {failover:#}"
    );

    // The independent client: nothing it was told is stored may be missing.
    let theirs = independent_rto(&writer, started, fault_ms);
    let (acked, _) = writer.finish().await;
    let lost = missing(&conn, &acked).await;
    assert!(
        lost.is_empty(),
        "the independent client lost acknowledged rows: {lost:?}"
    );
    println!(
        "region-loss game day: wall {:.1} s, report RTO {rto:.2} s, independent client RTO {theirs:?} s, {} acked by the game day's client, {} by the independent one",
        wall.as_secs_f64(),
        rep["measured"]["acked_writes"],
        acked.len()
    );

    // The report renders in a real browser.
    let dir = env.path().join("report-out");
    let out = env.run(&["report", &id, "-o", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let chromium = Chromium::find().expect("chromium (scripts/setup.sh installs it)");
    let dom = chromium.dump_dom(&dir.join("report.html")).unwrap();
    assert!(
        dom.contains("PASS") && dom.contains(&id),
        "{}",
        tail(&dom, 40)
    );
    assert!(dom.contains("<svg"), "charts are inline SVG");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuite") && !junit.contains("<failure"),
        "{junit}"
    );

    // An impossible target: the verdict says so, and the run fails with its name.
    let (code, out, err) = gameday(&env, &["Fault=writer-crash", "RtoTargetSeconds=0.001"]);
    assert_eq!(
        (code, out["error"].as_str()),
        (1, Some("GameDay.TargetMissed")),
        "{out:#}\n{}",
        tail(&err, 60)
    );
    let (rc, rep) = report(&env, out["execution_id"].as_str().unwrap());
    assert_eq!((rc, rep["verdict"].as_str()), (1, Some("fail")), "{rep:#}");
    assert!(
        rep["missed_targets"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{rep:#}"
    );
    println!(
        "writer-crash game day: report RTO {:?} s, lost {}",
        rep["measured"]["rto_seconds"], rep["measured"]["lost_writes"]
    );

    // The safety lever stops a game day before it touches anything.
    assert!(
        env.run(&["lever", "engage", "--reason", "change freeze"])
            .status
            .success()
    );
    let (code, out, _) = gameday(&env, &["Fault=writer-crash"]);
    assert_eq!(
        (code, out["error"].as_str()),
        (1, Some("GameDay.LeverEngaged")),
        "{out:#}"
    );
    let show = env.show(out["execution_id"].as_str().unwrap());
    assert!(show["faults"].as_array().unwrap().is_empty(), "{show:#}");
    // Its report is still written: aborted, with the reason.
    let (rc, rep) = report(&env, out["execution_id"].as_str().unwrap());
    assert_eq!(
        (rc, rep["verdict"].as_str()),
        (1, Some("aborted")),
        "{rep:#}"
    );
    assert!(rep.to_string().contains("LeverEngaged"), "{rep:#}");
    assert!(
        show["traffic_sessions"].as_array().unwrap().is_empty(),
        "{show:#}"
    );
    assert!(env.run(&["lever", "release"]).status.success());

    env.run_book(&runbook("teardown.yaml"), &[], "SUCCEEDED");
}

/// One line of figures per game day: wall time, RTO and lost writes from the report.
fn figures(fault: &str, wall: Duration, rep: &Value) {
    println!(
        "{fault}: wall {:.1} s, report RTO {:?} s, lost writes {}, RPO {:?} s, verdict {}",
        wall.as_secs_f64(),
        rep["rto_seconds"].as_f64(),
        rep["lost_writes"],
        rep["rpo_seconds"].as_f64(),
        rep["verdict"]
    );
}

/// Writer crash beside an independent client (their RTOs printed side by side), then a
/// runner SIGKILLed mid-failover, then the RPO guard's refusal, then a cut replication
/// link, on one environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_crash_runner_crash_slow_link_and_partition_game_days() {
    let (env, conn, started, writer) = deployed_with_independent_client().await;
    let (out, wall) = gameday_ok(&env, &["Fault=writer-crash"]);
    let id = out["execution_id"].as_str().unwrap();
    let (_, rep) = report(&env, id);
    assert_eq!(rep["verdict"], "pass", "{rep:#}");
    let fault_ms = rep["fault"]["injected_at_ms"].as_i64().unwrap();
    let ours = rep["measured"]["rto_seconds"].as_f64();
    let theirs = independent_rto(&writer, started, fault_ms);
    let (acked, _) = writer.finish().await;
    let lost = missing(&conn, &acked).await;
    assert!(lost.is_empty(), "{lost:?}");
    assert!(
        theirs.is_some(),
        "the independent client saw the writer crash too"
    );
    println!(
        "writer-crash: report RTO {ours:?} s, independent client RTO {theirs:?} s, difference {:?} s",
        ours.zip(theirs).map(|(a, b)| (a - b).abs())
    );
    figures("writer-crash", wall, &rep);

    // The failover's own runner is SIGKILLed as it enters Promote (region loss): the
    // game day resumes that same child execution, never a second one, and passes.
    let (out, wall) = gameday_ok(&env, &["Fault=runner-crash"]);
    let show = env.show(out["execution_id"].as_str().unwrap());
    let children: Vec<&Value> = show["children"].as_array().unwrap().iter().collect();
    assert_eq!(
        children.iter().filter(|c| c["name"] == "failover").count(),
        1,
        "{show:#}"
    );
    let crash = show["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "runner-crash")
        .cloned()
        .expect("the runner-crash fault is journaled");
    let details: Value = serde_json::from_str(crash["details"].as_str().unwrap()).unwrap();
    assert!(details["killed_pid"].as_u64().is_some(), "{details:#}");
    let failover = env.show(children[0]["execution_id"].as_str().unwrap());
    assert_eq!(failover["status"], "SUCCEEDED", "{failover:#}");
    assert_eq!(failover["output"]["Promoted"], true, "{failover:#}");
    let (_, rep) = report(&env, out["execution_id"].as_str().unwrap());
    figures("runner-crash", wall, &rep);

    // A replica lagging beyond the guard when the primary's region is lost: the policy
    // refuses, nothing is promoted, nothing acknowledged is lost.
    let (out, wall) = gameday_ok(&env, &["Fault=slow-link"]);
    let show = env.show(out["execution_id"].as_str().unwrap());
    let failover = &show["children"][0];
    assert_eq!(failover["status"], "FAILED", "{show:#}");
    let failover = env.show(failover["execution_id"].as_str().unwrap());
    assert_eq!(failover["error"], "FailoverRefused", "{failover:#}");
    let (_, rep) = report(&env, out["execution_id"].as_str().unwrap());
    assert_eq!(rep["measured"]["lost_writes"], 0, "{rep:#}");
    println!(
        "slow-link: refused ({}), client RTO after the undo {:?} s",
        failover["cause"], rep["measured"]["rto_seconds"]
    );
    figures("slow-link", wall, &rep);

    // The cross-region link is cut: the replica stops receiving WAL, the primary keeps
    // serving. Nothing to fail over (the policy decides so), the client never notices,
    // and the game day ends only once the replica has caught up again.
    let (out, wall) = gameday_ok(&env, &["Fault=partition"]);
    let id = out["execution_id"].as_str().unwrap();
    let (rc, rep) = report(&env, id);
    assert_eq!((rc, rep["verdict"].as_str()), (0, Some("pass")), "{rep:#}");
    assert_eq!(rep["fault"]["kind"], "partition");
    assert_eq!(rep["lost_writes"], 0, "{rep:#}");
    let checks = rep["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "no promotion while the primary serves" && c["passed"] == true),
        "{checks:#?}"
    );
    assert!(
        milestone(&rep, "decision").is_some(),
        "{:#}",
        rep["timeline"]
    );
    assert!(
        milestone(&rep, "promote").is_none(),
        "{:#}",
        rep["timeline"]
    );
    // The partition took effect in the client's own terms: the replica fell behind.
    let max_lag = rep["series"]["lag"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["lag_seconds"].as_f64())
        .fold(0.0, f64::max);
    assert!(max_lag >= 2.0, "the replica never fell behind: {max_lag} s");
    println!(
        "partition: max replica lag {max_lag:.1} s, failover decision {:?}, client errors {}",
        rep["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "decision")
            .map(|e| e["text"].clone()),
        rep["measured"]["failed_writes"]
    );
    figures("partition", wall, &rep);
    env.run_book(&runbook("teardown.yaml"), &[], "SUCCEEDED");
}

/// The game day's own runner is SIGKILLed while its failover child runs: `runbook
/// resume` re-attaches to that child (one failover execution, never two), the client
/// kept writing meanwhile (its driver is a process of its own), and the report after the
/// resume is a PASS with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_day_killed_mid_failover_resumes_and_reports() {
    let env = RunbookHome::new();
    env.run_book(&runbook("deploy.yaml"), &[], "SUCCEEDED");
    // Wait until the failover child exists, then SIGKILL the game day's runner.
    let id = kill_gameday_when(&env, &Default::default(), "its failover", |show| {
        show["children"].as_array().is_some_and(|c| !c.is_empty())
    });

    // One actor per environment: while the interrupted game day holds local/dev, a
    // failover of its own is refused, naming the holder.
    let busy = env.run(&[
        "run",
        runbook("failover.yaml").to_str().unwrap(),
        "--param",
        "Force=true",
    ]);
    let why = stderr(&busy);
    assert_eq!(busy.status.code(), Some(2), "{why}");
    assert!(why.contains("local/dev") && why.contains(&id), "{why}");

    let out = env.run(&["resume", &id, "--json"]);
    let v = stdout_json(&out, "resume");
    assert_eq!(
        v["status"],
        "SUCCEEDED",
        "{v:#}\n{}",
        tail(&stderr(&out), 80)
    );
    let show = env.show(&id);
    let failovers = show["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "failover")
        .count();
    assert_eq!(
        failovers, 1,
        "one failover execution, however often resumed: {show:#}"
    );
    let (rc, rep) = report(&env, &id);
    assert_eq!((rc, rep["verdict"].as_str()), (0, Some("pass")), "{rep:#}");
    assert_eq!(rep["measured"]["lost_writes"], 0);
    println!(
        "killed mid-failover, resumed: RTO {:?} s, {} acked",
        rep["measured"]["rto_seconds"], rep["measured"]["acked_writes"]
    );
    env.run_book(&runbook("teardown.yaml"), &[], "SUCCEEDED");
}

/// SIGKILL at other points of a game day — under traffic before the fault, while the
/// client waits to recover, while the failback child runs (mid-failover is the test
/// above) — then `runbook resume`: every one ends SUCCEEDED with a PASS report, one
/// failover and one failback execution, nothing lost, and the environment restored (the
/// next game day's steady-state hypothesis holds, and the last one is checked directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_day_killed_at_any_point_resumes_and_reports() {
    let env = RunbookHome::new();
    env.run_book(&runbook("deploy.yaml"), &[], "SUCCEEDED");
    // (where, reached): reached when the game day entered that Task state and, for the
    // failback, once its child execution exists.
    let points: [(&str, Reached); 3] = [
        ("SteadyState", |show| entered(show, "SteadyState")),
        ("AwaitRecovery", |show| entered(show, "AwaitRecovery")),
        ("Failback", |show| {
            show["children"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == "failback"))
        }),
    ];
    let mut seen = std::collections::HashSet::new();
    for (point, reached) in points {
        let id = kill_gameday_when(&env, &seen, point, reached);
        seen.insert(id.clone());

        let out = env.run(&["resume", &id, "--json"]);
        let v = stdout_json(&out, "resume");
        assert_eq!(
            v["status"],
            "SUCCEEDED",
            "killed at {point}: {v:#}\n{}",
            tail(&stderr(&out), 80)
        );
        let show = env.show(&id);
        for child in ["failover", "failback"] {
            let n = show["children"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["name"] == child)
                .count();
            assert_eq!(n, 1, "killed at {point}: one {child} execution: {show:#}");
        }
        let (rc, rep) = report(&env, &id);
        assert_eq!(
            (rc, rep["verdict"].as_str()),
            (0, Some("pass")),
            "killed at {point}: {rep:#}"
        );
        assert_eq!(rep["measured"]["lost_writes"], 0, "killed at {point}");
        assert!(
            rep["fault"]["undone_at_ms"].as_i64().is_some(),
            "killed at {point}: the fault was undone: {rep:#}"
        );
        println!(
            "killed at {point}, resumed: RTO {:?} s, {} acked",
            rep["measured"]["rto_seconds"], rep["measured"]["acked_writes"]
        );
    }
    // Restored: the routed name reaches a writable primary again.
    let c = runbook_test_support::client::client(&env.routed_conn())
        .await
        .unwrap();
    let row = c
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0), "the routed name reaches a primary");
    env.run_book(&runbook("teardown.yaml"), &[], "SUCCEEDED");
}

/// Whether a game day's `show --json` has reached a kill point.
type Reached = fn(&Value) -> bool;

/// Starts `runbook run gameday.yaml`, waits until the game day (one not in `seen`)
/// satisfies `reached` on its `show --json`, SIGKILLs its runner and returns its id.
fn kill_gameday_when(
    env: &RunbookHome,
    seen: &std::collections::HashSet<String>,
    point: &str,
    reached: impl Fn(&Value) -> bool,
) -> String {
    let file = runbook("gameday.yaml");
    let mut run = env
        .cmd(&["run", file.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let id = runbook_test_support::wait::poll_some(
        Duration::from_secs(240),
        Duration::from_millis(50),
        || {
            let list: Value = serde_json::from_str(&env.text(&["executions", "--json"])).ok()?;
            let id = list.as_array()?.iter().find(|e| {
                e["name"] == "gameday" && !seen.contains(e["execution_id"].as_str().unwrap_or(""))
            })?["execution_id"]
                .as_str()?
                .to_string();
            reached(&env.show(&id)).then_some(id)
        },
    )
    .unwrap_or_else(|| panic!("the game day never reached {point}"));
    run.kill().unwrap();
    let _ = run.wait();
    id
}

/// True when the execution's history has entered Task state `state`.
fn entered(show: &Value, state: &str) -> bool {
    show["history"].as_array().is_some_and(|h| {
        h.iter()
            .any(|e| e["kind"] == "TaskStateEntered" && e["state"] == state)
    })
}

/// The client's waiting steps read the safety lever first: engaged mid-run, they stop
/// the game day (`GameDay.LeverEngaged`, caught into its rollback) instead of waiting
/// on. Run through `runbook plugin test` with the lever's answer from a fixture.
#[test]
fn an_engaged_lever_stops_every_waiting_step_of_the_client() {
    let env = RunbookHome::new();
    let plugin = runbook_plugins_builtin::path("client").expect("the client plugin");
    let lever = |engaged: bool| {
        let f = env.path().join(format!("lever-{engaged}.json"));
        let v = serde_json::json!([{"service": "fault", "action": "GetLever",
            "response": {"engaged": engaged, "reason": "stop the game day", "since": null, "actor": "sre"}}]);
        std::fs::write(&f, v.to_string()).unwrap();
        f
    };
    let (on, off) = (lever(true), lever(false));
    let waits = [
        r#"{"Op":"SteadyState","SessionId":"s","MinAcked":10}"#,
        r#"{"Op":"AwaitRecovery","SessionId":"s","Since":"2026-12-07T00:00:00Z","Streak":5}"#,
        r#"{"Op":"AwaitLag","SessionId":"s","MinLagSeconds":2}"#,
        r#"{"Op":"AwaitCaughtUp","SessionId":"s","MaxLagSeconds":1}"#,
    ];
    for input in waits {
        let run = |fixture: &std::path::Path| {
            env.json(&[
                "plugin",
                "test",
                plugin.to_str().unwrap(),
                "--input",
                input,
                "--fixture",
                fixture.to_str().unwrap(),
                "--json",
            ])
        };
        let (code, out) = run(&on);
        assert_eq!(
            (code, out["error"].as_str()),
            (1, Some("GameDay.LeverEngaged")),
            "{input}: {out:#}"
        );
        assert!(
            out["cause"].as_str().unwrap().contains("stop the game day"),
            "{out:#}"
        );
        // Released: the step goes on to ask the client's session (which this fixture
        // does not answer).
        let (_, out) = run(&off);
        assert_ne!(out["error"], "GameDay.LeverEngaged", "{input}: {out:#}");
        assert!(
            out.to_string().contains("DescribeSession"),
            "{input}: {out:#}"
        );
    }
}
