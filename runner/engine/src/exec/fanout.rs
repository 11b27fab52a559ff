//! Map and Parallel: running children (iterations, branches) and collecting their results.

use super::*;

/// What a Map or Parallel state fans out: one input per child and the Map's limits.
pub(super) struct FanoutSpec {
    pub is_map: bool,
    pub inputs: Vec<Value>,
    /// 0 = unlimited.
    pub max_concurrency: usize,
    pub tolerated_count: Option<f64>,
    pub tolerated_pct: Option<f64>,
}

impl FanoutSpec {
    pub fn parallel(inputs: Vec<Value>) -> Self {
        FanoutSpec {
            is_map: false,
            inputs,
            max_concurrency: 0,
            tolerated_count: None,
            tolerated_pct: None,
        }
    }
}

impl Execution {
    pub(super) fn fanout(&mut self, sid: Sid, st: &State, spec: FanoutSpec) {
        let FanoutSpec {
            is_map,
            inputs,
            max_concurrency,
            tolerated_count,
            tolerated_pct,
        } = spec;
        let n = inputs.len();
        let cur = self.cur(sid);
        let path = cur.path.clone();
        self.history(if is_map {
            HistoryEvent::MapStateStarted {
                name: st.name.clone(),
                path,
                length: n,
            }
        } else {
            HistoryEvent::ParallelStateStarted {
                name: st.name.clone(),
                path,
                branches: n,
            }
        });
        let mut f = Fanout {
            is_map,
            children: vec![None; n],
            results: vec![None; n],
            ok: vec![false; n],
            inputs,
            next_start: 0,
            running: 0,
            done: 0,
            failed: 0,
            max_concurrency,
            tolerated_count,
            tolerated_pct,
        };
        // After a redrive, children that succeeded before keep their output.
        let top_redrive = sid == 0 && self.preserved.is_some();
        if top_redrive && let Some(p) = self.preserved.take() {
            for (i, v) in p.into_iter().enumerate().take(n) {
                if let Some(v) = v {
                    f.results[i] = Some(v);
                    f.ok[i] = true;
                    f.done += 1;
                }
            }
        }
        self.cur_mut(sid).phase = Phase::Fanout(Box::new(f));
        self.start_children(sid);
        self.check_fanout_done(sid);
    }

