//! Errors: static diagnostics (with source positions) and runtime/API errors.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A 1-based line/column position in the runbook source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// One static problem in a runbook, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub col: u32,
    /// Name of the state the problem is in, when inside one.
    pub state: Option<String>,
    /// Stable machine-readable code, e.g. `E-NEXT-MISSING`.
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if let Some(s) = &self.state {
            write!(f, "state '{s}': ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// All diagnostics of one runbook, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// A runtime error in ASL terms (`Error`/`Cause`), as seen by Retry/Catch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AslError {
    pub error: String,
    pub cause: Option<String>,
}

impl AslError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        AslError {
            error: error.into(),
            cause: Some(cause.into()),
        }
    }
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Self::new(names::INTRINSIC_FAILURE, cause)
    }
    /// Step Functions' form of a States.Runtime cause raised while running a state: `An error
    /// occurred while executing the state 'X' (entered at the event id #N). <cause>`. Other
    /// errors, and causes already placed, are returned unchanged.
    pub fn in_state(mut self, state: &str, entered_event: u64) -> Self {
        const PREFIX: &str = "An error occurred while executing the state '";
        if self.error == names::RUNTIME
            && !self.cause.as_deref().is_some_and(|c| c.starts_with(PREFIX))
        {
            let c = self.cause.take().unwrap_or_default();
            self.cause = Some(format!(
                "{PREFIX}{state}' (entered at the event id #{entered_event}). {c}"
            ));
        }
        self
    }
    /// The `{"Error": .., "Cause": ..}` object a Catch passes on.
    pub fn to_value(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("Error".into(), self.error.clone().into());
        if let Some(c) = &self.cause {
            m.insert("Cause".into(), c.clone().into());
        }
        serde_json::Value::Object(m)
    }
}

impl fmt::Display for AslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(c) => write!(f, "{}: {}", self.error, c),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for AslError {}

/// Predefined ASL error names.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const PERMISSIONS: &str = "States.Permissions";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const RUNTIME: &str = "States.Runtime";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
}

/// Errors of the engine's API (not ASL runtime errors, which are [`AslError`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid runbook:\n{0}")]
    Invalid(Diagnostics),
    #[error("unknown parameter '{0}'")]
    UnknownParameter(String),
    #[error("parameter '{name}': {message}")]
    BadParameter { name: String, message: String },
    #[error("parameter '{0}' has no Default and was not given")]
    MissingParameter(String),
    #[error("execution input must be a JSON object when the runbook declares Parameters, got {0}")]
    InputNotObject(String),
    #[error("invalid timestamp '{0}'")]
    BadTimestamp(String),
    #[error("cannot redrive: {0}")]
    CannotRedrive(String),
    #[error("{0}")]
    Asl(#[from] AslError),
}

impl EngineError {
    /// Stable code for scripts and tests.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Invalid(_) => "E-INVALID-RUNBOOK",
            EngineError::UnknownParameter(_) => "E-PARAM-UNKNOWN",
            EngineError::BadParameter { .. } => "E-PARAM-TYPE",
            EngineError::MissingParameter(_) => "E-PARAM-MISSING",
            EngineError::InputNotObject(_) => "E-INPUT-NOT-OBJECT",
            EngineError::BadTimestamp(_) => "E-TIMESTAMP",
            EngineError::CannotRedrive(_) => "E-REDRIVE",
            EngineError::Asl(_) => "E-ASL",
        }
    }
}
