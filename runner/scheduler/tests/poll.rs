//! Firing decisions: catch-up, never twice, overlap, blackouts, windows, pauses, jitter,
//! one-time schedules and the upcoming table.

mod common;

use std::time::Duration;

use common::{sched, simulate, ts};
use runbook_scheduler::jiff::{SignedDuration, Timestamp};
use runbook_scheduler::{
    Blackout, Decision, Overlap, ScheduleState, SkipReason, apply, next_fires, next_wakeup,
    on_finished, poll, upcoming_table,
};

fn fire(slot: &str) -> Decision {
    Decision::Fire {
        slot: ts(slot),
        at: ts(slot),
    }
}

fn wait(until: &str) -> Decision {
    Decision::Wait {
        until: Some(ts(until)),
    }
}

fn fired_at(last: &str) -> ScheduleState {
    ScheduleState {
        last_slot: Some(ts(last)),
        ..Default::default()
    }
}

fn apply_all(st: &mut ScheduleState, ds: &[Decision]) {
    for d in ds {
        apply(st, d);
    }
}

#[test]
fn three_days_down_daily_game_day_fires_at_most_once_and_reports_missed() {
    let s = sched("cron(0 2 * * ? *)", "UTC");
    // Back five minutes after the fourth slot: the three older ones are missed, the
    // latest (inside the 15 min catch-up window) fires once.
    let mut st = fired_at("2026-12-01T02:00:00Z");
    let now = ts("2026-12-04T02:05:00Z");
    let ds = poll(&s, &st, now);
    assert_eq!(
        ds,
        [
            Decision::Missed {
                first: ts("2026-12-02T02:00:00Z"),
                last: ts("2026-12-03T02:00:00Z"),
                count: 2
            },
            fire("2026-12-04T02:00:00Z"),
            wait("2026-12-05T02:00:00Z"),
        ]
    );
    apply_all(&mut st, &ds);
    assert_eq!(st.last_slot, Some(ts("2026-12-04T02:00:00Z")));
    // Polling again (or after a restart with the persisted state) fires nothing.
    assert_eq!(poll(&s, &st, now), [wait("2026-12-05T02:00:00Z")]);
    assert_eq!(
        poll(&s, &st.clone(), ts("2026-12-04T20:00:00Z")),
        [wait("2026-12-05T02:00:00Z")]
    );

    // Back eight hours after the slot: everything is missed, nothing fires.
    let st = fired_at("2026-12-01T02:00:00Z");
    let ds = poll(&s, &st, ts("2026-12-04T10:00:00Z"));
    assert_eq!(
        ds,
        [
            Decision::Missed {
                first: ts("2026-12-02T02:00:00Z"),
                last: ts("2026-12-04T02:00:00Z"),
                count: 3
            },
            wait("2026-12-05T02:00:00Z"),
        ]
    );

    // A 12 h catch-up window lets the latest one fire.
    let mut lenient = s.clone();
    lenient.catch_up = Duration::from_secs(12 * 3600);
    let ds = poll(&lenient, &st, ts("2026-12-04T10:00:00Z"));
    assert_eq!(
        ds.iter()
            .filter(|d| matches!(d, Decision::Fire { .. }))
            .count(),
        1
    );
    assert_eq!(ds[1], fire("2026-12-04T02:00:00Z"));
}

#[test]
fn five_minutes_down_the_missed_slot_fires() {
    let hourly = sched("cron(0 * * * ? *)", "UTC");
    let st = fired_at("2026-12-04T10:00:00Z");
    assert_eq!(
        poll(&hourly, &st, ts("2026-12-04T11:05:00Z")),
        [fire("2026-12-04T11:00:00Z"), wait("2026-12-04T12:00:00Z")]
    );
    // Per minute: the four superseded slots are reported, the latest fires.
    let minutely = sched("rate(1 minute)", "UTC");
    assert_eq!(
        poll(&minutely, &st, ts("2026-12-04T10:05:00Z")),
        [
            Decision::Missed {
                first: ts("2026-12-04T10:01:00Z"),
                last: ts("2026-12-04T10:04:00Z"),
                count: 4
            },
            fire("2026-12-04T10:05:00Z"),
            wait("2026-12-04T10:06:00Z"),
        ]
    );
}

