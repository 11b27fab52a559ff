//! Parsing runbooks (YAML or JSON) into a [`Runbook`], with `file:line:col` diagnostics.
//!
//! [`parse_runbook`] runs the field-level checks while building the model and then
//! [`crate::validate::validate`] (graph-level checks); it returns `Err` if either found a
//! problem, so a `Runbook` you hold is always valid.

use crate::dataflow::Template;
use crate::error::{Diagnostic, Diagnostics, EngineError, Pos};
use crate::intrinsics;
use crate::model::*;
use crate::path::{Path, RESERVED_VARIABLE};
use crate::yaml::{self, SourceMap, escape_token};
use serde_json::{Map, Value};
use std::sync::Arc;

mod rules;
mod states;
mod states_refs;
mod vars;

/// A parsed, validated runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub meta: RunbookMeta,
    pub machine: Arc<StateMachine>,
    pub source: SourceMap,
    pub file_name: String,
}

/// A Task state anywhere in the runbook (for plugin resolution and grant checks).
#[derive(Debug, Clone)]
pub struct TaskRef {
    pub state_name: String,
    /// Slash-separated path from the top level, e.g. `Deploy/branch[1]/CreatePrimary` or
    /// `Fanout[*]/Probe` for a Map processor.
    pub path: String,
    pub resource: Resource,
    pub sha256: Option<String>,
    pub capabilities: Vec<String>,
    /// The Task's `Parameters` (a child execution's `StateMachineArn` is read from it).
    pub parameters: Option<crate::dataflow::Template>,
    /// Position of the state's name.
    pub pos: Pos,
}

impl Runbook {
    /// Every Task state, including those inside Parallel branches and Map processors.
    pub fn tasks(&self) -> Vec<TaskRef> {
        let mut out = Vec::new();
        self.collect_tasks(&self.machine, "", &mut out);
        out
    }

    fn collect_tasks(&self, m: &StateMachine, prefix: &str, out: &mut Vec<TaskRef>) {
        for s in &m.states {
            let path = format!("{prefix}{}", s.name);
            match &s.kind {
                StateKind::Task(t) => out.push(TaskRef {
                    state_name: s.name.clone(),
                    path,
                    resource: t.resource.clone(),
                    sha256: t.sha256.clone(),
                    capabilities: t.capabilities.clone(),
                    parameters: t.parameters.clone(),
                    pos: self.source.pos(&s.pointer),
                }),
                StateKind::Parallel(p) => {
                    for (i, b) in p.branches.iter().enumerate() {
                        self.collect_tasks(b, &format!("{path}/branch[{i}]/"), out);
                    }
                }
                StateKind::Map(mp) => {
                    self.collect_tasks(&mp.processor, &format!("{path}[*]/"), out)
                }
                _ => {}
            }
        }
    }

    /// Source position of the node at a JSON pointer (key position for object members).
    pub fn position_of(&self, pointer: &str) -> Option<Pos> {
        self.source
            .key_pos(pointer)
            .or_else(|| self.source.value_pos(pointer))
    }

    /// A diagnostic for this runbook's file (for checks made by other crates).
    pub fn diag(&self, pos: Pos, msg: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file_name.clone(),
            line: pos.line,
            col: pos.col,
            state: None,
            code: "E-CHECK",
            message: msg.into(),
        }
    }

    /// Like [`Runbook::diag`], naming the state and a stable code.
    pub fn state_diag(
        &self,
        pos: Pos,
        state: &str,
        code: &'static str,
        msg: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            state: Some(state.to_string()),
            code,
            ..self.diag(pos, msg)
        }
    }
}

