//! `postgres:Query`: resolve the target (Route 53 name → routing endpoint, DB instance
//! identifier or address → its server, or loopback `host:port`), authenticate with the
//! secret, run one statement and return rows as text.

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::types::postgres::{QueryResult, Target};
use runbook_caps::{CapCall, CapError};
use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;

use crate::daemon::Ctx;

/// A Route 53 name → its routing endpoint, an instance → its current writer (or replica
/// head), loopback `host:port` as is.
fn resolve_port(ctx: &Ctx, target: &Target) -> Result<u16, CapError> {
    crate::net::resolve_for_client(ctx, &target.endpoint, target.region.as_deref())
        .or_else(|| {
            let (host, port) = target.endpoint.rsplit_once(':')?;
            matches!(host, "127.0.0.1" | "localhost")
                .then(|| port.parse().ok())
                .flatten()
        })
        .ok_or_else(|| {
            CapError::not_found(
                "EndpointNotFound",
                format!("{} does not resolve to a local server", target.endpoint),
            )
        })
}

/// Where an application connects for `target`, with the credentials of its secret
/// (read from `secret_region`, a replica region's copy when that is the one named).
pub(crate) fn connect_info(ctx: &Ctx, target: &Target) -> Result<Value, CapError> {
    let port = resolve_port(ctx, target)?;
    crate::fault::secret_region_gate(ctx, &target.secret_region)?;
    let (user, password) =
        crate::secrets::credentials(ctx, &target.secret_region, &target.secret_id)?;
    let database = if target.database.is_empty() {
        "postgres".to_string()
    } else {
        target.database.clone()
    };
    Ok(
        serde_json::json!({"host": "127.0.0.1", "port": port, "user": user,
                          "password": password, "database": database}),
    )
}

pub(crate) async fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    if call.action != "Query" {
        return Err(CapError::unsupported(call, "local"));
    }
    let target: Target = call.arg_as("target")?;
    let sql: String = call.arg_as("sql")?;
    let params: Vec<Option<String>> = call.arg_as("params")?;
    let port = resolve_port(ctx, &target)?;
    if crate::fault::probe_blocked(ctx, &target.endpoint, port) {
        return Err(CapError::unavailable(format!(
            "connect to {}: timed out (probe-partition fault)",
            target.endpoint
        )));
    }
    crate::fault::secret_region_gate(ctx, &target.secret_region)?;
    let (user, password) =
        crate::secrets::credentials(ctx, &target.secret_region, &target.secret_id)?;
    let timeout = Duration::from_millis(u64::from(target.connect_timeout_ms.max(100)));
    let db = if target.database.is_empty() {
        "postgres"
    } else {
        &target.database
    };
    let client = crate::pg::connect(port, &user, &password, db, timeout).await?;
    let text = runbook_caps::sql::bind(&sql, &params)?;
    let msgs = client
        .simple_query(&text)
        .await
        .map_err(|e| crate::pg::pg_error(&e, port))?;
    let mut out = QueryResult::default();
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(cols) if out.columns.is_empty() => {
                out.columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if out.columns.is_empty() {
                    out.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                out.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(n) => out.rows_affected = n,
            _ => {}
        }
    }
    Ok(serde_json::to_value(out).expect("serializes"))
}
