//! Unit tests of the executor (history limit).

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

const CALLBACK: &str = r#"
StartAt: Ask
States:
  Ask:
    Type: Task
    Resource: plugin:notify.waitForTaskToken
    Parameters:
      Token.$: $$.Task.Token
    Retry:
      - ErrorEquals: [Again]
        IntervalSeconds: 1
        MaxAttempts: 1
    End: true
"#;

fn run_task_of(acts: &[Action]) -> (TaskId, Option<String>, Value) {
    acts.iter()
        .find_map(|a| match a {
            Action::RunTask {
                task_id,
                task_token,
                input,
                ..
            } => Some((task_id.clone(), task_token.clone(), input.clone())),
            _ => None,
        })
        .expect("a RunTask action")
}

#[test]
fn task_token_is_in_the_input_new_per_attempt_and_replayed_identically() {
    let (mut ex, acts) = start_of(CALLBACK, None);
    let (id1, tok1, input1) = run_task_of(&acts);
    let tok1 = tok1.expect("a callback Task carries its token");
    assert_eq!(input1, json!({"Token": tok1}));
    assert_eq!(tok1.len(), 32);
    // The answer "Again" (SendTaskFailure) is retried after 1 s with a new attempt.
    let events = |id: &TaskId| {
        vec![
            Event::TaskFailed {
                task_id: id.clone(),
                error: "Again".into(),
                cause: String::new(),
            },
            Event::TimerFired {
                timer_id: TimerId("Ask#2:retry".into()),
            },
        ]
    };
    let t = Timestamp::parse("2024-01-01T00:00:05Z").unwrap();
    let mut acts = Vec::new();
    for e in events(&id1) {
        acts = ex.handle(e, t);
    }
    let (id2, tok2, input2) = run_task_of(&acts);
    assert_ne!(id1, id2);
    let tok2 = tok2.expect("the retry carries a token");
    assert_ne!(tok1, tok2, "a retry gets a new token");
    assert_eq!(input2, json!({"Token": tok2}));

    // Replaying the same events from the same seed yields the same outstanding token.
    let (mut again, _) = start_of(CALLBACK, None);
    for e in events(&id1) {
        again.handle(e, t);
    }
    let (_, tok_replayed, _) = run_task_of(&again.outstanding());
    assert_eq!(Some(tok2), tok_replayed);
}

#[test]
fn plain_tasks_have_no_token() {
    let text = CALLBACK.replace("plugin:notify.waitForTaskToken", "plugin:notify");
    let rb = crate::parse_runbook("t.yaml", &text).unwrap_or_else(|d| panic!("{d}"));
    let t0 = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
    let mut ex = Execution::new(
        rb.machine.clone(),
        json!({}),
        ExecutionContext::new("e", "e", t0),
        1,
    );
    let acts = ex.start(t0);
    // `$$.Task.Token` is absent: the path fails, so no RunTask is issued.
    assert!(acts.iter().all(|a| !matches!(a, Action::RunTask { .. })));
    assert_eq!(ex.status(), Status::Failed);
}
