//! Runs the JSONata reference test suite against the crate the engine evaluates JSONata with
//! (`jsonata-rs`) and prints the pass rate per group: the figures in docs/jsonata.md.
//!
//! The suite is not vendored; point this at a checkout of the reference implementation's
//! `test/test-suite` directory (jsonata-js/jsonata, MIT):
//!
//! ```text
//! cargo run -p runbook-engine --example jsonata_suite -- PATH/test/test-suite [--fails]
//! ```
//!
//! A case passes when it yields the expected result (objects compared without regard to key
//! order, numbers as f64, as the reference suite's deep-equal does), the expected undefined
//! result, or an error with the expected code. Each case runs under a depth and time box so a
//! runaway expression fails its case instead of the run.

use bumpalo::Bump;
use jsonata_rs::JsonAta;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

struct Case {
    group: String,
    name: String,
    expr: String,
    input: Option<Json>,
    bindings: serde_json::Map<String, Json>,
    expect: Expect,
    unordered: bool,
    depth: Option<usize>,
    timelimit: Option<usize>,
}

enum Expect {
    Result(Json),
    Undefined,
    Code(String),
    /// Non-deterministic results ($now, $millis): any value passes.
    Pattern,
    /// The case file is not JSON serde_json reads.
    Unreadable,
}

enum Outcome {
    Value(Json),
    Undefined,
    Error(String),
}

fn load(root: &Path) -> Vec<Case> {
    let read = |p: &Path| -> Json {
        serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
    };
    let mut datasets = BTreeMap::new();
    for e in std::fs::read_dir(root.join("datasets")).expect("datasets") {
        let p = e.expect("entry").path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        datasets.insert(name, read(&p));
    }
    let mut groups: Vec<_> = std::fs::read_dir(root.join("groups"))
        .expect("groups")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    groups.sort();
    let mut cases = Vec::new();
    for dir in groups {
        let group = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("group")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            // serde_json refuses lone surrogate escapes (a few encodeUrl cases): such a file
            // counts as one failed case rather than being left out.
            let Ok(spec) = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Json>(&t).map_err(|e| e.to_string()))
            else {
                cases.push(Case {
                    group: group.clone(),
                    name: file.file_name().unwrap().to_string_lossy().into_owned(),
                    expr: String::new(),
                    input: None,
                    bindings: Default::default(),
                    expect: Expect::Unreadable,
                    unordered: false,
                    depth: None,
                    timelimit: None,
                });
                continue;
            };
            let list = match spec {
                Json::Array(a) => a,
                other => vec![other],
            };
            let many = list.len() > 1;
            for (i, c) in list.into_iter().enumerate() {
                let fname = file.file_name().unwrap().to_string_lossy();
                let name = if many {
                    format!("{fname}#{i}")
                } else {
                    fname.into_owned()
                };
                let expr = match (&c["expr"], &c["expr-file"]) {
                    (Json::String(e), _) => e.clone(),
                    (_, Json::String(f)) => {
                        std::fs::read_to_string(dir.join(f)).expect("expr-file")
                    }
                    _ => continue,
                };
                let input = if let Some(d) = c.get("data") {
                    Some(d.clone())
                } else if let Some(Json::String(d)) = c.get("dataset") {
                    datasets.get(d).cloned()
                } else {
                    None
                };
                let expect = if c["undefinedResult"] == Json::Bool(true) {
                    Expect::Undefined
                } else if let Some(r) = c.get("result") {
                    Expect::Result(r.clone())
                } else if let Some(Json::String(code)) = c.get("error").map(|e| &e["code"]) {
                    Expect::Code(code.clone())
                } else if let Some(Json::String(code)) = c.get("code") {
                    Expect::Code(code.clone())
                } else if c.get("result_re").is_some() {
                    Expect::Pattern
                } else {
                    continue;
                };
                cases.push(Case {
                    group: group.clone(),
                    name,
                    expr,
                    input,
                    bindings: c["bindings"].as_object().cloned().unwrap_or_default(),
                    expect,
                    unordered: c["unordered"] == Json::Bool(true),
                    depth: c["depth"].as_u64().map(|d| d as usize),
                    timelimit: c["timelimit"].as_u64().map(|t| t as usize),
                });
            }
        }
    }
    cases
}

fn run(case: &Case) -> Outcome {
    let arena = Bump::new();
    let expr = match JsonAta::new(&case.expr, &arena) {
        Ok(e) => e,
        Err(e) => return Outcome::Error(e.code().to_string()),
    };
    for (name, value) in &case.bindings {
        // jsonata-rs takes bindings as its own values; a JSON text is a JSONata expression.
        let literal = match JsonAta::new(&value.to_string(), &arena) {
            Ok(l) => l,
            Err(e) => return Outcome::Error(format!("binding: {}", e.code())),
        };
        match literal.evaluate(None, None) {
            Ok(v) => expr.assign_var(name, v),
            Err(e) => return Outcome::Error(format!("binding: {}", e.code())),
        }
    }
    let input = case.input.as_ref().map(|i| i.to_string());
    // Bounded by default so that one runaway case cannot overflow the stack of the run.
    let depth = case.depth.or(Some(500));
    let time = case.timelimit.or(Some(10_000));
    match expr.evaluate_timeboxed(input.as_deref(), depth, time) {
        Ok(v) if v.is_undefined() => Outcome::Undefined,
        Ok(v) => match serde_json::from_str(&v.serialize(false)) {
            Ok(j) => Outcome::Value(j),
            Err(_) => Outcome::Error(format!("unserializable: {}", v.serialize(false))),
        },
        Err(e) => Outcome::Error(e.code().to_string()),
    }
}

fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn judge(case: &Case, out: &Outcome) -> bool {
    match (&case.expect, out) {
        (Expect::Undefined, Outcome::Undefined) => true,
        (Expect::Code(c), Outcome::Error(e)) => c == e,
        (Expect::Pattern, Outcome::Value(_)) => true,
        (Expect::Result(Json::Array(x)), Outcome::Value(Json::Array(y))) if case.unordered => {
            x.len() == y.len() && x.iter().all(|m| y.iter().any(|n| same(m, n)))
        }
        (Expect::Result(x), Outcome::Value(y)) => same(x, y),
        _ => false,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let root = args
        .next()
        .expect("usage: jsonata_suite PATH/test/test-suite [--fails]");
    let show_fails = args.next().as_deref() == Some("--fails");
    let cases = load(Path::new(&root));
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let started = std::time::Instant::now();
    for case in &cases {
        // A panic in the implementation is a failed case, not an aborted run.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(case)))
            .unwrap_or_else(|_| Outcome::Error("panic".into()));
        let ok = judge(case, &out);
        let e = per.entry(case.group.clone()).or_default();
        e.1 += 1;
        if ok {
            e.0 += 1;
        } else if show_fails {
            let got = match &out {
                Outcome::Value(v) => v.to_string(),
                Outcome::Undefined => "undefined".into(),
                Outcome::Error(e) => format!("error {e}"),
            };
            let got: String = got.chars().take(100).collect();
            eprintln!(
                "FAIL {}/{}: {} -> {got}",
                case.group,
                case.name,
                case.expr.trim()
            );
        }
    }
    let (mut pass, mut total) = (0, 0);
    for (group, (p, n)) in &per {
        println!("{group}\t{p}/{n}");
        pass += p;
        total += n;
    }
    println!(
        "TOTAL\t{pass}/{total}\t({:.1}%)\t{:?}",
        100.0 * pass as f64 / total as f64,
        started.elapsed()
    );
}
