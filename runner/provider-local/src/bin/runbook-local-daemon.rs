//! The local control plane daemon as a standalone binary (the CLI embeds the same
//! entry point as `runbook local daemon`). Used by this crate's tests and examples.

use std::path::PathBuf;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNBOOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    let mut args = std::env::args().skip(1);
    let mut state_dir: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--state-dir" => state_dir = args.next().map(PathBuf::from),
            other => {
                eprintln!("unknown argument {other}; usage: runbook-local-daemon --state-dir DIR");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let Some(dir) =
        state_dir.or_else(|| std::env::var_os("RUNBOOK_LOCAL_STATE_DIR").map(PathBuf::from))
    else {
        eprintln!("usage: runbook-local-daemon --state-dir DIR");
        return std::process::ExitCode::from(2);
    };
    match runbook_provider_local::run_daemon(&dir).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runbook-local-daemon: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
