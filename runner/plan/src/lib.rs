//! `runbook plan --provider P`: walk a runbook against a real provider without changing
//! anything.
//!
//! [`Plan`] wraps the provider. Reads (catalogue actions that do not mutate, and SQL
//! that [`sql::read_only`] accepts) go to the real provider; every mutating call is
//! recorded as a [`PlannedCall`] and answered from an in-memory overlay that models
//! what the call would have done: created resources appear in later describes, deleted
//! ones disappear, modified ones show the change. That is what lets a plan follow the
//! runbook's own logic: a second `deploy` plan finds everything in place and records
//! only no-ops; a teardown plan after a deploy plan does not see what was never made.
//!
//! Resources a plan creates get placeholder ids (`vpc-plan3`) and ARNs in account
//! `000000000000`; they are known only after a real run.

mod apply;
mod gameday;
mod overlay;
pub mod sql;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use runbook_caps::{BoxFuture, CapCall, CapError, ErrorKind, Provider, action_by_iam};
use serde::Serialize;
use serde_json::Value;

use overlay::Overlay;

/// What a recorded call would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    Create,
    Update,
    Delete,
    /// The call would be made, but the resource is already as asked.
    NoOp,
    /// Not a change to a resource: publish a message, put metric data, reboot, run SQL.
    Action,
}

impl Effect {
    /// What an action is for, by its name (for calls refused before the overlay).
    pub fn of_action(action: &str) -> Effect {
        if action.starts_with("Create") {
            Effect::Create
        } else if action.starts_with("Delete") {
            Effect::Delete
        } else if action.starts_with("Modify") || action.starts_with("Put") {
            Effect::Update
        } else {
            Effect::Action
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Effect::Create => "create",
            Effect::Update => "update",
            Effect::Delete => "delete",
            Effect::NoOp => "no-op",
            Effect::Action => "action",
        }
    }
}

/// One mutating call the runbook would make.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedCall {
    /// The Task state (execution path) that would make it.
    pub state: String,
    pub service: String,
    pub action: String,
    pub region: Option<String>,
    pub resource: Option<String>,
    pub effect: Effect,
    /// What changes, when it is not obvious from the action (record weights, SQL).
    pub detail: Option<String>,
    /// The error the call would get, when the plan can tell (`DBInstanceAlreadyExists`).
    pub error: Option<String>,
}

/// The outcome the overlay gives a mutating call.
pub(crate) struct Applied {
    pub result: Result<Value, CapError>,
    pub effect: Effect,
    pub detail: Option<String>,
}

impl Applied {
    pub fn ok(result: Value, effect: Effect) -> Applied {
        Applied {
            result: Ok(result),
            effect,
            detail: None,
        }
    }
    pub fn err(e: CapError, effect: Effect) -> Applied {
        Applied {
            result: Err(e),
            effect,
            detail: None,
        }
    }
    pub fn detail(mut self, d: impl Into<String>) -> Applied {
        self.detail = Some(d.into());
        self
    }
}

/// A dry run in progress: the real provider for reads, the overlay for writes, and the
/// record of what would have been written.
pub struct Plan {
    inner: Arc<dyn Provider>,
    overlay: Mutex<Overlay>,
    calls: Mutex<Vec<PlannedCall>>,
    /// Ids of resources this plan created, which the real provider has never seen.
    planned: Mutex<HashSet<String>>,
    reads: AtomicUsize,
    ids: AtomicU64,
}

impl Plan {
    pub fn new(inner: Arc<dyn Provider>) -> Arc<Plan> {
        Arc::new(Plan {
            inner,
            overlay: Mutex::new(Overlay::default()),
            calls: Mutex::new(Vec::new()),
            planned: Mutex::new(HashSet::new()),
            reads: AtomicUsize::new(0),
            ids: AtomicU64::new(0),
        })
    }

    /// The provider a Task running in `state` sees; its calls are recorded under it.
    pub fn for_state(self: &Arc<Self>, state: &str) -> Arc<dyn Provider> {
        Arc::new(StateView {
            plan: self.clone(),
            state: state.to_string(),
        })
    }

    /// The mutating calls recorded so far, in order.
    pub fn calls(&self) -> Vec<PlannedCall> {
        lock(&self.calls).clone()
    }

    /// How many reads went to the real provider.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    async fn call(&self, state: &str, call: CapCall) -> Result<Value, CapError> {
        if let Some(modelled) = gameday::model(self, &call) {
            let applied = match modelled {
                Ok(a) => a,
                // Reads the runner answers itself (the lever): ask for real.
                Err(_) => return self.inner.call(call).await,
            };
            if action_by_iam(&call.service, &call.action).is_some_and(|s| s.mutating) {
                self.record(state, &call, &applied);
            }
            return applied.result;
        }
        let mutating = action_by_iam(&call.service, &call.action).is_none_or(|s| s.mutating);
        let runs_sql_read = call.service == "postgres"
            && call.action == "Query"
            && call.arg("sql").as_str().is_some_and(sql::read_only);
        if !mutating || runs_sql_read {
            return self.read(&call).await;
        }
        let applied = match self.inner.check(&call).await {
            Ok(()) => self.apply(&call).await,
            Err(e) => Applied::err(e, Effect::of_action(&call.action)),
        };
        self.record(state, &call, &applied);
        applied.result
    }

    fn record(&self, state: &str, call: &CapCall, applied: &Applied) {
        lock(&self.calls).push(PlannedCall {
            state: state.to_string(),
            service: call.service.clone(),
            action: call.action.clone(),
            region: call.region.clone(),
            resource: call.resource.clone(),
            effect: applied.effect,
            detail: applied.detail.clone(),
            error: applied
                .result
                .as_ref()
                .err()
                .map(|e| format!("{}: {}", e.code, e.message)),
        });
    }

    /// A read through the real provider, seen through the overlay.
    pub(crate) async fn read(&self, call: &CapCall) -> Result<Value, CapError> {
        let real = if self.names_planned(call) {
            // The real provider has never heard of it; asking would only fail on a
            // malformed id.
            if overlay::single_shaped(&call.action) {
                Err(CapError::not_found("NotFound", "planned resource"))
            } else {
                Ok(Value::Array(Vec::new()))
            }
        } else {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.inner.call(call.clone()).await
        };
        lock(&self.overlay).merge_read(call, real)
    }

    fn names_planned(&self, call: &CapCall) -> bool {
        let planned = lock(&self.planned);
        if planned.is_empty() {
            return false;
        }
        let Value::Object(args) = &call.args else {
            return false;
        };
        args.values().any(|v| match v {
            Value::String(s) => planned.contains(s),
            Value::Array(a) => a
                .iter()
                .any(|x| x.as_str().is_some_and(|s| planned.contains(s))),
            _ => false,
        })
    }

    /// A fresh placeholder id, remembered as planned.
    pub(crate) fn new_id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{prefix}-plan{n}");
        self.mark_planned(&id);
        id
    }

    pub(crate) fn mark_planned(&self, id: &str) {
        lock(&self.planned).insert(id.to_string());
    }

    pub(crate) fn overlay(&self) -> MutexGuard<'_, Overlay> {
        lock(&self.overlay)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not hide what was recorded.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct StateView {
    plan: Arc<Plan>,
    state: String,
}

impl Provider for StateView {
    fn name(&self) -> &str {
        self.plan.inner.name()
    }
    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        Box::pin(self.plan.call(&self.state, call))
    }
}

pub(crate) fn is_not_found(e: &CapError) -> bool {
    e.kind == ErrorKind::NotFound
}

#[cfg(test)]
mod tests;
