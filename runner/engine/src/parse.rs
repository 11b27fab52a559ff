//! Parsing runbooks (YAML or JSON) into a [`Runbook`], with `file:line:col` diagnostics.
//!
//! [`parse_runbook`] runs the field-level checks while building the model and then
//! [`crate::validate::validate`] (graph-level checks); it returns `Err` if either found a
//! problem, so a `Runbook` you hold is always valid.

use crate::dataflow::Template;
use crate::error::{Diagnostic, Diagnostics, EngineError, Pos};
use crate::intrinsics;
use crate::model::*;
use crate::path::Path;
use crate::yaml::{self, SourceMap, escape_token};
use serde_json::{Map, Value};
use std::sync::Arc;

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
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const FIELDS: &[(&str, &[&str])] = &[
    (
        "Pass",
        &[
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
    ("Choice", &["InputPath", "OutputPath", "Choices", "Default"]),
    (
        "Wait",
        &[
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
const LATER: &[&str] = &["Assign", "Arguments", "Output", "Items"];
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
            if LATER.contains(&k.as_str()) {
                self.err(
                    &kp,
                    "E-UNSUPPORTED",
                    format!("'{k}' is not supported yet (JSONata/variables come later)"),
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
                    Ok(p) => Some(Some(p)),
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
            Ok(t) => Some(t),
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

    fn machine(&mut self, v: &Value, ptr: &str, kind: MachineKind) -> StateMachine {
        let saved = self.state.take();
        let empty = StateMachine::new(String::new(), Vec::new(), ptr.to_string());
        let Value::Object(o) = v else {
            self.err_val(
                ptr,
                "E-FIELD-TYPE",
                "a state machine must be a mapping with StartAt and States",
            );
            self.state = saved;
            return empty;
        };
        let allowed: &[&str] = match kind {
            MachineKind::Top => &[
                "StartAt",
                "States",
                "Comment",
                "TimeoutSeconds",
                "Version",
                "QueryLanguage",
                "Runbook",
            ],
            MachineKind::Branch => &["StartAt", "States", "Comment"],
            MachineKind::Processor => &["StartAt", "States", "Comment", "ProcessorConfig"],
        };
        // Field errors of a branch are not "in" the enclosing state's own fields, but naming
        // the enclosing state still helps; keep it.
        self.state = saved.clone();
        self.check_fields(
            o,
            ptr,
            allowed,
            if kind == MachineKind::Top {
                "the top level"
            } else {
                "a branch"
            },
        );
        let start_at = self.get_str(o, ptr, "StartAt");
        if start_at.is_none() && !o.contains_key("StartAt") {
            self.err(ptr, "E-STARTAT-MISSING", "missing required field 'StartAt'");
        }
        let mut states = Vec::new();
        match o.get("States") {
            None => self.err(ptr, "E-STATES-MISSING", "missing required field 'States'"),
            Some(Value::Object(sm)) => {
                if sm.is_empty() {
                    self.err(
                        &format!("{ptr}/States"),
                        "E-STATES-MISSING",
                        "'States' must not be empty",
                    );
                }
                for (name, sv) in sm {
                    let sp = format!("{ptr}/States/{}", escape_token(name));
                    self.state = Some(name.clone());
                    if let Some(s) = self.state_def(name, sv, &sp) {
                        states.push(s);
                    }
                }
            }
            Some(_) => self.err_val(
                &format!("{ptr}/States"),
                "E-FIELD-TYPE",
                "'States' must be a mapping of state names to states",
            ),
        }
        self.state = saved;
        let mut m = StateMachine::new(start_at.unwrap_or_default(), states, ptr.to_string());
        m.comment = self.get_str(o, ptr, "Comment");
        if kind == MachineKind::Top {
            m.timeout_seconds = self.get_uint(o, ptr, "TimeoutSeconds", 1);
            m.version = self.get_str(o, ptr, "Version");
            m.query_language = self.get_str(o, ptr, "QueryLanguage");
            self.query_language(o, ptr);
        }
        if kind == MachineKind::Processor
            && let Some(pc) = o.get("ProcessorConfig")
        {
            let pcp = format!("{ptr}/ProcessorConfig");
            match pc {
                Value::Object(pco) => {
                    self.check_fields(pco, &pcp, &["Mode", "ExecutionType"], "ProcessorConfig");
                    if let Some(mode) = self.get_str(pco, &pcp, "Mode")
                        && mode != "INLINE"
                        && mode != "DISTRIBUTED"
                    {
                        self.err_val(
                            &format!("{pcp}/Mode"),
                            "E-MAP",
                            format!(
                                "ProcessorConfig.Mode must be INLINE or DISTRIBUTED, got '{mode}'"
                            ),
                        );
                    }
                }
                _ => self.err_val(&pcp, "E-FIELD-TYPE", "'ProcessorConfig' must be a mapping"),
            }
        }
        m
    }

    fn query_language(&mut self, o: &Map<String, Value>, ptr: &str) {
        if let Some(q) = self.get_str(o, ptr, "QueryLanguage") {
            match q.as_str() {
                "JSONPath" => {}
                "JSONata" => self.err_val(
                    &format!("{ptr}/QueryLanguage"),
                    "E-UNSUPPORTED",
                    "QueryLanguage 'JSONata' is not supported yet (only JSONPath)",
                ),
                other => self.err_val(
                    &format!("{ptr}/QueryLanguage"),
                    "E-FIELD-TYPE",
                    format!("QueryLanguage must be 'JSONPath' or 'JSONata', got '{other}'"),
                ),
            }
        }
    }

    fn state_def(&mut self, name: &str, v: &Value, ptr: &str) -> Opt<State> {
        if name.chars().count() > 80 {
            self.err(
                ptr,
                "E-NAME-LONG",
                "state names must be at most 80 characters",
            );
        }
        let Value::Object(o) = v else {
            self.err_val(ptr, "E-FIELD-TYPE", "a state must be a mapping");
            return None;
        };
        let ty = match o.get("Type") {
            None => {
                self.err(ptr, "E-STATE-TYPE", "missing required field 'Type'");
                return None;
            }
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                self.err_val(
                    &format!("{ptr}/Type"),
                    "E-STATE-TYPE",
                    format!("'Type' must be a string, got {other}"),
                );
                return None;
            }
        };
        let Some((_, fields)) = FIELDS.iter().find(|(t, _)| *t == ty) else {
            let msg = match suggest(&ty, FIELDS.iter().map(|(t, _)| *t)) {
                Some(s) => format!("unknown state Type '{ty}' (did you mean '{s}'?)"),
                None => format!(
                    "unknown state Type '{ty}' (Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map)"
                ),
            };
            self.err_val(&format!("{ptr}/Type"), "E-STATE-TYPE", msg);
            return None;
        };
        let mut allowed: Vec<&str> = COMMON.to_vec();
        allowed.extend_from_slice(fields);
        if ty == "Map" {
            for k in UNSUPPORTED_MAP {
                if o.contains_key(*k) {
                    self.err(
                        &format!("{ptr}/{k}"),
                        "E-UNSUPPORTED",
                        format!("'{k}' (distributed Map) is not supported"),
                    );
                }
            }
            allowed.extend_from_slice(UNSUPPORTED_MAP);
        }
        self.check_fields(o, ptr, &allowed, &format!("a {ty} state"));
        self.query_language(o, ptr);

        let comment = self.get_str(o, ptr, "Comment");
        let input_path = if fields.contains(&"InputPath") {
            self.io_path(o, ptr, "InputPath", false)
        } else {
            Some(Path::parse("$").unwrap())
        };
        let output_path = if fields.contains(&"OutputPath") {
            self.io_path(o, ptr, "OutputPath", false)
        } else {
            Some(Path::parse("$").unwrap())
        };

        // Next / End exclusivity for the states that transition.
        let (mut next, mut end) = (None, false);
        if fields.contains(&"Next") {
            next = self.get_str(o, ptr, "Next");
            end = match o.get("End") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    self.err_val(
                        &format!("{ptr}/End"),
                        "E-FIELD-TYPE",
                        format!("'End' must be a boolean, got {other}"),
                    );
                    false
                }
            };
            if o.contains_key("Next") && end {
                self.err(
                    &format!("{ptr}/End"),
                    "E-END-NEXT",
                    "a state cannot have both 'Next' and 'End: true'",
                );
            } else if !o.contains_key("Next") && !end {
                self.err(
                    ptr,
                    "E-END-NEXT",
                    "a state must have either 'Next' or 'End: true'",
                );
            }
        }

        let kind = match ty.as_str() {
            "Pass" => StateKind::Pass(PassState {
                result: o.get("Result").cloned(),
                parameters: self.template(o, ptr, "Parameters"),
                result_path: self.io_path(o, ptr, "ResultPath", true),
            }),
            "Task" => StateKind::Task(Box::new(self.task(o, ptr)?)),
            "Choice" => StateKind::Choice(self.choice(o, ptr)),
            "Wait" => StateKind::Wait(self.wait(o, ptr)?),
            "Succeed" => StateKind::Succeed,
            "Fail" => StateKind::Fail(self.fail(o, ptr)),
            "Parallel" => StateKind::Parallel(Box::new(self.parallel(o, ptr))),
            "Map" => StateKind::Map(Box::new(self.map(o, ptr))),
            _ => unreachable!(),
        };
        Some(State {
            name: name.to_string(),
            pointer: ptr.to_string(),
            comment,
            input_path,
            output_path,
            next,
            end,
            kind,
        })
    }

    fn duration(&mut self, o: &Map<String, Value>, ptr: &str, key: &str) -> Opt<NumberSpec> {
        let pkey = format!("{key}Path");
        if o.contains_key(key) && o.contains_key(&pkey) {
            self.err(
                &format!("{ptr}/{pkey}"),
                "E-TIMEOUT",
                format!("'{key}' and '{pkey}' are mutually exclusive"),
            );
        }
        if let Some(n) = self.get_uint(o, ptr, key, 1) {
            if n > 99_999_999 {
                self.err_val(
                    &format!("{ptr}/{key}"),
                    "E-TIMEOUT",
                    format!("'{key}' must be at most 99999999"),
                );
            }
            return Some(NumberSpec::Value(n as f64));
        }
        self.get_path(o, ptr, &pkey, true, false)
            .flatten()
            .map(NumberSpec::Path)
    }

    fn task(&mut self, o: &Map<String, Value>, ptr: &str) -> Opt<TaskState> {
        let resource = match self.get_str(o, ptr, "Resource") {
            Some(r) if r.is_empty() || r == "plugin:" => {
                self.err_val(
                    &format!("{ptr}/Resource"),
                    "E-RESOURCE",
                    "'Resource' must not be empty",
                );
                Resource::Other(r)
            }
            Some(r) => Resource::parse(&r),
            None => {
                if !o.contains_key("Resource") {
                    self.err(
                        ptr,
                        "E-RESOURCE",
                        "a Task needs a 'Resource' (plugin:<name>, a .wasm path or an ARN)",
                    );
                }
                Resource::Other(String::new())
            }
        };
        if o.get("Sha256").is_some_and(Value::is_number) {
            // An all-digit hash reads as a YAML number.
            self.err_val(
                &format!("{ptr}/Sha256"),
                "E-SHA256",
                "'Sha256' must be a string: quote the hash",
            );
        }
        let sha256 = if o.get("Sha256").is_some_and(Value::is_number) {
            None
        } else {
            self.get_str(o, ptr, "Sha256")
        };
        if let Some(h) = &sha256
            && (h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            self.err_val(
                &format!("{ptr}/Sha256"),
                "E-SHA256",
                "'Sha256' must be 64 hexadecimal characters",
            );
        }
        let mut capabilities = Vec::new();
        match o.get("Capabilities") {
            None => {}
            Some(Value::Array(a)) => {
                for (i, c) in a.iter().enumerate() {
                    let cp = format!("{ptr}/Capabilities/{i}");
                    match c {
                        Value::String(s) if valid_capability(s) => capabilities.push(s.clone()),
                        Value::String(s) => self.err_val(
                            &cp,
                            "E-CAPABILITY",
                            format!("capability '{s}' must look like 'service:Action' or 'service:Action on pattern'"),
                        ),
                        other => self.err_val(&cp, "E-CAPABILITY", format!("capabilities must be strings, got {other}")),
                    }
                }
            }
            Some(_) => self.err_val(
                &format!("{ptr}/Capabilities"),
                "E-CAPABILITY",
                "'Capabilities' must be a list of strings",
            ),
        }
        let timeout = self.duration(o, ptr, "TimeoutSeconds");
        let heartbeat = self.duration(o, ptr, "HeartbeatSeconds");
        if let (Some(NumberSpec::Value(t)), Some(NumberSpec::Value(h))) = (&timeout, &heartbeat)
            && h >= t
        {
            self.err_val(
                &format!("{ptr}/HeartbeatSeconds"),
                "E-TIMEOUT",
                "'HeartbeatSeconds' must be smaller than 'TimeoutSeconds'",
            );
        }
        Some(TaskState {
            resource,
            sha256,
            capabilities,
            parameters: self.template(o, ptr, "Parameters"),
            result_selector: self.template(o, ptr, "ResultSelector"),
            result_path: self.io_path(o, ptr, "ResultPath", true),
            retry: self.retriers(o, ptr),
            catch: self.catchers(o, ptr),
            timeout,
            heartbeat,
        })
    }

    fn error_equals(
        &mut self,
        o: &Map<String, Value>,
        ptr: &str,
        code: &'static str,
    ) -> Vec<String> {
        let kp = format!("{ptr}/ErrorEquals");
        match o.get("ErrorEquals") {
            None => {
                self.err(ptr, code, "missing required field 'ErrorEquals'");
                vec![]
            }
            Some(Value::Array(a)) if !a.is_empty() => {
                let mut out = Vec::new();
                for (i, e) in a.iter().enumerate() {
                    match e {
                        Value::String(s) => out.push(s.clone()),
                        other => self.err_val(
                            &format!("{kp}/{i}"),
                            code,
                            format!("error names must be strings, got {other}"),
                        ),
                    }
                }
                if out.len() > 1 && out.iter().any(|e| e == "States.ALL") {
                    self.err_val(
                        &kp,
                        "E-ALL-LAST",
                        "'States.ALL' must appear alone in its ErrorEquals",
                    );
                }
                out
            }
            Some(_) => {
                self.err_val(
                    &kp,
                    code,
                    "'ErrorEquals' must be a non-empty list of error names",
                );
                vec![]
            }
        }
    }

    fn retriers(&mut self, o: &Map<String, Value>, ptr: &str) -> Vec<Retrier> {
        let Some(v) = o.get("Retry") else {
            return vec![];
        };
        let rp = format!("{ptr}/Retry");
        let Value::Array(a) = v else {
            self.err_val(&rp, "E-RETRY", "'Retry' must be a list of retriers");
            return vec![];
        };
        let mut out = Vec::new();
        for (i, r) in a.iter().enumerate() {
            let p = format!("{rp}/{i}");
            let Value::Object(ro) = r else {
                self.err_val(&p, "E-RETRY", "a retrier must be a mapping");
                continue;
            };
            self.check_fields(
                ro,
                &p,
                &[
                    "ErrorEquals",
                    "IntervalSeconds",
                    "MaxAttempts",
                    "BackoffRate",
                    "MaxDelaySeconds",
                    "JitterStrategy",
                    "Comment",
                ],
                "a retrier",
            );
            let error_equals = self.error_equals(ro, &p, "E-RETRY");
            if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != a.len() {
                self.err(
                    &format!("{p}/ErrorEquals"),
                    "E-ALL-LAST",
                    "a retrier with 'States.ALL' must be the last one",
                );
            }
            let interval = self.get_uint(ro, &p, "IntervalSeconds", 1).unwrap_or(1);
            let max_attempts = self.get_uint(ro, &p, "MaxAttempts", 0).unwrap_or(3);
            let backoff = match self.get_number(ro, &p, "BackoffRate") {
                Some(b) if b < 1.0 => {
                    self.err_val(
                        &format!("{p}/BackoffRate"),
                        "E-RETRY",
                        "'BackoffRate' must be at least 1.0",
                    );
                    1.0
                }
                Some(b) => b,
                None => 2.0,
            };
            let max_delay = self
                .get_uint(ro, &p, "MaxDelaySeconds", 1)
                .map(|n| n as f64);
            let jitter = match self.get_str(ro, &p, "JitterStrategy").as_deref() {
                None | Some("NONE") => Jitter::None,
                Some("FULL") => Jitter::Full,
                Some(other) => {
                    self.err_val(
                        &format!("{p}/JitterStrategy"),
                        "E-RETRY",
                        format!("'JitterStrategy' must be FULL or NONE, got '{other}'"),
                    );
                    Jitter::None
                }
            };
            out.push(Retrier {
                error_equals,
                interval_seconds: interval as f64,
                max_attempts: max_attempts.min(u32::MAX as u64) as u32,
                backoff_rate: backoff,
                max_delay_seconds: max_delay,
                jitter,
                pointer: p,
            });
        }
        out
    }

    fn catchers(&mut self, o: &Map<String, Value>, ptr: &str) -> Vec<Catcher> {
        let Some(v) = o.get("Catch") else {
            return vec![];
        };
        let cp = format!("{ptr}/Catch");
        let Value::Array(a) = v else {
            self.err_val(&cp, "E-CATCH", "'Catch' must be a list of catchers");
            return vec![];
        };
        let mut out = Vec::new();
        for (i, c) in a.iter().enumerate() {
            let p = format!("{cp}/{i}");
            let Value::Object(co) = c else {
                self.err_val(&p, "E-CATCH", "a catcher must be a mapping");
                continue;
            };
            self.check_fields(
                co,
                &p,
                &["ErrorEquals", "Next", "ResultPath", "Comment"],
                "a catcher",
            );
            let error_equals = self.error_equals(co, &p, "E-CATCH");
            if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != a.len() {
                self.err(
                    &format!("{p}/ErrorEquals"),
                    "E-ALL-LAST",
                    "a catcher with 'States.ALL' must be the last one",
                );
            }
            let next = self.get_str(co, &p, "Next");
            if !co.contains_key("Next") {
                self.err(&p, "E-CATCH", "a catcher needs 'Next'");
            }
            let result_path = self.io_path(co, &p, "ResultPath", true);
            out.push(Catcher {
                error_equals,
                next: next.unwrap_or_default(),
                result_path,
                pointer: p,
            });
        }
        out
    }

    fn choice(&mut self, o: &Map<String, Value>, ptr: &str) -> ChoiceState {
        let default = self.get_str(o, ptr, "Default");
        let mut choices = Vec::new();
        match o.get("Choices") {
            Some(Value::Array(a)) if !a.is_empty() => {
                for (i, r) in a.iter().enumerate() {
                    if let Some(rule) = self.rule(r, &format!("{ptr}/Choices/{i}"), true) {
                        choices.push(rule);
                    }
                }
            }
            Some(_) => self.err_val(
                &format!("{ptr}/Choices"),
                "E-CHOICE-RULE",
                "'Choices' must be a non-empty list of rules",
            ),
            None => self.err(ptr, "E-CHOICE-RULE", "a Choice state needs 'Choices'"),
        }
        ChoiceState { choices, default }
    }

    fn rule(&mut self, v: &Value, ptr: &str, top: bool) -> Opt<ChoiceRule> {
        let Value::Object(o) = v else {
            self.err_val(ptr, "E-CHOICE-RULE", "a choice rule must be a mapping");
            return None;
        };
        let next = if top {
            let n = self.get_str(o, ptr, "Next");
            if !o.contains_key("Next") {
                self.err(ptr, "E-CHOICE-RULE", "a top-level choice rule needs 'Next'");
            }
            n
        } else {
            if o.contains_key("Next") {
                self.err(
                    &format!("{ptr}/Next"),
                    "E-CHOICE-RULE",
                    "'Next' is only allowed on top-level choice rules",
                );
            }
            None
        };
        let mut ops: Vec<&String> = Vec::new();
        let mut unknown = Vec::new();
        for k in o.keys() {
            match k.as_str() {
                "Next" | "Comment" | "Variable" => {}
                "And" | "Or" | "Not" => ops.push(k),
                _ => {
                    let base = k.strip_suffix("Path").unwrap_or(k);
                    match Op::ALL
                        .iter()
                        .find(|(n, _)| *n == k || (*n == base && k.ends_with("Path")))
                    {
                        Some((_, op))
                            if k.ends_with("Path")
                                && k != "StringMatches"
                                && !op.has_path_variant() =>
                        {
                            unknown.push(k)
                        }
                        Some(_) => ops.push(k),
                        None => unknown.push(k),
                    }
                }
            }
        }
        for k in unknown {
            let mut names: Vec<String> = Op::ALL.iter().map(|(n, _)| n.to_string()).collect();
            names.extend(
                Op::ALL
                    .iter()
                    .filter(|(_, o)| o.has_path_variant())
                    .map(|(n, _)| format!("{n}Path")),
            );
            names.extend(["And", "Or", "Not", "Variable", "Next", "Comment"].map(String::from));
            let msg = match suggest(k, names.iter().map(String::as_str)) {
                Some(s) => format!("unknown choice operator '{k}' (did you mean '{s}'?)"),
                None => format!("unknown choice operator '{k}'"),
            };
            self.err(&format!("{ptr}/{}", escape_token(k)), "E-CHOICE-OP", msg);
        }
        if ops.len() != 1 {
            let msg = if ops.is_empty() {
                "a choice rule needs exactly one comparison operator or And/Or/Not".to_string()
            } else {
                format!(
                    "a choice rule must have exactly one comparison, found {}",
                    ops.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            self.err(ptr, "E-CHOICE-RULE", msg);
            return None;
        }
        let opk = ops[0].clone();
        let kp = format!("{ptr}/{opk}");
        let kind = match opk.as_str() {
            "And" | "Or" => {
                if o.contains_key("Variable") {
                    self.err(
                        &format!("{ptr}/Variable"),
                        "E-CHOICE-RULE",
                        format!("'Variable' is not allowed with '{opk}'"),
                    );
                }
                let Some(Value::Array(a)) = o
                    .get(&opk)
                    .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                else {
                    self.err_val(
                        &kp,
                        "E-CHOICE-RULE",
                        format!("'{opk}' must be a non-empty list of rules"),
                    );
                    return None;
                };
                let rs: Vec<ChoiceRule> = a
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| self.rule(r, &format!("{kp}/{i}"), false))
                    .collect();
                if opk == "And" {
                    RuleKind::And(rs)
                } else {
                    RuleKind::Or(rs)
                }
            }
            "Not" => {
                if o.contains_key("Variable") {
                    self.err(
                        &format!("{ptr}/Variable"),
                        "E-CHOICE-RULE",
                        "'Variable' is not allowed with 'Not'",
                    );
                }
                RuleKind::Not(Box::new(self.rule(&o[&opk], &kp, false)?))
            }
            _ => {
                let is_path = opk.ends_with("Path") && !Op::ALL.iter().any(|(n, _)| *n == opk);
                let base = if is_path {
                    &opk[..opk.len() - 4]
                } else {
                    opk.as_str()
                };
                let op = Op::ALL.iter().find(|(n, _)| *n == base).map(|(_, o)| *o)?;
                let variable = match self.get_path(o, ptr, "Variable", true, false) {
                    Some(Some(p)) => p,
                    Some(None) => return None,
                    None => {
                        if !o.contains_key("Variable") {
                            self.err(
                                ptr,
                                "E-CHOICE-RULE",
                                format!("a '{opk}' rule needs 'Variable'"),
                            );
                        }
                        return None;
                    }
                };
                let val = &o[&opk];
                let operand = if is_path {
                    match val {
                        Value::String(s) => match Path::parse_reference(s) {
                            Ok(p) => Operand::Path(p),
                            Err(e) => {
                                self.err_val(&kp, "E-PATH-SYNTAX", format!("{opk}: {e}"));
                                return None;
                            }
                        },
                        other => {
                            self.err_val(
                                &kp,
                                "E-FIELD-TYPE",
                                format!("'{opk}' must be a path string, got {other}"),
                            );
                            return None;
                        }
                    }
                } else {
                    let ok = match op {
                        Op::StringEquals
                        | Op::StringLessThan
                        | Op::StringGreaterThan
                        | Op::StringLessThanEquals
                        | Op::StringGreaterThanEquals
                        | Op::StringMatches => val.is_string(),
                        Op::NumericEquals
                        | Op::NumericLessThan
                        | Op::NumericGreaterThan
                        | Op::NumericLessThanEquals
                        | Op::NumericGreaterThanEquals => val.is_number(),
                        Op::TimestampEquals
                        | Op::TimestampLessThan
                        | Op::TimestampGreaterThan
                        | Op::TimestampLessThanEquals
                        | Op::TimestampGreaterThanEquals => val
                            .as_str()
                            .is_some_and(|s| crate::timestamp::Timestamp::parse(s).is_some()),
                        _ => val.is_boolean(),
                    };
                    if !ok {
                        let want = match op {
                            Op::StringEquals
                            | Op::StringLessThan
                            | Op::StringGreaterThan
                            | Op::StringLessThanEquals
                            | Op::StringGreaterThanEquals
                            | Op::StringMatches => "a string",
                            Op::NumericEquals
                            | Op::NumericLessThan
                            | Op::NumericGreaterThan
                            | Op::NumericLessThanEquals
                            | Op::NumericGreaterThanEquals => "a number",
                            Op::TimestampEquals
                            | Op::TimestampLessThan
                            | Op::TimestampGreaterThan
                            | Op::TimestampLessThanEquals
                            | Op::TimestampGreaterThanEquals => "an RFC 3339 timestamp string",
                            _ => "a boolean",
                        };
                        self.err_val(
                            &kp,
                            "E-FIELD-TYPE",
                            format!("'{opk}' must be {want}, got {val}"),
                        );
                        return None;
                    }
                    Operand::Value(val.clone())
                };
                RuleKind::Compare {
                    variable,
                    op,
                    operand,
                }
            }
        };
        Some(ChoiceRule {
            kind,
            next,
            pointer: ptr.to_string(),
        })
    }

    fn wait(&mut self, o: &Map<String, Value>, ptr: &str) -> Opt<WaitState> {
        let present: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|k| o.contains_key(*k))
            .collect();
        if present.len() != 1 {
            self.err(
                ptr,
                "E-WAIT",
                "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath",
            );
            return None;
        }
        let wait = match present[0] {
            "Seconds" => WaitSpec::Seconds(self.get_uint(o, ptr, "Seconds", 0)?),
            "Timestamp" => {
                let t = self.get_str(o, ptr, "Timestamp")?;
                if crate::timestamp::Timestamp::parse(&t).is_none() {
                    self.err_val(
                        &format!("{ptr}/Timestamp"),
                        "E-WAIT",
                        format!("'Timestamp' must be an RFC 3339 timestamp, got '{t}'"),
                    );
                    return None;
                }
                WaitSpec::Timestamp(t)
            }
            "SecondsPath" => {
                WaitSpec::SecondsPath(self.get_path(o, ptr, "SecondsPath", true, false)??)
            }
            _ => WaitSpec::TimestampPath(self.get_path(o, ptr, "TimestampPath", true, false)??),
        };
        Some(WaitState { wait })
    }

    fn string_spec(&mut self, o: &Map<String, Value>, ptr: &str, key: &str) -> Opt<StringSpec> {
        let pkey = format!("{key}Path");
        if o.contains_key(key) && o.contains_key(&pkey) {
            self.err(
                &format!("{ptr}/{pkey}"),
                "E-FIELD-TYPE",
                format!("'{key}' and '{pkey}' are mutually exclusive"),
            );
        }
        if let Some(s) = self.get_str(o, ptr, key) {
            return Some(StringSpec::Value(s));
        }
        let s = self.get_str(o, ptr, &pkey)?;
        let kp = format!("{ptr}/{pkey}");
        if intrinsics::is_intrinsic(&s) {
            match intrinsics::parse(&s) {
                Ok(e) => Some(StringSpec::Intrinsic(e)),
                Err(e) => {
                    self.err_val(&kp, "E-INTRINSIC-SYNTAX", format!("{pkey}: {e}"));
                    None
                }
            }
        } else {
            match Path::parse_reference(&s) {
                Ok(p) => Some(StringSpec::Path(p)),
                Err(e) => {
                    self.err_val(&kp, "E-PATH-SYNTAX", format!("{pkey}: {e}"));
                    None
                }
            }
        }
    }

    fn fail(&mut self, o: &Map<String, Value>, ptr: &str) -> FailState {
        FailState {
            error: self.string_spec(o, ptr, "Error"),
            cause: self.string_spec(o, ptr, "Cause"),
        }
    }

    fn parallel(&mut self, o: &Map<String, Value>, ptr: &str) -> ParallelState {
        let mut branches = Vec::new();
        match o.get("Branches") {
            Some(Value::Array(a)) if !a.is_empty() => {
                for (i, b) in a.iter().enumerate() {
                    branches.push(Arc::new(self.machine(
                        b,
                        &format!("{ptr}/Branches/{i}"),
                        MachineKind::Branch,
                    )));
                }
            }
            Some(_) => self.err_val(
                &format!("{ptr}/Branches"),
                "E-PARALLEL",
                "'Branches' must be a non-empty list of state machines",
            ),
            None => self.err(ptr, "E-PARALLEL", "a Parallel state needs 'Branches'"),
        }
        ParallelState {
            branches,
            parameters: self.template(o, ptr, "Parameters"),
            result_selector: self.template(o, ptr, "ResultSelector"),
            result_path: self.io_path(o, ptr, "ResultPath", true),
            retry: self.retriers(o, ptr),
            catch: self.catchers(o, ptr),
        }
    }

    fn map(&mut self, o: &Map<String, Value>, ptr: &str) -> MapState {
        let processor_key = match (o.contains_key("ItemProcessor"), o.contains_key("Iterator")) {
            (true, true) => {
                self.err(
                    &format!("{ptr}/Iterator"),
                    "E-MAP",
                    "'ItemProcessor' and the legacy 'Iterator' are mutually exclusive",
                );
                "ItemProcessor"
            }
            (true, false) => "ItemProcessor",
            (false, true) => "Iterator",
            (false, false) => {
                self.err(
                    ptr,
                    "E-MAP",
                    "a Map state needs 'ItemProcessor' (or the legacy 'Iterator')",
                );
                "ItemProcessor"
            }
        };
        let processor = match o.get(processor_key) {
            Some(v) => self.machine(v, &format!("{ptr}/{processor_key}"), MachineKind::Processor),
            None => StateMachine::new(String::new(), vec![], String::new()),
        };
        let mode = o
            .get(processor_key)
            .and_then(|p| p.pointer("/ProcessorConfig/Mode"))
            .and_then(Value::as_str)
            .unwrap_or("INLINE")
            .to_string();
        if o.contains_key("ItemSelector") && o.contains_key("Parameters") {
            self.err(
                &format!("{ptr}/Parameters"),
                "E-MAP",
                "'ItemSelector' and the legacy 'Parameters' are mutually exclusive",
            );
        }
        let item_selector = if o.contains_key("ItemSelector") {
            self.template(o, ptr, "ItemSelector")
        } else {
            self.template(o, ptr, "Parameters")
        };
        let items_path = match self.get_path(o, ptr, "ItemsPath", true, false) {
            Some(Some(p)) => p,
            _ => Path::parse("$").unwrap(),
        };
        let number_or_path = |s: &mut Self, key: &str, percent: bool| -> Opt<NumberSpec> {
            let pkey = format!("{key}Path");
            if o.contains_key(key) && o.contains_key(&pkey) {
                s.err(
                    &format!("{ptr}/{pkey}"),
                    "E-MAP",
                    format!("'{key}' and '{pkey}' are mutually exclusive"),
                );
            }
            if o.contains_key(key) {
                let n = if percent {
                    let n = s.get_number(o, ptr, key)?;
                    if !(0.0..=100.0).contains(&n) {
                        s.err_val(
                            &format!("{ptr}/{key}"),
                            "E-MAP",
                            format!("'{key}' must be between 0 and 100"),
                        );
                    }
                    n
                } else {
                    s.get_uint(o, ptr, key, 0)? as f64
                };
                return Some(NumberSpec::Value(n));
            }
            s.get_path(o, ptr, &pkey, true, false)
                .flatten()
                .map(NumberSpec::Path)
        };
        let max_concurrency = number_or_path(self, "MaxConcurrency", false);
        let tolerated_failure_percentage = number_or_path(self, "ToleratedFailurePercentage", true);
        let tolerated_failure_count = number_or_path(self, "ToleratedFailureCount", false);
        MapState {
            processor: Arc::new(processor),
            mode,
            items_path,
            item_selector,
            max_concurrency,
            tolerated_failure_percentage,
            tolerated_failure_count,
            result_selector: self.template(o, ptr, "ResultSelector"),
            result_path: self.io_path(o, ptr, "ResultPath", true),
            retry: self.retriers(o, ptr),
            catch: self.catchers(o, ptr),
        }
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
        other if meta.parameters.is_empty() && params.is_empty() => return Ok(other),
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