#[test]
fn fresh_schedule_does_not_report_history() {
    let s = sched("cron(0 2 * * ? *)", "UTC");
    let st = ScheduleState::default();
    assert_eq!(
        poll(&s, &st, ts("2026-12-04T10:00:00Z")),
        [wait("2026-12-05T02:00:00Z")]
    );
    assert_eq!(
        poll(&s, &st, ts("2026-12-04T02:10:00Z"))[0],
        fire("2026-12-04T02:00:00Z")
    );
}

/// A deterministic pseudo-random walk of poll times, including clock steps backwards
/// and restarts from persisted state: no slot is ever returned twice or at or below
/// `last_slot`.
#[test]
fn never_fires_a_slot_at_or_below_last_slot() {
    let mut s = sched("cron(0/3 * * * ? *)", "Europe/Berlin");
    s.jitter = Some(Duration::from_secs(50));
    s.overlap = Overlap::Allow;
    let mut st = ScheduleState::default();
    let mut seen = std::collections::BTreeSet::new();
    let mut now = ts("2026-10-24T20:00:00Z");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut fires = 0;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mostly forward by up to 4 min, sometimes back by up to 2 min, rarely a long gap.
        let step = match x % 100 {
            0..=79 => (x >> 8) % 240,
            80..=94 => -(((x >> 8) % 120) as i64) as u64,
            _ => (x >> 8) % 7200,
        } as i64;
        now = now.checked_add(SignedDuration::from_secs(step)).unwrap();
        let before = st.last_slot;
        let ds = poll(&s, &st, now);
        for d in &ds {
            let slot = match d {
                Decision::Fire { slot, at } => {
                    assert!(*at <= now, "fired before due");
                    assert!(seen.insert(*slot), "slot {slot} fired twice");
                    fires += 1;
                    Some(*slot)
                }
                Decision::Skip { slot, .. } | Decision::Buffer { slot } => Some(*slot),
                Decision::Missed { first, .. } => Some(*first),
                Decision::Wait { .. } => None,
            };
            if let (Some(slot), Some(b)) = (slot, before) {
                assert!(slot > b, "{slot} <= last_slot {b}");
            }
        }
        apply_all(&mut st, &ds);
        if x.is_multiple_of(7) {
            // Restart: only the persisted state survives.
            st = ScheduleState {
                last_slot: st.last_slot,
                ..Default::default()
            };
        }
    }
    assert!(fires > 1000, "the walk exercised firing ({fires})");
}

#[test]
fn overlap_skip_buffer_one_and_allow() {
    let base = sched("rate(10 minutes)", "UTC");
    let running = ScheduleState {
        last_slot: Some(ts("2026-12-04T10:00:00Z")),
        running: 1,
        ..Default::default()
    };
    let now = ts("2026-12-04T10:10:00Z");

    // Skip (the default)
    assert_eq!(base.overlap, Overlap::Skip);
    assert_eq!(
        poll(&base, &running, now)[0],
        Decision::Skip {
            slot: ts("2026-12-04T10:10:00Z"),
            reason: SkipReason::Overlap
        }
    );

    // BufferOne: buffer, skip further slots while one is buffered, fire it on finish.
    let mut s = base.clone();
    s.overlap = Overlap::BufferOne;
    let mut st = running.clone();
    let ds = poll(&s, &st, now);
    assert_eq!(
        ds[0],
        Decision::Buffer {
            slot: ts("2026-12-04T10:10:00Z")
        }
    );
    apply_all(&mut st, &ds);
    assert_eq!(st.buffered, Some(ts("2026-12-04T10:10:00Z")));
    let ds = poll(&s, &st, ts("2026-12-04T10:20:00Z"));
    assert_eq!(
        ds[0],
        Decision::Skip {
            slot: ts("2026-12-04T10:20:00Z"),
            reason: SkipReason::Overlap
        }
    );
    apply_all(&mut st, &ds);
    let d = on_finished(&mut st, true, &s).expect("buffered slot fires");
    assert_eq!(d, fire("2026-12-04T10:10:00Z"));
    apply(&mut st, &d);
    assert_eq!((st.running, st.buffered), (1, None));
    assert_eq!(
        on_finished(&mut st, true, &s),
        None,
        "nothing left buffered"
    );
    assert_eq!(st.running, 0);

    // Allow: fires alongside.
    let mut s = base.clone();
    s.overlap = Overlap::Allow;
    let mut st = running.clone();
    let ds = poll(&s, &st, now);
    assert_eq!(ds[0], fire("2026-12-04T10:10:00Z"));
    apply_all(&mut st, &ds);
    assert_eq!(st.running, 2);
}

