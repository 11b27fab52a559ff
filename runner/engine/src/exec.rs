//! The event-driven executor: a pure state machine over a whole execution tree (top level,
//! Parallel branches, Map iterations). Effects come back as [`Action`]s; the caller feeds
//! [`Event`]s and the current time. No clock, no I/O, no OS randomness: the same
//! `(event, now)` sequence from the same seed always yields the same state and actions.

use crate::choice::evaluate_choice;
use crate::dataflow::{self, Ctx, Template};
use crate::error::{AslError, EngineError, names};
use crate::history::HistoryEvent;
use crate::intrinsics;
use crate::model::*;
use crate::path::Path;
use crate::rng::Rng;
use crate::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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
}

impl CtxInfo<'_> {
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

fn num_from(spec: &NumberSpec, input: &Value, what: &str) -> Result<f64, AslError> {
    match spec {
        NumberSpec::Value(v) => Ok(*v),
        NumberSpec::Path(p) => match p.select(input) {
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

fn positive_int_from(spec: &NumberSpec, input: &Value, what: &str) -> Result<f64, AslError> {
    let n = num_from(spec, input, what)?;
    if n.fract() != 0.0 || n < 0.0 {
        return Err(AslError::runtime(format!(
            "{what} must be a non-negative integer, got {n}"
        )));
    }
    Ok(n)
}

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

    fn start_execution_timer(&mut self) {
        if let Some(t) = self.machine.timeout_seconds {
            let id = TimerId(format!("execution:timeout#{}", self.redrive_count));
            self.start_timer(
                id,
                None,
                self.now.add(Duration::from_secs(t)),
                TimerPurpose::ExecutionTimeout,
            );
        }
    }

    fn start_timer(
        &mut self,
        id: TimerId,
        sid: Option<Sid>,
        fire_at: Timestamp,
        purpose: TimerPurpose,
    ) {
        self.out.push(Action::StartTimer {
            timer_id: id.clone(),
            fire_at,
            purpose,
        });
        self.timers.insert(
            id,
            TimerEntry {
                sid,
                fire_at,
                purpose,
            },
        );
    }

    fn cancel_timer(&mut self, id: &TimerId) {
        if self.timers.remove(id).is_some() {
            self.out.push(Action::CancelTimer {
                timer_id: id.clone(),
            });
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

    fn enter(&mut self, sid: Sid, idx: usize, input: Value) {
        let now = self.now;
        let Some(scope) = self.scopes.get_mut(&sid) else {
            return;
        };
        let machine = scope.machine.clone();
        let st = &machine.states[idx];
        scope.visits[idx] += 1;
        let path = format!("{}{}", scope.prefix, st.name);
        let id_base = if scope.visits[idx] > 1 {
            format!("{path}~{}", scope.visits[idx])
        } else {
            path.clone()
        };
        let retriers = match &st.kind {
            StateKind::Task(t) => t.retry.len(),
            StateKind::Parallel(p) => p.retry.len(),
            StateKind::Map(m) => m.retry.len(),
            _ => 0,
        };
        let entered = HistoryEvent::entered(&st.kind, &st.name, &path, input.clone());
        scope.cur = Some(Cur {
            state: idx,
            input,
            entered: now,
            path,
            id_base,
            retry_count: 0,
            retriers: vec![0; retriers],
            attempt: 1,
            phase: Phase::Idle,
        });
        self.history(entered);
        self.exec(sid);
    }

    /// Run the current state's logic from its raw input (also used for retry attempts).
    fn exec(&mut self, sid: Sid) {
        let Some(scope) = self.scopes.get(&sid) else {
            return;
        };
        let machine = scope.machine.clone();
        let cur = scope.cur.as_ref().expect("current state");
        let st = &machine.states[cur.state];
        let ci = CtxInfo {
            ec: &self.ctx,
            exec_input: &self.input,
            redrive_count: self.redrive_count,
            state: &st.name,
            entered: cur.entered,
            retry_count: cur.retry_count,
            item: None,
        };
        let build = || ci.value();
        let ctx = Ctx::lazy(&build, ci.exec_input);
        let raw = &cur.input;
        let rng = &mut self.rng;
        let effective = dataflow::apply_input_path(st.input_path.as_ref(), raw, &ctx);
        match &st.kind {
            StateKind::Pass(p) => {
                let r = (|| {
                    let eff = effective?;
                    let result = match (&p.result, &p.parameters) {
                        (Some(r), _) => r.clone(),
                        (None, Some(t)) => dataflow::apply_parameters(t, &eff, &ctx, rng)?,
                        (None, None) => eff,
                    };
                    let out =
                        dataflow::apply_result_path(p.result_path.as_ref(), raw.clone(), result)?;
                    dataflow::apply_output_path(st.output_path.as_ref(), out, &ctx)
                })();
                drop(ctx);
                match r {
                    Ok(out) => self.leave(sid, out),
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Succeed => {
                let r = effective.and_then(|eff| {
                    dataflow::apply_output_path(st.output_path.as_ref(), eff, &ctx)
                });
                drop(ctx);
                match r {
                    Ok(out) => {
                        self.history(HistoryEvent::SucceedStateExited {
                            name: st.name.clone(),
                            path: self.cur(sid).path.clone(),
                            output: out.clone(),
                        });
                        self.queue.push_back(Work::ScopeDone {
                            sid,
                            result: Ok(out),
                        });
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Fail(f) => {
                let spec =
                    |s: &Option<StringSpec>, rng: &mut Rng| -> Result<Option<String>, AslError> {
                        Ok(match s {
                            None => None,
                            Some(StringSpec::Value(v)) => Some(v.clone()),
                            Some(StringSpec::Path(p)) => match dataflow::select(p, raw, &ctx) {
                                Some(Value::String(s)) => Some(s),
                                Some(other) => Some(other.to_string()),
                                None => {
                                    return Err(AslError::runtime(format!(
                                        "the path '{}' could not be found in the input",
                                        p.as_str()
                                    )));
                                }
                            },
                            Some(StringSpec::Intrinsic(e)) => {
                                match intrinsics::eval(
                                    e,
                                    &mut |p: &Path| dataflow::select(p, raw, &ctx),
                                    rng,
                                )? {
                                    Value::String(s) => Some(s),
                                    other => Some(other.to_string()),
                                }
                            }
                        })
                    };
                let r = spec(&f.error, rng).and_then(|e| Ok((e, spec(&f.cause, rng)?)));
                drop(ctx);
                let err = match r {
                    Ok((error, cause)) => AslError {
                        error: error.unwrap_or_default(),
                        cause,
                    },
                    Err(e) => e,
                };
                self.queue.push_back(Work::ScopeDone {
                    sid,
                    result: Err(err),
                });
            }
            StateKind::Choice(c) => {
                let r = effective.and_then(|eff| {
                    let next = evaluate_choice(&c.choices, &eff, &ctx)?
                        .map(str::to_string)
                        .or_else(|| c.default.clone());
                    match next {
                        Some(n) => Ok((
                            n,
                            dataflow::apply_output_path(st.output_path.as_ref(), eff, &ctx)?,
                        )),
                        None => Err(AslError::new(
                            names::NO_CHOICE_MATCHED,
                            "No Choice Rules matched and no Default was specified",
                        )),
                    }
                });
                drop(ctx);
                match r {
                    Ok((next, out)) => {
                        self.history(HistoryEvent::ChoiceStateExited {
                            name: st.name.clone(),
                            path: self.cur(sid).path.clone(),
                            output: out.clone(),
                            next: next.clone(),
                        });
                        self.goto(sid, &next, out);
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Wait(w) => {
                let now = self.now;
                let r = effective.and_then(|eff| {
                    let at = match &w.wait {
                        WaitSpec::Seconds(s) => now.add(Duration::from_secs(*s)),
                        WaitSpec::Timestamp(t) => Timestamp::parse(t)
                            .ok_or_else(|| AslError::runtime(format!("invalid timestamp '{t}'")))?,
                        WaitSpec::SecondsPath(p) => {
                            let n = positive_int_from(
                                &NumberSpec::Path(p.clone()),
                                &eff,
                                "SecondsPath",
                            )?;
                            now.add(Duration::from_secs(n as u64))
                        }
                        WaitSpec::TimestampPath(p) => match p.select(&eff) {
                            Some(Value::String(s)) => Timestamp::parse(&s).ok_or_else(|| {
                                AslError::runtime(format!(
                                    "TimestampPath: '{s}' is not an RFC 3339 timestamp"
                                ))
                            })?,
                            Some(other) => {
                                return Err(AslError::runtime(format!(
                                    "TimestampPath: expected a timestamp string, got {other}"
                                )));
                            }
                            None => {
                                return Err(AslError::runtime(format!(
                                    "TimestampPath: the path '{}' could not be found in the input",
                                    p.as_str()
                                )));
                            }
                        },
                    };
                    Ok((at, eff))
                });
                drop(ctx);
                match r {
                    Ok((at, eff)) if at <= now => self.wait_over(sid, eff),
                    Ok((at, eff)) => {
                        let id = TimerId(format!("{}:wait", self.cur(sid).id_base));
                        self.start_timer(id.clone(), Some(sid), at, TimerPurpose::Wait);
                        self.cur_mut(sid).phase = Phase::Wait {
                            timer: id,
                            effective: eff,
                        };
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Task(t) => {
                let r = effective.and_then(|eff| {
                    let timeout = t
                        .timeout
                        .as_ref()
                        .map(|s| positive_int_from(s, &eff, "TimeoutSecondsPath"))
                        .transpose()?;
                    let heartbeat = t
                        .heartbeat
                        .as_ref()
                        .map(|s| positive_int_from(s, &eff, "HeartbeatSecondsPath"))
                        .transpose()?;
                    let input = match &t.parameters {
                        Some(p) => dataflow::apply_parameters(p, &eff, &ctx, rng)?,
                        None => eff,
                    };
                    Ok((input, timeout, heartbeat))
                });
                drop(ctx);
                match r {
                    Ok((input, timeout, heartbeat)) => {
                        self.run_task(sid, st, &t.resource, input, timeout, heartbeat)
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Parallel(p) => {
                let r = effective.and_then(|eff| match &p.parameters {
                    Some(t) => dataflow::apply_parameters(t, &eff, &ctx, rng),
                    None => Ok(eff),
                });
                drop(ctx);
                match r {
                    Ok(input) => {
                        let n = p.branches.len();
                        self.fanout(sid, st, vec![input; n], 0, None, None, false);
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Map(m) => {
                let r = effective.and_then(|eff| {
                    let items = match dataflow::select(&m.items_path, &eff, &ctx) {
                        Some(Value::Array(a)) => a,
                        Some(other) => {
                            return Err(AslError::runtime(format!(
                                "ItemsPath '{}' must select a JSON array, got {}",
                                m.items_path.as_str(),
                                crate::path::type_name(&other)
                            )));
                        }
                        None => {
                            return Err(AslError::runtime(format!(
                                "Invalid path '{}': the ItemsPath could not be found in the input",
                                m.items_path.as_str()
                            )));
                        }
                    };
                    let maxc = m
                        .max_concurrency
                        .as_ref()
                        .map(|s| positive_int_from(s, &eff, "MaxConcurrencyPath"))
                        .transpose()?;
                    let tc = m
                        .tolerated_failure_count
                        .as_ref()
                        .map(|s| positive_int_from(s, &eff, "ToleratedFailureCountPath"))
                        .transpose()?;
                    let tp = m
                        .tolerated_failure_percentage
                        .as_ref()
                        .map(|s| num_from(s, &eff, "ToleratedFailurePercentagePath"))
                        .transpose()?;
                    if let Some(p) = tp
                        && !(0.0..=100.0).contains(&p)
                    {
                        return Err(AslError::runtime(
                            "ToleratedFailurePercentage must be between 0 and 100",
                        ));
                    }
                    let inputs = match &m.item_selector {
                        None => items,
                        Some(sel) => {
                            let mut v = Vec::with_capacity(items.len());
                            for (i, item) in items.iter().enumerate() {
                                v.push(item_input(sel, &eff, &ci, i, item, rng)?);
                            }
                            v
                        }
                    };
                    Ok((inputs, maxc, tc, tp))
                });
                drop(ctx);
                match r {
                    Ok((inputs, maxc, tc, tp)) => {
                        self.fanout(sid, st, inputs, maxc.unwrap_or(0.0) as usize, tc, tp, true)
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
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

    /// Leave the current state with `output` (history Exited) and follow Next/End.
    fn leave(&mut self, sid: Sid, output: Value) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        if let Some(h) =
            HistoryEvent::exited(&st.kind, &st.name, &self.cur(sid).path, output.clone())
        {
            self.history(h);
        }
        if st.end {
            self.queue.push_back(Work::ScopeDone {
                sid,
                result: Ok(output),
            });
        } else if let Some(n) = &st.next {
            self.goto(sid, n, output);
        }
    }

    fn goto(&mut self, sid: Sid, next: &str, input: Value) {
        let m = self.scopes[&sid].machine.clone();
        match m.index_of(next) {
            Some(i) => self.queue.push_back(Work::Enter {
                sid,
                state: i,
                input,
            }),
            None => self.queue.push_back(Work::ScopeDone {
                sid,
                result: Err(AslError::runtime(format!("state '{next}' not found"))),
            }),
        }
    }

    fn wait_over(&mut self, sid: Sid, effective: Value) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let ci = CtxInfo {
            ec: &self.ctx,
            exec_input: &self.input,
            redrive_count: self.redrive_count,
            state: &st.name,
            entered: self.cur(sid).entered,
            retry_count: 0,
            item: None,
        };
        let build = || ci.value();
        let ctx = Ctx::lazy(&build, ci.exec_input);
        let r = dataflow::apply_output_path(st.output_path.as_ref(), effective, &ctx);
        drop(ctx);
        self.cur_mut(sid).phase = Phase::Idle;
        match r {
            Ok(out) => self.leave(sid, out),
            Err(e) => self.state_failed(sid, e, false),
        }
    }

    fn run_task(
        &mut self,
        sid: Sid,
        st: &State,
        resource: &Resource,
        input: Value,
        timeout: Option<f64>,
        heartbeat: Option<f64>,
    ) {
        let now = self.now;
        let cur = self.cur(sid);
        let attempt = cur.attempt;
        let task_id = TaskId(format!("{}#{}", cur.id_base, attempt));
        let path = cur.path.clone();
        let timeout_d = timeout.map(secs);
        let heartbeat_d = heartbeat.map(secs);
        self.history(HistoryEvent::TaskScheduled {
            name: st.name.clone(),
            path: path.clone(),
            task_id: task_id.0.clone(),
            resource: resource.clone(),
            input: input.clone(),
            attempt,
            timeout_seconds: timeout,
            heartbeat_seconds: heartbeat,
        });
        let action = Action::RunTask {
            task_id: task_id.clone(),
            state_name: st.name.clone(),
            state_path: path,
            resource: resource.clone(),
            input,
            timeout: timeout_d,
            heartbeat: heartbeat_d,
            attempt,
        };
        self.out.push(action.clone());
        self.tasks
            .insert(task_id.clone(), TaskEntry { sid, action });
        let timeout_timer = timeout_d.map(|d| {
            let id = TimerId(format!("{task_id}:timeout"));
            self.start_timer(id.clone(), Some(sid), now.add(d), TimerPurpose::TaskTimeout);
            id
        });
        let heartbeat_timer = heartbeat_d.map(|d| {
            let id = TimerId(format!("{task_id}:heartbeat0"));
            self.start_timer(id.clone(), Some(sid), now.add(d), TimerPurpose::Heartbeat);
            id
        });
        self.cur_mut(sid).phase = Phase::Task {
            task_id,
            timeout_timer,
            heartbeat_timer,
            heartbeat: heartbeat_d,
            beats: 0,
        };
    }

    /// Clear a running task's bookkeeping (timers, registry); returns its scope.
    fn end_task(&mut self, task_id: &TaskId) -> Option<Sid> {
        let entry = self.tasks.remove(task_id)?;
        let sid = entry.sid;
        let phase = std::mem::replace(&mut self.cur_mut(sid).phase, Phase::Idle);
        if let Phase::Task {
            timeout_timer,
            heartbeat_timer,
            ..
        } = phase
        {
            for t in [timeout_timer, heartbeat_timer].into_iter().flatten() {
                self.cancel_timer(&t);
            }
        }
        Some(sid)
    }

    fn task_done(&mut self, task_id: TaskId, result: Result<Value, AslError>) {
        let Some(sid) = self.end_task(&task_id) else {
            return;
        };
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let path = self.cur(sid).path.clone();
        match result {
            Ok(output) => {
                self.history(HistoryEvent::TaskSucceeded {
                    name: st.name.clone(),
                    path,
                    task_id: task_id.0,
                    output: output.clone(),
                });
                self.complete(sid, output);
            }
            Err(e) => {
                self.history(HistoryEvent::TaskFailed {
                    name: st.name.clone(),
                    path,
                    task_id: task_id.0,
                    error: e.error.clone(),
                    cause: e.cause.clone(),
                });
                self.state_failed(sid, e, false);
            }
        }
    }

    fn heartbeat(&mut self, task_id: TaskId) {
        let Some(entry) = self.tasks.get(&task_id) else {
            return;
        };
        let sid = entry.sid;
        let now = self.now;
        let Phase::Task {
            heartbeat_timer,
            heartbeat: Some(d),
            beats,
            ..
        } = &mut self.cur_mut(sid).phase
        else {
            return;
        };
        *beats += 1;
        let (old, d, n) = (heartbeat_timer.take(), *d, *beats);
        if let Some(old) = old {
            self.cancel_timer(&old);
        }
        let id = TimerId(format!("{task_id}:heartbeat{n}"));
        self.start_timer(id.clone(), Some(sid), now.add(d), TimerPurpose::Heartbeat);
        if let Phase::Task {
            heartbeat_timer, ..
        } = &mut self.cur_mut(sid).phase
        {
            *heartbeat_timer = Some(id);
        }
    }

    fn timer_fired(&mut self, id: TimerId) {
        let Some(t) = self.timers.remove(&id) else {
            return;
        };
        if t.sid
            .is_some_and(|s| self.scopes.get(&s).and_then(|s| s.cur.as_ref()).is_none())
        {
            return;
        }
        match t.purpose {
            TimerPurpose::ExecutionTimeout => {
                self.finish(
                    Status::TimedOut,
                    None,
                    Some(AslError::new(
                        names::TIMEOUT,
                        "The execution timed out (TimeoutSeconds exceeded)",
                    )),
                );
            }
            TimerPurpose::Wait => {
                let Some(sid) = t.sid else { return };
                let phase = std::mem::replace(&mut self.cur_mut(sid).phase, Phase::Idle);
                if let Phase::Wait { effective, .. } = phase {
                    self.wait_over(sid, effective);
                }
            }
            TimerPurpose::RetryBackoff => {
                let Some(sid) = t.sid else { return };
                self.cur_mut(sid).phase = Phase::Idle;
                self.exec(sid);
            }
            TimerPurpose::TaskTimeout | TimerPurpose::Heartbeat => {
                let Some(sid) = t.sid else { return };
                let Phase::Task { task_id, .. } = &self.cur(sid).phase else {
                    return;
                };
                let task_id = task_id.clone();
                self.end_task(&task_id);
                self.out.push(Action::CancelTask {
                    task_id: task_id.clone(),
                });
                let (m, idx) = self.state_of(sid);
                let st = &m.states[idx];
                let err = if t.purpose == TimerPurpose::TaskTimeout {
                    AslError::new(
                        names::TIMEOUT,
                        "The task did not finish within TimeoutSeconds",
                    )
                } else {
                    AslError::new(
                        names::HEARTBEAT_TIMEOUT,
                        "The task sent no heartbeat within HeartbeatSeconds",
                    )
                };
                self.history(HistoryEvent::TaskTimedOut {
                    name: st.name.clone(),
                    path: self.cur(sid).path.clone(),
                    task_id: task_id.0,
                    error: err.error.clone(),
                    cause: err.cause.clone(),
                });
                self.state_failed(sid, err, false);
            }
        }
    }

    /// Task/Parallel/Map produced `result`: ResultSelector → ResultPath → OutputPath.
    fn complete(&mut self, sid: Sid, result: Value) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let (selector, result_path) = match &st.kind {
            StateKind::Task(t) => (t.result_selector.as_ref(), t.result_path.as_ref()),
            StateKind::Parallel(p) => (p.result_selector.as_ref(), p.result_path.as_ref()),
            StateKind::Map(mp) => (mp.result_selector.as_ref(), mp.result_path.as_ref()),
            _ => (None, None),
        };
        let cur = self.scopes[&sid].cur.as_ref().expect("current state");
        let ci = CtxInfo {
            ec: &self.ctx,
            exec_input: &self.input,
            redrive_count: self.redrive_count,
            state: &st.name,
            entered: cur.entered,
            retry_count: cur.retry_count,
            item: None,
        };
        let build = || ci.value();
        let ctx = Ctx::lazy(&build, ci.exec_input);
        let rng = &mut self.rng;
        let r = (|| {
            let selected = match selector {
                Some(t) => dataflow::apply_result_selector(t, &result, &ctx, rng)?,
                None => result,
            };
            let out = dataflow::apply_result_path(result_path, cur.input.clone(), selected)?;
            Ok::<_, AslError>(out)
        })();
        let r = r.map(|out| dataflow::apply_output_path(st.output_path.as_ref(), out, &ctx));
        drop(ctx);
        match r {
            Ok(Ok(out)) => self.leave(sid, out),
            Ok(Err(e)) | Err(e) => self.state_failed(sid, e, false),
        }
    }

    /// The current state failed with `err`: Retry, then Catch, else the scope fails.
    fn state_failed(&mut self, sid: Sid, err: AslError, from_branch: bool) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let (retry, catch): (&[Retrier], &[Catcher]) = match &st.kind {
            StateKind::Task(t) => (&t.retry, &t.catch),
            StateKind::Parallel(p) => (&p.retry, &p.catch),
            StateKind::Map(mp) => (&mp.retry, &mp.catch),
            _ => (&[], &[]),
        };
        // The first retrier whose ErrorEquals matches decides; if it is exhausted, go to Catch.
        if let Some((ri, r)) = retry
            .iter()
            .enumerate()
            .find(|(_, r)| error_matches(&r.error_equals, &err, from_branch))
        {
            let count = self.cur(sid).retriers[ri];
            if count < r.max_attempts {
                let mut delay = r.interval_seconds * r.backoff_rate.powi(count as i32);
                if let Some(max) = r.max_delay_seconds {
                    delay = delay.min(max);
                }
                if r.jitter == Jitter::Full {
                    delay *= self.rng.next_f64();
                }
                let delay = secs(delay);
                let now = self.now;
                let cur = self.cur_mut(sid);
                cur.retriers[ri] += 1;
                cur.retry_count += 1;
                cur.attempt += 1;
                let attempt = cur.attempt;
                let timer = TimerId(format!("{}#{}:retry", cur.id_base, attempt));
                let path = cur.path.clone();
                self.history(HistoryEvent::RetryScheduled {
                    name: st.name.clone(),
                    path,
                    error: err.error.clone(),
                    attempt,
                    delay_seconds: delay.as_secs_f64(),
                });
                if delay.is_zero() {
                    self.exec(sid);
                } else {
                    self.start_timer(
                        timer.clone(),
                        Some(sid),
                        now.add(delay),
                        TimerPurpose::RetryBackoff,
                    );
                    self.cur_mut(sid).phase = Phase::Backoff { timer };
                }
                return;
            }
        }
        if let Some(c) = catch
            .iter()
            .find(|c| error_matches(&c.error_equals, &err, from_branch))
        {
            let raw = self.cur(sid).input.clone();
            match dataflow::apply_result_path(c.result_path.as_ref(), raw, err.to_value()) {
                Ok(out) => {
                    self.history(HistoryEvent::Caught {
                        name: st.name.clone(),
                        path: self.cur(sid).path.clone(),
                        error: err.error.clone(),
                        next: c.next.clone(),
                    });
                    if let Some(h) =
                        HistoryEvent::exited(&st.kind, &st.name, &self.cur(sid).path, out.clone())
                    {
                        self.history(h);
                    }
                    self.goto(sid, &c.next, out);
                }
                Err(e) => self.queue.push_back(Work::ScopeDone {
                    sid,
                    result: Err(e),
                }),
            }
            return;
        }
        self.queue.push_back(Work::ScopeDone {
            sid,
            result: Err(err),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn fanout(
        &mut self,
        sid: Sid,
        st: &State,
        inputs: Vec<Value>,
        max_concurrency: usize,
        tolerated_count: Option<f64>,
        tolerated_pct: Option<f64>,
        is_map: bool,
    ) {
        let n = inputs.len();
        let cur = self.cur(sid);
        let path = cur.path.clone();
        self.history(if is_map {
            HistoryEvent::MapStateStarted {
                name: st.name.clone(),
                path,
                length: n,
            }
        } else {
            HistoryEvent::ParallelStateStarted {
                name: st.name.clone(),
                path,
                branches: n,
            }
        });
        let mut f = Fanout {
            is_map,
            children: vec![None; n],
            results: vec![None; n],
            ok: vec![false; n],
            inputs,
            next_start: 0,
            running: 0,
            done: 0,
            failed: 0,
            max_concurrency,
            tolerated_count,
            tolerated_pct,
        };
        // After a redrive, children that succeeded before keep their output.
        let top_redrive = sid == 0 && self.preserved.is_some();
        if top_redrive && let Some(p) = self.preserved.take() {
            for (i, v) in p.into_iter().enumerate().take(n) {
                if let Some(v) = v {
                    f.results[i] = Some(v);
                    f.ok[i] = true;
                    f.done += 1;
                }
            }
        }
        self.cur_mut(sid).phase = Phase::Fanout(Box::new(f));
        self.start_children(sid);
        self.check_fanout_done(sid);
    }

    fn start_children(&mut self, sid: Sid) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let cur = self.cur(sid);
        let base = if cur.attempt > 1 {
            format!("{}#{}", cur.id_base, cur.attempt)
        } else {
            cur.id_base.clone()
        };
        let path = cur.path.clone();
        loop {
            let Phase::Fanout(f) = &mut self.cur_mut(sid).phase else {
                return;
            };
            while f.next_start < f.children.len() && f.ok[f.next_start] {
                f.next_start += 1;
            }
            if f.next_start >= f.children.len()
                || (f.max_concurrency > 0 && f.running >= f.max_concurrency)
            {
                return;
            }
            let i = f.next_start;
            f.next_start += 1;
            f.running += 1;
            let input = if f.is_map {
                std::mem::take(&mut f.inputs[i])
            } else {
                f.inputs[i].clone()
            };
            let (machine, prefix) = match &st.kind {
                StateKind::Parallel(p) => (p.branches[i].clone(), format!("{base}/branch[{i}]/")),
                StateKind::Map(mp) => (mp.processor.clone(), format!("{base}[{i}]/")),
                _ => return,
            };
            let is_map = f.is_map;
            let child = self.new_scope(machine.clone(), prefix, Some((sid, i)));
            if let Phase::Fanout(f) = &mut self.cur_mut(sid).phase {
                f.children[i] = Some(child);
            }
            if is_map {
                self.history(HistoryEvent::MapIterationStarted {
                    name: st.name.clone(),
                    path: path.clone(),
                    index: i,
                });
            }
            match machine.index_of(&machine.start_at) {
                Some(s) => self.queue.push_back(Work::Enter {
                    sid: child,
                    state: s,
                    input,
                }),
                None => self.queue.push_back(Work::ScopeDone {
                    sid: child,
                    result: Err(AslError::runtime("StartAt not found")),
                }),
            }
        }
    }

    fn check_fanout_done(&mut self, sid: Sid) {
        let Phase::Fanout(f) = &mut self.cur_mut(sid).phase else {
            return;
        };
        if f.done < f.children.len() {
            return;
        }
        let results: Vec<Value> = f
            .results
            .iter_mut()
            .map(|r| r.take().unwrap_or(Value::Null))
            .collect();
        let is_map = f.is_map;
        self.cur_mut(sid).phase = Phase::Idle;
        let (m, idx) = self.state_of(sid);
        let (name, path) = (m.states[idx].name.clone(), self.cur(sid).path.clone());
        self.history(if is_map {
            HistoryEvent::MapStateSucceeded { name, path }
        } else {
            HistoryEvent::ParallelStateSucceeded { name, path }
        });
        self.complete(sid, Value::Array(results));
    }

    fn child_done(&mut self, sid: Sid, i: usize, result: Result<Value, AslError>) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let path = self.cur(sid).path.clone();
        let Phase::Fanout(f) = &mut self.cur_mut(sid).phase else {
            return;
        };
        f.children[i] = None;
        f.running -= 1;
        let is_map = f.is_map;
        match result {
            Ok(v) => {
                f.results[i] = Some(v);
                f.ok[i] = true;
                f.done += 1;
                if is_map {
                    self.history(HistoryEvent::MapIterationSucceeded {
                        name: st.name.clone(),
                        path,
                        index: i,
                    });
                }
                self.start_children(sid);
                self.check_fanout_done(sid);
            }
            Err(e) => {
                let tolerant = f.tolerated_count.is_some() || f.tolerated_pct.is_some();
                let mut fail = Some(e.clone());
                if is_map && tolerant {
                    f.failed += 1;
                    f.done += 1;
                    f.results[i] = Some(e.to_value());
                    let total = f.children.len().max(1) as f64;
                    let over_count = f.tolerated_count.is_some_and(|c| f.failed as f64 > c);
                    let over_pct = f
                        .tolerated_pct
                        .is_some_and(|p| f.failed as f64 * 100.0 / total > p);
                    fail = (over_count || over_pct).then(|| {
                        AslError::new(
                            names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                            format!("The specified tolerated failure threshold was exceeded ({} failed item(s))", f.failed),
                        )
                    });
                }
                if is_map {
                    self.history(HistoryEvent::MapIterationFailed {
                        name: st.name.clone(),
                        path: path.clone(),
                        index: i,
                        error: e.error.clone(),
                        cause: e.cause.clone(),
                    });
                }
                match fail {
                    None => {
                        self.start_children(sid);
                        self.check_fanout_done(sid);
                    }
                    Some(err) => {
                        self.cancel_fanout(sid);
                        self.history(if is_map {
                            HistoryEvent::MapStateFailed {
                                name: st.name.clone(),
                                path,
                                error: err.error.clone(),
                                cause: err.cause.clone(),
                            }
                        } else {
                            HistoryEvent::ParallelStateFailed {
                                name: st.name.clone(),
                                path,
                                error: err.error.clone(),
                                cause: err.cause.clone(),
                            }
                        });
                        // Remember which children succeeded, for a redrive of this state.
                        self.state_failed(sid, err, true);
                    }
                }
            }
        }
    }

    /// Cancel every running child of the current fan-out (keeps results for redrive).
    fn cancel_fanout(&mut self, sid: Sid) {
        let children: Vec<Sid> = match &mut self.cur_mut(sid).phase {
            Phase::Fanout(f) => {
                f.running = 0;
                f.children.iter_mut().filter_map(Option::take).collect()
            }
            _ => Vec::new(),
        };
        for c in children {
            self.cancel_scope(c);
        }
    }

    /// Cancel a scope and everything below it; the scope is removed.
    fn cancel_scope(&mut self, sid: Sid) {
        let Some(scope) = self.scopes.get_mut(&sid) else {
            return;
        };
        let phase = scope
            .cur
            .as_mut()
            .map(|c| std::mem::replace(&mut c.phase, Phase::Idle));
        match phase {
            Some(Phase::Task {
                task_id,
                timeout_timer,
                heartbeat_timer,
                ..
            }) => {
                // Not registered if dropped after the history limit tripped.
                if self.tasks.remove(&task_id).is_some() {
                    self.out.push(Action::CancelTask { task_id });
                }
                for t in [timeout_timer, heartbeat_timer].into_iter().flatten() {
                    self.cancel_timer(&t);
                }
            }
            Some(Phase::Wait { timer, .. }) | Some(Phase::Backoff { timer }) => {
                self.cancel_timer(&timer)
            }
            Some(Phase::Fanout(f)) => {
                for c in f.children.into_iter().flatten() {
                    self.cancel_scope(c);
                }
            }
            _ => {}
        }
        if sid != 0 {
            self.scopes.remove(&sid);
        }
    }

    fn scope_done(&mut self, sid: Sid, result: Result<Value, AslError>) {
        let Some(scope) = self.scopes.get(&sid) else {
            return;
        };
        match scope.parent {
            Some((parent, i)) => {
                self.scopes.remove(&sid);
                if self.scopes.contains_key(&parent) {
                    self.child_done(parent, i, result);
                }
            }
            None => match result {
                Ok(v) => self.finish(Status::Succeeded, Some(v), None),
                Err(e) => self.finish(Status::Failed, None, Some(e)),
            },
        }
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

/// Iteration input of Map item `i`: ItemSelector evaluated with `$$.Map.Item`.
fn item_input(
    sel: &Template,
    eff: &Value,
    ci: &CtxInfo,
    i: usize,
    item: &Value,
    rng: &mut Rng,
) -> Result<Value, AslError> {
    let ci = CtxInfo {
        item: Some((i, item)),
        ..*ci
    };
    let build = || ci.value();
    let ctx = Ctx::lazy(&build, ci.exec_input);
    dataflow::apply_parameters(sel, eff, &ctx, rng)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Execution>();
    }

    fn start_of(text: &str, limit: Option<u64>) -> (Execution, Vec<Action>) {
        let rb = crate::parse_runbook("t.yaml", text).unwrap_or_else(|d| panic!("{d}"));
        let t0 = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
        let mut ex = Execution::new(
            rb.machine.clone(),
            json!({}),
            ExecutionContext::new("e", "e", t0),
            1,
        );
        if let Some(n) = limit {
            ex.set_max_history_events(n);
        }
        let acts = ex.start(t0);
        (ex, acts)
    }

    const SPIN: &str = r#"
StartAt: P
States:
  P: {Type: Pass, Next: C}
  C:
    Type: Choice
    Choices:
      - Variable: $.never
        IsPresent: true
        Next: Done
    Default: P
  Done: {Type: Succeed}
"#;

    #[test]
    fn infinite_pass_choice_loop_fails_at_the_history_limit() {
        let (ex, acts) = start_of(SPIN, None);
        assert_eq!(ex.status(), Status::Failed);
        let err = ex.error().unwrap();
        assert_eq!(err.error, names::RUNTIME);
        assert_eq!(
            err.cause.as_deref(),
            Some(
                "execution exceeded the limit of 25000 history events (a loop without a Task or Wait?)"
            )
        );
        let history: Vec<&HistoryEvent> = acts
            .iter()
            .filter_map(|a| match a {
                Action::History(h) => Some(h),
                _ => None,
            })
            .collect();
        assert_eq!(history.len(), DEFAULT_MAX_HISTORY_EVENTS as usize);
        assert_eq!(ex.history_event_count(), DEFAULT_MAX_HISTORY_EVENTS);
        assert!(matches!(
            history.last(),
            Some(HistoryEvent::ExecutionFailed { error, .. }) if error == names::RUNTIME
        ));
        assert!(matches!(
            acts.last(),
            Some(Action::Finished { status: Status::Failed, error: Some(e), .. }) if e == names::RUNTIME
        ));
    }

    #[test]
    fn limit_is_exact_and_configurable() {
        // Init + 3 × (Choice in/out + Inc in/out) + Choice in/out + Done in/out + start/end.
        const COUNT: &str = r#"
StartAt: Init
States:
  Init: {Type: Pass, Result: {n: 0}, Next: Loop}
  Loop:
    Type: Choice
    Choices:
      - Variable: $.n
        NumericGreaterThanEquals: 3
        Next: Done
    Default: Inc
  Inc:
    Type: Pass
    Parameters:
      n.$: States.MathAdd($.n, 1)
    Next: Loop
  Done: {Type: Succeed}
"#;
        let (ex, _) = start_of(COUNT, None);
        assert_eq!(ex.status(), Status::Succeeded);
        let n = ex.history_event_count();
        assert_eq!(n, 2 + 2 + 3 * 4 + 2 + 2);
        let (ex, _) = start_of(COUNT, Some(n));
        assert_eq!(ex.status(), Status::Succeeded);
        let (ex, acts) = start_of(COUNT, Some(n - 1));
        assert_eq!(ex.status(), Status::Failed);
        assert_eq!(ex.error().unwrap().error, names::RUNTIME);
        assert_eq!(ex.history_event_count(), n - 1);
        let h = acts
            .iter()
            .filter(|a| matches!(a, Action::History(_)))
            .count();
        assert_eq!(h as u64, n - 1);
    }
}
