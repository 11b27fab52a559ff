//! Game-day faults, in the manner of AWS FIS actions: inject and undo through the
//! granted `fault` capability (deny by default, listed by `runbook plan`), and check
//! the safety lever first. The host refuses injection while the lever is engaged
//! (`LeverEngaged`); `Lever` lets a runbook stop before it starts anything.
use runbook_plugin_sdk::cap::fault;
use runbook_plugin_sdk::{StepError, export_step, info, warn};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(tag = "Op")]
enum Op {
    /// Fails `GameDay.LeverEngaged` while the lever is engaged.
    Lever,
    Inject {
        #[serde(rename = "Kind")]
        kind: String,
        #[serde(rename = "Target")]
        target: String,
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Params", default)]
        params: Value,
        /// Injecting again with the same token returns the same fault (resume-safe).
        #[serde(rename = "Token")]
        token: String,
    },
    Undo {
        #[serde(rename = "FaultId")]
        fault_id: String,
    },
}

fn json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn run(op: Op) -> Result<Value, StepError> {
    match op {
        Op::Lever => {
            let lever = fault::get_lever()?;
            if lever.engaged {
                return Err(StepError::new(
                    "GameDay.LeverEngaged",
                    format!(
                        "the safety lever is engaged ({}); release it with `runbook lever release`",
                        lever.reason.unwrap_or_default()
                    ),
                ));
            }
            Ok(json(&lever))
        }
        Op::Inject { kind, target, region, params, token } => {
            let params = if params.is_null() { "{}".to_string() } else { params.to_string() };
            let f = fault::inject_fault(&fault::FaultSpec { kind, target, region, params, client_token: token })?;
            warn!("fault {} injected: {} on {} ({})", f.id, f.kind, f.target, f.region);
            Ok(json(&f))
        }
        Op::Undo { fault_id } => {
            let f = fault::undo_fault(&fault_id)?;
            info!("fault {} undone", f.id);
            Ok(json(&f))
        }
    }
}

export_step!(run);
