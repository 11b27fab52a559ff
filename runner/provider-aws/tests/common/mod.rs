//! What every provider-level moto test shares: a moto server per test, the provider
//! pointed at it, calls made as the host makes them, and SDK clients for the checks.
#![allow(dead_code)] // each test file uses its own subset

use aws_config::Region;
use runbook_caps::{CapError, Provider};
use runbook_provider_aws::{AwsOptions, AwsProvider};
use runbook_test_support::moto::Moto;
use serde_json::Value;

pub const E: &str = "us-east-1";
pub const W: &str = "eu-west-1";

pub struct Env {
    pub _moto: Moto,
    pub p: AwsProvider,
}

/// On moto as corrected by `moto_fixes.py` (runbook-test-support).
pub fn env() -> Env {
    env_on(Moto::start())
}

pub fn env_on(moto: Moto) -> Env {
    let p = AwsProvider::new(AwsOptions {
        region: Some(E.into()),
        endpoint_url: Some(moto.url()),
        static_credentials: Some(("testing".into(), "testing".into())),
        max_attempts: Some(2),
        ..Default::default()
    });
    Env { _moto: moto, p }
}

impl Env {
    /// A call as the host makes it (`fault` functions take no region parameter).
    pub async fn call(
        &self,
        service: &str,
        action: &str,
        region: Option<&str>,
        args: Value,
    ) -> Result<Value, CapError> {
        self.p
            .call(runbook_test_support::caps::call(
                service, action, region, args,
            ))
            .await
    }

    pub async fn ok(
        &self,
        service: &str,
        action: &str,
        region: Option<&str>,
        args: Value,
    ) -> Value {
        self.call(service, action, region, args)
            .await
            .unwrap_or_else(|e| panic!("{service}:{action}: {e:?}"))
    }

    pub async fn err(
        &self,
        service: &str,
        action: &str,
        region: Option<&str>,
        args: Value,
    ) -> CapError {
        match self.call(service, action, region, args).await {
            Ok(v) => panic!("{service}:{action} succeeded: {v}"),
            Err(e) => e,
        }
    }

    /// SDK configuration for checks: the provider's own (endpoint, HTTP client) in
    /// `region`.
    pub async fn sdk(&self, region: &str) -> aws_config::SdkConfig {
        self.p
            .sdk_config()
            .await
            .to_builder()
            .region(Region::new(region.to_string()))
            .build()
    }
}
