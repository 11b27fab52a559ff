//! One-line summaries, the journaling filter, and time formatting for reasons.

use std::collections::BTreeSet;

use crate::{Action, Decision, Verdict, Veto};

/// Whether `serve` should journal (and, for [`Action::Notify`], send) `d`, given the
/// previous decision it computed (journaled or not).
///
/// Journaled: the first decision; every [`Action::Failover`]; and any change of verdict,
/// action, set of failed signals, set of unknown signals, or kinds of vetoes (values such
/// as the current lag are ignored, or a lagging replica would write a row per round).
/// While the primary is not judged failed, a change of the failed-round count is
/// journaled too, so the evidence of a streak (1, 2, ... or a reset) is kept; once it is
/// judged failed, the count climbing each round is not news. So a steady state —
/// healthy, or failed and held back by the same vetoes, or waiting — writes one row,
/// not one per round; `serve` may add a periodic heartbeat row if it wants one.
pub fn worth_journaling(prev: Option<&Decision>, d: &Decision) -> bool {
    let Some(p) = prev else { return true };
    let kinds = |d: &Decision| d.vetoes.iter().map(Veto::kind).collect::<BTreeSet<_>>();
    d.action == Action::Failover
        || p.verdict != d.verdict
        || p.action != d.action
        || p.mode != d.mode
        || p.failed_signals != d.failed_signals
        || p.unknown_signals != d.unknown_signals
        || kinds(p) != kinds(d)
        || (d.verdict != Verdict::Failed && p.consecutive_failed != d.consecutive_failed)
}

/// One line for logs and notifications, e.g.
/// `watcher[auto]: primary failed (3 consecutive failed rounds; failed: probe,
/// health-check; unknown: alarm) -> notify (vetoed: cooldown until 14:03:00Z)`.
pub fn summary(d: &Decision) -> String {
    let mut facts = Vec::new();
    if d.consecutive_failed > 0 {
        facts.push(format!(
            "{} consecutive failed round{}",
            d.consecutive_failed,
            if d.consecutive_failed == 1 { "" } else { "s" }
        ));
    }
    let names = |v: &[crate::Signal]| v.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    if !d.failed_signals.is_empty() {
        facts.push(format!("failed: {}", names(&d.failed_signals)));
    }
    if !d.unknown_signals.is_empty() {
        facts.push(format!("unknown: {}", names(&d.unknown_signals)));
    }
    let mut line = format!("watcher[{}]: primary {}", d.mode.name(), d.verdict.name());
    if !facts.is_empty() {
        line.push_str(&format!(" ({})", facts.join("; ")));
    }
    line.push_str(&format!(" -> {}", d.action.name()));
    if !d.vetoes.is_empty() {
        let vetoes: Vec<String> = d.vetoes.iter().map(|v| short(v, d.at_ms)).collect();
        line.push_str(&format!(" (vetoed: {})", vetoes.join(", ")));
    } else if d.action == Action::Wait
        && let Some(why) = d.reasons.iter().find(|r| r.starts_with("waiting"))
    {
        line.push_str(&format!(" ({why})"));
    }
    line
}

fn short(v: &Veto, now_ms: i64) -> String {
    match v {
        Veto::ReplicaReceivingWal => "replica still receiving WAL from the primary".into(),
        Veto::ReplicaLagging { lag_seconds, max } => {
            format!("replica lag {lag_seconds:.1} s > {max} s")
        }
        Veto::ReplicaUnreachable => "replica unreachable".into(),
        Veto::ReplicaNotInRecovery => "replica not in recovery".into(),
        Veto::ReplicaStateUnknown { field } => format!("replica {field} unknown"),
        Veto::LeverEngaged => "safety lever engaged".into(),
        Veto::Cooldown { until_ms } => format!("cooldown until {}", fmt_until(*until_ms, now_ms)),
        Veto::StartupGrace { until_ms } => {
            format!("startup grace until {}", fmt_until(*until_ms, now_ms))
        }
    }
}

/// A duration for humans: `850 ms`, `45 s`, `60 min`, `3 h 20 min`.
pub(crate) fn fmt_duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{} s", ms / 1_000),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        _ => match (ms / 3_600_000, ms % 3_600_000 / 60_000) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
    }
}

/// A UTC instant for humans: the time of day when it is within a day of `now_ms`
/// (`14:03:00Z`), the full date otherwise (`2025-03-01T14:03:00Z`).
pub(crate) fn fmt_until(at_ms: i64, now_ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
    else {
        return format!("{at_ms} ms since the epoch");
    };
    let within_a_day = at_ms.abs_diff(now_ms) < 86_400_000;
    let fmt = if within_a_day {
        time::macros::format_description!("[hour]:[minute]:[second]Z")
    } else {
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")
    };
    t.format(&fmt)
        .unwrap_or_else(|_| format!("{at_ms} ms since the epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(850), "850 ms");
        assert_eq!(fmt_duration(30_000), "30 s");
        assert_eq!(fmt_duration(3_600_000), "60 min");
        assert_eq!(fmt_duration(12_000_000), "3 h 20 min");
        assert_eq!(fmt_duration(-5), "0 ms");
    }

    #[test]
    fn instants_show_the_date_only_when_far() {
        // 2025-03-01T14:03:00Z
        let t = 1_740_837_780_000;
        assert_eq!(fmt_until(t, t - 3_600_000), "14:03:00Z");
        assert_eq!(fmt_until(t, t - 2 * 86_400_000), "2025-03-01T14:03:00Z");
    }
}
