//! Intrinsic functions (`States.Format(...)` etc.): a recursive-descent parser for the
//! invocation grammar and the functions themselves, with Step Functions' argument rules.
//! Bad arguments fail the state as Step Functions does: `States.Runtime` (not retried or
//! caught), cause `Invalid arguments in States.X`.

use crate::error::AslError;
use crate::path::Path;
use crate::rng::Rng;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// A parsed intrinsic expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Call {
        name: String,
        args: Vec<Expr>,
    },
    /// A single-quoted literal: `value` is unescaped, `raw` keeps the escapes (States.Format
    /// needs them to tell `\{` from a placeholder).
    Str {
        value: String,
        raw: String,
    },
    Num(Number),
    Bool(bool),
    Null,
    Path(Path),
}

/// Every intrinsic and its allowed argument counts (min, max).
pub const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("States.Format", 1, usize::MAX),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, usize::MAX),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.Hash", 2, 2),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
];

/// Whether a `.$` value is an intrinsic invocation rather than a path.
pub fn is_intrinsic(s: &str) -> bool {
    s.trim_start().starts_with("States.")
}

/// Parse a full invocation such as `States.Format('{}', $.x)`.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = P {
        s: text,
        i: 0,
        depth: 0,
    };
    p.ws();
    let e = p.call()?;
    p.ws();
    if p.i != text.len() {
        return Err(format!(
            "unexpected '{}' after the intrinsic call at offset {}",
            &text[p.i..],
            p.i
        ));
    }
    Ok(e)
}

struct P<'a> {
    s: &'a str,
    i: usize,
    depth: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn call(&mut self) -> Result<Expr, String> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
        {
            self.i += 1;
        }
        let name = &self.s[start..self.i];
        let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(n, ..)| *n == name) else {
            return Err(format!("unknown intrinsic function '{name}'"));
        };
        self.depth += 1;
        if self.depth > 10 {
            return Err("intrinsic functions nest at most 10 deep".into());
        }
        self.ws();
        if self.peek() != Some(b'(') {
            return Err(format!("expected '(' after {name}"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.peek() == Some(b')') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                args.push(self.arg()?);
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b')') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(format!("expected ',' or ')' in arguments of {name}")),
                }
            }
        }
        self.depth -= 1;
        if args.len() < min || args.len() > max {
            let want = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(format!(
                "{name} takes {want} argument(s), got {}",
                args.len()
            ));
        }
        Ok(Expr::Call {
            name: name.to_string(),
            args,
        })
    }
    fn arg(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(b'\'') => self.string(),
            Some(b'$') => self.path(),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => {
                let rest = &self.s[self.i..];
                for (kw, v) in [
                    ("true", Expr::Bool(true)),
                    ("false", Expr::Bool(false)),
                    ("null", Expr::Null),
                ] {
                    if rest.starts_with(kw)
                        && !rest[kw.len()..]
                            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.')
                    {
                        self.i += kw.len();
                        return Ok(v);
                    }
                }
                if rest.starts_with("States.") {
                    return self.call();
                }
                Err(format!("unexpected argument '{}'", rest))
            }
            None => Err("unexpected end of intrinsic call".into()),
        }
    }
    fn string(&mut self) -> Result<Expr, String> {
        self.i += 1;
        let start = self.i;
        let mut value = String::new();
        let mut chars = self.s[self.i..].char_indices();
        while let Some((off, c)) = chars.next() {
            match c {
                // Only the reserved characters can be escaped; any other backslash is an
                // "open escape", which Step Functions rejects.
                '\\' => match chars.next() {
                    Some((_, e @ ('\'' | '{' | '}' | '\\'))) => value.push(e),
                    Some((_, e)) => {
                        return Err(format!(
                            "invalid escape '\\{e}' in a string literal (only \\', \\{{, \\}} and \\\\ are allowed)"
                        ));
                    }
                    None => break,
                },
                '\'' => {
                    let raw = self.s[start..start + off].to_string();
                    self.i = start + off + 1;
                    return Ok(Expr::Str { value, raw });
                }
                c => value.push(c),
            }
        }
        Err("unterminated string literal".into())
    }
    fn number(&mut self) -> Result<Expr, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            self.i += 1;
        }
        let t = &self.s[start..self.i];
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Expr::Num(i.into()));
        }
        t.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Expr::Num)
            .ok_or_else(|| format!("invalid number '{t}'"))
    }
    fn path(&mut self) -> Result<Expr, String> {
        let start = self.i;
        let mut depth = 0i32;
        let mut quote: Option<u8> = None;
        while let Some(c) = self.peek() {
            if let Some(q) = quote {
                if c == b'\\' {
                    self.i += 1;
                } else if c == q {
                    quote = None;
                }
            } else {
                match c {
                    b'\'' | b'"' => quote = Some(c),
                    b'[' | b'(' => depth += 1,
                    b']' => depth -= 1,
                    b')' if depth == 0 => break,
                    b')' => depth -= 1,
                    b',' if depth == 0 => break,
                    c if c.is_ascii_whitespace() && depth == 0 => break,
                    _ => {}
                }
            }
            self.i += 1;
        }
        Path::parse(&self.s[start..self.i]).map(Expr::Path)
    }
}

