//! Where everything lives under `state_dir/local/`.
//!
//! ```text
//! local/
//!   global.json                 route53, peerings, endpoint ports, link settings
//!   daemon.{sock,pid,log,lock}  the control plane daemon
//!   sns/deliveries.jsonl        every SNS delivery
//!   dashboards/NAME.html        rendered dashboards
//!   regions/us-east-1/
//!     state.json                rds, ec2, secrets metadata, alarms, topics
//!     secrets/NAME.json         secret values, mode 0600
//!     metrics.jsonl             sampled and put metric data
//!     clusters/NODE/            PostgreSQL data directories (owned by `postgres`)
//!     clusters/NODE.log         server logs
//!     snapshots/ID/             base backups
//! ```

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{LocalError, Result};

#[derive(Debug, Clone)]
pub struct Layout {
    pub state_dir: PathBuf,
    pub root: PathBuf,
    /// Parent of the per-region cluster and snapshot dirs: `root/regions` normally, or a
    /// directory the server user can reach when `state_dir` sits in a private home.
    pub pg_base: PathBuf,
}

impl Layout {
    pub fn new(state_dir: &Path) -> Layout {
        let state_dir = absolute(state_dir);
        let root = state_dir.join("local");
        let pg_base = pg_base_for(&state_dir, &root);
        Layout {
            state_dir,
            root,
            pg_base,
        }
    }

    pub fn global_file(&self) -> PathBuf {
        self.root.join("global.json")
    }
    pub fn regions_dir(&self) -> PathBuf {
        self.root.join("regions")
    }
    pub fn region_dir(&self, region: &str) -> PathBuf {
        self.regions_dir().join(region)
    }
    pub fn region_state(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("state.json")
    }
    pub fn secrets_dir(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("secrets")
    }
    pub fn secret_file(&self, region: &str, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.+=@".contains(c) {
                    c
                } else {
                    '%'
                }
            })
            .collect();
        self.secrets_dir(region)
            .join(format!("{safe}-{:016x}.json", crate::ids::fnv1a(name)))
    }
    pub fn metrics_file(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("metrics.jsonl")
    }
    pub fn clusters_dir(&self, region: &str) -> PathBuf {
        self.pg_base.join(region).join("clusters")
    }
    pub fn node_dir(&self, region: &str, node: &str) -> PathBuf {
        self.clusters_dir(region).join(node)
    }
    pub fn node_log(&self, region: &str, node: &str) -> PathBuf {
        self.clusters_dir(region).join(format!("{node}.log"))
    }
    pub fn snapshots_dir(&self, region: &str) -> PathBuf {
        self.pg_base.join(region).join("snapshots")
    }
    pub fn snapshot_dir(&self, region: &str, snapshot: &str) -> PathBuf {
        self.snapshots_dir(region).join(snapshot)
    }
    pub fn sock(&self) -> PathBuf {
        let p = self.root.join("daemon.sock");
        // sun_path holds 108 bytes; deep state dirs get a socket in /tmp named after them.
        if p.as_os_str().len() < 100 {
            p
        } else {
            std::env::temp_dir().join(format!(
                "runbook-local-{:016x}.sock",
                crate::ids::fnv1a(&p.to_string_lossy())
            ))
        }
    }
    pub fn pidfile(&self) -> PathBuf {
        self.root.join("daemon.pid")
    }
    pub fn lockfile(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }
    pub fn deliveries(&self) -> PathBuf {
        self.root.join("sns").join("deliveries.jsonl")
    }
    pub fn dashboard_html(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join("dashboards").join(format!("{safe}.html"))
    }

    /// Create the directory skeleton. Everything the server user must reach is made
    /// traversable (search bit only), never readable.
    pub fn create(&self) -> Result<()> {
        for d in [&self.root, &self.regions_dir()] {
            std::fs::create_dir_all(d).map_err(LocalError::io("create", d))?;
            chmod(d, 0o711)?;
        }
        if is_root() && self.pg_base.starts_with(&self.root) {
            add_search_bit(&self.state_dir)?;
        }
        std::fs::create_dir_all(&self.pg_base).map_err(LocalError::io("create", &self.pg_base))?;
        chmod(&self.pg_base, 0o711)?;
        Ok(())
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn chmod(p: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(LocalError::io("chmod", p))
}

fn add_search_bit(p: &Path) -> Result<()> {
    let meta = std::fs::metadata(p).map_err(LocalError::io("stat", p))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o001 == 0 {
        chmod(p, mode | 0o001)?;
    }
    Ok(())
}

/// Servers run as `postgres` when we are root, so it must be able to traverse to the
/// data dirs. Inside `state_dir` when every ancestor above it is searchable; otherwise
/// (e.g. a state dir under a 0700 `/root`) in a directory outside it, keyed by its path.
fn pg_base_for(state_dir: &Path, root: &Path) -> PathBuf {
    let inside = root.join("regions");
    if !is_root() {
        return inside;
    }
    let searchable = state_dir.ancestors().skip(1).all(|a| {
        std::fs::metadata(a)
            .map(|m| m.permissions().mode() & 0o001 != 0 || m.uid() == 0 && a == Path::new("/"))
            .unwrap_or(true)
    });
    if searchable {
        inside
    } else {
        PathBuf::from("/var/lib/runbook-local").join(format!(
            "{:016x}",
            crate::ids::fnv1a(&state_dir.to_string_lossy())
        ))
    }
}
