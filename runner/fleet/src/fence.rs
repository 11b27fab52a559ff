//! One actor per environment: ownership is a key bound to the owner's lease, and the
//! key's create revision is the fencing token. Every fenced write is a transaction that
//! compares the owner key's create revision with the token, so a runner whose lease
//! expired (the key is gone, or re-created by a newer owner with a higher revision)
//! cannot write any more, however late it wakes up.

use std::sync::Arc;

use crate::client::{Compare, DEFAULT_MAX_REQUEST_BYTES, EtcdClient, Op, OpResult};
use crate::error::{FleetError, Result};

/// Proof of ownership of one environment: the create revision of its owner key. Tokens
/// of the same environment grow with every new owner (etcd revisions only grow).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencingToken {
    environment: String,
    owner_key: String,
    revision: i64,
}

impl FencingToken {
    /// A token carried elsewhere (e.g. in a journal fence) and handed back: it is only
    /// as good as the revision it names, which every fenced write compares.
    pub fn new(environment: &str, owner_key: &str, revision: i64) -> FencingToken {
        FencingToken {
            environment: environment.to_string(),
            owner_key: owner_key.to_string(),
            revision,
        }
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }
}

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.environment, self.revision)
    }
}

/// The outcome of [`Fleet::guarded_create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Written now, at this revision.
    Now(i64),
    /// The same value was already there (an earlier attempt whose answer was lost was
    /// applied), created at this revision. Nothing was written.
    Already(i64),
}

impl Created {
    pub fn revision(self) -> i64 {
        match self {
            Created::Now(r) | Created::Already(r) => r,
        }
    }
}

/// Fleet primitives under one key prefix (one fleet per prefix).
#[derive(Debug, Clone)]
pub struct Fleet {
    client: Arc<EtcdClient>,
    prefix: String,
    max_request_bytes: usize,
}

