//! Capabilities the executor answers itself, in front of the provider: fault
//! bookkeeping and the safety lever (`fault`), and game-day traffic sessions
//! (`traffic`). Everything else goes to the provider unchanged.
//!
//! Faults: the provider makes the effect (`InjectFault` returns a record whose details
//! are enough to undo it, `UndoFault` takes that record back); the executor assigns
//! ids, makes injection idempotent by client token, refuses it while the safety lever
//! is engaged, and keeps every fault in the journal so a fault injected before a crash
//! is undone after the resume. `runner-crash` is the executor's own fault: it SIGKILLs
//! the runner process driving a child execution when that child enters a given state.

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::types::fault::{Fault, FaultSpec, Lever};
use runbook_caps::{BoxFuture, CapCall, CapError, ConnectInfo, ErrorKind, Provider};
use runbook_engine::Timestamp;
use runbook_journal::{ExecutionRow, FaultRow, now_ms};
use serde_json::{Value, json};

use crate::{Runner, process_alive};

pub(crate) struct HostServices {
    runner: Runner,
    execution_id: String,
    provider: Arc<dyn Provider>,
}

impl HostServices {
    pub(crate) fn wrap(
        runner: Runner,
        row: &ExecutionRow,
        provider: Arc<dyn Provider>,
    ) -> Arc<dyn Provider> {
        Arc::new(HostServices {
            runner,
            execution_id: row.id.clone(),
            provider,
        })
    }

    /// For a plan: the lever is read from the journal; nothing is injected (the plan
    /// models fault and traffic calls itself).
    pub(crate) fn for_plan(runner: Runner, provider: Arc<dyn Provider>) -> Arc<dyn Provider> {
        Arc::new(HostServices {
            runner,
            execution_id: String::new(),
            provider,
        })
    }
}

fn rfc3339(ms: i64) -> String {
    Timestamp::from_unix_millis(ms).to_rfc3339()
}

fn internal(e: impl std::fmt::Display) -> CapError {
    CapError::internal(format!("journal: {e}"))
}

pub(crate) fn lever_engaged_error(reason: Option<&str>) -> CapError {
    CapError::new(
        ErrorKind::InvalidState,
        "LeverEngaged",
        format!(
            "the safety lever is engaged ({}): no fault is injected until `runbook lever release`",
            reason.unwrap_or("no reason given")
        ),
    )
}

impl HostServices {
    async fn fault(&self, call: CapCall) -> Result<Value, CapError> {
        let journal = self.runner.journal.clone();
        match call.action.as_str() {
            "GetLever" => {
                let l = journal.lever().map_err(internal)?;
                Ok(serde_json::to_value(Lever {
                    engaged: l.engaged,
                    reason: l.reason,
                    since: l.since_ms.map(rfc3339),
                })
                .expect("serializes"))
            }
            "DescribeFaults" => {
                let ids: Vec<String> = call.arg_as("ids")?;
                let rows = if ids.is_empty() {
                    journal
                        .faults_of(&self.tree_ids().map_err(internal)?)
                        .map_err(internal)?
                } else {
                    ids.iter()
                        .map(|id| {
                            journal.fault(id).map_err(|_| {
                                CapError::not_found("FaultNotFound", format!("no fault {id}"))
                            })
                        })
                        .collect::<Result<_, _>>()?
                };
                Ok(Value::Array(rows.into_iter().map(|r| r.record).collect()))
            }
            "InjectFault" => self.inject(call).await,
            "UndoFault" => self.undo(call).await,
            _ => Err(CapError::unsupported(&call, "runbook")),
        }
    }

    /// This execution and its ancestors: a game day's faults are its own and its
    /// children's.
    fn tree_ids(&self) -> runbook_journal::Result<Vec<String>> {
        let mut ids = vec![self.execution_id.clone()];
        let mut cur = self.runner.journal.execution(&self.execution_id)?;
        while let Some(p) = cur.parent_id.clone() {
            ids.push(p.clone());
            cur = self.runner.journal.execution(&p)?;
        }
        Ok(ids)
    }

