//! The wasm host: the only crate that knows wasmtime.
//!
//! One [`Host`] per process owns the wasmtime `Engine` (pooling allocator, epoch
//! interruption), a linker with the capability interfaces and a WASI that grants
//! nothing (no preopens, environment, arguments or sockets; stdout/stderr captured),
//! and a compile cache. [`Host::run`] instantiates a plugin for one Task attempt with a
//! wall-clock deadline and a memory cap, and every capability call goes through one
//! grant check ([`StepState::cap`]) that denies by default.

mod bindings;
mod cache;
mod inspect;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runbook_caps::{CapCall, Grants, Provider, catalog};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use cache::CacheSource;
pub use inspect::{Inspection, inspect_bytes};

/// Epoch tick: the granularity of deadlines and of yielding to other tasks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Bytes of stdout/stderr kept per instance; more is dropped.
const CAPTURE_BYTES: usize = 64 * 1024;

/// Host errors. Codes are stable: scripts and tests match them.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("plugin '{plugin}': not a valid component: {reason}")]
    InvalidComponent { plugin: String, reason: String },
    #[error(
        "plugin '{plugin}' is a valid component but over a limit of the runner's instance pool: {reason} (per component: {MAX_CORE_INSTANCES_PER_COMPONENT} core instances, {MAX_MEMORIES_PER_COMPONENT} memories, {} KiB of instance state)",
        MAX_COMPONENT_INSTANCE_BYTES >> 10
    )]
    OverLimit { plugin: String, reason: String },
    #[error(
        "plugin '{plugin}' imports '{import}', which the host does not provide (it only links runbook:plugin/* and wasi:* 0.2)"
    )]
    UnknownImport { plugin: String, import: String },
    #[error("plugin '{plugin}' does not export `run` of world runbook:plugin/step: {reason}")]
    MissingExport { plugin: String, reason: String },
    #[error(
        "state '{state}': plugin '{plugin}' imports '{import}' but the Task grants nothing from '{service}' (add e.g. '{service}:<Action>' to Capabilities)"
    )]
    UngrantedImport {
        state: String,
        plugin: String,
        import: String,
        service: String,
    },
    #[error("plugin '{plugin}': sha256 is {actual}, but the runbook pins {expected}")]
    Sha256Mismatch {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("wasm engine: {0}")]
    Engine(String),
}

impl HostError {
    pub fn code(&self) -> &'static str {
        match self {
            HostError::InvalidComponent { .. } => "E-PLUGIN-INVALID",
            HostError::OverLimit { .. } => "E-PLUGIN-LIMIT",
            HostError::UnknownImport { .. } => "E-PLUGIN-IMPORT",
            HostError::MissingExport { .. } => "E-PLUGIN-EXPORT",
            HostError::UngrantedImport { .. } => "E-PLUGIN-UNGRANTED",
            HostError::Sha256Mismatch { .. } => "E-PLUGIN-SHA256",
            HostError::Engine(_) => "E-ENGINE",
        }
    }
}

fn engine_err(e: impl std::fmt::Display) -> HostError {
    HostError::Engine(format!("{e:#}"))
}

/// Core module instances one component may contain (the pooling allocator's
/// per-component limit). componentize-py's `--stub-wasi` output has 38; a limit does not
/// reserve memory by itself (see docs/plugins.md, Limits).
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Linear memories one component may define.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 4;
/// Bytes of instance state (all its vmctx) one component may need.
pub const MAX_COMPONENT_INSTANCE_BYTES: usize = 1 << 20;

/// Whether wasmtime refused a compiled component for the pooling allocator's limits
/// (wasmtime has no typed error for it; these are its messages).
fn is_pool_limit(e: &wasmtime::Error) -> bool {
    let msg = format!("{e:#}");
    msg.contains("in the pooling allocator") || msg.contains("pooling allocator requirements")
}

