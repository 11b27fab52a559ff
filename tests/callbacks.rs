//! End-to-end tests of `.waitForTaskToken` Tasks and `runbook task`: a runner waits in
//! the background, the token is found with `runbook show --json`, answered from another
//! process, and the answer flows on; failure, heartbeat timeout, and a SIGKILLed waiting
//! runner resumed without re-running its plugin.

use std::process::{Child, Stdio};
use std::time::Duration;

use runbook_test_support::runbook::{RunbookHome, fixture, log_lines_starting, stderr};
use runbook_test_support::wait;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(300);

/// `runbook run` in the background with `--json` on stdout.
fn start(env: &RunbookHome, extra: &[&str]) -> Child {
    let file = fixture("callback.yaml");
    let mut args = vec!["run", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    env.cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runbook run")
}

/// The one waiting task token of the one execution, once its runner registered it.
fn waiting_token(env: &RunbookHome) -> (String, String, Value) {
    wait::poll_some(LONG, Duration::from_millis(200), || {
        let (code, list) = env.json(&["executions", "--json"]);
        if code != 0 {
            return None;
        }
        let ex = list.as_array()?.first()?.clone();
        let w = ex["waiting_for_task_token"].as_array()?.first()?.clone();
        Some((
            ex["execution_id"].as_str()?.to_string(),
            w["token"].as_str()?.to_string(),
            w,
        ))
    })
    .expect("an execution waiting for a task token")
}

fn finish(child: Child) -> (i32, Value) {
    let out = child.wait_with_output().expect("runner output");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout not JSON ({e}): {}", stderr(&out)));
    (out.status.code().unwrap_or(-1), v)
}

fn scheduled_inputs(env: &RunbookHome, id: &str, state: &str) -> Vec<Value> {
    let show = env.show(id);
    show["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "TaskScheduled" && h["state"] == state)
        .map(|h| h["details"]["input"].clone())
        .collect()
}

#[test]
fn success_answer_flows_on_and_token_is_then_closed() {
    let env = RunbookHome::new();
    let child = start(&env, &[]);
    let (id, token, w) = waiting_token(&env);
    assert_eq!(w["state"], "Ask");
    assert!(w["heartbeat_deadline"].is_string(), "{w}");
    // The token reached the plugin's input through $$.Task.Token.
    let inputs = scheduled_inputs(&env, &id, "Ask");
    assert_eq!(
        inputs,
        vec![json!({"Question": "proceed?", "TaskToken": token})]
    );
    // `runbook show` (text) says what it waits for.
    let text = env.text(&["show", &id]);
    assert!(text.contains("waiting for task token at Ask"), "{text}");

    let ok = env.run(&["task", "heartbeat", &token]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let ok = env.run(&["task", "success", &token, "--output", r#"{"by": "alice"}"#]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let (code, v) = finish(child);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"]["answer"], json!({"by": "alice"}));
    assert_eq!(v["output"]["after"], json!({"approved_by": "alice"}));

    // A used token and an unknown one are refused with exit code 2.
    let again = env.run(&["task", "success", &token]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("TaskTimedOut"),
        "{}",
        stderr(&again)
    );
    let unknown = env.run(&["task", "failure", "0123456789abcdef0123456789abcdef"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("InvalidToken"),
        "{}",
        stderr(&unknown)
    );
    let bad = env.run(&["task", "success", "x", "--output", "{nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("InvalidOutput"), "{}", stderr(&bad));
}

#[test]
fn failure_answer_is_caught_with_its_error_and_cause() {
    let env = RunbookHome::new();
    let child = start(&env, &[]);
    let (_, token, _) = waiting_token(&env);
    let out = env.run(&[
        "task",
        "failure",
        &token,
        "--error",
        "Rejected",
        "--cause",
        "not during business hours",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, v) = finish(child);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"], "NotApproved");
    assert_eq!(v["cause"], "not during business hours");
}

#[test]
fn missing_heartbeat_fails_with_states_heartbeat_timeout() {
    let env = RunbookHome::new();
    let child = start(&env, &["--param", "HeartbeatSeconds=2"]);
    let (_, token, _) = waiting_token(&env);
    let (code, v) = finish(child);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"], "States.HeartbeatTimeout");
    // The timed-out token no longer takes answers.
    let late = env.run(&["task", "success", &token]);
    assert_eq!(late.status.code(), Some(2));
    assert!(stderr(&late).contains("TaskTimedOut"), "{}", stderr(&late));
}

#[test]
fn killed_waiting_runner_resumes_waiting_without_rerunning_the_plugin() {
    let env = RunbookHome::new();
    let mut child = start(&env, &[]);
    let (id, token, _) = waiting_token(&env);
    // Wait until the plugin has returned (the wait proper), then SIGKILL the runner.
    wait::until("the callback plugin returned", LONG, || {
        let (_, list) = env.json(&["executions", "--json"]);
        list[0]["waiting_for_task_token"][0]["plugin_done_ms"].is_i64()
    });
    child.kill().expect("SIGKILL the runner");
    let _ = child.wait();
    // Answered while no runner waits: kept in the journal for the next one.
    let out = env.run(&["task", "success", &token, "--output", r#"{"by": "bob"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, v) = env.json(&["resume", &id, "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"]["after"], json!({"approved_by": "bob"}));
    // The notifying plugin of Ask ran once: its "hello" log line is journaled once.
    let show = env.show(&id);
    assert_eq!(log_lines_starting(&show, "hello from logger"), 1, "{show}");
}
