//! YAML/JSON loading into a `serde_json::Value` plus a side table of source positions.
//!
//! We use `saphyr-parser` because it is maintained, YAML 1.2 (so `on`/`yes` stay strings, as in
//! JSON) and emits marked events, which gives a position for every key and value; the serde
//! based crates (serde_yaml_ng, serde_norway) only report positions for their own errors.

use crate::error::Pos;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// JSON pointer (RFC 6901) → source position of the value, and of the key for object members.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl SourceMap {
    /// Position of the value at `pointer`.
    pub fn value_pos(&self, pointer: &str) -> Option<Pos> {
        self.values.get(pointer).copied()
    }
    /// Position of the key of the member at `pointer` (None for array elements and the root).
    pub fn key_pos(&self, pointer: &str) -> Option<Pos> {
        self.keys.get(pointer).copied()
    }
    /// Best position for a message about `pointer`: its key, else its value, else the nearest
    /// ancestor that has one (so a missing field points at the object that lacks it).
    pub fn pos(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.key_pos(p).or_else(|| self.value_pos(p)) {
                return pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, col: 1 },
            }
        }
    }
}

/// Escape one JSON pointer reference token.
pub fn escape_token(s: &str) -> String {
    if s.contains(['~', '/']) {
        s.replace('~', "~0").replace('/', "~1")
    } else {
        s.to_string()
    }
}

/// A load error with position.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line() as u32,
        col: span.start.col() as u32 + 1,
    }
}

struct Loader<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Value>,
    map: SourceMap,
}

/// Parse YAML (or JSON) text into a value and its source map. Rejects duplicate keys,
/// multiple documents and non-scalar keys.
pub fn load(text: &str) -> Result<(Value, SourceMap), LoadError> {
    let mut l = Loader {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        map: SourceMap::default(),
    };
    let mut root = None;
    loop {
        let (ev, span) = l.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(LoadError {
                        pos: pos_of(&span),
                        message: "a runbook file must hold exactly one YAML document".into(),
                    });
                }
                let (ev, span) = l.next()?;
                if matches!(ev, Event::DocumentEnd) {
                    root = Some(Value::Null);
                    continue;
                }
                root = Some(l.node(ev, span, String::new())?);
            }
            Event::StreamEnd => break,
            _ => {
                return Err(LoadError {
                    pos: pos_of(&span),
                    message: "unexpected YAML event".into(),
                });
            }
        }
    }
    Ok((root.unwrap_or(Value::Null), l.map))
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), LoadError> {
        match self.events.next() {
            Some(Ok(x)) => Ok(x),
            Some(Err(e)) => Err(LoadError {
                pos: Pos {
                    line: e.marker().line() as u32,
                    col: e.marker().col() as u32 + 1,
                },
                message: format!("invalid YAML: {}", e.info()),
            }),
            None => Err(LoadError {
                pos: Pos { line: 1, col: 1 },
                message: "unexpected end of YAML".into(),
            }),
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span, ptr: String) -> Result<Value, LoadError> {
        let pos = pos_of(&span);
        self.map.values.insert(ptr.clone(), pos);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let v = scalar(&text, style, tag.as_deref())
                    .map_err(|message| LoadError { pos, message })?;
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::Alias(id) => self.anchors.get(&id).cloned().ok_or(LoadError {
                pos,
                message: "unknown YAML alias".into(),
            }),
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let child = format!("{ptr}/{}", items.len());
                    items.push(self.node(ev, span, child)?);
                }
                let v = Value::Array(items);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                let mut m = Map::new();
                loop {
                    let (ev, kspan) = self.next()?;
                    let key = match ev {
                        Event::MappingEnd => break,
                        Event::Scalar(text, ..) => text.into_owned(),
                        Event::Alias(id) => match self.anchors.get(&id) {
                            Some(Value::String(s)) => s.clone(),
                            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                            _ => {
                                return Err(LoadError {
                                    pos: pos_of(&kspan),
                                    message: "mapping keys must be scalars".into(),
                                });
                            }
                        },
                        _ => {
                            return Err(LoadError {
                                pos: pos_of(&kspan),
                                message: "mapping keys must be scalars".into(),
                            });
                        }
                    };
                    let kpos = pos_of(&kspan);
                    if m.contains_key(&key) {
                        return Err(LoadError {
                            pos: kpos,
                            message: format!("duplicate key '{key}'"),
                        });
                    }
                    let child = format!("{ptr}/{}", escape_token(&key));
                    self.map.keys.insert(child.clone(), kpos);
                    let (ev, vspan) = self.next()?;
                    let v = self.node(ev, vspan, child)?;
                    m.insert(key, v);
                }
                let v = Value::Object(m);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            _ => Err(LoadError {
                pos,
                message: "unexpected YAML event".into(),
            }),
        }
    }
}

