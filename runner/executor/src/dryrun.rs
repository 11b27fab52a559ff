//! `runbook plan --provider P`: walk a runbook with every Task run for real against a
//! [`runbook_plan::Plan`] (reads reach the provider, mutating calls are recorded and
//! answered from the plan's overlay), on the engine's virtual clock so Waits and Retry
//! back-offs cost nothing. Nothing is journaled: a plan is not an execution.

use std::sync::Arc;

use runbook_engine::sim::{SimOptions, TaskCall, TaskOutcome};
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
    /// call it outside the runtime whose `handle` runs the plugins.
    pub fn plan(
        &self,
        prepared: &Prepared,
        input: Value,
        provider: Option<&str>,
        handle: &tokio::runtime::Handle,
    ) -> Result<PlanReport, RunError> {
        let provider_name = self.provider_name(prepared, provider);
        let plan = Plan::new(LazyProvider::new(
            provider_name.clone(),
            self.providers.clone(),
        ));
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
        let mut steps = Vec::new();
        let mut run_task = |t: &TaskCall| -> TaskOutcome {
            let outcome = match prepared.task_for(&t.state_path, &t.state_name, &t.resource) {
                None => TaskOutcome::err(
                    "States.Runtime",
                    format!("state '{}': no prepared plugin for this Task", t.state_path),
                ),
                Some(task) => {
                    let request = RunRequest {
                        state: t.state_path.clone(),
                        input: t.input.to_string(),
                        grants: task.grants.clone(),
                        limits: Limits {
                            deadline: self.config.default_task_deadline,
                            memory_bytes: self.config.plugin_memory_bytes,
                        },
                        provider: plan.for_state(&t.state_path),
                        observer: observer.clone(),
                    };
                    match handle.block_on(host.run(&task.plugin, request)) {
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
                state: t.state_path.clone(),
                attempt: t.attempt,
                result: match &outcome.result {
                    Ok(_) => "ok".into(),
                    Err((e, _)) => e.clone(),
                },
            });
            outcome
        };
        let result = runbook_engine::sim::run_with(
            prepared.runbook.machine.clone(),
            input,
            opts,
            &mut run_task,
        );
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
}
