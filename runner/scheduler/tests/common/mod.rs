//! Helpers shared by the scheduler's integration tests.
#![allow(dead_code)]

use runbook_scheduler::jiff::{SignedDuration, Timestamp, civil::DateTime, tz::TimeZone};
use runbook_scheduler::{Decision, Schedule, ScheduleState, apply, on_finished, poll};

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn sched(expr: &str, tz: &str) -> Schedule {
    Schedule::parse("test", expr, tz).unwrap_or_else(|e| panic!("{e}"))
}

/// The instant of a local wall-clock time that exists exactly once in `tz`.
pub fn local(tz: &str, wall: &str) -> Timestamp {
    let dt: DateTime = wall.parse().unwrap();
    TimeZone::get(tz)
        .unwrap()
        .to_ambiguous_timestamp(dt)
        .unambiguous()
        .unwrap()
}

/// Simulates a serve loop polling every `step` from `from` to `to`: every decision is
/// applied, and each run finishes (successfully) before the next poll. Returns the fired
/// slots.
pub fn simulate(
    s: &Schedule,
    st: &mut ScheduleState,
    from: Timestamp,
    to: Timestamp,
    step: SignedDuration,
) -> Vec<Timestamp> {
    let mut fired = Vec::new();
    let mut now = from;
    while now <= to {
        for d in poll(s, st, now) {
            if let Decision::Fire { slot, .. } = d {
                fired.push(slot);
            }
            apply(st, &d);
        }
        while st.running > 0 {
            if let Some(d) = on_finished(st, true, s) {
                if let Decision::Fire { slot, .. } = d {
                    fired.push(slot);
                }
                apply(st, &d);
            }
        }
        now = now.checked_add(step).unwrap();
    }
    fired
}
