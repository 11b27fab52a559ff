//! Input/output processing: InputPath, Parameters/ItemSelector/ResultSelector payload
//! templates, ResultPath and OutputPath, with Step Functions' error names.

use crate::error::{AslError, names};
use crate::intrinsics::{self, Expr};
use crate::path::{self, Path};
use crate::rng::Rng;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::OnceCell;

/// A compiled payload template (Parameters, ItemSelector, ResultSelector).
#[derive(Debug, Clone)]
pub enum Template {
    /// No `.$` keys below: copied as is.
    Lit(Value),
    /// `"key.$": "$.path"` (`field` is the original key, for error messages).
    Path {
        field: String,
        path: Path,
    },
    /// `"key.$": "States.Fn(...)"`.
    Intrinsic {
        field: String,
        expr: Expr,
    },
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
}

impl Template {
    /// Compile a template. Errors carry the JSON-pointer suffix of the offending member.
    pub fn compile(v: &Value) -> Result<Template, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let t = compile(v, "", &mut errs);
        if errs.is_empty() { Ok(t) } else { Err(errs) }
    }
    /// Call `f(field, path)` for every path in the template, including intrinsic arguments.
    pub fn visit_paths(&self, f: &mut dyn FnMut(&str, &Path)) {
        fn expr(field: &str, e: &Expr, f: &mut dyn FnMut(&str, &Path)) {
            match e {
                Expr::Path(p) => f(field, p),
                Expr::Call { args, .. } => args.iter().for_each(|a| expr(field, a, f)),
                _ => {}
            }
        }
        match self {
            Template::Lit(_) => {}
            Template::Path { field, path } => f(field, path),
            Template::Intrinsic { field, expr: e } => expr(field, e, f),
            Template::Object(m) => m.iter().for_each(|(_, t)| t.visit_paths(f)),
            Template::Array(a) => a.iter().for_each(|t| t.visit_paths(f)),
        }
    }
    /// Whether evaluating needs the context object (so callers can skip building it).
    pub fn uses_context(&self) -> bool {
        match self {
            Template::Lit(_) => false,
            Template::Path { path, .. } => path.is_context(),
            Template::Intrinsic { expr, .. } => expr_uses_context(expr),
            Template::Object(m) => m.iter().any(|(_, t)| t.uses_context()),
            Template::Array(a) => a.iter().any(Template::uses_context),
        }
    }
}

fn expr_uses_context(e: &Expr) -> bool {
    match e {
        Expr::Path(p) => p.is_context(),
        Expr::Call { args, .. } => args.iter().any(expr_uses_context),
        _ => false,
    }
}

fn compile(v: &Value, ptr: &str, errs: &mut Vec<(String, String)>) -> Template {
    match v {
        Value::Object(m) => {
            let mut out = Vec::with_capacity(m.len());
            let mut dynamic = false;
            for (k, val) in m {
                let child = format!("{ptr}/{}", crate::yaml::escape_token(k));
                if let Some(name) = k.strip_suffix(".$") {
                    dynamic = true;
                    let Value::String(s) = val else {
                        errs.push((child, format!("the value of '{k}' must be a string (a path or an intrinsic function)")));
                        continue;
                    };
                    let t = if intrinsics::is_intrinsic(s) {
                        match intrinsics::parse(s) {
                            Ok(expr) => Template::Intrinsic {
                                field: k.clone(),
                                expr,
                            },
                            Err(e) => {
                                errs.push((
                                    child,
                                    format!("invalid intrinsic function in '{k}': {e}"),
                                ));
                                continue;
                            }
                        }
                    } else {
                        match Path::parse(s) {
                            Ok(path) => Template::Path {
                                field: k.clone(),
                                path,
                            },
                            Err(e) => {
                                errs.push((child, format!("'{k}': {e}")));
                                continue;
                            }
                        }
                    };
                    out.push((name.to_string(), t));
                } else {
                    let t = compile(val, &child, errs);
                    dynamic |= !matches!(t, Template::Lit(_));
                    out.push((k.clone(), t));
                }
            }
            if dynamic {
                Template::Object(out)
            } else {
                Template::Lit(v.clone())
            }
        }
        Value::Array(a) => {
            let items: Vec<Template> = a
                .iter()
                .enumerate()
                .map(|(i, x)| compile(x, &format!("{ptr}/{i}"), errs))
                .collect();
            if items.iter().all(|t| matches!(t, Template::Lit(_))) {
                Template::Lit(v.clone())
            } else {
                Template::Array(items)
            }
        }
        other => Template::Lit(other.clone()),
    }
}

/// The context object (`$$`), built only when a path needs it. `$$.Execution.Input` is
/// resolved against the execution input directly, so building the rest stays cheap even
/// when the input is large (e.g. once per Map item).
pub struct Ctx<'a> {
    cell: OnceCell<Value>,
    build: Option<&'a dyn Fn() -> Value>,
    exec_input: Option<&'a Value>,
    /// Workflow variables visible to the state: its own scope first, then enclosing ones.
    vars: &'a [&'a Map<String, Value>],
}

