//! `secretsmanager` on aws-sdk-secretsmanager. Plugins create and describe secrets; the
//! values are generated and read only here (host-side).

use aws_sdk_secretsmanager::types as t;
use runbook_caps::types::secretsmanager::{CreateSecretRequest, ReplicationStatus, Secret};
use runbook_caps::{CapCall, CapError};
use serde_json::{Value, json};

use crate::error::send;
use crate::{AwsProvider, rfc3339, to_value};

/// Characters RDS refuses in master passwords; never generated.
const EXCLUDED: &str = "/@\" '\\";

fn secret(
    arn: Option<&str>,
    name: Option<&str>,
    description: Option<&str>,
    created: Option<&aws_smithy_types::DateTime>,
    deleted: Option<&aws_smithy_types::DateTime>,
) -> Secret {
    Secret {
        arn: arn.unwrap_or_default().into(),
        name: name.unwrap_or_default().into(),
        description: description.map(str::to_string),
        created_date: created.map(rfc3339),
        deleted_date: deleted.map(rfc3339),
        ..Default::default()
    }
}

async fn describe(
    p: &AwsProvider,
    call: &CapCall,
    region: &str,
    id: &str,
) -> Result<Secret, CapError> {
    let o = send(
        call,
        "DescribeSecret",
        p.secrets(region)
            .await
            .describe_secret()
            .secret_id(id)
            .send(),
    )
    .await?;
    let replication: Vec<ReplicationStatus> = o
        .replication_status()
        .iter()
        .map(|x| ReplicationStatus {
            region: x.region().unwrap_or_default().into(),
            status: x
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            status_message: x.status_message().map(str::to_string),
        })
        .collect();
    Ok(Secret {
        primary_region: primary_region(region, o.primary_region(), !replication.is_empty()),
        replication_status: replication,
        ..secret(
            o.arn(),
            o.name(),
            o.description(),
            o.created_date(),
            o.deleted_date(),
        )
    })
}

/// `primary-region` as the contract has it: set when the secret is replicated (its own
/// region on the primary) and on a replica (the primary's region), else none. AWS
/// reports the field on every secret, moto only on replicas; this reads both alike.
fn primary_region(region: &str, reported: Option<&str>, has_replicas: bool) -> Option<String> {
    match reported.filter(|r| !r.is_empty()) {
        Some(r) if r != region => Some(r.to_string()),
        _ if has_replicas => Some(region.to_string()),
        _ => None,
    }
}

/// Regions of `s` whose replica exists or is being made (a `Failed` one may be asked
/// for again).
fn live_replicas(s: &Secret) -> Vec<&str> {
    s.replication_status
        .iter()
        .filter(|x| x.status != "Failed")
        .map(|x| x.region.as_str())
        .collect()
}

