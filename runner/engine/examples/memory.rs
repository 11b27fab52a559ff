//! Memory held by 1,000 concurrent executions of a small runbook, each parked in a Wait
//! state (the executor's steady state while runbooks wait on timers).
//! Run: `cargo run --release -p runbook-engine --example memory`

use runbook_engine::{Execution, ExecutionContext, Timestamp, parse_runbook};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts live heap bytes.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RUNBOOK: &str = r#"
StartAt: Check
States:
  Check:
    Type: Pass
    Parameters:
      target.$: $.target
      attempt: 1
    Next: Settle
  Settle: {Type: Wait, Seconds: 300, Next: Probe}
  Probe: {Type: Task, Resource: plugin:probe, TimeoutSeconds: 30, End: true}
"#;

fn main() {
    const N: usize = 1000;
    let rb = parse_runbook("small.yaml", RUNBOOK).expect("valid");
    let t0 = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    let mut execs = Vec::with_capacity(N);
    for i in 0..N {
        let ctx = ExecutionContext::new(format!("exec-{i}"), format!("exec-{i}"), t0);
        let mut e = Execution::new(
            rb.machine.clone(),
            json!({"target": "primary-postgres-dev"}),
            ctx,
            i as u64,
        );
        let actions = e.start(t0);
        drop(actions);
        execs.push(e);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let per = (after - before) as f64 / N as f64;
    println!(
        "{N} executions parked in Wait: {} bytes total, {:.0} bytes per execution",
        after - before,
        per
    );
    assert!(execs.iter().all(|e| e.outstanding().len() == 1));
}
