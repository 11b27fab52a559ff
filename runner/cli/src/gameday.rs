//! Game-day commands: the safety lever, stopping executions, and the hidden entry of
//! the traffic driver process that the executor starts for a `traffic` session.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use runbook_executor::Runner;
use runbook_journal::now_ms;
use serde_json::json;

#[derive(Subcommand)]
pub enum LeverCommand {
    /// Engage the lever: every fault injection is refused (`LeverEngaged`) until released.
    Engage {
        #[arg(long)]
        reason: String,
    },
    /// Release the lever.
    Release {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print the lever's state and the faults still active.
    Status {
        #[arg(long)]
        json: bool,
    },
}

fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("{user} (pid {})", std::process::id())
}

pub fn lever(runner: &Runner, command: &LeverCommand) -> anyhow::Result<ExitCode> {
    let journal = runner.journal();
    match command {
        LeverCommand::Engage { reason } => {
            journal.set_lever(true, Some(reason), &actor(), now_ms())?;
            let active = journal.active_faults()?;
            println!("lever engaged: {reason}");
            if !active.is_empty() {
                // FIS stops experiments when the lever is engaged; our faults are undone by
                // their game day's rollback, so say which ones are still in place.
                println!("{} fault(s) still active:", active.len());
                for f in active {
                    println!("  {} {} (execution {})", f.id, f.kind, f.execution_id);
                }
            }
        }
        LeverCommand::Release { reason } => {
            journal.set_lever(false, reason.as_deref(), &actor(), now_ms())?;
            println!("lever released");
        }
        LeverCommand::Status { json } => {
            let l = journal.lever()?;
            let active = journal.active_faults()?;
            if *json {
                println!(
                    "{}",
                    json!({
                        "engaged": l.engaged,
                        "reason": l.reason,
                        "since_ms": l.since_ms,
                        "actor": l.actor,
                        "active_faults": active.iter().map(|f| json!({
                            "id": f.id, "kind": f.kind, "execution_id": f.execution_id,
                        })).collect::<Vec<_>>(),
                    })
                );
            } else {
                println!(
                    "lever: {}{}",
                    if l.engaged { "ENGAGED" } else { "released" },
                    l.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                );
                for f in active {
                    println!(
                        "active fault: {} {} (execution {})",
                        f.id, f.kind, f.execution_id
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `runbook traffic-driver SESSION` (hidden): runs until the session is stopped.
pub fn traffic_driver(runner: &Runner, session: &str) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(runner.traffic_driver(session))
        .with_context(|| format!("traffic session {session}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `runbook report ID`: the game-day report from the journal, to stdout in one format
/// or as every format into a directory.
pub fn report(
    journal: &runbook_journal::Journal,
    id: &str,
    format: &str,
    out: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let Some(g) = runbook_executor::report::gameday_report(journal, id)? else {
        anyhow::bail!(
            "execution {id} is not a game day (its runbook neither injects faults nor drives a client)"
        );
    };
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for p in runbook_report::render_all(&g, dir)? {
                println!("{}", p.display());
            }
        }
        None => {
            let f: runbook_report::Format = format.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", runbook_report::render(&g, f));
        }
    }
    Ok(match g.verdict() {
        runbook_report::Verdict::Pass => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// After a game day, its report files land in `<state dir>/reports/<id>/`.
pub fn write_after_run(runner: &Runner, state_dir: &std::path::Path, id: &str) {
    match runbook_executor::report::gameday_report(runner.journal(), id) {
        Ok(Some(g)) => {
            let dir = state_dir.join("reports").join(id);
            match std::fs::create_dir_all(&dir).and_then(|_| runbook_report::render_all(&g, &dir)) {
                Ok(_) => eprintln!(
                    "game day {}: RTO {} s, lost writes {} — report: {}",
                    g.verdict(),
                    g.measured
                        .rto_seconds
                        .map(|r| format!("{r:.2}"))
                        .unwrap_or_else(|| "-".into()),
                    g.measured.lost_writes,
                    dir.join("report.html").display()
                ),
                Err(e) => eprintln!("writing the game-day report to {}: {e}", dir.display()),
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("game-day report of {id}: {e:#}"),
    }
}

/// `runbook report --last N [--runbook NAME]`: RTO and lost writes of the last N finished
/// game days, newest first (the morning-after view of nightly game days).
pub fn trend(runner: &Runner, runbook: &str, n: usize, format: &str) -> anyhow::Result<ExitCode> {
    let journal = runner.journal();
    let mut points = Vec::new();
    // Executions are newest first; children and other runbooks are skipped.
    for row in journal.executions(10_000)? {
        if points.len() == n {
            break;
        }
        if row.name != runbook || row.parent_id.is_some() || row.status == "RUNNING" {
            continue;
        }
        if let Some(g) = runbook_executor::report::gameday_report(journal, &row.id)? {
            points.push(runbook_report::TrendPoint::from(&g));
        }
    }
    if format == "html" {
        println!("{}", runbook_report::render_trend_html(&points));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36}  {:<24}  {:<12}  {:>8}  {:>5}",
        "EXECUTION", "STARTED", "VERDICT", "RTO s", "LOST"
    );
    for p in &points {
        println!(
            "{:<36}  {:<24}  {:<12}  {:>8}  {:>5}",
            p.execution_id,
            runbook_engine::Timestamp::from_unix_millis(p.started_ms).to_rfc3339(),
            p.verdict.as_str(),
            p.rto_seconds
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "-".into()),
            p.lost_writes
        );
    }
    Ok(ExitCode::SUCCESS)
}
