//! Once across the fleet: a schedule slot fires once, and a watcher's failover for one
//! outage happens once, however many runners see the slot or the outage.
//!
//! Each is a claim key created by a transaction `if create_revision(key) == 0 then
//! put(key, {runner, execution})`, without a lease (the marker outlives its runner). The
//! winner starts the execution it named; every loser reads the winner's record in the
//! same transaction and can follow that execution. A claim retried after an ambiguous
//! error by the same runner finds its own record: [`Claimed::Already`], not a second
//! fire.
//!
//! ```text
//! <p>/once/schedule/<schedule>/<slot-ms:020>              one per schedule slot
//! <p>/once/watcher/<environment>/<term:020>/<primary>     one per outage episode
//! ```

use serde::{Deserialize, Serialize};

use crate::client::{Compare, Op, OpResult};
use crate::error::{FleetError, Result};
use crate::fence::Fleet;

/// What a claim key holds: who claimed it and the execution it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub runner: String,
    pub execution: String,
    /// The outage's primary, for watcher claims (episodes are computed from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This call created the claim (at this revision): start the execution.
    Won { revision: i64 },
    /// This runner's own earlier attempt had created it (its answer was lost): the
    /// record says which execution it named; start that one if it is not running yet,
    /// never a second one.
    Already { record: ClaimRecord, revision: i64 },
    /// Another runner claimed it first: follow `record.execution`, start nothing.
    Lost { record: ClaimRecord, revision: i64 },
}

impl Claimed {
    /// Whether this runner is the one that fires (it won now or earlier).
    pub fn fires(&self) -> bool {
        matches!(self, Claimed::Won { .. } | Claimed::Already { .. })
    }

    /// The claim's create revision.
    pub fn revision(&self) -> i64 {
        match self {
            Claimed::Won { revision }
            | Claimed::Already { revision, .. }
            | Claimed::Lost { revision, .. } => *revision,
        }
    }
}

/// One outage of an environment's primary, as every runner watching it computes it:
/// the primary's identity plus its **term**, the create revision of the failover claim
/// that last moved the environment *to another primary than this one* (0 if none).
///
/// Runners seeing the same outage read the same claims, so they compute the same
/// episode; a runner that lags (it still sees the outage after the winner's failover
/// finished) still computes the old episode and loses to the old claim. The next
/// outage after a failover is a new episode: either the primary is another one, or (a
/// failover back to this primary happened) its term is higher. What this cannot tell
/// apart: the same primary failing, recovering by itself with no failover, and failing
/// again; that is one episode, and the second outage is left to the operator (the claim
/// names the execution that handled the first one). A database that exposes a
/// promotion generation (PostgreSQL's timeline, an RDS promotion time) should put it
/// into the primary's identity, which removes that case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Episode {
    pub primary: String,
    pub term: i64,
}

impl std::fmt::Display for Episode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.primary, self.term)
    }
}

impl Fleet {
    /// `<p>/once/schedule/<schedule>/<slot-ms:020>`.
    pub fn schedule_slot_key(&self, schedule: &str, slot_ms: i64) -> String {
        format!(
            "{}/once/schedule/{}/{slot_ms:020}",
            self.prefix(),
            segment(schedule)
        )
    }

    fn watcher_prefix(&self, environment: &str) -> String {
        format!("{}/once/watcher/{}/", self.prefix(), segment(environment))
    }

    /// `<p>/once/watcher/<environment>/<term:020>/<primary>`.
    pub fn episode_key(&self, environment: &str, episode: &Episode) -> String {
        format!(
            "{}{:020}/{}",
            self.watcher_prefix(environment),
            episode.term,
            segment(&episode.primary)
        )
    }

