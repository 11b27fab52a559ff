//! The `aws` provider: every capability interface of the WIT contract on the AWS SDK
//! for Rust (aws-sdk-rds, -ec2, -route53, -cloudwatch, -sns, -secretsmanager) and, for
//! `postgres.query`, tokio-postgres. `fault` injects game-day faults on RDS and EC2.
//!
//! One shared `aws-config` (standard credential chain and profiles, `AWS_ENDPOINT_URL`
//! and the per-service `AWS_ENDPOINT_URL_<SERVICE>` overrides, adaptive retries) feeds
//! one client per service and region, created on first use. SDK errors become
//! [`runbook_caps::CapError`]s with the AWS error codes the local provider uses, the
//! request id in the message (see [`error`]).

mod cloudwatch;
mod ec2;
pub mod error;
mod fault;
mod postgres;
mod rds;
mod route53;
mod secrets;
mod sns;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig};
use runbook_caps::types::postgres::Target;
use runbook_caps::{BoxFuture, CapCall, CapError, ConnectInfo, Provider};
use serde_json::Value;

pub use error::AwsError;

/// How to reach AWS. Everything left `None` comes from the standard places (the
/// environment, `~/.aws/config` and `~/.aws/credentials`, SSO, IMDS, ...).
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Named profile (`AWS_PROFILE` otherwise).
    pub profile: Option<String>,
    /// Region for calls that do not name one and for the credential chain
    /// (`AWS_REGION` / the profile's `region` otherwise).
    pub region: Option<String>,
    /// Endpoint for every service, e.g. a moto server (`AWS_ENDPOINT_URL` otherwise).
    pub endpoint_url: Option<String>,
    /// Attempts per call including the first (adaptive retry mode; default 5).
    pub max_attempts: Option<u32>,
    /// Fixed access key id and secret instead of the credential chain (emulators such
    /// as moto, tests).
    pub static_credentials: Option<(String, String)>,
}

/// The aws provider. Cheap to clone; clients are shared.
#[derive(Clone)]
pub struct AwsProvider {
    inner: Arc<Inner>,
}

struct Inner {
    options: AwsOptions,
    sdk: tokio::sync::OnceCell<SdkConfig>,
    /// One client per (service, region), created lazily. Values are the SDK's client
    /// types (cheap `Arc` clones), keyed by service name so one map serves them all.
    clients: Mutex<HashMap<ClientKey, Box<dyn Any + Send + Sync>>>,
}

