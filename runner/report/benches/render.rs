//! Report rendering cost for a 10-minute game day at 50 writes/s (30,000 ledger entries):
//! bucketing the ledger, and rendering the HTML page (charts included) and the JSON.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use runbook_report::{buckets, render_html, render_json};

#[path = "../tests/common/mod.rs"]
mod common;

fn sim() -> common::Sim {
    common::Sim {
        seconds: 600,
        writes_per_s: 50,
        fault_at_s: 240,
        outage_ms: 4_200,
        failback_at_s: 420,
    }
}

fn bench(c: &mut Criterion) {
    let sim = sim();
    let entries = common::ledger(&sim);
    assert_eq!(entries.len(), 30_000);
    let g = common::game_day(&sim);
    c.bench_function("buckets_30k_entries", |b| {
        b.iter(|| buckets(black_box(&entries), 1000))
    });
    c.bench_function("render_html_10min_50wps", |b| {
        b.iter(|| render_html(black_box(&g)))
    });
    c.bench_function("render_json_10min_50wps", |b| {
        b.iter(|| render_json(black_box(&g)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
