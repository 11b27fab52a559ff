//! The execution journal on etcd: [`EtcdJournal`] implements
//! [`runbook_journal::JournalBackend`], so executions written by one runner are
//! readable and resumable from any other (docs/fleet.md, "Journal backend").
//!
//! Key layout under the prefix (default `/runbook`):
//!
//! ```text
//! <p>/owners/<scope>                    runner id, leased; create revision = fencing token
//! <p>/heads/<id>                        ExecutionRow (guarded_put: status changes)
//! <p>/exec/<id>/events/<seq:016>        EventRow   (guarded_create: append-only)
//! <p>/exec/<id>/history/<seq:016>       HistoryRow (one txn per append_history call)
//! <p>/exec/<id>/calls/<seq:016>         CallRow
//! <p>/exec/<id>/logs/<seq:016>          LogRow
//! <p>/exec/<id>/stop                    stop request (unfenced: anyone may ask)
//! <p>/exec/<id>/chunks/<sha256>/<n:08>  parts of a document over the chunk threshold
//! ```
//!
//! The scope owned while driving an execution is its environment, or
//! `execution/<id>` when it declares none. Heads live apart from the streams so listing
//! executions is one range over small documents.
//!
//! Every owner-only write is a transaction that compares the owner key's create
//! revision with the fence's token, so a runner that lost ownership is refused
//! (`fleet.fenced`). Sequence numbers are chosen by the owner (only the owner writes a
//! stream, and a per-stream lock orders its own writers); a stream's counter moves only
//! after a write is known to have landed, so a write retried after an ambiguous error
//! reuses its sequence number and finds its own value (`Created::Already`): no
//! duplicate. The journal retries ambiguous writes itself a few times; if they stay
//! ambiguous the caller gets `fleet.ambiguous` and may repeat the same call.
//!
//! Stored values start with one tag byte: `j` + JSON (the document), or `m` + a JSON
//! manifest `{len, chunks, sha256}` for a document over the chunk threshold. The chunks
//! are written first under a directory named by the document's sha256 (so a retry, or
//! the same document written again, finds identical chunks), the manifest last: a
//! reader sees either no document, the previous one, or the whole new one, and checks
//! length and digest before trusting it. A runner that dies mid-way leaves orphan
//! chunks, never half a document.
//!
//! The trait is synchronous (the SQLite journal is, and the executor calls it inline);
//! calls run on the journal's own small tokio runtime and the caller's thread waits on
//! a channel, which works from plain threads and from inside another runtime alike.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runbook_journal::{
    BackendError, BackendResult, CallRow, Claimant, EventRow, ExecutionRow, Fence, HistoryRow,
    JournalBackend, JournalError, LogRow, NewHistory, redact,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::{Compare, EtcdClient, Kv, Op};
use crate::error::FleetError;
use crate::fence::{Created, FencingToken, Fleet};
use crate::lease::{LeaseKeeper, Timing};

/// Documents larger than this are chunked (docs/fleet.md: well under etcd's 1.5 MiB
/// default request limit, with room for the JSON gateway's base64).
pub const DEFAULT_CHUNK_BYTES: usize = 512 * 1024;

/// How often one write is tried when its outcome stays ambiguous (each try is itself
/// up to two members, see [`EtcdClient`]).
const WRITE_ATTEMPTS: usize = 4;

/// Settings of an etcd journal.
#[derive(Debug, Clone)]
pub struct EtcdJournalConfig {
    /// `http://host:port` of the members.
    pub endpoints: Vec<String>,
    /// Key prefix of this fleet, without trailing slash (default `/runbook`).
    pub prefix: String,
    /// This runner's id: the owner keys it creates hold it.
    pub runner_id: String,
    pub timing: Timing,
    /// Documents above this many bytes are chunked.
    pub chunk_bytes: usize,
    /// The members' `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// TLS (then every endpoint is `https://`) and etcd user/password auth.
    pub tls: Option<crate::config::TlsFiles>,
    pub auth: Option<crate::config::Credentials>,
}