/// Evaluate an expression; `resolve` looks up path arguments (input or context object).
pub fn eval(
    e: &Expr,
    resolve: &mut dyn FnMut(&Path) -> Option<Value>,
    rng: &mut Rng,
) -> Result<Value, AslError> {
    match e {
        Expr::Str { value, .. } => Ok(Value::String(value.clone())),
        Expr::Num(n) => Ok(Value::Number(n.clone())),
        Expr::Bool(b) => Ok(Value::Bool(*b)),
        Expr::Null => Ok(Value::Null),
        // Step Functions' sentence; the caller adds ` '<input>'` (it has the input).
        Expr::Path(p) => resolve(p).ok_or_else(|| {
            AslError::runtime(format!(
                "{MISSING_ARGUMENT} '{}' could not be found in the input",
                p.as_str()
            ))
        }),
        Expr::Call { name, args } => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, resolve, rng)?);
            }
            if name == "States.Format" {
                // A literal template keeps its escapes; a template from a path has none.
                if let Some(Expr::Str { raw, .. }) = args.first() {
                    return format(raw, &vals[1..], true);
                }
                let Some(Value::String(t)) = vals.first() else {
                    return fail(name, "the first argument must be a string");
                };
                return format(t, &vals[1..], false);
            }
            call(name, &vals, rng)
        }
    }
}

/// Start of the cause of a path argument that selects nothing.
pub const MISSING_ARGUMENT: &str = "The JsonPath argument for the field";

/// A function refused its arguments. Step Functions' cause names only the function
/// (`Invalid arguments in States.MathAdd`); `_why` states the rule at the call site.
fn fail<T>(name: &str, _why: impl std::fmt::Display) -> Result<T, AslError> {
    Err(AslError::runtime(format!("Invalid arguments in {name}")))
}

impl std::fmt::Display for Expr {
    /// The invocation as written (whitespace normalized), for error causes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Call { name, args } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Str { raw, .. } => write!(f, "'{raw}'"),
            Expr::Num(n) => write!(f, "{n}"),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Null => f.write_str("null"),
            Expr::Path(p) => f.write_str(p.as_str()),
        }
    }
}

fn int_arg(name: &str, v: &Value, what: &str) -> Result<i64, AslError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => fail(name, format!("{what} must be an integer, got {n}")),
            }
        }
        other => fail(name, format!("{what} must be an integer, got {other}")),
    }
}

