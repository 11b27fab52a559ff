//! The event-driven executor: a pure state machine over a whole execution tree (top level,
//! Parallel branches, Map iterations). Effects come back as [`Action`]s; the caller feeds
//! [`Event`]s and the current time. No clock, no I/O, no OS randomness: the same
//! `(event, now)` sequence from the same seed always yields the same state and actions.

use crate::dataflow::{self, Ctx, Template};
use crate::error::{AslError, EngineError, names};
use crate::history::HistoryEvent;
use crate::intrinsics;
use crate::model::*;
use crate::path::Path;
use crate::rng::Rng;
use crate::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

macro_rules! id_type {
    ($name:ident) => {
        /// A stable, deterministic identifier (same events → same ids).
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
    };
}
id_type!(TaskId);
id_type!(TimerId);

/// Values for the context object's `Execution` and `StateMachine` parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionContext {
    pub id: String,
    pub name: String,
    pub start_time: Timestamp,
    pub role_arn: Option<String>,
    pub state_machine_id: String,
    pub state_machine_name: String,
}

impl ExecutionContext {
    pub fn new(id: impl Into<String>, name: impl Into<String>, start_time: Timestamp) -> Self {
        ExecutionContext {
            id: id.into(),
            name: name.into(),
            start_time,
            role_arn: None,
            state_machine_id: String::new(),
            state_machine_name: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    TaskSucceeded {
        task_id: TaskId,
        output: Value,
    },
    TaskFailed {
        task_id: TaskId,
        error: String,
        cause: String,
    },
    TaskHeartbeat {
        task_id: TaskId,
    },
    TimerFired {
        timer_id: TimerId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimerPurpose {
    Wait,
    RetryBackoff,
    TaskTimeout,
    Heartbeat,
    ExecutionTimeout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Action {
    RunTask {
        task_id: TaskId,
        state_name: String,
        state_path: String,
        resource: Resource,
        /// Effective input (after InputPath and Parameters).
        input: Value,
        timeout: Option<Duration>,
        heartbeat: Option<Duration>,
        attempt: u32,
        /// `.waitForTaskToken` Tasks: the token (`$$.Task.Token`) whose answer ends the
        /// Task. New for every attempt; the same again when the journal is replayed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_token: Option<String>,
    },
    CancelTask {
        task_id: TaskId,
    },
    StartTimer {
        timer_id: TimerId,
        fire_at: Timestamp,
        purpose: TimerPurpose,
    },
    CancelTimer {
        timer_id: TimerId,
    },
    History(HistoryEvent),
    Finished {
        status: Status,
        output: Option<Value>,
        error: Option<String>,
        cause: Option<String>,
    },
}

/// Default limit on history events per execution, as in Step Functions: see
/// [`Execution::set_max_history_events`].
pub const DEFAULT_MAX_HISTORY_EVENTS: u64 = 25_000;

type Sid = u64;

struct TaskEntry {
    sid: Sid,
    action: Action,
}

struct TimerEntry {
    sid: Option<Sid>,
    fire_at: Timestamp,
    purpose: TimerPurpose,
}

struct Scope {
    machine: Arc<StateMachine>,
    /// Prefix of state paths in this scope, e.g. `Deploy/branch[1]/`.
    prefix: String,
    /// Parent scope and our index in its fan-out.
    parent: Option<(Sid, usize)>,
    visits: Vec<u32>,
    cur: Option<Cur>,
    /// Workflow variables assigned in this scope, with their serialized sizes.
    vars: Map<String, Value>,
    var_sizes: BTreeMap<String, usize>,
    /// Whether the enclosing scopes' variables are visible (not in a DISTRIBUTED Map).
    reads_parent: bool,
}

struct Cur {
    state: usize,
    /// Raw state input.
    input: Value,
    entered: Timestamp,
    /// `prefix + name`, for history and RunTask.
    path: String,
    /// `path` plus `~visit` after the first visit: keeps ids unique in loops.
    id_base: String,
    retry_count: u32,
    retriers: Vec<u32>,
    attempt: u32,
    phase: Phase,
    /// Number of the state's Entered history event (Step Functions cites it in causes).
    entered_event: u64,
}

enum Phase {
    Idle,
    Task {
        task_id: TaskId,
        timeout_timer: Option<TimerId>,
        heartbeat_timer: Option<TimerId>,
        heartbeat: Option<Duration>,
        beats: u32,
    },
    Wait {
        timer: TimerId,
        effective: Value,
    },
    Backoff {
        timer: TimerId,
    },
    Fanout(Box<Fanout>),
}

struct Fanout {
    is_map: bool,
    children: Vec<Option<Sid>>,
    /// Per child: output (or error object for tolerated Map failures).
    results: Vec<Option<Value>>,
    ok: Vec<bool>,
    /// Iteration inputs (Map) / branch input (Parallel, repeated).
    inputs: Vec<Value>,
    next_start: usize,
    running: usize,
    done: usize,
    failed: usize,
    max_concurrency: usize,
    tolerated_count: Option<f64>,
    tolerated_pct: Option<f64>,
}

/// Where a finished (failed/timed-out/aborted) execution can be redriven from.
#[derive(Debug, Clone)]
struct RedrivePoint {
    state: usize,
    input: Value,
    /// For a Map/Parallel: outputs of children that succeeded (they are not re-run).
    preserved: Option<Vec<Option<Value>>>,
}

enum Work {
    Enter {
        sid: Sid,
        state: usize,
        input: Value,
    },
    ScopeDone {
        sid: Sid,
        result: Result<Value, AslError>,
    },
}

/// One execution: the whole tree of running scopes.
pub struct Execution {
    machine: Arc<StateMachine>,
    ctx: ExecutionContext,
    input: Value,
    rng: Rng,
    status: Status,
    output: Option<Value>,
    error: Option<AslError>,
    scopes: BTreeMap<Sid, Scope>,
    next_sid: Sid,
    tasks: BTreeMap<TaskId, TaskEntry>,
    timers: BTreeMap<TimerId, TimerEntry>,
    queue: VecDeque<Work>,
    out: Vec<Action>,
    now: Timestamp,
    redrive_count: u32,
    redrive_point: Option<RedrivePoint>,
    /// Consumed by the next Map/Parallel entered at the top level after a redrive.
    preserved: Option<Vec<Option<Value>>>,
    started: bool,
    /// History events emitted so far, over all calls (and redrives).
    history_count: u64,
    max_history_events: u64,
    /// Set when a history event would have exceeded the limit: the index in `out` from
    /// which actions are discarded; cleared when the execution fails.
    overflow_mark: Option<usize>,
    /// The execution failed because it reached the history limit (it cannot be redriven).
    history_exceeded: bool,
}

/// Data for building the context object (`$$`).
struct CtxInfo<'a> {
    ec: &'a ExecutionContext,
    exec_input: &'a Value,
    redrive_count: u32,
    state: &'a str,
    entered: Timestamp,
    retry_count: u32,
    item: Option<(usize, &'a Value)>,
    /// `$$.Task.Token` of a `.waitForTaskToken` Task.
    task_token: Option<&'a str>,
}

impl<'a> CtxInfo<'a> {
    /// The context of `state`, current as `cur` (no Map item, no task token). Takes the
    /// execution's fields, not the execution, so its generator stays borrowable.
    fn at(
        ec: &'a ExecutionContext,
        exec_input: &'a Value,
        redrive_count: u32,
        state: &'a str,
        cur: &Cur,
    ) -> CtxInfo<'a> {
        CtxInfo {
            ec,
            exec_input,
            redrive_count,
            state,
            entered: cur.entered,
            retry_count: cur.retry_count,
            item: None,
            task_token: None,
        }
    }

    fn value(&self) -> Value {
        let mut v = json!({
            "Execution": {
                "Id": self.ec.id,
                "Name": self.ec.name,
                "RoleArn": self.ec.role_arn,
                "StartTime": self.ec.start_time.to_rfc3339(),
                "RedriveCount": self.redrive_count,
            },
            "State": {
                "EnteredTime": self.entered.to_rfc3339(),
                "Name": self.state,
                "RetryCount": self.retry_count,
            },
            "StateMachine": {
                "Id": self.ec.state_machine_id,
                "Name": self.ec.state_machine_name,
            },
            "Task": {},
        });
        if let Some(t) = self.task_token {
            v["Task"] = json!({ "Token": t });
        }
        if let Some((i, item)) = self.item {
            v["Map"] = json!({"Item": {"Index": i, "Value": item}});
        }
        v
    }
}

fn secs(d: f64) -> Duration {
    Duration::from_millis((d * 1000.0).round().max(0.0) as u64)
}

/// Does a retrier/catcher's ErrorEquals match this error?
pub fn error_matches(error_equals: &[String], err: &AslError, from_branch: bool) -> bool {
    // States.Runtime is terminal: never retried or caught.
    if err.error == names::RUNTIME {
        return false;
    }
    error_equals.iter().any(|n| match n.as_str() {
        names::ALL => err.error != names::DATA_LIMIT_EXCEEDED,
        names::TASK_FAILED => {
            err.error != names::TIMEOUT && err.error != names::DATA_LIMIT_EXCEEDED
        }
        names::BRANCH_FAILED if from_branch => true,
        n => n == err.error,
    })
}

fn num_from(spec: &NumberSpec, input: &Value, ctx: &Ctx, what: &str) -> Result<f64, AslError> {
    match spec {
        NumberSpec::Value(v) => Ok(*v),
        // Needs `$states` and the generator: evaluated by `query::number`.
        NumberSpec::Jsonata(_) => Err(AslError::runtime(format!(
            "{what}: a JSONata expression outside a JSONata state"
        ))),
        NumberSpec::Path(p) => match dataflow::select(p, input, ctx) {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| AslError::runtime(format!("{what}: invalid number"))),
            Some(other) => Err(AslError::runtime(format!(
                "{what}: the value at '{}' must be a number, got {other}",
                p.as_str()
            ))),
            None => Err(AslError::runtime(format!(
                "{what}: the path '{}' could not be found in the input",
                p.as_str()
            ))),
        },
    }
}

fn positive_int_from(
    spec: &NumberSpec,
    input: &Value,
    ctx: &Ctx,
    what: &str,
) -> Result<f64, AslError> {
    let n = num_from(spec, input, ctx, what)?;
    if n.fract() != 0.0 || n < 0.0 {
        return Err(AslError::runtime(format!(
            "{what} must be a non-negative integer, got {n}"
        )));
    }
    Ok(n)
}

mod fanout;
mod query;
mod states;
mod tasks;
mod vars;
pub use vars::{MAX_ASSIGN_BYTES, MAX_EXECUTION_VARIABLE_BYTES, MAX_VARIABLE_BYTES};
#[cfg(test)]
mod tests;

impl Execution {
    /// A new, not yet started execution. `seed` drives States.UUID, States.MathRandom and
    /// retry jitter.
    pub fn new(machine: Arc<StateMachine>, input: Value, ctx: ExecutionContext, seed: u64) -> Self {
        Execution {
            machine,
            now: ctx.start_time,
            ctx,
            input,
            rng: Rng::new(seed),
            status: Status::Running,
            output: None,
            error: None,
            scopes: BTreeMap::new(),
            next_sid: 0,
            tasks: BTreeMap::new(),
            timers: BTreeMap::new(),
            queue: VecDeque::new(),
            out: Vec::new(),
            redrive_count: 0,
            redrive_point: None,
            preserved: None,
            started: false,
            history_count: 0,
            max_history_events: DEFAULT_MAX_HISTORY_EVENTS,
            overflow_mark: None,
            history_exceeded: false,
        }
    }

    /// Limit the number of history events of this execution (default
    /// [`DEFAULT_MAX_HISTORY_EVENTS`], 25,000; values below 2 count as 2). The count covers
    /// every call, all Map iterations and Parallel branches, and redrives. When a history
    /// event would leave no room for the final one, the execution fails at once with
    /// `States.Runtime` (not retriable or catchable): this bounds a `start`/`handle` call
    /// that would otherwise loop forever through states that never wait on a Task or Wait.
    ///
    /// Set it before [`Execution::start`]; a replay must use the same limit.
    pub fn set_max_history_events(&mut self, n: u64) {
        self.max_history_events = n.max(2);
    }
    /// Builder form of [`Execution::set_max_history_events`].
    pub fn with_max_history_events(mut self, n: u64) -> Self {
        self.set_max_history_events(n);
        self
    }
    pub fn max_history_events(&self) -> u64 {
        self.max_history_events
    }
    /// Number of history events emitted so far.
    pub fn history_event_count(&self) -> u64 {
        self.history_count
    }

    pub fn status(&self) -> Status {
        self.status
    }
    pub fn output(&self) -> Option<&Value> {
        self.output.as_ref()
    }
    pub fn error(&self) -> Option<&AslError> {
        self.error.as_ref()
    }
    pub fn redrive_count(&self) -> u32 {
        self.redrive_count
    }
    pub fn context(&self) -> &ExecutionContext {
        &self.ctx
    }

    /// Start: returns the first actions (ExecutionStarted, the first tasks/timers, ...).
    pub fn start(&mut self, now: Timestamp) -> Vec<Action> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        self.now = now;
        self.history(HistoryEvent::ExecutionStarted {
            input: self.input.clone(),
            role_arn: self.ctx.role_arn.clone(),
        });
        self.start_execution_timer();
        let sid = self.new_scope(self.machine.clone(), String::new(), None);
        match self.machine.index_of(&self.machine.start_at) {
            Some(i) => self.queue.push_back(Work::Enter {
                sid,
                state: i,
                input: self.input.clone(),
            }),
            None => self.finish(
                Status::Failed,
                None,
                Some(AslError::runtime("StartAt state not found")),
            ),
        }
        self.drain();
        std::mem::take(&mut self.out)
    }

    /// Feed one event. Events for unknown/cancelled tasks or timers are ignored.
    pub fn handle(&mut self, event: Event, now: Timestamp) -> Vec<Action> {
        if self.status != Status::Running {
            return Vec::new();
        }
        self.now = now;
        match event {
            Event::TaskSucceeded { task_id, output } => self.task_done(task_id, Ok(output)),
            Event::TaskFailed {
                task_id,
                error,
                cause,
            } => self.task_done(
                task_id,
                Err(AslError {
                    error,
                    cause: Some(cause),
                }),
            ),
            Event::TaskHeartbeat { task_id } => self.heartbeat(task_id),
            Event::TimerFired { timer_id } => self.timer_fired(timer_id),
        }
        self.drain();
        std::mem::take(&mut self.out)
    }

    /// Stop the execution: cancels all outstanding work.
    pub fn abort(
        &mut self,
        error: Option<String>,
        cause: Option<String>,
        now: Timestamp,
    ) -> Vec<Action> {
        if self.status != Status::Running {
            return Vec::new();
        }
        self.now = now;
        let err = AslError {
            error: error.unwrap_or_default(),
            cause,
        };
        self.finish(Status::Aborted, None, Some(err));
        std::mem::take(&mut self.out)
    }

    /// Re-run a FAILED, TIMED_OUT or ABORTED execution from the top-level state that did not
    /// succeed, with that state's recorded input; `$$.Execution.RedriveCount` is incremented.
    /// For a Map or Parallel state only the iterations/branches that had not succeeded run
    /// again (a failed branch restarts from its StartAt).
    pub fn redrive(&mut self, now: Timestamp) -> Result<Vec<Action>, EngineError> {
        if !matches!(
            self.status,
            Status::Failed | Status::TimedOut | Status::Aborted
        ) {
            return Err(EngineError::CannotRedrive(format!(
                "execution is {:?}",
                self.status
            )));
        }
        // ExecutionRedriven and a final event must still fit in the history.
        if self.history_exceeded || self.history_count + 2 > self.max_history_events {
            return Err(EngineError::CannotRedrive(format!(
                "the execution reached the limit of {} history events",
                self.max_history_events
            )));
        }
        let Some(point) = self.redrive_point.take() else {
            return Err(EngineError::CannotRedrive(
                "no failed state to redrive from".into(),
            ));
        };
        self.now = now;
        self.redrive_count += 1;
        self.status = Status::Running;
        self.output = None;
        self.error = None;
        let name = self.machine.states[point.state].name.clone();
        self.history(HistoryEvent::ExecutionRedriven {
            redrive_count: self.redrive_count,
            state: name,
        });
        self.start_execution_timer();
        self.preserved = point.preserved;
        self.queue.push_back(Work::Enter {
            sid: 0,
            state: point.state,
            input: point.input,
        });
        self.drain();
        Ok(std::mem::take(&mut self.out))
    }

    /// RunTask and StartTimer actions for everything pending now (re-issue after replay).
    pub fn outstanding(&self) -> Vec<Action> {
        let mut v: Vec<Action> = self.tasks.values().map(|t| t.action.clone()).collect();
        v.extend(self.timers.iter().map(|(id, t)| Action::StartTimer {
            timer_id: id.clone(),
            fire_at: t.fire_at,
            purpose: t.purpose,
        }));
        v
    }

    // ---- internals ----

    /// Record a history event. Final (`Execution*` end) events always fit: the limit keeps
    /// room for one. Any other event that would not fit trips the limit instead (it and all
    /// later events of this step are dropped); `drain` then fails the execution.
    fn history(&mut self, h: HistoryEvent) {
        let last = matches!(
            h,
            HistoryEvent::ExecutionSucceeded { .. }
                | HistoryEvent::ExecutionFailed { .. }
                | HistoryEvent::ExecutionTimedOut { .. }
                | HistoryEvent::ExecutionAborted { .. }
        );
        if !last {
            if self.overflow_mark.is_some() {
                return;
            }
            if self.history_count + 2 > self.max_history_events {
                self.overflow_mark = Some(self.out.len());
                return;
            }
        }
        self.history_count += 1;
        self.out.push(Action::History(h));
    }

    /// After the history limit tripped: drop the tasks and timers started since (they were
    /// never announced) and keep every other action, such as cancellations of earlier work.
    fn discard_after_overflow(&mut self, mark: usize) {
        let tail = self.out.split_off(mark.min(self.out.len()));
        let mut tasks = BTreeSet::new();
        let mut timers = BTreeSet::new();
        for a in tail {
            match a {
                Action::RunTask { task_id, .. } => {
                    self.tasks.remove(&task_id);
                    tasks.insert(task_id);
                }
                Action::StartTimer { timer_id, .. } => {
                    self.timers.remove(&timer_id);
                    timers.insert(timer_id);
                }
                Action::CancelTask { task_id } if tasks.contains(&task_id) => {}
                Action::CancelTimer { timer_id } if timers.contains(&timer_id) => {}
                a => self.out.push(a),
            }
        }
    }

    fn new_scope(
        &mut self,
        machine: Arc<StateMachine>,
        prefix: String,
        parent: Option<(Sid, usize)>,
    ) -> Sid {
        let sid = self.next_sid;
        self.next_sid += 1;
        let n = machine.states.len();
        self.scopes.insert(
            sid,
            Scope {
                machine,
                prefix,
                parent,
                visits: vec![0; n],
                cur: None,
                vars: Map::new(),
                var_sizes: BTreeMap::new(),
                reads_parent: true,
            },
        );
        sid
    }

    fn drain(&mut self) {
        loop {
            if self.overflow_mark.is_some() && self.status == Status::Running {
                // `finish` turns this into the history-limit failure.
                self.finish(Status::Failed, None, None);
            }
            if self.status != Status::Running {
                self.queue.clear();
                break;
            }
            let Some(w) = self.queue.pop_front() else {
                break;
            };
            match w {
                Work::Enter { sid, state, input } => self.enter(sid, state, input),
                Work::ScopeDone { sid, result } => self.scope_done(sid, result),
            }
        }
    }

    fn cur(&self, sid: Sid) -> &Cur {
        self.scopes[&sid].cur.as_ref().expect("current state")
    }
    fn cur_mut(&mut self, sid: Sid) -> &mut Cur {
        self.scopes
            .get_mut(&sid)
            .and_then(|s| s.cur.as_mut())
            .expect("current state")
    }
    fn state_of(&self, sid: Sid) -> (Arc<StateMachine>, usize) {
        let s = &self.scopes[&sid];
        (
            s.machine.clone(),
            s.cur.as_ref().expect("current state").state,
        )
    }

    fn finish(&mut self, mut status: Status, mut output: Option<Value>, mut err: Option<AslError>) {
        // Once the history limit tripped, the execution fails with it, whatever else happened
        // in the same step. Execution-level: never seen by Retry or Catch.
        if let Some(mark) = self.overflow_mark.take() {
            self.discard_after_overflow(mark);
            self.history_exceeded = true;
            status = Status::Failed;
            output = None;
            err = Some(AslError::runtime(format!(
                "execution exceeded the limit of {} history events (a loop without a Task or Wait?)",
                self.max_history_events
            )));
        }
        // Remember where to redrive from: the top-level state that was running or failed.
        if status != Status::Succeeded
            && let Some(cur) = self.scopes.get(&0).and_then(|s| s.cur.as_ref())
        {
            let preserved = match &cur.phase {
                Phase::Fanout(f) => Some(
                    f.results
                        .iter()
                        .zip(&f.ok)
                        .map(|(r, ok)| if *ok { r.clone() } else { None })
                        .collect(),
                ),
                _ => None,
            };
            self.redrive_point = Some(RedrivePoint {
                state: cur.state,
                input: cur.input.clone(),
                preserved,
            });
        }
        if self.scopes.contains_key(&0) {
            self.cancel_scope(0);
        }
        let timers: Vec<TimerId> = self.timers.keys().cloned().collect();
        for t in timers {
            self.cancel_timer(&t);
        }
        let tasks: Vec<TaskId> = self.tasks.keys().cloned().collect();
        for t in tasks {
            self.tasks.remove(&t);
            self.out.push(Action::CancelTask { task_id: t });
        }
        self.queue.clear();
        let (error, cause) = match &err {
            Some(e) => (Some(e.error.clone()), e.cause.clone()),
            None => (None, None),
        };
        self.history(match status {
            Status::Succeeded => HistoryEvent::ExecutionSucceeded {
                output: output.clone().unwrap_or(Value::Null),
            },
            Status::Failed => HistoryEvent::ExecutionFailed {
                error: error.clone().unwrap_or_default(),
                cause: cause.clone(),
            },
            Status::TimedOut => HistoryEvent::ExecutionTimedOut {
                error: error.clone().unwrap_or_default(),
                cause: cause.clone(),
            },
            Status::Aborted | Status::Running => HistoryEvent::ExecutionAborted {
                error: error.clone().filter(|e| !e.is_empty()),
                cause: cause.clone(),
            },
        });
        self.status = status;
        self.output = output.clone();
        self.error = err;
        if let Some(s) = self.scopes.get_mut(&0) {
            s.cur = None;
        }
        self.out.push(Action::Finished {
            status,
            output,
            error: error.filter(|e| !e.is_empty()),
            cause,
        });
    }
}

impl fmt::Debug for Execution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Execution")
            .field("id", &self.ctx.id)
            .field("status", &self.status)
            .field("tasks", &self.tasks.keys().collect::<Vec<_>>())
            .field("timers", &self.timers.keys().collect::<Vec<_>>())
            .finish()
    }
}
