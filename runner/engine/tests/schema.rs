//! `runbook schema` against real definitions: every conformance definition the parser accepts,
//! the DR runbooks and the examples must validate against the JSON Schema, and a few shapes the
//! schema exists to catch must not.
//!
//! No JSON Schema crate is in the workspace (and the shared Cargo.lock is not this test's to
//! change), so this file validates with the keywords `json_schema()` uses, and panics on any
//! other keyword or `pattern`, so a schema change the validator does not understand fails
//! loudly instead of passing unchecked.

use runbook_engine::{json_schema, parse_runbook, yaml};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Keywords that carry no constraint.
const ANNOTATIONS: &[&str] = &["$schema", "$id", "title", "description", "$defs", "format"];

fn pattern_matches(pattern: &str, s: &str) -> bool {
    match pattern {
        "^\\$" => s.starts_with('$'),
        "^\\{%[\\s\\S]*%\\}$" => s.len() >= 4 && s.starts_with("{%") && s.ends_with("%}"),
        "^[0-9a-fA-F]{64}$" => s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "^[A-Za-z0-9_-]+:[A-Za-z0-9*_-]+( on .+)?$" => {
            let word = |w: &str, star: bool| {
                !w.is_empty()
                    && w.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (star && b == b'*')
                    })
            };
            let (head, on) = match s.split_once(" on ") {
                Some((h, rest)) => (h, Some(rest)),
                None => (s, None),
            };
            on.is_none_or(|r| !r.is_empty())
                && head
                    .split_once(':')
                    .is_some_and(|(a, b)| word(a, false) && word(b, true))
        }
        other => panic!("schema test: teach pattern_matches the pattern {other:?}"),
    }
}

fn type_is(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown type {other}"),
    }
}

