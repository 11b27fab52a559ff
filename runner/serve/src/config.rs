//! `serve.yaml`: parsed with the runbook loader (positions for every key and value),
//! checked field by field, every problem reported as `file:line:col: message`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runbook_engine::SourceMap;
use runbook_scheduler::jiff::civil::DateTime;
use runbook_scheduler::jiff::tz::TimeZone;
use runbook_scheduler::{Blackout, Expression, Overlap, Schedule};
use runbook_watcher::Mode;
use serde_json::{Map, Value};

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub path: PathBuf,
    pub provider: String,
    pub http: HttpSection,
    pub environments: Vec<EnvironmentConfig>,
    pub schedules: Vec<ScheduleConfig>,
}

#[derive(Debug, Clone)]
pub struct HttpSection {
    /// `None`: no HTTP listener (the `--listen` flag can still set one).
    pub listen: Option<std::net::SocketAddr>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    /// The environment suffix (`dev` → `primary-postgres-dev`, ...).
    pub name: String,
    pub provider: String,
    /// Parameters every execution on this environment gets: EnvironmentSuffix,
    /// PrimaryRegion, ReplicaRegion, DatabaseName.
    pub params: Map<String, Value>,
    pub primary_region: String,
    pub replica_region: String,
    pub database: String,
    pub failover_runbook: PathBuf,
    pub failover_params: Map<String, Value>,
    pub watcher: runbook_watcher::Config,
    pub interval: Duration,
    pub probe_timeout: Duration,
    /// How fresh the replica's last message from the primary must be to count as
    /// "still receiving WAL" (the veto).
    pub receiving_window: Duration,
    /// `None`: readiness is not checked.
    pub readiness_interval: Option<Duration>,
    pub notify_topic: String,
    pub notify_region: String,
}

impl EnvironmentConfig {
    pub fn primary(&self) -> String {
        format!("primary-postgres-{}", self.name)
    }
    pub fn replica(&self) -> String {
        format!("replica-postgres-{}", self.name)
    }
    pub fn secret(&self) -> String {
        format!("postgres-credentials-{}", self.name)
    }
    /// The key the executor's environment lock uses.
    pub fn lock_key(&self) -> String {
        format!("{}/{}", self.provider, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub schedule: Schedule,
    pub runbook: PathBuf,
    pub environment: Option<String>,
    pub provider: String,
    /// Environment parameters overlaid with the schedule's own.
    pub params: Map<String, Value>,
    pub enabled: bool,
    pub expression_text: String,
    /// The keys of the schedule's own `Params` (checked against the runbook's
    /// Parameters by `--check`; the environment's are added whether declared or not).
    pub own_params: Vec<String>,
}

/// Every problem found, one `file:line:col: message` per line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    map: SourceMap,
    errors: Vec<String>,
}

impl Ctx<'_> {
    fn err(&mut self, pointer: &str, msg: impl std::fmt::Display) {
        let p = self.map.pos(pointer);
        self.errors.push(format!(
            "{}:{}:{}: {msg}",
            self.file.display(),
            p.line,
            p.col
        ));
    }

    /// An error at byte `offset` inside the string value at `pointer` (expression
    /// errors point at the offending character).
    fn err_at(&mut self, pointer: &str, offset: usize, msg: impl std::fmt::Display) {
        let mut p = self
            .map
            .value_pos(pointer)
            .unwrap_or_else(|| self.map.pos(pointer));
        // A quoted scalar's position is its opening quote.
        let line = self.text.lines().nth(p.line as usize - 1).unwrap_or("");
        let at = line.chars().nth(p.col as usize - 1);
        if matches!(at, Some('"' | '\'')) {
            p.col += 1;
        }
        p.col += offset as u32;
        self.errors.push(format!(
            "{}:{}:{}: {msg}",
            self.file.display(),
            p.line,
            p.col
        ));
    }

    fn keys(&mut self, obj: &Map<String, Value>, pointer: &str, allowed: &[&str], what: &str) {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                let ptr = format!("{pointer}/{}", runbook_engine::yaml::escape_token(k));
                self.err(
                    &ptr,
                    format!(
                        "{what}: unknown field '{k}' (expected one of {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn str_field(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                self.err(&format!("{ptr}/{key}"), format!("{key} must be a string"));
                None
            }
        }
    }

