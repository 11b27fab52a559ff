//! Route 53: private hosted zones, record sets (simple, weighted, failover) and health
//! checks. Every A/AAAA/CNAME name gets a routing endpoint in the daemon (see `net`).

use std::sync::Arc;

use runbook_caps::types::route53::*;
use runbook_caps::{CapCall, CapError, ErrorKind};
use serde_json::Value;

use crate::daemon::Ctx;
use crate::ids;
use crate::net::normalize;
use crate::state::ZoneRec;

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("record serializes")
}

fn zone_nf(id: &str) -> CapError {
    CapError::not_found(
        "NoSuchHostedZone",
        format!("No hosted zone found with ID: {id}"),
    )
}
fn hc_nf(id: &str) -> CapError {
    CapError::not_found(
        "NoSuchHealthCheck",
        format!("No health check exists with the specified ID {id}"),
    )
}
fn batch(msg: String) -> CapError {
    CapError::new(ErrorKind::InvalidParameter, "InvalidChangeBatch", msg)
}

fn info(_id: &str) -> ChangeInfo {
    ChangeInfo {
        id: format!("C{}", &ids::zone_id()[1..]),
        status: "INSYNC".into(),
    }
}

/// SOA and NS records every zone has, as Route 53 lists them.
fn default_records(zone: &HostedZone) -> Vec<RecordSet> {
    vec![
        RecordSet {
            name: zone.name.clone(),
            record_type: "NS".into(),
            ttl: Some(172800),
            values: vec!["ns-0.awsdns-00.com.".into(), "ns-512.awsdns-00.net.".into()],
            ..Default::default()
        },
        RecordSet {
            name: zone.name.clone(),
            record_type: "SOA".into(),
            ttl: Some(900),
            values: vec![
                "ns-0.awsdns-00.com. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400".into(),
            ],
            ..Default::default()
        },
    ]
}

fn view(z: &ZoneRec) -> HostedZone {
    let mut hz = z.zone.clone();
    hz.record_count = (z.records.len() + 2) as u32;
    hz
}

fn same_set(a: &RecordSet, b: &RecordSet) -> bool {
    normalize(&a.name) == normalize(&b.name)
        && a.record_type == b.record_type
        && a.set_identifier == b.set_identifier
}

