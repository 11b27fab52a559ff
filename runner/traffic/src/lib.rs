//! The game-day "application-like client".
//!
//! [`run`] writes sequenced rows (and optionally reads) through a target — normally the
//! routed DNS name of the DR database — at a steady rate over a pool of persistent
//! connections that reconnect like an application's connection pool, re-resolving the
//! target on every reconnect so a moved name is followed. Every write is recorded in a
//! ledger ([`Entry`]) handed to a [`Sink`] in batches: sent, acknowledged, failed (known
//! not committed) or unknown (the connection died or the client timed out after the
//! statement was sent). [`verify`] reads the rows back to find lost writes, and
//! [`measure`] / [`outages`] turn a ledger into client-seen figures (RTO, latency, lag).

mod analysis;
mod conn;
mod driver;
mod error;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::{BoxFuture, ConnectInfo};
use serde::{Deserialize, Serialize};

pub use analysis::{MEASURE_MIN_GAP, Measurement, Outage, Tally, measure, outages};
pub use driver::{RunStats, StopReason, run};
pub use error::TrafficError;
pub use verify::{VerifyReport, verify};

/// Default table the driver writes to.
pub const DEFAULT_TABLE: &str = "runbook_traffic";

/// How one session runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Session name: the `session` column of every row written, so sessions sharing a
    /// table never see each other's rows. Ids restart at 1, so a name is used once.
    pub session: String,
    pub writes_per_second: u32,
    /// 0: no reads.
    pub reads_per_second: u32,
    /// Pool size: persistent connections to the target.
    pub connections: u32,
    /// Client-side bounds of one write or read, as with a pool's checkout timeout and
    /// a statement timeout: the wait for a free (or reconnecting) connection, counted
    /// from the send time, and then the statement itself. A write whose wait runs out
    /// was never sent (`Failed`); one whose statement runs out is `Unknown`.
    pub write_timeout: Duration,
    /// Safety net: the driver stops by itself after this long.
    pub max_run: Duration,
    /// Sample the replica's lag (via [`Which::Replica`]) every 500 ms.
    pub sample_replica: bool,
    pub table: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            session: String::new(),
            writes_per_second: 50,
            reads_per_second: 0,
            connections: 4,
            write_timeout: Duration::from_secs(2),
            max_run: Duration::from_secs(3600),
            sample_replica: false,
            table: DEFAULT_TABLE.to_string(),
        }
    }
}

impl Config {
    /// The configuration a `traffic.start-session` spec asks for; zeros mean defaults
    /// (except reads, where 0 means none).
    pub fn from_spec(session: &str, spec: &runbook_caps::types::traffic::SessionSpec) -> Config {
        let d = Config::default();
        let or = |v: u32, d: u32| if v == 0 { d } else { v };
        Config {
            session: session.to_string(),
            writes_per_second: or(spec.writes_per_second, d.writes_per_second),
            reads_per_second: spec.reads_per_second,
            connections: or(spec.connections, d.connections),
            write_timeout: if spec.write_timeout_ms == 0 {
                d.write_timeout
            } else {
                Duration::from_millis(spec.write_timeout_ms.into())
            },
            max_run: if spec.max_seconds == 0 {
                d.max_run
            } else {
                Duration::from_secs(spec.max_seconds.into())
            },
            sample_replica: spec.replica.is_some(),
            table: d.table,
        }
    }
}

/// Which endpoint a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    Target,
    Replica,
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Which::Target => "target",
            Which::Replica => "replica",
        })
    }
}

/// Where to connect. Called on every (re)connect, so a DNS name or secret that moved
/// during a failover is followed, as an application's pool would.
pub trait Resolver: Send + Sync {
    fn resolve(&self, which: Which) -> BoxFuture<'_, Result<ConnectInfo, TrafficError>>;
}

/// A fixed endpoint (tests, or a target that never moves).
pub struct FixedResolver {
    pub target: ConnectInfo,
    pub replica: Option<ConnectInfo>,
}

