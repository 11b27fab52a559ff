//! Errors of the traffic driver, each with a stable code.

/// What can stop a traffic session or a verification.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrafficError {
    /// The resolver could not say where the target is.
    #[error("resolving the {which} connection: {message}")]
    Resolve { which: String, message: String },
    /// The target could not be reached (or not in time).
    #[error("connecting: {0}")]
    Connect(String),
    /// The target was reached but the ledger table could not be created.
    #[error("creating the traffic table: {0}")]
    Setup(String),
    /// The sink refused a batch of ledger entries.
    #[error("writing the ledger: {0}")]
    Sink(String),
    /// A read-back query failed.
    #[error("query: {0}")]
    Query(String),
    /// The configuration cannot run (for example an invalid table name).
    #[error("invalid traffic configuration: {0}")]
    Config(String),
}

impl TrafficError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TrafficError::Resolve { .. } => "E-TRAFFIC-RESOLVE",
            TrafficError::Connect(_) => "E-TRAFFIC-CONNECT",
            TrafficError::Setup(_) => "E-TRAFFIC-SETUP",
            TrafficError::Sink(_) => "E-TRAFFIC-SINK",
            TrafficError::Query(_) => "E-TRAFFIC-QUERY",
            TrafficError::Config(_) => "E-TRAFFIC-CONFIG",
        }
    }
}
