//! The HTTP face of `runbook serve`.
//!
//! serve implements [`Backend`] (plain data in, no journal or executor types here) and
//! calls [`run`] with a bound listener. Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | status page: schedules, watchers, readiness, last executions, game days ([`render_status_page`]); refreshes every 5 s, no script |
//! | `GET /executions/ID` | what `runbook show` prints, with the game-day report embedded when there is one |
//! | `GET /executions/ID/report` | the game-day report document alone |
//! | `GET /dashboards`, `GET /dashboards/NAME` | the local provider's dashboards (HTML from serve) |
//! | `GET /metrics` | Prometheus text format 0.0.4 ([`render_metrics`]) |
//! | `GET /healthz` | `ok` |
//! | `POST /pause`, `/resume`, `/trigger` | JSON `{"target":..,"reason":..}` or empty; `Authorization: Bearer TOKEN` |
//!
//! Security: [`check_listen`] refuses a non-loopback address unless a token is
//! configured; [`load_token`] refuses a token file readable by group or others. Without
//! a token the control endpoints answer 403 (pages stay readable); a missing or wrong
//! token is 401. Errors are JSON `{"error":{"code":..,"message":..}}`.

mod metrics;
mod model;
mod page;
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use metrics::{METRICS_CONTENT_TYPE, render_metrics};
pub use model::*;
pub use page::{esc, human_duration, render_execution_page, render_status_page};
pub use server::run;

/// Where serve listens and where the control token is read from (`Http.Listen`,
/// `Http.TokenFile` in its config).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot read token file {path}: {source}")]
    TokenRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "token file {path} has mode {mode:04o}: it must not be readable by group or others (chmod 600 {path})"
    )]
    TokenMode { path: PathBuf, mode: u32 },
    #[error("token file {0} is empty")]
    TokenEmpty(PathBuf),
    #[error(
        "refusing to listen on {0}, a non-loopback address, without a token: set Http.TokenFile (a 0600 file holding the bearer token) or listen on 127.0.0.1"
    )]
    NonLoopback(SocketAddr),
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl HttpError {
    /// Stable code for callers that report errors as data.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::TokenRead { .. } => "http.token_read",
            HttpError::TokenMode { .. } => "http.token_mode",
            HttpError::TokenEmpty(_) => "http.token_empty",
            HttpError::NonLoopback(_) => "http.non_loopback",
            HttpError::Serve(_) => "http.serve",
        }
    }
}

/// Reads the bearer token: refuses a file whose mode lets group or others read or
/// write it (`mode & 0o077 != 0`), trims surrounding whitespace, refuses an empty one.
pub fn load_token(path: &Path) -> Result<String, HttpError> {
    use std::os::unix::fs::PermissionsExt;
    let read_err = |source| HttpError::TokenRead {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_err)?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        return Err(HttpError::TokenMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let token = std::fs::read_to_string(path).map_err(read_err)?;
    let token = token.trim();
    if token.is_empty() {
        return Err(HttpError::TokenEmpty(path.to_path_buf()));
    }
    Ok(token.to_string())
}

/// Refuses a non-loopback listen address (including `0.0.0.0` / `[::]`) when no token
/// is configured: the control endpoints would then be unusable and the pages public.
pub fn check_listen(addr: SocketAddr, has_token: bool) -> Result<(), HttpError> {
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(HttpError::NonLoopback(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_token(&path).unwrap(), "s3cret");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_token(&path).unwrap_err();
        assert_eq!(err.code(), "http.token_mode");
        let msg = err.to_string();
        assert!(
            msg.contains("0640") && msg.contains(&path.display().to_string()),
            "{msg}"
        );

        std::fs::write(&path, " \n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(load_token(&path).unwrap_err().code(), "http.token_empty");

        let missing = dir.path().join("absent");
        assert_eq!(load_token(&missing).unwrap_err().code(), "http.token_read");
    }

    #[test]
    fn listen_rules() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lan: SocketAddr = "192.0.2.7:8080".parse().unwrap();
        assert!(check_listen(lo, false).is_ok());
        assert!(check_listen(lo6, false).is_ok());
        let err = check_listen(any, false).unwrap_err();
        assert_eq!(err.code(), "http.non_loopback");
        assert!(err.to_string().contains("Http.TokenFile"), "{err}");
        assert!(check_listen(lan, false).is_err());
        assert!(check_listen(lan, true).is_ok());
    }
}