/// Process-wide host settings.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may exist at once (the pooling allocator's size). Runs beyond it
    /// wait for a slot.
    pub max_instances: u32,
    /// Upper bound of any instance's linear memory; per-run caps must not exceed it.
    pub max_memory_bytes: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            max_instances: 256,
            max_memory_bytes: 256 << 20,
        }
    }
}

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(60),
            memory_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// How a capability call ended, for the audit trail.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CallOutcome {
    Ok,
    Error { code: String, message: String },
    Denied,
    TimedOut,
}

/// One capability call as recorded in the journal. Its arguments and result are kept so
/// `runbook plugin test --replay` can answer the same calls later; the journal redacts
/// secret-looking keys in both, and [`audit_args`] drops postgres query parameters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallRecord {
    pub state: String,
    pub plugin: String,
    pub service: String,
    pub action: String,
    pub region: Option<String>,
    pub resource: Option<String>,
    #[serde(flatten)]
    pub outcome: CallOutcome,
    pub duration_us: u64,
    /// The call's arguments (WIT parameter names, `region` apart), through [`audit_args`].
    pub args: Value,
    /// What the call returned: the WIT `ok` value, or the capability error as
    /// `{kind, code, message, retryable}`. `None` when denied or timed out.
    pub result: Option<Value>,
}

/// The arguments of a call as the audit keeps them: postgres query parameters are
/// replaced by `"***"` (they are data, not facts about the infrastructure). Replay
/// matching compares calls through this same function.
pub fn audit_args(service: &str, args: &Value) -> Value {
    let mut args = args.clone();
    if service == "postgres"
        && let Some(Value::Array(params)) = args.get_mut("params")
    {
        for p in params.iter_mut().filter(|p| !p.is_null()) {
            *p = Value::String("***".into());
        }
    }
    args
}

/// Receives what a running plugin does; the executor writes it to the journal.
pub trait Observer: Send + Sync {
    fn capability_call(&self, _record: &CallRecord) {}
    fn log(&self, _state: &str, _plugin: &str, _level: LogLevel, _message: &str) {}
}

/// An observer that only traces.
pub struct TracingObserver;
impl Observer for TracingObserver {}

/// A loaded, compiled plugin, ready to instantiate cheaply.
pub struct Plugin {
    pub name: String,
    pub sha256: String,
    /// Where the compiled code came from (compiled now, disk cache, memory).
    pub source: CacheSource,
    /// Component-level imports (interface names).
    pub imports: Vec<String>,
    /// The imports it can call functions through (what grants are checked against).
    callable: Vec<String>,
    pre: bindings::StepPre<StepState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("imports", &self.imports)
            .finish()
    }
}

impl Plugin {
    /// Capability services this plugin imports (`rds`, `ec2`, ...), with the import name.
    pub fn capability_imports(&self) -> Vec<(&'static str, &str)> {
        self.callable
            .iter()
            .filter_map(|imp| service_of_import(imp).map(|s| (s, imp.as_str())))
            .collect()
    }

