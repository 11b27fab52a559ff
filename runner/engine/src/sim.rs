//! A synchronous driver with a virtual clock: timers fire in time order without real waiting
//! and RunTask actions are answered by a closure. For conformance tests and callers' unit
//! tests; no I/O.

use crate::exec::{Action, Event, Execution, ExecutionContext, Status, TaskId, TimerId};
use crate::history::HistoryEvent;
use crate::model::{Resource, StateMachine};
use crate::timestamp::Timestamp;
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

/// What the closure is asked to run.
#[derive(Debug, Clone)]
pub struct TaskCall {
    pub task_id: TaskId,
    pub state_name: String,
    pub state_path: String,
    pub resource: Resource,
    pub input: Value,
    pub attempt: u32,
    /// Virtual time the task starts at.
    pub now: Timestamp,
}

/// The scripted answer to a task.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    /// Output, or (error, cause).
    pub result: Result<Value, (String, String)>,
    /// Virtual time the task takes.
    pub delay: Duration,
    /// Heartbeats sent at these offsets from the start.
    pub heartbeats: Vec<Duration>,
    /// Never completes (for timeout tests).
    pub hang: bool,
}

impl TaskOutcome {
    pub fn ok(v: Value) -> Self {
        TaskOutcome {
            result: Ok(v),
            delay: Duration::ZERO,
            heartbeats: vec![],
            hang: false,
        }
    }
    pub fn err(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskOutcome {
            result: Err((error.into(), cause.into())),
            ..Self::ok(Value::Null)
        }
    }
    pub fn hang() -> Self {
        TaskOutcome {
            hang: true,
            ..Self::ok(Value::Null)
        }
    }
    pub fn after(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Debug, Clone)]
pub struct SimResult {
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub history: Vec<HistoryEvent>,
    /// Virtual time at the end.
    pub end_time: Timestamp,
    /// Number of RunTask actions answered.
    pub task_calls: usize,
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    pub context: ExecutionContext,
    pub record_history: bool,
    /// Abort with `Sim.TooManyEvents` after this many events.
    pub max_events: usize,
    /// The execution's history event limit ([`Execution::set_max_history_events`]).
    pub max_history_events: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        let start = Timestamp::parse("2024-01-01T00:00:00Z").expect("valid");
        let mut context = ExecutionContext::new(
            "arn:aws:states:us-east-1:123456789012:execution:runbook:sim-1",
            "sim-1",
            start,
        );
        context.state_machine_id =
            "arn:aws:states:us-east-1:123456789012:stateMachine:runbook".into();
        context.state_machine_name = "runbook".into();
        SimOptions {
            seed: 42,
            context,
            record_history: true,
            max_events: 1_000_000,
            max_history_events: crate::exec::DEFAULT_MAX_HISTORY_EVENTS,
        }
    }
}

/// Run to completion with default options.
pub fn run(
    machine: Arc<StateMachine>,
    input: Value,
    tasks: &mut dyn FnMut(&TaskCall) -> TaskOutcome,
) -> SimResult {
    run_with(machine, input, SimOptions::default(), tasks)
}

