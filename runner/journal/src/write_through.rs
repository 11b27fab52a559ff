//! Fleet mode's hook: the [`WriteThrough`] store every core write goes to before
//! SQLite, and the import of an execution as that store has it.

use std::sync::Arc;

use rusqlite::params;
use serde_json::Value;

use crate::executions::root_of;
use crate::json;
use crate::{
    CallRow, EventRow, ExecutionRow, GameDayRecords, GameDayThrough, HistoryRow, Journal, LogRow,
    NewHistory, Result, TaskTokenRow, TokenThrough,
};

/// Fleet mode (docs/fleet.md): a store every write of an execution's core record
/// (creation, status, events, history, capability calls) goes to *before* SQLite, so
/// the local journal is a cache of it. An error stops the write: nothing is written
/// locally, and the caller gets it as [`JournalError::Mirror`].
pub trait WriteThrough: Send + Sync {
    fn create_execution(&self, e: &ExecutionRow) -> Result<()>;
    fn set_running(&self, id: &str, pid: u32, redrive_count: u32) -> Result<()>;
    fn append_event(&self, id: &str, at_ms: i64, event: &Value) -> Result<()>;
    fn append_history(&self, id: &str, rows: &[NewHistory]) -> Result<()>;
    fn record_call(&self, id: &str, at_ms: i64, row: &CallRow) -> Result<()>;
    /// A plugin's log line.
    fn record_log(
        &self,
        id: &str,
        at_ms: i64,
        state: &str,
        plugin: &str,
        level: &str,
        message: &str,
    ) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        id: &str,
        status: &str,
        at_ms: i64,
        output: Option<&Value>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<()>;
    /// Anyone may ask an execution to stop; the store keeps the request for its driver.
    fn request_stop(&self, id: &str, error: Option<&str>, cause: Option<&str>) -> Result<()>;
    /// A pending stop request as the store has it: `(error, cause)`.
    #[allow(clippy::type_complexity)]
    fn stop_request(&self, id: &str) -> Result<Option<(Option<String>, Option<String>)>>;
    /// The store of game-day records, if this store keeps them (fleet mode's does).
    fn gameday(&self) -> Option<&dyn GameDayThrough> {
        None
    }
    /// The store of task tokens, if this store keeps them (fleet mode's does).
    fn tokens(&self) -> Option<&dyn TokenThrough> {
        None
    }
}

/// An execution as another store has it, to copy into this journal verbatim.
pub struct Imported {
    pub execution: ExecutionRow,
    pub events: Vec<EventRow>,
    pub history: Vec<HistoryRow>,
    pub calls: Vec<CallRow>,
    pub logs: Vec<LogRow>,
    /// Its traffic sessions (with ledgers) and faults.
    pub gameday: GameDayRecords,
    /// Its task tokens.
    pub tokens: Vec<TaskTokenRow>,
}

impl Journal {
    /// Fleet mode: send every write of an execution's core record to `w` first (once
    /// per journal; a second call is ignored).
    pub fn set_write_through(&self, w: Arc<dyn WriteThrough>) {
        let _ = self.write_through.set(w);
    }

    pub(crate) fn through(&self) -> Option<&Arc<dyn WriteThrough>> {
        self.write_through.get()
    }

