//! [`EtcdJournal`] as a [`GameDayBackend`]: traffic sessions, their ledgers and lag
//! samples, injected faults and the safety lever, readable from every runner.
//!
//! ```text
//! <p>/exec/<id>/sessions/<sid>/row            SessionRow at start (owner, fenced)
//! <p>/exec/<id>/sessions/<sid>/state          SessionState (driver or owner; unfenced put)
//! <p>/exec/<id>/sessions/<sid>/stop           stop request (anyone)
//! <p>/exec/<id>/sessions/<sid>/verification   read-back result (owner, fenced)
//! <p>/exec/<id>/sessions/<sid>/ledger/<n:016> a batch of ledger rows (driver; create-if-absent)
//! <p>/exec/<id>/sessions/<sid>/lag/<n:016>    a batch of lag samples (driver; create-if-absent)
//! <p>/exec/<id>/faults/<fid>                  FaultRow (owner, fenced)
//! <p>/lever/<at_ms:020>-<nonce>               one lever change (anyone)
//! ```
//!
//! The driver is the application's stand-in, not an actor: it holds no fencing token
//! and its writes are measurements, so they are unfenced. They are still idempotent:
//! a batch goes to the next free sequence number with a create-if-absent transaction,
//! and a retry after an ambiguous answer finds its own batch.

use runbook_journal::{
    BackendResult, FaultRow, Fence, GameDayBackend, GameDayRecords, ImportedSession, LagRow,
    LedgerRow, LeverState, SessionRow, SessionState, merge_ledger,
};
use serde::Serialize;
use serde_json::Value;

use super::documents::{Mode, corrupt, retry, store, to_json};
use super::{EtcdJournal, Inner};
use crate::client::{Compare, Op, OpResult};

/// Ledger batches are split so that each stored value stays far below etcd's request limit.
const BATCH_BYTES: usize = 256 * 1024;

/// Unique enough to keep two keys written in the same millisecond apart.
pub(super) fn nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:09}", std::process::id())
}

pub(super) fn tagged(doc: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(doc.len() + 1);
    v.push(b'j');
    v.extend_from_slice(doc);
    v
}

impl Inner {
    fn session_key(&self, execution_id: &str, session: &str, rest: &str) -> String {
        self.exec_key(execution_id, &format!("sessions/{session}/{rest}"))
    }

    /// An unfenced put of a small document.
    pub(super) async fn put_plain(&self, key: &str, doc: &[u8]) -> BackendResult<()> {
        let put = [Op::Put {
            key: key.to_string(),
            value: tagged(doc),
            lease: 0,
        }];
        retry(|| self.fleet.client().txn(&[], &put, &[]))
            .await
            .map_err(store)?;
        Ok(())
    }

    /// Append `doc` at the next free sequence number under `prefix`, create-if-absent:
    /// a retry finds its own value; a number someone else took is skipped.
    async fn append_plain(&self, prefix: &str, doc: &[u8]) -> BackendResult<()> {
        let value = tagged(doc);
        let lock = self.stream_lock(prefix);
        let mut last = lock.lock().await;
        let mut seq = match *last {
            Some(n) => n,
            None => self.last_seq(prefix).await?,
        } + 1;
        loop {
            let key = format!("{prefix}{seq:016}");
            let absent = [Compare::CreateRevision(key.clone(), 0)];
            let put = [Op::Put {
                key: key.clone(),
                value: value.clone(),
                lease: 0,
            }];
            let get = [Op::Get(key.clone())];
            let r = retry(|| self.fleet.client().txn(&absent, &put, &get))
                .await
                .map_err(store)?;
            let ours = r.succeeded
                || matches!(r.results.first(), Some(OpResult::Get(Some(kv))) if kv.value == value);
            if ours {
                *last = Some(seq);
                return Ok(());
            }
            seq += 1;
        }
    }

