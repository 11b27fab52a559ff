//! Fleet-mode harness: `runbook` homes that share one etcd cluster and one local cloud,
//! runner processes in the background, and an `etcdctl watch` that SIGKILLs a runner
//! the moment etcd sees a given write.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::etcd::Cluster;
use crate::process::{self, Guarded};
use crate::runbook::{RunbookHome, tail};
use crate::wait;

/// `etcd://host:port,...` of every member.
pub fn url(cluster: &Cluster) -> String {
    let hosts: Vec<String> = (0..cluster.len())
        .map(|i| format!("127.0.0.1:{}", cluster.member(i).client_port))
        .collect();
    format!("etcd://{}", hosts.join(","))
}

/// A runner's home: its own state dir (own SQLite), fleet mode on `url` with the
/// fastest safe timing (TTL 2 s), runner id `id`, and the local cloud in `local`
/// (`None`: its own state dir).
pub fn home(url: &str, id: &str, local: Option<&Path>) -> RunbookHome {
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

/// `runbook executions --json` as the fleet journal has it.
pub fn executions(r: &RunbookHome) -> Vec<Value> {
    let (code, v) = r.json(&["executions", "--json", "--limit", "500"]);
    assert_eq!(code, 0, "executions: {v}");
    v.as_array().cloned().unwrap_or_default()
}

/// The runner id an owner key holds (empty: none).
pub fn owner_of(cluster: &Cluster, key: &str) -> String {
    let out = cluster
        .etcdctl(&["get", key, "--print-value-only"])
        .expect("etcdctl get");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A runner process in the background, its stdout and stderr in files of its home;
/// SIGKILLed by PID on drop.
pub struct Background {
    process: Guarded,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    pub fn start(r: &RunbookHome, args: &[&str], name: &str) -> Background {
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

    pub fn pid(&self) -> i32 {
        self.process.pid() as i32
    }

    pub fn exited(&mut self) -> bool {
        self.process.exited()
    }

    /// Its stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Its stdout as one JSON document (`--json` results).
    pub fn json(&self) -> Value {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("no JSON result ({e}): {text}\n{}", tail(&self.stderr(), 40))
        })
    }
}

/// `runbook resume ID --json` on `b` (runner id `b_id`) in the background, started
/// again while the old owner's lease lives (`fleet.taken`), as an operator or a
/// watcher would, until `b_id` holds owner key `key`: the resume that did.
pub fn take_over_at(
    b: &RunbookHome,
    b_id: &str,
    cluster: &Cluster,
    id: &str,
    key: &str,
) -> Background {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut run = Background::start(b, &["resume", id, "--json"], "resume-b");
        let settled = wait::poll(Duration::from_secs(20), Duration::from_millis(50), || {
            owner_of(cluster, key) == b_id || run.exited()
        });
        assert!(settled, "{b_id} neither claimed nor gave up");
        if owner_of(cluster, key) == b_id {
            return run;
        }
        let err = run.stderr();
        assert!(err.contains("fleet.taken"), "{b_id}: {}", tail(&err, 20));
        assert!(Instant::now() < deadline, "{b_id} never took over");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGKILL `run` the moment etcd has a `TaskScheduled` of Task state `state` (an etcd
/// watch, not a poll: the kill lands while that Task is in flight); waits until it is
/// dead and returns when it was killed. Panics if `run` ended first.
pub fn kill_when_scheduled(cluster: &Cluster, run: &mut Background, state: &str) -> Instant {
    let want = format!("\"state\":\"{state}\"");
    let watch = Watch::start(cluster, "/runbook/exec/", run.pid(), move |line| {
        line.contains("\"kind\":\"TaskScheduled\"") && line.contains(&want)
    });
    wait::until(
        &format!("the runner to schedule {state}"),
        Duration::from_secs(400),
        || watch.fired() || run.exited(),
    );
    assert!(
        watch.fired(),
        "the runner ended before {state}: {}",
        tail(&run.stderr(), 40)
    );
    let killed = Instant::now();
    drop(watch);
    wait::until("the runner to die", Duration::from_secs(10), || {
        run.exited()
    });
    killed
}

/// `etcdctl watch --prefix` in the background: SIGKILLs `victim` at the first line
/// `hit` accepts. Stopped by PID on drop.
pub struct Watch {
    child: std::process::Child,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watch {
    pub fn start(
        cluster: &Cluster,
        prefix: &str,
        victim: i32,
        hit: impl Fn(&str) -> bool + Send + 'static,
    ) -> Watch {
        use std::io::BufRead;
        let mut child = std::process::Command::new(crate::etcd::etcdctl_bin().expect("etcdctl"))
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

    pub fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
