//! `runbook serve`: one long-running process that starts runbooks when nobody types a
//! command — schedules (cron/rate/at in IANA zones), the automatic failover watcher,
//! and a readiness check that dry-runs the failover — with an HTTP status page,
//! Prometheus metrics and control endpoints.
//!
//! The scheduler and the watcher only *decide* (`runbook-scheduler`, `runbook-watcher`
//! are pure); every action is an execution created in the journal and driven by a
//! worker process (`runbook resume ID`), so it is journaled, resumable and granted like
//! any other. Everything serve needs to survive SIGKILL is in the journal:
//! - schedule state (the last slot handled, pauses) and the watcher's state (cooldown,
//!   the failover in flight), written after each decision;
//! - each decision with its evidence (`serve_decisions`);
//! - the executions it started (`serve_runs`), written *before* the execution exists.
//!
//! A scheduled run's id is derived from (schedule, slot), so the journal itself refuses
//! a second execution for one slot: after a crash between "execution created" and
//! "state saved", the restarted serve meets the existing execution and records the slot
//! as fired, never firing it twice. Executions whose worker died with serve are resumed
//! by the restarted serve (the journal's claim makes that safe against a worker that
//! survived).

mod backend;
mod check;
pub mod config;
mod fleet;
mod readiness;
mod runs;
mod schedules;
mod signals;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runbook_executor::{Runner, WorkerCommand};
use runbook_scheduler::ScheduleState;

pub use check::{CheckReport, check};
pub use config::{ConfigError, ServeConfig};
pub use fleet::FleetSettings;

/// Errors that stop `serve` (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Http(#[from] runbook_http::HttpError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Journal(#[from] runbook_journal::JournalError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl ServeError {
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Config(_) => "E-SERVE-CONFIG",
            ServeError::Http(_) => "E-SERVE-HTTP",
            ServeError::Bind { .. } => "E-SERVE-BIND",
            ServeError::Journal(e) => e.code(),
            ServeError::Other(_) => "E-INTERNAL",
        }
    }
}

/// Rendered dashboards of the local provider (the CLI wires the provider in; serve
/// does not know providers).
pub trait Dashboards: Send + Sync {
    fn list(&self) -> Vec<String>;
    fn html(&self, name: &str) -> Option<String>;
}

