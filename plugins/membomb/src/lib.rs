//! Allocates and touches memory until something stops it.
use runbook_plugin_sdk::{StepError, export_step};
use serde_json::Value;

fn run(_input: Value) -> Result<Value, StepError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}
export_step!(run);
