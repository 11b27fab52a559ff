//! JSON rendering: the model plus the derived verdict, under a schema id.

use serde::{Deserialize, Serialize};

use crate::{GameDay, ReportError, Verdict};

/// Identifies the JSON layout; bump the version on an incompatible change.
pub const SCHEMA_ID: &str = "runbook.gameday.report/v1";

#[derive(Serialize)]
struct Out<'a> {
    schema: &'static str,
    verdict: Verdict,
    missed_targets: Vec<String>,
    reasons: Vec<String>,
    #[serde(flatten)]
    game_day: &'a GameDay,
}

#[derive(Deserialize)]
struct In {
    schema: String,
    #[serde(flatten)]
    game_day: GameDay,
}

/// Pretty JSON: `schema`, `verdict`, `missed_targets`, `reasons`, then the [`GameDay`] fields.
pub fn render_json(g: &GameDay) -> String {
    let out = Out {
        schema: SCHEMA_ID,
        verdict: g.verdict(),
        missed_targets: g.missed_targets(),
        reasons: g.reasons(),
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