    async fn append_batches<T: Serialize + Clone>(
        &self,
        prefix: &str,
        rows: &[T],
    ) -> BackendResult<()> {
        let mut batch: Vec<T> = Vec::new();
        let mut bytes = 0;
        for r in rows {
            let n = to_json(r).len() + 1;
            if !batch.is_empty() && bytes + n > BATCH_BYTES {
                self.append_plain(prefix, &to_json(&batch)).await?;
                batch.clear();
                bytes = 0;
            }
            batch.push(r.clone());
            bytes += n;
        }
        if !batch.is_empty() {
            self.append_plain(prefix, &to_json(&batch)).await?;
        }
        Ok(())
    }
}

impl GameDayBackend for EtcdJournal {
    fn create_session(&self, fence: &Fence, s: &SessionRow) -> BackendResult<()> {
        let inner = self.inner.clone();
        let fence = fence.clone();
        let s = s.clone();
        self.run(async move {
            let token = inner.token(&fence)?;
            let key = inner.session_key(&s.execution_id, &s.id, "row");
            inner
                .write_doc(&s.execution_id, &key, &to_json(&s), &token, Mode::Put)
                .await
                .map_err(store)?;
            Ok(())
        })
    }

    fn put_session_state(
        &self,
        execution_id: &str,
        session: &str,
        s: &SessionState,
    ) -> BackendResult<()> {
        let inner = self.inner.clone();
        let key = inner.session_key(execution_id, session, "state");
        let doc = to_json(s);
        self.run(async move { inner.put_plain(&key, &doc).await })
    }

    fn request_session_stop(&self, execution_id: &str, session: &str) -> BackendResult<()> {
        let inner = self.inner.clone();
        let key = inner.session_key(execution_id, session, "stop");
        self.run(async move { inner.put_plain(&key, b"true").await })
    }

    fn session_stop_requested(&self, execution_id: &str, session: &str) -> BackendResult<bool> {
        let inner = self.inner.clone();
        let key = inner.session_key(execution_id, session, "stop");
        let id = execution_id.to_string();
        self.run(async move {
            let asked = inner.fleet.client().get(&key).await.map_err(store)?;
            if asked.is_some() {
                return Ok(true);
            }
            let (row, _) = inner.head(&id).await?;
            Ok(row.status != "RUNNING")
        })
    }

    fn set_session_verification(
        &self,
        fence: &Fence,
        execution_id: &str,
        session: &str,
        v: &Value,
    ) -> BackendResult<()> {
        let inner = self.inner.clone();
        let fence = fence.clone();
        let id = execution_id.to_string();
        let key = inner.session_key(execution_id, session, "verification");
        let doc = to_json(v);
        self.run(async move {
            let token = inner.token(&fence)?;
            inner
                .write_doc(&id, &key, &doc, &token, Mode::Put)
                .await
                .map_err(store)?;
            Ok(())
        })
    }

    fn append_ledger(
        &self,
        execution_id: &str,
        session: &str,
        rows: &[LedgerRow],
    ) -> BackendResult<()> {
        let inner = self.inner.clone();
        let prefix = inner.session_key(execution_id, session, "ledger/");
        let rows = rows.to_vec();
        self.run(async move { inner.append_batches(&prefix, &rows).await })
    }

    fn append_lag(&self, execution_id: &str, session: &str, rows: &[LagRow]) -> BackendResult<()> {
        let inner = self.inner.clone();
        let prefix = inner.session_key(execution_id, session, "lag/");
        let rows = rows.to_vec();
        self.run(async move { inner.append_batches(&prefix, &rows).await })
    }

    fn put_fault(&self, fence: &Fence, f: &FaultRow) -> BackendResult<()> {
        let inner = self.inner.clone();
        let fence = fence.clone();
        let f = f.clone();
        self.run(async move {
            let token = inner.token(&fence)?;
            let key = inner.exec_key(&f.execution_id, &format!("faults/{}", f.id));
            inner
                .write_doc(&f.execution_id, &key, &to_json(&f), &token, Mode::Put)
                .await
                .map_err(store)?;
            Ok(())
        })
    }

