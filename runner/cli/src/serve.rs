//! `runbook serve` and `runbook schedules`: thin wiring of runbook-serve to the CLI's
//! runner, providers and `show` text.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use runbook_executor::Runner;
use runbook_scheduler::jiff::Timestamp;

use crate::show;

/// The local provider's dashboards, rendered with time axes and human units.
struct LocalDashboards {
    state_dir: std::path::PathBuf,
}

impl runbook_serve::Dashboards for LocalDashboards {
    fn list(&self) -> Vec<String> {
        runbook_provider_local::list_dashboards(&self.state_dir).unwrap_or_default()
    }
    fn html(&self, name: &str) -> Option<String> {
        runbook_provider_local::render_dashboard_html(&self.state_dir, name)
            .ok()
            .flatten()
    }
}

/// `runbook serve --check FILE`: exit 0 when the config and every runbook it names
/// are valid, 2 with `file:line:col: message` lines otherwise.
pub fn check(runner: &Runner, file: &Path) -> anyhow::Result<ExitCode> {
    let report = runbook_serve::check(file, runner);
    if !report.errors.is_empty() {
        for e in &report.errors {
            eprintln!("{e}");
        }
        return Ok(ExitCode::from(2));
    }
    let cfg = report.config.expect("no errors means a config");
    println!(
        "{}: ok ({} environment(s), {} schedule(s))",
        file.display(),
        cfg.environments.len(),
        cfg.schedules.len()
    );
    for e in &cfg.environments {
        println!(
            "  environment {:<12} provider {:<5} watcher {:<8} failover {}",
            e.name,
            e.provider,
            e.watcher.mode.name(),
            e.failover_runbook.display()
        );
    }
    for s in &cfg.schedules {
        println!(
            "  schedule    {:<12} {} ({}) -> {}",
            s.schedule.name,
            s.expression_text,
            s.schedule.timezone_name(),
            s.runbook.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Fleet mode (`--journal etcd://`): serve's settings and its workers' command. Workers
/// are `runbook resume ID` with the same global settings (the same `--journal`), each
/// with a runner id of its own (`spawn_worker` adds it).
pub fn fleet_settings(
    cli: &crate::Cli,
) -> anyhow::Result<
    Option<(
        runbook_serve::FleetSettings,
        runbook_executor::WorkerCommand,
    )>,
> {
    let Some(url) = crate::fleet_url(cli)? else {
        return Ok(None);
    };
    let settings = runbook_serve::FleetSettings {
        url: url.to_string(),
        runner_id: crate::fleet::runner_id(cli.runner_id.as_deref()),
        timing: crate::fleet::timing(&cli.fleet_timing)?,
    };
    let state_dir = crate::state_dir(cli);
    let mut args: Vec<std::ffi::OsString> = vec!["--state-dir".into(), state_dir.into()];
    if !cli.plugin_path.is_empty() {
        args.push("--plugin-path".into());
        args.push(std::env::join_paths(&cli.plugin_path)?);
    }
    args.push("--log".into());
    args.push(cli.log.clone().into());
    if let Some(d) = &cli.local_dir {
        args.push("--local-dir".into());
        args.push(d.into());
    }
    args.extend(
        [
            "--journal",
            url,
            "--fleet-timing",
            cli.fleet_timing.as_str(),
        ]
        .map(std::ffi::OsString::from),
    );
    let worker = runbook_executor::WorkerCommand {
        program: std::env::current_exe().context("locating the runbook binary")?,
        args,
    };
    Ok(Some((settings, worker)))
}

pub fn serve(
    runner: Runner,
    state_dir: &Path,
    file: &Path,
    listen: Option<SocketAddr>,
    fleet: Option<(
        runbook_serve::FleetSettings,
        runbook_executor::WorkerCommand,
    )>,
) -> anyhow::Result<ExitCode> {
    let cfg = match runbook_serve::config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (fleet, worker) = match fleet {
        Some((settings, worker)) => (Some(settings), worker),
        None => (
            None,
            runner
                .config()
                .worker
                .clone()
                .context("serve needs a worker command")?,
        ),
    };
    let journal = runner.journal().clone();
    let deps = runbook_serve::Deps {
        runner,
        worker,
        dashboards: Some(Arc::new(LocalDashboards {
            state_dir: state_dir.to_path_buf(),
        })),
        show: Arc::new(move |id: &str| show::execution_text(&journal, id).ok()),
        fleet,
    };
    let rt = crate::rt()?;
    let result = rt.block_on(async move {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        runbook_serve::run(cfg, deps, listen, shutdown).await
    });
    // Workers and loops may still hold the runtime; do not wait for them on exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error[{}]: {e:#}", e.code());
            Ok(ExitCode::from(2))
        }
    }
}

/// `runbook schedules serve.yaml`: the next N fire times of each schedule, in its zone.
pub fn schedules(file: &Path, count: usize, json_out: bool) -> anyhow::Result<ExitCode> {
    let cfg = match runbook_serve::config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let now = Timestamp::now();
    let scheds: Vec<_> = cfg.schedules.iter().map(|s| s.schedule.clone()).collect();
    if json_out {
        let v: Vec<serde_json::Value> = scheds
            .iter()
            .map(|s| {
                let fires: Vec<serde_json::Value> = runbook_scheduler::next_fires(s, now, count)
                    .into_iter()
                    .map(|(slot, at)| {
                        serde_json::json!({
                            "slot": slot.to_string(),
                            "at": at.to_string(),
                            "local": at.to_zoned_datetime(s.timezone.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                        })
                    })
                    .collect();
                serde_json::json!({"name": s.name, "expression": s.expression.to_string(),
                                   "timezone": s.timezone_name(), "fires": fires})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", runbook_scheduler::upcoming_table(&scheds, now, count));
    }
    Ok(ExitCode::SUCCESS)
}

/// `runbook decisions`: serve's journaled decisions, newest first.
pub fn decisions(
    runner: &Runner,
    kind: Option<&str>,
    subject: Option<&str>,
    limit: usize,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let rows = runner.journal().decisions(kind, subject, limit)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24}  {:<10}  {:<16}  {:<12}  WHAT",
        "AT", "KIND", "SUBJECT", "ACTION"
    );
    for d in rows {
        let at = Timestamp::from_millisecond(d.at_ms)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        let what = d
            .body
            .get("summary")
            .and_then(serde_json::Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| d.body.to_string());
        println!(
            "{at:<24}  {:<10}  {:<16}  {:<12}  {what}",
            d.kind, d.subject, d.action
        );
    }
    Ok(ExitCode::SUCCESS)
}
