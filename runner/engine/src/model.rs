//! The parsed state machine. Built by [`crate::parse`]; all paths, templates and intrinsic
//! calls are compiled at parse time so execution never re-parses them.

use crate::dataflow::Template;
use crate::path::Path;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A state machine: the top level, a Parallel branch or a Map processor.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub comment: Option<String>,
    pub start_at: String,
    /// States in source order.
    pub states: Vec<State>,
    /// Top level only.
    pub timeout_seconds: Option<u64>,
    pub version: Option<String>,
    pub query_language: Option<String>,
    /// JSON pointer of this machine in the source (`""` for the top level).
    pub pointer: String,
    index: HashMap<String, usize>,
}

impl StateMachine {
    pub(crate) fn new(start_at: String, states: Vec<State>, pointer: String) -> Self {
        let index = states
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        StateMachine {
            comment: None,
            start_at,
            states,
            timeout_seconds: None,
            version: None,
            query_language: None,
            pointer,
            index,
        }
    }
    /// Index of a state by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
    pub fn state(&self, name: &str) -> Option<&State> {
        self.index_of(name).map(|i| &self.states[i])
    }
}

/// One state with the fields common to all types.
#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    /// JSON pointer of the state object.
    pub pointer: String,
    pub comment: Option<String>,
    /// `None` = `InputPath: null` (input becomes `{}`); default `$`.
    pub input_path: Option<Path>,
    /// `None` = `OutputPath: null` (output becomes `{}`); default `$`.
    pub output_path: Option<Path>,
    pub next: Option<String>,
    pub end: bool,
    pub kind: StateKind,
    /// `Assign`: workflow variables set when the state succeeds (for a Choice state, when
    /// its Default is taken; a matching rule's own `Assign` applies otherwise).
    pub assign: Option<Assign>,
    /// The state's own `QueryLanguage`, or the top level's.
    pub query_language: QueryLanguage,
    /// JSONata states: `Arguments` (Task), with `{% %}` strings evaluated at run time.
    pub arguments: Option<Value>,
    /// JSONata states: `Output` (Pass, Task); absent = the state's default output.
    pub output: Option<Value>,
}

/// `QueryLanguage`: JSONPath (the default) or JSONata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryLanguage {
    #[default]
    JsonPath,
    Jsonata,
}

/// A compiled `Assign` block: variable name → value template (`name.$` keys take a path or
/// an intrinsic function, evaluated against the state's result).
#[derive(Debug, Clone)]
pub struct Assign {
    pub template: Template,
    /// JSONata states: the `Assign` object as written (`{% %}` values are evaluated).
    pub jsonata: Option<Value>,
    /// Names assigned, in source order (for validation and display).
    pub names: Vec<String>,
    /// JSON pointer of the `Assign` object.
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub enum StateKind {
    Pass(PassState),
    Task(Box<TaskState>),
    Choice(ChoiceState),
    Wait(WaitState),
    Succeed,
    Fail(FailState),
    Parallel(Box<ParallelState>),
    Map(Box<MapState>),
}

/// The result processing and error handling that Task, Parallel and Map share.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub result_selector: Option<&'a Template>,
    pub result_path: Option<&'a Path>,
    pub retry: &'a [Retrier],
    pub catch: &'a [Catcher],
}

impl StateKind {
    /// ResultSelector, ResultPath, Retry and Catch of a Task, Parallel or Map state.
    pub fn outcome(&self) -> Option<Outcome<'_>> {
        let (result_selector, result_path, retry, catch) = match self {
            StateKind::Task(t) => (&t.result_selector, &t.result_path, &t.retry, &t.catch),
            StateKind::Parallel(p) => (&p.result_selector, &p.result_path, &p.retry, &p.catch),
            StateKind::Map(m) => (&m.result_selector, &m.result_path, &m.retry, &m.catch),
            _ => return None,
        };
        Some(Outcome {
            result_selector: result_selector.as_ref(),
            result_path: result_path.as_ref(),
            retry,
            catch,
        })
    }
    /// The state machine child `i` of a Parallel (branch `i`) or Map (the processor) runs.
    pub fn child_machine(&self, i: usize) -> Option<&Arc<StateMachine>> {
        match self {
            StateKind::Parallel(p) => p.branches.get(i),
            StateKind::Map(m) => Some(&m.processor),
            _ => None,
        }
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            StateKind::Pass(_) => "Pass",
            StateKind::Task(_) => "Task",
            StateKind::Choice(_) => "Choice",
            StateKind::Wait(_) => "Wait",
            StateKind::Succeed => "Succeed",
            StateKind::Fail(_) => "Fail",
            StateKind::Parallel(_) => "Parallel",
            StateKind::Map(_) => "Map",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PassState {
    pub result: Option<Value>,
    pub parameters: Option<Template>,
    /// `None` = `ResultPath: null`.
    pub result_path: Option<Path>,
}

/// What a Task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Resource {
    /// `plugin:<name>`, looked up in the plugin path.
    Plugin(String),
    /// A path ending in `.wasm`, relative to the runbook file (kept verbatim).
    Wasm(String),
    /// Anything else (e.g. an AWS ARN); the executor decides whether it can run it.
    Other(String),
}

