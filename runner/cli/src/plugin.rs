//! `runbook plugin test` and `runbook plugin new`: a plugin author's loop outside any
//! runbook. `test` runs one component with a given input and answers its capability
//! calls from a fixture file or from what a past execution's journal recorded; `new`
//! writes out a Rust plugin project that builds against the WIT this runner ships.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use runbook_caps::{BoxFuture, CapCall, CapError, ErrorKind, Grants, Provider};
use runbook_executor::Runner;
use runbook_host::{CallOutcome, CallRecord, Limits, LogLevel, Observer, RunRequest};
use serde_json::{Value, json};

/// `runbook plugin test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// The plugin component (`.wasm`).
    pub file: PathBuf,
    /// The plugin's input as JSON, or @file. With --replay, replaces the recorded input.
    #[arg(long)]
    pub input: Option<String>,
    /// Replay the facts of a past execution (ID or unique prefix): the input its state
    /// --state was given, the Task's grants, and the results of the capability calls that
    /// state made, answered in order to calls with the same service, action and
    /// arguments. A call the journal does not have fails the test.
    #[arg(long, value_name = "EXECUTION_ID", requires = "state")]
    pub replay: Option<String>,
    /// The Task state (name or path) of --replay.
    #[arg(long, requires = "replay")]
    pub state: Option<String>,
    /// Capability answers: a JSON list of {service, action, request?, response | error}.
    /// A call takes the first unused entry whose service and action match and whose
    /// `request` (if any) is contained in the call's arguments (`region` and `resource`
    /// included).
    #[arg(long, value_name = "FILE")]
    pub fixture: Option<PathBuf>,
    /// Grant (repeatable, as in a Task's Capabilities). Default: the replayed Task's
    /// grants, else every action of every service.
    #[arg(long = "grant", value_name = "GRANT")]
    pub grants: Vec<String>,
    /// The run's deadline.
    #[arg(long, default_value_t = 60.0)]
    pub timeout_seconds: f64,
    /// Print one JSON object: {status, output, error, cause, calls, logs, recorded,
    /// timing}.
    #[arg(long)]
    pub json: bool,
    /// Run the plugin this many times (same input, same answers) and report the median
    /// time of one run: a policy's per-step overhead. The result shown is the first run's.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub repeat: u32,
}

/// One answer a replayed call can take.
#[derive(Debug, Clone)]
struct Answer {
    service: String,
    action: String,
    /// Must be contained in the call (fixture `request`; journal region and resource).
    request: Option<Value>,
    /// Journal entries that kept their arguments: the call's audited arguments
    /// ([`runbook_host::audit_args`], redacted as the journal redacts) must equal these.
    args: Option<Value>,
    /// Ok(response), Err(capability error), or why there is none (journal rows of
    /// calls that succeeded: their results are not kept).
    outcome: Result<Result<Value, CapError>, String>,
    /// `fixture` or `journal <id>`.
    from: String,
}

/// Answers capability calls from fixtures and journal rows, and remembers what it could
/// not answer.
struct ReplayProvider {
    answers: Mutex<Vec<(Answer, bool)>>,
    /// `execution <id>, state <S>` when replaying: names the journal in misses.
    replaying: Option<String>,
    misses: Mutex<Vec<String>>,
    answered: Mutex<Vec<String>>,
}

fn contains(call: &Value, want: &Value) -> bool {
    match (call, want) {
        (Value::Object(c), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| c.get(k).is_some_and(|cv| contains(cv, v))),
        (c, w) => c == w,
    }
}

/// The call as one object, for matching and messages: its arguments plus `region` and
/// `resource`.
fn call_view(call: &CapCall) -> Value {
    let mut v = match &call.args {
        Value::Object(m) => Value::Object(m.clone()),
        Value::Null => json!({}),
        other => json!({ "args": other }),
    };
    if let Some(r) = &call.region {
        v["region"] = json!(r);
    }
    if let Some(r) = &call.resource {
        v["resource"] = json!(r);
    }
    v
}

impl ReplayProvider {
    fn new(answers: &[Answer], replaying: Option<String>) -> ReplayProvider {
        ReplayProvider {
            answers: Mutex::new(answers.iter().cloned().map(|a| (a, false)).collect()),
            replaying,
            misses: Mutex::new(Vec::new()),
            answered: Mutex::new(Vec::new()),
        }
    }
}

