//! The provider side: a thin client of the local control plane daemon, which it starts
//! on demand (detached, one per state dir).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use runbook_caps::types::postgres::Target;
use runbook_caps::{BoxFuture, CapCall, CapError, ConnectInfo, Provider};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{debug, info};

use crate::error::{LocalError, Result};
use crate::layout::Layout;
use crate::proto::{Request, Response};

/// How to start the daemon: the CLI runs `runbook local daemon --state-dir DIR`.
#[derive(Debug, Clone)]
pub struct DaemonLauncher {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl DaemonLauncher {
    /// `PROGRAM local daemon --state-dir STATE_DIR`, the CLI's hidden subcommand.
    pub fn cli(program: impl Into<PathBuf>, state_dir: &Path) -> DaemonLauncher {
        DaemonLauncher {
            program: program.into(),
            args: vec![
                "local".into(),
                "daemon".into(),
                "--state-dir".into(),
                state_dir.display().to_string(),
            ],
        }
    }

    /// `PROGRAM --state-dir STATE_DIR` (the `runbook-local-daemon` binary of this crate).
    pub fn standalone(program: impl Into<PathBuf>, state_dir: &Path) -> DaemonLauncher {
        DaemonLauncher {
            program: program.into(),
            args: vec!["--state-dir".into(), state_dir.display().to_string()],
        }
    }
}

#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub state_dir: PathBuf,
    pub daemon: DaemonLauncher,
    /// How long to wait for a freshly started daemon to answer.
    pub start_timeout: Duration,
}

impl LocalConfig {
    pub fn new(state_dir: impl Into<PathBuf>, daemon: DaemonLauncher) -> LocalConfig {
        LocalConfig {
            state_dir: state_dir.into(),
            daemon,
            start_timeout: Duration::from_secs(20),
        }
    }
}

/// The `local` provider.
pub struct LocalProvider {
    layout: Layout,
    config: LocalConfig,
    starting: tokio::sync::Mutex<()>,
}

