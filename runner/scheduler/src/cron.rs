//! EventBridge cron fields, validated here (for offsets and EventBridge's rules) and
//! translated to a pattern that `croner` matches on wall-clock date-times.
//!
//! Translation keeps croner to its least ambiguous syntax: plain numbers are expanded to
//! explicit lists (so steps, wrap-around ranges like `22-2` and Quartz's 1-7 weekdays
//! never depend on croner's own step or weekday conventions); only `*`, `L`, `LW`, `nW`,
//! `nL` and `n#k` reach croner as specials.

use std::cmp::Ordering;
use std::fmt;

use croner::parser::{CronParser, Seconds, Year};
use croner::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
use jiff::SignedDuration;
use jiff::civil::DateTime;

use crate::error::ExprError;

/// A parsed `cron(min hour dom month dow year)` expression (EventBridge semantics).
#[derive(Debug, Clone)]
pub struct CronExpr {
    /// The six fields as written, joined by single spaces (for display).
    fields: String,
    // Boxed: croner's pattern is large and expressions are moved around in enums.
    cron: Box<croner::Cron>,
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}
impl Eq for CronExpr {}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron({})", self.fields)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Minute,
    Hour,
    Dom,
    Month,
    Dow,
    Year,
}

struct FieldSpec {
    kind: Kind,
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const SPECS: [FieldSpec; 6] = [
    FieldSpec {
        kind: Kind::Minute,
        name: "minutes",
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        kind: Kind::Hour,
        name: "hours",
        min: 0,
        max: 23,
        names: &[],
    },
    FieldSpec {
        kind: Kind::Dom,
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    FieldSpec {
        kind: Kind::Month,
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    FieldSpec {
        kind: Kind::Dow,
        name: "day-of-week",
        min: 1,
        max: 7,
        names: DAYS,
    },
    FieldSpec {
        kind: Kind::Year,
        name: "year",
        min: 1970,
        max: 2199,
        names: &[],
    },
];

impl CronExpr {
    /// Parses the text between `cron(` and `)`; `base` is that text's byte offset in the
    /// whole input so errors point into what the user wrote.
    pub(crate) fn parse_fields(text: &str, base: usize) -> Result<Self, ExprError> {
        let fields = split_fields(text, base);
        if fields.len() != 6 {
            let at = fields.get(6).map_or(base + text.len(), |f| f.0);
            return Err(ExprError::new(
                at,
                format!(
                    "cron needs 6 fields (minutes hours day-of-month month day-of-week year), found {}",
                    fields.len()
                ),
            ));
        }
        let dom_any = fields[2].1 == "?";
        let dow_any = fields[4].1 == "?";
        if dom_any == dow_any {
            let at = fields[2].0;
            let message = if dom_any {
                "day-of-month and day-of-week cannot both be '?'; give one of them a value"
            } else {
                "one of day-of-month and day-of-week must be '?' (EventBridge cannot combine them)"
            };
            return Err(ExprError::new(at, message));
        }
        let mut out = Vec::with_capacity(6);
        for (spec, (offset, field)) in SPECS.iter().zip(&fields) {
            out.push(translate_field(spec, field, *offset)?);
        }
        let pattern = format!("0 {}", out.join(" "));
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Required)
            .build()
            .parse(&pattern)
            .map_err(|e| ExprError::new(base, format!("cron pattern rejected: {e}")))?;
        let fields = fields.iter().map(|f| f.1).collect::<Vec<_>>().join(" ");
        Ok(Self {
            fields,
            cron: Box::new(cron),
        })
    }

    /// The first matching wall-clock time strictly after `after`.
    pub(crate) fn next_after(&self, after: DateTime) -> Option<DateTime> {
        self.cron
            .find_next_occurrence(&Wall(after), false)
            .ok()
            .map(|w| w.0)
    }

    /// The last matching wall-clock time at or before `at`.
    pub(crate) fn prev_at_or_before(&self, at: DateTime) -> Option<DateTime> {
        self.cron
            .find_previous_occurrence(&Wall(at), true)
            .ok()
            .map(|w| w.0)
    }
}

/// Splits on ASCII whitespace, keeping each field's byte offset.
fn split_fields(text: &str, base: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, ch) in text.char_indices() {
        if ch.is_ascii_whitespace() {
            if let Some(s) = start.take() {
                out.push((base + s, &text[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((base + s, &text[s..]));
    }
    out
}

fn translate_field(spec: &FieldSpec, field: &str, offset: usize) -> Result<String, ExprError> {
    if field == "?" {
        // Only day-of-month / day-of-week may be '?'; the other one then decides alone,
        // which croner does when this one is '*'.
        return match spec.kind {
            Kind::Dom | Kind::Dow => Ok("*".into()),
            _ => Err(ExprError::new(
                offset,
                format!(
                    "'?' is only allowed in day-of-month or day-of-week, not in {}",
                    spec.name
                ),
            )),
        };
    }
    let items: Vec<(usize, &str)> = {
        let mut v = Vec::new();
        let mut pos = 0;
        for part in field.split(',') {
            v.push((offset + pos, part));
            pos += part.len() + 1;
        }
        v
    };
    if spec.kind == Kind::Dow && items.len() > 1 && field.contains('#') {
        return Err(ExprError::new(
            offset + field.find('#').unwrap_or(0),
            "with '#' the day-of-week field may hold only one expression (no commas)",
        ));
    }
    let mut values: Vec<u32> = Vec::new();
    let mut specials: Vec<String> = Vec::new();
    for (at, item) in items {
        if item.is_empty() {
            return Err(ExprError::new(
                at,
                format!("empty item in {} field", spec.name),
            ));
        }
        if item == "*" {
            return if field == "*" {
                Ok("*".into())
            } else {
                Err(ExprError::new(
                    at,
                    "'*' cannot be combined with other items; use it alone",
                ))
            };
        }
        if item == "?" {
            return Err(ExprError::new(at, "'?' must stand alone in its field"));
        }
        if let Some(special) = special_item(spec, item, at)? {
            specials.push(special);
            continue;
        }
        values.extend(range_item(spec, item, at)?);
    }
    values.sort_unstable();
    values.dedup();
    let mut parts: Vec<String> = values
        .into_iter()
        // croner's weekdays are 0-6 from Sunday; EventBridge's are 1-7 from Sunday.
        .map(|v| if spec.kind == Kind::Dow { v - 1 } else { v }.to_string())
        .collect();
    parts.extend(specials);
    Ok(parts.join(","))
}

/// `L`, `LW`, `nW` (day-of-month) and `L`, `nL`, `n#k` (day-of-week).
fn special_item(spec: &FieldSpec, item: &str, at: usize) -> Result<Option<String>, ExprError> {
    let upper = item.to_ascii_uppercase();
    match spec.kind {
        Kind::Dom => {
            if upper == "L" || upper == "LW" {
                return Ok(Some(upper));
            }
            if let Some(day) = upper.strip_suffix('W') {
                let d = value(spec, day, at)?;
                return Ok(Some(format!("{d}W")));
            }
            if upper.contains('L') {
                return Err(ExprError::new(
                    at + upper.find('L').unwrap_or(0),
                    "in day-of-month 'L' stands alone (last day) or as 'LW' (last weekday)",
                ));
            }
            Ok(None)
        }
        Kind::Dow => {
            if upper == "L" {
                // Quartz/EventBridge: a bare 'L' is the last day of the week, Saturday.
                return Ok(Some("6".into()));
            }
            if let Some(day) = upper.strip_suffix('L') {
                let d = value(spec, day, at)?;
                return Ok(Some(format!("{}L", d - 1)));
            }
            if let Some((day, nth)) = upper.split_once('#') {
                let d = value(spec, day, at)?;
                let nth_at = at + day.len() + 1;
                let n: u32 = nth
                    .parse()
                    .map_err(|_| ExprError::new(nth_at, "expected a week number 1-5 after '#'"))?;
                if !(1..=5).contains(&n) {
                    return Err(ExprError::new(
                        nth_at,
                        format!("week number {n} is out of range 1-5"),
                    ));
                }
                return Ok(Some(format!("{}#{n}", d - 1)));
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// `v`, `a-b`, `*/s`, `v/s`, `a-b/s`; ranges may wrap (`22-2`, `FRI-MON`) except years.
fn range_item(spec: &FieldSpec, item: &str, at: usize) -> Result<Vec<u32>, ExprError> {
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => {
            let step_at = at + r.len() + 1;
            let step: u32 = s.parse().map_err(|_| {
                ExprError::new(
                    step_at,
                    format!("expected a step number after '/', found {s:?}"),
                )
            })?;
            if step == 0 || step > spec.max - spec.min + 1 {
                return Err(ExprError::new(
                    step_at,
                    format!(
                        "step {step} is out of range 1-{} for {}",
                        spec.max - spec.min + 1,
                        spec.name
                    ),
                ));
            }
            (r, Some(step))
        }
        None => (item, None),
    };
    let (lo, hi) = if range == "*" {
        (spec.min, spec.max)
    } else if let Some((a, b)) = range.split_once('-') {
        let lo = value(spec, a, at)?;
        let hi = value(spec, b, at + a.len() + 1)?;
        (lo, hi)
    } else {
        let v = value(spec, range, at)?;
        // `v/s` runs from v to the end of the field (EventBridge `0/15`).
        (v, if step.is_some() { spec.max } else { v })
    };
    if lo > hi && spec.kind == Kind::Year {
        return Err(ExprError::new(
            at,
            format!("year range {lo}-{hi} runs backwards"),
        ));
    }
    let span = spec.max - spec.min + 1;
    let len = if lo <= hi {
        hi - lo + 1
    } else {
        span - (lo - hi) + 1
    };
    let step = step.unwrap_or(1);
    Ok((0..len)
        .step_by(step as usize)
        .map(|k| spec.min + (lo - spec.min + k) % span)
        .collect())
}

fn value(spec: &FieldSpec, text: &str, at: usize) -> Result<u32, ExprError> {
    if text.is_empty() {
        return Err(ExprError::new(
            at,
            format!("expected a {} value", spec.name),
        ));
    }
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(spec.min + i as u32);
    }
    let v: u32 = text.parse().map_err(|_| {
        let hint = if spec.names.is_empty() {
            String::new()
        } else {
            format!(
                " or a name {}-{}",
                spec.names[0],
                spec.names[spec.names.len() - 1]
            )
        };
        ExprError::new(
            at,
            format!("expected a {} number{hint}, found {text:?}", spec.name),
        )
    })?;
    if v < spec.min || v > spec.max {
        return Err(ExprError::new(
            at,
            format!(
                "{} {v} is out of range {}-{}",
                spec.name, spec.min, spec.max
            ),
        ));
    }
    Ok(v)
}

/// A wall-clock date-time without a zone, so croner matches fields on local time and
/// the scheduler applies its own DST rules when mapping matches to instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wall(DateTime);

impl CronDateTime for Wall {
    fn to_civil(&self) -> CivilDateTime {
        let d = self.0;
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(i32::from(d.year()), d.month() as u32, d.day() as u32),
            CivilTime::from_parts_unchecked(d.hour() as u32, d.minute() as u32, d.second() as u32),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(self.0.weekday().to_sunday_zero_offset() as u32)
    }

    fn resolve_civil(
        &self,
        c: CivilDateTime,
    ) -> Result<Resolution<Self>, croner::errors::CronError> {
        let year = i16::try_from(c.year()).map_err(|_| croner::errors::CronError::InvalidDate)?;
        DateTime::new(
            year,
            c.month() as i8,
            c.day() as i8,
            c.hour() as i8,
            c.minute() as i8,
            c.second() as i8,
            0,
        )
        .map(|d| Resolution::Single(Wall(d)))
        .map_err(|_| croner::errors::CronError::InvalidDate)
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()
            .map(Wall)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}
