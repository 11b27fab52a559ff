//! The decision: count failed rounds, judge the primary, apply vetoes and the mode.

use std::collections::BTreeMap;

use serde_json::json;

use crate::text::{fmt_duration, fmt_until};
use crate::{
    Action, Config, Decision, Mode, Reading, ReplicaView, Round, Signal, State, Verdict, Veto,
};

/// How one signal read after merging duplicates. Declaration order is the merge
/// priority: a Healthy reading beats Failed, which beats Unknown.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Unknown,
    Failed,
    Healthy,
}

fn kind(r: &Reading) -> Kind {
    match r {
        Reading::Healthy { .. } => Kind::Healthy,
        Reading::Failed { .. } => Kind::Failed,
        Reading::Unknown { .. } => Kind::Unknown,
    }
}

/// Judges one round and says what to do. `round.at_ms` is "now".
///
/// Updates `st.consecutive_failed` and `st.last_verdict`; never records a failover
/// (that is [`failover_started`], once `serve` has really created the execution).
pub fn observe(cfg: &Config, st: &mut State, round: &Round) -> Decision {
    let now = round.at_ms;
    let mut merged: BTreeMap<Signal, Kind> = BTreeMap::new();
    for (signal, reading) in &round.readings {
        let k = kind(reading);
        merged
            .entry(*signal)
            .and_modify(|m| *m = (*m).max(k))
            .or_insert(k);
    }
    let with = |want: Kind| -> Vec<Signal> {
        merged
            .iter()
            .filter(|(_, k)| **k == want)
            .map(|(s, _)| *s)
            .collect()
    };
    let failed_signals = with(Kind::Failed);
    let unknown_signals = with(Kind::Unknown);
    let healthy_count = with(Kind::Healthy).len();

    let mut reasons = Vec::new();
    for (signal, reading) in &round.readings {
        match reading {
            Reading::Failed { detail } => {
                reasons.push(format!("{} failed: {detail}", signal.name()))
            }
            Reading::Unknown { detail } => reasons.push(format!(
                "{} unknown (counts neither as failed nor healthy): {detail}",
                signal.name()
            )),
            Reading::Healthy { .. } => {}
        }
    }

    let needed = cfg.min_failed_signals as usize;
    let verdict = if failed_signals.len() >= needed {
        st.consecutive_failed = st.consecutive_failed.saturating_add(1);
        if st.consecutive_failed >= cfg.failed_rounds {
            reasons.push(format!(
                "primary judged failed: {} consecutive failed rounds (threshold {}), {} of {} signals failed this round",
                st.consecutive_failed,
                cfg.failed_rounds,
                failed_signals.len(),
                merged.len()
            ));
            Verdict::Failed
        } else {
            reasons.push(format!(
                "failed round {} of {} needed ({} signals failed, {needed} needed)",
                st.consecutive_failed,
                cfg.failed_rounds,
                failed_signals.len()
            ));
            Verdict::Suspect
        }
    } else if !failed_signals.is_empty() {
        // Patroni-like: the streak needs consecutive rounds that all qualify.
        if st.consecutive_failed > 0 {
            reasons.push(format!(
                "failed-round streak of {} reset",
                st.consecutive_failed
            ));
        }
        st.consecutive_failed = 0;
        reasons.push(format!(
            "only {} signal(s) failed ({needed} needed to count the round)",
            failed_signals.len()
        ));
        Verdict::Suspect
    } else if healthy_count > 0 {
        st.consecutive_failed = 0;
        Verdict::Healthy
    } else {
        // No evidence either way: the streak is neither extended nor forgotten.
        reasons.push(format!(
            "no signal could be read; failed-round count held at {}",
            st.consecutive_failed
        ));
        Verdict::Unknown
    };
    st.last_verdict = Some(verdict);

    let mut vetoes = Vec::new();
    let action = if cfg.mode == Mode::Off {
        reasons.push("mode off: no action".into());
        Action::None
    } else if let Some(id) = &st.in_flight {
        reasons.push(format!(
            "waiting for failover execution {id} (started by the watcher) to finish"
        ));
        Action::Wait
    } else if verdict != Verdict::Failed {
        Action::None
    } else if let Some(id) = &round.environment_busy {
        reasons.push(format!(
            "waiting: execution {id} holds the environment; no new failover while it runs"
        ));
        Action::Wait
    } else {
        vetoes = vetoes_for(cfg, st, round, &mut reasons);
        match (cfg.mode, vetoes.is_empty()) {
            (Mode::Auto, true) => {
                reasons.push("starting failover.yaml".into());
                Action::Failover
            }
            (Mode::DryRun, true) => {
                reasons.push("dry-run: auto mode would start failover.yaml now".into());
                Action::WouldFailover
            }
            (Mode::Notify, true) => {
                reasons.push(
                    "mode notify: the primary is judged failed and nothing vetoes a failover; \
                     start failover.yaml by hand if appropriate"
                        .into(),
                );
                Action::Notify
            }
            (Mode::Notify, false) => {
                reasons.push("mode notify: the primary is judged failed; see the vetoes before failing over by hand".into());
                Action::Notify
            }
            (_, false) => {
                reasons.push("automatic failover held back; notifying".into());
                Action::Notify
            }
            (Mode::Off, true) => unreachable!("mode off handled above"),
        }
    };

    let evidence = json!({
        "mode": cfg.mode,
        "readings": round.readings.iter().map(|(s, r)| json!({
            "signal": s,
            "reading": r.name(),
            "detail": r.detail(),
        })).collect::<Vec<_>>(),
        "replica": round.replica,
        "lever_engaged": round.lever_engaged,
        "environment_busy": round.environment_busy,
        "in_flight": st.in_flight,
        "failed_rounds": cfg.failed_rounds,
        "min_failed_signals": cfg.min_failed_signals,
        "max_lag_seconds": cfg.max_lag_seconds,
        "recent_failovers_ms": recent_failovers(cfg, st, now),
    });

    Decision {
        at_ms: now,
        mode: cfg.mode,
        verdict,
        action,
        consecutive_failed: st.consecutive_failed,
        failed_signals,
        unknown_signals,
        reasons,
        vetoes,
        evidence,
    }
}

