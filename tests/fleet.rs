//! Fleet mode end to end (issue 15): `runbook` processes with their own state dirs
//! (their own SQLite journals) share one 3-member etcd cluster (`--journal etcd://`)
//! and one local cloud (`RUNBOOK_LOCAL_DIR`). An execution written to etcd by one
//! runner is taken over and finished by another; a stale runner neither writes nor
//! acts. `tests/runbooks/fleet-pause.yaml` publishes one SNS notification (appended to
//! a file) after a long Wait: the file counts who acted.
//!
//! Takeover times are printed, never asserted on (they are measurements).

use std::path::Path;
use std::time::{Duration, Instant};

use runbook_test_support::client::{self, Writer, missing};
use runbook_test_support::etcd::Cluster;
use runbook_test_support::fleet::{
    self as fleet_harness, Background, executions, kill_when_scheduled, owner_of, take_over_at,
};
use runbook_test_support::process;
use runbook_test_support::runbook::{RunbookHome, fixture, log_lines_starting, tail};
use runbook_test_support::wait;
use serde_json::Value;

const OWNER_KEY: &str = "/runbook/owners/local/fleet";
const DEV_OWNER_KEY: &str = "/runbook/owners/local/dev";

fn start_run(a: &RunbookHome, notes: &Path, pause: u32) -> Background {
    let file = fixture("fleet-pause.yaml");
    let path = format!("Path={}", notes.display());
    let pause = format!("PauseSeconds={pause}");
    Background::start(
        a,
        &[
            "run",
            file.to_str().unwrap(),
            "--json",
            "--param",
            &path,
            "--param",
            &pause,
        ],
        "run-a",
    )
}

/// The id of the one fleet-pause execution once its history reached the Wait.
fn wait_until_paused(r: &RunbookHome) -> String {
    let mut id = String::new();
    wait::until(
        "the execution to reach its Wait state in etcd",
        Duration::from_secs(60),
        || {
            let Some(e) = executions(r)
                .into_iter()
                .find(|e| e["name"] == "fleet-pause")
            else {
                return false;
            };
            id = e["execution_id"].as_str().unwrap().to_string();
            r.show(&id)["history"]
                .as_array()
                .is_some_and(|h| h.iter().any(|h| h["kind"] == "WaitStateEntered"))
        },
    );
    id
}

fn owner(cluster: &Cluster) -> String {
    owner_of(cluster, OWNER_KEY)
}

/// The fencing token of the environment's owner: its owner key's create revision.
fn token(cluster: &Cluster) -> i64 {
    let out = cluster
        .etcdctl(&["get", OWNER_KEY, "-w", "json"])
        .expect("etcdctl get");
    let v: Value = serde_json::from_slice(&out.stdout).expect("etcdctl json");
    v["kvs"][0]["create_revision"].as_i64().unwrap_or(0)
}

/// `runbook resume ID --json` on `b` in the background, started again while the old
/// owner's lease lives (`fleet.taken`), as an operator or a watcher would, until B
/// owns the environment: the resume that did.
fn take_over(b: &RunbookHome, cluster: &Cluster, id: &str) -> Background {
    take_over_at(b, "runner-b", cluster, id, OWNER_KEY)
}

/// Lines of the notification file published after the pause.
fn published(notes: &Path) -> usize {
    std::fs::read_to_string(notes)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("after-pause"))
        .count()
}

