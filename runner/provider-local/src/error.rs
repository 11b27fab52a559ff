//! Errors of the local provider's own API (opening, the daemon, operator commands).
//! Capability calls fail with [`runbook_caps::CapError`] instead.

use std::path::PathBuf;

use runbook_caps::CapError;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("PostgreSQL 15 binaries not found ({0}); install Debian's postgresql package")]
    NoPostgres(String),
    #[error("{name}: {reason}")]
    Config { name: &'static str, reason: String },
    #[error("local daemon: {0}")]
    Daemon(String),
    #[error("another local daemon already serves {0}")]
    DaemonRunning(PathBuf),
    #[error(transparent)]
    Cap(#[from] CapError),
}

impl LocalError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LocalError::Io {
            action,
            path,
            source,
        }
    }
}

pub type Result<T, E = LocalError> = std::result::Result<T, E>;

/// Inside capability calls, local failures (I/O on the state dir, ...) are internal.
impl From<LocalError> for CapError {
    fn from(e: LocalError) -> CapError {
        match e {
            LocalError::Cap(c) => c,
            other => CapError::internal(other.to_string()),
        }
    }
}
