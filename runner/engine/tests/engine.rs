//! Integration tests of the public API: a pure SFN definition, resume by replay, redrive,
//! task listing, input building and the diagram/schema extras.

use runbook_engine::sim::{self, TaskOutcome};
use runbook_engine::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn t0() -> Timestamp {
    Timestamp::parse("2024-01-01T00:00:00Z").unwrap()
}

fn parse(text: &str) -> Runbook {
    parse_runbook("test.yaml", text).unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn pure_step_functions_definition_runs_unchanged() {
    let text = include_str!("data/sfn_order.json");
    let rb = parse_runbook("sfn_order.json", text).unwrap();
    let input = json!({"order": {"id": "A17", "express": true, "items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}]}});
    let r = sim::run(rb.machine.clone(), input, &mut |_| panic!("no tasks"));
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    assert_eq!(r.output, Some(json!({"count": 2, "label": "order-A17"})));
    assert_eq!(r.end_time.since(t0()), Duration::from_secs(1));

    let input = json!({"order": {"id": "B2", "express": false, "items": []}});
    let r = sim::run(rb.machine.clone(), input, &mut |_| panic!("no tasks"));
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("Order.Invalid"));
    assert_eq!(r.cause.as_deref(), Some("the order has no lines"));
}

const FLOW: &str = r#"
StartAt: Prepare
States:
  Prepare:
    Type: Pass
    Parameters:
      id.$: States.UUID()
      n.$: $.n
      items.$: $.items
    Next: Work
  Work:
    Type: Task
    Resource: plugin:work
    Retry:
      - ErrorEquals: [Flaky]
        IntervalSeconds: 2
        JitterStrategy: FULL
    Next: Pause
  Pause:
    Type: Wait
    Seconds: 30
    Next: Fan
  Fan:
    Type: Map
    ItemsPath: $.items
    ItemProcessor:
      StartAt: Each
      States:
        Each:
          Type: Task
          Resource: plugin:each
          End: true
    End: true
"#;

/// Drive an execution by hand, recording (event, now) like the executor's journal.
#[test]
fn replay_reproduces_state_and_outstanding_work() {
    let rb = parse(FLOW);
    let ctx = ExecutionContext::new("exec-1", "exec-1", t0());
    let mut ex = Execution::new(
        rb.machine.clone(),
        json!({"n": 1, "items": []}),
        ctx.clone(),
        7,
    );
    let mut journal: Vec<(Event, Timestamp)> = Vec::new();
    let acts = ex.start(t0());
    let run = acts.iter().find_map(|a| match a {
        Action::RunTask { task_id, input, .. } => Some((task_id.clone(), input.clone())),
        _ => None,
    });
    let (task_id, input) = run.expect("RunTask for Work");
    assert_eq!(task_id.0, "Work#1");
    assert_eq!(input["n"], 1);
    let uuid = input["id"].as_str().unwrap().to_string();

    // Attempt 1 fails; a backoff timer with jitter follows.
    let now = t0().add(Duration::from_secs(1));
    let ev = Event::TaskFailed {
        task_id,
        error: "Flaky".into(),
        cause: "x".into(),
    };
    journal.push((ev.clone(), now));
    let acts = ex.handle(ev, now);
    let (timer, fire_at) = acts
        .iter()
        .find_map(|a| match a {
            Action::StartTimer {
                timer_id,
                fire_at,
                purpose: TimerPurpose::RetryBackoff,
            } => Some((timer_id.clone(), *fire_at)),
            _ => None,
        })
        .expect("backoff timer");
    let ev = Event::TimerFired { timer_id: timer };
    journal.push((ev.clone(), fire_at));
    let acts = ex.handle(ev, fire_at);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::RunTask { attempt: 2, .. }))
    );
    let outstanding = ex.outstanding();

    // A fresh execution fed the same journal is in the same state.
    let mut again = Execution::new(rb.machine.clone(), json!({"n": 1, "items": []}), ctx, 7);
    let first = again.start(t0());
    let uuid2 = first.iter().find_map(|a| match a {
        Action::RunTask { input, .. } => input["id"].as_str().map(str::to_string),
        _ => None,
    });
    assert_eq!(uuid2.as_deref(), Some(uuid.as_str()));
    for (ev, now) in journal {
        again.handle(ev, now);
    }
    assert_eq!(again.outstanding(), outstanding);
    assert_eq!(again.status(), Status::Running);

    // Late and unknown events are ignored.
    assert!(
        again
            .handle(
                Event::TaskSucceeded {
                    task_id: "Work#1".into(),
                    output: json!(1)
                },
                fire_at
            )
            .is_empty()
    );
    assert!(
        again
            .handle(
                Event::TimerFired {
                    timer_id: "nope".into()
                },
                fire_at
            )
            .is_empty()
    );
}

