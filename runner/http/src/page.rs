//! Server-rendered HTML: the status page, an execution's page, the dashboards list.
//! Self-contained documents (inline style and SVG, no script, no external asset);
//! every piece of data goes through [`esc`].

use std::fmt::Write;

use crate::model::*;

/// How many game days the RTO trend chart spans.
const TREND_POINTS: usize = 12;

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;color:#1d232a;background:#fff}
h1{font-size:22px;margin:16px 0 4px}h2{font-size:17px;margin:22px 0 6px;border-bottom:1px solid #d6dbe0;padding-bottom:3px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceff2;vertical-align:top}
th{background:#f4f6f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#5a6470}.empty{color:#5a6470;font-style:italic}code,pre{font:13px ui-monospace,monospace}
pre{background:#f4f6f8;padding:10px;overflow:auto;white-space:pre-wrap}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-weight:600;font-size:12px;background:#e4e7eb;color:#1d232a}
.ok{background:#d3f2dc;color:#0b5d24}.warn{background:#fcefc7;color:#7a4d00}.bad{background:#fbd5d5;color:#8a1414}.info{background:#d7e7fb;color:#0b3d7a}
.lever{background:#fbd5d5;color:#8a1414;padding:8px 12px;border-radius:6px;font-weight:600}
ul.reasons{margin:0;padding-left:18px}.nowrap{white-space:nowrap}td.name{overflow-wrap:anywhere;min-width:11em;max-width:260px}
.scroll{overflow-x:auto}iframe{width:100%;height:80vh;border:1px solid #d6dbe0}
";

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
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

/// Percent-encodes one URL path segment (an execution id or dashboard name in a link).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `2026-12-08 08:00:00Z` for Unix milliseconds.
fn utc(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// `4.2s`, `42s`, `2m 5s`, `1h 2m 5s`, `3d 4h`.
pub fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "?".into();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h"),
    }
}

/// `3m 2s ago` / `in 4m 0s` relative to `now_ms`.
fn relative(ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - ms) as f64 / 1000.0;
    if secs >= 0.0 {
        format!("{} ago", human_duration(secs))
    } else {
        format!("in {}", human_duration(-secs))
    }
}

/// Badge class for a status, verdict or reading word.
fn tone(word: &str) -> &'static str {
    match word.to_ascii_lowercase().as_str() {
        "healthy" | "succeeded" | "success" | "pass" | "ready" | "completed" | "fired" => "ok",
        "suspect" | "aborted" | "skipped" | "cancelled" | "canceled" | "paused" | "dry-run"
        | "notify" | "missed" => "warn",
        "failed" | "fail" | "timed_out" | "timedout" | "error" => "bad",
        "running" | "pending" | "auto" => "info",
        _ => "",
    }
}

fn badge(word: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", tone(word), esc(word))
}

fn opt(s: &Option<String>) -> String {
    match s {
        Some(s) => esc(s),
        None => "—".into(),
    }
}

fn head(out: &mut String, title: &str, refresh: bool) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{}\
         <title>{}</title><style>{STYLE}</style></head>\n<body>\n",
        if refresh {
            "<meta http-equiv=\"refresh\" content=\"5\">"
        } else {
            ""
        },
        esc(title)
    );
}

fn table_start(out: &mut String, id: &str, headers: &[&str]) {
    let _ = write!(
        out,
        "<div class=\"scroll\"><table id=\"{id}-table\"><thead><tr>"
    );
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>\n");
}

fn empty_row(out: &mut String, cols: usize, text: &str) {
    let _ = writeln!(
        out,
        "<tr><td colspan=\"{cols}\" class=\"empty\">{}</td></tr>",
        esc(text)
    );
}

/// The status page `/` shows: one self-contained document, refreshed every 5 s.
/// Fleet mode: one line saying whether this serve may act, and why not.
fn fleet_line(out: &mut String, f: &FleetView, now: i64) {
    if f.lease_valid && f.quorum {
        let _ = write!(
            out,
            "<p class=\"meta\" id=\"fleet\">Fleet: runner <code>{}</code>, etcd quorum, lease {} valid.</p>",
            esc(&f.runner_id),
            f.lease.map(|l| l.to_string()).unwrap_or_default()
        );
        return;
    }
    let since = f
        .no_quorum_since_ms
        .map(|s| {
            format!(
                " for {}",
                human_duration(((now - s).max(0)) as f64 / 1000.0)
            )
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        "<p class=\"lever\" id=\"fleet\">Fleet: runner <code>{}</code> {}{} — it starts nothing until its lease is granted again{}.</p>",
        esc(&f.runner_id),
        if f.quorum {
            "holds no live lease"
        } else {
            "has NO etcd quorum"
        },
        since,
        f.last_error
            .as_deref()
            .map(|e| format!(" (last error: {})", esc(e)))
            .unwrap_or_default()
    );
}

pub fn render_status_page(status: &Status) -> String {
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, "runbook serve — status", true);
    let now = status.generated_ms;
    let _ = write!(
        out,
        "<header><h1>runbook serve</h1><p class=\"meta\">version {} · config <code>{}</code> · \
         snapshot {}</p>",
        esc(&status.version),
        esc(&status.config_path),
        utc(now)
    );
    match &status.lever {
        Some(reason) => {
            let _ = write!(
                out,
                "<p class=\"lever\" id=\"lever\">Safety lever ENGAGED: {} — no automatic action runs.</p>",
                esc(reason)
            );
        }
        None => out.push_str("<p class=\"meta\" id=\"lever\">Safety lever released.</p>"),
    }
    if let Some(f) = &status.fleet {
        fleet_line(&mut out, f, now);
    }
    out.push_str("<p><a href=\"/dashboards\">Dashboards</a> · <a href=\"/metrics\">Metrics</a></p></header>\n");
    schedules(&mut out, status);
    watchers(&mut out, status);
    readiness(&mut out, status);
    executions(&mut out, status);
    gamedays(&mut out, status);
    out.push_str("</body></html>\n");
    out
}

fn schedules(out: &mut String, status: &Status) {
    out.push_str("<section id=\"schedules\"><h2>Schedules</h2>");
    table_start(
        out,
        "schedules",
        &[
            "Name",
            "Runbook",
            "Environment",
            "Expression",
            "Zone",
            "Next fire (local)",
            "Paused",
            "Last status",
            "Fired / skipped / missed",
        ],
    );
    if status.schedules.is_empty() {
        empty_row(out, 9, "No schedules configured.");
    }
    for s in &status.schedules {
        let next = match (&s.next_fire_local, s.next_fire_unix_ms) {
            (Some(local), Some(ms)) => format!(
                "<span class=\"nowrap\">{}</span> <span class=\"meta\">({})</span>",
                esc(local),
                relative(ms, status.generated_ms)
            ),
            (Some(local), None) => esc(local),
            (None, Some(ms)) => utc(ms),
            (None, None) => "—".into(),
        };
        let paused = match &s.paused {
            Some(reason) => format!("{} {}", badge("paused"), esc(reason)),
            None => "—".into(),
        };
        let last = match (&s.last_status, &s.last_execution) {
            // The badge links to the execution: a full id would widen the table.
            (Some(st), Some(id)) => format!(
                "<a href=\"/executions/{}\" title=\"{}\">{}</a>",
                path_segment(id),
                esc(id),
                badge(st)
            ),
            (Some(st), None) => badge(st),
            (None, Some(id)) => format!(
                "<a href=\"/executions/{}\">{}</a>",
                path_segment(id),
                esc(id)
            ),
            (None, None) => "—".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"name\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td class=\"next-fire\">{next}</td><td>{paused}</td><td>{last}</td>\
             <td class=\"num\">{} / {} / {}</td></tr>",
            esc(&s.name),
            esc(&s.runbook),
            opt(&s.environment),
            esc(&s.expression),
            esc(&s.timezone),
            s.fired_total,
            s.skipped_total,
            s.missed_total
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn watchers(out: &mut String, status: &Status) {
    let now = status.generated_ms;
    out.push_str("<section id=\"watchers\"><h2>Watchers</h2>");
    table_start(
        out,
        "watchers",
        &[
            "Environment",
            "Mode",
            "Verdict",
            "Consecutive failures",
            "Signals",
            "Last round",
            "Cooldown",
            "Last decision",
            "Failovers",
        ],
    );
    if status.watchers.is_empty() {
        empty_row(out, 9, "No environment is watched.");
    }
    for w in &status.watchers {
        let mut mode = badge(&w.mode);
        if let Some(reason) = &w.paused {
            let _ = write!(mode, " {} {}", badge("paused"), esc(reason));
        }
        let mut signals = String::from("<ul class=\"reasons\">");
        for s in &w.signals {
            let _ = write!(
                signals,
                "<li>{} {}{}</li>",
                esc(&s.name),
                badge(&s.reading),
                if s.detail.is_empty() {
                    String::new()
                } else {
                    format!(" <span class=\"meta\">{}</span>", esc(&s.detail))
                }
            );
        }
        signals.push_str("</ul>");
        let cooldown = match w.cooldown_until_ms {
            Some(until) if until > now => {
                format!("until {} ({})", utc(until), relative(until, now))
            }
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{mode}</td><td class=\"verdict\">{}</td><td class=\"num\">{} / {}</td>\
             <td>{signals}</td><td>{}</td><td>{cooldown}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(&w.environment),
            badge(&w.verdict),
            w.consecutive_failures,
            w.failed_rounds_needed,
            w.last_round_ms
                .map(|ms| relative(ms, now))
                .unwrap_or_else(|| "never".into()),
            opt(&w.last_decision),
            w.failovers_total
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn readiness(out: &mut String, status: &Status) {
    out.push_str("<section id=\"readiness\"><h2>Readiness</h2>");
    table_start(
        out,
        "readiness",
        &["Environment", "Ready", "Reasons", "Checked"],
    );
    if status.readiness.is_empty() {
        empty_row(out, 4, "No readiness checked yet.");
    }
    for r in &status.readiness {
        let verdict = if r.ready {
            "<span class=\"badge ok\">READY</span>"
        } else {
            "<span class=\"badge bad\">NOT READY</span>"
        };
        let mut reasons = String::from("<ul class=\"reasons\">");
        for reason in &r.reasons {
            let _ = write!(reasons, "<li>{}</li>", esc(reason));
        }
        reasons.push_str("</ul>");
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{verdict}</td><td>{reasons}</td><td>{}</td></tr>",
            esc(&r.environment),
            r.checked_ms
                .map(|ms| relative(ms, status.generated_ms))
                .unwrap_or_else(|| "never".into())
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn executions(out: &mut String, status: &Status) {
    let now = status.generated_ms;
    out.push_str("<section id=\"executions\"><h2>Last executions</h2>");
    table_start(
        out,
        "executions",
        &[
            "Execution",
            "Runbook",
            "Environment",
            "Source",
            "Status",
            "Started",
            "Duration",
        ],
    );
    if status.executions.is_empty() {
        empty_row(out, 7, "No executions yet.");
    }
    for e in &status.executions {
        let duration = match e.ended_ms {
            Some(end) => human_duration((end - e.started_ms) as f64 / 1000.0),
            None => format!(
                "running for {}",
                human_duration((now - e.started_ms) as f64 / 1000.0)
            ),
        };
        let _ = writeln!(
            out,
            "<tr><td><a href=\"/executions/{}\"><code>{}</code></a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{duration}</td></tr>",
            path_segment(&e.id),
            esc(&e.id),
            esc(&e.runbook),
            opt(&e.environment),
            esc(&e.source),
            badge(&e.status),
            utc(e.started_ms)
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn fmt_rto(rto: Option<f64>) -> String {
    rto.map(|s| format!("{s:.1} s"))
        .unwrap_or_else(|| "—".into())
}

fn gamedays(out: &mut String, status: &Status) {
    out.push_str("<section id=\"gamedays\"><h2>Game days</h2>");
    if let Some(last) = status.gamedays.first() {
        let _ = write!(
            out,
            "<p id=\"gameday-last\">Last game day {}: {} · RTO <strong>{}</strong> · lost writes \
             <strong>{}</strong>{}</p>",
            utc(last.started_ms),
            badge(&last.verdict),
            fmt_rto(last.rto_seconds),
            last.lost_writes
                .map(|n| n.to_string())
                .unwrap_or_else(|| "—".into()),
            trend_text(&status.gamedays)
        );
        out.push_str(&trend_svg(&status.gamedays));
    }
    table_start(
        out,
        "gamedays",
        &[
            "Started",
            "Execution",
            "Verdict",
            "RTO",
            "Lost writes",
            "Fault",
        ],
    );
    if status.gamedays.is_empty() {
        empty_row(out, 6, "No game day has run yet.");
    }
    for g in &status.gamedays {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><a href=\"/executions/{}\"><code>{}</code></a></td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            utc(g.started_ms),
            path_segment(&g.execution_id),
            esc(&g.execution_id),
            badge(&g.verdict),
            fmt_rto(g.rto_seconds),
            g.lost_writes
                .map(|n| n.to_string())
                .unwrap_or_else(|| "—".into()),
            opt(&g.fault)
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

/// ` · RTO 42.0 s vs 51.3 s the game day before (−9.3 s)` when two RTOs are known.
fn trend_text(days: &[GameDayView]) -> String {
    let mut rtos = days.iter().filter_map(|g| g.rto_seconds);
    match (rtos.next(), rtos.next()) {
        (Some(last), Some(prev)) if days[0].rto_seconds.is_some() => {
            let d = last - prev;
            let sign = if d > 0.0 {
                "+"
            } else if d < 0.0 {
                "−"
            } else {
                "±"
            };
            format!(
                " · trend: {last:.1} s vs {prev:.1} s the game day before ({sign}{:.1} s)",
                d.abs()
            )
        }
        _ => String::new(),
    }
}

/// A small inline SVG of the RTO over the last [`TREND_POINTS`] game days (oldest on
/// the left), one dot per game day coloured by verdict.
fn trend_svg(days: &[GameDayView]) -> String {
    let points: Vec<&GameDayView> = days
        .iter()
        .filter(|g| g.rto_seconds.is_some())
        .take(TREND_POINTS)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if points.len() < 2 {
        return String::new();
    }
    // `top` leaves room for the label above the highest dot.
    let (w, h, pad, top) = (320.0, 80.0, 8.0, 20.0);
    let max = points
        .iter()
        .filter_map(|g| g.rto_seconds)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let step = (w - 2.0 * pad) / (points.len() - 1) as f64;
    let xy = |i: usize, rto: f64| {
        (
            pad + step * i as f64,
            h - pad - (rto / max) * (h - pad - top),
        )
    };
    let mut line = String::new();
    let mut dots = String::new();
    for (i, g) in points.iter().enumerate() {
        let rto = g.rto_seconds.unwrap_or_default();
        let (x, y) = xy(i, rto);
        let _ = write!(line, "{x:.1},{y:.1} ");
        let color = match tone(&g.verdict) {
            "ok" => "#1a8a3a",
            "bad" => "#c62828",
            _ => "#b7791f",
        };
        let _ = write!(
            dots,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}: RTO {rto:.1} s, {}</title></circle>",
            utc(g.started_ms),
            esc(&g.verdict)
        );
    }
    format!(
        "<svg id=\"rto-trend\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-label=\"RTO over the last {} game days, max {max:.1} s\" xmlns=\"http://www.w3.org/2000/svg\">\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#f4f6f8\"/>\
         <polyline points=\"{}\" fill=\"none\" stroke=\"#3b6ea5\" stroke-width=\"1.5\"/>{dots}\
         <text x=\"{}\" y=\"13\" font-size=\"11\" text-anchor=\"end\" fill=\"#5a6470\">max {max:.1} s</text></svg>",
        points.len(),
        line.trim_end(),
        w - pad
    )
}

/// `/executions/ID`: the `runbook show` text, and the game-day report when there is one.
pub fn render_execution_page(page: &ExecutionPage) -> String {
    let mut out = String::with_capacity(page.show_text.len() + 4096);
    head(&mut out, &format!("execution {}", page.id), false);
    let _ = write!(
        out,
        "<header><p><a href=\"/\">← status</a></p><h1>Execution <code>{}</code></h1></header>\n\
         <section id=\"show\"><pre>{}</pre></section>\n",
        esc(&page.id),
        esc(&page.show_text)
    );
    if let Some(report) = &page.report_html {
        let _ = writeln!(
            out,
            "<section id=\"report\"><h2>Game-day report</h2><p><a href=\"/executions/{}/report\">Open the report alone</a></p>\
             <iframe title=\"game-day report\" srcdoc=\"{}\"></iframe></section>",
            path_segment(&page.id),
            esc(report)
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// `/dashboards`: links to each dashboard.
pub(crate) fn render_dashboards_page(names: &[String]) -> String {
    let mut out = String::new();
    head(&mut out, "runbook serve — dashboards", false);
    out.push_str("<header><p><a href=\"/\">← status</a></p><h1>Dashboards</h1></header><ul>");
    if names.is_empty() {
        out.push_str("<li class=\"empty\">No dashboards.</li>");
    }
    for n in names {
        let _ = write!(
            out,
            "<li><a href=\"/dashboards/{}\">{}</a></li>",
            path_segment(n),
            esc(n)
        );
    }
    out.push_str("</ul></body></html>\n");
    out
}

/// A small HTML page for 404s.
pub(crate) fn render_not_found(what: &str) -> String {
    let mut out = String::new();
    head(&mut out, "not found", false);
    let _ = writeln!(
        out,
        "<h1>Not found</h1><p>{}</p><p><a href=\"/\">← status</a></p></body></html>",
        esc(what)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(4.25), "4.2s");
        assert_eq!(human_duration(42.0), "42s");
        assert_eq!(human_duration(125.0), "2m 5s");
        assert_eq!(human_duration(3725.0), "1h 2m 5s");
        assert_eq!(human_duration(2.0 * 86_400.0 + 7200.0), "2d 2h");
        assert_eq!(human_duration(-1.0), "?");
    }

    #[test]
    fn link_segments_are_encoded() {
        assert_eq!(path_segment("a b/<c>"), "a%20b%2F%3Cc%3E");
        assert_eq!(path_segment("01J-x_y.z"), "01J-x_y.z");
    }

    #[test]
    fn hostile_names_render_as_text() {
        let status = Status {
            generated_ms: 1_765_000_000_000,
            schedules: vec![ScheduleView {
                name: "<script>alert(1)</script>".into(),
                expression: "rate(1 day)".into(),
                ..Default::default()
            }],
            readiness: vec![ReadinessView {
                environment: "prod\"><img src=x>".into(),
                ready: false,
                reasons: vec!["<b>lag</b>".into()],
                checked_ms: None,
            }],
            ..Default::default()
        };
        let html = render_status_page(&status);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;b&gt;lag&lt;/b&gt;"));
    }

    #[test]
    fn trend_needs_two_rtos_and_reads_oldest_first() {
        let day = |id: &str, ms: i64, rto: f64, verdict: &str| GameDayView {
            execution_id: id.into(),
            started_ms: ms,
            verdict: verdict.into(),
            rto_seconds: Some(rto),
            lost_writes: Some(0),
            fault: None,
        };
        assert_eq!(trend_svg(&[day("a", 0, 10.0, "pass")]), "");
        let days = [day("b", 2000, 20.0, "fail"), day("a", 1000, 40.0, "pass")];
        let svg = trend_svg(&days);
        // Oldest (40 s, the max) on the left at the top; newest lower on the right.
        let first = svg.find("#1a8a3a").unwrap();
        let second = svg.find("#c62828").unwrap();
        assert!(first < second, "{svg}");
        assert!(svg.contains("points=\"8.0,20.0 312.0,"), "{svg}");
        assert_eq!(
            trend_text(&days),
            " · trend: 20.0 s vs 40.0 s the game day before (−20.0 s)"
        );
    }

    #[test]
    fn report_is_embedded_escaped() {
        let page = ExecutionPage {
            id: "e1".into(),
            show_text: "step <1>".into(),
            report_html: Some("<!doctype html><p class=\"x\">r&d</p>".into()),
        };
        let html = render_execution_page(&page);
        assert!(html.contains("<pre>step &lt;1&gt;</pre>"));
        assert!(html.contains(
            "srcdoc=\"&lt;!doctype html&gt;&lt;p class=&quot;x&quot;&gt;r&amp;d&lt;/p&gt;\""
        ));
        assert!(html.contains("href=\"/executions/e1/report\""));
    }
}