/// Resolve a scalar with the YAML 1.2 core schema (plain scalars only; quoted ones are strings).
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    match tag {
        Some("!!str") | Some("tag:yaml.org,2002:str") => return Ok(Value::String(text.into())),
        Some("!!null") => return Ok(Value::Null),
        Some("!!bool") => {
            return match text {
                "true" | "True" | "TRUE" => Ok(Value::Bool(true)),
                "false" | "False" | "FALSE" => Ok(Value::Bool(false)),
                _ => Err(format!("'{text}' is not a boolean")),
            };
        }
        Some("!!int") | Some("!!float") => {
            return plain(text)
                .filter(Value::is_number)
                .ok_or_else(|| format!("'{text}' is not a number"));
        }
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.into()));
    }
    Ok(plain(text).unwrap_or_else(|| Value::String(text.into())))
}

fn plain(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    let b = text.as_bytes();
    let first = b[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None;
    }
    if let Some(h) = text.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(Value::from);
    }
    if let Some(o) = text.strip_prefix("0o") {
        return i64::from_str_radix(o, 8).ok().map(Value::from);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::from(i));
        }
        if let Ok(u) = text.trim_start_matches('+').parse::<u64>() {
            return Some(Value::from(u));
        }
    }
    // Float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    let mut i = 0;
    let d = digits.as_bytes();
    let mut mant = 0;
    while i < d.len() && d[i].is_ascii_digit() {
        i += 1;
        mant += 1;
    }
    if i < d.len() && d[i] == b'.' {
        i += 1;
        while i < d.len() && d[i].is_ascii_digit() {
            i += 1;
            mant += 1;
        }
    }
    if mant == 0 {
        return None;
    }
    if i < d.len() && (d[i] == b'e' || d[i] == b'E') {
        i += 1;
        if i < d.len() && (d[i] == b'-' || d[i] == b'+') {
            i += 1;
        }
        let s = i;
        while i < d.len() && d[i].is_ascii_digit() {
            i += 1;
        }
        if s == i {
            return None;
        }
    }
    if i != d.len() {
        return None;
    }
    text.trim_start_matches('+')
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_types() {
        let (v, m) = load("a: 1\nb:\n  - x\n  - 2.5\nc: yes\nd: null\n").unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"][1], 2.5);
        assert_eq!(v["c"], "yes");
        assert!(v["d"].is_null());
        assert_eq!(m.key_pos("/b"), Some(Pos { line: 2, col: 1 }));
        assert_eq!(m.value_pos("/b/1"), Some(Pos { line: 4, col: 5 }));
    }

    #[test]
    fn duplicate_keys_rejected() {
        let e = load("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, col: 1 });
        assert!(e.message.contains("duplicate key 'a'"));
    }

    #[test]
    fn json_is_yaml_and_keeps_order() {
        let (v, m) = load("{\"z\": 1,\n \"a\": {\"b\": [true, \"s\"]}}").unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["z", "a"]);
        assert_eq!(m.key_pos("/a"), Some(Pos { line: 2, col: 2 }));
    }
}
