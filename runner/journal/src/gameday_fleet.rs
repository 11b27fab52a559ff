//! Fleet mode for game days: the [`GameDayThrough`] store every game-day write (traffic
//! sessions, their ledgers and lag samples, injected faults, the safety lever) goes to
//! before SQLite, and the import of what that store has. A game day's report can then
//! be produced, and its rollback run, by whichever runner takes it over.

use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{FaultRow, Journal, LagRow, LedgerRow, LeverState, Result, SessionRow, json};

/// What the driver of a session (or its owner, once the driver is gone) says about it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionState {
    pub state: String,
    pub pid: Option<u32>,
    pub stopped_ms: Option<i64>,
    pub error: Option<String>,
}

/// One session as the store has it: its row (state, stop request and verification
/// merged in), ledger and lag samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedSession {
    pub row: SessionRow,
    pub ledger: Vec<LedgerRow>,
    pub lag: Vec<LagRow>,
}

/// An execution's game-day records as the store has them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GameDayRecords {
    pub sessions: Vec<ImportedSession>,
    pub faults: Vec<FaultRow>,
}

/// Fleet mode's store for game-day records. The execution's owner writes session
/// rows, verifications and faults under its fencing token; the traffic driver (a
/// process of its own, the application stand-in, not an actor) writes its session's
/// state, ledger and lag unfenced but idempotently; anyone may ask a session to stop or
/// move the lever. An error stops the write: nothing is written locally.
pub trait GameDayThrough: Send + Sync {
    fn create_session(&self, s: &SessionRow) -> Result<()>;
    fn put_session_state(&self, execution_id: &str, session: &str, s: &SessionState) -> Result<()>;
    fn request_session_stop(&self, execution_id: &str, session: &str) -> Result<()>;
    /// The session was asked to stop, or its execution is no longer RUNNING.
    fn session_stop_requested(&self, execution_id: &str, session: &str) -> Result<bool>;
    fn set_session_verification(&self, execution_id: &str, session: &str, v: &Value) -> Result<()>;
    fn append_ledger(&self, execution_id: &str, session: &str, rows: &[LedgerRow]) -> Result<()>;
    fn append_lag(&self, execution_id: &str, session: &str, rows: &[LagRow]) -> Result<()>;
    fn put_fault(&self, f: &FaultRow) -> Result<()>;
    fn set_lever(&self, l: &LeverState) -> Result<()>;
    /// Every lever change across the fleet, oldest first.
    fn lever_history(&self) -> Result<Vec<LeverState>>;
}

impl Journal {
    /// The fleet store of game-day records, in fleet mode.
    pub(crate) fn gameday_through(&self) -> Option<&dyn GameDayThrough> {
        self.through().and_then(|w| w.gameday())
    }

    /// Fleet mode: whether the fleet's store asks `session` to stop (a stop request,
    /// or its execution no longer RUNNING there). `None` on one machine.
    pub fn fleet_session_stop_requested(
        &self,
        execution_id: &str,
        session: &str,
    ) -> Result<Option<bool>> {
        self.gameday_through()
            .map(|g| g.session_stop_requested(execution_id, session))
            .transpose()
    }

