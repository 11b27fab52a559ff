//! What plugins do, into the journal; and the provider opened on first use.

use std::sync::Arc;

use runbook_caps::{BoxFuture, CapCall, CapError, ConnectInfo, Provider};
use runbook_host::{CallOutcome, CallRecord, LogLevel, Observer};
use runbook_journal::{CallRow, Journal, now_ms};
use serde_json::Value;

use crate::{Progress, ProviderFactory};

/// Writes what plugins do into the journal.
pub(crate) struct JournalObserver {
    pub(crate) id: String,
    pub(crate) journal: Arc<Journal>,
    pub(crate) progress: Arc<dyn Progress>,
}

impl Observer for JournalObserver {
    fn capability_call(&self, r: &CallRecord) {
        let (outcome, code) = match &r.outcome {
            CallOutcome::Ok => ("ok", None),
            CallOutcome::Error { code, .. } => ("error", Some(code.clone())),
            CallOutcome::Denied => ("denied", None),
            CallOutcome::TimedOut => ("timed_out", None),
        };
        let row = CallRow {
            seq: 0,
            at_ms: now_ms(),
            state: r.state.clone(),
            plugin: r.plugin.clone(),
            service: r.service.clone(),
            action: r.action.clone(),
            region: r.region.clone(),
            resource: r.resource.clone(),
            outcome: outcome.into(),
            error_code: code,
            duration_us: r.duration_us as i64,
            args: Some(r.args.clone()),
            result: r.result.clone(),
        };
        if let Err(e) = self.journal.record_call(&self.id, row.at_ms, &row) {
            tracing::error!("journal: could not record a capability call: {e}");
        }
    }

    fn log(&self, state: &str, plugin: &str, level: LogLevel, message: &str) {
        let lvl = format!("{level:?}").to_lowercase();
        if let Err(e) = self
            .journal
            .record_log(&self.id, now_ms(), state, plugin, &lvl, message)
        {
            tracing::error!("journal: could not record a log line: {e}");
        }
        self.progress.log(state, level, message);
    }
}

/// Opens the real provider on the first capability call.
pub struct LazyProvider {
    name: String,
    factory: Arc<dyn ProviderFactory>,
    inner: tokio::sync::OnceCell<Arc<dyn Provider>>,
}

impl LazyProvider {
    pub fn new(name: String, factory: Arc<dyn ProviderFactory>) -> Arc<LazyProvider> {
        Arc::new(LazyProvider {
            name,
            factory,
            inner: tokio::sync::OnceCell::new(),
        })
    }
}

impl LazyProvider {
    async fn open(&self) -> Result<&Arc<dyn Provider>, CapError> {
        self.inner
            .get_or_try_init(|| async {
                let factory = self.factory.clone();
                let name = self.name.clone();
                tokio::task::spawn_blocking(move || factory.make(&name))
                    .await
                    .map_err(|e| CapError::internal(format!("provider start: {e}")))?
                    .map_err(|e| CapError::unavailable(format!("provider '{}': {e:#}", self.name)))
            })
            .await
    }
}

impl Provider for LazyProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        Box::pin(async move { self.open().await?.call(call).await })
    }
    fn check<'a>(&'a self, call: &'a CapCall) -> BoxFuture<'a, Result<(), CapError>> {
        Box::pin(async move { self.open().await?.check(call).await })
    }
    fn connect_info<'a>(
        &'a self,
        target: &'a runbook_caps::types::postgres::Target,
    ) -> BoxFuture<'a, Result<ConnectInfo, CapError>> {
        Box::pin(async move { self.open().await?.connect_info(target).await })
    }
}
