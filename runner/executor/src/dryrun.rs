//! `runbook plan --provider P`: walk a runbook with every Task run for real against a
//! [`runbook_plan::Plan`] (reads reach the provider, mutating calls are recorded and
//! answered from the plan's overlay), on the engine's virtual clock so Waits and Retry
//! back-offs cost nothing. Nothing is journaled: a plan is not an execution.

use std::sync::Arc;

use runbook_engine::sim::{SimOptions, SimResult, TaskCall, TaskOutcome};
use runbook_host::{Limits, RunRequest, TracingObserver};
use runbook_journal::now_ms;
use runbook_plan::{Plan, PlannedCall};
use serde::Serialize;
use serde_json::Value;

use crate::{LazyProvider, Prepared, RunError, Runner, status_name};

/// The walk's events are bounded so a runbook that would poll forever (a resource that
/// never becomes ready) ends the plan instead of spinning.
const MAX_EVENTS: usize = 100_000;

/// What a plan found.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub provider: String,
    /// How the walk ended: `SUCCEEDED`, or `FAILED` with the error a real run would
    /// most likely meet at the same point.
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Reads made against the provider.
    pub reads: usize,
    /// Task states run, in order, with `ok` or the error they ended with.
    pub steps: Vec<PlanStep>,
    /// The mutating calls the runbook would make, in order.
    pub calls: Vec<PlannedCall>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub state: String,
    pub attempt: u32,
    pub result: String,
}

impl Runner {
    /// Plan `prepared` against `provider` (the runbook's own, else `local`). Blocks:
    /// call it outside the runtime whose `handle` runs the plugins. Child executions
    /// are planned too, against the same plan, so a game day's plan lists what its
    /// failover would do.
    pub fn plan(
        &self,
        prepared: &Prepared,
        input: Value,
        provider: Option<&str>,
        handle: &tokio::runtime::Handle,
    ) -> Result<PlanReport, RunError> {
        let provider_name = self.provider_name(prepared, provider);
        let plan = Plan::new(crate::services::HostServices::for_plan(
            self.clone(),
            LazyProvider::new(provider_name.clone(), self.providers.clone()),
        ));
        let mut steps = Vec::new();
        let result = self.plan_walk(prepared, input, &plan, handle, &mut steps, "", 0)?;
        Ok(PlanReport {
            provider: provider_name,
            status: status_name(result.status).to_string(),
            output: result.output,
            error: result.error,
            cause: result.cause,
            reads: plan.reads(),
            steps,
            calls: plan.calls(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_walk(
        &self,
        prepared: &Prepared,
        input: Value,
        plan: &Arc<Plan>,
        handle: &tokio::runtime::Handle,
        steps: &mut Vec<PlanStep>,
        prefix: &str,
        depth: usize,
    ) -> Result<SimResult, RunError> {
        let host = self.host()?.clone();
        let observer: Arc<dyn runbook_host::Observer> = Arc::new(TracingObserver);
        let name = prepared
            .runbook
            .meta
            .name
            .clone()
            .unwrap_or_else(|| "plan".into());
        let opts = SimOptions {
            context: self.context("plan", &name, now_ms()),
            seed: now_ms() as u64,
            max_events: MAX_EVENTS,
            record_history: false,
            ..SimOptions::default()
        };
        let mut run_task = |t: &TaskCall| -> TaskOutcome {
            let state = format!("{prefix}{}", t.state_path);
            let outcome = match prepared.task_for(&t.state_path, &t.state_name, &t.resource) {
                None => TaskOutcome::err(
                    "States.Runtime",
                    format!("state '{}': no prepared plugin for this Task", t.state_path),
                ),
                Some(crate::PreparedTask {
                    runs: crate::Runs::Child { json_output, child },
                    ..
                }) => self.plan_child(
                    child.as_deref(),
                    *json_output,
                    prepared,
                    &t.input,
                    plan,
                    handle,
                    steps,
                    &format!("{state}>"),
                    depth,
                ),
                Some(crate::PreparedTask {
                    runs: crate::Runs::Plugin { plugin, grants },
                    ..
                }) => {
                    let request = RunRequest {
                        state: state.clone(),
                        input: t.input.to_string(),
                        grants: grants.clone(),
                        limits: Limits {
                            deadline: self.config.default_task_deadline,
                            memory_bytes: self.config.plugin_memory_bytes,
                        },
                        provider: plan.for_state(&state),
                        observer: observer.clone(),
                    };
                    match handle.block_on(host.run(plugin, request)) {
                        Ok(out) => match serde_json::from_str::<Value>(&out) {
                            Ok(v) => TaskOutcome::ok(v),
                            Err(e) => TaskOutcome::err(
                                "States.Runtime",
                                format!("plugin output is not JSON: {e}"),
                            ),
                        },
                        Err(f) => TaskOutcome::err(f.error, f.cause),
                    }
                }
            };
            steps.push(PlanStep {
                state,
                attempt: t.attempt,
                result: match &outcome.result {
                    Ok(_) => "ok".into(),
                    Err((e, _)) => e.clone(),
                },
            });
            outcome
        };
        Ok(runbook_engine::sim::run_with(
            prepared.runbook.machine.clone(),
            input,
            opts,
            &mut run_task,
        ))
    }

    /// A child execution in a plan: its own walk, on the same plan.
    #[allow(clippy::too_many_arguments)]
    fn plan_child(
        &self,
        child: Option<&Prepared>,
        json_output: bool,
        parent: &Prepared,
        task_input: &Value,
        plan: &Arc<Plan>,
        handle: &tokio::runtime::Handle,
        steps: &mut Vec<PlanStep>,
        prefix: &str,
        depth: usize,
    ) -> TaskOutcome {
        if depth >= 8 {
            return TaskOutcome::err("States.Runtime", "child executions nested too deep");
        }
        let loaded;
        let child = match child {
            Some(c) => c,
            None => {
                let arn = task_input
                    .get("StateMachineArn")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let prepared = crate::resolve_child_path(&parent.base_dir(), arn)
                    .map_err(RunError::Invalid)
                    .and_then(|p| self.prepare(&p));
                match prepared {
                    Ok(p) => {
                        loaded = p;
                        &loaded
                    }
                    Err(e) => return TaskOutcome::err("States.TaskFailed", e.to_string()),
                }
            }
        };
        let input = match task_input.get("Input") {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            // No Input: Step Functions starts the execution with `{}`.
            None => Value::Object(Default::default()),
        };
        let input = match runbook_engine::build_input(&child.runbook.meta, input, &[]) {
            Ok(i) => i,
            Err(e) => return TaskOutcome::err("States.TaskFailed", e.to_string()),
        };
        let r = match self.plan_walk(child, input.clone(), plan, handle, steps, prefix, depth + 1) {
            Ok(r) => r,
            Err(e) => return TaskOutcome::err("States.TaskFailed", e.to_string()),
        };
        let payload = |v: Value| {
            if json_output {
                v
            } else {
                Value::String(v.to_string())
            }
        };
        let described = serde_json::json!({
            "Name": "plan",
            "Status": status_name(r.status),
            "Input": payload(input),
            "Output": payload(r.output.clone().unwrap_or(Value::Null)),
            "Error": r.error,
            "Cause": r.cause,
        });
        if r.status == runbook_engine::Status::Succeeded {
            TaskOutcome::ok(described)
        } else {
            TaskOutcome::err("States.TaskFailed", described.to_string())
        }
    }
}
