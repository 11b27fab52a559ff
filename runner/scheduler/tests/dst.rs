//! Daylight-saving rules, in America/New_York (2026-03-08 spring forward 02:00→03:00,
//! 2026-11-01 fall back 02:00→01:00) and Europe/Berlin (2026-03-29 02:00→03:00,
//! 2026-10-25 03:00→02:00).

mod common;

use common::{local, sched, simulate, ts};
use runbook_scheduler::jiff::{SignedDuration, Timestamp};
use runbook_scheduler::{Blackout, Schedule, ScheduleState, next_fires};

fn slots(s: &Schedule, after: &str, n: usize) -> Vec<String> {
    next_fires(s, ts(after), n)
        .into_iter()
        .map(|(slot, _)| slot.to_string())
        .collect()
}

#[test]
fn new_york_spring_forward_gap_is_skipped() {
    let s = sched("cron(30 2 * * ? *)", "America/New_York");
    assert_eq!(
        slots(&s, "2026-03-06T12:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            // 2026-03-08 02:30 does not exist: no run that day (not moved to 03:30)
            "2026-03-09T06:30:00Z", // 02:30 EDT
            "2026-03-10T06:30:00Z",
        ]
    );
}

#[test]
fn new_york_fall_back_runs_once_at_first_occurrence() {
    let s = sched("cron(30 1 * * ? *)", "America/New_York");
    assert_eq!(
        slots(&s, "2026-10-31T00:00:00Z", 3),
        [
            "2026-10-31T05:30:00Z", // 01:30 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT, the first of the two 01:30s
            "2026-11-02T06:30:00Z", // 01:30 EST
        ]
    );
    // Asking from inside the repeated hour (01:10 EST) never yields the second 01:30.
    assert_eq!(
        slots(&s, "2026-11-01T06:10:00Z", 1),
        ["2026-11-02T06:30:00Z"]
    );
}

#[test]
fn new_york_quarter_hours_across_both_transitions() {
    let s = sched("cron(0/15 * * * ? *)", "America/New_York");
    // Spring: 01:45 EST, then 03:00 EDT; 02:00-02:45 do not exist.
    assert_eq!(
        slots(&s, "2026-03-08T06:30:00Z", 3),
        [
            "2026-03-08T06:45:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:15:00Z"
        ]
    );
    // Fall: 01:00-01:45 EDT once, then 02:00 EST; nothing during 01:00-01:59 EST.
    let fall = slots(&s, "2026-11-01T04:50:00Z", 6);
    assert_eq!(
        fall,
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:15:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T05:45:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:15:00Z",
        ]
    );
}

#[test]
fn berlin_spring_gap_and_autumn_fold() {
    let s = sched("cron(30 2 * * ? *)", "Europe/Berlin");
    assert_eq!(
        slots(&s, "2026-03-27T12:00:00Z", 2),
        ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"],
        "02:30 on 2026-03-29 does not exist in Berlin"
    );
    assert_eq!(
        slots(&s, "2026-10-23T12:00:00Z", 3),
        [
            "2026-10-24T00:30:00Z", // CEST
            "2026-10-25T00:30:00Z", // first 02:30 (CEST); the CET one is not a slot
            "2026-10-26T01:30:00Z", // CET
        ]
    );
}

#[test]
fn rate_is_absolute_across_transitions() {
    let mut s = sched("rate(1 hour)", "America/New_York");
    s.start = Some(local("America/New_York", "2026-03-08T00:00:00"));
    let got = next_fires(&s, ts("2026-03-01T00:00:00Z"), 5);
    for pair in got.windows(2) {
        assert_eq!(
            pair[1].0.duration_since(pair[0].0),
            SignedDuration::from_hours(1)
        );
    }
    let walls: Vec<String> = got
        .iter()
        .map(|(t, _)| {
            t.to_zoned_datetime(s.timezone.clone())
                .strftime("%H:%M")
                .to_string()
        })
        .collect();
    assert_eq!(
        walls,
        ["00:00", "01:00", "03:00", "04:00", "05:00"],
        "wall clock jumps, the rate does not"
    );

    let mut daily = sched("rate(1 day)", "Europe/Berlin");
    daily.start = Some(ts("2026-10-24T10:00:00Z"));
    let got = next_fires(&daily, ts("2026-10-01T00:00:00Z"), 3);
    let utc: Vec<String> = got.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        utc,
        [
            "2026-10-24T10:00:00Z",
            "2026-10-25T10:00:00Z",
            "2026-10-26T10:00:00Z"
        ]
    );
}

