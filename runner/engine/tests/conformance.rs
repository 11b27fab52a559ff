//! ASL conformance suite: every case in `tests/conformance/*.yaml|json` runs through the
//! parser and the simulated executor; all failures are reported together.
//!
//! A file holds one case or a list of cases:
//! `{ name, definition (mapping, or a string of runbook text for position checks), file_name?, input?,
//!    seed?, max_history_events?, tasks?: {<state name | resource | "*">: [ {output} | {error, cause} , with
//!    optional delay (s), heartbeats ([s...]) or hang: true ]},
//!    expect: { status?, output?, error?, cause?, cause_contains?, history_contains?,
//!              history_excludes?, task_inputs?: {<state>: [..]}, task_calls?, elapsed?,
//!              elapsed_max?,
//!              invalid?: [{code, line?, col?, message_contains?}] } }`
//! In expected values, `"<<any>>"` matches anything and `"<<uuid>>"` a version-4 UUID.

use runbook_engine::sim::{self, SimOptions, TaskCall, TaskOutcome};
use runbook_engine::{parse_runbook, yaml};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

fn load_cases() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("conformance dir")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let fname = f.file_name().unwrap().to_string_lossy().to_string();
        let (v, _) = yaml::load(&text)
            .unwrap_or_else(|e| panic!("{fname}:{}:{}: {}", e.pos.line, e.pos.col, e.message));
        match v {
            Value::Array(cases) => out.extend(cases.into_iter().map(|c| (fname.clone(), c))),
            c => out.push((fname, c)),
        }
    }
    out
}

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
        && s.bytes()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit())
}

/// Expected `e` matches actual `a`: numbers compare by value, `<<any>>`/`<<uuid>>` wildcards.
fn matches(e: &Value, a: &Value) -> bool {
    match (e, a) {
        (Value::String(s), _) if s == "<<any>>" => true,
        (Value::String(s), Value::String(x)) if s == "<<uuid>>" => is_uuid_v4(x),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| matches(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| matches(v, w)))
        }
        _ => e == a,
    }
}

/// Every member of expected object `e` is in `a` (recursively for objects).
fn subset(e: &Value, a: &Value) -> bool {
    match (e, a) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| subset(v, w))),
        _ => matches(e, a),
    }
}

fn outcome(v: &Value) -> TaskOutcome {
    let mut o = if let Some(err) = v.get("error") {
        TaskOutcome::err(
            err.as_str().unwrap_or_default(),
            v.get("cause").and_then(Value::as_str).unwrap_or_default(),
        )
    } else if v.get("hang").and_then(Value::as_bool) == Some(true) {
        TaskOutcome::hang()
    } else {
        TaskOutcome::ok(v.get("output").cloned().unwrap_or(Value::Null))
    };
    if let Some(d) = v.get("delay").and_then(Value::as_f64) {
        o.delay = Duration::from_secs_f64(d);
    }
    if let Some(hb) = v.get("heartbeats").and_then(Value::as_array) {
        o.heartbeats = hb
            .iter()
            .filter_map(Value::as_f64)
            .map(Duration::from_secs_f64)
            .collect();
    }
    o
}

