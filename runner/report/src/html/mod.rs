//! One self-contained HTML page: inline CSS and SVG, no JavaScript, no external URLs.

pub(crate) mod charts;

use std::fmt::Write;

use crate::model::{fmt_opt_secs, fmt_rel, fmt_secs, fmt_utc};
use crate::{GameDay, SCHEMA_ID, Verdict};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Shared stylesheet (also used by the trend page). Sized for a 1280 px viewport.
pub(crate) const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f6f8fa;color:#1f2328;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif}
main{max-width:1240px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:28px;margin:0 0 4px}
h2{font-size:18px;margin:0 0 10px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 16px;margin:14px 0}
.verdict{border-radius:8px;padding:16px 20px;color:#fff}
.verdict p{margin:4px 0}
.verdict ul{margin:8px 0 0;padding-left:22px;font-weight:600}
.verdict-pass{background:#1a7f37}
.verdict-fail{background:#cf222e}
.verdict-inconclusive{background:#9a6700}
.meta{opacity:.95}
code{font:12.5px ui-monospace,"DejaVu Sans Mono",monospace}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eaeef2;vertical-align:top;overflow-wrap:anywhere}
th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.missed td,tr.failed td{background:#ffebe9}
.ok{color:#1a7f37;font-weight:600}
.bad{color:#cf222e;font-weight:600}
.na{color:#656d76}
.figures{display:grid;grid-template-columns:repeat(4,1fr);gap:8px 16px;margin-top:12px}
.figures div{background:#f6f8fa;border-radius:6px;padding:6px 10px}
.figures b{display:block;font-size:18px}
svg.chart{display:block;width:100%;height:auto}
.legend{color:#656d76;margin:6px 0 0}
footer{color:#656d76;font-size:12px;margin-top:20px}
.chart-error,.empty{color:#656d76;font-style:italic}
"#;

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "verdict-pass",
        Verdict::Fail => "verdict-fail",
        Verdict::Inconclusive => "verdict-inconclusive",
    }
}

fn status_cell(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "<td class=\"ok\">met</td>",
        Some(false) => "<td class=\"bad\">missed</td>",
        None => "<td class=\"na\">not measured</td>",
    }
}

pub(crate) fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body><main>\n",
        esc(title)
    )
}

fn banner(s: &mut String, g: &GameDay, v: Verdict, missed: &[String]) {
    let _ = write!(
        s,
        "<header id=\"verdict\" class=\"verdict {}\"><h1>Game day {}</h1>",
        verdict_class(v),
        v
    );
    let _ = write!(
        s,
        "<p class=\"meta\"><b>{}</b>{} · provider {} · fault <b>{}</b> on {}{} · status {}</p>",
        esc(&g.runbook),
        g.environment
            .as_deref()
            .map(|e| format!(" on <b>{}</b>", esc(e)))
            .unwrap_or_default(),
        esc(&g.provider),
        esc(&g.fault.kind),
        esc(&g.fault.target),
        g.fault
            .region
            .as_deref()
            .map(|r| format!(" ({})", esc(r)))
            .unwrap_or_default(),
        esc(&g.status),
    );
    let _ = write!(
        s,
        "<p class=\"meta\">execution <code>{}</code> · started {}{}</p>",
        esc(&g.execution_id),
        fmt_utc(g.started_ms),
        g.finished_ms
            .map(|f| format!(" · took {}", fmt_secs((f - g.started_ms) as f64 / 1000.0)))
            .unwrap_or_default()
    );
    // Missed targets first (marked so they can be told apart), then the other reasons.
    let reasons = g.reasons();
    if !reasons.is_empty() {
        s.push_str("<ul id=\"reasons\">");
        for r in &reasons {
            let class = if missed.contains(r) {
                " class=\"missed\""
            } else {
                ""
            };
            let _ = write!(s, "<li{class}>{}</li>", esc(r));
        }
        s.push_str("</ul>");
    }
    s.push_str("</header>\n");
}

fn targets(s: &mut String, g: &GameDay, missed: &[String]) {
    let (t, m) = (&g.targets, &g.measured);
    s.push_str("<section id=\"targets\"><h2>Targets</h2><table><thead><tr><th>Target</th><th style=\"width:160px\">Goal</th><th style=\"width:160px\">Measured</th><th style=\"width:160px\">Result</th></tr></thead><tbody>");
    let rto_ok = if missed.iter().any(|x| x.starts_with("RTO ")) {
        Some(false)
    } else {
        m.rto_seconds.map(|_| true)
    };
    let lost_ok = g
        .measured_anything()
        .then_some(m.lost_writes <= t.max_lost_writes);
    let mut rows = vec![
        (
            "RTO (client-seen)",
            format!("≤ {}", fmt_secs(t.rto_seconds)),
            fmt_opt_secs(m.rto_seconds),
            rto_ok,
        ),
        (
            "Lost acknowledged writes",
            format!("≤ {}", t.max_lost_writes),
            m.lost_writes.to_string(),
            lost_ok,
        ),
    ];
    if let Some(rpo) = t.rpo_seconds {
        rows.push((
            "RPO",
            format!("≤ {}", fmt_secs(rpo)),
            fmt_opt_secs(m.rpo_seconds),
            m.rpo_seconds.map(|r| r <= rpo),
        ));
    }
    for (name, goal, got, ok) in rows {
        let class = if ok == Some(false) {
            " class=\"missed\""
        } else {
            ""
        };
        let _ = write!(
            s,
            "<tr{class}><td>{name}</td><td class=\"num\">{goal}</td><td class=\"num\">{}</td>{}</tr>",
            esc(&got),
            status_cell(ok)
        );
    }
    s.push_str("</tbody></table><div class=\"figures\">");
    let ms = |v: Option<f64>| {
        v.map(|v| format!("{v:.1} ms"))
            .unwrap_or_else(|| "—".into())
    };
    for (label, value) in [
        ("acknowledged writes", m.acked_writes.to_string()),
        ("failed writes", m.failed_writes.to_string()),
        (
            "unknown outcome (committed)",
            format!("{} ({})", m.unknown_writes, m.unknown_committed),
        ),
        ("lag at fault", fmt_opt_secs(m.lag_at_fault_seconds)),
        ("latency p50", ms(m.latency_p50_ms)),
        ("latency p99", ms(m.latency_p99_ms)),
        (
            "fault injected",
            g.fault
                .injected_at_ms
                .map(|t| fmt_rel(t, g.started_ms))
                .unwrap_or("—".into()),
        ),
        (
            "fault undone",
            g.fault
                .undone_at_ms
                .map(|t| fmt_rel(t, g.started_ms))
                .unwrap_or("—".into()),
        ),
    ] {
        let _ = write!(s, "<div>{label}<b>{}</b></div>", esc(&value));
    }
    s.push_str("</div>");
    if !m.lost_ids.is_empty() {
        const SHOWN: usize = 100;
        let ids: Vec<String> = m.lost_ids.iter().take(SHOWN).map(u64::to_string).collect();
        let more = m.lost_ids.len().saturating_sub(SHOWN);
        let _ = write!(
            s,
            "<p id=\"lost-ids\">Lost write ids: <code>{}</code>{}</p>",
            ids.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    s.push_str("</section>\n");
}

fn phases(s: &mut String, g: &GameDay) {
    s.push_str("<section id=\"phases\"><h2>Phases</h2>");
    if g.phases.is_empty() {
        s.push_str("<p class=\"empty\">No phases recorded.</p></section>\n");
        return;
    }
    s.push_str(&charts::phases_chart(g));
    s.push_str("<table><thead><tr><th>Phase</th><th>Started</th><th>Duration</th><th>Status</th><th>Execution</th></tr></thead><tbody>");
    for p in &g.phases {
        let class = if p.status == "FAILED" {
            " class=\"failed\""
        } else {
            ""
        };
        let _ = write!(
            s,
            "<tr{class}><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&p.name),
            fmt_rel(p.started_ms, g.started_ms),
            p.finished_ms
                .map(|f| fmt_secs((f - p.started_ms) as f64 / 1000.0))
                .unwrap_or_else(|| "—".into()),
            esc(&p.status),
            esc(p.execution_id.as_deref().unwrap_or(""))
        );
    }
    s.push_str("</tbody></table></section>\n");
}

fn timeline(s: &mut String, g: &GameDay) {
    s.push_str("<section id=\"timeline\"><h2>Timeline</h2>");
    if g.timeline.is_empty() {
        s.push_str("<p class=\"empty\">No events.</p></section>\n");
        return;
    }
    s.push_str("<table><thead><tr><th style=\"width:90px\">At</th><th style=\"width:230px\">Time (UTC)</th><th style=\"width:140px\">Kind</th><th>Event</th></tr></thead><tbody>");
    let mut events: Vec<_> = g.timeline.iter().collect();
    events.sort_by_key(|e| e.at_ms);
    for e in events {
        // Milestones lead with their name, as the charts' markers label them.
        let name = e
            .milestone()
            .map(|m| format!("<b>{}</b> — ", esc(m.label)))
            .unwrap_or_default();
        let _ = write!(
            s,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{name}{}</td></tr>",
            fmt_rel(e.at_ms, g.started_ms),
            fmt_utc(e.at_ms),
            esc(&e.kind),
            esc(&e.text)
        );
    }
    s.push_str("</tbody></table></section>\n");
}

fn checks(s: &mut String, g: &GameDay) {
    s.push_str("<section id=\"checks\"><h2>Checks</h2>");
    if g.checks.is_empty() {
        s.push_str("<p class=\"empty\">No checks.</p></section>\n");
        return;
    }
    s.push_str("<table><thead><tr><th style=\"width:300px\">Check</th><th style=\"width:90px\">Result</th><th>Detail</th></tr></thead><tbody>");
    for c in &g.checks {
        let _ = write!(
            s,
            "<tr{}><td>{}</td>{}<td>{}</td></tr>",
            if c.passed { "" } else { " class=\"failed\"" },
            esc(&c.name),
            if c.passed {
                "<td class=\"ok\">passed</td>"
            } else {
                "<td class=\"bad\">failed</td>"
            },
            esc(&c.detail)
        );
    }
    s.push_str("</tbody></table></section>\n");
}

/// The full report page.
pub fn render_html(g: &GameDay) -> String {
    let v = g.verdict();
    let missed = g.missed_targets();
    let mut s = page_head(&format!("Game day {v}: {}", g.runbook));
    banner(&mut s, g, v, &missed);
    targets(&mut s, g, &missed);

    s.push_str("<section id=\"writes\"><h2>Client-seen writes</h2>");
    if g.series.writes.is_empty() {
        s.push_str("<p class=\"empty\">No client traffic was recorded.</p>");
    } else {
        s.push_str(&charts::writes_chart(g));
        s.push_str("<p class=\"legend\">Writes per second by the moment the client learned the outcome: acknowledged (green), failed (red), unknown outcome (amber). The shaded band runs from fault injection to the first acknowledged write after it; thin dashed lines mark the timeline's other milestones (first client error, detection, decision, fence, promote, weights moved, failback done).</p>");
    }
    s.push_str("</section>\n<section id=\"lag\"><h2>Replica lag</h2>");
    if g.series.lag.iter().all(|l| l.lag_seconds.is_none()) {
        s.push_str("<p class=\"empty\">No replica lag samples.</p>");
    } else {
        s.push_str(&charts::lag_chart(g));
    }
    s.push_str("</section>\n");
    phases(&mut s, g);
    timeline(&mut s, g);
    checks(&mut s, g);
    if !g.errors.is_empty() {
        s.push_str("<section id=\"errors\"><h2>Errors</h2><ul>");
        for e in &g.errors {
            let _ = write!(s, "<li><code>{}</code></li>", esc(e));
        }
        s.push_str("</ul></section>\n");
    }
    let _ = write!(
        s,
        "<footer>runbook game-day report · schema {SCHEMA_ID}</footer>\n</main></body></html>\n"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
