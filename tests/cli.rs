//! End-to-end tests of the `runbook` binary: the command-line contract (exit codes,
//! `--json`), validation before anything runs, the sandbox's errors as seen by an
//! operator, and resume after the runner is SIGKILLed.

use std::process::{Command, Stdio};
use std::time::Duration;

use runbook_test_support::runbook::{RunbookHome, fixture, stderr};
use runbook_test_support::wait;
use serde_json::json;

#[test]
fn run_json_prints_exactly_one_object_and_exits_0() {
    let env = RunbookHome::new();
    let (code, v) = env.json(&[
        "run",
        fixture("three-tasks.yaml").to_str().unwrap(),
        "--param",
        "PauseSeconds=0",
        "--json",
    ]);
    assert_eq!(code, 0, "{v}");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["execution_id", "status", "output", "error", "cause"]);
    assert_eq!(v["status"], "SUCCEEDED");
    assert_eq!(v["output"]["third"], json!({"step": 3}));
    assert_eq!(v["output"]["PauseSeconds"], 0);
}

#[test]
fn failed_execution_exits_1_with_error_and_cause() {
    let env = RunbookHome::new();
    let (code, v) = env.json(&["run", fixture("fails.yaml").to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "Test.Failed");
    assert_eq!(v["cause"], "asked to fail without trapping");
    // The retrier ran: two attempts are in the history.
    let (_, show) = env.json(&["show", v["execution_id"].as_str().unwrap(), "--json"]);
    let scheduled = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "TaskScheduled")
        .count();
    assert_eq!(scheduled, 2, "{show}");
}

