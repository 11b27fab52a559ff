//! Key layout and stored values: documents tagged `j` (inline JSON) or `m` (the
//! manifest of a chunked document), written chunks first and manifest last, and
//! checked by length and digest when read back; plus the retry of ambiguous writes
//! and the mapping of fleet errors to the journal backend's.

use std::future::Future;
use std::time::Duration;

use runbook_journal::{BackendError, BackendResult, ExecutionRow, JournalError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Inner;
use crate::client::Kv;
use crate::error::FleetError;
use crate::fence::{Created, FencingToken};

/// How often one write is tried when its outcome stays ambiguous (each try is itself
/// up to two members, see [`EtcdClient`](crate::client::EtcdClient)).
pub(super) const WRITE_ATTEMPTS: usize = 4;

#[derive(Serialize, Deserialize)]
pub(super) struct Manifest {
    len: usize,
    chunks: usize,
    sha256: String,
}

pub(super) enum Mode {
    /// Append-only: create if absent, idempotent.
    Create,
    /// Head document: overwrite under the fence.
    Put,
}

pub(super) fn store(e: FleetError) -> BackendError {
    match e {
        FleetError::Fenced { .. } => BackendError::Fenced(e.to_string()),
        FleetError::Taken { .. } => BackendError::Taken(e.to_string()),
        e => BackendError::Store {
            code: e.code(),
            message: e.to_string(),
        },
    }
}

pub(super) fn corrupt(what: impl std::fmt::Display) -> BackendError {
    BackendError::Journal(JournalError::Corrupt(what.to_string()))
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("journal rows serialize")
}

/// Repeat `f` while its outcome is ambiguous or nothing could be sent: every write it
/// is used for is compare-guarded, so a repeat is harmless.
pub(super) async fn retry<T, Fut: Future<Output = Result<T, FleetError>>>(
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
    pub(super) fn head_key(&self, id: &str) -> String {
        format!("{}/heads/{id}", self.prefix)
    }

    pub(super) fn exec_key(&self, id: &str, rest: &str) -> String {
        format!("{}/exec/{id}/{rest}", self.prefix)
    }

    /// Write a document at `key`, chunked when large (chunks first, the manifest last).
    pub(super) async fn write_doc(
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
    pub(super) async fn read_doc(&self, id: &str, value: &[u8]) -> BackendResult<Vec<u8>> {
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

    pub(super) async fn read_as<T: DeserializeOwned>(
        &self,
        id: &str,
        value: &[u8],
    ) -> BackendResult<T> {
        let doc = self.read_doc(id, value).await?;
        serde_json::from_slice(&doc).map_err(corrupt)
    }

    pub(super) async fn head(&self, id: &str) -> BackendResult<(ExecutionRow, Kv)> {
        let kv = self
            .fleet
            .client()
            .get(&self.head_key(id))
            .await
            .map_err(store)?
            .ok_or_else(|| BackendError::Journal(JournalError::NotFound(id.to_string())))?;
        Ok((self.read_as(id, &kv.value).await?, kv))
    }

    pub(super) async fn put_head(
        &self,
        row: &ExecutionRow,
        token: &FencingToken,
    ) -> BackendResult<()> {
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

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