/// Parse and validate a runbook. `file_name` is only used in messages.
pub fn parse_runbook(file_name: &str, text: &str) -> Result<Runbook, Diagnostics> {
    let one = |pos: Pos, code, message: String| {
        Diagnostics(vec![Diagnostic {
            file: file_name.to_string(),
            line: pos.line,
            col: pos.col,
            state: None,
            code,
            message,
        }])
    };
    let looks_json =
        file_name.to_ascii_lowercase().ends_with(".json") || text.trim_start().starts_with('{');
    let mut json_ok = false;
    if looks_json {
        // serde_json gives precise messages for JSON syntax errors; YAML's would be confusing.
        match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => json_ok = true,
            Err(e) => {
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                return Err(one(
                    Pos {
                        line: e.line() as u32,
                        col: e.column().max(1) as u32,
                    },
                    "E-JSON",
                    format!("invalid JSON: {msg}"),
                ));
            }
        }
    }
    let (value, source) = match yaml::load(text) {
        Ok(x) => x,
        Err(e) if json_ok => {
            // Valid JSON that YAML rejects (rare: e.g. tab indentation); positions degrade.
            let _ = e;
            (
                serde_json::from_str(text)
                    .map_err(|e| one(Pos::default(), "E-JSON", e.to_string()))?,
                SourceMap::default(),
            )
        }
        Err(e) => return Err(one(e.pos, "E-YAML", e.message)),
    };
    parse_value(file_name, value, source)
}

/// Parse an already-loaded document (with its source map).
pub fn parse_value(
    file_name: &str,
    value: Value,
    source: SourceMap,
) -> Result<Runbook, Diagnostics> {
    let mut ps = Ps {
        file: file_name,
        src: &source,
        diags: Vec::new(),
        state: None,
        top_ql: QueryLanguage::JsonPath,
        ql: QueryLanguage::JsonPath,
    };
    let Value::Object(top) = &value else {
        ps.err(
            "",
            "E-TOP",
            "a runbook must be a mapping with StartAt and States",
        );
        return Err(Diagnostics(ps.diags));
    };
    let meta = match top.get("Runbook") {
        Some(v) => ps.meta(v, "/Runbook"),
        None => RunbookMeta::default(),
    };
    if let Some(q) = ps.query_language(top, "") {
        ps.top_ql = q;
    }
    let machine = ps.machine(&value, "", MachineKind::Top);
    let mut diags = ps.diags;
    let rb = Runbook {
        meta,
        machine: Arc::new(machine),
        source,
        file_name: file_name.to_string(),
    };
    if diags.is_empty() {
        diags = crate::validate::validate(&rb);
    }
    if diags.is_empty() {
        Ok(rb)
    } else {
        diags.sort_by_key(|d| (d.line, d.col));
        diags.dedup();
        Err(Diagnostics(diags))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MachineKind {
    Top,
    Branch,
    Processor,
}

struct Ps<'a> {
    file: &'a str,
    src: &'a SourceMap,
    diags: Vec<Diagnostic>,
    state: Option<String>,
    /// The top level's `QueryLanguage` (states inherit it).
    top_ql: QueryLanguage,
    /// The `QueryLanguage` of the state being parsed.
    ql: QueryLanguage,
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const FIELDS: &[(&str, &[&str])] = &[
    (
        "Pass",
        &[
            "Assign",
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "Result",
            "ResultPath",
            "Parameters",
        ],
    ),
    (
        "Task",
        &[
            "Assign",
            "Resource",
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
            "Sha256",
            "Capabilities",
        ],
    ),
    (
        "Choice",
        &["InputPath", "OutputPath", "Choices", "Default", "Assign"],
    ),
    (
        "Wait",
        &[
            "Assign",
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
        ],
    ),
    ("Succeed", &["InputPath", "OutputPath"]),
    ("Fail", &["Error", "Cause", "ErrorPath", "CausePath"]),
    (
        "Parallel",
        &[
            "Assign",
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "Branches",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
        ],
    ),
    (
        "Map",
        &[
            "Assign",
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "ItemsPath",
            "ItemSelector",
            "Parameters",
            "ItemProcessor",
            "Iterator",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Label",
        ],
    ),
];
/// Fields only JSONata states have.
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];
/// Fields only JSONPath states have (Step Functions refuses them in JSONata states).
const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Result",
    "ItemsPath",
    "Iterator",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "ErrorPath",
    "CausePath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
];
const UNSUPPORTED_MAP: &[&str] = &["ItemReader", "ResultWriter", "ItemBatcher"];

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let c = if a[i - 1] == b[j - 1] { 0 } else { 1 };
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + c);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "did you mean" suggestion among `candidates`.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

type Opt<T> = Option<T>;

