//! SNS: topics, subscriptions and publish. Deliveries go to files (`file` protocol,
//! one JSON notification per line) or local HTTP webhooks; every delivery is also
//! recorded in `local/sns/deliveries.jsonl`.

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::types::common::Tag;
use runbook_caps::types::sns::Subscription;
use runbook_caps::{CapCall, CapError, ErrorKind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use crate::daemon::Ctx;
use crate::ids;
use crate::state::TopicRec;

fn topic_nf(arn: &str) -> CapError {
    CapError::not_found("NotFound", format!("Topic does not exist: {arn}"))
}

pub(crate) async fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let r = region.as_str();
    match call.action.as_str() {
        "CreateTopic" => {
            let name: String = call.arg_as("name")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            if name.is_empty()
                || name.len() > 256
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(CapError::new(
                    ErrorKind::InvalidParameter,
                    "InvalidParameter",
                    "Invalid parameter: Topic Name",
                ));
            }
            let arn = ids::arn("sns", r, &name);
            ctx.mutate(|s| {
                s.region_mut(r)
                    .topics
                    .entry(arn.clone())
                    .or_insert(TopicRec {
                        name,
                        tags,
                        subscriptions: vec![],
                    });
                Ok(Value::String(arn.clone()))
            })
        }
        "ListTopics" => Ok(ctx.read(|s| {
            json!(
                s.region(r)
                    .map(|x| x.topics.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            )
        })),
        "DeleteTopic" => {
            let arn: String = call.arg_as("topic_arn")?;
            // Idempotent in SNS: deleting a missing topic succeeds.
            ctx.mutate(|s| {
                s.region_mut(r).topics.remove(&arn);
                Ok(Value::Null)
            })
        }
        "Subscribe" => {
            let arn: String = call.arg_as("topic_arn")?;
            let protocol: String = call.arg_as("protocol")?;
            let endpoint: String = call.arg_as("endpoint")?;
            if !matches!(
                protocol.as_str(),
                "file" | "http" | "https" | "email" | "email-json" | "sqs" | "lambda" | "sms"
            ) {
                return Err(CapError::new(
                    ErrorKind::InvalidParameter,
                    "InvalidParameter",
                    format!("Invalid parameter: Protocol {protocol}"),
                ));
            }
            ctx.mutate(|s| {
                let t = s
                    .region_mut(r)
                    .topics
                    .get_mut(&arn)
                    .ok_or_else(|| topic_nf(&arn))?;
                if let Some(existing) = t
                    .subscriptions
                    .iter()
                    .find(|x| x.protocol == protocol && x.endpoint == endpoint)
                {
                    return Ok(Value::String(existing.subscription_arn.clone()));
                }
                let sub = Subscription {
                    subscription_arn: format!("{arn}:{}", ids::uuid()),
                    topic_arn: arn.clone(),
                    protocol,
                    endpoint,
                };
                t.subscriptions.push(sub.clone());
                Ok(Value::String(sub.subscription_arn))
            })
        }
        "ListSubscriptionsByTopic" => {
            let arn: String = call.arg_as("topic_arn")?;
            ctx.read(|s| {
                s.region(r)
                    .and_then(|x| x.topics.get(&arn))
                    .map(|t| serde_json::to_value(&t.subscriptions).unwrap())
                    .ok_or_else(|| topic_nf(&arn))
            })
        }
        "Unsubscribe" => {
            let sub: String = call.arg_as("subscription_arn")?;
            ctx.mutate(|s| {
                for t in s.region_mut(r).topics.values_mut() {
                    let before = t.subscriptions.len();
                    t.subscriptions.retain(|x| x.subscription_arn != sub);
                    if t.subscriptions.len() != before {
                        return Ok(Value::Null);
                    }
                }
                Err(CapError::not_found(
                    "NotFound",
                    format!("Subscription does not exist: {sub}"),
                ))
            })
        }
        "Publish" => {
            let arn: String = call.arg_as("topic_arn")?;
            let subject: Option<String> = call.arg_as("subject")?;
            let message: String = call.arg_as("message")?;
            publish(ctx, r, &arn, subject.as_deref(), &message)
                .await
                .map(Value::String)
        }
        _ => Err(CapError::unsupported(call, "local")),
    }
}

/// Deliver to every subscription; returns the message id.
pub(crate) async fn publish(
    ctx: &Ctx,
    region: &str,
    arn: &str,
    subject: Option<&str>,
    message: &str,
) -> Result<String, CapError> {
    let subs = ctx
        .read(|s| {
            s.region(region)
                .and_then(|x| x.topics.get(arn))
                .map(|t| t.subscriptions.clone())
        })
        .ok_or_else(|| topic_nf(arn))?;
    let id = ids::uuid();
    let note = json!({
        "Type": "Notification", "MessageId": id, "TopicArn": arn, "Subject": subject,
        "Message": message, "Timestamp": ids::now_str(),
    });
    let line = note.to_string();
    for sub in &subs {
        let result = match sub.protocol.as_str() {
            "file" => append(std::path::Path::new(&sub.endpoint), &line),
            "http" => post(&sub.endpoint, &line).await,
            other => Err(format!(
                "{other} delivery is recorded only (no such endpoint locally)"
            )),
        };
        let status = match &result {
            Ok(()) => "delivered".to_string(),
            Err(e) => {
                warn!(topic = arn, endpoint = %sub.endpoint, error = %e, "SNS delivery failed");
                format!("failed: {e}")
            }
        };
        let rec = json!({"message_id": id, "topic_arn": arn, "subscription_arn": sub.subscription_arn,
            "protocol": sub.protocol, "endpoint": sub.endpoint, "subject": subject, "status": status, "at": ids::now_str()});
        let _ = append(&ctx.layout.deliveries(), &rec.to_string());
    }
    info!(topic = arn, message_id = %id, subscriptions = subs.len(), "published");
    Ok(id)
}

fn append(path: &std::path::Path, line: &str) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    f.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| e.to_string())
}

/// POST the notification to a loopback webhook (nothing else is reachable locally).
async fn post(url: &str, body: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// webhooks are supported")?;
    let (hostport, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let (host, port) = hostport
        .rsplit_once(':')
        .map(|(h, p)| (h, p.parse::<u16>().unwrap_or(80)))
        .unwrap_or((hostport, 80));
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(format!("webhook host {host} is not local"));
    }
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: text/plain; charset=UTF-8\r\nx-amz-sns-message-type: Notification\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
        let code = String::from_utf8_lossy(&head[9..12]).to_string();
        if code.starts_with('2') {
            Ok(())
        } else {
            Err(format!("HTTP {code}"))
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}
