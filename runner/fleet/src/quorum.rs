//! Fail closed: a runner that cannot reach an etcd quorum stops acting, says so, and
//! competes again once quorum returns.
//!
//! [`QuorumWatch`] turns the outcome of the runner's own etcd requests (lease grants and
//! keepalives) into `Healthy | NoQuorum { since, last_error }`, for the status page,
//! metrics and the log. The *decision* to stop does not depend on it: [`Actor::may_act`]
//! is the lease's conservative local deadline (sent time of the last successful
//! keepalive + TTL), which passes no later than etcd expires the lease, whatever the
//! requests say. An [`Actor`] that lost its lease grants a fresh one at its next
//! [`Actor::acquire`], so it comes back with a new, higher fencing token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use crate::error::{FleetError, Result};
use crate::fence::{FencingToken, Fleet};
use crate::lease::{LeaseKeeper, Timing};

/// What a runner's own requests say about etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quorum {
    /// The last lease request was answered.
    Healthy,
    /// Lease requests have failed since `since` (no member answered, or none with a
    /// leader); `last_error` is the latest failure, `code` its stable code.
    NoQuorum {
        since: Instant,
        code: &'static str,
        last_error: String,
    },
}

impl Quorum {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Quorum::Healthy)
    }
}

/// Shared quorum state of one runner (cheap to clone), fed by its lease keepers.
#[derive(Debug, Clone)]
pub struct QuorumWatch {
    tx: Arc<watch::Sender<Quorum>>,
    errors: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl Default for QuorumWatch {
    fn default() -> QuorumWatch {
        QuorumWatch::new()
    }
}

impl QuorumWatch {
    /// Healthy until a request says otherwise.
    pub fn new() -> QuorumWatch {
        QuorumWatch {
            tx: Arc::new(watch::channel(Quorum::Healthy).0),
            errors: Arc::default(),
        }
    }

    pub fn get(&self) -> Quorum {
        self.tx.borrow().clone()
    }

    /// Changes of state (e.g. to log or to push to a status page).
    pub fn subscribe(&self) -> watch::Receiver<Quorum> {
        self.tx.subscribe()
    }

    /// Errors seen so far, by code (`runbook_fleet_etcd_errors_total{code}`).
    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        self.errors.lock().expect("quorum errors lock").clone()
    }

    /// Record a request's outcome and hand it back. Only "etcd did not answer"
    /// outcomes count against quorum: a refused request (an expired lease, a bad
    /// token) was answered by a member that has a leader.
    pub fn observe<T>(&self, outcome: Result<T>) -> Result<T> {
        match &outcome {
            Ok(_) | Err(FleetError::LeaseExpired(_)) => {
                let was = self.tx.send_replace(Quorum::Healthy);
                if !was.is_healthy() {
                    tracing::info!("etcd quorum is back: this runner competes again");
                }
            }
            Err(e @ (FleetError::Unavailable(_) | FleetError::Ambiguous(_))) => {
                *self
                    .errors
                    .lock()
                    .expect("quorum errors lock")
                    .entry(e.code())
                    .or_default() += 1;
                let message = e.to_string();
                self.tx.send_modify(|q| {
                    let since = match q {
                        Quorum::NoQuorum { since, .. } => *since,
                        Quorum::Healthy => {
                            tracing::error!(
                                code = e.code(),
                                error = %message,
                                "etcd quorum lost: this runner stops acting when its lease's \
                                 local deadline passes"
                            );
                            Instant::now()
                        }
                    };
                    *q = Quorum::NoQuorum {
                        since,
                        code: e.code(),
                        last_error: message.clone(),
                    };
                });
            }
            // etcd answered, but not as asked: counted, quorum unchanged.
            Err(
                e @ (FleetError::Etcd { .. }
                | FleetError::Auth(_)
                | FleetError::Tls(_)
                | FleetError::Decode(_)),
            ) => {
                *self
                    .errors
                    .lock()
                    .expect("quorum errors lock")
                    .entry(e.code())
                    .or_default() += 1;
            }
            // Outcomes of the fleet's own rules (taken, fenced, ...), not etcd errors.
            Err(_) => {}
        }
        outcome
    }
}

/// One runner in the fleet: its id, its current lease (replaced when lost) and its
/// quorum state. Everything that acts (starts an execution, calls a capability) asks
/// [`Actor::may_act`] first; fenced writes catch whoever asked too late.
pub struct Actor {
    fleet: Fleet,
    runner_id: String,
    timing: Timing,
    quorum: QuorumWatch,
    keeper: Mutex<Option<Arc<LeaseKeeper>>>,
    /// Serialises lease replacement, so concurrent acquires grant one lease, not two.
    replacing: tokio::sync::Mutex<()>,
}

