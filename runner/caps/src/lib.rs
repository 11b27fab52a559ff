//! The capability contract between the wasm host and the providers.
//!
//! The WIT interfaces in `wit/` are the typed contract plugins see. On the host side a
//! capability call is normalised into a [`CapCall`] (service, IAM action, region,
//! resource, JSON arguments) so that one grant check, one journal record and one
//! provider entry point serve every function. Providers implement [`Provider`]; the
//! argument and result JSON has the shape of the WIT records (see [`types`]).

pub mod catalog;
pub mod grants;
pub mod sql;
pub mod types;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use catalog::{ActionSpec, CATALOG, action_by_function, action_by_iam};
pub use grants::{Grant, GrantError, Grants};

/// Boxed future, so `Provider` stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One capability call, as seen by a provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapCall {
    /// WIT interface / IAM service prefix: `rds`, `ec2`, `route53`, `cloudwatch`, `sns`,
    /// `secretsmanager`, `postgres`.
    pub service: String,
    /// IAM action name, e.g. `DescribeDBInstances`.
    pub action: String,
    /// Region the call acts in; `None` for global services (route53).
    pub region: Option<String>,
    /// The resource the call names, used for scoped grants and the audit trail.
    pub resource: Option<String>,
    /// Arguments other than `region`, keyed by WIT parameter name in snake_case; records
    /// are objects with snake_case fields, enums are their UpperCamelCase case names.
    pub args: Value,
}

impl CapCall {
    /// `service:Action`, the IAM name.
    pub fn iam_name(&self) -> String {
        format!("{}:{}", self.service, self.action)
    }

    /// Argument by name, or JSON null when absent.
    pub fn arg(&self, name: &str) -> &Value {
        self.args.get(name).unwrap_or(&Value::Null)
    }

    /// Deserialize one argument into a typed value.
    pub fn arg_as<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, CapError> {
        serde_json::from_value(self.arg(name).clone()).map_err(|e| {
            CapError::invalid_parameter(format!(
                "{}: argument '{name}' has the wrong shape: {e}",
                self.iam_name()
            ))
        })
    }

    /// The region, or an `InvalidParameterValue` error for regional services.
    pub fn region(&self) -> Result<&str, CapError> {
        self.region.as_deref().ok_or_else(|| {
            CapError::invalid_parameter(format!("{}: region is required", self.iam_name()))
        })
    }
}

/// Coarse error class; mirrors WIT `types.error-kind`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidState,
    InvalidParameter,
    DependencyViolation,
    QuotaExceeded,
    Throttling,
    AccessDenied,
    Unavailable,
    Internal,
}

/// A capability error with an AWS error code; mirrors WIT `types.cap-error`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CapError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl CapError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        let retryable = matches!(kind, ErrorKind::Throttling | ErrorKind::Unavailable);
        CapError {
            kind,
            code: code.into(),
            message: message.into(),
            retryable,
        }
    }
    pub fn not_found(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }
    pub fn already_exists(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, code, message)
    }
    pub fn invalid_state(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidState, code, message)
    }
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::InvalidParameter,
            "InvalidParameterValue",
            message,
        )
    }
    pub fn dependency_violation(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::DependencyViolation,
            "DependencyViolation",
            message,
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, "ServiceUnavailable", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "InternalFailure", message)
    }
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AccessDenied, "AccessDenied", message)
    }
    pub fn unsupported(call: &CapCall, provider: &str) -> Self {
        Self::new(
            ErrorKind::InvalidParameter,
            "UnsupportedOperation",
            format!(
                "{} is not supported by the {provider} provider",
                call.iam_name()
            ),
        )
    }
}

/// Where a client connects for a `postgres` target, resolved host-side (credentials
/// included): what an application's connection pool is configured with. Never reaches a
/// plugin or the journal.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl std::fmt::Debug for ConnectInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ConnectInfo({}@{}:{}/{})",
            self.user, self.host, self.port, self.database
        )
    }
}

/// Something that answers capability calls: the `local` provider (real PostgreSQL on
/// this machine) or the `aws` provider (aws-sdk-*). Plugins cannot tell which.
pub trait Provider: Send + Sync {
    /// `local` or `aws`.
    fn name(&self) -> &str;

    /// Perform one call. The result JSON has the shape of the WIT function's `ok` type
    /// (`null` for `_`).
    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>>;

    /// The checks this provider makes on a call before sending it, with no effect
    /// anywhere. `runbook plan` asks before recording a mutating call, so a plan meets
    /// the refusals a real run would (the aws provider refuses `POSTGRES` health
    /// checks). Default: every call is accepted.
    fn check<'a>(&'a self, _call: &'a CapCall) -> BoxFuture<'a, Result<(), CapError>> {
        Box::pin(async { Ok(()) })
    }

    /// How an application reaches `target` (a Route 53 name, an instance identifier or
    /// `host:port`): host, port and the credentials of its secret. Host-side only (the
    /// game-day traffic driver keeps persistent connections, which `postgres:Query`,
    /// one connection per call, cannot). Default: unsupported.
    fn connect_info<'a>(
        &'a self,
        _target: &'a types::postgres::Target,
    ) -> BoxFuture<'a, Result<ConnectInfo, CapError>> {
        let name = self.name().to_string();
        Box::pin(async move {
            Err(CapError::new(
                ErrorKind::InvalidParameter,
                "UnsupportedOperation",
                format!("the {name} provider cannot resolve client connections"),
            ))
        })
    }
}
