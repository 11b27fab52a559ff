//! An execution's four streams: engine events, history, capability calls and plugin
//! logs (appends and listings).

use rusqlite::params;
use serde_json::Value;

use crate::{CallRow, EventRow, HistoryRow, Journal, LogRow, MAX_CALL_RESULT_BYTES, Result};
use crate::{json, parse};

impl Journal {
    /// Append an engine input; returns its sequence number.
    pub fn append_event(&self, id: &str, at_ms: i64, event: &Value) -> Result<i64> {
        if let Some(w) = self.through() {
            w.append_event(id, at_ms, event)?;
        }
        self.with(|c| {
            let seq: i64 = c.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE execution_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            c.execute(
                "INSERT INTO events (execution_id, seq, at_ms, event) VALUES (?1, ?2, ?3, ?4)",
                params![id, seq, at_ms, json(event)],
            )?;
            Ok(seq)
        })
    }

    /// Append history rows in one transaction.
    pub fn append_history(
        &self,
        id: &str,
        rows: &[(i64, String, Option<String>, Value)],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(w) = self.through() {
            w.append_history(id, rows)?;
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // IMMEDIATE: other processes (workers, traffic drivers) write too; a deferred
        // transaction that reads first could not upgrade (SQLITE_BUSY_SNAPSHOT).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut seq: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM history WHERE execution_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO history (execution_id, seq, at_ms, kind, state, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (at, kind, state, details) in rows {
                seq += 1;
                stmt.execute(params![id, seq, at, kind, state, json(details)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn record_call(&self, id: &str, at_ms: i64, row: &CallRow) -> Result<()> {
        if let Some(w) = self.through() {
            w.record_call(id, at_ms, row)?;
        }
        let args = row.args.as_ref().map(json);
        let result = row
            .result
            .as_ref()
            .map(json)
            .filter(|r| r.len() <= MAX_CALL_RESULT_BYTES);
        self.with(|c| {
            c.execute(
                "INSERT INTO calls (execution_id, seq, at_ms, state, plugin, service, action, region, resource, outcome, error_code, duration_us, args, result)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM calls WHERE execution_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    id,
                    at_ms,
                    row.state,
                    row.plugin,
                    row.service,
                    row.action,
                    row.region,
                    row.resource,
                    row.outcome,
                    row.error_code,
                    row.duration_us,
                    args,
                    result
                ],
            )
            .map(|_| ())
        })
    }

    pub fn record_log(
        &self,
        id: &str,
        at_ms: i64,
        state: &str,
        plugin: &str,
        level: &str,
        message: &str,
    ) -> Result<()> {
        if let Some(w) = self.through() {
            w.record_log(id, at_ms, state, plugin, level, message)?;
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO logs (execution_id, seq, at_ms, state, plugin, level, message)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM logs WHERE execution_id = ?1), ?2, ?3, ?4, ?5, ?6)",
                params![id, at_ms, state, plugin, level, message],
            )
            .map(|_| ())
        })
    }

    pub fn events(&self, id: &str) -> Result<Vec<EventRow>> {
        let raws: Vec<(i64, i64, String)> = self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, event FROM events WHERE execution_id = ?1 ORDER BY seq",
            )?;
            s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })?;
        raws.into_iter()
            .map(|(seq, at_ms, e)| {
                Ok(EventRow {
                    seq,
                    at_ms,
                    event: parse(&e)?,
                })
            })
            .collect()
    }

    pub fn history(&self, id: &str) -> Result<Vec<HistoryRow>> {
        let raws: Vec<(i64, i64, String, Option<String>, String)> = self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, kind, state, details FROM history WHERE execution_id = ?1 ORDER BY seq",
            )?;
            s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?.collect()
        })?;
        raws.into_iter()
            .map(|(seq, at_ms, kind, state, d)| {
                Ok(HistoryRow {
                    seq,
                    at_ms,
                    kind,
                    state,
                    details: parse(&d)?,
                })
            })
            .collect()
    }

    pub fn calls(&self, id: &str) -> Result<Vec<CallRow>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, state, plugin, service, action, region, resource, outcome, error_code, duration_us, args, result
                 FROM calls WHERE execution_id = ?1 ORDER BY seq",
            )?;
            s.query_map([id], |r| {
                Ok(CallRow {
                    seq: r.get(0)?,
                    at_ms: r.get(1)?,
                    state: r.get(2)?,
                    plugin: r.get(3)?,
                    service: r.get(4)?,
                    action: r.get(5)?,
                    region: r.get(6)?,
                    resource: r.get(7)?,
                    outcome: r.get(8)?,
                    error_code: r.get(9)?,
                    duration_us: r.get(10)?,
                    // A corrupt cell reads as not kept rather than failing the listing.
                    args: r
                        .get::<_, Option<String>>(11)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    result: r
                        .get::<_, Option<String>>(12)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                })
            })?
            .collect()
        })
    }

    pub fn logs(&self, id: &str) -> Result<Vec<LogRow>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, state, plugin, level, message FROM logs WHERE execution_id = ?1 ORDER BY seq",
            )?;
            s.query_map([id], |r| {
                Ok(LogRow {
                    seq: r.get(0)?,
                    at_ms: r.get(1)?,
                    state: r.get(2)?,
                    plugin: r.get(3)?,
                    level: r.get(4)?,
                    message: r.get(5)?,
                })
            })?
            .collect()
        })
    }
}
