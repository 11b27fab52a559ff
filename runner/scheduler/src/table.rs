//! The human table of upcoming fire times (`runbook schedules serve.yaml`).

use std::fmt::Write as _;

use jiff::Timestamp;

use crate::poll::next_fires;
use crate::schedule::Schedule;

/// One row per fire time: name, expression and zone on the first row of each schedule,
/// then the next `n` fire times in the schedule's zone with their UTC offsets (and the
/// jitter, when the schedule has one).
pub fn upcoming_table(schedules: &[Schedule], now: Timestamp, n: usize) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    for s in schedules {
        let fires = next_fires(s, now, n);
        let head = [s.name.clone(), s.expression.to_string(), s.timezone_name()];
        if fires.is_empty() {
            let [a, b, c] = head;
            rows.push([a, b, c, "(no further fire times)".into()]);
            continue;
        }
        for (i, (slot, at)) in fires.into_iter().enumerate() {
            let when = at
                .to_zoned_datetime(s.timezone.clone())
                .strftime("%Y-%m-%d %a %H:%M:%S %:z")
                .to_string();
            let jitter = at.duration_since(slot);
            let when = if jitter.is_zero() {
                when
            } else {
                format!("{when} (+{}s jitter)", jitter.as_secs())
            };
            let [a, b, c] = if i == 0 {
                head.clone()
            } else {
                Default::default()
            };
            rows.push([a, b, c, when]);
        }
    }
    let header = ["NAME", "EXPRESSION", "TIME ZONE", "NEXT FIRES"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 4]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 3 {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3]]);
    }
    out
}
