//! JSONPath handling. Definite paths (`$.a.b[0]`, `$['x']`) are evaluated by a small walker
//! and are "reference paths"; anything else goes to `serde_json_path` (RFC 9535) and always
//! yields an array, as Step Functions (Jayway) does for indefinite paths.

use serde_json::{Map, Value};
use std::fmt;

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Field(String),
    Index(usize),
}

#[derive(Clone)]
enum Kind {
    Ref(Vec<Seg>),
    Query(Box<serde_json_path::JsonPath>),
}

/// A compiled JSONPath, rooted at the state input (`$`), the context object (`$$`) or a
/// workflow variable (`$name`).
#[derive(Clone)]
pub struct Path {
    text: String,
    context: bool,
    /// `$name...`: the variable's name (the path below applies to its value).
    var: Option<String>,
    kind: Kind,
}

/// Whether `name` is a valid variable name: Step Functions' rule is a Unicode identifier
/// (an ID_Start character, then ID_Continue characters; `_` is allowed first) of at most
/// [`MAX_VARIABLE_NAME_LEN`] characters. Approximated with alphanumeric / `_`.
pub fn valid_variable_name(name: &str) -> bool {
    let mut cs = name.chars();
    matches!(cs.next(), Some(c) if c.is_alphabetic() || c == '_')
        && cs.all(|c| c.is_alphanumeric() || c == '_')
        && name.chars().count() <= MAX_VARIABLE_NAME_LEN
}

/// Step Functions' maximum length of a variable name.
pub const MAX_VARIABLE_NAME_LEN: usize = 80;

