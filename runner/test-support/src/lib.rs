//! Test harnesses shared across the workspace's tests (dev-dependency only).
//!
//! One place for what every test suite needs: servers a test starts itself on
//! 127.0.0.1 free ports and stops by PID, the `runbook` binary in a scratch state
//! directory, and independent observers (a PostgreSQL client with its own ledger, a
//! real headless Chromium, promtool). One concern per module; this file only lists them.
//!
//! Porting a test from the old per-crate helpers (old name → new path):
//!
//! | old | new |
//! |---|---|
//! | provider-local `mod common; use common::*;` | `use runbook_test_support::local::*;` (same names: `Env`, `US`, `EU`, `SECRET`, `PRIMARY`, `REPLICA`, `NAME`, `Deployed`, `connect`, `open`, `kill_everything`, `alive`) |
//! | `common::Env::wait_until` / `wait_status` / `wait_gone` | unchanged methods of `local::Env`; free-standing waits: `wait::{poll, until, poll_async, poll_some_async}` |
//! | `env!("CARGO_BIN_EXE_runbook-local-daemon")` | `process::cargo_bin("runbook-local-daemon")` |
//! | provider-aws `mod support { pub mod moto; }`, `support::moto::Moto` | `runbook_test_support::moto::Moto` (`moto_fixes.py` is built in) |
//! | `#[path = "…/support/moto.rs"] mod moto;` (tests/aws.rs) | `runbook_test_support::moto::Moto`; `Moto::cli_env()` for the binary |
//! | tests/*.rs `Env { home }`, `bin()`, `runbook(name)`, `fixture(name)` | `runbook::{RunbookHome, bin, runbook, fixture}` (`run`, `text`, `json`, `run_book`, `show`, `daemon_pid`) |
//! | `stdout_json`, `stderr`, `tail` | `runbook::{stdout_json, stderr, tail}` |
//! | tests/dr.rs `Writer`, `missing`, `client` | `client::{Writer, missing, client}` (+ `Ledger`, `Writer::outage_between`) |
//! | `free_port`, `alive`, `read_pid`, `wait_dead`, `signal` | `process::*`; spawn with a kill-by-PID guard: `process::spawn` |
//! | (new) a temp PostgreSQL cluster | `pg::TempCluster::start()` |

pub mod caps;
pub mod chromium;
pub mod client;
pub mod etcd;
pub mod fleet;
pub mod http;
pub mod local;
pub mod moto;
pub mod pg;
pub mod process;
pub mod promtool;
pub mod runbook;
pub mod serve;
pub mod wait;