/// A number argument rounded to the nearest integer, as Step Functions does for MathAdd,
/// MathRandom and ArrayRange ("If you specify a non-integer value ... Step Functions will
/// round it off to the nearest integer"); halves round up, like Java's `Math.round`.
fn rounded_arg(name: &str, v: &Value, what: &str) -> Result<i64, AslError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.abs() < 9.0e15 => Ok((f + 0.5).floor() as i64),
                _ => fail(name, format!("{what} is out of range: {n}")),
            }
        }
        other => fail(name, format!("{what} must be a number, got {other}")),
    }
}

/// A number argument truncated toward zero: what Step Functions does for States.ArrayRange,
/// States.MathRandom and States.ArrayGetItem (observed: `ArrayRange(1.6, 1.4, 1)` is `[1]`,
/// `MathRandom(1.4, 1.6)` is refused as an empty range, `ArrayGetItem(a, 1.2)` is `a[1]`).
fn truncated_arg(name: &str, v: &Value, what: &str) -> Result<i64, AslError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.abs() < 9.0e15 => Ok(f.trunc() as i64),
                _ => fail(name, format!("{what} is out of range: {n}")),
            }
        }
        other => fail(name, format!("{what} must be a number, got {other}")),
    }
}

fn str_arg<'v>(name: &str, v: &'v Value, what: &str) -> Result<&'v str, AslError> {
    match v {
        Value::String(s) => Ok(s),
        other => fail(name, format!("{what} must be a string, got {other}")),
    }
}

fn arr_arg<'v>(name: &str, v: &'v Value) -> Result<&'v Vec<Value>, AslError> {
    match v {
        Value::Array(a) => Ok(a),
        other => fail(
            name,
            format!("the first argument must be an array, got {other}"),
        ),
    }
}

/// Max characters accepted by the encoding and hash functions.
const MAX_STR: usize = 10_000;

