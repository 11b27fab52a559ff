//! Real PostgreSQL clusters: initdb, configuration, start/stop by PID, base backups,
//! promotion, and small SQL helpers. When we are root the server tools run as the
//! `postgres` system user (PostgreSQL refuses to run as root).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use runbook_caps::CapError;
use tokio::process::Command;
use tracing::{debug, info, warn};

use crate::error::{LocalError, Result};

/// Where the binaries are and whom they run as.
#[derive(Debug, Clone)]
pub struct PgEnv {
    pub bin: PathBuf,
    /// (uid, gid) of the server user when we are root.
    pub run_as: Option<(u32, u32)>,
}

/// Settings the provider owns in `runbook.conf` (the rest comes from parameter groups).
#[derive(Debug, Clone, Default)]
pub struct NodeConf {
    pub port: u16,
    pub cluster_name: String,
    /// `application_name` of the synchronous standby, on a Multi-AZ writer.
    pub sync_standby: Option<String>,
    /// Server settings from the instance's parameter group.
    pub params: BTreeMap<String, String>,
    pub ssl: bool,
}

impl PgEnv {
    pub fn detect() -> Result<PgEnv> {
        let mut candidates = Vec::new();
        if let Ok(dir) = std::env::var("RUNBOOK_PG_BIN") {
            candidates.push(PathBuf::from(dir));
        }
        candidates.push(PathBuf::from("/usr/lib/postgresql/15/bin"));
        let bin = candidates
            .into_iter()
            .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
            .ok_or_else(|| {
                LocalError::NoPostgres(
                    "looked in $RUNBOOK_PG_BIN and /usr/lib/postgresql/15/bin".into(),
                )
            })?;
        let run_as = if crate::layout::is_root() {
            Some(lookup_user("postgres")?)
        } else {
            None
        };
        Ok(PgEnv { bin, run_as })
    }

    fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bin.join(tool));
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c.env("LC_ALL", "C")
            .env_remove("PGPASSWORD")
            .current_dir("/")
            .stdin(Stdio::null());
        c
    }

    /// Run a tool to completion; the error carries the tail of its output.
    async fn run(&self, mut c: Command, what: &str) -> Result<(), CapError> {
        let started = Instant::now();
        let out = c
            .output()
            .await
            .map_err(|e| CapError::internal(format!("{what}: cannot run: {e}")))?;
        debug!(what, ms = started.elapsed().as_millis() as u64, "ran");
        if out.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        let tail: String = text
            .lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        Err(CapError::internal(format!(
            "{what} failed ({}): {tail}",
            out.status
        )))
    }

    /// A directory owned by the server user, mode 0700.
    pub fn make_private_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(LocalError::io("create", dir))?;
        self.chown(dir)?;
        crate::layout::chmod(dir, 0o700)
    }

    pub fn chown(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(LocalError::io("chown", path))?;
        }
        Ok(())
    }

    /// Write a file only the server user can read.
    pub fn write_private(&self, path: &Path, content: &str) -> Result<()> {
        std::fs::write(path, content).map_err(LocalError::io("write", path))?;
        crate::layout::chmod(path, 0o600)?;
        self.chown(path)
    }

    /// `initdb -N`: skipping the initial fsync is what makes create take a second.
    pub async fn initdb(&self, data: &Path, user: &str, password: &str) -> Result<(), CapError> {
        let parent = data.parent().expect("data dir has a parent");
        self.make_private_dir(parent)?;
        let pwfile = parent.join(format!(".{}.pw", file_name(data)));
        self.write_private(&pwfile, password)?;
        let mut c = self.cmd("initdb");
        c.arg("-D").arg(data).args([
            "-U",
            user,
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        ]);
        c.arg(format!("--pwfile={}", pwfile.display()))
            .arg("--no-instructions");
        let r = self.run(c, "initdb").await;
        let _ = std::fs::remove_file(&pwfile);
        r?;
        append_line(
            &data.join("postgresql.conf"),
            "include_if_exists 'runbook.conf'\n",
        )?;
        self.write_hba(data, false)?;
        Ok(())
    }

    /// scram-sha-256 everywhere; replication from loopback (the link ends there too).
    pub fn write_hba(&self, data: &Path, ssl: bool) -> Result<()> {
        let host = if ssl { "hostssl" } else { "host" };
        let hba = format!(
            "# managed by runbook (local provider)\n\
             {host} all all 127.0.0.1/32 scram-sha-256\n\
             {host} replication all 127.0.0.1/32 scram-sha-256\n"
        );
        self.write_private(&data.join("pg_hba.conf"), &hba)?;
        Ok(())
    }

    pub fn write_conf(&self, data: &Path, conf: &NodeConf) -> Result<()> {
        let mut s = String::from("# managed by runbook (local provider); edits are overwritten\n");
        let mut set = |k: &str, v: String| s.push_str(&format!("{k} = {v}\n"));
        set("listen_addresses", "'127.0.0.1'".into());
        set("port", conf.port.to_string());
        // No Unix sockets: their paths are length-limited and clients all use TCP.
        set("unix_socket_directories", "''".into());
        set("cluster_name", quote(&conf.cluster_name));
        set("max_connections", "100".into());
        set("shared_buffers", "'32MB'".into());
        set("wal_level", "replica".into());
        set("max_wal_senders", "10".into());
        set("max_replication_slots", "10".into());
        // Keep WAL so a lagging replica or pg_rewind on failback finds its records.
        set("wal_keep_size", "'256MB'".into());
        set("wal_log_hints", "on".into());
        set("hot_standby", "on".into());
        set("hot_standby_feedback", "on".into());
        set("password_encryption", "'scram-sha-256'".into());
        // Fast start after pg_basebackup --no-sync: one syncfs instead of a walk.
        set("recovery_init_sync_method", "syncfs".into());
        // Notice a cut link in seconds, and reconnect quickly after heal.
        set("wal_sender_timeout", "'10s'".into());
        set("wal_receiver_timeout", "'10s'".into());
        set("wal_receiver_status_interval", "'1s'".into());
        set("wal_retrieve_retry_interval", "'1s'".into());
        set("track_commit_timestamp", "on".into());
        set("log_line_prefix", "'%m [%p] %q%u@%d '".into());
        set("ssl", if conf.ssl { "on".into() } else { "off".into() });
        if let Some(sb) = &conf.sync_standby {
            set("synchronous_standby_names", quote(&format!("\"{sb}\"")));
        } else {
            set("synchronous_standby_names", "''".into());
        }
        for (k, v) in &conf.params {
            set(k, quote(v));
        }
        self.write_private(&data.join("runbook.conf"), &s)?;
        Ok(())
    }

    /// Start with `pg_ctl -w` (it detaches the postmaster into its own session).
    pub async fn start(&self, data: &Path, log: &Path) -> Result<(), CapError> {
        if postmaster_pid(data).is_some() {
            return Ok(());
        }
        wait_orphans(data).await;
        // A killed postmaster can linger as a zombie until init reaps it; PostgreSQL
        // would take that PID for a live server, so drop the stale lock file ourselves.
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        let mut c = self.cmd("pg_ctl");
        c.arg("start")
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(log)
            .args(["-w", "-t", "120", "-s"]);
        if let Err(mut e) = self.run(c, "pg_ctl start").await {
            // The server's own words are in its log.
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            e.message.push_str(&format!(
                " | server log: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
            return Err(e);
        }
        info!(data = %data.display(), "postgres started");
        Ok(())
    }

    /// Stop by PID: SIGINT (fast shutdown), escalating to SIGQUIT then SIGKILL.
    pub async fn stop(&self, data: &Path) -> Result<(), CapError> {
        let Some(pid) = postmaster_pid(data) else {
            return Ok(());
        };
        signal(pid, libc::SIGINT);
        let started = Instant::now();
        let mut escalated = 0;
        while alive(pid) {
            if started.elapsed() > Duration::from_secs(20 + 5 * escalated) && escalated < 2 {
                escalated += 1;
                warn!(pid, "postgres did not stop; escalating");
                signal(
                    pid,
                    if escalated == 1 {
                        libc::SIGQUIT
                    } else {
                        libc::SIGKILL
                    },
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        info!(data = %data.display(), pid, "postgres stopped");
        Ok(())
    }

    /// `pg_basebackup` from `port` into `dest`, streaming WAL, without the final fsync.
    pub async fn basebackup(
        &self,
        port: u16,
        user: &str,
        passfile: &Path,
        dest: &Path,
        recovery: bool,
    ) -> Result<(), CapError> {
        let parent = dest.parent().expect("dest has a parent");
        self.make_private_dir(parent)?;
        let _ = std::fs::remove_dir_all(dest);
        let mut c = self.cmd("pg_basebackup");
        c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-D"])
            .arg(dest);
        c.args(["-X", "stream", "-c", "fast", "--no-sync", "-w"]);
        if recovery {
            c.arg("-R");
        }
        c.env("PGPASSFILE", passfile).env("PGCONNECT_TIMEOUT", "10");
        self.run(c, "pg_basebackup").await
    }

    /// Copy a directory tree preserving owners (snapshot restore).
    pub async fn copy_tree(&self, from: &Path, to: &Path) -> Result<(), CapError> {
        let _ = std::fs::remove_dir_all(to);
        let mut c = Command::new("cp");
        c.arg("-a").arg(from).arg(to);
        let out = c
            .output()
            .await
            .map_err(|e| CapError::internal(format!("cp: {e}")))?;
        if !out.status.success() {
            return Err(CapError::internal(format!(
                "cp -a failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// `pg_rewind` `data` against a running source.
    pub async fn rewind(
        &self,
        data: &Path,
        port: u16,
        user: &str,
        passfile: &Path,
    ) -> Result<(), CapError> {
        let mut c = self.cmd("pg_rewind");
        c.arg("-D").arg(data);
        c.arg(format!(
            "--source-server=host=127.0.0.1 port={port} user={user} dbname=postgres"
        ));
        c.arg("--no-sync");
        c.env("PGPASSFILE", passfile);
        self.run(c, "pg_rewind").await
    }
}

/// A passfile (`*:*:*:user:password`) the server user can read, for pg_basebackup and
/// `primary_conninfo`. Lives beside the clusters, never in the state dir.
pub fn passfile_content(user: &str, password: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:*:{}:{}\n", esc(user), esc(password))
}

/// Standby settings written into `postgresql.auto.conf` (replacing what `-R` or an
/// earlier life as a standby left there) plus `standby.signal`.
pub fn make_standby(env: &PgEnv, data: &Path, conninfo: &str) -> Result<()> {
    set_auto_conf(env, data, "primary_conninfo", Some(conninfo))?;
    let sig = data.join("standby.signal");
    std::fs::write(&sig, "").map_err(LocalError::io("write", &sig))?;
    env.chown(&sig)
}

/// Set or remove one setting in `postgresql.auto.conf` while the server is stopped.
pub fn set_auto_conf(env: &PgEnv, data: &Path, key: &str, value: Option<&str>) -> Result<()> {
    let path = data.join("postgresql.auto.conf");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut out: String = old
        .lines()
        .filter(|l| l.split('=').next().map(str::trim) != Some(key))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(v) = value {
        out.push_str(&format!("{key} = {}\n", quote(v)));
    }
    env.write_private(&path, &out)
}

pub fn conninfo(port: u16, user: &str, passfile: &Path, app: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} user={user} passfile={} application_name={app} connect_timeout=5 keepalives_idle=5 keepalives_interval=2 keepalives_count=3",
        passfile.display()
    )
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(LocalError::io("open", path))?;
    f.write_all(line.as_bytes())
        .map_err(LocalError::io("write", path))
}

/// After a postmaster was killed its backends linger for a moment and keep the shared
/// memory attached, which makes a new postmaster refuse to start. Wait for every
/// process still working in the data dir to exit (SIGQUIT them after 10 s).
async fn wait_orphans(data: &Path) {
    let Ok(target) = std::fs::canonicalize(data) else {
        return;
    };
    let started = Instant::now();
    loop {
        let orphans: Vec<i32> = std::fs::read_dir("/proc")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|pid| {
                        std::fs::read_link(format!("/proc/{pid}/cwd"))
                            .is_ok_and(|cwd| cwd == target)
                    })
                    .filter(|pid| alive(*pid))
                    .collect()
            })
            .unwrap_or_default();
        if orphans.is_empty() {
            return;
        }
        if started.elapsed() > Duration::from_secs(10) {
            warn!(
                ?orphans,
                "orphaned server processes did not exit; sending SIGQUIT"
            );
            for pid in &orphans {
                signal(*pid, libc::SIGQUIT);
            }
        }
        if started.elapsed() > Duration::from_secs(15) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The postmaster's PID from `postmaster.pid`, if that process is alive.
pub fn postmaster_pid(data: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    (pid > 0 && alive(pid) && is_postgres(pid)).then_some(pid)
}

fn is_postgres(pid: i32) -> bool {
    // Guard against PID reuse after a crash left a stale postmaster.pid.
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() == "postgres")
        .unwrap_or(true)
}

pub fn alive(pid: i32) -> bool {
    // Zombies count as dead: the postmaster's parent is init, which reaps it.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some(rest) = stat.rsplit(')').next()
    {
        return !rest.trim_start().starts_with('Z');
    }
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a PID we read from our own pidfile.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn lookup_user(name: &str) -> Result<(u32, u32)> {
    let text =
        std::fs::read_to_string("/etc/passwd").map_err(LocalError::io("read", "/etc/passwd"))?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3
            && f[0] == name
            && let (Ok(u), Ok(g)) = (f[2].parse(), f[3].parse())
        {
            return Ok((u, g));
        }
    }
    Err(LocalError::NoPostgres(format!(
        "no '{name}' system user to run servers as (we are root)"
    )))
}

/// A free loopback port (bound then released; the server binds it a moment later).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub fn set_mode(path: &Path, mode: u32) {
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

// ---- SQL helpers ------------------------------------------------------------------

/// Connect over TCP without TLS; the connection task is spawned.
pub async fn connect(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
    timeout: Duration,
) -> Result<tokio_postgres::Client, CapError> {
    connect_host("127.0.0.1", port, user, password, db, timeout).await
}

pub async fn connect_host(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    db: &str,
    timeout: Duration,
) -> Result<tokio_postgres::Client, CapError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(host)
        .port(port)
        .user(user)
        .password(password)
        .dbname(db)
        .connect_timeout(timeout);
    cfg.application_name("runbook");
    let fut = cfg.connect(tokio_postgres::NoTls);
    let (client, conn) = tokio::time::timeout(timeout + Duration::from_millis(500), fut)
        .await
        .map_err(|_| CapError::unavailable(format!("connect to 127.0.0.1:{port}: timed out")))?
        .map_err(|e| pg_error(&e, port))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

pub fn pg_error(e: &tokio_postgres::Error, port: u16) -> CapError {
    if let Some(db) = e.as_db_error() {
        let kind = match db.code().code() {
            c if c.starts_with("28") => runbook_caps::ErrorKind::AccessDenied,
            c if c.starts_with("57") || c.starts_with("08") => runbook_caps::ErrorKind::Unavailable,
            c if c.starts_with("42") || c.starts_with("22") => {
                runbook_caps::ErrorKind::InvalidParameter
            }
            c if c.starts_with("25006") => runbook_caps::ErrorKind::InvalidState,
            _ => runbook_caps::ErrorKind::Internal,
        };
        return CapError::new(
            kind,
            format!("SQLSTATE.{}", db.code().code()),
            db.message().to_string(),
        );
    }
    CapError::unavailable(format!("127.0.0.1:{port}: {e}"))
}

/// Protocol-level probe like `pg_isready`: send a startup packet and read the first
/// reply. An authentication request (or an authentication failure) means the server
/// accepts connections; "starting up"/"shutting down" (57P03) or no answer means not.
pub async fn probe(port: u16, timeout: Duration) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes());
        for kv in ["user", "rdshealthcheck", "database", "postgres"] {
            body.extend_from_slice(kv.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        s.write_all(&msg).await.map_err(|e| format!("write: {e}"))?;
        let mut head = [0u8; 5];
        s.read_exact(&mut head)
            .await
            .map_err(|e| format!("no reply: {e}"))?;
        match head[0] {
            b'R' => Ok("server accepts connections".to_string()),
            b'E' => {
                let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                let mut rest = vec![0u8; len.saturating_sub(4).min(4096)];
                let _ = s.read_exact(&mut rest).await;
                let code = rest
                    .split(|b| *b == 0)
                    .find(|f| f.first() == Some(&b'C'))
                    .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
                    .unwrap_or_default();
                if code.starts_with("28") {
                    Ok(format!("server accepts connections (auth {code})"))
                } else {
                    Err(format!("server refused: SQLSTATE {code}"))
                }
            }
            other => Err(format!("unexpected reply byte {other}")),
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}
