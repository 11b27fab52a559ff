//! Decisions: what is due now, and the state transitions after the caller journals them.

use jiff::Timestamp;

use crate::schedule::{Overlap, Schedule, sub};

/// Per-schedule state, persisted by the caller (atomically with the decisions it applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleState {
    /// The last slot handled (fired, buffered, skipped or missed).
    pub last_slot: Option<Timestamp>,
    /// Runs started and not yet finished.
    pub running: u32,
    /// The slot kept by `Overlap::BufferOne`, fired when the running one finishes.
    pub buffered: Option<Timestamp>,
    /// Paused by an operator, with the reason shown on the status page.
    pub paused: Option<String>,
    /// Paused because a run failed and the schedule has `pause_on_failure`.
    pub failed_paused: bool,
}

impl ScheduleState {
    /// Pauses the schedule: due slots are skipped (`SkipReason::Paused`).
    pub fn pause(&mut self, reason: impl Into<String>) {
        self.paused = Some(reason.into());
    }

    /// Clears both an operator pause and a pause after failure.
    pub fn resume(&mut self) {
        self.paused = None;
        self.failed_paused = false;
    }

    pub fn is_paused(&self) -> bool {
        self.paused.is_some() || self.failed_paused
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A run was still going and the overlap policy skips (or one is already buffered).
    Overlap,
    /// The slot falls in a blackout.
    Blackout,
    /// The schedule is paused (by an operator or after a failure).
    Paused,
    /// An `at()` time outside the schedule's start/end.
    OutsideWindow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start a run for `slot`; `at` is the slot plus its jitter (when it became due).
    Fire {
        slot: Timestamp,
        at: Timestamp,
    },
    Skip {
        slot: Timestamp,
        reason: SkipReason,
    },
    /// Keep `slot` until the running run finishes (`Overlap::BufferOne`).
    Buffer {
        slot: Timestamp,
    },
    /// `count` slots from `first` to `last` that will never run: due slots older than the
    /// catch-up window, and due slots superseded by a later one (only the latest due slot
    /// can fire).
    Missed {
        first: Timestamp,
        last: Timestamp,
        count: u64,
    },
    /// Nothing more is due; poll again at `until` (`None`: the schedule has ended).
    Wait {
        until: Option<Timestamp>,
    },
}

/// The exclusive lower bound of the slots still to handle. A schedule with no history
/// starts fresh: only slots that could still fire are considered (an `at` is always
/// considered, so a one-time schedule that was never handled is reported).
fn lower_bound(s: &Schedule, st: &ScheduleState, now: Timestamp) -> Timestamp {
    if let Some(last) = st.last_slot {
        return last;
    }
    if s.expression.is_one_time() {
        return Timestamp::MIN;
    }
    sub(sub(now, s.catch_up), s.jitter.unwrap_or_default())
}

/// Everything due in `(last_slot, now]`.
///
/// After downtime, due slots whose due time is older than `now - catch_up` are missed,
/// and of the due slots at most one — the latest — gets a decision of its own (fire,
/// buffer or skip); all others are reported in one `Missed`. Never returns a slot
/// `<= last_slot`. The list always ends with a `Wait` for the next slot.
pub fn poll(s: &Schedule, st: &ScheduleState, now: Timestamp) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut slots = s.slots_after(lower_bound(s, st, now));
    let mut latest: Option<Timestamp> = None;
    let mut missed: Option<(Timestamp, Timestamp, u64)> = None;
    let mut pending = None;
    let fresh = st.last_slot.is_none() && !s.expression.is_one_time();
    let window_start = sub(now, s.catch_up);
    for slot in slots.by_ref() {
        // Slots are handled in order: the first not yet due holds back the rest.
        if slot > now || s.due(slot) > now {
            pending = Some(slot);
            break;
        }
        // A schedule with no history does not report slots from before it existed.
        if fresh && s.due(slot) < window_start {
            continue;
        }
        if let Some(prev) = latest.replace(slot) {
            note_missed(&mut missed, prev);
        }
    }
    if let Some(slot) = latest
        && s.due(slot) < window_start
    {
        note_missed(&mut missed, slot);
        latest = None;
    }
    if let Some((first, last, count)) = missed {
        out.push(Decision::Missed { first, last, count });
    }
    if let Some(slot) = latest {
        out.push(decide(s, st, slot));
    }
    out.push(Decision::Wait {
        until: pending.map(|p| s.due(p)),
    });
    out
}