    async fn inject(&self, call: CapCall) -> Result<Value, CapError> {
        let journal = self.runner.journal.clone();
        let spec: FaultSpec = call.arg_as("spec")?;
        if spec.client_token.is_empty() {
            return Err(CapError::invalid_parameter(
                "fault:InjectFault: client-token is required (it makes injection idempotent)",
            ));
        }
        if let Some(existing) = journal
            .fault_by_token(&spec.client_token)
            .map_err(internal)?
        {
            return Ok(existing.record);
        }
        let lever = journal.lever().map_err(internal)?;
        if lever.engaged {
            return Err(lever_engaged_error(lever.reason.as_deref()));
        }
        let params: Value = if spec.params.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&spec.params).map_err(|e| {
                CapError::invalid_parameter(format!("fault params must be a JSON object: {e}"))
            })?
        };
        let id = format!("fault-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let at = now_ms();
        let mut fault = if spec.kind == "runner-crash" {
            self.arm_runner_crash(&id, &spec, &params)?
        } else {
            let v = self.provider.call(call).await?;
            serde_json::from_value::<Fault>(v).map_err(|e| {
                CapError::internal(format!("provider returned a malformed fault record: {e}"))
            })?
        };
        fault.id = id.clone();
        if fault.injected_at.is_empty() {
            fault.injected_at = rfc3339(at);
        }
        if fault.state.is_empty() {
            fault.state = "active".into();
        }
        let row = FaultRow {
            id,
            execution_id: self.execution_id.clone(),
            client_token: spec.client_token.clone(),
            kind: spec.kind.clone(),
            state: fault.state.clone(),
            injected_ms: Timestamp::parse(&fault.injected_at)
                .map(|t| t.unix_millis())
                .unwrap_or(at),
            undone_ms: None,
            record: serde_json::to_value(&fault).expect("serializes"),
        };
        journal.put_fault(&row).map_err(internal)?;
        Ok(row.record)
    }

    async fn undo(&self, call: CapCall) -> Result<Value, CapError> {
        let journal = self.runner.journal.clone();
        let id: String = call.arg_as("id")?;
        let row = journal
            .fault(&id)
            .map_err(|_| CapError::not_found("FaultNotFound", format!("no fault {id}")))?;
        if row.state == "undone" {
            return Ok(row.record);
        }
        let mut fault: Fault = serde_json::from_value(row.record.clone())
            .map_err(|e| CapError::internal(format!("fault record: {e}")))?;
        if row.kind == "runner-crash" {
            fault.state = "undone".into();
        } else {
            let undo = CapCall {
                args: json!({"id": id, "fault": fault}),
                ..call
            };
            let v = self.provider.call(undo).await?;
            fault = serde_json::from_value(v).map_err(|e| {
                CapError::internal(format!("provider returned a malformed fault record: {e}"))
            })?;
            fault.id = row.id.clone();
        }
        let at = now_ms();
        fault.state = "undone".into();
        if fault.undone_at.is_none() {
            fault.undone_at = Some(rfc3339(at));
        }
        let record = serde_json::to_value(&fault).expect("serializes");
        journal
            .put_fault(&FaultRow {
                state: "undone".into(),
                undone_ms: Some(at),
                record: record.clone(),
                ..row
            })
            .map_err(internal)?;
        Ok(record)
    }

    /// `runner-crash`: watch the journal for a child execution of this tree (named
    /// `params.Execution`, default any) entering `spec.target` (a state name), then
    /// SIGKILL the runner process driving it. Only possible when children run in
    /// worker processes: killing ourselves would kill the game day too.
    fn arm_runner_crash(
        &self,
        id: &str,
        spec: &FaultSpec,
        params: &Value,
    ) -> Result<Fault, CapError> {
        if self.runner.config.worker.is_none() {
            return Err(CapError::new(
                ErrorKind::InvalidParameter,
                "UnsupportedOperation",
                "runner-crash needs child executions in runner processes of their own (the runbook CLI runs them so)",
            ));
        }
        let state = spec.target.clone();
        let name = params
            .get("Execution")
            .and_then(Value::as_str)
            .map(String::from);
        let journal = self.runner.journal.clone();
        let root = self.execution_id.clone();
        let fault_id = id.to_string();
        let deadline = Duration::from_secs(
            params
                .get("TimeoutSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(900),
        );
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            while start.elapsed() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if journal.fault(&fault_id).is_ok_and(|f| f.state != "active") {
                    return;
                }
                let Ok(children) = journal.children(&root) else {
                    continue;
                };
                for c in children.iter().filter(|c| c.status == "RUNNING") {
                    if name.as_deref().is_some_and(|n| n != c.name) {
                        continue;
                    }
                    let entered = journal.history(&c.id).is_ok_and(|h| {
                        h.iter().any(|e| {
                            e.kind.ends_with("StateEntered") && e.state.as_deref() == Some(&state)
                        })
                    });
                    if let (true, Some(pid)) = (entered, c.runner_pid)
                        && pid != std::process::id()
                        && process_alive(pid)
                    {
                        // SAFETY: kill(2) with a pid we read from the journal.
                        unsafe {
                            libc::kill(pid as i32, libc::SIGKILL);
                        }
                        tracing::warn!(
                            "runner-crash: SIGKILLed runner {pid} of {} ({}) in state {state}",
                            c.id,
                            c.name
                        );
                        if let Ok(mut f) = journal.fault(&fault_id) {
                            f.record["details"] = json!(
                                json!({
                                    "killed_pid": pid,
                                    "execution": c.id,
                                    "state": state,
                                    "at": rfc3339(now_ms()),
                                })
                                .to_string()
                            );
                            let _ = journal.put_fault(&f);
                        }
                        return;
                    }
                }
            }
        });
        Ok(Fault {
            id: id.to_string(),
            kind: spec.kind.clone(),
            target: spec.target.clone(),
            region: spec.region.clone(),
            state: "active".into(),
            injected_at: rfc3339(now_ms()),
            undone_at: None,
            details: json!({
                "armed": true,
                "state": spec.target,
                "execution": params.get("Execution"),
                "undo": "disarm if it has not fired; the parent resumes the killed child",
            })
            .to_string(),
        })
    }
}

impl Provider for HostServices {
    fn name(&self) -> &str {
        self.provider.name()
    }

    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        Box::pin(async move {
            match call.service.as_str() {
                "fault" => self.fault(call).await,
                "traffic" => {
                    crate::traffic::handle(&self.runner, &self.execution_id, &self.provider, call)
                        .await
                }
                _ => self.provider.call(call).await,
            }
        })
    }

    fn check<'a>(&'a self, call: &'a CapCall) -> BoxFuture<'a, Result<(), CapError>> {
        self.provider.check(call)
    }

    fn connect_info<'a>(
        &'a self,
        target: &'a runbook_caps::types::postgres::Target,
    ) -> BoxFuture<'a, Result<ConnectInfo, CapError>> {
        self.provider.connect_info(target)
    }
}