/// Call intrinsic `name` on already-evaluated arguments. (States.Format's template is taken
/// with `\{`, `\}` and `\\` escapes.)
pub fn call(name: &str, args: &[Value], rng: &mut Rng) -> Result<Value, AslError> {
    let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(n, ..)| *n == name) else {
        return Err(AslError::runtime(format!(
            "unknown intrinsic function '{name}'"
        )));
    };
    if args.len() < min || args.len() > max {
        return fail(name, format!("wrong number of arguments ({})", args.len()));
    }
    match name {
        "States.Format" => {
            let t = str_arg(name, &args[0], "the template")?;
            format(t, &args[1..], true)
        }
        "States.StringToJson" => {
            // Like Step Functions' JSON parser, null or a blank string parses to null.
            if args[0].is_null() {
                return Ok(Value::Null);
            }
            let s = str_arg(name, &args[0], "the argument")?;
            if s.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(s).or_else(|e| fail(name, format!("invalid JSON: {e}")))
        }
        "States.JsonToString" => Ok(Value::String(args[0].to_string())),
        "States.Array" => Ok(Value::Array(args.to_vec())),
        "States.ArrayPartition" => {
            let a = arr_arg(name, &args[0])?;
            let n = int_arg(name, &args[1], "the chunk size")?;
            if n <= 0 {
                return fail(name, "the chunk size must be a positive integer");
            }
            Ok(Value::Array(
                a.chunks(n as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => {
            let a = arr_arg(name, &args[0])?;
            Ok(Value::Bool(a.contains(&args[1])))
        }
        "States.ArrayRange" => {
            let start = truncated_arg(name, &args[0], "the start")?;
            let end = truncated_arg(name, &args[1], "the end")?;
            let step = truncated_arg(name, &args[2], "the step")?;
            if step == 0 {
                return fail(name, "the step must not be 0");
            }
            let mut out = Vec::new();
            let mut x = start;
            while (step > 0 && x <= end) || (step < 0 && x >= end) {
                out.push(Value::from(x));
                if out.len() > 1000 {
                    return fail(name, "the result would have more than 1000 items");
                }
                x = match x.checked_add(step) {
                    Some(x) => x,
                    None => break,
                };
            }
            Ok(Value::Array(out))
        }
        "States.ArrayGetItem" => {
            let a = arr_arg(name, &args[0])?;
            let i = truncated_arg(name, &args[1], "the index")?;
            if i < 0 {
                return fail(name, "the index must be a non-negative integer");
            }
            // Observed in Step Functions: any index into an empty array gives null.
            if a.is_empty() {
                return Ok(Value::Null);
            }
            a.get(i as usize).cloned().ok_or(()).or_else(|_| {
                fail(
                    name,
                    format!("index {i} is out of bounds (length {})", a.len()),
                )
            })
        }
        "States.ArrayLength" => Ok(Value::from(arr_arg(name, &args[0])?.len())),
        "States.ArrayUnique" => {
            let a = arr_arg(name, &args[0])?;
            let mut out: Vec<Value> = Vec::with_capacity(a.len());
            for v in a {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "States.Base64Encode" => {
            let s = str_arg(name, &args[0], "the argument")?;
            if s.chars().count() > MAX_STR {
                return fail(name, "the input is longer than 10000 characters");
            }
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s),
            ))
        }
        "States.Base64Decode" => {
            let s = str_arg(name, &args[0], "the argument")?;
            if s.chars().count() > MAX_STR {
                return fail(name, "the input is longer than 10000 characters");
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|e| fail(name, format!("invalid base64: {e}")))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .or_else(|_| fail(name, "the decoded data is not UTF-8 text"))
        }
        "States.Hash" => {
            let data = match &args[0] {
                Value::String(s) => s.clone(),
                Value::Null => return fail(name, "the data must not be null"),
                other => other.to_string(),
            };
            if data.chars().count() > MAX_STR {
                return fail(name, "the input is longer than 10000 characters");
            }
            let alg = str_arg(name, &args[1], "the algorithm")?;
            use sha2::Digest;
            let d = data.as_bytes();
            let h = match alg {
                "MD5" => hex::encode(md5::Md5::digest(d)),
                "SHA-1" => hex::encode(sha1::Sha1::digest(d)),
                "SHA-256" => hex::encode(sha2::Sha256::digest(d)),
                "SHA-384" => hex::encode(sha2::Sha384::digest(d)),
                "SHA-512" => hex::encode(sha2::Sha512::digest(d)),
                other => {
                    return fail(
                        name,
                        format!(
                            "unsupported algorithm '{other}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
                        ),
                    );
                }
            };
            Ok(Value::String(h))
        }
        "States.JsonMerge" => {
            let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                return fail(name, "the first two arguments must be JSON objects");
            };
            match &args[2] {
                Value::Bool(false) => {}
                Value::Bool(true) => {
                    return fail(
                        name,
                        "deep merging is not supported; the third argument must be false",
                    );
                }
                _ => return fail(name, "the third argument must be a boolean"),
            }
            let mut out: Map<String, Value> = a.clone();
            for (k, v) in b {
                out.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(out))
        }
        "States.MathRandom" => {
            let lo = truncated_arg(name, &args[0], "the start")?;
            let hi = truncated_arg(name, &args[1], "the end")?;
            if hi <= lo {
                return fail(name, "the end must be greater than the start");
            }
            if let Some(seed) = args.get(2) {
                // An explicit seed gives a value that depends on the seed only, as in SFN.
                let mut r = Rng::new(truncated_arg(name, seed, "the seed")? as u64);
                return Ok(Value::from(r.range_i64(lo, hi)));
            }
            Ok(Value::from(rng.range_i64(lo, hi)))
        }
        "States.MathAdd" => {
            // Non-integers are rounded to the nearest integer first; operands and sum are
            // Java ints (-2147483648..=2147483647), as Step Functions enforces.
            let a = rounded_arg(name, &args[0], "the first argument")?;
            let b = rounded_arg(name, &args[1], "the second argument")?;
            let int = |x: i64| i32::try_from(x).ok();
            match (int(a), int(b)) {
                (Some(a), Some(b)) => a
                    .checked_add(b)
                    .map(Value::from)
                    .ok_or(())
                    .or_else(|_| fail(name, "the sum is outside the 32-bit integer range")),
                _ => fail(name, "an argument is outside the 32-bit integer range"),
            }
        }
        "States.StringSplit" => {
            let s = str_arg(name, &args[0], "the string")?;
            let d = str_arg(name, &args[1], "the delimiter")?;
            if d.is_empty() {
                return fail(name, "the delimiter must not be empty");
            }
            // Every character of the delimiter splits; empty pieces are dropped.
            Ok(Value::Array(
                s.split(|c| d.contains(c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            ))
        }
        "States.UUID" => Ok(Value::String(rng.uuid_v4())),
        _ => unreachable!("FUNCTIONS lists {name}"),
    }
}

/// How States.Format prints an argument: strings as they are, other scalars as JSON, and
/// arrays and objects as Java collections print (`[a, 1]`, `{k=v, n=[1, 2]}`), which is what
/// Step Functions' Java implementation produces.
fn format_value(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                format_value(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                format_value(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn format(template: &str, args: &[Value], escapes: bool) -> Result<Value, AslError> {
    let name = "States.Format";
    let mut out = String::with_capacity(template.len());
    let mut used = 0;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if escapes => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                let Some(a) = args.get(used) else {
                    return fail(
                        name,
                        format!(
                            "the template has more '{{}}' than the {} argument(s)",
                            args.len()
                        ),
                    );
                };
                used += 1;
                format_value(a, &mut out);
            }
            // An unescaped brace that is not part of `{}` (`Hello {`, `{{}}`, `}`) is
            // refused, as Step Functions refuses it.
            '{' | '}' => return fail(name, "an unescaped brace that is not '{}'"),
            c => out.push(c),
        }
    }
    if used != args.len() {
        return fail(
            name,
            format!(
                "the template has {used} '{{}}' but {} argument(s) were given",
                args.len()
            ),
        );
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(s: &str, input: Value) -> Result<Value, AslError> {
        let e = parse(s).map_err(AslError::intrinsic)?;
        let mut rng = Rng::new(7);
        eval(&e, &mut |p: &Path| p.select(&input), &mut rng)
    }

    #[test]
    fn format_and_escapes() {
        assert_eq!(
            run("States.Format('Hello, {}!', $.n)", json!({"n": "Ann"})).unwrap(),
            json!("Hello, Ann!")
        );
        assert_eq!(
            run(r"States.Format('\{{}\}', 1)", json!({})).unwrap(),
            json!("{1}")
        );
        assert_eq!(
            run(r"States.Format('it\'s {}', true)", json!({})).unwrap(),
            json!("it's true")
        );
        assert!(run("States.Format('{} {}', 1)", json!({})).is_err());
    }

    #[test]
    fn nested() {
        let v = run(
            "States.ArrayGetItem(States.StringSplit($.arn, ':'), 2)",
            json!({"arn": "a:b:c:d"}),
        )
        .unwrap();
        assert_eq!(v, json!("c"));
    }

    #[test]
    fn syntax_errors() {
        assert!(parse("States.Nope(1)").is_err());
        assert!(parse("States.Array(1").is_err());
        assert!(parse("States.UUID(1)").is_err());
        assert!(parse("States.Format('x)").is_err());
    }

    #[test]
    fn functions() {
        assert_eq!(
            run("States.ArrayRange(1, 9, 2)", json!({})).unwrap(),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(
            run(
                "States.ArrayPartition(States.Array(1,2,3,4,5), 2)",
                json!({})
            )
            .unwrap(),
            json!([[1, 2], [3, 4], [5]])
        );
        assert_eq!(
            run("States.Hash('input data', 'SHA-1')", json!({})).unwrap(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            run("States.Base64Encode('Data to encode')", json!({})).unwrap(),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        let u = run("States.UUID()", json!({})).unwrap();
        assert_eq!(u.as_str().unwrap().len(), 36);
        assert_eq!(&u.as_str().unwrap()[14..15], "4");
    }
}