fn note_missed(missed: &mut Option<(Timestamp, Timestamp, u64)>, slot: Timestamp) {
    match missed {
        Some((_, last, count)) => {
            *last = slot;
            *count += 1;
        }
        None => *missed = Some((slot, slot, 1)),
    }
}

fn decide(s: &Schedule, st: &ScheduleState, slot: Timestamp) -> Decision {
    let skip = |reason| Decision::Skip { slot, reason };
    if !s.in_window(slot) {
        return skip(SkipReason::OutsideWindow);
    }
    if st.is_paused() {
        return skip(SkipReason::Paused);
    }
    if s.in_blackout(slot) {
        return skip(SkipReason::Blackout);
    }
    if st.running > 0 {
        match s.overlap {
            Overlap::Skip => return skip(SkipReason::Overlap),
            Overlap::BufferOne if st.buffered.is_some() => return skip(SkipReason::Overlap),
            Overlap::BufferOne => return Decision::Buffer { slot },
            Overlap::Allow => {}
        }
    }
    Decision::Fire {
        slot,
        at: s.due(slot),
    }
}

/// The state transition for a decision the caller has journaled. `last_slot` only moves
/// forward, so applying a decision twice is harmless.
pub fn apply(st: &mut ScheduleState, d: &Decision) {
    let mut advance = |slot: Timestamp| {
        if st.last_slot.is_none_or(|l| slot > l) {
            st.last_slot = Some(slot);
        }
    };
    match d {
        Decision::Fire { slot, .. } => {
            advance(*slot);
            st.running += 1;
            if st.buffered == Some(*slot) {
                st.buffered = None;
            }
        }
        Decision::Skip { slot, .. } => {
            advance(*slot);
            if st.buffered == Some(*slot) {
                st.buffered = None;
            }
        }
        Decision::Buffer { slot } => {
            advance(*slot);
            st.buffered = Some(*slot);
        }
        Decision::Missed { last, .. } => advance(*last),
        Decision::Wait { .. } => {}
    }
}

/// A run finished. Pauses the schedule if it failed and `pause_on_failure` is set, and
/// returns what to do with a buffered slot once nothing runs: fire it, or skip it when
/// the schedule is paused. Apply the returned decision like any other.
pub fn on_finished(st: &mut ScheduleState, succeeded: bool, s: &Schedule) -> Option<Decision> {
    st.running = st.running.saturating_sub(1);
    if !succeeded && s.pause_on_failure {
        st.failed_paused = true;
    }
    let slot = st.buffered?;
    if st.running > 0 {
        return None;
    }
    Some(if st.is_paused() {
        Decision::Skip {
            slot,
            reason: SkipReason::Paused,
        }
    } else {
        Decision::Fire {
            slot,
            at: s.due(slot),
        }
    })
}

/// When to poll next: the due time of the first unhandled slot (`<= now` means poll
/// now), or `None` when the schedule has no more slots.
pub fn next_wakeup(s: &Schedule, st: &ScheduleState, now: Timestamp) -> Option<Timestamp> {
    s.slots_after(lower_bound(s, st, now))
        .next()
        .map(|slot| s.due(slot))
}

/// Upper bound on slots examined by [`next_fires`], so a schedule blacked out forever
/// still returns.
const MAX_SCAN: usize = 1_000_000;

/// The next `n` slots after `after` that would fire (blackouts and an `at` outside the
/// start/end window excluded; pause state is not considered), with their jittered times.
pub fn next_fires(s: &Schedule, after: Timestamp, n: usize) -> Vec<(Timestamp, Timestamp)> {
    s.slots_after(after)
        .take(MAX_SCAN)
        .filter(|slot| s.in_window(*slot) && !s.in_blackout(*slot))
        .take(n)
        .map(|slot| (slot, s.due(slot)))
        .collect()
}
