//! PostgreSQL probes of the DR runbooks, through the host's `postgres` capability (the
//! host resolves the secret; this plugin never sees a password). Probes judge a server
//! by what it says about itself (`pg_is_in_recovery`, WAL positions, read-only), not by
//! one flag of the control plane. `Wait*` steps fail with a retryable error that the
//! Task's `Retry` backs off on.
use runbook_plugin_sdk::cap::postgres::{self, QueryResult};
use runbook_plugin_sdk::{StepError, export_step, info, warn};
use serde::Deserialize;
use serde_json::{Value, json};

use runbook_plugin_sdk::target::Target;

#[derive(Deserialize)]
#[serde(tag = "Op")]
enum Op {
    /// `Reachable: false` instead of an error, unless `FailIfUnreachable` (then the
    /// error `Unreachable` lets the runbook retry: several failed probes, not one).
    Probe {
        #[serde(rename = "Target")]
        target: Target,
        #[serde(rename = "FailIfUnreachable", default)]
        fail_if_unreachable: bool,
    },
    WaitWritable {
        #[serde(rename = "Target")]
        target: Target,
    },
    /// After fencing: new sessions must come up read-only (or the server is down).
    WaitReadOnly {
        #[serde(rename = "Target")]
        target: Target,
    },
    /// Ends every other client session, so no transaction begun before the fence can
    /// still commit.
    TerminateClients {
        #[serde(rename = "Target")]
        target: Target,
    },
    /// The WAL flush position of a primary: every acknowledged commit is at or before it.
    CurrentLsn {
        #[serde(rename = "Target")]
        target: Target,
    },
    /// Fails with `ReplayBehind` until the target has replayed up to `Lsn`.
    WaitReplay {
        #[serde(rename = "Target")]
        target: Target,
        #[serde(rename = "Lsn")]
        lsn: String,
    },
    /// Writes a row through the target (normally the Route 53 name clients use).
    CanaryWrite {
        #[serde(rename = "Target")]
        target: Target,
        #[serde(rename = "Note")]
        note: String,
    },
}

fn query(t: &Target, sql: &str, params: &[Option<String>]) -> Result<QueryResult, runbook_plugin_sdk::CapError> {
    postgres::query(
        &t.wit(),
        sql,
        params,
    )
}

fn cell(r: &QueryResult, col: usize) -> Option<String> {
    r.rows.first().and_then(|row| row.get(col).cloned().flatten())
}

const PROBE: &str = "SELECT pg_is_in_recovery()::text, current_setting('default_transaction_read_only'), \
     (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)::text, \
     COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::text, '')";

fn probe(t: &Target) -> Result<Value, runbook_plugin_sdk::CapError> {
    let r = query(t, PROBE, &[])?;
    let in_recovery = cell(&r, 0).as_deref() == Some("true");
    let read_only = cell(&r, 1).as_deref() == Some("on");
    Ok(json!({
        "Endpoint": t.endpoint,
        "Reachable": true,
        "InRecovery": in_recovery,
        "ReadOnly": read_only,
        "Writable": !in_recovery && !read_only,
        "Lsn": cell(&r, 2),
        "SecondsSinceLastReplay": cell(&r, 3).and_then(|s| s.parse::<f64>().ok()),
    }))
}