impl EtcdJournalConfig {
    pub fn new<S: AsRef<str>>(endpoints: &[S], runner_id: &str) -> EtcdJournalConfig {
        EtcdJournalConfig {
            endpoints: endpoints.iter().map(|e| e.as_ref().to_string()).collect(),
            prefix: "/runbook".into(),
            runner_id: runner_id.into(),
            timing: Timing::DEFAULT,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            max_request_bytes: crate::client::DEFAULT_MAX_REQUEST_BYTES,
            tls: None,
            auth: None,
        }
    }

    /// From `--journal etcd://[user@]host:port,...[/prefix][?ca=&cert=&key=&password_file=]`
    /// (see [`crate::config`]); the prefix defaults to `/runbook`.
    pub fn from_url(url: &str, runner_id: &str) -> Result<EtcdJournalConfig, FleetError> {
        let o = crate::config::EtcdOptions::parse(url)?;
        let mut c = EtcdJournalConfig::new(&o.endpoints, runner_id);
        if let Some(p) = o.prefix {
            c.prefix = p;
        }
        c.tls = o.tls;
        c.auth = o.auth;
        Ok(c)
    }
}

/// The etcd journal of one runner: its client, its lease, and its stream counters.
pub struct EtcdJournal {
    rt: Option<tokio::runtime::Runtime>,
    inner: Arc<Inner>,
}