/// (service, region).
type ClientKey = (&'static str, String);

/// Route 53 is global; its API lives in us-east-1 (aws partition).
pub(crate) const ROUTE53_REGION: &str = "us-east-1";

impl AwsProvider {
    /// A provider; nothing is loaded until the first call (so `runbook validate` and
    /// `plan` without calls never touch credentials).
    pub fn new(options: AwsOptions) -> AwsProvider {
        AwsProvider {
            inner: Arc::new(Inner {
                options,
                sdk: tokio::sync::OnceCell::new(),
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The shared SDK configuration, loaded once.
    pub async fn sdk_config(&self) -> &SdkConfig {
        self.inner
            .sdk
            .get_or_init(|| load_sdk_config(&self.inner.options))
            .await
    }

    /// The default region (options, environment or profile), if any.
    pub async fn default_region(&self) -> Option<String> {
        self.sdk_config().await.region().map(|r| r.to_string())
    }

    /// The client of `service` in `region`, created on first use.
    pub(crate) async fn client<C>(
        &self,
        service: &'static str,
        region: &str,
        make: fn(&SdkConfig) -> C,
    ) -> C
    where
        C: Clone + Send + Sync + 'static,
    {
        let key = (service, region.to_string());
        if let Some(c) = self.lookup::<C>(&key) {
            return c;
        }
        let conf = self
            .sdk_config()
            .await
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        let client = make(&conf);
        let mut map = self.inner.clients.lock().expect("clients lock");
        map.entry(key)
            .or_insert_with(|| Box::new(client))
            .downcast_ref::<C>()
            .expect("one client type per service")
            .clone()
    }

    fn lookup<C: Clone + 'static>(&self, key: &ClientKey) -> Option<C> {
        let map = self.inner.clients.lock().expect("clients lock");
        map.get(key).and_then(|c| c.downcast_ref::<C>()).cloned()
    }

    pub(crate) async fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        self.client("rds", region, aws_sdk_rds::Client::new).await
    }
    pub(crate) async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        self.client("ec2", region, aws_sdk_ec2::Client::new).await
    }
    pub(crate) async fn route53(&self) -> aws_sdk_route53::Client {
        self.client("route53", ROUTE53_REGION, aws_sdk_route53::Client::new)
            .await
    }
    pub(crate) async fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        self.client("cloudwatch", region, aws_sdk_cloudwatch::Client::new)
            .await
    }
    pub(crate) async fn sns(&self, region: &str) -> aws_sdk_sns::Client {
        self.client("sns", region, aws_sdk_sns::Client::new).await
    }
    pub(crate) async fn secrets(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        self.client(
            "secretsmanager",
            region,
            aws_sdk_secretsmanager::Client::new,
        )
        .await
    }

    async fn dispatch(&self, call: CapCall) -> Result<Value, CapError> {
        match call.service.as_str() {
            "rds" => Box::pin(rds::handle(self, &call)).await,
            "ec2" => Box::pin(ec2::handle(self, &call)).await,
            "route53" => Box::pin(route53::handle(self, &call)).await,
            "cloudwatch" => Box::pin(cloudwatch::handle(self, &call)).await,
            "sns" => Box::pin(sns::handle(self, &call)).await,
            "secretsmanager" => Box::pin(secrets::handle(self, &call)).await,
            "postgres" => Box::pin(postgres::handle(self, &call)).await,
            "fault" => Box::pin(fault::handle(self, &call)).await,
            _ => Err(CapError::unsupported(&call, "aws")),
        }
    }
}

impl Provider for AwsProvider {
    fn name(&self) -> &str {
        "aws"
    }

    fn check<'a>(&'a self, call: &'a CapCall) -> BoxFuture<'a, Result<(), CapError>> {
        Box::pin(async move {
            match (call.service.as_str(), call.action.as_str()) {
                ("route53", "CreateHealthCheck") => route53::check_config(call),
                _ => Ok(()),
            }
        })
    }

    fn connect_info<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<ConnectInfo, CapError>> {
        Box::pin(async move {
            // Not a capability call; this names it in error messages and request logs.
            let call = CapCall {
                service: "postgres".into(),
                action: "Connect".into(),
                region: target.region.clone(),
                resource: Some(target.endpoint.clone()),
                args: Value::Null,
            };
            Box::pin(postgres::connect_info(self, &call, target)).await
        })
    }

    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        Box::pin(async move {
            let name = call.iam_name();
            let resource = call.resource.clone();
            let out = Box::pin(self.dispatch(call)).await;
            if let Err(e) = &out {
                tracing::info!(call = %name, resource = ?resource, code = %e.code, "failed");
            }
            out
        })
    }
}

/// The one shared configuration: standard chain, explicit overrides, adaptive retries,
/// and our rustls-on-ring HTTPS client (see Cargo.toml for why not the SDK default).
async fn load_sdk_config(o: &AwsOptions) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::adaptive().with_max_attempts(o.max_attempts.unwrap_or(5)));
    if let Some(p) = &o.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &o.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some((id, secret)) = &o.static_credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            id, secret, None, None, "static",
        ));
    }
    if let Some(u) = &o.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    loader.load().await
}

/// Serialize a WIT-shaped record.
pub(crate) fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("record serializes")
}

/// RFC 3339 of an SDK timestamp.
pub(crate) fn rfc3339(t: &aws_smithy_types::DateTime) -> String {
    t.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// Parse RFC 3339 into an SDK timestamp.
pub(crate) fn parse_time(s: &str) -> Result<aws_smithy_types::DateTime, CapError> {
    aws_smithy_types::DateTime::from_str(s, aws_smithy_types::date_time::Format::DateTime)
        .map_err(|e| CapError::invalid_parameter(format!("timestamp {s} is not RFC 3339: {e}")))
}