    fn bool_field(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        default: bool,
    ) -> bool {
        match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(
                    &format!("{ptr}/{key}"),
                    format!("{key} must be true or false"),
                );
                default
            }
        }
    }

    fn u32_field(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str, default: u32) -> u32 {
        match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    self.err(
                        &format!("{ptr}/{key}"),
                        format!("{key} must be a whole number"),
                    );
                    default
                }
            },
        }
    }

    fn f64_field(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str, default: f64) -> f64 {
        match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(v) => match v.as_f64() {
                Some(n) if n >= 0.0 => n,
                _ => {
                    self.err(
                        &format!("{ptr}/{key}"),
                        format!("{key} must be a number >= 0"),
                    );
                    default
                }
            },
        }
    }

    fn duration_field(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(v) = obj.get(key).filter(|v| !v.is_null()) else {
            return default;
        };
        let p = format!("{ptr}/{key}");
        let Some(s) = v.as_str() else {
            self.err(
                &p,
                format!("{key} must be a duration such as 500ms, 30s, 15m, 1h"),
            );
            return default;
        };
        match parse_duration(s) {
            Ok(d) => d,
            Err((off, msg)) => {
                self.err_at(&p, off, format!("{key}: {msg}"));
                default
            }
        }
    }

    fn object<'v>(
        &mut self,
        v: Option<&'v Value>,
        ptr: &str,
        what: &str,
    ) -> Option<&'v Map<String, Value>> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.err(ptr, format!("{what} must be a mapping"));
                None
            }
        }
    }
}

/// `500ms`, or the scheduler's `1h30m` form.
pub fn parse_duration(s: &str) -> Result<Duration, (usize, String)> {
    let t = s.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        return ms.parse::<u64>().map(Duration::from_millis).map_err(|_| {
            (
                0,
                format!("expected a number of milliseconds before 'ms' in '{t}'"),
            )
        });
    }
    runbook_scheduler::parse_duration(s).map_err(|e| (e.offset, e.message))
}

const TOP: &[&str] = &["Provider", "Http", "Environments", "Schedules"];
const HTTP: &[&str] = &["Listen", "TokenFile"];
const ENV: &[&str] = &[
    "Provider",
    "PrimaryRegion",
    "ReplicaRegion",
    "DatabaseName",
    "Failover",
    "Watcher",
    "Readiness",
    "Notify",
];
const FAILOVER: &[&str] = &["Runbook", "Params"];
const WATCHER: &[&str] = &[
    "Mode",
    "Interval",
    "FailedRounds",
    "MinFailedSignals",
    "StartupGrace",
    "Cooldown",
    "MaxFailoversPerCooldown",
    "MaxLagSeconds",
    "ProbeTimeout",
    "ReceivingWindow",
];
const READINESS: &[&str] = &["Interval"];
const NOTIFY: &[&str] = &["Topic", "Region"];
const SCHEDULE: &[&str] = &[
    "Runbook",
    "Environment",
    "Provider",
    "Params",
    "Expression",
    "Timezone",
    "Jitter",
    "Overlap",
    "CatchUp",
    "PauseOnFailure",
    "Start",
    "End",
    "Blackouts",
    "Enabled",
];

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let expanded = match p.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(rest))
            .unwrap_or_else(|| PathBuf::from(p)),
        None => PathBuf::from(p),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

/// Read and check `path`.
pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
    parse(path, &text)
}