    /// Replace this journal's copy of an execution with `x` (its row and its four
    /// streams, sequence numbers kept), in one transaction. Not written through: the
    /// rows come from the write-through store.
    pub fn import_execution(&self, x: &Imported) -> Result<()> {
        let e = &x.execution;
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for table in ["events", "history", "calls", "logs"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE execution_id = ?1"),
                [&e.id],
            )?;
        }
        tx.execute("DELETE FROM executions WHERE id = ?1", [&e.id])?;
        // A child whose parent is not here (yet) keeps no root: nothing to check.
        let root: Option<String> = match &e.parent_id {
            Some(p) => root_of(&tx, p)?,
            None => Some(e.id.clone()),
        };
        tx.execute(
            "INSERT INTO executions (id, name, runbook_path, runbook_text, input, provider, status, started_ms, ended_ms, output, error, cause, seed, redrive_count, runner_pid, parent_id, root_id, environment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            params![
                e.id,
                e.name,
                e.runbook_path,
                e.runbook_text,
                json(&e.input),
                e.provider,
                e.status,
                e.started_ms,
                e.ended_ms,
                e.output.as_ref().map(json),
                e.error,
                e.cause,
                e.seed as i64,
                e.redrive_count,
                e.runner_pid,
                e.parent_id,
                root,
                e.environment
            ],
        )?;
        for r in &x.events {
            tx.execute(
                "INSERT INTO events (execution_id, seq, at_ms, event) VALUES (?1, ?2, ?3, ?4)",
                params![e.id, r.seq, r.at_ms, json(&r.event)],
            )?;
        }
        for r in &x.history {
            tx.execute(
                "INSERT INTO history (execution_id, seq, at_ms, kind, state, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.id, r.seq, r.at_ms, r.kind, r.state, json(&r.details)],
            )?;
        }
        for r in &x.calls {
            tx.execute(
                "INSERT INTO calls (execution_id, seq, at_ms, state, plugin, service, action, region, resource, outcome, error_code, duration_us, args, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    e.id,
                    r.seq,
                    r.at_ms,
                    r.state,
                    r.plugin,
                    r.service,
                    r.action,
                    r.region,
                    r.resource,
                    r.outcome,
                    r.error_code,
                    r.duration_us,
                    r.args.as_ref().map(json),
                    r.result.as_ref().map(json)
                ],
            )?;
        }
        for r in &x.logs {
            tx.execute(
                "INSERT INTO logs (execution_id, seq, at_ms, state, plugin, level, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.id, r.seq, r.at_ms, r.state, r.plugin, r.level, r.message],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.import_gameday(&e.id, &x.gameday)?;
        self.import_task_tokens(&e.id, &x.tokens)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::JournalError;
    use crate::tests::exec;

    /// Refuses every write after the first `allow` ones, as a fenced fleet store does.
    struct Refusing {
        allow: Mutex<usize>,
    }

    impl Refusing {
        fn next(&self) -> Result<()> {
            let mut n = self.allow.lock().unwrap();
            if *n == 0 {
                return Err(JournalError::Mirror {
                    code: "fleet.fenced",
                    message: "fleet.fenced: refused".into(),
                });
            }
            *n -= 1;
            Ok(())
        }
    }

    impl WriteThrough for Refusing {
        fn create_execution(&self, _: &ExecutionRow) -> Result<()> {
            self.next()
        }
        fn set_running(&self, _: &str, _: u32, _: u32) -> Result<()> {
            self.next()
        }
        fn append_event(&self, _: &str, _: i64, _: &Value) -> Result<()> {
            self.next()
        }
        fn append_history(&self, _: &str, _: &[NewHistory]) -> Result<()> {
            self.next()
        }
        fn record_call(&self, _: &str, _: i64, _: &CallRow) -> Result<()> {
            self.next()
        }
        fn record_log(&self, _: &str, _: i64, _: &str, _: &str, _: &str, _: &str) -> Result<()> {
            self.next()
        }
        fn finish(
            &self,
            _: &str,
            _: &str,
            _: i64,
            _: Option<&Value>,
            _: Option<&str>,
            _: Option<&str>,
        ) -> Result<()> {
            self.next()
        }
        fn request_stop(&self, _: &str, _: Option<&str>, _: Option<&str>) -> Result<()> {
            self.next()
        }
        fn stop_request(&self, _: &str) -> Result<Option<(Option<String>, Option<String>)>> {
            Ok(None)
        }
    }

    #[test]
    fn a_refused_write_through_writes_nothing_locally_and_import_replaces() {
        let j = Journal::open_in_memory().unwrap();
        j.set_write_through(Arc::new(Refusing {
            allow: Mutex::new(2),
        }));
        j.create_execution(&exec("e3")).unwrap();
        j.append_event("e3", 5, &json!({"k": 1})).unwrap();
        let e = j.append_event("e3", 6, &json!({"k": 2})).unwrap_err();
        assert_eq!(e.code(), "fleet.fenced");
        assert!(j.finish("e3", "FAILED", 7, None, None, None).is_err());
        assert_eq!(
            j.events("e3").unwrap().len(),
            1,
            "the refused event is not local"
        );
        assert_eq!(j.execution("e3").unwrap().status, "RUNNING");

        // What the store has replaces the local copy, sequence numbers kept.
        let mut head = exec("e3");
        head.status = "SUCCEEDED".into();
        let ev = |seq| EventRow {
            seq,
            at_ms: seq,
            event: json!({"seq": seq}),
        };
        j.import_execution(&Imported {
            execution: head,
            events: vec![ev(1), ev(2), ev(3)],
            history: vec![],
            calls: vec![],
            logs: vec![],
            gameday: Default::default(),
            tokens: vec![],
        })
        .unwrap();
        assert_eq!(j.execution("e3").unwrap().status, "SUCCEEDED");
        let events = j.events("e3").unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].event, json!({"seq": 3}));
    }
}
