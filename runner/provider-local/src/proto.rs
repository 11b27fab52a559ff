//! The provider ↔ daemon protocol: one JSON line each way per connection.

use runbook_caps::{CapCall, CapError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// A capability call.
    Call {
        call: CapCall,
    },
    Status,
    /// Host, port and credentials for a client of a `postgres` target.
    ConnectInfo {
        target: runbook_caps::types::postgres::Target,
    },
    /// `HOST:PORT` of a Route 53 name's routing endpoint (or of an instance).
    Endpoint {
        name: String,
    },
    /// SIGKILL the postmaster serving an instance.
    Crash {
        instance: String,
        region: Option<String>,
        all_nodes: bool,
    },
    Partition,
    Heal,
    SetLatency {
        ms: u64,
    },
    /// Seconds between metric samples (tests use short ones).
    SetSampleInterval {
        ms: u64,
    },
    Shutdown {
        stop_servers: bool,
    },
    /// Render a dashboard now and return the HTML file's path.
    RenderDashboard {
        region: String,
        name: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CapError>,
}

impl From<Result<Value, CapError>> for Response {
    fn from(r: Result<Value, CapError>) -> Self {
        match r {
            Ok(v) => Response {
                ok: Some(v),
                error: None,
            },
            Err(e) => Response {
                ok: None,
                error: Some(e),
            },
        }
    }
}
