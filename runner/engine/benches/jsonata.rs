//! Cost of one JSONata evaluation as a state pays it (`runbook_engine::jsonata::evaluate`:
//! the expression parsed once and then taken from the per-thread cache, `$states` bound,
//! evaluated, converted back to JSON), and of a first use (parsed), against the same simple
//! path through the engine's JSONPath (`$.a.b` on a path parsed once, as the parser does at
//! validation). Run: `cargo bench -p runbook-engine --bench jsonata`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use runbook_engine::jsonata::{Env, evaluate};
use runbook_engine::path::Path;
use runbook_engine::rng::Rng;
use serde_json::{Value, json};
use std::hint::black_box;

/// `$states` as a state sees it: its input and a context object.
fn states(input: Value) -> Value {
    json!({
        "input": input,
        "context": {
            "Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:runbook:sim-1", "Name": "sim-1", "StartTime": "2024-01-01T00:00:00Z"},
            "State": {"Name": "S", "EnteredTime": "2024-01-01T00:00:00Z", "RetryCount": 0},
            "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:runbook", "Name": "runbook"},
        },
    })
}

fn eval(body: &str, states: &Value, rng: &mut Rng) -> Option<Value> {
    let mut env = Env {
        rng,
        now_millis: 1_704_067_200_000,
    };
    evaluate(body, &[("states", states)], &mut env).unwrap()
}

fn benches(c: &mut Criterion) {
    let small = json!({"a": {"b": 42}, "region": "eu-west-1", "cluster": "orders", "replicas": 2});
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"id": i, "price": i as f64 * 1.5, "active": i % 3 != 0}))
        .collect();
    let list = json!({"a": {"b": 42}, "items": items});
    let small_states = states(small.clone());
    let list_states = states(list.clone());
    let mut rng = Rng::new(42);

    let path = "{% $states.input.a.b %}";
    let path_body = runbook_engine::jsonata::expression(path).unwrap();
    assert_eq!(eval(path_body, &small_states, &mut rng), Some(json!(42)));
    let object = " {'target': $states.input.region & '/' & $states.input.cluster, 'replicas': $states.input.replicas + 1, 'promote': $states.input.a.b > 10} ";
    assert_eq!(
        eval(object, &small_states, &mut rng),
        Some(json!({"target": "eu-west-1/orders", "replicas": 3, "promote": true}))
    );
    let filter_sum = " $sum($states.input.items[active and price > 30].price) ";
    let want: f64 = (0..100)
        .filter(|i| i % 3 != 0 && *i as f64 * 1.5 > 30.0)
        .map(|i| i as f64 * 1.5)
        .sum();
    assert_eq!(
        eval(filter_sum, &list_states, &mut rng).and_then(|v| v.as_f64()),
        Some(want)
    );
    let jsonpath = Path::parse("$.a.b").unwrap();
    assert_eq!(jsonpath.select(&small), Some(json!(42)));

    let mut g = c.benchmark_group("expression");
    g.bench_function("jsonata_simple_path", |b| {
        b.iter(|| black_box(eval(black_box(path_body), &small_states, &mut rng)))
    });
    g.bench_function("jsonata_object_constructor", |b| {
        b.iter(|| black_box(eval(black_box(object), &small_states, &mut rng)))
    });
    g.bench_function("jsonata_filter_sum_100_items", |b| {
        b.iter(|| black_box(eval(black_box(filter_sum), &list_states, &mut rng)))
    });
    // The same simple path over the 100-item input: `$states` is bound anew per evaluation,
    // so the input's size is part of every expression's cost.
    g.bench_function("jsonata_simple_path_100_item_input", |b| {
        b.iter(|| black_box(eval(black_box(path_body), &list_states, &mut rng)))
    });
    // A body not seen before on each iteration (a different comment): parsed, as on the first
    // evaluation of each expression.
    let mut n = 0u64;
    g.bench_function("jsonata_simple_path_first_use", |b| {
        b.iter_batched(
            || {
                n += 1;
                format!("$states.input.a.b /* {n} */")
            },
            |body| black_box(eval(&body, &small_states, &mut rng)),
            BatchSize::SmallInput,
        )
    });
    // The floor: a literal with no bindings, so only the crate's own set-up per evaluation.
    g.bench_function("jsonata_literal_no_bindings", |b| {
        b.iter(|| {
            let mut env = Env {
                rng: &mut rng,
                now_millis: 0,
            };
            black_box(evaluate(black_box("1"), &[], &mut env).unwrap())
        })
    });
    g.bench_function("jsonpath_simple_path", |b| {
        b.iter(|| black_box(jsonpath.select(black_box(&small))))
    });
    g.bench_function("jsonpath_parse_and_select", |b| {
        b.iter(|| black_box(Path::parse(black_box("$.a.b")).unwrap().select(&small)))
    });
    g.finish();
}

criterion_group!(jsonata, benches);
criterion_main!(jsonata);