    fn set_lever(&self, l: &LeverState) -> BackendResult<()> {
        let inner = self.inner.clone();
        // Two changes in the same millisecond must not overwrite each other.
        let nonce = nonce();
        let key = format!(
            "{}/lever/{:020}-{nonce}",
            inner.prefix,
            l.since_ms.unwrap_or(0).max(0)
        );
        let doc = to_json(l);
        self.run(async move { inner.put_plain(&key, &doc).await })
    }

    fn lever_history(&self) -> BackendResult<Vec<LeverState>> {
        let inner = self.inner.clone();
        self.run(async move {
            // Read at every step of a running game day: ride out a leader election
            // rather than abort the game day on one unanswered read.
            let prefix = format!("{}/lever/", inner.prefix);
            let kvs = retry(|| inner.fleet.client().get_prefix(&prefix))
                .await
                .map_err(store)?;
            let mut out = Vec::with_capacity(kvs.len());
            for kv in kvs {
                out.push(inner.read_as("lever", &kv.value).await?);
            }
            Ok(out)
        })
    }

    fn gameday_records(&self, execution_id: &str) -> BackendResult<GameDayRecords> {
        let inner = self.inner.clone();
        let id = execution_id.to_string();
        self.run(async move {
            let client = inner.fleet.client();
            let prefix = inner.exec_key(&id, "sessions/");
            let kvs = client.get_prefix(&prefix).await.map_err(store)?;
            // Keys are ordered, so a session's parts arrive together and its ledger
            // batches in sequence order.
            let mut sessions: Vec<(String, Parts)> = Vec::new();
            for kv in kvs {
                let rest = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
                let Some((sid, part)) = rest.split_once('/') else {
                    continue;
                };
                if sessions.last().is_none_or(|(s, _)| s != sid) {
                    sessions.push((sid.to_string(), Parts::default()));
                }
                let p = &mut sessions.last_mut().expect("pushed").1;
                let doc = inner.read_doc(&id, &kv.value).await?;
                match part {
                    "row" => p.row = Some(serde_json::from_slice(&doc).map_err(corrupt)?),
                    "state" => p.state = Some(serde_json::from_slice(&doc).map_err(corrupt)?),
                    "stop" => p.stop = true,
                    "verification" => {
                        p.verification = Some(serde_json::from_slice(&doc).map_err(corrupt)?)
                    }
                    other if other.starts_with("ledger/") => {
                        p.ledger
                            .push(serde_json::from_slice(&doc).map_err(corrupt)?);
                    }
                    other if other.starts_with("lag/") => {
                        let batch: Vec<LagRow> = serde_json::from_slice(&doc).map_err(corrupt)?;
                        p.lag.extend(batch);
                    }
                    _ => {}
                }
            }
            let mut out = GameDayRecords::default();
            for (sid, p) in sessions {
                // Parts written before the row (a driver racing its owner's import)
                // wait for it.
                let Some(mut row) = p.row else {
                    tracing::debug!(session = sid, "session parts without a row");
                    continue;
                };
                if let Some(st) = p.state {
                    row.state = st.state;
                    row.pid = st.pid;
                    row.stopped_ms = st.stopped_ms;
                    row.error = st.error;
                }
                row.stop_requested |= p.stop;
                row.verification = p.verification.or(row.verification);
                let mut lag = p.lag;
                lag.sort_by_key(|l| l.at_ms);
                out.sessions.push(ImportedSession {
                    row,
                    ledger: merge_ledger(p.ledger),
                    lag,
                });
            }
            let fprefix = inner.exec_key(&id, "faults/");
            for kv in client.get_prefix(&fprefix).await.map_err(store)? {
                out.faults.push(inner.read_as(&id, &kv.value).await?);
            }
            out.faults.sort_by_key(|f: &FaultRow| f.injected_ms);
            Ok(out)
        })
    }
}

#[derive(Default)]
struct Parts {
    row: Option<SessionRow>,
    state: Option<SessionState>,
    stop: bool,
    verification: Option<Value>,
    ledger: Vec<Vec<LedgerRow>>,
    lag: Vec<LagRow>,
}
