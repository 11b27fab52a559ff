//! Ledger arithmetic: totals, outages and the client-seen measurements of a game day.
//! Pure functions of the ledger, so a report can be recomputed from the journal.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Entry, Kind, LagSample, Outcome};

/// Silences (no acknowledgement, no error) shorter than this are latency, not an
/// outage, in [`measure`].
pub const MEASURE_MIN_GAP: Duration = Duration::from_secs(1);

/// The latest state of each (kind, id), in (kind, id) order: a ledger may hold a write
/// twice (in flight, then done); the later entry in the slice wins.
fn latest(ledger: &[Entry]) -> BTreeMap<(Kind, u64), &Entry> {
    let mut m = BTreeMap::new();
    for e in ledger {
        m.insert((e.kind, e.id), e);
    }
    m
}

/// Totals of a ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub writes: u64,
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    pub in_flight: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub last_ack_ms: Option<i64>,
    pub last_error_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Writes acknowledged in a row (by id) since the last failed or unknown one.
    pub acked_since_error: u64,
}

impl Tally {
    pub fn from_ledger(ledger: &[Entry]) -> Tally {
        let mut t = Tally::default();
        for e in latest(ledger).into_values() {
            let at = e.done_ms.unwrap_or(e.sent_ms);
            match (e.kind, e.outcome) {
                (Kind::Write, o) => {
                    t.writes += 1;
                    match o {
                        Outcome::Acked | Outcome::Ok => {
                            t.acked += 1;
                            t.acked_since_error += 1;
                            t.last_ack_ms = Some(t.last_ack_ms.map_or(at, |l| l.max(at)));
                        }
                        Outcome::InFlight => t.in_flight += 1,
                        Outcome::Failed | Outcome::Unknown => {
                            if o == Outcome::Failed {
                                t.failed += 1;
                            } else {
                                t.unknown += 1;
                            }
                            t.acked_since_error = 0;
                            if t.last_error_ms.is_none_or(|l| at >= l) {
                                t.last_error_ms = Some(at);
                                t.last_error = e.error.clone();
                            }
                        }
                    }
                }
                (Kind::Read, Outcome::Ok | Outcome::Acked) => t.reads_ok += 1,
                (Kind::Read, Outcome::InFlight) => {}
                (Kind::Read, _) => t.reads_failed += 1,
            }
        }
        t
    }
}

/// A period the client could not write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    /// Ack time of the last acknowledged write before it (or the send time of its
    /// first failed write when nothing was acknowledged before).
    pub from_ms: i64,
    /// Ack time of the first acknowledged write after it; when not recovered, the last
    /// time the ledger saw a failure.
    pub to_ms: i64,
    pub failed: u64,
    pub unknown: u64,
    pub first_error: Option<String>,
    /// An acknowledged write followed it.
    pub recovered: bool,
}

impl Outage {
    pub fn seconds(&self) -> f64 {
        (self.to_ms - self.from_ms) as f64 / 1000.0
    }
}

/// Outages of a ledger, in time order: every stretch between two acknowledgements in
/// which writes failed or had an unknown outcome, and every silence of at least
/// `min_gap` between two acknowledgements; a recovery must also hold for `min_gap`
/// (outages less than that apart are one). `Duration::ZERO`: no silences, no merging.
///
/// Writes are placed in time by what they prove: an acknowledgement at its ack time
/// (the target took writes then), a failed or unknown write at its send time (the
/// target was not taking them then). Ordering by time rather than id keeps one outage
/// whole when a pool's connections recover a few milliseconds apart; the merging keeps
/// it whole when a write sent just before a crash is acknowledged just after another
/// write sent before it was lost. In-flight writes prove nothing yet and are skipped.
pub fn outages(ledger: &[Entry], min_gap: Duration) -> Vec<Outage> {
    let min_gap = min_gap.as_millis() as i64;
    let mut merged: Vec<Outage> = Vec::new();
    for o in raw_outages(ledger, min_gap) {
        match merged.last_mut() {
            Some(last) if min_gap > 0 && o.from_ms - last.to_ms < min_gap => {
                last.to_ms = o.to_ms;
                last.failed += o.failed;
                last.unknown += o.unknown;
                last.recovered = o.recovered;
                if last.first_error.is_none() {
                    last.first_error = o.first_error;
                }
            }
            _ => merged.push(o),
        }
    }
    merged
}

