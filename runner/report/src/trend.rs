//! RTO trend over several game days (`runbook report --last N`, the status page).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::html::{charts, esc, page_head};
use crate::model::{fmt_opt_secs, fmt_utc};
use crate::{GameDay, Verdict};

/// One game day in a trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub execution_id: String,
    pub started_ms: i64,
    pub verdict: Verdict,
    pub rto_seconds: Option<f64>,
    pub lost_writes: u64,
}

impl From<&GameDay> for TrendPoint {
    fn from(g: &GameDay) -> Self {
        TrendPoint {
            execution_id: g.execution_id.clone(),
            started_ms: g.started_ms,
            verdict: g.verdict(),
            rto_seconds: g.measured.rto_seconds,
            lost_writes: g.measured.lost_writes,
        }
    }
}

/// A page with the RTO of each game day over time and a table, oldest first.
pub fn render_trend_html(points: &[TrendPoint]) -> String {
    let mut points = points.to_vec();
    points.sort_by_key(|p| p.started_ms);
    let mut s = page_head(&format!("Game-day trend ({} runs)", points.len()));
    let passed = points.iter().filter(|p| p.verdict == Verdict::Pass).count();
    let _ = writeln!(
        s,
        "<header><h1>Game-day trend</h1><p id=\"trend-summary\">{} runs · {} passed · {} failed · {} inconclusive</p></header>",
        points.len(),
        passed,
        points.iter().filter(|p| p.verdict == Verdict::Fail).count(),
        points
            .iter()
            .filter(|p| p.verdict == Verdict::Inconclusive)
            .count(),
    );
    s.push_str("<section id=\"trend\"><h2>Client-seen RTO</h2>");
    if points.is_empty() {
        s.push_str("<p class=\"empty\">No game days yet.</p>");
    } else {
        // Day and time (to the minute) keep axis labels short for nightly runs.
        let dates: Vec<String> = points
            .iter()
            .map(|p| {
                fmt_utc(p.started_ms)
                    .get(5..16)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        s.push_str(&charts::trend_chart(&points, &dates));
        s.push_str("<p class=\"legend\">Each point is one game day: green passed, red failed, amber inconclusive; a ring at 0 means no RTO was measured.</p>");
    }
    s.push_str("</section>\n<section id=\"runs\"><h2>Runs</h2><table><thead><tr><th>Started (UTC)</th><th>Execution</th><th>Verdict</th><th>RTO</th><th>Lost writes</th></tr></thead><tbody>");
    for p in points.iter().rev() {
        let class = match p.verdict {
            Verdict::Pass => "ok",
            Verdict::Fail => "bad",
            Verdict::Inconclusive => "na",
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"{class}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            fmt_utc(p.started_ms),
            esc(&p.execution_id),
            p.verdict,
            fmt_opt_secs(p.rto_seconds),
            p.lost_writes
        );
    }
    s.push_str("</tbody></table></section>\n</main></body></html>\n");
    s
}