/// Check `text` as the contents of `path` (runbook paths are relative to its directory).
pub fn parse(path: &Path, text: &str) -> Result<ServeConfig, ConfigError> {
    let (root, map) = runbook_engine::yaml::load(text).map_err(|e| {
        ConfigError(vec![format!(
            "{}:{}:{}: {}",
            path.display(),
            e.pos.line,
            e.pos.col,
            e.message
        )])
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut cx = Ctx {
        file: path,
        text,
        map,
        errors: Vec::new(),
    };
    let Some(top) = root.as_object() else {
        cx.err(
            "",
            "serve config must be a mapping with Environments and/or Schedules",
        );
        return Err(ConfigError(cx.errors));
    };
    cx.keys(top, "", TOP, "serve config");
    let provider = cx
        .str_field(top, "", "Provider")
        .unwrap_or_else(|| "local".into());
    check_provider(&mut cx, &provider, "/Provider");

    let http = match cx.object(top.get("Http"), "/Http", "Http") {
        None => HttpSection {
            listen: None,
            token_file: None,
        },
        Some(h) => {
            cx.keys(h, "/Http", HTTP, "Http");
            let listen = cx
                .str_field(h, "/Http", "Listen")
                .and_then(|s| match s.parse() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        cx.err(
                            "/Http/Listen",
                            format!("Listen: '{s}' is not an address such as 127.0.0.1:9750"),
                        );
                        None
                    }
                });
            let token_file = cx
                .str_field(h, "/Http", "TokenFile")
                .map(|p| resolve_path(&base, &p));
            HttpSection { listen, token_file }
        }
    };

    let mut environments = Vec::new();
    if let Some(envs) = cx.object(top.get("Environments"), "/Environments", "Environments") {
        for (name, v) in envs {
            let ptr = format!("/Environments/{}", runbook_engine::yaml::escape_token(name));
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || name.is_empty() {
                cx.err(&ptr, format!("environment '{name}': the name is the EnvironmentSuffix: letters, digits and '-' only"));
            }
            let Some(e) = cx.object(Some(v), &ptr, &format!("environment '{name}'")) else {
                cx.err(&ptr, format!("environment '{name}' must be a mapping"));
                continue;
            };
            if let Some(env) = environment(&mut cx, &base, &provider, name, e, &ptr) {
                environments.push(env);
            }
        }
    }

    let mut schedules = Vec::new();
    if let Some(ss) = cx.object(top.get("Schedules"), "/Schedules", "Schedules") {
        for (name, v) in ss {
            let ptr = format!("/Schedules/{}", runbook_engine::yaml::escape_token(name));
            let Some(s) = cx.object(Some(v), &ptr, &format!("schedule '{name}'")) else {
                cx.err(&ptr, format!("schedule '{name}' must be a mapping"));
                continue;
            };
            if let Some(sc) = schedule(&mut cx, &base, &provider, &environments, name, s, &ptr) {
                schedules.push(sc);
            }
        }
    }
    if environments.is_empty() && schedules.is_empty() && cx.errors.is_empty() {
        cx.err(
            "",
            "nothing to serve: add Environments (watcher, readiness) or Schedules",
        );
    }
    if !cx.errors.is_empty() {
        return Err(ConfigError(cx.errors));
    }
    Ok(ServeConfig {
        path: path.to_path_buf(),
        provider,
        http,
        environments,
        schedules,
    })
}

fn check_provider(cx: &mut Ctx, p: &str, ptr: &str) {
    if p != "local" && p != "aws" {
        cx.err(
            ptr,
            format!("Provider: '{p}' is not a provider (local or aws)"),
        );
    }
}

