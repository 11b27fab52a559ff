//! The plain data `runbook serve` hands this crate, and the [`Backend`] trait it
//! implements. Nothing here knows the journal or the executor: serve builds a
//! [`Status`] snapshot per request and the pages and metrics are rendered from it.

use serde::{Deserialize, Serialize};

/// One snapshot of everything the status page and `/metrics` show. Times are Unix
/// milliseconds (UTC); strings are shown as given, escaped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// When the snapshot was taken; relative times ("3 s ago") are computed against it.
    pub generated_ms: i64,
    pub version: String,
    pub config_path: String,
    /// The safety lever: `Some(reason)` while engaged (no automatic action runs),
    /// `None` when released.
    pub lever: Option<String>,
    pub schedules: Vec<ScheduleView>,
    /// The latest executions, newest first (about 20).
    pub executions: Vec<ExecutionView>,
    /// Every execution in the journal, counted by runbook and status.
    pub execution_counts: Vec<ExecutionCount>,
    /// Finished executions' durations, for the duration histogram.
    pub durations: Vec<DurationSample>,
    pub watchers: Vec<WatcherView>,
    pub readiness: Vec<ReadinessView>,
    /// Game days, newest first; the page draws the RTO trend from them.
    pub gamedays: Vec<GameDayView>,
    /// Fleet mode (`--journal etcd://`): this serve's standing in the fleet.
    #[serde(default)]
    pub fleet: Option<FleetView>,
}

/// Fleet mode: whether this serve may act (its lease is alive by its local deadline)
/// and what its etcd requests say about quorum.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FleetView {
    pub runner_id: String,
    /// The lease is alive by its local deadline: serve may start executions.
    pub lease_valid: bool,
    pub lease: Option<i64>,
    /// The last lease request was answered.
    pub quorum: bool,
    /// While `quorum` is false: since when (ms) and the last error.
    pub no_quorum_since_ms: Option<i64>,
    pub last_error: Option<String>,
    /// etcd errors seen, by stable code.
    pub errors: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScheduleView {
    pub name: String,
    pub runbook: String,
    pub environment: Option<String>,
    /// The schedule expression as configured (`cron(0 3 ? * TUE *)`, `rate(1 day)`).
    pub expression: String,
    /// IANA zone the expression is evaluated in.
    pub timezone: String,
    pub next_fire_unix_ms: Option<i64>,
    /// The next fire in the schedule's zone, e.g. `2026-12-08 Tue 03:00:00 -05:00`.
    pub next_fire_local: Option<String>,
    /// `Some(reason)` while paused.
    pub paused: Option<String>,
    pub last_execution: Option<String>,
    pub last_status: Option<String>,
    pub fired_total: u64,
    pub skipped_total: u64,
    pub missed_total: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecutionView {
    pub id: String,
    pub runbook: String,
    pub status: String,
    pub started_ms: i64,
    /// `None` while running.
    pub ended_ms: Option<i64>,
    pub environment: Option<String>,
    /// What started it: `cli`, `schedule:NAME`, `watcher:ENV`, `trigger`.
    pub source: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecutionCount {
    pub runbook: String,
    pub status: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DurationSample {
    pub runbook: String,
    pub status: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WatcherView {
    pub environment: String,
    /// `off`, `dry-run`, `notify` or `auto`.
    pub mode: String,
    /// `healthy`, `suspect`, `failed` or `unknown`.
    pub verdict: String,
    pub consecutive_failures: u32,
    /// Failed rounds in a row that make a verdict `failed`.
    pub failed_rounds_needed: u32,
    pub last_round_ms: Option<i64>,
    pub signals: Vec<SignalView>,
    pub last_decision: Option<String>,
    pub cooldown_until_ms: Option<i64>,
    pub failovers_total: u64,
    /// `Some(reason)` while paused.
    pub paused: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SignalView {
    pub name: String,
    /// `healthy`, `failed` or `unknown`.
    pub reading: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadinessView {
    pub environment: String,
    pub ready: bool,
    /// Why it is not ready (empty when ready).
    pub reasons: Vec<String>,
    pub checked_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GameDayView {
    pub execution_id: String,
    pub started_ms: i64,
    /// `pass`, `fail` or `aborted`.
    pub verdict: String,
    pub rto_seconds: Option<f64>,
    pub lost_writes: Option<u64>,
    pub fault: Option<String>,
}

/// What `/executions/ID` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecutionPage {
    pub id: String,
    /// The plain text `runbook show` prints.
    pub show_text: String,
    /// A full HTML game-day report document when the execution was a game day; the page
    /// embeds it and `/executions/ID/report` serves it alone.
    pub report_html: Option<String>,
}

/// The body of `POST /pause`, `/resume` and `/trigger` (an empty body is all `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    /// A schedule name, `watcher:ENV`, or `None` for everything (pause/resume); the
    /// schedule to fire for trigger.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A control action's refusal; mapped to 404/409/400/500 with the JSON body
/// `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    /// Stable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::NotFound(_) => "control.not_found",
            ControlError::Conflict(_) => "control.conflict",
            ControlError::Invalid(_) => "control.invalid",
            ControlError::Internal(_) => "control.internal",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            ControlError::NotFound(_) => 404,
            ControlError::Conflict(_) => 409,
            ControlError::Invalid(_) => 400,
            ControlError::Internal(_) => 500,
        }
    }
}

/// What `runbook serve` provides. Methods are synchronous and may block (journal
/// reads): the server calls them on tokio's blocking pool, never on a reactor thread.
pub trait Backend: Send + Sync + 'static {
    /// A fresh snapshot for `/` and `/metrics`.
    fn status(&self) -> Status;
    /// `/executions/ID`; `None` is a 404.
    fn execution(&self, id: &str) -> Option<ExecutionPage>;
    /// A full HTML document for `/dashboards/NAME`; `None` is a 404.
    fn dashboard(&self, name: &str) -> Option<String>;
    /// Dashboard names, listed at `/dashboards` and linked from the status page.
    fn dashboards(&self) -> Vec<String>;
    fn pause(&self, request: ControlRequest) -> Result<serde_json::Value, ControlError>;
    fn resume(&self, request: ControlRequest) -> Result<serde_json::Value, ControlError>;
    /// Fires the schedule named by `target` now; returns e.g. `{"execution_id": ..}`.
    fn trigger(&self, request: ControlRequest) -> Result<serde_json::Value, ControlError>;
}
