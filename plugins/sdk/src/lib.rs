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
    });
}

/// The capability interfaces. Calling one the Task did not grant fails the step with
/// `States.Permissions`.
pub mod cap {
    pub use crate::bindings::runbook::plugin::{
        cloudwatch, ec2, postgres, rds, route53, secretsmanager, sns, types,
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
