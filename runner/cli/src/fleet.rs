//! `--journal etcd://...`: fleet mode's setup (docs/fleet.md). The etcd journal of
//! `runbook-fleet` becomes the write-through store of the executor's SQLite journal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use runbook_executor::{FleetMirror, FleetStore, Runner};
use runbook_fleet::{EtcdJournal, EtcdJournalConfig, Timing};
use runbook_journal::{BackendError, Fence, GameDayBackend, Journal, JournalBackend, TokenBackend};

/// The etcd journal as the executor's fleet store.
struct EtcdStore(EtcdJournal);

impl FleetStore for EtcdStore {
    fn backend(&self) -> &dyn JournalBackend {
        &self.0
    }
    fn gameday(&self) -> &dyn GameDayBackend {
        &self.0
    }
    fn tokens(&self) -> &dyn TokenBackend {
        &self.0
    }
    fn may_act_on(&self, fence: &Fence) -> bool {
        self.0.may_act_on(fence)
    }
    fn release(&self, fence: &Fence) -> Result<(), BackendError> {
        self.0.release(fence)
    }
    fn runner_id(&self) -> &str {
        self.0.runner_id()
    }
}

/// `default`, `fast`, or `TTL_SECS,KEEPALIVE_MS,REQUEST_TIMEOUT_MS` (checked against
/// Patroni's rule).
pub fn timing(s: &str) -> anyhow::Result<Timing> {
    match s {
        "default" => Ok(Timing::DEFAULT),
        "fast" => Ok(Timing::FAST),
        other => {
            let parts: Vec<u64> = other
                .split(',')
                .map(|p| p.trim().parse::<u64>())
                .collect::<Result<_, _>>()
                .ok()
                .filter(|p: &Vec<u64>| p.len() == 3)
                .with_context(|| {
                    format!(
                        "--fleet-timing {other}: expected default, fast or \
                         TTL_SECS,KEEPALIVE_MS,REQUEST_TIMEOUT_MS"
                    )
                })?;
            Ok(Timing::new(
                Duration::from_secs(parts[0]),
                Duration::from_millis(parts[1]),
                Duration::from_millis(parts[2]),
            )?)
        }
    }
}

/// This runner's id in the fleet: `--runner-id`, else `<hostname>-<pid>` (each runner
/// process holds its own lease).
pub fn runner_id(given: Option<&str>) -> String {
    if let Some(id) = given {
        return id.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "runner".into());
    format!("{host}-{}", std::process::id())
}

/// Connect to the fleet's etcd (granting this runner's lease) and build the mirror.
pub fn mirror(url: &str, runner_id: &str, timing: Timing) -> anyhow::Result<Arc<FleetMirror>> {
    let mut config = EtcdJournalConfig::from_url(url, runner_id)
        .map_err(|e| anyhow::anyhow!("--journal: {} ({})", e, e.code()))?;
    config.timing = timing;
    let journal = EtcdJournal::connect(config)
        .map_err(|e| anyhow::anyhow!("--journal {}: {e} ({})", redact_url(url), e.code()))?;
    Ok(FleetMirror::new(Arc::new(EtcdStore(journal))))
}

/// Fleet mode's reads (`show`, `report`): execution `id` (a full id, or a prefix this
/// runner's own journal resolves) and its children as the fleet journal has them, in a
/// scratch journal (this runner's cache is left alone).
pub fn scratch_tree(
    runner: &Runner,
    mirror: &FleetMirror,
    id: &str,
) -> anyhow::Result<(Journal, String)> {
    let scratch = Journal::open_in_memory()?;
    let full = runner.full_id(id);
    mirror.import_tree(&scratch, &full)?;
    Ok((scratch, full))
}

/// `executions` in fleet mode: the most recent `limit` as the fleet journal has them.
pub fn scratch_recent(mirror: &FleetMirror, limit: usize) -> anyhow::Result<Journal> {
    let scratch = Journal::open_in_memory()?;
    for row in mirror
        .store()
        .backend()
        .executions(limit)
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?
    {
        mirror.import(&scratch, &row.id)?;
    }
    Ok(scratch)
}

/// The URL without its query (file paths only, but keep messages short).
fn redact_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_names_and_triples() {
        assert_eq!(timing("default").unwrap(), Timing::DEFAULT);
        assert_eq!(timing("fast").unwrap(), Timing::FAST);
        assert_eq!(timing("5,1000,1500").unwrap().ttl(), Duration::from_secs(5));
        // 2000 + 2 × 1500 is not < 5000: Patroni's rule refuses it.
        assert!(timing("5,2000,1500").is_err());
        assert!(timing("5,1000").is_err());
    }
}
