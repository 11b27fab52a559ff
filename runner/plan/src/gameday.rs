//! How a plan models the game-day capabilities: a fault is recorded (what would be
//! injected, where, and its undo), never injected; a traffic session is recorded and
//! modelled as a client that is steady before the fault and recovers after it, so the
//! plan walks the whole game day. The lever is read for real: a plan run while it is
//! engaged shows the refusal a real run would meet.

use runbook_caps::{CapCall, CapError};
use serde_json::{Value, json};

use crate::{Applied, Effect, Plan};

/// Times of the modelled session: steady before the modelled fault, recovered after.
const MODEL_START: &str = "2000-01-01T00:00:00.000Z";
const MODEL_FAULT: &str = "2000-01-01T00:00:10.000Z";
const MODEL_RECOVERED: &str = "2000-01-01T00:00:11.000Z";

/// `None` when the call is not a game-day call.
pub(crate) fn model(plan: &Plan, call: &CapCall) -> Option<Result<Applied, CapError>> {
    let a = |r: Value, e: Effect| Some(Ok(Applied::ok(r, e)));
    match (call.service.as_str(), call.action.as_str()) {
        ("fault", "GetLever") | ("fault", "DescribeFaults") => {
            // Answered by the runner's own journal (through the real provider chain).
            Some(Err(CapError::internal("read")))
        }
        ("fault", "InjectFault") => {
            let spec = call.arg("spec");
            let kind = spec["kind"].as_str().unwrap_or_default().to_string();
            let target = spec["target"].as_str().unwrap_or_default().to_string();
            let region = spec["region"].as_str().unwrap_or_default().to_string();
            let id = plan.new_id("fault");
            Some(Ok(Applied::ok(
                json!({
                    "id": id, "kind": kind, "target": target, "region": region,
                    "state": "active", "injected_at": MODEL_FAULT, "undone_at": null,
                    "details": json!({"modelled": true, "params": spec["params"]}).to_string(),
                }),
                Effect::Action,
            )
            .detail(format!("would inject {kind} on {target}"))))
        }
        ("fault", "UndoFault") => {
            let id: String = call.arg_as("id").unwrap_or_default();
            Some(Ok(Applied::ok(
                json!({
                    "id": id, "kind": "", "target": "", "region": "", "state": "undone",
                    "injected_at": MODEL_FAULT, "undone_at": MODEL_RECOVERED, "details": "{}",
                }),
                Effect::Action,
            )
            .detail(format!("would undo {id}"))))
        }
        ("traffic", "StartSession") => {
            let spec = call.arg("spec");
            let id = plan.new_id("traffic");
            Some(Ok(Applied::ok(session(&id, "running"), Effect::Create)
                .detail(format!(
                    "would write {} rows/s through {} over {} connections",
                    spec["writes_per_second"], spec["target"]["endpoint"], spec["connections"]
                ))))
        }
        ("traffic", "StopSession") => {
            let id: String = call.arg_as("id").unwrap_or_default();
            a(session(&id, "stopped"), Effect::Action)
        }
        ("traffic", "DescribeSession") => {
            let id: String = call.arg_as("id").unwrap_or_default();
            a(session(&id, "running"), Effect::Action)
        }
        ("traffic", "VerifySession") => a(
            json!({"checked": 0, "acked_missing": [], "unknown_present": 0, "unknown_absent": 0}),
            Effect::Action,
        ),
        ("traffic", "MeasureSession") => a(
            json!(
                json!({"modelled": true, "rto-seconds": null, "lost-writes": 0, "verified": true})
                    .to_string()
            ),
            Effect::Action,
        ),
        _ => None,
    }
}

fn session(id: &str, state: &str) -> Value {
    json!({
        "id": id, "state": state, "started_at": MODEL_START, "stopped_at": null,
        "writes_sent": 1000, "acked": 1000, "failed": 0, "unknown": 0,
        "reads_ok": 0, "reads_failed": 0, "last_ack_at": MODEL_RECOVERED,
        "last_error_at": null, "last_error": null, "acked_since_error": 1000,
        "replica_lag_seconds": null,
    })
}
