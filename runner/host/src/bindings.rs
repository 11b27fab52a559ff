//! Capability interfaces on the host side: wasmtime-generated bindings for the
//! `runbook:plugin/step` world, and one implementation of every capability function
//! that funnels into [`crate::StepState::cap`] — the single grant check, audit record
//! and provider call.

use crate::StepState;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "runbook:plugin/step",
    imports: {
        "runbook:plugin/log": trappable,
        default: async | trappable,
    },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

pub use runbook::plugin::types::CapError;

/// Implements a capability interface's `Host` trait: every function serializes its
/// arguments (WIT parameter names as keys) and goes through `StepState::cap`.
macro_rules! cap_fns {
    ($svc:literal, $module:ident; $( fn $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty ; )* ) => {
        mod $module {
            #[allow(unused_imports)]
            use super::runbook::plugin::$module::*;
            use super::CapError;
            use crate::StepState;

            impl Host for StepState {
                $(
                    async fn $name(&mut self, $( $arg: $ty ),* ) -> wasmtime::Result<Result<$ret, CapError>> {
                        let args = serde_json::json!({ $( stringify!($arg): $arg ),* });
                        self.cap($svc, stringify!($name), args).await
                    }
                )*
            }
        }
    };
}

impl runbook::plugin::types::Host for StepState {}

impl runbook::plugin::log::Host for StepState {
    fn log(&mut self, level: runbook::plugin::log::Level, message: String) -> wasmtime::Result<()> {
        use runbook::plugin::log::Level;
        let level = match level {
            Level::Trace => crate::LogLevel::Trace,
            Level::Debug => crate::LogLevel::Debug,
            Level::Info => crate::LogLevel::Info,
            Level::Warn => crate::LogLevel::Warn,
            Level::Error => crate::LogLevel::Error,
        };
        self.log_line(level, &message);
        Ok(())
    }
}

