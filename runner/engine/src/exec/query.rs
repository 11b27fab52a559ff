//! JSONata states: evaluating `Arguments`, `Output` and `Assign` values, whose `{% %}`
//! strings (at any depth) are JSONata expressions over `$states` and the workflow variables.

use super::*;
use crate::jsonata::{self, Env, QUERY_EVALUATION_ERROR};

/// What `$states` holds for one evaluation.
pub(super) struct States<'a> {
    pub input: &'a Value,
    /// Task results (for `Output` and `Assign`); absent for Pass.
    pub result: Option<&'a Value>,
    /// A Catch's `Output` and `Assign` only: the error output `{Error, Cause}`.
    pub error_output: Option<&'a Value>,
}

impl<'a> States<'a> {
    /// `$states` with only `input` (and `context`).
    pub fn input(input: &'a Value) -> Self {
        States {
            input,
            result: None,
            error_output: None,
        }
    }
}

/// Evaluates `template` (JSON with `{% %}` strings) for a JSONata state.
pub(super) fn eval(
    template: &Value,
    states: &States<'_>,
    ctx: &Ctx,
    rng: &mut Rng,
    now: Timestamp,
    field: &str,
) -> Result<Value, AslError> {
    let mut st = Map::new();
    st.insert("input".into(), states.input.clone());
    st.insert("context".into(), ctx.get().clone());
    if let Some(r) = states.result {
        st.insert("result".into(), r.clone());
    }
    if let Some(e) = states.error_output {
        st.insert("errorOutput".into(), e.clone());
    }
    let st = Value::Object(st);
    // Inner scopes shadow outer ones: the first binding of a name wins.
    let mut bindings: Vec<(&str, &Value)> = vec![("states", &st)];
    for scope in ctx.vars() {
        for (k, v) in scope.iter() {
            if !bindings.iter().any(|(n, _)| n == k) {
                bindings.push((k.as_str(), v));
            }
        }
    }
    let mut env = Env {
        rng,
        now_millis: now.unix_millis(),
    };
    match walk(template, &bindings, &mut env)? {
        Some(v) => Ok(v),
        None => Err(AslError::new(
            QUERY_EVALUATION_ERROR,
            format!("The JSONata expression in '{field}' returned no value"),
        )),
    }
}

/// `None`: an expression that is JSONata's undefined (its object member is left out).
fn walk(
    v: &Value,
    bindings: &[(&str, &Value)],
    env: &mut Env<'_>,
) -> Result<Option<Value>, AslError> {
    Ok(Some(match v {
        Value::String(s) => match jsonata::expression(s) {
            Some(body) => return jsonata::evaluate(body, bindings, env),
            None => v.clone(),
        },
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for x in a {
                out.push(walk(x, bindings, env)?.unwrap_or(Value::Null));
            }
            Value::Array(out)
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                if let Some(y) = walk(x, bindings, env)? {
                    out.insert(k.clone(), y);
                }
            }
            Value::Object(out)
        }
        _ => v.clone(),
    }))
}

/// The values a JSONata `Assign` sets.
pub(super) fn assign(
    assign: Option<&Assign>,
    states: &States<'_>,
    ctx: &Ctx,
    rng: &mut Rng,
    now: Timestamp,
) -> Result<Option<Map<String, Value>>, AslError> {
    let Some(t) = assign.and_then(|a| a.jsonata.as_ref()) else {
        return Ok(None);
    };
    match eval(t, states, ctx, rng, now, "Assign")? {
        Value::Object(m) => Ok(Some(m)),
        // The parser only accepts an object.
        other => Err(AslError::runtime(format!(
            "Assign must evaluate to an object, got {other}"
        ))),
    }
}

/// A JSONata choice rule's `Condition`; anything but a boolean is an evaluation error.
pub(super) fn condition(
    kind: &RuleKind,
    states: &States<'_>,
    ctx: &Ctx,
    rng: &mut Rng,
    now: Timestamp,
) -> Result<bool, AslError> {
    let RuleKind::Condition(body) = kind else {
        return Err(AslError::runtime(
            "a JSONPath choice rule in a JSONata Choice state",
        ));
    };
    let expr = Value::String(format!("{{%{body}%}}"));
    match eval(&expr, states, ctx, rng, now, "Condition")? {
        Value::Bool(b) => Ok(b),
        other => Err(AslError::new(
            QUERY_EVALUATION_ERROR,
            format!(
                "The Condition '{}' must evaluate to a boolean, got {other}",
                body.trim()
            ),
        )),
    }
}

