//! Errors of fleet mode, with stable codes: they cross into the CLI, the status page
//! and logs, where the code is what operators and tests match on.

/// Everything a fleet call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("invalid fleet timing: {0}")]
    Timing(String),
    #[error("invalid etcd endpoint {0:?}: {1}")]
    Endpoint(String, String),
    /// No member accepted a connection: the request was not sent anywhere.
    #[error("no etcd endpoint reachable: {0}")]
    Unavailable(String),
    /// The request was sent but no answer came (timeout, connection broken, etcd's own
    /// timeout): it may or may not have been applied. Every write of this crate is a
    /// compare-guarded transaction, so repeating it is safe.
    #[error("etcd outcome unknown (the request may have been applied): {0}")]
    Ambiguous(String),
    #[error("etcd refused the request (gRPC code {code}): {message}")]
    Etcd { code: i64, message: String },
    #[error("unexpected etcd response: {0}")]
    Decode(String),
    #[error("lease {0:x} expired or was revoked")]
    LeaseExpired(i64),
    #[error("environment {environment} is owned by {owner} (token {token})")]
    Taken {
        environment: String,
        owner: String,
        token: i64,
    },
    /// A write carried a token that no longer owns its environment: the lease expired
    /// (owner paused, partitioned) and the key is gone or belongs to a newer owner.
    #[error("fenced: token {held} no longer owns {owner_key} (current token {current}, 0 = none)")]
    Fenced {
        owner_key: String,
        held: i64,
        current: i64,
    },
    #[error("{key} already holds a different value (written at revision {revision})")]
    Conflict { key: String, revision: i64 },
    /// An `etcd://` URL or connection option that cannot be used (bad syntax, a file
    /// that cannot be read, a TLS option without TLS).
    #[error("invalid etcd connection setting {0}: {1}")]
    Config(String, String),
    /// The TLS handshake failed (unknown CA, wrong name, client certificate refused).
    #[error("etcd TLS handshake failed: {0}")]
    Tls(String),
    /// etcd refused the user name or password, or the session token.
    #[error("etcd authentication failed: {0}")]
    Auth(String),
    #[error("{what} of {len} bytes exceeds the {limit}-byte etcd request limit")]
    TooLarge {
        what: String,
        len: usize,
        limit: usize,
    },
}

impl FleetError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            FleetError::Timing(_) => "fleet.timing",
            FleetError::Endpoint(..) => "fleet.endpoint",
            FleetError::Unavailable(_) => "fleet.unavailable",
            FleetError::Ambiguous(_) => "fleet.ambiguous",
            FleetError::Etcd { .. } => "fleet.etcd",
            FleetError::Decode(_) => "fleet.decode",
            FleetError::LeaseExpired(_) => "fleet.lease_expired",
            FleetError::Taken { .. } => "fleet.taken",
            FleetError::Fenced { .. } => "fleet.fenced",
            FleetError::Conflict { .. } => "fleet.conflict",
            FleetError::TooLarge { .. } => "fleet.too_large",
            FleetError::Config(..) => "fleet.config",
            FleetError::Tls(_) => "fleet.tls",
            FleetError::Auth(_) => "fleet.auth",
        }
    }

    /// The request may have been applied; retrying a compare-guarded write is safe.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, FleetError::Ambiguous(_))
    }
}

pub type Result<T, E = FleetError> = std::result::Result<T, E>;