/// The execution's history as etcd has it: gap-free sequence numbers, every state
/// entered exactly once, one start and one end.
fn assert_one_history(r: &RunbookHome, id: &str) -> Value {
    let shown = r.show(id);
    let history = shown["history"].as_array().expect("history").clone();
    for (i, h) in history.iter().enumerate() {
        assert_eq!(h["seq"], i as i64 + 1, "history sequence: {h}");
    }
    let count = |kind: &str, state: Option<&str>| {
        history
            .iter()
            .filter(|h| h["kind"] == kind && state.is_none_or(|s| h["state"] == s))
            .count()
    };
    assert_eq!(count("ExecutionStarted", None), 1, "{history:#?}");
    assert_eq!(count("ExecutionSucceeded", None), 1, "{history:#?}");
    assert_eq!(count("TaskStateEntered", Some("Before")), 1);
    assert_eq!(count("WaitStateEntered", Some("Pause")), 1);
    assert_eq!(count("TaskStateEntered", Some("After")), 1);
    assert_eq!(count("TaskSucceeded", Some("After")), 1);
    let publishes = shown["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter(|c| c["action"] == "Publish")
        .count();
    assert_eq!(publishes, 1, "one Publish in the call audit");
    shown
}

/// (a) Runner A is SIGKILLed during the Wait; runner B (its own state dir, which has
/// never seen the execution) resumes it: imported from etcd, finished, one execution,
/// the effect after the Wait made once.
#[test]
fn killed_owner_is_taken_over_by_another_runner() {
    let cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet_harness::url(&cluster);
    let a = fleet_harness::home(&url, "runner-a", None);
    let b = fleet_harness::home(&url, "runner-b", Some(a.path()));
    let notes = a.path().join("notes.txt");

    let mut run_a = start_run(&a, &notes, 12);
    let id = wait_until_paused(&b);
    assert_eq!(owner(&cluster), "runner-a");
    let token_a = token(&cluster);
    process::signal(run_a.pid(), libc::SIGKILL);
    let killed = Instant::now();
    wait::until("runner A to die", Duration::from_secs(10), || {
        run_a.exited()
    });
    drop(run_a);

    // B has no copy of the execution in its own journal.
    let local = b.run(&["show", &id, "--json", "--journal", "sqlite"]);
    assert_ne!(local.status.code(), Some(0), "B's SQLite knew {id} already");

    let mut resume = take_over(&b, &cluster, &id);
    println!(
        "takeover after SIGKILL: runner-b owns the environment {:.2} s after the kill \
         (fast timing, TTL 2 s)",
        killed.elapsed().as_secs_f64()
    );
    assert!(token(&cluster) > token_a, "B's fencing token is higher");
    wait::until("B to finish", Duration::from_secs(60), || resume.exited());
    let out = resume.json();
    assert_eq!(out["status"], "SUCCEEDED", "{out:#}");
    assert_eq!(out["execution_id"], id.as_str());
    assert_eq!(published(&notes), 1, "the Task after the Wait acted once");

    // One execution in the fleet journal, one consistent history; B's own journal
    // has the imported and finished copy; the environment was released at the end.
    let all = executions(&b);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["status"], "SUCCEEDED");
    assert_one_history(&b, &id);
    let (code, cached) = b.json(&["show", &id, "--json", "--journal", "sqlite"]);
    assert_eq!((code, cached["status"].as_str()), (0, Some("SUCCEEDED")));
    assert_eq!(owner(&cluster), "", "environment released after the end");
}

