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

pub(crate) async fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    if call.action != "Query" {
        return Err(CapError::unsupported(call, "local"));
    }
    let target: Target = call.arg_as("target")?;
    let sql: String = call.arg_as("sql")?;
    let params: Vec<Option<String>> = call.arg_as("params")?;
    let port = crate::net::resolve_for_client(ctx, &target.endpoint, target.region.as_deref())
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
        })?;
    let (user, password) =
        crate::secrets::credentials(ctx, &target.secret_region, &target.secret_id)?;
    let timeout = Duration::from_millis(u64::from(target.connect_timeout_ms.max(100)));
    let db = if target.database.is_empty() {
        "postgres"
    } else {
        &target.database
    };
    let client = crate::pg::connect(port, &user, &password, db, timeout).await?;
    let text = bind(&sql, &params)?;
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

/// Substitute `$n` with quoted literals (untyped, so the server infers types as it does
/// for parameters), skipping string literals, quoted identifiers, dollar quotes and
/// comments. Lets one code path return every value in text format.
fn bind(sql: &str, params: &[Option<String>]) -> Result<String, CapError> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut used = 0usize;
    while i < b.len() {
        let c = b[i];
        let skip_to = |start: usize, end_pat: &[u8]| -> usize {
            sql[start..]
                .find(std::str::from_utf8(end_pat).unwrap())
                .map(|p| start + p + end_pat.len())
                .unwrap_or(b.len())
        };
        let next = match c {
            b'\'' => skip_to(i + 1, b"'"),
            b'"' => skip_to(i + 1, b"\""),
            b'-' if b.get(i + 1) == Some(&b'-') => skip_to(i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => skip_to(i + 2, b"*/"),
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let n: usize = sql[i + 1..j]
                    .parse()
                    .map_err(|_| CapError::invalid_parameter("bad parameter number"))?;
                let v = params.get(n.wrapping_sub(1)).ok_or_else(|| {
                    CapError::invalid_parameter(format!(
                        "statement uses ${n} but {} parameters were given",
                        params.len()
                    ))
                })?;
                used = used.max(n);
                out.push_str(&match v {
                    Some(s) => format!("'{}'", s.replace('\'', "''")),
                    None => "NULL".into(),
                });
                i = j;
                continue;
            }
            b'$' => {
                // Dollar quote $tag$...$tag$.
                let tag_end = sql[i + 1..].find('$').map(|p| i + 1 + p);
                match tag_end {
                    Some(e)
                        if sql[i + 1..e]
                            .chars()
                            .all(|ch| ch.is_alphanumeric() || ch == '_') =>
                    {
                        let tag = &sql[i..=e];
                        sql[e + 1..]
                            .find(tag)
                            .map(|p| e + 1 + p + tag.len())
                            .unwrap_or(b.len())
                    }
                    _ => i + 1,
                }
            }
            _ => {
                let ch_len = sql[i..].chars().next().map(char::len_utf8).unwrap_or(1);
                i + ch_len
            }
        };
        out.push_str(&sql[i..next]);
        i = next;
    }
    let _ = used;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::bind;

    #[test]
    fn binds_outside_literals() {
        let p = vec![Some("o'k".to_string()), None];
        assert_eq!(
            bind("SELECT $1, '$2', $2 -- $1\n", &p).unwrap(),
            "SELECT 'o''k', '$2', NULL -- $1\n"
        );
        assert_eq!(
            bind("SELECT $$ $1 $$, $tag$x$tag$", &p).unwrap(),
            "SELECT $$ $1 $$, $tag$x$tag$"
        );
        assert!(bind("SELECT $3", &p).is_err());
    }
}
