//! `fault` on RDS and EC2, in the manner of AWS FIS actions. The executor owns fault
//! ids, idempotency tokens, the safety lever, timestamps and the journal; this module
//! makes the effect (`InjectFault`, returning a record whose `details` say exactly what
//! was changed) and takes it back (`UndoFault`, given that record).
//!
//! - `reboot-failover`: RebootDBInstance with ForceFailover (Multi-AZ only). Nothing to
//!   undo: the former standby stays the writer, as after a real failover.
//! - `isolate-primary`: revoke every ingress rule of the instance's VPC security groups;
//!   undo authorizes exactly those rules again (the ones still present are left alone).
//! - `stop-instance`: StopDBInstance; undo StartDBInstance unless already (re)started.

use aws_sdk_ec2::types as ec2t;
use runbook_caps::types::fault::{Fault, FaultSpec};
use runbook_caps::types::rds::DbInstance;
use runbook_caps::{CapCall, CapError, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::send;
use crate::{AwsProvider, to_value};

pub(crate) async fn handle(p: &AwsProvider, call: &CapCall) -> Result<Value, CapError> {
    match call.action.as_str() {
        "InjectFault" => {
            let spec: FaultSpec = call.arg_as("spec")?;
            let region = region_of(p, call, &spec.region).await?;
            // Errors are mapped in the spec's region (request ids, hints name it).
            let call = &CapCall {
                region: Some(region.clone()),
                ..call.clone()
            };
            let details = match spec.kind.as_str() {
                "reboot-failover" => reboot_failover(p, call, &region, &spec.target).await?,
                "isolate-primary" => isolate(p, call, &region, &spec.target).await?,
                "stop-instance" => stop(p, call, &region, &spec.target).await?,
                other => return Err(unsupported_kind(other)),
            };
            Ok(to_value(Fault {
                id: String::new(),
                kind: spec.kind,
                target: spec.target,
                region,
                state: "active".into(),
                injected_at: String::new(),
                undone_at: None,
                details: details.to_string(),
            }))
        }
        "UndoFault" => {
            let mut fault: Fault = call.arg_as("fault")?;
            let region = region_of(p, call, &fault.region).await?;
            let call = &CapCall {
                region: Some(region.clone()),
                ..call.clone()
            };
            let mut details: Value = serde_json::from_str(&fault.details).map_err(|e| {
                CapError::invalid_parameter(format!(
                    "fault {}: details are not the JSON this provider recorded: {e}",
                    fault.id
                ))
            })?;
            let undone = match fault.kind.as_str() {
                "reboot-failover" => {
                    json!("nothing to undo: a forced failover completes by itself")
                }
                "isolate-primary" => reauthorize(p, call, &region, &details).await?,
                "stop-instance" => start(p, call, &region, &fault.target).await?,
                other => return Err(unsupported_kind(other)),
            };
            if let Some(o) = details.as_object_mut() {
                o.insert("undone".into(), undone);
            }
            fault.details = details.to_string();
            fault.state = "undone".into();
            Ok(to_value(fault))
        }
        _ => Err(CapError::unsupported(call, "aws")),
    }
}

fn unsupported_kind(kind: &str) -> CapError {
    CapError::new(
        ErrorKind::InvalidParameter,
        "UnsupportedOperation",
        format!(
            "the aws provider cannot inject '{kind}' faults (it injects reboot-failover, \
             isolate-primary, stop-instance)"
        ),
    )
}

/// The fault's region, else the call's, else the provider's default.
async fn region_of(p: &AwsProvider, call: &CapCall, region: &str) -> Result<String, CapError> {
    if !region.is_empty() {
        return Ok(region.to_string());
    }
    if let Some(r) = &call.region {
        return Ok(r.clone());
    }
    p.default_region().await.ok_or_else(|| {
        CapError::invalid_parameter(format!("{}: the fault names no region", call.iam_name()))
    })
}

async fn instance(
    p: &AwsProvider,
    call: &CapCall,
    region: &str,
    id: &str,
) -> Result<DbInstance, CapError> {
    crate::rds::describe(p, call, region, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            CapError::not_found("DBInstanceNotFound", format!("DBInstance {id} not found."))
        })
}

