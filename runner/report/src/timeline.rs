//! The timeline: events on one clock, and the milestones a game day is read by.

use serde::{Deserialize, Serialize};

use crate::model::fmt_rfc3339;

/// One line of the timeline. In JSON it also carries `at`, the same instant as RFC 3339
/// UTC with milliseconds (derived from `at_ms` when written, ignored when read).
///
/// Every instant of a report is on one clock: the runner host's wall clock, which
/// journals the executions, faults and the traffic driver's ledger alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "EventJson", from = "EventJson")]
pub struct Event {
    pub at_ms: i64,
    /// Stable snake_case name of what happened: one of the milestones
    /// ([`milestone`]) or a plain record (`state_entered`, `fault_undone`, ...).
    pub event: String,
    /// Where it came from: `fault`, `client`, `failover`, `failback`, `state`, `child`.
    pub kind: String,
    pub text: String,
}

impl Event {
    pub fn new(at_ms: i64, event: &str, kind: &str, text: impl Into<String>) -> Event {
        Event {
            at_ms,
            event: event.to_string(),
            kind: kind.to_string(),
            text: text.into(),
        }
    }

    /// RFC 3339 UTC with milliseconds: `2025-12-06T23:50:00.123Z`.
    pub fn at(&self) -> String {
        fmt_rfc3339(self.at_ms)
    }

    /// The milestone this event is, if any.
    pub fn milestone(&self) -> Option<&'static milestone::Milestone> {
        milestone::ALL.iter().find(|m| m.event == self.event)
    }
}

#[derive(Serialize, Deserialize)]
struct EventJson {
    #[serde(default)]
    at: String,
    at_ms: i64,
    // Reports written before events had names read back as plain records.
    #[serde(default)]
    event: String,
    kind: String,
    text: String,
}

impl From<Event> for EventJson {
    fn from(e: Event) -> EventJson {
        EventJson {
            at: e.at(),
            at_ms: e.at_ms,
            event: e.event,
            kind: e.kind,
            text: e.text,
        }
    }
}

impl From<EventJson> for Event {
    fn from(e: EventJson) -> Event {
        Event {
            at_ms: e.at_ms,
            event: e.event,
            kind: e.kind,
            text: e.text,
        }
    }
}

/// The named instants of a game day's timeline, each at most once per report, in the
/// order they normally happen. [`Milestone::definition`] is what the README documents.
pub mod milestone {
    pub struct Milestone {
        pub event: &'static str,
        /// Short label for chart markers.
        pub label: &'static str,
        pub definition: &'static str,
    }

    pub const FAULT_INJECTED: &str = "fault_injected";
    pub const FIRST_CLIENT_ERROR: &str = "first_client_error";
    pub const DETECTION: &str = "detection";
    pub const DECISION: &str = "decision";
    pub const FENCE: &str = "fence";
    pub const PROMOTE: &str = "promote";
    pub const WEIGHTS_MOVED: &str = "weights_moved";
    pub const FIRST_SUCCESSFUL_WRITE: &str = "first_successful_write";
    pub const FAILBACK_DONE: &str = "failback_done";

    pub const ALL: [Milestone; 9] = [
        Milestone {
            event: FAULT_INJECTED,
            label: "fault",
            definition: "the main fault's injection, as the fault capability journaled it",
        },
        Milestone {
            event: FIRST_CLIENT_ERROR,
            label: "client error",
            definition: "the first write at or after the fault whose failure (or lost \
                         connection) the client learned of: its completion time",
        },
        Milestone {
            event: DETECTION,
            label: "detected",
            definition: "the failover execution started (a failover started by serve's \
                         watcher starts after the watcher's confirming rounds)",
        },
        Milestone {
            event: DECISION,
            label: "decision",
            definition: "the failover's policy (its Decide Task) returned promote, none or refuse",
        },
        Milestone {
            event: FENCE,
            label: "fence",
            definition: "the failover's FenceLive or FenceDead Task finished (a failed, \
                         caught fence of an unreachable primary included)",
        },
        Milestone {
            event: PROMOTE,
            label: "promote",
            definition: "the failover's Promote Task succeeded (the promotion was accepted)",
        },
        Milestone {
            event: WEIGHTS_MOVED,
            label: "weights",
            definition: "the failover's ShiftWeights Task succeeded, or WeightsPending was \
                         entered (the routing API was down: clients move by health checks)",
        },
        Milestone {
            event: FIRST_SUCCESSFUL_WRITE,
            label: "recovered",
            definition: "the acknowledgement of the client's first write after its outage \
                         (fault + RTO); without an outage, of its first write sent after the fault",
        },
        Milestone {
            event: FAILBACK_DONE,
            label: "failback done",
            definition: "the failback execution ended (its status is in the text)",
        },
    ];
}
