//! Schedule expressions: `cron(...)`, `rate(...)`, `at(...)` as EventBridge Scheduler
//! writes them, and `parse_duration` for the durations around them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::civil::DateTime;

use crate::cron::CronExpr;
use crate::error::ExprError;

/// A schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// `cron(min hour dom month dow year)`, evaluated on the schedule's wall clock.
    Cron(CronExpr),
    /// `rate(N unit)`: a fixed absolute period (DST does not stretch or shrink it).
    Rate(Rate),
    /// `at(yyyy-mm-ddThh:mm:ss)`: once, at that wall-clock time in the schedule's zone.
    At(DateTime),
}

/// `rate(value unit)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub value: u64,
    pub unit: RateUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Minutes,
    Hours,
    Days,
}

impl Rate {
    /// The period as an absolute duration.
    pub fn period(&self) -> Duration {
        let unit = match self.unit {
            RateUnit::Minutes => 60,
            RateUnit::Hours => 3_600,
            RateUnit::Days => 86_400,
        };
        Duration::from_secs(self.value * unit)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            RateUnit::Minutes => "minute",
            RateUnit::Hours => "hour",
            RateUnit::Days => "day",
        };
        let plural = if self.value == 1 { "" } else { "s" };
        write!(f, "rate({} {unit}{plural})", self.value)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expression::Cron(c) => c.fmt(f),
            Expression::Rate(r) => r.fmt(f),
            Expression::At(dt) => write!(f, "at({})", dt.strftime("%Y-%m-%dT%H:%M:%S")),
        }
    }
}

impl FromStr for Expression {
    type Err = ExprError;
    fn from_str(s: &str) -> Result<Self, ExprError> {
        Expression::parse(s)
    }
}

/// Longest accepted rate: keeps period arithmetic far from overflow (about 27 years).
const MAX_RATE_SECONDS: u64 = 10_000 * 86_400;

impl Expression {
    /// Parses an EventBridge Scheduler expression. Errors carry the byte offset of the
    /// offending text.
    pub fn parse(input: &str) -> Result<Expression, ExprError> {
        let start = input.len() - input.trim_start().len();
        let trimmed = input.trim_end();
        let Some(open_rel) = trimmed[start..].find('(') else {
            return Err(ExprError::new(
                start,
                "expected cron(...), rate(...) or at(...)",
            ));
        };
        let open = start + open_rel;
        let keyword = &trimmed[start..open];
        if !trimmed.ends_with(')') {
            return Err(ExprError::new(
                trimmed.len(),
                "expected ')' to close the expression",
            ));
        }
        let close = trimmed.len() - 1;
        let body = &trimmed[open + 1..close];
        if let Some(extra) = body.find(['(', ')']) {
            return Err(ExprError::new(open + 1 + extra, "unexpected parenthesis"));
        }
        match keyword {
            "cron" => CronExpr::parse_fields(body, open + 1).map(Expression::Cron),
            "rate" => parse_rate(body, open + 1).map(Expression::Rate),
            "at" => parse_at(body, open + 1).map(Expression::At),
            other => Err(ExprError::new(
                start,
                format!("unknown schedule type {other:?}; expected cron, rate or at"),
            )),
        }
    }

    /// Whether the expression recurs (cron, rate) or fires once (at).
    pub fn is_one_time(&self) -> bool {
        matches!(self, Expression::At(_))
    }
}

fn parse_rate(body: &str, base: usize) -> Result<Rate, ExprError> {
    let lead = body.len() - body.trim_start().len();
    let rest = body.trim_start();
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let value_at = base + lead;
    if digits == 0 {
        return Err(ExprError::new(
            value_at,
            "expected a positive whole number, as in rate(5 minutes)",
        ));
    }
    let value: u64 = rest[..digits]
        .parse()
        .map_err(|_| ExprError::new(value_at, "rate value is too large"))?;
    if value == 0 {
        return Err(ExprError::new(value_at, "rate value must be positive"));
    }
    let after = &rest[digits..];
    let gap = after.len() - after.trim_start().len();
    let unit_at = value_at + digits + gap;
    if gap == 0 {
        return Err(ExprError::new(
            unit_at,
            "expected a space between the value and the unit",
        ));
    }
    let unit_text = after.trim();
    let (unit, plural) = match unit_text {
        "minute" => (RateUnit::Minutes, false),
        "minutes" => (RateUnit::Minutes, true),
        "hour" => (RateUnit::Hours, false),
        "hours" => (RateUnit::Hours, true),
        "day" => (RateUnit::Days, false),
        "days" => (RateUnit::Days, true),
        "" => {
            return Err(ExprError::new(
                unit_at,
                "expected a unit: minutes, hours or days",
            ));
        }
        other => {
            return Err(ExprError::new(
                unit_at,
                format!("unknown unit {other:?}; expected minute(s), hour(s) or day(s)"),
            ));
        }
    };
    // EventBridge: rate(1 minute) but rate(5 minutes); the other spelling is rejected.
    if (value == 1) == plural {
        let want = if value == 1 { "singular" } else { "plural" };
        let singular = unit_text.trim_end_matches('s');
        let fix = if value == 1 {
            singular.to_string()
        } else {
            format!("{singular}s")
        };
        return Err(ExprError::new(
            unit_at,
            format!("a rate of {value} takes the {want} unit: rate({value} {fix})"),
        ));
    }
    let rate = Rate { value, unit };
    if rate.period().as_secs() > MAX_RATE_SECONDS {
        return Err(ExprError::new(value_at, "rate is longer than 10000 days"));
    }
    Ok(rate)
}

