//! The executor: the only place where the pure engine meets I/O.
//!
//! For every execution it
//! 1. parses and validates the runbook, resolves every Task's plugin and checks the
//!    plugin's imports against the Task's grants (nothing runs if any check fails);
//! 2. drives [`runbook_engine::Execution`]: every input to the engine (task result,
//!    timer) is appended to the journal *before* the engine sees it, and the history the
//!    engine emits is journaled before the actions that follow it are carried out;
//! 3. resumes by replay: a fresh engine fed the journaled inputs reaches the identical
//!    state, and only the still-outstanding work (the interrupted Task, pending timers)
//!    is re-issued. Completed states never run again; the interrupted Task does, so
//!    plugins must be idempotent (every shipped plugin is: describe before create).

mod callback;
mod child;
mod drive;
mod dryrun;
mod fleet;
mod observe;
mod plugins;
mod prepare;
pub mod report;
mod services;
mod stop;
mod traffic;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use runbook_caps::Provider;
use runbook_engine::{Action, Event, Execution, ExecutionContext, HistoryEvent, Status, Timestamp};
use runbook_host::{Host, HostConfig, LogLevel};
use runbook_journal::{ExecutionRow, Journal, now_ms};
use serde_json::{Value, json};

pub use dryrun::{PlanReport, PlanStep};
pub use fleet::{FleetMirror, FleetStore};
pub use observe::LazyProvider;
pub use plugins::resolve_plugin;
pub use prepare::{Prepared, START_EXECUTION_SYNC, START_EXECUTION_SYNC2, resolve_child_path};
use prepare::{PreparedTask, Runs};
pub use runbook_plan::{Effect, PlannedCall};

/// Errors before or around an execution (not the execution's own failure, which is an
/// [`Outcome`] with status FAILED).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The runbook is invalid: one `file:line:col: message` per line. Exit code 2.
    #[error("{0}")]
    Invalid(String),
    // Transparent: `{:#}` would otherwise print the journal's message twice.
    #[error(transparent)]
    Journal(#[from] runbook_journal::JournalError),
    #[error("execution {id} is being driven by runner pid {pid}; stop it first")]
    Busy { id: String, pid: u32 },
    /// The runbook's `Runbook.Environment` resolved to something that is not a name.
    #[error("Runbook.Environment {0}")]
    BadEnvironment(String),
    #[error("execution {id} is {status}: {what}")]
    WrongStatus {
        id: String,
        status: String,
        what: String,
    },
    #[error("{0}")]
    Engine(#[from] runbook_engine::EngineError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl RunError {
    pub fn code(&self) -> &'static str {
        match self {
            RunError::Invalid(_) => "E-INVALID",
            RunError::Journal(e) => e.code(),
            RunError::Busy { .. } => "E-BUSY",
            RunError::BadEnvironment(_) => "E-ENVIRONMENT",
            RunError::WrongStatus { .. } => "E-STATUS",
            RunError::Engine(e) => e.code(),
            RunError::Other(_) => "E-INTERNAL",
        }
    }
}

/// How providers are made. The executor asks only when a plugin makes its first
/// capability call, so a runbook that calls none starts no database and no daemon.
pub trait ProviderFactory: Send + Sync {
    fn make(&self, name: &str) -> anyhow::Result<Arc<dyn Provider>>;
}

/// What the CLI shows while an execution runs.
pub trait Progress: Send + Sync {
    fn started(&self, _id: &str, _name: &str) {}
    fn history(&self, _id: &str, _event: &HistoryEvent) {}
    fn log(&self, _state: &str, _level: LogLevel, _message: &str) {}
    fn finished(&self, _outcome: &Outcome) {}
}