/// Evaluates one field's `{% %}` expression (`body`, between the delimiters).
pub(super) fn expr(
    body: &str,
    field: &str,
    states: &States<'_>,
    ctx: &Ctx,
    rng: &mut Rng,
    now: Timestamp,
) -> Result<Value, AslError> {
    eval(
        &Value::String(format!("{{%{body}%}}")),
        states,
        ctx,
        rng,
        now,
        field,
    )
}

/// `States.QueryEvaluationError` for an expression whose value has the wrong type or range.
pub(super) fn unexpected(body: &str, field: &str, want: &str, got: &Value) -> AslError {
    AslError::new(
        QUERY_EVALUATION_ERROR,
        format!(
            "The JSONata expression '{}' specified for the field '{field}' must evaluate to {want}, but returned {got}",
            body.trim()
        ),
    )
}

/// A number field (`Seconds`, `TimeoutSeconds`, `MaxConcurrency`, ...) given literally, by a
/// reference path (JSONPath states) or as a JSONata expression. Integers must be whole and in
/// `min..=max`; `integer: false` takes any number in `min..=max` (a percentage).
#[allow(clippy::too_many_arguments)]
pub(super) fn number(
    spec: &NumberSpec,
    field: &str,
    integer: bool,
    (min, max): (f64, f64),
    states: &States<'_>,
    ctx: &Ctx,
    rng: &mut Rng,
    now: Timestamp,
) -> Result<f64, AslError> {
    let NumberSpec::Jsonata(body) = spec else {
        let what = format!("{field}Path");
        return if integer {
            positive_int_from(spec, states.input, ctx, &what)
        } else {
            num_from(spec, states.input, ctx, &what)
        };
    };
    let v = expr(body, field, states, ctx, rng, now)?;
    let want = match (integer, min > 0.0) {
        (true, true) => format!("a positive integer (at most {max})"),
        (true, false) => format!("a non-negative integer (at most {max})"),
        (false, _) => format!("a number between {min} and {max}"),
    };
    match v.as_f64() {
        Some(n) if (!integer || n.fract() == 0.0) && (min..=max).contains(&n) => Ok(n),
        _ => Err(unexpected(body, field, &want, &v)),
    }
}

/// Fail `Error`/`Cause` as a JSONata expression: a string.
pub(super) fn string(
    body: &str,
    field: &str,
    states: &States<'_>,
    ctx: &Ctx,
    rng: &mut Rng,
    now: Timestamp,
) -> Result<String, AslError> {
    match expr(body, field, states, ctx, rng, now)? {
        Value::String(s) => Ok(s),
        other => Err(unexpected(body, field, "a string", &other)),
    }
}

/// Wait `Timestamp` as a JSONata expression: an RFC 3339 timestamp string.
pub(super) fn timestamp(
    body: &str,
    states: &States<'_>,
    ctx: &Ctx,
    rng: &mut Rng,
    now: Timestamp,
) -> Result<Timestamp, AslError> {
    let v = expr(body, "Timestamp", states, ctx, rng, now)?;
    v.as_str()
        .and_then(Timestamp::parse)
        .ok_or_else(|| unexpected(body, "Timestamp", "an RFC 3339 timestamp string", &v))
}

impl Execution {
    /// A JSONata catcher that matched: its `Assign` and `Output` (default: the error output),
    /// evaluated with `$states.errorOutput`. Nothing is stored yet.
    pub(super) fn catch_jsonata(
        &mut self,
        sid: Sid,
        catcher: &Catcher,
        err: &AslError,
    ) -> Result<(Value, Option<Map<String, Value>>), AslError> {
        let scope = &self.scopes[&sid];
        let cur = scope.cur.as_ref().expect("current state");
        let ci = CtxInfo::at(
            &self.ctx,
            &self.input,
            self.redrive_count,
            &scope.machine.states[cur.state].name,
            cur,
        );
        let build = || ci.value();
        let chain = vars::var_chain(&self.scopes, sid);
        let ctx = Ctx::lazy(&build, ci.exec_input).with_vars(&chain);
        let error_output = err.to_value();
        let states = States {
            input: &cur.input,
            result: None,
            error_output: Some(&error_output),
        };
        let (rng, now) = (&mut self.rng, self.now);
        let assigned = assign(catcher.assign.as_ref(), &states, &ctx, rng, now)?;
        let out = match &catcher.output {
            Some(o) => eval(o, &states, &ctx, rng, now, "Output")?,
            None => error_output.clone(),
        };
        Ok((out, assigned))
    }
}
