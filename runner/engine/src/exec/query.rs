//! JSONata states: evaluating `Arguments`, `Output` and `Assign` values, whose `{% %}`
//! strings (at any depth) are JSONata expressions over `$states` and the workflow variables.

use super::*;
use crate::jsonata::{self, Env, QUERY_EVALUATION_ERROR};

/// What `$states` holds for one evaluation.
pub(super) struct States<'a> {
    pub input: &'a Value,
    /// Task results (for `Output` and `Assign`); absent for Pass.
    pub result: Option<&'a Value>,
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