fn environment(
    cx: &mut Ctx,
    base: &Path,
    default_provider: &str,
    name: &str,
    e: &Map<String, Value>,
    ptr: &str,
) -> Option<EnvironmentConfig> {
    let what = format!("environment '{name}'");
    cx.keys(e, ptr, ENV, &what);
    let provider = cx
        .str_field(e, ptr, "Provider")
        .unwrap_or_else(|| default_provider.to_string());
    check_provider(cx, &provider, &format!("{ptr}/Provider"));
    let primary_region = cx
        .str_field(e, ptr, "PrimaryRegion")
        .unwrap_or_else(|| "us-east-1".into());
    let replica_region = cx
        .str_field(e, ptr, "ReplicaRegion")
        .unwrap_or_else(|| "eu-west-1".into());
    if primary_region == replica_region {
        cx.err(
            &format!("{ptr}/ReplicaRegion"),
            "ReplicaRegion must differ from PrimaryRegion",
        );
    }
    let database = cx
        .str_field(e, ptr, "DatabaseName")
        .unwrap_or_else(|| "postgres".into());
    let mut params = Map::new();
    params.insert("EnvironmentSuffix".into(), Value::String(name.into()));
    params.insert(
        "PrimaryRegion".into(),
        Value::String(primary_region.clone()),
    );
    params.insert(
        "ReplicaRegion".into(),
        Value::String(replica_region.clone()),
    );
    params.insert("DatabaseName".into(), Value::String(database.clone()));

    let fptr = format!("{ptr}/Failover");
    let (failover_runbook, failover_params) = match cx.object(e.get("Failover"), &fptr, "Failover")
    {
        None => (resolve_path(base, "runbooks/failover.yaml"), Map::new()),
        Some(f) => {
            cx.keys(f, &fptr, FAILOVER, "Failover");
            let rb = cx
                .str_field(f, &fptr, "Runbook")
                .unwrap_or_else(|| "runbooks/failover.yaml".into());
            let ps = cx
                .object(f.get("Params"), &format!("{fptr}/Params"), "Params")
                .cloned()
                .unwrap_or_default();
            (resolve_path(base, &rb), ps)
        }
    };

    let wptr = format!("{ptr}/Watcher");
    let defaults = runbook_watcher::Config::default();
    let mut watcher = defaults.clone();
    let mut interval = Duration::from_secs(1);
    let mut probe_timeout = Duration::from_millis(800);
    let mut receiving_window = Duration::from_secs(5);
    match cx.object(e.get("Watcher"), &wptr, "Watcher") {
        None => watcher.mode = Mode::Off,
        Some(w) => {
            cx.keys(w, &wptr, WATCHER, "Watcher");
            watcher.mode = match cx.str_field(w, &wptr, "Mode").as_deref() {
                None | Some("off") => Mode::Off,
                Some("dry-run") => Mode::DryRun,
                Some("notify") => Mode::Notify,
                Some("auto") => Mode::Auto,
                Some(m) => {
                    cx.err(
                        &format!("{wptr}/Mode"),
                        format!("Mode: '{m}' is not one of off, dry-run, notify, auto"),
                    );
                    Mode::Off
                }
            };
            interval = cx.duration_field(w, &wptr, "Interval", interval);
            if interval < Duration::from_millis(100) {
                cx.err(&format!("{wptr}/Interval"), "Interval: at least 100ms");
            }
            watcher.failed_rounds = cx.u32_field(w, &wptr, "FailedRounds", defaults.failed_rounds);
            watcher.min_failed_signals =
                cx.u32_field(w, &wptr, "MinFailedSignals", defaults.min_failed_signals);
            watcher.startup_grace_ms = cx
                .duration_field(
                    w,
                    &wptr,
                    "StartupGrace",
                    Duration::from_millis(defaults.startup_grace_ms as u64),
                )
                .as_millis() as i64;
            watcher.cooldown_ms = cx
                .duration_field(
                    w,
                    &wptr,
                    "Cooldown",
                    Duration::from_millis(defaults.cooldown_ms as u64),
                )
                .as_millis() as i64;
            watcher.max_failovers_per_cooldown = cx.u32_field(
                w,
                &wptr,
                "MaxFailoversPerCooldown",
                defaults.max_failovers_per_cooldown,
            );
            watcher.max_lag_seconds =
                cx.f64_field(w, &wptr, "MaxLagSeconds", defaults.max_lag_seconds);
            probe_timeout = cx.duration_field(w, &wptr, "ProbeTimeout", probe_timeout);
            receiving_window = cx.duration_field(w, &wptr, "ReceivingWindow", receiving_window);
            if let Err(err) = watcher.validate() {
                cx.err(&wptr, format!("Watcher: {err}"));
            }
        }
    }

    let rptr = format!("{ptr}/Readiness");
    let readiness_interval = match cx.object(e.get("Readiness"), &rptr, "Readiness") {
        None => Some(Duration::from_secs(300)),
        Some(r) => {
            cx.keys(r, &rptr, READINESS, "Readiness");
            match r.get("Interval") {
                Some(Value::String(s)) if s == "off" => None,
                _ => {
                    let d = cx.duration_field(r, &rptr, "Interval", Duration::from_secs(300));
                    if d.is_zero() { None } else { Some(d) }
                }
            }
        }
    };

    let nptr = format!("{ptr}/Notify");
    let (notify_topic, notify_region) = match cx.object(e.get("Notify"), &nptr, "Notify") {
        None => (format!("postgres-dr-alerts-{name}"), replica_region.clone()),
        Some(n) => {
            cx.keys(n, &nptr, NOTIFY, "Notify");
            (
                cx.str_field(n, &nptr, "Topic")
                    .unwrap_or_else(|| format!("postgres-dr-alerts-{name}")),
                cx.str_field(n, &nptr, "Region")
                    .unwrap_or_else(|| replica_region.clone()),
            )
        }
    };
    watcher.max_lag_seconds = watcher.max_lag_seconds.max(0.0);
    Some(EnvironmentConfig {
        name: name.to_string(),
        provider,
        params,
        primary_region,
        replica_region,
        database,
        failover_runbook,
        failover_params,
        watcher,
        interval,
        probe_timeout,
        receiving_window,
        readiness_interval,
        notify_topic,
        notify_region,
    })
}