fn parse_at(body: &str, base: usize) -> Result<DateTime, ExprError> {
    // Strict yyyy-mm-ddThh:mm:ss: EventBridge takes exactly this (no offset, no fraction).
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    let bytes = body.as_bytes();
    for (i, want) in SHAPE.iter().enumerate() {
        let Some(&got) = bytes.get(i) else {
            return Err(ExprError::new(
                base + body.len(),
                "expected yyyy-mm-ddThh:mm:ss",
            ));
        };
        let ok = if *want == b'd' {
            got.is_ascii_digit()
        } else {
            got == *want
        };
        if !ok {
            let what = if *want == b'd' {
                "a digit".to_string()
            } else {
                format!("'{}'", *want as char)
            };
            return Err(ExprError::new(
                base + i,
                format!("expected {what} (format yyyy-mm-ddThh:mm:ss)"),
            ));
        }
    }
    if bytes.len() > SHAPE.len() {
        return Err(ExprError::new(
            base + SHAPE.len(),
            "unexpected text after the seconds (no fractions or offsets; the time zone is the schedule's)",
        ));
    }
    let num = |from: usize, to: usize| body[from..to].parse::<i64>().unwrap_or(0);
    let check = |v: i64, lo: i64, hi: i64, at: usize, what: &str| {
        if v < lo || v > hi {
            Err(ExprError::new(
                base + at,
                format!("{what} {v} is out of range {lo}-{hi}"),
            ))
        } else {
            Ok(v)
        }
    };
    let year = check(num(0, 4), 1970, 2199, 0, "year")?;
    let month = check(num(5, 7), 1, 12, 5, "month")?;
    let day = num(8, 10);
    let hour = check(num(11, 13), 0, 23, 11, "hour")?;
    let minute = check(num(14, 16), 0, 59, 14, "minute")?;
    let second = check(num(17, 19), 0, 59, 17, "second")?;
    let date = jiff::civil::Date::new(year as i16, month as i8, day as i8).map_err(|_| {
        ExprError::new(
            base + 8,
            format!("day {day} does not exist in {year:04}-{month:02}"),
        )
    })?;
    Ok(date.at(hour as i8, minute as i8, second as i8, 0))
}

/// Parses a duration such as `15m`, `1h30m`, `90s`, `2d` (units d, h, m, s, each at
/// most once, largest first).
pub fn parse_duration(text: &str) -> Result<Duration, ExprError> {
    let t = text.trim();
    let base = text.len() - text.trim_start().len();
    if t.is_empty() {
        return Err(ExprError::new(
            base,
            "expected a duration such as 15m, 1h30m, 90s or 2d",
        ));
    }
    let mut total: u64 = 0;
    let mut last_rank = usize::MAX;
    let mut i = 0;
    let bytes = t.as_bytes();
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(ExprError::new(base + i, "expected a number"));
        }
        let n: u64 = t[start..i]
            .parse()
            .map_err(|_| ExprError::new(base + start, "number is too large"))?;
        let Some(&u) = bytes.get(i) else {
            return Err(ExprError::new(
                base + i,
                "expected a unit after the number: d, h, m or s",
            ));
        };
        let (rank, secs) = match u {
            b'd' => (3, 86_400),
            b'h' => (2, 3_600),
            b'm' => (1, 60),
            b's' => (0, 1),
            _ => {
                return Err(ExprError::new(
                    base + i,
                    format!("unknown unit {:?}; expected d, h, m or s", u as char),
                ));
            }
        };
        if rank >= last_rank {
            return Err(ExprError::new(
                base + i,
                "units must go from largest to smallest, each once (as in 1h30m)",
            ));
        }
        last_rank = rank;
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| ExprError::new(base + start, "duration is too large"))?;
        i += 1;
    }
    Ok(Duration::from_secs(total))
}
