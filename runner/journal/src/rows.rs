//! The journal's row types, and how values are encoded into and read from their
//! JSON columns (secrets redacted on the way in).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Journal, JournalError, Result};

/// One execution's header row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecutionRow {
    pub id: String,
    pub name: String,
    /// Path the runbook was read from.
    pub runbook_path: String,
    /// The runbook text as it was when the execution started: resume uses this, not
    /// whatever the file says now.
    pub runbook_text: String,
    pub input: Value,
    pub provider: Option<String>,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub seed: u64,
    pub redrive_count: u32,
    /// PID of the runner driving it, while RUNNING.
    pub runner_pid: Option<u32>,
    /// The execution whose Task started this one (child executions).
    #[serde(default)]
    pub parent_id: Option<String>,
    /// `provider/name` of the environment it acts on (`Runbook.Environment`): at most
    /// one execution tree acts on an environment at a time.
    #[serde(default)]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub at_ms: i64,
    pub event: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryRow {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub state: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallRow {
    pub seq: i64,
    pub at_ms: i64,
    pub state: String,
    pub plugin: String,
    pub service: String,
    pub action: String,
    pub region: Option<String>,
    pub resource: Option<String>,
    /// ok, error, denied, timed_out.
    pub outcome: String,
    pub error_code: Option<String>,
    pub duration_us: i64,
    /// The call's arguments (redacted); `None` in journals written before they were kept.
    #[serde(default)]
    pub args: Option<Value>,
    /// Its result: the `ok` value, or the capability error `{kind, code, message,
    /// retryable}` (redacted); `None` when denied, timed out, too large to keep
    /// ([`MAX_CALL_RESULT_BYTES`]) or written before results were kept.
    #[serde(default)]
    pub result: Option<Value>,
}

/// Results larger than this (as JSON) are not kept: a replay then says so.
pub const MAX_CALL_RESULT_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogRow {
    pub seq: i64,
    pub at_ms: i64,
    pub state: String,
    pub plugin: String,
    pub level: String,
    pub message: String,
}

pub(crate) fn json(v: &Value) -> String {
    serde_json::to_string(&redact(v.clone())).expect("JSON values serialize")
}

pub(crate) fn parse(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| JournalError::Corrupt(e.to_string()))
}

/// Keys whose values never enter the journal, whatever a plugin returns.
fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password")
        || k == "secret_string"
        || k == "secretstring"
        || k.contains("secret_value")
}

/// Replace secret-looking values with "***" (defence in depth: plugins cannot read
/// secrets through the capability contract, but a task input could carry one).
pub fn redact(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if is_secret_key(&k) && !v.is_null() {
                        (k, Value::String("***".into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(redact).collect()),
        other => other,
    }
}

/// The `executions` row mapping: `input` and `output` come back raw, parsed by
/// [`Journal::finish_row`] outside the closure so a corrupt cell is a typed error.
impl Journal {
    pub(crate) fn row(
        r: &rusqlite::Row<'_>,
    ) -> rusqlite::Result<(ExecutionRow, String, Option<String>)> {
        Ok((
            ExecutionRow {
                id: r.get(0)?,
                name: r.get(1)?,
                runbook_path: r.get(2)?,
                runbook_text: r.get(3)?,
                input: Value::Null,
                provider: r.get(5)?,
                status: r.get(6)?,
                started_ms: r.get(7)?,
                ended_ms: r.get(8)?,
                output: None,
                error: r.get(10)?,
                cause: r.get(11)?,
                seed: r.get::<_, i64>(12)? as u64,
                redrive_count: r.get(13)?,
                runner_pid: r.get(14)?,
                parent_id: r.get(15)?,
                environment: r.get(16)?,
            },
            r.get(4)?,
            r.get(9)?,
        ))
    }

    pub(crate) fn finish_row(
        (mut e, input, output): (ExecutionRow, String, Option<String>),
    ) -> Result<ExecutionRow> {
        e.input = parse(&input)?;
        e.output = output.as_deref().map(parse).transpose()?;
        Ok(e)
    }

    pub(crate) const COLS: &'static str = "id, name, runbook_path, runbook_text, input, provider, status, started_ms, ended_ms, output, error, cause, seed, redrive_count, runner_pid, parent_id, environment";
}
