//! Expression syntax: every example of the EventBridge Scheduler / EventBridge cron
//! documentation, Quartz specials, and error cases with their offsets.

use std::time::Duration;

use runbook_scheduler::jiff::Timestamp;
use runbook_scheduler::{Expression, Rate, RateUnit, Schedule, next_fires, parse_duration};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The next `n` slots of `expr` in UTC after `after`, as RFC 3339 strings.
fn fires(expr: &str, after: &str, n: usize) -> Vec<String> {
    let s = Schedule::parse("t", expr, "UTC").unwrap_or_else(|e| panic!("{expr}: {e}"));
    next_fires(&s, ts(after), n)
        .into_iter()
        .map(|(slot, at)| {
            assert_eq!(slot, at, "no jitter configured");
            slot.to_string()
        })
        .collect()
}

#[test]
fn eventbridge_documented_cron_examples() {
    // (expression, after, next three slots) — 2026-12-04 is a Friday.
    let cases: &[(&str, &str, [&str; 3])] = &[
        // 10:00 every day
        (
            "cron(0 10 * * ? *)",
            "2026-12-04T17:59:00Z",
            [
                "2026-12-05T10:00:00Z",
                "2026-12-06T10:00:00Z",
                "2026-12-07T10:00:00Z",
            ],
        ),
        // 12:15 every day
        (
            "cron(15 12 * * ? *)",
            "2026-12-04T17:59:00Z",
            [
                "2026-12-05T12:15:00Z",
                "2026-12-06T12:15:00Z",
                "2026-12-07T12:15:00Z",
            ],
        ),
        // 18:00 Monday through Friday
        (
            "cron(0 18 ? * MON-FRI *)",
            "2026-12-04T17:59:00Z",
            [
                "2026-12-04T18:00:00Z",
                "2026-12-07T18:00:00Z",
                "2026-12-08T18:00:00Z",
            ],
        ),
        // 08:00 on the first day of every month
        (
            "cron(0 8 1 * ? *)",
            "2026-12-04T17:59:00Z",
            [
                "2027-01-01T08:00:00Z",
                "2027-02-01T08:00:00Z",
                "2027-03-01T08:00:00Z",
            ],
        ),
        // every 15 minutes
        (
            "cron(0/15 * * * ? *)",
            "2026-12-04T17:59:00Z",
            [
                "2026-12-04T18:00:00Z",
                "2026-12-04T18:15:00Z",
                "2026-12-04T18:30:00Z",
            ],
        ),
        // every 10 minutes Monday through Friday
        (
            "cron(0/10 * ? * MON-FRI *)",
            "2026-12-04T23:45:00Z",
            [
                "2026-12-04T23:50:00Z",
                "2026-12-07T00:00:00Z",
                "2026-12-07T00:10:00Z",
            ],
        ),
        // every 5 minutes Monday through Friday between 08:00 and 17:55
        (
            "cron(0/5 8-17 ? * MON-FRI *)",
            "2026-12-04T17:50:00Z",
            [
                "2026-12-04T17:55:00Z",
                "2026-12-07T08:00:00Z",
                "2026-12-07T08:05:00Z",
            ],
        ),
        // every 30 minutes Monday through Friday, hours 20 through 2 (a wrapping range)
        (
            "cron(0/30 20-2 ? * MON-FRI *)",
            "2026-12-04T23:45:00Z",
            [
                "2026-12-07T00:00:00Z",
                "2026-12-07T00:30:00Z",
                "2026-12-07T01:00:00Z",
            ],
        ),
        (
            "cron(0/30 20-2 ? * MON-FRI *)",
            "2026-12-07T02:00:00Z",
            [
                "2026-12-07T02:30:00Z",
                "2026-12-07T20:00:00Z",
                "2026-12-07T20:30:00Z",
            ],
        ),
        // 10:15 on the last Friday of every month, 2022 to 2023
        (
            "cron(15 10 ? * 6L 2022-2023)",
            "2022-01-01T00:00:00Z",
            [
                "2022-01-28T10:15:00Z",
                "2022-02-25T10:15:00Z",
                "2022-03-25T10:15:00Z",
            ],
        ),
        // the Scheduler guide's daily noon
        (
            "cron(0 12 * * ? *)",
            "2026-12-04T12:00:00Z",
            [
                "2026-12-05T12:00:00Z",
                "2026-12-06T12:00:00Z",
                "2026-12-07T12:00:00Z",
            ],
        ),
        // 3#2: the second Tuesday of the month
        (
            "cron(0 10 ? * 3#2 *)",
            "2026-12-01T00:00:00Z",
            [
                "2026-12-08T10:00:00Z",
                "2027-01-12T10:00:00Z",
                "2027-02-09T10:00:00Z",
            ],
        ),
        // LW: the last weekday of the month (2027-01-31 is a Sunday)
        (
            "cron(0 9 LW * ? *)",
            "2026-12-01T00:00:00Z",
            [
                "2026-12-31T09:00:00Z",
                "2027-01-29T09:00:00Z",
                "2027-02-26T09:00:00Z",
            ],
        ),
        // 15W: the weekday nearest the 15th (2027-05-15 is a Saturday)
        (
            "cron(0 9 15W * ? 2027)",
            "2027-04-16T00:00:00Z",
            [
                "2027-05-14T09:00:00Z",
                "2027-06-15T09:00:00Z",
                "2027-07-15T09:00:00Z",
            ],
        ),
        // L in day-of-month: the last day
        (
            "cron(0 0 L * ? *)",
            "2026-12-01T00:00:00Z",
            [
                "2026-12-31T00:00:00Z",
                "2027-01-31T00:00:00Z",
                "2027-02-28T00:00:00Z",
            ],
        ),
        // a bare L in day-of-week is the last day of the week, Saturday
        (
            "cron(0 12 ? * L *)",
            "2026-12-01T00:00:00Z",
            [
                "2026-12-05T12:00:00Z",
                "2026-12-12T12:00:00Z",
                "2026-12-19T12:00:00Z",
            ],
        ),
        // 1 = SUN: first Sunday of January and July 2027, with names
        (
            "cron(0 12 ? JAN,JUL SUN#1 2027)",
            "2026-12-01T00:00:00Z",
            ["2027-01-03T12:00:00Z", "2027-07-04T12:00:00Z", "__none__"],
        ),
        // numeric day-of-week 1-7 is SUN-SAT: 2,6 = MON,FRI
        (
            "cron(30 6 ? * 2,6 *)",
            "2026-12-04T00:00:00Z",
            [
                "2026-12-04T06:30:00Z",
                "2026-12-07T06:30:00Z",
                "2026-12-11T06:30:00Z",
            ],
        ),
        // a wrapping day-of-week range FRI-MON
        (
            "cron(0 22 ? * FRI-MON *)",
            "2026-12-04T00:00:00Z",
            [
                "2026-12-04T22:00:00Z",
                "2026-12-05T22:00:00Z",
                "2026-12-06T22:00:00Z",
            ],
        ),
        // 1/10: every tenth minute from minute 1
        (
            "cron(1/10 * * * ? *)",
            "2026-12-04T10:00:00Z",
            [
                "2026-12-04T10:01:00Z",
                "2026-12-04T10:11:00Z",
                "2026-12-04T10:21:00Z",
            ],
        ),
        // lists, ranges and steps in month and day-of-month
        (
            "cron(0 0 1-15/7 JAN,MAR-APR ? *)",
            "2026-12-04T00:00:00Z",
            [
                "2027-01-01T00:00:00Z",
                "2027-01-08T00:00:00Z",
                "2027-01-15T00:00:00Z",
            ],
        ),
    ];
    for (expr, after, want) in cases {
        let want: Vec<&str> = want.iter().copied().filter(|w| *w != "__none__").collect();
        assert_eq!(fires(expr, after, 3), want, "{expr} after {after}");
    }
}

