//! Loops forever without calling the host: only epoch interruption can stop it.
use runbook_plugin_sdk::{StepError, export_step};
use serde_json::Value;

fn run(_input: Value) -> Result<Value, StepError> {
    let mut x: u64 = 0;
    loop {
        // black_box keeps the optimiser from proving the loop has no effect.
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
export_step!(run);
