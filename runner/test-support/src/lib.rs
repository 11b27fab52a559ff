//! Test harnesses shared across the workspace's tests (dev-dependency only).
//!
//! One place for what every test suite needs: servers a test starts itself on
//! 127.0.0.1 free ports and stops by PID, the `runbook` binary in a scratch state
//! directory, and independent observers (a PostgreSQL client with its own ledger, a
//! real headless Chromium, promtool).

pub mod chromium;
