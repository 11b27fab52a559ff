//! Engine throughput: state transitions per second for a Choice+Pass counter loop and a
//! 1,000-item inline Map, driven by the simulator (no history recorded).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runbook_engine::parse_runbook;
use runbook_engine::sim::{self, SimOptions};
use serde_json::json;
use std::hint::black_box;

const LOOP: &str = r#"
StartAt: Init
States:
  Init: {Type: Pass, Result: {n: 0}, Next: Loop}
  Loop:
    Type: Choice
    Choices:
      - Variable: $.n
        NumericGreaterThanEquals: 5000
        Next: Done
    Default: Inc
  Inc:
    Type: Pass
    Parameters:
      n.$: States.MathAdd($.n, 1)
    Next: Loop
  Done: {Type: Succeed}
"#;

const MAP: &str = r#"
StartAt: Fan
States:
  Fan:
    Type: Map
    ItemsPath: $.items
    ItemSelector:
      i.$: $$.Map.Item.Index
      v.$: $$.Map.Item.Value
    ItemProcessor:
      StartAt: Each
      States:
        Each:
          Type: Pass
          Parameters:
            doubled.$: States.MathAdd($.v, $.v)
          End: true
    End: true
"#;

fn quiet() -> SimOptions {
    SimOptions {
        record_history: false,
        ..SimOptions::default()
    }
}

fn benches(c: &mut Criterion) {
    let looped = parse_runbook("loop.yaml", LOOP).unwrap();
    let mut g = c.benchmark_group("transitions");
    // 5,000 iterations of Choice + Pass = 10,000 transitions (+2 for Init/Done).
    g.throughput(Throughput::Elements(10_002));
    g.bench_function("choice_pass_loop_10k", |b| {
        b.iter(|| {
            let r = sim::run_with(
                looped.machine.clone(),
                json!({}),
                quiet(),
                &mut |_| unreachable!(),
            );
            black_box(r.output)
        })
    });
    let map = parse_runbook("map.yaml", MAP).unwrap();
    let items: Vec<i64> = (0..1000).collect();
    let input = json!({ "items": items });
    // 1 Map state + 1,000 iterations of one Pass state.
    g.throughput(Throughput::Elements(1_001));
    g.bench_function("map_1000_items_inline_pass", |b| {
        b.iter(|| {
            let r = sim::run_with(
                map.machine.clone(),
                input.clone(),
                quiet(),
                &mut |_| unreachable!(),
            );
            black_box(r.output)
        })
    });
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