impl Ps<'_> {
    fn push(&mut self, pos: Pos, code: &'static str, msg: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            state: self.state.clone(),
            code,
            message: msg.into(),
        });
    }
    /// Error about a member (points at its key).
    fn err(&mut self, ptr: &str, code: &'static str, msg: impl Into<String>) {
        let pos = self.src.pos(ptr);
        self.push(pos, code, msg);
    }
    /// Error about a value (points at the value).
    fn err_val(&mut self, ptr: &str, code: &'static str, msg: impl Into<String>) {
        let pos = self.src.value_pos(ptr).unwrap_or_else(|| self.src.pos(ptr));
        self.push(pos, code, msg);
    }

    fn check_fields(&mut self, obj: &Map<String, Value>, ptr: &str, allowed: &[&str], what: &str) {
        for k in obj.keys() {
            if allowed.contains(&k.as_str()) {
                continue;
            }
            let kp = format!("{ptr}/{}", escape_token(k));
            if JSONATA_ONLY.contains(&k.as_str()) {
                self.err(
                    &kp,
                    "E-QUERY-LANGUAGE",
                    format!(
                        "field '{k}' is only allowed in JSONata states (QueryLanguage: JSONata)"
                    ),
                );
                continue;
            }
            if what.ends_with(" state") && FIELDS.iter().any(|(_, f)| f.contains(&k.as_str())) {
                self.err(
                    &kp,
                    "E-FIELD-NOT-ALLOWED",
                    format!("field '{k}' is not allowed in {what}"),
                );
                continue;
            }
            let msg = match suggest(k, allowed.iter().copied()) {
                Some(s) => format!("unknown field '{k}' (did you mean '{s}'?)"),
                None => format!("unknown field '{k}'"),
            };
            self.err(&kp, "E-FIELD-UNKNOWN", msg);
        }
    }

    fn get_str(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Opt<String> {
        match obj.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.err_val(
                    &format!("{ptr}/{key}"),
                    "E-FIELD-TYPE",
                    format!("'{key}' must be a string, got {other}"),
                );
                None
            }
        }
    }

    fn get_uint(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str, min: u64) -> Opt<u64> {
        let v = obj.get(key)?;
        match v.as_u64() {
            Some(n) if n >= min => Some(n),
            _ => {
                let want = if min == 0 {
                    "a non-negative integer"
                } else {
                    "a positive integer"
                };
                self.err_val(
                    &format!("{ptr}/{key}"),
                    "E-FIELD-TYPE",
                    format!("'{key}' must be {want}, got {v}"),
                );
                None
            }
        }
    }

    fn get_number(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Opt<f64> {
        let v = obj.get(key)?;
        match v.as_f64() {
            Some(n) => Some(n),
            None => {
                self.err_val(
                    &format!("{ptr}/{key}"),
                    "E-FIELD-TYPE",
                    format!("'{key}' must be a number, got {v}"),
                );
                None
            }
        }
    }

    /// A path field: None = absent, Some(None) = null, Some(Some(p)) = path.
    fn get_path(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        reference: bool,
        nullable: bool,
    ) -> Opt<Opt<Path>> {
        let v = obj.get(key)?;
        let kp = format!("{ptr}/{key}");
        match v {
            Value::Null if nullable => Some(None),
            Value::String(s) => {
                let r = if reference {
                    Path::parse_reference(s)
                } else {
                    Path::parse(s)
                };
                match r {
                    Ok(p) if key == "ResultPath" && p.variable().is_some() => {
                        self.err_val(
                            &kp,
                            "E-RESULTPATH-VAR",
                            format!("ResultPath: '{s}' cannot be a variable; store results in variables with 'Assign'"),
                        );
                        None
                    }
                    Ok(p) => {
                        self.check_var_path(&kp, key, &p);
                        Some(Some(p))
                    }
                    Err(e) => {
                        let code = if reference && Path::parse(s).is_ok() {
                            "E-REFPATH"
                        } else {
                            "E-PATH-SYNTAX"
                        };
                        self.err_val(&kp, code, format!("{key}: {e}"));
                        None
                    }
                }
            }
            other => {
                let want = if nullable {
                    "a path string or null"
                } else {
                    "a path string"
                };
                self.err_val(
                    &kp,
                    "E-FIELD-TYPE",
                    format!("'{key}' must be {want}, got {other}"),
                );
                None
            }
        }
    }

    /// Path with default `$` when absent.
    fn io_path(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        reference: bool,
    ) -> Opt<Path> {
        match self.get_path(obj, ptr, key, reference, true) {
            None => Some(Path::parse("$").expect("root path")),
            Some(p) => p,
        }
    }

    fn template(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Opt<Template> {
        let v = obj.get(key)?;
        let kp = format!("{ptr}/{key}");
        if key == "ResultSelector" && !v.is_object() {
            self.err_val(&kp, "E-FIELD-TYPE", format!("'{key}' must be an object"));
            return None;
        }
        match Template::compile(v) {
            Ok(t) => {
                let mut bad = Vec::new();
                t.visit_paths(&mut |field, p| {
                    if p.variable() == Some(RESERVED_VARIABLE) {
                        bad.push((field.to_string(), p.as_str().to_string()));
                    }
                });
                for (field, p) in bad {
                    self.err_val(
                        &kp,
                        "E-VAR-STATES",
                        format!("{key}: '{field}': '{p}' refers to the reserved variable '$states', which only JSONata states can use"),
                    );
                }
                Some(t)
            }
            Err(errs) => {
                for (sub, msg) in errs {
                    let code = if msg.contains("must be a string") {
                        "E-PARAM-DOLLAR"
                    } else if msg.contains("intrinsic") {
                        "E-INTRINSIC-SYNTAX"
                    } else {
                        "E-PATH-SYNTAX"
                    };
                    self.err_val(&format!("{kp}{sub}"), code, format!("{key}: {msg}"));
                }
                None
            }
        }
    }

    fn meta(&mut self, v: &Value, ptr: &str) -> RunbookMeta {
        let mut meta = RunbookMeta::default();
        let Value::Object(o) = v else {
            self.err_val(ptr, "E-RUNBOOK", "'Runbook' must be a mapping");
            return meta;
        };
        self.check_fields(
            o,
            ptr,
            &[
                "Name",
                "Description",
                "Parameters",
                "Provider",
                "Environment",
            ],
            "the Runbook block",
        );
        meta.name = self.get_str(o, ptr, "Name");
        meta.environment = self.get_str(o, ptr, "Environment");
        if let Some(env) = &meta.environment
            && env.starts_with('$')
            && let Err(e) = Path::parse(env)
        {
            self.err_val(
                &format!("{ptr}/Environment"),
                "E-RUNBOOK",
                format!("Environment must be a name or a path into the input ($.Name): {e}"),
            );
        }
        meta.description = self.get_str(o, ptr, "Description");
        if let Some(p) = self.get_str(o, ptr, "Provider") {
            meta.provider = match p.as_str() {
                "local" => Some(Provider::Local),
                "aws" => Some(Provider::Aws),
                _ => {
                    self.err_val(
                        &format!("{ptr}/Provider"),
                        "E-RUNBOOK",
                        format!("Provider must be 'local' or 'aws', got '{p}'"),
                    );
                    None
                }
            };
        }
        match o.get("Parameters") {
            None => {}
            Some(Value::Object(params)) => {
                for (name, spec) in params {
                    let pp = format!("{ptr}/Parameters/{}", escape_token(name));
                    let Value::Object(so) = spec else {
                        self.err_val(
                            &pp,
                            "E-RUNBOOK",
                            format!("parameter '{name}' must be a mapping with Type"),
                        );
                        continue;
                    };
                    self.check_fields(so, &pp, &["Type", "Default", "Description"], "a parameter");
                    let ty = match self.get_str(so, &pp, "Type").as_deref() {
                        Some("string") => ParamType::String,
                        Some("number") => ParamType::Number,
                        Some("integer") => ParamType::Integer,
                        Some("boolean") => ParamType::Boolean,
                        Some("object") => ParamType::Object,
                        Some("array") => ParamType::Array,
                        Some(other) => {
                            self.err_val(
                                &format!("{pp}/Type"),
                                "E-RUNBOOK",
                                format!("parameter '{name}': Type must be one of string, number, integer, boolean, object, array; got '{other}'"),
                            );
                            continue;
                        }
                        None => {
                            self.err(&pp, "E-RUNBOOK", format!("parameter '{name}' needs a Type"));
                            continue;
                        }
                    };
                    let default = so.get("Default").cloned();
                    if let Some(d) = &default
                        && !type_matches(ty, d)
                    {
                        self.err_val(
                            &format!("{pp}/Default"),
                            "E-RUNBOOK",
                            format!("parameter '{name}': Default {d} is not of type {ty:?}"),
                        );
                    }
                    meta.parameters.push((
                        name.clone(),
                        ParamSpec {
                            ty,
                            default,
                            description: self.get_str(so, &pp, "Description"),
                        },
                    ));
                }
            }
            Some(_) => self.err_val(
                &format!("{ptr}/Parameters"),
                "E-RUNBOOK",
                "'Parameters' must be a mapping",
            ),
        }
        meta
    }
}

/// `service:Action` or `service:Action on pattern`.
pub fn valid_capability(s: &str) -> bool {
    let (grant, pattern) = match s.split_once(" on ") {
        Some((g, p)) => (g, Some(p.trim())),
        None => (s, None),
    };
    if pattern.is_some_and(str::is_empty) {
        return false;
    }
    let Some((svc, action)) = grant.split_once(':') else {
        return false;
    };
    !svc.is_empty()
        && svc
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        && !action.is_empty()
        && action
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'*' || c == b'-' || c == b'_')
}