/// (b) Runner A is SIGSTOPped past its lease's TTL during the Wait; B takes the
/// execution over (higher fencing token); A is SIGCONTed while B drives it: A is
/// refused (`fleet.fenced`) and stops without acting, B finishes, etcd has one
/// consistent history and the Task after the Wait acted once.
#[test]
fn stale_runner_is_fenced_and_stops_acting() {
    let cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet_harness::url(&cluster);
    let a = fleet_harness::home(&url, "runner-a", None);
    let b = fleet_harness::home(&url, "runner-b", Some(a.path()));
    let notes = a.path().join("notes.txt");

    let mut run_a = start_run(&a, &notes, 15);
    let id = wait_until_paused(&b);
    let token_a = token(&cluster);
    let pid_a = run_a.pid();
    process::signal(pid_a, libc::SIGSTOP);
    let stopped = Instant::now();

    // A stays stopped until B owns the environment.
    let mut b_run = take_over(&b, &cluster, &id);
    assert!(token(&cluster) > token_a, "B's fencing token is higher");
    println!(
        "takeover after SIGSTOP: runner-b owns the environment {:.2} s after A stopped (TTL 2 s)",
        stopped.elapsed().as_secs_f64()
    );

    // A wakes while B drives the execution (B's Wait still runs).
    process::signal(pid_a, libc::SIGCONT);
    wait::until("stale runner A to stop", Duration::from_secs(20), || {
        run_a.exited()
    });
    let a_err = run_a.stderr();
    assert!(
        a_err.contains("error: fleet.fenced"),
        "A: {}",
        tail(&a_err, 20)
    );
    assert_eq!(run_a.stdout(), "", "A printed no result");
    assert_eq!(published(&notes), 0, "the stale runner did not act");

    wait::until("B to finish", Duration::from_secs(60), || b_run.exited());
    let v = b_run.json();
    assert_eq!(v["status"], "SUCCEEDED", "{v:#}");
    assert_eq!(published(&notes), 1, "B acted once");
    assert_one_history(&b, &id);

    // A's own journal stopped where A stopped: it never entered the state after the
    // Wait, and still says RUNNING (the fleet journal is the truth).
    let (code, a_local) = a.json(&["show", &id, "--json", "--journal", "sqlite"]);
    assert_eq!(code, 0);
    assert_eq!(a_local["status"], "RUNNING");
    assert!(
        !a_local["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["state"] == "After"),
        "{a_local:#}"
    );
}

/// (d) The etcd member the runner talks to (the first of its endpoints) is SIGKILLed
/// while the runner is in the Wait: its client fails over to another member, the same
/// runner keeps its ownership (same fencing token throughout) and finishes, and etcd
/// has one consistent history, which the restarted member serves too.
#[test]
fn runner_finishes_when_an_etcd_member_is_killed_mid_execution() {
    let mut cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet_harness::url(&cluster);
    let a = fleet_harness::home(&url, "runner-a", None);
    let notes = a.path().join("notes.txt");

    let mut run_a = start_run(&a, &notes, 8);
    let id = wait_until_paused(&a);
    assert_eq!(owner(&cluster), "runner-a");
    let token_a = token(&cluster);
    // Whether it is also the leader (then a leader election happens too), printed.
    let status = Cluster::etcdctl_at(
        &cluster.member(0).endpoint(),
        &["endpoint", "status", "-w", "json"],
    )
    .expect("etcdctl endpoint status");
    let status: Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let s0 = &status[0]["Status"];
    let was_leader = s0["leader"].is_u64() && s0["leader"] == s0["header"]["member_id"];
    cluster.kill(0);
    let killed = Instant::now();

    // Until it ends, the environment stays runner A's under the same token.
    let mut seen = Vec::new();
    wait::until("runner A to finish", Duration::from_secs(60), || {
        // One read for both (the owner releases at the end, between two reads);
        // `-w fields` prints them as text: `"Value" : "runner-a"`, `"CreateRevision" : 2`.
        // Read from a live member: etcdctl may spend its dial timeout on the dead one.
        let out = Cluster::etcdctl_at(
            &cluster.member(1).endpoint(),
            &["get", OWNER_KEY, "-w", "fields"],
        )
        .expect("etcdctl get");
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("\"{name}\" : ")))
                .map(|v| v.trim().trim_matches('"').to_string())
        };
        if let (Some(who), Some(rev)) = (field("Value"), field("CreateRevision")) {
            seen.push((who, rev.parse::<i64>().unwrap_or(0)));
        }
        run_a.exited()
    });
    let finished = killed.elapsed();
    assert!(
        !seen.is_empty(),
        "the owner key was never read after the kill"
    );
    assert!(
        seen.iter()
            .all(|(who, t)| who == "runner-a" && *t == token_a),
        "ownership changed hands: {seen:?}"
    );
    let out = run_a.json();
    assert_eq!(out["status"], "SUCCEEDED", "{out:#}");
    assert_eq!(out["execution_id"], id.as_str());
    assert_eq!(published(&notes), 1, "the Task after the Wait acted once");
    println!(
        "member 0 (leader: {was_leader}) killed in the Wait: runner A finished {:.2} s later, \
         {} owner reads, all runner-a with token {token_a}",
        finished.as_secs_f64(),
        seen.len()
    );

    let all = executions(&a);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["status"], "SUCCEEDED");
    let shown = assert_one_history(&a, &id);
    assert_eq!(owner(&cluster), "", "environment released after the end");

    // The killed member, restarted, has caught up: the same history, key for key.
    cluster.restart(0).expect("member 0 back");
    let prefix = format!("/runbook/exec/{id}/history/");
    let on_member = |i: usize| -> usize {
        let out = Cluster::etcdctl_at(
            &cluster.member(i).endpoint(),
            &["get", &prefix, "--prefix", "--keys-only", "--consistency=s"],
        )
        .expect("etcdctl get");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    let rows = shown["history"].as_array().unwrap().len();
    wait::until(
        "the restarted member to serve the whole history",
        Duration::from_secs(30),
        || on_member(0) == rows,
    );
    assert_eq!(on_member(1), rows);
}