impl Provider for ReplayProvider {
    fn name(&self) -> &str {
        "replay"
    }

    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        let view = call_view(&call);
        let name = call.iam_name();
        let mut answers = self.answers.lock().unwrap();
        let audited = runbook_journal::redact(runbook_host::audit_args(&call.service, &call.args));
        let found = answers.iter_mut().find(|(a, used)| {
            !*used
                && a.service == call.service
                && a.action == call.action
                && a.request.as_ref().is_none_or(|r| contains(&view, r))
                && a.args.as_ref().is_none_or(|want| *want == audited)
        });
        let result = match found {
            Some((a, used)) => {
                *used = true;
                match &a.outcome {
                    Ok(r) => {
                        self.answered
                            .lock()
                            .unwrap()
                            .push(format!("{name} {view} <- {}", a.from));
                        r.clone()
                    }
                    Err(why) => {
                        self.misses
                            .lock()
                            .unwrap()
                            .push(format!("{name} {view}: {why}"));
                        Err(no_answer(&name, why))
                    }
                }
            }
            None => {
                let why = match &self.replaying {
                    Some(from) => {
                        let left: Vec<String> = answers
                            .iter()
                            .filter(|(a, used)| !used && a.from != "fixture")
                            .map(|(a, _)| {
                                format!(
                                    "{}:{} {}",
                                    a.service,
                                    a.action,
                                    a.args.as_ref().map(Value::to_string).unwrap_or_default()
                                )
                            })
                            .collect();
                        format!(
                            "neither --fixture nor the journal of {from} has this call (calls it recorded and not yet replayed: {})",
                            if left.is_empty() {
                                "none".to_string()
                            } else {
                                left.join("; ")
                            }
                        )
                    }
                    None => "no fixture entry matches it".to_string(),
                };
                let why = why.as_str();
                self.misses
                    .lock()
                    .unwrap()
                    .push(format!("{name} {view}: {why}"));
                Err(no_answer(&name, why))
            }
        };
        Box::pin(async move { result })
    }
}

fn no_answer(name: &str, why: &str) -> CapError {
    CapError::new(
        ErrorKind::Internal,
        "Replay.NoAnswer",
        format!("plugin test has no answer for {name}: {why}"),
    )
}

/// The WIT error kind a recorded AWS error code most likely had (the journal keeps the
/// code only).
fn kind_of(code: &str) -> ErrorKind {
    let c = code.to_ascii_lowercase();
    if c.contains("notfound") || c.starts_with("nosuch") {
        ErrorKind::NotFound
    } else if c.contains("alreadyexists") || c.contains("duplicate") {
        ErrorKind::AlreadyExists
    } else if c.contains("state") {
        ErrorKind::InvalidState
    } else if c.contains("invalidparameter") || c.contains("validation") {
        ErrorKind::InvalidParameter
    } else if c.contains("dependency") {
        ErrorKind::DependencyViolation
    } else if c.contains("quota") || c.contains("limitexceeded") {
        ErrorKind::QuotaExceeded
    } else if c.contains("throttl") || c.contains("toomanyrequests") {
        ErrorKind::Throttling
    } else if c.contains("accessdenied") || c.contains("unauthorized") {
        ErrorKind::AccessDenied
    } else if c.contains("unavailable") {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Internal
    }
}

/// Fixture entries: `[{service, action, request?, response | error}]`, `error` being an
/// AWS code or `{code, message?, kind?, retryable?}`.
fn fixture_answers(path: &Path) -> anyhow::Result<Vec<Answer>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let list: Vec<Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON list of answers", path.display()))?;
    list.into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = || format!("{} entry {i}", path.display());
            let s = |k: &str| {
                e[k].as_str()
                    .map(str::to_string)
                    .with_context(|| format!("{}: `{k}` (a string) is required", at()))
            };
            let outcome = match (e.get("response"), e.get("error")) {
                (Some(r), None) => Ok(r.clone()),
                (None, Some(Value::String(code))) => Err(CapError::new(
                    kind_of(code),
                    code.clone(),
                    format!("{code} (from {})", path.display()),
                )),
                (None, Some(err @ Value::Object(_))) => {
                    let code = err["code"]
                        .as_str()
                        .with_context(|| format!("{}: error.code is required", at()))?;
                    let kind = match err.get("kind") {
                        Some(k) => serde_json::from_value(k.clone()).with_context(|| {
                            format!("{}: error.kind is one of NotFound, AlreadyExists, InvalidState, InvalidParameter, DependencyViolation, QuotaExceeded, Throttling, AccessDenied, Unavailable, Internal", at())
                        })?,
                        None => kind_of(code),
                    };
                    let mut ce = CapError::new(
                        kind,
                        code,
                        err["message"].as_str().unwrap_or(code).to_string(),
                    );
                    if let Some(r) = err["retryable"].as_bool() {
                        ce.retryable = r;
                    }
                    Err(ce)
                }
                _ => bail!("{}: give exactly one of `response` and `error`", at()),
            };
            Ok(Answer {
                service: s("service")?,
                action: s("action")?,
                request: e.get("request").cloned(),
                args: None,
                outcome: Ok(outcome),
                from: "fixture".into(),
            })
        })
        .collect()
}

/// What a past execution recorded for one Task state.
struct Recorded {
    input: Value,
    grants: Option<Vec<String>>,
    answers: Vec<Answer>,
    /// `{output}` or `{error, cause}` of that attempt, when it ended.
    result: Option<Value>,
}

