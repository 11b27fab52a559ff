//! A moto server for tests: installs `moto[server]` into the project's virtualenv
//! (`$HOME/.cache/runbook/venv`, the same one `scripts/setup.sh` creates) when missing,
//! starts it on 127.0.0.1 on a free port, waits until it answers, and stops it by PID
//! when dropped, so no server outlives its test.
//!
//! `Moto::start` runs moto's server through `moto_fixes.py` (next to this file), which
//! corrects where moto differs from AWS in ways the runbooks depend on (each fix is
//! named there and in the README's moto gaps); `Moto::start_unpatched` runs plain
//! `moto_server`, for the tests that check those gaps still exist.
//!
//! Shared by `runner/provider-aws/tests/` and the top-level `tests/aws.rs`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::process::{self, Guarded};
use crate::wait;

/// The moto version the project pins (also in scripts/setup.sh).
pub const MOTO_VERSION: &str = "5.2.5";

pub fn venv() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache/runbook/venv")
}

static INSTALL: Mutex<()> = Mutex::new(());

/// The launcher that patches moto before starting its server, run with `python -c` so
/// no test needs its path.
const MOTO_FIXES: &str = include_str!("moto_fixes.py");

/// `moto_server` of the venv, installing moto first if needed.
pub fn moto_server_bin() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let venv = venv();
    let bin = venv.join("bin/moto_server");
    if bin.exists() {
        return bin;
    }
    if !venv.join("bin/pip").exists() {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv (install python3-venv?)");
        assert!(
            st.success(),
            "creating the virtualenv {} failed",
            venv.display()
        );
    }
    let st = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            &format!("moto[server]=={MOTO_VERSION}"),
        ])
        .status()
        .expect("pip install moto[server]");
    assert!(
        st.success(),
        "pip install moto[server]=={MOTO_VERSION} failed"
    );
    bin
}

/// A running moto server; killed (by PID) and reaped on drop.
pub struct Moto {
    child: Guarded,
    pub port: u16,
    log: PathBuf,
}

impl Moto {
    /// moto with the corrections of `moto_fixes.py`.
    pub fn start() -> Moto {
        let bin = moto_server_bin();
        let python = bin.with_file_name("python");
        Moto::spawn(|| {
            let mut c = Command::new(&python);
            c.args(["-c", MOTO_FIXES]);
            c
        })
    }

    /// Plain `moto_server`, as released: only for asserting that a gap
    /// `moto_fixes.py` corrects is still there.
    pub fn start_unpatched() -> Moto {
        let bin = moto_server_bin();
        Moto::spawn(|| Command::new(&bin))
    }

    fn spawn(command: impl Fn() -> Command) -> Moto {
        let log = std::env::temp_dir().join(format!(
            "runbook-moto-{}-{}.log",
            std::process::id(),
            uniq()
        ));
        // Retry on the (rare) race where another process takes the port first.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = process::free_port();
            let out = std::fs::File::create(&log).expect("moto log file");
            let err = out.try_clone().expect("moto log file");
            let mut cmd = command();
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err));
            let child = process::spawn(cmd, libc::SIGKILL).expect("starting moto");
            let mut m = Moto {
                child,
                port,
                log: log.clone(),
            };
            if m.wait_ready(Duration::from_secs(60)) {
                return m;
            }
            // Dropping `m` removes the log: keep what it said for the panic.
            last_log = m.log();
        }
        panic!("moto did not come up; its last log:\n{last_log}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Up and answering; false once it exited (port taken, broken install) or timed out.
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let port = self.port;
        let child = &mut self.child;
        let up = wait::poll_some(timeout, Duration::from_millis(100), || {
            if child.exited() {
                return Some(false);
            }
            process::http_get(port, "/moto-api/").map(|_| true)
        });
        up == Some(true)
    }

    /// The server's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the `runbook` binary needs to talk to this server with dummy credentials,
    /// for [`crate::runbook::RunbookHome::with_env`] (`None` removes a variable).
    pub fn cli_env(&self) -> Vec<(&'static str, Option<String>)> {
        let testing = || Some("testing".to_string());
        vec![
            ("AWS_ENDPOINT_URL", Some(self.url())),
            ("AWS_ACCESS_KEY_ID", testing()),
            ("AWS_SECRET_ACCESS_KEY", testing()),
            ("AWS_SESSION_TOKEN", testing()),
            ("AWS_REGION", Some("us-east-1".into())),
            ("AWS_EC2_METADATA_DISABLED", Some("true".into())),
            ("AWS_PROFILE", None),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The guard kills the server when the struct's fields drop, after this.
        let _ = std::fs::remove_file(&self.log);
    }
}

fn uniq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
