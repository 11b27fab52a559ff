//! What `runbook serve` keeps between restarts: per-schedule and per-watcher state,
//! every decision it made with its evidence, and the executions it started (so a
//! restarted serve resumes the ones whose runner died and settles the ones that
//! finished while it was down).

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Journal, Result, json, parse};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS serve_state (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS serve_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS serve_decisions_subject ON serve_decisions (kind, subject, seq);
CREATE TABLE IF NOT EXISTS serve_runs (
    execution_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    slot_ms INTEGER,
    created_ms INTEGER NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0
);
"#;

/// One decision of a schedule, the watcher or readiness, as journaled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecisionRow {
    pub seq: i64,
    pub at_ms: i64,
    /// `schedule`, `watcher`, `readiness`, `control`.
    pub kind: String,
    /// The schedule's name or the environment.
    pub subject: String,
    /// `fire`, `skip`, `missed`, `failover`, `notify`, `ready`, ...
    pub action: String,
    pub body: Value,
}

/// An execution `serve` started: its source (`schedule`, `watcher`, `trigger`) and
/// subject; `settled` once serve has seen it end and updated its state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServeRun {
    pub execution_id: String,
    pub source: String,
    pub subject: String,
    pub slot_ms: Option<i64>,
    pub created_ms: i64,
    pub settled: bool,
}

impl Journal {
    pub fn serve_state(&self, kind: &str, name: &str) -> Result<Option<Value>> {
        let s: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT state FROM serve_state WHERE kind = ?1 AND name = ?2",
                params![kind, name],
                |r| r.get(0),
            )
            .optional()
        })?;
        s.map(|s| parse(&s)).transpose()
    }

    pub fn put_serve_state(&self, kind: &str, name: &str, state: &Value, at_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO serve_state (kind, name, state, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, name) DO UPDATE SET state = ?3, updated_ms = ?4",
                params![kind, name, json(state), at_ms],
            )
            .map(|_| ())
        })
    }

    pub fn record_decision(
        &self,
        at_ms: i64,
        kind: &str,
        subject: &str,
        action: &str,
        body: &Value,
    ) -> Result<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO serve_decisions (at_ms, kind, subject, action, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![at_ms, kind, subject, action, json(body)],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Decisions newest first, optionally of one kind and subject.
    pub fn decisions(
        &self,
        kind: Option<&str>,
        subject: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DecisionRow>> {
        let rows: Vec<(i64, i64, String, String, String, String)> = self.with(|c| {
            let mut s = c.prepare(
                "SELECT seq, at_ms, kind, subject, action, body FROM serve_decisions
                 WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR subject = ?2)
                 ORDER BY seq DESC LIMIT ?3",
            )?;
            s.query_map(params![kind, subject, limit as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect()
        })?;
        rows.into_iter()
            .map(|(seq, at_ms, kind, subject, action, body)| {
                Ok(DecisionRow {
                    seq,
                    at_ms,
                    kind,
                    subject,
                    action,
                    body: parse(&body)?,
                })
            })
            .collect()
    }

    /// Record an execution serve is about to create (before it exists, so a crash in
    /// between leaves a row whose execution is missing, which [`Journal::serve_runs`]
    /// callers drop, rather than an execution serve does not know it started).
    pub fn add_serve_run(&self, run: &ServeRun) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO serve_runs (execution_id, source, subject, slot_ms, created_ms, settled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    run.execution_id,
                    run.source,
                    run.subject,
                    run.slot_ms,
                    run.created_ms,
                    run.settled as i64
                ],
            )
            .map(|_| ())
        })
    }

    pub fn serve_runs(&self, unsettled_only: bool) -> Result<Vec<ServeRun>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT execution_id, source, subject, slot_ms, created_ms, settled FROM serve_runs
                 WHERE (?1 = 0 OR settled = 0) ORDER BY created_ms",
            )?;
            s.query_map(params![unsettled_only as i64], |r| {
                Ok(ServeRun {
                    execution_id: r.get(0)?,
                    source: r.get(1)?,
                    subject: r.get(2)?,
                    slot_ms: r.get(3)?,
                    created_ms: r.get(4)?,
                    settled: r.get::<_, i64>(5)? != 0,
                })
            })?
            .collect()
        })
    }

    pub fn serve_run(&self, execution_id: &str) -> Result<Option<ServeRun>> {
        Ok(self
            .serve_runs(false)?
            .into_iter()
            .find(|r| r.execution_id == execution_id))
    }

    pub fn settle_serve_run(&self, execution_id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE serve_runs SET settled = 1 WHERE execution_id = ?1",
                [execution_id],
            )
            .map(|_| ())
        })
    }

    pub fn delete_serve_run(&self, execution_id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM serve_runs WHERE execution_id = ?1",
                [execution_id],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_decisions_and_runs_round_trip() {
        let j = Journal::open_in_memory().unwrap();
        assert_eq!(j.serve_state("schedule", "a").unwrap(), None);
        j.put_serve_state("schedule", "a", &json!({"last": 1}), 5)
            .unwrap();
        j.put_serve_state("schedule", "a", &json!({"last": 2}), 6)
            .unwrap();
        assert_eq!(
            j.serve_state("schedule", "a").unwrap(),
            Some(json!({"last": 2}))
        );

        j.record_decision(1, "watcher", "dev", "none", &json!({}))
            .unwrap();
        j.record_decision(2, "watcher", "dev", "failover", &json!({"why": "x"}))
            .unwrap();
        j.record_decision(3, "schedule", "g", "fire", &json!({}))
            .unwrap();
        let w = j.decisions(Some("watcher"), Some("dev"), 10).unwrap();
        assert_eq!(
            w.iter().map(|d| d.action.as_str()).collect::<Vec<_>>(),
            ["failover", "none"]
        );
        assert_eq!(j.decisions(None, None, 1).unwrap()[0].action, "fire");

        let run = ServeRun {
            execution_id: "e1".into(),
            source: "schedule".into(),
            subject: "g".into(),
            slot_ms: Some(60_000),
            created_ms: 7,
            settled: false,
        };
        j.add_serve_run(&run).unwrap();
        // A retried add after a crash is harmless.
        j.add_serve_run(&run).unwrap();
        assert_eq!(j.serve_runs(true).unwrap(), vec![run.clone()]);
        j.settle_serve_run("e1").unwrap();
        assert!(j.serve_runs(true).unwrap().is_empty());
        assert!(j.serve_run("e1").unwrap().unwrap().settled);
        j.delete_serve_run("e1").unwrap();
        assert!(j.serve_runs(false).unwrap().is_empty());
    }
}