impl<'a> Ctx<'a> {
    /// A context object given as a value (tests, tools).
    pub fn from_value(v: Value) -> Ctx<'static> {
        let cell = OnceCell::new();
        let _ = cell.set(v);
        Ctx {
            cell,
            build: None,
            exec_input: None,
            vars: &[],
        }
    }
    /// A context object built on first use; `build` leaves `Execution.Input` out and
    /// `exec_input` supplies it.
    pub fn lazy(build: &'a dyn Fn() -> Value, exec_input: &'a Value) -> Ctx<'a> {
        Ctx {
            cell: OnceCell::new(),
            build: Some(build),
            exec_input: Some(exec_input),
            vars: &[],
        }
    }
    /// The same context with workflow variables (innermost scope first).
    pub fn with_vars(self, vars: &'a [&'a Map<String, Value>]) -> Ctx<'a> {
        Ctx { vars, ..self }
    }
    /// A workflow variable's value (`$name`), looked up from the innermost scope out.
    pub fn var(&self, name: &str) -> Option<&'a Value> {
        self.vars.iter().find_map(|m| m.get(name))
    }
    /// The visible workflow variables, innermost scope first.
    pub fn vars(&self) -> &'a [&'a Map<String, Value>] {
        self.vars
    }
    /// The whole context object.
    pub fn get(&self) -> &Value {
        self.cell.get_or_init(|| {
            let mut v = self.build.map(|b| b()).unwrap_or(Value::Null);
            if let (Some(i), Some(Value::Object(e))) = (self.exec_input, v.get_mut("Execution")) {
                e.insert("Input".into(), i.clone());
            }
            v
        })
    }
    /// Select a `$$` path.
    pub fn select<'s>(&'s self, path: &Path) -> Option<Cow<'s, Value>> {
        use crate::path::Seg;
        if let (Some(input), Some(segs)) = (self.exec_input, path.segments())
            && segs.len() >= 2
            && segs[0] == Seg::Field("Execution".into())
            && segs[1] == Seg::Field("Input".into())
        {
            let mut v = input;
            for s in &segs[2..] {
                v = match (s, v) {
                    (Seg::Field(f), Value::Object(m)) => m.get(f)?,
                    (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
                    _ => return None,
                };
            }
            return Some(Cow::Borrowed(v));
        }
        path.select_ref(self.get())
    }
}

