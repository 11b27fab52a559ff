//! Measures N concurrent executions of a small runbook (a sandboxed Task, a 1 s Wait, a
//! Pass) in one process: wall time, executions per second, and peak resident memory.
//!
//!     cargo run --release -p runbook-executor --example concurrent -- 1000
//!
//! Prints figures; asserts nothing about time.

use std::sync::Arc;
use std::time::Instant;

use runbook_executor::{ProviderFactory, Quiet, Runner, RunnerConfig};
use serde_json::json;

struct NoProviders;
impl ProviderFactory for NoProviders {
    fn make(&self, name: &str) -> anyhow::Result<Arc<dyn runbook_caps::Provider>> {
        anyhow::bail!("this measurement uses no provider (asked for {name})")
    }
}

const RUNBOOK: &str = r#"
StartAt: Echo
States:
  Echo:
    Type: Task
    Resource: plugin:echo
    Parameters: { "n.$": "$.n" }
    Next: Nap
  Nap:
    Type: Wait
    Seconds: 1
    Next: Done
  Done:
    Type: Pass
    End: true
"#;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    // `echo` is a test fixture (not embedded in the runner): its build-tree directory
    // goes on the plugin path.
    let mut cfg = RunnerConfig::new(dir.path());
    cfg.plugin_path = vec![runbook_plugins_builtin::FIXTURE_DIR.into()];
    let runner = Arc::new(Runner::open(cfg, Arc::new(NoProviders))?);
    let path = dir.path().join("small.yaml");
    std::fs::write(&path, RUNBOOK)?;
    let prepared = Arc::new(runner.prepare(&path)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let before = rss_kib("VmRSS:");
    let start = Instant::now();
    let outcomes = rt.block_on(async {
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let (runner, prepared) = (runner.clone(), prepared.clone());
            handles.push(tokio::spawn(async move {
                runner
                    .run(&prepared, json!({"n": i}), None, Arc::new(Quiet))
                    .await
            }));
        }
        let mut ok = 0;
        for h in handles {
            if h.await?.map(|o| o.succeeded()).unwrap_or(false) {
                ok += 1;
            }
        }
        anyhow::Ok(ok)
    })?;
    let elapsed = start.elapsed();
    let peak = rss_kib("VmHWM:");
    println!("executions        {n}");
    println!("succeeded         {outcomes}");
    println!(
        "wall time         {:.2} s (each execution waits 1 s)",
        elapsed.as_secs_f64()
    );
    println!(
        "throughput        {:.0} executions/s",
        n as f64 / elapsed.as_secs_f64()
    );
    println!("RSS before        {} MiB", before / 1024);
    println!("peak RSS          {} MiB", peak / 1024);
    println!(
        "per execution     {:.1} KiB (peak minus before, / n)",
        (peak.saturating_sub(before)) as f64 / n as f64
    );
    Ok(())
}
