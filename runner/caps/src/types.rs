//! Typed mirrors of the WIT records, for providers. Field names are the snake_case of
//! the WIT names, so the JSON a provider returns deserializes into the host's
//! wasmtime-generated types; a host test round-trips every record to keep them in step.
//!
//! Conventions (the same as [`crate::CapCall::args`]): `option<T>` is `Option<T>` (JSON
//! null or the value), enums are their UpperCamelCase case names, no serde renames.

/// `types` interface: records shared by every capability interface.
pub mod common {
    use serde::{Deserialize, Serialize};

    pub use crate::{CapError, ErrorKind};

    /// WIT `types.tag`.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
    pub struct Tag {
        pub key: String,
        pub value: String,
    }

    /// WIT `types.filter` (`Name=tag:Name,Values=...`).
    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
    pub struct Filter {
        pub name: String,
        pub values: Vec<String>,
    }
}

/// `rds` interface.
pub mod rds {
    use super::common::Tag;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct DbInstance {
        pub identifier: String,
        pub arn: String,
        pub region: String,
        pub status: String,
        pub engine: String,
        pub engine_version: String,
        pub instance_class: String,
        pub allocated_storage: u32,
        pub storage_type: String,
        pub storage_encrypted: bool,
        pub multi_az: bool,
        pub availability_zone: Option<String>,
        pub secondary_availability_zone: Option<String>,
        pub backup_retention_period: u32,
        pub endpoint_address: Option<String>,
        pub endpoint_port: Option<u16>,
        pub master_username: String,
        pub db_subnet_group: Option<String>,
        pub parameter_group: Option<String>,
        pub vpc_security_groups: Vec<String>,
        pub read_replica_source: Option<String>,
        pub read_replica_identifiers: Vec<String>,
        pub deletion_protection: bool,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct CreateDbInstanceRequest {
        pub identifier: String,
        pub engine: String,
        pub engine_version: String,
        pub instance_class: String,
        pub allocated_storage: u32,
        pub storage_type: String,
        pub storage_encrypted: bool,
        pub multi_az: bool,
        pub backup_retention_period: u32,
        pub master_username: String,
        pub master_user_secret: String,
        pub db_name: Option<String>,
        pub port: Option<u16>,
        pub db_subnet_group: Option<String>,
        pub parameter_group: Option<String>,
        pub vpc_security_groups: Vec<String>,
        pub deletion_protection: bool,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct CreateReadReplicaRequest {
        pub identifier: String,
        pub source: String,
        pub source_region: String,
        pub instance_class: String,
        pub storage_type: Option<String>,
        pub storage_encrypted: bool,
        pub multi_az: bool,
        pub db_subnet_group: Option<String>,
        pub parameter_group: Option<String>,
        pub vpc_security_groups: Vec<String>,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct ModifyDbInstanceRequest {
        pub identifier: String,
        pub instance_class: Option<String>,
        pub allocated_storage: Option<u32>,
        pub backup_retention_period: Option<u32>,
        pub multi_az: Option<bool>,
        pub parameter_group: Option<String>,
        pub vpc_security_groups: Option<Vec<String>>,
        pub deletion_protection: Option<bool>,
        pub apply_immediately: bool,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct DeleteDbInstanceRequest {
        pub identifier: String,
        pub skip_final_snapshot: bool,
        pub final_snapshot_identifier: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct DbSnapshot {
        pub identifier: String,
        pub arn: String,
        pub region: String,
        pub instance_identifier: String,
        pub status: String,
        pub engine_version: String,
        pub allocated_storage: u32,
        pub created_at: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct RestoreFromSnapshotRequest {
        pub identifier: String,
        pub snapshot_identifier: String,
        pub instance_class: Option<String>,
        pub multi_az: bool,
        pub db_subnet_group: Option<String>,
        pub parameter_group: Option<String>,
        pub vpc_security_groups: Vec<String>,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct DbSubnetGroup {
        pub name: String,
        pub arn: String,
        pub description: String,
        pub vpc_id: String,
        pub subnet_ids: Vec<String>,
        pub status: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct DbParameterGroup {
        pub name: String,
        pub arn: String,
        pub family: String,
        pub description: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Parameter {
        pub name: String,
        pub value: Option<String>,
        pub apply_method: String,
    }
}

/// `ec2` interface.
pub mod ec2 {
    use super::common::Tag;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Vpc {
        pub vpc_id: String,
        pub region: String,
        pub cidr_block: String,
        pub state: String,
        pub enable_dns_support: bool,
        pub enable_dns_hostnames: bool,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Subnet {
        pub subnet_id: String,
        pub vpc_id: String,
        pub cidr_block: String,
        pub availability_zone: String,
        pub state: String,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct IpPermission {
        pub ip_protocol: String,
        pub from_port: i32,
        pub to_port: i32,
        pub cidr_blocks: Vec<String>,
        pub source_security_groups: Vec<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct SecurityGroup {
        pub group_id: String,
        pub group_name: String,
        pub vpc_id: String,
        pub description: String,
        pub ingress: Vec<IpPermission>,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct VpcPeeringConnection {
        pub id: String,
        pub requester_vpc_id: String,
        pub requester_region: String,
        pub requester_cidr: String,
        pub accepter_vpc_id: String,
        pub accepter_region: String,
        pub accepter_cidr: String,
        pub status: String,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Route {
        pub destination_cidr: String,
        pub target: String,
        pub state: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct RouteTable {
        pub route_table_id: String,
        pub vpc_id: String,
        pub routes: Vec<Route>,
        pub subnet_associations: Vec<String>,
        pub endpoint_ids: Vec<String>,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct VpcEndpoint {
        pub vpc_endpoint_id: String,
        pub vpc_id: String,
        pub service_name: String,
        pub endpoint_type: String,
        pub route_table_ids: Vec<String>,
        pub state: String,
        pub tags: Vec<Tag>,
    }
}

/// `route53` interface.
pub mod route53 {
    use serde::{Deserialize, Serialize};

    /// A name as Route 53 returns it: trimmed, lower-case, with the trailing dot.
    pub fn fqdn(name: &str) -> String {
        let n = name.trim().to_ascii_lowercase();
        if n.ends_with('.') { n } else { format!("{n}.") }
    }

    /// The bare `Z...` zone id; `/hostedzone/Z...` is accepted on input.
    pub fn zone_id(id: &str) -> String {
        id.trim_start_matches("/hostedzone/").to_string()
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct ZoneVpc {
        pub vpc_id: String,
        pub vpc_region: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct HostedZone {
        pub id: String,
        pub name: String,
        pub private_zone: bool,
        pub comment: Option<String>,
        pub vpcs: Vec<ZoneVpc>,
        pub record_count: u32,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct RecordSet {
        pub name: String,
        pub record_type: String,
        pub ttl: Option<u32>,
        pub values: Vec<String>,
        pub set_identifier: Option<String>,
        pub weight: Option<u32>,
        pub failover: Option<String>,
        pub health_check_id: Option<String>,
    }

    /// WIT `route53.change-action`.
    #[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
    pub enum ChangeAction {
        Create,
        Delete,
        Upsert,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    pub struct Change {
        pub action: ChangeAction,
        pub record_set: RecordSet,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct ChangeInfo {
        pub id: String,
        pub status: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct HealthCheckConfig {
        pub check_type: String,
        pub fqdn: Option<String>,
        pub ip_address: Option<String>,
        pub port: Option<u16>,
        pub resource_path: Option<String>,
        pub request_interval: u32,
        pub failure_threshold: u32,
        pub alarm_name: Option<String>,
        pub alarm_region: Option<String>,
        pub insufficient_data_health_status: Option<String>,
        pub db_instance_identifier: Option<String>,
        pub db_instance_region: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct HealthCheck {
        pub id: String,
        pub caller_reference: String,
        pub config: HealthCheckConfig,
        pub name: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct HealthCheckStatus {
        pub id: String,
        pub healthy: bool,
        pub observations: Vec<String>,
    }
}

/// `cloudwatch` interface.
pub mod cloudwatch {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
    pub struct Dimension {
        pub name: String,
        pub value: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct MetricDatum {
        pub metric_name: String,
        pub dimensions: Vec<Dimension>,
        pub value: f64,
        pub unit: Option<String>,
        pub timestamp: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct MetricStatisticsRequest {
        pub namespace: String,
        pub metric_name: String,
        pub dimensions: Vec<Dimension>,
        pub start_time: String,
        pub end_time: String,
        pub period: u32,
        pub statistics: Vec<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Datapoint {
        pub timestamp: String,
        pub average: Option<f64>,
        pub minimum: Option<f64>,
        pub maximum: Option<f64>,
        pub sum: Option<f64>,
        pub sample_count: Option<f64>,
        pub unit: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct MetricAlarmSpec {
        pub alarm_name: String,
        pub alarm_description: Option<String>,
        pub namespace: String,
        pub metric_name: String,
        pub dimensions: Vec<Dimension>,
        pub statistic: String,
        pub period: u32,
        pub evaluation_periods: u32,
        pub datapoints_to_alarm: Option<u32>,
        pub threshold: f64,
        pub comparison_operator: String,
        pub treat_missing_data: Option<String>,
        pub alarm_actions: Vec<String>,
        pub ok_actions: Vec<String>,
        pub insufficient_data_actions: Vec<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct MetricAlarm {
        pub spec: MetricAlarmSpec,
        pub alarm_arn: String,
        pub state_value: String,
        pub state_reason: String,
        pub state_updated: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Dashboard {
        pub name: String,
        pub arn: String,
        pub body: String,
    }
}

/// `sns` interface.
pub mod sns {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Subscription {
        pub subscription_arn: String,
        pub topic_arn: String,
        pub protocol: String,
        pub endpoint: String,
    }
}

/// `secretsmanager` interface.
pub mod secretsmanager {
    use super::common::Tag;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct PasswordSpec {
        pub length: u32,
        pub exclude_punctuation: bool,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct CreateSecretRequest {
        pub name: String,
        pub description: Option<String>,
        pub username: Option<String>,
        pub generate_password: Option<PasswordSpec>,
        pub tags: Vec<Tag>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct ReplicationStatus {
        pub region: String,
        pub status: String,
        pub status_message: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Secret {
        pub arn: String,
        pub name: String,
        pub description: Option<String>,
        pub created_date: Option<String>,
        pub deleted_date: Option<String>,
        #[serde(default)]
        pub primary_region: Option<String>,
        #[serde(default)]
        pub replication_status: Vec<ReplicationStatus>,
    }
}

/// `postgres` interface.
pub mod postgres {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Target {
        pub endpoint: String,
        pub region: Option<String>,
        pub database: String,
        pub secret_id: String,
        pub secret_region: String,
        pub connect_timeout_ms: u32,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct QueryResult {
        pub columns: Vec<String>,
        pub rows: Vec<Vec<Option<String>>>,
        pub rows_affected: u64,
    }
}

/// `fault` interface.
pub mod fault {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct FaultSpec {
        pub kind: String,
        pub target: String,
        pub region: String,
        /// A JSON object, as text.
        pub params: String,
        pub client_token: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Fault {
        pub id: String,
        pub kind: String,
        pub target: String,
        pub region: String,
        /// `active`, `undone`, `failed`.
        pub state: String,
        pub injected_at: String,
        pub undone_at: Option<String>,
        /// A JSON object, as text.
        pub details: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Lever {
        pub engaged: bool,
        pub reason: Option<String>,
        pub since: Option<String>,
    }
}

/// `traffic` interface.
pub mod traffic {
    use super::postgres::Target;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct SessionSpec {
        pub target: Target,
        pub replica: Option<Target>,
        pub writes_per_second: u32,
        pub reads_per_second: u32,
        pub connections: u32,
        pub write_timeout_ms: u32,
        pub max_seconds: u32,
        pub client_token: String,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct SessionSummary {
        pub id: String,
        pub state: String,
        pub started_at: String,
        pub stopped_at: Option<String>,
        pub writes_sent: u64,
        pub acked: u64,
        pub failed: u64,
        pub unknown: u64,
        pub reads_ok: u64,
        pub reads_failed: u64,
        pub last_ack_at: Option<String>,
        pub last_error_at: Option<String>,
        pub last_error: Option<String>,
        pub acked_since_error: u64,
        pub replica_lag_seconds: Option<f64>,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Verification {
        pub checked: u64,
        pub acked_missing: Vec<u64>,
        pub unknown_present: u64,
        pub unknown_absent: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_use_snake_case_fields_and_camel_enums() {
        let change: route53::Change = serde_json::from_value(json!({
            "action": "Upsert",
            "record_set": {"name": "postgres.db-dev.internal", "record_type": "CNAME", "ttl": 60,
                "values": ["a"], "set_identifier": "primary", "weight": 100, "failover": null,
                "health_check_id": null}
        }))
        .unwrap();
        assert_eq!(change.action, route53::ChangeAction::Upsert);
        let v = serde_json::to_value(ec2::IpPermission {
            ip_protocol: "tcp".into(),
            from_port: 5432,
            to_port: 5432,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v["from_port"], 5432);
        assert!(v.get("source_security_groups").is_some());
    }
}
