//! The watcher's data: what `serve` gathers each round, what it persists, and the
//! decision it journals.

use serde::{Deserialize, Serialize};

/// An independent source of evidence about the primary.
///
/// Ordered as declared; decisions list signals in this order so they are deterministic.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// PostgreSQL probe from the runner (connect + `SELECT 1` / a canary read).
    Probe,
    /// The provider's health-check status (e.g. a Route 53 health check).
    HealthCheck,
    /// The state of the primary's alarm (e.g. a CloudWatch alarm).
    Alarm,
    /// The control plane's view of the instance (e.g. RDS `DescribeDBInstances` status).
    ControlPlane,
}

impl Signal {
    pub const ALL: [Signal; 4] = [
        Signal::Probe,
        Signal::HealthCheck,
        Signal::Alarm,
        Signal::ControlPlane,
    ];

    /// The kebab-case name used in JSON and in reasons.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Probe => "probe",
            Signal::HealthCheck => "health-check",
            Signal::Alarm => "alarm",
            Signal::ControlPlane => "control-plane",
        }
    }
}

/// One signal's reading of the primary in one round.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(tag = "reading", rename_all = "kebab-case")]
pub enum Reading {
    Healthy {
        detail: String,
    },
    Failed {
        detail: String,
    },
    /// The monitoring API could not be reached, timed out, or had no data (e.g. an alarm
    /// in `INSUFFICIENT_DATA`). Never evidence of failure.
    Unknown {
        detail: String,
    },
}

impl Reading {
    pub fn healthy(detail: impl Into<String>) -> Self {
        Reading::Healthy {
            detail: detail.into(),
        }
    }

    pub fn failed(detail: impl Into<String>) -> Self {
        Reading::Failed {
            detail: detail.into(),
        }
    }

    pub fn unknown(detail: impl Into<String>) -> Self {
        Reading::Unknown {
            detail: detail.into(),
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Reading::Healthy { detail }
            | Reading::Failed { detail }
            | Reading::Unknown { detail } => detail,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Reading::Healthy { .. } => "healthy",
            Reading::Failed { .. } => "failed",
            Reading::Unknown { .. } => "unknown",
        }
    }
}

/// What `serve` saw of the replica (the failover target) this round.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug, Default)]
pub struct ReplicaView {
    /// A connection to the replica succeeded this round.
    pub reachable: bool,
    /// `pg_is_in_recovery()`; `None` when it could not be read.
    pub in_recovery: Option<bool>,
    /// The WAL receiver is streaming from the primary and its last message is recent
    /// (`pg_stat_wal_receiver.status = 'streaming'` and `last_msg_receipt_time` within a
    /// few intervals); `None` when it could not be read.
    pub receiving_from_primary: Option<bool>,
    /// The data the replica is missing, in seconds, as of when it last heard from the
    /// primary. Not `now() - pg_last_xact_replay_timestamp()`: that grows with idle time
    /// and with the outage itself, so it would veto every real failover after a minute.
    pub lag_seconds: Option<f64>,
    pub detail: String,
}

/// Everything `serve` gathered in one round. `at_ms` is the round's time (Unix ms) and
/// is the only clock the watcher knows.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct Round {
    pub at_ms: i64,
    /// Conflicting readings of one signal (several probes) are merged: any Healthy wins,
    /// then Failed, then Unknown — one sign of life is enough to doubt a failure.
    pub readings: Vec<(Signal, Reading)>,
    pub replica: ReplicaView,
    /// The environment's safety lever is engaged: no automatic failover, notify only.
    pub lever_engaged: bool,
    /// Id of another execution holding the environment (a failover or game day running).
    pub environment_busy: Option<String>,
}

/// What the watcher does with a judged primary.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Verdicts are computed and journaled; the action is always `None`.
    Off,
    /// Like `Auto`, but `WouldFailover` instead of `Failover`.
    DryRun,
    /// Like `Auto`, but `Notify` instead of `Failover`.
    #[default]
    Notify,
    Auto,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::DryRun => "dry-run",
            Mode::Notify => "notify",
            Mode::Auto => "auto",
        }
    }
}

/// The primary's judged health this round.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// No signal failed and at least one read healthy.
    Healthy,
    /// Some signals failed, but not enough rounds (or not enough signals) agree yet.
    Suspect,
    /// `failed_rounds` consecutive rounds with at least `min_failed_signals` failures.
    Failed,
    /// Every signal read Unknown (or none was given): the watcher cannot tell.
    Unknown,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Suspect => "suspect",
            Verdict::Failed => "failed",
            Verdict::Unknown => "unknown",
        }
    }
}

