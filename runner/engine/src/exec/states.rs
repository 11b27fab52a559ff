//! Entering states and running each state type's logic; leaving them.

use super::query;

/// How a Choice state is left: the next state, the evaluated Assign and the output.
type ChoiceExit = (String, Option<Map<String, Value>>, Value);
use super::*;
use crate::choice::first_match;
use fanout::FanoutSpec;
use vars::{assign_values, var_chain};

impl Execution {
    pub(super) fn enter(&mut self, sid: Sid, idx: usize, input: Value) {
        let now = self.now;
        let Some(scope) = self.scopes.get_mut(&sid) else {
            return;
        };
        let machine = scope.machine.clone();
        let st = &machine.states[idx];
        scope.visits[idx] += 1;
        let path = format!("{}{}", scope.prefix, st.name);
        let id_base = if scope.visits[idx] > 1 {
            format!("{path}~{}", scope.visits[idx])
        } else {
            path.clone()
        };
        let retriers = st.kind.outcome().map_or(0, |o| o.retry.len());
        let entered = HistoryEvent::entered(&st.kind, &st.name, &path, input.clone());
        scope.cur = Some(Cur {
            state: idx,
            input,
            entered: now,
            path,
            id_base,
            retry_count: 0,
            retriers: vec![0; retriers],
            attempt: 1,
            phase: Phase::Idle,
            entered_event: self.history_count + 1,
        });
        self.history(entered);
        self.exec(sid);
    }