#[test]
fn blackouts_skip_slots() {
    let mut s = sched("cron(0 * * * ? *)", "Europe/Berlin");
    s.blackouts
        .push(Blackout::parse("cron(0 22 ? * FRI *) for 60h", &s.timezone).unwrap());
    s.blackouts
        .push(Blackout::parse("2026-12-24T00:00..2026-12-27T00:00", &s.timezone).unwrap());
    // Friday 2026-12-04 21:00 CET fires, then nothing until Monday 10:00 CET.
    let got = next_fires(&s, ts("2026-12-04T19:30:00Z"), 2);
    assert_eq!(
        got.iter().map(|f| f.0).collect::<Vec<_>>(),
        [ts("2026-12-04T20:00:00Z"), ts("2026-12-07T09:00:00Z")]
    );
    // poll reports the blacked-out slot as skipped.
    let st = fired_at("2026-12-04T20:00:00Z");
    assert_eq!(
        poll(&s, &st, ts("2026-12-04T21:01:00Z"))[0],
        Decision::Skip {
            slot: ts("2026-12-04T21:00:00Z"),
            reason: SkipReason::Blackout
        }
    );
    // The absolute window: local midnight 24th to midnight 27th (CET = UTC+1).
    let got = next_fires(&s, ts("2026-12-23T22:30:00Z"), 1);
    assert_eq!(
        got[0].0,
        ts("2026-12-28T09:00:00Z"),
        "27th is a Sunday inside the weekly blackout"
    );
    let e = Blackout::parse("cron(0 22 ? * FRI *) 60h", &s.timezone).unwrap_err();
    assert_eq!(e.offset, 20);
    let e = Blackout::parse("2026-12-27T00:00..2026-12-24T00:00", &s.timezone).unwrap_err();
    assert_eq!(e.offset, 18);
}

#[test]
fn start_and_end_bound_the_slots() {
    let mut s = sched("cron(0 9 * * ? *)", "UTC");
    s.start = Some(ts("2026-12-05T00:00:00Z"));
    s.end = Some(ts("2026-12-07T09:00:00Z"));
    let got: Vec<Timestamp> = next_fires(&s, ts("2026-12-01T00:00:00Z"), 10)
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(
        got,
        [
            ts("2026-12-05T09:00:00Z"),
            ts("2026-12-06T09:00:00Z"),
            ts("2026-12-07T09:00:00Z")
        ]
    );
    let st = fired_at("2026-12-07T09:00:00Z");
    assert_eq!(
        poll(&s, &st, ts("2026-12-09T00:00:00Z")),
        [Decision::Wait { until: None }]
    );
    assert_eq!(next_wakeup(&s, &st, ts("2026-12-09T00:00:00Z")), None);

    // An at() outside the window is reported skipped, once.
    let mut once = sched("at(2026-12-01T09:00:00)", "UTC");
    once.start = Some(ts("2026-12-05T00:00:00Z"));
    let mut st = ScheduleState::default();
    let ds = poll(&once, &st, ts("2026-12-01T09:00:30Z"));
    assert_eq!(
        ds[0],
        Decision::Skip {
            slot: ts("2026-12-01T09:00:00Z"),
            reason: SkipReason::OutsideWindow
        }
    );
    apply_all(&mut st, &ds);
    assert_eq!(
        poll(&once, &st, ts("2026-12-06T00:00:00Z")),
        [Decision::Wait { until: None }]
    );
}

#[test]
fn pause_with_reason_and_resume() {
    let s = sched("rate(1 hour)", "UTC");
    let mut st = fired_at("2026-12-04T10:00:00Z");
    st.pause("database maintenance");
    assert_eq!(st.paused.as_deref(), Some("database maintenance"));
    let ds = poll(&s, &st, ts("2026-12-04T11:00:00Z"));
    assert_eq!(
        ds[0],
        Decision::Skip {
            slot: ts("2026-12-04T11:00:00Z"),
            reason: SkipReason::Paused
        }
    );
    apply_all(&mut st, &ds);
    st.resume();
    assert_eq!(
        poll(&s, &st, ts("2026-12-04T12:00:00Z"))[0],
        fire("2026-12-04T12:00:00Z")
    );
}

