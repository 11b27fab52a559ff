//! The watcher loop of one environment: gather a round, let `runbook-watcher` decide,
//! journal what matters, notify, and start `failover.yaml` when the decision says so.

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::{CapCall, Provider};
use runbook_journal::{ServeRun, now_ms};
use runbook_watcher::{Action, Decision, Mode, Round};
use serde_json::{Value, json};

use crate::config::EnvironmentConfig;
use crate::runs::StartRequest;
use crate::{Serve, WatcherEntry, signals};

const KIND: &str = "watcher";

pub(crate) fn load(s: &Serve) -> Result<(), runbook_journal::JournalError> {
    let now = now_ms();
    let mut shared = s.shared();
    for env in &s.cfg.environments {
        let saved = s.journal().serve_state(KIND, &env.name)?;
        let (st, paused, total) = match saved {
            Some(v) => {
                let mut st: runbook_watcher::State = serde_json::from_value(v["state"].clone())
                    .unwrap_or_else(|_| runbook_watcher::State::new(now));
                st.resume(now);
                (
                    st,
                    v["paused"].as_str().map(String::from),
                    v["failovers_total"].as_u64().unwrap_or(0),
                )
            }
            None => (runbook_watcher::State::new(now), None, 0),
        };
        shared.watchers.insert(
            env.name.clone(),
            WatcherEntry {
                st,
                last: None,
                journaled: None,
                paused,
                failovers_total: total,
            },
        );
    }
    Ok(())
}

fn save(s: &Serve, env: &str, e: &WatcherEntry) {
    let v = json!({"state": e.st, "paused": e.paused, "failovers_total": e.failovers_total});
    if let Err(err) = s.journal().put_serve_state(KIND, env, &v, now_ms()) {
        tracing::error!(environment = env, error = %err, "saving watcher state");
    }
}

/// The watcher's failover ended (the runs loop saw it).
pub(crate) fn finished(s: &Serve, run: &ServeRun, succeeded: bool) {
    let mut shared = s.shared();
    if let Some(e) = shared.watchers.get_mut(&run.subject)
        && runbook_watcher::failover_finished(&mut e.st, &run.execution_id, succeeded, now_ms())
    {
        let e = e.clone();
        drop(shared);
        save(s, &run.subject, &e);
    }
}

/// Publish to the environment's alert topic (best effort: a notification that cannot
/// be sent is logged and journaled with the decision, never blocks a decision).
pub(crate) async fn notify(
    s: &Serve,
    p: &Arc<dyn Provider>,
    env: &EnvironmentConfig,
    subject: &str,
    message: &str,
) -> Result<(), String> {
    let list = CapCall {
        service: "sns".into(),
        action: "ListTopics".into(),
        region: Some(env.notify_region.clone()),
        resource: None,
        args: json!({}),
    };
    let topics = tokio::time::timeout(Duration::from_secs(5), p.call(list))
        .await
        .map_err(|_| "sns:ListTopics timed out".to_string())?
        .map_err(|e| format!("sns:ListTopics: {e}"))?;
    let suffix = format!(":{}", env.notify_topic);
    let arn = topics
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().or_else(|| t["topic_arn"].as_str()))
        .find(|a| a.ends_with(&suffix))
        .map(String::from)
        .ok_or_else(|| format!("no topic {} in {}", env.notify_topic, env.notify_region))?;
    let publish = CapCall {
        service: "sns".into(),
        action: "Publish".into(),
        region: Some(env.notify_region.clone()),
        resource: Some(arn.clone()),
        args: json!({"topic_arn": arn, "subject": subject, "message": message}),
    };
    tokio::time::timeout(Duration::from_secs(5), p.call(publish))
        .await
        .map_err(|_| "sns:Publish timed out".to_string())?
        .map_err(|e| format!("sns:Publish: {e}"))?;
    let _ = s;
    Ok(())
}

fn decision_json(d: &Decision, extra: Value) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    if let (Some(o), Value::Object(x)) = (v.as_object_mut(), extra) {
        o.extend(x);
    }
    v
}

