//! Every capability function of the WIT contract, with its IAM action name, whether it
//! mutates anything (for `runbook plan`) and which argument names the resource (for
//! scoped grants and the audit trail).

/// One capability function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSpec {
    /// WIT interface name, also the IAM service prefix.
    pub service: &'static str,
    /// WIT function name (kebab-case).
    pub function: &'static str,
    /// IAM action name.
    pub action: &'static str,
    /// True when the call changes state somewhere.
    pub mutating: bool,
    /// Argument naming the resource: `name` or `record.field`.
    pub resource: Option<&'static str>,
}

const fn a(
    service: &'static str,
    function: &'static str,
    action: &'static str,
    mutating: bool,
    resource: Option<&'static str>,
) -> ActionSpec {
    ActionSpec {
        service,
        function,
        action,
        mutating,
        resource,
    }
}

const R: bool = false;
const W: bool = true;

/// The catalogue, in WIT order.
pub static CATALOG: &[ActionSpec] = &[
    // rds
    a(
        "rds",
        "create-db-instance",
        "CreateDBInstance",
        W,
        Some("request.identifier"),
    ),
    a(
        "rds",
        "create-db-instance-read-replica",
        "CreateDBInstanceReadReplica",
        W,
        Some("request.identifier"),
    ),
    a(
        "rds",
        "describe-db-instances",
        "DescribeDBInstances",
        R,
        Some("identifier"),
    ),
    a(
        "rds",
        "modify-db-instance",
        "ModifyDBInstance",
        W,
        Some("request.identifier"),
    ),
    a(
        "rds",
        "delete-db-instance",
        "DeleteDBInstance",
        W,
        Some("request.identifier"),
    ),
    a(
        "rds",
        "reboot-db-instance",
        "RebootDBInstance",
        W,
        Some("identifier"),
    ),
    a(
        "rds",
        "stop-db-instance",
        "StopDBInstance",
        W,
        Some("identifier"),
    ),
    a(
        "rds",
        "start-db-instance",
        "StartDBInstance",
        W,
        Some("identifier"),
    ),
    a(
        "rds",
        "promote-read-replica",
        "PromoteReadReplica",
        W,
        Some("identifier"),
    ),
    a(
        "rds",
        "create-db-snapshot",
        "CreateDBSnapshot",
        W,
        Some("snapshot_identifier"),
    ),
    a(
        "rds",
        "describe-db-snapshots",
        "DescribeDBSnapshots",
        R,
        Some("snapshot_identifier"),
    ),
    a(
        "rds",
        "delete-db-snapshot",
        "DeleteDBSnapshot",
        W,
        Some("snapshot_identifier"),
    ),
    a(
        "rds",
        "restore-db-instance-from-db-snapshot",
        "RestoreDBInstanceFromDBSnapshot",
        W,
        Some("request.identifier"),
    ),
    a(
        "rds",
        "create-db-subnet-group",
        "CreateDBSubnetGroup",
        W,
        Some("name"),
    ),
    a(
        "rds",
        "describe-db-subnet-groups",
        "DescribeDBSubnetGroups",
        R,
        Some("name"),
    ),
    a(
        "rds",
        "delete-db-subnet-group",
        "DeleteDBSubnetGroup",
        W,
        Some("name"),
    ),
    a(
        "rds",
        "create-db-parameter-group",
        "CreateDBParameterGroup",
        W,
        Some("name"),
    ),
    a(
        "rds",
        "describe-db-parameter-groups",
        "DescribeDBParameterGroups",
        R,
        Some("name"),
    ),
    a(
        "rds",
        "modify-db-parameter-group",
        "ModifyDBParameterGroup",
        W,
        Some("name"),
    ),
    a(
        "rds",
        "describe-db-parameters",
        "DescribeDBParameters",
        R,
        Some("name"),
    ),
    a(
        "rds",
        "delete-db-parameter-group",
        "DeleteDBParameterGroup",
        W,
        Some("name"),
    ),
    // ec2
    a(
        "ec2",
        "describe-availability-zones",
        "DescribeAvailabilityZones",
        R,
        None,
    ),
    a("ec2", "create-vpc", "CreateVpc", W, None),
    a("ec2", "describe-vpcs", "DescribeVpcs", R, None),
    a(
        "ec2",
        "modify-vpc-attribute",
        "ModifyVpcAttribute",
        W,
        Some("vpc_id"),
    ),
    a("ec2", "delete-vpc", "DeleteVpc", W, Some("vpc_id")),
    a("ec2", "create-subnet", "CreateSubnet", W, Some("vpc_id")),
    a("ec2", "describe-subnets", "DescribeSubnets", R, None),
    a("ec2", "delete-subnet", "DeleteSubnet", W, Some("subnet_id")),
    a(
        "ec2",
        "create-security-group",
        "CreateSecurityGroup",
        W,
        Some("group_name"),
    ),
    a(
        "ec2",
        "describe-security-groups",
        "DescribeSecurityGroups",
        R,
        None,
    ),
    a(
        "ec2",
        "authorize-security-group-ingress",
        "AuthorizeSecurityGroupIngress",
        W,
        Some("group_id"),
    ),
    a(
        "ec2",
        "revoke-security-group-ingress",
        "RevokeSecurityGroupIngress",
        W,
        Some("group_id"),
    ),
    a(
        "ec2",
        "delete-security-group",
        "DeleteSecurityGroup",
        W,
        Some("group_id"),
    ),
    a(
        "ec2",
        "create-vpc-peering-connection",
        "CreateVpcPeeringConnection",
        W,
        Some("vpc_id"),
    ),
    a(
        "ec2",
        "accept-vpc-peering-connection",
        "AcceptVpcPeeringConnection",
        W,
        Some("peering_id"),
    ),
    a(
        "ec2",
        "describe-vpc-peering-connections",
        "DescribeVpcPeeringConnections",
        R,
        None,
    ),
    a(
        "ec2",
        "delete-vpc-peering-connection",
        "DeleteVpcPeeringConnection",
        W,
        Some("peering_id"),
    ),
    a(
        "ec2",
        "create-route-table",
        "CreateRouteTable",
        W,
        Some("vpc_id"),
    ),
    a(
        "ec2",
        "describe-route-tables",
        "DescribeRouteTables",
        R,
        None,
    ),
    a(
        "ec2",
        "associate-route-table",
        "AssociateRouteTable",
        W,
        Some("route_table_id"),
    ),
    a(
        "ec2",
        "create-route",
        "CreateRoute",
        W,
        Some("route_table_id"),
    ),
    a(
        "ec2",
        "delete-route",
        "DeleteRoute",
        W,
        Some("route_table_id"),
    ),
    a(
        "ec2",
        "delete-route-table",
        "DeleteRouteTable",
        W,
        Some("route_table_id"),
    ),
    a(
        "ec2",
        "create-vpc-endpoint",
        "CreateVpcEndpoint",
        W,
        Some("vpc_id"),
    ),
    a(
        "ec2",
        "describe-vpc-endpoints",
        "DescribeVpcEndpoints",
        R,
        None,
    ),
    a("ec2", "delete-vpc-endpoints", "DeleteVpcEndpoints", W, None),
    a("ec2", "create-tags", "CreateTags", W, None),
    // route53
    a(
        "route53",
        "create-hosted-zone",
        "CreateHostedZone",
        W,
        Some("name"),
    ),
    a("route53", "get-hosted-zone", "GetHostedZone", R, Some("id")),
    a(
        "route53",
        "list-hosted-zones-by-name",
        "ListHostedZonesByName",
        R,
        None,
    ),
    a(
        "route53",
        "associate-vpc-with-hosted-zone",
        "AssociateVPCWithHostedZone",
        W,
        Some("id"),
    ),
    a(
        "route53",
        "delete-hosted-zone",
        "DeleteHostedZone",
        W,
        Some("id"),
    ),
    a(
        "route53",
        "change-resource-record-sets",
        "ChangeResourceRecordSets",
        W,
        Some("zone_id"),
    ),
    a(
        "route53",
        "list-resource-record-sets",
        "ListResourceRecordSets",
        R,
        Some("zone_id"),
    ),
    a(
        "route53",
        "create-health-check",
        "CreateHealthCheck",
        W,
        Some("name"),
    ),
    a(
        "route53",
        "get-health-check",
        "GetHealthCheck",
        R,
        Some("id"),
    ),
    a("route53", "list-health-checks", "ListHealthChecks", R, None),
    a(
        "route53",
        "get-health-check-status",
        "GetHealthCheckStatus",
        R,
        Some("id"),
    ),
    a(
        "route53",
        "delete-health-check",
        "DeleteHealthCheck",
        W,
        Some("id"),
    ),
    // cloudwatch
    a(
        "cloudwatch",
        "put-metric-data",
        "PutMetricData",
        W,
        Some("namespace"),
    ),
    a(
        "cloudwatch",
        "get-metric-statistics",
        "GetMetricStatistics",
        R,
        Some("request.metric_name"),
    ),
    a(
        "cloudwatch",
        "put-metric-alarm",
        "PutMetricAlarm",
        W,
        Some("spec.alarm_name"),
    ),
    a("cloudwatch", "describe-alarms", "DescribeAlarms", R, None),
    a(
        "cloudwatch",
        "set-alarm-state",
        "SetAlarmState",
        W,
        Some("alarm_name"),
    ),
    a("cloudwatch", "delete-alarms", "DeleteAlarms", W, None),
    a(
        "cloudwatch",
        "put-dashboard",
        "PutDashboard",
        W,
        Some("name"),
    ),
    a(
        "cloudwatch",
        "get-dashboard",
        "GetDashboard",
        R,
        Some("name"),
    ),
    a("cloudwatch", "list-dashboards", "ListDashboards", R, None),
    a(
        "cloudwatch",
        "delete-dashboards",
        "DeleteDashboards",
        W,
        None,
    ),
    // sns
    a("sns", "create-topic", "CreateTopic", W, Some("name")),
    a("sns", "list-topics", "ListTopics", R, None),
    a("sns", "delete-topic", "DeleteTopic", W, Some("topic_arn")),
    a("sns", "subscribe", "Subscribe", W, Some("topic_arn")),
    a(
        "sns",
        "list-subscriptions-by-topic",
        "ListSubscriptionsByTopic",
        R,
        Some("topic_arn"),
    ),
    a(
        "sns",
        "unsubscribe",
        "Unsubscribe",
        W,
        Some("subscription_arn"),
    ),
    a("sns", "publish", "Publish", W, Some("topic_arn")),
    // secretsmanager
    a(
        "secretsmanager",
        "create-secret",
        "CreateSecret",
        W,
        Some("request.name"),
    ),
    a(
        "secretsmanager",
        "describe-secret",
        "DescribeSecret",
        R,
        Some("secret_id"),
    ),
    a("secretsmanager", "list-secrets", "ListSecrets", R, None),
    a(
        "secretsmanager",
        "replicate-secret-to-regions",
        "ReplicateSecretToRegions",
        W,
        Some("secret_id"),
    ),
    a(
        "secretsmanager",
        "remove-regions-from-replication",
        "RemoveRegionsFromReplication",
        W,
        Some("secret_id"),
    ),
    a(
        "secretsmanager",
        "delete-secret",
        "DeleteSecret",
        W,
        Some("secret_id"),
    ),
    // postgres: a query may write (canary rows), so plan treats it as mutating.
    a("postgres", "query", "Query", W, Some("target.endpoint")),
    // fault: game-day fault injection; scoped grants name the target
    // (`fault:InjectFault on primary-postgres-*`).
    a(
        "fault",
        "inject-fault",
        "InjectFault",
        W,
        Some("spec.target"),
    ),
    a("fault", "undo-fault", "UndoFault", W, Some("id")),
    a("fault", "describe-faults", "DescribeFaults", R, None),
    a("fault", "get-lever", "GetLever", R, None),
    // traffic: the application-like client of game days (host-side driver).
    a(
        "traffic",
        "start-session",
        "StartSession",
        W,
        Some("spec.target.endpoint"),
    ),
    a(
        "traffic",
        "describe-session",
        "DescribeSession",
        R,
        Some("id"),
    ),
    a("traffic", "stop-session", "StopSession", W, Some("id")),
    a("traffic", "verify-session", "VerifySession", R, Some("id")),
    a(
        "traffic",
        "measure-session",
        "MeasureSession",
        R,
        Some("id"),
    ),
];

/// Look a function up by WIT interface and function name.
pub fn action_by_function(service: &str, function: &str) -> Option<&'static ActionSpec> {
    CATALOG
        .iter()
        .find(|s| s.service == service && s.function == function)
}

/// Look a function up by `service:Action`.
pub fn action_by_iam(service: &str, action: &str) -> Option<&'static ActionSpec> {
    CATALOG
        .iter()
        .find(|s| s.service == service && s.action == action)
}

/// The capability services (WIT interfaces that need grants). `log` needs none.
pub const SERVICES: &[&str] = &[
    "rds",
    "ec2",
    "route53",
    "cloudwatch",
    "sns",
    "secretsmanager",
    "postgres",
    "fault",
    "traffic",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalog_entries_are_unique_and_services_known() {
        let mut seen = HashSet::new();
        for spec in CATALOG {
            assert!(SERVICES.contains(&spec.service), "{spec:?}");
            assert!(
                seen.insert((spec.service, spec.function)),
                "duplicate {spec:?}"
            );
            assert!(action_by_iam(spec.service, spec.action).is_some());
        }
        assert_eq!(
            action_by_function("rds", "promote-read-replica").map(|s| s.action),
            Some("PromoteReadReplica")
        );
    }
}