#[test]
fn redrive_reruns_only_failed_map_items() {
    let rb = parse(FLOW);
    let mut each_calls = Vec::new();
    let mut fail_item_1 = true;
    let ctx = ExecutionContext::new("e", "e", t0());
    let mut ex = Execution::new(
        rb.machine.clone(),
        json!({"n": 1, "items": [10, 11, 12]}),
        ctx,
        1,
    );
    let mut pending: Vec<Action> = ex.start(t0());
    let mut now = t0();
    // Minimal driver: answer tasks immediately, fire timers in order.
    loop {
        let mut next = Vec::new();
        for a in std::mem::take(&mut pending) {
            match a {
                Action::RunTask {
                    task_id,
                    state_name,
                    input,
                    ..
                } => {
                    let ev = if state_name == "Each" {
                        each_calls.push(input.clone());
                        if input == json!(11) && fail_item_1 {
                            Event::TaskFailed {
                                task_id,
                                error: "Boom".into(),
                                cause: "item 11".into(),
                            }
                        } else {
                            Event::TaskSucceeded {
                                task_id,
                                output: json!(format!("ok-{input}")),
                            }
                        }
                    } else {
                        Event::TaskSucceeded {
                            task_id,
                            output: input,
                        }
                    };
                    next.push((ev, now));
                }
                Action::StartTimer {
                    timer_id,
                    fire_at,
                    purpose,
                } if purpose != TimerPurpose::ExecutionTimeout => {
                    next.push((Event::TimerFired { timer_id }, fire_at));
                }
                _ => {}
            }
        }
        if next.is_empty() {
            break;
        }
        for (ev, at) in next {
            now = now.max(at);
            pending.extend(ex.handle(ev, now));
        }
    }
    assert_eq!(ex.status(), Status::Failed);
    assert_eq!(ex.error().unwrap().error, "Boom");
    assert_eq!(each_calls.len(), 3);

    fail_item_1 = false;
    let _ = fail_item_1;
    let acts = ex.redrive(now).unwrap();
    assert_eq!(ex.redrive_count(), 1);
    let reruns: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::RunTask { input, task_id, .. } => Some((task_id.0.clone(), input.clone())),
            _ => None,
        })
        .collect();
    // Item 10 succeeded before the failure and keeps its output; 11 failed and 12 was
    // cancelled when the Map failed, so those two run again.
    let inputs: Vec<_> = reruns.iter().map(|r| r.1.clone()).collect();
    assert_eq!(inputs, [json!(11), json!(12)], "{reruns:?}");
    assert!(reruns[0].0.starts_with("Fan~2[1]/Each"), "{}", reruns[0].0);
    let mut fin = Vec::new();
    for (id, input) in reruns {
        fin.extend(ex.handle(
            Event::TaskSucceeded {
                task_id: TaskId(id),
                output: json!(format!("ok-{input}")),
            },
            now,
        ));
    }
    assert!(fin.iter().any(|a| matches!(
        a,
        Action::Finished {
            status: Status::Succeeded,
            ..
        }
    )));
    assert_eq!(ex.output(), Some(&json!(["ok-10", "ok-11", "ok-12"])));
    assert!(
        ex.redrive(now).is_err(),
        "a succeeded execution cannot be redriven"
    );
}