/// A progress sink that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Holds `journal.db` and `cache/`.
    pub state_dir: PathBuf,
    /// Directories searched for `plugin:<name>` (as `<name>.wasm`) before the built-ins.
    pub plugin_path: Vec<PathBuf>,
    /// Deadline of a Task without `TimeoutSeconds`.
    pub default_task_deadline: Duration,
    /// Memory cap of every plugin instance.
    pub plugin_memory_bytes: usize,
    /// How to start another runner process (the `runbook` binary with its global flags).
    /// When set, child executions and traffic drivers run in processes of their own, so
    /// they survive this one (and a game day can crash a child's runner without
    /// crashing itself). When unset, children run in this process and traffic sessions
    /// are unavailable.
    pub worker: Option<WorkerCommand>,
    /// How to start a traffic driver process, when it differs from `worker` (fleet
    /// mode: children run in this process, drivers still in their own).
    pub traffic_driver: Option<WorkerCommand>,
}

/// A command line that starts the runner: `program args... <subcommand> ...`.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    pub fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.args(&self.args);
        c
    }
}

impl RunnerConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        RunnerConfig {
            state_dir: state_dir.into(),
            plugin_path: Vec::new(),
            default_task_deadline: Duration::from_secs(300),
            plugin_memory_bytes: 64 << 20,
            worker: None,
            traffic_driver: None,
        }
    }
}

/// How an execution ended (or stands).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub execution_id: String,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

/// Cheap to clone: every clone shares the journal, the wasm host and the providers.
#[derive(Clone)]
pub struct Runner {
    config: Arc<RunnerConfig>,
    journal: Arc<Journal>,
    host: Arc<OnceLock<Arc<Host>>>,
    providers: Arc<dyn ProviderFactory>,
    /// Fleet mode: the journal's write-through mirror (docs/fleet.md).
    fleet: Option<Arc<FleetMirror>>,
}

/// How a new execution starts.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Use this id (child executions derive theirs from the parent's Task).
    pub id: Option<String>,
    /// The execution whose Task starts this one.
    pub parent_id: Option<String>,
}

