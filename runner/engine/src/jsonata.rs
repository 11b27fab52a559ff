//! JSONata evaluation for `QueryLanguage: JSONata` states, over `jsonata-rs` (chosen and
//! measured in docs/jsonata.md). Everything else in the engine sees `serde_json` values only,
//! so the implementation can be replaced here alone.
//!
//! Purity: the crate's `$now`, `$millis`, `$random` and `$uuid` read the clock and the OS's
//! randomness, so they are shadowed (in a block around the expression) by versions that read
//! the execution time and the engine's seeded [`Rng`] given to [`evaluate`]; a replay
//! therefore computes the same values.
//!
//! Cost: the crate cannot evaluate a syntax tree apart from the `JsonAta` (and arena) that
//! parsed it, so parsed expressions are kept per thread (see [`Cache`]) and reused; bindings
//! are built in the arena straight from `serde_json` values and results read back the same
//! way, with no JSON text in between.

use crate::error::AslError;
use crate::rng::Rng;
use bumpalo::Bump;
use jsonata_rs::{ArrayFlags, FunctionContext, JsonAta, Value};
use serde_json::Value as Json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Step Functions' error for an expression that fails at run time.
pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";

/// Our replacements are bound under these names and the block rebinds the public ones to them
/// (the crate binds its own natives on every evaluation, after any registration).
const PRELUDE: &str = "($random := $__rbRandom; $uuid := $__rbUuid; $now := $__rbNow; \
                       $millis := $__rbMillis;\n";

/// What an evaluation may read besides its bindings: the execution's clock and generator.
pub struct Env<'r> {
    pub rng: &'r mut Rng,
    /// Milliseconds since the Unix epoch: the time the engine was handed for this step.
    pub now_millis: i64,
}

thread_local! {
    // Native functions are plain `fn`s; the state they need lives here for one evaluation.
    static RNG: Cell<Rng> = Cell::new(Rng::new(0));
    static NOW_MILLIS: Cell<i64> = const { Cell::new(0) };
    // Per thread because a parsed expression is not `Send` (its frame is `Rc`-based); it holds
    // no result and changes none (see `Cache`), so it does not make the engine impure.
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

self_cell::self_cell!(
    /// A parsed expression (prelude included) and the arena it allocates its values in: the
    /// crate ties the two together, so they are kept together.
    struct Compiled {
        owner: Bump,
        #[not_covariant]
        dependent: JsonAta,
    }
);

/// Expressions kept per thread.
const CACHE_ENTRIES: usize = 64;
/// The arena only grows (every evaluation allocates its bindings and result in it), so an
/// expression whose arena has grown past this is dropped after use and parsed again.
const ARENA_LIMIT: usize = 512 * 1024;

/// Parsed expressions keyed by body and binding names, least recently used dropped first.
///
/// Reuse gives the same results as a fresh parse: the expression runs inside the prelude's
/// block, so everything it binds goes to a child frame, and the root frame holds only the
/// natives and the bindings, which every evaluation binds again. The names are part of the key
/// so that a variable bound last time and not this time cannot be seen.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, (Compiled, u64)>,
    tick: u64,
}

impl Cache {
    fn take(&mut self, key: &str) -> Option<Compiled> {
        self.entries.remove(key).map(|(c, _)| c)
    }

    fn put(&mut self, key: String, compiled: Compiled) {
        if self.entries.len() >= CACHE_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.tick += 1;
        self.entries.insert(key, (compiled, self.tick));
    }
}

/// Length-prefixed so that no body and names can spell another's key.
fn cache_key(body: &str, bindings: &[(&str, &Json)]) -> String {
    let mut key = format!("{}:{body}", body.len());
    for (name, _) in bindings {
        key.push_str(&format!("{}:{name}", name.len()));
    }
    key
}

/// `Some(body)` when `s` is a JSONata expression string `{% body %}`.
pub fn expression(s: &str) -> Option<&str> {
    let t = s.strip_prefix("{%")?.strip_suffix("%}")?;
    Some(t)
}

/// A syntax error in an expression, with the JSONata code (S0xxx) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct SyntaxError {
    pub code: String,
    pub message: String,
}

/// Parses `body` (the text between `{%` and `%}`) without evaluating it: for validation.
pub fn check(body: &str) -> Result<(), SyntaxError> {
    let arena = Bump::new();
    JsonAta::new(body, &arena)
        .map(|_| ())
        .map_err(|e| SyntaxError {
            code: e.code().to_string(),
            message: e.to_string(),
        })
}

