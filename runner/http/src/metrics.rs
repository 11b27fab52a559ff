//! `/metrics`: a fresh registry per scrape, filled from the [`Status`] snapshot and
//! encoded by the `prometheus` crate in the Prometheus text format 0.0.4 (the format
//! `promtool check metrics` lints; see the crate docs for why not OpenMetrics).

use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::model::Status;

/// Content type of [`render_metrics`]' output.
pub const METRICS_CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Duration buckets from 1 s to 1 h: a quick runbook takes seconds, a failover with a
/// replica catching up minutes, a game day up to an hour.
const DURATION_BUCKETS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// Verdicts always exported (state-set style) so an alert on `verdict="failed"` has a
/// series to read even before the first failure.
const VERDICTS: [&str; 4] = ["healthy", "suspect", "failed", "unknown"];

/// Builds each metric family and registers it; the definitions are static, so a
/// failure here is a programming error.
struct Builder {
    registry: Registry,
}

impl Builder {
    fn register<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        self.registry
            .register(Box::new(c.clone()))
            .expect("metric names are unique and valid");
        c
    }

    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"))
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.register(GaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"))
    }
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Renders the metrics for one snapshot, in Prometheus text format.
pub fn render_metrics(status: &Status) -> String {
    let b = Builder {
        registry: Registry::new(),
    };

    b.gauge(
        "runbook_build_info",
        "Always 1; the version label names the runbook build serving these metrics.",
        &["version"],
    )
    .with_label_values(&[status.version.as_str()])
    .set(1.0);
    b.gauge(
        "runbook_safety_lever_engaged",
        "1 while the safety lever is engaged (no automatic action runs), else 0.",
        &[],
    )
    .with_label_values::<&str>(&[])
    .set(bool_value(status.lever.is_some()));

    let executions = b.counter(
        "runbook_executions_total",
        "Executions recorded in the journal, by runbook and status.",
        &["runbook", "status"],
    );
    for c in &status.execution_counts {
        executions
            .with_label_values(&[c.runbook.as_str(), c.status.as_str()])
            .inc_by(c.count);
    }
    let durations = b.register(
        HistogramVec::new(
            HistogramOpts::new(
                "runbook_execution_duration_seconds",
                "Wall-clock duration of finished executions, by runbook.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["runbook"],
        )
        .expect("valid histogram"),
    );
    for d in &status.durations {
        durations
            .with_label_values(&[d.runbook.as_str()])
            .observe(d.seconds);
    }

    watchers(&b, status);
    schedules(&b, status);

    let ready = b.gauge(
        "runbook_readiness_ready",
        "1 when the environment is ready to fail over (replica healthy, plan valid), else 0.",
        &["environment"],
    );
    for r in &status.readiness {
        ready
            .with_label_values(&[r.environment.as_str()])
            .set(bool_value(r.ready));
    }

    if let Some(f) = &status.fleet {
        b.gauge(
            "runbook_fleet_quorum",
            "Fleet mode: 1 while this runner's etcd lease requests are answered, else 0.",
            &[],
        )
        .with_label_values::<&str>(&[])
        .set(bool_value(f.quorum));
        b.gauge(
            "runbook_fleet_lease_valid",
            "Fleet mode: 1 while this runner's lease is alive by its local deadline (it may act), else 0.",
            &[],
        )
        .with_label_values::<&str>(&[])
        .set(bool_value(f.lease_valid));
        let errors = b.counter(
            "runbook_fleet_etcd_errors_total",
            "Fleet mode: etcd request errors seen by this runner, by stable code.",
            &["code"],
        );
        for (code, n) in &f.errors {
            errors.with_label_values(&[code.as_str()]).inc_by(*n);
        }
    }

    if let Some(last) = status.gamedays.first() {
        let gauge = |name: &str, help: &str, v: f64| {
            b.gauge(name, help, &[])
                .with_label_values::<&str>(&[])
                .set(v)
        };
        gauge(
            "runbook_gameday_last_timestamp_seconds",
            "Start of the last game day, Unix seconds.",
            last.started_ms as f64 / 1000.0,
        );
        gauge(
            "runbook_gameday_last_pass",
            "1 when the last game day passed, else 0.",
            bool_value(last.verdict == "pass"),
        );
        if let Some(rto) = last.rto_seconds {
            gauge(
                "runbook_gameday_last_rto_seconds",
                "Recovery time measured by the last game day.",
                rto,
            );
        }
        if let Some(lost) = last.lost_writes {
            gauge(
                "runbook_gameday_last_lost_writes",
                "Acknowledged writes missing after the last game day's failover.",
                lost as f64,
            );
        }
    }

    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&b.registry.gather(), &mut out)
        .expect("encoding to memory cannot fail");
    String::from_utf8(out).expect("the text encoder writes UTF-8")
}