cap_fns! { "rds", rds;
    fn create_db_instance(region: String, request: CreateDbInstanceRequest) -> DbInstance;
    fn create_db_instance_read_replica(region: String, request: CreateReadReplicaRequest) -> DbInstance;
    fn describe_db_instances(region: String, identifier: Option<String>) -> Vec<DbInstance>;
    fn modify_db_instance(region: String, request: ModifyDbInstanceRequest) -> DbInstance;
    fn delete_db_instance(region: String, request: DeleteDbInstanceRequest) -> DbInstance;
    fn reboot_db_instance(region: String, identifier: String, force_failover: bool) -> DbInstance;
    fn stop_db_instance(region: String, identifier: String) -> DbInstance;
    fn start_db_instance(region: String, identifier: String) -> DbInstance;
    fn promote_read_replica(region: String, identifier: String, backup_retention_period: Option<u32>) -> DbInstance;
    fn create_db_snapshot(region: String, snapshot_identifier: String, instance_identifier: String, tags: Vec<Tag>) -> DbSnapshot;
    fn describe_db_snapshots(region: String, snapshot_identifier: Option<String>, instance_identifier: Option<String>) -> Vec<DbSnapshot>;
    fn delete_db_snapshot(region: String, snapshot_identifier: String) -> DbSnapshot;
    fn restore_db_instance_from_db_snapshot(region: String, request: RestoreFromSnapshotRequest) -> DbInstance;
    fn create_db_subnet_group(region: String, name: String, description: String, subnet_ids: Vec<String>, tags: Vec<Tag>) -> DbSubnetGroup;
    fn describe_db_subnet_groups(region: String, name: Option<String>) -> Vec<DbSubnetGroup>;
    fn delete_db_subnet_group(region: String, name: String) -> ();
    fn create_db_parameter_group(region: String, name: String, family: String, description: String, tags: Vec<Tag>) -> DbParameterGroup;
    fn describe_db_parameter_groups(region: String, name: Option<String>) -> Vec<DbParameterGroup>;
    fn modify_db_parameter_group(region: String, name: String, parameters: Vec<Parameter>) -> ();
    fn describe_db_parameters(region: String, name: String) -> Vec<Parameter>;
    fn delete_db_parameter_group(region: String, name: String) -> ();
}
cap_fns! { "ec2", ec2;
    fn describe_availability_zones(region: String) -> Vec<String>;
    fn create_vpc(region: String, cidr_block: String, tags: Vec<Tag>) -> Vpc;
    fn describe_vpcs(region: String, vpc_ids: Vec<String>, filters: Vec<Filter>) -> Vec<Vpc>;
    fn modify_vpc_attribute(region: String, vpc_id: String, enable_dns_support: Option<bool>, enable_dns_hostnames: Option<bool>) -> ();
    fn delete_vpc(region: String, vpc_id: String) -> ();
    fn create_subnet(region: String, vpc_id: String, cidr_block: String, availability_zone: String, tags: Vec<Tag>) -> Subnet;
    fn describe_subnets(region: String, subnet_ids: Vec<String>, filters: Vec<Filter>) -> Vec<Subnet>;
    fn delete_subnet(region: String, subnet_id: String) -> ();
    fn create_security_group(region: String, group_name: String, description: String, vpc_id: String, tags: Vec<Tag>) -> SecurityGroup;
    fn describe_security_groups(region: String, group_ids: Vec<String>, filters: Vec<Filter>) -> Vec<SecurityGroup>;
    fn authorize_security_group_ingress(region: String, group_id: String, permissions: Vec<IpPermission>) -> ();
    fn revoke_security_group_ingress(region: String, group_id: String, permissions: Vec<IpPermission>) -> ();
    fn delete_security_group(region: String, group_id: String) -> ();
    fn create_vpc_peering_connection(region: String, vpc_id: String, peer_vpc_id: String, peer_region: String, tags: Vec<Tag>) -> VpcPeeringConnection;
    fn accept_vpc_peering_connection(region: String, peering_id: String) -> VpcPeeringConnection;
    fn describe_vpc_peering_connections(region: String, peering_ids: Vec<String>, filters: Vec<Filter>) -> Vec<VpcPeeringConnection>;
    fn delete_vpc_peering_connection(region: String, peering_id: String) -> ();
    fn create_route_table(region: String, vpc_id: String, tags: Vec<Tag>) -> RouteTable;
    fn describe_route_tables(region: String, route_table_ids: Vec<String>, filters: Vec<Filter>) -> Vec<RouteTable>;
    fn associate_route_table(region: String, route_table_id: String, subnet_id: String) -> String;
    fn create_route(region: String, route_table_id: String, destination_cidr: String, target: String) -> ();
    fn delete_route(region: String, route_table_id: String, destination_cidr: String) -> ();
    fn delete_route_table(region: String, route_table_id: String) -> ();
    fn create_vpc_endpoint(region: String, vpc_id: String, service_name: String, endpoint_type: String, route_table_ids: Vec<String>, tags: Vec<Tag>) -> VpcEndpoint;
    fn describe_vpc_endpoints(region: String, vpc_endpoint_ids: Vec<String>, filters: Vec<Filter>) -> Vec<VpcEndpoint>;
    fn delete_vpc_endpoints(region: String, vpc_endpoint_ids: Vec<String>) -> ();
    fn create_tags(region: String, resource_ids: Vec<String>, tags: Vec<Tag>) -> ();
}
cap_fns! { "route53", route53;
    fn create_hosted_zone(name: String, caller_reference: String, vpc: Option<ZoneVpc>, comment: Option<String>) -> HostedZone;
    fn get_hosted_zone(id: String) -> HostedZone;
    fn list_hosted_zones_by_name(dns_name: Option<String>) -> Vec<HostedZone>;
    fn associate_vpc_with_hosted_zone(id: String, vpc: ZoneVpc) -> ChangeInfo;
    fn delete_hosted_zone(id: String) -> ChangeInfo;
    fn change_resource_record_sets(zone_id: String, changes: Vec<Change>) -> ChangeInfo;
    fn list_resource_record_sets(zone_id: String, name: Option<String>) -> Vec<RecordSet>;
    fn create_health_check(caller_reference: String, name: Option<String>, config: HealthCheckConfig) -> HealthCheck;
    fn get_health_check(id: String) -> HealthCheck;
    fn list_health_checks() -> Vec<HealthCheck>;
    fn get_health_check_status(id: String) -> HealthCheckStatus;
    fn delete_health_check(id: String) -> ();
}
cap_fns! { "cloudwatch", cloudwatch;
    fn put_metric_data(region: String, namespace: String, data: Vec<MetricDatum>) -> ();
    fn get_metric_statistics(region: String, request: MetricStatisticsRequest) -> Vec<Datapoint>;
    fn put_metric_alarm(region: String, spec: MetricAlarmSpec) -> ();
    fn describe_alarms(region: String, alarm_names: Vec<String>, name_prefix: Option<String>) -> Vec<MetricAlarm>;
    fn set_alarm_state(region: String, alarm_name: String, state_value: String, state_reason: String) -> ();
    fn delete_alarms(region: String, alarm_names: Vec<String>) -> ();
    fn put_dashboard(region: String, name: String, body: String) -> ();
    fn get_dashboard(region: String, name: String) -> Dashboard;
    fn list_dashboards(region: String, name_prefix: Option<String>) -> Vec<String>;
    fn delete_dashboards(region: String, names: Vec<String>) -> ();
}
cap_fns! { "sns", sns;
    fn create_topic(region: String, name: String, tags: Vec<Tag>) -> String;
    fn list_topics(region: String) -> Vec<String>;
    fn delete_topic(region: String, topic_arn: String) -> ();
    fn subscribe(region: String, topic_arn: String, protocol: String, endpoint: String) -> String;
    fn list_subscriptions_by_topic(region: String, topic_arn: String) -> Vec<Subscription>;
    fn unsubscribe(region: String, subscription_arn: String) -> ();
    fn publish(region: String, topic_arn: String, subject: Option<String>, message: String) -> String;
}
cap_fns! { "secretsmanager", secretsmanager;
    fn create_secret(region: String, request: CreateSecretRequest) -> Secret;
    fn describe_secret(region: String, secret_id: String) -> Secret;
    fn list_secrets(region: String, name_prefix: Option<String>) -> Vec<Secret>;
    fn replicate_secret_to_regions(region: String, secret_id: String, add_replica_regions: Vec<String>) -> Secret;
    fn remove_regions_from_replication(region: String, secret_id: String, remove_replica_regions: Vec<String>) -> Secret;
    fn delete_secret(region: String, secret_id: String, force_delete_without_recovery: bool) -> ();
}
cap_fns! { "postgres", postgres;
    fn query(target: Target, sql: String, params: Vec<Option<String>>) -> QueryResult;
}
cap_fns! { "fault", fault;
    fn inject_fault(spec: FaultSpec) -> Fault;
    fn undo_fault(id: String) -> Fault;
    fn describe_faults(ids: Vec<String>) -> Vec<Fault>;
    fn get_lever() -> Lever;
}
cap_fns! { "traffic", traffic;
    fn start_session(spec: SessionSpec) -> SessionSummary;
    fn describe_session(id: String) -> SessionSummary;
    fn stop_session(id: String) -> SessionSummary;
    fn verify_session(id: String) -> Verification;
    fn measure_session(id: String, context: String) -> String;
}
