//! Provider construction for the CLI.

use std::path::PathBuf;
use std::sync::Arc;

use runbook_caps::Provider;
use runbook_provider_aws::{AwsOptions, AwsProvider};
use runbook_provider_local::{DaemonLauncher, LocalConfig, LocalProvider};

pub struct Factory {
    state_dir: PathBuf,
}

impl Factory {
    pub fn new(state_dir: PathBuf) -> Factory {
        Factory { state_dir }
    }
}

/// The local provider; its control-plane daemon is this binary's hidden
/// `local daemon` subcommand, started on demand.
pub fn local(state_dir: &std::path::Path) -> anyhow::Result<LocalProvider> {
    let exe = std::env::current_exe()?;
    Ok(LocalProvider::open(LocalConfig::new(
        state_dir,
        DaemonLauncher::cli(exe, state_dir),
    ))?)
}

/// The aws provider: credentials, region and endpoints come from the standard places
/// (`AWS_PROFILE`, `AWS_REGION`, `~/.aws/config`, `AWS_ENDPOINT_URL[_<SERVICE>]`, ...),
/// read on the first call.
pub fn aws() -> AwsProvider {
    AwsProvider::new(AwsOptions::default())
}

impl runbook_executor::ProviderFactory for Factory {
    fn make(&self, name: &str) -> anyhow::Result<Arc<dyn Provider>> {
        match name {
            "local" => Ok(Arc::new(local(&self.state_dir)?)),
            "aws" => Ok(Arc::new(aws())),
            other => anyhow::bail!("unknown provider '{other}' (expected local or aws)"),
        }
    }
}
