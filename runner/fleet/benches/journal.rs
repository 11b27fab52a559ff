//! Append latency of one 512-byte engine event: the etcd journal (3 members on
//! loopback, every append a fenced create) against the SQLite journal (a real file in
//! WAL mode, as `runbook` uses it). Both through `JournalBackend::append_event`.
//!
//! `nice cargo bench -p runbook-fleet --bench journal` (needs etcd: scripts/setup.sh).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use runbook_fleet::{EtcdJournal, EtcdJournalConfig, Timing};
use runbook_journal::{ExecutionRow, Journal, JournalBackend};
use runbook_test_support::etcd::Cluster;
use serde_json::json;

fn exec(id: &str) -> ExecutionRow {
    ExecutionRow {
        id: id.into(),
        name: "bench".into(),
        runbook_path: "bench.yaml".into(),
        runbook_text: "StartAt: A".into(),
        input: json!({}),
        provider: None,
        status: "RUNNING".into(),
        started_ms: 1,
        ended_ms: None,
        output: None,
        error: None,
        cause: None,
        seed: 1,
        redrive_count: 0,
        runner_pid: Some(std::process::id()),
        parent_id: None,
        environment: None,
    }
}

/// A 512-byte event as the executor writes them (a task result).
fn event() -> serde_json::Value {
    // 52 bytes of JSON around the output: 512 in all.
    let v = json!({"type": "TaskSucceeded", "task_id": "t-1", "output": "x".repeat(460)});
    assert_eq!(v.to_string().len(), 512);
    v
}

fn bench(c: &mut Criterion) {
    let ev = event();
    let mut g = c.benchmark_group("append_event_512B");
    g.measurement_time(Duration::from_secs(10));

    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Journal::open(&dir.path().join("journal.db")).expect("sqlite journal");
    let fs = JournalBackend::create_execution(&sqlite, &exec("bench")).expect("create");
    g.bench_function("sqlite", |b| {
        b.iter(|| JournalBackend::append_event(&sqlite, "bench", &fs, 1, &ev).expect("append"))
    });

    let cluster = Cluster::start(3).expect("etcd cluster (scripts/setup.sh)");
    let mut cfg = EtcdJournalConfig::new(&cluster.endpoints(), "bench-runner");
    cfg.timing = Timing::new(
        Duration::from_secs(10),
        Duration::from_secs(2),
        Duration::from_secs(3),
    )
    .expect("rule");
    let etcd = EtcdJournal::connect(cfg).expect("etcd journal");
    let fe = etcd.create_execution(&exec("bench")).expect("create");
    g.bench_function("etcd_3_members", |b| {
        b.iter(|| etcd.append_event("bench", &fe, 1, &ev).expect("append"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