/// Evaluates `body` with `bindings` (`("states", {...})` binds `$states`). `Ok(None)` is
/// JSONata's undefined. Failures are `States.QueryEvaluationError` with the JSONata code and
/// message as the cause.
pub fn evaluate(
    body: &str,
    bindings: &[(&str, &Json)],
    env: &mut Env<'_>,
) -> Result<Option<Json>, AslError> {
    let fail = |e: jsonata_rs::Error| {
        AslError::new(
            QUERY_EVALUATION_ERROR,
            format!(
                "An error occurred while evaluating the JSONata expression '{}': {} ({})",
                body.trim(),
                e,
                e.code()
            ),
        )
    };
    let key = cache_key(body, bindings);
    let compiled = match CACHE.with(|c| c.borrow_mut().take(&key)) {
        Some(c) => c,
        None => Compiled::try_new(Bump::new(), |arena| {
            let expr = JsonAta::new(&format!("{PRELUDE}{body}\n)"), arena)?;
            register_natives(&expr);
            Ok::<_, jsonata_rs::Error>(expr)
        })
        .map_err(fail)?,
    };
    // A binding named like one of our natives replaces it in the root frame.
    let shadowed = bindings.iter().any(|(n, _)| NATIVES.contains(n));
    RNG.with(|r| r.set(*env.rng));
    NOW_MILLIS.with(|n| n.set(env.now_millis));
    let out = compiled.with_dependent(|arena, expr| {
        for (name, value) in bindings {
            expr.assign_var(name, to_value(arena, value));
        }
        // Same order as a fresh expression: bindings, then our natives over any binding of
        // the same name, then (inside `evaluate`) the crate's natives over both. Without such
        // a binding, those registered when the expression was parsed are still in place.
        if shadowed {
            register_natives(expr);
        }
        let value = expr.evaluate(None, None).map_err(fail)?;
        if value.is_undefined() {
            return Ok(None);
        }
        if value.is_function() {
            return Err(AslError::new(
                QUERY_EVALUATION_ERROR,
                format!(
                    "The JSONata expression '{}' returned a function, which is not JSON",
                    body.trim()
                ),
            ));
        }
        Ok(Some(to_json(arena, value)))
    });
    *env.rng = RNG.with(|r| r.get());
    if compiled.borrow_owner().allocated_bytes() <= ARENA_LIMIT {
        CACHE.with(|c| c.borrow_mut().put(key, compiled));
    }
    out
}

/// What [`register_natives`] binds.
const NATIVES: [&str; 8] = [
    "__rbRandom",
    "__rbUuid",
    "__rbNow",
    "__rbMillis",
    "partition",
    "range",
    "hash",
    "parse",
];

fn register_natives(expr: &JsonAta<'_>) {
    expr.register_function(NATIVES[0], 0, fn_random);
    expr.register_function(NATIVES[1], 0, fn_uuid);
    expr.register_function(NATIVES[2], 0, fn_now);
    expr.register_function(NATIVES[3], 0, fn_millis);
    expr.register_function(NATIVES[4], 2, fn_partition);
    expr.register_function(NATIVES[5], 3, fn_range);
    expr.register_function(NATIVES[6], 2, fn_hash);
    expr.register_function(NATIVES[7], 1, fn_parse);
}

/// A result as JSON, with object keys in sorted order: the crate's objects are hash maps whose
/// order varies between runs, and a state's output must not. Inside arrays and objects,
/// undefined is left out of objects and is `null` in arrays, and a function is `""` (as the
/// crate's serialiser writes it).
fn to_json<'a>(arena: &'a Bump, v: &'a Value<'a>) -> Json {
    match v {
        Value::Undefined => Json::Null,
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => number(arena, *n),
        Value::String(s) => Json::String(s.to_string()),
        Value::Regex(r) => Json::String(r.as_pattern().to_string()),
        Value::Array(..) | Value::Range(..) => {
            Json::Array(v.members().map(|m| to_json(arena, m)).collect())
        }
        Value::Object(..) => {
            let mut entries: Vec<_> = v.entries().filter(|(_, m)| !m.is_undefined()).collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, m)| (k.to_string(), to_json(arena, m)))
                    .collect(),
            )
        }
        Value::Lambda { .. } | Value::NativeFn { .. } | Value::Transformer { .. } => {
            Json::String(String::new())
        }
    }
}

/// A number as the crate's serialiser writes it (JSONata's 15 significant digits, integers
/// without a fraction) read back by serde_json, so results match the former text round trip.
fn number(arena: &Bump, n: f64) -> Json {
    if !n.is_finite() {
        return Json::Null;
    }
    // Integers below 2^53 print as their digits: skip the text (but not -0, which
    // serde_json reads as a float).
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 && !(n == 0.0 && n.is_sign_negative())
    {
        return Json::from(n as i64);
    }
    let text = Value::number(arena, n).serialize(false);
    text.parse::<serde_json::Number>()
        .map(Json::Number)
        .unwrap_or(Json::Null)
}

