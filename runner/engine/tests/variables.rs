//! Workflow variables through the public API: resume by replay and redrive see them, and
//! Step Functions' size limits (per Assign, per execution). Per-rule cases are in
//! `conformance/variables.yaml`.

use runbook_engine::sim;
use runbook_engine::*;
use serde_json::{Map, Value, json};

fn t0() -> Timestamp {
    Timestamp::parse("2024-01-01T00:00:00Z").unwrap()
}

fn parse(text: &str) -> Runbook {
    parse_runbook("test.yaml", text).unwrap_or_else(|d| panic!("{d}"))
}

fn first_task(acts: &[Action]) -> (TaskId, Value) {
    acts.iter()
        .find_map(|a| match a {
            Action::RunTask { task_id, input, .. } => Some((task_id.clone(), input.clone())),
            _ => None,
        })
        .expect("a RunTask action")
}

const COUNTER: &str = r#"
StartAt: Init
States:
  Init:
    Type: Pass
    Assign:
      runs: 0
      region.$: $.region
    Next: Work
  Work:
    Type: Task
    Resource: plugin:work
    Parameters:
      region.$: $region
      runs.$: $runs
    Assign:
      runs.$: States.MathAdd($runs, 1)
      last.$: $.status
    Next: Check
  Check:
    Type: Choice
    Choices:
      - Variable: $runs
        NumericGreaterThanEquals: 2
        Next: Done
    Default: Work
  Done:
    Type: Pass
    Parameters:
      runs.$: $runs
      last.$: $last
    End: true
"#;

/// Resume replays the journal's `(event, now)` pairs into a fresh execution: the variables
/// come back with the same values because the engine is deterministic.
#[test]
fn replay_restores_variables() {
    let rb = parse(COUNTER);
    let ctx = ExecutionContext::new("e", "e", t0());
    let input = json!({"region": "eu-west-1"});
    let mut ex = Execution::new(rb.machine.clone(), input.clone(), ctx.clone(), 7);
    let mut journal: Vec<Event> = Vec::new();
    let (id, task_input) = first_task(&ex.start(t0()));
    assert_eq!(task_input, json!({"region": "eu-west-1", "runs": 0}));
    let ev = Event::TaskSucceeded {
        task_id: id,
        output: json!({"status": "ok-1"}),
    };
    journal.push(ev.clone());
    let (id2, task_input) = first_task(&ex.handle(ev, t0()));
    assert_eq!(task_input, json!({"region": "eu-west-1", "runs": 1}));
    assert_eq!(ex.variables()["runs"], json!(1));

    // A runner restart here: replay into a fresh execution.
    let mut again = Execution::new(rb.machine.clone(), input, ctx, 7);
    again.start(t0());
    for ev in &journal {
        again.handle(ev.clone(), t0());
    }
    assert_eq!(again.variables(), ex.variables());
    let pending = again.outstanding();
    assert_eq!(first_task(&pending), (id2.clone(), task_input));

    // Both finish the same way.
    for e in [&mut ex, &mut again] {
        e.handle(
            Event::TaskSucceeded {
                task_id: id2.clone(),
                output: json!({"status": "ok-2"}),
            },
            t0(),
        );
        assert_eq!(e.status(), Status::Succeeded);
        assert_eq!(e.output(), Some(&json!({"runs": 2, "last": "ok-2"})));
    }
}

/// A redriven execution keeps the top-level variables it had when it failed.
#[test]
fn redrive_sees_variables_assigned_before_the_failure() {
    let rb = parse(
        "StartAt: A\nStates:\n  A:\n    Type: Pass\n    Assign: {token: abc}\n    Next: T\n  T:\n    Type: Task\n    Resource: plugin:t\n    Parameters:\n      token.$: $token\n    End: true\n",
    );
    let mut ex = Execution::new(
        rb.machine.clone(),
        json!({}),
        ExecutionContext::new("e", "e", t0()),
        0,
    );
    let (id, input) = first_task(&ex.start(t0()));
    assert_eq!(input, json!({"token": "abc"}));
    ex.handle(
        Event::TaskFailed {
            task_id: id,
            error: "E".into(),
            cause: "c".into(),
        },
        t0(),
    );
    assert_eq!(ex.status(), Status::Failed);
    let (_, input) = first_task(&ex.redrive(t0()).unwrap());
    assert_eq!(input, json!({"token": "abc"}));
}

/// Exited history events carry the values a state assigned (`runbook show` prints them).
#[test]
fn history_reports_assigned_variables() {
    let rb = parse(COUNTER);
    let mut calls = 0;
    let r = sim::run(rb.machine.clone(), json!({"region": "r"}), &mut |_| {
        calls += 1;
        sim::TaskOutcome::ok(json!({"status": format!("s{calls}")}))
    });
    assert_eq!(r.status, Status::Succeeded, "{:?} {:?}", r.error, r.cause);
    let assigned: Vec<Map<String, Value>> = r
        .history
        .iter()
        .filter_map(|h| match h {
            HistoryEvent::TaskStateExited {
                assigned_variables: Some(a),
                ..
            } => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        assigned,
        vec![
            json!({"runs": 1, "last": "s1"})
                .as_object()
                .unwrap()
                .clone(),
            json!({"runs": 2, "last": "s2"})
                .as_object()
                .unwrap()
                .clone(),
        ]
    );
}

fn run(text: &str, input: Value) -> sim::SimResult {
    let rb = parse(text);
    sim::run(rb.machine.clone(), input, &mut |_| panic!("no tasks"))
}

/// 256 KiB for all the values of one Assign, even when each is under the per-variable limit.
#[test]
fn one_assign_is_limited_to_256_kib() {
    let half = "x".repeat(140 * 1024);
    let r = run(
        "StartAt: A\nStates:\n  A:\n    Type: Pass\n    Assign:\n      a.$: $.s\n      b.$: $.s\n    End: true\n",
        json!({"s": half}),
    );
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    let cause = r.cause.unwrap();
    assert!(
        cause.starts_with(
            "An error occurred while executing the state 'A' (entered at the event id #2). The values assigned by state 'A' total "
        )
            && cause.ends_with("over the limit of 262144 bytes (256 KiB per Assign)"),
        "{cause}"
    );
}

/// 10 MiB for all the variables an execution holds: 41 states each storing ~250 KB.
#[test]
fn execution_variables_are_limited_to_10_mib() {
    let mut text = String::from("StartAt: S0\nStates:\n");
    for i in 0..41 {
        let next = if i == 40 {
            "End: true".to_string()
        } else {
            format!("Next: S{}", i + 1)
        };
        text.push_str(&format!(
            "  S{i}:\n    Type: Pass\n    Assign:\n      v{i}.$: $.s\n    {next}\n"
        ));
    }
    let r = run(&text, json!({"s": "y".repeat(250 * 1024)}));
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    let cause = r.cause.unwrap();
    assert!(
        cause.contains(". After state 'S40', the execution's variables would total "),
        "{cause}"
    );
    assert!(cause.contains("(10 MiB per execution)"), "{cause}");
    // Re-assigning the same variable replaces its size instead of adding to it.
    let mut text = String::from("StartAt: S0\nStates:\n");
    for i in 0..41 {
        let next = if i == 40 {
            "End: true".to_string()
        } else {
            format!("Next: S{}", i + 1)
        };
        text.push_str(&format!(
            "  S{i}:\n    Type: Pass\n    Assign:\n      v.$: $.s\n    {next}\n"
        ));
    }
    let r = run(&text, json!({"s": "y".repeat(250 * 1024)}));
    assert_eq!(r.status, Status::Succeeded, "{:?}", r.cause);
}
