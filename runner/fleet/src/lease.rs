//! Leases: Patroni's timing rule as a checked configuration, and a keeper that renews a
//! lease in the background and tells its holder, conservatively, until when it may act.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::EtcdClient;
use crate::error::{FleetError, Result};
use crate::quorum::QuorumWatch;

/// Lease timing. Patroni's rule, checked by [`Timing::new`]: `keepalive + 2 × request
/// timeout < TTL`, so that a keepalive that times out on one member can be retried on
/// another before the lease runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TimingConfig")]
pub struct Timing {
    ttl: Duration,
    keepalive: Duration,
    request_timeout: Duration,
}

/// `Timing` as written in configuration (`serve.yaml`), checked on load.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingConfig {
    pub ttl_secs: u64,
    pub keepalive_ms: u64,
    pub request_timeout_ms: u64,
}

impl TryFrom<TimingConfig> for Timing {
    type Error = FleetError;
    fn try_from(c: TimingConfig) -> Result<Timing> {
        Timing::new(
            Duration::from_secs(c.ttl_secs),
            Duration::from_millis(c.keepalive_ms),
            Duration::from_millis(c.request_timeout_ms),
        )
    }
}

impl Default for Timing {
    fn default() -> Timing {
        Timing::DEFAULT
    }
}

impl Timing {
    /// Defaults for regions apart (cross-region RTT up to ~150 ms, etcd's own 1 s
    /// election timeout): 2 s + 2 × 3 s = 8 s < 10 s.
    pub const DEFAULT: Timing = Timing {
        ttl: Duration::from_secs(10),
        keepalive: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
    };

    /// The fastest setting that still satisfies the rule on etcd's default election
    /// timeout (minimum lease TTL 2 s): 0.4 s + 2 × 0.75 s = 1.9 s < 2 s.
    pub const FAST: Timing = Timing {
        ttl: Duration::from_secs(2),
        keepalive: Duration::from_millis(400),
        request_timeout: Duration::from_millis(750),
    };