#[test]
fn at_in_gap_never_fires_and_in_fold_is_first() {
    let gap = sched("at(2026-03-08T02:30:00)", "America/New_York");
    assert!(next_fires(&gap, Timestamp::MIN, 1).is_empty());
    let fold = sched("at(2026-11-01T01:30:00)", "America/New_York");
    assert_eq!(
        slots(&fold, "2026-01-01T00:00:00Z", 5),
        ["2026-11-01T05:30:00Z"]
    );
}

#[test]
fn polling_every_minute_through_transitions_fires_each_wall_time_once() {
    let minute = SignedDuration::from_mins(1);
    // Fall back: 01:30 happens twice in New York; the schedule fires once.
    let s = sched("cron(30 1 * * ? *)", "America/New_York");
    let mut st = ScheduleState::default();
    let fired = simulate(
        &s,
        &mut st,
        ts("2026-11-01T03:00:00Z"),
        ts("2026-11-01T10:00:00Z"),
        minute,
    );
    assert_eq!(fired, [ts("2026-11-01T05:30:00Z")]);

    // Spring forward: 02:30 does not happen; 03:00 does, once.
    let gap = sched("cron(30 2 * * ? *)", "America/New_York");
    let three = sched("cron(0 3 * * ? *)", "America/New_York");
    let (mut a, mut b) = (ScheduleState::default(), ScheduleState::default());
    let from = ts("2026-03-08T04:00:00Z");
    let to = ts("2026-03-08T10:00:00Z");
    assert!(simulate(&gap, &mut a, from, to, minute).is_empty());
    assert_eq!(
        simulate(&three, &mut b, from, to, minute),
        [ts("2026-03-08T07:00:00Z")]
    );

    // Berlin's repeated hour with an every-10-minutes cron: each wall time once.
    let tens = sched("cron(0/10 2 * * ? *)", "Europe/Berlin");
    let mut st = ScheduleState::default();
    let fired = simulate(
        &tens,
        &mut st,
        ts("2026-10-24T23:50:00Z"),
        ts("2026-10-25T03:00:00Z"),
        minute,
    );
    let walls: Vec<String> = fired
        .iter()
        .map(|t| {
            t.to_zoned_datetime(tens.timezone.clone())
                .strftime("%H:%M%:z")
                .to_string()
        })
        .collect();
    assert_eq!(
        walls,
        [
            "02:00+02:00",
            "02:10+02:00",
            "02:20+02:00",
            "02:30+02:00",
            "02:40+02:00",
            "02:50+02:00"
        ]
    );
}

#[test]
fn blackout_local_time_in_gap_is_an_error() {
    let tz = runbook_scheduler::jiff::tz::TimeZone::get("America/New_York").unwrap();
    let e = Blackout::parse("2026-03-08T02:30..2026-03-08T05:00", &tz).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("does not exist"), "{e}");
}

// Europe/London: 2026-03-29 01:00 GMT → 02:00 BST; 2026-10-25 02:00 BST → 01:00 GMT.

#[test]
fn london_spring_forward_gap_is_skipped() {
    let s = sched("cron(30 1 * * ? *)", "Europe/London");
    assert_eq!(
        slots(&s, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z", // 01:30 GMT
            // 2026-03-29 01:30 does not exist in London: no run that day
            "2026-03-30T00:30:00Z", // 01:30 BST
            "2026-03-31T00:30:00Z",
        ]
    );
}

#[test]
fn london_fall_back_runs_once_at_first_occurrence() {
    let s = sched("cron(30 1 * * ? *)", "Europe/London");
    assert_eq!(
        slots(&s, "2026-10-24T12:00:00Z", 3),
        [
            "2026-10-25T00:30:00Z", // 01:30 BST, the first of the two 01:30s
            "2026-10-26T01:30:00Z", // 01:30 GMT
            "2026-10-27T01:30:00Z",
        ]
    );
    // Polling every minute through the repeated hour fires 01:30 once.
    let mut st = ScheduleState {
        last_slot: Some(ts("2026-10-24T23:00:00Z")),
        ..ScheduleState::default()
    };
    let mut fired = Vec::new();
    let mut now = ts("2026-10-24T23:00:00Z");
    while now < ts("2026-10-25T03:00:00Z") {
        for d in runbook_scheduler::poll(&s, &st, now) {
            if let runbook_scheduler::Decision::Fire { slot, .. } = d {
                fired.push(slot.to_string());
            }
            runbook_scheduler::apply(&mut st, &d);
        }
        st.running = 0;
        now += SignedDuration::from_secs(60);
    }
    assert_eq!(fired, ["2026-10-25T00:30:00Z"]);
}
