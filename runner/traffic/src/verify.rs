//! Read a session's rows back through the target and compare with the ledger.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::conn::{self, describe};
use crate::{Config, Entry, Kind, Outcome, SharedResolver, TrafficError, Which};

/// What reading the rows back found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Acknowledged writes looked for.
    pub checked: u64,
    /// Acknowledged ids not found: lost writes.
    pub acked_missing: Vec<u64>,
    /// Unknown-outcome (or still in-flight) writes that did commit / did not.
    pub unknown_present: u64,
    pub unknown_absent: u64,
    /// Writes the ledger calls failed that are present anyway: a misclassification
    /// (should stay 0).
    pub failed_present: u64,
    /// Rows of the session the target holds.
    pub rows: u64,
}

/// Connect via [`Which::Target`], read back every id of the session and compare.
pub async fn verify(
    config: &Config,
    resolver: SharedResolver,
    ledger: &[Entry],
) -> Result<VerifyReport, TrafficError> {
    conn::check_table(&config.table)?;
    // Reading a long session back can take a while; the connect is bounded separately.
    let connect_by = Instant::now() + config.write_timeout.max(Duration::from_secs(5));
    let app = format!("runbook-traffic {} verify", config.session);
    let client = conn::connect(&resolver, Which::Target, &app, connect_by).await?;
    let sql = format!("SELECT id FROM {} WHERE session = $1", config.table);
    let rows = client
        .query(&sql, &[&config.session])
        .await
        .map_err(|e| TrafficError::Query(describe(&e)))?;
    let mut present = HashSet::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = r
            .try_get(0)
            .map_err(|e| TrafficError::Query(describe(&e)))?;
        present.insert(id as u64);
    }
    Ok(compare(ledger, &present))
}

/// The comparison itself; the latest entry per write id wins.
pub(crate) fn compare(ledger: &[Entry], present: &HashSet<u64>) -> VerifyReport {
    let mut writes: BTreeMap<u64, Outcome> = BTreeMap::new();
    for e in ledger.iter().filter(|e| e.kind == Kind::Write) {
        writes.insert(e.id, e.outcome);
    }
    let mut report = VerifyReport {
        rows: present.len() as u64,
        ..VerifyReport::default()
    };
    for (id, outcome) in writes {
        let here = present.contains(&id);
        match outcome {
            Outcome::Acked | Outcome::Ok => {
                report.checked += 1;
                if !here {
                    report.acked_missing.push(id);
                }
            }
            Outcome::Unknown | Outcome::InFlight => {
                if here {
                    report.unknown_present += 1;
                } else {
                    report.unknown_absent += 1;
                }
            }
            Outcome::Failed => {
                if here {
                    report.failed_present += 1;
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: u64, outcome: Outcome) -> Entry {
        Entry {
            kind: Kind::Write,
            id,
            conn: 0,
            sent_ms: id as i64 * 20,
            done_ms: Some(id as i64 * 20 + 3),
            outcome,
            error: None,
        }
    }

    #[test]
    fn compares_latest_state_per_id() {
        let ledger = vec![
            w(1, Outcome::InFlight),
            w(1, Outcome::Acked),
            w(2, Outcome::Acked),
            w(3, Outcome::Unknown),
            w(4, Outcome::Unknown),
            w(5, Outcome::Failed),
            w(6, Outcome::Failed),
        ];
        let present: HashSet<u64> = [1, 3, 6].into_iter().collect();
        let r = compare(&ledger, &present);
        assert_eq!(r.checked, 2);
        assert_eq!(r.acked_missing, vec![2]);
        assert_eq!((r.unknown_present, r.unknown_absent), (1, 1));
        assert_eq!(r.failed_present, 1);
        assert_eq!(r.rows, 3);
    }
}