/// Run to completion.
pub fn run_with(
    machine: Arc<StateMachine>,
    input: Value,
    opts: SimOptions,
    tasks: &mut dyn FnMut(&TaskCall) -> TaskOutcome,
) -> SimResult {
    let mut now = opts.context.start_time;
    let mut exec = Execution::new(machine, input, opts.context, opts.seed)
        .with_max_history_events(opts.max_history_events);
    let mut sim = Sim {
        queue: BinaryHeap::new(),
        seq: 0,
        timers: BTreeMap::new(),
        task_events: BTreeMap::new(),
        history: Vec::new(),
        record: opts.record_history,
        calls: 0,
        finished: None,
    };
    let acts = exec.start(now);
    sim.apply(acts, now, tasks);
    let mut events = 0;
    while exec.status() == Status::Running {
        let Some(Reverse((at, seq))) = sim.queue.pop() else {
            let acts = exec.abort(
                Some("Sim.Stuck".into()),
                Some("no task or timer can make progress".into()),
                now,
            );
            sim.apply(acts, now, tasks);
            break;
        };
        events += 1;
        if events > opts.max_events {
            let acts = exec.abort(
                Some("Sim.TooManyEvents".into()),
                Some(format!("more than {} events", opts.max_events)),
                now,
            );
            sim.apply(acts, now, tasks);
            break;
        }
        let Some(ev) = sim.take(seq) else { continue };
        now = now.max(at);
        let acts = exec.handle(ev, now);
        sim.apply(acts, now, tasks);
    }
    let (status, output, error, cause) =
        sim.finished
            .take()
            .unwrap_or((exec.status(), None, None, None));
    SimResult {
        status,
        output,
        error,
        cause,
        history: sim.history,
        end_time: now,
        task_calls: sim.calls,
    }
}

type Finish = (Status, Option<Value>, Option<String>, Option<String>);

struct Sim {
    queue: BinaryHeap<Reverse<(Timestamp, u64)>>,
    seq: u64,
    /// Pending timers: seq → id (and id → seq for cancellation).
    timers: BTreeMap<u64, Pending>,
    task_events: BTreeMap<TaskId, Vec<u64>>,
    history: Vec<HistoryEvent>,
    record: bool,
    calls: usize,
    finished: Option<Finish>,
}

enum Pending {
    Timer(TimerId),
    Task(Event),
}

impl Sim {
    fn push(&mut self, at: Timestamp, p: Pending) -> u64 {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.timers.insert(self.seq, p);
        self.seq
    }
    fn take(&mut self, seq: u64) -> Option<Event> {
        match self.timers.remove(&seq)? {
            Pending::Timer(id) => Some(Event::TimerFired { timer_id: id }),
            Pending::Task(e) => Some(e),
        }
    }
    fn apply(
        &mut self,
        acts: Vec<Action>,
        now: Timestamp,
        tasks: &mut dyn FnMut(&TaskCall) -> TaskOutcome,
    ) {
        for a in acts {
            match a {
                Action::RunTask {
                    task_id,
                    state_name,
                    state_path,
                    resource,
                    input,
                    attempt,
                    ..
                } => {
                    self.calls += 1;
                    let call = TaskCall {
                        task_id: task_id.clone(),
                        state_name,
                        state_path,
                        resource,
                        input,
                        attempt,
                        now,
                    };
                    let o = tasks(&call);
                    let mut seqs = Vec::new();
                    for hb in &o.heartbeats {
                        seqs.push(self.push(
                            now.add(*hb),
                            Pending::Task(Event::TaskHeartbeat {
                                task_id: task_id.clone(),
                            }),
                        ));
                    }
                    if !o.hang {
                        let ev = match o.result {
                            Ok(output) => Event::TaskSucceeded {
                                task_id: task_id.clone(),
                                output,
                            },
                            Err((error, cause)) => Event::TaskFailed {
                                task_id: task_id.clone(),
                                error,
                                cause,
                            },
                        };
                        seqs.push(self.push(now.add(o.delay), Pending::Task(ev)));
                    }
                    self.task_events.insert(task_id, seqs);
                }
                Action::CancelTask { task_id } => {
                    for s in self.task_events.remove(&task_id).unwrap_or_default() {
                        self.timers.remove(&s);
                    }
                }
                Action::StartTimer {
                    timer_id, fire_at, ..
                } => {
                    self.push(fire_at, Pending::Timer(timer_id));
                }
                Action::CancelTimer { timer_id } => {
                    self.timers
                        .retain(|_, p| !matches!(p, Pending::Timer(t) if *t == timer_id));
                }
                Action::History(h) => {
                    if self.record {
                        self.history.push(h);
                    }
                }
                Action::Finished {
                    status,
                    output,
                    error,
                    cause,
                } => self.finished = Some((status, output, error, cause)),
            }
        }
    }
}
