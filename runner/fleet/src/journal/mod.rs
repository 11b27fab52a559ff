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
//! <p>/exec/<id>/sessions/..., faults/...  game-day records (see `gameday.rs`)
//! <p>/lever/...                         the safety lever's changes
//! <p>/tokens/<token>/...                task tokens (see `tokens.rs`)
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

mod backend;
mod documents;
mod gameday;
mod streams;
mod tokens;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use runbook_journal::{BackendError, BackendResult, Fence};

use self::documents::store;
use crate::client::EtcdClient;
use crate::error::FleetError;
use crate::fence::Fleet;
use crate::lease::{LeaseKeeper, Timing};

/// Documents larger than this are chunked (docs/fleet.md: well under etcd's 1.5 MiB
/// default request limit, with room for the JSON gateway's base64).
pub const DEFAULT_CHUNK_BYTES: usize = 512 * 1024;

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
