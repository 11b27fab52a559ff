//! Persisted state: one JSON file per region plus one global file (route53, peerings,
//! endpoint ports, the cross-region link). Written atomically (temp file + rename) after
//! every mutation, so a killed daemon comes back with everything.

use std::collections::BTreeMap;
use std::path::Path;

use runbook_caps::types::{cloudwatch, common::Tag, ec2, rds, route53, sns};
use serde::{Deserialize, Serialize};

use crate::error::{LocalError, Result};
use crate::layout::Layout;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub regions: BTreeMap<String, RegionState>,
    pub global: GlobalState,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionState {
    /// The per-account part of RDS endpoint names (`xxxx` in `id.xxxx.region.rds.amazonaws.com`).
    pub endpoint_suffix: String,
    pub instances: BTreeMap<String, InstanceRec>,
    pub snapshots: BTreeMap<String, SnapshotRec>,
    pub subnet_groups: BTreeMap<String, rds::DbSubnetGroup>,
    pub parameter_groups: BTreeMap<String, ParamGroupRec>,
    pub vpcs: BTreeMap<String, ec2::Vpc>,
    pub subnets: BTreeMap<String, ec2::Subnet>,
    pub security_groups: BTreeMap<String, ec2::SecurityGroup>,
    pub route_tables: BTreeMap<String, ec2::RouteTable>,
    pub vpc_endpoints: BTreeMap<String, ec2::VpcEndpoint>,
    pub secrets: BTreeMap<String, SecretRec>,
    pub alarms: BTreeMap<String, AlarmRec>,
    pub dashboards: BTreeMap<String, cloudwatch::Dashboard>,
    pub topics: BTreeMap<String, TopicRec>,
}

/// One PostgreSQL cluster backing an instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// Directory name under `clusters/`; also the server's `cluster_name` and its
    /// `application_name` when streaming.
    pub name: String,
    pub az: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceRec {
    pub db: rds::DbInstance,
    /// `nodes[0]` serves the instance (writer, or the replica head); `nodes[1]` is the
    /// Multi-AZ synchronous standby.
    pub nodes: Vec<Node>,
    pub secret_name: String,
    pub secret_region: String,
    /// Source instance (region, identifier) of a read replica.
    pub source: Option<(String, String)>,
    /// Local port of the cross-region link this replica streams through.
    pub link_port: Option<u16>,
    pub db_name: Option<String>,
    /// Whether the servers should be running (false after stop-db-instance).
    pub running: bool,
    /// Why the last background operation failed, for describe's sake and the log.
    #[serde(default)]
    pub status_reason: Option<String>,
    /// Snapshot an instance is being restored from (to redo an interrupted restore).
    #[serde(default)]
    pub restored_from: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRec {
    pub snap: rds::DbSnapshot,
    pub master_username: String,
    pub secret_name: String,
    pub secret_region: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParamGroupRec {
    pub group: rds::DbParameterGroup,
    pub params: BTreeMap<String, rds::Parameter>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretRec {
    pub secret: runbook_caps::types::secretsmanager::Secret,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlarmRec {
    pub alarm: cloudwatch::MetricAlarm,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicRec {
    pub name: String,
    pub tags: Vec<Tag>,
    pub subscriptions: Vec<sns::Subscription>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneRec {
    pub zone: route53::HostedZone,
    pub caller_reference: String,
    pub records: Vec<route53::RecordSet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkSettings {
    /// One-way latency added to cross-region traffic.
    pub latency_ms: u64,
    /// Cut: no cross-region connection is accepted and existing ones are closed.
    pub partitioned: bool,
    /// Throughput cap of each cross-region connection (`slow-link`); None = unlimited.
    pub bandwidth_kbps: Option<u64>,
}

impl Default for LinkSettings {
    fn default() -> Self {
        // Like us-east-1 <-> eu-west-1 (about 70 ms round trip).
        LinkSettings {
            latency_ms: 35,
            partitioned: false,
            bandwidth_kbps: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GlobalState {
    pub zones: BTreeMap<String, ZoneRec>,
    pub health_checks: BTreeMap<String, route53::HealthCheck>,
    pub peerings: BTreeMap<String, ec2::VpcPeeringConnection>,
    /// Routing endpoint port per record name (no trailing dot). Never released, so a name
    /// keeps its port across deletes and daemon restarts.
    pub endpoint_ports: BTreeMap<String, u16>,
    pub link: LinkSettings,
    /// Seconds between metric samples of the servers.
    pub sample_interval_ms: Option<u64>,
    /// Faults injected through `fault:InjectFault` and not undone yet, by provider id.
    pub faults: BTreeMap<String, FaultRec>,
    /// Regions lost to a `region-loss` fault: their control plane answers
    /// `ServiceUnavailable` and their servers stay down until the fault is undone.
    pub lost_regions: BTreeMap<String, String>,
    /// Instances (`region/id`) the runner's own probes cannot reach (`probe-partition`).
    pub probe_blocked: BTreeMap<String, String>,
}

/// An active fault: what undo needs, also when it runs in another process or after a
/// daemon restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRec {
    pub kind: String,
    pub target: String,
    pub region: String,
    pub injected_at: String,
    pub details: serde_json::Value,
}

impl State {
    pub fn load(layout: &Layout) -> Result<State> {
        let mut st = State {
            global: read_json(&layout.global_file())?.unwrap_or_default(),
            ..Default::default()
        };
        if let Ok(rd) = std::fs::read_dir(layout.regions_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(r) = read_json::<RegionState>(&layout.region_state(&name))? {
                    st.regions.insert(name, r);
                }
            }
        }
        Ok(st)
    }

    pub fn save(&self, layout: &Layout) -> Result<()> {
        write_json(&layout.global_file(), &self.global)?;
        for (name, r) in &self.regions {
            let dir = layout.region_dir(name);
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(LocalError::io("create", &dir))?;
                crate::layout::chmod(&dir, 0o711)?;
            }
            write_json(&layout.region_state(name), r)?;
        }
        Ok(())
    }

    pub fn region_mut(&mut self, region: &str) -> &mut RegionState {
        self.regions
            .entry(region.to_string())
            .or_insert_with(|| RegionState {
                endpoint_suffix: crate::ids::rand_lower(12),
                ..Default::default()
            })
    }

    pub fn region(&self, region: &str) -> Option<&RegionState> {
        self.regions.get(region)
    }

    pub fn instance(&self, region: &str, id: &str) -> Option<&InstanceRec> {
        self.regions.get(region).and_then(|r| r.instances.get(id))
    }

    pub fn instance_mut(&mut self, region: &str, id: &str) -> Option<&mut InstanceRec> {
        self.regions
            .get_mut(region)
            .and_then(|r| r.instances.get_mut(id))
    }

    /// Find an instance by identifier, ARN or endpoint address, in `region` or anywhere.
    pub fn find_instance(&self, key: &str, region: Option<&str>) -> Option<(String, String)> {
        let key = key.trim_end_matches('.');
        let host = key.split(':').next().unwrap_or(key);
        for (rname, r) in &self.regions {
            if region.is_some_and(|want| want != rname) && !key.starts_with("arn:") {
                continue;
            }
            for (id, inst) in &r.instances {
                if id == key
                    || inst.db.arn == key
                    || inst.db.endpoint_address.as_deref() == Some(host)
                {
                    return Some((rname.clone(), id.clone()));
                }
            }
        }
        None
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| LocalError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LocalError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).expect("state serializes");
    std::fs::write(&tmp, bytes).map_err(LocalError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(LocalError::io("rename", path))
}
