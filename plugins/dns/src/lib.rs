//! Route 53 steps of the DR runbooks: the private zone, health checks tied to CloudWatch
//! alarms (Route 53's checkers cannot reach private RDS endpoints), the weighted CNAME
//! clients use, and weight shifts. Records keep their value and health check when only
//! their weight changes, so failover needs nothing but the set identifiers.
use std::collections::BTreeMap;

use runbook_plugin_sdk::cap::route53::{self, Change, ChangeAction, HealthCheckConfig, RecordSet, ZoneVpc};
use runbook_plugin_sdk::{StepError, export_step, info};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vpc {
    vpc_id: String,
    region: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Weighted {
    set_identifier: String,
    value: String,
    weight: u32,
    #[serde(default)]
    health_check_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "Op")]
enum Op {
    /// The private zone, bound to every VPC given (the first one creates it).
    EnsureZone {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Vpcs")]
        vpcs: Vec<Vpc>,
    },
    /// A health check of a DB instance, found again by name: a PostgreSQL protocol probe
    /// where the provider can run one (the local daemon can), else — Route 53's
    /// checkers cannot reach private RDS endpoints — a `CLOUDWATCH_METRIC` check that
    /// follows the instance's health alarm.
    EnsureHealthCheck {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "DbInstance")]
        db_instance: String,
        #[serde(rename = "DbRegion")]
        db_region: String,
        #[serde(rename = "AlarmName")]
        alarm_name: String,
        #[serde(rename = "AlarmRegion")]
        alarm_region: String,
        /// Unique per creation attempt (Route 53 refuses a reused caller reference).
        #[serde(rename = "CallerReference")]
        caller_reference: String,
    },
    /// Upserts weighted records of one name (value, weight and health check).
    EnsureWeighted {
        #[serde(rename = "ZoneName")]
        zone_name: String,
        #[serde(rename = "RecordName")]
        record_name: String,
        #[serde(rename = "Ttl", default = "ttl")]
        ttl: u32,
        #[serde(rename = "Records")]
        records: Vec<Weighted>,
    },
    /// Changes only the weights of existing weighted records, in one change batch.
    SetWeights {
        #[serde(rename = "ZoneName")]
        zone_name: String,
        #[serde(rename = "RecordName")]
        record_name: String,
        #[serde(rename = "Weights")]
        weights: BTreeMap<String, u32>,
    },
    /// Fails with `Unhealthy` (retry) until the named health check passes: never send
    /// clients to a target Route 53 would still skip.
    WaitHealthy {
        #[serde(rename = "Name")]
        name: String,
    },
    GetWeights {
        #[serde(rename = "ZoneName")]
        zone_name: String,
        #[serde(rename = "RecordName")]
        record_name: String,
    },
    /// Deletes the zone with its records, and the named health checks.
    Teardown {
        #[serde(rename = "ZoneName")]
        zone_name: String,
        #[serde(rename = "HealthChecks")]
        health_checks: Vec<String>,
    },
}

fn ttl() -> u32 {
    5
}

fn fq(name: &str) -> String {
    if name.ends_with('.') { name.to_string() } else { format!("{name}.") }
}

fn find_zone(name: &str) -> Result<Option<route53::HostedZone>, StepError> {
    let want = fq(name);
    Ok(route53::list_hosted_zones_by_name(Some(&want))?
        .into_iter()
        .find(|z| z.name == want && z.private_zone))
}

fn zone_id(name: &str) -> Result<String, StepError> {
    find_zone(name)?
        .map(|z| z.id)
        .ok_or_else(|| StepError::new("NoSuchHostedZone", format!("no private hosted zone {name}")))
}

fn weighted(zone: &str, record: &str) -> Result<Vec<RecordSet>, StepError> {
    let want = fq(record);
    Ok(route53::list_resource_record_sets(zone, Some(&want))?
        .into_iter()
        .filter(|r| fq(&r.name) == want && r.set_identifier.is_some() && r.weight.is_some())
        .collect())
}