    /// Run the current state's logic from its raw input (also used for retry attempts).
    pub(super) fn exec(&mut self, sid: Sid) {
        let Some(scope) = self.scopes.get(&sid) else {
            return;
        };
        let machine = scope.machine.clone();
        let cur = scope.cur.as_ref().expect("current state");
        let st = &machine.states[cur.state];
        // A fresh token per attempt, drawn from the execution's seeded PRNG so that a
        // replay of the journal reproduces it (a resumed runner waits on the same token).
        let task_token = match &st.kind {
            StateKind::Task(t) if t.wait_for_task_token => Some(format!(
                "{:016x}{:016x}",
                self.rng.next_u64(),
                self.rng.next_u64()
            )),
            _ => None,
        };
        let ci = CtxInfo {
            task_token: task_token.as_deref(),
            ..CtxInfo::at(&self.ctx, &self.input, self.redrive_count, &st.name, cur)
        };
        let build = || ci.value();
        let chain = var_chain(&self.scopes, sid);
        let ctx = Ctx::lazy(&build, ci.exec_input).with_vars(&chain);
        let raw = &cur.input;
        let rng = &mut self.rng;
        let effective = dataflow::apply_input_path(st.input_path.as_ref(), raw, &ctx);
        match &st.kind {
            StateKind::Pass(p) => {
                let now = self.now;
                let r = (|| {
                    let eff = effective?;
                    if st.query_language == QueryLanguage::Jsonata {
                        // Output defaults to the input; Assign sees the same `$states`.
                        let states = query::States::input(&eff);
                        let assigned = query::assign(st.assign.as_ref(), &states, &ctx, rng, now)?;
                        let out = match &st.output {
                            Some(o) => query::eval(o, &states, &ctx, rng, now, "Output")?,
                            None => eff.clone(),
                        };
                        return Ok((out, assigned));
                    }
                    let result = match (&p.result, &p.parameters) {
                        (Some(r), _) => r.clone(),
                        (None, Some(t)) => dataflow::apply_parameters(t, &eff, &ctx, rng)?,
                        (None, None) => eff,
                    };
                    // Assign's `$` is the Pass state's result.
                    let assigned = assign_values(st.assign.as_ref(), &result, &ctx, rng)?;
                    let out =
                        dataflow::apply_result_path(p.result_path.as_ref(), raw.clone(), result)?;
                    let out = dataflow::apply_output_path(st.output_path.as_ref(), out, &ctx)?;
                    Ok((out, assigned))
                })();
                drop(ctx);
                drop(chain);
                match r {
                    Ok((out, assigned)) => self.leave(sid, out, assigned),
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Succeed => {
                let now = self.now;
                let r = effective.and_then(|eff| match &st.output {
                    Some(o) if st.query_language == QueryLanguage::Jsonata => {
                        query::eval(o, &query::States::input(&eff), &ctx, rng, now, "Output")
                    }
                    _ => dataflow::apply_output_path(st.output_path.as_ref(), eff, &ctx),
                });
                drop(ctx);
                drop(chain);
                match r {
                    Ok(out) => {
                        self.history(HistoryEvent::SucceedStateExited {
                            name: st.name.clone(),
                            path: self.cur(sid).path.clone(),
                            output: out.clone(),
                        });
                        self.queue.push_back(Work::ScopeDone {
                            sid,
                            result: Ok(out),
                        });
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Fail(f) => {
                let now = self.now;
                let spec = |s: &Option<StringSpec>,
                            field: &str,
                            rng: &mut Rng|
                 -> Result<Option<String>, AslError> {
                    Ok(match s {
                        None => None,
                        Some(StringSpec::Jsonata(body)) => Some(query::string(
                            body,
                            field,
                            &query::States::input(raw),
                            &ctx,
                            rng,
                            now,
                        )?),
                        Some(StringSpec::Value(v)) => Some(v.clone()),
                        Some(StringSpec::Path(p)) => match dataflow::select(p, raw, &ctx) {
                            Some(Value::String(s)) => Some(s),
                            Some(other) => Some(other.to_string()),
                            None => {
                                return Err(AslError::runtime(format!(
                                    "the path '{}' could not be found in the input",
                                    p.as_str()
                                )));
                            }
                        },
                        Some(StringSpec::Intrinsic(e)) => {
                            match intrinsics::eval(
                                e,
                                &mut |p: &Path| dataflow::select(p, raw, &ctx),
                                rng,
                            )? {
                                Value::String(s) => Some(s),
                                other => Some(other.to_string()),
                            }
                        }
                    })
                };
                let r = spec(&f.error, "Error", rng)
                    .and_then(|e| Ok((e, spec(&f.cause, "Cause", rng)?)));
                drop(ctx);
                let err = match r {
                    Ok((error, cause)) => AslError {
                        error: error.unwrap_or_default(),
                        cause,
                    },
                    Err(e) => e,
                };
                self.queue.push_back(Work::ScopeDone {
                    sid,
                    result: Err(err),
                });
            }
            StateKind::Choice(c) if st.query_language == QueryLanguage::Jsonata => {
                let now = self.now;
                let r = effective.and_then(|eff| {
                    let states = query::States::input(&eff);
                    // The first rule whose Condition is true: its Next, Assign and Output;
                    // else Default with the state's own Assign and Output.
                    let mut chosen = None;
                    for rule in &c.choices {
                        if query::condition(&rule.kind, &states, &ctx, rng, now)? {
                            chosen = Some(rule);
                            break;
                        }
                    }
                    let (next, assign, output) = match chosen {
                        Some(rule) => (
                            rule.next.clone(),
                            rule.assign.as_ref(),
                            rule.output.as_ref().or(st.output.as_ref()),
                        ),
                        None => (c.default.clone(), st.assign.as_ref(), st.output.as_ref()),
                    };
                    let Some(n) = next else {
                        return Err(AslError::new(
                            names::NO_CHOICE_MATCHED,
                            "No Choice Rules matched and no Default was specified",
                        ));
                    };
                    let assigned = query::assign(assign, &states, &ctx, rng, now)?;
                    let out = match output {
                        Some(o) => query::eval(o, &states, &ctx, rng, now, "Output")?,
                        None => eff.clone(),
                    };
                    Ok((n, assigned, out))
                });
                drop(ctx);
                drop(chain);
                self.choice_done(sid, st, r);
            }
            StateKind::Choice(c) => {
                let r = effective.and_then(|eff| {
                    // A matching rule's Next and Assign; else Default and the state's Assign.
                    let (next, assign) = match first_match(&c.choices, &eff, &ctx)? {
                        Some(rule) => (rule.next.clone(), rule.assign.as_ref()),
                        None => (c.default.clone(), st.assign.as_ref()),
                    };
                    match next {
                        Some(n) => Ok((
                            n,
                            assign_values(assign, &eff, &ctx, rng)?,
                            dataflow::apply_output_path(st.output_path.as_ref(), eff, &ctx)?,
                        )),
                        None => Err(AslError::new(
                            names::NO_CHOICE_MATCHED,
                            "No Choice Rules matched and no Default was specified",
                        )),
                    }
                });
                drop(ctx);
                drop(chain);
                self.choice_done(sid, st, r);
            }
            StateKind::Wait(w) => {
                let now = self.now;
                let r = effective.and_then(|eff| {
                    let at = match &w.wait {
                        WaitSpec::Seconds(s) => now.add(Duration::from_secs(*s)),
                        WaitSpec::SecondsJsonata(body) => {
                            let n = query::number(
                                &NumberSpec::Jsonata(body.clone()),
                                "Seconds",
                                true,
                                (0.0, 99_999_999.0),
                                &query::States::input(&eff),
                                &ctx,
                                rng,
                                now,
                            )?;
                            now.add(Duration::from_secs(n as u64))
                        }
                        WaitSpec::TimestampJsonata(body) => {
                            query::timestamp(body, &query::States::input(&eff), &ctx, rng, now)?
                        }
                        WaitSpec::Timestamp(t) => Timestamp::parse(t)
                            .ok_or_else(|| AslError::runtime(format!("invalid timestamp '{t}'")))?,
                        WaitSpec::SecondsPath(p) => {
                            let n = positive_int_from(
                                &NumberSpec::Path(p.clone()),
                                &eff,
                                &ctx,
                                "SecondsPath",
                            )?;
                            now.add(Duration::from_secs(n as u64))
                        }
                        WaitSpec::TimestampPath(p) => match dataflow::select(p, &eff, &ctx) {
                            Some(Value::String(s)) => Timestamp::parse(&s).ok_or_else(|| {
                                AslError::runtime(format!(
                                    "TimestampPath: '{s}' is not an RFC 3339 timestamp"
                                ))
                            })?,
                            Some(other) => {
                                return Err(AslError::runtime(format!(
                                    "TimestampPath: expected a timestamp string, got {other}"
                                )));
                            }
                            None => {
                                return Err(AslError::runtime(format!(
                                    "TimestampPath: the path '{}' could not be found in the input",
                                    p.as_str()
                                )));
                            }
                        },
                    };
                    Ok((at, eff))
                });
                drop(ctx);
                drop(chain);
                match r {
                    Ok((at, eff)) if at <= now => self.wait_over(sid, eff),
                    Ok((at, eff)) => {
                        let id = TimerId(format!("{}:wait", self.cur(sid).id_base));
                        self.start_timer(id.clone(), Some(sid), at, TimerPurpose::Wait);
                        self.cur_mut(sid).phase = Phase::Wait {
                            timer: id,
                            effective: eff,
                        };
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Task(t) => {
                let now = self.now;
                let r = effective.and_then(|eff| {
                    let states = query::States::input(&eff);
                    let mut seconds = |s: &Option<NumberSpec>, field: &str| {
                        s.as_ref()
                            .map(|s| {
                                let range = (1.0, 99_999_999.0);
                                query::number(s, field, true, range, &states, &ctx, rng, now)
                            })
                            .transpose()
                    };
                    let timeout = seconds(&t.timeout, "TimeoutSeconds")?;
                    let heartbeat = seconds(&t.heartbeat, "HeartbeatSeconds")?;
                    let input = match (&t.parameters, &st.arguments) {
                        (Some(p), _) => dataflow::apply_parameters(p, &eff, &ctx, rng)?,
                        (None, Some(a)) => {
                            let states = query::States::input(&eff);
                            query::eval(a, &states, &ctx, rng, now, "Arguments")?
                        }
                        (None, None) => eff,
                    };
                    Ok((input, timeout, heartbeat))
                });
                drop(ctx);
                drop(chain);
                match r {
                    Ok((input, timeout, heartbeat)) => {
                        self.run_task(sid, st, &t.resource, input, timeout, heartbeat, task_token)
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Parallel(p) => {
                let now = self.now;
                let r = effective.and_then(|eff| match (&p.parameters, &st.arguments) {
                    (Some(t), _) => dataflow::apply_parameters(t, &eff, &ctx, rng),
                    (None, Some(a)) => {
                        query::eval(a, &query::States::input(&eff), &ctx, rng, now, "Arguments")
                    }
                    (None, None) => Ok(eff),
                });
                drop(ctx);
                drop(chain);
                match r {
                    Ok(input) => {
                        let inputs = vec![input; p.branches.len()];
                        self.fanout(sid, st, FanoutSpec::parallel(inputs))
                    }
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
            StateKind::Map(m) => {
                let now = self.now;
                let jsonata = st.query_language == QueryLanguage::Jsonata;
                let r = effective.and_then(|eff| {
                    let states = query::States::input(&eff);
                    let selected = match &m.items {
                        // JSONata `Items`: a literal array or an expression giving one.
                        Some(v) if jsonata => {
                            match query::eval(v, &states, &ctx, rng, now, "Items")? {
                                Value::Array(a) => Some(Value::Array(a)),
                                other => {
                                    let body = v
                                        .as_str()
                                        .and_then(crate::jsonata::expression)
                                        .unwrap_or("");
                                    return Err(query::unexpected(
                                        body, "Items", "an array", &other,
                                    ));
                                }
                            }
                        }
                        _ => dataflow::select(&m.items_path, &eff, &ctx),
                    };
                    let items = match selected {
                        Some(Value::Array(a)) => a,
                        Some(other) => {
                            return Err(AslError::runtime(format!(
                                "ItemsPath '{}' must select a JSON array, got {}",
                                m.items_path.as_str(),
                                crate::path::type_name(&other)
                            )));
                        }
                        None => return Err(dataflow::no_results(&m.items_path)),
                    };
                    let mut num = |s: &Option<NumberSpec>, field: &str, integer: bool| {
                        let range = if integer {
                            (0.0, f64::MAX)
                        } else {
                            (0.0, 100.0)
                        };
                        s.as_ref()
                            .map(|s| {
                                query::number(s, field, integer, range, &states, &ctx, rng, now)
                            })
                            .transpose()
                    };
                    let maxc = num(&m.max_concurrency, "MaxConcurrency", true)?;
                    let tc = num(&m.tolerated_failure_count, "ToleratedFailureCount", true)?;
                    let tp = num(
                        &m.tolerated_failure_percentage,
                        "ToleratedFailurePercentage",
                        false,
                    )?;
                    if let Some(p) = tp
                        && !(0.0..=100.0).contains(&p)
                    {
                        return Err(AslError::runtime(
                            "ToleratedFailurePercentage must be between 0 and 100",
                        ));
                    }
                    let inputs = match (&m.item_selector, &m.jsonata_item_selector) {
                        (None, Some(sel)) if jsonata => {
                            let mut v = Vec::with_capacity(items.len());
                            for (i, item) in items.iter().enumerate() {
                                let item_ci = CtxInfo {
                                    item: Some((i, item)),
                                    ..ci
                                };
                                let build = || item_ci.value();
                                let ctx = Ctx::lazy(&build, ci.exec_input).with_vars(&chain);
                                v.push(query::eval(sel, &states, &ctx, rng, now, "ItemSelector")?);
                            }
                            v
                        }
                        (None, _) => items,
                        (Some(sel), _) => {
                            let mut v = Vec::with_capacity(items.len());
                            for (i, item) in items.iter().enumerate() {
                                v.push(fanout::item_input(sel, &eff, &ci, &chain, i, item, rng)?);
                            }
                            v
                        }
                    };
                    Ok((inputs, maxc, tc, tp))
                });
                drop(ctx);
                drop(chain);
                match r {
                    Ok((inputs, maxc, tc, tp)) => self.fanout(
                        sid,
                        st,
                        FanoutSpec {
                            is_map: true,
                            inputs,
                            max_concurrency: maxc.unwrap_or(0.0) as usize,
                            tolerated_count: tc,
                            tolerated_pct: tp,
                        },
                    ),
                    Err(e) => self.state_failed(sid, e, false),
                }
            }
        }
    }

    /// Leave the current state with `output` (history Exited) and follow Next/End.
    /// `assigned` (the state's evaluated `Assign`) is stored first: its size checks can still
    /// fail the state.
    pub(super) fn leave(&mut self, sid: Sid, output: Value, assigned: Option<Map<String, Value>>) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        if let Some(a) = &assigned
            && let Err(e) = self.commit_assign(sid, a)
        {
            return self.state_failed(sid, e, false);
        }
        if let Some(h) = HistoryEvent::exited(
            &st.kind,
            &st.name,
            &self.cur(sid).path,
            output.clone(),
            assigned,
        ) {
            self.history(h);
        }
        if st.end {
            self.queue.push_back(Work::ScopeDone {
                sid,
                result: Ok(output),
            });
        } else if let Some(n) = &st.next {
            self.goto(sid, n, output);
        }
    }

    pub(super) fn goto(&mut self, sid: Sid, next: &str, input: Value) {
        let m = self.scopes[&sid].machine.clone();
        match m.index_of(next) {
            Some(i) => self.queue.push_back(Work::Enter {
                sid,
                state: i,
                input,
            }),
            None => self.queue.push_back(Work::ScopeDone {
                sid,
                result: Err(AslError::runtime(format!("state '{next}' not found"))),
            }),
        }
    }

    pub(super) fn wait_over(&mut self, sid: Sid, effective: Value) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let ci = CtxInfo {
            ec: &self.ctx,
            exec_input: &self.input,
            redrive_count: self.redrive_count,
            state: &st.name,
            entered: self.cur(sid).entered,
            retry_count: 0,
            item: None,
            task_token: None,
        };
        let build = || ci.value();
        let chain = var_chain(&self.scopes, sid);
        let ctx = Ctx::lazy(&build, ci.exec_input).with_vars(&chain);
        let r = if st.query_language == QueryLanguage::Jsonata {
            // Output defaults to the input; Assign sees the same `$states`.
            let (rng, now) = (&mut self.rng, self.now);
            let states = query::States::input(&effective);
            query::assign(st.assign.as_ref(), &states, &ctx, rng, now).and_then(|a| {
                let out = match &st.output {
                    Some(o) => query::eval(o, &states, &ctx, rng, now, "Output")?,
                    None => effective.clone(),
                };
                Ok((out, a))
            })
        } else {
            // Assign's `$` is the Wait state's effective input.
            assign_values(st.assign.as_ref(), &effective, &ctx, &mut self.rng).and_then(|a| {
                Ok((
                    dataflow::apply_output_path(st.output_path.as_ref(), effective, &ctx)?,
                    a,
                ))
            })
        };
        drop(ctx);
        drop(chain);
        self.cur_mut(sid).phase = Phase::Idle;
        match r {
            Ok((out, assigned)) => self.leave(sid, out, assigned),
            Err(e) => self.state_failed(sid, e, false),
        }
    }

    /// Task/Parallel/Map produced `result`: ResultSelector → ResultPath → OutputPath.
    /// Leaves a Choice state: `r` is the next state, the evaluated Assign and the output.
    fn choice_done(&mut self, sid: Sid, st: &State, r: Result<ChoiceExit, AslError>) {
        match r {
            Ok((next, assigned, out)) => {
                if let Some(a) = &assigned
                    && let Err(e) = self.commit_assign(sid, a)
                {
                    return self.state_failed(sid, e, false);
                }
                self.history(HistoryEvent::ChoiceStateExited {
                    name: st.name.clone(),
                    path: self.cur(sid).path.clone(),
                    output: out.clone(),
                    next: next.clone(),
                    assigned_variables: assigned,
                });
                self.goto(sid, &next, out);
            }
            Err(e) => self.state_failed(sid, e, false),
        }
    }

    pub(super) fn complete(&mut self, sid: Sid, result: Value) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let (selector, result_path) = st
            .kind
            .outcome()
            .map_or((None, None), |o| (o.result_selector, o.result_path));
        let cur = self.scopes[&sid].cur.as_ref().expect("current state");
        let ci = CtxInfo::at(&self.ctx, &self.input, self.redrive_count, &st.name, cur);
        let build = || ci.value();
        let chain = var_chain(&self.scopes, sid);
        let ctx = Ctx::lazy(&build, ci.exec_input).with_vars(&chain);
        let rng = &mut self.rng;
        let now = self.now;
        let r = (|| {
            if st.query_language == QueryLanguage::Jsonata {
                // Output defaults to the result; Assign and Output see the same `$states`.
                let states = query::States {
                    input: &cur.input,
                    result: Some(&result),
                    error_output: None,
                };
                let assigned = query::assign(st.assign.as_ref(), &states, &ctx, rng, now)?;
                let out = match &st.output {
                    Some(o) => query::eval(o, &states, &ctx, rng, now, "Output")?,
                    None => result.clone(),
                };
                return Ok((out, assigned));
            }
            let selected = match selector {
                Some(t) => dataflow::apply_result_selector(t, &result, &ctx, rng)?,
                None => result,
            };
            // Assign's `$` is the result after ResultSelector.
            let assigned = assign_values(st.assign.as_ref(), &selected, &ctx, rng)?;
            let out = dataflow::apply_result_path(result_path, cur.input.clone(), selected)?;
            Ok::<_, AslError>((out, assigned))
        })();
        let r = r.and_then(|(out, a)| {
            if st.query_language == QueryLanguage::Jsonata {
                return Ok((out, a));
            }
            Ok((
                dataflow::apply_output_path(st.output_path.as_ref(), out, &ctx)?,
                a,
            ))
        });
        drop(ctx);
        drop(chain);
        match r {
            Ok((out, assigned)) => self.leave(sid, out, assigned),
            Err(e) => self.state_failed(sid, e, false),
        }
    }
}
