//! serve as the HTTP layer sees it: a snapshot of schedules, watchers, readiness,
//! executions and game days, and the control endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use runbook_http::{
    Backend, ControlError, ControlRequest, DurationSample, ExecutionCount, ExecutionPage,
    ExecutionView, GameDayView, ReadinessView, ScheduleView, SignalView, Status, WatcherView,
};
use runbook_journal::now_ms;
use runbook_scheduler::jiff::Timestamp;
use runbook_watcher::{Reading, Veto};
use serde_json::{Value, json};

use crate::runs::StartError;
use crate::{Serve, schedules, watch};

pub(crate) struct HttpBackend(pub Arc<Serve>);

/// Executions counted for metrics and durations (the journal keeps them all).
const SCAN: usize = 10_000;

/// Which serve source started each execution (`schedule:NAME`, `watcher:ENV`, ...).
fn sources(s: &Serve) -> HashMap<String, String> {
    s.journal()
        .serve_runs(false)
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.execution_id, format!("{}:{}", r.source, r.subject)))
        .collect()
}

fn reading_view(signal: &str, r: &Reading) -> SignalView {
    let (reading, detail) = match r {
        Reading::Healthy { detail } => ("healthy", detail),
        Reading::Failed { detail } => ("failed", detail),
        Reading::Unknown { detail } => ("unknown", detail),
    };
    SignalView {
        name: signal.to_string(),
        reading: reading.into(),
        detail: detail.clone(),
    }
}

