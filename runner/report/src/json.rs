//! JSON rendering: the model plus the derived verdict, under a schema id.

use serde::{Deserialize, Serialize};

use crate::{GameDay, ReportError, Verdict};

/// Identifies the JSON layout; bump the version on an incompatible change.
pub const SCHEMA_ID: &str = "runbook.gameday.report/v1";

#[derive(Serialize)]
struct Out<'a> {
    schema: &'static str,
    /// `pass`, `fail`, or `aborted` (the run did not get to measure).
    verdict: &'static str,
    missed_targets: Vec<String>,
    reasons: Vec<String>,
    // The headline figures at the top level, as dashboards and CI scripts read them.
    rto_seconds: Option<f64>,
    lost_writes: u64,
    acked_writes: u64,
    unknown_writes: u64,
    rpo_seconds: Option<f64>,
    lag_at_fault_seconds: Option<f64>,
    #[serde(flatten)]
    game_day: &'a GameDay,
}

#[derive(Deserialize)]
struct In {
    schema: String,
    #[serde(flatten)]
    game_day: GameDay,
}

/// Pretty JSON: `schema`, `verdict`, `missed_targets`, `reasons`, the headline figures,
/// then the [`GameDay`] fields.
pub fn render_json(g: &GameDay) -> String {
    let m = &g.measured;
    let out = Out {
        schema: SCHEMA_ID,
        verdict: match g.verdict() {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "aborted",
        },
        missed_targets: g.missed_targets(),
        reasons: g.reasons(),
        rto_seconds: m.rto_seconds,
        lost_writes: m.lost_writes,
        acked_writes: m.acked_writes,
        unknown_writes: m.unknown_writes,
        rpo_seconds: m.rpo_seconds,
        lag_at_fault_seconds: m.lag_at_fault_seconds,
        game_day: g,
    };
    // Plain data with string keys: serialisation cannot fail (non-finite floats become null).
    serde_json::to_string_pretty(&out).expect("game day serialises") + "\n"
}

/// Reads a report written by [`render_json`] back (the derived fields are recomputed).
pub fn parse_json(s: &str) -> Result<GameDay, ReportError> {
    let v: In = serde_json::from_str(s)?;
    if v.schema != SCHEMA_ID {
        return Err(ReportError::WrongSchema { found: v.schema });
    }
    Ok(v.game_day)
}