fn recorded(runner: &Runner, id: &str, state: &str) -> anyhow::Result<Recorded> {
    let journal = runner.journal();
    let row = journal
        .resolve(id)
        .with_context(|| format!("execution {id}"))?;
    let history = journal.history(&row.id)?;
    let is_state = |h: &runbook_journal::HistoryRow| {
        h.state.as_deref() == Some(state)
            || h.details["name"].as_str() == Some(state)
            || h.details["path"].as_str() == Some(state)
    };
    // The last attempt of the state: the facts it finally decided on.
    let Some(start) = history
        .iter()
        .rposition(|h| h.kind == "TaskScheduled" && is_state(h))
    else {
        let tasks: BTreeSet<&str> = history
            .iter()
            .filter(|h| h.kind == "TaskScheduled")
            .filter_map(|h| h.state.as_deref().or(h.details["name"].as_str()))
            .collect();
        bail!(
            "execution {} never scheduled a Task state '{state}' (its Tasks: {})",
            row.id,
            tasks.into_iter().collect::<Vec<_>>().join(", ")
        );
    };
    let scheduled = &history[start];
    let until = history[start + 1..]
        .iter()
        .find(|h| h.kind == "TaskScheduled" && is_state(h))
        .map(|h| h.at_ms);
    let result = history[start + 1..]
        .iter()
        .find(|h| {
            is_state(h)
                && matches!(
                    h.kind.as_str(),
                    "TaskSucceeded" | "TaskFailed" | "TaskTimedOut"
                )
        })
        .map(|h| match h.kind.as_str() {
            "TaskSucceeded" => json!({ "output": h.details["output"] }),
            _ => json!({ "error": h.details["error"], "cause": h.details["cause"] }),
        });
    let answers = journal
        .calls(&row.id)?
        .into_iter()
        .filter(|c| {
            (c.state == state || c.state.rsplit('/').next() == Some(state))
                && c.at_ms >= scheduled.at_ms
                && until.is_none_or(|u| c.at_ms < u)
        })
        .map(|c| {
            let mut request = json!({});
            if let Some(r) = &c.region {
                request["region"] = json!(r);
            }
            if let Some(r) = &c.resource {
                request["resource"] = json!(r);
            }
            let name = format!("{}:{}", c.service, c.action);
            let kept_error = c
                .result
                .clone()
                .and_then(|r| serde_json::from_value::<CapError>(r).ok());
            let outcome = match (c.outcome.as_str(), c.result, kept_error, &c.error_code) {
                ("ok", Some(result), _, _) => Ok(Ok(result)),
                ("error", _, Some(error), _) => Ok(Err(error)),
                // Journals written before results were kept: the code only.
                ("error", _, None, Some(code)) => Ok(Err(CapError::new(
                    kind_of(code),
                    code.clone(),
                    format!("{code} (replayed from execution {})", row.id),
                ))),
                ("ok", None, _, _) => Err(format!(
                    "execution {} recorded that {name} succeeded but kept no result (a journal \
                     from before results were kept, or a result over {} KiB): give its response \
                     in --fixture",
                    row.id,
                    runbook_journal::MAX_CALL_RESULT_BYTES >> 10
                )),
                (other, ..) => Err(format!(
                    "execution {} recorded {name} as {other}: nothing to replay",
                    row.id
                )),
            };
            Answer {
                service: c.service,
                action: c.action,
                request: Some(request),
                args: c.args,
                outcome,
                from: format!("journal {}", row.id),
            }
        })
        .collect();
    let grants = runbook_engine::parse_runbook(&row.runbook_path, &row.runbook_text)
        .ok()
        .and_then(|rb| {
            rb.tasks()
                .into_iter()
                .find(|t| t.state_name == state || t.path == state)
                .map(|t| t.capabilities)
        });
    Ok(Recorded {
        input: scheduled.details["input"].clone(),
        grants,
        answers,
        result,
    })
}

/// Prints the plugin's logs and calls as they happen (stderr) and keeps them.
#[derive(Default)]
struct Tee {
    quiet: bool,
    calls: Mutex<Vec<Value>>,
    logs: Mutex<Vec<Value>>,
}

impl Observer for Tee {
    fn capability_call(&self, r: &CallRecord) {
        let outcome = match &r.outcome {
            CallOutcome::Ok => "ok".to_string(),
            CallOutcome::Error { code, .. } => format!("error {code}"),
            CallOutcome::Denied => "denied".to_string(),
            CallOutcome::TimedOut => "timed out".to_string(),
        };
        if !self.quiet {
            eprintln!(
                "call  {}:{}{}: {outcome}",
                r.service,
                r.action,
                r.resource
                    .as_deref()
                    .map(|x| format!(" on {x}"))
                    .unwrap_or_default()
            );
        }
        self.calls
            .lock()
            .unwrap()
            .push(serde_json::to_value(r).unwrap_or(Value::Null));
    }