#[test]
fn year_field_ends_a_schedule() {
    assert!(fires("cron(15 10 ? * 6L 2022-2023)", "2023-12-29T10:15:00Z", 3).is_empty());
    assert_eq!(
        fires("cron(15 10 ? * 6L 2022-2023)", "2023-12-01T00:00:00Z", 3),
        ["2023-12-29T10:15:00Z"]
    );
    assert!(fires("cron(0 0 1 1 ? 1970)", "1971-01-01T00:00:00Z", 1).is_empty());
}

#[test]
fn lowercase_names_and_extra_spaces_are_accepted() {
    assert_eq!(
        fires("cron(0  18 ? *  mon-fri  *)", "2026-12-04T17:59:00Z", 1),
        ["2026-12-04T18:00:00Z"]
    );
    let e: Expression = "cron(0 18 ? * mon-fri *)".parse().unwrap();
    assert_eq!(e.to_string(), "cron(0 18 ? * mon-fri *)");
}

#[test]
fn rate_expressions() {
    let cases = [
        ("rate(1 minute)", 1, RateUnit::Minutes, 60),
        ("rate(5 minutes)", 5, RateUnit::Minutes, 300),
        ("rate(1 hour)", 1, RateUnit::Hours, 3_600),
        ("rate(12 hours)", 12, RateUnit::Hours, 43_200),
        ("rate(1 day)", 1, RateUnit::Days, 86_400),
        ("rate(7 days)", 7, RateUnit::Days, 604_800),
    ];
    for (text, value, unit, secs) in cases {
        let e = Expression::parse(text).unwrap();
        assert_eq!(e, Expression::Rate(Rate { value, unit }), "{text}");
        let Expression::Rate(r) = e else {
            unreachable!()
        };
        assert_eq!(r.period(), Duration::from_secs(secs));
        assert_eq!(r.to_string(), text, "display round-trips");
    }
    // Without a start, slots are anchored at the Unix epoch: restarts never shift them.
    assert_eq!(
        fires("rate(5 minutes)", "2026-12-04T10:02:30Z", 3),
        [
            "2026-12-04T10:05:00Z",
            "2026-12-04T10:10:00Z",
            "2026-12-04T10:15:00Z"
        ]
    );
}

