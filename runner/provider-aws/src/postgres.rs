//! `postgres.query` against RDS: resolve the target, read the credentials from Secrets
//! Manager host-side, connect with tokio-postgres and run one statement.
//!
//! TLS is not used (tokio-postgres `NoTls`): RDS PostgreSQL 15 accepts plaintext unless
//! the parameter group sets `rds.force_ssl=1`; a second TLS stack (postgres-rustls) is
//! left out to keep the build small. Traffic stays inside the VPC/peering.

use std::time::Duration;

use runbook_caps::types::postgres::{QueryResult, Target};
use runbook_caps::{CapCall, CapError, ConnectInfo, ErrorKind};
use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;

use crate::AwsProvider;

/// Where to connect: `host:port`, a DB instance identifier (described for its
/// endpoint), or a DNS name such as a Route 53 private record (system resolver, 5432).
async fn resolve(
    p: &AwsProvider,
    call: &CapCall,
    target: &Target,
) -> Result<(String, u16), CapError> {
    let ep = target.endpoint.trim();
    if let Some((host, port)) = ep.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok((host.to_string(), port));
    }
    if !ep.contains('.') {
        let region = match &target.region {
            Some(r) => r.clone(),
            None => p.default_region().await.ok_or_else(|| {
                CapError::invalid_parameter(format!(
                    "target {ep} is a DB instance identifier but no region was given"
                ))
            })?,
        };
        let db = crate::rds::describe(p, call, &region, Some(ep)).await?;
        let db = db.first().ok_or_else(|| {
            CapError::not_found("DBInstanceNotFound", format!("DBInstance {ep} not found."))
        })?;
        return match (&db.endpoint_address, db.endpoint_port) {
            (Some(a), Some(port)) => Ok((a.clone(), port)),
            _ => Err(CapError::new(
                ErrorKind::Unavailable,
                "EndpointNotFound",
                format!(
                    "DB instance {ep} has no endpoint yet (status {})",
                    db.status
                ),
            )),
        };
    }
    Ok((ep.to_string(), 5432))
}

/// Where and as whom to connect for `target`: its resolved host and port, the
/// credentials of its secret (read in `secret_region`), its database (`postgres` when
/// none is named).
pub(crate) async fn connect_info(
    p: &AwsProvider,
    call: &CapCall,
    target: &Target,
) -> Result<ConnectInfo, CapError> {
    let (host, port) = resolve(p, call, target).await?;
    let (user, password) =
        crate::secrets::credentials(p, call, &target.secret_region, &target.secret_id).await?;
    let database = if target.database.is_empty() {
        "postgres".to_string()
    } else {
        target.database.clone()
    };
    Ok(ConnectInfo {
        host,
        port,
        user,
        password,
        database,
    })
}

pub(crate) async fn handle(p: &AwsProvider, call: &CapCall) -> Result<Value, CapError> {
    if call.action != "Query" {
        return Err(CapError::unsupported(call, "aws"));
    }
    let target: Target = call.arg_as("target")?;
    let sql: String = call.arg_as("sql")?;
    let params: Vec<Option<String>> = call.arg_as("params")?;
    let text = runbook_caps::sql::bind(&sql, &params)?;
    let ConnectInfo {
        host,
        port,
        user,
        password,
        database,
    } = connect_info(p, call, &target).await?;
    let timeout = Duration::from_millis(u64::from(target.connect_timeout_ms.max(100)));
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host)
        .port(port)
        .user(&user)
        .password(&password)
        .dbname(&database)
        .connect_timeout(timeout)
        .application_name("runbook");
    let (client, conn) = tokio::time::timeout(
        timeout + Duration::from_millis(500),
        cfg.connect(tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| CapError::unavailable(format!("connect to {host}:{port}: timed out")))?
    .map_err(|e| pg_error(&e, &host, port))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    let msgs = client
        .simple_query(&text)
        .await
        .map_err(|e| pg_error(&e, &host, port))?;
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

/// SQLSTATE classes to error kinds, as the local provider does.
fn pg_error(e: &tokio_postgres::Error, host: &str, port: u16) -> CapError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = match code {
            c if c.starts_with("28") => ErrorKind::AccessDenied,
            c if c.starts_with("57") || c.starts_with("08") => ErrorKind::Unavailable,
            c if c.starts_with("42") || c.starts_with("22") => ErrorKind::InvalidParameter,
            c if c.starts_with("25006") => ErrorKind::InvalidState,
            _ => ErrorKind::Internal,
        };
        return CapError::new(kind, format!("SQLSTATE.{code}"), db.message().to_string());
    }
    CapError::unavailable(format!("{host}:{port}: {e}"))
}