    pub(super) fn start_children(&mut self, sid: Sid) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let cur = self.cur(sid);
        let base = if cur.attempt > 1 {
            format!("{}#{}", cur.id_base, cur.attempt)
        } else {
            cur.id_base.clone()
        };
        let path = cur.path.clone();
        loop {
            let Phase::Fanout(f) = &mut self.cur_mut(sid).phase else {
                return;
            };
            while f.next_start < f.children.len() && f.ok[f.next_start] {
                f.next_start += 1;
            }
            if f.next_start >= f.children.len()
                || (f.max_concurrency > 0 && f.running >= f.max_concurrency)
            {
                return;
            }
            let i = f.next_start;
            f.next_start += 1;
            f.running += 1;
            let input = if f.is_map {
                std::mem::take(&mut f.inputs[i])
            } else {
                f.inputs[i].clone()
            };
            let Some(machine) = st.kind.child_machine(i).cloned() else {
                return;
            };
            let prefix = if f.is_map {
                format!("{base}[{i}]/")
            } else {
                format!("{base}/branch[{i}]/")
            };
            let is_map = f.is_map;
            let child = self.new_scope(machine.clone(), prefix, Some((sid, i)));
            // Step Functions: a DISTRIBUTED Map's iterations cannot read outer variables.
            if let (StateKind::Map(mp), Some(c)) = (&st.kind, self.scopes.get_mut(&child)) {
                c.reads_parent = !mp.mode.eq_ignore_ascii_case("DISTRIBUTED");
            }
            if let Phase::Fanout(f) = &mut self.cur_mut(sid).phase {
                f.children[i] = Some(child);
            }
            if is_map {
                self.history(HistoryEvent::MapIterationStarted {
                    name: st.name.clone(),
                    path: path.clone(),
                    index: i,
                });
            }
            match machine.index_of(&machine.start_at) {
                Some(s) => self.queue.push_back(Work::Enter {
                    sid: child,
                    state: s,
                    input,
                }),
                None => self.queue.push_back(Work::ScopeDone {
                    sid: child,
                    result: Err(AslError::runtime("StartAt not found")),
                }),
            }
        }
    }

    pub(super) fn check_fanout_done(&mut self, sid: Sid) {
        let Phase::Fanout(f) = &mut self.cur_mut(sid).phase else {
            return;
        };
        if f.done < f.children.len() {
            return;
        }
        let results: Vec<Value> = f
            .results
            .iter_mut()
            .map(|r| r.take().unwrap_or(Value::Null))
            .collect();
        let is_map = f.is_map;
        self.cur_mut(sid).phase = Phase::Idle;
        let (m, idx) = self.state_of(sid);
        let (name, path) = (m.states[idx].name.clone(), self.cur(sid).path.clone());
        self.history(if is_map {
            HistoryEvent::MapStateSucceeded { name, path }
        } else {
            HistoryEvent::ParallelStateSucceeded { name, path }
        });
        self.complete(sid, Value::Array(results));
    }

    pub(super) fn child_done(&mut self, sid: Sid, i: usize, result: Result<Value, AslError>) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let path = self.cur(sid).path.clone();
        let Phase::Fanout(f) = &mut self.cur_mut(sid).phase else {
            return;
        };
        f.children[i] = None;
        f.running -= 1;
        let is_map = f.is_map;
        match result {
            Ok(v) => {
                f.results[i] = Some(v);
                f.ok[i] = true;
                f.done += 1;
                if is_map {
                    self.history(HistoryEvent::MapIterationSucceeded {
                        name: st.name.clone(),
                        path,
                        index: i,
                    });
                }
                self.start_children(sid);
                self.check_fanout_done(sid);
            }
            Err(e) => {
                let tolerant = f.tolerated_count.is_some() || f.tolerated_pct.is_some();
                let mut fail = Some(e.clone());
                if is_map && tolerant {
                    f.failed += 1;
                    f.done += 1;
                    f.results[i] = Some(e.to_value());
                    let total = f.children.len().max(1) as f64;
                    let over_count = f.tolerated_count.is_some_and(|c| f.failed as f64 > c);
                    let over_pct = f
                        .tolerated_pct
                        .is_some_and(|p| f.failed as f64 * 100.0 / total > p);
                    fail = (over_count || over_pct).then(|| {
                        AslError::new(
                            names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                            format!("The specified tolerated failure threshold was exceeded ({} failed item(s))", f.failed),
                        )
                    });
                }
                if is_map {
                    self.history(HistoryEvent::MapIterationFailed {
                        name: st.name.clone(),
                        path: path.clone(),
                        index: i,
                        error: e.error.clone(),
                        cause: e.cause.clone(),
                    });
                }
                match fail {
                    None => {
                        self.start_children(sid);
                        self.check_fanout_done(sid);
                    }
                    Some(err) => {
                        self.cancel_fanout(sid);
                        self.history(if is_map {
                            HistoryEvent::MapStateFailed {
                                name: st.name.clone(),
                                path,
                                error: err.error.clone(),
                                cause: err.cause.clone(),
                            }
                        } else {
                            HistoryEvent::ParallelStateFailed {
                                name: st.name.clone(),
                                path,
                                error: err.error.clone(),
                                cause: err.cause.clone(),
                            }
                        });
                        // Remember which children succeeded, for a redrive of this state.
                        self.state_failed(sid, err, true);
                    }
                }
            }
        }
    }

    /// Cancel every running child of the current fan-out (keeps results for redrive).
    pub(super) fn cancel_fanout(&mut self, sid: Sid) {
        let children: Vec<Sid> = match &mut self.cur_mut(sid).phase {
            Phase::Fanout(f) => {
                f.running = 0;
                f.children.iter_mut().filter_map(Option::take).collect()
            }
            _ => Vec::new(),
        };
        for c in children {
            self.cancel_scope(c);
        }
    }

    /// Cancel a scope and everything below it; the scope is removed.
    pub(super) fn cancel_scope(&mut self, sid: Sid) {
        let Some(scope) = self.scopes.get_mut(&sid) else {
            return;
        };
        let phase = scope
            .cur
            .as_mut()
            .map(|c| std::mem::replace(&mut c.phase, Phase::Idle));
        match phase {
            Some(Phase::Task {
                task_id,
                timeout_timer,
                heartbeat_timer,
                ..
            }) => {
                // Not registered if dropped after the history limit tripped.
                if self.tasks.remove(&task_id).is_some() {
                    self.out.push(Action::CancelTask { task_id });
                }
                for t in [timeout_timer, heartbeat_timer].into_iter().flatten() {
                    self.cancel_timer(&t);
                }
            }
            Some(Phase::Wait { timer, .. }) | Some(Phase::Backoff { timer }) => {
                self.cancel_timer(&timer)
            }
            Some(Phase::Fanout(f)) => {
                for c in f.children.into_iter().flatten() {
                    self.cancel_scope(c);
                }
            }
            _ => {}
        }
        if sid != 0 {
            self.scopes.remove(&sid);
        }
    }

    pub(super) fn scope_done(&mut self, sid: Sid, result: Result<Value, AslError>) {
        let Some(scope) = self.scopes.get(&sid) else {
            return;
        };
        match scope.parent {
            Some((parent, i)) => {
                self.scopes.remove(&sid);
                if self.scopes.contains_key(&parent) {
                    self.child_done(parent, i, result);
                }
            }
            None => match result {
                Ok(v) => self.finish(Status::Succeeded, Some(v), None),
                Err(e) => self.finish(Status::Failed, None, Some(e)),
            },
        }
    }
}

/// Iteration input of Map item `i`: ItemSelector evaluated with `$$.Map.Item`.
pub(super) fn item_input(
    sel: &Template,
    eff: &Value,
    ci: &CtxInfo,
    vars: &[&Map<String, Value>],
    i: usize,
    item: &Value,
    rng: &mut Rng,
) -> Result<Value, AslError> {
    let ci = CtxInfo {
        item: Some((i, item)),
        ..*ci
    };
    let build = || ci.value();
    let ctx = Ctx::lazy(&build, ci.exec_input).with_vars(vars);
    dataflow::apply_parameters(sel, eff, &ctx, rng)
}