fn run_case(file: &str, case: &Value) -> Result<(), String> {
    let expect = case.get("expect").cloned().unwrap_or(Value::Null);
    let (fname, text) = match &case["definition"] {
        Value::String(s) => (
            case.get("file_name")
                .and_then(Value::as_str)
                .unwrap_or("case.yaml"),
            s.clone(),
        ),
        v => ("case.json", serde_json::to_string_pretty(v).unwrap()),
    };
    let parsed = parse_runbook(fname, &text);
    if let Some(inv) = expect.get("invalid").and_then(Value::as_array) {
        let diags = match parsed {
            Ok(_) => return Err("expected the definition to be invalid, but it parsed".into()),
            Err(d) => d,
        };
        for want in inv {
            let code = want["code"].as_str().unwrap_or_default();
            let found = diags.iter().any(|d| {
                d.code == code
                    && want
                        .get("line")
                        .and_then(Value::as_u64)
                        .is_none_or(|l| l == d.line as u64)
                    && want
                        .get("col")
                        .and_then(Value::as_u64)
                        .is_none_or(|c| c == d.col as u64)
                    && want
                        .get("message_contains")
                        .and_then(Value::as_str)
                        .is_none_or(|m| d.to_string().contains(m))
            });
            if !found {
                return Err(format!("expected diagnostic {want}, got:\n{diags}"));
            }
        }
        return Ok(());
    }
    let rb = parsed.map_err(|d| format!("definition did not parse:\n{d}"))?;
    let input = case
        .get("input")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let mut script: BTreeMap<String, VecDeque<Value>> = BTreeMap::new();
    if let Some(Value::Object(t)) = case.get("tasks") {
        for (k, v) in t {
            let list = match v {
                Value::Array(a) => a.iter().cloned().collect(),
                other => VecDeque::from([other.clone()]),
            };
            script.insert(k.clone(), list);
        }
    }
    let mut inputs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut answer = |call: &TaskCall| -> TaskOutcome {
        inputs
            .entry(call.state_name.clone())
            .or_default()
            .push(call.input.clone());
        let key = [
            call.state_name.clone(),
            call.resource.as_written(),
            "*".to_string(),
        ]
        .into_iter()
        .find(|k| script.contains_key(k));
        match key {
            None => TaskOutcome::ok(call.input.clone()),
            Some(k) => {
                let q = script.get_mut(&k).unwrap();
                let v = if q.len() > 1 {
                    q.pop_front().unwrap()
                } else {
                    q[0].clone()
                };
                outcome(&v)
            }
        }
    };
    let mut opts = SimOptions::default();
    if let Some(s) = case.get("seed").and_then(Value::as_u64) {
        opts.seed = s;
    }
    if let Some(n) = case.get("max_history_events").and_then(Value::as_u64) {
        opts.max_history_events = n;
    }
    let start = opts.context.start_time;
    let res = sim::run_with(rb.machine.clone(), input, opts, &mut answer);
    let mut errs = Vec::new();
    let status = serde_json::to_value(res.status).unwrap();
    let want_status = expect
        .get("status")
        .cloned()
        .unwrap_or(Value::String("SUCCEEDED".into()));
    if status != want_status {
        errs.push(format!(
            "status: want {want_status}, got {status} (error {:?}, cause {:?})",
            res.error, res.cause
        ));
    }
    if let Some(o) = expect.get("output") {
        match &res.output {
            Some(a) if matches(o, a) => {}
            a => errs.push(format!(
                "output: want {o}, got {}",
                a.as_ref().map(|v| v.to_string()).unwrap_or("none".into())
            )),
        }
    }
    if let Some(e) = expect.get("error")
        && res.error.as_deref() != e.as_str()
    {
        errs.push(format!(
            "error: want {e}, got {:?} (cause {:?})",
            res.error, res.cause
        ));
    }
    if let Some(c) = expect.get("cause")
        && res.cause.as_deref() != c.as_str()
    {
        errs.push(format!("cause: want {c}, got {:?}", res.cause));
    }
    if let Some(c) = expect.get("cause_contains").and_then(Value::as_str)
        && !res.cause.as_deref().unwrap_or_default().contains(c)
    {
        errs.push(format!("cause should contain {c:?}, got {:?}", res.cause));
    }
    let hist: Vec<Value> = res
        .history
        .iter()
        .map(|h| serde_json::to_value(h).unwrap())
        .collect();
    let hist_has = |w: &Value| match w {
        Value::String(t) => hist.iter().any(|h| h["type"] == *t),
        o => hist.iter().any(|h| subset(o, h)),
    };
    for w in expect
        .get("history_contains")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !hist_has(w) {
            errs.push(format!("history should contain {w}"));
        }
    }
    for w in expect
        .get("history_excludes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if hist_has(w) {
            errs.push(format!("history should not contain {w}"));
        }
    }
    if let Some(Value::Object(ti)) = expect.get("task_inputs") {
        for (state, want) in ti {
            let got = Value::Array(inputs.get(state).cloned().unwrap_or_default());
            if !matches(want, &got) {
                errs.push(format!("task inputs of {state}: want {want}, got {got}"));
            }
        }
    }
    if let Some(n) = expect.get("task_calls").and_then(Value::as_u64)
        && res.task_calls as u64 != n
    {
        errs.push(format!("task calls: want {n}, got {}", res.task_calls));
    }
    if let Some(secs) = expect.get("elapsed").and_then(Value::as_f64) {
        let got = res.end_time.since(start).as_secs_f64();
        if (got - secs).abs() > 0.001 {
            errs.push(format!("elapsed: want {secs}s, got {got}s"));
        }
    }
    if let Some(secs) = expect.get("elapsed_max").and_then(Value::as_f64) {
        let got = res.end_time.since(start).as_secs_f64();
        if got > secs + 0.001 {
            errs.push(format!("elapsed: want at most {secs}s, got {got}s"));
        }
    }
    let _ = file;
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n    "))
    }
}

#[test]
fn conformance() {
    let cases = load_cases();
    let mut failures = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    // Per file (category): cases, passing.
    let mut by_file: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (file, case) in &cases {
        let counts = by_file.entry(file.as_str()).or_default();
        counts.0 += 1;
        let name = case["name"].as_str().unwrap_or("<unnamed>").to_string();
        if !names.insert(name.clone()) {
            failures.push(format!("{file}: duplicate case name '{name}'"));
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(file, case)));
        match r {
            Ok(Ok(())) => counts.1 += 1,
            Ok(Err(e)) => failures.push(format!("{file}: {name}:\n    {e}")),
            Err(_) => failures.push(format!("{file}: {name}: panicked")),
        }
    }
    for (file, (total, passed)) in &by_file {
        println!("conformance: {file:<24} {passed:>4} / {total:<4} passing");
    }
    println!(
        "conformance: {} cases, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() >= 150,
        "expected at least 150 conformance cases, found {}",
        cases.len()
    );
}
