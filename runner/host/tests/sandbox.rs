//! The sandbox's limits and error paths, each proved with a real plugin built for
//! wasm32-wasip2 (see plugins/). The provider here is a recording fake: these tests are
//! about the host, not about any provider.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runbook_caps::{BoxFuture, CapCall, CapError, Grants, Provider};
use runbook_host::{
    CallOutcome, CallRecord, Host, HostConfig, HostError, Limits, LogLevel, Observer, RunRequest,
};
use serde_json::{Value, json};

#[derive(Default)]
struct FakeProvider {
    calls: Mutex<Vec<CapCall>>,
}

impl Provider for FakeProvider {
    fn name(&self) -> &str {
        "fake"
    }
    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        self.calls.lock().unwrap().push(call);
        Box::pin(async { Ok(json!([])) })
    }
}

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<CallRecord>>,
    logs: Mutex<Vec<(LogLevel, String)>>,
}

impl Observer for Recorder {
    fn capability_call(&self, record: &CallRecord) {
        self.calls.lock().unwrap().push(record.clone());
    }
    fn log(&self, _state: &str, _plugin: &str, level: LogLevel, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_string()));
    }
}

fn host() -> Host {
    Host::new(HostConfig {
        cache_dir: None,
        max_instances: 16,
        max_memory_bytes: 64 << 20,
    })
    .unwrap()
}

fn plugin(host: &Host, name: &str) -> Arc<runbook_host::Plugin> {
    let bytes = runbook_plugins_builtin::fixture(name)
        .or_else(|| runbook_plugins_builtin::get(name))
        .unwrap_or_else(|| panic!("no plugin or fixture named {name}"));
    host.load(name, bytes, None).unwrap()
}

struct Run {
    result: Result<String, runbook_host::StepFailure>,
    provider: Arc<FakeProvider>,
    observer: Arc<Recorder>,
    elapsed: Duration,
}

async fn run(host: &Host, name: &str, input: Value, grants: &[&str], limits: Limits) -> Run {
    let p = plugin(host, name);
    let provider = Arc::new(FakeProvider::default());
    let observer = Arc::new(Recorder::default());
    let started = Instant::now();
    let result = host
        .run(
            &p,
            RunRequest {
                state: "TestState".into(),
                input: input.to_string(),
                grants: Grants::parse(grants).unwrap(),
                limits,
                provider: provider.clone(),
                observer: observer.clone(),
            },
        )
        .await;
    Run {
        result,
        provider,
        observer,
        elapsed: started.elapsed(),
    }
}

#[tokio::test]
async fn echo_returns_its_input() {
    let h = host();
    let r = run(
        &h,
        "echo",
        json!({"a": [1, 2, {"b": null}]}),
        &[],
        Limits::default(),
    )
    .await;
    let out: Value = serde_json::from_str(&r.result.unwrap()).unwrap();
    assert_eq!(out, json!({"a": [1, 2, {"b": null}]}));
    // echo uses no capability, so it imports none.
    assert!(plugin(&h, "echo").capability_imports().is_empty());
}

#[tokio::test]
async fn infinite_loop_is_stopped_at_its_deadline() {
    let h = host();
    let limits = Limits {
        deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    let r = run(&h, "spin", json!({}), &[], limits).await;
    let err = r.result.unwrap_err();
    assert_eq!(err.error, "States.Timeout", "{err}");
    assert!(
        err.cause.contains("plugin 'spin'") && err.cause.contains("state 'TestState'"),
        "{err}"
    );
    // Stopped near the deadline, not at some later safety net.
    assert!(r.elapsed >= Duration::from_millis(300), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
}

#[tokio::test]
async fn memory_bomb_is_refused_at_its_cap() {
    let h = host();
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let r = run(&h, "membomb", json!({}), &[], limits).await;
    let err = r.result.unwrap_err();
    assert_eq!(err.error, "Plugin.MemoryLimitExceeded", "{err}");
    assert!(err.cause.contains("16 MiB"), "{err}");
}

#[tokio::test]
async fn trap_is_reported_with_plugin_and_state() {
    let h = host();
    let r = run(&h, "trap", json!({"trap": true}), &[], Limits::default()).await;
    let err = r.result.unwrap_err();
    assert_eq!(err.error, "Plugin.Trap", "{err}");
    assert!(
        err.cause.contains("plugin 'trap'") && err.cause.contains("state 'TestState'"),
        "{err}"
    );

    // A plugin's own error passes through untouched.
    let r = run(&h, "trap", json!({"trap": false}), &[], Limits::default()).await;
    let err = r.result.unwrap_err();
    assert_eq!(
        (err.error.as_str(), err.cause.as_str()),
        ("Test.Failed", "asked to fail without trapping")
    );
}

#[tokio::test]
async fn ungranted_import_is_refused_before_running() {
    let h = host();
    let p = plugin(&h, "ungranted");
    assert_eq!(
        p.capability_imports()
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        vec!["rds"]
    );
    let err = p
        .check_grants("Promote", &Grants::parse(&["ec2:DescribeVpcs"]).unwrap())
        .unwrap_err();
    assert_eq!(err.code(), "E-PLUGIN-UNGRANTED");
    let msg = err.to_string();
    assert!(
        msg.contains("state 'Promote'") && msg.contains("plugin 'ungranted'"),
        "{msg}"
    );
    assert!(msg.contains("runbook:plugin/rds@0.1.0"), "{msg}");
    // Granting anything from rds satisfies the static check.
    p.check_grants(
        "Promote",
        &Grants::parse(&["rds:DescribeDBSnapshots"]).unwrap(),
    )
    .unwrap();
}

#[tokio::test]
async fn ungranted_call_is_refused_at_run_time_and_recorded() {
    let h = host();
    // rds is granted, but not this action: the call traps even though the plugin
    // would swallow an ordinary error.
    let r = run(
        &h,
        "ungranted",
        json!({}),
        &["rds:DescribeDBSnapshots"],
        Limits::default(),
    )
    .await;
    let err = r.result.unwrap_err();
    assert_eq!(err.error, "States.Permissions", "{err}");
    assert!(err.cause.contains("rds:DescribeDBInstances"), "{err}");
    assert!(
        r.provider.calls.lock().unwrap().is_empty(),
        "a denied call must not reach the provider"
    );
    {
        let calls = r.observer.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].outcome, CallOutcome::Denied);
        assert_eq!(calls[0].action, "DescribeDBInstances");
    }

    // A resource-scoped grant does not cover an unscoped call.
    let r = run(
        &h,
        "ungranted",
        json!({}),
        &["rds:DescribeDBInstances on primary-*"],
        Limits::default(),
    )
    .await;
    assert_eq!(r.result.unwrap_err().error, "States.Permissions");
}