pub(crate) fn status(s: &Serve) -> Status {
    let now = Timestamp::now();
    let journal = s.journal();
    let shared = s.shared();
    let schedules = s
        .cfg
        .schedules
        .iter()
        .map(|sc| {
            let e = shared
                .schedules
                .get(&sc.schedule.name)
                .cloned()
                .unwrap_or_default();
            let next = runbook_scheduler::next_fires(
                &sc.schedule,
                e.st.last_slot.unwrap_or(now).max(now),
                1,
            )
            .into_iter()
            .next()
            .map(|(_, at)| at);
            ScheduleView {
                name: sc.schedule.name.clone(),
                runbook: sc.runbook.display().to_string(),
                environment: sc.environment.clone(),
                expression: sc.expression_text.clone(),
                timezone: sc.schedule.timezone_name(),
                next_fire_unix_ms: next.map(|t| t.as_millisecond()),
                next_fire_local: next.map(|t| {
                    t.to_zoned_datetime(sc.schedule.timezone.clone())
                        .strftime("%Y-%m-%d %a %H:%M:%S %:z")
                        .to_string()
                }),
                paused: if !sc.enabled {
                    Some("disabled in the config".into())
                } else if e.st.failed_paused && e.st.paused.is_none() {
                    Some("paused after a failed run (PauseOnFailure)".into())
                } else {
                    e.st.paused.clone()
                },
                last_execution: e.last_execution.clone(),
                last_status: e.last_status.clone(),
                fired_total: e.fired,
                skipped_total: e.skipped,
                missed_total: e.missed,
            }
        })
        .collect();
    let watchers = s
        .cfg
        .environments
        .iter()
        .map(|env| {
            let e = shared.watchers.get(&env.name);
            let last = e.and_then(|e| e.last.as_ref());
            WatcherView {
                environment: env.name.clone(),
                mode: env.watcher.mode.name().to_string(),
                verdict: last
                    .map(|d| d.verdict.name().to_string())
                    .unwrap_or_else(|| "unknown".into()),
                consecutive_failures: last.map(|d| d.consecutive_failed).unwrap_or(0),
                failed_rounds_needed: env.watcher.failed_rounds,
                last_round_ms: last.map(|d| d.at_ms),
                signals: last
                    .and_then(|d| d.evidence.get("readings"))
                    .and_then(|r| {
                        serde_json::from_value::<Vec<(runbook_watcher::Signal, Reading)>>(r.clone())
                            .ok()
                    })
                    .map(|rs| {
                        rs.iter()
                            .map(|(sig, r)| reading_view(sig.name(), r))
                            .collect()
                    })
                    .unwrap_or_default(),
                last_decision: last.map(runbook_watcher::summary),
                cooldown_until_ms: last.and_then(|d| {
                    d.vetoes.iter().find_map(|v| match v {
                        Veto::Cooldown { until_ms } => Some(*until_ms),
                        _ => None,
                    })
                }),
                failovers_total: e.map(|e| e.failovers_total).unwrap_or(0),
                paused: e.and_then(|e| e.paused.clone()),
            }
        })
        .collect();
    let readiness = s
        .cfg
        .environments
        .iter()
        .filter(|env| env.readiness_interval.is_some())
        .map(|env| {
            let r = shared.readiness.get(&env.name).cloned().unwrap_or_default();
            ReadinessView {
                environment: env.name.clone(),
                ready: r.ready.unwrap_or(false),
                reasons: if r.ready.is_none() {
                    vec!["not checked yet".into()]
                } else {
                    r.reasons
                },
                checked_ms: r.checked_ms,
            }
        })
        .collect();
    drop(shared);

    let sources = sources(s);
    let all = journal.executions(SCAN).unwrap_or_default();
    let roots: Vec<_> = all.iter().filter(|r| r.parent_id.is_none()).collect();
    let executions = roots
        .iter()
        .take(20)
        .map(|r| ExecutionView {
            id: r.id.clone(),
            runbook: r.name.clone(),
            status: r.status.clone(),
            started_ms: r.started_ms,
            ended_ms: r.ended_ms,
            environment: r.environment.clone(),
            source: sources.get(&r.id).cloned().unwrap_or_else(|| "cli".into()),
        })
        .collect();
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    let mut durations = Vec::new();
    for r in &all {
        *counts
            .entry((r.name.clone(), r.status.clone()))
            .or_default() += 1;
        if let Some(end) = r.ended_ms {
            durations.push(DurationSample {
                runbook: r.name.clone(),
                status: r.status.clone(),
                seconds: (end - r.started_ms).max(0) as f64 / 1000.0,
            });
        }
    }
    let mut execution_counts: Vec<ExecutionCount> = counts
        .into_iter()
        .map(|((runbook, status), count)| ExecutionCount {
            runbook,
            status,
            count,
        })
        .collect();
    execution_counts.sort_by(|a, b| (&a.runbook, &a.status).cmp(&(&b.runbook, &b.status)));
    let gamedays = roots
        .iter()
        .filter(|r| r.name == "gameday" && r.status != "RUNNING")
        .take(10)
        .filter_map(|r| {
            let g = runbook_executor::report::gameday_report(journal, &r.id).ok()??;
            let json: Value =
                serde_json::from_str(&runbook_report::render(&g, runbook_report::Format::Json))
                    .ok()?;
            Some(GameDayView {
                execution_id: r.id.clone(),
                started_ms: r.started_ms,
                verdict: json["verdict"].as_str().unwrap_or("aborted").to_string(),
                rto_seconds: g.measured.rto_seconds,
                lost_writes: Some(g.measured.lost_writes),
                fault: Some(g.fault.kind.clone()),
            })
        })
        .collect();
    let lever = journal.lever().ok().filter(|l| l.engaged).map(|l| {
        format!(
            "engaged by {}{}",
            l.actor.unwrap_or_else(|| "someone".into()),
            l.reason.map(|r| format!(": {r}")).unwrap_or_default()
        )
    });
    Status {
        generated_ms: now_ms(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_path: s.cfg.path.display().to_string(),
        lever,
        schedules,
        executions,
        execution_counts,
        durations,
        watchers,
        readiness,
        gamedays,
        fleet: s.fleet.as_ref().map(|f| crate::fleet::view(&f.status())),
    }
}

/// `watcher:ENV` names a watcher; anything else a schedule.
fn split_target(t: Option<&str>) -> (Option<&str>, Option<&str>, bool) {
    match t {
        None => (None, None, true),
        Some(t) => match t.strip_prefix("watcher:") {
            Some(env) => (None, Some(env), false),
            None => (Some(t), None, false),
        },
    }
}

impl HttpBackend {
    fn set(&self, r: ControlRequest, pause: bool) -> Result<Value, ControlError> {
        let reason = if pause {
            Some(
                r.reason
                    .clone()
                    .unwrap_or_else(|| "paused over HTTP".into()),
            )
        } else {
            None
        };
        let (sched, env, all) = split_target(r.target.as_deref());
        let mut changed = Vec::new();
        if sched.is_some() || all {
            changed.extend(
                schedules::set_paused(&self.0, sched, reason.as_deref())
                    .map_err(ControlError::NotFound)?,
            );
        }
        if env.is_some() || all {
            changed.extend(
                watch::set_paused(&self.0, env, reason.as_deref())
                    .map_err(ControlError::NotFound)?
                    .into_iter()
                    .map(|e| format!("watcher:{e}")),
            );
        }
        Ok(json!({"paused": pause, "reason": reason, "targets": changed}))
    }
}

impl Backend for HttpBackend {
    fn status(&self) -> Status {
        status(&self.0)
    }

    fn execution(&self, id: &str) -> Option<ExecutionPage> {
        let row = self.0.journal().resolve(id).ok()?;
        let show_text = (self.0.show)(&row.id).unwrap_or_default();
        let report_html = runbook_executor::report::gameday_report(self.0.journal(), &row.id)
            .ok()
            .flatten()
            .map(|g| runbook_report::render(&g, runbook_report::Format::Html));
        Some(ExecutionPage {
            id: row.id,
            show_text,
            report_html,
        })
    }

    fn dashboard(&self, name: &str) -> Option<String> {
        self.0.dashboards.as_ref()?.html(name)
    }

    fn dashboards(&self) -> Vec<String> {
        self.0
            .dashboards
            .as_ref()
            .map(|d| d.list())
            .unwrap_or_default()
    }

    fn pause(&self, r: ControlRequest) -> Result<Value, ControlError> {
        self.set(r, true)
    }

    fn resume(&self, r: ControlRequest) -> Result<Value, ControlError> {
        self.set(r, false)
    }

    fn trigger(&self, r: ControlRequest) -> Result<Value, ControlError> {
        let Some(name) = r.target else {
            return Err(ControlError::Invalid(
                "trigger needs a target: the schedule to run now".into(),
            ));
        };
        let s = self.0.clone();
        let res = tokio::runtime::Handle::current().block_on(schedules::trigger(&s, &name));
        match res {
            Ok(id) => Ok(json!({"execution_id": id, "schedule": name})),
            Err(StartError::Invalid(m)) if m.starts_with("no schedule") => {
                Err(ControlError::NotFound(m))
            }
            Err(e @ StartError::Busy { .. }) => Err(ControlError::Conflict(e.to_string())),
            Err(StartError::Other(m)) if m.contains("safety lever") => {
                Err(ControlError::Conflict(m))
            }
            Err(e) => Err(ControlError::Internal(e.to_string())),
        }
    }
}