#[test]
fn rate_anchored_at_start() {
    let mut s = Schedule::parse("r", "rate(2 hours)", "UTC").unwrap();
    s.start = Some(ts("2026-12-04T10:17:00Z"));
    let got: Vec<String> = next_fires(&s, ts("2026-12-01T00:00:00Z"), 3)
        .into_iter()
        .map(|(slot, _)| slot.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "2026-12-04T10:17:00Z",
            "2026-12-04T12:17:00Z",
            "2026-12-04T14:17:00Z"
        ]
    );
}

#[test]
fn at_expressions_are_local_to_the_schedule_zone() {
    let e = Expression::parse("at(2022-11-20T13:00:00)").unwrap();
    assert_eq!(e.to_string(), "at(2022-11-20T13:00:00)");
    let s = Schedule::parse("once", "at(2022-11-20T13:00:00)", "Europe/Berlin").unwrap();
    let got = next_fires(&s, ts("2022-01-01T00:00:00Z"), 5);
    assert_eq!(got.len(), 1, "fires once");
    assert_eq!(
        got[0].0,
        ts("2022-11-20T12:00:00Z"),
        "13:00 CET is 12:00 UTC"
    );
    assert!(next_fires(&s, got[0].0, 5).is_empty());
}

#[test]
fn durations() {
    let cases = [
        ("15m", 900),
        ("1h30m", 5_400),
        ("90s", 90),
        ("2d", 172_800),
        ("1d2h3m4s", 93_784),
        (" 0s ", 0),
    ];
    for (text, secs) in cases {
        assert_eq!(
            parse_duration(text).unwrap(),
            Duration::from_secs(secs),
            "{text}"
        );
    }
    let errors = [
        ("", 0, "expected a duration"),
        ("15", 2, "expected a unit"),
        ("15x", 2, "unknown unit"),
        ("m", 0, "expected a number"),
        ("30m1h", 4, "largest to smallest"),
        ("1h1h", 3, "largest to smallest"),
        ("99999999999999999999s", 0, "too large"),
    ];
    for (text, offset, msg) in errors {
        let e = parse_duration(text).unwrap_err();
        assert_eq!(e.offset, offset, "{text}: {e}");
        assert!(e.message.contains(msg), "{text}: {e}");
    }
}