#[test]
fn redrive_after_task_failure_uses_recorded_input_and_count() {
    let rb = parse(
        "StartAt: A\nStates:\n  A:\n    Type: Pass\n    Result: {x: 1}\n    Next: T\n  T:\n    Type: Task\n    Resource: plugin:t\n    Parameters:\n      x.$: $.x\n      redrive.$: $$.Execution.RedriveCount\n    End: true\n",
    );
    let mut ex = Execution::new(
        rb.machine.clone(),
        json!({}),
        ExecutionContext::new("e", "e", t0()),
        0,
    );
    let acts = ex.start(t0());
    let id = acts
        .iter()
        .find_map(|a| {
            if let Action::RunTask { task_id, .. } = a {
                Some(task_id.clone())
            } else {
                None
            }
        })
        .unwrap();
    ex.handle(
        Event::TaskFailed {
            task_id: id,
            error: "E".into(),
            cause: "c".into(),
        },
        t0(),
    );
    assert_eq!(ex.status(), Status::Failed);
    let acts = ex.redrive(t0()).unwrap();
    let input = acts
        .iter()
        .find_map(|a| {
            if let Action::RunTask { input, task_id, .. } = a {
                Some((task_id.clone(), input.clone()))
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(input.1, json!({"x": 1, "redrive": 1}));
    assert_eq!(input.0.0, "T~2#1");
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::History(HistoryEvent::ExecutionRedriven {
            redrive_count: 1,
            ..
        })
    )));
}

#[test]
fn abort_cancels_outstanding_work() {
    let rb = parse(
        "StartAt: T\nStates:\n  T:\n    Type: Task\n    Resource: plugin:t\n    TimeoutSeconds: 60\n    End: true\n",
    );
    let mut ex = Execution::new(
        rb.machine.clone(),
        json!({}),
        ExecutionContext::new("e", "e", t0()),
        0,
    );
    ex.start(t0());
    assert_eq!(ex.outstanding().len(), 2);
    let acts = ex.abort(Some("Operator.Stop".into()), Some("stopped".into()), t0());
    assert!(acts.iter().any(|a| matches!(a, Action::CancelTask { .. })));
    assert!(acts.iter().any(|a| matches!(a, Action::CancelTimer { .. })));
    assert_eq!(ex.status(), Status::Aborted);
    assert!(ex.outstanding().is_empty());
}

#[test]
fn tasks_lists_nested_states_with_positions() {
    let rb = parse(
        r#"
Runbook:
  Name: deploy
StartAt: Deploy
States:
  Deploy:
    Type: Parallel
    Next: Fan
    Branches:
      - StartAt: Net
        States:
          Net: {Type: Task, Resource: plugin:ec2, Capabilities: ["ec2:CreateVpc"], End: true}
      - StartAt: CreatePrimary
        States:
          CreatePrimary:
            Type: Task
            Resource: ./plugins/rds.wasm
            Sha256: ab00000000000000000000000000000000000000000000000000000000000000
            Capabilities:
              - rds:CreateDBInstance on primary-postgres-*
            End: true
  Fan:
    Type: Map
    ItemProcessor:
      StartAt: Probe
      States:
        Probe: {Type: Task, Resource: "arn:aws:lambda:us-east-1:1:function:probe", End: true}
    End: true
"#,
    );
    let tasks = rb.tasks();
    let paths: Vec<_> = tasks.iter().map(|t| t.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Deploy/branch[0]/Net",
            "Deploy/branch[1]/CreatePrimary",
            "Fan[*]/Probe"
        ]
    );
    assert_eq!(
        tasks[1].resource,
        Resource::Wasm("./plugins/rds.wasm".into())
    );
    assert_eq!(
        tasks[1].capabilities,
        ["rds:CreateDBInstance on primary-postgres-*"]
    );
    assert_eq!(tasks[1].pos, Pos { line: 15, col: 11 });
    assert_eq!(
        tasks[2].resource,
        Resource::Other("arn:aws:lambda:us-east-1:1:function:probe".into())
    );
    assert_eq!(
        rb.position_of("/States/Fan"),
        Some(Pos { line: 22, col: 3 })
    );
    let d = rb.diag(
        tasks[0].pos,
        "plugin 'ec2' imports rds but the Task grants only ec2",
    );
    assert_eq!(
        d.to_string(),
        "test.yaml:12:11: plugin 'ec2' imports rds but the Task grants only ec2"
    );
    assert_eq!(rb.meta.name.as_deref(), Some("deploy"));
}

