//! `runbook`: the command line. Thin: parsing arguments, printing, exit codes.
//! Exit codes: 0 SUCCEEDED (or command ok), 1 FAILED / TIMED_OUT / ABORTED,
//! 2 invalid runbook, bad usage or internal error.

mod args;
mod fleet;
mod gameday;
mod plugin;
mod progress;
mod providers;
mod serve;
mod show;
mod task;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use args::{Cli, Command, GraphFormat, LocalCommand, PluginCommand, SecretCommand};
use runbook_executor::{Outcome, RunError, Runner, RunnerConfig, WorkerCommand};
use serde_json::{Value, json};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that only print end quietly when the reader goes away (`runbook show ID
    // | head`), as Unix tools do. Commands that drive an execution or serve the local
    // provider keep ignoring SIGPIPE: a closed pipe must not kill them mid-step.
    if !matches!(
        &cli.command,
        Command::Run { .. }
            | Command::Resume { .. }
            | Command::Redrive { .. }
            | Command::TrafficDriver { .. }
            | Command::Serve { .. }
            | Command::Local {
                command: LocalCommand::Daemon
            }
    ) {
        // SAFETY: called before any thread starts; restores the default disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The daemon's stderr is `daemon.log`: it logs its own decisions (failovers, alarm
    // transitions, fencing) at info unless `--log` asks for something else explicitly.
    let daemon = matches!(
        &cli.command,
        Command::Local {
            command: LocalCommand::Daemon
        }
    );
    let filter = if daemon && cli.log == "warn" {
        "info"
    } else {
        cli.log.as_str()
    };
    init_tracing(filter);
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn state_dir(cli: &Cli) -> PathBuf {
    if let Some(d) = &cli.state_dir {
        return d.clone();
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("runbook");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/runbook")
}

/// Where the local provider keeps its environments and runs its daemon.
fn local_dir(cli: &Cli) -> PathBuf {
    cli.local_dir.clone().unwrap_or_else(|| state_dir(cli))
}

/// `--journal etcd://...`: fleet mode.
fn fleet_url(cli: &Cli) -> anyhow::Result<Option<&str>> {
    match cli.journal.as_deref() {
        None | Some("") | Some("sqlite") => Ok(None),
        Some(url) if url.starts_with("etcd://") => Ok(Some(url)),
        Some(other) => anyhow::bail!("--journal {other}: expected sqlite or etcd://host:port,..."),
    }
}

fn runner(cli: &Cli) -> anyhow::Result<Runner> {
    let runner = runner_sqlite(cli)?;
    let Some(url) = fleet_url(cli)? else {
        return Ok(runner);
    };
    let mirror = fleet::mirror(
        url,
        &fleet::runner_id(cli.runner_id.as_deref()),
        fleet::timing(&cli.fleet_timing)?,
    )?;
    Ok(runner.with_fleet(mirror))
}

fn runner_sqlite(cli: &Cli) -> anyhow::Result<Runner> {
    let mut cfg = RunnerConfig::new(state_dir(cli));
    cfg.plugin_path = cli.plugin_path.clone();
    // Child executions and traffic drivers run in processes of their own: this binary,
    // with the same state dir and plugin path.
    let mut args: Vec<std::ffi::OsString> = vec!["--state-dir".into(), state_dir(cli).into()];
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
    let program = std::env::current_exe().context("locating the runbook binary")?;
    // Fleet mode: children run in this process, under this runner's fencing token (a
    // worker process would be another runner without it). Traffic drivers still run in
    // their own process, writing their ledgers to the fleet's store too.
    match fleet_url(cli)? {
        Some(url) => {
            for (flag, value) in [
                ("--journal", url.to_string()),
                ("--fleet-timing", cli.fleet_timing.clone()),
                (
                    "--runner-id",
                    format!("{}-traffic", fleet::runner_id(cli.runner_id.as_deref())),
                ),
            ] {
                args.push(flag.into());
                args.push(value.into());
            }
            cfg.traffic_driver = Some(WorkerCommand { program, args });
        }
        None => cfg.worker = Some(WorkerCommand { program, args }),
    }
    Ok(Runner::open(
        cfg,
        Arc::new(providers::Factory::new(local_dir(cli))),
    )?)
}

/// The execution input from `--input` and `--param`, checked against the runbook's
/// Parameters; `Err(exit code)` after printing why when they do not fit.
fn execution_input(
    prepared: &runbook_executor::Prepared,
    file: &Path,
    input: Option<&str>,
    params: &[String],
) -> anyhow::Result<Result<Value, ExitCode>> {
    let overrides = match input {
        None => Value::Object(Default::default()),
        Some(s) => parse_input(s)?,
    };
    let params: Vec<(String, String)> = params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .context(format!("--param {p}: expected K=V"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(
        match runbook_engine::build_input(&prepared.runbook.meta, overrides, &params) {
            Ok(i) => Ok(i),
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                Err(ExitCode::from(2))
            }
        },
    )
}

fn rt() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Invalid runbooks print their diagnostics and exit 2; other errors bubble up.
fn prepare_or_exit(
    runner: &Runner,
    file: &Path,
) -> anyhow::Result<Result<runbook_executor::Prepared, ExitCode>> {
    match runner.prepare(file) {
        Ok(p) => Ok(Ok(p)),
        Err(RunError::Invalid(msg)) => {
            eprintln!("{msg}");
            Ok(Err(ExitCode::from(2)))
        }
        Err(e) => Err(e.into()),
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run {
            file,
            input,
            params,
            provider,
            json,
        } => {
            let runner = runner(&cli)?;
            let prepared = match prepare_or_exit(&runner, file)? {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let input = match execution_input(&prepared, file, input.as_deref(), params)? {
                Ok(i) => i,
                Err(code) => return Ok(code),
            };
            let progress = progress::for_terminal(*json);
            let outcome = rt()?.block_on(runner.run(
                &prepared,
                input,
                provider.map(|p| p.name()),
                progress,
            ))?;
            gameday::write_after_run(&runner, &state_dir(&cli), &outcome.execution_id);
            Ok(report(&outcome, *json))
        }
        Command::Validate { file } => {
            let runner = runner(&cli)?;
            match prepare_or_exit(&runner, file)? {
                Ok(p) => {
                    let tasks = p.task_plugins().count();
                    println!(
                        "{}: valid ({} states, {tasks} tasks)",
                        file.display(),
                        p.runbook.machine.states.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(code) => Ok(code),
            }
        }
        Command::Plan {
            file,
            provider,
            input,
            params,
            json,
        } => {
            let runner = runner(&cli)?;
            let prepared = match prepare_or_exit(&runner, file)? {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let Some(provider) = provider else {
                show::plan(&prepared, None, *json);
                return Ok(ExitCode::SUCCESS);
            };
            let input = match execution_input(&prepared, file, input.as_deref(), params)? {
                Ok(i) => i,
                Err(code) => return Ok(code),
            };
            let rt = rt()?;
            let report = runner.plan(&prepared, input, Some(provider.name()), rt.handle())?;
            show::live_plan(&prepared, &report, *json)?;
            Ok(if report.status == "SUCCEEDED" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Resume { id, json } => {
            let runner = runner(&cli)?;
            let outcome = rt()?.block_on(runner.resume(id, progress::for_terminal(*json)))?;
            gameday::write_after_run(&runner, &state_dir(&cli), &outcome.execution_id);
            Ok(report(&outcome, *json))
        }
        Command::Redrive { id, json } => {
            let runner = runner(&cli)?;
            let outcome = rt()?.block_on(runner.redrive(id, progress::for_terminal(*json)))?;
            Ok(report(&outcome, *json))
        }
        Command::Executions { limit, json } => {
            let runner = runner(&cli)?;
            match runner.fleet() {
                Some(mirror) => {
                    show::executions(&fleet::scratch_recent(mirror, *limit)?, *limit, *json)?
                }
                None => show::executions(runner.journal(), *limit, *json)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop {
            id,
            error,
            cause,
            json,
        } => {
            let runner = runner(&cli)?;
            let outcome = rt()?.block_on(runner.stop(id, error.clone(), cause.clone()))?;
            let _ = report(&outcome, *json);
            // Stopped (ABORTED) is what was asked; anything else means it ended first.
            Ok(if outcome.status == "ABORTED" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Lever { command } => gameday::lever(&runner(&cli)?, command),
        Command::Report {
            id,
            last,
            runbook,
            format,
            out,
        } => match (id, last) {
            (_, Some(n)) => gameday::trend(&runner(&cli)?, runbook, *n, format),
            (Some(id), None) => {
                let runner = runner(&cli)?;
                match runner.fleet() {
                    Some(mirror) => {
                        let (scratch, full) = fleet::scratch_tree(&runner, mirror, id)?;
                        gameday::report(&scratch, &full, format, out.as_deref())
                    }
                    None => gameday::report(runner.journal(), id, format, out.as_deref()),
                }
            }
            (None, None) => unreachable!("clap requires ID or --last"),
        },
        Command::TrafficDriver { session } => gameday::traffic_driver(&runner(&cli)?, session),
        Command::Task { command } => task::run(runner(&cli)?.journal(), command),
        Command::Show { id, json } => {
            let runner = runner(&cli)?;
            match runner.fleet() {
                Some(mirror) => {
                    let (scratch, full) = fleet::scratch_tree(&runner, mirror, id)?;
                    show::execution(&scratch, &full, *json)?;
                }
                None => show::execution(runner.journal(), id, *json)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { file, format } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rb = match runbook_engine::parse_runbook(&file.display().to_string(), &text) {
                Ok(rb) => rb,
                Err(d) => {
                    for x in d.iter() {
                        eprintln!("{x}");
                    }
                    return Ok(ExitCode::from(2));
                }
            };
            match format {
                GraphFormat::Mermaid => println!("{}", runbook_engine::to_mermaid(&rb.machine)),
                GraphFormat::Dot => println!("{}", runbook_engine::to_dot(&rb.machine)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command: PluginCommand::Inspect { file, json },
        } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let info = runbook_host::inspect_bytes(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                show::inspection(file, &info);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command: PluginCommand::Test(args),
        } => plugin::test(&runner(&cli)?, args),
        Command::Plugin {
            command: PluginCommand::New(args),
        } => plugin::new(args),
        Command::Plugin {
            command: PluginCommand::List,
        } => {
            for (name, bytes, path) in runbook_plugins_builtin::PLUGINS {
                println!("{name:<16} {:>8} bytes  {path}", bytes.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Endpoint { name } => {
            let p = providers::local(&local_dir(&cli))?;
            println!("{}", rt()?.block_on(p.endpoint(name))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Secret {
            command: SecretCommand::Get { name, region },
        } => {
            let p = providers::local(&local_dir(&cli))?;
            println!(
                "{}",
                serde_json::to_string(&p.secret_get(name, region.as_deref())?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Local { command } => local_command(&cli, command),
        Command::Serve {
            config,
            check,
            listen,
        } => match (config, check) {
            (_, Some(file)) => serve::check(&runner(&cli)?, file),
            (Some(file), None) => serve::serve(
                runner(&cli)?,
                &state_dir(&cli),
                file,
                *listen,
                serve::fleet_settings(&cli)?,
            ),
            (None, None) => unreachable!("clap requires --config or --check"),
        },
        Command::Schedules { file, count, json } => serve::schedules(file, *count, *json),
        Command::Decisions {
            kind,
            subject,
            limit,
            json,
        } => serve::decisions(
            &runner(&cli)?,
            kind.as_deref(),
            subject.as_deref(),
            *limit,
            *json,
        ),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&runbook_engine::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn local_command(cli: &Cli, command: &LocalCommand) -> anyhow::Result<ExitCode> {
    let dir = local_dir(cli);
    if let LocalCommand::Daemon = command {
        rt()?.block_on(runbook_provider_local::run_daemon(&dir))?;
        return Ok(ExitCode::SUCCESS);
    }
    let p = providers::local(&dir)?;
    let rt = rt()?;
    let print = |v: Value| println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    match command {
        LocalCommand::Status => print(rt.block_on(p.status())?),
        LocalCommand::Up => print(rt.block_on(p.up())?),
        LocalCommand::Down => rt.block_on(p.down())?,
        LocalCommand::Crash {
            instance,
            region,
            all_nodes,
        } => print(rt.block_on(p.crash(instance, region.as_deref(), *all_nodes))?),
        LocalCommand::Partition => rt.block_on(p.partition())?,
        LocalCommand::Heal => rt.block_on(p.heal())?,
        LocalCommand::Daemon => unreachable!(),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_input(s: &str) -> anyhow::Result<Value> {
    let text = match s.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("--input {s}"))?,
        None => s.to_string(),
    };
    // Any JSON value, as Step Functions' StartExecution accepts; a runbook that declares
    // Parameters still needs an object (build_input says so).
    serde_json::from_str(&text).with_context(|| format!("--input is not JSON: {text}"))
}

fn report(outcome: &Outcome, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            json!({
                "execution_id": outcome.execution_id,
                "status": outcome.status,
                "output": outcome.output,
                "error": outcome.error,
                "cause": outcome.cause,
            })
        );
    } else {
        let mut out = std::io::stdout();
        match &outcome.output {
            Some(o) if outcome.succeeded() => {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(o).unwrap_or_default()
                );
            }
            _ => {}
        }
        // The progress view already printed the status line.
        let mut err = std::io::stderr();
        if let Some(e) = &outcome.error {
            let _ = writeln!(err, "  error: {e}");
        }
        if let Some(c) = &outcome.cause {
            let _ = writeln!(err, "  cause: {c}");
        }
        if !outcome.succeeded() && std::io::stderr().is_terminal() {
            let _ = writeln!(err, "  see: runbook show {}", outcome.execution_id);
        }
    }
    if outcome.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
