//! State machines and the state types (Rules for Retry, Catch and Choice are in `rules`).

use super::*;

impl Ps<'_> {
    pub(super) fn machine(&mut self, v: &Value, ptr: &str, kind: MachineKind) -> StateMachine {
        let saved = self.state.take();
        let empty = StateMachine::new(String::new(), Vec::new(), ptr.to_string());
        let Value::Object(o) = v else {
            self.err_val(
                ptr,
                "E-FIELD-TYPE",
                "a state machine must be a mapping with StartAt and States",
            );
            self.state = saved;
            return empty;
        };
        let allowed: &[&str] = match kind {
            MachineKind::Top => &[
                "StartAt",
                "States",
                "Comment",
                "TimeoutSeconds",
                "Version",
                "QueryLanguage",
                "Runbook",
            ],
            MachineKind::Branch => &["StartAt", "States", "Comment"],
            MachineKind::Processor => &["StartAt", "States", "Comment", "ProcessorConfig"],
        };
        // Field errors of a branch are not "in" the enclosing state's own fields, but naming
        // the enclosing state still helps; keep it.
        self.state = saved.clone();
        self.check_fields(
            o,
            ptr,
            allowed,
            if kind == MachineKind::Top {
                "the top level"
            } else {
                "a branch"
            },
        );
        let start_at = self.get_str(o, ptr, "StartAt");
        if start_at.is_none() && !o.contains_key("StartAt") {
            self.err(ptr, "E-STARTAT-MISSING", "missing required field 'StartAt'");
        }
        let mut states = Vec::new();
        match o.get("States") {
            None => self.err(ptr, "E-STATES-MISSING", "missing required field 'States'"),
            Some(Value::Object(sm)) => {
                if sm.is_empty() {
                    self.err(
                        &format!("{ptr}/States"),
                        "E-STATES-MISSING",
                        "'States' must not be empty",
                    );
                }
                for (name, sv) in sm {
                    let sp = format!("{ptr}/States/{}", escape_token(name));
                    self.state = Some(name.clone());
                    if let Some(s) = self.state_def(name, sv, &sp) {
                        states.push(s);
                    }
                }
            }
            Some(_) => self.err_val(
                &format!("{ptr}/States"),
                "E-FIELD-TYPE",
                "'States' must be a mapping of state names to states",
            ),
        }
        self.state = saved;
        let mut m = StateMachine::new(start_at.unwrap_or_default(), states, ptr.to_string());
        m.comment = self.get_str(o, ptr, "Comment");
        if kind == MachineKind::Top {
            m.timeout_seconds = self.get_uint(o, ptr, "TimeoutSeconds", 1);
            m.version = self.get_str(o, ptr, "Version");
            m.query_language = self.get_str(o, ptr, "QueryLanguage");
        }
        if kind == MachineKind::Processor
            && let Some(pc) = o.get("ProcessorConfig")
        {
            let pcp = format!("{ptr}/ProcessorConfig");
            match pc {
                Value::Object(pco) => {
                    self.check_fields(pco, &pcp, &["Mode", "ExecutionType"], "ProcessorConfig");
                    if let Some(mode) = self.get_str(pco, &pcp, "Mode")
                        && mode != "INLINE"
                        && mode != "DISTRIBUTED"
                    {
                        self.err_val(
                            &format!("{pcp}/Mode"),
                            "E-MAP",
                            format!(
                                "ProcessorConfig.Mode must be INLINE or DISTRIBUTED, got '{mode}'"
                            ),
                        );
                    }
                }
                _ => self.err_val(&pcp, "E-FIELD-TYPE", "'ProcessorConfig' must be a mapping"),
            }
        }
        m
    }

    pub(super) fn query_language(
        &mut self,
        o: &Map<String, Value>,
        ptr: &str,
    ) -> Opt<QueryLanguage> {
        let q = self.get_str(o, ptr, "QueryLanguage")?;
        match q.as_str() {
            "JSONPath" => Some(QueryLanguage::JsonPath),
            "JSONata" => Some(QueryLanguage::Jsonata),
            other => {
                self.err_val(
                    &format!("{ptr}/QueryLanguage"),
                    "E-FIELD-TYPE",
                    format!("QueryLanguage must be 'JSONPath' or 'JSONata', got '{other}'"),
                );
                None
            }
        }
    }

    /// The state's query language and its field rules: JSONPath-only fields are refused in
    /// JSONata states, and every `{% %}` expression is syntax-checked. A JSONata top level
    /// cannot hold JSONPath states (Step Functions allows only the other direction).
    fn state_query_language(&mut self, ty: &str, o: &Map<String, Value>, ptr: &str) {
        let own = self.query_language(o, ptr);
        if own == Some(QueryLanguage::JsonPath) && self.top_ql == QueryLanguage::Jsonata {
            self.err_val(
                &format!("{ptr}/QueryLanguage"),
                "E-QUERY-LANGUAGE",
                "a JSONPath state is not allowed when the top-level QueryLanguage is JSONata",
            );
        }
        self.ql = own.unwrap_or(self.top_ql);
        if self.ql != QueryLanguage::Jsonata {
            return;
        }
        for k in o.keys() {
            let kp = format!("{ptr}/{}", escape_token(k));
            if JSONPATH_ONLY.contains(&k.as_str()) {
                self.err(
                    &kp,
                    "E-QUERY-LANGUAGE",
                    format!("field '{k}' is not allowed in a JSONata state (JSONPath only; use Arguments, Output or Assign)"),
                );
            } else if JSONATA_ONLY.contains(&k.as_str()) && !wired(ty, k) {
                self.err(
                    &kp,
                    "E-UNSUPPORTED",
                    format!("'{k}' in a JSONata {ty} state is not supported yet"),
                );
            }
        }
        for (k, v) in o {
            // Child machines are checked state by state.
            if matches!(k.as_str(), "Branches" | "ItemProcessor" | "Iterator") {
                continue;
            }
            let kp = format!("{ptr}/{}", escape_token(k));
            let evaluated = wired(ty, k);
            // Step Functions refuses at creation `$states.result` outside the Output and
            // Assign of a Task, Parallel or Map, and `$states.errorOutput` outside a
            // catcher's Output and Assign (transforming-data.html, "Reserved variable: $states").
            let avail = StatesAvail {
                result: matches!(ty, "Task" | "Parallel" | "Map")
                    && matches!(k.as_str(), "Output" | "Assign"),
                error_output: k == "Catch",
            };
            self.check_expressions(v, &kp, k, evaluated, avail);
        }
    }

    fn check_expressions(
        &mut self,
        v: &Value,
        vp: &str,
        field: &str,
        evaluated: bool,
        avail: StatesAvail,
    ) {
        match v {
            Value::String(s) => {
                let Some(body) = crate::jsonata::expression(s) else {
                    return;
                };
                if let Err(e) = crate::jsonata::check(body) {
                    self.err_val(
                        vp,
                        "E-JSONATA-SYNTAX",
                        format!("{field}: invalid JSONata expression: {e}"),
                    );
                } else if !evaluated {
                    self.err_val(
                        vp,
                        "E-UNSUPPORTED",
                        format!("{field}: JSONata expressions are not evaluated here yet"),
                    );
                } else {
                    let mut seen = Vec::new();
                    for f in super::states_refs::states_fields(body) {
                        let only = match f {
                            "result" if !avail.result => {
                                "the Output and Assign of Task, Parallel and Map states"
                            }
                            "errorOutput" if !avail.error_output => {
                                "the Output and Assign of a Catch"
                            }
                            _ => continue,
                        };
                        if seen.contains(&f) {
                            continue;
                        }
                        seen.push(f);
                        // Name a rule's or catcher's own field: "Catch Output".
                        let label = match field {
                            "Choices" | "Catch" => vp
                                .split(&format!("/{field}/"))
                                .nth(1)
                                .and_then(|rest| rest.split('/').nth(1))
                                .map_or(field.to_string(), |k| format!("{field} {k}")),
                            _ => field.to_string(),
                        };
                        self.err_val(
                            vp,
                            "E-JSONATA-STATES",
                            format!("{label}: '$states.{f}' is not available here; it exists only in {only}"),
                        );
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    self.check_expressions(x, &format!("{vp}/{i}"), field, evaluated, avail);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    let p = format!("{vp}/{}", escape_token(k));
                    self.check_expressions(x, &p, field, evaluated, avail);
                }
            }
            _ => {}
        }
    }

    pub(super) fn state_def(&mut self, name: &str, v: &Value, ptr: &str) -> Opt<State> {
        if name.chars().count() > 80 {
            self.err(
                ptr,
                "E-NAME-LONG",
                "state names must be at most 80 characters",
            );
        }
        let Value::Object(o) = v else {
            self.err_val(ptr, "E-FIELD-TYPE", "a state must be a mapping");
            return None;
        };
        let ty = match o.get("Type") {
            None => {
                self.err(ptr, "E-STATE-TYPE", "missing required field 'Type'");
                return None;
            }
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                self.err_val(
                    &format!("{ptr}/Type"),
                    "E-STATE-TYPE",
                    format!("'Type' must be a string, got {other}"),
                );
                return None;
            }
        };
        let Some((_, fields)) = FIELDS.iter().find(|(t, _)| *t == ty) else {
            let msg = match suggest(&ty, FIELDS.iter().map(|(t, _)| *t)) {
                Some(s) => format!("unknown state Type '{ty}' (did you mean '{s}'?)"),
                None => format!(
                    "unknown state Type '{ty}' (Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map)"
                ),
            };
            self.err_val(&format!("{ptr}/Type"), "E-STATE-TYPE", msg);
            return None;
        };
        let mut allowed: Vec<&str> = COMMON.to_vec();
        allowed.extend_from_slice(fields);
        if ty == "Map" {
            for k in UNSUPPORTED_MAP {
                if o.contains_key(*k) {
                    self.err(
                        &format!("{ptr}/{k}"),
                        "E-UNSUPPORTED",
                        format!("'{k}' (distributed Map) is not supported"),
                    );
                }
            }
            allowed.extend_from_slice(UNSUPPORTED_MAP);
        }
        self.state_query_language(&ty, o, ptr);
        if self.ql == QueryLanguage::Jsonata {
            // Refused above with their own message.
            allowed.retain(|k| !JSONPATH_ONLY.contains(k));
            allowed.extend(JSONATA_ONLY.iter().filter(|k| wired(&ty, k)));
            allowed.extend(JSONPATH_ONLY.iter().filter(|k| o.contains_key(**k)));
            allowed.extend(JSONATA_ONLY.iter().filter(|k| o.contains_key(**k)));
        }
        self.check_fields(o, ptr, &allowed, &format!("a {ty} state"));
        // Child states (branches, processors) set `ql` for themselves.
        let ql = self.ql;

        let comment = self.get_str(o, ptr, "Comment");
        let input_path = if fields.contains(&"InputPath") {
            self.io_path(o, ptr, "InputPath", false)
        } else {
            Some(Path::parse("$").unwrap())
        };
        let output_path = if fields.contains(&"OutputPath") {
            self.io_path(o, ptr, "OutputPath", false)
        } else {
            Some(Path::parse("$").unwrap())
        };

        // Next / End exclusivity for the states that transition.
        let (mut next, mut end) = (None, false);
        if fields.contains(&"Next") {
            next = self.get_str(o, ptr, "Next");
            end = match o.get("End") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    self.err_val(
                        &format!("{ptr}/End"),
                        "E-FIELD-TYPE",
                        format!("'End' must be a boolean, got {other}"),
                    );
                    false
                }
            };
            if o.contains_key("Next") && end {
                self.err(
                    &format!("{ptr}/End"),
                    "E-END-NEXT",
                    "a state cannot have both 'Next' and 'End: true'",
                );
            } else if !o.contains_key("Next") && !end {
                self.err(
                    ptr,
                    "E-END-NEXT",
                    "a state must have either 'Next' or 'End: true'",
                );
            }
        }

        let kind = match ty.as_str() {
            "Pass" => StateKind::Pass(PassState {
                result: o.get("Result").cloned(),
                parameters: self.template(o, ptr, "Parameters"),
                result_path: self.io_path(o, ptr, "ResultPath", true),
            }),
            "Task" => StateKind::Task(Box::new(self.task(o, ptr)?)),
            "Choice" => StateKind::Choice(self.choice(o, ptr)),
            "Wait" => StateKind::Wait(self.wait(o, ptr)?),
            "Succeed" => StateKind::Succeed,
            "Fail" => StateKind::Fail(self.fail(o, ptr)),
            "Parallel" => StateKind::Parallel(Box::new(self.parallel(o, ptr))),
            "Map" => StateKind::Map(Box::new(self.map(o, ptr))),
            _ => unreachable!(),
        };
        self.ql = ql;
        Some(State {
            name: name.to_string(),
            pointer: ptr.to_string(),
            comment,
            input_path,
            output_path,
            next,
            end,
            kind,
            assign: if fields.contains(&"Assign") {
                self.assign(o, ptr)
            } else {
                None
            },
            query_language: self.ql,
            arguments: o.get("Arguments").cloned(),
            output: o.get("Output").cloned(),
        })
    }

    /// In a JSONata state, the body of `key` when its value is a `{% %}` expression string.
    pub(super) fn jsonata_body(&self, o: &Map<String, Value>, key: &str) -> Opt<String> {
        if self.ql != QueryLanguage::Jsonata {
            return None;
        }
        let s = o.get(key)?.as_str()?;
        crate::jsonata::expression(s).map(str::to_string)
    }

    pub(super) fn duration(
        &mut self,
        o: &Map<String, Value>,
        ptr: &str,
        key: &str,
    ) -> Opt<NumberSpec> {
        let pkey = format!("{key}Path");
        if o.contains_key(key) && o.contains_key(&pkey) {
            self.err(
                &format!("{ptr}/{pkey}"),
                "E-TIMEOUT",
                format!("'{key}' and '{pkey}' are mutually exclusive"),
            );
        }
        if let Some(body) = self.jsonata_body(o, key) {
            return Some(NumberSpec::Jsonata(body));
        }
        if let Some(n) = self.get_uint(o, ptr, key, 1) {
            if n > 99_999_999 {
                self.err_val(
                    &format!("{ptr}/{key}"),
                    "E-TIMEOUT",
                    format!("'{key}' must be at most 99999999"),
                );
            }
            return Some(NumberSpec::Value(n as f64));
        }
        self.get_path(o, ptr, &pkey, true, false)
            .flatten()
            .map(NumberSpec::Path)
    }

    pub(super) fn task(&mut self, o: &Map<String, Value>, ptr: &str) -> Opt<TaskState> {
        let mut wait_for_task_token = false;
        let resource = match self.get_str(o, ptr, "Resource") {
            Some(r) if r.is_empty() || r == "plugin:" => {
                self.err_val(
                    &format!("{ptr}/Resource"),
                    "E-RESOURCE",
                    "'Resource' must not be empty",
                );
                Resource::Other(r)
            }
            Some(r) => {
                let (resource, wait) = Resource::parse_task(&r);
                wait_for_task_token = wait;
                resource
            }
            None => {
                if !o.contains_key("Resource") {
                    self.err(
                        ptr,
                        "E-RESOURCE",
                        "a Task needs a 'Resource' (plugin:<name>, a .wasm path or an ARN)",
                    );
                }
                Resource::Other(String::new())
            }
        };
        if o.get("Sha256").is_some_and(Value::is_number) {
            // An all-digit hash reads as a YAML number.
            self.err_val(
                &format!("{ptr}/Sha256"),
                "E-SHA256",
                "'Sha256' must be a string: quote the hash",
            );
        }
        let sha256 = if o.get("Sha256").is_some_and(Value::is_number) {
            None
        } else {
            self.get_str(o, ptr, "Sha256")
        };
        if let Some(h) = &sha256
            && (h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            self.err_val(
                &format!("{ptr}/Sha256"),
                "E-SHA256",
                "'Sha256' must be 64 hexadecimal characters",
            );
        }
        let mut capabilities = Vec::new();
        match o.get("Capabilities") {
            None => {}
            Some(Value::Array(a)) => {
                for (i, c) in a.iter().enumerate() {
                    let cp = format!("{ptr}/Capabilities/{i}");
                    match c {
                        Value::String(s) if valid_capability(s) => capabilities.push(s.clone()),
                        Value::String(s) => self.err_val(
                            &cp,
                            "E-CAPABILITY",
                            format!("capability '{s}' must look like 'service:Action' or 'service:Action on pattern'"),
                        ),
                        other => self.err_val(&cp, "E-CAPABILITY", format!("capabilities must be strings, got {other}")),
                    }
                }
            }
            Some(_) => self.err_val(
                &format!("{ptr}/Capabilities"),
                "E-CAPABILITY",
                "'Capabilities' must be a list of strings",
            ),
        }
        let timeout = self.duration(o, ptr, "TimeoutSeconds");
        let heartbeat = self.duration(o, ptr, "HeartbeatSeconds");
        if let (Some(NumberSpec::Value(t)), Some(NumberSpec::Value(h))) = (&timeout, &heartbeat)
            && h >= t
        {
            self.err_val(
                &format!("{ptr}/HeartbeatSeconds"),
                "E-TIMEOUT",
                "'HeartbeatSeconds' must be smaller than 'TimeoutSeconds'",
            );
        }
        Some(TaskState {
            resource,
            sha256,
            capabilities,
            parameters: self.template(o, ptr, "Parameters"),
            result_selector: self.template(o, ptr, "ResultSelector"),
            result_path: self.io_path(o, ptr, "ResultPath", true),
            retry: self.retriers(o, ptr),
            catch: self.catchers(o, ptr),
            timeout,
            heartbeat,
            wait_for_task_token,
        })
    }

    pub(super) fn wait(&mut self, o: &Map<String, Value>, ptr: &str) -> Opt<WaitState> {
        let present: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|k| o.contains_key(*k))
            .collect();
        if present.len() != 1 {
            self.err(
                ptr,
                "E-WAIT",
                "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath",
            );
            return None;
        }
        let wait = match present[0] {
            "Seconds" => match self.jsonata_body(o, "Seconds") {
                Some(body) => WaitSpec::SecondsJsonata(body),
                None => WaitSpec::Seconds(self.get_uint(o, ptr, "Seconds", 0)?),
            },
            "Timestamp" if self.jsonata_body(o, "Timestamp").is_some() => {
                WaitSpec::TimestampJsonata(self.jsonata_body(o, "Timestamp")?)
            }
            "Timestamp" => {
                let t = self.get_str(o, ptr, "Timestamp")?;
                if crate::timestamp::Timestamp::parse(&t).is_none() {
                    self.err_val(
                        &format!("{ptr}/Timestamp"),
                        "E-WAIT",
                        format!("'Timestamp' must be an RFC 3339 timestamp, got '{t}'"),
                    );
                    return None;
                }
                WaitSpec::Timestamp(t)
            }
            "SecondsPath" => {
                WaitSpec::SecondsPath(self.get_path(o, ptr, "SecondsPath", true, false)??)
            }
            _ => WaitSpec::TimestampPath(self.get_path(o, ptr, "TimestampPath", true, false)??),
        };
        Some(WaitState { wait })
    }

    pub(super) fn string_spec(
        &mut self,
        o: &Map<String, Value>,
        ptr: &str,
        key: &str,
    ) -> Opt<StringSpec> {
        let pkey = format!("{key}Path");
        if o.contains_key(key) && o.contains_key(&pkey) {
            self.err(
                &format!("{ptr}/{pkey}"),
                "E-FIELD-TYPE",
                format!("'{key}' and '{pkey}' are mutually exclusive"),
            );
        }
        if let Some(body) = self.jsonata_body(o, key) {
            return Some(StringSpec::Jsonata(body));
        }
        if let Some(s) = self.get_str(o, ptr, key) {
            return Some(StringSpec::Value(s));
        }
        let s = self.get_str(o, ptr, &pkey)?;
        let kp = format!("{ptr}/{pkey}");
        if intrinsics::is_intrinsic(&s) {
            match intrinsics::parse(&s) {
                Ok(e) => Some(StringSpec::Intrinsic(e)),
                Err(e) => {
                    self.err_val(&kp, "E-INTRINSIC-SYNTAX", format!("{pkey}: {e}"));
                    None
                }
            }
        } else {
            match Path::parse_reference(&s) {
                Ok(p) => {
                    self.check_var_path(&kp, &pkey, &p);
                    Some(StringSpec::Path(p))
                }
                Err(e) => {
                    self.err_val(&kp, "E-PATH-SYNTAX", format!("{pkey}: {e}"));
                    None
                }
            }
        }
    }

    pub(super) fn fail(&mut self, o: &Map<String, Value>, ptr: &str) -> FailState {
        FailState {
            error: self.string_spec(o, ptr, "Error"),
            cause: self.string_spec(o, ptr, "Cause"),
        }
    }

    pub(super) fn parallel(&mut self, o: &Map<String, Value>, ptr: &str) -> ParallelState {
        let mut branches = Vec::new();
        match o.get("Branches") {
            Some(Value::Array(a)) if !a.is_empty() => {
                for (i, b) in a.iter().enumerate() {
                    branches.push(Arc::new(self.machine(
                        b,
                        &format!("{ptr}/Branches/{i}"),
                        MachineKind::Branch,
                    )));
                }
            }
            Some(_) => self.err_val(
                &format!("{ptr}/Branches"),
                "E-PARALLEL",
                "'Branches' must be a non-empty list of state machines",
            ),
            None => self.err(ptr, "E-PARALLEL", "a Parallel state needs 'Branches'"),
        }
        ParallelState {
            branches,
            parameters: self.template(o, ptr, "Parameters"),
            result_selector: self.template(o, ptr, "ResultSelector"),
            result_path: self.io_path(o, ptr, "ResultPath", true),
            retry: self.retriers(o, ptr),
            catch: self.catchers(o, ptr),
        }
    }

    pub(super) fn map(&mut self, o: &Map<String, Value>, ptr: &str) -> MapState {
        let processor_key = match (o.contains_key("ItemProcessor"), o.contains_key("Iterator")) {
            (true, true) => {
                self.err(
                    &format!("{ptr}/Iterator"),
                    "E-MAP",
                    "'ItemProcessor' and the legacy 'Iterator' are mutually exclusive",
                );
                "ItemProcessor"
            }
            (true, false) => "ItemProcessor",
            (false, true) => "Iterator",
            (false, false) => {
                self.err(
                    ptr,
                    "E-MAP",
                    "a Map state needs 'ItemProcessor' (or the legacy 'Iterator')",
                );
                "ItemProcessor"
            }
        };
        let processor = match o.get(processor_key) {
            Some(v) => self.machine(v, &format!("{ptr}/{processor_key}"), MachineKind::Processor),
            None => StateMachine::new(String::new(), vec![], String::new()),
        };
        let mode = o
            .get(processor_key)
            .and_then(|p| p.pointer("/ProcessorConfig/Mode"))
            .and_then(Value::as_str)
            .unwrap_or("INLINE")
            .to_string();
        if o.contains_key("ItemSelector") && o.contains_key("Parameters") {
            self.err(
                &format!("{ptr}/Parameters"),
                "E-MAP",
                "'ItemSelector' and the legacy 'Parameters' are mutually exclusive",
            );
        }
        let jsonata = self.ql == QueryLanguage::Jsonata;
        let item_selector = if jsonata {
            // Evaluated as JSONata per item (see `jsonata_item_selector`).
            None
        } else if o.contains_key("ItemSelector") {
            self.template(o, ptr, "ItemSelector")
        } else {
            self.template(o, ptr, "Parameters")
        };
        let items_path = match self.get_path(o, ptr, "ItemsPath", true, false) {
            Some(Some(p)) => p,
            _ => Path::parse("$").unwrap(),
        };
        let number_or_path = |s: &mut Self, key: &str, percent: bool| -> Opt<NumberSpec> {
            let pkey = format!("{key}Path");
            if o.contains_key(key) && o.contains_key(&pkey) {
                s.err(
                    &format!("{ptr}/{pkey}"),
                    "E-MAP",
                    format!("'{key}' and '{pkey}' are mutually exclusive"),
                );
            }
            if let Some(body) = s.jsonata_body(o, key) {
                return Some(NumberSpec::Jsonata(body));
            }
            if o.contains_key(key) {
                let n = if percent {
                    let n = s.get_number(o, ptr, key)?;
                    if !(0.0..=100.0).contains(&n) {
                        s.err_val(
                            &format!("{ptr}/{key}"),
                            "E-MAP",
                            format!("'{key}' must be between 0 and 100"),
                        );
                    }
                    n
                } else {
                    s.get_uint(o, ptr, key, 0)? as f64
                };
                return Some(NumberSpec::Value(n));
            }
            s.get_path(o, ptr, &pkey, true, false)
                .flatten()
                .map(NumberSpec::Path)
        };
        let max_concurrency = number_or_path(self, "MaxConcurrency", false);
        let tolerated_failure_percentage = number_or_path(self, "ToleratedFailurePercentage", true);
        let tolerated_failure_count = number_or_path(self, "ToleratedFailureCount", false);
        let items = o.get("Items").cloned();
        if let Some(v) = &items
            && !v.is_array()
            && v.as_str()
                .is_none_or(|s| crate::jsonata::expression(s).is_none())
        {
            self.err_val(
                &format!("{ptr}/Items"),
                "E-FIELD-TYPE",
                "'Items' must be an array or a JSONata expression \"{% ... %}\" giving one",
            );
        }
        MapState {
            processor: Arc::new(processor),
            mode,
            items_path,
            item_selector,
            items,
            jsonata_item_selector: if jsonata {
                o.get("ItemSelector").cloned()
            } else {
                None
            },
            max_concurrency,
            tolerated_failure_percentage,
            tolerated_failure_count,
            result_selector: self.template(o, ptr, "ResultSelector"),
            result_path: self.io_path(o, ptr, "ResultPath", true),
            retry: self.retriers(o, ptr),
            catch: self.catchers(o, ptr),
        }
    }
}

