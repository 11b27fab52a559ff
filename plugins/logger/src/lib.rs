//! Logs at every level and writes to stdout/stderr, including control characters that
//! the host must sanitize before they reach a terminal or the journal.
use runbook_plugin_sdk::{StepError, export_step, log};
use serde_json::{Value, json};

fn run(input: Value) -> Result<Value, StepError> {
    log::debug("debug line");
    log::info(&format!("hello from logger, input={input}"));
    log::warn("warn line with \u{1b}[31mescape\u{1b}[0m");
    log::error("error line");
    println!("stdout line \u{7}bell");
    eprintln!("stderr line");
    Ok(json!({ "logged": 4 }))
}
export_step!(run);
