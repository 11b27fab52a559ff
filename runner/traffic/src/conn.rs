//! One client connection: resolve, connect with a deadline, and classify errors into
//! ledger outcomes.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};
use tracing::debug;

use crate::{Outcome, SharedResolver, TrafficError, Which};

/// The table name is spliced into SQL, so only plain identifiers are accepted.
pub(crate) fn check_table(table: &str) -> Result<(), TrafficError> {
    let ok = !table.is_empty()
        && table.len() <= 63
        && table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !table.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(TrafficError::Config(format!(
            "table '{table}' is not a plain lowercase identifier"
        )))
    }
}

/// Resolve `which` and open one connection before `deadline`. The connection's I/O
/// task is spawned; when it ends (server gone), `Client::is_closed` turns true.
pub(crate) async fn connect(
    resolver: &SharedResolver,
    which: Which,
    app_name: &str,
    deadline: Instant,
) -> Result<Client, TrafficError> {
    let info = tokio::time::timeout_at(deadline, resolver.resolve(which))
        .await
        .map_err(|_| TrafficError::Resolve {
            which: which.to_string(),
            message: "timed out".into(),
        })??;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&info.host)
        .port(info.port)
        .user(&info.user)
        .password(&info.password)
        .dbname(&info.database)
        .application_name(app_name)
        // A dead peer behind a moved name must not hold a slot for minutes.
        .keepalives_idle(Duration::from_secs(5))
        .connect_timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        );
    let (client, connection) = tokio::time::timeout_at(deadline, cfg.connect(NoTls))
        .await
        .map_err(|_| TrafficError::Connect(format!("{which}: timed out connecting to {info:?}")))?
        .map_err(|e| TrafficError::Connect(format!("{which} {info:?}: {}", describe(&e))))?;
    let app = app_name.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(app, error = %e, "traffic connection ended");
        }
    });
    Ok(client)
}

/// The error text with its SQLSTATE, as the ledger records it.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => {
            // The Display of io errors is "error communicating with the server"; the
            // source says which (connection refused, reset…).
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

/// The outcome of a write whose statement was sent and came back with `e`.
///
/// A server error with a SQLSTATE means the statement was rejected and rolled back
/// (read-only transaction 25006, constraint violations, cancellations), except the
/// connection-ending classes where the backend may already have committed: admin or
/// crash shutdown (57P01/57P02) and connection exceptions (08…). An error without a
/// SQLSTATE is a broken connection after the statement was sent: unknowable.
pub(crate) fn write_outcome(e: &tokio_postgres::Error) -> Outcome {
    match e.code() {
        Some(state) => {
            let c = state.code();
            if c.starts_with("08") || c == "57P01" || c == "57P02" {
                Outcome::Unknown
            } else {
                Outcome::Failed
            }
        }
        None => Outcome::Unknown,
    }
}

/// The node answered but cannot take writes now: a standby or a demoted or fenced
/// primary (read-only transaction, 25006) or one not accepting work (57P03). A pool
/// that kept such a connection would never follow a failover whose old primary
/// stays up.
pub(crate) fn wrong_node(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|s| {
        let c = s.code();
        c == "25006" || c == "57P03"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(check_table("runbook_traffic").is_ok());
        assert!(check_table("t2").is_ok());
        for bad in ["", "2t", "a;drop table x", "A", "a b", "\"x\""] {
            let e = check_table(bad).unwrap_err();
            assert_eq!(e.code(), "E-TRAFFIC-CONFIG", "{bad}");
        }
    }
}
