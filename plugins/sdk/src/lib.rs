//! The runbook plugin SDK.
//!
//! A plugin is a WebAssembly component for the WIT world `runbook:plugin/step`. With this
//! crate it is a function from a typed input to a typed output:
//!
//! ```ignore
//! use runbook_plugin_sdk::{export_step, StepError, cap::rds};
//!
//! #[derive(serde::Deserialize)]
//! struct In { region: String, identifier: String }
//!
//! fn run(input: In) -> Result<serde_json::Value, StepError> {
//!     let db = rds::describe_db_instances(&input.region, Some(&input.identifier))?;
//!     Ok(serde_json::json!({ "status": db[0].status }))
//! }
//! export_step!(run);
//! ```
//!
//! Capability errors convert with `?` into a [`StepError`] whose ASL error name is the
//! AWS error code (`DBInstanceNotFound`, `InvalidDBInstanceState`, `Throttling`, ...), the
//! same on the `local` and `aws` providers, so Retry/Catch match it directly.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "runbook:plugin/step",
        pub_export_macro: true,
        export_macro_name: "__export_step_world",
        default_bindings_module: "runbook_plugin_sdk::bindings",
        // Plugins return capability records as their JSON results.
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

/// The capability interfaces. Calling one the Task did not grant fails the step with
/// `States.Permissions`.
pub mod cap {
    pub use crate::bindings::runbook::plugin::{
        cloudwatch, ec2, fault, postgres, rds, route53, secretsmanager, sns, traffic, types,
    };
}

pub use bindings::runbook::plugin::types::{CapError, ErrorKind};
pub use serde;
pub use serde_json;

/// An ASL error: `error` is matched by Retry/Catch `ErrorEquals`, `cause` is free text.
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    pub error: String,
    pub cause: String,
}

impl StepError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        StepError { error: error.into(), cause: cause.into() }
    }
}

impl From<CapError> for StepError {
    fn from(e: CapError) -> Self {
        StepError { error: e.code, cause: e.message }
    }
}

/// For deletes that tolerate what is already gone: `Ok(true)` when the call deleted
/// something, `Ok(false)` when there was nothing to delete, the error otherwise.
pub fn deleted(r: Result<(), CapError>) -> Result<bool, StepError> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A tag, for `create-*` calls.
pub fn tag(key: &str, value: &str) -> cap::types::Tag {
    cap::types::Tag { key: key.into(), value: value.into() }
}

impl From<serde_json::Error> for StepError {
    fn from(e: serde_json::Error) -> Self {
        StepError::new("States.Runtime", format!("JSON: {e}"))
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

/// Logging that lands in the journal under the running state's name.
pub mod log {
    use crate::bindings::runbook::plugin::log::{Level, log};

    pub fn trace(msg: &str) {
        log(Level::Trace, msg)
    }
    pub fn debug(msg: &str) {
        log(Level::Debug, msg)
    }
    pub fn info(msg: &str) {
        log(Level::Info, msg)
    }
    pub fn warn(msg: &str) {
        log(Level::Warn, msg)
    }
    pub fn error(msg: &str) {
        log(Level::Error, msg)
    }
}

/// `info!("x = {}", x)` and friends.
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::info(&format!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log::warn(&format!($($t)*)) } }
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::log::debug(&format!($($t)*)) } }
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::error(&format!($($t)*)) } }

/// Glue used by [`export_step!`]: decode input, run, encode output.
#[doc(hidden)]
pub fn __run<I, O>(
    input: String,
    f: fn(I) -> Result<O, StepError>,
) -> Result<String, bindings::StepError>
where
    I: serde::de::DeserializeOwned,
    O: serde::Serialize,
{
    let to_wit = |e: StepError| bindings::StepError { error: e.error, cause: e.cause };
    let input: I = serde_json::from_str(&input).map_err(|e| {
        to_wit(StepError::new("States.Runtime", format!("plugin input does not match its type: {e}")))
    })?;
    let output = f(input).map_err(to_wit)?;
    serde_json::to_string(&output).map_err(|e| to_wit(e.into()))
}

/// Export `fn(Input) -> Result<Output, StepError>` as the plugin's `run`.
#[macro_export]
macro_rules! export_step {
    ($f:path) => {
        struct __RunbookStep;
        impl $crate::bindings::Guest for __RunbookStep {
            fn run(input: String) -> Result<String, $crate::bindings::StepError> {
                $crate::__run(input, $f)
            }
        }
        $crate::bindings::__export_step_world!(__RunbookStep);
    };
}

/// RFC 3339 timestamps, for plugins that compute durations from `$$` context times
/// (plugins have no clock of their own).
pub mod time {
/// Minimal RFC 3339 (UTC `Z` or offset) to Unix seconds; enough for ASL timestamps.
    pub fn parse_time(s: &str) -> Option<f64> {
        let b = s.as_bytes();
        if b.len() < 19 {
            return None;
        }
        let n = |a: usize, l: usize| s.get(a..a + l)?.parse::<i64>().ok();
        let (y, mo, d, h, mi, se) = (n(0, 4)?, n(5, 2)?, n(8, 2)?, n(11, 2)?, n(14, 2)?, n(17, 2)?);
        let mut rest = &s[19..];
        let mut frac = 0.0;
        if let Some(r) = rest.strip_prefix('.') {
            let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
            frac = format!("0.{digits}").parse().ok()?;
            rest = &r[digits.len()..];
        }
        let offset = match rest {
            "Z" | "" => 0,
            o => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let hh: i64 = o.get(1..3)?.parse().ok()?;
                let mm: i64 = o.get(4..6)?.parse().ok()?;
                sign * (hh * 3600 + mm * 60)
            }
        };
        // Days from civil (Howard Hinnant's algorithm).
        let y2 = if mo <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let mp = (mo + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146097 + doe - 719468;
        Some((days * 86400 + h * 3600 + mi * 60 + se - offset) as f64 + frac)
    }
    
    pub fn format_time(t: i64) -> String {
        let days = t.div_euclid(86400);
        let secs = t.rem_euclid(86400);
        let z = days + 719468;
        let era = z.div_euclid(146097);
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = if m <= 2 { y + 1 } else { y };
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
    }
}

/// The `Target` object runbooks pass to PostgreSQL steps (`Endpoint`, `Region`,
/// `Database`, `SecretId`, `SecretRegion`, `ConnectTimeoutMs`), as the WIT record.
pub mod target {
    use crate::cap::postgres;

    #[derive(serde::Deserialize, Clone, Debug)]
    #[serde(rename_all = "PascalCase")]
    pub struct Target {
        /// A Route 53 name, a DB instance identifier or `host:port`.
        pub endpoint: String,
        #[serde(default)]
        pub region: Option<String>,
        #[serde(default = "postgres_db")]
        pub database: String,
        pub secret_id: String,
        pub secret_region: String,
        #[serde(default = "timeout")]
        pub connect_timeout_ms: u32,
    }

    fn postgres_db() -> String {
        "postgres".into()
    }
    fn timeout() -> u32 {
        2000
    }

    impl Target {
        pub fn wit(&self) -> postgres::Target {
            postgres::Target {
                endpoint: self.endpoint.clone(),
                region: self.region.clone(),
                database: self.database.clone(),
                secret_id: self.secret_id.clone(),
                secret_region: self.secret_region.clone(),
                connect_timeout_ms: self.connect_timeout_ms,
            }
        }
    }
}