fn raw_outages(ledger: &[Entry], min_gap: i64) -> Vec<Outage> {
    let mut points: Vec<(i64, bool, &Entry)> = latest(ledger)
        .into_values()
        .filter(|e| e.kind == Kind::Write)
        .filter_map(|e| match e.outcome {
            Outcome::Acked | Outcome::Ok => Some((e.done_ms.unwrap_or(e.sent_ms), true, e)),
            Outcome::Failed | Outcome::Unknown => Some((e.sent_ms, false, e)),
            Outcome::InFlight => None,
        })
        .collect();
    points.sort_by_key(|(t, ack, e)| (*t, *ack, e.id));

    let mut out = Vec::new();
    let mut last_ack: Option<i64> = None;
    let mut run: Option<Outage> = None;
    for (t, ack, e) in points {
        if ack {
            if let Some(mut o) = run.take() {
                o.to_ms = t.max(o.from_ms);
                o.recovered = true;
                out.push(o);
            } else if let Some(prev) = last_ack
                && min_gap > 0
                && t - prev >= min_gap
            {
                out.push(Outage {
                    from_ms: prev,
                    to_ms: t,
                    failed: 0,
                    unknown: 0,
                    first_error: None,
                    recovered: true,
                });
            }
            last_ack = Some(t);
        } else {
            let o = run.get_or_insert_with(|| Outage {
                from_ms: last_ack.unwrap_or(t),
                to_ms: t,
                failed: 0,
                unknown: 0,
                first_error: e.error.clone(),
                recovered: false,
            });
            if e.outcome == Outcome::Failed {
                o.failed += 1;
            } else {
                o.unknown += 1;
            }
            o.to_ms = o.to_ms.max(e.done_ms.unwrap_or(t));
        }
    }
    out.extend(run);
    out
}

/// Client-seen figures of a session around a fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// From the fault (or the start of the largest outage) to the first acknowledged
    /// write after the outage; `None` when writes never recovered.
    pub rto_seconds: Option<f64>,
    /// The outage containing or following the fault (or the largest).
    pub outage: Option<Outage>,
    pub outages: u64,
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Last lag sample at or before the fault.
    pub lag_at_fault_seconds: Option<f64>,
    pub max_lag_seconds: Option<f64>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1] as f64)
}

/// Measure a ledger (see [`Measurement`]); `fault_at_ms` is when the fault was injected.
pub fn measure(ledger: &[Entry], lag: &[LagSample], fault_at_ms: Option<i64>) -> Measurement {
    let tally = Tally::from_ledger(ledger);
    let latest = latest(ledger);
    let acked = || {
        latest
            .values()
            .filter(|e| e.kind == Kind::Write && matches!(e.outcome, Outcome::Acked | Outcome::Ok))
    };
    let mut latencies: Vec<i64> = acked()
        .filter_map(|e| e.done_ms.map(|d| d - e.sent_ms))
        .collect();
    latencies.sort_unstable();

    let all = outages(ledger, MEASURE_MIN_GAP);
    let outage = match fault_at_ms {
        // Outages are in time order: the first one still going at the fault, or after.
        Some(f) => all.iter().find(|o| o.to_ms >= f),
        None => all.iter().max_by_key(|o| o.to_ms - o.from_ms),
    }
    .cloned();
    let rto_ms = match (fault_at_ms, &outage) {
        (_, Some(o)) if !o.recovered => None,
        (Some(f), Some(o)) => Some((o.to_ms - f).max(0)),
        (None, Some(o)) => Some(o.to_ms - o.from_ms),
        // No outage after the fault: the first write sent after it that was acked.
        (Some(f), None) => acked()
            .filter(|e| e.sent_ms >= f)
            .filter_map(|e| e.done_ms)
            .min()
            .map(|d| d - f),
        (None, None) => None,
    };
    let lag_at_fault_seconds = fault_at_ms.and_then(|f| {
        lag.iter()
            .filter(|s| s.at_ms <= f)
            .max_by_key(|s| s.at_ms)
            .and_then(|s| s.lag)
    });
    let max_lag_seconds = lag
        .iter()
        .filter_map(|s| s.lag)
        .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
    Measurement {
        rto_seconds: rto_ms.map(|ms| ms as f64 / 1000.0),
        outage,
        outages: all.len() as u64,
        acked: tally.acked,
        failed: tally.failed,
        unknown: tally.unknown,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p99_ms: percentile(&latencies, 99.0),
        lag_at_fault_seconds,
        max_lag_seconds,
    }
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
