//! Tasks, timers and heartbeats; Retry and Catch.

use super::*;

impl Execution {
    pub(super) fn start_execution_timer(&mut self) {
        if let Some(t) = self.machine.timeout_seconds {
            let id = TimerId(format!("execution:timeout#{}", self.redrive_count));
            self.start_timer(
                id,
                None,
                self.now.add(Duration::from_secs(t)),
                TimerPurpose::ExecutionTimeout,
            );
        }
    }

    pub(super) fn start_timer(
        &mut self,
        id: TimerId,
        sid: Option<Sid>,
        fire_at: Timestamp,
        purpose: TimerPurpose,
    ) {
        self.out.push(Action::StartTimer {
            timer_id: id.clone(),
            fire_at,
            purpose,
        });
        self.timers.insert(
            id,
            TimerEntry {
                sid,
                fire_at,
                purpose,
            },
        );
    }

    pub(super) fn cancel_timer(&mut self, id: &TimerId) {
        if self.timers.remove(id).is_some() {
            self.out.push(Action::CancelTimer {
                timer_id: id.clone(),
            });
        }
    }

    // One argument per part of the RunTask action; bundling them would only add a type.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_task(
        &mut self,
        sid: Sid,
        st: &State,
        resource: &Resource,
        input: Value,
        timeout: Option<f64>,
        heartbeat: Option<f64>,
        task_token: Option<String>,
    ) {
        let now = self.now;
        let cur = self.cur(sid);
        let attempt = cur.attempt;
        let task_id = TaskId(format!("{}#{}", cur.id_base, attempt));
        let path = cur.path.clone();
        let timeout_d = timeout.map(secs);
        let heartbeat_d = heartbeat.map(secs);
        self.history(HistoryEvent::TaskScheduled {
            name: st.name.clone(),
            path: path.clone(),
            task_id: task_id.0.clone(),
            resource: resource.clone(),
            input: input.clone(),
            attempt,
            timeout_seconds: timeout,
            heartbeat_seconds: heartbeat,
        });
        let action = Action::RunTask {
            task_id: task_id.clone(),
            state_name: st.name.clone(),
            state_path: path,
            resource: resource.clone(),
            input,
            timeout: timeout_d,
            heartbeat: heartbeat_d,
            attempt,
            task_token,
        };
        self.out.push(action.clone());
        self.tasks
            .insert(task_id.clone(), TaskEntry { sid, action });
        let timeout_timer = timeout_d.map(|d| {
            let id = TimerId(format!("{task_id}:timeout"));
            self.start_timer(id.clone(), Some(sid), now.add(d), TimerPurpose::TaskTimeout);
            id
        });
        let heartbeat_timer = heartbeat_d.map(|d| {
            let id = TimerId(format!("{task_id}:heartbeat0"));
            self.start_timer(id.clone(), Some(sid), now.add(d), TimerPurpose::Heartbeat);
            id
        });
        self.cur_mut(sid).phase = Phase::Task {
            task_id,
            timeout_timer,
            heartbeat_timer,
            heartbeat: heartbeat_d,
            beats: 0,
        };
    }

    /// Clear a running task's bookkeeping (timers, registry); returns its scope.
    pub(super) fn end_task(&mut self, task_id: &TaskId) -> Option<Sid> {
        let entry = self.tasks.remove(task_id)?;
        let sid = entry.sid;
        let phase = std::mem::replace(&mut self.cur_mut(sid).phase, Phase::Idle);
        if let Phase::Task {
            timeout_timer,
            heartbeat_timer,
            ..
        } = phase
        {
            for t in [timeout_timer, heartbeat_timer].into_iter().flatten() {
                self.cancel_timer(&t);
            }
        }
        Some(sid)
    }

    pub(super) fn task_done(&mut self, task_id: TaskId, result: Result<Value, AslError>) {
        let Some(sid) = self.end_task(&task_id) else {
            return;
        };
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let path = self.cur(sid).path.clone();
        match result {
            Ok(output) => {
                self.history(HistoryEvent::TaskSucceeded {
                    name: st.name.clone(),
                    path,
                    task_id: task_id.0,
                    output: output.clone(),
                });
                self.complete(sid, output);
            }
            Err(e) => {
                self.history(HistoryEvent::TaskFailed {
                    name: st.name.clone(),
                    path,
                    task_id: task_id.0,
                    error: e.error.clone(),
                    cause: e.cause.clone(),
                });
                self.state_failed(sid, e, false);
            }
        }
    }

    pub(super) fn heartbeat(&mut self, task_id: TaskId) {
        let Some(entry) = self.tasks.get(&task_id) else {
            return;
        };
        let sid = entry.sid;
        let now = self.now;
        let Phase::Task {
            heartbeat_timer,
            heartbeat: Some(d),
            beats,
            ..
        } = &mut self.cur_mut(sid).phase
        else {
            return;
        };
        *beats += 1;
        let (old, d, n) = (heartbeat_timer.take(), *d, *beats);
        if let Some(old) = old {
            self.cancel_timer(&old);
        }
        let id = TimerId(format!("{task_id}:heartbeat{n}"));
        self.start_timer(id.clone(), Some(sid), now.add(d), TimerPurpose::Heartbeat);
        if let Phase::Task {
            heartbeat_timer, ..
        } = &mut self.cur_mut(sid).phase
        {
            *heartbeat_timer = Some(id);
        }
    }

    pub(super) fn timer_fired(&mut self, id: TimerId) {
        let Some(t) = self.timers.remove(&id) else {
            return;
        };
        if t.sid
            .is_some_and(|s| self.scopes.get(&s).and_then(|s| s.cur.as_ref()).is_none())
        {
            return;
        }
        match t.purpose {
            TimerPurpose::ExecutionTimeout => {
                self.finish(
                    Status::TimedOut,
                    None,
                    Some(AslError::new(
                        names::TIMEOUT,
                        "The execution timed out (TimeoutSeconds exceeded)",
                    )),
                );
            }
            TimerPurpose::Wait => {
                let Some(sid) = t.sid else { return };
                let phase = std::mem::replace(&mut self.cur_mut(sid).phase, Phase::Idle);
                if let Phase::Wait { effective, .. } = phase {
                    self.wait_over(sid, effective);
                }
            }
            TimerPurpose::RetryBackoff => {
                let Some(sid) = t.sid else { return };
                self.cur_mut(sid).phase = Phase::Idle;
                self.exec(sid);
            }
            TimerPurpose::TaskTimeout | TimerPurpose::Heartbeat => {
                let Some(sid) = t.sid else { return };
                let Phase::Task { task_id, .. } = &self.cur(sid).phase else {
                    return;
                };
                let task_id = task_id.clone();
                self.end_task(&task_id);
                self.out.push(Action::CancelTask {
                    task_id: task_id.clone(),
                });
                let (m, idx) = self.state_of(sid);
                let st = &m.states[idx];
                let err = if t.purpose == TimerPurpose::TaskTimeout {
                    AslError::new(
                        names::TIMEOUT,
                        "The task did not finish within TimeoutSeconds",
                    )
                } else {
                    AslError::new(
                        names::HEARTBEAT_TIMEOUT,
                        "The task sent no heartbeat within HeartbeatSeconds",
                    )
                };
                self.history(HistoryEvent::TaskTimedOut {
                    name: st.name.clone(),
                    path: self.cur(sid).path.clone(),
                    task_id: task_id.0,
                    error: err.error.clone(),
                    cause: err.cause.clone(),
                });
                self.state_failed(sid, err, false);
            }
        }
    }

    /// The current state failed with `err`: Retry, then Catch, else the scope fails.
    pub(super) fn state_failed(&mut self, sid: Sid, err: AslError, from_branch: bool) {
        let (m, idx) = self.state_of(sid);
        let st = &m.states[idx];
        let err = err.in_state(&st.name, self.cur(sid).entered_event);
        let (retry, catch) = st
            .kind
            .outcome()
            .map_or((&[][..], &[][..]), |o| (o.retry, o.catch));
        // The first retrier whose ErrorEquals matches decides; if it is exhausted, go to Catch.
        if let Some((ri, r)) = retry
            .iter()
            .enumerate()
            .find(|(_, r)| error_matches(&r.error_equals, &err, from_branch))
        {
            let count = self.cur(sid).retriers[ri];
            if count < r.max_attempts {
                let mut delay = r.interval_seconds * r.backoff_rate.powi(count as i32);
                if let Some(max) = r.max_delay_seconds {
                    delay = delay.min(max);
                }
                if r.jitter == Jitter::Full {
                    delay *= self.rng.next_f64();
                }
                let delay = secs(delay);
                let now = self.now;
                let cur = self.cur_mut(sid);
                cur.retriers[ri] += 1;
                cur.retry_count += 1;
                cur.attempt += 1;
                let attempt = cur.attempt;
                let timer = TimerId(format!("{}#{}:retry", cur.id_base, attempt));
                let path = cur.path.clone();
                self.history(HistoryEvent::RetryScheduled {
                    name: st.name.clone(),
                    path,
                    error: err.error.clone(),
                    attempt,
                    delay_seconds: delay.as_secs_f64(),
                });
                if delay.is_zero() {
                    self.exec(sid);
                } else {
                    self.start_timer(
                        timer.clone(),
                        Some(sid),
                        now.add(delay),
                        TimerPurpose::RetryBackoff,
                    );
                    self.cur_mut(sid).phase = Phase::Backoff { timer };
                }
                return;
            }
        }
        if let Some(c) = catch
            .iter()
            .find(|c| error_matches(&c.error_equals, &err, from_branch))
        {
            let raw = self.cur(sid).input.clone();
            // The Catch's Assign reads the error output as `$`, like its ResultPath; its
            // values are stored in the scope of the state that failed.
            let r = if st.query_language == QueryLanguage::Jsonata {
                // Output and Assign read `$states.errorOutput` (Output defaults to it).
                self.catch_jsonata(sid, c, &err)
                    .and_then(|(out, assigned)| {
                        if let Some(a) = &assigned {
                            self.commit_assign(sid, a)?;
                        }
                        Ok((out, assigned))
                    })
            } else {
                self.eval_assign(sid, c.assign.as_ref(), &err.to_value())
                    .and_then(|assigned| {
                        if let Some(a) = &assigned {
                            self.commit_assign(sid, a)?;
                        }
                        let out = dataflow::apply_result_path(
                            c.result_path.as_ref(),
                            raw,
                            err.to_value(),
                        )?;
                        Ok((out, assigned))
                    })
            };
            match r {
                Ok((out, assigned)) => {
                    self.history(HistoryEvent::Caught {
                        name: st.name.clone(),
                        path: self.cur(sid).path.clone(),
                        error: err.error.clone(),
                        next: c.next.clone(),
                    });
                    if let Some(h) = HistoryEvent::exited(
                        &st.kind,
                        &st.name,
                        &self.cur(sid).path,
                        out.clone(),
                        assigned,
                    ) {
                        self.history(h);
                    }
                    self.goto(sid, &c.next, out);
                }
                Err(e) => self.queue.push_back(Work::ScopeDone {
                    sid,
                    result: Err(e),
                }),
            }
            return;
        }
        self.queue.push_back(Work::ScopeDone {
            sid,
            result: Err(err),
        });
    }
}