impl LocalProvider {
    /// Prepare the state dir. The daemon starts on the first call that needs it.
    pub fn open(config: LocalConfig) -> Result<LocalProvider> {
        let layout = Layout::new(&config.state_dir);
        layout.create()?;
        Ok(LocalProvider {
            layout,
            config,
            starting: tokio::sync::Mutex::new(()),
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.layout.state_dir
    }

    /// `HOST:PORT` of the routing endpoint for a Route 53 name (or of a DB instance by
    /// identifier or endpoint address): `runbook endpoint NAME`.
    pub async fn endpoint(&self, name: &str) -> Result<String> {
        let v = self
            .request(&Request::Endpoint {
                name: name.to_string(),
            })
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The secret's JSON (`{"username","password",...}`), as `aws secretsmanager
    /// get-secret-value` prints its SecretString: `runbook secret get NAME`. Reads the
    /// file directly (no daemon needed); searches every region when `region` is None.
    pub fn secret_get(&self, name: &str, region: Option<&str>) -> Result<Value> {
        crate::secrets::read_secret_file(&self.layout, name, region).map_err(LocalError::from)
    }

    /// `runbook local status`: daemon PID, instances, nodes, links and endpoints.
    /// Does not start the daemon.
    pub async fn status(&self) -> Result<Value> {
        match self.try_request(&Request::Status).await {
            Ok(v) => Ok(v),
            Err(_) => {
                Ok(serde_json::json!({"daemon": "stopped", "state_dir": self.layout.state_dir}))
            }
        }
    }

    /// `runbook local up`: start the daemon (which restarts the servers) if needed.
    pub async fn up(&self) -> Result<Value> {
        self.ensure_daemon().await?;
        self.status().await
    }

    /// `runbook local down`: stop every server and the daemon; state stays on disk.
    pub async fn down(&self) -> Result<()> {
        let pid = self.daemon_pid();
        if self
            .try_request(&Request::Shutdown { stop_servers: true })
            .await
            .is_err()
        {
            // No daemon: stop servers directly so `down` always leaves nothing running.
            crate::daemon::stop_all_servers(&self.layout).await?;
        }
        if let Some(pid) = pid {
            let started = Instant::now();
            while crate::pg::alive(pid) && started.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if crate::pg::alive(pid) {
                crate::pg::signal(pid, libc::SIGKILL);
            }
        }
        Ok(())
    }

    /// `runbook local crash INSTANCE`: SIGKILL the postmaster serving it (and its
    /// Multi-AZ standby too with `all_nodes`). Returns the killed PIDs.
    pub async fn crash(
        &self,
        instance: &str,
        region: Option<&str>,
        all_nodes: bool,
    ) -> Result<Value> {
        self.request(&Request::Crash {
            instance: instance.into(),
            region: region.map(Into::into),
            all_nodes,
        })
        .await
    }

    /// `runbook local partition`: cut the cross-region link.
    pub async fn partition(&self) -> Result<()> {
        self.request(&Request::Partition).await.map(drop)
    }

    /// `runbook local heal`: restore the cross-region link.
    pub async fn heal(&self) -> Result<()> {
        self.request(&Request::Heal).await.map(drop)
    }

    /// One-way latency of the cross-region link (default 35 ms).
    pub async fn set_link_latency(&self, ms: u64) -> Result<()> {
        self.request(&Request::SetLatency { ms }).await.map(drop)
    }

    /// Interval between metric samples of the servers (default 1 s).
    pub async fn set_sample_interval(&self, ms: u64) -> Result<()> {
        self.request(&Request::SetSampleInterval { ms })
            .await
            .map(drop)
    }

    /// Render a dashboard to a self-contained HTML file now; returns its path.
    pub async fn render_dashboard(&self, region: &str, name: &str) -> Result<PathBuf> {
        let v = self
            .request(&Request::RenderDashboard {
                region: region.into(),
                name: name.into(),
            })
            .await?;
        Ok(PathBuf::from(v.as_str().unwrap_or_default()))
    }

    /// PID of the running daemon, if any.
    pub fn daemon_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.layout.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        crate::pg::alive(pid).then_some(pid)
    }

    async fn request(&self, req: &Request) -> Result<Value> {
        match self.try_request(req).await {
            Ok(v) => Ok(v),
            Err(LocalError::Cap(e)) => Err(LocalError::Cap(e)),
            Err(_) => {
                self.ensure_daemon().await?;
                self.try_request(req).await
            }
        }
    }

    async fn try_request(&self, req: &Request) -> Result<Value> {
        let sock = self.layout.sock();
        let stream = UnixStream::connect(&sock)
            .await
            .map_err(LocalError::io("connect", &sock))?;
        let (r, mut w) = stream.into_split();
        let mut line = serde_json::to_string(req).expect("request serializes");
        line.push('\n');
        w.write_all(line.as_bytes())
            .await
            .map_err(LocalError::io("write", &sock))?;
        let mut reader = BufReader::new(r);
        let mut answer = String::new();
        reader
            .read_line(&mut answer)
            .await
            .map_err(LocalError::io("read", &sock))?;
        if answer.is_empty() {
            return Err(LocalError::Daemon(
                "daemon closed the connection without answering".into(),
            ));
        }
        let resp: Response = serde_json::from_str(&answer)
            .map_err(|e| LocalError::Daemon(format!("bad answer: {e}")))?;
        match (resp.ok, resp.error) {
            (_, Some(e)) => Err(LocalError::Cap(e)),
            (ok, None) => Ok(ok.unwrap_or(Value::Null)),
        }
    }

    /// Start the daemon detached (new session, output to `daemon.log`) unless it answers.
    pub async fn ensure_daemon(&self) -> Result<()> {
        let _guard = self.starting.lock().await;
        if self.try_request(&Request::Status).await.is_ok() {
            return Ok(());
        }
        let launcher = &self.config.daemon;
        info!(program = %launcher.program.display(), "starting local daemon");
        let log_path = self.layout.daemon_log();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(LocalError::io("open", &log_path))?;
        let log2 = log.try_clone().map_err(LocalError::io("open", &log_path))?;
        let mut cmd = std::process::Command::new(&launcher.program);
        cmd.args(&launcher.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        cmd.env("RUNBOOK_LOCAL_STATE_DIR", &self.layout.state_dir);
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec. setsid detaches from
        // our terminal; the second fork makes init the daemon's parent, so it is never a
        // zombie of ours and outlives us.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                match libc::fork() {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => Ok(()),
                    _ => libc::_exit(0),
                }
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(LocalError::io("spawn", &launcher.program))?;
        let _ = child.wait();
        let started = Instant::now();
        loop {
            if self.try_request(&Request::Status).await.is_ok() {
                debug!(ms = started.elapsed().as_millis() as u64, "daemon up");
                return Ok(());
            }
            if started.elapsed() > self.config.start_timeout {
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                return Err(LocalError::Daemon(format!(
                    "did not answer within {:?}; log {}: {}",
                    self.config.start_timeout,
                    log_path.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        Box::pin(async move {
            match self.request(&Request::Call { call }).await {
                Ok(v) => Ok(v),
                Err(LocalError::Cap(e)) => Err(e),
                Err(e) => Err(CapError::unavailable(e.to_string())),
            }
        })
    }

    fn connect_info<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<ConnectInfo, CapError>> {
        Box::pin(async move {
            let v = match self
                .request(&Request::ConnectInfo {
                    target: target.clone(),
                })
                .await
            {
                Ok(v) => v,
                Err(LocalError::Cap(e)) => return Err(e),
                Err(e) => return Err(CapError::unavailable(e.to_string())),
            };
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            Ok(ConnectInfo {
                host: s("host"),
                port: v["port"].as_u64().unwrap_or_default() as u16,
                user: s("user"),
                password: s("password"),
                database: s("database"),
            })
        })
    }
}
