//! `runbook serve` in fleet mode (issue 15, items 3 and 4): three serve processes with
//! their own state dirs (own SQLite journals) share one 3-member etcd cluster
//! (`--journal etcd://`) and one local cloud (`RUNBOOK_LOCAL_DIR`).
//! `tests/runbooks/fleet-pause.yaml` publishes one SNS notification (appended to a
//! file) per execution: the file counts who fired.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runbook_test_support::etcd::Cluster;
use runbook_test_support::fleet;
use runbook_test_support::runbook::{RunbookHome, fixture, tail};
use runbook_test_support::serve::ServeProc;
use runbook_test_support::wait;
use serde_json::Value;

fn utc_in(secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", now + secs),
            "+%Y-%m-%dT%H:%M:%S",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A serve config with one `at()` schedule per `(name, seconds from now)`, each running
/// fleet-pause (1 s pause) that publishes to `notes`.
fn config(dir: &Path, notes: &Path, slots: &[(&str, i64)]) -> PathBuf {
    let book = fixture("fleet-pause.yaml");
    let mut body = String::from("Schedules:\n");
    for (name, secs) in slots {
        body.push_str(&format!(
            "  {name}:\n    Runbook: {}\n    Params: {{ Path: {}, PauseSeconds: 1, Environment: fleet-{name} }}\n    Expression: at({})\n",
            book.display(),
            notes.display(),
            utc_in(*secs)
        ));
    }
    let path = dir.join("serve.yaml");
    std::fs::write(&path, body).unwrap();
    path
}

/// Lines of the notification file published after the pause.
fn published(notes: &Path) -> usize {
    std::fs::read_to_string(notes)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("after-pause"))
        .count()
}

/// serve's own journaled decisions (its local SQLite; no etcd needed to read them).
fn decisions(h: &RunbookHome, kind: &str) -> Vec<Value> {
    let (code, v) = h.json(&[
        "decisions",
        "--json",
        "--journal",
        "sqlite",
        "--kind",
        kind,
        "--limit",
        "500",
    ]);
    assert_eq!(code, 0, "decisions: {v}");
    v.as_array().cloned().unwrap_or_default()
}

/// Executions of fleet-pause in the fleet journal (etcd).
fn fleet_executions(h: &RunbookHome) -> Vec<Value> {
    fleet::executions(h)
        .into_iter()
        .filter(|e| e["name"] == "fleet-pause")
        .collect()
}