/// Select `path` from the input, the context object (`$$` paths) or a workflow variable
/// (`$name` paths).
pub fn select(path: &Path, input: &Value, ctx: &Ctx) -> Option<Value> {
    if let Some(name) = path.variable() {
        ctx.var(name).and_then(|v| path.select(v))
    } else if path.is_context() {
        ctx.select(path).map(Cow::into_owned)
    } else {
        path.select(input)
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 1024 {
        let mut end = 1024;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Step Functions' States.Runtime cause for an InputPath, OutputPath or ItemsPath that
/// selects nothing: `Invalid path '$.a.b' : No results for path: $['a']['b']`.
pub fn no_results(p: &Path) -> AslError {
    AslError::runtime(format!(
        "Invalid path '{}' : No results for path: {}",
        p.as_str(),
        p.normalized()
    ))
}

/// InputPath: `None` (null) gives `{}`; a path to nothing is a States.Runtime error.
pub fn apply_input_path(path: Option<&Path>, input: &Value, ctx: &Ctx) -> Result<Value, AslError> {
    match path {
        None => Ok(Value::Object(Map::new())),
        Some(p) if p.is_root() => Ok(input.clone()),
        Some(p) => select(p, input, ctx).ok_or_else(|| no_results(p)),
    }
}

/// OutputPath: same rules as InputPath.
pub fn apply_output_path(path: Option<&Path>, output: Value, ctx: &Ctx) -> Result<Value, AslError> {
    match path {
        None => Ok(Value::Object(Map::new())),
        Some(p) if p.is_root() => Ok(output),
        Some(p) => select(p, &output, ctx).ok_or_else(|| no_results(p)),
    }
}

/// Evaluate a Parameters / ItemSelector / ResultSelector template. A path to nothing is
/// States.Runtime, with Step Functions' cause (`The JSONPath '$.a' specified for the field
/// 'a.$' could not be found in the input '{..}'`); a failing intrinsic is
/// States.IntrinsicFailure.
pub fn apply_parameters(
    t: &Template,
    input: &Value,
    ctx: &Ctx,
    rng: &mut Rng,
) -> Result<Value, AslError> {
    match t {
        Template::Lit(v) => Ok(v.clone()),
        Template::Path { field, path } => select(path, input, ctx).ok_or_else(|| {
            let place = if let Some(v) = path.variable() {
                match ctx.var(v) {
                    Some(_) => format!("variable '${v}'"),
                    None => format!("variables (no variable '${v}' is assigned)"),
                }
            } else if path.is_context() {
                "context object".to_string()
            } else {
                format!("input '{}'", short(input))
            };
            AslError::runtime(format!(
                "The JSONPath '{}' specified for the field '{}' could not be found in the {}",
                path.as_str(),
                field,
                place
            ))
        }),
        Template::Intrinsic { expr, .. } => {
            let mut resolve = |p: &Path| select(p, input, ctx);
            // Step Functions' cause: `The function 'States.X(..)' had the following error:
            // <why>`, where a missing path argument's <why> ends with the input.
            intrinsics::eval(expr, &mut resolve, rng).map_err(|mut e| {
                if e.error == names::RUNTIME {
                    let mut why = e.cause.take().unwrap_or_default();
                    if why.starts_with(intrinsics::MISSING_ARGUMENT) {
                        why = format!("{why} '{}'", short(input));
                    }
                    e.cause = Some(format!(
                        "The function '{expr}' had the following error: {why}"
                    ));
                }
                e
            })
        }
        Template::Object(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, t) in m {
                out.insert(k.clone(), apply_parameters(t, input, ctx, rng)?);
            }
            Ok(Value::Object(out))
        }
        Template::Array(a) => a
            .iter()
            .map(|t| apply_parameters(t, input, ctx, rng))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
    }
}

/// ResultSelector: a template applied to the task result.
pub fn apply_result_selector(
    t: &Template,
    result: &Value,
    ctx: &Ctx,
    rng: &mut Rng,
) -> Result<Value, AslError> {
    apply_parameters(t, result, ctx, rng)
}

/// ResultPath: `None` (null) keeps the input, `$` replaces it, `$.a.b` writes into a copy of
/// the input creating intermediate objects. A non-object in the way is
/// States.ResultPathMatchFailure.
pub fn apply_result_path(
    path: Option<&Path>,
    input: Value,
    result: Value,
) -> Result<Value, AslError> {
    let Some(p) = path else { return Ok(input) };
    let segs = p.segments().expect("ResultPath is a reference path");
    if segs.is_empty() {
        return Ok(result);
    }
    let mut out = input;
    let before = if matches!(out, Value::Object(_)) {
        None
    } else {
        Some(short(&out))
    };
    match path::set(&mut out, segs, result) {
        Ok(()) => Ok(out),
        Err(why) => Err(AslError::new(
            names::RESULT_PATH_MATCH_FAILURE,
            format!(
                "Unable to apply ResultPath '{}' to input '{}': {}",
                p.as_str(),
                before.unwrap_or_else(|| short(&out)),
                why
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn input_output_paths() {
        let ctx = Ctx::from_value(json!({}));
        let input = json!({"a": {"b": 1}});
        assert_eq!(
            apply_input_path(Some(&p("$.a")), &input, &ctx).unwrap(),
            json!({"b": 1})
        );
        assert_eq!(apply_input_path(None, &input, &ctx).unwrap(), json!({}));
        assert_eq!(
            apply_input_path(Some(&p("$.x")), &input, &ctx)
                .unwrap_err()
                .error,
            "States.Runtime"
        );
        assert_eq!(
            apply_output_path(None, input.clone(), &ctx).unwrap(),
            json!({})
        );
    }

    #[test]
    fn parameters() {
        let ctx = Ctx::from_value(json!({"Execution": {"Id": "e1"}}));
        let t = Template::compile(&json!({
            "static": [1, 2],
            "x.$": "$.a",
            "id.$": "$$.Execution.Id",
            "nested": {"y.$": "States.Format('v={}', $.a)"},
            "arr": [{"z.$": "$.a"}]
        }))
        .unwrap();
        let mut rng = Rng::new(1);
        let out = apply_parameters(&t, &json!({"a": 5}), &ctx, &mut rng).unwrap();
        assert_eq!(
            out,
            json!({"static": [1, 2], "x": 5, "id": "e1", "nested": {"y": "v=5"}, "arr": [{"z": 5}]})
        );
        let e = apply_parameters(&t, &json!({}), &ctx, &mut rng).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(
            e.cause
                .unwrap()
                .contains("specified for the field 'x.$' could not be found")
        );
        assert!(Template::compile(&json!({"x.$": 1})).is_err());
    }

    #[test]
    fn result_path() {
        let i = json!({"a": 1});
        assert_eq!(
            apply_result_path(Some(&p("$")), i.clone(), json!(2)).unwrap(),
            json!(2)
        );
        assert_eq!(apply_result_path(None, i.clone(), json!(2)).unwrap(), i);
        assert_eq!(
            apply_result_path(Some(&p("$.b.c")), i.clone(), json!(2)).unwrap(),
            json!({"a": 1, "b": {"c": 2}})
        );
        assert_eq!(
            apply_result_path(Some(&p("$.b")), json!("str"), json!(2))
                .unwrap_err()
                .error,
            "States.ResultPathMatchFailure"
        );
    }
}
