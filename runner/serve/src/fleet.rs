//! `runbook serve` in fleet mode (`--journal etcd://`, docs/fleet.md): several serve
//! processes share one etcd, and
//! - a schedule slot fires once across them (`Fleet::claim_schedule_slot`; the losers
//!   journal who fired it);
//! - a watcher failover happens once per outage episode (`Fleet::claim_failover`);
//! - a RUNNING execution on one of serve's environments whose owner lease is gone is
//!   taken over by a worker `runbook resume ID` (the same path as an operator's);
//! - serve holds a lease of its own ([`Actor`]): while it is not alive by its local
//!   deadline (no etcd quorum), serve starts nothing, and says so in its log, its
//!   decisions, the status page and `/metrics`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runbook_fleet::{
    Actor, ActorStatus, Claimed, Episode, EtcdClient, EtcdOptions, Fleet, FleetError, Quorum,
    Timing,
};
use runbook_journal::{ExecutionRow, ServeRun, now_ms};
use serde_json::json;

use crate::Serve;

/// What serve needs to join the fleet (the CLI parses `--journal`, `--fleet-timing`,
/// `--runner-id`).
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `etcd://...` as given to `--journal`.
    pub url: String,
    /// This serve's runner id (claims name it).
    pub runner_id: String,
    pub timing: Timing,
}

/// serve's place in the fleet: its own lease (for fail-closed), the claims.
pub struct ServeFleet {
    actor: Actor,
    timing: Timing,
    /// RUNNING executions seen without an owner, since when (takeover waits one TTL
    /// more, so an execution between its creation and its worker's claim is left alone).
    unowned: Mutex<HashMap<String, Instant>>,
}

/// A claim that got no answer is repeated (claims are idempotent: `Already`).
const CLAIM_ATTEMPTS: usize = 3;

impl ServeFleet {
    /// Connect and try to grant serve's lease; serve starts even when etcd has no
    /// quorum now (it then starts nothing until the lease is granted).
    pub async fn connect(settings: &FleetSettings) -> Result<ServeFleet, FleetError> {
        let options = EtcdOptions::parse(&settings.url)?;
        let client = EtcdClient::connect(&options, settings.timing.request_timeout())?;
        let prefix = options.prefix.clone().unwrap_or_else(|| "/runbook".into());
        let fleet = Fleet::new(Arc::new(client), &prefix);
        let actor = Actor::new(fleet, &settings.runner_id, settings.timing);
        if let Err(e) = actor.lease().await {
            tracing::error!(code = e.code(), error = %e, "fleet: no lease yet; serve starts nothing until it has one");
        }
        Ok(ServeFleet {
            actor,
            timing: settings.timing,
            unowned: Mutex::new(HashMap::new()),
        })
    }

    pub fn runner_id(&self) -> &str {
        self.actor.runner_id()
    }

    /// serve may start executions: its lease is alive by its local deadline.
    pub fn may_act(&self) -> bool {
        self.actor.may_act()
    }

    pub fn status(&self) -> ActorStatus {
        self.actor.status()
    }

    /// Why serve starts nothing now (`None` while it may act).
    pub fn refusal(&self) -> Option<String> {
        if self.may_act() {
            return None;
        }
        Some(match self.actor.quorum() {
            Quorum::NoQuorum {
                since,
                code,
                last_error,
            } => format!(
                "fleet.no_quorum: runner {} has no etcd quorum for {:.1} s ({code}: {last_error}); \
                 it starts nothing until its lease is granted again",
                self.runner_id(),
                since.elapsed().as_secs_f64()
            ),
            Quorum::Healthy => format!(
                "fleet.no_lease: runner {} holds no live lease yet; it starts nothing until it has one",
                self.runner_id()
            ),
        })
    }