fn schedule(
    cx: &mut Ctx,
    base: &Path,
    default_provider: &str,
    envs: &[EnvironmentConfig],
    name: &str,
    s: &Map<String, Value>,
    ptr: &str,
) -> Option<ScheduleConfig> {
    let what = format!("schedule '{name}'");
    cx.keys(s, ptr, SCHEDULE, &what);
    let runbook = match cx.str_field(s, ptr, "Runbook") {
        Some(r) => resolve_path(base, &r),
        None => {
            cx.err(ptr, format!("{what}: Runbook is required"));
            return None;
        }
    };
    let Some(expr_text) = cx.str_field(s, ptr, "Expression") else {
        cx.err(
            ptr,
            format!("{what}: Expression is required (cron(...), rate(...) or at(...))"),
        );
        return None;
    };
    let tz_name = cx
        .str_field(s, ptr, "Timezone")
        .unwrap_or_else(|| "UTC".into());
    let tz = match TimeZone::get(&tz_name) {
        Ok(tz) => tz,
        Err(_) => {
            cx.err(
                &format!("{ptr}/Timezone"),
                format!("Timezone: '{tz_name}' is not an IANA time zone (e.g. Europe/London, America/New_York, UTC)"),
            );
            return None;
        }
    };
    let expression = match Expression::parse(&expr_text) {
        Ok(e) => e,
        Err(e) => {
            cx.err_at(
                &format!("{ptr}/Expression"),
                e.offset,
                format!("Expression: {}", e.message),
            );
            return None;
        }
    };
    let mut sched = Schedule::new(name, expression, tz.clone());
    let jitter = cx.duration_field(s, ptr, "Jitter", Duration::ZERO);
    sched.jitter = (!jitter.is_zero()).then_some(jitter);
    sched.overlap = match cx.str_field(s, ptr, "Overlap").as_deref() {
        None | Some("skip") => Overlap::Skip,
        Some("buffer-one") => Overlap::BufferOne,
        Some("allow") => Overlap::Allow,
        Some(o) => {
            cx.err(
                &format!("{ptr}/Overlap"),
                format!("Overlap: '{o}' is not one of skip, buffer-one, allow"),
            );
            Overlap::Skip
        }
    };
    sched.catch_up = cx.duration_field(s, ptr, "CatchUp", runbook_scheduler::DEFAULT_CATCH_UP);
    sched.pause_on_failure = cx.bool_field(s, ptr, "PauseOnFailure", false);
    for (key, slot) in [("Start", &mut sched.start), ("End", &mut sched.end)] {
        if let Some(t) = cx.str_field(s, ptr, key) {
            match t
                .parse::<DateTime>()
                .ok()
                .and_then(|dt| tz.to_ambiguous_timestamp(dt).earlier().ok())
            {
                Some(ts) => *slot = Some(ts),
                None => cx.err(
                    &format!("{ptr}/{key}"),
                    format!(
                        "{key}: '{t}' is not a local date-time yyyy-mm-ddThh:mm:ss in {tz_name}"
                    ),
                ),
            }
        }
    }
    if let (Some(a), Some(b)) = (sched.start, sched.end)
        && b <= a
    {
        cx.err(&format!("{ptr}/End"), "End must be after Start");
    }
    match s.get("Blackouts") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, b) in items.iter().enumerate() {
                let bptr = format!("{ptr}/Blackouts/{i}");
                match b.as_str() {
                    None => cx.err(
                        &bptr,
                        "a blackout is a string: 'start..end' or 'cron(...) for 60h'",
                    ),
                    Some(text) => match Blackout::parse(text, &tz) {
                        Ok(b) => sched.blackouts.push(b),
                        Err(e) => cx.err_at(&bptr, e.offset, format!("Blackouts: {}", e.message)),
                    },
                }
            }
        }
        Some(_) => cx.err(&format!("{ptr}/Blackouts"), "Blackouts must be a list"),
    }
    let enabled = cx.bool_field(s, ptr, "Enabled", true);
    let environment = cx.str_field(s, ptr, "Environment");
    let env = environment
        .as_ref()
        .and_then(|n| envs.iter().find(|e| &e.name == n));
    let provider = cx
        .str_field(s, ptr, "Provider")
        .or_else(|| env.map(|e| e.provider.clone()))
        .unwrap_or_else(|| default_provider.to_string());
    check_provider(cx, &provider, &format!("{ptr}/Provider"));
    let mut params = match (&environment, env) {
        (Some(_), Some(e)) => e.params.clone(),
        (Some(n), None) => {
            // Not one of Environments: only the suffix is known.
            let mut m = Map::new();
            m.insert("EnvironmentSuffix".into(), Value::String(n.clone()));
            m
        }
        (None, _) => Map::new(),
    };
    let mut own_params = Vec::new();
    if let Some(p) = cx.object(s.get("Params"), &format!("{ptr}/Params"), "Params") {
        for (k, v) in p {
            params.insert(k.clone(), v.clone());
            own_params.push(k.clone());
        }
    }
    Some(ScheduleConfig {
        schedule: sched,
        runbook,
        environment,
        provider,
        params,
        enabled,
        expression_text: expr_text,
        own_params,
    })
}