#[test]
fn pause_on_failure() {
    let mut s = sched("rate(1 hour)", "UTC");
    s.pause_on_failure = true;
    let mut st = fired_at("2026-12-04T10:00:00Z");
    st.running = 1;
    assert_eq!(on_finished(&mut st, false, &s), None);
    assert!(st.failed_paused && st.running == 0);
    let ds = poll(&s, &st, ts("2026-12-04T11:00:00Z"));
    assert_eq!(
        ds[0],
        Decision::Skip {
            slot: ts("2026-12-04T11:00:00Z"),
            reason: SkipReason::Paused
        }
    );
    apply_all(&mut st, &ds);
    st.resume();
    assert_eq!(
        poll(&s, &st, ts("2026-12-04T12:00:00Z"))[0],
        fire("2026-12-04T12:00:00Z")
    );

    // A buffered slot is skipped, not fired, when the run before it failed.
    s.overlap = Overlap::BufferOne;
    let mut st = ScheduleState {
        running: 1,
        buffered: Some(ts("2026-12-04T13:00:00Z")),
        ..Default::default()
    };
    let d = on_finished(&mut st, false, &s).unwrap();
    assert_eq!(
        d,
        Decision::Skip {
            slot: ts("2026-12-04T13:00:00Z"),
            reason: SkipReason::Paused
        }
    );
    apply(&mut st, &d);
    assert_eq!(st.buffered, None);

    // Without pause_on_failure a failure does not pause.
    s.pause_on_failure = false;
    let mut st = ScheduleState {
        running: 1,
        ..Default::default()
    };
    on_finished(&mut st, false, &s);
    assert!(!st.is_paused());
}

#[test]
fn jitter_is_deterministic_and_bounded() {
    let mut s = sched("rate(1 hour)", "UTC");
    let bound = Duration::from_secs(300);
    s.jitter = Some(bound);
    let twin = s.clone();
    let mut other = s.clone();
    other.name = "other".into();
    let fires = next_fires(&s, ts("2026-01-01T00:00:00Z"), 5000);
    let (mut lo, mut hi, mut differ) = (bound, Duration::ZERO, 0);
    for (slot, at) in &fires {
        let j = Duration::try_from(at.duration_since(*slot)).unwrap();
        assert!(j < bound, "{j:?} out of [0, {bound:?})");
        assert_eq!(twin.due(*slot), *at, "same name and slot, same jitter");
        if other.due(*slot) != *at {
            differ += 1;
        }
        lo = lo.min(j);
        hi = hi.max(j);
    }
    assert!(
        lo < Duration::from_secs(10) && hi > Duration::from_secs(290),
        "spread {lo:?}..{hi:?}"
    );
    assert!(differ > 4900, "the name feeds the hash ({differ})");

    // poll waits for the jittered time, then fires with it.
    let (slot, at) = fires[10];
    let before =
        runbook_scheduler::jiff::Timestamp::from_nanosecond(at.as_nanosecond() - 1).unwrap();
    let st = ScheduleState {
        last_slot: Some(fires[9].0),
        ..Default::default()
    };
    if at > slot {
        assert_eq!(poll(&s, &st, before), [Decision::Wait { until: Some(at) }]);
    }
    assert_eq!(poll(&s, &st, at)[0], Decision::Fire { slot, at });
    assert_eq!(next_wakeup(&s, &st, slot), Some(at));
}