impl Resolver for FixedResolver {
    fn resolve(&self, which: Which) -> BoxFuture<'_, Result<ConnectInfo, TrafficError>> {
        let r = match which {
            Which::Target => Ok(self.target.clone()),
            Which::Replica => self.replica.clone().ok_or_else(|| TrafficError::Resolve {
                which: which.to_string(),
                message: "no replica configured".into(),
            }),
        };
        Box::pin(async move { r })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Write,
    Read,
}

/// What became of a write or a read. Writes: `InFlight` until done, then `Acked`,
/// `Failed` (known not committed) or `Unknown`. Reads: `Ok` or `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    InFlight,
    Acked,
    Failed,
    Unknown,
    Ok,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InFlight => "inflight",
            Outcome::Acked => "acked",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
            Outcome::Ok => "ok",
        }
    }
}

/// One ledger entry. Times are unix epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// 1, 2, 3… per kind.
    pub id: u64,
    /// Pool slot (0-based) that carried it.
    pub conn: u32,
    pub sent_ms: i64,
    pub done_ms: Option<i64>,
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// Replica lag in ledger terms: sent time of the newest acknowledged write minus the
/// newest sent time the replica has replayed, in seconds; `None` when unreachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    pub at_ms: i64,
    pub lag: Option<f64>,
}

/// What the driver hands the sink. An entry may appear twice across batches (in
/// flight, then done): the sink upserts by `(kind, id)`. An empty batch, written once
/// before the first write, means "started".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub entries: Vec<Entry>,
    pub lag: Vec<LagSample>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.lag.is_empty()
    }
}

/// Where the ledger goes (the runner journals it). Called on the driver's own task
/// every 100 ms, so a write should be short (a journal append); a failed write is
/// retried with the next batch merged in.
pub trait Sink: Send {
    fn write(&mut self, batch: &Batch) -> Result<(), String>;
    /// Polled at every flush (about every 100 ms).
    fn stop_requested(&mut self) -> bool;
}

/// Unix epoch milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

type SharedResolver = Arc<dyn Resolver>;

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_caps::types::traffic::SessionSpec;

    #[test]
    fn from_spec_fills_zeros_with_defaults() {
        let c = Config::from_spec("s1", &SessionSpec::default());
        assert_eq!(
            c,
            Config {
                session: "s1".into(),
                ..Config::default()
            }
        );
        assert_eq!((c.writes_per_second, c.connections), (50, 4));
        assert_eq!(c.write_timeout, Duration::from_secs(2));
        assert!(!c.sample_replica);
        let spec = SessionSpec {
            replica: Some(Default::default()),
            writes_per_second: 10,
            reads_per_second: 3,
            connections: 2,
            write_timeout_ms: 750,
            max_seconds: 30,
            ..SessionSpec::default()
        };
        let c = Config::from_spec("s2", &spec);
        assert_eq!(
            (c.writes_per_second, c.reads_per_second, c.connections),
            (10, 3, 2)
        );
        assert_eq!(c.write_timeout, Duration::from_millis(750));
        assert_eq!(c.max_run, Duration::from_secs(30));
        assert!(c.sample_replica);
        assert_eq!(c.table, DEFAULT_TABLE);
    }

    #[test]
    fn errors_have_stable_codes_and_outcomes_serialize_lowercase() {
        assert_eq!(TrafficError::Sink("x".into()).code(), "E-TRAFFIC-SINK");
        assert_eq!(
            TrafficError::Connect("x".into()).code(),
            "E-TRAFFIC-CONNECT"
        );
        let e = Entry {
            kind: Kind::Write,
            id: 7,
            conn: 1,
            sent_ms: 1,
            done_ms: None,
            outcome: Outcome::InFlight,
            error: None,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "write");
        assert_eq!(v["outcome"], "inflight");
        let back: Entry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        for o in [
            Outcome::Acked,
            Outcome::Failed,
            Outcome::Unknown,
            Outcome::Ok,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert_eq!(Outcome::Unknown.as_str(), "unknown");
    }
}
