//! Provider construction for the CLI.

use std::path::PathBuf;
use std::sync::Arc;

use runbook_caps::Provider;

pub struct Factory {
    #[allow(dead_code)]
    state_dir: PathBuf,
}

impl Factory {
    pub fn new(state_dir: PathBuf) -> Factory {
        Factory { state_dir }
    }
}

impl runbook_executor::ProviderFactory for Factory {
    fn make(&self, name: &str) -> anyhow::Result<Arc<dyn Provider>> {
        match name {
            "local" => anyhow::bail!("the local provider is not wired into this build yet"),
            "aws" => anyhow::bail!(
                "the aws provider is not implemented yet (issue: AWS provider on the AWS SDK for Rust)"
            ),
            other => anyhow::bail!("unknown provider '{other}' (expected local or aws)"),
        }
    }
}