fn weights_of(sets: &[RecordSet]) -> Value {
    let mut m = serde_json::Map::new();
    let mut values = serde_json::Map::new();
    for r in sets {
        let id = r.set_identifier.clone().unwrap_or_default();
        m.insert(id.clone(), json!(r.weight));
        values.insert(id, json!(r.values.first()));
    }
    json!({ "Weights": m, "Values": values })
}

fn run(op: Op) -> Result<Value, StepError> {
    match op {
        Op::EnsureZone { name, vpcs } => {
            let first = vpcs
                .first()
                .ok_or_else(|| StepError::new("InvalidParameterValue", "a private zone needs a VPC"))?;
            let mut created = false;
            let zone = match find_zone(&name)? {
                Some(z) => z,
                None => {
                    created = true;
                    route53::create_hosted_zone(
                        &name,
                        &format!("runbook-{name}-{}", first.vpc_id),
                        Some(&ZoneVpc { vpc_id: first.vpc_id.clone(), vpc_region: first.region.clone() }),
                        Some("DR routing for PostgreSQL (managed by runbook)"),
                    )?
                }
            };
            let zone = route53::get_hosted_zone(&zone.id)?;
            for v in &vpcs {
                if zone.vpcs.iter().any(|z| z.vpc_id == v.vpc_id) {
                    continue;
                }
                route53::associate_vpc_with_hosted_zone(
                    &zone.id,
                    &ZoneVpc { vpc_id: v.vpc_id.clone(), vpc_region: v.region.clone() },
                )?;
                info!("associated {} ({}) with {name}", v.vpc_id, v.region);
            }
            Ok(json!({ "ZoneId": zone.id, "Name": zone.name, "Created": created }))
        }
        Op::EnsureHealthCheck { name, db_instance, db_region, alarm_name, alarm_region, caller_reference } => {
            if let Some(hc) = route53::list_health_checks()?
                .into_iter()
                .find(|h| h.name.as_deref() == Some(name.as_str()))
            {
                return Ok(json!({ "HealthCheckId": hc.id, "Name": name, "Type": hc.config.check_type, "Created": false }));
            }
            let probe = HealthCheckConfig {
                check_type: "POSTGRES".into(),
                fqdn: None,
                ip_address: None,
                port: None,
                resource_path: None,
                request_interval: 10,
                failure_threshold: 2,
                alarm_name: None,
                alarm_region: None,
                insufficient_data_health_status: None,
                db_instance_identifier: Some(db_instance),
                db_instance_region: Some(db_region),
            };
            match route53::create_health_check(&caller_reference, Some(&name), &probe) {
                Ok(hc) => {
                    info!("created health check {} ({name}, PostgreSQL probe)", hc.id);
                    return Ok(json!({ "HealthCheckId": hc.id, "Name": name, "Type": "POSTGRES", "Created": true }));
                }
                Err(e) if e.kind == runbook_plugin_sdk::ErrorKind::InvalidParameter => {
                    info!("PostgreSQL probes refused ({}): using the alarm {alarm_name}", e.message);
                }
                Err(e) => return Err(e.into()),
            }
            let hc = route53::create_health_check(
                &format!("{caller_reference}-cw"),
                Some(&name),
                &HealthCheckConfig {
                    check_type: "CLOUDWATCH_METRIC".into(),
                    fqdn: None,
                    ip_address: None,
                    port: None,
                    resource_path: None,
                    request_interval: 30,
                    failure_threshold: 3,
                    alarm_name: Some(alarm_name),
                    alarm_region: Some(alarm_region),
                    // The alarm has no data when the instance is down.
                    insufficient_data_health_status: Some("Unhealthy".into()),
                    db_instance_identifier: None,
                    db_instance_region: None,
                },
            )?;
            info!("created health check {} ({name}, alarm {})", hc.id, hc.config.alarm_name.as_deref().unwrap_or(""));
            Ok(json!({ "HealthCheckId": hc.id, "Name": name, "Type": "CLOUDWATCH_METRIC", "Created": true }))
        }
        Op::EnsureWeighted { zone_name, record_name, ttl, records } => {
            let zone = zone_id(&zone_name)?;
            let existing = weighted(&zone, &record_name)?;
            let changes: Vec<Change> = records
                .iter()
                .filter(|w| {
                    !existing.iter().any(|e| {
                        e.set_identifier.as_deref() == Some(w.set_identifier.as_str())
                            && e.weight == Some(w.weight)
                            && e.values.first() == Some(&w.value)
                            && e.health_check_id == w.health_check_id
                            && e.ttl == Some(ttl)
                    })
                })
                .map(|w| Change {
                    action: ChangeAction::Upsert,
                    record_set: RecordSet {
                        name: fq(&record_name),
                        record_type: "CNAME".into(),
                        ttl: Some(ttl),
                        values: vec![w.value.clone()],
                        set_identifier: Some(w.set_identifier.clone()),
                        weight: Some(w.weight),
                        failover: None,
                        health_check_id: w.health_check_id.clone(),
                    },
                })
                .collect();
            if !changes.is_empty() {
                route53::change_resource_record_sets(&zone, &changes)?;
                info!("{record_name}: {} record(s) upserted", changes.len());
            }
            let mut out = weights_of(&weighted(&zone, &record_name)?);
            out["Changed"] = json!(changes.len());
            out["ZoneId"] = json!(zone);
            Ok(out)
        }
        Op::SetWeights { zone_name, record_name, weights } => {
            let zone = zone_id(&zone_name)?;
            let existing = weighted(&zone, &record_name)?;
            let mut changes = Vec::new();
            for (id, w) in &weights {
                let Some(rec) = existing.iter().find(|r| r.set_identifier.as_deref() == Some(id.as_str()))
                else {
                    return Err(StepError::new(
                        "NoSuchRecord",
                        format!("{record_name} has no weighted record '{id}'"),
                    ));
                };
                if rec.weight != Some(*w) {
                    let mut r = rec.clone();
                    r.weight = Some(*w);
                    changes.push(Change { action: ChangeAction::Upsert, record_set: r });
                }
            }
            if !changes.is_empty() {
                // One batch: both weights change together or not at all.
                route53::change_resource_record_sets(&zone, &changes)?;
            }
            info!("{record_name}: weights {}", json!(weights));
            let mut out = weights_of(&weighted(&zone, &record_name)?);
            out["Changed"] = json!(changes.len());
            Ok(out)
        }
        Op::WaitHealthy { name } => {
            let hc = route53::list_health_checks()?
                .into_iter()
                .find(|h| h.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| StepError::new("NoSuchHealthCheck", format!("no health check named {name}")))?;
            let st = route53::get_health_check_status(&hc.id)?;
            if st.healthy {
                Ok(json!({ "HealthCheckId": hc.id, "Healthy": true, "Observations": st.observations }))
            } else {
                Err(StepError::new(
                    "Unhealthy",
                    format!("{name} ({}): {}", hc.id, st.observations.first().cloned().unwrap_or_default()),
                ))
            }
        }
        Op::GetWeights { zone_name, record_name } => {
            let zone = zone_id(&zone_name)?;
            Ok(weights_of(&weighted(&zone, &record_name)?))
        }
        Op::Teardown { zone_name, health_checks } => {
            let mut deleted = Vec::new();
            if let Some(z) = find_zone(&zone_name)? {
                let records: Vec<Change> = route53::list_resource_record_sets(&z.id, None)?
                    .into_iter()
                    // The zone's own NS and SOA go with the zone.
                    .filter(|r| !(matches!(r.record_type.as_str(), "NS" | "SOA") && fq(&r.name) == fq(&zone_name)))
                    .map(|r| Change { action: ChangeAction::Delete, record_set: r })
                    .collect();
                if !records.is_empty() {
                    route53::change_resource_record_sets(&z.id, &records)?;
                }
                route53::delete_hosted_zone(&z.id)?;
                deleted.push(format!("zone {} ({} records)", z.id, records.len()));
            }
            for hc in route53::list_health_checks()? {
                if hc.name.as_ref().is_some_and(|n| health_checks.contains(n)) {
                    if runbook_plugin_sdk::deleted(route53::delete_health_check(&hc.id))? {
                        deleted.push(format!("health check {}", hc.id));
                    }
                }
            }
            info!("deleted {}", deleted.join(", "));
            Ok(json!({ "Deleted": deleted }))
        }
    }
}

export_step!(run);