/// The suffix of a Task resource that waits for a task token (Step Functions' callback
/// pattern, `arn:aws:states:::<service>:<api>.waitForTaskToken`): `plugin:<name>.waitForTaskToken`.
pub const WAIT_FOR_TASK_TOKEN: &str = ".waitForTaskToken";

impl Resource {
    /// A Task's `Resource` and whether it waits for a task token (the suffix is not part
    /// of the plugin name or path).
    pub fn parse_task(s: &str) -> (Resource, bool) {
        match s.strip_suffix(WAIT_FOR_TASK_TOKEN) {
            Some(base) if base.starts_with("plugin:") || base.ends_with(".wasm") => {
                (Resource::parse(base), true)
            }
            Some(_) => (Resource::parse(s), true),
            None => (Resource::parse(s), false),
        }
    }
    pub fn parse(s: &str) -> Resource {
        if let Some(n) = s.strip_prefix("plugin:") {
            Resource::Plugin(n.to_string())
        } else if s.ends_with(".wasm") {
            Resource::Wasm(s.to_string())
        } else {
            Resource::Other(s.to_string())
        }
    }
    /// The string as written in the runbook.
    pub fn as_written(&self) -> String {
        match self {
            Resource::Plugin(n) => format!("plugin:{n}"),
            Resource::Wasm(p) | Resource::Other(p) => p.clone(),
        }
    }
}

/// A number given literally or read from the input with a reference path.
#[derive(Debug, Clone)]
pub enum NumberSpec {
    Value(f64),
    Path(Path),
    /// JSONata states: a `{% %}` expression (its body), evaluated when the state runs.
    Jsonata(String),
}

