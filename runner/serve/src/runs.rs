//! Executions serve starts, and the loop that watches them: settles the ones that
//! ended (telling their schedule or watcher) and resumes the ones whose runner died.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use runbook_executor::{RunError, StartOptions, process_alive};
use runbook_journal::{JournalError, ServeRun, now_ms};
use serde_json::{Map, Value, json};

use crate::{Serve, schedules, watch};

/// Why serve did not start an execution.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// Another execution tree holds the environment (`E-ENV-BUSY`).
    #[error("environment {environment} is busy: held by execution {holder} ({holder_name})")]
    Busy {
        environment: String,
        holder: String,
        holder_name: String,
    },
    /// The execution already exists (a slot fired before a crash).
    #[error("execution {0} exists already")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    /// Fleet mode: serve's lease is not alive (no etcd quorum): it starts nothing.
    #[error("{0}")]
    Fleet(String),
    #[error("{0}")]
    Other(String),
}

/// What to start.
pub(crate) struct StartRequest<'a> {
    pub id: String,
    pub source: &'a str,
    pub subject: &'a str,
    pub slot_ms: Option<i64>,
    pub runbook: &'a Path,
    pub provider: &'a str,
    pub params: &'a Map<String, Value>,
}

impl Serve {
    /// Record the run, create the execution (the journal refuses a busy environment
    /// and a duplicate id), and start a worker to drive it. Callers hold `act`.
    pub(crate) fn start_execution(&self, req: &StartRequest) -> Result<String, StartError> {
        let journal = self.journal();
        if let Ok(row) = journal.execution(&req.id) {
            return Err(StartError::Exists(row.id));
        }
        if let Some(why) = self.fleet.as_ref().and_then(|f| f.refusal()) {
            return Err(StartError::Fleet(why));
        }
        let prepared = self.runner.prepare(req.runbook).map_err(|e| match e {
            RunError::Invalid(m) => StartError::Invalid(m),
            e => StartError::Other(format!("{e:#}")),
        })?;
        let input = runbook_engine::build_input(
            &prepared.runbook.meta,
            Value::Object(req.params.clone()),
            &[],
        )
        .map_err(|e| StartError::Invalid(format!("{}: {e}", req.runbook.display())))?;
        journal
            .add_serve_run(&ServeRun {
                execution_id: req.id.clone(),
                source: req.source.to_string(),
                subject: req.subject.to_string(),
                slot_ms: req.slot_ms,
                created_ms: now_ms(),
                settled: false,
            })
            .map_err(|e| StartError::Other(e.to_string()))?;
        let created = self.runner.create(
            &prepared,
            input,
            Some(req.provider),
            StartOptions {
                id: Some(req.id.clone()),
                parent_id: None,
            },
            None,
        );
        match created {
            Ok(row) => {
                // Fleet mode: serve created it under its own token; the worker claims
                // it with a new one, so serve gives the environment up first.
                if let Some(m) = self.runner.fleet() {
                    m.release(&row.id);
                }
                self.spawn_worker(&row.id);
                Ok(row.id)
            }
            Err(e) => {
                let _ = journal.delete_serve_run(&req.id);
                Err(match e {
                    RunError::Journal(JournalError::EnvironmentBusy {
                        environment,
                        holder,
                        holder_name,
                    }) => StartError::Busy {
                        environment,
                        holder,
                        holder_name,
                    },
                    RunError::Journal(JournalError::Sql(_))
                        if journal.execution(&req.id).is_ok() =>
                    {
                        StartError::Exists(req.id.clone())
                    }
                    RunError::Invalid(m) => StartError::Invalid(m),
                    e => StartError::Other(format!("{e:#}")),
                })
            }
        }
    }

    /// `runbook resume ID` in a worker process, its output appended to a log file.
    pub(crate) fn spawn_worker(&self, id: &str) {
        let log = self.log_dir.join(format!("{id}.log"));
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
        };
        let mut cmd = self.worker.command();
        cmd.arg("resume").arg(id).arg("--json").stdin(Stdio::null());
        if let Some(f) = &self.fleet {
            // Its own id in the fleet (owner keys show who drives what).
            let short: String = id.chars().take(8).collect();
            cmd.arg("--runner-id")
                .arg(format!("{}-worker-{short}", f.runner_id()));
        }
        match (open(), open()) {
            (Ok(out), Ok(err)) => {
                cmd.stdout(out).stderr(err);
            }
            _ => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        match cmd.spawn() {
            Ok(child) => {
                tracing::info!(execution = id, pid = child.id(), "worker started");
                self.children
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), child);
            }
            Err(e) => tracing::error!(execution = id, error = %e, "cannot start a worker"),
        }
    }

    /// Whether a worker serve started for `id` is still running (and reap it if not).
    pub(crate) fn worker_alive(&self, id: &str) -> bool {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        match children.get_mut(id) {
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                _ => {
                    children.remove(id);
                    false
                }
            },
            None => false,
        }
    }

    /// One pass over the runs serve started and has not settled.
    pub(crate) async fn tick_runs(self: &Arc<Self>) {
        let _guard = self.act.lock().await;
        let runs = match self.journal().serve_runs(true) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading serve runs");
                return;
            }
        };
        for run in runs {
            let row = match self.journal().execution(&run.execution_id) {
                Ok(row) => row,
                Err(JournalError::NotFound(_)) => {
                    // Recorded, then serve died before creating it.
                    let _ = self.journal().delete_serve_run(&run.execution_id);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading an execution");
                    continue;
                }
            };
            if row.status == "RUNNING" {
                let driven = row.runner_pid.is_some_and(process_alive);
                let fleet_refuses = self.fleet.as_ref().is_some_and(|f| !f.may_act());
                if !driven && !fleet_refuses && !self.worker_alive(&row.id) {
                    tracing::warn!(execution = %row.id, "no runner drives it; resuming");
                    let _ = self.journal().record_decision(
                        now_ms(),
                        "serve",
                        &run.subject,
                        "resume",
                        &json!({"execution_id": row.id, "source": run.source,
                                "why": "its runner is gone (serve or the worker was killed)"}),
                    );
                    self.spawn_worker(&row.id);
                }
                continue;
            }
            let succeeded = row.status == "SUCCEEDED";
            let at = now_ms();
            let _ = self.journal().record_decision(
                at,
                &run.source,
                &run.subject,
                "finished",
                &json!({"execution_id": row.id, "status": row.status,
                        "error": row.error, "cause": row.cause,
                        "duration_seconds": row.ended_ms.map(|e| (e - row.started_ms) as f64 / 1000.0)}),
            );
            match run.source.as_str() {
                "schedule" | "trigger" => {
                    schedules::finished(self, &run, &row.status, succeeded).await
                }
                "watcher" => watch::finished(self, &run, succeeded),
                _ => {}
            }
            let _ = self.journal().settle_serve_run(&row.id);
        }
    }
}

pub(crate) async fn run_loop(s: Arc<Serve>, mut rx: tokio::sync::watch::Receiver<bool>) {
    loop {
        s.tick_runs().await;
        if crate::pause(&mut rx, Duration::from_millis(500)).await {
            return;
        }
    }
}