/// Errors of `v` against `schema`, as "pointer: what" strings (empty when valid).
fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let Value::Object(s) = schema else {
        panic!("schema at {at} is not an object: {schema}");
    };
    for (k, kw) in s {
        let mut fail = |m: String| errs.push(format!("{at}: {m}"));
        match k.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => {
                let name = kw.as_str().unwrap().strip_prefix("#/$defs/").unwrap();
                let target = &root["$defs"][name];
                assert!(target.is_object(), "dangling $ref {name}");
                validate(root, target, v, at, errs);
            }
            "type" => {
                let ok = match kw {
                    Value::String(t) => type_is(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_is(t.as_str().unwrap(), v)),
                    _ => panic!("bad type keyword"),
                };
                if !ok {
                    fail(format!("{v} is not of type {kw}"));
                }
            }
            "enum" => {
                if !kw.as_array().unwrap().contains(v) {
                    fail(format!("{v} is not one of {kw}"));
                }
            }
            "const" => {
                if kw != v {
                    fail(format!("{v} is not {kw}"));
                }
            }
            "pattern" => {
                if let Some(t) = v.as_str()
                    && !pattern_matches(kw.as_str().unwrap(), t)
                {
                    fail(format!("{t:?} does not match {kw}"));
                }
            }
            "minimum" | "maximum" => {
                if let (Some(x), Some(b)) = (v.as_f64(), kw.as_f64())
                    && (if k == "minimum" { x < b } else { x > b })
                {
                    fail(format!("{x} is outside {k} {b}"));
                }
            }
            "maxLength" => {
                if let Some(t) = v.as_str()
                    && t.chars().count() as u64 > kw.as_u64().unwrap()
                {
                    fail(format!("{t:?} is longer than {kw}"));
                }
            }
            "minItems" => {
                if let Some(a) = v.as_array()
                    && (a.len() as u64) < kw.as_u64().unwrap()
                {
                    fail(format!("fewer than {kw} items"));
                }
            }
            "minProperties" => {
                if let Some(o) = v.as_object()
                    && (o.len() as u64) < kw.as_u64().unwrap()
                {
                    fail(format!("fewer than {kw} properties"));
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in kw.as_array().unwrap() {
                        if !o.contains_key(r.as_str().unwrap()) {
                            fail(format!("missing required {r}"));
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, x) in a.iter().enumerate() {
                        validate(root, kw, x, &format!("{at}/{i}"), errs);
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in kw.as_object().unwrap() {
                        if let Some(x) = o.get(name) {
                            validate(root, sub, x, &format!("{at}/{name}"), errs);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = s.get("properties").and_then(Value::as_object);
                    for (name, x) in o {
                        if known.is_some_and(|p| p.contains_key(name)) {
                            continue;
                        }
                        match kw {
                            Value::Bool(false) => {
                                errs.push(format!("{at}: unexpected property {name:?}"))
                            }
                            Value::Bool(true) => {}
                            sub => validate(root, sub, x, &format!("{at}/{name}"), errs),
                        }
                    }
                }
            }
            "propertyNames" => {
                if let Some(o) = v.as_object() {
                    for name in o.keys() {
                        validate(
                            root,
                            kw,
                            &json!(name),
                            &format!("{at} (key {name:?})"),
                            errs,
                        );
                    }
                }
            }
            "not" => {
                let mut sub = Vec::new();
                validate(root, kw, v, at, &mut sub);
                if sub.is_empty() {
                    fail(format!("{v} matches the 'not' schema {kw}"));
                }
            }
            "anyOf" | "oneOf" => {
                let results: Vec<Vec<String>> = kw
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|sub| {
                        let mut e = Vec::new();
                        validate(root, sub, v, at, &mut e);
                        e
                    })
                    .collect();
                let passing = results.iter().filter(|e| e.is_empty()).count();
                let ok = if k == "anyOf" {
                    passing >= 1
                } else {
                    passing == 1
                };
                if !ok {
                    // The branch with the fewest errors is usually the intended one.
                    let best = results.iter().min_by_key(|e| e.len()).cloned();
                    fail(format!(
                        "{k}: {passing} branches match; nearest: {}",
                        best.unwrap_or_default().join("; ")
                    ));
                }
            }
            other => panic!("schema test: unsupported keyword {other:?} at {at}"),
        }
    }
}

fn errors(v: &Value) -> Vec<String> {
    let schema = json_schema();
    let mut errs = Vec::new();
    validate(&schema, &schema, v, "", &mut errs);
    errs
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    out.sort();
    out
}

fn load(text: &str, what: &str) -> Value {
    yaml::load(text)
        .unwrap_or_else(|e| panic!("{what}:{}:{}: {}", e.pos.line, e.pos.col, e.message))
        .0
}

#[test]
fn every_accepted_conformance_definition_validates_against_the_schema() {
    let mut checked = 0;
    let mut jsonata = 0;
    let mut failures = Vec::new();
    for f in yaml_files(&manifest().join("tests/conformance")) {
        let fname = f.file_name().unwrap().to_string_lossy().to_string();
        let cases = match load(&std::fs::read_to_string(&f).unwrap(), &fname) {
            Value::Array(a) => a,
            one => vec![one],
        };
        for case in cases {
            let name = case["name"].as_str().unwrap_or("?").to_string();
            let text = match &case["definition"] {
                Value::String(s) => s.clone(),
                v => serde_json::to_string_pretty(v).unwrap(),
            };
            // Definitions the engine refuses may break the schema too; only accepted ones
            // must pass it.
            if parse_runbook("case.yaml", &text).is_err() {
                continue;
            }
            let def = load(&text, &name);
            checked += 1;
            if text.contains("JSONata") {
                jsonata += 1;
            }
            let errs = errors(&def);
            if !errs.is_empty() {
                failures.push(format!("{fname}: {name}:\n    {}", errs.join("\n    ")));
            }
        }
    }
    println!("schema: {checked} accepted conformance definitions ({jsonata} JSONata) checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 300 && jsonata >= 35,
        "too few definitions: {checked} ({jsonata} JSONata)"
    );
}

#[test]
fn runbooks_and_examples_validate_against_the_schema() {
    let root = manifest().join("../..");
    let mut files = yaml_files(&root.join("runbooks"));
    files.extend(yaml_files(&root.join("runbooks/examples")));
    assert!(files.len() >= 7, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let what = f.display().to_string();
        parse_runbook(&what, &text).unwrap_or_else(|d| panic!("{d}"));
        let errs = errors(&load(&text, &what));
        assert!(errs.is_empty(), "{what}:\n{}", errs.join("\n"));
    }
}

#[test]
fn schema_describes_the_jsonata_forms() {
    let def =
        |state: Value| json!({"QueryLanguage": "JSONata", "StartAt": "S", "States": {"S": state}});
    let ok = [
        json!({"Type": "Wait", "Seconds": "{% $states.input.n %}", "End": true}),
        json!({"Type": "Wait", "Timestamp": "{% $now() %}", "Output": {"a": 1}, "End": true}),
        json!({"Type": "Task", "Resource": "plugin:x", "Arguments": "{% $states.input %}",
               "TimeoutSeconds": "{% 5 %}", "HeartbeatSeconds": 2,
               "Output": "{% $states.result %}", "Assign": {"r": "{% $states.result %}"},
               "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}",
                          "Assign": {"e": "{% $states.errorOutput.Error %}"}, "Next": "S"}],
               "End": true}),
        json!({"Type": "Choice", "Choices": [{"Condition": "{% $states.input.ok %}", "Next": "S",
               "Output": {"x": 1}, "Assign": {"y": 2}}], "Default": "S"}),
        json!({"Type": "Map", "Items": "{% $states.input.list %}", "MaxConcurrency": "{% 2 %}",
               "ToleratedFailureCount": "{% 0 %}", "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}"},
               "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}}, "End": true}),
        json!({"Type": "Map", "Items": [1, 2], "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}}, "End": true}),
        json!({"Type": "Parallel", "Arguments": {"a": "{% 1 %}"}, "Branches": [{"StartAt": "P", "States": {"P": {"Type": "Succeed"}}}], "End": true}),
        json!({"Type": "Fail", "Error": "{% 'E.' & $states.input.k %}", "Cause": "{% 'c' %}"}),
        json!({"Type": "Succeed", "Output": "{% $states.input.x %}"}),
    ];
    for s in ok {
        let errs = errors(&def(s.clone()));
        assert!(errs.is_empty(), "{s}: {errs:?}");
    }
    let bad = [
        // A number field holding a string that is not an expression.
        json!({"Type": "Wait", "Seconds": "ten", "End": true}),
        json!({"Type": "Task", "Resource": "plugin:x", "TimeoutSeconds": "5", "End": true}),
        json!({"Type": "Choice", "Choices": [{"Condition": "true", "Next": "S"}], "Default": "S"}),
        json!({"Type": "Map", "Items": {"a": 1}, "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}}, "End": true}),
        // Fields a state type does not have.
        json!({"Type": "Fail", "Output": {"a": 1}}),
        json!({"Type": "Pass", "Arguments": {"a": 1}, "End": true}),
        json!({"Type": "Succeed", "Assign": {"a": 1}}),
    ];
    for s in bad {
        assert!(!errors(&def(s.clone())).is_empty(), "{s} should be refused");
    }
}
