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
