//! Per-step overhead (instantiate a cached component + call `run` with a small JSON +
//! return; target ≤ 50 µs median) and start with a warm compile cache (new engine +
//! load a plugin from the disk cache; target ≤ 50 ms).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use runbook_caps::{BoxFuture, CapCall, CapError, Grants, Provider};
use runbook_host::{Host, HostConfig, Limits, RunRequest, TracingObserver};
use serde_json::Value;

struct NoProvider;
impl Provider for NoProvider {
    fn name(&self) -> &str {
        "none"
    }
    fn call(&self, call: CapCall) -> BoxFuture<'_, Result<Value, CapError>> {
        Box::pin(async move { Err(CapError::unsupported(&call, "none")) })
    }
}

fn step_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = Host::new(HostConfig::default()).unwrap();
    let echo = host
        .load(
            "echo",
            runbook_plugins_builtin::fixture("echo").unwrap(),
            None,
        )
        .unwrap();
    let provider: Arc<dyn Provider> = Arc::new(NoProvider);
    let observer = Arc::new(TracingObserver);
    let input =
        r#"{"DBInstanceIdentifier":"primary-postgres-dev","Region":"us-east-1","Force":false}"#;
    c.bench_function("step: instantiate cached echo + run + return", |b| {
        b.iter(|| {
            rt.block_on(host.run(
                &echo,
                RunRequest {
                    state: "Echo".into(),
                    input: input.into(),
                    grants: Grants::none(),
                    limits: Limits::default(),
                    provider: provider.clone(),
                    observer: observer.clone(),
                },
            ))
            .unwrap()
        })
    });
}

fn warm_start(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let bytes = runbook_plugins_builtin::fixture("echo").unwrap();
    // Fill the cache once.
    Host::new(cfg.clone())
        .unwrap()
        .load("echo", bytes, None)
        .unwrap();
    let mut group = c.benchmark_group("start");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("new host + load plugin from warm disk cache", |b| {
        b.iter(|| {
            let host = Host::new(cfg.clone()).unwrap();
            let p = host.load("echo", bytes, None).unwrap();
            assert_eq!(p.source, runbook_host::CacheSource::Disk);
            host
        })
    });
    group.finish();
}

criterion_group!(benches, step_overhead, warm_start);
criterion_main!(benches);
