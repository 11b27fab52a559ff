//! The `local` provider: a real two-region PostgreSQL DR environment on one machine.
//!
//! RDS instances are real PostgreSQL 15 clusters (Multi-AZ = a synchronous standby,
//! read replicas stream across a simulated cross-region link), and a control plane
//! daemon serves what outlives one command: routing endpoints for Route 53 names, the
//! link, health checks, metrics, alarms and SNS delivery. [`LocalProvider`] is a thin
//! client of that daemon, which it starts on demand; the CLI runs the daemon itself
//! through [`run_daemon`] (`runbook local daemon --state-dir DIR`).

mod client;
mod cloudwatch;
mod daemon;
mod dashboard;
mod ec2;
mod error;
mod fault;
mod health;
mod ids;
mod layout;
mod metrics;
mod net;
mod pace;
mod pg;
mod proto;
mod query;
mod rds;
mod route53;
mod secrets;
mod secrets_replica;
mod sns;
mod state;

pub use client::{DaemonLauncher, LocalConfig, LocalProvider};
pub use daemon::run_daemon;
pub use dashboard::{list_dashboards, render_dashboard_html};
pub use error::LocalError;
