//! [`EtcdJournal`] as a [`JournalBackend`]: each call runs on the journal's runtime.

use runbook_journal::{
    BackendError, BackendResult, CallRow, Claimant, EventRow, ExecutionRow, Fence, HistoryRow,
    JournalBackend, LogRow, NewHistory, redact,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::documents::{Mode, corrupt, retry, store, to_json};
use super::{EtcdJournal, Inner};
use crate::client::{Compare, Op};

#[derive(Serialize, Deserialize)]
struct StopRequest {
    error: Option<String>,
    cause: Option<String>,
}

impl EtcdJournal {
    /// Acquire the execution's scope when its status passes `wanted`: `None` when it
    /// does not, or someone alive (its lease renewed) holds the scope.
    fn claim_when(&self, id: &str, wanted: fn(&str) -> bool) -> BackendResult<Option<Fence>> {
        let inner = self.inner.clone();
        let id = id.to_string();
        self.run(async move {
            let (row, _) = inner.head(&id).await?;
            if !wanted(&row.status) {
                return Ok(None);
            }
            match inner.acquire(&Inner::scope(&row)).await {
                Ok(token) => {
                    inner.forget(&id);
                    Ok(Some(Inner::fence(&token)))
                }
                Err(BackendError::Taken(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

impl JournalBackend for EtcdJournal {
    fn create_execution(&self, e: &ExecutionRow) -> BackendResult<Fence> {
        let inner = self.inner.clone();
        let mut row = e.clone();
        row.input = redact(row.input);
        row.output = row.output.map(redact);
        self.run(async move {
            let token = inner.acquire(&Inner::scope(&row)).await?;
            inner.forget(&row.id);
            let key = inner.head_key(&row.id);
            inner
                .write_doc(&row.id, &key, &to_json(&row), &token, Mode::Create)
                .await
                .map_err(store)?;
            Ok(Inner::fence(&token))
        })
    }

    fn claim(&self, id: &str, _who: &Claimant<'_>) -> BackendResult<Option<Fence>> {
        self.claim_when(id, |status| status == "RUNNING")
    }

    fn claim_redrive(&self, id: &str) -> BackendResult<Option<Fence>> {
        self.claim_when(id, |status| matches!(status, "FAILED" | "TIMED_OUT"))
    }

    fn set_running(
        &self,
        id: &str,
        fence: &Fence,
        pid: u32,
        redrive_count: u32,
    ) -> BackendResult<()> {
        let inner = self.inner.clone();
        let id = id.to_string();
        let fence = fence.clone();
        self.run(async move {
            let token = inner.token(&fence)?;
            let (mut row, _) = inner.head(&id).await?;
            row.status = "RUNNING".into();
            row.ended_ms = None;
            row.output = None;
            row.error = None;
            row.cause = None;
            row.runner_pid = Some(pid);
            row.redrive_count = redrive_count;
            inner.put_head(&row, &token).await
        })
    }

    fn append_event(
        &self,
        id: &str,
        fence: &Fence,
        at_ms: i64,
        event: &Value,
    ) -> BackendResult<i64> {
        let inner = self.inner.clone();
        let id = id.to_string();
        let fence = fence.clone();
        let event = redact(event.clone());
        self.run(async move {
            inner
                .append(&id, "events", &fence, 1, |_, seq| {
                    to_json(&EventRow {
                        seq,
                        at_ms,
                        event: event.clone(),
                    })
                })
                .await
        })
    }

    fn append_history(&self, id: &str, fence: &Fence, rows: &[NewHistory]) -> BackendResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let inner = self.inner.clone();
        let id = id.to_string();
        let fence = fence.clone();
        let rows: Vec<NewHistory> = rows
            .iter()
            .map(|(at, kind, state, d)| (*at, kind.clone(), state.clone(), redact(d.clone())))
            .collect();
        self.run(async move {
            let n = rows.len();
            inner
                .append(&id, "history", &fence, n, |i, seq| {
                    let (at_ms, kind, state, details) = rows[i].clone();
                    to_json(&HistoryRow {
                        seq,
                        at_ms,
                        kind,
                        state,
                        details,
                    })
                })
                .await
                .map(|_| ())
        })
    }

    fn record_call(&self, id: &str, fence: &Fence, at_ms: i64, row: &CallRow) -> BackendResult<()> {
        let inner = self.inner.clone();
        let id = id.to_string();
        let fence = fence.clone();
        let row = row.clone();
        self.run(async move {
            inner
                .append(&id, "calls", &fence, 1, |_, seq| {
                    // Redacted as a whole: arguments and results may carry secrets.
                    let v = serde_json::to_value(CallRow {
                        seq,
                        at_ms,
                        ..row.clone()
                    })
                    .expect("call rows serialize");
                    to_json(&redact(v))
                })
                .await
                .map(|_| ())
        })
    }

    fn record_log(
        &self,
        id: &str,
        fence: &Fence,
        at_ms: i64,
        state: &str,
        plugin: &str,
        level: &str,
        message: &str,
    ) -> BackendResult<()> {
        let inner = self.inner.clone();
        let id = id.to_string();
        let fence = fence.clone();
        let row = LogRow {
            seq: 0,
            at_ms,
            state: state.into(),
            plugin: plugin.into(),
            level: level.into(),
            message: message.into(),
        };
        self.run(async move {
            inner
                .append(&id, "logs", &fence, 1, |_, seq| {
                    to_json(&LogRow { seq, ..row.clone() })
                })
                .await
                .map(|_| ())
        })
    }

    fn finish(
        &self,
        id: &str,
        fence: &Fence,
        status: &str,
        at_ms: i64,
        output: Option<&Value>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> BackendResult<()> {
        let inner = self.inner.clone();
        let id = id.to_string();
        let fence = fence.clone();
        let status = status.to_string();
        let output = output.cloned().map(redact);
        let error = error.map(String::from);
        let cause = cause.map(String::from);
        self.run(async move {
            let token = inner.token(&fence)?;
            let (mut row, _) = inner.head(&id).await?;
            row.status = status;
            row.ended_ms = Some(at_ms);
            row.output = output;
            row.error = error;
            row.cause = cause;
            row.runner_pid = None;
            inner.put_head(&row, &token).await
        })
    }

    fn request_stop(
        &self,
        id: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> BackendResult<()> {
        let inner = self.inner.clone();
        let key = inner.exec_key(id, "stop");
        let head = inner.head_key(id);
        let value = to_json(&StopRequest {
            error: error.map(String::from),
            cause: cause.map(String::from),
        });
        self.run(async move {
            // Anyone may ask, so no fence; only for an existing execution: the put is
            // in the branch that runs when the head is *not* absent. A repeated put of
            // the same value is harmless.
            let absent = [Compare::CreateRevision(head, 0)];
            let put = [Op::Put {
                key,
                value,
                lease: 0,
            }];
            retry(|| inner.fleet.client().txn(&absent, &[], &put))
                .await
                .map_err(store)?;
            Ok(())
        })
    }

    fn stop_request(&self, id: &str) -> BackendResult<Option<(Option<String>, Option<String>)>> {
        let inner = self.inner.clone();
        let id = id.to_string();
        self.run(async move {
            let (row, head) = inner.head(&id).await?;
            if row.status != "RUNNING" {
                return Ok(None);
            }
            let stop = inner
                .fleet
                .client()
                .get(&inner.exec_key(&id, "stop"))
                .await
                .map_err(store)?;
            // A request made before the execution was last (re)started is spent.
            match stop {
                Some(kv) if kv.mod_revision > head.mod_revision => {
                    let r: StopRequest = serde_json::from_slice(&kv.value).map_err(corrupt)?;
                    Ok(Some((r.error, r.cause)))
                }
                _ => Ok(None),
            }
        })
    }

    fn execution(&self, id: &str) -> BackendResult<ExecutionRow> {
        let inner = self.inner.clone();
        let id = id.to_string();
        self.run(async move { Ok(inner.head(&id).await?.0) })
    }

    fn executions(&self, limit: usize) -> BackendResult<Vec<ExecutionRow>> {
        let inner = self.inner.clone();
        self.run(async move {
            let prefix = format!("{}/heads/", inner.prefix);
            let kvs = inner
                .fleet
                .client()
                .get_prefix(&prefix)
                .await
                .map_err(store)?;
            let mut rows: Vec<ExecutionRow> = Vec::with_capacity(kvs.len());
            for kv in kvs {
                let id = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
                rows.push(inner.read_as(&id, &kv.value).await?);
            }
            // Most recent first, as the SQLite journal (ties: later id first).
            rows.sort_by(|a, b| (b.started_ms, &b.id).cmp(&(a.started_ms, &a.id)));
            rows.truncate(limit);
            Ok(rows)
        })
    }

    fn events(&self, id: &str) -> BackendResult<Vec<EventRow>> {
        let inner = self.inner.clone();
        let id = id.to_string();
        self.run(async move { inner.list(&id, "events").await })
    }

    fn history(&self, id: &str) -> BackendResult<Vec<HistoryRow>> {
        let inner = self.inner.clone();
        let id = id.to_string();
        self.run(async move { inner.list(&id, "history").await })
    }

    fn calls(&self, id: &str) -> BackendResult<Vec<CallRow>> {
        let inner = self.inner.clone();
        let id = id.to_string();
        self.run(async move { inner.list(&id, "calls").await })
    }

    fn logs(&self, id: &str) -> BackendResult<Vec<LogRow>> {
        let inner = self.inner.clone();
        let id = id.to_string();
        self.run(async move { inner.list(&id, "logs").await })
    }
}