/// What the status page and `/metrics` show about a runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorStatus {
    pub runner_id: String,
    pub may_act: bool,
    /// The lease currently held (alive or not), if any was granted.
    pub lease: Option<i64>,
    pub quorum: Quorum,
    pub errors: BTreeMap<&'static str, u64>,
}

impl ActorStatus {
    /// Prometheus text exposition of the fleet gauges and counters.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str("# TYPE runbook_fleet_lease_valid gauge\n");
        out.push_str(&format!(
            "runbook_fleet_lease_valid {}\n",
            u8::from(self.may_act)
        ));
        out.push_str("# TYPE runbook_fleet_quorum gauge\n");
        out.push_str(&format!(
            "runbook_fleet_quorum {}\n",
            u8::from(self.quorum.is_healthy())
        ));
        out.push_str("# TYPE runbook_fleet_etcd_errors_total counter\n");
        for (code, n) in &self.errors {
            out.push_str(&format!(
                "runbook_fleet_etcd_errors_total{{code=\"{code}\"}} {n}\n"
            ));
        }
        out
    }
}

impl Actor {
    /// A runner in `fleet`; no lease yet (the first [`Actor::acquire`] grants one).
    pub fn new(fleet: Fleet, runner_id: &str, timing: Timing) -> Actor {
        Actor {
            fleet,
            runner_id: runner_id.to_string(),
            timing,
            quorum: QuorumWatch::new(),
            keeper: Mutex::new(None),
            replacing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub fn runner_id(&self) -> &str {
        &self.runner_id
    }

    fn current(&self) -> Option<Arc<LeaseKeeper>> {
        self.keeper.lock().expect("keeper lock").clone()
    }

    /// The runner may act: it holds a lease that is alive by its conservative local
    /// deadline. False from the moment that deadline passes, whether or not etcd
    /// answers (no quorum, partition, or this process was paused).
    pub fn may_act(&self) -> bool {
        self.current().is_some_and(|k| k.is_valid())
    }

    /// The runner may act on what it acquired with `lease` (as returned by
    /// [`Actor::acquire`]): [`Actor::may_act`] *and* `lease` is still the current one. A
    /// token won under a lost lease stays dead after a fresh lease is granted; the
    /// owner key itself is compared by every fenced write.
    pub fn may_act_on(&self, lease: i64) -> bool {
        self.current()
            .is_some_and(|k| k.id() == lease && k.is_valid())
    }

    pub fn quorum(&self) -> Quorum {
        self.quorum.get()
    }

    pub fn quorum_watch(&self) -> &QuorumWatch {
        &self.quorum
    }

    pub fn status(&self) -> ActorStatus {
        ActorStatus {
            runner_id: self.runner_id.clone(),
            may_act: self.may_act(),
            lease: self.current().map(|k| k.id()),
            quorum: self.quorum.get(),
            errors: self.quorum.errors(),
        }
    }

    /// The id of a lease that is alive now: the current one, or a fresh one when it
    /// was lost. The lost one is revoked (best effort): its owner keys go at once, so
    /// this runner (or another) can take them again without waiting out the TTL; it
    /// stopped acting on them when its deadline passed.
    pub async fn lease(&self) -> Result<i64> {
        if let Some(k) = self.current().filter(|k| k.is_valid()) {
            return Ok(k.id());
        }
        let _one = self.replacing.lock().await;
        if let Some(k) = self.current().filter(|k| k.is_valid()) {
            return Ok(k.id());
        }
        let fresh = Arc::new(
            LeaseKeeper::start_reporting(
                self.fleet.client().clone(),
                self.timing,
                self.quorum.clone(),
            )
            .await?,
        );
        let id = fresh.id();
        let old = self.keeper.lock().expect("keeper lock").replace(fresh);
        if let Some(old) = old {
            old.stop_keepalives();
            let client = self.fleet.client().clone();
            let old_id = old.id();
            tokio::spawn(async move {
                if let Err(e) = client.lease_revoke(old_id).await {
                    tracing::debug!(lease = old_id, error = %e, "revoking a lost lease");
                }
            });
        }
        tracing::info!(runner = %self.runner_id, lease = id, "fleet lease granted");
        Ok(id)
    }

    /// Become the owner of `environment` (see [`Fleet::acquire`]) with a live lease.
    /// Returns the token and the lease it is bound to.
    pub async fn acquire(&self, environment: &str) -> Result<(FencingToken, i64)> {
        let lease = self.lease().await?;
        let token = self.quorum.observe(
            self.fleet
                .acquire(environment, &self.runner_id, lease)
                .await,
        )?;
        Ok((token, lease))
    }

    /// Stop renewing the current lease (tests: what a paused runner does).
    pub fn stop_keepalives(&self) {
        if let Some(k) = self.current() {
            k.stop_keepalives();
        }
    }
}
