//! A real headless Chromium for tests of generated pages: dump the DOM after the page
//! loaded, or take a PNG screenshot.
//!
//! Each call starts a fresh browser with its own profile directory (no state shared
//! between tests), runs it in its own process group, and kills that group by id on
//! timeout or drop so no renderer outlives the test. `scripts/setup.sh` installs the
//! Debian `chromium` package.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where the browser binary is looked for when `RUNBOOK_CHROMIUM` is not set.
pub const CANDIDATES: [&str; 3] = [
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
];

/// Flags for a quiet, deterministic, offline-friendly headless run.
const FLAGS: [&str; 10] = [
    "--headless",
    "--no-sandbox", // tests run as root in CI, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
];

#[derive(Debug, thiserror::Error)]
pub enum ChromiumError {
    #[error(
        "chromium not found (looked at $RUNBOOK_CHROMIUM and {CANDIDATES:?}); run scripts/setup.sh"
    )]
    NotFound,
    #[error("could not run chromium: {0}")]
    Io(#[from] std::io::Error),
    #[error("chromium did not finish within {0:?}; killed")]
    Timeout(Duration),
    #[error("chromium exited with {status}: {stderr_tail}")]
    Failed {
        status: ExitStatus,
        stderr_tail: String,
    },
    #[error("chromium wrote no screenshot at {0}")]
    NoScreenshot(PathBuf),
    #[error("not a PNG file: {0}")]
    NotPng(PathBuf),
}

impl ChromiumError {
    pub fn code(&self) -> &'static str {
        match self {
            ChromiumError::NotFound => "chromium.not_found",
            ChromiumError::Io(_) => "chromium.io",
            ChromiumError::Timeout(_) => "chromium.timeout",
            ChromiumError::Failed { .. } => "chromium.failed",
            ChromiumError::NoScreenshot(_) => "chromium.no_screenshot",
            ChromiumError::NotPng(_) => "chromium.not_png",
        }
    }
}

/// A PNG written by [`Chromium::screenshot`].
#[derive(Debug, Clone)]
pub struct Screenshot {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// Width and height from a PNG's IHDR chunk (the first chunk, right after the signature).
pub fn png_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    const SIG: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    if data.len() < 24 || data[..8] != SIG || &data[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&data[16..20]), be(&data[20..24])))
}

/// A located Chromium binary.
#[derive(Debug, Clone)]
pub struct Chromium {
    bin: PathBuf,
    timeout: Duration,
}