    async fn claim<F, Fut>(&self, what: F) -> Result<Claimed, FleetError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = runbook_fleet::Result<Claimed>>,
    {
        let mut last = None;
        for _ in 0..CLAIM_ATTEMPTS {
            match self.actor.quorum_watch().observe(what().await) {
                Ok(c) => return Ok(c),
                Err(e @ (FleetError::Unavailable(_) | FleetError::Ambiguous(_))) => {
                    last = Some(e);
                    tokio::time::sleep(self.timing.keepalive()).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Claim a schedule slot for `execution`.
    pub async fn claim_slot(
        &self,
        schedule: &str,
        slot_ms: i64,
        execution: &str,
    ) -> Result<Claimed, FleetError> {
        let fleet = self.actor.fleet();
        let me = self.runner_id();
        self.claim(|| fleet.claim_schedule_slot(schedule, slot_ms, me, execution))
            .await
    }

    /// Claim the failover of `primary`'s current outage in `environment`.
    pub async fn claim_failover(
        &self,
        environment: &str,
        primary: &str,
        execution: &str,
    ) -> Result<(Episode, Claimed), FleetError> {
        let fleet = self.actor.fleet();
        let episode = self
            .actor
            .quorum_watch()
            .observe(fleet.outage_episode(environment, primary).await)?;
        let me = self.runner_id();
        let ep = &episode;
        let c = self
            .claim(|| Box::pin(fleet.claim_failover(environment, ep, me, execution)))
            .await?;
        Ok((episode, c))
    }

    /// Of `running` (RUNNING heads from the fleet journal), the ones on `scopes` whose
    /// owner key has been absent for at least one TTL.
    async fn orphans(&self, running: Vec<ExecutionRow>, scopes: &BTreeSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for row in running {
            let Some(env) = row.environment.as_deref().filter(|e| scopes.contains(*e)) else {
                continue;
            };
            seen.insert(row.id.clone());
            let owner = self
                .actor
                .quorum_watch()
                .observe(self.actor.fleet().owner(env).await);
            let mut unowned = self.unowned.lock().unwrap_or_else(|p| p.into_inner());
            match owner {
                Ok(None) => {
                    let since = *unowned.entry(row.id.clone()).or_insert_with(Instant::now);
                    if since.elapsed() >= self.timing.ttl() {
                        out.push(row.id);
                    }
                }
                Ok(Some(_)) | Err(_) => {
                    unowned.remove(&row.id);
                }
            }
        }
        self.unowned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| seen.contains(id));
        out
    }
}

/// The status page's and `/metrics`' view of `status`.
pub(crate) fn view(status: &ActorStatus) -> runbook_http::FleetView {
    let (since, last_error) = match &status.quorum {
        Quorum::Healthy => (None, None),
        Quorum::NoQuorum {
            since,
            code,
            last_error,
        } => (
            Some(now_ms() - since.elapsed().as_millis() as i64),
            Some(format!("{code}: {last_error}")),
        ),
    };
    runbook_http::FleetView {
        runner_id: status.runner_id.clone(),
        lease_valid: status.may_act,
        lease: status.lease,
        quorum: status.quorum.is_healthy(),
        no_quorum_since_ms: since,
        last_error,
        errors: status
            .errors
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect(),
    }
}

/// The `provider/name` scopes serve takes executions over on: its environments and
/// those of its schedules.
fn scopes(s: &Serve) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = s.cfg.environments.iter().map(|e| e.lock_key()).collect();
    for sc in &s.cfg.schedules {
        if let Some(env) = &sc.environment {
            match s.cfg.environments.iter().find(|e| &e.name == env) {
                Some(e) => out.insert(e.lock_key()),
                None => out.insert(format!("{}/{env}", sc.provider)),
            };
        }
    }
    out
}

fn record(s: &Serve, action: &str, body: serde_json::Value) {
    let subject = s.fleet.as_ref().map(|f| f.runner_id()).unwrap_or("serve");
    if let Err(e) = s
        .journal()
        .record_decision(now_ms(), "fleet", subject, action, &body)
    {
        tracing::error!(error = %e, "journaling a fleet decision");
    }
}

/// Keep serve's lease (a lost one is replaced when etcd answers again), journal the
/// quorum transitions, and take over orphaned executions.
pub(crate) async fn run_loop(s: Arc<Serve>, mut rx: tokio::sync::watch::Receiver<bool>) {
    let Some(f) = s.fleet.clone() else {
        return;
    };
    let mut acting = f.may_act();
    if !acting {
        record(
            &s,
            "stop-acting",
            json!({"reason": f.refusal().unwrap_or_default()}),
        );
    }
    let scopes = scopes(&s);
    let mut last_takeover_pass = Instant::now() - Duration::from_secs(3600);
    loop {
        if !f.may_act()
            && let Err(e) = f.actor.lease().await
        {
            tracing::debug!(code = e.code(), error = %e, "fleet: lease not granted");
        }
        let now_acting = f.may_act();
        if now_acting != acting {
            acting = now_acting;
            if acting {
                tracing::info!(
                    runner = f.runner_id(),
                    "fleet: lease granted again; serve acts again"
                );
                record(&s, "resume-acting", json!({"lease": f.status().lease}));
            } else {
                let why = f.refusal().unwrap_or_default();
                tracing::error!(runner = f.runner_id(), "serve stops acting: {why}");
                record(&s, "stop-acting", json!({"reason": why}));
            }
        }
        if acting
            && last_takeover_pass.elapsed() >= f.timing.keepalive().max(Duration::from_secs(1))
        {
            last_takeover_pass = Instant::now();
            take_over_orphans(&s, &f, &scopes).await;
        }
        if crate::pause(&mut rx, f.timing.keepalive()).await {
            return;
        }
    }
}

/// Start a worker `runbook resume ID` for each orphan (its owner's lease is gone); the
/// worker's claim decides if several serve processes try the same one.
async fn take_over_orphans(s: &Arc<Serve>, f: &ServeFleet, scopes: &BTreeSet<String>) {
    if scopes.is_empty() {
        return;
    }
    let Some(mirror) = s.runner.fleet().cloned() else {
        return;
    };
    let m = mirror.clone();
    let heads = tokio::task::spawn_blocking(move || m.store().backend().executions(10_000)).await;
    let running: Vec<ExecutionRow> = match heads {
        Ok(Ok(rows)) => rows.into_iter().filter(|r| r.status == "RUNNING").collect(),
        Ok(Err(e)) => {
            tracing::warn!(code = e.code(), error = %e, "fleet: listing executions");
            return;
        }
        Err(_) => return,
    };
    let orphans = f.orphans(running, scopes).await;
    if orphans.is_empty() {
        return;
    }
    let _guard = s.act.lock().await;
    for id in orphans {
        if s.worker_alive(&id) || !f.may_act() {
            continue;
        }
        // A local copy first, so the runs loop settles it when the worker ends.
        let row = match mirror.import(s.journal(), &id) {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(execution = %id, error = %e, "fleet: importing an orphan");
                continue;
            }
        };
        let subject = row.environment.clone().unwrap_or_default();
        if s.journal()
            .serve_runs(true)
            .is_ok_and(|r| !r.iter().any(|r| r.execution_id == id))
        {
            let _ = s.journal().add_serve_run(&ServeRun {
                execution_id: id.clone(),
                source: "takeover".into(),
                subject: subject.clone(),
                slot_ms: None,
                created_ms: now_ms(),
                settled: false,
            });
        }
        tracing::warn!(execution = %id, environment = %subject, "fleet: its owner's lease is gone; taking it over");
        record(
            s,
            "takeover",
            json!({"execution_id": id, "environment": subject, "name": row.name,
                   "why": "RUNNING in the fleet journal and the owner key of its environment is gone (its runner's lease expired)"}),
        );
        s.spawn_worker(&id);
    }
}