    /// Replace this journal's copy of `execution_id`'s sessions (rows, ledgers, lag)
    /// and faults with `r`, in one transaction. Not written through.
    pub fn import_gameday(&self, execution_id: &str, r: &GameDayRecords) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for table in ["ledger", "lag_samples"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE session_id IN
                     (SELECT id FROM traffic_sessions WHERE execution_id = ?1)"
                ),
                [execution_id],
            )?;
        }
        tx.execute(
            "DELETE FROM traffic_sessions WHERE execution_id = ?1",
            [execution_id],
        )?;
        for s in &r.sessions {
            import_session(&tx, s)?;
        }
        tx.execute("DELETE FROM faults WHERE execution_id = ?1", [execution_id])?;
        for f in &r.faults {
            crate::gameday::upsert_fault(&tx, f)?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn import_session(tx: &rusqlite::Transaction<'_>, s: &ImportedSession) -> Result<()> {
    let r = &s.row;
    for table in ["ledger", "lag_samples"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE session_id = ?1"),
            [&r.id],
        )?;
    }
    tx.execute("DELETE FROM traffic_sessions WHERE id = ?1", [&r.id])?;
    tx.execute(
        "INSERT INTO traffic_sessions (id, execution_id, client_token, spec, state, pid, started_ms, stopped_ms, stop_requested, error, verification)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            r.id,
            r.execution_id,
            r.client_token,
            json(&r.spec),
            r.state,
            r.pid,
            r.started_ms,
            r.stopped_ms,
            r.stop_requested as i64,
            r.error,
            r.verification.as_ref().map(json)
        ],
    )?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO ledger (session_id, kind, id, conn, sent_ms, done_ms, outcome, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for l in &s.ledger {
            stmt.execute(params![
                r.id,
                l.kind,
                l.id as i64,
                l.conn,
                l.sent_ms,
                l.done_ms,
                l.outcome,
                l.error
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO lag_samples (session_id, at_ms, lag) VALUES (?1, ?2, ?3)",
        )?;
        for l in &s.lag {
            stmt.execute(params![r.id, l.at_ms, l.lag])?;
        }
    }
    Ok(())
}

/// Merge ledger batches in the order they were written: an entry is written when sent
/// and again when done, so a later batch's row replaces an earlier one.
pub fn merge_ledger(batches: impl IntoIterator<Item = Vec<LedgerRow>>) -> Vec<LedgerRow> {
    let mut by_key: std::collections::BTreeMap<(String, u64), LedgerRow> = Default::default();
    for batch in batches {
        for r in batch {
            by_key.insert((r.kind.clone(), r.id), r);
        }
    }
    let mut rows: Vec<LedgerRow> = by_key.into_values().collect();
    rows.sort_by(|a, b| (a.sent_ms, &a.kind, a.id).cmp(&(b.sent_ms, &b.kind, b.id)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, id: u64, sent: i64, outcome: &str) -> LedgerRow {
        LedgerRow {
            kind: kind.into(),
            id,
            conn: 0,
            sent_ms: sent,
            done_ms: None,
            outcome: outcome.into(),
            error: None,
        }
    }

    #[test]
    fn later_batches_replace_earlier_rows_and_import_replaces_the_local_copy() {
        let merged = merge_ledger([
            vec![
                row("write", 1, 10, "in-flight"),
                row("write", 2, 20, "in-flight"),
            ],
            vec![row("write", 1, 10, "acked"), row("read", 1, 15, "ok")],
        ]);
        let got: Vec<(&str, u64, &str)> = merged
            .iter()
            .map(|r| (r.kind.as_str(), r.id, r.outcome.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("write", 1, "acked"),
                ("read", 1, "ok"),
                ("write", 2, "in-flight")
            ]
        );

        let j = Journal::open_in_memory().unwrap();
        let session = SessionRow {
            id: "traffic-1".into(),
            execution_id: "e1".into(),
            client_token: "t".into(),
            spec: serde_json::json!({"rate": 50}),
            state: "running".into(),
            pid: Some(7),
            started_ms: 1,
            stopped_ms: None,
            stop_requested: false,
            error: None,
            verification: None,
        };
        j.create_session(&session).unwrap();
        j.append_ledger("traffic-1", &[row("write", 9, 1, "acked")])
            .unwrap();
        let imported = GameDayRecords {
            sessions: vec![ImportedSession {
                row: SessionRow {
                    state: "stopped".into(),
                    stop_requested: true,
                    ..session.clone()
                },
                ledger: merged,
                lag: vec![LagRow {
                    at_ms: 5,
                    lag: Some(0.5),
                }],
            }],
            faults: vec![],
        };
        j.import_gameday("e1", &imported).unwrap();
        let s = j.session("traffic-1").unwrap();
        assert_eq!((s.state.as_str(), s.stop_requested), ("stopped", true));
        assert_eq!(
            j.ledger("traffic-1").unwrap().len(),
            3,
            "replaced, not added"
        );
        assert_eq!(j.lag_samples("traffic-1").unwrap().len(), 1);
    }
}
