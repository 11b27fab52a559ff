//! `runbook-engine`: a pure Amazon States Language state machine for `runbook`.
//!
//! No I/O, no clock, no OS randomness. The executor drives an [`Execution`] with events and
//! the current time and carries out the returned [`Action`]s:
//!
//! 1. [`parse_runbook`] (parse + [`validate`]) → [`Runbook`]; [`Runbook::tasks`] for plugin
//!    resolution and grant checks; [`build_input`] for the execution input.
//! 2. [`Execution::new`] then [`Execution::start`]; feed [`Event`]s with [`Execution::handle`].
//! 3. To resume, replay the journal's `(event, now)` pairs into a fresh `Execution` (after
//!    `start` with the original start time) and re-issue [`Execution::outstanding`].
//!
//! `start` and `handle` run through states until the execution needs an external event (a
//! task result or a timer). To bound a loop that never reaches a Task or Wait, an execution
//! is limited to [`DEFAULT_MAX_HISTORY_EVENTS`] (25,000, as in Step Functions) history events,
//! counted over all calls, Map iterations, Parallel branches and redrives; see
//! [`Execution::set_max_history_events`]. An execution that would exceed it fails with
//! `States.Runtime` (an execution-level failure that Retry and Catch never see); outstanding
//! tasks and timers are cancelled. The count depends only on the events fed in, so a replay
//! with the same limit reaches the same result.

pub mod choice;
pub mod dataflow;
pub mod error;
pub mod exec;
pub mod graph;
pub mod history;
pub mod intrinsics;
pub mod jsonata;
pub mod model;
pub mod parse;
pub mod path;
pub mod rng;
pub mod schema;
pub mod sim;
pub mod timestamp;
pub mod validate;
pub mod yaml;

pub use choice::evaluate_choice;
pub use dataflow::{
    Ctx, Template, apply_input_path, apply_output_path, apply_parameters, apply_result_path,
    apply_result_selector,
};
pub use error::{AslError, Diagnostic, Diagnostics, EngineError, Pos};
pub use exec::{
    Action, DEFAULT_MAX_HISTORY_EVENTS, Event, Execution, ExecutionContext, Status, TaskId,
    TimerId, TimerPurpose, error_matches,
};
pub use graph::{to_dot, to_mermaid};
pub use history::HistoryEvent;
pub use model::{Provider, Resource, RunbookMeta, State, StateKind, StateMachine};
pub use parse::{Runbook, TaskRef, build_input, parse_runbook};
pub use schema::json_schema;
pub use timestamp::Timestamp;
pub use validate::validate;
pub use yaml::SourceMap;