async fn reboot_failover(
    p: &AwsProvider,
    call: &CapCall,
    region: &str,
    id: &str,
) -> Result<Value, CapError> {
    let db = instance(p, call, region, id).await?;
    // RDS answers a single-AZ ForceFailover with a parameter error that does not say
    // why; and some emulators simply reboot. Refuse up front, naming the reason.
    if !db.multi_az {
        return Err(CapError::invalid_state(
            "InvalidDBInstanceState",
            format!(
                "DB instance {id} is not Multi-AZ: a reboot with failover needs a standby \
                 to fail over to"
            ),
        ));
    }
    send(
        call,
        "RebootDBInstance",
        p.rds(region)
            .await
            .reboot_db_instance()
            .db_instance_identifier(id)
            .force_failover(true)
            .send(),
    )
    .await?;
    Ok(json!({
        "action": "RebootDBInstance",
        "force_failover": true,
        "availability_zone_before": db.availability_zone,
        "secondary_availability_zone_before": db.secondary_availability_zone,
        "undo": "none: the former standby stays the writer (a second reboot-failover fails back)",
    }))
}

async fn stop(p: &AwsProvider, call: &CapCall, region: &str, id: &str) -> Result<Value, CapError> {
    // RDS refuses instances with read replicas, replicas themselves and instances not
    // `available`: its error is the answer.
    let o = send(
        call,
        "StopDBInstance",
        p.rds(region)
            .await
            .stop_db_instance()
            .db_instance_identifier(id)
            .send(),
    )
    .await?;
    Ok(json!({
        "action": "StopDBInstance",
        "status_after": o.db_instance().and_then(|d| d.db_instance_status()),
        "undo": "StartDBInstance (RDS also restarts a stopped instance by itself after 7 days)",
    }))
}

/// Start the instance unless it is already running or on its way there.
async fn start(p: &AwsProvider, call: &CapCall, region: &str, id: &str) -> Result<Value, CapError> {
    let db = instance(p, call, region, id).await?;
    match db.status.as_str() {
        "stopped" => {
            let o = send(
                call,
                "StartDBInstance",
                p.rds(region)
                    .await
                    .start_db_instance()
                    .db_instance_identifier(id)
                    .send(),
            )
            .await?;
            Ok(json!({
                "action": "StartDBInstance",
                "status_after": o.db_instance().and_then(|d| d.db_instance_status()),
            }))
        }
        // Not startable yet; RDS would refuse StartDBInstance the same way. Undoing
        // again once it is stopped works (the caller's Retry).
        "stopping" => Err(CapError::invalid_state(
            "InvalidDBInstanceState",
            format!("DB instance {id} is still stopping; undo again once it is stopped"),
        )),
        other => Ok(json!({"action": "none", "status": other})),
    }
}

/// One ingress rule: a single source (IPv4 or IPv6 range, prefix list or security
/// group) for a protocol and port range, as EC2 keeps them. Recorded in the fault's
/// details so undo restores exactly these.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Rule {
    protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cidr_ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cidr_ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix_list_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_group: Option<String>,
    /// Owner of `source_group` when it is another account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Rule {
    /// Same rule, whatever its description (EC2 matches rules that way).
    fn same(&self, o: &Rule) -> bool {
        Rule {
            description: None,
            ..self.clone()
        } == Rule {
            description: None,
            ..o.clone()
        }
    }

    /// The rule as EC2 takes it, description included: EC2 ignores it when revoking,
    /// moto matches source-group rules on it.
    fn to_sdk(&self) -> ec2t::IpPermission {
        let d = || self.description.clone();
        let mut b = ec2t::IpPermission::builder()
            .ip_protocol(&self.protocol)
            .set_from_port(self.from_port)
            .set_to_port(self.to_port);
        if let Some(c) = &self.cidr_ipv4 {
            b = b.ip_ranges(
                ec2t::IpRange::builder()
                    .cidr_ip(c)
                    .set_description(d())
                    .build(),
            );
        }
        if let Some(c) = &self.cidr_ipv6 {
            b = b.ipv6_ranges(
                ec2t::Ipv6Range::builder()
                    .cidr_ipv6(c)
                    .set_description(d())
                    .build(),
            );
        }
        if let Some(pl) = &self.prefix_list_id {
            b = b.prefix_list_ids(
                ec2t::PrefixListId::builder()
                    .prefix_list_id(pl)
                    .set_description(d())
                    .build(),
            );
        }
        if let Some(g) = &self.source_group {
            b = b.user_id_group_pairs(
                ec2t::UserIdGroupPair::builder()
                    .group_id(g)
                    .set_user_id(self.source_user.clone())
                    .set_description(d())
                    .build(),
            );
        }
        b.build()
    }
}