/// (c) failover.yaml on the local provider (real PostgreSQL) with its owner SIGKILLed
/// once the promotion has begun: runner B takes it over and completes it, and the
/// replica is promoted once (the interrupted Promote Task is re-run; the plugin
/// describes before it acts, so a replica already promoting or standalone is not
/// promoted again).
#[test]
fn owner_killed_mid_failover_is_completed_by_another_runner_with_one_promotion() {
    let cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet_harness::url(&cluster);
    let a = fleet_harness::home(&url, "runner-a", None);
    let b = fleet_harness::home(&url, "runner-b", Some(a.path()));

    let deploy = runbook_test_support::runbook::runbook("deploy.yaml");
    let out = a.run(&["run", deploy.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "deploy: {}",
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    );
    // An independent client writes through the routed name for the whole test: what
    // the database acknowledged must survive the takeover.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let conn = a.routed_conn();
    rt.block_on(async {
        let c = client::client(&conn).await.expect("routed name");
        client::create_table(&c).await.expect("writer's table");
    });
    let writer = {
        let _in_runtime = rt.enter();
        Writer::start(conn.clone(), 1)
    };
    let writing = Instant::now();
    assert!(
        rt.block_on(writer.wait_acked_since(writing, 5, Duration::from_secs(30))),
        "the independent client writes before the crash"
    );
    a.text(&["local", "crash", "primary-postgres-dev", "--all-nodes"]);

    let failover = runbook_test_support::runbook::runbook("failover.yaml");
    let mut run_a = Background::start(
        &a,
        &["run", failover.to_str().unwrap(), "--json"],
        "failover-a",
    );
    // Kill A the moment etcd has the Promote Task scheduled (the local promotion
    // takes well under a second, so only a watch catches it in flight).
    let killed = kill_when_scheduled(&cluster, &mut run_a, "Promote");
    let all = executions(&b);
    let id = all
        .iter()
        .find(|e| e["name"] == "failover")
        .and_then(|e| e["execution_id"].as_str())
        .expect("the failover in etcd")
        .to_string();
    let at_kill = b.show(&id)["history"]
        .as_array()
        .and_then(|h| h.last().cloned())
        .unwrap_or_default();

    let mut resume = take_over_at(&b, "runner-b", &cluster, &id, DEV_OWNER_KEY);
    println!(
        "failover takeover: runner-b owns local/dev {:.2} s after the kill (A was killed after {} {})",
        killed.elapsed().as_secs_f64(),
        at_kill["kind"],
        at_kill["state"]
    );
    wait::until("B to finish the failover", Duration::from_secs(600), || {
        resume.exited()
    });
    let v = resume.json();
    assert_eq!(v["status"], "SUCCEEDED", "{v:#}");
    assert_eq!(v["output"]["Weights"]["replica"], 100, "{v:#}");

    // One promotion: the local control plane logs each one.
    let log = std::fs::read_to_string(a.path().join("local/daemon.log")).unwrap_or_default();
    let promotions = log
        .lines()
        .filter(|l| l.contains("read replica promoted"))
        .count();
    assert_eq!(promotions, 1, "{}", tail(&log, 60));

    // One failover execution in the fleet journal; each state entered once.
    let failovers = executions(&b)
        .into_iter()
        .filter(|e| e["name"] == "failover")
        .count();
    assert_eq!(failovers, 1);
    let shown = b.show(&id);
    let history = shown["history"].as_array().unwrap();
    for (i, h) in history.iter().enumerate() {
        assert_eq!(h["seq"], i as i64 + 1, "history sequence: {h}");
    }
    let promote_entered = history
        .iter()
        .filter(|h| h["kind"] == "TaskStateEntered" && h["state"] == "Promote")
        .count();
    assert_eq!(promote_entered, 1);

    // The independent client writes through the routed name again, and every write
    // the database acknowledged (before the crash, and after the takeover) is there.
    let done = Instant::now();
    assert!(
        rt.block_on(writer.wait_acked_since(done, 5, Duration::from_secs(60))),
        "the independent client writes through the routed name after the failover"
    );
    let (acked, outage) = rt.block_on(writer.finish());
    let lost = rt.block_on(missing(&conn, &acked));
    assert!(
        lost.is_empty(),
        "the independent client lost acknowledged rows after the takeover: {lost:?}"
    );
    println!(
        "independent client: {} writes acknowledged, none lost; longest outage it saw {:.2?}",
        acked.len(),
        outage
    );
}

/// `runbook stop` and `runbook redrive` from any runner: B stops the execution A
/// drives (A reads the request from etcd and aborts); C stops the execution of a
/// SIGKILLed runner (it takes it over once the lease is gone and aborts it itself);
/// B redrives what A ran and failed, under a new token.
#[test]
fn stop_and_redrive_work_from_any_runner() {
    let cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet_harness::url(&cluster);
    let a = fleet_harness::home(&url, "runner-a", None);
    let b = fleet_harness::home(&url, "runner-b", Some(a.path()));
    let c = fleet_harness::home(&url, "runner-c", Some(a.path()));
    let notes = a.path().join("notes.txt");

    // A live driver reads the stop request from etcd.
    let mut run_a = start_run(&a, &notes, 120);
    let id = wait_until_paused(&b);
    let asked = Instant::now();
    let (code, v) = b.json(&[
        "stop", &id, "--json", "--error", "Ops.Stop", "--cause", "from B",
    ]);
    assert_eq!((code, v["status"].as_str()), (0, Some("ABORTED")), "{v:#}");
    wait::until("A to end its run", Duration::from_secs(30), || {
        run_a.exited()
    });
    let a_out = run_a.json();
    assert_eq!(a_out["status"], "ABORTED", "{a_out:#}");
    assert_eq!(a_out["error"], "Ops.Stop");
    println!(
        "stop from another runner: ABORTED by its driver {:.2} s after the request",
        asked.elapsed().as_secs_f64()
    );
    assert_eq!(published(&notes), 0, "nothing after the Wait ran");
    // C never saw it: an id prefix is resolved against the fleet journal.
    let shown = c.show(&id[..8]);
    assert_eq!(
        (shown["execution_id"].as_str(), shown["status"].as_str()),
        (Some(id.as_str()), Some("ABORTED"))
    );

    // An orphan (its runner SIGKILLed) is aborted by the runner that asks.
    let mut run_a = start_run(&a, &notes, 120);
    let orphan = wait::poll_some(Duration::from_secs(60), Duration::from_millis(200), || {
        executions(&c)
            .into_iter()
            .find(|e| e["name"] == "fleet-pause" && e["status"] == "RUNNING")
            .and_then(|e| e["execution_id"].as_str().map(String::from))
            .filter(|o| {
                c.show(o)["history"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h["kind"] == "WaitStateEntered"))
            })
    })
    .expect("the second execution paused");
    process::signal(run_a.pid(), libc::SIGKILL);
    wait::until("A to die", Duration::from_secs(10), || run_a.exited());
    let (code, v) = c.json(&["stop", &orphan, "--json"]);
    assert_eq!((code, v["status"].as_str()), (0, Some("ABORTED")), "{v:#}");
    let shown = b.show(&orphan);
    assert_eq!(shown["status"], "ABORTED", "{shown:#}");
    assert!(
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "ExecutionAborted"),
        "C wrote the abort into the fleet's history: {shown:#}"
    );

    // Redrive on another runner than the one that failed it.
    let (code, v) = a.json(&["run", fixture("fails.yaml").to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "{v:#}");
    let failed = v["execution_id"].as_str().unwrap().to_string();
    let (code, v) = b.json(&["redrive", &failed, "--json"]);
    assert_eq!(code, 1, "the plugin fails deterministically: {v:#}");
    assert_eq!(v["execution_id"], failed.as_str());
    let shown = c.show(&failed);
    assert_eq!(shown["redrive_count"], 1, "{shown:#}");
    let scheduled = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "TaskScheduled")
        .count();
    assert_eq!(scheduled, 4, "two attempts by A, two by B's redrive");
}