/// Which optional members of `$states` a field's expressions may read.
#[derive(Clone, Copy)]
struct StatesAvail {
    result: bool,
    error_output: bool,
}

/// Fields of a JSONata state whose `{% %}` expressions the executor evaluates today.
fn wired(ty: &str, field: &str) -> bool {
    match ty {
        "Pass" => matches!(field, "Output" | "Assign"),
        // `Catch` holds the catchers' Output and Assign.
        "Task" => matches!(
            field,
            "Arguments" | "Output" | "Assign" | "TimeoutSeconds" | "HeartbeatSeconds" | "Catch"
        ),
        // `Choices` holds the rules' Condition, Output and Assign.
        "Choice" => matches!(field, "Output" | "Assign" | "Choices"),
        "Wait" => matches!(field, "Seconds" | "Timestamp" | "Output" | "Assign"),
        "Succeed" => field == "Output",
        "Fail" => matches!(field, "Error" | "Cause"),
        "Parallel" => matches!(field, "Arguments" | "Output" | "Assign" | "Catch"),
        "Map" => matches!(
            field,
            "Items"
                | "ItemSelector"
                | "Output"
                | "Assign"
                | "Catch"
                | "MaxConcurrency"
                | "ToleratedFailurePercentage"
                | "ToleratedFailureCount"
        ),
        _ => false,
    }
}