#[derive(Debug, Clone)]
pub struct TaskState {
    pub resource: Resource,
    pub sha256: Option<String>,
    pub capabilities: Vec<String>,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: Option<Path>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub timeout: Option<NumberSpec>,
    pub heartbeat: Option<NumberSpec>,
    /// `.waitForTaskToken`: after its plugin returns, the Task waits until the task
    /// token (`$$.Task.Token`) is answered (`runbook task success|failure`).
    pub wait_for_task_token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Jitter {
    Full,
    None,
}

#[derive(Debug, Clone)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter: Jitter,
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    /// Default `$`; `None` = `ResultPath: null`.
    pub result_path: Option<Path>,
    /// Evaluated against the error output.
    pub assign: Option<Assign>,
    /// JSONata catchers: the state's output when this catcher is taken (default
    /// `$states.errorOutput`).
    pub output: Option<Value>,
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub struct ChoiceState {
    pub choices: Vec<ChoiceRule>,
    pub default: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ChoiceRule {
    pub kind: RuleKind,
    /// Required on top-level rules, absent on nested ones.
    pub next: Option<String>,
    /// Top-level rules only: evaluated against the Choice state's effective input.
    pub assign: Option<Assign>,
    /// JSONata rules: the state's output when this rule matches.
    pub output: Option<Value>,
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    And(Vec<ChoiceRule>),
    Or(Vec<ChoiceRule>),
    Not(Box<ChoiceRule>),
    Compare {
        variable: Path,
        op: Op,
        operand: Operand,
    },
    /// JSONata `Condition`: the expression body (between `{%` and `%}`), a boolean.
    Condition(String),
}

/// The right-hand side of a comparison: a literal or (for `*Path` operators) a path.
#[derive(Debug, Clone)]
pub enum Operand {
    Value(Value),
    Path(Path),
}

/// Comparison operators (the `*Path` variants are `Operand::Path` of the base operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

impl Op {
    pub const ALL: [(&'static str, Op); 23] = [
        ("StringEquals", Op::StringEquals),
        ("StringLessThan", Op::StringLessThan),
        ("StringGreaterThan", Op::StringGreaterThan),
        ("StringLessThanEquals", Op::StringLessThanEquals),
        ("StringGreaterThanEquals", Op::StringGreaterThanEquals),
        ("StringMatches", Op::StringMatches),
        ("NumericEquals", Op::NumericEquals),
        ("NumericLessThan", Op::NumericLessThan),
        ("NumericGreaterThan", Op::NumericGreaterThan),
        ("NumericLessThanEquals", Op::NumericLessThanEquals),
        ("NumericGreaterThanEquals", Op::NumericGreaterThanEquals),
        ("BooleanEquals", Op::BooleanEquals),
        ("TimestampEquals", Op::TimestampEquals),
        ("TimestampLessThan", Op::TimestampLessThan),
        ("TimestampGreaterThan", Op::TimestampGreaterThan),
        ("TimestampLessThanEquals", Op::TimestampLessThanEquals),
        ("TimestampGreaterThanEquals", Op::TimestampGreaterThanEquals),
        ("IsNull", Op::IsNull),
        ("IsPresent", Op::IsPresent),
        ("IsNumeric", Op::IsNumeric),
        ("IsString", Op::IsString),
        ("IsBoolean", Op::IsBoolean),
        ("IsTimestamp", Op::IsTimestamp),
    ];
    pub fn name(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(_, o)| *o == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
    /// Operators that take a `*Path` variant (all but the type tests, and StringMatches).
    pub fn has_path_variant(self) -> bool {
        !matches!(
            self,
            Op::StringMatches
                | Op::IsNull
                | Op::IsPresent
                | Op::IsNumeric
                | Op::IsString
                | Op::IsBoolean
                | Op::IsTimestamp
        )
    }
}

#[derive(Debug, Clone)]
pub enum WaitSpec {
    Seconds(u64),
    Timestamp(String),
    SecondsPath(Path),
    TimestampPath(Path),
    /// JSONata states: `Seconds` as a `{% %}` expression (its body).
    SecondsJsonata(String),
    /// JSONata states: `Timestamp` as a `{% %}` expression (its body).
    TimestampJsonata(String),
}

#[derive(Debug, Clone)]
pub struct WaitState {
    pub wait: WaitSpec,
}

#[derive(Debug, Clone)]
pub enum StringSpec {
    Value(String),
    Path(Path),
    Intrinsic(crate::intrinsics::Expr),
    /// JSONata states: a `{% %}` expression (its body) that must give a string.
    Jsonata(String),
}

#[derive(Debug, Clone)]
pub struct FailState {
    pub error: Option<StringSpec>,
    pub cause: Option<StringSpec>,
}

#[derive(Debug, Clone)]
pub struct ParallelState {
    pub branches: Vec<Arc<StateMachine>>,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: Option<Path>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Debug, Clone)]
pub struct MapState {
    pub processor: Arc<StateMachine>,
    /// `INLINE` or `DISTRIBUTED` (run inline here).
    pub mode: String,
    /// Default `$`.
    pub items_path: Path,
    /// ItemSelector, or the legacy Parameters.
    pub item_selector: Option<Template>,
    /// JSONata states: `Items` as written (an array, or a `{% %}` expression giving one);
    /// absent = the state input.
    pub items: Option<Value>,
    /// JSONata states: `ItemSelector` as written (`{% %}` values are evaluated per item).
    pub jsonata_item_selector: Option<Value>,
    pub max_concurrency: Option<NumberSpec>,
    pub tolerated_failure_percentage: Option<NumberSpec>,
    pub tolerated_failure_count: Option<NumberSpec>,
    pub result_selector: Option<Template>,
    pub result_path: Option<Path>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

/// Declared type of a runbook parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub ty: ParamType,
    pub default: Option<Value>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Local,
    Aws,
}

/// The optional top-level `Runbook:` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunbookMeta {
    pub name: Option<String>,
    pub description: Option<String>,
    /// In declaration order.
    pub parameters: Vec<(String, ParamSpec)>,
    pub provider: Option<Provider>,
    /// The environment the runbook acts on: a name, or a path into the execution input
    /// (`$.EnvironmentSuffix`). Executions that declare one are exclusive per
    /// `provider/environment`.
    pub environment: Option<String>,
}