    /// Checked: TTL in whole seconds (etcd's lease granularity), every duration non-zero,
    /// and `keepalive + 2 × request_timeout < ttl`.
    pub fn new(ttl: Duration, keepalive: Duration, request_timeout: Duration) -> Result<Timing> {
        if ttl.is_zero() || ttl.subsec_nanos() != 0 {
            return Err(FleetError::Timing(format!(
                "TTL must be a whole number of seconds ≥ 1 (etcd leases), got {ttl:?}"
            )));
        }
        if keepalive.is_zero() || request_timeout.is_zero() {
            return Err(FleetError::Timing(
                "keepalive and request timeout must be > 0".into(),
            ));
        }
        let budget = keepalive + 2 * request_timeout;
        if budget >= ttl {
            return Err(FleetError::Timing(format!(
                "keepalive {keepalive:?} + 2 × request timeout {request_timeout:?} = {budget:?} \
                 must be < TTL {ttl:?} (a keepalive that times out once must still be \
                 retried on another member before the lease expires)"
            )));
        }
        Ok(Timing {
            ttl,
            keepalive,
            request_timeout,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn keepalive(&self) -> Duration {
        self.keepalive
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Worst case from an owner's death to another runner holding the environment, when
    /// contenders retry `acquire` every keepalive interval: the owner renewed just
    /// before dying (TTL), the contender's retry comes up to one interval later and
    /// takes up to one request timeout. (An etcd leader change extends every lease by
    /// one election timeout on top; see docs/fleet.md.)
    pub fn worst_case_takeover(&self) -> Duration {
        self.ttl + self.keepalive + self.request_timeout
    }
}

/// What the holder of a lease may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The lease is alive at least until this instant (measured from when the last
    /// successful keepalive was *sent*, so never later than etcd's own expiry).
    Alive { valid_until: Instant },
    /// The lease is gone (expired at etcd, revoked, or not renewed in time): stop acting.
    Lost,
}

/// A lease renewed every `keepalive` in the background until dropped, revoked, or
/// stopped. Its holder checks [`LeaseKeeper::is_valid`] before acting; fenced writes
/// make sure a holder that checked too late still cannot write.
pub struct LeaseKeeper {
    id: i64,
    timing: Timing,
    client: Arc<EtcdClient>,
    state: watch::Receiver<LeaseState>,
    quorum: QuorumWatch,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Grant a lease of `timing.ttl()` and start renewing it.
    pub async fn start(client: Arc<EtcdClient>, timing: Timing) -> Result<LeaseKeeper> {
        LeaseKeeper::start_reporting(client, timing, QuorumWatch::new()).await
    }

    /// The same, reporting the outcome of the grant and of every keepalive to
    /// `quorum` (shared by the leases one runner holds over time).
    pub async fn start_reporting(
        client: Arc<EtcdClient>,
        timing: Timing,
        quorum: QuorumWatch,
    ) -> Result<LeaseKeeper> {
        let sent = Instant::now();
        let lease = quorum.observe(client.lease_grant(timing.ttl).await)?;
        // etcd may grant more than asked (its minimum TTL); never count on more than
        // we asked for, so the local deadline stays within Patroni's budget.
        let ttl = Duration::from_secs(lease.ttl_secs.max(0) as u64).min(timing.ttl);
        let first = LeaseState::Alive {
            valid_until: sent + ttl,
        };
        let (tx, rx) = watch::channel(first);
        let task = tokio::spawn(renew(client.clone(), lease.id, timing, tx, quorum.clone()));
        Ok(LeaseKeeper {
            id: lease.id,
            timing,
            client,
            state: rx,
            quorum,
            task,
        })
    }

    /// What this keeper's requests say about etcd's quorum.
    pub fn quorum(&self) -> &QuorumWatch {
        &self.quorum
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    pub fn state(&self) -> LeaseState {
        *self.state.borrow()
    }

    /// Changes of state, for a runner that must stop acting the moment its lease is lost.
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }

    /// The holder may still act: the lease is alive by the conservative local deadline.
    pub fn is_valid(&self) -> bool {
        match self.state() {
            LeaseState::Alive { valid_until } => Instant::now() < valid_until,
            LeaseState::Lost => false,
        }
    }

    /// Stop renewing without revoking: the lease runs out at etcd after its TTL, as it
    /// would for a paused or partitioned runner.
    pub fn stop_keepalives(&self) {
        self.task.abort();
    }

    /// Stop renewing and revoke the lease (a clean hand-over: keys bound to it go now).
    pub async fn revoke(self) -> Result<()> {
        self.task.abort();
        self.client.lease_revoke(self.id).await
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn renew(
    client: Arc<EtcdClient>,
    id: i64,
    timing: Timing,
    tx: watch::Sender<LeaseState>,
    quorum: QuorumWatch,
) {
    let mut tick = tokio::time::interval(timing.keepalive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the lease was just granted
    loop {
        tick.tick().await;
        let sent = Instant::now();
        match quorum.observe(client.lease_keepalive(id).await) {
            Ok(ttl) => {
                let ttl = Duration::from_secs(ttl.max(0) as u64).min(timing.ttl);
                let _ = tx.send(LeaseState::Alive {
                    valid_until: sent + ttl,
                });
            }
            Err(FleetError::LeaseExpired(_)) => {
                tracing::warn!(lease = id, "lease expired at etcd; stop acting");
                let _ = tx.send(LeaseState::Lost);
                return;
            }
            Err(e) => {
                let expired = match *tx.borrow() {
                    LeaseState::Alive { valid_until } => Instant::now() >= valid_until,
                    LeaseState::Lost => true,
                };
                tracing::warn!(lease = id, error = %e, code = e.code(), "lease keepalive failed");
                if expired {
                    let _ = tx.send(LeaseState::Lost);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patroni_rule_is_checked() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert!(Timing::new(s(10), s(2), s(3)).is_ok());
        // 2 + 2×4 = 10, not < 10.
        let e = Timing::new(s(10), s(2), s(4)).unwrap_err();
        assert_eq!(e.code(), "fleet.timing");
        assert!(e.to_string().contains("must be < TTL"), "{e}");
        assert!(
            Timing::new(ms(2500), ms(100), ms(100)).is_err(),
            "fractional TTL"
        );
        assert!(Timing::new(s(2), ms(0), ms(100)).is_err(), "zero keepalive");
        // The consts obey their own rule.
        for t in [Timing::DEFAULT, Timing::FAST] {
            assert_eq!(
                Timing::new(t.ttl(), t.keepalive(), t.request_timeout()).ok(),
                Some(t)
            );
        }
        assert_eq!(Timing::DEFAULT.worst_case_takeover(), s(15));
    }

    #[test]
    fn timing_config_is_checked_on_load() {
        let ok: Timing = serde_json::from_str(
            r#"{"ttl_secs": 5, "keepalive_ms": 1000, "request_timeout_ms": 1500}"#,
        )
        .expect("valid timing");
        assert_eq!(ok.ttl(), Duration::from_secs(5));
        let bad = serde_json::from_str::<Timing>(
            r#"{"ttl_secs": 5, "keepalive_ms": 2000, "request_timeout_ms": 1500}"#,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("must be < TTL"), "{bad}");
    }
}