/// `.waitForTaskToken` in fleet mode: A waits on a token and is SIGKILLed; the token
/// is answered on C (which never saw the execution) while nobody waits; B takes the
/// execution over and waits on the same token without running the notifier again,
/// takes C's answer and finishes. A second answer, from anywhere, is refused.
#[test]
fn task_tokens_are_answered_from_any_runner_and_survive_a_takeover() {
    let cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet_harness::url(&cluster);
    let a = fleet_harness::home(&url, "runner-a", None);
    let b = fleet_harness::home(&url, "runner-b", Some(a.path()));
    let c = fleet_harness::home(&url, "runner-c", Some(a.path()));

    let file = fixture("callback.yaml");
    let mut run_a = Background::start(&a, &["run", file.to_str().unwrap(), "--json"], "run-a");
    // The token, once A's notifier returned (the wait proper), as C reads it from etcd.
    let (id, token) = wait::poll_some(Duration::from_secs(120), Duration::from_millis(200), || {
        let e = executions(&c)
            .into_iter()
            .find(|e| e["name"] == "callback")?;
        let w = e["waiting_for_task_token"].as_array()?.first()?.clone();
        w["plugin_done_ms"].as_i64()?;
        Some((
            e["execution_id"].as_str()?.to_string(),
            w["token"].as_str()?.to_string(),
        ))
    })
    .expect("A waits on a task token, visible from C");
    process::signal(run_a.pid(), libc::SIGKILL);
    wait::until("A to die", Duration::from_secs(10), || run_a.exited());

    let out = c.run(&["task", "success", &token, "--output", r#"{"by": "carol"}"#]);
    assert!(
        out.status.success(),
        "{}",
        tail(&String::from_utf8_lossy(&out.stderr), 20)
    );
    // The first answer wins, whoever gives it next.
    let again = b.run(&["task", "failure", &token, "--error", "Rejected"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("TaskTimedOut"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let mut resume = take_over_at(
        &b,
        "runner-b",
        &cluster,
        &id,
        &format!("/runbook/owners/execution/{id}"),
    );
    wait::until("B to finish", Duration::from_secs(120), || resume.exited());
    let v = resume.json();
    assert_eq!(
        v["status"],
        "SUCCEEDED",
        "{v:#}\n{}",
        tail(&resume.stderr(), 40)
    );
    assert_eq!(
        v["output"]["after"],
        serde_json::json!({"approved_by": "carol"})
    );

    // The notifier ran once (A's), its log line in etcd once; the token is closed.
    let show = c.show(&id);
    assert_eq!(
        log_lines_starting(&show, "hello from logger"),
        1,
        "{show:#}"
    );
    let late = a.run(&["task", "heartbeat", &token]);
    assert_eq!(
        late.status.code(),
        Some(2),
        "a closed token takes no heartbeat"
    );
}