/// Automatic failovers started within the cooldown window ending at `now`, oldest first.
fn recent_failovers(cfg: &Config, st: &State, now: i64) -> Vec<i64> {
    let mut v: Vec<i64> = st
        .failovers
        .iter()
        .copied()
        .filter(|t| *t <= now && now - *t < cfg.cooldown_ms)
        .collect();
    v.sort_unstable();
    v
}

fn vetoes_for(cfg: &Config, st: &State, round: &Round, reasons: &mut Vec<String>) -> Vec<Veto> {
    let now = round.at_ms;
    let mut vetoes = replica_vetoes(cfg, &round.replica, reasons);
    if round.lever_engaged {
        reasons.push("veto: the safety lever is engaged; automatic failovers are stopped".into());
        vetoes.push(Veto::LeverEngaged);
    }
    let recent = recent_failovers(cfg, st, now);
    let max = cfg.max_failovers_per_cooldown as usize;
    if recent.len() >= max {
        // The budget frees up when enough of the recent failovers leave the window.
        let until_ms = recent[recent.len() - max] + cfg.cooldown_ms;
        reasons.push(format!(
            "cooldown: {} automatic failover{} in the last {} (until {}); notifying only",
            recent.len(),
            if recent.len() == 1 { "" } else { "s" },
            fmt_duration(cfg.cooldown_ms),
            fmt_until(until_ms, now)
        ));
        vetoes.push(Veto::Cooldown { until_ms });
    }
    let grace_until = st.started_ms.saturating_add(cfg.startup_grace_ms);
    if now < grace_until {
        reasons.push(format!(
            "startup grace: the watcher started {} ago; no automatic failover before {}",
            fmt_duration(now - st.started_ms),
            fmt_until(grace_until, now)
        ));
        vetoes.push(Veto::StartupGrace {
            until_ms: grace_until,
        });
    }
    vetoes
}

fn replica_vetoes(cfg: &Config, r: &ReplicaView, reasons: &mut Vec<String>) -> Vec<Veto> {
    let mut vetoes = Vec::new();
    let detail = if r.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.detail)
    };
    if !r.reachable {
        reasons.push(format!(
            "veto: the replica is unreachable{detail}; it cannot be promoted, and the watcher may be the one isolated"
        ));
        // Its other fields were not read; listing them as unknown would add nothing.
        vetoes.push(Veto::ReplicaUnreachable);
        return vetoes;
    }
    let lag = r.lag_seconds.filter(|l| l.is_finite());
    for (field, missing) in [
        ("in_recovery", r.in_recovery.is_none()),
        ("receiving_from_primary", r.receiving_from_primary.is_none()),
        ("lag_seconds", lag.is_none()),
    ] {
        if missing {
            reasons.push(format!(
                "veto: the replica's {field} could not be read{detail}"
            ));
            vetoes.push(Veto::ReplicaStateUnknown {
                field: field.into(),
            });
        }
    }
    if r.in_recovery == Some(false) {
        reasons.push(format!(
            "veto: the replica is not in recovery{detail}; it is already a primary (promoted elsewhere?)"
        ));
        vetoes.push(Veto::ReplicaNotInRecovery);
    }
    if r.receiving_from_primary == Some(true) {
        reasons.push(format!(
            "veto: the replica is still receiving WAL from the primary{detail}; the primary is alive and the watcher is the one cut off"
        ));
        vetoes.push(Veto::ReplicaReceivingWal);
    }
    if let Some(lag) = lag
        && lag > cfg.max_lag_seconds
    {
        reasons.push(format!(
            "veto: replica lag {lag:.1} s exceeds the guard of {} s; promoting would lose more than the RPO allows",
            cfg.max_lag_seconds
        ));
        vetoes.push(Veto::ReplicaLagging {
            lag_seconds: lag,
            max: cfg.max_lag_seconds,
        });
    }
    vetoes
}

/// Records that `serve` created the failover execution `execution_id` at `at_ms` after
/// an [`Action::Failover`]: it counts against the cooldown from now on and the watcher
/// waits ([`Action::Wait`]) until [`failover_finished`].
pub fn failover_started(st: &mut State, execution_id: &str, at_ms: i64) {
    st.in_flight = Some(execution_id.to_owned());
    st.failovers.push(at_ms);
    st.failovers.sort_unstable();
    let excess = st.failovers.len().saturating_sub(State::MAX_FAILOVERS_KEPT);
    st.failovers.drain(..excess);
}

/// Records the end of the watcher's failover. Returns false (and changes nothing) when
/// `execution_id` is not the one in flight.
///
/// Either way the failed-round streak restarts from zero: after a success the old
/// primary is expected to be down, and `serve` re-targets the watcher at the new
/// topology (new primary, and the new replica if any) before the next round; after a
/// failure the cooldown still counts the attempt, so a still-failed primary gets
/// [`Action::Notify`], not a retry loop.
pub fn failover_finished(st: &mut State, execution_id: &str, succeeded: bool, at_ms: i64) -> bool {
    // Outcome and time are journaled by serve; the state only needs to stop waiting.
    let _ = (succeeded, at_ms);
    if st.in_flight.as_deref() != Some(execution_id) {
        return false;
    }
    st.in_flight = None;
    st.consecutive_failed = 0;
    st.last_verdict = None;
    true
}
