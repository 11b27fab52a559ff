//! History events, mirroring Step Functions' GetExecutionHistory types. Each names the state
//! (`name`) and its full path (`path`, e.g. `Deploy/branch[0]/Create`).

use crate::model::{Resource, StateKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum HistoryEvent {
    ExecutionStarted {
        input: Value,
        role_arn: Option<String>,
    },
    ExecutionSucceeded {
        output: Value,
    },
    ExecutionFailed {
        error: String,
        cause: Option<String>,
    },
    ExecutionTimedOut {
        error: String,
        cause: Option<String>,
    },
    ExecutionAborted {
        error: Option<String>,
        cause: Option<String>,
    },
    ExecutionRedriven {
        redrive_count: u32,
        state: String,
    },

    PassStateEntered {
        name: String,
        path: String,
        input: Value,
    },
    PassStateExited {
        name: String,
        path: String,
        output: Value,
        /// Variables this state assigned (its `Assign`, a matching Choice rule's or the
        /// Catch's), as Step Functions' `assignedVariables`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_variables: Option<Map<String, Value>>,
    },
    TaskStateEntered {
        name: String,
        path: String,
        input: Value,
    },
    TaskStateExited {
        name: String,
        path: String,
        output: Value,
        /// Variables this state assigned (its `Assign`, a matching Choice rule's or the
        /// Catch's), as Step Functions' `assignedVariables`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_variables: Option<Map<String, Value>>,
    },
    ChoiceStateEntered {
        name: String,
        path: String,
        input: Value,
    },
    ChoiceStateExited {
        name: String,
        path: String,
        output: Value,
        next: String,
        /// Variables this state assigned (its `Assign`, a matching Choice rule's or the
        /// Catch's), as Step Functions' `assignedVariables`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_variables: Option<Map<String, Value>>,
    },
    WaitStateEntered {
        name: String,
        path: String,
        input: Value,
        fire_at: Option<String>,
    },
    WaitStateExited {
        name: String,
        path: String,
        output: Value,
        /// Variables this state assigned (its `Assign`, a matching Choice rule's or the
        /// Catch's), as Step Functions' `assignedVariables`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_variables: Option<Map<String, Value>>,
    },
    SucceedStateEntered {
        name: String,
        path: String,
        input: Value,
    },
    SucceedStateExited {
        name: String,
        path: String,
        output: Value,
    },
    FailStateEntered {
        name: String,
        path: String,
        input: Value,
        error: Option<String>,
        cause: Option<String>,
    },
    ParallelStateEntered {
        name: String,
        path: String,
        input: Value,
    },
    ParallelStateStarted {
        name: String,
        path: String,
        branches: usize,
    },
    ParallelStateSucceeded {
        name: String,
        path: String,
    },
    ParallelStateFailed {
        name: String,
        path: String,
        error: String,
        cause: Option<String>,
    },
    ParallelStateExited {
        name: String,
        path: String,
        output: Value,
        /// Variables this state assigned (its `Assign`, a matching Choice rule's or the
        /// Catch's), as Step Functions' `assignedVariables`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_variables: Option<Map<String, Value>>,
    },
    MapStateEntered {
        name: String,
        path: String,
        input: Value,
    },
    MapStateStarted {
        name: String,
        path: String,
        length: usize,
    },
    MapIterationStarted {
        name: String,
        path: String,
        index: usize,
    },
    MapIterationSucceeded {
        name: String,
        path: String,
        index: usize,
    },
    MapIterationFailed {
        name: String,
        path: String,
        index: usize,
        error: String,
        cause: Option<String>,
    },
    MapStateSucceeded {
        name: String,
        path: String,
    },
    MapStateFailed {
        name: String,
        path: String,
        error: String,
        cause: Option<String>,
    },
    MapStateExited {
        name: String,
        path: String,
        output: Value,
        /// Variables this state assigned (its `Assign`, a matching Choice rule's or the
        /// Catch's), as Step Functions' `assignedVariables`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_variables: Option<Map<String, Value>>,
    },

    TaskScheduled {
        name: String,
        path: String,
        task_id: String,
        resource: Resource,
        input: Value,
        attempt: u32,
        timeout_seconds: Option<f64>,
        heartbeat_seconds: Option<f64>,
    },
    TaskSucceeded {
        name: String,
        path: String,
        task_id: String,
        output: Value,
    },
    TaskFailed {
        name: String,
        path: String,
        task_id: String,
        error: String,
        cause: Option<String>,
    },
    TaskTimedOut {
        name: String,
        path: String,
        task_id: String,
        error: String,
        cause: Option<String>,
    },

    /// A retrier matched: the state runs again after `delay_seconds`.
    RetryScheduled {
        name: String,
        path: String,
        error: String,
        attempt: u32,
        delay_seconds: f64,
    },
    /// A catcher matched: the execution continues at `next`.
    Caught {
        name: String,
        path: String,
        error: String,
        next: String,
    },
}

impl HistoryEvent {
    /// The SFN-style type name, e.g. `TaskStateEntered`.
    pub fn type_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    }

    pub(crate) fn entered(kind: &StateKind, name: &str, path: &str, input: Value) -> HistoryEvent {
        let (name, path) = (name.to_string(), path.to_string());
        match kind {
            StateKind::Pass(_) => HistoryEvent::PassStateEntered { name, path, input },
            StateKind::Task(_) => HistoryEvent::TaskStateEntered { name, path, input },
            StateKind::Choice(_) => HistoryEvent::ChoiceStateEntered { name, path, input },
            StateKind::Wait(_) => HistoryEvent::WaitStateEntered {
                name,
                path,
                input,
                fire_at: None,
            },
            StateKind::Succeed => HistoryEvent::SucceedStateEntered { name, path, input },
            StateKind::Fail(_) => HistoryEvent::FailStateEntered {
                name,
                path,
                input,
                error: None,
                cause: None,
            },
            StateKind::Parallel(_) => HistoryEvent::ParallelStateEntered { name, path, input },
            StateKind::Map(_) => HistoryEvent::MapStateEntered { name, path, input },
        }
    }

    pub(crate) fn exited(
        kind: &StateKind,
        name: &str,
        path: &str,
        output: Value,
        assigned_variables: Option<Map<String, Value>>,
    ) -> Option<HistoryEvent> {
        let (name, path, a) = (name.to_string(), path.to_string(), assigned_variables);
        Some(match kind {
            StateKind::Pass(_) => HistoryEvent::PassStateExited {
                name,
                path,
                output,
                assigned_variables: a,
            },
            StateKind::Task(_) => HistoryEvent::TaskStateExited {
                name,
                path,
                output,
                assigned_variables: a,
            },
            StateKind::Wait(_) => HistoryEvent::WaitStateExited {
                name,
                path,
                output,
                assigned_variables: a,
            },
            StateKind::Succeed => HistoryEvent::SucceedStateExited { name, path, output },
            StateKind::Parallel(_) => HistoryEvent::ParallelStateExited {
                name,
                path,
                output,
                assigned_variables: a,
            },
            StateKind::Map(_) => HistoryEvent::MapStateExited {
                name,
                path,
                output,
                assigned_variables: a,
            },
            StateKind::Choice(_) | StateKind::Fail(_) => return None,
        })
    }
}