    /// Claim `key` for `runner`, naming the execution it will start. Exactly one runner
    /// wins a key, ever; see [`Claimed`].
    pub async fn claim_once(&self, key: &str, record: &ClaimRecord) -> Result<Claimed> {
        let value = serde_json::to_vec(record).expect("claim record serialises");
        let r = self
            .client()
            .txn(
                &[Compare::CreateRevision(key.to_string(), 0)],
                &[Op::Put {
                    key: key.to_string(),
                    value,
                    lease: 0,
                }],
                &[Op::Get(key.to_string())],
            )
            .await?;
        if r.succeeded {
            return Ok(Claimed::Won {
                revision: r.revision,
            });
        }
        let Some(OpResult::Get(Some(kv))) = r.results.first() else {
            // Claims carry no lease and are never deleted by the fleet.
            return Err(FleetError::Decode(format!(
                "{key}: create failed but the claim is absent"
            )));
        };
        let found: ClaimRecord = serde_json::from_slice(&kv.value)
            .map_err(|e| FleetError::Decode(format!("{key}: claim record: {e}")))?;
        let revision = kv.create_revision;
        Ok(if found.runner == record.runner {
            Claimed::Already {
                record: found,
                revision,
            }
        } else {
            Claimed::Lost {
                record: found,
                revision,
            }
        })
    }

    /// Claim one slot of a schedule (its due time in ms): the runner that wins starts
    /// `execution`; the others skip the slot.
    pub async fn claim_schedule_slot(
        &self,
        schedule: &str,
        slot_ms: i64,
        runner: &str,
        execution: &str,
    ) -> Result<Claimed> {
        let record = ClaimRecord {
            runner: runner.to_string(),
            execution: execution.to_string(),
            primary: None,
        };
        self.claim_once(&self.schedule_slot_key(schedule, slot_ms), &record)
            .await
    }

    /// The episode an outage of `primary` in `environment` belongs to (see [`Episode`]):
    /// one linearizable range read of the environment's watcher claims.
    pub async fn outage_episode(&self, environment: &str, primary: &str) -> Result<Episode> {
        let claims = self
            .client()
            .get_prefix(&self.watcher_prefix(environment))
            .await?;
        let mut term = 0;
        for kv in claims {
            let record: ClaimRecord = serde_json::from_slice(&kv.value).map_err(|e| {
                FleetError::Decode(format!(
                    "{}: claim record: {e}",
                    String::from_utf8_lossy(&kv.key)
                ))
            })?;
            // A failover away from another primary may have made this one primary.
            if record.primary.as_deref() != Some(primary) {
                term = term.max(kv.create_revision);
            }
        }
        Ok(Episode {
            primary: primary.to_string(),
            term,
        })
    }

    /// Claim the failover of one outage episode: the runner that wins starts
    /// `execution` (which then acquires the environment as usual); the others record
    /// that they saw it and follow the winner's execution.
    pub async fn claim_failover(
        &self,
        environment: &str,
        episode: &Episode,
        runner: &str,
        execution: &str,
    ) -> Result<Claimed> {
        let record = ClaimRecord {
            runner: runner.to_string(),
            execution: execution.to_string(),
            primary: Some(episode.primary.clone()),
        };
        self.claim_once(&self.episode_key(environment, episode), &record)
            .await
    }
}

/// A name as one key segment: `/` and `%` escaped so a name cannot reach into another
/// schedule's or environment's keys.
fn segment(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::EtcdClient;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn keys_are_ordered_and_escaped() {
        let c = EtcdClient::new(&["http://127.0.0.1:1"], Duration::from_secs(1)).expect("client");
        let f = Fleet::new(Arc::new(c), "/rb/");
        assert_eq!(
            f.schedule_slot_key("nightly/dr", 1_700_000_000_000),
            "/rb/once/schedule/nightly%2Fdr/00000001700000000000"
        );
        // Zero-padded slots sort by time.
        assert!(f.schedule_slot_key("s", 9) < f.schedule_slot_key("s", 10));
        let e = Episode {
            primary: "db-a/tl-3".into(),
            term: 42,
        };
        assert_eq!(
            f.episode_key("prod", &e),
            "/rb/once/watcher/prod/00000000000000000042/db-a%2Ftl-3"
        );
        assert_eq!(e.to_string(), "db-a/tl-3@42");
    }

    #[test]
    fn claim_records_round_trip() {
        let r = ClaimRecord {
            runner: "r1".into(),
            execution: "e1".into(),
            primary: None,
        };
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(json, r#"{"runner":"r1","execution":"e1"}"#);
        assert_eq!(
            serde_json::from_str::<ClaimRecord>(&json).expect("parse"),
            r
        );
    }
}