/// One round: gather, decide, act. Returns the decision.
async fn round(s: &Arc<Serve>, env: &EnvironmentConfig, p: &Arc<dyn Provider>) -> Decision {
    let g = signals::gather(p, env).await;
    let lever = s.journal().lever().map(|l| l.engaged).unwrap_or(false);
    let busy = s
        .journal()
        .environment_holder(&env.lock_key())
        .ok()
        .flatten()
        .map(|r| r.id);
    let r = Round {
        at_ms: now_ms(),
        readings: g.readings,
        replica: g.replica,
        lever_engaged: lever,
        environment_busy: busy,
    };
    let _guard = s.act.lock().await;
    let (mut cfg, mut st, prev, paused) = {
        let sh = s.shared();
        let e = &sh.watchers[&env.name];
        (
            env.watcher.clone(),
            e.st.clone(),
            e.journaled.clone(),
            e.paused.clone(),
        )
    };
    // A paused watcher still judges (the status page shows the truth) but only notifies.
    if paused.is_some() && cfg.mode == Mode::Auto {
        cfg.mode = Mode::Notify;
    }
    let d = runbook_watcher::observe(&cfg, &mut st, &r);
    let mut started = None;
    let mut start_error = None;
    if d.action == Action::Failover {
        let mut params = env.params.clone();
        // The watcher's rounds already were the repeated probes the runbook would make.
        params.insert("PrimaryConfirmedDown".into(), Value::Bool(true));
        for (k, v) in &env.failover_params {
            params.insert(k.clone(), v.clone());
        }
        let req = StartRequest {
            id: uuid::Uuid::new_v4().to_string(),
            source: "watcher",
            subject: &env.name,
            slot_ms: None,
            runbook: &env.failover_runbook,
            provider: &env.provider,
            params: &params,
        };
        let claim = match &s.fleet {
            Some(f) => fleet_claim(f, env, &req.id).await,
            None => Ok(()),
        };
        match claim.and_then(|()| s.start_execution(&req).map_err(|e| e.to_string())) {
            Ok(id) => {
                runbook_watcher::failover_started(&mut st, &id, r.at_ms);
                started = Some(id);
            }
            Err(e) => start_error = Some(e),
        }
    }
    let journal_it = runbook_watcher::worth_journaling(prev.as_ref(), &d) || start_error.is_some();
    let summary = runbook_watcher::summary(&d);
    if journal_it {
        let body = decision_json(
            &d,
            json!({"summary": summary, "execution_id": started, "start_error": start_error}),
        );
        if let Err(e) =
            s.journal()
                .record_decision(d.at_ms, KIND, &env.name, d.action.name(), &body)
        {
            tracing::error!(environment = %env.name, error = %e, "journaling a watcher decision");
        }
        tracing::info!(environment = %env.name, "{summary}");
    }
    {
        let mut sh = s.shared();
        let e = sh.watchers.get_mut(&env.name).expect("loaded");
        e.st = st;
        e.last = Some(d.clone());
        if journal_it {
            e.journaled = Some(d.clone());
        }
        if started.is_some() {
            e.failovers_total += 1;
        }
        let e = e.clone();
        drop(sh);
        save(s, &env.name, &e);
    }
    drop(_guard);
    let tell = journal_it
        && matches!(
            d.action,
            Action::Failover | Action::WouldFailover | Action::Notify
        );
    if tell {
        let subject = match d.action {
            Action::Failover => format!("runbook serve: failing over {} automatically", env.name),
            Action::WouldFailover => {
                format!("runbook serve (dry-run): would fail over {}", env.name)
            }
            _ => format!(
                "runbook serve: primary of {} judged {}",
                env.name,
                d.verdict.name()
            ),
        };
        let mut message = summary.clone();
        for r in &d.reasons {
            message.push_str("\n- ");
            message.push_str(r);
        }
        if let Some(id) = &started {
            message.push_str(&format!("\nexecution: {id}"));
        }
        if let Err(e) = notify(s, p, env, &subject, &message).await {
            tracing::warn!(environment = %env.name, error = %e, "notification not sent");
        }
    }
    d
}

/// Fleet mode: claim the failover of this outage episode across the fleet (the primary
/// is the configured one: a same-named primary failing again after a failover is the
/// same episode, left to the operator; docs/fleet.md). `Err`: not started, and why
/// (another runner won it: its execution; or no quorum).
async fn fleet_claim(
    f: &crate::fleet::ServeFleet,
    env: &EnvironmentConfig,
    execution: &str,
) -> Result<(), String> {
    if let Some(why) = f.refusal() {
        return Err(why);
    }
    let primary = format!("{}@{}", env.primary(), env.primary_region);
    match f.claim_failover(&env.lock_key(), &primary, execution).await {
        Ok((_, runbook_fleet::Claimed::Lost { record, .. })) => Err(format!(
            "fired by runner {} (execution {}): it won the failover of this outage",
            record.runner, record.execution
        )),
        Ok((_, runbook_fleet::Claimed::Already { record, .. }))
            if record.execution != execution =>
        {
            Err(format!(
                "this runner claimed this outage earlier (execution {})",
                record.execution
            ))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("fleet claim failed ({}): {e}", e.code())),
    }
}

pub(crate) async fn run_loop(
    s: Arc<Serve>,
    env: EnvironmentConfig,
    mut rx: tokio::sync::watch::Receiver<bool>,
) {
    if env.watcher.mode == Mode::Off {
        return;
    }
    let p = match s.runner.providers().make(&env.provider) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(environment = %env.name, error = %e, "watcher has no provider");
            return;
        }
    };
    loop {
        let began = std::time::Instant::now();
        round(&s, &env, &p).await;
        let left = env.interval.saturating_sub(began.elapsed());
        if crate::pause(&mut rx, left.max(Duration::from_millis(50))).await {
            return;
        }
    }
}

/// Pause or resume the watcher of one environment (or all with `None`).
pub(crate) fn set_paused(
    s: &Serve,
    env: Option<&str>,
    reason: Option<&str>,
) -> Result<Vec<String>, String> {
    let names: Vec<String> = match env {
        Some(e) => {
            if !s.cfg.environments.iter().any(|c| c.name == e) {
                return Err(format!("no environment named '{e}'"));
            }
            vec![e.to_string()]
        }
        None => s.cfg.environments.iter().map(|c| c.name.clone()).collect(),
    };
    for n in &names {
        let e = {
            let mut sh = s.shared();
            let e = sh.watchers.get_mut(n).expect("loaded");
            e.paused = reason.map(String::from);
            e.clone()
        };
        save(s, n, &e);
        let _ = s.journal().record_decision(
            now_ms(),
            KIND,
            n,
            if reason.is_some() { "pause" } else { "resume" },
            &json!({"reason": reason}),
        );
    }
    Ok(names)
}
