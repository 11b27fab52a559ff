//! The example runbooks in runbooks/examples run through the engine (simulated clock, no
//! plugins): happy paths and the failures they are written to report.

use runbook_engine::sim;
use runbook_engine::{Status, Timestamp, parse_runbook};
use serde_json::{Value, json};
use std::time::Duration;

fn tour() -> runbook_engine::Runbook {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../runbooks/examples/jsonata-tour.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    parse_runbook("jsonata-tour.yaml", &text).unwrap_or_else(|d| panic!("{d}"))
}

fn run(input: Value) -> sim::SimResult {
    let rb = tour();
    sim::run(rb.machine.clone(), input, &mut |c| {
        panic!("the tour calls no task, got {}", c.state_name)
    })
}

fn elapsed(r: &sim::SimResult) -> Duration {
    r.end_time
        .since(Timestamp::parse("2024-01-01T00:00:00Z").unwrap())
}

#[test]
fn jsonata_tour_promotes_the_least_lagging_healthy_replica() {
    let r = run(json!({
        "Replicas": [
            {"name": "db-a", "lagSeconds": 12.5},
            {"name": "db-b", "lagSeconds": 2},
            {"name": "db-c", "lagSeconds": 45},
        ],
        "MaxLagSeconds": 30,
    }));
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    assert_eq!(
        r.output,
        Some(json!({
            "promote": "db-b",
            "lagSeconds": 2,
            "considered": 3,
            "others": ["db-a", "db-c"],
        }))
    );
    // CatchUp waited the chosen replica's lag (2 s, under the 3 s cap).
    assert_eq!(elapsed(&r), Duration::from_secs(2));
}

#[test]
fn jsonata_tour_fails_with_computed_error_and_cause() {
    // Every replica over the lag budget.
    let r = run(json!({
        "Replicas": [{"name": "db-a", "lagSeconds": 40}, {"name": "db-b", "lagSeconds": 90}],
        "MaxLagSeconds": 30,
    }));
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("Failover.NoHealthyReplica"));
    assert_eq!(
        r.cause.as_deref(),
        Some("no replica within 30 s of lag: db-a 40 s, db-b 90 s")
    );

    // A malformed input never reaches the Map.
    let r = run(json!({"Replicas": "db-a"}));
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("Input.Invalid"));
    assert_eq!(
        r.cause.as_deref(),
        Some("Replicas must be a non-empty list of {name, lagSeconds}, got db-a")
    );
    let r = run(json!({}));
    assert_eq!(r.error.as_deref(), Some("Input.Missing"));
}
