//! `route53` on aws-sdk-route53 (global: one client, us-east-1).

use aws_sdk_route53::types as t;
use runbook_caps::types::route53::*;
use runbook_caps::{CapCall, CapError};
use serde_json::Value;

use crate::error::send;
use crate::{AwsProvider, to_value};

fn bare(id: &str) -> String {
    id.trim_start_matches("/hostedzone/")
        .trim_start_matches("/change/")
        .trim_start_matches("/healthcheck/")
        .to_string()
}

fn build_err(e: impl std::fmt::Display) -> CapError {
    CapError::invalid_parameter(e.to_string())
}

fn change_info(c: Option<&t::ChangeInfo>) -> ChangeInfo {
    c.map(|c| ChangeInfo {
        id: bare(c.id()),
        status: c.status().as_str().to_string(),
    })
    .unwrap_or_default()
}

fn zone(z: &t::HostedZone, vpcs: &[t::Vpc]) -> HostedZone {
    HostedZone {
        id: bare(z.id()),
        name: z.name().to_string(),
        private_zone: z.config().is_some_and(|c| c.private_zone()),
        comment: z
            .config()
            .and_then(|c| c.comment())
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        vpcs: vpcs.iter().map(zone_vpc).collect(),
        record_count: z
            .resource_record_set_count()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    }
}

fn zone_vpc(v: &t::Vpc) -> ZoneVpc {
    ZoneVpc {
        vpc_id: v.vpc_id().unwrap_or_default().into(),
        vpc_region: v
            .vpc_region()
            .map(|r| r.as_str().to_string())
            .unwrap_or_default(),
    }
}

fn vpc(v: &ZoneVpc) -> t::Vpc {
    t::Vpc::builder()
        .vpc_id(&v.vpc_id)
        .vpc_region(t::VpcRegion::from(v.vpc_region.as_str()))
        .build()
}

fn record_set(r: &t::ResourceRecordSet) -> RecordSet {
    let mut values: Vec<String> = r
        .resource_records()
        .iter()
        .map(|x| x.value().to_string())
        .collect();
    if let Some(a) = r.alias_target() {
        values.push(a.dns_name().to_string());
    }
    RecordSet {
        name: r.name().to_string(),
        record_type: r.r#type().as_str().to_string(),
        ttl: r.ttl().and_then(|x| u32::try_from(x).ok()),
        values,
        set_identifier: r.set_identifier().map(str::to_string),
        weight: r.weight().and_then(|x| u32::try_from(x).ok()),
        failover: r.failover().map(|f| f.as_str().to_string()),
        health_check_id: r.health_check_id().map(str::to_string),
    }
}

fn to_sdk_record(r: &RecordSet) -> Result<t::ResourceRecordSet, CapError> {
    let records = r
        .values
        .iter()
        .map(|v| t::ResourceRecord::builder().value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_err)?;
    t::ResourceRecordSet::builder()
        .name(fqdn(&r.name))
        .r#type(t::RrType::from(r.record_type.as_str()))
        .set_ttl(r.ttl.map(i64::from))
        .set_resource_records((!records.is_empty()).then_some(records))
        .set_set_identifier(r.set_identifier.clone())
        .set_weight(r.weight.map(i64::from))
        .set_failover(
            r.failover
                .as_deref()
                .map(t::ResourceRecordSetFailover::from),
        )
        .set_health_check_id(r.health_check_id.clone())
        .build()
        .map_err(build_err)
}

fn config(c: Option<&t::HealthCheckConfig>) -> HealthCheckConfig {
    let Some(c) = c else {
        return HealthCheckConfig::default();
    };
    HealthCheckConfig {
        check_type: c.r#type().as_str().to_string(),
        fqdn: c.fully_qualified_domain_name().map(str::to_string),
        ip_address: c.ip_address().map(str::to_string),
        port: c.port().and_then(|p| u16::try_from(p).ok()),
        resource_path: c.resource_path().map(str::to_string),
        request_interval: c
            .request_interval()
            .and_then(|x| u32::try_from(x).ok())
            .unwrap_or(0),
        failure_threshold: c
            .failure_threshold()
            .and_then(|x| u32::try_from(x).ok())
            .unwrap_or(0),
        alarm_name: c.alarm_identifier().map(|a| a.name().to_string()),
        alarm_region: c
            .alarm_identifier()
            .map(|a| a.region().as_str().to_string()),
        insufficient_data_health_status: c
            .insufficient_data_health_status()
            .map(|s| s.as_str().to_string()),
        db_instance_identifier: None,
        db_instance_region: None,
    }
}