type Native<'a> = jsonata_rs::Result<&'a Value<'a>>;

fn arg_error(ctx: &FunctionContext<'_, '_>, index: usize) -> jsonata_rs::Error {
    jsonata_rs::Error::T0410ArgumentNotValid(ctx.char_index, index + 1, ctx.name.to_string())
}

fn with_rng<T>(f: impl FnOnce(&mut Rng) -> T) -> T {
    RNG.with(|cell| {
        let mut rng = cell.get();
        let out = f(&mut rng);
        cell.set(rng);
        out
    })
}

fn fn_random<'a>(ctx: FunctionContext<'a, '_>, _args: &[&'a Value<'a>]) -> Native<'a> {
    Ok(Value::number(ctx.arena, with_rng(|r| r.next_f64())))
}

fn fn_uuid<'a>(ctx: FunctionContext<'a, '_>, _args: &[&'a Value<'a>]) -> Native<'a> {
    Ok(Value::string(ctx.arena, &with_rng(|r| r.uuid_v4())))
}

fn fn_millis<'a>(ctx: FunctionContext<'a, '_>, _args: &[&'a Value<'a>]) -> Native<'a> {
    Ok(Value::number(
        ctx.arena,
        NOW_MILLIS.with(|n| n.get()) as f64,
    ))
}

/// ISO 8601 in UTC with milliseconds, as JSONata's `$now()` without a picture.
fn fn_now<'a>(ctx: FunctionContext<'a, '_>, _args: &[&'a Value<'a>]) -> Native<'a> {
    let ms = NOW_MILLIS.with(|n| n.get());
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
    Ok(Value::string(ctx.arena, &s))
}

/// `$partition(array, size)`: the array in chunks of `size` (the last may be shorter).
fn fn_partition<'a>(ctx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Native<'a> {
    let (Some(items), Some(size)) = (args.first(), args.get(1)) else {
        return Err(arg_error(&ctx, args.len()));
    };
    if !size.is_integer() || size.as_f64() < 1.0 {
        return Err(arg_error(&ctx, 1));
    }
    let size = size.as_usize();
    let members: Vec<&'a Value<'a>> = if items.is_array() {
        items.members().collect()
    } else if items.is_undefined() {
        Vec::new()
    } else {
        vec![*items]
    };
    let out = Value::array(ctx.arena, ArrayFlags::empty());
    for chunk in members.chunks(size) {
        let part = Value::array_with_capacity(ctx.arena, chunk.len(), ArrayFlags::empty());
        for m in chunk {
            part.push(m);
        }
        out.push(part);
    }
    Ok(out)
}

/// `$range(start, end, step)`: numbers from `start` to `end` inclusive, `step` apart.
fn fn_range<'a>(ctx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Native<'a> {
    for (i, a) in args.iter().enumerate().take(3) {
        if !a.is_number() {
            return Err(arg_error(&ctx, i));
        }
    }
    if args.len() < 3 {
        return Err(arg_error(&ctx, args.len()));
    }
    let (start, end, step) = (args[0].as_f64(), args[1].as_f64(), args[2].as_f64());
    if step == 0.0 || !step.is_finite() {
        return Err(arg_error(&ctx, 2));
    }
    let out = Value::array(ctx.arena, ArrayFlags::empty());
    // Step Functions caps $range at 1000 items; counting also stops a runaway range.
    let mut x = start;
    let mut n = 0;
    while (step > 0.0 && x <= end) || (step < 0.0 && x >= end) {
        if n == 1000 {
            return Err(jsonata_rs::Error::D3137Error(
                "$range would return more than 1000 items".into(),
            ));
        }
        out.push(Value::number(ctx.arena, x));
        n += 1;
        x = start + step * n as f64;
    }
    Ok(out)
}

