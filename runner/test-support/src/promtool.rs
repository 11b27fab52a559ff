//! `promtool check metrics` (Prometheus' own linter and parser) run on a metrics
//! exposition, as an independent judge of `/metrics`. `scripts/setup.sh` installs the
//! Debian `prometheus` package, which ships /usr/bin/promtool.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// Where promtool is looked for when `RUNBOOK_PROMTOOL` is not set.
pub const CANDIDATES: [&str; 2] = ["/usr/bin/promtool", "/usr/local/bin/promtool"];

/// A generous bound: promtool answers in milliseconds, a loaded machine may be slow.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PromtoolError {
    #[error(
        "promtool not found (looked at $RUNBOOK_PROMTOOL and {CANDIDATES:?}); run scripts/setup.sh"
    )]
    NotFound,
    #[error("could not run promtool: {0}")]
    Io(#[from] std::io::Error),
    #[error("promtool did not finish within {0:?}; killed")]
    Timeout(Duration),
}

impl PromtoolError {
    pub fn code(&self) -> &'static str {
        match self {
            PromtoolError::NotFound => "promtool.not_found",
            PromtoolError::Io(_) => "promtool.io",
            PromtoolError::Timeout(_) => "promtool.timeout",
        }
    }
}

/// The outcome of one `promtool check metrics`.
#[derive(Debug, Clone)]
pub struct Check {
    pub status: ExitStatus,
    /// Lint problems and parse errors (promtool prints them on stderr).
    pub stderr: String,
    pub stdout: String,
}

impl Check {
    /// Exit 0 and nothing printed: parsed, and no lint problem.
    pub fn clean(&self) -> bool {
        self.status.success() && self.stderr.trim().is_empty() && self.stdout.trim().is_empty()
    }
}

/// The promtool binary: `$RUNBOOK_PROMTOOL`, then [`CANDIDATES`].
pub fn find() -> Result<PathBuf, PromtoolError> {
    std::env::var_os("RUNBOOK_PROMTOOL")
        .map(PathBuf::from)
        .into_iter()
        .chain(CANDIDATES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or(PromtoolError::NotFound)
}

/// Runs `promtool check metrics < file` on `exposition` (written to a temp file first,
/// so a large body cannot deadlock a pipe).
pub fn check_metrics(exposition: &str) -> Result<Check, PromtoolError> {
    let bin = find()?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("metrics.prom");
    std::fs::write(&input, exposition)?;
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&input)?)
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()?;
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PromtoolError::Timeout(TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Check {
        status,
        stdout: std::fs::read_to_string(&out)?,
        stderr: std::fs::read_to_string(&err)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_linted_expositions() {
        let good = "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3\n";
        let check = check_metrics(good).expect("promtool installed by scripts/setup.sh");
        assert!(check.clean(), "{check:?}");
        // OpenMetrics-style counter naming: the 0.0.4 linter flags the sample.
        let bad = "# HELP jobs Jobs done.\n# TYPE jobs counter\njobs_total 3\n";
        let check = check_metrics(bad).unwrap();
        assert!(!check.clean());
        assert!(check.stderr.contains("jobs_total"), "{check:?}");
    }
}
