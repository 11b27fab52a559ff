//! Scheduler cost: one poll after a year of downtime of a per-minute cron (525,600
//! slots walked and counted into one Missed), the same for rate(1 minute), and the next
//! 1,000 fire times of a per-minute cron in a DST zone.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use runbook_scheduler::jiff::Timestamp;
use runbook_scheduler::{Decision, Schedule, ScheduleState, next_fires, poll};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn year_catch_up(c: &mut Criterion, expr: &str, label: &str, missed: u64) {
    let s = Schedule::parse("bench", expr, "Europe/Berlin").unwrap();
    let st = ScheduleState {
        last_slot: Some(ts("2025-12-04T12:00:00Z")),
        ..Default::default()
    };
    let now = ts("2026-12-04T12:00:30Z");
    // Sanity: the whole year is reported missed and the latest slot fires.
    let ds = poll(&s, &st, now);
    assert!(
        matches!(ds[0], Decision::Missed { count, .. } if count == missed),
        "{ds:?}"
    );
    assert!(matches!(ds[1], Decision::Fire { .. }));
    c.bench_function(label, |b| {
        b.iter(|| poll(black_box(&s), black_box(&st), black_box(now)))
    });
}

fn benches(c: &mut Criterion) {
    // 365 days of minutes, less the one that fires; the cron also loses the 60 wall-clock
    // minutes of Berlin's spring-forward gap, while rate() is absolute.
    year_catch_up(
        c,
        "cron(* * * * ? *)",
        "poll_year_per_minute_cron",
        525_600 - 60 - 1,
    );
    year_catch_up(
        c,
        "rate(1 minute)",
        "poll_year_per_minute_rate",
        525_600 - 1,
    );
    let s = Schedule::parse("bench", "cron(* * * * ? *)", "America/New_York").unwrap();
    let after = ts("2026-03-08T06:00:00Z");
    assert_eq!(next_fires(&s, after, 1000).len(), 1000);
    c.bench_function("next_fires_1000_per_minute_cron", |b| {
        b.iter(|| next_fires(black_box(&s), black_box(after), 1000))
    });
    let daily = Schedule::parse("bench", "cron(0 2 ? * MON-FRI *)", "America/New_York").unwrap();
    c.bench_function("next_fires_1000_weekday_cron", |b| {
        b.iter(|| next_fires(black_box(&daily), black_box(after), 1000))
    });
}

criterion_group! {
    name = group;
    // A year of catch-up takes long per iteration: few samples keep the run short.
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(group);