#[test]
fn build_input_overlays_defaults_input_and_params() {
    let rb = parse(
        r#"
Runbook:
  Parameters:
    region: {Type: string, Default: us-east-1}
    replicas: {Type: integer, Default: 1}
    force: {Type: boolean, Default: false}
    threshold: {Type: number}
    tags: {Type: object, Default: {}}
StartAt: S
States:
  S: {Type: Succeed}
"#,
    );
    let v = build_input(
        &rb.meta,
        json!({"threshold": 1.5, "extra": "kept"}),
        &[
            ("replicas".into(), "3".into()),
            ("force".into(), "true".into()),
        ],
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"region": "us-east-1", "replicas": 3, "force": true, "tags": {}, "threshold": 1.5, "extra": "kept"})
    );
    let e = build_input(&rb.meta, Value::Null, &[]).unwrap_err();
    assert_eq!(e.code(), "E-PARAM-MISSING");
    let e = build_input(
        &rb.meta,
        json!({"threshold": 1}),
        &[("nope".into(), "1".into())],
    )
    .unwrap_err();
    assert_eq!(e.code(), "E-PARAM-UNKNOWN");
    let e = build_input(
        &rb.meta,
        json!({"threshold": 1}),
        &[("replicas".into(), "many".into())],
    )
    .unwrap_err();
    assert_eq!(e.code(), "E-PARAM-TYPE");
    let e = build_input(&rb.meta, json!({"threshold": "high"}), &[]).unwrap_err();
    assert_eq!(e.code(), "E-PARAM-TYPE");
    let v = build_input(
        &rb.meta,
        json!({"threshold": 2}),
        &[
            ("tags".into(), r#"{"env":"dev"}"#.into()),
            ("region".into(), "eu-west-1".into()),
        ],
    )
    .unwrap();
    assert_eq!(v["tags"], json!({"env": "dev"}));
    assert_eq!(v["region"], "eu-west-1");
}

#[test]
fn diagrams_and_schema() {
    let rb = parse_runbook("sfn_order.json", include_str!("data/sfn_order.json")).unwrap();
    let m = to_mermaid(&rb.machine);
    assert!(m.starts_with("flowchart TD"));
    assert!(m.contains("subgraph"));
    assert!(m.contains("$.ctx.express BooleanEquals true"));
    let d = to_dot(&rb.machine);
    assert!(d.contains("digraph runbook"));
    assert!(d.contains("subgraph cluster_"));
    let caught = parse(
        "StartAt: T\nStates:\n  T: {Type: Task, Resource: plugin:x, Catch: [{ErrorEquals: [States.ALL], Next: H}], End: true}\n  H: {Type: Succeed}\n",
    );
    assert!(to_dot(&caught.machine).contains("style=dashed"));
    assert!(to_mermaid(&caught.machine).contains("-.->"));
    let s = json_schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(s["$defs"]["task"]["properties"]["Capabilities"].is_object());
}

#[test]
fn sim_scripted_closure_sees_calls() {
    let rb = parse(
        "StartAt: T\nStates:\n  T: {Type: Task, Resource: plugin:t, Parameters: {a.$: $.a}, End: true}\n",
    );
    let mut seen = Vec::new();
    let r = sim::run(Arc::clone(&rb.machine), json!({"a": 5}), &mut |c| {
        seen.push((c.state_path.clone(), c.input.clone(), c.attempt));
        TaskOutcome::ok(json!({"done": true})).after(Duration::from_secs(2))
    });
    assert_eq!(r.status, Status::Succeeded);
    assert_eq!(seen, [("T".to_string(), json!({"a": 5}), 1)]);
    assert_eq!(r.end_time.since(t0()), Duration::from_secs(2));
}