#[test]
fn trap_names_plugin_and_state() {
    let env = RunbookHome::new();
    let (code, v) = env.json(&["run", fixture("traps.yaml").to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    assert_eq!(v["error"], "Plugin.Trap");
    let cause = v["cause"].as_str().unwrap();
    assert!(
        cause.contains("plugin 'trap'") && cause.contains("state 'Explode'"),
        "{cause}"
    );
}

#[test]
fn invalid_runbook_exits_2_with_file_line_col_and_runs_nothing() {
    let env = RunbookHome::new();
    let file = fixture("bad-next.yaml");
    let out = env.run(&["run", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:5:", file.display())), "{err}");
    assert!(err.contains("Nowhere"), "{err}");
    assert!(out.stdout.is_empty());
    let (_, list) = env.json(&["executions", "--json"]);
    assert_eq!(list, json!([]));
}

#[test]
fn ungranted_import_is_refused_before_anything_runs() {
    let env = RunbookHome::new();
    let file = fixture("ungranted.yaml");
    for cmd in ["validate", "run"] {
        let out = env.run(&[cmd, file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = stderr(&out);
        assert!(err.contains(&format!("{}:3:", file.display())), "{err}");
        assert!(
            err.contains("state 'Sneaky'") && err.contains("plugin 'ungranted'"),
            "{err}"
        );
        assert!(err.contains("runbook:plugin/rds@0.1.0"), "{err}");
    }
    let (_, list) = env.json(&["executions", "--json"]);
    assert_eq!(list, json!([]), "nothing may run");
}

#[test]
fn ungranted_call_fails_with_states_permissions_and_is_audited() {
    let env = RunbookHome::new();
    let (code, v) = env.json(&[
        "run",
        fixture("denied-at-runtime.yaml").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"]["denied"]["Error"], "States.Permissions");
    let (_, show) = env.json(&["show", v["execution_id"].as_str().unwrap(), "--json"]);
    let calls = show["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{show}");
    assert_eq!(calls[0]["action"], "DescribeDBInstances");
    assert_eq!(calls[0]["outcome"], "denied");
}

#[test]
fn step_functions_definition_runs_unchanged() {
    let env = RunbookHome::new();
    let (code, v) = env.json(&["run", fixture("sfn-pure.json").to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["output"],
        json!({"size": "big", "doubled": [{"v": 2}, {"v": 4}, {"v": 6}]}),
        "what Step Functions prints for this definition"
    );
}

/// Step Functions takes any JSON value as execution input, not only objects.
#[test]
fn non_object_input_runs_as_step_functions_runs_it() {
    let env = RunbookHome::new();
    let book = env.path().join("pick.json");
    std::fs::write(
        &book,
        r#"{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$[1]","End":true}}}"#,
    )
    .unwrap();
    let book = book.to_str().unwrap();
    let (code, v) = env.json(&["run", book, "--input", "[10, 20]", "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"], 20);
}

/// The README's JSONata tour runs as written (its Wait lasts the chosen replica's lag: 1 s).
#[test]
fn jsonata_tour_example_runs() {
    let env = RunbookHome::new();
    let tour = runbook_test_support::runbook::runbook("examples/jsonata-tour.yaml");
    let input =
        r#"{"Replicas": [{"name": "db-b", "lagSeconds": 1}, {"name": "db-c", "lagSeconds": 45}]}"#;
    let v = env.run_book(&tour, &["--input", input], "SUCCEEDED");
    assert_eq!(
        v["output"],
        json!({"promote": "db-b", "lagSeconds": 1, "considered": 2, "others": ["db-c"]}),
        "{v:#}"
    );
    let v = env.run_book(&tour, &["--input", r#"{"Replicas": []}"#], "FAILED");
    assert_eq!(v["error"], "Input.Invalid", "{v:#}");
}

#[test]
fn bad_usage_exits_2() {
    let env = RunbookHome::new();
    let out = env.run(&[
        "run",
        fixture("three-tasks.yaml").to_str().unwrap(),
        "--param",
        "Nope=1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = env.run(&[
        "run",
        fixture("three-tasks.yaml").to_str().unwrap(),
        "--param",
        "PauseSeconds=soon",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = env.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.run(&["resume", "no-such-execution"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigkill_mid_run_then_resume_runs_each_completed_task_once() {
    let env = RunbookHome::new();
    let file = fixture("three-tasks.yaml");
    let mut child = env
        .cmd(&["run", file.to_str().unwrap(), "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the second Task has succeeded (the runner is then in PauseTwo). The
    // deadline is generous: every test of this file runs at once, each home compiling its
    // plugins into its own cold cache, on 2 busy cores (120 s was once not enough).
    let id = wait::poll_some(Duration::from_secs(300), Duration::from_millis(100), || {
        let (_, list) = env.json(&["executions", "--json"]);
        let id = list.get(0)?["execution_id"].as_str()?.to_string();
        let (_, show) = env.json(&["show", &id, "--json"]);
        let done = show["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "TaskSucceeded" && h["state"] == "Second");
        done.then_some(id)
    })
    .expect("the execution never reached Second");
    // SIGKILL: no chance to clean up or flush anything.
    child.kill().unwrap();
    let _ = child.wait();
    let (_, show) = env.json(&["show", &id, "--json"]);
    assert_eq!(
        show["status"], "RUNNING",
        "a killed execution stays RUNNING in the journal"
    );

    let (code, v) = env.json(&["resume", &id, "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "SUCCEEDED");
    assert_eq!(v["output"]["first"], json!({"step": 1}));
    assert_eq!(v["output"]["third"], json!({"step": 3}));

    let (_, show) = env.json(&["show", &id, "--json"]);
    let history = show["history"].as_array().unwrap();
    for state in ["First", "Second", "Third"] {
        let runs = history
            .iter()
            .filter(|h| h["kind"] == "TaskScheduled" && h["state"] == state)
            .count();
        let oks = history
            .iter()
            .filter(|h| h["kind"] == "TaskSucceeded" && h["state"] == state)
            .count();
        assert_eq!(
            (runs, oks),
            (1, 1),
            "{state} must run exactly once: {history:#?}"
        );
    }
    assert_eq!(
        history
            .iter()
            .filter(|h| h["kind"] == "ExecutionSucceeded")
            .count(),
        1
    );
}

#[test]
fn redrive_reruns_from_the_failed_state() {
    let env = RunbookHome::new();
    let (code, v) = env.json(&["run", fixture("fails.yaml").to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let id = v["execution_id"].as_str().unwrap();
    let (code, v2) = env.json(&["redrive", id, "--json"]);
    // The plugin fails deterministically, so the redrive fails again, but it ran.
    assert_eq!(code, 1, "{v2}");
    assert_eq!(v2["execution_id"], id);
    let (_, show) = env.json(&["show", id, "--json"]);
    assert_eq!(show["redrive_count"], 1);
    let scheduled = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "TaskScheduled")
        .count();
    assert_eq!(scheduled, 4, "two attempts before, two after the redrive");
}

#[test]
fn inspect_graph_schema() {
    let env = RunbookHome::new();
    let wasm = runbook_plugins_builtin::fixture_path("ungranted").unwrap();
    let out = env.run(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("runbook:plugin/rds@0.1.0") && text.contains("describe-db-instances"),
        "{text}"
    );
    assert!(text.contains("export") && text.contains("run"), "{text}");

    let out = env.run(&["graph", fixture("three-tasks.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("First") && text.contains("Third"), "{text}");

    let (code, schema) = env.json(&["schema"]);
    assert_eq!(code, 0);
    assert!(
        schema.get("$schema").is_some() || schema.get("type").is_some(),
        "{schema}"
    );
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::ExitStatusExt;
    let env = RunbookHome::new();
    // `runbook schema | head -c 1`, with a pipe smaller than the schema (17 KB) so the
    // writer is still writing when the reader leaves.
    let (mut reader, writer) = std::io::pipe().unwrap();
    // SAFETY: fcntl on a pipe descriptor we own.
    let size = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(size >= 4096, "F_SETPIPE_SZ");
    let child = env
        .cmd(&["schema"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut one = [0u8; 1];
    reader.read_exact(&mut one).unwrap();
    drop(reader);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // Ended by SIGPIPE, as `ls | head` is.
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

/// A scratch home as a user has it: no plugin path, so the test fixtures are not found.
fn user_home() -> RunbookHome {
    RunbookHome::new().with_env([("RUNBOOK_PLUGIN_PATH", None::<&str>)])
}

const FIXTURES: [&str; 6] = ["echo", "spin", "membomb", "trap", "ungranted", "logger"];

#[test]
fn users_see_real_plugins_only_and_tests_still_find_the_fixtures() {
    let env = user_home();
    let list = env.text(&["plugin", "list"]);
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"lag-guard") && names.contains(&"database"),
        "{list}"
    );
    for f in FIXTURES {
        assert!(!names.contains(&f), "fixture {f} listed to users: {list}");
    }

    // A runbook naming a fixture is invalid for a user, and the error lists only real
    // plugins.
    let three = fixture("three-tasks.yaml");
    let out = env.run(&["validate", three.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("plugin 'echo' not found"), "{err}");
    for f in FIXTURES {
        assert!(
            !err.contains(&format!(" {f},")) && !err.contains(&format!(" {f})")),
            "fixture {f} offered to users: {err}"
        );
    }

    // Tests put the fixtures' directory on the plugin path.
    let out = RunbookHome::new().run(&["validate", three.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn hello_runs_on_a_real_plugin() {
    let env = user_home();
    let hello = runbook_test_support::runbook::runbook("hello.yaml");
    let v = env.run_book(&hello, &["--param", "PauseSeconds=0"], "SUCCEEDED");
    assert_eq!(
        v["output"]["message"], "hello, operator: the policy would promote",
        "{v:#}"
    );
    let v = env.run_book(
        &hello,
        &["--param", "PauseSeconds=0", "--param", "LagSeconds=600"],
        "SUCCEEDED",
    );
    assert_eq!(
        v["output"]["message"], "hello, operator: the policy would refuse",
        "{v:#}"
    );
}

fn builtin(name: &str) -> String {
    runbook_plugins_builtin::path(name)
        .unwrap_or_else(|| panic!("built-in {name}"))
        .display()
        .to_string()
}

fn fixture_wasm(name: &str) -> String {
    runbook_plugins_builtin::fixture_path(name)
        .unwrap_or_else(|| panic!("fixture {name}"))
        .display()
        .to_string()
}

fn facts(primary: &str, lag: f64) -> String {
    json!({
        "Primary": {"Status": primary, "Reachable": primary == "available"},
        "Replica": {"Status": "available", "IsReplica": true, "Exists": true},
        "Lag": {"LagSeconds": lag},
        "MaxLagSeconds": 60,
    })
    .to_string()
}

#[test]
fn plugin_test_runs_a_policy_on_given_facts_with_run_exit_codes() {
    let env = user_home();
    let lag_guard = builtin("lag-guard");
    let decide = |facts: &str| {
        let (code, v) = env.json(&["plugin", "test", &lag_guard, "--input", facts, "--json"]);
        (code, v["output"]["Decision"].clone(), v)
    };
    let (code, d, v) = decide(&facts("failed", 5.0));
    assert_eq!((code, d.as_str()), (0, Some("promote")), "{v:#}");
    assert!(
        v["logs"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("decision: promote")),
        "{v:#}"
    );
    let (code, d, v) = decide(&facts("failed", 600.0));
    assert_eq!((code, d.as_str()), (0, Some("refuse")), "{v:#}");
    let (code, d, v) = decide(&facts("available", 0.0));
    assert_eq!((code, d.as_str()), (0, Some("none")), "{v:#}");
    // --repeat runs it again with the same input; timing says how (figures not judged).
    let (code, v) = env.json(&[
        "plugin",
        "test",
        &lag_guard,
        "--input",
        &facts("available", 0.0),
        "--repeat",
        "3",
        "--json",
    ]);
    assert_eq!(
        (code, &v["output"]["Decision"]),
        (0, &json!("none")),
        "{v:#}"
    );
    assert_eq!(v["timing"]["runs"], 3, "{v:#}");
    assert!(v["timing"]["run_median_us"].is_u64(), "{v:#}");

    // The plugin fails: exit 1 with its ASL error; plain output says so on stderr.
    let out = env.run(&["plugin", "test", &lag_guard, "--input", "{}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("InvalidParameterValue"),
        "{}",
        stderr(&out)
    );
    // Input from a file.
    let input = env.path().join("in.json");
    std::fs::write(&input, facts("failed", 1.0)).unwrap();
    let out = env.run(&[
        "plugin",
        "test",
        &lag_guard,
        "--input",
        &format!("@{}", input.display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["Decision"], "promote");

    // Bad usage: exit 2.
    for args in [
        vec!["plugin", "test", "/nonexistent.wasm"],
        vec!["plugin", "test", &lag_guard, "--input", "not json"],
        vec![
            "plugin", "test", &lag_guard, "--replay", "nope", "--state", "X",
        ],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn plugin_test_answers_capability_calls_from_a_fixture_and_names_a_call_it_cannot_answer() {
    let env = user_home();
    // `ungranted` calls rds:DescribeDBInstances in us-east-1 and returns the count, or
    // the code of the error it got.
    let wasm = fixture_wasm("ungranted");
    let write = |name: &str, v: serde_json::Value| {
        let p = env.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.display().to_string()
    };
    let ok = write(
        "ok.json",
        json!([{"service": "rds", "action": "DescribeDBInstances",
                "request": {"region": "us-east-1"}, "response": []}]),
    );
    let (code, v) = env.json(&["plugin", "test", &wasm, "--fixture", &ok, "--json"]);
    assert_eq!((code, &v["output"]), (0, &json!({"instances": 0})), "{v:#}");
    assert_eq!(v["calls"][0]["action"], "DescribeDBInstances", "{v:#}");

    let throttled = write(
        "throttled.json",
        json!([{"service": "rds", "action": "DescribeDBInstances",
                "error": {"code": "Throttling", "message": "Rate exceeded"}}]),
    );
    let (code, v) = env.json(&["plugin", "test", &wasm, "--fixture", &throttled, "--json"]);
    assert_eq!(
        (code, &v["output"]),
        (0, &json!({"swallowed": "Throttling"})),
        "{v:#}"
    );

    // An answer for another region does not match: the call is named, exit 1, even
    // though the plugin swallowed the error.
    let elsewhere = write(
        "elsewhere.json",
        json!([{"service": "rds", "action": "DescribeDBInstances",
                "request": {"region": "eu-west-1"}, "response": []}]),
    );
    let out = env.run(&["plugin", "test", &wasm, "--fixture", &elsewhere]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no answer for rds:DescribeDBInstances") && err.contains("us-east-1"),
        "{err}"
    );
    assert!(
        err.contains("never asked for: rds:DescribeDBInstances"),
        "{err}"
    );

    // Without the grant, the plugin is refused before it runs: bad usage.
    let out = env.run(&["plugin", "test", &wasm, "--grant", "ec2:DescribeVpcs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("E-PLUGIN-UNGRANTED") || stderr(&out).contains("grants nothing"));
}

#[test]
fn plugin_test_replays_a_past_execution() {
    let env = user_home();
    // hello.yaml asks lag-guard about a failed primary whose replica lags 600 s.
    let hello = runbook_test_support::runbook::runbook("hello.yaml");
    let v = env.run_book(
        &hello,
        &["--param", "PauseSeconds=0", "--param", "LagSeconds=600"],
        "SUCCEEDED",
    );
    let id = v["execution_id"].as_str().unwrap().to_string();
    let replay = |wasm: &str| {
        env.json(&[
            "plugin",
            "test",
            wasm,
            "--replay",
            &id[..8],
            "--state",
            "Ask",
            "--json",
        ])
    };
    // The same policy on the same facts decides the same; the journal's result is shown.
    let (code, v) = replay(&builtin("lag-guard"));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["output"]["Decision"], "refuse", "{v:#}");
    assert_eq!(v["output"], v["recorded"]["output"], "{v:#}");
    // Another policy on the same facts: availability first.
    let (code, v) = replay(&builtin("always"));
    assert_eq!(
        (code, v["output"]["Decision"].as_str()),
        (0, Some("promote")),
        "{v:#}"
    );
    assert_eq!(v["recorded"]["output"]["Decision"], "refuse");

    // A state that made a capability call (on the local provider): the journal kept the
    // call's arguments and result, so it replays with no fixture.
    let with_fixtures = RunbookHome::new();
    let book = with_fixtures.path().join("look.yaml");
    std::fs::write(
        &book,
        "StartAt: Look\nStates:\n  Look:\n    Type: Task\n    Resource: plugin:ungranted\n    \
         Capabilities: [rds:DescribeDBInstances]\n    End: true\n",
    )
    .unwrap();
    let v = with_fixtures.run_book(&book, &["--provider", "local"], "SUCCEEDED");
    let look_id = v["execution_id"].as_str().unwrap().to_string();
    let wasm = fixture_wasm("ungranted");
    let (code, v) = with_fixtures.json(&[
        "plugin", "test", &wasm, "--replay", &look_id, "--state", "Look", "--json",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["output"], v["recorded"]["output"], "{v:#}");
    assert_eq!(v["calls"][0]["action"], "DescribeDBInstances", "{v:#}");
    assert_eq!(v["unanswered"], json!([]), "{v:#}");

    // A fixture still comes first: it can change what the journal answered.
    let fixture = with_fixtures.path().join("answers.json");
    std::fs::write(
        &fixture,
        json!([{"service": "rds", "action": "DescribeDBInstances",
                "error": {"code": "Throttling"}}])
        .to_string(),
    )
    .unwrap();
    let fixture = fixture.display().to_string();
    let (code, v) = with_fixtures.json(&[
        "plugin",
        "test",
        &wasm,
        "--replay",
        &look_id,
        "--state",
        "Look",
        "--fixture",
        &fixture,
        "--json",
    ]);
    assert_eq!(
        (code, &v["output"]),
        (0, &json!({"swallowed": "Throttling"})),
        "{v:#}"
    );

    // A plugin that makes a call the journal does not have: the call is named, exit 1.
    let (code, v) = env.json(&[
        "plugin",
        "test",
        &wasm,
        "--replay",
        &id,
        "--state",
        "Ask",
        "--grant",
        "rds:DescribeDBInstances",
        "--json",
    ]);
    assert_eq!(code, 1, "{v:#}");
    let miss = v["unanswered"][0].as_str().unwrap_or_default();
    assert!(
        miss.contains("rds:DescribeDBInstances")
            && miss.contains("neither --fixture nor the journal of execution")
            && miss.contains("state Ask"),
        "{v:#}"
    );
}

/// `plugin new` writes a project that builds out of tree (offline, from the local cargo
/// registry cache, which holds wit-bindgen since plugins/ uses it) and whose component
/// `plugin test` runs: a policy world plugin importing `log` only.
#[test]
fn plugin_new_scaffolds_a_rust_policy_that_builds_and_passes_plugin_test() {
    let env = user_home();
    let project = env.path().join("my-policy");
    let out = env.run(&[
        "plugin",
        "new",
        "my-policy",
        "--lang",
        "rust",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cargo_toml = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        !cargo_toml.contains("path"),
        "no path into the repository: {cargo_toml}"
    );
    // A second time into the same directory is refused.
    let again = env.run(&[
        "plugin",
        "new",
        "my-policy",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));

    // Dependencies stay compiled between runs next to the plugins' own build.
    let target = std::path::Path::new(runbook_plugins_builtin::PLUGIN_DIR)
        .ancestors()
        .nth(3)
        .unwrap()
        .join("plugin-new-test");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&project)
        .args([
            "build",
            "--offline",
            "--release",
            "--target",
            "wasm32-wasip2",
        ])
        .env("CARGO_TARGET_DIR", &target);
    // The test's own cargo settings must not leak into the guest build.
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR")
            || k == "RUSTFLAGS"
            || k == "RUSTC_WRAPPER"
        {
            build.env_remove(k);
        }
    }
    let out = build.output().expect("running cargo");
    assert!(
        out.status.success(),
        "cargo build of the scaffold failed: {}",
        stderr(&out)
    );
    let wasm = target.join("wasm32-wasip2/release/my_policy.wasm");
    let wasm = wasm.to_str().unwrap();

    let (code, v) = env.json(&["plugin", "inspect", wasm, "--json"]);
    assert_eq!(code, 0);
    let ours: Vec<&str> = v["imports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .filter(|n| n.starts_with("runbook:"))
        .collect();
    assert_eq!(ours, vec!["runbook:plugin/log@0.1.0"], "{v:#}");

    let input = format!("@{}", project.join("examples/primary-down.json").display());
    let (code, v) = env.json(&["plugin", "test", wasm, "--input", &input, "--json"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["output"]["Decision"], "promote", "{v:#}");
    assert_eq!(v["output"]["Policy"], "my-policy", "{v:#}");
    let (code, v) = env.json(&[
        "plugin",
        "test",
        wasm,
        "--input",
        &facts("failed", 600.0),
        "--json",
    ]);
    assert_eq!(
        (code, v["output"]["Decision"].as_str()),
        (0, Some("refuse")),
        "{v:#}"
    );
}

#[test]
fn plugin_new_js_writes_a_policy_world_project_with_the_wit() {
    let env = user_home();
    let project = scaffold(&env, "js-policy", "js");
    let js = std::fs::read_to_string(project.join("policy.js")).unwrap();
    assert!(
        js.contains("from 'runbook:plugin/log@0.1.0'") && js.contains("export function run("),
        "{js}"
    );
    let pkg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap())
            .unwrap();
    assert!(
        pkg["scripts"]["build"]
            .as_str()
            .is_some_and(|b| b.contains("--world policy") && b.contains("js_policy.wasm")),
        "{pkg:#}"
    );
    assert!(project.join("wit/world.wit").is_file());
}

#[test]
fn plugin_new_python_writes_a_policy_world_project_with_the_wit() {
    let env = user_home();
    let project = env.path().join("py-policy");
    let out = env.run(&[
        "plugin",
        "new",
        "py-policy",
        "--lang",
        "python",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("componentize-py -d wit -w policy componentize app -o py_policy.wasm"),
        "{text}"
    );
    let app = std::fs::read_to_string(project.join("app.py")).unwrap();
    assert!(
        app.contains("class WitWorld(wit_world.WitWorld)")
            && app.contains("\"Policy\": \"py-policy\""),
        "{app}"
    );
    let world = std::fs::read_to_string(project.join("wit/world.wit")).unwrap();
    assert!(world.contains("world policy {"), "{world}");
    assert!(
        project.join("wit/log.wit").is_file()
            && project.join("examples/primary-down.json").is_file()
    );
}

/// The same failover facts through the Rust `lag-guard` and `wasm`: the same decisions,
/// with `plugin test` on given facts and with `wasm` swapped into `failover.yaml`.
fn decides_like_lag_guard(env: &RunbookHome, wasm: &str) {
    let rust = builtin("lag-guard");
    let forced = {
        let mut f: serde_json::Value = serde_json::from_str(&facts("available", 600.0)).unwrap();
        f["Force"] = json!(true);
        f.to_string()
    };
    // Healthy primary, unhealthy primary with a lagging replica, within the bound, forced.
    for (facts, want) in [
        (facts("available", 0.0), "none"),
        (facts("failed", 600.0), "refuse"),
        (facts("failed", 5.0), "promote"),
        (forced, "promote"),
    ] {
        let decide = |wasm: &str| {
            let (code, v) = env.json(&["plugin", "test", wasm, "--input", &facts, "--json"]);
            assert_eq!(code, 0, "{v:#}");
            v["output"]["Decision"].as_str().unwrap().to_string()
        };
        assert_eq!(
            (decide(&rust), decide(wasm)),
            (want.to_string(), want.to_string()),
            "{wasm}: {facts}"
        );
    }
    // Missing facts: the policy's own ASL error, exit 1.
    let out = env.run(&["plugin", "test", wasm, "--input", "{}"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("InvalidParameterValue"),
        "{}",
        stderr(&out)
    );

    // In failover.yaml, one line changes. On a local provider with nothing deployed the
    // facts say there is no replica: both policies refuse, and the runbook fails alike.
    let failover = runbook_test_support::runbook::runbook("failover.yaml");
    let text = std::fs::read_to_string(&failover).unwrap();
    // The Decide state's line (the header comment quotes it too).
    let swapped = text.replace(
        "    Resource: plugin:lag-guard\n",
        &format!("    Resource: {wasm}\n"),
    );
    let changed = text
        .lines()
        .zip(swapped.lines())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(changed, 1, "a one-line change");
    let mine = env.path().join("failover-mine.yaml");
    std::fs::write(&mine, swapped).unwrap();
    let ran = |book: &std::path::Path| {
        let v = env.run_book(
            book,
            &["--provider", "local", "--param", "Force=true"],
            "FAILED",
        );
        (
            v["error"].clone(),
            v["cause"].clone(),
            v["execution_id"].clone(),
        )
    };
    let (error, cause, rust_id) = ran(&failover);
    assert_eq!(error, "FailoverRefused");
    let (my_error, my_cause, _) = ran(&mine);
    assert_eq!((&my_error, &my_cause), (&error, &cause));

    // Deployed, with a healthy primary: both runbooks run to the end, both policies
    // decline, nothing is promoted.
    env.run_book(
        &runbook_test_support::runbook::runbook("deploy.yaml"),
        &["--provider", "local"],
        "SUCCEEDED",
    );
    let healthy = |book: &std::path::Path| {
        let v = env.run_book(book, &["--provider", "local"], "SUCCEEDED");
        (
            v["output"]["Promoted"].clone(),
            v["output"]["Decision"]["Decision"].clone(),
        )
    };
    assert_eq!(healthy(&failover), (json!(false), json!("none")));
    assert_eq!(healthy(&mine), (json!(false), json!("none")), "{wasm}");

    // And the facts of the lag-guard execution, replayed from its journal into `wasm`.
    let (code, v) = env.json(&[
        "plugin",
        "test",
        wasm,
        "--replay",
        rust_id.as_str().unwrap(),
        "--state",
        "Decide",
        "--json",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(
        v["output"]["Decision"], v["recorded"]["output"]["Decision"],
        "{v:#}"
    );
    assert_eq!(v["output"]["Decision"], "refuse", "{v:#}");
}

/// `$HOME/.cache/runbook`: where scripts/setup.sh puts the venv and the npm prefix.
fn runbook_cache() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/runbook")
}

/// `name` on PATH, else in one of `dirs`; the tests need it (CI installs it with
/// `scripts/setup.sh --plugin-toolchains`).
fn find_tool(name: &str, dirs: &[std::path::PathBuf]) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(dirs.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH or in {dirs:?}: run scripts/setup.sh --plugin-toolchains"
            )
        })
}

/// Builds `project` into `project/out` with `build`, or copies the component a build of
/// the same sources with the same tool made before: componentize-py takes ~10 s a build.
/// The key hashes `tool` (name and version) and every file but outputs and dependencies.
fn build_cached(project: &std::path::Path, out: &str, tool: &str, build: impl FnOnce()) {
    use std::hash::{Hash, Hasher};
    fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name();
            if name == "node_modules"
                || name == "__pycache__"
                || p.extension().is_some_and(|x| x == "wasm")
            {
                continue;
            }
            if p.is_dir() {
                walk(&p, files);
            } else {
                files.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(project, &mut files);
    files.sort();
    // DefaultHasher::new() has fixed keys: the same sources give the same key.
    let mut h = std::hash::DefaultHasher::new();
    tool.hash(&mut h);
    for f in &files {
        f.strip_prefix(project).unwrap().hash(&mut h);
        std::fs::read(f).unwrap().hash(&mut h);
    }
    let dir = runbook_cache().join("plugin-builds");
    std::fs::create_dir_all(&dir).unwrap();
    let stem = out.trim_end_matches(".wasm");
    let cached = dir.join(format!("{stem}-{:016x}.wasm", h.finish()));
    let target = project.join(out);
    if std::fs::copy(&cached, &target).is_ok() {
        return;
    }
    build();
    // Copied then renamed: a concurrent test never reads half a file.
    let tmp = dir.join(format!(".{out}.{}.tmp", std::process::id()));
    std::fs::copy(&target, &tmp).unwrap();
    std::fs::rename(&tmp, &cached).unwrap();
}

fn scaffold(env: &RunbookHome, name: &str, lang: &str) -> std::path::PathBuf {
    let project = env.path().join(name);
    env.text(&[
        "plugin",
        "new",
        name,
        "--lang",
        lang,
        "--dir",
        project.to_str().unwrap(),
    ]);
    project
}

fn build_in(dir: &std::path::Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
}

/// A scaffolded Python policy, built with componentize-py (scripts/setup.sh
/// --plugin-toolchains puts it in the venv). Its first load takes seconds and ~450 MB.
#[test]
fn a_python_policy_decides_like_lag_guard() {
    let env = user_home();
    let project = scaffold(&env, "py-guard", "python");
    let tool = find_tool("componentize-py", &[runbook_cache().join("venv/bin")]);
    let version = Command::new(&tool).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert_eq!(
        version, "componentize-py 0.25.1",
        "the version plugin new documents"
    );
    build_cached(&project, "py_guard.wasm", &version, || {
        build_in(
            &project,
            tool.to_str().unwrap(),
            &[
                "-d",
                "wit",
                "-w",
                "policy",
                "componentize",
                "app",
                "-o",
                "py_guard.wasm",
            ],
        )
    });
    decides_like_lag_guard(&env, project.join("py_guard.wasm").to_str().unwrap());
}

/// A scaffolded JavaScript policy, built by its own `npm run build` (componentize-qjs).
/// Its `node_modules` is the one scripts/setup.sh --plugin-toolchains installed, so no
/// registry is needed here.
#[test]
fn a_javascript_policy_decides_like_lag_guard() {
    let env = user_home();
    let project = scaffold(&env, "js-guard", "js");
    let npm = find_tool("npm", &[]);
    let modules = runbook_cache().join("npm/node_modules");
    let qjs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(modules.join("componentize-qjs/package.json")).unwrap_or_else(
            |e| {
                panic!(
                    "componentize-qjs in {}: {e}: run scripts/setup.sh --plugin-toolchains",
                    modules.display()
                )
            },
        ),
    )
    .unwrap();
    let pkg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap())
            .unwrap();
    assert_eq!(
        qjs["version"], pkg["devDependencies"]["componentize-qjs"],
        "setup.sh installs the version plugin new writes"
    );
    std::os::unix::fs::symlink(&modules, project.join("node_modules")).unwrap();
    let tool = format!("componentize-qjs {}", qjs["version"]);
    build_cached(&project, "js_guard.wasm", &tool, || {
        build_in(&project, npm.to_str().unwrap(), &["run", "build"])
    });
    decides_like_lag_guard(&env, project.join("js_guard.wasm").to_str().unwrap());
}
