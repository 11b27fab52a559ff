//! Ownership and streams: the runner's lease, the fencing token of the scope it
//! drives, and the per-stream sequence counters appends are numbered from.

use std::sync::Arc;

use runbook_journal::{BackendError, BackendResult, ExecutionRow, Fence};
use serde::de::DeserializeOwned;

use super::Inner;
use super::documents::{Mode, corrupt, retry, store};
use crate::error::FleetError;
use crate::fence::FencingToken;
use crate::lease::LeaseKeeper;

impl Inner {
    pub(super) fn keeper(&self) -> Arc<LeaseKeeper> {
        self.keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A valid lease for a new ownership: the current one, or a fresh one when it was
    /// lost (a runner that lost quorum competes again with a new lease).
    pub(super) async fn lease(&self) -> Result<i64, FleetError> {
        let k = self.keeper();
        if k.is_valid() {
            return Ok(k.id());
        }
        let fresh = Arc::new(LeaseKeeper::start(self.fleet.client().clone(), self.timing).await?);
        let id = fresh.id();
        *self.keeper.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(id)
    }

    pub(super) fn scope(row: &ExecutionRow) -> String {
        row.environment
            .clone()
            .unwrap_or_else(|| format!("execution/{}", row.id))
    }

    pub(super) fn token(&self, fence: &Fence) -> BackendResult<FencingToken> {
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

    pub(super) fn fence(token: &FencingToken) -> Fence {
        Fence::Token {
            scope: token.environment().to_string(),
            owner_key: token.owner_key().to_string(),
            revision: token.revision(),
        }
    }

    pub(super) async fn acquire(&self, scope: &str) -> BackendResult<FencingToken> {
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
    pub(super) fn stream_lock(&self, prefix: &str) -> Arc<tokio::sync::Mutex<Option<i64>>> {
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(prefix.to_string())
            .or_default()
            .clone()
    }

    /// Forget the counters of an execution: a new owner reloads them from etcd.
    pub(super) fn forget(&self, id: &str) {
        let p = self.exec_key(id, "");
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !k.starts_with(&p));
    }

    pub(super) async fn last_seq(&self, prefix: &str) -> BackendResult<i64> {
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
    pub(super) async fn append(
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

    pub(super) async fn list<T: DeserializeOwned>(
        &self,
        id: &str,
        stream: &str,
    ) -> BackendResult<Vec<T>> {
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
}
