//! JSON, JUnit and Markdown renderings of a realistic game day, read back with real parsers.

mod common;

use runbook_report::{
    Format, GameDay, SCHEMA_ID, Verdict, parse_json, render, render_all, render_json, render_junit,
    render_markdown,
};

#[test]
fn json_round_trips_with_schema_and_verdict() {
    let g = common::small();
    let text = render_json(&g);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema"], SCHEMA_ID);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["lost_writes"], v["measured"]["lost_writes"]);
    assert_eq!(v["missed_targets"][0], "RTO 12.4 s exceeds target 5 s");
    assert_eq!(v["reasons"][1], "check failed: topology restored");
    assert_eq!(v["series"]["writes"].as_array().unwrap().len(), 90);
    let back: GameDay = parse_json(&text).unwrap();
    assert!(
        back == g,
        "the report read back differs from the one written"
    );

    // The timeline: each event at an RFC 3339 UTC instant with milliseconds, by name.
    let timeline = v["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), g.timeline.len());
    for (e, want) in timeline.iter().zip(&g.timeline) {
        let at = e["at"].as_str().unwrap();
        let parsed =
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|err| panic!("{at}: {err}"));
        assert!(
            at.ends_with('Z') && at.len() == "2025-12-06T22:00:00.000Z".len(),
            "{at}"
        );
        assert_eq!(
            (parsed.unix_timestamp_nanos() / 1_000_000) as i64,
            want.at_ms
        );
        assert_eq!(e["event"], want.event.as_str());
    }
    assert!(timeline.iter().any(|e| e["event"] == "fault_injected"));

    // A report written before events had names (no `at`, no `event`) still reads.
    let mut old: serde_json::Value = v.clone();
    for e in old["timeline"].as_array_mut().unwrap() {
        let e = e.as_object_mut().unwrap();
        e.remove("at");
        e.remove("event");
    }
    let back = parse_json(&old.to_string()).unwrap();
    assert_eq!(back.timeline.len(), g.timeline.len());
    assert!(back.timeline.iter().all(|e| e.event.is_empty()));

    let wrong = text.replace(SCHEMA_ID, "runbook.gameday.report/v0");
    assert_eq!(
        parse_json(&wrong).unwrap_err().code(),
        "report.wrong_schema"
    );
    assert_eq!(parse_json("{").unwrap_err().code(), "report.bad_json");
}

#[test]
fn junit_has_one_case_per_target_and_check_and_fails_the_missed_ones() {
    let g = common::small();
    let xml = render_junit(&g);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    // RTO, lost writes, RPO, 3 checks, execution.
    assert_eq!(cases.len(), 3 + g.checks.len() + 1);
    assert_eq!(
        suite.attribute("tests"),
        Some(cases.len().to_string().as_str())
    );
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    let failed_checks = g.checks.iter().filter(|c| !c.passed).count();
    assert_eq!(failed.len(), g.missed_targets().len() + failed_checks);
    assert_eq!(
        failed,
        vec!["target: RTO <= 5 s", "check: topology restored"]
    );
    assert_eq!(suite.attribute("failures"), Some("2"));
    let rto = cases[0]
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(
        rto.attribute("message"),
        Some("RTO 12.4 s exceeds target 5 s")
    );
    // User text survives escaping intact.
    let topo = cases
        .iter()
        .find(|c| c.attribute("name") == Some("check: topology restored"))
        .unwrap();
    let msg = topo
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap()
        .attribute("message")
        .unwrap();
    assert!(msg.ends_with("after <script>alert(1)</script>"), "{msg}");
    let props: Vec<_> = suite
        .descendants()
        .filter(|n| n.has_tag_name("property"))
        .collect();
    assert!(props.iter().any(|p| p.attribute("name") == Some("verdict") && p.attribute("value") == Some("FAIL")));
}

#[test]
fn junit_skips_unmeasured_targets_of_an_aborted_run() {
    let mut g = common::small();
    g.status = "ABORTED".into();
    g.measured.rto_seconds = None;
    g.checks.retain(|c| c.passed);
    assert_eq!(g.verdict(), Verdict::Inconclusive);
    let xml = render_junit(&g);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    let skipped = doc
        .descendants()
        .filter(|n| n.has_tag_name("skipped"))
        .count();
    assert_eq!(failures, 0);
    assert_eq!(skipped, 2, "RTO and the execution itself: {xml}");
}

#[test]
fn markdown_summarises_and_escapes() {
    let g = common::small();
    let md = render_markdown(&g);
    assert!(
        md.starts_with("## ❌ Game day FAIL: gameday \\<region-loss\\> on `dev`"),
        "{md}"
    );
    assert!(md.contains(
        "**Why:**\n- RTO 12.4 s exceeds target 5 s\n- check failed: topology restored\n"
    ));
    assert!(md.contains("| RTO (client-seen) | ≤ 5 s | 12.4 s | ❌ |"));
    assert!(md.contains("| topology restored | ❌ |"));
    assert!(!md.contains("<script>"), "raw HTML leaked: {md}");
    assert!(md.contains("Phases: steady-state (T+0.0 s 24.5 s, SUCCEEDED) → inject"));
    assert!(
        md.contains(
            "Milestones: fault T+25.0 s → client error T+25.7 s → detected T+28.0 s → promote T+29.1 s → recovered T+37.4 s → failback done T+60.0 s"
        ),
        "{md}"
    );
    // Every table row has the same number of cells as its header.
    for line in md.lines().filter(|l| l.starts_with('|')) {
        let cells = line.replace("\\|", "").matches('|').count();
        assert!(cells == 5 || cells == 4, "{line}");
    }
}

#[test]
fn render_all_writes_every_format() {
    let g = common::small();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/report");
    let paths = render_all(&g, &out).unwrap();
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["report.json", "report.html", "junit.xml", "report.md"]
    );
    for (p, f) in paths.iter().zip(Format::ALL) {
        assert_eq!(std::fs::read_to_string(p).unwrap(), render(&g, f));
    }
}

#[test]
fn a_ten_minute_game_day_stays_a_small_page() {
    // 30,000 ledger entries become 600 buckets: the page size follows the duration, not
    // the write rate.
    let g = common::game_day(&common::Sim {
        seconds: 600,
        writes_per_s: 50,
        fault_at_s: 240,
        outage_ms: 4_200,
        failback_at_s: 420,
    });
    assert_eq!(g.series.writes.len(), 600);
    assert_eq!(g.verdict(), runbook_report::Verdict::Fail); // the failed check
    assert!(g.missed_targets().is_empty());
    let html = runbook_report::render_html(&g);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report-10min.html"), &html).unwrap();
    assert!(html.len() < 400_000, "{} bytes", html.len());
}
