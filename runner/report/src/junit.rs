//! JUnit XML: one test case per target and per check, so CI dashboards track game days.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::GameDay;
use crate::model::{fmt_opt_secs, fmt_secs, fmt_utc};

fn failure(message: String) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
    s.set_message(message);
    s
}

fn skipped(message: &str) -> TestCaseStatus {
    let mut s = TestCaseStatus::skipped();
    s.set_message(message);
    s
}

/// A target's case: failure when missed, skipped when the run did not measure it.
fn target_case(name: String, measured: bool, missed: Option<&String>, detail: String) -> TestCase {
    let status = match (missed, measured) {
        (Some(m), _) => failure(m.clone()),
        (None, true) => TestCaseStatus::success(),
        (None, false) => skipped("not measured"),
    };
    let mut c = TestCase::new(name, status);
    c.set_classname("gameday.targets");
    c.set_system_out(detail);
    c
}

/// JUnit XML: suite `gameday.<runbook>`, cases `target: ...`, `check: ...` and
/// `execution`. Failures: missed targets, failed checks, a FAILED execution.
pub fn render_junit(g: &GameDay) -> String {
    let missed = g.missed_targets();
    let find = |prefix: &str| missed.iter().find(|m| m.starts_with(prefix));
    let (t, m) = (&g.targets, &g.measured);
    let mut suite = TestSuite::new(format!("gameday.{}", g.runbook));
    for (k, v) in [
        ("execution_id", g.execution_id.clone()),
        ("provider", g.provider.clone()),
        ("environment", g.environment.clone().unwrap_or_default()),
        ("fault", format!("{} on {}", g.fault.kind, g.fault.target)),
        ("started", fmt_utc(g.started_ms)),
        ("verdict", g.verdict().to_string()),
    ] {
        suite.add_property(Property::new(k, v));
    }
    if let Some(end) = g.finished_ms {
        suite.set_time(Duration::from_millis((end - g.started_ms).max(0) as u64));
    }

    // RTO is also "missed" when never reached, so match both message shapes.
    let rto_missed = find("RTO ");
    suite.add_test_case(target_case(
        format!("target: RTO <= {}", fmt_secs(t.rto_seconds)),
        m.rto_seconds.is_some() || rto_missed.is_some(),
        rto_missed,
        format!("measured RTO: {}", fmt_opt_secs(m.rto_seconds)),
    ));
    suite.add_test_case(target_case(
        format!("target: lost acknowledged writes <= {}", t.max_lost_writes),
        g.measured_anything(),
        missed
            .iter()
            .find(|s| s.contains("acknowledged write") && s.contains("lost")),
        format!(
            "lost {} of {} acknowledged writes; ids: {:?}",
            m.lost_writes, m.acked_writes, m.lost_ids
        ),
    ));
    if let Some(rpo) = t.rpo_seconds {
        suite.add_test_case(target_case(
            format!("target: RPO <= {}", fmt_secs(rpo)),
            m.rpo_seconds.is_some(),
            find("RPO "),
            format!("measured RPO: {}", fmt_opt_secs(m.rpo_seconds)),
        ));
    }
    for c in &g.checks {
        let status = if c.passed {
            TestCaseStatus::success()
        } else {
            failure(if c.detail.is_empty() {
                "check failed".to_string()
            } else {
                c.detail.clone()
            })
        };
        let mut case = TestCase::new(format!("check: {}", c.name), status);
        case.set_classname("gameday.checks");
        if !c.detail.is_empty() {
            case.set_system_out(c.detail.clone());
        }
        suite.add_test_case(case);
    }
    let status = match g.status.as_str() {
        "SUCCEEDED" => TestCaseStatus::success(),
        "FAILED" => failure(
            g.errors
                .first()
                .cloned()
                .unwrap_or_else(|| "execution FAILED".to_string()),
        ),
        other => skipped(&format!("execution {other}")),
    };
    let mut case = TestCase::new("execution", status);
    case.set_classname("gameday");
    if let Some(end) = g.finished_ms {
        case.set_time(Duration::from_millis((end - g.started_ms).max(0) as u64));
    }
    if !g.errors.is_empty() {
        case.set_system_err(g.errors.join("\n"));
    }
    suite.add_test_case(case);

    let mut report = Report::new(format!("runbook gameday {}", g.execution_id));
    report.add_test_suite(suite);
    // Serialising to memory only fails on I/O, which a String cannot produce.
    report.to_string().expect("junit serialises")
}
