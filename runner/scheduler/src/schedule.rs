//! The schedule model and its slot sequence (the nominal instants a schedule names).

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::cron::CronExpr;
use crate::error::{ExprError, ScheduleError};
use crate::expr::{Expression, parse_duration};

/// What to do with a slot that comes due while an earlier run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Skip the new slot (reported as `Skip { reason: Overlap }`).
    #[default]
    Skip,
    /// Keep one slot and fire it when the running one finishes; further slots while one
    /// is buffered are skipped.
    BufferOne,
    /// Start the new run alongside.
    Allow,
}

/// A period in which slots are skipped (`Skip { reason: Blackout }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blackout {
    /// `[start, end)` on the absolute time line (written as local times in the
    /// schedule's zone, see [`Blackout::parse`]).
    Window { start: Timestamp, end: Timestamp },
    /// Starts at every match of `cron` (wall clock) and lasts `duration` of wall-clock
    /// time, e.g. every Friday 22:00 for 60h.
    Recurring { cron: CronExpr, duration: Duration },
}

impl Blackout {
    /// Parses `yyyy-mm-ddThh:mm[:ss]..yyyy-mm-ddThh:mm[:ss]` (local in `tz`) or
    /// `cron(...) for <duration>`.
    pub fn parse(text: &str, tz: &TimeZone) -> Result<Blackout, ExprError> {
        let lead = text.len() - text.trim_start().len();
        let t = text.trim();
        if t.starts_with("cron(") {
            let Some(close) = t.find(')') else {
                return Err(ExprError::new(
                    lead + t.len(),
                    "expected ')' to close cron(",
                ));
            };
            let cron = match Expression::parse(&t[..=close])
                .map_err(|e| ExprError::new(lead + e.offset, e.message))?
            {
                Expression::Cron(c) => c,
                _ => unreachable!("starts with cron("),
            };
            let rest = &t[close + 1..];
            let Some(dur) = rest.trim_start().strip_prefix("for ") else {
                return Err(ExprError::new(
                    lead + close + 1,
                    "expected ' for <duration>' after the cron expression, as in 'cron(0 22 ? * FRI *) for 60h'",
                ));
            };
            let dur_at = lead + t.len() - dur.len();
            let duration =
                parse_duration(dur).map_err(|e| ExprError::new(dur_at + e.offset, e.message))?;
            if duration.is_zero() {
                return Err(ExprError::new(dur_at, "blackout duration must be positive"));
            }
            return Ok(Blackout::Recurring { cron, duration });
        }
        let Some(sep) = t.find("..") else {
            return Err(ExprError::new(
                lead,
                "expected 'start..end' local times or 'cron(...) for <duration>'",
            ));
        };
        let start = local_instant(&t[..sep], tz, lead)?;
        let end = local_instant(&t[sep + 2..], tz, lead + sep + 2)?;
        if end <= start {
            return Err(ExprError::new(
                lead + sep + 2,
                "blackout end must be after its start",
            ));
        }
        Ok(Blackout::Window { start, end })
    }

    pub(crate) fn contains(&self, tz: &TimeZone, t: Timestamp) -> bool {
        match self {
            Blackout::Window { start, end } => *start <= t && t < *end,
            Blackout::Recurring { cron, duration } => {
                let wall = tz.to_datetime(t);
                // Every window has the same length, so the latest start decides.
                let Some(began) = cron.prev_at_or_before(wall) else {
                    return false;
                };
                let Ok(d) = SignedDuration::try_from(*duration) else {
                    return true;
                };
                began.checked_add(d).is_ok_and(|ends| wall < ends)
            }
        }
    }
}

/// Parses a local `yyyy-mm-ddThh:mm[:ss]` in `tz` (earlier instant in a fold; a time in
/// a gap is an error since it names no instant).
fn local_instant(text: &str, tz: &TimeZone, base: usize) -> Result<Timestamp, ExprError> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    let dt: DateTime = t.parse().map_err(|e| {
        ExprError::new(
            base + lead,
            format!("expected a local date-time yyyy-mm-ddThh:mm: {e}"),
        )
    })?;
    resolve(tz, dt).ok_or_else(|| {
        ExprError::new(
            base + lead,
            format!("{t} does not exist in this time zone (daylight-saving gap)"),
        )
    })
}

/// Maps a wall-clock time to its instant under the crate's DST rules: a time in a
/// spring-forward gap has none (`None`: skipped), a repeated fall-back time is its first
/// (earlier) occurrence.
pub(crate) fn resolve(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    let amb = tz.to_ambiguous_timestamp(dt);
    match amb.offset() {
        AmbiguousOffset::Gap { .. } => None,
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => amb.earlier().ok(),
    }
}

/// One scheduled runbook.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub expression: Expression,
    /// IANA zone (its name, from [`TimeZone::iana_name`], is shown in tables).
    pub timezone: TimeZone,
    /// Deterministic delay per slot in `[0, jitter)`, from a hash of (name, slot).
    /// Keep it shorter than the period: slots are handled in order.
    pub jitter: Option<Duration>,
    pub overlap: Overlap,
    /// How late a slot may still fire after downtime; older slots are reported missed.
    pub catch_up: Duration,
    /// A failed run pauses the schedule until it is resumed.
    pub pause_on_failure: bool,
    /// No slot before this instant.
    pub start: Option<Timestamp>,
    /// No slot after this instant.
    pub end: Option<Timestamp>,
    pub blackouts: Vec<Blackout>,
}