#[tokio::test]
async fn granted_call_reaches_the_provider_and_is_audited() {
    let h = host();
    let r = run(
        &h,
        "ungranted",
        json!({}),
        &["rds:Describe*"],
        Limits::default(),
    )
    .await;
    let out: Value = serde_json::from_str(&r.result.unwrap()).unwrap();
    assert_eq!(out, json!({"instances": 0}));
    let calls = r.provider.calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].iam_name(), "rds:DescribeDBInstances");
    assert_eq!(calls[0].region.as_deref(), Some("us-east-1"));
    assert_eq!(calls[0].args, json!({"identifier": null}));
    let audited = &r.observer.calls.lock().unwrap()[0];
    assert_eq!(audited.outcome, CallOutcome::Ok);
    // Arguments and result are in the audit record, for a later replay.
    assert_eq!(audited.args, json!({"identifier": null}));
    assert_eq!(audited.result, Some(json!([])));
}

#[test]
fn audit_args_drop_postgres_parameters_only() {
    let q = json!({"sql": "SELECT $1", "params": ["x", null]});
    assert_eq!(
        runbook_host::audit_args("postgres", &q),
        json!({"sql": "SELECT $1", "params": ["***", null]})
    );
    assert_eq!(runbook_host::audit_args("rds", &q), q);
}

/// A component of `n` instances of an empty core module, no imports or exports (the
/// binary format by hand: the limit check needs nothing more).
fn component_with_core_instances(n: u8) -> Vec<u8> {
    assert!(n < 128, "one-byte LEB128 count");
    let mut c = b"\0asm\x0d\x00\x01\x00".to_vec();
    let module = b"\0asm\x01\x00\x00\x00";
    c.extend([1, module.len() as u8]); // core module section
    c.extend(module);
    let mut instances = vec![n];
    for _ in 0..n {
        instances.extend([0x00, 0x00, 0x00]); // instantiate module 0 with no arguments
    }
    c.push(2); // core instance section
    c.push(instances.len() as u8 | 0x80); // two-byte LEB128 size
    c.push((instances.len() >> 7) as u8);
    c.extend(instances);
    c
}

#[tokio::test]
async fn a_component_over_the_pool_limits_is_refused_as_such_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 4,
        max_memory_bytes: 64 << 20,
    };
    let n = runbook_host::MAX_CORE_INSTANCES_PER_COMPONENT as u8 + 1;
    let big = component_with_core_instances(n);
    let h = Host::new(cfg.clone()).unwrap();
    let err = h.load("big", &big, None).unwrap_err();
    assert_eq!(err.code(), "E-PLUGIN-LIMIT", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{n} core module instances")) && !msg.contains("not a valid"),
        "{msg}"
    );
    // Compiled once: the code is cached even though it was refused, so neither a retry
    // in this process nor a new one compiles it again.
    let entry = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .map(|e| e.metadata().unwrap().modified().unwrap())
    };
    let written = entry().expect("the refused component's code is cached");
    assert_eq!(
        h.load("big", &big, None).unwrap_err().code(),
        "E-PLUGIN-LIMIT"
    );
    let again = Host::new(cfg).unwrap().load("big", &big, None).unwrap_err();
    assert_eq!(again.code(), "E-PLUGIN-LIMIT", "{again}");
    assert_eq!(entry(), Some(written), "recompiled");

    // componentize-py's --stub-wasi output has 38 core instances: within the limit (it
    // then fails for what it lacks, the `run` export).
    let err = host()
        .load("stub-wasi-sized", &component_with_core_instances(38), None)
        .unwrap_err();
    assert_eq!(err.code(), "E-PLUGIN-EXPORT", "{err}");
}

