//! `runbook serve` as an operator runs it: started in its own process group (so a test
//! can SIGKILL serve together with the workers it started, as a host crash or
//! `systemctl kill` would), on a free loopback port, its stderr in a log file. The
//! whole group is killed when the guard drops.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::http;
use crate::process::{alive, free_port};
use crate::runbook::RunbookHome;
use crate::wait;

pub struct ServeProc {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl ServeProc {
    /// `runbook serve --config CONFIG --listen 127.0.0.1:PORT`, returned once `/healthz`
    /// answers 200.
    pub fn start(home: &RunbookHome, config: &Path, log_name: &str) -> ServeProc {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = home.path().join(log_name);
        let err = std::fs::File::create(&log).expect("serve log");
        let mut cmd = home.cmd(&[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &addr.to_string(),
            "--log",
            "info",
        ]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().expect("spawning runbook serve");
        let mut s = ServeProc { child, addr, log };
        let up = wait::poll(Duration::from_secs(60), Duration::from_millis(100), || {
            http::get(addr, "/healthz").is_ok_and(|r| r.status == 200)
        });
        assert!(
            up,
            "runbook serve did not answer /healthz within 60 s (exited: {}):\n{}",
            s.exited(),
            s.log_text()
        );
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `/metrics` exposition.
    pub fn metrics(&self) -> String {
        http::get(self.addr, "/metrics")
            .map(|r| r.body)
            .unwrap_or_default()
    }

    /// The value of one sample, `name{label="v",...}` (labels in any order), or `name`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let want = normalize(sample);
        self.metrics().lines().find_map(|l| {
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.rsplit_once(' ')?;
            (normalize(k) == want).then(|| v.parse().ok()).flatten()
        })
    }

    /// SIGKILL serve and every worker of its process group at once.
    pub fn kill_group(&mut self) {
        let pgid = self.pid();
        // SAFETY: plain kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        wait::poll(Duration::from_secs(10), Duration::from_millis(50), || {
            group_empty(pgid)
        });
    }
}

/// `name{b="2",a="1"}` → `name{a="1",b="2"}` (label values here hold no commas).
fn normalize(sample: &str) -> String {
    match sample.split_once('{') {
        None => sample.to_string(),
        Some((name, rest)) => {
            let mut labels: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
            labels.sort_unstable();
            format!("{name}{{{}}}", labels.join(","))
        }
    }
}

/// No process is left in process group `pgid`.
fn group_empty(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) != 0 }
}

impl Drop for ServeProc {
    fn drop(&mut self) {
        let pgid = self.pid();
        if alive(pgid) {
            // SAFETY: our own child's process group.
            unsafe {
                libc::kill(pgid, libc::SIGTERM);
            }
            wait::poll(Duration::from_secs(10), Duration::from_millis(50), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            });
        }
        // Workers it left running (a failover in flight) go with the group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
