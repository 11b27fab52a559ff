//! The pure scheduling core of `runbook serve`.
//!
//! No I/O and no clock reads: every function takes `now`. The caller (the serve loop)
//! persists [`ScheduleState`] and journals each [`Decision`] before [`apply`]ing it.
//!
//! # Expressions (EventBridge Scheduler compatible)
//!
//! - `cron(minutes hours day-of-month month day-of-week year)`: six fields; day-of-week
//!   1-7 = SUN-SAT or names; exactly one of day-of-month / day-of-week is `?`; `L`, `LW`,
//!   `nW` in day-of-month; `L` (Saturday), `nL` (last n-day), `n#k` (k-th n-day) in
//!   day-of-week; years 1970-2199 or `*`; `a/s` steps; wrapping ranges such as `22-2`.
//!   Matching is delegated to the `croner` crate on wall-clock date-times.
//! - `rate(N minute|minutes|hour|hours|day|days)`: singular only for 1 (`rate(1 hour)`),
//!   plural otherwise. Slots are `start + k·period` (the Unix epoch when there is no
//!   start), so a restart never shifts them.
//! - `at(yyyy-mm-ddThh:mm:ss)`: once, local in the schedule's time zone.
//!
//! Parse errors are [`ExprError`]s with the byte offset of the offending text.
//!
//! # Daylight-saving time
//!
//! cron and at() are wall-clock schedules evaluated in the schedule's IANA zone
//! (`jiff`, with the tz database bundled as a fallback for hosts without one):
//!
//! - **Spring forward: a wall-clock time in the gap is skipped.** `cron(30 2 * * ? *)` in
//!   America/New_York does not run on the day clocks jump from 02:00 to 03:00; it is not
//!   moved to 03:00. Every-N-minutes crons lose the slots inside the gap too.
//! - **Fall back: a repeated wall-clock time runs once, at its first occurrence.**
//!   `cron(30 1 * * ? *)` runs at 01:30 daylight time, not again at 01:30 standard time;
//!   a `*/15` cron runs 01:00-01:45 once, then 02:00 standard time.
//! - **rate() is absolute**: `rate(1 hour)` is 3600 s apart across any transition.
//! - An at() inside a gap names no instant and never fires; inside a fold it is the
//!   first occurrence.
//!
//! These are EventBridge Scheduler's documented rules.
//!
//! # Firing
//!
//! [`poll`] returns what is due in `(last_slot, now]`: a slot is due at slot + jitter.
//! After downtime, due slots older than `catch_up` are reported as one
//! [`Decision::Missed`], and at most one slot (the latest) fires; a slot `<= last_slot` is
//! never returned again, so with `last_slot` persisted atomically with each fire, no
//! slot fires twice. Overlap, blackouts, pauses and the start/end window turn the
//! latest slot into a [`Decision::Skip`] or [`Decision::Buffer`].

mod cron;
mod error;
mod expr;
mod poll;
mod schedule;
mod table;

pub use cron::CronExpr;
pub use error::{ExprError, ScheduleError};
pub use expr::{Expression, Rate, RateUnit, parse_duration};
pub use poll::{
    Decision, ScheduleState, SkipReason, apply, next_fires, next_wakeup, on_finished, poll,
};
pub use schedule::{Blackout, DEFAULT_CATCH_UP, Overlap, Schedule, Slots};
pub use table::upcoming_table;

pub use jiff;
