//! Game-day records: the safety lever, injected faults, traffic sessions and their
//! ledgers. The traffic driver runs in its own process and appends to the same
//! database (SQLite WAL allows one writer at a time across processes; every append is
//! a short transaction). In fleet mode every write goes to the fleet's store first
//! (`gameday_fleet.rs`).

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Journal, JournalError, Result, SessionState, json, parse};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS lever (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    engaged INTEGER NOT NULL,
    reason TEXT,
    actor TEXT
);
CREATE TABLE IF NOT EXISTS faults (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    client_token TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    injected_ms INTEGER NOT NULL,
    undone_ms INTEGER,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS traffic_sessions (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    client_token TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER,
    started_ms INTEGER NOT NULL,
    stopped_ms INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    verification TEXT
);
CREATE TABLE IF NOT EXISTS ledger (
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    id INTEGER NOT NULL,
    conn INTEGER NOT NULL,
    sent_ms INTEGER NOT NULL,
    done_ms INTEGER,
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (session_id, kind, id)
);
CREATE TABLE IF NOT EXISTS lag_samples (
    session_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    lag REAL
);
CREATE INDEX IF NOT EXISTS lag_samples_session ON lag_samples (session_id, at_ms);
"#;

/// The safety lever as it stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LeverState {
    pub engaged: bool,
    pub reason: Option<String>,
    pub since_ms: Option<i64>,
    pub actor: Option<String>,
}

/// An injected fault, as the executor keeps it (the record is the WIT `fault`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultRow {
    pub id: String,
    pub execution_id: String,
    pub client_token: String,
    pub kind: String,
    pub state: String,
    pub injected_ms: i64,
    pub undone_ms: Option<i64>,
    pub record: Value,
}

/// A traffic session (one application-like client).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub execution_id: String,
    pub client_token: String,
    pub spec: Value,
    /// `starting`, `running`, `stopped`, `failed`.
    pub state: String,
    pub pid: Option<u32>,
    pub started_ms: i64,
    pub stopped_ms: Option<i64>,
    pub stop_requested: bool,
    pub error: Option<String>,
    pub verification: Option<Value>,
}

/// One ledger entry: a write or a read as the client saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LedgerRow {
    /// `write` or `read`.
    pub kind: String,
    pub id: u64,
    pub conn: u32,
    pub sent_ms: i64,
    pub done_ms: Option<i64>,
    /// `acked`, `failed`, `unknown` (writes); `ok`, `failed` (reads).
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LagRow {
    pub at_ms: i64,
    /// Seconds; `None` when the replica could not be sampled.
    pub lag: Option<f64>,
}

const SESSION_COLS: &str = "id, execution_id, client_token, spec, state, pid, started_ms, stopped_ms, stop_requested, error, verification";

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(SessionRow, String, Option<String>)> {
    Ok((
        SessionRow {
            id: r.get(0)?,
            execution_id: r.get(1)?,
            client_token: r.get(2)?,
            spec: Value::Null,
            state: r.get(4)?,
            pid: r.get(5)?,
            started_ms: r.get(6)?,
            stopped_ms: r.get(7)?,
            stop_requested: r.get::<_, i64>(8)? != 0,
            error: r.get(9)?,
            verification: None,
        },
        r.get(3)?,
        r.get(10)?,
    ))
}

fn finish_session((mut s, spec, ver): (SessionRow, String, Option<String>)) -> Result<SessionRow> {
    s.spec = parse(&spec)?;
    s.verification = ver.as_deref().map(parse).transpose()?;
    Ok(s)
}

fn fault_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(FaultRow, String)> {
    Ok((
        FaultRow {
            id: r.get(0)?,
            execution_id: r.get(1)?,
            client_token: r.get(2)?,
            kind: r.get(3)?,
            state: r.get(4)?,
            injected_ms: r.get(5)?,
            undone_ms: r.get(6)?,
            record: Value::Null,
        },
        r.get(7)?,
    ))
}

pub(crate) fn upsert_fault(c: &rusqlite::Connection, f: &FaultRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO faults (id, execution_id, client_token, kind, state, injected_ms, undone_ms, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET state = ?5, undone_ms = ?7, record = ?8",
        params![
            f.id,
            f.execution_id,
            f.client_token,
            f.kind,
            f.state,
            f.injected_ms,
            f.undone_ms,
            json(&f.record)
        ],
    )
    .map(|_| ())
}

