//! Secrets Manager: metadata in the region state, values in files mode 0600.

use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use runbook_caps::types::secretsmanager::{CreateSecretRequest, Secret};
use runbook_caps::{CapCall, CapError};
use serde_json::{Value, json};

use crate::daemon::Ctx;
use crate::ids;
use crate::layout::Layout;
use crate::state::{SecretRec, State};

pub(crate) fn not_found(id: &str) -> CapError {
    CapError::not_found(
        "ResourceNotFoundException",
        format!("Secrets Manager can't find the specified secret: {id}"),
    )
}

pub(crate) fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    match call.action.as_str() {
        "CreateSecret" => {
            let req: CreateSecretRequest = call.arg_as("request")?;
            create(ctx, &region, req).map(|s| serde_json::to_value(s).unwrap())
        }
        "DescribeSecret" => {
            let id: String = call.arg_as("secret_id")?;
            ctx.read(|s| find(s, &region, &id).map(|r| serde_json::to_value(&r.secret).unwrap()))
        }
        "ListSecrets" => {
            let prefix: Option<String> = call.arg_as("name_prefix")?;
            Ok(ctx.read(|s| {
                let list: Vec<&Secret> = s
                    .region(&region)
                    .map(|r| {
                        r.secrets
                            .values()
                            .filter(|r| r.secret.deleted_date.is_none())
                            .filter(|r| {
                                prefix
                                    .as_deref()
                                    .is_none_or(|p| r.secret.name.starts_with(p))
                            })
                            .map(|r| &r.secret)
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::to_value(list).unwrap()
            }))
        }
        "ReplicateSecretToRegions" => {
            let id: String = call.arg_as("secret_id")?;
            let add: Vec<String> = call.arg_as("add_replica_regions")?;
            crate::secrets_replica::replicate(ctx, &region, &id, &add)
                .map(|s| serde_json::to_value(s).unwrap())
        }
        "RemoveRegionsFromReplication" => {
            let id: String = call.arg_as("secret_id")?;
            let remove: Vec<String> = call.arg_as("remove_replica_regions")?;
            crate::secrets_replica::remove(ctx, &region, &id, &remove)
                .map(|s| serde_json::to_value(s).unwrap())
        }
        "DeleteSecret" => {
            let id: String = call.arg_as("secret_id")?;
            let force: bool = call.arg_as("force_delete_without_recovery")?;
            let name = ctx.mutate(|s| {
                let rec = find(s, &region, &id)?;
                crate::secrets_replica::check_deletable(rec, &region)?;
                let name = rec.secret.name.clone();
                let secrets = &mut s.region_mut(&region).secrets;
                if force {
                    secrets.remove(&name);
                } else if let Some(r) = secrets.get_mut(&name) {
                    // Scheduled for deletion after the recovery window, as in AWS.
                    r.secret.deleted_date =
                        Some(ids::rfc3339(ids::now() + time::Duration::days(30)));
                }
                Ok(name)
            })?;
            if force {
                let _ = std::fs::remove_file(ctx.layout.secret_file(&region, &name));
            }
            Ok(Value::Null)
        }
        _ => Err(CapError::unsupported(call, "local")),
    }
}

fn create(ctx: &Ctx, region: &str, req: CreateSecretRequest) -> Result<Secret, CapError> {
    if req.name.is_empty() || req.name.len() > 512 {
        return Err(CapError::invalid_parameter(
            "secret name must be 1-512 characters",
        ));
    }
    let mut value = serde_json::Map::new();
    if let Some(u) = &req.username {
        value.insert("username".into(), json!(u));
    }
    if let Some(spec) = &req.generate_password {
        value.insert(
            "password".into(),
            json!(ids::password(
                spec.length as usize,
                !spec.exclude_punctuation
            )),
        );
    }
    let secret = ctx.mutate(|s| {
        if let Some(existing) = s.region(region).and_then(|r| r.secrets.get(&req.name)) {
            if existing.secret.deleted_date.is_some() {
                return Err(CapError::invalid_state(
                    "InvalidRequestException",
                    format!("You can't create this secret because a secret with this name is already scheduled for deletion: {}", req.name),
                ));
            }
            return Err(CapError::already_exists(
                "ResourceExistsException",
                format!("The operation failed because the secret {} already exists.", req.name),
            ));
        }
        let secret = Secret {
            arn: ids::arn("secretsmanager", region, &format!("secret:{}-{}", req.name, ids::secret_suffix())),
            name: req.name.clone(),
            description: req.description.clone(),
            created_date: Some(ids::now_str()),
            deleted_date: None,
            ..Default::default()
        };
        s.region_mut(region).secrets.insert(req.name.clone(), SecretRec { secret: secret.clone(), tags: req.tags.clone() });
        Ok(secret)
    })?;
    write_value(&ctx.layout, region, &req.name, &Value::Object(value))
        .map_err(|e| CapError::internal(e.to_string()))?;
    Ok(secret)
}

/// By name, full ARN, or ARN without the random suffix.
pub(crate) fn find<'a>(s: &'a State, region: &str, id: &str) -> Result<&'a SecretRec, CapError> {
    let r = s.region(region).ok_or_else(|| not_found(id))?;
    r.secrets
        .values()
        .find(|r| {
            r.secret.name == id
                || r.secret.arn == id
                || r.secret
                    .arn
                    .rsplit_once('-')
                    .is_some_and(|(head, _)| head == id)
        })
        .ok_or_else(|| not_found(id))
}

pub(crate) fn write_value(
    layout: &Layout,
    region: &str,
    name: &str,
    value: &Value,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = layout.secrets_dir(region);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let path = layout.secret_file(region, name);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(serde_json::to_string(value).unwrap().as_bytes())?;
    drop(f);
    std::fs::rename(tmp, path)
}

/// `{"username","password"}` of a live secret (the host-side resolution: never returned
/// to plugins, never logged).
pub(crate) fn credentials(ctx: &Ctx, region: &str, id: &str) -> Result<(String, String), CapError> {
    let name = ctx.read(|s| {
        let r = find(s, region, id)?;
        if r.secret.deleted_date.is_some() {
            return Err(CapError::invalid_state(
                "InvalidRequestException",
                format!("secret {id} is marked for deletion"),
            ));
        }
        Ok(r.secret.name.clone())
    })?;
    let v = read_value(&ctx.layout, region, &name)?;
    let user = v
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let password = v
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if password.is_empty() {
        return Err(CapError::invalid_parameter(format!(
            "secret {id} holds no password"
        )));
    }
    Ok((user, password))
}

pub(crate) fn read_value(layout: &Layout, region: &str, name: &str) -> Result<Value, CapError> {
    let path = layout.secret_file(region, name);
    let bytes = std::fs::read(&path).map_err(|_| not_found(name))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CapError::internal(format!("secret file {}: {e}", path.display())))
}

/// The operator's `runbook secret get NAME`: the SecretString JSON.
pub(crate) fn read_secret_file(
    layout: &Layout,
    id: &str,
    region: Option<&str>,
) -> Result<Value, CapError> {
    let st = State::load(layout).map_err(|e| CapError::internal(e.to_string()))?;
    for (rname, _) in st
        .regions
        .iter()
        .filter(|(r, _)| region.is_none_or(|want| want == r.as_str()))
    {
        if let Ok(rec) = find(&st, rname, id) {
            if rec.secret.deleted_date.is_some() {
                return Err(CapError::invalid_state(
                    "InvalidRequestException",
                    format!("secret {id} is marked for deletion"),
                ));
            }
            return read_value(layout, rname, &rec.secret.name);
        }
    }
    Err(not_found(id))
}