impl Fleet {
    /// `prefix` without a trailing slash, e.g. `/runbook`.
    pub fn new(client: Arc<EtcdClient>, prefix: &str) -> Fleet {
        Fleet {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }

    /// The server's `--max-request-bytes` when it is not etcd's default.
    pub fn with_max_request_bytes(mut self, limit: usize) -> Fleet {
        self.max_request_bytes = limit;
        self
    }

    pub fn client(&self) -> &Arc<EtcdClient> {
        &self.client
    }

    /// The key prefix of this fleet, without a trailing slash.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>/owners/<environment>`: the key whose create revision is the token.
    pub fn owner_key(&self, environment: &str) -> String {
        format!("{}/owners/{environment}", self.prefix)
    }

    /// Become the owner of `environment` with `lease`: a transaction that creates the
    /// owner key only if it is absent. The token is the key's create revision.
    /// Another owner holds it: [`FleetError::Taken`]. Safe to retry after an ambiguous
    /// error: if the key is already ours (same owner, same lease), that is success.
    pub async fn acquire(
        &self,
        environment: &str,
        owner: &str,
        lease: i64,
    ) -> Result<FencingToken> {
        let key = self.owner_key(environment);
        let r = self
            .client
            .txn(
                &[Compare::CreateRevision(key.clone(), 0)],
                &[Op::Put {
                    key: key.clone(),
                    value: owner.as_bytes().to_vec(),
                    lease,
                }],
                &[Op::Get(key.clone())],
            )
            .await?;
        let token = |revision| FencingToken {
            environment: environment.to_string(),
            owner_key: key.clone(),
            revision,
        };
        if r.succeeded {
            // The txn's only write created the key: its revision is the create revision.
            return Ok(token(r.revision));
        }
        match r.results.first() {
            Some(OpResult::Get(Some(kv))) if kv.value == owner.as_bytes() && kv.lease == lease => {
                Ok(token(kv.create_revision))
            }
            Some(OpResult::Get(Some(kv))) => Err(FleetError::Taken {
                environment: environment.to_string(),
                owner: String::from_utf8_lossy(&kv.value).into_owned(),
                token: kv.create_revision,
            }),
            // Deleted between compare and read cannot happen inside one txn; an empty
            // answer means the key expired right after: the caller retries.
            _ => Err(FleetError::Ambiguous(format!(
                "{key}: create failed but the key is absent"
            ))),
        }
    }

    /// The current owner of `environment` and its token, if any.
    pub async fn owner(&self, environment: &str) -> Result<Option<(String, FencingToken)>> {
        let key = self.owner_key(environment);
        Ok(self.client.get(&key).await?.map(|kv| {
            (
                String::from_utf8_lossy(&kv.value).into_owned(),
                FencingToken {
                    environment: environment.to_string(),
                    owner_key: key.clone(),
                    revision: kv.create_revision,
                },
            )
        }))
    }

    /// Write `value` at `key` only while `token` still owns its environment; the
    /// revision of the write. A stale token: [`FleetError::Fenced`]. Retrying after an
    /// ambiguous error writes the same value under the same fence, so the end state is
    /// the same; for append-only records use [`Fleet::guarded_create`], which does not
    /// even rewrite.
    pub async fn guarded_put(&self, key: &str, value: &[u8], token: &FencingToken) -> Result<i64> {
        self.check_size(key, value)?;
        let r = self
            .client
            .txn(
                &[Compare::CreateRevision(
                    token.owner_key.clone(),
                    token.revision,
                )],
                &[Op::Put {
                    key: key.to_string(),
                    value: value.to_vec(),
                    lease: 0,
                }],
                &[Op::Get(token.owner_key.clone())],
            )
            .await?;
        if r.succeeded {
            Ok(r.revision)
        } else {
            Err(fenced(token, r.results.first()))
        }
    }

    /// Create `key` with `value` only while `token` owns its environment and only if
    /// the key is absent: idempotent by compare. If an earlier attempt was applied and
    /// its answer lost, the retry finds the same value and reports
    /// [`Created::Already`] without writing; a different value there is a
    /// [`FleetError::Conflict`]; a stale token is [`FleetError::Fenced`].
    pub async fn guarded_create(
        &self,
        key: &str,
        value: &[u8],
        token: &FencingToken,
    ) -> Result<Created> {
        self.check_size(key, value)?;
        let r = self
            .client
            .txn(
                &[
                    Compare::CreateRevision(token.owner_key.clone(), token.revision),
                    Compare::CreateRevision(key.to_string(), 0),
                ],
                &[Op::Put {
                    key: key.to_string(),
                    value: value.to_vec(),
                    lease: 0,
                }],
                &[Op::Get(token.owner_key.clone()), Op::Get(key.to_string())],
            )
            .await?;
        if r.succeeded {
            return Ok(Created::Now(r.revision));
        }
        let owner = r.results.first();
        let still_owner =
            matches!(owner, Some(OpResult::Get(Some(kv))) if kv.create_revision == token.revision);
        if !still_owner {
            return Err(fenced(token, owner));
        }
        match r.results.get(1) {
            Some(OpResult::Get(Some(kv))) if kv.value == value => {
                Ok(Created::Already(kv.create_revision))
            }
            Some(OpResult::Get(Some(kv))) => Err(FleetError::Conflict {
                key: key.to_string(),
                revision: kv.create_revision,
            }),
            _ => Err(FleetError::Decode(format!(
                "{key}: txn failed with owner and key as expected"
            ))),
        }
    }

    /// Create every key of `entries` in one transaction, only while `token` owns its
    /// environment and only if none of them exists: all or nothing, and idempotent like
    /// [`Fleet::guarded_create`] (a retry that finds all of them with the same values
    /// reports [`Created::Already`] with the first one's revision). Some present with
    /// other values (or only some present): [`FleetError::Conflict`].
    pub async fn guarded_create_all(
        &self,
        entries: &[(String, Vec<u8>)],
        token: &FencingToken,
    ) -> Result<Created> {
        const PER_KEY_OVERHEAD: usize = 64;
        let total: usize = entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + PER_KEY_OVERHEAD)
            .sum();
        self.check_size_total("guarded_create_all", total)?;
        let mut compare = vec![Compare::CreateRevision(
            token.owner_key.clone(),
            token.revision,
        )];
        compare.extend(
            entries
                .iter()
                .map(|(k, _)| Compare::CreateRevision(k.clone(), 0)),
        );
        let success: Vec<Op> = entries
            .iter()
            .map(|(k, v)| Op::Put {
                key: k.clone(),
                value: v.clone(),
                lease: 0,
            })
            .collect();
        let mut failure = vec![Op::Get(token.owner_key.clone())];
        failure.extend(entries.iter().map(|(k, _)| Op::Get(k.clone())));
        let r = self.client.txn(&compare, &success, &failure).await?;
        if r.succeeded {
            return Ok(Created::Now(r.revision));
        }
        let owner = r.results.first();
        if !matches!(owner, Some(OpResult::Get(Some(kv))) if kv.create_revision == token.revision) {
            return Err(fenced(token, owner));
        }
        let mut first = None;
        for ((key, value), got) in entries.iter().zip(&r.results[1..]) {
            match got {
                OpResult::Get(Some(kv)) if &kv.value == value => {
                    first.get_or_insert(kv.create_revision);
                }
                OpResult::Get(Some(kv)) => {
                    return Err(FleetError::Conflict {
                        key: key.clone(),
                        revision: kv.create_revision,
                    });
                }
                _ => {
                    return Err(FleetError::Conflict {
                        key: key.clone(),
                        revision: 0,
                    });
                }
            }
        }
        Ok(Created::Already(first.unwrap_or(0)))
    }