const FAULT_COLS: &str =
    "id, execution_id, client_token, kind, state, injected_ms, undone_ms, record";

impl Journal {
    // ---- safety lever -------------------------------------------------------------

    pub fn lever(&self) -> Result<LeverState> {
        // Fleet mode: the lever is the fleet's, not this runner's.
        if let Some(g) = self.gameday_through() {
            return Ok(g.lever_history()?.pop().unwrap_or_default());
        }
        self.with(|c| {
            c.query_row(
                "SELECT engaged, reason, at_ms, actor FROM lever ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(LeverState {
                        engaged: r.get::<_, i64>(0)? != 0,
                        reason: r.get(1)?,
                        since_ms: r.get(2)?,
                        actor: r.get(3)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
    }

    pub fn set_lever(
        &self,
        engaged: bool,
        reason: Option<&str>,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if let Some(g) = self.gameday_through() {
            g.set_lever(&LeverState {
                engaged,
                reason: reason.map(String::from),
                since_ms: Some(at_ms),
                actor: Some(actor.to_string()),
            })?;
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO lever (at_ms, engaged, reason, actor) VALUES (?1, ?2, ?3, ?4)",
                params![at_ms, engaged as i64, reason, actor],
            )
            .map(|_| ())
        })
    }

    /// Every lever change, oldest first (for `runbook show` of an execution's window).
    pub fn lever_history(&self) -> Result<Vec<LeverState>> {
        if let Some(g) = self.gameday_through() {
            return g.lever_history();
        }
        self.with(|c| {
            let mut s =
                c.prepare("SELECT engaged, reason, at_ms, actor FROM lever ORDER BY seq")?;
            s.query_map([], |r| {
                Ok(LeverState {
                    engaged: r.get::<_, i64>(0)? != 0,
                    reason: r.get(1)?,
                    since_ms: r.get(2)?,
                    actor: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    // ---- faults ---------------------------------------------------------------------

    /// The fault injected under `client_token`, if any (idempotent injection).
    pub fn fault_by_token(&self, client_token: &str) -> Result<Option<FaultRow>> {
        let sql = format!("SELECT {FAULT_COLS} FROM faults WHERE client_token = ?1");
        let raw = self.with(|c| c.query_row(&sql, [client_token], fault_row).optional())?;
        raw.map(|(mut f, rec)| {
            f.record = parse(&rec)?;
            Ok(f)
        })
        .transpose()
    }

    pub fn fault(&self, id: &str) -> Result<FaultRow> {
        let sql = format!("SELECT {FAULT_COLS} FROM faults WHERE id = ?1");
        let raw = self.with(|c| c.query_row(&sql, [id], fault_row).optional())?;
        let (mut f, rec) = raw.ok_or_else(|| JournalError::NotFound(id.to_string()))?;
        f.record = parse(&rec)?;
        Ok(f)
    }

    /// Insert or replace a fault's row.
    pub fn put_fault(&self, f: &FaultRow) -> Result<()> {
        if let Some(g) = self.gameday_through() {
            g.put_fault(f)?;
        }
        self.with(|c| upsert_fault(c, f))
    }

    /// Faults injected by any of these executions, oldest first.
    pub fn faults_of(&self, execution_ids: &[String]) -> Result<Vec<FaultRow>> {
        let mut out = Vec::new();
        for id in execution_ids {
            let sql = format!(
                "SELECT {FAULT_COLS} FROM faults WHERE execution_id = ?1 ORDER BY injected_ms"
            );
            let raws: Vec<(FaultRow, String)> = self.with(|c| {
                let mut s = c.prepare(&sql)?;
                s.query_map([id], fault_row)?.collect()
            })?;
            for (mut f, rec) in raws {
                f.record = parse(&rec)?;
                out.push(f);
            }
        }
        out.sort_by_key(|f| f.injected_ms);
        Ok(out)
    }

    /// Faults still active, anywhere (for `runbook lever` and rollbacks).
    pub fn active_faults(&self) -> Result<Vec<FaultRow>> {
        let sql =
            format!("SELECT {FAULT_COLS} FROM faults WHERE state = 'active' ORDER BY injected_ms");
        let raws: Vec<(FaultRow, String)> = self.with(|c| {
            let mut s = c.prepare(&sql)?;
            s.query_map([], fault_row)?.collect()
        })?;
        raws.into_iter()
            .map(|(mut f, rec)| {
                f.record = parse(&rec)?;
                Ok(f)
            })
            .collect()
    }

    // ---- traffic sessions -------------------------------------------------------------

    /// Create a session, or return the one already made under the same client token.
    pub fn create_session(&self, s: &SessionRow) -> Result<SessionRow> {
        if let Some(existing) = self.session_by_token(&s.client_token)? {
            return Ok(existing);
        }
        if let Some(g) = self.gameday_through() {
            g.create_session(s)?;
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO traffic_sessions (id, execution_id, client_token, spec, state, pid, started_ms, stop_requested)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
                params![
                    s.id,
                    s.execution_id,
                    s.client_token,
                    json(&s.spec),
                    s.state,
                    s.pid,
                    s.started_ms
                ],
            )
            .map(|_| ())
        })?;
        self.session(&s.id)
    }

    pub fn session_by_token(&self, client_token: &str) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLS} FROM traffic_sessions WHERE client_token = ?1");
        let raw = self.with(|c| c.query_row(&sql, [client_token], session_row).optional())?;
        raw.map(finish_session).transpose()
    }

    pub fn session(&self, id: &str) -> Result<SessionRow> {
        let sql = format!("SELECT {SESSION_COLS} FROM traffic_sessions WHERE id = ?1");
        let raw = self.with(|c| c.query_row(&sql, [id], session_row).optional())?;
        finish_session(raw.ok_or_else(|| JournalError::NotFound(id.to_string()))?)
    }

    /// Sessions started by any of these executions, oldest first.
    pub fn sessions_of(&self, execution_ids: &[String]) -> Result<Vec<SessionRow>> {
        let mut out = Vec::new();
        for id in execution_ids {
            let sql = format!(
                "SELECT {SESSION_COLS} FROM traffic_sessions WHERE execution_id = ?1 ORDER BY started_ms"
            );
            let raws: Vec<_> = self.with(|c| {
                let mut s = c.prepare(&sql)?;
                s.query_map([id], session_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?;
            for raw in raws {
                out.push(finish_session(raw)?);
            }
        }
        out.sort_by_key(|s| s.started_ms);
        Ok(out)
    }

    /// Sessions whose driver is supposed to be running.
    pub fn live_sessions(&self) -> Result<Vec<SessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM traffic_sessions WHERE state IN ('starting', 'running')"
        );
        let raws: Vec<_> = self.with(|c| {
            let mut s = c.prepare(&sql)?;
            s.query_map([], session_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raws.into_iter().map(finish_session).collect()
    }

    pub fn set_session_state(
        &self,
        id: &str,
        state: &str,
        pid: Option<u32>,
        stopped_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        if let Some(g) = self.gameday_through() {
            // The store keeps the merged state, as the UPDATE below computes it.
            let now = self.session(id)?;
            g.put_session_state(
                &now.execution_id,
                id,
                &SessionState {
                    state: state.to_string(),
                    pid: pid.or(now.pid),
                    stopped_ms: stopped_ms.or(now.stopped_ms),
                    error: error.map(String::from).or(now.error),
                },
            )?;
        }
        self.with(|c| {
            c.execute(
                "UPDATE traffic_sessions SET state = ?2, pid = COALESCE(?3, pid),
                 stopped_ms = COALESCE(?4, stopped_ms), error = COALESCE(?5, error) WHERE id = ?1",
                params![id, state, pid, stopped_ms, error],
            )
            .map(|_| ())
        })
    }

    pub fn request_session_stop(&self, id: &str) -> Result<()> {
        if let Some(g) = self.gameday_through() {
            g.request_session_stop(&self.session(id)?.execution_id, id)?;
        }
        self.with(|c| {
            c.execute(
                "UPDATE traffic_sessions SET stop_requested = 1 WHERE id = ?1",
                [id],
            )
            .map(|_| ())
        })
    }

    pub fn set_session_verification(&self, id: &str, verification: &Value) -> Result<()> {
        if let Some(g) = self.gameday_through() {
            g.set_session_verification(&self.session(id)?.execution_id, id, verification)?;
        }
        self.with(|c| {
            c.execute(
                "UPDATE traffic_sessions SET verification = ?2 WHERE id = ?1",
                params![id, json(verification)],
            )
            .map(|_| ())
        })
    }

    /// Append (or update: an entry is written when sent and again when done) ledger rows.
    pub fn append_ledger(&self, session_id: &str, rows: &[LedgerRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(g) = self.gameday_through() {
            g.append_ledger(&self.session(session_id)?.execution_id, session_id, rows)?;
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // IMMEDIATE: other processes (workers, traffic drivers) write too; a deferred
        // transaction that reads first could not upgrade (SQLITE_BUSY_SNAPSHOT).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO ledger (session_id, kind, id, conn, sent_ms, done_ms, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (session_id, kind, id) DO UPDATE SET done_ms = ?6, outcome = ?7, error = ?8",
            )?;
            for r in rows {
                stmt.execute(params![
                    session_id,
                    r.kind,
                    r.id as i64,
                    r.conn,
                    r.sent_ms,
                    r.done_ms,
                    r.outcome,
                    r.error
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn ledger(&self, session_id: &str) -> Result<Vec<LedgerRow>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT kind, id, conn, sent_ms, done_ms, outcome, error FROM ledger
                 WHERE session_id = ?1 ORDER BY sent_ms, kind, id",
            )?;
            s.query_map([session_id], |r| {
                Ok(LedgerRow {
                    kind: r.get(0)?,
                    id: r.get::<_, i64>(1)? as u64,
                    conn: r.get(2)?,
                    sent_ms: r.get(3)?,
                    done_ms: r.get(4)?,
                    outcome: r.get(5)?,
                    error: r.get(6)?,
                })
            })?
            .collect()
        })
    }

    pub fn append_lag(&self, session_id: &str, rows: &[LagRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(g) = self.gameday_through() {
            g.append_lag(&self.session(session_id)?.execution_id, session_id, rows)?;
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // IMMEDIATE: other processes (workers, traffic drivers) write too; a deferred
        // transaction that reads first could not upgrade (SQLITE_BUSY_SNAPSHOT).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                // A sample the fleet's store already brought here is not added twice.
                "INSERT INTO lag_samples (session_id, at_ms, lag) SELECT ?1, ?2, ?3
                 WHERE NOT EXISTS (SELECT 1 FROM lag_samples WHERE session_id = ?1 AND at_ms = ?2)",
            )?;
            for r in rows {
                stmt.execute(params![session_id, r.at_ms, r.lag])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn lag_samples(&self, session_id: &str) -> Result<Vec<LagRow>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT at_ms, lag FROM lag_samples WHERE session_id = ?1 ORDER BY at_ms",
            )?;
            s.query_map([session_id], |r| {
                Ok(LagRow {
                    at_ms: r.get(0)?,
                    lag: r.get(1)?,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lever_faults_sessions_and_ledger_round_trip() {
        let j = Journal::open_in_memory().unwrap();
        assert!(!j.lever().unwrap().engaged);
        j.set_lever(true, Some("incident 42"), "ops", 10).unwrap();
        let l = j.lever().unwrap();
        assert!(l.engaged);
        assert_eq!(l.reason.as_deref(), Some("incident 42"));
        j.set_lever(false, None, "ops", 20).unwrap();
        assert!(!j.lever().unwrap().engaged);
        assert_eq!(j.lever_history().unwrap().len(), 2);

        let f = FaultRow {
            id: "f1".into(),
            execution_id: "e1".into(),
            client_token: "tok".into(),
            kind: "region-loss".into(),
            state: "active".into(),
            injected_ms: 5,
            undone_ms: None,
            record: json!({"id": "f1"}),
        };
        j.put_fault(&f).unwrap();
        assert_eq!(j.fault_by_token("tok").unwrap().unwrap(), f);
        assert_eq!(j.active_faults().unwrap().len(), 1);
        j.put_fault(&FaultRow {
            state: "undone".into(),
            undone_ms: Some(9),
            ..f.clone()
        })
        .unwrap();
        assert!(j.active_faults().unwrap().is_empty());
        assert_eq!(j.faults_of(&["e1".into()]).unwrap()[0].undone_ms, Some(9));

        let s = SessionRow {
            id: "s1".into(),
            execution_id: "e1".into(),
            client_token: "t1".into(),
            spec: json!({"writes_per_second": 50}),
            state: "starting".into(),
            pid: None,
            started_ms: 7,
            stopped_ms: None,
            stop_requested: false,
            error: None,
            verification: None,
        };
        assert_eq!(j.create_session(&s).unwrap().id, "s1");
        // Same token: the same session, not a second one.
        let again = j
            .create_session(&SessionRow {
                id: "s2".into(),
                ..s.clone()
            })
            .unwrap();
        assert_eq!(again.id, "s1");
        j.set_session_state("s1", "running", Some(99), None, None)
            .unwrap();
        assert_eq!(j.live_sessions().unwrap()[0].pid, Some(99));
        j.request_session_stop("s1").unwrap();
        assert!(j.session("s1").unwrap().stop_requested);

        let w = |id, outcome: &str, done| LedgerRow {
            kind: "write".into(),
            id,
            conn: 0,
            sent_ms: id as i64 * 20,
            done_ms: done,
            outcome: outcome.into(),
            error: None,
        };
        j.append_ledger("s1", &[w(1, "pending", None), w(2, "acked", Some(45))])
            .unwrap();
        j.append_ledger("s1", &[w(1, "acked", Some(30))]).unwrap();
        let l = j.ledger("s1").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].outcome, "acked");
        assert_eq!(l[0].done_ms, Some(30));
        j.append_lag(
            "s1",
            &[
                LagRow {
                    at_ms: 1,
                    lag: Some(0.2),
                },
                LagRow {
                    at_ms: 2,
                    lag: None,
                },
            ],
        )
        .unwrap();
        assert_eq!(j.lag_samples("s1").unwrap()[1].lag, None);
    }

    #[test]
    fn one_execution_tree_per_environment() {
        let j = Journal::open_in_memory().unwrap();
        let mut e = crate::tests::exec("a");
        e.environment = Some("local/dev".into());
        j.create_execution(&e).unwrap();
        // Its child shares the environment.
        let mut child = crate::tests::exec("a-child");
        child.environment = Some("local/dev".into());
        child.parent_id = Some("a".into());
        j.create_execution(&child).unwrap();
        assert_eq!(j.children("a").unwrap()[0].id, "a-child");
        // Another tree is refused, naming the holder.
        let mut other = crate::tests::exec("b");
        other.environment = Some("local/dev".into());
        match j.create_execution(&other) {
            Err(JournalError::EnvironmentBusy { holder, .. }) => assert_eq!(holder, "a"),
            r => panic!("expected EnvironmentBusy, got {r:?}"),
        }
        // Another environment is free.
        other.environment = Some("local/qa".into());
        j.create_execution(&other).unwrap();
        // Once the holder ends, a redrive of b on dev may take it.
        j.finish("a-child", "SUCCEEDED", 3, None, None, None)
            .unwrap();
        j.finish("a", "SUCCEEDED", 3, None, None, None).unwrap();
        let mut c = crate::tests::exec("c");
        c.environment = Some("local/dev".into());
        j.create_execution(&c).unwrap();
        assert_eq!(j.environment_holder("local/dev").unwrap().unwrap().id, "c");
    }

    #[test]
    fn claim_is_exclusive() {
        let j = Journal::open_in_memory().unwrap();
        let mut e = crate::tests::exec("x");
        e.runner_pid = Some(1);
        j.create_execution(&e).unwrap();
        // pid 1 is alive: nobody else may claim.
        assert!(!j.claim("x", 7, |_| true).unwrap());
        // Its runner died: the first claimant wins, the second loses.
        assert!(j.claim("x", 7, |p| p == 7).unwrap());
        assert!(!j.claim("x", 8, |p| p == 7).unwrap());
        assert!(j.claim("x", 7, |p| p == 7).unwrap());
    }
}