/// The single-source rules of EC2's grouped permissions.
fn rules_of(perms: &[ec2t::IpPermission], own_account: Option<&str>) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in perms {
        let base = Rule {
            protocol: p.ip_protocol().unwrap_or("-1").to_string(),
            from_port: p.from_port(),
            to_port: p.to_port(),
            cidr_ipv4: None,
            cidr_ipv6: None,
            prefix_list_id: None,
            source_group: None,
            source_user: None,
            description: None,
        };
        let desc = |d: Option<&str>| d.filter(|d| !d.is_empty()).map(str::to_string);
        for r in p.ip_ranges() {
            out.push(Rule {
                cidr_ipv4: r.cidr_ip().map(str::to_string),
                description: desc(r.description()),
                ..base.clone()
            });
        }
        for r in p.ipv6_ranges() {
            out.push(Rule {
                cidr_ipv6: r.cidr_ipv6().map(str::to_string),
                description: desc(r.description()),
                ..base.clone()
            });
        }
        for r in p.prefix_list_ids() {
            out.push(Rule {
                prefix_list_id: r.prefix_list_id().map(str::to_string),
                description: desc(r.description()),
                ..base.clone()
            });
        }
        for g in p.user_id_group_pairs() {
            out.push(Rule {
                source_group: g.group_id().map(str::to_string),
                // Our own account is implied; naming it is only needed across accounts.
                source_user: g
                    .user_id()
                    .filter(|u| Some(*u) != own_account)
                    .map(str::to_string),
                description: desc(g.description()),
                ..base.clone()
            });
        }
    }
    out
}

#[derive(Debug, Serialize, Deserialize)]
struct Revoked {
    group_id: String,
    rules: Vec<Rule>,
}

async fn group_rules(
    c: &aws_sdk_ec2::Client,
    call: &CapCall,
    group: &str,
) -> Result<Vec<Rule>, CapError> {
    let o = send(
        call,
        "DescribeSecurityGroups",
        c.describe_security_groups().group_ids(group).send(),
    )
    .await?;
    let g = o.security_groups().first().ok_or_else(|| {
        CapError::not_found(
            "InvalidGroup.NotFound",
            format!("The security group '{group}' does not exist"),
        )
    })?;
    Ok(rules_of(g.ip_permissions(), g.owner_id()))
}

async fn isolate(
    p: &AwsProvider,
    call: &CapCall,
    region: &str,
    id: &str,
) -> Result<Value, CapError> {
    let db = instance(p, call, region, id).await?;
    let c = p.ec2(region).await;
    let mut plan = Vec::new();
    for g in &db.vpc_security_groups {
        let rules = group_rules(&c, call, g).await?;
        if !rules.is_empty() {
            plan.push(Revoked {
                group_id: g.clone(),
                rules,
            });
        }
    }
    if plan.is_empty() {
        return Err(CapError::invalid_parameter(format!(
            "DB instance {id}'s security groups ({}) have no ingress rules: isolating it \
             would change nothing",
            db.vpc_security_groups.join(", ")
        )));
    }
    let mut done: Vec<&Revoked> = Vec::new();
    for r in &plan {
        let perms = r.rules.iter().map(|x| x.to_sdk()).collect();
        let res = send(
            call,
            "RevokeSecurityGroupIngress",
            c.revoke_security_group_ingress()
                .group_id(&r.group_id)
                .set_ip_permissions(Some(perms))
                .send(),
        )
        .await;
        if let Err(e) = res {
            // Nothing is journaled for a failed injection: put back what was revoked
            // so no half-isolated instance is left without a record.
            for d in done {
                if let Err(undo) = authorize_missing(&c, call, d).await {
                    tracing::warn!(group = %d.group_id, error = %undo, "rollback of isolate-primary failed");
                }
            }
            return Err(e);
        }
        done.push(r);
    }
    Ok(json!({
        "action": "RevokeSecurityGroupIngress",
        "db_instance": id,
        "security_groups": plan,
        "undo": "AuthorizeSecurityGroupIngress of exactly the revoked rules",
        "note": "security groups are stateful: connections open before the fault may \
                 survive it until they close",
    }))
}