pub(crate) async fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    match call.action.as_str() {
        "CreateHostedZone" => {
            let name = fqdn(&call.arg_as::<String>("name")?);
            let caller: String = call.arg_as("caller_reference")?;
            let vpc: Option<ZoneVpc> = call.arg_as("vpc")?;
            let comment: Option<String> = call.arg_as("comment")?;
            ctx.mutate(|s| {
                if s.global.zones.values().any(|z| z.caller_reference == caller) {
                    return Err(CapError::already_exists(
                        "HostedZoneAlreadyExists",
                        format!("A hosted zone has already been created with the specified caller reference {caller}"),
                    ));
                }
                if let Some(v) = &vpc {
                    if !s.region(&v.vpc_region).is_some_and(|r| r.vpcs.contains_key(&v.vpc_id)) {
                        return Err(CapError::invalid_parameter(format!("The VPC {} in {} does not exist", v.vpc_id, v.vpc_region))
                            .with("InvalidVPCId"));
                    }
                    if s.global.zones.values().any(|z| z.zone.name == name && z.zone.vpcs.contains(v)) {
                        return Err(CapError::already_exists(
                            "ConflictingDomainExists",
                            format!("A private hosted zone for {name} is already associated with {}", v.vpc_id),
                        ));
                    }
                }
                let zone = HostedZone {
                    id: ids::zone_id(),
                    name: name.clone(),
                    private_zone: vpc.is_some(),
                    comment,
                    vpcs: vpc.into_iter().collect(),
                    record_count: 2,
                };
                s.global.zones.insert(zone.id.clone(), ZoneRec { zone: zone.clone(), caller_reference: caller, records: vec![] });
                Ok(to_value(zone))
            })
        }
        "GetHostedZone" => {
            let id = zone_id(&call.arg_as::<String>("id")?);
            ctx.read(|s| {
                s.global
                    .zones
                    .get(&id)
                    .map(|z| to_value(view(z)))
                    .ok_or_else(|| zone_nf(&id))
            })
        }
        "ListHostedZonesByName" => {
            let dns: Option<String> = call.arg_as("dns_name")?;
            ctx.read(|s| {
                let mut zones: Vec<HostedZone> = s.global.zones.values().map(view).collect();
                // Ordered by name, starting at dns_name, as Route 53 pages them.
                zones.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
                if let Some(d) = dns {
                    let d = fqdn(&d);
                    zones.retain(|z| z.name >= d);
                }
                Ok(to_value(zones))
            })
        }
        "AssociateVPCWithHostedZone" => {
            let id = zone_id(&call.arg_as::<String>("id")?);
            let vpc: ZoneVpc = call.arg_as("vpc")?;
            ctx.mutate(|s| {
                if !s
                    .region(&vpc.vpc_region)
                    .is_some_and(|r| r.vpcs.contains_key(&vpc.vpc_id))
                {
                    return Err(CapError::invalid_parameter(format!(
                        "The VPC {} does not exist",
                        vpc.vpc_id
                    ))
                    .with("InvalidVPCId"));
                }
                let z = s.global.zones.get_mut(&id).ok_or_else(|| zone_nf(&id))?;
                if !z.zone.private_zone {
                    return Err(CapError::invalid_parameter(
                        "public zones cannot be associated with a VPC",
                    )
                    .with("PublicZoneVPCAssociation"));
                }
                if z.zone.vpcs.contains(&vpc) {
                    return Err(CapError::already_exists(
                        "ConflictingDomainExists",
                        format!("{} is already associated", vpc.vpc_id),
                    ));
                }
                z.zone.vpcs.push(vpc);
                Ok(to_value(info("")))
            })
        }
        "DeleteHostedZone" => {
            let id = zone_id(&call.arg_as::<String>("id")?);
            ctx.mutate(|s| {
                let z = s.global.zones.get(&id).ok_or_else(|| zone_nf(&id))?;
                if !z.records.is_empty() {
                    return Err(CapError::new(
                        ErrorKind::DependencyViolation,
                        "HostedZoneNotEmpty",
                        "The specified hosted zone contains non-required resource record sets and so cannot be deleted.",
                    ));
                }
                s.global.zones.remove(&id);
                Ok(to_value(info("")))
            })
        }
        "ChangeResourceRecordSets" => {
            let id = zone_id(&call.arg_as::<String>("zone_id")?);
            let changes: Vec<Change> = call.arg_as("changes")?;
            ctx.mutate(|s| {
                let checks: Vec<String> = s.global.health_checks.keys().cloned().collect();
                let z = s.global.zones.get_mut(&id).ok_or_else(|| zone_nf(&id))?;
                let zone_name = z.zone.name.clone();
                // All or nothing, like a Route 53 change batch.
                let mut records = z.records.clone();
                for c in changes {
                    let mut rs = c.record_set;
                    rs.name = fqdn(&rs.name);
                    if rs.name != zone_name && !rs.name.ends_with(&format!(".{zone_name}")) {
                        return Err(batch(format!("RRSet with DNS name {} is not permitted in zone {zone_name}", rs.name)));
                    }
                    if let Some(h) = &rs.health_check_id
                        && !checks.contains(h)
                    {
                        return Err(batch(format!("The health check {h} does not exist")));
                    }
                    if rs.weight.is_some() && rs.failover.is_some() {
                        return Err(batch("a record set cannot be both weighted and failover".into()));
                    }
                    if (rs.weight.is_some() || rs.failover.is_some()) && rs.set_identifier.is_none() {
                        return Err(batch(format!("Invalid request: SetIdentifier is required for {}", rs.name)));
                    }
                    if let Some(f) = &rs.failover
                        && f != "PRIMARY"
                        && f != "SECONDARY"
                    {
                        return Err(batch(format!("failover must be PRIMARY or SECONDARY, not {f}")));
                    }
                    let pos = records.iter().position(|x| same_set(x, &rs));
                    match (c.action, pos) {
                        (ChangeAction::Create, Some(_)) => {
                            return Err(batch(format!(
                                "Tried to create resource record set [name='{}', type='{}'{}] but it already exists",
                                rs.name,
                                rs.record_type,
                                rs.set_identifier.as_ref().map(|s| format!(", set-identifier='{s}'")).unwrap_or_default()
                            )));
                        }
                        (ChangeAction::Delete, None) => {
                            return Err(batch(format!(
                                "Tried to delete resource record set [name='{}', type='{}'] but it was not found",
                                rs.name, rs.record_type
                            )));
                        }
                        (ChangeAction::Delete, Some(i)) => {
                            records.remove(i);
                        }
                        (_, Some(i)) => records[i] = rs,
                        (_, None) => records.push(rs),
                    }
                }
                z.records = records;
                Ok(to_value(info("")))
            })
        }
        "ListResourceRecordSets" => {
            let id = zone_id(&call.arg_as::<String>("zone_id")?);
            let name: Option<String> = call.arg_as("name")?;
            ctx.read(|s| {
                let z = s.global.zones.get(&id).ok_or_else(|| zone_nf(&id))?;
                let mut all = default_records(&z.zone);
                all.extend(z.records.iter().cloned());
                if let Some(n) = name {
                    let n = fqdn(&n);
                    all.retain(|r| r.name == n);
                }
                Ok(to_value(all))
            })
        }
        "CreateHealthCheck" => {
            let caller: String = call.arg_as("caller_reference")?;
            let name: Option<String> = call.arg_as("name")?;
            let config: HealthCheckConfig = call.arg_as("config")?;
            if !matches!(
                config.check_type.as_str(),
                "TCP" | "HTTP" | "HTTPS" | "CLOUDWATCH_METRIC" | "CALCULATED" | "POSTGRES"
            ) {
                return Err(CapError::invalid_parameter(format!(
                    "unknown health check type {}",
                    config.check_type
                )));
            }
            if config.check_type == "POSTGRES"
                && config.db_instance_identifier.is_none()
                && config.fqdn.is_none()
            {
                return Err(CapError::invalid_parameter(
                    "a POSTGRES health check needs db_instance_identifier or fqdn",
                ));
            }
            ctx.mutate(|s| {
                if let Some(existing) = s.global.health_checks.values().find(|h| h.caller_reference == caller) {
                    if existing.config == config {
                        return Ok(to_value(existing.clone()));
                    }
                    return Err(CapError::already_exists(
                        "HealthCheckAlreadyExists",
                        format!("A health check with caller reference {caller} already exists with a different configuration"),
                    ));
                }
                let hc = HealthCheck { id: ids::uuid(), caller_reference: caller, config, name };
                s.global.health_checks.insert(hc.id.clone(), hc.clone());
                Ok(to_value(hc))
            })
        }
        "GetHealthCheck" => {
            let id: String = call.arg_as("id")?;
            ctx.read(|s| {
                s.global
                    .health_checks
                    .get(&id)
                    .map(to_value)
                    .ok_or_else(|| hc_nf(&id))
            })
        }
        "ListHealthChecks" => {
            Ok(ctx.read(|s| to_value(s.global.health_checks.values().collect::<Vec<_>>())))
        }
        "GetHealthCheckStatus" => {
            let id: String = call.arg_as("id")?;
            if !ctx.read(|s| s.global.health_checks.contains_key(&id)) {
                return Err(hc_nf(&id));
            }
            Ok(to_value(ctx.health.status(&id)))
        }
        "DeleteHealthCheck" => {
            let id: String = call.arg_as("id")?;
            ctx.mutate(|s| {
                if !s.global.health_checks.contains_key(&id) {
                    return Err(hc_nf(&id));
                }
                if s.global
                    .zones
                    .values()
                    .flat_map(|z| z.records.iter())
                    .any(|r| r.health_check_id.as_deref() == Some(&id))
                {
                    return Err(CapError::new(
                        ErrorKind::DependencyViolation,
                        "HealthCheckInUse",
                        format!("The health check {id} is still referenced from a record set"),
                    ));
                }
                s.global.health_checks.remove(&id);
                Ok(Value::Null)
            })
        }
        _ => Err(CapError::unsupported(call, "local")),
    }
}

trait With {
    fn with(self, code: &str) -> Self;
}
impl With for CapError {
    fn with(mut self, code: &str) -> Self {
        self.code = code.into();
        self
    }
}
