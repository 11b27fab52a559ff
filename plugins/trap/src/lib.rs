//! Traps when asked to (`{"trap": true}`), else fails with a plain step error.
use runbook_plugin_sdk::{StepError, export_step};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Input {
    #[serde(default = "yes")]
    trap: bool,
}
fn yes() -> bool {
    true
}

fn run(input: Input) -> Result<Value, StepError> {
    if input.trap {
        // A real trap (wasm `unreachable`), not a Rust-level error.
        std::process::abort();
    }
    Err(StepError::new("Test.Failed", "asked to fail without trapping"))
}
export_step!(run);