/// What `serve` should do now.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    None,
    /// Start `failover.yaml` now, then call [`crate::failover_started`]. Auto mode only.
    Failover,
    /// Dry-run: auto mode would start `failover.yaml` now.
    WouldFailover,
    /// Tell humans: notify mode, or a failover held back by a veto (lever, cooldown,
    /// startup grace, replica state).
    Notify,
    /// Another execution holds the environment, or the watcher's own failover is in
    /// flight: nothing new is started.
    Wait,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Failover => "failover",
            Action::WouldFailover => "would-failover",
            Action::Notify => "notify",
            Action::Wait => "wait",
        }
    }
}

/// Why a failed primary is not failed over automatically.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(tag = "veto", rename_all = "kebab-case")]
pub enum Veto {
    /// The replica still streams WAL from the primary: the primary is alive and the
    /// watcher is the one cut off.
    ReplicaReceivingWal,
    ReplicaLagging {
        lag_seconds: f64,
        max: f64,
    },
    ReplicaUnreachable,
    /// The replica is already a primary (promoted by someone else?).
    ReplicaNotInRecovery,
    /// A replica field needed to decide safely could not be read (`in_recovery`,
    /// `receiving_from_primary` or `lag_seconds`).
    ReplicaStateUnknown {
        field: String,
    },
    LeverEngaged,
    Cooldown {
        until_ms: i64,
    },
    StartupGrace {
        until_ms: i64,
    },
}

impl Veto {
    /// The kebab-case kind, without values (what [`crate::worth_journaling`] compares).
    pub fn kind(&self) -> &'static str {
        match self {
            Veto::ReplicaReceivingWal => "replica-receiving-wal",
            Veto::ReplicaLagging { .. } => "replica-lagging",
            Veto::ReplicaUnreachable => "replica-unreachable",
            Veto::ReplicaNotInRecovery => "replica-not-in-recovery",
            Veto::ReplicaStateUnknown { .. } => "replica-state-unknown",
            Veto::LeverEngaged => "lever-engaged",
            Veto::Cooldown { .. } => "cooldown",
            Veto::StartupGrace { .. } => "startup-grace",
        }
    }
}

/// The watcher's memory between rounds. `serve` persists it (in the journal) so that a
/// restart keeps the cooldown and the in-flight failover; see [`State::resume`].
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct State {
    /// When the watcher (re)started; the startup grace counts from here.
    pub started_ms: i64,
    /// Consecutive failed rounds so far.
    #[serde(default)]
    pub consecutive_failed: u32,
    /// Start times of automatic failovers (oldest first, at most [`State::MAX_FAILOVERS_KEPT`]).
    #[serde(default)]
    pub failovers: Vec<i64>,
    #[serde(default)]
    pub last_verdict: Option<Verdict>,
    /// The failover execution the watcher started and is waiting for.
    #[serde(default)]
    pub in_flight: Option<String>,
}

impl State {
    /// Bounds the persisted history; far more than any sane `max_failovers_per_cooldown`.
    pub const MAX_FAILOVERS_KEPT: usize = 64;

    pub fn new(started_ms: i64) -> Self {
        State {
            started_ms,
            consecutive_failed: 0,
            failovers: Vec::new(),
            last_verdict: None,
            in_flight: None,
        }
    }

    /// Call after loading a persisted state in a new process: restarts the startup
    /// grace and forgets the failed-round streak (rounds from before the restart are
    /// stale), keeps the cooldown history and `in_flight`. If the in-flight execution
    /// ended while `serve` was down, `serve` calls [`crate::failover_finished`].
    pub fn resume(&mut self, now_ms: i64) {
        self.started_ms = now_ms;
        self.consecutive_failed = 0;
        self.last_verdict = None;
    }
}

/// One round's judgement, as journaled.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct Decision {
    pub at_ms: i64,
    pub mode: Mode,
    pub verdict: Verdict,
    pub action: Action,
    pub consecutive_failed: u32,
    /// Signals that read Failed this round (after merging), in [`Signal`] order.
    pub failed_signals: Vec<Signal>,
    /// Signals that read Unknown this round (after merging), in [`Signal`] order.
    pub unknown_signals: Vec<Signal>,
    /// Human sentences: which signals failed, why vetoed, cooldown end, ...
    pub reasons: Vec<String>,
    pub vetoes: Vec<Veto>,
    /// The round's readings and replica view plus the thresholds applied.
    pub evidence: serde_json::Value,
}