fn watchers(b: &Builder, status: &Status) {
    let up = b.gauge(
        "runbook_watcher_up",
        "1 while the environment's watcher runs rounds (mode not off, not paused), else 0.",
        &["environment", "mode"],
    );
    let failures = b.gauge(
        "runbook_watcher_consecutive_failures",
        "Failed health rounds in a row for the environment.",
        &["environment"],
    );
    let needed = b.gauge(
        "runbook_watcher_failed_rounds_needed",
        "Failed rounds in a row that make the watcher's verdict failed.",
        &["environment"],
    );
    let verdict = b.gauge(
        "runbook_watcher_verdict",
        "1 for the watcher's current verdict, 0 for the others.",
        &["environment", "verdict"],
    );
    let failovers = b.counter(
        "runbook_watcher_failovers_total",
        "Failovers the watcher started for the environment.",
        &["environment"],
    );
    let last_round = b.gauge(
        "runbook_watcher_last_round_timestamp_seconds",
        "End of the watcher's last health round, Unix seconds.",
        &["environment"],
    );
    for w in &status.watchers {
        let env = w.environment.as_str();
        up.with_label_values(&[env, w.mode.as_str()])
            .set(bool_value(w.mode != "off" && w.paused.is_none()));
        failures
            .with_label_values(&[env])
            .set(w.consecutive_failures as f64);
        needed
            .with_label_values(&[env])
            .set(w.failed_rounds_needed as f64);
        for v in VERDICTS {
            verdict
                .with_label_values(&[env, v])
                .set(bool_value(w.verdict == v));
        }
        if !VERDICTS.contains(&w.verdict.as_str()) {
            verdict
                .with_label_values(&[env, w.verdict.as_str()])
                .set(1.0);
        }
        failovers
            .with_label_values(&[env])
            .inc_by(w.failovers_total);
        if let Some(ms) = w.last_round_ms {
            last_round.with_label_values(&[env]).set(ms as f64 / 1000.0);
        }
    }
}

fn schedules(b: &Builder, status: &Status) {
    let next = b.gauge(
        "runbook_schedule_next_fire_timestamp_seconds",
        "When the schedule fires next, Unix seconds (absent when it never will).",
        &["schedule"],
    );
    let paused = b.gauge(
        "runbook_schedule_paused",
        "1 while the schedule is paused, else 0.",
        &["schedule"],
    );
    let fires = b.counter(
        "runbook_schedule_fires_total",
        "Schedule occurrences by outcome: fired, skipped (overlap or lever) or missed (server down).",
        &["schedule", "outcome"],
    );
    for s in &status.schedules {
        let name = s.name.as_str();
        if let Some(ms) = s.next_fire_unix_ms {
            next.with_label_values(&[name]).set(ms as f64 / 1000.0);
        }
        paused
            .with_label_values(&[name])
            .set(bool_value(s.paused.is_some()));
        for (outcome, n) in [
            ("fired", s.fired_total),
            ("skipped", s.skipped_total),
            ("missed", s.missed_total),
        ] {
            fires.with_label_values(&[name, outcome]).inc_by(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn families_and_values_follow_the_snapshot() {
        let status = Status {
            version: "0.1.0".into(),
            lever: Some("maintenance".into()),
            execution_counts: vec![ExecutionCount {
                runbook: "failover".into(),
                status: "succeeded".into(),
                count: 3,
            }],
            durations: vec![
                DurationSample {
                    runbook: "failover".into(),
                    status: "succeeded".into(),
                    seconds: 42.0,
                },
                DurationSample {
                    runbook: "failover".into(),
                    status: "failed".into(),
                    seconds: 7.0,
                },
            ],
            watchers: vec![WatcherView {
                environment: "prod".into(),
                mode: "auto".into(),
                verdict: "suspect".into(),
                consecutive_failures: 2,
                failed_rounds_needed: 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render_metrics(&status);
        for line in [
            "# TYPE runbook_executions_total counter",
            "runbook_executions_total{runbook=\"failover\",status=\"succeeded\"} 3",
            "runbook_safety_lever_engaged 1",
            "runbook_execution_duration_seconds_bucket{runbook=\"failover\",le=\"10\"} 1",
            "runbook_execution_duration_seconds_bucket{runbook=\"failover\",le=\"60\"} 2",
            "runbook_execution_duration_seconds_sum{runbook=\"failover\"} 49",
            "runbook_watcher_verdict{environment=\"prod\",verdict=\"suspect\"} 1",
            "runbook_watcher_verdict{environment=\"prod\",verdict=\"healthy\"} 0",
            "runbook_watcher_consecutive_failures{environment=\"prod\"} 2",
            "runbook_watcher_up{environment=\"prod\",mode=\"auto\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // No game day yet: no game-day gauge pretends a value.
        assert!(!text.contains("runbook_gameday_"), "{text}");
        // Not in fleet mode: no fleet gauge.
        assert!(!text.contains("runbook_fleet_"), "{text}");
    }

    #[test]
    fn fleet_gauges_when_in_fleet_mode() {
        let status = Status {
            fleet: Some(FleetView {
                runner_id: "eu-1".into(),
                lease_valid: false,
                quorum: false,
                errors: vec![("fleet.unavailable".into(), 4)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = render_metrics(&status);
        for line in [
            "# TYPE runbook_fleet_quorum gauge",
            "runbook_fleet_quorum 0",
            "runbook_fleet_lease_valid 0",
            "# TYPE runbook_fleet_etcd_errors_total counter",
            "runbook_fleet_etcd_errors_total{code=\"fleet.unavailable\"} 4",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