    /// Refuse before running when the plugin imports a capability interface from which
    /// its Task grants nothing.
    pub fn check_grants(&self, state: &str, grants: &Grants) -> Result<(), HostError> {
        let granted = grants.services();
        for (service, import) in self.capability_imports() {
            if !granted.contains(service) {
                return Err(HostError::UngrantedImport {
                    state: state.to_string(),
                    plugin: self.name.clone(),
                    import: import.to_string(),
                    service: service.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `runbook:plugin/rds@0.1.0` -> `rds` when it is a capability interface.
pub fn service_of_import(import: &str) -> Option<&'static str> {
    let rest = import.strip_prefix("runbook:plugin/")?;
    let name = rest.split('@').next()?;
    catalog::SERVICES.iter().copied().find(|s| *s == name)
}

/// What one run needs besides the plugin.
pub struct RunRequest {
    /// ASL state name (or path), for errors, logs and the audit trail.
    pub state: String,
    pub input: String,
    pub grants: Grants,
    pub limits: Limits,
    pub provider: Arc<dyn Provider>,
    pub observer: Arc<dyn Observer>,
}

/// A failed step, as an ASL error name and cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct StepFailure {
    pub error: String,
    pub cause: String,
}

impl StepFailure {
    fn new(error: &str, cause: String) -> Self {
        StepFailure {
            error: error.to_string(),
            cause,
        }
    }
}

/// ASL error names the host produces.
pub mod errors {
    /// The plugin called a capability its Task did not grant.
    pub const PERMISSIONS: &str = "States.Permissions";
    /// The run outlived its deadline.
    pub const TIMEOUT: &str = "States.Timeout";
    /// The plugin trapped (panic, abort, unreachable, stack overflow...).
    pub const TRAP: &str = "Plugin.Trap";
    /// The plugin tried to grow memory past its cap.
    pub const MEMORY: &str = "Plugin.MemoryLimitExceeded";
    /// The plugin returned something that is not JSON.
    pub const BAD_OUTPUT: &str = "States.Runtime";
}

/// Why the host trapped a plugin on purpose.
#[derive(Debug, thiserror::Error)]
enum HostTrap {
    #[error("{action} on {resource} is not granted to state '{state}' (plugin '{plugin}')")]
    Denied {
        state: String,
        plugin: String,
        action: String,
        resource: String,
    },
    #[error("deadline of {0:?} exceeded during a {1} call")]
    DeadlineInCall(Duration, String),
}

/// Per-run environment shared by every host call of one instance.
struct RunEnv {
    state: String,
    plugin: String,
    grants: Grants,
    provider: Arc<dyn Provider>,
    observer: Arc<dyn Observer>,
    deadline: Instant,
    budget: Duration,
}

/// Memory cap that remembers it was hit, so an allocation failure that surfaces as an
/// abort is reported as what it is.
struct MemLimiter {
    max: usize,
    hit: Arc<AtomicBool>,
}

impl wasmtime::ResourceLimiter for MemLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Store data of one instance.
pub struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemLimiter,
    env: Arc<RunEnv>,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StepState {
    fn log_line(&self, level: LogLevel, message: &str) {
        let message = sanitize(message);
        let (state, plugin) = (&self.env.state, &self.env.plugin);
        match level {
            LogLevel::Trace => tracing::trace!(state, plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(state, plugin, "{message}"),
            LogLevel::Info => tracing::info!(state, plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(state, plugin, "{message}"),
            LogLevel::Error => tracing::error!(state, plugin, "{message}"),
        }
        self.env.observer.log(state, plugin, level, &message);
    }

    /// The one path every capability call takes: catalogue lookup, grant check (deny by
    /// default; a denial traps so a plugin cannot swallow it), provider call bounded by
    /// the run's deadline, audit record.
    async fn cap<T: DeserializeOwned>(
        &mut self,
        service: &'static str,
        function: &str,
        mut args: Value,
    ) -> wasmtime::Result<Result<T, bindings::CapError>> {
        let function = function.replace('_', "-");
        let spec = catalog::action_by_function(service, &function).ok_or_else(|| {
            wasmtime::format_err!("{service}/{function} is missing from the capability catalogue")
        })?;
        let region = args
            .as_object_mut()
            .and_then(|o| o.remove("region"))
            .and_then(|v| v.as_str().map(str::to_string));
        let resource = spec.resource.and_then(|p| lookup(&args, p));
        let env = self.env.clone();
        let mut record = CallRecord {
            state: env.state.clone(),
            plugin: env.plugin.clone(),
            service: service.to_string(),
            action: spec.action.to_string(),
            region: region.clone(),
            resource: resource.clone(),
            outcome: CallOutcome::Ok,
            duration_us: 0,
            args: audit_args(service, &args),
            result: None,
        };
        if !env.grants.allows(service, spec.action, resource.as_deref()) {
            record.outcome = CallOutcome::Denied;
            env.observer.capability_call(&record);
            tracing::warn!(state = %env.state, plugin = %env.plugin, "denied {service}:{}", spec.action);
            return Err(wasmtime::Error::new(HostTrap::Denied {
                state: env.state.clone(),
                plugin: env.plugin.clone(),
                action: format!("{service}:{}", spec.action),
                resource: resource.unwrap_or_else(|| "*".into()),
            }));
        }
        let call = CapCall {
            service: service.to_string(),
            action: spec.action.to_string(),
            region,
            resource,
            args,
        };
        let started = Instant::now();
        let remaining = env.deadline.saturating_duration_since(started);
        let result = tokio::time::timeout(remaining, env.provider.call(call)).await;
        record.duration_us = started.elapsed().as_micros() as u64;
        let result = match result {
            Err(_) => {
                record.outcome = CallOutcome::TimedOut;
                env.observer.capability_call(&record);
                return Err(wasmtime::Error::new(HostTrap::DeadlineInCall(
                    env.budget,
                    format!("{service}:{}", spec.action),
                )));
            }
            Ok(Ok(value)) => match serde_json::from_value::<T>(value.clone()) {
                Ok(v) => {
                    record.result = Some(value);
                    Ok(v)
                }
                Err(e) => Err(runbook_caps::CapError::internal(format!(
                    "the {} provider returned a malformed {service}:{} result: {e}",
                    env.provider.name(),
                    spec.action
                ))),
            },
            Ok(Err(e)) => Err(e),
        };
        match result {
            Ok(v) => {
                env.observer.capability_call(&record);
                Ok(Ok(v))
            }
            Err(e) => {
                record.outcome = CallOutcome::Error {
                    code: e.code.clone(),
                    message: e.message.clone(),
                };
                let error = serde_json::to_value(&e)?;
                record.result = Some(error.clone());
                env.observer.capability_call(&record);
                let wit: bindings::CapError = serde_json::from_value(error)?;
                Ok(Err(wit))
            }
        }
    }
}

/// `request.identifier` -> the string at that path of the arguments.
fn lookup(args: &Value, path: &str) -> Option<String> {
    let mut v = args;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    v.as_str().map(str::to_string)
}

/// Strip control characters (terminal escapes, bells) from plugin text; keep tabs.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// The wasm host.
pub struct Host {
    engine: Engine,
    linker: Linker<StepState>,
    cache: Option<cache::DiskCache>,
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    /// Components refused for the pool's limits, by SHA-256, with the reason: a retried
    /// Task (or another Task using it) is refused at once instead of recompiled.
    refused: Mutex<HashMap<String, String>>,
    slots: Arc<tokio::sync::Semaphore>,
    config: HostConfig,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Host {
    pub fn new(config: HostConfig) -> Result<Host, HostError> {
        let mut wt = wasmtime::Config::new();
        wt.epoch_interruption(true);
        wt.wasm_component_model(true);
        // Pooling: instantiation is a few microseconds and memory is bounded up front.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances * 8)
            .total_memories(config.max_instances * 2)
            .total_tables(config.max_instances * 4)
            .total_stacks(config.max_instances)
            .max_memory_size(config.max_memory_bytes)
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_component_instance_size(MAX_COMPONENT_INSTANCE_BYTES);
        wt.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        // Guests may never reserve more than the cap, so reservations stay small.
        wt.memory_reservation(config.max_memory_bytes as u64);
        let engine = Engine::new(&wt).map_err(engine_err)?;

        let mut linker: Linker<StepState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        bindings::Step::add_to_linker::<StepState, wasmtime::component::HasSelf<StepState>>(
            &mut linker,
            |s| s,
        )
        .map_err(engine_err)?;

        let cache = match &config.cache_dir {
            Some(dir) => Some(cache::DiskCache::open(dir, &engine).map_err(engine_err)?),
            None => None,
        };

        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("runbook-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(engine_err)?;
        }
        Ok(Host {
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_instances as usize)),
            config,
            stop_ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or fetch from the caches) and pre-link a plugin.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        pin: Option<&str>,
    ) -> Result<Arc<Plugin>, HostError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(expected) = pin
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(HostError::Sha256Mismatch {
                plugin: name.to_string(),
                expected: expected.to_string(),
                actual: sha256,
            });
        }
        if let Some(p) = self.loaded.lock().unwrap().get(&sha256)
            && p.name == name
        {
            return Ok(p.clone());
        }
        if let Some(reason) = self.refused.lock().unwrap().get(&sha256) {
            return Err(HostError::OverLimit {
                plugin: name.to_string(),
                reason: reason.clone(),
            });
        }
        let (component, source) = match self.compile(name, bytes, &sha256) {
            Ok(c) => c,
            Err(HostError::OverLimit { plugin, reason }) => {
                self.refused.lock().unwrap().insert(sha256, reason.clone());
                return Err(HostError::OverLimit { plugin, reason });
            }
            Err(e) => return Err(e),
        };
        let imports = inspect::component_imports(&self.engine, &component);
        let callable = inspect::callable_imports(&self.engine, &component);
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            let msg = format!("{e:#}");
            match imports.iter().find(|i| msg.contains(i.as_str())) {
                Some(import) => HostError::UnknownImport {
                    plugin: name.to_string(),
                    import: import.clone(),
                },
                None => HostError::InvalidComponent {
                    plugin: name.to_string(),
                    reason: msg,
                },
            }
        })?;
        let pre = bindings::StepPre::new(pre).map_err(|e| HostError::MissingExport {
            plugin: name.to_string(),
            reason: format!("{e:#}"),
        })?;
        let plugin = Arc::new(Plugin {
            name: name.to_string(),
            sha256: sha256.clone(),
            source,
            imports,
            callable,
            pre,
        });
        self.loaded.lock().unwrap().insert(sha256, plugin.clone());
        Ok(plugin)
    }

    fn compile(
        &self,
        name: &str,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheSource), HostError> {
        let invalid = |e: wasmtime::Error| {
            if is_pool_limit(&e) {
                HostError::OverLimit {
                    plugin: name.to_string(),
                    reason: format!("{e:#}"),
                }
            } else {
                HostError::InvalidComponent {
                    plugin: name.to_string(),
                    reason: format!("{e:#}"),
                }
            }
        };
        if let Some(cache) = &self.cache {
            match cache.get(&self.engine, sha256) {
                Some(Ok(component)) => return Ok((component, CacheSource::Disk)),
                // Compiled before, refused by the pool's limits: no need to compile again.
                Some(Err(e)) if is_pool_limit(&e) => return Err(invalid(e)),
                Some(Err(e)) => tracing::warn!("compile cache: discarding {sha256}: {e:#}"),
                None => {}
            }
            // Compile to bytes and store them before building the Component: wasmtime
            // checks the pool's limits only then, and a refused component stays cached,
            // so a retry is refused in milliseconds (and raising a limit reuses it).
            let body = self.engine.precompile_component(bytes).map_err(|e| {
                HostError::InvalidComponent {
                    plugin: name.to_string(),
                    reason: format!("{e:#}"),
                }
            })?;
            if let Err(e) = cache.put(sha256, &body) {
                tracing::warn!("compile cache: could not store {name}: {e:#}");
            }
            let component = cache::own_component(&self.engine, &body).map_err(invalid)?;
            return Ok((component, CacheSource::Compiled));
        }
        let component = Component::new(&self.engine, bytes).map_err(invalid)?;
        Ok((component, CacheSource::Compiled))
    }

    /// Run a plugin's `run` once. Every failure is an ASL error: the plugin's own
    /// step-error, `States.Permissions`, `States.Timeout`, `Plugin.Trap`,
    /// `Plugin.MemoryLimitExceeded` or `States.Runtime`.
    pub async fn run(&self, plugin: &Plugin, req: RunRequest) -> Result<String, StepFailure> {
        let limits = Limits {
            memory_bytes: req.limits.memory_bytes.min(self.config.max_memory_bytes),
            ..req.limits
        };
        let who = format!("state '{}', plugin '{}'", req.state, plugin.name);
        let _slot = self.slots.clone().acquire_owned().await.map_err(|e| {
            StepFailure::new(errors::TRAP, format!("{who}: host shutting down: {e}"))
        })?;
        let start = Instant::now();
        let deadline = start + limits.deadline;
        let stdout = MemoryOutputPipe::new(CAPTURE_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURE_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let memory_hit = Arc::new(AtomicBool::new(false));
        let env = Arc::new(RunEnv {
            state: req.state.clone(),
            plugin: plugin.name.clone(),
            grants: req.grants,
            provider: req.provider,
            observer: req.observer.clone(),
            deadline,
            budget: limits.deadline,
        });
        let state = StepState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemLimiter {
                max: limits.memory_bytes,
                hit: memory_hit.clone(),
            },
            env: env.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Yield to other tasks every tick, trap once the wall clock passes the deadline.
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &req.input).await
        };
        // The epoch callback stops guest code; this bounds everything else too.
        let outcome = tokio::time::timeout(limits.deadline + EPOCH_TICK * 4, call).await;
        drop(store);
        flush_output(&env, "stdout", &stdout);
        flush_output(&env, "stderr", &stderr);

        match outcome {
            Err(_) => Err(StepFailure::new(
                errors::TIMEOUT,
                format!("{who}: exceeded its deadline of {:?}", limits.deadline),
            )),
            Ok(Ok(Ok(output))) => match serde_json::from_str::<Value>(&output) {
                Ok(_) => Ok(output),
                Err(e) => Err(StepFailure::new(
                    errors::BAD_OUTPUT,
                    format!("{who}: output is not JSON: {e}"),
                )),
            },
            Ok(Ok(Err(step))) => Err(StepFailure {
                error: step.error,
                cause: sanitize(&step.cause),
            }),
            Ok(Err(e)) => Err(classify_trap(
                &who,
                &e,
                limits,
                memory_hit.load(Ordering::Relaxed),
            )),
        }
    }
}

fn classify_trap(who: &str, e: &wasmtime::Error, limits: Limits, memory_hit: bool) -> StepFailure {
    if let Some(t) = e.downcast_ref::<HostTrap>() {
        return match t {
            HostTrap::Denied { .. } => StepFailure::new(errors::PERMISSIONS, format!("{who}: {t}")),
            HostTrap::DeadlineInCall(..) => {
                StepFailure::new(errors::TIMEOUT, format!("{who}: {t}"))
            }
        };
    }
    if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
        return StepFailure::new(
            errors::TIMEOUT,
            format!("{who}: exceeded its deadline of {:?}", limits.deadline),
        );
    }
    if memory_hit {
        return StepFailure::new(
            errors::MEMORY,
            format!(
                "{who}: tried to grow memory past its cap of {} MiB",
                limits.memory_bytes >> 20
            ),
        );
    }
    StepFailure::new(
        errors::TRAP,
        format!("{who}: trapped: {}", sanitize(&format!("{e:#}"))),
    )
}

fn flush_output(env: &RunEnv, stream: &str, pipe: &MemoryOutputPipe) {
    let bytes = pipe.contents();
    if bytes.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines() {
        let line = sanitize(line);
        tracing::info!(state = %env.state, plugin = %env.plugin, stream, "{line}");
        env.observer.log(
            &env.state,
            &env.plugin,
            LogLevel::Info,
            &format!("[{stream}] {line}"),
        );
    }
}