/// Default catch-up window: 15 minutes.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(15 * 60);

impl Schedule {
    /// A schedule with the defaults: no jitter, overlap skip, 15 min catch-up.
    pub fn new(name: impl Into<String>, expression: Expression, timezone: TimeZone) -> Self {
        Schedule {
            name: name.into(),
            expression,
            timezone,
            jitter: None,
            overlap: Overlap::Skip,
            catch_up: DEFAULT_CATCH_UP,
            pause_on_failure: false,
            start: None,
            end: None,
            blackouts: Vec::new(),
        }
    }

    /// Parses the expression and looks up the IANA zone by name.
    pub fn parse(name: &str, expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let expr = Expression::parse(expression).map_err(|source| ScheduleError::Expression {
            schedule: name.into(),
            text: expression.into(),
            source,
        })?;
        let tz = TimeZone::get(timezone).map_err(|_| ScheduleError::TimeZone {
            schedule: name.into(),
            name: timezone.into(),
        })?;
        Ok(Schedule::new(name, expr, tz))
    }

    /// The zone's IANA name, or its offset for a fixed zone.
    pub fn timezone_name(&self) -> String {
        match self.timezone.iana_name() {
            Some(n) => n.to_string(),
            None => self.timezone.to_offset(Timestamp::UNIX_EPOCH).to_string(),
        }
    }

    /// The deterministic jitter of `slot`: a hash of (name, slot) reduced into
    /// `[0, jitter)` at millisecond resolution. Stable across processes and versions.
    pub fn jitter_of(&self, slot: Timestamp) -> Duration {
        let Some(j) = self.jitter else {
            return Duration::ZERO;
        };
        let range = j.as_millis() as u64;
        if range == 0 {
            return Duration::ZERO;
        }
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update([0]);
        h.update(slot.as_nanosecond().to_le_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Duration::from_millis(u64::from_le_bytes(first) % range)
    }

    /// When `slot` is due: the slot plus its jitter.
    pub fn due(&self, slot: Timestamp) -> Timestamp {
        add(slot, self.jitter_of(slot))
    }

    pub(crate) fn in_blackout(&self, slot: Timestamp) -> bool {
        self.blackouts
            .iter()
            .any(|b| b.contains(&self.timezone, slot))
    }

    pub(crate) fn in_window(&self, slot: Timestamp) -> bool {
        self.start.is_none_or(|s| slot >= s) && self.end.is_none_or(|e| slot <= e)
    }

    /// The slots strictly after `after`, in order. Cron and rate slots are limited to
    /// `[start, end]`; an `at` slot is yielded even outside it (poll reports it skipped).
    pub fn slots_after(&self, after: Timestamp) -> Slots<'_> {
        let after = match (&self.expression, self.start) {
            (Expression::At(_), _) | (_, None) => after,
            (_, Some(start)) => after.max(sub_nano(start)),
        };
        let state = match &self.expression {
            Expression::Cron(_) => State::Cron {
                wall: self.timezone.to_datetime(after),
            },
            Expression::Rate(_) => State::Rate,
            Expression::At(_) => State::At { done: false },
        };
        Slots {
            s: self,
            after,
            state,
        }
    }
}

pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

pub(crate) fn sub(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

fn sub_nano(t: Timestamp) -> Timestamp {
    t.checked_sub(SignedDuration::from_nanos(1))
        .unwrap_or(Timestamp::MIN)
}

enum State {
    Cron { wall: DateTime },
    Rate,
    At { done: bool },
}

/// Iterator over a schedule's slots; see [`Schedule::slots_after`].
pub struct Slots<'a> {
    s: &'a Schedule,
    after: Timestamp,
    state: State,
}

impl Iterator for Slots<'_> {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        let s = self.s;
        let next = match (&mut self.state, &s.expression) {
            (State::Cron { wall }, Expression::Cron(cron)) => loop {
                *wall = cron.next_after(*wall)?;
                // Gap: no instant, the slot is skipped. Fold: the earlier instant, so the
                // wall time's second occurrence is never a new slot (it is <= after).
                if let Some(t) = resolve(&s.timezone, *wall)
                    && t > self.after
                {
                    break t;
                }
            },
            (State::Rate, Expression::Rate(rate)) => {
                let anchor = s.start.unwrap_or(Timestamp::UNIX_EPOCH).as_nanosecond();
                let period = rate.period().as_nanos() as i128;
                let after = self.after.as_nanosecond();
                let k = if after < anchor {
                    0
                } else {
                    (after - anchor) / period + 1
                };
                Timestamp::from_nanosecond(anchor + k * period).ok()?
            }
            (State::At { done }, Expression::At(dt)) => {
                if *done {
                    return None;
                }
                *done = true;
                let t = resolve(&s.timezone, *dt)?;
                if t <= self.after {
                    return None;
                }
                return Some(t);
            }
            _ => unreachable!("slot state follows the expression"),
        };
        if s.end.is_some_and(|e| next > e) {
            return None;
        }
        self.after = next;
        Some(next)
    }
}
