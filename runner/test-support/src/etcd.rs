//! A real etcd v3 cluster for a test: `n` members on 127.0.0.1 free ports (client and
//! peer), each with its own data directory in one temp directory, stopped by PID on
//! drop. Members can be killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT), or
//! restarted on their data directory, so fleet tests can take quorum away and give it
//! back. `scripts/setup.sh` installs Debian's `etcd-server` (and `etcd-client` for
//! etcdctl, used here as an independent client).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::{self, Guarded};
use crate::wait;

/// Where etcd is looked for when `RUNBOOK_ETCD` is not set (Debian's `etcd-server`).
pub const ETCD_CANDIDATES: [&str; 2] = ["/usr/bin/etcd", "/usr/local/bin/etcd"];
/// Where etcdctl is looked for when `RUNBOOK_ETCDCTL` is not set (`etcd-client`).
pub const ETCDCTL_CANDIDATES: [&str; 2] = ["/usr/bin/etcdctl", "/usr/local/bin/etcdctl"];

/// Raft timing of test members. Faster than etcd's defaults (100 ms / 1000 ms) so a
/// killed leader is replaced quickly, still far above loopback latency. It also sets
/// etcd's minimum lease TTL (1.5 × election timeout, rounded up to whole seconds): 1 s.
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 500;

/// Generous bound for a cluster to elect a leader after start or a restart.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);
/// Port races (a free port taken between probe and bind) are retried this many times.
const START_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("{0} not found (looked at $RUNBOOK_{1} and the Debian paths); run scripts/setup.sh")]
    NotFound(&'static str, &'static str),
    #[error("could not run etcd: {0}")]
    Io(#[from] std::io::Error),
    #[error("etcd cluster not healthy after {timeout:?}; member logs:\n{logs}")]
    Unhealthy { timeout: Duration, logs: String },
}

impl EtcdError {
    pub fn code(&self) -> &'static str {
        match self {
            EtcdError::NotFound(..) => "etcd.not_found",
            EtcdError::Io(_) => "etcd.io",
            EtcdError::Unhealthy { .. } => "etcd.unhealthy",
        }
    }
}

fn find(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// The etcd server binary: `$RUNBOOK_ETCD`, then [`ETCD_CANDIDATES`].
pub fn etcd_bin() -> Result<PathBuf, EtcdError> {
    find("RUNBOOK_ETCD", &ETCD_CANDIDATES).ok_or(EtcdError::NotFound("etcd", "ETCD"))
}

/// The etcdctl binary: `$RUNBOOK_ETCDCTL`, then [`ETCDCTL_CANDIDATES`].
pub fn etcdctl_bin() -> Result<PathBuf, EtcdError> {
    find("RUNBOOK_ETCDCTL", &ETCDCTL_CANDIDATES).ok_or(EtcdError::NotFound("etcdctl", "ETCDCTL"))
}

/// TLS on the members' client port (peers talk plain HTTP on loopback).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// PEM certificate (chain) and key of the members; the certificate must name
    /// 127.0.0.1 (an IP SAN), which is what clients dial.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// PEM CA that signs client certificates (`--trusted-ca-file`); etcdctl also
    /// trusts it for the members' certificates (tests use one CA for both).
    pub ca: PathBuf,
    /// `--client-cert-auth`: refuse clients without a certificate signed by `ca`.
    pub client_cert_auth: bool,
    /// Client certificate and key etcdctl uses against these members.
    pub etcdctl_cert: Option<(PathBuf, PathBuf)>,
}

/// How to start a cluster (default: plain HTTP).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub tls: Option<ServerTls>,
}

/// One member: its ports and, while it runs, its process.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// Plain-HTTP `/health` and `/metrics` (`--listen-metrics-urls`), whatever the
    /// client port speaks: the harness checks health there.
    pub metrics_port: u16,
    tls: bool,
    data_dir: PathBuf,
    log: PathBuf,
    process: Option<Guarded>,
}