const SPIN_BRANCHES: &str = r#"
StartAt: Par
TimeoutSeconds: 3600
States:
  Par:
    Type: Parallel
    Retry:
      - ErrorEquals: [States.ALL]
        MaxAttempts: 3
    Catch:
      - ErrorEquals: [States.Runtime]
        Next: Caught
      - ErrorEquals: [States.ALL]
        Next: Caught
    Branches:
      - StartAt: T
        States:
          T: {Type: Task, Resource: plugin:t, TimeoutSeconds: 60, End: true}
      - StartAt: W
        States:
          W: {Type: Wait, Seconds: 60, End: true}
      - StartAt: P
        States:
          P: {Type: Pass, Next: C}
          C:
            Type: Choice
            Choices:
              - Variable: $.stop
                IsPresent: true
                Next: Out
            Default: P
          Out: {Type: Succeed}
    End: true
  Caught: {Type: Succeed}
"#;

#[test]
fn history_limit_fails_execution_cancels_work_and_is_not_caught() {
    let rb = parse(SPIN_BRANCHES);
    let mut ex = Execution::new(
        rb.machine.clone(),
        json!({}),
        ExecutionContext::new("e", "e", t0()),
        0,
    )
    .with_max_history_events(500);
    let acts = ex.start(t0());
    assert_eq!(ex.status(), Status::Failed);
    let err = ex.error().unwrap();
    assert_eq!(err.error, "States.Runtime");
    assert!(
        err.cause
            .as_deref()
            .unwrap()
            .contains("exceeded the limit of 500 history events"),
        "{err:?}"
    );
    // The task and timers started before the limit tripped are cancelled.
    let run = acts.iter().find_map(|a| match a {
        Action::RunTask { task_id, .. } => Some(task_id.clone()),
        _ => None,
    });
    let run = run.expect("branch 0 ran its task");
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::CancelTask { task_id } if *task_id == run))
    );
    let started: Vec<TimerId> = acts
        .iter()
        .filter_map(|a| match a {
            Action::StartTimer { timer_id, .. } => Some(timer_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 3, "{started:?}"); // execution timeout, task timeout, wait
    for t in &started {
        assert!(
            acts.iter()
                .any(|a| matches!(a, Action::CancelTimer { timer_id } if timer_id == t)),
            "{t} not cancelled"
        );
    }
    assert!(ex.outstanding().is_empty());
    let history: Vec<&HistoryEvent> = acts
        .iter()
        .filter_map(|a| match a {
            Action::History(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(history.len(), 500);
    assert!(matches!(
        history.last(),
        Some(HistoryEvent::ExecutionFailed { .. })
    ));
    assert!(!history.iter().any(|h| matches!(
        h,
        HistoryEvent::Caught { .. }
            | HistoryEvent::RetryScheduled { .. }
            | HistoryEvent::ParallelStateFailed { .. }
    )));
    assert!(matches!(
        acts.last(),
        Some(Action::Finished {
            status: Status::Failed,
            ..
        })
    ));
    assert!(ex.redrive(t0()).is_err(), "no redrive past the limit");
    assert!(
        ex.handle(
            Event::TaskSucceeded {
                task_id: run,
                output: json!(1)
            },
            t0()
        )
        .is_empty()
    );
}

#[test]
fn history_limit_counts_across_calls_and_replays_exactly() {
    // Every task result adds 6 events: TaskSucceeded, TaskStateExited, Choice in/out,
    // TaskStateEntered, TaskScheduled. Start adds 3.
    let rb = parse(
        "StartAt: T\nStates:\n  T: {Type: Task, Resource: plugin:t, Next: C}\n  C:\n    Type: Choice\n    Choices:\n      - {Variable: $.done, IsPresent: true, Next: D}\n    Default: T\n  D: {Type: Succeed}\n",
    );
    let new = || {
        Execution::new(
            rb.machine.clone(),
            json!({}),
            ExecutionContext::new("e", "e", t0()),
            0,
        )
        .with_max_history_events(20)
    };
    let mut ex = new();
    let mut acts = ex.start(t0());
    assert_eq!(ex.history_event_count(), 3);
    let mut journal = Vec::new();
    let mut counts = Vec::new();
    while ex.status() == Status::Running {
        let task_id = acts
            .iter()
            .find_map(|a| match a {
                Action::RunTask { task_id, .. } => Some(task_id.clone()),
                _ => None,
            })
            .expect("a task is running");
        let now = t0().add(Duration::from_secs(journal.len() as u64 + 1));
        let ev = Event::TaskSucceeded {
            task_id,
            output: json!({}),
        };
        journal.push((ev.clone(), now));
        acts = ex.handle(ev, now);
        counts.push(ex.history_event_count());
    }
    // 9, 15, then the third result fails: 19 events fit, the 20th is ExecutionFailed.
    assert_eq!(counts, [9, 15, 20]);
    assert_eq!(ex.status(), Status::Failed);
    assert_eq!(ex.error().unwrap().error, "States.Runtime");
    // The task the tripping step would have started is never announced.
    assert!(!acts.iter().any(|a| matches!(a, Action::RunTask { .. })));
    assert!(!acts.iter().any(|a| matches!(a, Action::CancelTask { .. })));
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::History(HistoryEvent::TaskStateEntered { .. })))
    );

    // Replay: the same events give the same result.
    let mut again = new();
    again.start(t0());
    let mut last = Vec::new();
    for (ev, now) in journal {
        last = again.handle(ev, now);
    }
    assert_eq!(last, acts);
    assert_eq!(again.status(), Status::Failed);
    assert_eq!(again.error(), ex.error());
    assert_eq!(again.history_event_count(), 20);
}

#[test]
fn history_limit_counts_map_iterations_and_allows_long_finite_loops() {
    let map = parse(
        "StartAt: M\nStates:\n  M:\n    Type: Map\n    ItemsPath: $.items\n    ItemProcessor:\n      StartAt: P\n      States:\n        P: {Type: Pass, End: true}\n    End: true\n",
    );
    let input = json!({"items": (0..10).collect::<Vec<_>>()});
    // 3 + 10 × 4 (iteration start, Pass in/out, iteration end) + 3 = 46 events.
    let opts = |n| sim::SimOptions {
        max_history_events: n,
        ..Default::default()
    };
    let r = sim::run_with(
        map.machine.clone(),
        input.clone(),
        opts(46),
        &mut |_| unreachable!(),
    );
    assert_eq!(r.status, Status::Succeeded, "{:?}", r.cause);
    assert_eq!(r.history.len(), 46);
    let r = sim::run_with(
        map.machine.clone(),
        input,
        opts(45),
        &mut |_| unreachable!(),
    );
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert_eq!(r.history.len(), 45);

    // 5,000 Choice + Pass iterations: 20,008 events, under the default limit.
    let looped = parse(
        "StartAt: Init\nStates:\n  Init: {Type: Pass, Result: {n: 0}, Next: Loop}\n  Loop:\n    Type: Choice\n    Choices:\n      - {Variable: $.n, NumericGreaterThanEquals: 5000, Next: Done}\n    Default: Inc\n  Inc:\n    Type: Pass\n    Parameters:\n      n.$: States.MathAdd($.n, 1)\n    Next: Loop\n  Done: {Type: Succeed}\n",
    );
    let r = sim::run(looped.machine.clone(), json!({}), &mut |_| unreachable!());
    assert_eq!(r.status, Status::Succeeded, "{:?}", r.cause);
    assert_eq!(r.output, Some(json!({"n": 5000})));
    assert_eq!(r.history.len(), 20_008);
}