/// What CreateHealthCheck refuses before sending anything (for `runbook plan`).
pub(crate) fn check_config(call: &CapCall) -> Result<(), CapError> {
    to_sdk_config(&call.arg_as::<HealthCheckConfig>("config")?).map(|_| ())
}

fn to_sdk_config(c: &HealthCheckConfig) -> Result<t::HealthCheckConfig, CapError> {
    if c.check_type == "POSTGRES" {
        return Err(CapError::invalid_parameter(
            "POSTGRES health checks exist only on the local provider; on aws use \
             CLOUDWATCH_METRIC checks tied to alarms (Route 53 checkers cannot reach private \
             RDS endpoints)",
        ));
    }
    // Metric and calculated checks take neither interval nor threshold.
    let probes = !matches!(c.check_type.as_str(), "CLOUDWATCH_METRIC" | "CALCULATED");
    let alarm = match (&c.alarm_name, &c.alarm_region) {
        (Some(n), Some(r)) => Some(
            t::AlarmIdentifier::builder()
                .name(n)
                .region(t::CloudWatchRegion::from(r.as_str()))
                .build()
                .map_err(build_err)?,
        ),
        (None, None) => None,
        _ => {
            return Err(CapError::invalid_parameter(
                "alarm-name and alarm-region go together",
            ));
        }
    };
    t::HealthCheckConfig::builder()
        .r#type(t::HealthCheckType::from(c.check_type.as_str()))
        .set_fully_qualified_domain_name(c.fqdn.clone())
        .set_ip_address(c.ip_address.clone())
        .set_port(c.port.map(i32::from))
        .set_resource_path(c.resource_path.clone())
        .set_request_interval(
            (probes && c.request_interval > 0).then_some(c.request_interval as i32),
        )
        .set_failure_threshold(
            (probes && c.failure_threshold > 0).then_some(c.failure_threshold as i32),
        )
        .set_alarm_identifier(alarm)
        .set_insufficient_data_health_status(
            c.insufficient_data_health_status
                .as_deref()
                .map(t::InsufficientDataHealthStatus::from),
        )
        .build()
        .map_err(build_err)
}

/// `Name` tags of health checks (ListTagsForResources takes ten ids per call).
async fn names(
    c: &aws_sdk_route53::Client,
    call: &CapCall,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, CapError> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(10) {
        let o = send(
            call,
            "ListTagsForResources",
            c.list_tags_for_resources()
                .resource_type(t::TagResourceType::Healthcheck)
                .set_resource_ids(Some(chunk.to_vec()))
                .send(),
        )
        .await?;
        for set in o.resource_tag_sets() {
            if let (Some(id), Some(tag)) = (
                set.resource_id(),
                set.tags().iter().find(|x| x.key() == Some("Name")),
            ) {
                out.insert(id.to_string(), tag.value().unwrap_or_default().to_string());
            }
        }
    }
    Ok(out)
}

fn health_check(h: &t::HealthCheck, name: Option<String>) -> HealthCheck {
    HealthCheck {
        id: h.id().to_string(),
        caller_reference: h.caller_reference().to_string(),
        config: config(h.health_check_config()),
        name,
    }
}

async fn get_zone(
    c: &aws_sdk_route53::Client,
    call: &CapCall,
    id: &str,
) -> Result<HostedZone, CapError> {
    let o = send(
        call,
        "GetHostedZone",
        c.get_hosted_zone().id(bare(id)).send(),
    )
    .await?;
    o.hosted_zone()
        .map(|z| zone(z, o.vpcs()))
        .ok_or_else(|| CapError::internal("AWS answered without the hosted zone"))
}