impl Member {
    /// `http://127.0.0.1:<client port>` (`https://` on a TLS cluster).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// A running cluster. Dropping it resumes paused members (a stopped process would not
/// act on SIGTERM), stops every member by PID and removes the data directories.
pub struct Cluster {
    // Declared first: members stop before their directory goes.
    members: Vec<Member>,
    token: String,
    options: Options,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Start `n` members and wait until every one of them reports healthy (a leader is
    /// elected and the member serves requests).
    pub fn start(n: usize) -> Result<Cluster, EtcdError> {
        Cluster::start_with(n, Options::default())
    }

    /// [`Cluster::start`] with options (TLS on the client port).
    pub fn start_with(n: usize, options: Options) -> Result<Cluster, EtcdError> {
        assert!(n >= 1, "a cluster needs at least one member");
        let bin = etcd_bin()?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&bin, n, &options) {
                Ok(c) => return Ok(c),
                // Most likely a port taken between probe and bind: new ports, new try.
                Err(e @ EtcdError::Unhealthy { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn try_start(bin: &Path, n: usize, options: &Options) -> Result<Cluster, EtcdError> {
        let dir = tempfile::Builder::new().prefix("runbook-etcd-").tempdir()?;
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let name = format!("m{i}");
                Member {
                    data_dir: dir.path().join(&name),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port: process::free_port(),
                    peer_port: process::free_port(),
                    metrics_port: process::free_port(),
                    tls: options.tls.is_some(),
                    process: None,
                }
            })
            .collect();
        let token = format!(
            "runbook-test-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap_or_default().to_string_lossy()
        );
        let mut cluster = Cluster {
            members,
            token,
            options: options.clone(),
            dir,
        };
        for i in 0..n {
            cluster.spawn(bin, i)?;
        }
        cluster.wait_healthy(HEALTHY_TIMEOUT)?;
        Ok(cluster)
    }

    fn initial_cluster(&self) -> String {
        let mut s = String::new();
        for m in &self.members {
            if !s.is_empty() {
                s.push(',');
            }
            let _ = write!(s, "{}={}", m.name, m.peer_url());
        }
        s
    }

    fn spawn(&mut self, bin: &Path, i: usize) -> Result<(), EtcdError> {
        let initial_cluster = self.initial_cluster();
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)?;
        let mut cmd = Command::new(bin);
        // On a restart the data directory already holds the membership; etcd then
        // ignores the --initial-* flags, so the same command serves both.
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .arg("--listen-client-urls")
            .arg(m.endpoint())
            .arg("--advertise-client-urls")
            .arg(m.endpoint())
            .arg("--listen-peer-urls")
            .arg(m.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(m.peer_url())
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--heartbeat-interval")
            .arg(HEARTBEAT_MS.to_string())
            .arg("--election-timeout")
            .arg(ELECTION_MS.to_string())
            .arg("--listen-metrics-urls")
            .arg(m.metrics_url())
            .arg("--logger")
            .arg("zap")
            // Environment variables of an operator's etcd must not leak into a test.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(tls) = &self.options.tls {
            cmd.arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca);
            if tls.client_cert_auth {
                cmd.arg("--client-cert-auth");
            }
        }
        let guard = process::spawn(cmd, libc::SIGTERM)?;
        self.members[i].process = Some(guard);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// `--endpoints` value for etcdctl / a client: the client URLs joined by commas.
    pub fn endpoints_csv(&self) -> String {
        self.endpoints().join(",")
    }

    /// The member's PID while its process runs (paused counts as running).
    pub fn pid(&mut self, i: usize) -> Option<i32> {
        let p = self.members[i].process.as_mut()?;
        (!p.exited()).then(|| p.pid() as i32)
    }

    /// SIGKILL member `i` and wait until it is dead (and reaped).
    pub fn kill(&mut self, i: usize) {
        if let Some(pid) = self.pid(i) {
            process::signal(pid, libc::SIGCONT);
            process::stop_pid(pid, libc::SIGKILL);
        }
        // Dropping the guard reaps it (it has exited, so no signal is sent).
        self.members[i].process = None;
    }

    /// SIGSTOP member `i`: it keeps its sockets but answers nothing (a hung machine).
    pub fn pause(&mut self, i: usize) {
        if let Some(pid) = self.pid(i) {
            process::signal(pid, libc::SIGSTOP);
        }
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) {
        if let Some(pid) = self.pid(i) {
            process::signal(pid, libc::SIGCONT);
        }
    }

    /// Start a killed member again on its data directory (same name and ports).
    pub fn restart(&mut self, i: usize) -> Result<(), EtcdError> {
        if self.pid(i).is_some() {
            return Ok(());
        }
        let bin = etcd_bin()?;
        self.spawn(&bin, i)
    }

    /// Member `i` answers `GET /health` with `"health":"true"` (it has a leader and
    /// serves requests; etcd 3.4 checks this through a linearizable read). Asked on
    /// the plain metrics port, so it works on TLS clusters too.
    pub fn healthy(&self, i: usize) -> bool {
        http(self.members[i].metrics_port, "GET", "/health", None)
            .is_some_and(|(status, body)| status == 200 && body.contains("\"health\":\"true\""))
    }

    /// Wait until every running member is healthy; the error carries the member logs.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), EtcdError> {
        let running: Vec<usize> = (0..self.len()).filter(|&i| self.pid(i).is_some()).collect();
        let ok = wait::poll(timeout, Duration::from_millis(50), || {
            running.iter().all(|&i| self.healthy(i))
        });
        if ok {
            Ok(())
        } else {
            Err(EtcdError::Unhealthy {
                timeout,
                logs: self.logs(),
            })
        }
    }

