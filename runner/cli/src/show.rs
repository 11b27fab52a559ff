//! Human and JSON views: `plan`, `executions`, `show`, `plugin inspect`.

use std::path::Path;

use runbook_executor::{Effect, PlanReport, Prepared};
use runbook_journal::Journal;
use serde_json::{Value, json};

/// `println!` into a String (writing to a String cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

fn fmt_ms(ms: i64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let days = secs / 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// The static plan: what each Task's plugin may call, from its imports and grants.
pub fn plan(prepared: &Prepared, provider: Option<&str>, json_out: bool) {
    let mut tasks = Vec::new();
    for (path, plugin, grants) in prepared.task_plugins() {
        let services: Vec<&str> = plugin
            .capability_imports()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        let mut mutating = Vec::new();
        let mut reads = Vec::new();
        for spec in runbook_caps::CATALOG
            .iter()
            .filter(|s| services.contains(&s.service))
        {
            let scoped: Vec<String> = grants
                .iter()
                .filter(|g| {
                    g.allows(
                        spec.service,
                        spec.action,
                        g.resource.as_deref().or(Some("*")),
                    ) || g.allows(spec.service, spec.action, None)
                })
                .map(|g| g.resource.clone().unwrap_or_else(|| "*".into()))
                .collect();
            if scoped.is_empty() {
                continue;
            }
            let entry =
                json!({"action": format!("{}:{}", spec.service, spec.action), "on": scoped});
            if spec.mutating {
                mutating.push(entry)
            } else {
                reads.push(entry)
            }
        }
        tasks.push(json!({
            "state": path,
            "plugin": plugin.name,
            "sha256": plugin.sha256,
            "imports": services,
            "may_mutate": mutating,
            "may_read": reads,
        }));
    }
    let doc = json!({
        "runbook": prepared.path.display().to_string(),
        "provider": provider.unwrap_or("local"),
        "tasks": tasks,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        return;
    }
    println!(
        "plan for {}: what each Task may call; nothing is called \
         (--provider local|aws walks the runbook against a provider)",
        prepared.path.display(),
    );
    for t in doc["tasks"].as_array().unwrap() {
        println!(
            "\n{}  [plugin {}]",
            t["state"].as_str().unwrap(),
            t["plugin"].as_str().unwrap()
        );
        let m = t["may_mutate"].as_array().unwrap();
        if m.is_empty() {
            println!("  mutates nothing");
        }
        for e in m {
            println!("  ~ {} on {}", e["action"].as_str().unwrap(), e["on"]);
        }
        for e in t["may_read"].as_array().unwrap() {
            println!("    reads {} on {}", e["action"].as_str().unwrap(), e["on"]);
        }
    }
}

/// A plan walked against a provider: every mutating call, in order, then a summary.
pub fn live_plan(prepared: &Prepared, report: &PlanReport, json_out: bool) -> anyhow::Result<()> {
    // Calls predicted to fail change nothing: they are counted apart.
    let count = |e: Effect| {
        report
            .calls
            .iter()
            .filter(|c| c.effect == e && c.error.is_none())
            .count()
    };
    let failing = report.calls.iter().filter(|c| c.error.is_some()).count();
    if json_out {
        let doc = json!({
            "runbook": prepared.path.display().to_string(),
            "provider": report.provider,
            "status": report.status,
            "error": report.error,
            "cause": report.cause,
            "output": report.output,
            "reads": report.reads,
            "summary": {
                "create": count(Effect::Create),
                "update": count(Effect::Update),
                "delete": count(Effect::Delete),
                "action": count(Effect::Action),
                "no_op": count(Effect::NoOp),
                "failing": failing,
            },
            "steps": report.steps,
            "calls": report.calls,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "plan for {} against provider {}: {} reads made, nothing changed\n",
        prepared.path.display(),
        report.provider,
        report.reads
    );
    for c in &report.calls {
        let sign = match c.effect {
            Effect::Create => "+",
            Effect::Update => "~",
            Effect::Delete => "-",
            Effect::NoOp => "=",
            Effect::Action => "!",
        };
        let mut line = format!(
            "{sign} {:<7} {:<42} {:<10} {}",
            c.effect.label(),
            format!("{}:{}", c.service, c.action),
            c.region.as_deref().unwrap_or("global"),
            c.resource.as_deref().unwrap_or("-"),
        );
        if let Some(d) = c.detail.as_deref().filter(|d| !d.is_empty()) {
            line.push_str(&format!("  ({d})"));
        }
        line.push_str(&format!("  [{}]", c.state));
        println!("{line}");
        if let Some(e) = &c.error {
            println!("    would fail: {e}");
        }
    }
    if report.calls.is_empty() {
        println!("no mutating calls");
    }
    println!(
        "\nPlan: {} to create, {} to update, {} to delete, {} other actions, {} unchanged{}.",
        count(Effect::Create),
        count(Effect::Update),
        count(Effect::Delete),
        count(Effect::Action),
        count(Effect::NoOp),
        if failing > 0 {
            format!(", {failing} predicted to fail")
        } else {
            String::new()
        }
    );
    match report.status.as_str() {
        "SUCCEEDED" => println!("The walk reached the end of the runbook."),
        other => {
            println!(
                "The walk ended {other} at {}: {}: {}",
                report
                    .steps
                    .last()
                    .map(|s| s.state.as_str())
                    .unwrap_or("the start"),
                report.error.as_deref().unwrap_or("-"),
                report.cause.as_deref().unwrap_or("-")
            );
            if report.calls.iter().any(|c| c.effect != Effect::NoOp) {
                println!(
                    "Note: recorded calls were not made, so a step that waits for their effect \
                     on a running database (a fence, a promotion) cannot see it in a plan."
                );
            }
        }
    }
    Ok(())
}

pub fn executions(journal: &Journal, limit: usize, json_out: bool) -> anyhow::Result<()> {
    let rows = journal.executions(limit)?;
    if json_out {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({"execution_id": r.id, "name": r.name, "status": r.status, "started": fmt_ms(r.started_ms),
                       "started_ms": r.started_ms, "ended_ms": r.ended_ms,
                       "ended": r.ended_ms.map(fmt_ms), "runbook": r.runbook_path, "provider": r.provider,
                       "environment": r.environment, "parent_id": r.parent_id, "error": r.error,
                       "waiting_for_task_token": waiting_json(journal, r)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let lever = journal.lever()?;
    if lever.engaged {
        println!(
            "safety lever ENGAGED since {} by {}: {} (no fault is injected)",
            lever.since_ms.map(fmt_ms).unwrap_or_default(),
            lever.actor.unwrap_or_default(),
            lever.reason.unwrap_or_default()
        );
    }
    println!(
        "{:<36}  {:<10}  {:<24}  {:>9}  {:<16}  NAME",
        "EXECUTION", "STATUS", "STARTED", "DURATION", "ENVIRONMENT"
    );
    for r in rows {
        let dur = r
            .ended_ms
            .map(|e| format!("{:.1}s", (e - r.started_ms) as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<36}  {:<10}  {:<24}  {:>9}  {:<16}  {}{}",
            r.id,
            r.status,
            fmt_ms(r.started_ms),
            dur,
            r.environment.as_deref().unwrap_or("-"),
            r.name,
            r.parent_id
                .as_deref()
                .map(|p| format!(" (child of {p})"))
                .unwrap_or_default()
        );
        for w in waiting(journal, &r) {
            println!("    {}", waiting_line(&w));
        }
    }
    Ok(())
}

/// Open task tokens of a RUNNING execution (`.waitForTaskToken` Tasks waiting for an answer).
fn waiting(
    journal: &Journal,
    r: &runbook_journal::ExecutionRow,
) -> Vec<runbook_journal::TaskTokenRow> {
    if r.status != "RUNNING" {
        return Vec::new();
    }
    journal.open_task_tokens(&r.id).unwrap_or_default()
}

fn waiting_json(journal: &Journal, r: &runbook_journal::ExecutionRow) -> Value {
    Value::Array(
        waiting(journal, r)
            .iter()
            .map(|w| {
                json!({"state": w.state, "token": w.token, "status": w.status,
                       "since": fmt_ms(w.created_ms), "since_ms": w.created_ms,
                       "plugin_done_ms": w.plugin_done_ms,
                       "heartbeat_deadline": w.heartbeat_deadline_ms().map(fmt_ms),
                       "heartbeat_deadline_ms": w.heartbeat_deadline_ms(),
                       "timeout_deadline": w.timeout_deadline_ms().map(fmt_ms),
                       "timeout_deadline_ms": w.timeout_deadline_ms()})
            })
            .collect(),
    )
}

fn waiting_line(w: &runbook_journal::TaskTokenRow) -> String {
    let mut line = format!(
        "waiting for task token at {} since {}",
        w.state,
        fmt_ms(w.created_ms)
    );
    if let Some(h) = w.heartbeat_deadline_ms() {
        line.push_str(&format!(", heartbeat due by {}", fmt_ms(h)));
    }
    if let Some(t) = w.timeout_deadline_ms() {
        line.push_str(&format!(", times out at {}", fmt_ms(t)));
    }
    if w.status != runbook_journal::TOKEN_WAITING {
        line.push_str(&format!(
            " (answered: {}, not yet taken by a runner)",
            w.status
        ));
    }
    line.push_str(&format!(
        ": runbook task success|failure|heartbeat {}",
        w.token
    ));
    line
}

pub fn execution(journal: &Journal, id: &str, json_out: bool) -> anyhow::Result<()> {
    let row = journal.resolve(id)?;
    let history = journal.history(&row.id)?;
    let calls = journal.calls(&row.id)?;
    let logs = journal.logs(&row.id)?;
    let children = journal.children(&row.id)?;
    let faults = journal.faults_of(std::slice::from_ref(&row.id))?;
    let sessions = journal.sessions_of(std::slice::from_ref(&row.id))?;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "execution_id": row.id, "name": row.name, "status": row.status, "runbook": row.runbook_path,
                "parent_id": row.parent_id, "environment": row.environment,
                "children": children.iter().map(|c| json!({"execution_id": c.id, "name": c.name, "status": c.status})).collect::<Vec<_>>(),
                "faults": faults.iter().map(|f| &f.record).collect::<Vec<_>>(),
                "traffic_sessions": sessions.iter().map(|s| json!({"id": s.id, "state": s.state, "verification": s.verification})).collect::<Vec<_>>(),
                "provider": row.provider, "input": row.input, "output": row.output, "error": row.error,
                "cause": row.cause, "started": fmt_ms(row.started_ms), "ended": row.ended_ms.map(fmt_ms),
                "redrive_count": row.redrive_count, "history": history, "calls": calls, "logs": logs,
                "waiting_for_task_token": waiting_json(journal, &row),
                "variables": variables(&history).into_iter().map(|(k, v, _)| (k, v)).collect::<serde_json::Map<_, _>>(),
            }))?
        );
        return Ok(());
    }
    print!("{}", execution_text(journal, &row.id)?);
    Ok(())
}

/// What `runbook show ID` prints (also the `/executions/ID` page of `runbook serve`).
pub fn execution_text(journal: &Journal, id: &str) -> anyhow::Result<String> {
    let row = journal.resolve(id)?;
    let history = journal.history(&row.id)?;
    let calls = journal.calls(&row.id)?;
    let logs = journal.logs(&row.id)?;
    let children = journal.children(&row.id)?;
    let faults = journal.faults_of(std::slice::from_ref(&row.id))?;
    let sessions = journal.sessions_of(std::slice::from_ref(&row.id))?;
    let mut out = String::new();
    outln!(out, "execution  {}", row.id);
    outln!(out, "name       {}", row.name);
    outln!(out, "runbook    {}", row.runbook_path);
    outln!(out, "provider   {}", row.provider.as_deref().unwrap_or("-"));
    if let Some(env) = &row.environment {
        outln!(out, "env        {env}");
    }
    if let Some(p) = &row.parent_id {
        outln!(out, "parent     {p}  (runbook show {p})");
    }
    for c in &children {
        outln!(out, "child      {}  {}  {}", c.id, c.status, c.name);
    }
    for f in &faults {
        outln!(out, "fault      {}  {}  {}", f.id, f.kind, f.state);
    }
    for s in &sessions {
        outln!(out, "traffic    {}  {}", s.id, s.state);
    }
    outln!(out, "status     {}", row.status);
    for w in waiting(journal, &row) {
        outln!(out, "waiting    {}", waiting_line(&w));
    }
    outln!(out, "started    {}", fmt_ms(row.started_ms));
    if let Some(e) = row.ended_ms {
        outln!(
            out,
            "ended      {}  ({:.3}s)",
            fmt_ms(e),
            (e - row.started_ms) as f64 / 1000.0
        );
    }
    if let Some(e) = &row.error {
        outln!(out, "error      {e}");
    }
    if let Some(c) = &row.cause {
        outln!(out, "cause      {c}");
    }
    outln!(out, "\ntimeline");
    // Per state: first entered to last exit, the shape of SFN's graph inspector.
    let mut spans: Vec<(String, i64, i64, String)> = Vec::new();
    for h in &history {
        let Some(state) = &h.state else { continue };
        if h.kind.ends_with("StateEntered") {
            spans.push((state.clone(), h.at_ms, h.at_ms, "running".into()));
        } else if let Some(s) = spans.iter_mut().rev().find(|s| &s.0 == state) {
            s.2 = h.at_ms;
            if h.kind.ends_with("Exited") || h.kind.ends_with("Succeeded") {
                s.3 = "ok".into();
            } else if h.kind.contains("Failed") || h.kind.contains("TimedOut") {
                s.3 = h.kind.clone();
            }
        }
    }
    let total = row
        .ended_ms
        .unwrap_or_else(runbook_journal::now_ms)
        .saturating_sub(row.started_ms)
        .max(1);
    for (state, from, to, how) in &spans {
        let w = 40usize;
        let a = (((from - row.started_ms) as f64 / total as f64) * w as f64) as usize;
        let b = ((((to - row.started_ms) as f64 / total as f64) * w as f64).ceil() as usize)
            .clamp(a + 1, w.max(a + 1));
        let bar: String = (0..w)
            .map(|i| if i >= a && i < b { '#' } else { '.' })
            .collect();
        outln!(
            out,
            "  +{:>8.3}s {:>8.3}s |{bar}| {state} ({how})",
            (from - row.started_ms) as f64 / 1000.0,
            (to - from) as f64 / 1000.0
        );
    }
    let vars = variables(&history);
    if !vars.is_empty() {
        outln!(out, "\nvariables");
        for (name, v, state) in &vars {
            let mut text = v.to_string();
            if text.len() > 100 {
                let mut end = 100;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text = format!("{}...", &text[..end]);
            }
            outln!(out, "  ${name:<24} {text}  (set by {state})");
        }
    }
    outln!(out, "\nhistory");
    for h in &history {
        outln!(
            out,
            "  +{:>8.3}s  {:<28} {}",
            (h.at_ms - row.started_ms) as f64 / 1000.0,
            h.kind,
            h.state.as_deref().unwrap_or("")
        );
    }
    if !calls.is_empty() {
        outln!(out, "\ncapability calls");
        for c in &calls {
            outln!(
                out,
                "  +{:>8.3}s  {:<32} {:<10} {:<28} {}{}  {:.1}ms  [{}]",
                (c.at_ms - row.started_ms) as f64 / 1000.0,
                format!("{}:{}", c.service, c.action),
                c.region.as_deref().unwrap_or("-"),
                c.resource.as_deref().unwrap_or("*"),
                c.outcome,
                c.error_code
                    .as_deref()
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default(),
                c.duration_us as f64 / 1000.0,
                c.state
            );
        }
    }
    if !logs.is_empty() {
        outln!(out, "\nlogs");
        for l in &logs {
            outln!(
                out,
                "  +{:>8.3}s  {:<5} [{}] {}",
                (l.at_ms - row.started_ms) as f64 / 1000.0,
                l.level,
                l.state,
                l.message
            );
        }
    }
    Ok(out)
}

/// The top-level workflow variables as the execution left them: the last value of each from
/// the history's `assigned_variables` (a Map iteration's or Parallel branch's own variables
/// end with it), with the state that set it.
fn variables(history: &[runbook_journal::HistoryRow]) -> Vec<(String, Value, String)> {
    let mut vars: std::collections::BTreeMap<String, (Value, String)> = Default::default();
    for h in history {
        let (Some(Value::Object(a)), Some(state)) = (h.details.get("assigned_variables"), &h.state)
        else {
            continue;
        };
        if !state.contains('/') {
            for (k, v) in a {
                vars.insert(k.clone(), (v.clone(), state.clone()));
            }
        }
    }
    vars.into_iter().map(|(k, (v, s))| (k, v, s)).collect()
}

pub fn inspection(file: &Path, info: &runbook_host::Inspection) {
    println!(
        "{}  ({} bytes, sha256 {})",
        file.display(),
        info.size,
        info.sha256
    );
    println!("imports:");
    for i in &info.imports {
        let note = match runbook_host::service_of_import(&i.name) {
            Some(s) => format!("  (capability: needs a '{s}:...' grant)"),
            None if i.name.starts_with("wasi:") => {
                "  (WASI: no files, sockets, env or args are granted)".into()
            }
            None => String::new(),
        };
        println!("  {} [{}]{note}", i.name, i.kind);
        for f in &i.functions {
            println!("    {f}");
        }
    }
    println!("exports:");
    for e in &info.exports {
        println!("  {} [{}]", e.name, e.kind);
        for f in &e.functions {
            println!("    {f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_journal::ExecutionRow;

    #[test]
    fn show_prints_the_top_level_variables_from_history() {
        let text = "StartAt: Init\nStates:\n  Init: {Type: Pass, Assign: {count: 1, note: hi}, Next: Again}\n  Again: {Type: Pass, Assign: {count.$: 'States.MathAdd($count, 1)'}, Next: M}\n  M:\n    Type: Map\n    ItemsPath: $.xs\n    ItemProcessor:\n      StartAt: I\n      States:\n        I: {Type: Pass, Assign: {inner: 1}, End: true}\n    End: true\n";
        let rb = runbook_engine::parse_runbook("v.yaml", text).unwrap();
        let r = runbook_engine::sim::run(rb.machine.clone(), json!({"xs": [1]}), &mut |_| {
            unreachable!("no tasks")
        });
        let j = Journal::open_in_memory().unwrap();
        j.create_execution(&ExecutionRow {
            id: "e1".into(),
            name: "n".into(),
            runbook_path: "v.yaml".into(),
            runbook_text: text.into(),
            input: json!({}),
            provider: None,
            status: "SUCCEEDED".into(),
            started_ms: 0,
            ended_ms: Some(1),
            output: None,
            error: None,
            cause: None,
            seed: 0,
            redrive_count: 0,
            runner_pid: None,
            parent_id: None,
            environment: None,
        })
        .unwrap();
        // As the executor journals history: the event's JSON, keyed by its path.
        let rows: Vec<_> = r
            .history
            .iter()
            .map(|h| {
                let d = serde_json::to_value(h).unwrap();
                let state = d.get("path").and_then(Value::as_str).map(String::from);
                (1, h.type_name(), state, d)
            })
            .collect();
        j.append_history("e1", &rows).unwrap();
        let out = execution_text(&j, "e1").unwrap();
        assert!(
            out.contains("\nvariables\n  $count                    2  (set by Again)\n  $note                     \"hi\"  (set by Init)\n\nhistory"),
            "{out}"
        );
        assert!(
            !out.contains("$inner"),
            "a Map iteration's variables end with it: {out}"
        );
    }
}