/// `$hash(data, algorithm)`: the hex digest of a string with MD5, SHA-1, SHA-256, SHA-384 or
/// SHA-512.
fn fn_hash<'a>(ctx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Native<'a> {
    use sha2::Digest;
    let (Some(data), Some(alg)) = (args.first(), args.get(1)) else {
        return Err(arg_error(&ctx, args.len()));
    };
    if !data.is_string() {
        return Err(arg_error(&ctx, 0));
    }
    if !alg.is_string() {
        return Err(arg_error(&ctx, 1));
    }
    let bytes = data.as_str().into_owned().into_bytes();
    let digest = match &*alg.as_str() {
        "MD5" => hex::encode(md5::Md5::digest(&bytes)),
        "SHA-1" => hex::encode(sha1::Sha1::digest(&bytes)),
        "SHA-256" => hex::encode(sha2::Sha256::digest(&bytes)),
        "SHA-384" => hex::encode(sha2::Sha384::digest(&bytes)),
        "SHA-512" => hex::encode(sha2::Sha512::digest(&bytes)),
        other => {
            return Err(jsonata_rs::Error::D3137Error(format!(
                "$hash: unsupported algorithm '{other}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
            )));
        }
    };
    Ok(Value::string(ctx.arena, &digest))
}

/// `$parse(text)`: a JSON text as a value.
fn fn_parse<'a>(ctx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Native<'a> {
    let Some(text) = args.first() else {
        return Err(arg_error(&ctx, 0));
    };
    if !text.is_string() {
        return Err(arg_error(&ctx, 0));
    }
    let json: Json = serde_json::from_str(&text.as_str()).map_err(|e| {
        jsonata_rs::Error::D3137Error(format!("$parse: the argument is not JSON: {e}"))
    })?;
    Ok(to_value(ctx.arena, &json))
}

