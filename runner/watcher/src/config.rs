//! Tuning knobs and their validation.

use serde::{Deserialize, Serialize};

use crate::Mode;

/// Watcher configuration. Missing fields take the [`Default`] values; unknown fields are
/// refused so a typo does not silently fall back to a default.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Default `notify`: automatic failover is opt-in.
    pub mode: Mode,
    /// Consecutive failed rounds before the primary is judged failed. Default 3.
    pub failed_rounds: u32,
    /// Signals that must read Failed in the same round for it to count. Default 2.
    pub min_failed_signals: u32,
    /// No automatic failover this long after the watcher (re)starts. Default 30 s.
    pub startup_grace_ms: i64,
    /// Window of the failover budget. Default 1 h.
    pub cooldown_ms: i64,
    /// Automatic failovers allowed per `cooldown_ms`; beyond, notify only. Default 1.
    pub max_failovers_per_cooldown: u32,
    /// Lag guard: no automatic promotion of a replica lagging more. Default 60 s (the
    /// `MaxLagSeconds` default of `failover.yaml`'s lag-guard policy).
    pub max_lag_seconds: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Notify,
            failed_rounds: 3,
            min_failed_signals: 2,
            startup_grace_ms: 30_000,
            cooldown_ms: 3_600_000,
            max_failovers_per_cooldown: 1,
            max_lag_seconds: 60.0,
        }
    }
}

/// A configuration the watcher refuses, with a stable code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("failed_rounds must be at least 1 (one failed round is never enough to fail over)")]
    FailedRoundsZero,
    #[error("min_failed_signals must be between 1 and 4 (the number of signals), got {0}")]
    MinFailedSignalsOutOfRange(u32),
    #[error("max_failovers_per_cooldown must be at least 1 (use mode notify to never fail over)")]
    MaxFailoversZero,
    #[error("{field} must not be negative, got {value}")]
    NegativeDuration { field: &'static str, value: i64 },
    #[error("max_lag_seconds must be a finite number >= 0, got {0}")]
    BadMaxLag(f64),
}

impl ConfigError {
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::FailedRoundsZero => "watcher.failed_rounds_zero",
            ConfigError::MinFailedSignalsOutOfRange(_) => "watcher.min_failed_signals_out_of_range",
            ConfigError::MaxFailoversZero => "watcher.max_failovers_zero",
            ConfigError::NegativeDuration { .. } => "watcher.negative_duration",
            ConfigError::BadMaxLag(_) => "watcher.bad_max_lag",
        }
    }
}

impl Config {
    /// Refuses settings that would make the watcher unsafe or meaningless.
    /// `min_failed_signals = 1` is accepted (a single-signal setup) but gives up the
    /// cross-check that keeps a cut-off runner from failing over a live primary.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.failed_rounds == 0 {
            return Err(ConfigError::FailedRoundsZero);
        }
        if self.min_failed_signals == 0
            || self.min_failed_signals as usize > crate::Signal::ALL.len()
        {
            return Err(ConfigError::MinFailedSignalsOutOfRange(
                self.min_failed_signals,
            ));
        }
        if self.max_failovers_per_cooldown == 0 {
            return Err(ConfigError::MaxFailoversZero);
        }
        for (field, value) in [
            ("startup_grace_ms", self.startup_grace_ms),
            ("cooldown_ms", self.cooldown_ms),
        ] {
            if value < 0 {
                return Err(ConfigError::NegativeDuration { field, value });
            }
        }
        if !self.max_lag_seconds.is_finite() || self.max_lag_seconds < 0.0 {
            return Err(ConfigError::BadMaxLag(self.max_lag_seconds));
        }
        Ok(())
    }
}
