//! Realistic control-plane durations, scaled: `RUNBOOK_LOCAL_CONTROL_PLANE_SCALE`.
//!
//! Locally an RDS operation finishes as soon as PostgreSQL has done the work (a promotion
//! in well under a second), so a runbook whose waits are too short for AWS still passes
//! here. With a scale `s > 0` every background RDS operation keeps its transitional
//! status (`creating`, `modifying`, `rebooting`, `deleting`, ...) for `s ×` the duration
//! AWS typically takes before the work is done: with `s = 0.01` a promotion (about
//! 3.5 min on AWS) takes 2.1 s. The default, 0, is as fast as the machine.
//!
//! Read once by the daemon when it starts (the process that starts it passes its
//! environment on); a daemon already running keeps its scale.

use std::time::Duration;

use crate::error::LocalError;

pub(crate) const ENV: &str = "RUNBOOK_LOCAL_CONTROL_PLANE_SCALE";

/// Seconds AWS typically takes for each background operation of the local RDS, by the
/// operation names `rds.rs` gives them. Figures from the RDS User Guide where it gives
/// one, otherwise the middle of what runs usually take for a small (100 GB gp3) instance.
pub(crate) const AWS_SECONDS: &[(&str, u64)] = &[
    // CreateDBInstance, Multi-AZ: 10-20+ min.
    ("create", 900),
    // Cross-region read replica of a small database (snapshot, copy, restore, catch up):
    // 15-30 min; an hour or more for large ones.
    ("create-replica", 1200),
    // PromoteReadReplica: "several minutes or longer"; 2-5 min for a small replica.
    ("promote", 210),
    // A replica promoted because its source was deleted.
    ("promote-orphan", 210),
    // RebootDBInstance without failover: a minute or two.
    ("reboot", 90),
    // RebootDBInstance with ForceFailover and automatic Multi-AZ failover: "typically
    // 60-120 seconds".
    ("reboot-failover", 90),
    ("multi-az-failover", 90),
    // ModifyDBInstance MultiAZ=true (a standby built from a snapshot): 10-30 min.
    ("modify-multi-az", 900),
    // DeleteDBInstance without a final snapshot: 5-10 min.
    ("delete", 420),
    ("snapshot", 300),
    ("restore", 900),
    ("stop", 180),
    ("start", 300),
];

/// How long the local control plane makes operations last.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Pace {
    scale: f64,
}

impl Pace {
    /// The scale from the environment; unset or empty is 0.
    pub fn from_env() -> Result<Pace, LocalError> {
        match std::env::var(ENV) {
            Ok(v) if !v.trim().is_empty() => Pace::parse(&v),
            _ => Ok(Pace::default()),
        }
    }

    pub fn parse(v: &str) -> Result<Pace, LocalError> {
        let scale: f64 = v.trim().parse().map_err(|_| LocalError::Config {
            name: ENV,
            reason: format!("{v:?} is not a number"),
        })?;
        // A scale of 1 makes a deploy last an hour, as on AWS; beyond that is a typo.
        if !scale.is_finite() || !(0.0..=1.0).contains(&scale) {
            return Err(LocalError::Config {
                name: ENV,
                reason: format!("{v} is outside 0..=1"),
            });
        }
        Ok(Pace { scale })
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Extra time the operation `what` keeps its transitional status; zero for
    /// operations AWS has no counterpart of (resuming after a daemon restart).
    pub fn delay(&self, what: &str) -> Duration {
        AWS_SECONDS
            .iter()
            .find(|(op, _)| *op == what)
            .map(|(_, secs)| Duration::from_secs_f64(*secs as f64 * self.scale))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_instant() {
        let p = Pace::default();
        assert_eq!(p.delay("promote"), Duration::ZERO);
        assert_eq!(p.delay("create"), Duration::ZERO);
    }

    #[test]
    fn scales_aws_durations() {
        let p = Pace::parse("0.01").unwrap();
        assert_eq!(p.delay("promote"), Duration::from_millis(2100));
        assert_eq!(p.delay("create"), Duration::from_secs(9));
        assert_eq!(p.delay("multi-az-failover"), Duration::from_millis(900));
        // Not an AWS operation: resuming after a daemon restart stays instant.
        assert_eq!(p.delay("resume"), Duration::ZERO);
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["fast", "-0.5", "2", "NaN", "inf"] {
            let e = Pace::parse(bad).unwrap_err().to_string();
            assert!(e.contains(ENV), "{bad}: {e}");
        }
        assert_eq!(Pace::parse(" 1 ").unwrap().scale(), 1.0);
    }
}