fn to_value<'a>(arena: &'a Bump, json: &Json) -> &'a Value<'a> {
    match json {
        Json::Null => Value::null(arena),
        Json::Bool(b) => Value::bool(*b),
        Json::Number(n) => Value::number(arena, n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Value::string(arena, s),
        Json::Array(a) => {
            let out = Value::array_with_capacity(arena, a.len(), ArrayFlags::empty());
            for v in a {
                out.push(to_value(arena, v));
            }
            out
        }
        Json::Object(o) => {
            let out = Value::object_with_capacity(arena, o.len());
            for (k, v) in o {
                out.insert(k, to_value(arena, v));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(body: &str, states: Json) -> Result<Option<Json>, AslError> {
        let mut rng = Rng::new(7);
        let mut env = Env {
            rng: &mut rng,
            now_millis: 1_700_000_000_123,
        };
        evaluate(body, &[("states", &states)], &mut env)
    }

    #[test]
    fn reads_states_input_and_builds_objects() {
        let states = json!({"input": {"a": 2, "items": [1, 2, 3]}});
        let out = eval(
            r#" {"sum": $sum($states.input.items), "double": $states.input.a * 2} "#,
            states,
        )
        .unwrap();
        assert_eq!(out, Some(json!({"double": 4, "sum": 6})));
    }

    #[test]
    fn undefined_is_none_and_errors_are_query_evaluation_errors() {
        assert_eq!(
            eval("$states.input.missing", json!({"input": {}})).unwrap(),
            None
        );
        let err = eval(r#""a" + 1"#, json!({})).unwrap_err();
        assert_eq!(err.error, QUERY_EVALUATION_ERROR);
        assert!(err.cause.unwrap().contains("T2001"));
    }

    #[test]
    fn step_functions_functions() {
        let out = eval(
            r#"{"p": $partition([1,2,3,4,5], 2), "r": $range(0, 10, 5),
                "h": $hash("abc", "SHA-256"), "j": $parse('{"k": [1]}')}"#,
            json!({}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out["p"], json!([[1, 2], [3, 4], [5]]));
        assert_eq!(out["r"], json!([0, 5, 10]));
        assert_eq!(
            out["h"],
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(out["j"], json!({"k": [1]}));
    }

    #[test]
    fn clock_and_randomness_come_from_the_engine() {
        let body = r#"[$uuid(), $random(), $millis(), $now()]"#;
        let a = eval(body, json!({})).unwrap().unwrap();
        let b = eval(body, json!({})).unwrap().unwrap();
        assert_eq!(a, b, "same seed and time, same values");
        assert_eq!(a[2], json!(1_700_000_000_123u64));
        assert_eq!(a[3], json!("2023-11-14T22:13:20.123Z"));
        let mut expected = Rng::new(7);
        assert_eq!(a[0], json!(expected.uuid_v4()));
        let two = eval("[$uuid(), $uuid()]", json!({})).unwrap().unwrap();
        assert_ne!(two[0], two[1], "each call draws from the generator");
    }

    fn cached(body: &str, bindings: &[(&str, &Json)]) -> bool {
        let key = cache_key(body, bindings);
        CACHE.with(|c| c.borrow().entries.contains_key(&key))
    }

    #[test]
    fn a_cached_expression_sees_only_this_evaluations_bindings() {
        let body = " [$states.input.n, $x] ";
        let (one, two) = (json!({"input": {"n": 1}}), json!({"input": {"n": 2}}));
        let x = json!("x");
        let mut rng = Rng::new(7);
        let mut env = Env {
            rng: &mut rng,
            now_millis: 0,
        };
        let with_x = [("states", &one), ("x", &x)];
        assert_eq!(
            evaluate(body, &with_x, &mut env).unwrap(),
            Some(json!([1, "x"]))
        );
        assert!(cached(body, &with_x), "kept for the next evaluation");
        // Reused with other values; and without `$x`, which must not linger from the first.
        assert_eq!(
            evaluate(body, &[("states", &two), ("x", &x)], &mut env).unwrap(),
            Some(json!([2, "x"]))
        );
        assert_eq!(
            evaluate(body, &[("states", &two)], &mut env).unwrap(),
            Some(json!([2]))
        );
        // A variable named like one of our functions does not replace it, on reuse either.
        let hash = json!("not a function");
        for _ in 0..2 {
            assert_eq!(
                evaluate("$hash('a', 'MD5')", &[("hash", &hash)], &mut env).unwrap(),
                Some(json!("0cc175b9c0f1b6a831c399e269772661"))
            );
        }
        // What the expression binds stays in its own evaluation.
        let counter = " ($c := $exists($c) ? $c + 1 : 0; $c) ";
        for _ in 0..3 {
            assert_eq!(eval(counter, json!({})).unwrap(), Some(json!(0)));
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        // An arena grown past the limit is dropped rather than kept.
        let big = json!({"input": vec!["0123456789abcdef"; ARENA_LIMIT / 16]});
        let body = " $count($states.input) ";
        assert_eq!(
            eval(body, big.clone()).unwrap(),
            Some(json!(ARENA_LIMIT / 16))
        );
        assert!(!cached(body, &[("states", &big)]));
        // At most CACHE_ENTRIES expressions, the least recently used dropped first.
        let states = json!({});
        let first = " 0 ";
        eval(first, states.clone()).unwrap();
        for i in 1..=CACHE_ENTRIES {
            let body = format!(" {i} ");
            assert_eq!(eval(&body, states.clone()).unwrap(), Some(json!(i)));
        }
        assert!(CACHE.with(|c| c.borrow().entries.len()) <= CACHE_ENTRIES);
        assert!(!cached(first, &[("states", &states)]));
        assert!(cached(
            &format!(" {CACHE_ENTRIES} "),
            &[("states", &states)]
        ));
    }

    #[test]
    fn numbers_read_back_as_the_crates_text_gave_them() {
        // The former conversion: the crate's serialiser, then serde_json.
        let arena = Bump::new();
        let text =
            |n: f64| serde_json::from_str::<Json>(&Value::number(&arena, n).serialize(false));
        for n in [
            0.0,
            -0.0,
            1.0,
            -7.0,
            42.5,
            0.1 + 0.2,
            1.0 / 3.0,
            -2.0 / 3.0,
            1e15,
            1e16,
            9_007_199_254_740_991.0,
            9_007_199_254_740_993.0,
            1e20,
            1e21,
            1.5e300,
            1e-7,
            1.25e-7,
            123_456.789_012_345_67,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(number(&arena, n), text(n).unwrap(), "{n:e}");
        }
        assert_eq!(eval("0.1 + 0.2", json!({})).unwrap(), Some(json!(0.3)));
        assert_eq!(
            eval("[6 / 2, 7 / 2]", json!({})).unwrap(),
            Some(json!([3, 3.5]))
        );
    }

    #[test]
    fn results_convert_without_text() {
        let states = json!({"input": {"s": "a\"b\n\u{e9}\u{1}", "o": {"z": 1, "a": [true, null]}}});
        let out = eval(
            r#" {"copy": $states.input, "r": [1..3], "f": [$sum]} "#,
            states,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out["copy"],
            json!({"o": {"a": [true, null], "z": 1}, "s": "a\"b\n\u{e9}\u{1}"})
        );
        let keys: Vec<_> = out["copy"]["o"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["a", "z"], "sorted keys");
        assert_eq!(out["r"], json!([1, 2, 3]));
        assert_eq!(
            out["f"],
            json!([""]),
            "a nested function is \"\", as before"
        );
    }

    #[test]
    fn expression_strings_and_syntax_checks() {
        assert_eq!(expression("{% $x %}"), Some(" $x "));
        assert_eq!(expression("plain"), None);
        assert!(check("$states.input.").is_err());
        assert!(check("$states.input.a + 1").is_ok());
    }
}