#[tokio::test]
async fn logs_and_output_are_captured_and_sanitized() {
    let h = host();
    let r = run(&h, "logger", json!({"x": 1}), &[], Limits::default()).await;
    assert_eq!(
        serde_json::from_str::<Value>(&r.result.unwrap()).unwrap(),
        json!({"logged": 4})
    );
    let logs = r.observer.logs.lock().unwrap();
    let text: Vec<&str> = logs.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        text.iter().any(|m| m.contains("hello from logger")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|m| m.starts_with("[stdout] stdout line")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|m| m.starts_with("[stderr] stderr line")),
        "{text:?}"
    );
    assert!(logs.iter().any(|(l, _)| *l == LogLevel::Warn));
    assert!(
        text.iter()
            .all(|m| !m.contains('\u{1b}') && !m.contains('\u{7}')),
        "{text:?}"
    );
}

#[tokio::test]
async fn sha256_pin_is_enforced() {
    let h = host();
    let bytes = runbook_plugins_builtin::fixture("echo").unwrap();
    let err = h.load("echo", bytes, Some(&"0".repeat(64))).unwrap_err();
    assert!(matches!(err, HostError::Sha256Mismatch { .. }), "{err}");
}

#[tokio::test]
async fn compile_cache_is_reused_and_foreign_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 4,
        max_memory_bytes: 64 << 20,
    };
    let bytes = runbook_plugins_builtin::fixture("echo").unwrap();
    let first = Host::new(cfg.clone())
        .unwrap()
        .load("echo", bytes, None)
        .unwrap();
    assert_eq!(first.source, runbook_host::CacheSource::Compiled);
    let second = Host::new(cfg.clone())
        .unwrap()
        .load("echo", bytes, None)
        .unwrap();
    assert_eq!(second.source, runbook_host::CacheSource::Disk);

    // Tamper with the entry: it must be ignored (recompiled), never deserialized.
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .unwrap()
        .path();
    let mut data = std::fs::read(&entry).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&entry, data).unwrap();
    let third = Host::new(cfg).unwrap().load("echo", bytes, None).unwrap();
    assert_eq!(third.source, runbook_host::CacheSource::Compiled);
}

#[test]
fn invalid_component_is_a_clear_error() {
    let h = host();
    let err = h.load("junk", b"not wasm at all", None).unwrap_err();
    assert_eq!(err.code(), "E-PLUGIN-INVALID");
    assert!(err.to_string().contains("plugin 'junk'"));
}

#[test]
fn every_wit_function_is_in_the_catalogue() {
    let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
    let mut count = 0;
    for service in runbook_caps::catalog::SERVICES {
        let text = std::fs::read_to_string(format!("{wit}/{service}.wit")).unwrap();
        for line in text.lines() {
            let line = line.trim();
            if let Some((name, rest)) = line.split_once(": func(")
                && rest.contains("cap-error")
            {
                assert!(
                    runbook_caps::action_by_function(service, name).is_some(),
                    "{service}/{name} has no catalogue entry"
                );
                count += 1;
            }
        }
    }
    assert_eq!(count, runbook_caps::CATALOG.len());
}

/// A plugin built for the small `policy` world (as componentize-py or jco would build
/// it, keeping every import of its world) imports `log` only: no grant is needed, and
/// the host runs it like any `step` plugin.
#[tokio::test]
async fn a_policy_world_plugin_runs_with_no_grants() {
    let h = host();
    let p = plugin(&h, "policy-world");
    assert!(
        p.imports
            .iter()
            .any(|i| i.starts_with("runbook:plugin/log")),
        "{:?}",
        p.imports
    );
    assert!(p.capability_imports().is_empty(), "{:?}", p.imports);
    p.check_grants("Decide", &Grants::parse::<&str>(&[]).unwrap())
        .unwrap();
    let r = run(&h, "policy-world", json!({"x": 1}), &[], Limits::default()).await;
    let out: Value = serde_json::from_str(&r.result.unwrap()).unwrap();
    assert_eq!(out, json!({"x": 1}));
    {
        let logs = r.observer.logs.lock().unwrap();
        assert!(
            logs.iter()
                .any(|(l, m)| *l == LogLevel::Info && m.contains("deciding")),
            "{logs:?}"
        );
    }
    let r = run(
        &h,
        "policy-world",
        json!({"Fail": true}),
        &[],
        Limits::default(),
    )
    .await;
    let err = r.result.unwrap_err();
    assert_eq!(err.error, "Policy.Refused");
}
