//! `runbook plugin test`: runs one component outside any runbook with a given input,
//! its capability calls answered by [`super::replay`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runbook_caps::Grants;
use runbook_executor::Runner;
use runbook_host::{CallOutcome, CallRecord, Limits, LogLevel, Observer, RunRequest};
use serde_json::{Value, json};

use super::replay::{ReplayProvider, fixture_answers, recorded};

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
    let misses = provider.misses();
    let unused = provider.unused_fixtures();
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
