//! Secrets Manager replica regions: a replica is a read-only copy of the secret (same
//! name, the ARN in its own region) whose value stays readable when the primary region
//! is lost. Replicas are managed from the primary region only; a secret with replicas
//! cannot be deleted until they are removed, as on AWS.

use std::sync::Arc;

use runbook_caps::CapError;
use runbook_caps::types::secretsmanager::{ReplicationStatus, Secret};

use crate::daemon::Ctx;
use crate::secrets::{find, not_found, read_value, write_value};
use crate::state::{SecretRec, State};

fn invalid_request(msg: impl Into<String>) -> CapError {
    CapError::invalid_state("InvalidRequestException", msg)
}

/// The primary copy in `region`, refusing replicas and secrets scheduled for deletion.
fn primary<'a>(s: &'a State, region: &str, id: &str) -> Result<&'a SecretRec, CapError> {
    let rec = find(s, region, id)?;
    if let Some(p) = rec.secret.primary_region.as_deref()
        && p != region
    {
        return Err(invalid_request(format!(
            "{} in {region} is a replica; manage its replication from {p}",
            rec.secret.name
        )));
    }
    if rec.secret.deleted_date.is_some() {
        return Err(invalid_request(format!(
            "secret {id} is marked for deletion"
        )));
    }
    Ok(rec)
}

pub(crate) fn check_deletable(rec: &SecretRec, region: &str) -> Result<(), CapError> {
    match rec.secret.primary_region.as_deref() {
        Some(p) if p != region => Err(invalid_request(format!(
            "{} in {region} is a replica of {p}; remove the region from replication there",
            rec.secret.name
        ))),
        _ if !rec.secret.replication_status.is_empty() => Err(invalid_request(format!(
            "You can't delete secret {} that still has replica regions ({}); remove them first",
            rec.secret.name,
            rec.secret
                .replication_status
                .iter()
                .map(|r| r.region.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn replicate(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    add: &[String],
) -> Result<Secret, CapError> {
    let (name, arn) = ctx
        .read(|s| primary(s, region, id).map(|r| (r.secret.name.clone(), r.secret.arn.clone())))?;
    let value = read_value(&ctx.layout, region, &name)?;
    let targets: Vec<&String> = add.iter().filter(|r| r.as_str() != region).collect();
    for r in &targets {
        crate::fault::secret_region_gate(ctx, r)?;
    }
    ctx.mutate(|s| {
        let rec = primary(s, region, id)?.clone();
        let mut statuses = rec.secret.replication_status.clone();
        let mut new_replicas = Vec::new();
        for r in &targets {
            if statuses.iter().any(|x| &x.region == *r) {
                continue;
            }
            let clash = s
                .region(r)
                .and_then(|x| x.secrets.get(&name))
                .is_some_and(|x| x.secret.primary_region.as_deref() != Some(region));
            if clash {
                statuses.push(ReplicationStatus {
                    region: r.to_string(),
                    status: "Failed".into(),
                    status_message: Some(format!(
                        "Destination secret with the same name already exists in {r}"
                    )),
                });
                continue;
            }
            statuses.push(ReplicationStatus {
                region: r.to_string(),
                status: "InSync".into(),
                status_message: Some("Replication succeeded".into()),
            });
            new_replicas.push(r.to_string());
        }
        for r in &new_replicas {
            let replica = Secret {
                arn: arn.replacen(&format!(":{region}:"), &format!(":{r}:"), 1),
                name: name.clone(),
                description: rec.secret.description.clone(),
                created_date: Some(crate::ids::now_str()),
                deleted_date: None,
                primary_region: Some(region.to_string()),
                replication_status: Vec::new(),
            };
            s.region_mut(r).secrets.insert(
                name.clone(),
                SecretRec {
                    secret: replica,
                    tags: rec.tags.clone(),
                },
            );
        }
        // Values are written inside the commit closure so a failed write leaves no
        // replica recorded without its value.
        for r in &new_replicas {
            write_value(&ctx.layout, r, &name, &value)
                .map_err(|e| CapError::internal(format!("writing replica value: {e}")))?;
        }
        let p = s
            .region_mut(region)
            .secrets
            .get_mut(&name)
            .ok_or_else(|| not_found(id))?;
        p.secret.replication_status = statuses;
        if !p.secret.replication_status.is_empty() {
            p.secret.primary_region = Some(region.to_string());
        }
        Ok(p.secret.clone())
    })
}

pub(crate) fn remove(
    ctx: &Arc<Ctx>,
    region: &str,
    id: &str,
    remove: &[String],
) -> Result<Secret, CapError> {
    let mut removed = Vec::new();
    let out = ctx.mutate(|s| {
        let name = primary(s, region, id)?.secret.name.clone();
        for r in remove {
            let is_ours = s
                .region(r)
                .and_then(|x| x.secrets.get(&name))
                .is_some_and(|x| x.secret.primary_region.as_deref() == Some(region));
            if is_ours {
                s.region_mut(r).secrets.remove(&name);
                removed.push((r.clone(), name.clone()));
            }
        }
        let p = s
            .region_mut(region)
            .secrets
            .get_mut(&name)
            .ok_or_else(|| not_found(id))?;
        p.secret
            .replication_status
            .retain(|x| !remove.contains(&x.region));
        if p.secret.replication_status.is_empty() {
            p.secret.primary_region = None;
        }
        Ok(p.secret.clone())
    })?;
    for (r, name) in removed {
        let _ = std::fs::remove_file(ctx.layout.secret_file(&r, &name));
    }
    Ok(out)
}