struct Inner {
    fleet: Fleet,
    prefix: String,
    runner_id: String,
    timing: Timing,
    chunk_bytes: usize,
    keeper: Mutex<Arc<LeaseKeeper>>,
    /// Per stream (`<p>/exec/<id>/<stream>/`): the last sequence number known written
    /// (None: not loaded yet). The async lock orders this runner's writers of a stream.
    streams: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<i64>>>>>,
    /// Owner key → (token revision, lease it was won under): what [`EtcdJournal::may_act_on`]
    /// checks before an effect.
    held: Mutex<HashMap<String, (i64, i64)>>,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    len: usize,
    chunks: usize,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct StopRequest {
    error: Option<String>,
    cause: Option<String>,
}

enum Mode {
    /// Append-only: create if absent, idempotent.
    Create,
    /// Head document: overwrite under the fence.
    Put,
}

impl EtcdJournal {
    /// Connect, and grant this runner's lease (renewed in the background until the
    /// journal is dropped).
    pub fn connect(config: EtcdJournalConfig) -> BackendResult<EtcdJournal> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-journal")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Store {
                code: "fleet.runtime",
                message: format!("etcd journal runtime: {e}"),
            })?;
        let options = crate::config::EtcdOptions {
            endpoints: config.endpoints.clone(),
            prefix: None,
            tls: config.tls.clone(),
            auth: config.auth.clone(),
        };
        let client =
            EtcdClient::connect(&options, config.timing.request_timeout()).map_err(store)?;
        let fleet = Fleet::new(Arc::new(client), &config.prefix)
            .with_max_request_bytes(config.max_request_bytes);
        let timing = config.timing;
        let c = fleet.client().clone();
        let keeper =
            run_on(&rt, async move { LeaseKeeper::start(c, timing).await }).map_err(store)?;
        let chunk_bytes = config
            .chunk_bytes
            .min(fleet.max_value_bytes().saturating_sub(64))
            .max(1);
        Ok(EtcdJournal {
            rt: Some(rt),
            inner: Arc::new(Inner {
                prefix: config.prefix.trim_end_matches('/').to_string(),
                fleet,
                runner_id: config.runner_id,
                timing,
                chunk_bytes,
                keeper: Mutex::new(Arc::new(keeper)),
                streams: Mutex::new(HashMap::new()),
                held: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// This runner's id.
    pub fn runner_id(&self) -> &str {
        &self.inner.runner_id
    }

    /// The fleet primitives this journal writes through.
    pub fn fleet(&self) -> &Fleet {
        &self.inner.fleet
    }

    /// Whether this runner's lease is still valid by its conservative local deadline.
    pub fn lease_valid(&self) -> bool {
        self.inner.keeper().is_valid()
    }

    /// Whether this runner may still act on what `fence` guards: the fence was won
    /// under the current lease, and that lease is alive by its conservative local
    /// deadline (no answer from etcd needed). A token won under a lease that was since
    /// lost stays dead after a fresh lease is granted.
    pub fn may_act_on(&self, fence: &Fence) -> bool {
        let Fence::Token {
            owner_key,
            revision,
            ..
        } = fence
        else {
            return false;
        };
        let held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(owner_key)
            .copied();
        let k = self.inner.keeper();
        held == Some((*revision, k.id())) && k.is_valid()
    }

    /// Give up the ownership `fence` stands for (a clean hand-over: another runner may
    /// acquire the scope now instead of after the TTL). Fenced: a stale fence releases
    /// nothing.
    pub fn release(&self, fence: &Fence) -> BackendResult<()> {
        let inner = self.inner.clone();
        let fence = fence.clone();
        self.run(async move {
            let token = inner.token(&fence)?;
            inner.fleet.release(&token).await.map_err(store)?;
            inner
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(token.owner_key());
            Ok(())
        })
    }

    /// Stop renewing the lease without revoking it (what a paused or partitioned
    /// runner looks like to the others): its ownerships expire after the TTL.
    pub fn stop_keepalives(&self) {
        self.inner.keeper().stop_keepalives();
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = BackendResult<T>> + Send + 'static,
    ) -> BackendResult<T> {
        run_on(self.rt.as_ref().expect("runtime lives until drop"), f)
    }
}

impl Drop for EtcdJournal {
    fn drop(&mut self) {
        // Dropping a runtime blocks; shutdown_background does not (safe inside async).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Run `f` on `rt` and wait for it on this thread (not `block_on`: that panics when
/// the caller is itself inside a runtime).
fn run_on<T: Send + 'static, E: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, E> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv()
        .expect("the journal runtime runs until the journal is dropped")
}

fn store(e: FleetError) -> BackendError {
    match e {
        FleetError::Fenced { .. } => BackendError::Fenced(e.to_string()),
        FleetError::Taken { .. } => BackendError::Taken(e.to_string()),
        e => BackendError::Store {
            code: e.code(),
            message: e.to_string(),
        },
    }
}

fn corrupt(what: impl std::fmt::Display) -> BackendError {
    BackendError::Journal(JournalError::Corrupt(what.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("journal rows serialize")
}

/// Repeat `f` while its outcome is ambiguous or nothing could be sent: every write it
/// is used for is compare-guarded, so a repeat is harmless.
async fn retry<T, Fut: Future<Output = Result<T, FleetError>>>(
    mut f: impl FnMut() -> Fut,
) -> Result<T, FleetError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e @ (FleetError::Ambiguous(_) | FleetError::Unavailable(_)))
                if attempt < WRITE_ATTEMPTS =>
            {
                tracing::debug!(error = %e, attempt, "etcd journal write retried");
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            }
            r => return r,
        }
    }
}

impl Inner {
    fn keeper(&self) -> Arc<LeaseKeeper> {
        self.keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A valid lease for a new ownership: the current one, or a fresh one when it was
    /// lost (a runner that lost quorum competes again with a new lease).
    async fn lease(&self) -> Result<i64, FleetError> {
        let k = self.keeper();
        if k.is_valid() {
            return Ok(k.id());
        }
        let fresh = Arc::new(LeaseKeeper::start(self.fleet.client().clone(), self.timing).await?);
        let id = fresh.id();
        *self.keeper.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(id)
    }

    fn head_key(&self, id: &str) -> String {
        format!("{}/heads/{id}", self.prefix)
    }

    fn exec_key(&self, id: &str, rest: &str) -> String {
        format!("{}/exec/{id}/{rest}", self.prefix)
    }

    fn scope(row: &ExecutionRow) -> String {
        row.environment
            .clone()
            .unwrap_or_else(|| format!("execution/{}", row.id))
    }

    fn token(&self, fence: &Fence) -> BackendResult<FencingToken> {
        match fence {
            Fence::Token {
                scope,
                owner_key,
                revision,
            } => Ok(FencingToken::new(scope, owner_key, *revision)),
            Fence::Local => Err(BackendError::Fenced(
                "a local (single-machine) fence cannot write to the etcd journal".into(),
            )),
        }
    }

    fn fence(token: &FencingToken) -> Fence {
        Fence::Token {
            scope: token.environment().to_string(),
            owner_key: token.owner_key().to_string(),
            revision: token.revision(),
        }
    }

    async fn acquire(&self, scope: &str) -> BackendResult<FencingToken> {
        let (token, lease) = retry(|| async {
            let lease = self.lease().await?;
            let token = self.fleet.acquire(scope, &self.runner_id, lease).await?;
            Ok::<_, FleetError>((token, lease))
        })
        .await
        .map_err(store)?;
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.owner_key().to_string(), (token.revision(), lease));
        Ok(token)
    }

    /// Write a document at `key`, chunked when large (chunks first, the manifest last).
    async fn write_doc(
        &self,
        id: &str,
        key: &str,
        doc: &[u8],
        token: &FencingToken,
        mode: Mode,
    ) -> Result<Created, FleetError> {
        let value = if doc.len() < self.chunk_bytes {
            let mut v = Vec::with_capacity(doc.len() + 1);
            v.push(b'j');
            v.extend_from_slice(doc);
            v
        } else {
            let sha = hex(&Sha256::digest(doc));
            let parts: Vec<&[u8]> = doc.chunks(self.chunk_bytes).collect();
            for (n, part) in parts.iter().enumerate() {
                let ck = self.exec_key(id, &format!("chunks/{sha}/{n:08}"));
                retry(|| self.fleet.guarded_create(&ck, part, token)).await?;
            }
            let mut v = vec![b'm'];
            v.extend(to_json(&Manifest {
                len: doc.len(),
                chunks: parts.len(),
                sha256: sha,
            }));
            v
        };
        match mode {
            Mode::Create => retry(|| self.fleet.guarded_create(key, &value, token)).await,
            Mode::Put => retry(|| self.fleet.guarded_put(key, &value, token))
                .await
                .map(Created::Now),
        }
    }

    /// The document a stored value stands for (reassembled and checked when chunked).
    async fn read_doc(&self, id: &str, value: &[u8]) -> BackendResult<Vec<u8>> {
        match value.split_first() {
            Some((b'j', doc)) => Ok(doc.to_vec()),
            Some((b'm', manifest)) => {
                let m: Manifest = serde_json::from_slice(manifest).map_err(corrupt)?;
                let parts = self
                    .fleet
                    .client()
                    .get_prefix(&self.exec_key(id, &format!("chunks/{}/", m.sha256)))
                    .await
                    .map_err(store)?;
                let doc: Vec<u8> = parts
                    .iter()
                    .take(m.chunks)
                    .flat_map(|kv| kv.value.iter().copied())
                    .collect();
                if parts.len() < m.chunks
                    || doc.len() != m.len
                    || hex(&Sha256::digest(&doc)) != m.sha256
                {
                    return Err(corrupt(format!(
                        "execution {id}: chunked document {} incomplete or altered",
                        m.sha256
                    )));
                }
                Ok(doc)
            }
            _ => Err(corrupt(format!("execution {id}: untagged value"))),
        }
    }

    async fn read_as<T: DeserializeOwned>(&self, id: &str, value: &[u8]) -> BackendResult<T> {
        let doc = self.read_doc(id, value).await?;
        serde_json::from_slice(&doc).map_err(corrupt)
    }

    async fn head(&self, id: &str) -> BackendResult<(ExecutionRow, Kv)> {
        let kv = self
            .fleet
            .client()
            .get(&self.head_key(id))
            .await
            .map_err(store)?
            .ok_or_else(|| BackendError::Journal(JournalError::NotFound(id.to_string())))?;
        Ok((self.read_as(id, &kv.value).await?, kv))
    }

    fn stream_lock(&self, prefix: &str) -> Arc<tokio::sync::Mutex<Option<i64>>> {
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(prefix.to_string())
            .or_default()
            .clone()
    }

    /// Forget the counters of an execution: a new owner reloads them from etcd.
    fn forget(&self, id: &str) {
        let p = self.exec_key(id, "");
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !k.starts_with(&p));
    }

    async fn last_seq(&self, prefix: &str) -> BackendResult<i64> {
        let key = retry(|| self.fleet.client().last_key(prefix))
            .await
            .map_err(store)?;
        match key {
            None => Ok(0),
            Some(k) => String::from_utf8_lossy(&k[prefix.len()..])
                .parse()
                .map_err(|e| corrupt(format!("sequence key under {prefix}: {e}"))),
        }
    }

    /// Append documents to one stream: `make(seq)` builds the row at `seq`. All rows
    /// of one call land in one transaction when they fit in one request.
    async fn append(
        &self,
        id: &str,
        stream: &str,
        fence: &Fence,
        count: usize,
        make: impl Fn(usize, i64) -> Vec<u8>,
    ) -> BackendResult<i64> {
        let token = self.token(fence)?;
        let prefix = self.exec_key(id, &format!("{stream}/"));
        let lock = self.stream_lock(&prefix);
        let mut last = lock.lock().await;
        let base = match *last {
            Some(n) => n,
            None => self.last_seq(&prefix).await?,
        };
        let docs: Vec<(String, Vec<u8>)> = (0..count)
            .map(|i| {
                let seq = base + 1 + i as i64;
                (format!("{prefix}{seq:016}"), make(i, seq))
            })
            .collect();
        let total: usize = docs.iter().map(|(k, d)| k.len() + d.len() + 65).sum();
        if count > 1 && total < self.chunk_bytes {
            let tagged: Vec<(String, Vec<u8>)> = docs
                .into_iter()
                .map(|(k, d)| {
                    let mut v = vec![b'j'];
                    v.extend(d);
                    (k, v)
                })
                .collect();
            retry(|| self.fleet.guarded_create_all(&tagged, &token))
                .await
                .map_err(store)?;
        } else {
            // One by one, in order: a retry of the whole call finds the ones that
            // landed (Already) and continues.
            for (key, doc) in &docs {
                self.write_doc(id, key, doc, &token, Mode::Create)
                    .await
                    .map_err(store)?;
            }
        }
        let new_last = base + count as i64;
        *last = Some(new_last);
        Ok(new_last)
    }

    async fn list<T: DeserializeOwned>(&self, id: &str, stream: &str) -> BackendResult<Vec<T>> {
        let kvs = self
            .fleet
            .client()
            .get_prefix(&self.exec_key(id, &format!("{stream}/")))
            .await
            .map_err(store)?;
        let mut out = Vec::with_capacity(kvs.len());
        for kv in kvs {
            out.push(self.read_as(id, &kv.value).await?);
        }
        Ok(out)
    }

    async fn put_head(&self, row: &ExecutionRow, token: &FencingToken) -> BackendResult<()> {
        self.write_doc(
            &row.id,
            &self.head_key(&row.id),
            &to_json(row),
            token,
            Mode::Put,
        )
        .await
        .map_err(store)?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        let inner = self.inner.clone();
        let id = id.to_string();
        self.run(async move {
            let (row, _) = inner.head(&id).await?;
            if row.status != "RUNNING" {
                return Ok(None);
            }
            match inner.acquire(&Inner::scope(&row)).await {
                Ok(token) => {
                    inner.forget(&id);
                    Ok(Some(Inner::fence(&token)))
                }
                // Someone alive (its lease renewed) drives it.
                Err(BackendError::Taken(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
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