fn run(op: Op) -> Result<Value, StepError> {
    match op {
        Op::Probe { target, fail_if_unreachable } => match probe(&target) {
            Ok(v) => Ok(v),
            Err(e) if fail_if_unreachable => {
                warn!("{} unreachable: {}", target.endpoint, e.message);
                Err(StepError::new("Unreachable", format!("{}: {} ({})", target.endpoint, e.message, e.code)))
            }
            Err(e) => Ok(json!({ "Endpoint": target.endpoint, "Reachable": false, "Writable": false, "Error": format!("{}: {}", e.code, e.message) })),
        },
        Op::WaitWritable { target } => match probe(&target) {
            Ok(v) if v["Writable"] == json!(true) => Ok(v),
            Ok(v) => Err(StepError::new(
                "NotWritable",
                format!("{}: in recovery {}, read-only {}", target.endpoint, v["InRecovery"], v["ReadOnly"]),
            )),
            Err(e) => Err(StepError::new("NotWritable", format!("{}: {}", target.endpoint, e.message))),
        },
        Op::WaitReadOnly { target } => match query(&target, "SELECT current_setting('default_transaction_read_only')", &[]) {
            Ok(r) if cell(&r, 0).as_deref() == Some("on") => Ok(json!({ "Endpoint": target.endpoint, "ReadOnly": true, "Reachable": true })),
            Ok(_) => Err(StepError::new("NotReadOnly", format!("{}: new sessions are still read-write", target.endpoint))),
            // A server nobody can reach takes no writes either.
            Err(e) => Ok(json!({ "Endpoint": target.endpoint, "ReadOnly": null, "Reachable": false, "Error": e.message })),
        },
        Op::TerminateClients { target } => match query(
            &target,
            "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND datname IS NOT NULL",
            &[],
        ) {
            Ok(r) => {
                let n: u64 = cell(&r, 0).and_then(|s| s.parse().ok()).unwrap_or(0);
                info!("{}: terminated {n} client session(s)", target.endpoint);
                Ok(json!({ "Endpoint": target.endpoint, "Terminated": n }))
            }
            Err(e) => Ok(json!({ "Endpoint": target.endpoint, "Terminated": 0, "Reachable": false, "Error": e.message })),
        },
        Op::CurrentLsn { target } => {
            let r = query(&target, "SELECT pg_current_wal_flush_lsn()::text", &[])?;
            let lsn = cell(&r, 0).ok_or_else(|| StepError::new("States.Runtime", "no LSN returned"))?;
            info!("{}: WAL flushed up to {lsn}", target.endpoint);
            Ok(json!({ "Endpoint": target.endpoint, "Lsn": lsn }))
        }
        Op::WaitReplay { target, lsn } => {
            let r = query(
                &target,
                "SELECT (pg_last_wal_replay_lsn() >= $1::pg_lsn)::text, pg_last_wal_replay_lsn()::text",
                &[Some(lsn.clone())],
            )
            .map_err(|e| StepError::new("ReplayBehind", format!("{}: {}", target.endpoint, e.message)))?;
            let replayed = cell(&r, 1);
            if cell(&r, 0).as_deref() == Some("true") {
                info!("{}: replayed {} >= {lsn}", target.endpoint, replayed.as_deref().unwrap_or("?"));
                Ok(json!({ "Endpoint": target.endpoint, "ReplayedLsn": replayed, "TargetLsn": lsn }))
            } else {
                Err(StepError::new(
                    "ReplayBehind",
                    format!("{}: replayed {} < {lsn}", target.endpoint, replayed.as_deref().unwrap_or("nothing")),
                ))
            }
        }
        Op::CanaryWrite { target, note } => {
            let write = || -> Result<QueryResult, runbook_plugin_sdk::CapError> {
                query(
                    &target,
                    "CREATE TABLE IF NOT EXISTS runbook_canary (id bigserial PRIMARY KEY, \
                     at timestamptz NOT NULL DEFAULT now(), note text)",
                    &[],
                )?;
                query(
                    &target,
                    "INSERT INTO runbook_canary (note) VALUES ($1) RETURNING id::text, inet_server_port()::text",
                    &[Some(note.clone())],
                )
            };
            match write() {
                Ok(r) => {
                    info!("canary row {} written through {}", cell(&r, 0).unwrap_or_default(), target.endpoint);
                    Ok(json!({ "Endpoint": target.endpoint, "Written": true, "Id": cell(&r, 0) }))
                }
                Err(e) => Err(StepError::new("WriteFailed", format!("{}: {} ({})", target.endpoint, e.message, e.code))),
            }
        }
    }
}

export_step!(run);
