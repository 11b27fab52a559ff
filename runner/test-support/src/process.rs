//! Processes a test starts or watches: free loopback ports, children stopped by PID
//! when their guard drops (and by the kernel if the test process dies first), liveness
//! by PID, and the binaries cargo built for the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::wait;

/// How long a stopped process gets before SIGKILL.
const GRACE: Duration = Duration::from_secs(15);

/// A free loopback port (bound then released; the server binds it a moment later, so
/// callers that start servers retry on the rare race).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The process exists and is not a zombie (a killed process nobody reaped yet is dead
/// for every purpose of a test).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a PID the test owns or read from its own pidfile.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The PID on the first line of a pidfile (`daemon.pid`, `postmaster.pid`), if that
/// process is alive.
pub fn read_pid(path: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    (pid > 0 && alive(pid)).then_some(pid)
}

/// Wait (synchronously: Drop may run while a test unwinds, outside any runtime) for
/// `pid` to die, SIGKILLing it after a grace period.
pub fn wait_dead(pid: i32) {
    if !wait::poll(GRACE, Duration::from_millis(20), || !alive(pid)) {
        signal(pid, libc::SIGKILL);
    }
}

/// Send `sig`, then wait for the process to die (see [`wait_dead`]).
pub fn stop_pid(pid: i32, sig: i32) {
    signal(pid, sig);
    wait_dead(pid);
}

/// A binary of the package under test, as cargo builds it for integration tests (the
/// runtime twin of `env!("CARGO_BIN_EXE_<name>")`: test executables live in
/// `<target>/<profile>/deps/`, the package's binaries one level up).
pub fn cargo_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable in <target>/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} not built: binaries are built for the integration tests of their own package",
        bin.display()
    );
    bin
}

/// A child process stopped by PID when dropped: `stop_signal` first, SIGKILL after a
/// grace period, always reaped.
pub struct Guarded {
    child: Child,
    stop_signal: i32,
}

/// Spawn `cmd` under a [`Guarded`]. If the test process dies without dropping the
/// guard (abort, SIGKILL), the kernel kills the child too.
pub fn spawn(mut cmd: Command, stop_signal: i32) -> std::io::Result<Guarded> {
    // SAFETY: prctl is async-signal-safe; nothing else runs in pre_exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(Guarded {
        child: cmd.spawn()?,
        stop_signal,
    })
}

impl Guarded {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child has exited (and is reaped).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        signal(self.child.id() as i32, self.stop_signal);
        if !wait::poll(GRACE, Duration::from_millis(20), || self.exited()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Minimal HTTP/1.0 GET on loopback: the status line, or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    line.starts_with("HTTP/").then_some(line)
}
