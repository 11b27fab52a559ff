//! Typed errors with stable codes.

/// A syntax error in a schedule expression, blackout or duration.
///
/// `offset` is the byte offset into the text that was parsed (0-based); the
/// message names what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {}: {message}", offset + 1)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }

    /// Stable error code.
    pub fn code(&self) -> &'static str {
        "schedule.expression"
    }
}

/// Errors building a [`crate::Schedule`] from its textual parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule {schedule}: expression {text:?} {source}")]
    Expression {
        schedule: String,
        text: String,
        source: ExprError,
    },
    #[error(
        "schedule {schedule}: unknown time zone {name:?} (expected an IANA name such as Europe/Berlin)"
    )]
    TimeZone { schedule: String, name: String },
    #[error("schedule {schedule}: {field} {text:?} {source}")]
    Field {
        schedule: String,
        field: &'static str,
        text: String,
        source: ExprError,
    },
    #[error("schedule {schedule}: {message}")]
    Invalid { schedule: String, message: String },
}

impl ScheduleError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ScheduleError::Expression { .. } => "schedule.expression",
            ScheduleError::TimeZone { .. } => "schedule.timezone",
            ScheduleError::Field { .. } => "schedule.field",
            ScheduleError::Invalid { .. } => "schedule.invalid",
        }
    }
}
