//! Fleet mode's foundation on etcd v3 (issue 15): runners in several regions agree on
//! one actor per environment through etcd, never through anything of our own.
//!
//! - [`client`]: an etcd v3 client over etcd's JSON gRPC gateway (range, txn, leases),
//!   failing over between members.
//! - [`lease`]: Patroni's timing rule as a checked [`Timing`], and a [`LeaseKeeper`]
//!   that renews a lease and tells its holder until when it may act.
//! - [`fence`]: [`Fleet::acquire`] makes a runner the owner of an environment; the owner
//!   key's create revision is the [`FencingToken`] every fenced write compares.
//!
//! - [`journal`]: [`EtcdJournal`], the execution journal on etcd behind
//!   `runbook_journal::JournalBackend`, every write fenced.
//!
//! - [`once`]: a schedule slot fires once and a watcher failover happens once across
//!   the fleet ([`Fleet::claim_schedule_slot`], [`Fleet::claim_failover`]).
//! - [`quorum`]: fail closed: [`Actor::may_act`] and [`QuorumWatch`].
//!
//! docs/fleet.md has the design for the rest (takeover with replay).

pub mod client;
pub mod config;
pub mod error;
pub mod fence;
pub mod journal;
pub mod lease;
pub mod once;
pub mod quorum;

pub use client::{EtcdClient, Kv, Lease};
pub use config::{Credentials, EtcdOptions, TlsFiles};
pub use error::{FleetError, Result};
pub use fence::{Created, FencingToken, Fleet};
pub use journal::{EtcdJournal, EtcdJournalConfig};
pub use lease::{LeaseKeeper, LeaseState, Timing, TimingConfig};
pub use once::{ClaimRecord, Claimed, Episode};
pub use quorum::{Actor, ActorStatus, Quorum, QuorumWatch};
