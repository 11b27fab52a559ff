//! Fleet mode end to end (issue 15): `runbook` processes with their own state dirs
//! (their own SQLite journals) share one 3-member etcd cluster (`--journal etcd://`)
//! and one local cloud (`RUNBOOK_LOCAL_DIR`). An execution written to etcd by one
//! runner is taken over and finished by another; a stale runner neither writes nor
//! acts. `tests/runbooks/fleet-pause.yaml` publishes one SNS notification (appended to
//! a file) after a long Wait: the file counts who acted.
//!
//! Takeover times are printed, never asserted on (they are measurements).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runbook_test_support::client::{self, Writer, missing};
use runbook_test_support::etcd::Cluster;
use runbook_test_support::process::{self, Guarded};
use runbook_test_support::runbook::{RunbookHome, fixture, tail};
use runbook_test_support::wait;
use serde_json::Value;

const OWNER_KEY: &str = "/runbook/owners/local/fleet";
const DEV_OWNER_KEY: &str = "/runbook/owners/local/dev";

/// `etcd://host:port,...` of every member.
fn url(cluster: &Cluster) -> String {
    let hosts: Vec<String> = (0..cluster.len())
        .map(|i| format!("127.0.0.1:{}", cluster.member(i).client_port))
        .collect();
    format!("etcd://{}", hosts.join(","))
}

/// A runner: its own state dir, fleet mode on `url` with the fastest safe timing
/// (TTL 2 s), and the local cloud in `local` (`None`: its own state dir).
fn runner(url: &str, id: &str, local: Option<&Path>) -> RunbookHome {
    let home = RunbookHome::new();
    let local = local
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.path().to_path_buf());
    home.with_env([
        ("RUNBOOK_JOURNAL", Some(url.to_string())),
        ("RUNBOOK_FLEET_TIMING", Some("fast".into())),
        ("RUNBOOK_RUNNER_ID", Some(id.to_string())),
        ("RUNBOOK_LOCAL_DIR", Some(local.display().to_string())),
    ])
}

/// A runner process in the background, its stdout and stderr in files of its home.
struct Background {
    process: Guarded,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    fn start(r: &RunbookHome, args: &[&str], name: &str) -> Background {
        let out = r.path().join(format!("{name}.out"));
        let err = r.path().join(format!("{name}.err"));
        let mut cmd = r.cmd(args);
        cmd.stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        Background {
            process: process::spawn(cmd, libc::SIGKILL).expect("starting a runner"),
            out,
            err,
        }
    }

    fn pid(&self) -> i32 {
        self.process.pid() as i32
    }

    fn exited(&mut self) -> bool {
        self.process.exited()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn json(&self) -> Value {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("no JSON result ({e}): {text}\n{}", tail(&self.stderr(), 40))
        })
    }
}

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

/// `runbook executions --json` as the fleet journal has it.
fn executions(r: &RunbookHome) -> Vec<Value> {
    let (code, v) = r.json(&["executions", "--json"]);
    assert_eq!(code, 0, "executions: {v}");
    v.as_array().cloned().unwrap_or_default()
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

fn owner_of(cluster: &Cluster, key: &str) -> String {
    let out = cluster
        .etcdctl(&["get", key, "--print-value-only"])
        .expect("etcdctl get");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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
    take_over_at(b, cluster, id, OWNER_KEY)
}

fn take_over_at(b: &RunbookHome, cluster: &Cluster, id: &str, key: &str) -> Background {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut run = Background::start(b, &["resume", id, "--json"], "resume-b");
        let settled = wait::poll(Duration::from_secs(20), Duration::from_millis(50), || {
            owner_of(cluster, key) == "runner-b" || run.exited()
        });
        assert!(settled, "B neither claimed nor gave up");
        if owner_of(cluster, key) == "runner-b" {
            return run;
        }
        let err = run.stderr();
        assert!(err.contains("fleet.taken"), "B: {}", tail(&err, 20));
        assert!(Instant::now() < deadline, "B never took over");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let url = url(&cluster);
    let a = runner(&url, "runner-a", None);
    let b = runner(&url, "runner-b", Some(a.path()));
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
    let url = url(&cluster);
    let a = runner(&url, "runner-a", None);
    let b = runner(&url, "runner-b", Some(a.path()));
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
    assert_eq!(
        std::fs::read_to_string(&run_a.out).unwrap_or_default(),
        "",
        "A printed no result"
    );
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
    let url = url(&cluster);
    let a = runner(&url, "runner-a", None);
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
        let out = cluster
            .etcdctl(&["get", OWNER_KEY, "-w", "fields"])
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
    let url = url(&cluster);
    let a = runner(&url, "runner-a", None);
    let b = runner(&url, "runner-b", Some(a.path()));

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
    // Kill A the moment etcd has the Promote Task scheduled (an etcd watch, not a
    // poll: the local promotion takes well under a second), so its Task is in flight.
    let watch = Watch::start(&cluster, "/runbook/exec/", run_a.pid(), |line| {
        line.contains("\"kind\":\"TaskScheduled\"") && line.contains("\"state\":\"Promote\"")
    });
    wait::until(
        "the failover to reach Promote",
        Duration::from_secs(300),
        || watch.fired() || run_a.exited(),
    );
    assert!(
        watch.fired(),
        "A ended first: {}",
        tail(&run_a.stderr(), 40)
    );
    let killed = Instant::now();
    drop(watch);
    wait::until("runner A to die", Duration::from_secs(10), || {
        run_a.exited()
    });
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

    let mut resume = take_over_at(&b, &cluster, &id, DEV_OWNER_KEY);
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

/// `etcdctl watch --prefix` in the background: SIGKILLs `victim` at the first line
/// `hit` accepts. Stopped by PID on drop.
struct Watch {
    child: std::process::Child,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watch {
    fn start(
        cluster: &Cluster,
        prefix: &str,
        victim: i32,
        hit: impl Fn(&str) -> bool + Send + 'static,
    ) -> Watch {
        use std::io::BufRead;
        let mut child =
            std::process::Command::new(runbook_test_support::etcd::etcdctl_bin().expect("etcdctl"))
                .env_clear()
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &cluster.endpoints_csv(),
                    "watch",
                    "--prefix",
                    prefix,
                ])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("etcdctl watch");
        let out = child.stdout.take().unwrap();
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = fired.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if hit(&line) {
                    process::signal(victim, libc::SIGKILL);
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    break;
                }
            }
        });
        Watch { child, fired }
    }

    fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
