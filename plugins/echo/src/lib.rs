//! Returns its input unchanged: the smallest possible step, used by benchmarks and tests.
use runbook_plugin_sdk::{StepError, export_step};
use serde_json::Value;

fn run(input: Value) -> Result<Value, StepError> {
    Ok(input)
}
export_step!(run);