fn slot_claims(cluster: &Cluster) -> Vec<String> {
    let out = cluster
        .etcdctl(&["get", "/runbook/once/schedule/", "--prefix", "--keys-only"])
        .expect("etcdctl get");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

fn logs(serves: &[ServeProc]) -> String {
    serves
        .iter()
        .map(|s| tail(&s.log_text(), 30))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn three_serves_fire_each_slot_once_and_losers_record_the_winner() {
    let cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet::url(&cluster);
    // Only its directory: the shared local cloud.
    let local = RunbookHome::new();
    let homes: Vec<RunbookHome> = ["serve-a", "serve-b", "serve-c"]
        .iter()
        .map(|id| fleet::home(&url, id, Some(local.path())))
        .collect();
    let notes = local.path().join("notes.txt");
    let names = ["s1", "s2", "s3"];
    let cfg = config(
        homes[0].path(),
        &notes,
        &[("s1", 25), ("s2", 29), ("s3", 33)],
    );
    let serves: Vec<ServeProc> = homes
        .iter()
        .map(|h| ServeProc::start(h, &cfg, "serve.log"))
        .collect();
    for s in &serves {
        assert_eq!(
            s.metric("runbook_fleet_quorum"),
            Some(1.0),
            "{}",
            s.metrics()
        );
    }
    wait::until(
        "three scheduled executions SUCCEEDED in etcd",
        Duration::from_secs(120),
        || {
            let x = fleet_executions(&homes[0]);
            x.len() >= 3 && x.iter().all(|e| e["status"] == "SUCCEEDED")
        },
    );
    let execs = fleet_executions(&homes[1]);
    assert_eq!(execs.len(), 3, "one execution per slot: {execs:?}");
    assert_eq!(
        published(&notes),
        3,
        "one publish per slot\n{}",
        logs(&serves)
    );
    assert_eq!(
        slot_claims(&cluster).len(),
        3,
        "{:?}",
        slot_claims(&cluster)
    );

    // Every serve decided every slot: exactly one fired it, the two others journaled
    // who did.
    let mut per_home: Vec<Vec<Value>> = Vec::new();
    wait::until(
        "every serve decided every slot",
        Duration::from_secs(30),
        || {
            per_home = homes.iter().map(|h| decisions(h, "schedule")).collect();
            names.iter().all(|n| {
                per_home.iter().all(|d| {
                    d.iter().any(|x| {
                        x["subject"] == *n
                            && (x["action"] == "fire" || x["action"] == "fired-elsewhere")
                    })
                })
            })
        },
    );
    let ids = ["serve-a", "serve-b", "serve-c"];
    for n in names {
        let mut winner = None;
        let mut fires = 0;
        for (i, d) in per_home.iter().enumerate() {
            let mine: Vec<&Value> = d.iter().filter(|x| x["subject"] == n).collect();
            let fired = mine.iter().filter(|x| x["action"] == "fire").count();
            fires += fired;
            if fired == 1 {
                winner = Some((
                    ids[i],
                    mine.iter().find(|x| x["action"] == "fire").unwrap()["body"]["execution_id"]
                        .clone(),
                ));
            }
        }
        assert_eq!(fires, 1, "slot {n} fired {fires} times: {per_home:?}");
        let (who, exec) = winner.unwrap();
        for (i, d) in per_home.iter().enumerate() {
            if ids[i] == who {
                continue;
            }
            let lost = d
                .iter()
                .find(|x| x["subject"] == n && x["action"] == "fired-elsewhere")
                .unwrap_or_else(|| panic!("{} has no fired-elsewhere for {n}: {d:?}", ids[i]));
            assert_eq!(lost["body"]["runner"], who, "{lost}");
            assert_eq!(lost["body"]["execution_id"], exec, "{lost}");
            let summary = lost["body"]["summary"].as_str().unwrap();
            assert!(summary.contains(who), "{summary}");
        }
        eprintln!("slot {n}: fired by {who} ({exec})");
    }
}

#[test]
fn serves_stop_without_quorum_and_fire_again_when_it_returns() {
    let mut cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet::url(&cluster);
    // Only its directory: the shared local cloud.
    let local = RunbookHome::new();
    let homes: Vec<RunbookHome> = ["serve-a", "serve-b", "serve-c"]
        .iter()
        .map(|id| fleet::home(&url, id, Some(local.path())))
        .collect();
    let notes = local.path().join("notes.txt");
    // `during` comes due while two members are down; `after` once they are back.
    let cfg = config(homes[0].path(), &notes, &[("during", 40), ("after", 75)]);
    let serves: Vec<ServeProc> = homes
        .iter()
        .map(|h| ServeProc::start(h, &cfg, "serve.log"))
        .collect();
    for s in &serves {
        assert_eq!(
            s.metric("runbook_fleet_quorum"),
            Some(1.0),
            "{}",
            s.metrics()
        );
        assert_eq!(s.metric("runbook_fleet_lease_valid"), Some(1.0));
    }
    cluster.kill(1);
    cluster.kill(2);
    wait::until(
        "every serve reports no quorum and no valid lease",
        Duration::from_secs(30),
        || {
            serves.iter().all(|s| {
                s.metric("runbook_fleet_quorum") == Some(0.0)
                    && s.metric("runbook_fleet_lease_valid") == Some(0.0)
            })
        },
    );
    let text = serves[0].metrics();
    let check = runbook_test_support::promtool::check_metrics(&text).expect("promtool");
    assert!(check.clean(), "promtool: {check:?}\n{text}");
    assert!(
        text.contains("runbook_fleet_etcd_errors_total{code=\"fleet."),
        "{text}"
    );
    let page = runbook_test_support::http::get(serves[0].addr, "/")
        .expect("status page")
        .body;
    assert!(page.contains("NO etcd quorum"), "{page}");
    wait::until(
        "every serve skipped `during` for want of quorum",
        Duration::from_secs(60),
        || {
            homes.iter().all(|h| {
                decisions(h, "schedule").iter().any(|d| {
                    d["subject"] == "during"
                        && d["action"] == "skip"
                        && d["body"]["reason"] == "fleet-no-quorum"
                })
            })
        },
    );
    for (h, s) in homes.iter().zip(&serves) {
        assert!(
            decisions(h, "fleet")
                .iter()
                .any(|d| d["action"] == "stop-acting"),
            "no stop-acting decision\n{}",
            tail(&s.log_text(), 30)
        );
        assert!(
            s.log_text().contains("serve stops acting"),
            "{}",
            s.log_text()
        );
    }
    cluster.restart(1).expect("member 1 back");
    cluster.restart(2).expect("member 2 back");
    wait::until(
        "every serve reports quorum and a valid lease again",
        Duration::from_secs(60),
        || {
            serves.iter().all(|s| {
                s.metric("runbook_fleet_quorum") == Some(1.0)
                    && s.metric("runbook_fleet_lease_valid") == Some(1.0)
            })
        },
    );
    wait::until(
        "`after` fired and finished",
        Duration::from_secs(90),
        || {
            let x = fleet_executions(&homes[0]);
            x.len() == 1 && x[0]["status"] == "SUCCEEDED"
        },
    );
    // Nothing was started for `during`; `after` fired once.
    assert_eq!(fleet_executions(&homes[2]).len(), 1);
    assert_eq!(published(&notes), 1, "{}", logs(&serves));
    let fires: usize = homes
        .iter()
        .map(|h| {
            decisions(h, "schedule")
                .iter()
                .filter(|d| d["action"] == "fire")
                .count()
        })
        .sum();
    assert_eq!(fires, 1);
}

/// The serve whose worker drives an execution is SIGKILLed together with that worker
/// (serve's whole process group, as a host crash or `systemctl kill` would): the other
/// serve finds the execution RUNNING with no owner for one TTL, takes it over (a
/// worker of its own resumes it) and finishes it: one execution, SUCCEEDED, its history
/// gap-free, one publish, one takeover decision journaled.
#[test]
fn surviving_serve_takes_over_the_execution_of_a_killed_serve() {
    let cluster = Cluster::start(3).expect("3-member etcd");
    let url = fleet::url(&cluster);
    let local = RunbookHome::new();
    let ids = ["serve-a", "serve-b"];
    let homes: Vec<RunbookHome> = ids
        .iter()
        .map(|id| fleet::home(&url, id, Some(local.path())))
        .collect();
    let notes = local.path().join("notes.txt");
    // One slot; its execution waits 25 s (time to kill its serve and take it over). The
    // schedule names its environment, so both serves take over on it.
    let book = fixture("fleet-pause.yaml");
    let cfg = homes[0].path().join("serve.yaml");
    std::fs::write(
        &cfg,
        format!(
            "Schedules:\n  t1:\n    Runbook: {}\n    Environment: fleet-t1\n    Params: {{ Path: {}, PauseSeconds: 25, Environment: fleet-t1 }}\n    Expression: at({})\n",
            book.display(),
            notes.display(),
            utc_in(20)
        ),
    )
    .unwrap();
    let mut serves: Vec<ServeProc> = homes
        .iter()
        .map(|h| ServeProc::start(h, &cfg, "serve.log"))
        .collect();

    // The execution is in its Wait, driven by one serve's worker.
    let owner_key = "/runbook/owners/local/fleet-t1";
    let owner = || {
        let out = cluster
            .etcdctl(&["get", owner_key, "--print-value-only"])
            .expect("etcdctl get");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut id = String::new();
    wait::until(
        "the scheduled execution to reach its Wait, driven by a worker",
        Duration::from_secs(120),
        || {
            let Some(e) = fleet_executions(&homes[1]).into_iter().next() else {
                return false;
            };
            id = e["execution_id"].as_str().unwrap().to_string();
            owner().contains("-worker-")
                && homes[1].show(&id)["history"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h["kind"] == "WaitStateEntered"))
        },
    );
    let first = owner();
    let victim = ids
        .iter()
        .position(|s| first.starts_with(&format!("{s}-worker-")))
        .unwrap_or_else(|| panic!("owner {first} is no serve's worker"));
    let survivor = 1 - victim;
    // The worker serve started (its log: "worker started execution=ID pid=N").
    let worker_pid: i32 = serves[victim]
        .log_text()
        .lines()
        .find(|l| l.contains("worker started") && l.contains(&id))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pid=")))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no worker in the log:\n{}", serves[victim].log_text()));
    assert!(runbook_test_support::process::alive(worker_pid));
    serves[victim].kill_group();
    let killed = std::time::Instant::now();
    assert!(
        !runbook_test_support::process::alive(worker_pid),
        "the worker {worker_pid} died with its serve's process group"
    );

    // The survivor's worker takes the environment over.
    let mine = format!("{}-worker-", ids[survivor]);
    wait::until(
        "the surviving serve's worker to own the environment",
        Duration::from_secs(60),
        || owner().starts_with(&mine),
    );
    println!(
        "serve takeover: {} killed with its worker; {}'s worker owns the environment {:.2} s later \
         (fast timing, TTL 2 s: lease expiry + one TTL unowned + takeover pass)",
        ids[victim],
        ids[survivor],
        killed.elapsed().as_secs_f64()
    );
    wait::until(
        "the execution SUCCEEDED in etcd",
        Duration::from_secs(120),
        || {
            fleet_executions(&homes[survivor])
                .first()
                .is_some_and(|e| e["status"] == "SUCCEEDED")
        },
    );
    let execs = fleet_executions(&homes[survivor]);
    assert_eq!(execs.len(), 1, "one execution: {execs:?}");
    assert_eq!(execs[0]["execution_id"], id.as_str());
    assert_eq!(published(&notes), 1, "{}", logs(&serves));

    // One history: gap-free, started and ended once, each state entered once.
    let shown = homes[survivor].show(&id);
    let history = shown["history"].as_array().expect("history");
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
    for state in ["Before", "After"] {
        assert_eq!(count("TaskStateEntered", Some(state)), 1, "{history:#?}");
    }
    assert_eq!(count("WaitStateEntered", Some("Pause")), 1, "{history:#?}");

    // The survivor journaled one takeover, of this execution, and settled it.
    let takeovers: Vec<Value> = decisions(&homes[survivor], "fleet")
        .into_iter()
        .filter(|d| d["action"] == "takeover")
        .collect();
    assert_eq!(takeovers.len(), 1, "{takeovers:?}");
    assert_eq!(takeovers[0]["body"]["execution_id"], id.as_str());
    wait::until(
        "the survivor's own journal to have the finished copy",
        Duration::from_secs(30),
        || {
            let (code, v) = homes[survivor].json(&["show", &id, "--json", "--journal", "sqlite"]);
            code == 0 && v["status"] == "SUCCEEDED"
        },
    );
}