/// Authorize the recorded rules the group lacks; (authorized, already present).
async fn authorize_missing(
    c: &aws_sdk_ec2::Client,
    call: &CapCall,
    r: &Revoked,
) -> Result<(usize, usize), CapError> {
    let now = group_rules(c, call, &r.group_id).await?;
    let missing: Vec<&Rule> = r
        .rules
        .iter()
        .filter(|x| !now.iter().any(|n| n.same(x)))
        .collect();
    let present = r.rules.len() - missing.len();
    if missing.is_empty() {
        return Ok((0, present));
    }
    let perms = missing.iter().map(|x| x.to_sdk()).collect();
    match send(
        call,
        "AuthorizeSecurityGroupIngress",
        c.authorize_security_group_ingress()
            .group_id(&r.group_id)
            .set_ip_permissions(Some(perms))
            .send(),
    )
    .await
    {
        Ok(_) => Ok((missing.len(), present)),
        // Re-added concurrently between our describe and authorize: fine.
        Err(e) if e.code == "InvalidPermission.Duplicate" => Ok((0, r.rules.len())),
        Err(e) => Err(e),
    }
}

async fn reauthorize(
    p: &AwsProvider,
    call: &CapCall,
    region: &str,
    details: &Value,
) -> Result<Value, CapError> {
    let groups: Vec<Revoked> = serde_json::from_value(
        details
            .get("security_groups")
            .cloned()
            .unwrap_or(Value::Null),
    )
    .map_err(|e| {
        CapError::invalid_parameter(format!(
            "isolate-primary details name no revoked rules: {e}"
        ))
    })?;
    let c = p.ec2(region).await;
    let mut out = Vec::new();
    for g in &groups {
        let (authorized, present) = authorize_missing(&c, call, g).await?;
        out.push(
            json!({"group_id": g.group_id, "authorized": authorized, "already_present": present}),
        );
    }
    Ok(json!({"action": "AuthorizeSecurityGroupIngress", "security_groups": out}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_permissions_split_into_single_source_rules() {
        let perm = ec2t::IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(5432)
            .to_port(5432)
            .ip_ranges(
                ec2t::IpRange::builder()
                    .cidr_ip("10.1.0.0/16")
                    .description("replica vpc")
                    .build(),
            )
            .ip_ranges(ec2t::IpRange::builder().cidr_ip("10.2.0.0/16").build())
            .user_id_group_pairs(
                ec2t::UserIdGroupPair::builder()
                    .group_id("sg-app")
                    .user_id("123")
                    .build(),
            )
            .user_id_group_pairs(
                ec2t::UserIdGroupPair::builder()
                    .group_id("sg-other")
                    .user_id("999")
                    .build(),
            )
            .build();
        let rules = rules_of(&[perm], Some("123"));
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0].cidr_ipv4.as_deref(), Some("10.1.0.0/16"));
        assert_eq!(rules[0].description.as_deref(), Some("replica vpc"));
        assert_eq!(rules[2].source_group.as_deref(), Some("sg-app"));
        assert_eq!(rules[2].source_user, None, "own account left implicit");
        assert_eq!(rules[3].source_user.as_deref(), Some("999"));
        // A description does not make a different rule.
        let bare = Rule {
            description: None,
            ..rules[0].clone()
        };
        assert!(bare.same(&rules[0]) && !rules[0].same(&rules[1]));
        // Round trip through the SDK shape keeps the one source.
        let back = rules_of(&[rules[0].to_sdk()], None);
        assert_eq!(back, vec![rules[0].clone()]);
        let v = serde_json::to_value(&rules[1]).unwrap();
        assert_eq!(
            v,
            json!({"protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_ipv4": "10.2.0.0/16"})
        );
    }
}
