//! Choice rule evaluation. Type mismatches make a comparison false (as Step Functions does);
//! a Variable (or `*Path` operand) that selects nothing is a States.Runtime error, except for
//! `IsPresent`.

use crate::dataflow::Ctx;
use crate::error::AslError;
use crate::model::{ChoiceRule, Op, Operand, RuleKind};
use crate::path::Path;
use crate::timestamp::Timestamp;
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

/// The `Next` of the first matching rule, or `None` (then Default or States.NoChoiceMatched).
pub fn evaluate_choice<'r>(
    rules: &'r [ChoiceRule],
    input: &Value,
    ctx: &Ctx,
) -> Result<Option<&'r str>, AslError> {
    Ok(first_match(rules, input, ctx)?.and_then(|r| r.next.as_deref()))
}

/// The first matching rule (its `Next` and `Assign` apply), or `None`.
pub fn first_match<'r>(
    rules: &'r [ChoiceRule],
    input: &Value,
    ctx: &Ctx,
) -> Result<Option<&'r ChoiceRule>, AslError> {
    for r in rules {
        if evaluate_rule(r, input, ctx)? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn lookup<'v>(p: &Path, input: &'v Value, ctx: &'v Ctx) -> Option<Cow<'v, Value>> {
    if let Some(name) = p.variable() {
        ctx.var(name).and_then(|v| p.select_ref(v))
    } else if p.is_context() {
        ctx.select(p)
    } else {
        p.select_ref(input)
    }
}

fn missing(p: &Path) -> AslError {
    AslError::runtime(format!(
        "Invalid path '{}': The choice state's condition path references an invalid value.",
        p.as_str()
    ))
}

/// Evaluate one (possibly compound) rule.
pub fn evaluate_rule(r: &ChoiceRule, input: &Value, ctx: &Ctx) -> Result<bool, AslError> {
    match &r.kind {
        RuleKind::And(rs) => {
            for x in rs {
                if !evaluate_rule(x, input, ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        RuleKind::Or(rs) => {
            for x in rs {
                if evaluate_rule(x, input, ctx)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        RuleKind::Not(x) => Ok(!evaluate_rule(x, input, ctx)?),
        // JSONata Choice states are evaluated by the executor (they need `$states` and the
        // generator); the parser never mixes them with JSONPath rules.
        RuleKind::Condition(_) => Err(AslError::runtime(
            "a JSONata Condition cannot be evaluated as a JSONPath rule",
        )),
        RuleKind::Compare {
            variable,
            op,
            operand,
        } => {
            let var = lookup(variable, input, ctx);
            if *op == Op::IsPresent {
                return Ok(var.is_some() == matches!(operand, Operand::Value(Value::Bool(true))));
            }
            let var = var.ok_or_else(|| missing(variable))?;
            let rhs: Cow<Value> = match operand {
                Operand::Value(v) => Cow::Borrowed(v),
                Operand::Path(p) => lookup(p, input, ctx).ok_or_else(|| missing(p))?,
            };
            Ok(compare(*op, &var, &rhs))
        }
    }
}

fn num_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return None;
    };
    if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
        return Some(x.cmp(&y));
    }
    x.as_f64()?.partial_cmp(&y.as_f64()?)
}

fn str_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn ts_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    let (Value::String(x), Value::String(y)) = (a, b) else {
        return None;
    };
    Some(Timestamp::parse(x)?.cmp(&Timestamp::parse(y)?))
}

fn is_timestamp(v: &Value) -> bool {
    matches!(v, Value::String(s) if Timestamp::parse(s).is_some())
}

/// Apply one operator; `rhs` is the literal or the value its `*Path` selected.
pub fn compare(op: Op, var: &Value, rhs: &Value) -> bool {
    use Ordering::*;
    let ord = |o: Option<Ordering>, want: &[Ordering]| o.is_some_and(|o| want.contains(&o));
    let flag = rhs.as_bool().unwrap_or(false);
    match op {
        Op::StringEquals => ord(str_cmp(var, rhs), &[Equal]),
        Op::StringLessThan => ord(str_cmp(var, rhs), &[Less]),
        Op::StringGreaterThan => ord(str_cmp(var, rhs), &[Greater]),
        Op::StringLessThanEquals => ord(str_cmp(var, rhs), &[Less, Equal]),
        Op::StringGreaterThanEquals => ord(str_cmp(var, rhs), &[Greater, Equal]),
        Op::StringMatches => match (var, rhs) {
            (Value::String(s), Value::String(p)) => string_matches(s, p),
            _ => false,
        },
        Op::NumericEquals => ord(num_cmp(var, rhs), &[Equal]),
        Op::NumericLessThan => ord(num_cmp(var, rhs), &[Less]),
        Op::NumericGreaterThan => ord(num_cmp(var, rhs), &[Greater]),
        Op::NumericLessThanEquals => ord(num_cmp(var, rhs), &[Less, Equal]),
        Op::NumericGreaterThanEquals => ord(num_cmp(var, rhs), &[Greater, Equal]),
        Op::BooleanEquals => matches!((var, rhs), (Value::Bool(a), Value::Bool(b)) if a == b),
        Op::TimestampEquals => ord(ts_cmp(var, rhs), &[Equal]),
        Op::TimestampLessThan => ord(ts_cmp(var, rhs), &[Less]),
        Op::TimestampGreaterThan => ord(ts_cmp(var, rhs), &[Greater]),
        Op::TimestampLessThanEquals => ord(ts_cmp(var, rhs), &[Less, Equal]),
        Op::TimestampGreaterThanEquals => ord(ts_cmp(var, rhs), &[Greater, Equal]),
        Op::IsNull => var.is_null() == flag,
        Op::IsPresent => flag,
        Op::IsNumeric => var.is_number() == flag,
        Op::IsString => var.is_string() == flag,
        Op::IsBoolean => var.is_boolean() == flag,
        Op::IsTimestamp => is_timestamp(var) == flag,
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` is a literal star and `\\` a
/// literal backslash.
pub fn string_matches(s: &str, pattern: &str) -> bool {
    // Tokenise the pattern into literals and wildcards.
    enum T {
        Lit(char),
        Star,
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(n) => toks.push(T::Lit(n)),
                None => toks.push(T::Lit('\\')),
            },
            '*' => toks.push(T::Star),
            c => toks.push(T::Lit(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    // Classic greedy wildcard match with backtracking to the last star.
    let (mut si, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match toks.get(ti) {
            Some(T::Lit(c)) if *c == s[si] => {
                si += 1;
                ti += 1;
            }
            Some(T::Star) => {
                star = Some((ti, si));
                ti += 1;
            }
            _ => match star {
                Some((st, ss)) => {
                    ti = st + 1;
                    si = ss + 1;
                    star = Some((st, ss + 1));
                }
                None => return false,
            },
        }
    }
    while matches!(toks.get(ti), Some(T::Star)) {
        ti += 1;
    }
    ti == toks.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("a*b", r"a\*b"));
        assert!(!string_matches("axb", r"a\*b"));
        assert!(string_matches("", "*"));
        assert!(!string_matches("abc", "*d"));
        assert!(string_matches("abcbd", "*b*d"));
    }

    #[test]
    fn comparisons() {
        assert!(compare(Op::NumericEquals, &json!(1), &json!(1.0)));
        assert!(!compare(Op::NumericEquals, &json!("1"), &json!(1)));
        assert!(compare(
            Op::TimestampLessThan,
            &json!("2020-01-01T00:00:00Z"),
            &json!("2020-01-01T00:00:01Z")
        ));
        assert!(compare(
            Op::IsTimestamp,
            &json!("2016-03-14T01:59:00Z"),
            &json!(true)
        ));
        assert!(!compare(
            Op::IsTimestamp,
            &json!("2016-03-14t01:59:00Z"),
            &json!(true)
        ));
    }
}