/// The variable Step Functions reserves (JSONata states only).
pub const RESERVED_VARIABLE: &str = "states";

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({})", self.text)
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Path {
    /// Compile any JSONPath (`$...` or `$$...`).
    pub fn parse(text: &str) -> Result<Path, String> {
        let (context, rest) = if let Some(r) = text.strip_prefix("$$") {
            (true, r)
        } else if let Some(r) = text.strip_prefix('$') {
            (false, r)
        } else {
            return Err(format!("'{text}' is not a JSONPath (must start with '$')"));
        };
        // `$name.rest`: a variable reference; the name ends at the first `.` or `[`.
        let (var, rest) = match rest.chars().next() {
            Some(c) if !context && (c.is_alphabetic() || c == '_') => {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let name = &rest[..end];
                if !valid_variable_name(name) {
                    return Err(format!("'{text}': invalid variable name '{name}'"));
                }
                (Some(name.to_string()), &rest[end..])
            }
            _ => (None, rest),
        };
        if let Some(segs) = parse_ref(rest) {
            return Ok(Path {
                text: text.into(),
                context,
                var,
                kind: Kind::Ref(segs),
            });
        }
        let q = format!("${rest}");
        match serde_json_path::JsonPath::parse(&q) {
            Ok(p) => Ok(Path {
                text: text.into(),
                context,
                var,
                kind: Kind::Query(Box::new(p)),
            }),
            Err(e) => Err(format!("invalid JSONPath '{text}': {e}")),
        }
    }

    /// Compile a reference path: a path that identifies a single node.
    pub fn parse_reference(text: &str) -> Result<Path, String> {
        let p = Path::parse(text)?;
        if !p.is_reference() {
            return Err(format!(
                "'{text}' is not a reference path (only '.field', '['field']' and '[index]' are allowed)"
            ));
        }
        Ok(p)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// True for `$$...` paths into the context object.
    pub fn is_context(&self) -> bool {
        self.context
    }
    pub fn is_reference(&self) -> bool {
        matches!(self.kind, Kind::Ref(_))
    }
    /// The segments of a reference path.
    pub fn segments(&self) -> Option<&[Seg]> {
        match &self.kind {
            Kind::Ref(s) => Some(s),
            Kind::Query(_) => None,
        }
    }
    /// The path as Step Functions' JSONPath library prints it in errors: `$['a'][0]`
    /// (reference paths; other paths are returned as written).
    pub fn normalized(&self) -> String {
        let Kind::Ref(segs) = &self.kind else {
            return self.text.clone();
        };
        let mut out = String::from(if self.context { "$$" } else { "$" });
        if let Some(v) = &self.var {
            out.push_str(v);
        }
        for s in segs {
            match s {
                Seg::Field(f) => {
                    out.push_str("['");
                    out.push_str(f);
                    out.push_str("']");
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
    /// The workflow variable this path starts at (`$name...`), if any.
    pub fn variable(&self) -> Option<&str> {
        self.var.as_deref()
    }
    /// `$` itself.
    pub fn is_root(&self) -> bool {
        self.var.is_none() && matches!(&self.kind, Kind::Ref(s) if s.is_empty())
    }

    /// Evaluate against `root` (input or context object). `None` = the path selects nothing
    /// (only possible for reference paths; queries give an empty array).
    pub fn select(&self, root: &Value) -> Option<Value> {
        match &self.kind {
            Kind::Ref(segs) => get(root, segs).cloned(),
            Kind::Query(q) => Some(Value::Array(
                q.query(root).all().into_iter().cloned().collect(),
            )),
        }
    }

    /// Borrowing variant for reference paths (avoids a clone in Choice rules).
    pub fn select_ref<'v>(&self, root: &'v Value) -> Option<std::borrow::Cow<'v, Value>> {
        match &self.kind {
            Kind::Ref(segs) => get(root, segs).map(std::borrow::Cow::Borrowed),
            Kind::Query(_) => self.select(root).map(std::borrow::Cow::Owned),
        }
    }
}

fn get<'v>(mut v: &'v Value, segs: &[Seg]) -> Option<&'v Value> {
    for s in segs {
        v = match (s, v) {
            (Seg::Field(f), Value::Object(m)) => m.get(f)?,
            (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Write `value` at reference path `segs` inside `target`, creating intermediate objects.
/// Fails (States.ResultPathMatchFailure) when a step meets a non-object or a missing index.
pub fn set(target: &mut Value, segs: &[Seg], value: Value) -> Result<(), String> {
    let Some((last, init)) = segs.split_last() else {
        *target = value;
        return Ok(());
    };
    let mut cur = target;
    for s in init {
        let ok = match (s, &*cur) {
            (Seg::Field(_), Value::Object(_)) => true,
            (Seg::Index(i), Value::Array(a)) => *i < a.len(),
            _ => false,
        };
        if !ok {
            return Err(match s {
                Seg::Field(f) => format!("cannot set field '{f}' on {}", type_name(cur)),
                Seg::Index(i) => format!("cannot index [{i}] into {}", type_name(cur)),
            });
        }
        cur = match (s, cur) {
            (Seg::Field(f), Value::Object(m)) => m
                .entry(f.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            (Seg::Index(i), Value::Array(a)) => &mut a[*i],
            _ => unreachable!("checked above"),
        };
    }
    match last {
        Seg::Field(f) => match cur {
            Value::Object(m) => {
                m.insert(f.clone(), value);
                Ok(())
            }
            other => Err(format!("cannot set field '{f}' on {}", type_name(other))),
        },
        Seg::Index(i) => match cur {
            Value::Array(a) if *i < a.len() => {
                a[*i] = value;
                Ok(())
            }
            other => Err(format!("cannot set index [{i}] on {}", type_name(other))),
        },
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parse the part after `$` as a reference path; None if it is not one.
fn parse_ref(s: &str) -> Option<Vec<Seg>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut segs = Vec::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                // `$.['x']`: Step Functions' JSONPath (Jayway) takes a bracket after the dot.
                if b.get(i) == Some(&b'[') {
                    continue;
                }
                let start = i;
                while i < b.len() && !matches!(b[i], b'.' | b'[') {
                    if matches!(
                        b[i],
                        b'*' | b'?' | b'@' | b'(' | b')' | b'\'' | b'"' | b',' | b']'
                    ) || b[i].is_ascii_whitespace()
                    {
                        return None;
                    }
                    i += 1;
                }
                if start == i {
                    return None; // `..` recursive descent or trailing dot
                }
                segs.push(Seg::Field(s[start..i].to_string()));
            }
            b'[' => {
                i += 1;
                if i < b.len() && (b[i] == b'\'' || b[i] == b'"') {
                    let q = b[i];
                    i += 1;
                    let mut name = String::new();
                    loop {
                        if i >= b.len() {
                            return None;
                        }
                        if b[i] == b'\\' && i + 1 < b.len() {
                            name.push(b[i + 1] as char);
                            i += 2;
                            continue;
                        }
                        if b[i] == q {
                            break;
                        }
                        // Multi-byte chars: copy the whole char.
                        let ch = s[i..].chars().next()?;
                        name.push(ch);
                        i += ch.len_utf8();
                    }
                    i += 1;
                    if i >= b.len() || b[i] != b']' {
                        return None;
                    }
                    i += 1;
                    segs.push(Seg::Field(name));
                } else {
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    if start == i || i >= b.len() || b[i] != b']' {
                        return None;
                    }
                    segs.push(Seg::Index(s[start..i].parse().ok()?));
                    i += 1;
                }
            }
            _ => return None,
        }
    }
    Some(segs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_paths() {
        let p = Path::parse("$.a.b[1]['c d']").unwrap();
        assert!(p.is_reference());
        let v = json!({"a": {"b": [0, {"c d": 7}]}});
        assert_eq!(p.select(&v), Some(json!(7)));
        assert!(Path::parse("$$.Execution.Id").unwrap().is_context());
        assert!(Path::parse("$.my-key").unwrap().is_reference());
        let q = Path::parse("$.['a.b'].c[0]").unwrap();
        assert_eq!(q.normalized(), "$['a.b']['c'][0]");
        assert_eq!(q.select(&json!({"a.b": {"c": [5]}})), Some(json!(5)));
        assert_eq!(
            Path::parse("$['it\\'s']").unwrap().normalized(),
            "$['it's']"
        );
    }

    #[test]
    fn queries_yield_arrays() {
        let v = json!({"a": [{"x": 1}, {"x": 2}, {"y": 3}]});
        let p = Path::parse("$.a[*].x").unwrap();
        assert!(!p.is_reference());
        assert_eq!(p.select(&v), Some(json!([1, 2])));
        let f = Path::parse("$.a[?(@.x == 2)]").unwrap();
        assert_eq!(f.select(&v), Some(json!([{"x": 2}])));
        assert!(Path::parse("$.a[").is_err());
        assert!(Path::parse("a.b").is_err());
    }

    #[test]
    fn variable_paths() {
        let p = Path::parse("$order.items[0]").unwrap();
        assert_eq!(p.variable(), Some("order"));
        assert!(p.is_reference() && !p.is_root() && !p.is_context());
        assert_eq!(p.select(&json!({"items": [7]})), Some(json!(7)));
        let p = Path::parse("$_x").unwrap();
        assert_eq!(p.variable(), Some("_x"));
        assert!(p.segments().unwrap().is_empty());
        let q = Path::parse("$list[*].id").unwrap();
        assert_eq!(q.variable(), Some("list"));
        assert_eq!(
            q.select(&json!([{"id": 1}, {"id": 2}])),
            Some(json!([1, 2]))
        );
        assert_eq!(Path::parse("$.a").unwrap().variable(), None);
        assert_eq!(Path::parse("$$.Execution").unwrap().variable(), None);
        assert!(Path::parse(&format!("${}", "v".repeat(81))).is_err());
        assert!(valid_variable_name("déjà_vu1"));
        assert!(
            !valid_variable_name("1x") && !valid_variable_name("a-b") && !valid_variable_name("")
        );
    }

    #[test]
    fn set_creates_objects() {
        let mut v = json!({"a": 1});
        let p = Path::parse("$.b.c").unwrap();
        set(&mut v, p.segments().unwrap(), json!(2)).unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        let p = Path::parse("$.a.c").unwrap();
        assert!(set(&mut v, p.segments().unwrap(), json!(2)).is_err());
    }
}