#[test]
fn at_fires_once_then_never() {
    let s = sched("at(2026-12-04T09:00:00)", "America/New_York");
    let mut st = ScheduleState::default();
    assert_eq!(
        poll(&s, &st, ts("2026-12-04T13:59:00Z")),
        [wait("2026-12-04T14:00:00Z")]
    );
    let ds = poll(&s, &st, ts("2026-12-04T14:00:05Z"));
    assert_eq!(
        ds,
        [fire("2026-12-04T14:00:00Z"), Decision::Wait { until: None }]
    );
    apply_all(&mut st, &ds);
    for later in [
        "2026-12-04T14:00:05Z",
        "2026-12-04T14:10:00Z",
        "2027-06-01T00:00:00Z",
    ] {
        assert_eq!(poll(&s, &st, ts(later)), [Decision::Wait { until: None }]);
    }
    // Never handled and long past: reported missed once.
    let st = ScheduleState::default();
    assert_eq!(
        poll(&s, &st, ts("2026-12-08T00:00:00Z")),
        [
            Decision::Missed {
                first: ts("2026-12-04T14:00:00Z"),
                last: ts("2026-12-04T14:00:00Z"),
                count: 1
            },
            Decision::Wait { until: None },
        ]
    );
}

#[test]
fn serve_loop_over_a_week_fires_every_slot_exactly_once() {
    let s = sched("cron(0/30 * ? * MON-FRI *)", "America/New_York");
    let mut st = ScheduleState::default();
    let from = ts("2026-12-06T23:00:00Z");
    let to = ts("2026-12-14T00:00:00Z");
    let fired = simulate(&s, &mut st, from, to, SignedDuration::from_secs(47));
    let want: Vec<Timestamp> = next_fires(&s, from, 10_000)
        .into_iter()
        .map(|f| f.0)
        .filter(|t| *t <= to)
        .collect();
    assert_eq!(fired, want);
    assert_eq!(fired.len(), 5 * 48);
}

#[test]
fn upcoming_table_shows_local_times_with_offsets() {
    let mut nightly = sched("cron(0 2 * * ? *)", "Europe/Berlin");
    nightly.name = "nightly-drill".into();
    let mut gd = sched("cron(0 10 ? * 3#2 *)", "America/New_York");
    gd.name = "game-day".into();
    gd.jitter = Some(Duration::from_secs(600));
    let mut done = sched("at(2020-01-01T00:00:00)", "UTC");
    done.name = "old".into();
    let table = upcoming_table(&[nightly, gd.clone(), done], ts("2026-12-04T12:00:00Z"), 2);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("TIME ZONE")
            && lines[0].contains("NEXT FIRES"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("nightly-drill")
            && lines[1].contains("cron(0 2 * * ? *)")
            && lines[1].contains("Europe/Berlin")
    );
    assert!(
        lines[1].ends_with("2026-12-05 Sat 02:00:00 +01:00"),
        "{table}"
    );
    assert!(
        lines[2]
            .trim_start()
            .starts_with("2026-12-06 Sun 02:00:00 +01:00"),
        "{table}"
    );
    assert!(
        lines[3].starts_with("game-day")
            && lines[3].contains("2026-12-08 Tue 10:")
            && lines[3].contains("-05:00"),
        "{table}"
    );
    let j = gd.jitter_of(ts("2026-12-08T15:00:00Z")).as_secs();
    assert!(lines[3].ends_with(&format!("(+{j}s jitter)")), "{table}");
    assert!(
        lines[5].starts_with("old") && lines[5].ends_with("(no further fire times)"),
        "{table}"
    );
    assert_eq!(lines.len(), 6);
}

#[test]
fn a_year_of_downtime_fires_at_most_once() {
    // Every 5 minutes for a year: back inside the catch-up window of the latest slot,
    // exactly one fire and one Missed for the rest; back later, nothing fires.
    let s = sched("rate(5 minutes)", "UTC");
    let st = fired_at("2025-12-01T00:00:00Z");
    let ds = poll(&s, &st, ts("2026-12-01T00:07:00Z"));
    let fires: Vec<_> = ds
        .iter()
        .filter(|d| matches!(d, Decision::Fire { .. }))
        .collect();
    assert_eq!(fires, [&fire("2026-12-01T00:05:00Z")]);
    match &ds[0] {
        Decision::Missed { count, .. } => assert_eq!(*count, 365 * 24 * 12),
        d => panic!("expected Missed first, got {d:?}"),
    }
    let mut st2 = st.clone();
    apply_all(&mut st2, &ds);
    assert!(
        poll(&s, &st2, ts("2026-12-01T00:07:30Z"))
            .iter()
            .all(|d| matches!(d, Decision::Wait { .. }))
    );
}