    /// The largest value one fenced write may carry under this fleet's request limit.
    pub fn max_value_bytes(&self) -> usize {
        self.max_request_bytes.saturating_sub(TXN_OVERHEAD + 512)
    }

    /// Give the environment up: delete the owner key if `token` still owns it (a
    /// clean hand-over lets the next owner take it without waiting for the TTL).
    pub async fn release(&self, token: &FencingToken) -> Result<()> {
        let r = self
            .client
            .txn(
                &[Compare::CreateRevision(
                    token.owner_key.clone(),
                    token.revision,
                )],
                &[Op::Delete(token.owner_key.clone())],
                &[],
            )
            .await?;
        // Not ours any more: nothing to release.
        let _ = r.succeeded;
        Ok(())
    }

    fn check_size_total(&self, what: &str, len: usize) -> Result<()> {
        if len + TXN_OVERHEAD > self.max_request_bytes {
            return Err(FleetError::TooLarge {
                what: what.to_string(),
                len,
                limit: self.max_request_bytes.saturating_sub(TXN_OVERHEAD),
            });
        }
        Ok(())
    }

    /// etcd refuses requests above `--max-request-bytes`; say so before sending, with
    /// a margin for the transaction's own fields.
    fn check_size(&self, key: &str, value: &[u8]) -> Result<()> {
        let len = key.len() + value.len() + TXN_OVERHEAD;
        if len > self.max_request_bytes {
            return Err(FleetError::TooLarge {
                what: format!("write of {key}"),
                len: value.len(),
                limit: self
                    .max_request_bytes
                    .saturating_sub(TXN_OVERHEAD + key.len()),
            });
        }
        Ok(())
    }
}

/// Room left in a request for the transaction's own fields (compares, owner key).
const TXN_OVERHEAD: usize = 1024;

fn fenced(token: &FencingToken, owner: Option<&OpResult>) -> FleetError {
    let current = match owner {
        Some(OpResult::Get(Some(kv))) => kv.create_revision,
        _ => 0,
    };
    FleetError::Fenced {
        owner_key: token.owner_key.clone(),
        held: token.revision,
        current,
    }
}