/// Positions of schedule and environment entries, for errors found after parsing
/// (a runbook that does not validate, a parameter it does not declare).
pub fn entry_position(path: &Path, text: &str, pointer: &str) -> String {
    match runbook_engine::yaml::load(text) {
        Ok((_, map)) => {
            let p = map.pos(pointer);
            format!("{}:{}:{}", path.display(), p.line, p.col)
        }
        Err(_) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        parse(Path::new("serve.yaml"), text).unwrap_err().0
    }

    #[test]
    fn a_full_config_parses() {
        let c = parse(
            Path::new("/etc/runbook/serve.yaml"),
            r#"
Http: { Listen: "127.0.0.1:9750" }
Environments:
  dev:
    Watcher: { Mode: auto, Interval: 500ms, FailedRounds: 4 }
Schedules:
  weekly:
    Runbook: runbooks/gameday.yaml
    Environment: dev
    Params: { Fault: writer-crash }
    Expression: cron(0 3 ? * TUE *)
    Timezone: Europe/London
    Jitter: 5m
    Overlap: buffer-one
    Blackouts: ["2026-12-20T00:00..2027-01-03T00:00"]
"#,
        )
        .unwrap();
        let e = &c.environments[0];
        assert_eq!(e.watcher.mode, Mode::Auto);
        assert_eq!(e.interval, Duration::from_millis(500));
        assert_eq!(e.watcher.failed_rounds, 4);
        assert_eq!(e.lock_key(), "local/dev");
        assert_eq!(
            e.failover_runbook,
            PathBuf::from("/etc/runbook/runbooks/failover.yaml")
        );
        let s = &c.schedules[0];
        assert_eq!(s.params["EnvironmentSuffix"], "dev");
        assert_eq!(s.params["Fault"], "writer-crash");
        assert_eq!(s.schedule.overlap, Overlap::BufferOne);
        assert_eq!(s.schedule.blackouts.len(), 1);
        assert_eq!(c.http.listen.unwrap().port(), 9750);
    }

    #[test]
    fn errors_carry_file_line_col() {
        let e = errs(
            "Schedules:\n  nightly:\n    Runbook: x.yaml\n    Expression: cron(0 25 * * ? *)\n    Timezone: Mars/Olympus\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("serve.yaml:5:"), "{e:?}");
        assert!(e[0].contains("Mars/Olympus"), "{e:?}");

        let e = errs(
            "Schedules:\n  nightly:\n    Runbook: x.yaml\n    Expression: cron(0 25 * * ? *)\n",
        );
        // The hour field '25' is the 3rd character after "cron(0 " on line 4.
        assert!(e[0].starts_with("serve.yaml:4:"), "{e:?}");
        assert!(e[0].contains("hour") || e[0].contains("25"), "{e:?}");

        let e = errs("Environments:\n  dev:\n    Watcher: { Mode: sometimes }\n    Colour: blue\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e.iter()
                .any(|m| m.starts_with("serve.yaml:3:") && m.contains("sometimes")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("serve.yaml:4:5:") && m.contains("Colour")),
            "{e:?}"
        );
    }

    #[test]
    fn bad_yaml_and_empty_configs_are_refused() {
        assert!(errs("Schedules: [")[0].starts_with("serve.yaml:"));
        assert!(errs("{}")[0].contains("nothing to serve"));
        assert!(
            errs("Http: { Listen: 'nowhere' }\nEnvironments: { dev: {} }")[0].contains("nowhere")
        );
    }
}