/// (input, byte offset, fragment of the message)
const ERRORS: &[(&str, usize, &str)] = &[
    ("", 0, "expected cron(...), rate(...) or at(...)"),
    (
        "every 5 minutes",
        0,
        "expected cron(...), rate(...) or at(...)",
    ),
    ("cronx(0 10 * * ? *)", 0, "unknown schedule type \"cronx\""),
    (" cronx(0 10 * * ? *)", 1, "unknown schedule type"),
    ("cron(0 10 * * ? *", 17, "expected ')'"),
    ("cron(0 10 * * ? *))", 17, "unexpected parenthesis"),
    ("cron(0 10 * * ?)", 15, "cron needs 6 fields"),
    ("cron(0 10 * * ? * *)", 18, "found 7"),
    ("cron(60 10 * * ? *)", 5, "minutes 60 is out of range 0-59"),
    ("cron(0 24 * * ? *)", 7, "hours 24 is out of range 0-23"),
    (
        "cron(0 10 32 * ? *)",
        10,
        "day-of-month 32 is out of range 1-31",
    ),
    ("cron(0 10 * 13 ? *)", 12, "month 13 is out of range 1-12"),
    (
        "cron(0 10 ? * 8 *)",
        14,
        "day-of-week 8 is out of range 1-7",
    ),
    (
        "cron(0 10 ? * 0 *)",
        14,
        "day-of-week 0 is out of range 1-7",
    ),
    (
        "cron(0 10 * * ? 1969)",
        16,
        "year 1969 is out of range 1970-2199",
    ),
    (
        "cron(0 10 * * ? 2200)",
        16,
        "year 2200 is out of range 1970-2199",
    ),
    ("cron(0 10 * * ? 2023-2022)", 16, "runs backwards"),
    (
        "cron(0 10 * * * *)",
        10,
        "one of day-of-month and day-of-week must be '?'",
    ),
    ("cron(0 10 1 * MON *)", 10, "must be '?'"),
    ("cron(0 10 ? * ? *)", 10, "cannot both be '?'"),
    (
        "cron(? 10 * * ? *)",
        5,
        "'?' is only allowed in day-of-month or day-of-week",
    ),
    (
        "cron(0 10 * JAN-FOO ? *)",
        16,
        "expected a month number or a name JAN-DEC, found \"FOO\"",
    ),
    ("cron(0/0 * * * ? *)", 7, "step 0 is out of range 1-60"),
    ("cron(*/x * * * ? *)", 7, "expected a step number"),
    (
        "cron(0 10 ? * 3#6 *)",
        16,
        "week number 6 is out of range 1-5",
    ),
    ("cron(0 10 ? * 3#1,6#3 *)", 15, "only one expression"),
    ("cron(0,,5 10 * * ? *)", 7, "empty item"),
    ("cron(*,5 10 * * ? *)", 5, "'*' cannot be combined"),
    ("cron(0 10 L5 * ? *)", 10, "'L' stands alone"),
    ("rate(0 minutes)", 5, "must be positive"),
    ("rate(1 minutes)", 7, "singular unit: rate(1 minute)"),
    ("rate(1 hours)", 7, "singular unit: rate(1 hour)"),
    ("rate(5 minute)", 7, "plural unit: rate(5 minutes)"),
    ("rate(2 day)", 7, "plural unit: rate(2 days)"),
    ("rate(5 weeks)", 7, "unknown unit \"weeks\""),
    ("rate(five minutes)", 5, "expected a positive whole number"),
    ("rate(-5 minutes)", 5, "expected a positive whole number"),
    ("rate(5)", 6, "expected a space"),
    ("rate(5 )", 7, "expected a unit"),
    ("rate(99999 days)", 5, "longer than 10000 days"),
    (
        "at(2022-13-20T13:00:00)",
        8,
        "month 13 is out of range 1-12",
    ),
    (
        "at(2022-02-30T13:00:00)",
        11,
        "day 30 does not exist in 2022-02",
    ),
    ("at(2022-11-20 13:00:00)", 13, "expected 'T'"),
    ("at(2022-11-20T13:00)", 19, "expected yyyy-mm-ddThh:mm:ss"),
    (
        "at(2022-11-20T13:00:00Z)",
        22,
        "unexpected text after the seconds",
    ),
    (
        "at(2022-11-20T24:00:00)",
        14,
        "hour 24 is out of range 0-23",
    ),
    ("at(1969-12-31T23:59:59)", 3, "year 1969 is out of range"),
    ("at(22-11-20T13:00:00)", 5, "expected a digit"),
];

#[test]
fn errors_carry_offsets_and_clear_messages() {
    for (input, offset, fragment) in ERRORS {
        let e = Expression::parse(input).expect_err(input);
        assert_eq!(e.offset, *offset, "{input:?}: {e}");
        assert!(
            e.message.contains(fragment),
            "{input:?}: got {e}, want {fragment:?}"
        );
        assert_eq!(e.code(), "schedule.expression");
        // The column in the rendered error is 1-based.
        assert!(
            e.to_string()
                .starts_with(&format!("at column {}:", offset + 1)),
            "{e}"
        );
    }
}

#[test]
fn schedule_parse_reports_unknown_zone() {
    let e = Schedule::parse("x", "rate(1 hour)", "Mars/Olympus").unwrap_err();
    assert_eq!(e.code(), "schedule.timezone");
    assert!(e.to_string().contains("Mars/Olympus"), "{e}");
    let e = Schedule::parse("x", "rate(1 hours)", "UTC").unwrap_err();
    assert_eq!(e.code(), "schedule.expression");
}