    fn log(&self, _state: &str, _plugin: &str, level: LogLevel, message: &str) {
        let level = format!("{level:?}").to_lowercase();
        if !self.quiet {
            eprintln!("{level:<5} {message}");
        }
        self.logs
            .lock()
            .unwrap()
            .push(json!({ "level": level, "message": message }));
    }
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("plugin test: {msg}");
    Ok(ExitCode::from(2))
}

/// `runbook plugin test`: exit 0 when the plugin returned a result, 1 when it failed (or
/// a call had no answer), 2 for bad usage.
pub fn test(runner: &Runner, a: &TestArgs) -> anyhow::Result<ExitCode> {
    let bytes = match std::fs::read(&a.file) {
        Ok(b) => b,
        Err(e) => return usage(format_args!("reading {}: {e}", a.file.display())),
    };
    let mut answers = Vec::new();
    if let Some(f) = &a.fixture {
        match fixture_answers(f) {
            Ok(mut v) => answers.append(&mut v),
            Err(e) => return usage(format_args!("{e:#}")),
        }
    }
    let mut input = None;
    let mut grants_text = None;
    let mut recorded_result = None;
    if let (Some(id), Some(state)) = (&a.replay, &a.state) {
        match recorded(runner, id, state) {
            Ok(r) => {
                input = Some(r.input);
                grants_text = r.grants;
                // Fixture entries first: they fill in what the journal cannot.
                answers.extend(r.answers);
                recorded_result = r.result;
            }
            Err(e) => return usage(format_args!("{e:#}")),
        }
    }
    if let Some(text) = &a.input {
        let text = match text.strip_prefix('@') {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return usage(format_args!("--input @{path}: {e}")),
            },
            None => text.clone(),
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => input = Some(v),
            Err(e) => return usage(format_args!("--input is not JSON: {e}")),
        }
    }
    let input = input.unwrap_or_else(|| json!({}));
    if !a.grants.is_empty() {
        grants_text = Some(a.grants.clone());
    }
    let grants_text = grants_text.unwrap_or_else(|| {
        runbook_caps::catalog::SERVICES
            .iter()
            .map(|s| format!("{s}:*"))
            .collect()
    });
    let grants = match Grants::parse(&grants_text) {
        Ok(g) => g,
        Err((i, e)) => return usage(format_args!("grant '{}': {e}", grants_text[i])),
    };
    // NaN is refused too (not finite).
    if !a.timeout_seconds.is_finite() || a.timeout_seconds <= 0.0 {
        return usage("--timeout-seconds must be positive");
    }

    let name = a
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let host = runner.host()?;
    let loading = std::time::Instant::now();
    let plugin = match host.load(&name, &bytes, None) {
        Ok(p) => p,
        Err(e) => return usage(format_args!("{}: {e}", a.file.display())),
    };
    let load_ms = loading.elapsed().as_secs_f64() * 1e3;
    let state = a.state.clone().unwrap_or_else(|| "PluginTest".into());
    if let Err(e) = plugin.check_grants(&state, &grants) {
        return usage(format_args!("{e} (use --grant)"));
    }
    let replaying = a
        .replay
        .as_ref()
        .zip(a.state.as_ref())
        .map(|(id, s)| format!("execution {id}, state {s}"));
    let provider = Arc::new(ReplayProvider::new(&answers, replaying));
    let tee = Arc::new(Tee {
        quiet: a.json,
        ..Tee::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let limits = Limits {
        deadline: Duration::from_secs_f64(a.timeout_seconds),
        ..Limits::default()
    };
    let input_text = input.to_string();
    let run_once = |provider: Arc<ReplayProvider>, observer: Arc<Tee>| {
        let started = std::time::Instant::now();
        let result = rt.block_on(host.run(
            &plugin,
            RunRequest {
                state: state.clone(),
                input: input_text.clone(),
                grants: grants.clone(),
                limits,
                provider,
                observer,
            },
        ));
        (result, started.elapsed().as_micros() as u64)
    };
    let (result, first_us) = run_once(provider.clone(), tee.clone());
    let mut run_us = vec![first_us];
    // The same run again, each with the answers fresh and nothing printed.
    for _ in 1..a.repeat {
        let quiet = Arc::new(Tee {
            quiet: true,
            ..Tee::default()
        });
        run_us.push(run_once(Arc::new(ReplayProvider::new(&answers, None)), quiet).1);
    }
    run_us.sort_unstable();
    let timing = json!({
        "load_ms": load_ms,
        "compiled": plugin.source == runbook_host::CacheSource::Compiled,
        "runs": run_us.len(),
        "run_median_us": run_us[run_us.len() / 2],
        "run_min_us": run_us[0],
    });
    let misses = provider.misses.lock().unwrap().clone();
    let unused: Vec<String> = provider
        .answers
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, used)| !used && a.from == "fixture")
        .map(|(a, _)| format!("{}:{}", a.service, a.action))
        .collect();
    let ok = result.is_ok() && misses.is_empty();
    if a.json {
        let (output, error, cause) = match &result {
            Ok(out) => (serde_json::from_str(out).unwrap_or(Value::Null), None, None),
            Err(f) => (Value::Null, Some(f.error.clone()), Some(f.cause.clone())),
        };
        println!(
            "{}",
            json!({
                "status": if ok { "SUCCEEDED" } else { "FAILED" },
                "output": output,
                "error": error,
                "cause": cause,
                "unanswered": misses,
                "unused_fixtures": unused,
                "calls": *tee.calls.lock().unwrap(),
                "logs": *tee.logs.lock().unwrap(),
                "recorded": recorded_result,
                "timing": timing,
            })
        );
    } else {
        match &result {
            Ok(out) => {
                let v: Value = serde_json::from_str(out).unwrap_or(Value::Null);
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            Err(f) => eprintln!("FAILED {}: {}", f.error, f.cause),
        }
        for m in &misses {
            eprintln!("no answer for {m}");
        }
        if !unused.is_empty() {
            eprintln!("fixture answers never asked for: {}", unused.join(", "));
        }
        if let Some(r) = &recorded_result {
            eprintln!("recorded in the journal: {r}");
        }
        if a.repeat > 1 {
            eprintln!(
                "loaded in {load_ms:.1} ms ({}); {} runs: median {} us, min {} us",
                if timing["compiled"] == true {
                    "compiled"
                } else {
                    "from the compile cache"
                },
                run_us.len(),
                run_us[run_us.len() / 2],
                run_us[0]
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `runbook plugin new`.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name (a Cargo package name: letters, digits, `-`, `_`).
    pub name: String,
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where to create the project (default: ./NAME). Must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    Rust,
    /// componentize-py (`pip install componentize-py==0.25.1`).
    Python,
    /// componentize-qjs (QuickJS; from npm, a devDependency of the project).
    Js,
}

/// The WIT this runner links, written into every new project: the project never points
/// into the runner's source tree.
const WIT: &[(&str, &str)] = &[
    ("world.wit", include_str!("../../../wit/world.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("log.wit", include_str!("../../../wit/log.wit")),
    ("rds.wit", include_str!("../../../wit/rds.wit")),
    ("ec2.wit", include_str!("../../../wit/ec2.wit")),
    ("route53.wit", include_str!("../../../wit/route53.wit")),
    (
        "cloudwatch.wit",
        include_str!("../../../wit/cloudwatch.wit"),
    ),
    ("sns.wit", include_str!("../../../wit/sns.wit")),
    (
        "secretsmanager.wit",
        include_str!("../../../wit/secretsmanager.wit"),
    ),
    ("postgres.wit", include_str!("../../../wit/postgres.wit")),
    ("fault.wit", include_str!("../../../wit/fault.wit")),
    ("traffic.wit", include_str!("../../../wit/traffic.wit")),
];

const RUST_CARGO: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = { version = "0.61", default-features = false, features = ["macros", "realloc", "std"] }
serde_json = "1"

# Standalone, even when created inside another Cargo workspace.
[workspace]

[profile.release]
# Small components that compile fast when the runner loads them.
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#;

const RUST_LIB: &str = r#"//! {name}: a failover policy for runbook (a copy of the built-in `lag-guard` to start
//! from). Promote the replica when the primary is unhealthy, unless it lags beyond
//! `MaxLagSeconds`; `Force` promotes anyway.
//!
//! Input (what `runbooks/failover.yaml` passes its policy): `{Primary: {Status,
//! Reachable}, Replica: {Status, IsReplica, Exists}, Lag: {LagSeconds}, Force,
//! MaxLagSeconds, RequireLag}`. Output: `{Decision: promote | none | refuse, Reason, ...}`.
//!
//! Build:  cargo build --target wasm32-wasip2 --release
//! Test:   runbook plugin test target/wasm32-wasip2/release/{crate}.wasm --input @examples/primary-down.json

// The `policy` world imports `log` only: a policy needs no capability grant.
wit_bindgen::generate!({
    path: "wit",
    world: "runbook:plugin/policy",
});

use runbook::plugin::log::{Level, log};
use serde_json::{Value, json};

struct Policy;

impl Guest for Policy {
    fn run(input: String) -> Result<String, StepError> {
        let input: Value = serde_json::from_str(&input).map_err(|e| StepError {
            error: "States.Runtime".into(),
            cause: format!("input is not JSON: {e}"),
        })?;
        let out = decide(&input)?;
        let level = if out["Decision"] == "refuse" { Level::Warn } else { Level::Info };
        let say = |k: &str| out[k].as_str().unwrap_or_default().to_string();
        log(level, &format!("decision: {}: {}", say("Decision"), say("Reason")));
        Ok(out.to_string())
    }
}

export!(Policy);

fn truthy(v: &Value) -> bool {
    v.as_bool().unwrap_or(false) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

/// The decision, as a pure function of the input (unit-testable with `cargo test`).
pub fn decide(input: &Value) -> Result<Value, StepError> {
    let (p, r) = (&input["Primary"], &input["Replica"]);
    if !p.is_object() || !r.is_object() {
        // An ASL error name: a runbook's Retry/Catch can match it.
        return Err(StepError {
            error: "InvalidParameterValue".into(),
            cause: "policy input needs Primary and Replica objects".into(),
        });
    }
    let primary_healthy = p["Status"].as_str() == Some("available") && truthy(&p["Reachable"]);
    let replica_status = r["Status"].as_str().unwrap_or("unknown");
    let lag = input["Lag"]["LagSeconds"].as_f64();
    let max_lag = input["MaxLagSeconds"].as_f64().unwrap_or(60.0);
    let force = truthy(&input["Force"]);
    let (decision, reason) = if !r["Exists"].as_bool().unwrap_or(false) {
        ("refuse", "there is no replica to promote".to_string())
    } else if !r["IsReplica"].as_bool().unwrap_or(false) {
        ("none", "the replica is already standalone".to_string())
    } else if replica_status != "available" {
        ("refuse", format!("the replica is {replica_status}, not available"))
    } else if force {
        ("promote", "forced by the operator".to_string())
    } else if primary_healthy {
        ("none", "the primary is healthy".to_string())
    } else {
        match lag {
            Some(l) if l > max_lag => (
                "refuse",
                format!("replica lag {l:.1} s exceeds {max_lag:.1} s; run with Force=true to accept"),
            ),
            Some(l) => ("promote", format!("the primary is unhealthy and the replica lag {l:.1} s is within {max_lag:.1} s")),
            None if truthy(&input["RequireLag"]) => {
                ("refuse", "no replica lag measurement: cannot bound data loss".to_string())
            }
            None => ("promote", "the primary is unhealthy (no lag measurement)".to_string()),
        }
    };
    Ok(json!({
        "Policy": "{name}",
        "Decision": decision,
        "Reason": reason,
        "LagSeconds": lag,
        "MaxLagSeconds": max_lag,
        "PrimaryHealthy": primary_healthy,
        "Forced": force,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(primary: &str, lag: f64) -> Value {
        json!({
            "Primary": {"Status": primary, "Reachable": primary == "available"},
            "Replica": {"Status": "available", "IsReplica": true, "Exists": true},
            "Lag": {"LagSeconds": lag},
            "MaxLagSeconds": 60,
        })
    }

    #[test]
    fn promotes_an_unhealthy_primary_within_the_lag_bound() {
        assert_eq!(decide(&facts("failed", 5.0)).unwrap()["Decision"], "promote");
        assert_eq!(decide(&facts("failed", 600.0)).unwrap()["Decision"], "refuse");
        assert_eq!(decide(&facts("available", 5.0)).unwrap()["Decision"], "none");
    }
}
"#;

const PY_APP: &str = r#""""{name}: a failover policy for runbook in Python (the built-in lag-guard's rules, to
start from). Built for the `policy` world, which imports `log` only: componentize-py keeps
every import of its world, and a policy needs no capability grant.

Build: componentize-py -d wit -w policy componentize app -o {crate}.wasm
Test:  runbook plugin test {crate}.wasm --input @examples/primary-down.json
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log


def truthy(v):
    return v is True or (isinstance(v, str) and v.lower() == "true")


def decide(facts):
    p, r = facts.get("Primary"), facts.get("Replica")
    if not isinstance(p, dict) or not isinstance(r, dict):
        # An ASL error name: a runbook's Retry/Catch can match it.
        raise Err(wit_world.StepError(
            error="InvalidParameterValue",
            cause="policy input needs Primary and Replica objects"))
    primary_healthy = p.get("Status") == "available" and truthy(p.get("Reachable"))
    lag = (facts.get("Lag") or {}).get("LagSeconds")
    max_lag = facts.get("MaxLagSeconds", 60)
    force = truthy(facts.get("Force"))
    if not r.get("Exists"):
        decision, reason = "refuse", "there is no replica to promote"
    elif not r.get("IsReplica"):
        decision, reason = "none", "the replica is already standalone"
    elif r.get("Status") != "available":
        decision, reason = "refuse", f"the replica is {r.get('Status', 'unknown')}, not available"
    elif force:
        decision, reason = "promote", "forced by the operator"
    elif primary_healthy:
        decision, reason = "none", "the primary is healthy"
    elif lag is not None and lag > max_lag:
        decision, reason = "refuse", f"replica lag {lag:.1f} s exceeds {max_lag:.1f} s; run with Force=true to accept"
    elif lag is not None:
        decision, reason = "promote", f"the primary is unhealthy and the replica lag {lag:.1f} s is within {max_lag:.1f} s"
    elif truthy(facts.get("RequireLag")):
        decision, reason = "refuse", "no replica lag measurement: cannot bound data loss"
    else:
        decision, reason = "promote", "the primary is unhealthy (no lag measurement)"
    return {"Policy": "{name}", "Decision": decision, "Reason": reason,
            "LagSeconds": lag, "MaxLagSeconds": max_lag,
            "PrimaryHealthy": primary_healthy, "Forced": force}


class WitWorld(wit_world.WitWorld):
    def run(self, input: str) -> str:
        out = decide(json.loads(input))
        level = log.Level.WARN if out["Decision"] == "refuse" else log.Level.INFO
        log.log(level, f"decision: {out['Decision']}: {out['Reason']}")
        return json.dumps(out)
"#;

const PY_README: &str = r#"# {name}

A runbook failover policy in Python, built as a WebAssembly component for the
`runbook:plugin/policy` world (`wit/`, written out by `runbook plugin new`) with
componentize-py.

    pip install componentize-py==0.25.1      # once
    componentize-py -d wit -w policy componentize app -o {crate}.wasm
    runbook plugin test {crate}.wasm --input @examples/primary-down.json
    runbook plugin test {crate}.wasm --replay EXECUTION_ID --state Decide

The component embeds CPython (about 18 MB): its first load compiles it (seconds, a few
hundred MB of memory), later loads come from the runner's compile cache.
`componentize-py -d wit -w policy bindings gen` writes the typed bindings (`wit_world`)
for your editor. Use it in `failover.yaml` in place of the built-in policy:

    Resource: /path/to/{crate}.wasm

See the runner's docs/plugins.md for the contract.
"#;

const JS_POLICY: &str = r#"// {name}: a failover policy for runbook in JavaScript (the built-in lag-guard's rules,
// to start from). Built for the `policy` world, which imports `log` only: JS component
// tools keep every import of their world, and a policy needs no capability grant.
//
// Build: npm install && npm run build      (componentize-qjs: QuickJS, ~1.6 MB)
// Test:  runbook plugin test {crate}.wasm --input @examples/primary-down.json
import { log } from 'runbook:plugin/log@0.1.0';

const truthy = (v) => v === true || (typeof v === 'string' && v.toLowerCase() === 'true');
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

// The decision, as a pure function of the facts.
export function decide(facts) {
  const p = facts.Primary;
  const r = facts.Replica;
  if (!isObject(p) || !isObject(r)) {
    // Thrown {error, cause} is the step-error: an ASL error name Retry/Catch can match.
    throw { error: 'InvalidParameterValue', cause: 'policy input needs Primary and Replica objects' };
  }
  const primaryHealthy = p.Status === 'available' && truthy(p.Reachable);
  const lag = isObject(facts.Lag) && typeof facts.Lag.LagSeconds === 'number' ? facts.Lag.LagSeconds : null;
  const maxLag = typeof facts.MaxLagSeconds === 'number' ? facts.MaxLagSeconds : 60;
  const force = truthy(facts.Force);
  let decision;
  let reason;
  if (!r.Exists) {
    [decision, reason] = ['refuse', 'there is no replica to promote'];
  } else if (!r.IsReplica) {
    [decision, reason] = ['none', 'the replica is already standalone'];
  } else if (r.Status !== 'available') {
    [decision, reason] = ['refuse', `the replica is ${r.Status ?? 'unknown'}, not available`];
  } else if (force) {
    [decision, reason] = ['promote', 'forced by the operator'];
  } else if (primaryHealthy) {
    [decision, reason] = ['none', 'the primary is healthy'];
  } else if (lag !== null && lag > maxLag) {
    [decision, reason] = ['refuse', `replica lag ${lag.toFixed(1)} s exceeds ${maxLag.toFixed(1)} s; run with Force=true to accept`];
  } else if (lag !== null) {
    [decision, reason] = ['promote', `the primary is unhealthy and the replica lag ${lag.toFixed(1)} s is within ${maxLag.toFixed(1)} s`];
  } else if (truthy(facts.RequireLag)) {
    [decision, reason] = ['refuse', 'no replica lag measurement: cannot bound data loss'];
  } else {
    [decision, reason] = ['promote', 'the primary is unhealthy (no lag measurement)'];
  }
  return {
    Policy: '{name}',
    Decision: decision,
    Reason: reason,
    LagSeconds: lag,
    MaxLagSeconds: maxLag,
    PrimaryHealthy: primaryHealthy,
    Forced: force,
  };
}

// The world's export: JSON in, JSON out.
export function run(input) {
  const out = decide(JSON.parse(input));
  log(out.Decision === 'refuse' ? 'warn' : 'info', `decision: ${out.Decision}: ${out.Reason}`);
  return JSON.stringify(out);
}
"#;

const JS_PACKAGE: &str = r#"{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {
    "build": "componentize-qjs --wit wit --world policy --sync --js policy.js -o {crate}.wasm"
  },
  "devDependencies": {
    "componentize-qjs": "0.4.5"
  }
}
"#;

const JS_README: &str = r#"# {name}

A runbook failover policy in JavaScript, built as a WebAssembly component for the
`runbook:plugin/policy` world (`wit/`, written out by `runbook plugin new`) with
componentize-qjs (QuickJS: a ~1.6 MB component that loads in a few seconds the first
time, milliseconds from the runner's compile cache).

    npm install                              # once: componentize-qjs from npm
    npm run build                            # -> {crate}.wasm
    runbook plugin test {crate}.wasm --input @examples/primary-down.json
    runbook plugin test {crate}.wasm --replay EXECUTION_ID --state Decide

Imports are `import { log } from 'runbook:plugin/log@0.1.0'`; the world's `run` is an
exported function; throwing `{ error, cause }` returns a step error. Use it in
`failover.yaml` in place of the built-in policy:

    Resource: /path/to/{crate}.wasm

See the runner's docs/plugins.md for the contract.
"#;

const EXAMPLE_INPUT: &str = r#"{
  "Primary": { "Status": "failed", "Reachable": false },
  "Replica": { "Status": "available", "IsReplica": true, "Exists": true },
  "Lag": { "LagSeconds": 4.5 },
  "MaxLagSeconds": 60,
  "Force": false
}
"#;

const README: &str = r#"# {name}

A runbook failover policy, built as a WebAssembly component for the
`runbook:plugin/policy` world (`wit/`, written out by `runbook plugin new`).

    rustup target add wasm32-wasip2          # once
    cargo build --target wasm32-wasip2 --release
    cargo test                               # the decision logic, natively
    runbook plugin test target/wasm32-wasip2/release/{crate}.wasm --input @examples/primary-down.json
    runbook plugin test target/wasm32-wasip2/release/{crate}.wasm --replay EXECUTION_ID --state Decide

Use it in `failover.yaml` in place of the built-in policy:

    Resource: /path/to/{crate}.wasm         # or plugin:{name} with the file on --plugin-path
    Sha256: <sha256sum of the file>          # optional pin

See the runner's docs/plugins.md for the contract.
"#;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `runbook plugin new`: exit 0 when written, 2 for bad usage.
pub fn new(a: &NewArgs) -> anyhow::Result<ExitCode> {
    if !valid_name(&a.name) {
        eprintln!(
            "plugin new: '{}' is not a valid name (a letter, then letters, digits, '-' or '_')",
            a.name
        );
        return Ok(ExitCode::from(2));
    }
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        eprintln!("plugin new: {} exists and is not empty", dir.display());
        return Ok(ExitCode::from(2));
    }
    let krate = a.name.replace('-', "_");
    let fill = |t: &str| t.replace("{name}", &a.name).replace("{crate}", &krate);
    let files: Vec<(PathBuf, String)> = match a.lang {
        Lang::Rust => {
            let mut f = vec![
                (PathBuf::from("Cargo.toml"), fill(RUST_CARGO)),
                (PathBuf::from("src/lib.rs"), fill(RUST_LIB)),
                (
                    PathBuf::from("examples/primary-down.json"),
                    EXAMPLE_INPUT.to_string(),
                ),
                (PathBuf::from("README.md"), fill(README)),
                (PathBuf::from(".gitignore"), "/target\n".to_string()),
            ];
            f.extend(
                WIT.iter()
                    .map(|(n, t)| (Path::new("wit").join(n), t.to_string())),
            );
            f
        }
        Lang::Python => {
            let mut f = vec![
                (PathBuf::from("app.py"), fill(PY_APP)),
                (
                    PathBuf::from("examples/primary-down.json"),
                    EXAMPLE_INPUT.to_string(),
                ),
                (PathBuf::from("README.md"), fill(PY_README)),
                (
                    PathBuf::from(".gitignore"),
                    "*.wasm\n__pycache__/\n".to_string(),
                ),
            ];
            f.extend(
                WIT.iter()
                    .map(|(n, t)| (Path::new("wit").join(n), t.to_string())),
            );
            f
        }
        Lang::Js => {
            let mut f = vec![
                (PathBuf::from("policy.js"), fill(JS_POLICY)),
                (PathBuf::from("package.json"), fill(JS_PACKAGE)),
                (
                    PathBuf::from("examples/primary-down.json"),
                    EXAMPLE_INPUT.to_string(),
                ),
                (PathBuf::from("README.md"), fill(JS_README)),
                (
                    PathBuf::from(".gitignore"),
                    "*.wasm\nnode_modules/\n".to_string(),
                ),
            ];
            f.extend(
                WIT.iter()
                    .map(|(n, t)| (Path::new("wit").join(n), t.to_string())),
            );
            f
        }
    };
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {} ({} files)", dir.display(), files.len());
    println!("  cd {}", dir.display());
    let wasm = match a.lang {
        Lang::Rust => {
            println!("  cargo build --target wasm32-wasip2 --release");
            format!("target/wasm32-wasip2/release/{krate}.wasm")
        }
        Lang::Python => {
            println!("  componentize-py -d wit -w policy componentize app -o {krate}.wasm");
            format!("{krate}.wasm")
        }
        Lang::Js => {
            println!("  npm install && npm run build");
            format!("{krate}.wasm")
        }
    };
    println!("  runbook plugin test {wasm} --input @examples/primary-down.json");
    Ok(ExitCode::SUCCESS)
}
