//! A real PostgreSQL 15 cluster for the traffic tests: initdb into a tempdir, started
//! by pg_ctl on a free 127.0.0.1 port with its socket in the tempdir, stopped on Drop.
//! As root the server tools run as the `postgres` system user (PostgreSQL refuses
//! root), as runner/provider-local does.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runbook_caps::{BoxFuture, ConnectInfo};
use runbook_traffic::{Batch, Entry, Kind, LagSample, Resolver, Sink, TrafficError, Which};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Pg {
    dir: tempfile::TempDir,
    data: PathBuf,
    pub port: u16,
    run_as: Option<(u32, u32)>,
}

fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "postgres").then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Pg {
    pub fn start() -> Pg {
        let dir = tempfile::tempdir().unwrap();
        let run_as = run_as();
        if let Some((u, g)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(u), Some(g)).unwrap();
        }
        let data = dir.path().join("data");
        let pg = Pg {
            data,
            port: free_port(),
            run_as,
            dir,
        };
        pg.tool("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .arg("--no-instructions")
            .ok("initdb");
        pg.start_again();
        pg
    }

    fn tool(&self, name: &str) -> Tool {
        let mut c = Command::new(Path::new(BIN).join(name));
        if let Some((u, g)) = self.run_as {
            c.uid(u).gid(g);
        }
        c.env("LC_ALL", "C").current_dir("/").stdin(Stdio::null());
        Tool(c)
    }

    /// Start (or restart) the server and wait until it accepts connections.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        self.tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-o", &opts, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("start")
            .ok("pg_ctl start");
    }

    /// Kill the server as a crash would (no clean shutdown).
    pub fn stop_immediate(&self) {
        self.tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "immediate", "stop"])
            .ok("pg_ctl stop");
    }

    pub fn info(&self) -> ConnectInfo {
        ConnectInfo {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "postgres".into(),
            password: String::new(),
            database: "postgres".into(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = self
                .tool("pg_ctl")
                .0
                .arg("-D")
                .arg(&self.data)
                .args(["-w", "-t", "10", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // SAFETY: kill(2) on the postmaster PID we started; signal 0 probes.
            unsafe {
                if libc::kill(pid, 0) == 0 {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

struct Tool(Command);

impl Tool {
    fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Tool {
        self.0.arg(a);
        self
    }
    fn args<const N: usize>(mut self, a: [&str; N]) -> Tool {
        self.0.args(a);
        self
    }
    fn ok(mut self, what: &str) {
        let out = self.0.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A resolver that counts its calls (one per connection attempt).
pub struct Counting {
    pub target: Mutex<ConnectInfo>,
    pub replica: Option<ConnectInfo>,
    pub calls: AtomicU64,
}

impl Counting {
    pub fn new(target: ConnectInfo, replica: Option<ConnectInfo>) -> Arc<Counting> {
        Arc::new(Counting {
            target: Mutex::new(target),
            replica,
            calls: AtomicU64::new(0),
        })
    }
}

impl Resolver for Counting {
    fn resolve(&self, which: Which) -> BoxFuture<'_, Result<ConnectInfo, TrafficError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let r = match which {
            Which::Target => Ok(self.target.lock().unwrap().clone()),
            Which::Replica => self.replica.clone().ok_or(TrafficError::Resolve {
                which: "replica".into(),
                message: "none".into(),
            }),
        };
        Box::pin(async move { r })
    }
}

/// What the sink received, upserted by (kind, id) as the journal does.
#[derive(Default)]
pub struct Recorded {
    pub batches: u64,
    pub first_batch_empty: Option<bool>,
    pub ledger: std::collections::BTreeMap<(Kind, u64), Entry>,
    pub lag: Vec<LagSample>,
    pub stop: bool,
}

impl Recorded {
    pub fn writes(&self) -> Vec<Entry> {
        self.ledger
            .values()
            .filter(|e| e.kind == Kind::Write)
            .cloned()
            .collect()
    }
    pub fn entries(&self) -> Vec<Entry> {
        self.ledger.values().cloned().collect()
    }
}

#[derive(Clone, Default)]
pub struct TestSink(pub Arc<Mutex<Recorded>>);

impl TestSink {
    pub fn get<T>(&self, f: impl FnOnce(&Recorded) -> T) -> T {
        f(&self.0.lock().unwrap())
    }
    pub fn request_stop(&self) {
        self.0.lock().unwrap().stop = true;
    }
}

impl Sink for TestSink {
    fn write(&mut self, batch: &Batch) -> Result<(), String> {
        let mut r = self.0.lock().unwrap();
        r.batches += 1;
        r.first_batch_empty.get_or_insert(batch.is_empty());
        for e in &batch.entries {
            r.ledger.insert((e.kind, e.id), e.clone());
        }
        r.lag.extend(batch.lag.iter().cloned());
        Ok(())
    }
    fn stop_requested(&mut self) -> bool {
        self.0.lock().unwrap().stop
    }
}

/// Poll `cond` every 20 ms until it holds, or panic after `secs`.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain client for checks made from the test itself.
pub async fn client(info: &ConnectInfo) -> tokio_postgres::Client {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&info.host)
        .port(info.port)
        .user(&info.user)
        .dbname(&info.database);
    let (c, conn) = cfg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}
