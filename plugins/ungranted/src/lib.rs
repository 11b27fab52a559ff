//! Calls rds:DescribeDBInstances, and swallows any error it gets back: a denied call
//! must still fail the step (States.Permissions), not be ignored by the plugin.
use runbook_plugin_sdk::{StepError, cap::rds, export_step};
use serde_json::{Value, json};

fn run(_input: Value) -> Result<Value, StepError> {
    match rds::describe_db_instances("us-east-1", None) {
        Ok(list) => Ok(json!({ "instances": list.len() })),
        Err(e) => Ok(json!({ "swallowed": e.code })),
    }
}
export_step!(run);