impl Runner {
    pub fn open(
        config: RunnerConfig,
        providers: Arc<dyn ProviderFactory>,
    ) -> Result<Runner, RunError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|e| {
            anyhow::anyhow!("creating state dir {}: {e}", config.state_dir.display())
        })?;
        let journal = Arc::new(Journal::open(&config.state_dir.join("journal.db"))?);
        Ok(Runner {
            config: Arc::new(config),
            journal,
            host: Arc::new(OnceLock::new()),
            providers,
            fleet: None,
        })
    }

    /// Fleet mode: every write of an execution's core record goes to `mirror` first,
    /// and capability calls are made only while this runner owns the execution.
    pub fn with_fleet(mut self, mirror: Arc<FleetMirror>) -> Runner {
        self.journal.set_write_through(mirror.clone());
        self.fleet = Some(mirror);
        self
    }

    pub fn fleet(&self) -> Option<&Arc<FleetMirror>> {
        self.fleet.as_ref()
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// The providers executions get (`runbook serve` probes with the same ones).
    pub fn providers(&self) -> &Arc<dyn ProviderFactory> {
        &self.providers
    }

    /// The wasm host, created on first use (a runbook without Tasks never needs it).
    pub fn host(&self) -> Result<&Arc<Host>, RunError> {
        if let Some(h) = self.host.get() {
            return Ok(h);
        }
        let host = Host::new(HostConfig {
            cache_dir: Some(self.config.state_dir.join("cache")),
            max_instances: 256,
            max_memory_bytes: self.config.plugin_memory_bytes.max(16 << 20),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(self.host.get_or_init(|| Arc::new(host)))
    }

    fn provider_name(&self, prepared: &Prepared, requested: Option<&str>) -> String {
        requested
            .map(str::to_string)
            .or_else(|| {
                prepared
                    .runbook
                    .meta
                    .provider
                    .as_ref()
                    .map(|p| format!("{p:?}").to_lowercase())
            })
            .unwrap_or_else(|| "local".to_string())
    }

    /// Start a new execution and drive it to its end.
    pub async fn run(
        &self,
        prepared: &Prepared,
        input: Value,
        provider: Option<&str>,
        progress: Arc<dyn Progress>,
    ) -> Result<Outcome, RunError> {
        self.start(prepared, input, provider, StartOptions::default(), progress)
            .await
    }

    /// Start a new execution with options and drive it to its end.
    pub async fn start(
        &self,
        prepared: &Prepared,
        input: Value,
        provider: Option<&str>,
        opts: StartOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<Outcome, RunError> {
        let row = self.create(prepared, input, provider, opts, Some(std::process::id()))?;
        progress.started(&row.id, &row.name);
        let mut exec = Execution::new(
            prepared.runbook.machine.clone(),
            row.input.clone(),
            self.context(&row.id, &row.name, row.started_ms),
            row.seed,
        );
        let actions = exec.start(Timestamp::from_unix_millis(row.started_ms));
        let provider = self.provider_for(&row);
        self.drive(&row, &mut exec, prepared, provider, actions, progress)
            .await
    }

    /// Journal a new RUNNING execution without driving it (`runner_pid` None: a
    /// worker claims it). Refused with `E-ENV-BUSY` when its environment is held by
    /// another execution tree.
    pub fn create(
        &self,
        prepared: &Prepared,
        input: Value,
        provider: Option<&str>,
        opts: StartOptions,
        runner_pid: Option<u32>,
    ) -> Result<ExecutionRow, RunError> {
        let id = opts.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
        let provider_name = self.provider_name(prepared, provider);
        let name = prepared.runbook.meta.name.clone().unwrap_or_else(|| {
            prepared
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let environment = environment_of(prepared, &input)?.map(|e| format!("{provider_name}/{e}"));
        let row = ExecutionRow {
            id,
            name,
            runbook_path: prepared.path.display().to_string(),
            runbook_text: prepared.text.clone(),
            input,
            provider: Some(provider_name),
            status: "RUNNING".into(),
            started_ms: now_ms(),
            ended_ms: None,
            output: None,
            error: None,
            cause: None,
            seed,
            redrive_count: 0,
            runner_pid,
            parent_id: opts.parent_id,
            environment,
        };
        self.journal.create_execution(&row)?;
        Ok(row)
    }

    fn context(&self, id: &str, name: &str, started_ms: i64) -> ExecutionContext {
        let mut ctx = ExecutionContext::new(
            format!("arn:aws:states:local:000000000000:execution:{name}:{id}"),
            id.to_string(),
            Timestamp::from_unix_millis(started_ms),
        );
        ctx.state_machine_id = format!("arn:aws:states:local:000000000000:stateMachine:{name}");
        ctx.state_machine_name = name.to_string();
        ctx
    }

    /// Rebuild an execution's engine from its journal. Returns the engine and the
    /// number of history events the replay produced.
    fn replay(
        &self,
        row: &ExecutionRow,
        prepared: &Prepared,
    ) -> Result<(Execution, usize), RunError> {
        let mut exec = Execution::new(
            prepared.runbook.machine.clone(),
            row.input.clone(),
            self.context(&row.id, &row.name, row.started_ms),
            row.seed,
        );
        let mut produced: Vec<HistoryEvent> = Vec::new();
        let mut collect = |actions: Vec<Action>| {
            for a in actions {
                if let Action::History(h) = a {
                    produced.push(h);
                }
            }
        };
        collect(exec.start(Timestamp::from_unix_millis(row.started_ms)));
        for ev in self.journal.events(&row.id)? {
            let at = Timestamp::from_unix_millis(ev.at_ms);
            match ev.event.get("type").and_then(Value::as_str) {
                Some("Redrive") => collect(exec.redrive(at)?),
                Some("Abort") => collect(
                    exec.abort(
                        ev.event
                            .get("error")
                            .and_then(Value::as_str)
                            .map(String::from),
                        ev.event
                            .get("cause")
                            .and_then(Value::as_str)
                            .map(String::from),
                        at,
                    ),
                ),
                _ => {
                    let event: Event = serde_json::from_value(ev.event.clone()).map_err(|e| {
                        anyhow::anyhow!("journal event {} of {}: {e}", ev.seq, row.id)
                    })?;
                    collect(exec.handle(event, at));
                }
            }
        }
        // History the original runner produced but died before writing: the engine is
        // deterministic, so the replay's tail is exactly what was lost.
        let written = self.journal.history(&row.id)?.len();
        if produced.len() > written {
            let rows: Vec<_> = produced[written..]
                .iter()
                .map(|h| history_row(now_ms(), h))
                .collect();
            self.journal.append_history(&row.id, &rows)?;
        }
        Ok((exec, produced.len()))
    }

    /// The provider an existing execution was started with, behind the host services
    /// (faults, lever, traffic) that the executor itself answers.
    fn provider_for(&self, row: &ExecutionRow) -> Arc<dyn Provider> {
        let provider = self.unfenced_provider_for(row);
        match &self.fleet {
            Some(mirror) => Arc::new(fleet::Fenced {
                inner: provider,
                mirror: mirror.clone(),
                id: row.id.clone(),
            }),
            None => provider,
        }
    }

    /// The provider of an execution without fleet mode's fence: for the traffic
    /// driver, which measures and does not act.
    fn unfenced_provider_for(&self, row: &ExecutionRow) -> Arc<dyn Provider> {
        services::HostServices::wrap(
            self.clone(),
            row,
            LazyProvider::new(
                row.provider.clone().unwrap_or_else(|| "local".into()),
                self.providers.clone(),
            ),
        )
    }

    fn load(&self, id: &str) -> Result<(ExecutionRow, Prepared), RunError> {
        let row = self.journal.resolve(id)?;
        let prepared = self.prepare_text(Path::new(&row.runbook_path), row.runbook_text.clone())?;
        Ok((row, prepared))
    }

    /// The full id of `id`: a prefix this runner's journal resolves, else (fleet mode)
    /// the one execution of the fleet journal whose id starts with it, else `id` itself.
    pub fn full_id(&self, id: &str) -> String {
        if let Ok(r) = self.journal.resolve(id) {
            return r.id;
        }
        if let Some(mirror) = &self.fleet
            && let Ok(heads) = mirror.store().backend().executions(usize::MAX)
        {
            let mut found = heads.into_iter().filter(|h| h.id.starts_with(id));
            if let (Some(one), None) = (found.next(), found.next()) {
                return one.id;
            }
        }
        id.to_string()
    }

    /// Continue an interrupted execution.
    pub async fn resume(&self, id: &str, progress: Arc<dyn Progress>) -> Result<Outcome, RunError> {
        let full;
        let id = match &self.fleet {
            // Fleet mode: the fleet journal is the truth; claim it there (a new, higher
            // token) and copy it here, whether or not this runner had a copy.
            Some(mirror) => {
                full = self.full_id(id);
                mirror.take_over(&self.journal, &full)?;
                full.as_str()
            }
            None => id,
        };
        let (row, prepared) = self.load(id)?;
        if row.status != "RUNNING" {
            return Err(RunError::WrongStatus {
                id: row.id.clone(),
                status: row.status.clone(),
                what: "only a RUNNING (interrupted) execution can be resumed; use `runbook redrive` for a failed one".into(),
            });
        }
        if !self
            .journal
            .claim(&row.id, std::process::id(), process_alive)?
        {
            let pid = self.journal.execution(&row.id)?.runner_pid.unwrap_or(0);
            return Err(RunError::Busy {
                id: row.id.clone(),
                pid,
            });
        }
        let (mut exec, _) = self.replay(&row, &prepared)?;
        progress.started(&row.id, &row.name);
        let provider = self.provider_for(&row);
        if exec.status() != Status::Running {
            // It had finished; only the final row was lost.
            let outcome = self.finish_from_engine(&row.id, &exec, progress);
            if let Some(mirror) = &self.fleet {
                mirror.release(&row.id);
            }
            return outcome;
        }
        let actions = exec.outstanding();
        self.drive(&row, &mut exec, &prepared, provider, actions, progress)
            .await
    }

    /// Run a FAILED or TIMED_OUT execution again from the state that failed.
    pub async fn redrive(
        &self,
        id: &str,
        progress: Arc<dyn Progress>,
    ) -> Result<Outcome, RunError> {
        let full;
        let id = match &self.fleet {
            // Fleet mode: claim its environment in the fleet journal (a new token) and
            // copy it here, whichever runner ran it before.
            Some(mirror) => {
                full = self.full_id(id);
                mirror.take_over_for_redrive(&self.journal, &full)?;
                full.as_str()
            }
            None => id,
        };
        let (row, prepared) = self.load(id)?;
        if row.status != "FAILED" && row.status != "TIMED_OUT" {
            return Err(RunError::WrongStatus {
                id: row.id.clone(),
                status: row.status.clone(),
                what: "only FAILED or TIMED_OUT executions can be redriven".into(),
            });
        }
        let (mut exec, _) = self.replay(&row, &prepared)?;
        let now = now_ms();
        self.journal
            .append_event(&row.id, now, &json!({"type": "Redrive"}))?;
        let actions = exec.redrive(Timestamp::from_unix_millis(now))?;
        self.journal
            .set_running(&row.id, std::process::id(), exec.redrive_count())?;
        progress.started(&row.id, &row.name);
        let provider = self.provider_for(&row);
        self.drive(&row, &mut exec, &prepared, provider, actions, progress)
            .await
    }

    fn finish_from_engine(
        &self,
        id: &str,
        exec: &Execution,
        progress: Arc<dyn Progress>,
    ) -> Result<Outcome, RunError> {
        let status = status_name(exec.status());
        let err = exec.error();
        let outcome = Outcome {
            execution_id: id.to_string(),
            status: status.to_string(),
            output: exec.output().cloned(),
            error: err.map(|e| e.error.clone()),
            cause: err.and_then(|e| e.cause.clone()),
        };
        self.journal.finish(
            id,
            status,
            now_ms(),
            outcome.output.as_ref(),
            outcome.error.as_deref(),
            outcome.cause.as_deref(),
        )?;
        progress.finished(&outcome);
        Ok(outcome)
    }
}

/// Whether a process exists (signal 0 checks without signalling).
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The resolved `Runbook.Environment` of an execution input.
fn environment_of(prepared: &Prepared, input: &Value) -> Result<Option<String>, RunError> {
    let Some(spec) = &prepared.runbook.meta.environment else {
        return Ok(None);
    };
    if !spec.starts_with('$') {
        return Ok(Some(spec.clone()));
    }
    let path = runbook_engine::path::Path::parse(spec)
        .map_err(|e| RunError::BadEnvironment(format!("{spec}: {e}")))?;
    match path.select(input) {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        other => Err(RunError::BadEnvironment(format!(
            "{spec} must select a non-empty string from the input, got {}",
            other
                .map(|v| v.to_string())
                .unwrap_or_else(|| "nothing".into())
        ))),
    }
}

/// An execution's outcome as the journal has it.
pub fn outcome_of(row: &ExecutionRow) -> Outcome {
    Outcome {
        execution_id: row.id.clone(),
        status: row.status.clone(),
        output: row.output.clone(),
        error: row.error.clone(),
        cause: row.cause.clone(),
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Running => "RUNNING",
        Status::Succeeded => "SUCCEEDED",
        Status::Failed => "FAILED",
        Status::TimedOut => "TIMED_OUT",
        Status::Aborted => "ABORTED",
    }
}

fn history_row(at: i64, h: &HistoryEvent) -> (i64, String, Option<String>, Value) {
    let details = serde_json::to_value(h).unwrap_or(Value::Null);
    let state = details
        .get("path")
        .or_else(|| details.get("name"))
        .and_then(Value::as_str)
        .map(String::from);
    (at, h.type_name(), state, details)
}