pub(crate) async fn handle(p: &AwsProvider, call: &CapCall) -> Result<Value, CapError> {
    let c = p.route53().await;
    match call.action.as_str() {
        "CreateHostedZone" => {
            let name: String = call.arg_as("name")?;
            let caller: String = call.arg_as("caller_reference")?;
            let v: Option<ZoneVpc> = call.arg_as("vpc")?;
            let comment: Option<String> = call.arg_as("comment")?;
            let o = send(
                call,
                "CreateHostedZone",
                c.create_hosted_zone()
                    .name(fqdn(&name))
                    .caller_reference(&caller)
                    .set_vpc(v.as_ref().map(vpc))
                    .hosted_zone_config(
                        t::HostedZoneConfig::builder()
                            .set_comment(comment)
                            .private_zone(v.is_some())
                            .build(),
                    )
                    .send(),
            )
            .await?;
            let id = o
                .hosted_zone()
                .map(|z| z.id().to_string())
                .ok_or_else(|| CapError::internal("AWS answered without the hosted zone"))?;
            get_zone(&c, call, &id).await.map(to_value)
        }
        "GetHostedZone" => {
            let id: String = call.arg_as("id")?;
            get_zone(&c, call, &id).await.map(to_value)
        }
        "ListHostedZonesByName" => {
            let dns: Option<String> = call.arg_as("dns_name")?;
            let mut out = Vec::new();
            let (mut next_name, mut next_id) = (dns.as_deref().map(fqdn), None::<String>);
            loop {
                let o = send(
                    call,
                    "ListHostedZonesByName",
                    c.list_hosted_zones_by_name()
                        .set_dns_name(next_name.take())
                        .set_hosted_zone_id(next_id.take())
                        .send(),
                )
                .await?;
                out.extend(o.hosted_zones().iter().map(|z| zone(z, &[])));
                if !o.is_truncated() {
                    break;
                }
                next_name = o.next_dns_name().map(str::to_string);
                next_id = o.next_hosted_zone_id().map(str::to_string);
            }
            // The list API omits VPC associations; fetch them for the zones named.
            if let Some(d) = dns.as_deref().map(fqdn) {
                for z in out.iter_mut().filter(|z| z.name == d && z.private_zone) {
                    z.vpcs = get_zone(&c, call, &z.id).await?.vpcs;
                }
            }
            Ok(to_value(out))
        }
        "AssociateVPCWithHostedZone" => {
            let id: String = call.arg_as("id")?;
            let v: ZoneVpc = call.arg_as("vpc")?;
            let o = send(
                call,
                "AssociateVPCWithHostedZone",
                c.associate_vpc_with_hosted_zone()
                    .hosted_zone_id(bare(&id))
                    .vpc(vpc(&v))
                    .send(),
            )
            .await?;
            Ok(to_value(change_info(o.change_info())))
        }
        "DeleteHostedZone" => {
            let id: String = call.arg_as("id")?;
            let o = send(
                call,
                "DeleteHostedZone",
                c.delete_hosted_zone().id(bare(&id)).send(),
            )
            .await?;
            Ok(to_value(change_info(o.change_info())))
        }
        "ChangeResourceRecordSets" => {
            let id: String = call.arg_as("zone_id")?;
            let changes: Vec<Change> = call.arg_as("changes")?;
            let list = changes
                .iter()
                .map(|ch| {
                    t::Change::builder()
                        .action(match ch.action {
                            ChangeAction::Create => t::ChangeAction::Create,
                            ChangeAction::Delete => t::ChangeAction::Delete,
                            ChangeAction::Upsert => t::ChangeAction::Upsert,
                        })
                        .resource_record_set(to_sdk_record(&ch.record_set)?)
                        .build()
                        .map_err(build_err)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let batch = t::ChangeBatch::builder()
                .set_changes(Some(list))
                .build()
                .map_err(build_err)?;
            let o = send(
                call,
                "ChangeResourceRecordSets",
                c.change_resource_record_sets()
                    .hosted_zone_id(bare(&id))
                    .change_batch(batch)
                    .send(),
            )
            .await?;
            Ok(to_value(change_info(o.change_info())))
        }
        "ListResourceRecordSets" => {
            let id: String = call.arg_as("zone_id")?;
            let name: Option<String> = call.arg_as("name")?;
            let want = name.as_deref().map(fqdn);
            let mut out = Vec::new();
            let (mut next_name, mut next_type, mut next_ident) =
                (want.clone(), None::<t::RrType>, None::<String>);
            loop {
                let o = send(
                    call,
                    "ListResourceRecordSets",
                    c.list_resource_record_sets()
                        .hosted_zone_id(bare(&id))
                        .set_start_record_name(next_name.take())
                        .set_start_record_type(next_type.take())
                        .set_start_record_identifier(next_ident.take())
                        .send(),
                )
                .await?;
                out.extend(
                    o.resource_record_sets()
                        .iter()
                        .map(record_set)
                        .filter(|r| want.as_deref().is_none_or(|w| fqdn(&r.name) == w)),
                );
                if !o.is_truncated() {
                    break;
                }
                next_name = o.next_record_name().map(str::to_string);
                next_type = o.next_record_type().cloned();
                next_ident = o.next_record_identifier().map(str::to_string);
            }
            Ok(to_value(out))
        }
        "CreateHealthCheck" => {
            let caller: String = call.arg_as("caller_reference")?;
            let name: Option<String> = call.arg_as("name")?;
            let cfg: HealthCheckConfig = call.arg_as("config")?;
            let o = send(
                call,
                "CreateHealthCheck",
                c.create_health_check()
                    .caller_reference(&caller)
                    .health_check_config(to_sdk_config(&cfg)?)
                    .send(),
            )
            .await?;
            let h = o
                .health_check()
                .ok_or_else(|| CapError::internal("AWS answered without the health check"))?;
            if let Some(n) = &name {
                send(
                    call,
                    "ChangeTagsForResource",
                    c.change_tags_for_resource()
                        .resource_type(t::TagResourceType::Healthcheck)
                        .resource_id(h.id())
                        .add_tags(t::Tag::builder().key("Name").value(n).build())
                        .send(),
                )
                .await?;
            }
            Ok(to_value(health_check(h, name)))
        }
        "GetHealthCheck" => {
            let id: String = call.arg_as("id")?;
            let o = send(
                call,
                "GetHealthCheck",
                c.get_health_check().health_check_id(&id).send(),
            )
            .await?;
            let h = o
                .health_check()
                .ok_or_else(|| CapError::internal("AWS answered without the health check"))?;
            let mut n = names(&c, call, &[h.id().to_string()]).await?;
            Ok(to_value(health_check(h, n.remove(h.id()))))
        }
        "ListHealthChecks" => {
            let mut all = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "ListHealthChecks",
                    c.list_health_checks().set_marker(marker.take()).send(),
                )
                .await?;
                all.extend(o.health_checks().iter().cloned());
                match (o.is_truncated(), o.next_marker()) {
                    (true, Some(m)) => marker = Some(m.to_string()),
                    _ => break,
                }
            }
            let ids: Vec<String> = all.iter().map(|h| h.id().to_string()).collect();
            let mut n = names(&c, call, &ids).await?;
            Ok(to_value(
                all.iter()
                    .map(|h| health_check(h, n.remove(h.id())))
                    .collect::<Vec<_>>(),
            ))
        }
        "GetHealthCheckStatus" => {
            let id: String = call.arg_as("id")?;
            let o = send(
                call,
                "GetHealthCheckStatus",
                c.get_health_check_status().health_check_id(&id).send(),
            )
            .await?;
            let mut obs: Vec<(String, String)> = o
                .health_check_observations()
                .iter()
                .filter_map(|x| {
                    let s = x.status_report()?;
                    Some((
                        s.checked_time().map(crate::rfc3339).unwrap_or_default(),
                        s.status().unwrap_or_default().to_string(),
                    ))
                })
                .collect();
            obs.sort_by(|a, b| b.0.cmp(&a.0));
            let ok = obs.iter().filter(|(_, s)| s.starts_with("Success")).count();
            // Route 53 calls an endpoint healthy when more than 18% of its checkers do.
            let healthy = !obs.is_empty() && ok * 100 > obs.len() * 18;
            Ok(to_value(HealthCheckStatus {
                id,
                healthy,
                observations: obs.into_iter().map(|(_, s)| s).collect(),
            }))
        }
        "DeleteHealthCheck" => {
            let id: String = call.arg_as("id")?;
            send(
                call,
                "DeleteHealthCheck",
                c.delete_health_check().health_check_id(&id).send(),
            )
            .await?;
            Ok(Value::Null)
        }
        _ => Err(CapError::unsupported(call, "aws")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_checks_carry_the_alarm_and_no_probe_settings() {
        let c = to_sdk_config(&HealthCheckConfig {
            check_type: "CLOUDWATCH_METRIC".into(),
            request_interval: 30,
            failure_threshold: 3,
            alarm_name: Some("primary-health".into()),
            alarm_region: Some("us-east-1".into()),
            insufficient_data_health_status: Some("LastKnownStatus".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.r#type().as_str(), "CLOUDWATCH_METRIC");
        let a = c.alarm_identifier().unwrap();
        assert_eq!(
            (a.name(), a.region().as_str()),
            ("primary-health", "us-east-1")
        );
        assert_eq!(
            c.insufficient_data_health_status().map(|s| s.as_str()),
            Some("LastKnownStatus")
        );
        assert_eq!((c.request_interval(), c.failure_threshold()), (None, None));
        let back = config(Some(&c));
        assert_eq!(back.alarm_name.as_deref(), Some("primary-health"));
        assert!(
            to_sdk_config(&HealthCheckConfig {
                check_type: "POSTGRES".into(),
                ..Default::default()
            })
            .is_err()
        );
    }
}
