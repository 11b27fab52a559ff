//! Markdown summary for a pull request or a chat message.

use std::fmt::Write;

use crate::model::{fmt_opt_secs, fmt_rel, fmt_secs, fmt_utc};
use crate::{GameDay, Verdict};

/// Makes user text safe inside a Markdown table cell or line: no line breaks, no pipes,
/// no HTML, no emphasis/link syntax.
pub(crate) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\n' | '\r' => out.push(' '),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

fn icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅",
        Verdict::Fail => "❌",
        Verdict::Inconclusive => "⚠️",
    }
}

/// A short Markdown summary: verdict, missed targets, targets table, checks, phases, errors.
pub fn render_markdown(g: &GameDay) -> String {
    let v = g.verdict();
    let (t, m) = (&g.targets, &g.measured);
    let mut s = String::new();
    let env = g
        .environment
        .as_deref()
        .map(|e| format!(" on `{}`", e.replace('`', "'")))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "## {} Game day {}: {}{}\n",
        icon(v),
        v,
        md_escape(&g.runbook),
        env
    );
    let _ = writeln!(
        s,
        "Fault **{}** on {}{} · provider {} · status {} · started {} · execution `{}`\n",
        md_escape(&g.fault.kind),
        md_escape(&g.fault.target),
        g.fault
            .region
            .as_deref()
            .map(|r| format!(" ({})", md_escape(r)))
            .unwrap_or_default(),
        md_escape(&g.provider),
        md_escape(&g.status),
        fmt_utc(g.started_ms),
        g.execution_id.replace('`', "'"),
    );
    let missed = g.missed_targets();
    let reasons = g.reasons();
    if !reasons.is_empty() {
        s.push_str("**Why:**\n");
        for x in &reasons {
            let _ = writeln!(s, "- {}", md_escape(x));
        }
        s.push('\n');
    }
    s.push_str("| Target | Goal | Measured | |\n|---|---|---|---|\n");
    let mark = |ok: Option<bool>| match ok {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "—",
    };
    let rto_ok = if missed.iter().any(|x| x.starts_with("RTO ")) {
        Some(false)
    } else {
        m.rto_seconds.map(|_| true)
    };
    let _ = writeln!(
        s,
        "| RTO (client-seen) | ≤ {} | {} | {} |",
        fmt_secs(t.rto_seconds),
        fmt_opt_secs(m.rto_seconds),
        mark(rto_ok)
    );
    let _ = writeln!(
        s,
        "| Lost acknowledged writes | ≤ {} | {} | {} |",
        t.max_lost_writes,
        m.lost_writes,
        mark(
            g.measured_anything()
                .then_some(m.lost_writes <= t.max_lost_writes)
        )
    );
    if let Some(rpo) = t.rpo_seconds {
        let _ = writeln!(
            s,
            "| RPO | ≤ {} | {} | {} |",
            fmt_secs(rpo),
            fmt_opt_secs(m.rpo_seconds),
            mark(m.rpo_seconds.map(|r| r <= rpo))
        );
    }
    let _ = writeln!(
        s,
        "\nWrites: {} acked, {} failed, {} unknown ({} of them committed){}{}\n",
        m.acked_writes,
        m.failed_writes,
        m.unknown_writes,
        m.unknown_committed,
        m.latency_p50_ms
            .map(|p| format!(" · latency p50 {p:.1} ms"))
            .unwrap_or_default(),
        m.latency_p99_ms
            .map(|p| format!(", p99 {p:.1} ms"))
            .unwrap_or_default(),
    );
    if !g.checks.is_empty() {
        s.push_str("| Check | | Detail |\n|---|---|---|\n");
        for c in &g.checks {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                md_escape(&c.name),
                mark(Some(c.passed)),
                md_escape(&c.detail)
            );
        }
        s.push('\n');
    }
    if !g.phases.is_empty() {
        let phases: Vec<String> = g
            .phases
            .iter()
            .map(|p| {
                let dur = p
                    .finished_ms
                    .map(|f| format!(" {}", fmt_secs((f - p.started_ms) as f64 / 1000.0)))
                    .unwrap_or_default();
                format!(
                    "{} ({}{}, {})",
                    md_escape(&p.name),
                    fmt_rel(p.started_ms, g.started_ms),
                    dur,
                    md_escape(&p.status)
                )
            })
            .collect();
        let _ = writeln!(s, "Phases: {}\n", phases.join(" → "));
    }
    // The timeline's milestones in time order, as the HTML charts mark them.
    let mut milestones: Vec<_> = g
        .timeline
        .iter()
        .filter_map(|e| Some((e.at_ms, e.milestone()?.label)))
        .collect();
    milestones.sort_by_key(|m| m.0);
    if !milestones.is_empty() {
        let line: Vec<String> = milestones
            .iter()
            .map(|(at, label)| format!("{label} {}", fmt_rel(*at, g.started_ms)))
            .collect();
        let _ = writeln!(s, "Milestones: {}\n", line.join(" → "));
    }
    if !g.errors.is_empty() {
        s.push_str("**Errors:**\n");
        for e in &g.errors {
            let _ = writeln!(s, "- {}", md_escape(e));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::md_escape;

    #[test]
    fn escapes_table_breaking_and_html() {
        assert_eq!(md_escape("a|b\nc <x>"), "a\\|b c \\<x\\>");
        assert_eq!(md_escape("**[x](y)**"), "\\*\\*\\[x\\](y)\\*\\*");
    }
}