/// Renders what `runbook show ID` prints (the CLI owns that text).
pub type ShowText = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What the CLI hands to serve.
pub struct Deps {
    pub runner: Runner,
    /// How to start `runbook resume ID` (the binary with its global flags).
    pub worker: WorkerCommand,
    pub dashboards: Option<Arc<dyn Dashboards>>,
    /// The page shown at `/executions/ID` (`runbook show`'s text) — the CLI renders it.
    pub show: ShowText,
    /// Fleet mode (`--journal etcd://`): claims, takeover, fail closed.
    pub fleet: Option<FleetSettings>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ScheduleEntry {
    pub st: ScheduleState,
    pub fired: u64,
    pub skipped: u64,
    pub missed: u64,
    pub last_execution: Option<String>,
    pub last_status: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct WatcherEntry {
    pub st: runbook_watcher::State,
    pub last: Option<runbook_watcher::Decision>,
    /// The last decision journaled (for `worth_journaling`).
    pub journaled: Option<runbook_watcher::Decision>,
    pub paused: Option<String>,
    pub failovers_total: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ReadinessEntry {
    pub ready: Option<bool>,
    pub reasons: Vec<String>,
    pub checked_ms: Option<i64>,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub schedules: BTreeMap<String, ScheduleEntry>,
    pub watchers: BTreeMap<String, WatcherEntry>,
    pub readiness: BTreeMap<String, ReadinessEntry>,
}

/// The running service.
pub struct Serve {
    pub(crate) cfg: ServeConfig,
    pub(crate) runner: Runner,
    pub(crate) worker: WorkerCommand,
    pub(crate) dashboards: Option<Arc<dyn Dashboards>>,
    pub(crate) show: ShowText,
    pub(crate) shared: Mutex<Shared>,
    /// Serialises everything that creates executions or settles them, so the watcher,
    /// the schedules and HTTP triggers never race for one environment inside serve.
    pub(crate) act: tokio::sync::Mutex<()>,
    /// Worker processes serve started and has not reaped.
    pub(crate) children: Mutex<HashMap<String, tokio::process::Child>>,
    pub(crate) log_dir: PathBuf,
    /// Fleet mode: serve's lease and claims (docs/fleet.md).
    pub(crate) fleet: Option<Arc<fleet::ServeFleet>>,
}

impl Serve {
    pub(crate) fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn journal(&self) -> &runbook_journal::Journal {
        self.runner.journal()
    }
}

/// Run until `shutdown` resolves. `listen` overrides `Http.Listen`.
pub async fn run(
    cfg: ServeConfig,
    deps: Deps,
    listen: Option<SocketAddr>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listen = listen.or(cfg.http.listen);
    let token = match &cfg.http.token_file {
        Some(p) => Some(runbook_http::load_token(p)?),
        None => None,
    };
    if let Some(addr) = listen {
        runbook_http::check_listen(addr, token.is_some())?;
    }
    let log_dir = deps.runner.config().state_dir.join("serve").join("logs");
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", log_dir.display()))?;
    let now = runbook_journal::now_ms();
    let fleet = match &deps.fleet {
        Some(settings) => Some(Arc::new(
            fleet::ServeFleet::connect(settings)
                .await
                .map_err(|e| anyhow::anyhow!("--journal: {e} ({})", e.code()))?,
        )),
        None => None,
    };
    let serve = Arc::new(Serve {
        cfg,
        runner: deps.runner,
        worker: deps.worker,
        dashboards: deps.dashboards,
        show: deps.show,
        shared: Mutex::new(Shared::default()),
        act: tokio::sync::Mutex::new(()),
        children: Mutex::new(HashMap::new()),
        log_dir,
        fleet,
    });
    schedules::load(&serve)?;
    watch::load(&serve)?;
    serve.journal().record_decision(
        now,
        "serve",
        "serve",
        "start",
        &serde_json::json!({
            "pid": std::process::id(),
            "config": serve.cfg.path.display().to_string(),
            "schedules": serve.cfg.schedules.len(),
            "environments": serve.cfg.environments.len(),
            "fleet_runner": serve.fleet.as_ref().map(|f| f.runner_id().to_string()),
        }),
    )?;
    tracing::info!(
        schedules = serve.cfg.schedules.len(),
        environments = serve.cfg.environments.len(),
        "serve started"
    );

    // Compile every plugin the runbooks need now (the compile cache is on disk), so the
    // first automatic failover does not wait for a compiler.
    {
        let runner = serve.runner.clone();
        let mut books: Vec<PathBuf> = serve
            .cfg
            .environments
            .iter()
            .map(|e| e.failover_runbook.clone())
            .collect();
        books.extend(serve.cfg.schedules.iter().map(|s| s.runbook.clone()));
        tokio::task::spawn_blocking(move || {
            for b in books {
                if let Err(e) = runner.prepare(&b) {
                    tracing::warn!(runbook = %b.display(), error = %e, "cannot prepare");
                }
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        // Tests and scripts read the bound address (port 0 picks a free one).
        eprintln!("runbook serve: listening on http://{local}");
        let backend: Arc<dyn runbook_http::Backend> = Arc::new(backend::HttpBackend(serve.clone()));
        let mut rx = stop_rx.clone();
        tasks.spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = runbook_http::run(listener, backend, token, stop).await {
                tracing::error!(error = %e, "http server stopped");
            }
        });
    }
    {
        let s = serve.clone();
        let rx = stop_rx.clone();
        tasks.spawn(async move { runs::run_loop(s, rx).await });
    }
    {
        let s = serve.clone();
        let rx = stop_rx.clone();
        tasks.spawn(async move { schedules::run_loop(s, rx).await });
    }
    if serve.fleet.is_some() {
        let s = serve.clone();
        let rx = stop_rx.clone();
        tasks.spawn(async move { fleet::run_loop(s, rx).await });
    }
    for env in serve.cfg.environments.clone() {
        let s = serve.clone();
        let rx = stop_rx.clone();
        let e = env.clone();
        tasks.spawn(async move { watch::run_loop(s, e, rx).await });
        if env.readiness_interval.is_some() {
            let s = serve.clone();
            let rx = stop_rx.clone();
            tasks.spawn(async move { readiness::run_loop(s, env, rx).await });
        }
    }
    shutdown.await;
    tracing::info!("serve stopping");
    let _ = stop_tx.send(true);
    // Loops finish their current step; workers keep running (a restarted serve, or
    // `runbook resume`, finds them through the journal).
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Sleep until `d` passed or serve stops; true when it stops.
pub(crate) async fn pause(rx: &mut tokio::sync::watch::Receiver<bool>, d: Duration) -> bool {
    if *rx.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *rx.borrow(),
        r = rx.changed() => r.is_err() || *rx.borrow(),
    }
}