pub(crate) async fn handle(p: &AwsProvider, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let r = region.as_str();
    let c = p.secrets(r).await;
    match call.action.as_str() {
        "CreateSecret" => {
            let q: CreateSecretRequest = call.arg_as("request")?;
            let mut value = serde_json::Map::new();
            if let Some(u) = &q.username {
                value.insert("username".into(), json!(u));
            }
            if let Some(spec) = &q.generate_password {
                let o = send(
                    call,
                    "GetRandomPassword",
                    c.get_random_password()
                        .password_length(i64::from(spec.length.max(8)))
                        .exclude_punctuation(spec.exclude_punctuation)
                        .exclude_characters(EXCLUDED)
                        .send(),
                )
                .await?;
                let pw = o.random_password().unwrap_or_default();
                if pw.is_empty() {
                    return Err(CapError::internal("GetRandomPassword returned no password"));
                }
                value.insert("password".into(), json!(pw));
            }
            let tags: Vec<t::Tag> = q
                .tags
                .iter()
                .map(|x| t::Tag::builder().key(&x.key).value(&x.value).build())
                .collect();
            let o = send(
                call,
                "CreateSecret",
                c.create_secret()
                    .name(&q.name)
                    .set_description(q.description.clone())
                    .secret_string(Value::Object(value).to_string())
                    .set_tags(Some(tags))
                    .send(),
            )
            .await?;
            let arn = o.arn().unwrap_or(&q.name).to_string();
            describe(p, call, r, &arn).await.map(to_value)
        }
        "DescribeSecret" => {
            let id: String = call.arg_as("secret_id")?;
            describe(p, call, r, &id).await.map(to_value)
        }
        "ReplicateSecretToRegions" => {
            let id: String = call.arg_as("secret_id")?;
            let add: Vec<String> = call.arg_as("add_replica_regions")?;
            // Only the regions not replicated yet: asking again for an existing replica
            // is not an error to a runbook re-run (AWS refuses it, moto records a
            // failed duplicate), so the call is idempotent.
            let cur = describe(p, call, r, &id).await?;
            let have = live_replicas(&cur);
            let mut todo: Vec<t::ReplicaRegionType> = Vec::new();
            for region in &add {
                if !have.contains(&region.as_str())
                    && !todo.iter().any(|x| x.region() == Some(region.as_str()))
                {
                    todo.push(t::ReplicaRegionType::builder().region(region).build());
                }
            }
            if todo.is_empty() {
                return Ok(to_value(cur));
            }
            send(
                call,
                "ReplicateSecretToRegions",
                c.replicate_secret_to_regions()
                    .secret_id(&id)
                    .set_add_replica_regions(Some(todo))
                    .send(),
            )
            .await?;
            describe(p, call, r, &id).await.map(to_value)
        }
        "RemoveRegionsFromReplication" => {
            let id: String = call.arg_as("secret_id")?;
            let remove: Vec<String> = call.arg_as("remove_replica_regions")?;
            // Only regions that are replicas (a teardown re-run finds none left).
            let cur = describe(p, call, r, &id).await?;
            let todo: Vec<String> = remove
                .into_iter()
                .filter(|x| cur.replication_status.iter().any(|s| &s.region == x))
                .collect();
            if todo.is_empty() {
                return Ok(to_value(cur));
            }
            send(
                call,
                "RemoveRegionsFromReplication",
                c.remove_regions_from_replication()
                    .secret_id(&id)
                    .set_remove_replica_regions(Some(todo))
                    .send(),
            )
            .await?;
            describe(p, call, r, &id).await.map(to_value)
        }
        "ListSecrets" => {
            let prefix: Option<String> = call.arg_as("name_prefix")?;
            let filters = prefix.as_ref().map(|px| {
                vec![
                    t::Filter::builder()
                        .key(t::FilterNameStringType::Name)
                        .values(px)
                        .build(),
                ]
            });
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "ListSecrets",
                    c.list_secrets()
                        .set_filters(filters.clone())
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(
                    o.secret_list()
                        .iter()
                        // The name filter matches prefixes of words; keep true prefixes.
                        .filter(|s| {
                            prefix
                                .as_deref()
                                .is_none_or(|px| s.name().unwrap_or_default().starts_with(px))
                        })
                        .filter(|s| s.deleted_date().is_none())
                        .map(|s| Secret {
                            // List entries carry no replication status (DescribeSecret
                            // does): a replica names its primary, a primary nothing.
                            primary_region: primary_region(r, s.primary_region(), false),
                            ..secret(
                                s.arn(),
                                s.name(),
                                s.description(),
                                s.created_date(),
                                s.deleted_date(),
                            )
                        }),
                );
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "DeleteSecret" => {
            let id: String = call.arg_as("secret_id")?;
            let force: bool = call.arg_as("force_delete_without_recovery")?;
            send(
                call,
                "DeleteSecret",
                c.delete_secret()
                    .secret_id(&id)
                    .set_force_delete_without_recovery(force.then_some(true))
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        _ => Err(CapError::unsupported(call, "aws")),
    }
}

/// `(username, password)` of a secret holding `{"username","password"}`; host-side only,
/// never returned to plugins nor logged.
pub(crate) async fn credentials(
    p: &AwsProvider,
    call: &CapCall,
    region: &str,
    id: &str,
) -> Result<(String, String), CapError> {
    let o = send(
        call,
        "GetSecretValue",
        p.secrets(region)
            .await
            .get_secret_value()
            .secret_id(id)
            .send(),
    )
    .await?;
    let v: Value = o
        .secret_string()
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            CapError::invalid_parameter(format!(
                "secret {id} does not hold a JSON {{\"username\",\"password\"}} document"
            ))
        })?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let password = field("password");
    if password.is_empty() {
        return Err(CapError::invalid_parameter(format!(
            "secret {id} holds no password"
        )));
    }
    Ok((field("username"), password))
}