/// A running browser; its whole process group is killed when dropped.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        // The child leads its own group (process_group(0)), so -pid reaches the
        // renderer and zygote processes it forked too.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals that process group only.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        // Killed members (the wrapper script's subshells, renderers) take a moment to
        // finish exiting; wait for the group to empty so callers see no stragglers.
        // Bounded: orphaned zombies are reaped by init, which may be slow or absent.
        let deadline = Instant::now() + Duration::from_secs(3);
        // SAFETY: signal 0 only checks whether the group still has members.
        while unsafe { libc::kill(-pid, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Chromium {
    /// Finds the browser: `$RUNBOOK_CHROMIUM`, then [`CANDIDATES`].
    pub fn find() -> Result<Chromium, ChromiumError> {
        let from_env = std::env::var_os("RUNBOOK_CHROMIUM").map(PathBuf::from);
        let bin = from_env
            .into_iter()
            .chain(CANDIDATES.iter().map(PathBuf::from))
            .find(|p| p.is_file())
            .ok_or(ChromiumError::NotFound)?;
        Ok(Chromium {
            bin,
            timeout: Duration::from_secs(90),
        })
    }

    /// Overrides the per-run deadline (default 90 s: a cold start on a loaded 2-core
    /// machine takes several seconds).
    pub fn with_timeout(mut self, timeout: Duration) -> Chromium {
        self.timeout = timeout;
        self
    }

    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// Runs the browser with `args` after the common flags and a fresh profile; returns
    /// its stdout.
    fn run(&self, args: &[String]) -> Result<String, ChromiumError> {
        let profile = tempfile::tempdir()?;
        let stderr_path = profile.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0);
        let mut running = Running {
            child: cmd.spawn()?,
        };
        // Read stdout on a thread so a large DOM cannot fill the pipe and stall the wait.
        let mut out = running.child.stdout.take().expect("stdout is piped");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).map(|_| s)
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = running.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                drop(running); // kills the group, which closes stdout for the reader
                let _ = reader.join();
                return Err(ChromiumError::Timeout(self.timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The main process exited; stop any helper it left behind before reading on.
        drop(running);
        let stdout = reader
            .join()
            .map_err(|_| std::io::Error::other("stdout reader panicked"))??;
        if !status.success() {
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let tail: String = err
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            return Err(ChromiumError::Failed {
                status,
                stderr_tail: tail,
            });
        }
        Ok(stdout)
    }

    /// Loads `page` (a local file) and returns the serialised DOM after load.
    pub fn dump_dom(&self, page: &Path) -> Result<String, ChromiumError> {
        self.run(&["--dump-dom".to_string(), file_url(page)?])
    }

    /// Loads `url` (e.g. a page a test server serves on loopback) and returns the
    /// serialised DOM after load.
    pub fn dump_dom_url(&self, url: &str) -> Result<String, ChromiumError> {
        self.run(&["--dump-dom".to_string(), url.to_string()])
    }

    /// Loads `page` in a `width`×`height` window and writes a PNG screenshot to `out`.
    pub fn screenshot(
        &self,
        page: &Path,
        out: &Path,
        (width, height): (u32, u32),
    ) -> Result<Screenshot, ChromiumError> {
        let _ = std::fs::remove_file(out);
        self.run(&[
            format!("--screenshot={}", out.display()),
            format!("--window-size={width},{height}"),
            file_url(page)?,
        ])?;
        let data =
            std::fs::read(out).map_err(|_| ChromiumError::NoScreenshot(out.to_path_buf()))?;
        let (width, height) =
            png_dimensions(&data).ok_or_else(|| ChromiumError::NotPng(out.to_path_buf()))?;
        Ok(Screenshot {
            path: out.to_path_buf(),
            width,
            height,
            bytes: data.len() as u64,
        })
    }
}

/// `file://` URL of a local path (absolute; characters outside the URL-safe set are
/// percent-encoded).
pub fn file_url(path: &Path) -> Result<String, ChromiumError> {
    let abs = std::path::absolute(path)?;
    let mut url = String::from("file://");
    for b in abs.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_header() {
        let mut png = vec![
            0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13,
        ];
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&2000u32.to_be_bytes());
        assert_eq!(png_dimensions(&png), Some((1280, 2000)));
        assert_eq!(png_dimensions(b"GIF89a........................"), None);
    }

    #[test]
    fn file_urls_are_percent_encoded() {
        assert_eq!(
            file_url(Path::new("/tmp/a b/r#1.html")).unwrap(),
            "file:///tmp/a%20b/r%231.html"
        );
    }

    #[test]
    fn dumps_a_real_page() {
        let chromium = Chromium::find().expect("chromium installed by scripts/setup.sh");
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("p.html");
        std::fs::write(
            &page,
            "<!doctype html><title>t</title><p id=x>hello &amp; bye</p>",
        )
        .unwrap();
        let dom = chromium.dump_dom(&page).unwrap();
        assert!(dom.contains("<p id=\"x\">hello &amp; bye</p>"), "{dom}");
    }

    /// Processes whose command line mentions `needle` (read from /proc).
    fn processes_mentioning(needle: &str) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(needle) {
                    found.push(cmd);
                }
            }
        }
        found
    }

    #[test]
    fn timeout_kills_the_browser() {
        let chromium = Chromium::find()
            .expect("chromium installed by scripts/setup.sh")
            .with_timeout(Duration::from_millis(50));
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("slow-start-marker.html");
        std::fs::write(&page, "<p>x</p>").unwrap();
        let err = chromium.dump_dom(&page).unwrap_err();
        assert_eq!(err.code(), "chromium.timeout", "{err}");
        // Killed and reaped before returning: nothing still runs with the page's URL.
        let left = processes_mentioning("slow-start-marker");
        assert!(left.is_empty(), "left running: {left:?}");
    }
}
