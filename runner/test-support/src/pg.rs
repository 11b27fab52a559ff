//! A throwaway PostgreSQL cluster for a test: `initdb` in a temp directory, `postgres`
//! on 127.0.0.1 on a free port, stopped by PID and removed when dropped. When the test
//! runs as root the server runs as the `postgres` system user (PostgreSQL refuses root).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, Guarded};
use crate::wait;

/// The superuser of a temp cluster.
pub const USER: &str = "postgres";

/// PostgreSQL's binaries: `$RUNBOOK_PG_BIN` (as for the local provider), else the
/// Debian packages' PostgreSQL 15.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("RUNBOOK_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/postgresql/15/bin".into())
}

/// (uid, gid) of the `postgres` system user when we are root, None otherwise.
pub fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let user = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .expect("a 'postgres' system user to run servers as (we are root)");
    Some((user[2].parse().unwrap(), user[3].parse().unwrap()))
}

/// A running cluster; the server is stopped (SIGQUIT, then SIGKILL) and its directory
/// removed on drop.
pub struct TempCluster {
    // Declared first: the server stops before its directory goes.
    server: Guarded,
    pub port: u16,
    pub password: String,
    dir: tempfile::TempDir,
}

impl TempCluster {
    /// initdb, start, and wait until it accepts connections.
    pub fn start() -> TempCluster {
        let run_as = server_user();
        // The server user must reach the directory: /tmp is searchable by all, while
        // $TMPDIR may sit under a 0700 home.
        let base = if run_as.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("rbts-pg-")
            .tempdir_in(base)
            .expect("tempdir");
        // Unguessable enough for a loopback server that lives as long as a test.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let password = format!("pw-{}-{nanos}", std::process::id());
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).expect("password file");
        if let Some((uid, gid)) = run_as {
            for p in [dir.path(), &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
            }
        }
        let data = dir.path().join("data");
        let out = tool("initdb", run_as)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .args(["-N", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Retry on the (rare) race where another process takes the port first.
        for _ in 0..5 {
            let port = process::free_port();
            let log = std::fs::File::create(dir.path().join("log")).expect("log file");
            let mut cmd = tool("postgres", run_as);
            cmd.arg("-D").arg(&data).args(["-p", &port.to_string()]);
            for setting in [
                "listen_addresses=127.0.0.1",
                // No Unix sockets: their paths are length-limited and clients use TCP.
                "unix_socket_directories=",
                "fsync=off",
                "shared_buffers=16MB",
            ] {
                cmd.args(["-c", setting]);
            }
            cmd.stdout(log.try_clone().unwrap()).stderr(log);
            let mut server = process::spawn(cmd, libc::SIGQUIT).expect("starting postgres");
            if ready(&mut server, port, run_as) {
                return TempCluster {
                    server,
                    port,
                    password,
                    dir,
                };
            }
        }
        panic!(
            "postgres did not come up: {}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
    }

    /// A libpq-style connection string for the superuser.
    pub fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={USER} password={} dbname=postgres connect_timeout=2",
            self.port, self.password
        )
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

/// A PostgreSQL tool, run as the server user when we are root.
fn tool(name: &str, run_as: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin_dir().join(name));
    if let Some((uid, gid)) = run_as {
        c.uid(uid).gid(gid);
    }
    c.env("LC_ALL", "C").current_dir("/").stdin(Stdio::null());
    c
}

/// Accepting connections (`pg_isready`); false once the server exited.
fn ready(server: &mut Guarded, port: u16, run_as: Option<(u32, u32)>) -> bool {
    let up = wait::poll_some(Duration::from_secs(60), Duration::from_millis(50), || {
        if server.exited() {
            return Some(false);
        }
        let st = tool("pg_isready", run_as)
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .ok()?;
        st.success().then_some(true)
    });
    up == Some(true)
}