    /// Every member's log (tails), for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let _ = writeln!(out, "--- {} ({})", m.name, m.log.display());
            for l in tail.into_iter().rev() {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }

    /// Run etcdctl (v3 API) against `endpoints` with a bounded command timeout.
    pub fn etcdctl_at(endpoints: &str, args: &[&str]) -> Result<Output, EtcdError> {
        let out = Command::new(etcdctl_bin()?)
            .env_clear()
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(endpoints)
            .arg("--command-timeout=10s")
            .arg("--dial-timeout=2s")
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(out)
    }

    /// Run etcdctl against every member (with the cluster's CA and etcdctl client
    /// certificate on a TLS cluster).
    pub fn etcdctl(&self, args: &[&str]) -> Result<Output, EtcdError> {
        let mut all: Vec<String> = Vec::new();
        if let Some(tls) = &self.options.tls {
            all.push(format!("--cacert={}", tls.ca.display()));
            if let Some((cert, key)) = &tls.etcdctl_cert {
                all.push(format!("--cert={}", cert.display()));
                all.push(format!("--key={}", key.display()));
            }
        }
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        Self::etcdctl_at(&self.endpoints_csv(), &all)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A paused member holds SIGTERM pending until continued.
        for i in 0..self.members.len() {
            self.resume(i);
        }
        // Signal all first, then wait: members shut down in parallel.
        for i in 0..self.members.len() {
            if let Some(pid) = self.pid(i) {
                process::signal(pid, libc::SIGTERM);
            }
        }
        for m in &mut self.members {
            // Guarded::drop waits (SIGKILL after its grace period) and reaps.
            m.process = None;
        }
    }
}

/// One HTTP/1.0 request on loopback with a short timeout: (status, body), or None when
/// nothing answers (a dead or paused member).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
        if Instant::now() > deadline {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A TCP proxy in front of one member that can lose answers: it forwards each
/// request to the member and, while `drop_answers` is above zero, closes the client's
/// connection as soon as the answer starts (the request was applied; the client never
/// learns it: an ambiguous outcome). Plain threads, so sync and async tests can use it;
/// they end with the test process.
pub struct AnswerDroppingProxy {
    port: u16,
    to_drop: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl AnswerDroppingProxy {
    /// Start in front of `upstream` (a member's client port), dropping the answers of
    /// the first `drop_answers` requests (`usize::MAX`: all).
    pub fn start(upstream: u16, drop_answers: usize) -> std::io::Result<AnswerDroppingProxy> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let to_drop = Arc::new(AtomicUsize::new(drop_answers));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (td, dd) = (to_drop.clone(), dropped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (td, dd) = (td.clone(), dd.clone());
                std::thread::spawn(move || {
                    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let (Ok(mut cr), Ok(mut uw)) = (client.try_clone(), up.try_clone()) else {
                        return;
                    };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut cr, &mut uw);
                        let _ = uw.shutdown(std::net::Shutdown::Write);
                    });
                    let (mut ur, mut cw) = (up, client);
                    // Answer by answer: each read that starts a response decides.
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match ur.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let drop_it = td
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
                                (d > 0).then(|| d.saturating_sub(usize::from(d != usize::MAX)))
                            })
                            .is_ok();
                        if drop_it {
                            dd.fetch_add(1, Ordering::SeqCst);
                            let _ = cw.shutdown(std::net::Shutdown::Both);
                            let _ = ur.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        if cw.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = cw.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Ok(AnswerDroppingProxy {
            port,
            to_drop,
            dropped,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drop the answers of the next `n` responses (`usize::MAX`: all, 0: none).
    pub fn drop_next(&self, n: usize) {
        self.to_drop.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many answers were dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdout(out: &Output) -> String {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A put that must succeed: retried until it does (a killed or paused member may
    /// have been the leader, and the survivors need an election first), 30 s at most.
    fn put(endpoints: &str, key: &str, value: &str) {
        let mut last = None;
        let ok = crate::wait::poll(Duration::from_secs(30), Duration::from_millis(200), || {
            let out = Cluster::etcdctl_at(endpoints, &["put", key, value]).expect("etcdctl");
            let ok = out.status.success() && stdout(&out) == "OK";
            last = Some(out);
            ok
        });
        assert!(ok, "put {key}: {last:?}");
    }

    fn get(endpoints: &str, key: &str) -> String {
        let out =
            Cluster::etcdctl_at(endpoints, &["get", "--print-value-only", key]).expect("etcdctl");
        assert!(out.status.success(), "get {key}: {out:?}");
        stdout(&out)
    }

    /// Three members start healthy on distinct ports, a write through one member is
    /// read back through another, the cluster keeps serving with one member SIGKILLed
    /// (and refuses with two, quorum lost), a restarted member catches up, and every
    /// process is gone once the cluster drops.
    #[test]
    fn three_members_survive_one_killed() {
        let mut c = Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)");
        let eps = c.endpoints();
        let pids: Vec<i32> = (0..3).map(|i| c.pid(i).expect("member running")).collect();
        let mut ports: Vec<u16> = (0..3)
            .flat_map(|i| [c.member(i).client_port, c.member(i).peer_port])
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(
            ports.len(),
            6,
            "every member has its own client and peer port"
        );

        put(&eps[0], "/t/a", "one");
        assert_eq!(get(&eps[2], "/t/a"), "one");

        c.kill(0);
        assert!(!process::alive(pids[0]), "member 0 is dead");
        let survivors = format!("{},{}", eps[1], eps[2]);
        put(&survivors, "/t/b", "two");
        assert_eq!(get(&eps[1], "/t/b"), "two");
        assert_eq!(get(&eps[2], "/t/a"), "one");

        // Two members down: no quorum, so a write must fail rather than succeed.
        c.pause(1);
        let out = Cluster::etcdctl_at(&eps[2], &["--command-timeout=2s", "put", "/t/c", "x"])
            .expect("etcdctl");
        assert!(!out.status.success(), "write without quorum: {out:?}");
        c.resume(1);

        c.restart(0).expect("restart member 0");
        c.wait_healthy(HEALTHY_TIMEOUT).expect("healthy again");
        assert_eq!(get(&eps[0], "/t/b"), "two", "restarted member caught up");

        let new_pid = c.pid(0).expect("member 0 running again");
        drop(c);
        for pid in pids.iter().skip(1).chain([&new_pid]) {
            assert!(!process::alive(*pid), "member {pid} stopped on drop");
        }
    }

    /// A paused member answers nothing, yet the rest of the cluster serves; resumed, it
    /// is healthy again; a cluster dropped while a member is paused still stops it.
    #[test]
    fn paused_member_is_unhealthy_then_recovers() {
        let mut c = Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)");
        let pid = c.pid(1).expect("member 1");
        c.pause(1);
        assert!(!c.healthy(1), "a stopped process cannot answer");
        let eps = c.endpoints();
        put(&format!("{},{}", eps[0], eps[2]), "/t/p", "v");
        c.resume(1);
        c.wait_healthy(HEALTHY_TIMEOUT)
            .expect("healthy after SIGCONT");
        assert_eq!(get(&eps[1], "/t/p"), "v");
        c.pause(1);
        drop(c);
        assert!(!process::alive(pid), "paused member stopped on drop");
    }
}
