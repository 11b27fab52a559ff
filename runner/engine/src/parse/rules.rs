//! Retry, Catch and Choice rules.

use super::*;

impl Ps<'_> {
    pub(super) fn error_equals(
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

    pub(super) fn retriers(&mut self, o: &Map<String, Value>, ptr: &str) -> Vec<Retrier> {
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

    pub(super) fn catchers(&mut self, o: &Map<String, Value>, ptr: &str) -> Vec<Catcher> {
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
            let jsonata = self.ql == QueryLanguage::Jsonata;
            let fields: &[&str] = if jsonata {
                &["ErrorEquals", "Next", "Output", "Comment", "Assign"]
            } else {
                &["ErrorEquals", "Next", "ResultPath", "Comment", "Assign"]
            };
            if jsonata && co.contains_key("ResultPath") {
                self.err(
                    &format!("{p}/ResultPath"),
                    "E-QUERY-LANGUAGE",
                    "field 'ResultPath' is not allowed in a JSONata catcher (JSONPath only; use Output or Assign)",
                );
            }
            let mut allowed = fields.to_vec();
            if jsonata {
                // Refused above with its own message.
                allowed.push("ResultPath");
            }
            self.check_fields(co, &p, &allowed, "a catcher");
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
            let result_path = if jsonata {
                None
            } else {
                self.io_path(co, &p, "ResultPath", true)
            };
            let assign = self.assign(co, &p);
            out.push(Catcher {
                error_equals,
                next: next.unwrap_or_default(),
                result_path,
                assign,
                output: if jsonata {
                    co.get("Output").cloned()
                } else {
                    None
                },
                pointer: p,
            });
        }
        out
    }

    pub(super) fn choice(&mut self, o: &Map<String, Value>, ptr: &str) -> ChoiceState {
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

    pub(super) fn rule(&mut self, v: &Value, ptr: &str, top: bool) -> Opt<ChoiceRule> {
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
        if top && self.ql == QueryLanguage::Jsonata {
            return self.jsonata_rule(o, ptr, next);
        }
        for k in ["Condition", "Output"] {
            if o.contains_key(k) {
                self.err(
                    &format!("{ptr}/{k}"),
                    "E-QUERY-LANGUAGE",
                    format!("'{k}' in a choice rule is only allowed in JSONata states"),
                );
                return None;
            }
        }
        let mut ops: Vec<&String> = Vec::new();
        let mut unknown = Vec::new();
        for k in o.keys() {
            match k.as_str() {
                "Next" | "Comment" | "Variable" => {}
                // Top-level rules only, like Next (checked below).
                "Assign" => {}
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
            names.extend(
                ["And", "Or", "Not", "Variable", "Next", "Comment", "Assign"].map(String::from),
            );
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
                            Ok(p) => {
                                self.check_var_path(&kp, &opk, &p);
                                Operand::Path(p)
                            }
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
        let assign = if top {
            self.assign(o, ptr)
        } else {
            if o.contains_key("Assign") {
                self.err(
                    &format!("{ptr}/Assign"),
                    "E-CHOICE-RULE",
                    "'Assign' is only allowed on top-level choice rules",
                );
            }
            None
        };
        Some(ChoiceRule {
            kind,
            next,
            assign,
            output: None,
            pointer: ptr.to_string(),
        })
    }

    /// A JSONata choice rule: `Condition` (a `{% %}` boolean), `Next`, optional `Output` and
    /// `Assign`; the JSONPath comparison fields are refused.
    fn jsonata_rule(
        &mut self,
        o: &Map<String, Value>,
        ptr: &str,
        next: Opt<String>,
    ) -> Opt<ChoiceRule> {
        let mut ok = true;
        for k in o.keys() {
            if !matches!(
                k.as_str(),
                "Condition" | "Next" | "Comment" | "Assign" | "Output"
            ) {
                self.err(
                    &format!("{ptr}/{}", escape_token(k)),
                    "E-QUERY-LANGUAGE",
                    format!("field '{k}' is not allowed in a JSONata choice rule (use Condition)"),
                );
                ok = false;
            }
        }
        let cp = format!("{ptr}/Condition");
        let body = match o.get("Condition") {
            None => {
                self.err(
                    ptr,
                    "E-CHOICE-RULE",
                    "a JSONata choice rule needs 'Condition'",
                );
                None
            }
            Some(Value::String(s)) => match crate::jsonata::expression(s) {
                Some(b) => Some(b.to_string()),
                None => {
                    self.err_val(
                        &cp,
                        "E-CHOICE-RULE",
                        "'Condition' must be a JSONata expression string \"{% ... %}\"",
                    );
                    None
                }
            },
            Some(other) => {
                self.err_val(
                    &cp,
                    "E-CHOICE-RULE",
                    format!("'Condition' must be a JSONata expression string, got {other}"),
                );
                None
            }
        };
        let assign = self.assign(o, ptr);
        let body = body?;
        ok.then(|| ChoiceRule {
            kind: RuleKind::Condition(body),
            next,
            assign,
            output: o.get("Output").cloned(),
            pointer: ptr.to_string(),
        })
    }
}