fn type_matches(ty: ParamType, v: &Value) -> bool {
    match ty {
        ParamType::String => v.is_string(),
        ParamType::Number => v.is_number(),
        ParamType::Integer => v.is_i64() || v.is_u64(),
        ParamType::Boolean => v.is_boolean(),
        ParamType::Object => v.is_object(),
        ParamType::Array => v.is_array(),
    }
}

/// Execution input: parameter defaults, overlaid with `--input` (an object), then `--param
/// K=V` (each V parsed per the declared Type). Unknown `--param` names, wrongly typed values
/// and parameters with neither a Default nor a value are errors.
pub fn build_input(
    meta: &RunbookMeta,
    overrides: Value,
    params: &[(String, String)],
) -> Result<Value, EngineError> {
    let mut out = Map::new();
    for (name, spec) in &meta.parameters {
        if let Some(d) = &spec.default {
            out.insert(name.clone(), d.clone());
        }
    }
    match overrides {
        // Step Functions takes any JSON value as execution input; only Parameters need an
        // object to fill in.
        other if !other.is_object() && meta.parameters.is_empty() && params.is_empty() => {
            return Ok(other);
        }
        Value::Null => {}
        Value::Object(o) => {
            for (k, v) in o {
                if let Some((_, spec)) = meta.parameters.iter().find(|(n, _)| *n == k)
                    && !type_matches(spec.ty, &v)
                {
                    return Err(EngineError::BadParameter {
                        name: k,
                        message: format!("expected {:?}, got {v}", spec.ty).to_lowercase(),
                    });
                }
                out.insert(k, v);
            }
        }
        other => return Err(EngineError::InputNotObject(other.to_string())),
    }
    for (k, raw) in params {
        let Some((_, spec)) = meta.parameters.iter().find(|(n, _)| n == k) else {
            return Err(EngineError::UnknownParameter(k.clone()));
        };
        let bad = |m: &str| EngineError::BadParameter {
            name: k.clone(),
            message: m.to_string(),
        };
        let v = match spec.ty {
            ParamType::String => Value::String(raw.clone()),
            ParamType::Integer => raw
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad(&format!("expected an integer, got '{raw}'")))?,
            ParamType::Number => {
                let v: Value = serde_json::from_str(raw.trim())
                    .map_err(|_| bad(&format!("expected a number, got '{raw}'")))?;
                if !v.is_number() {
                    return Err(bad(&format!("expected a number, got '{raw}'")));
                }
                v
            }
            ParamType::Boolean => match raw.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad(&format!("expected true or false, got '{raw}'"))),
            },
            ParamType::Object | ParamType::Array => {
                let v: Value =
                    serde_json::from_str(raw).map_err(|e| bad(&format!("expected JSON: {e}")))?;
                if !type_matches(spec.ty, &v) {
                    return Err(bad(&format!("expected a JSON {:?}", spec.ty).to_lowercase()));
                }
                v
            }
        };
        out.insert(k.clone(), v);
    }
    for (name, _) in &meta.parameters {
        if !out.contains_key(name) {
            return Err(EngineError::MissingParameter(name.clone()));
        }
    }
    Ok(Value::Object(out))
}
