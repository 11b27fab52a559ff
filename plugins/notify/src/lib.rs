//! SNS steps of the DR runbooks: the alert topic (create is idempotent in SNS), optional
//! subscriptions, publishing runbook outcomes, and deleting the topic.
use runbook_plugin_sdk::cap::sns;
use runbook_plugin_sdk::time::parse_time;
use runbook_plugin_sdk::{StepError, export_step, info, tag};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Subscription {
    protocol: String,
    endpoint: String,
}

#[derive(Deserialize)]
#[serde(tag = "Op")]
enum Op {
    EnsureTopic {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Subscriptions", default)]
        subscriptions: Vec<Subscription>,
    },
    /// Publishes `Message` (any JSON) to the topic named `Topic` in `Region`. With
    /// `StartedAt` and `Now` (RFC 3339), the measured duration is added to the message
    /// and to the result.
    Publish {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Topic")]
        topic: String,
        #[serde(rename = "Subject")]
        subject: String,
        #[serde(rename = "Message")]
        message: Value,
        #[serde(rename = "StartedAt", default)]
        started_at: Option<String>,
        #[serde(rename = "Now", default)]
        now: Option<String>,
    },
    DeleteTopic {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Name")]
        name: String,
    },
}

fn topic_arn(region: &str, name: &str) -> Result<Option<String>, StepError> {
    let suffix = format!(":{name}");
    Ok(sns::list_topics(region)?.into_iter().find(|a| a.ends_with(&suffix)))
}

fn run(op: Op) -> Result<Value, StepError> {
    match op {
        Op::EnsureTopic { region, name, subscriptions } => {
            let arn = sns::create_topic(&region, &name, &[tag("managed-by", "runbook")])?;
            let existing = sns::list_subscriptions_by_topic(&region, &arn)?;
            for s in subscriptions {
                if !existing.iter().any(|e| e.protocol == s.protocol && e.endpoint == s.endpoint) {
                    sns::subscribe(&region, &arn, &s.protocol, &s.endpoint)?;
                    info!("subscribed {} {} to {name}", s.protocol, s.endpoint);
                }
            }
            Ok(json!({ "TopicArn": arn, "Region": region }))
        }
        Op::Publish { region, topic, subject, mut message, started_at, now } => {
            let duration = match (started_at.as_deref().and_then(parse_time), now.as_deref().and_then(parse_time)) {
                (Some(a), Some(b)) => Some(((b - a) * 1000.0).round() / 1000.0),
                _ => None,
            };
            if let (Some(d), Value::Object(m)) = (duration, &mut message) {
                m.insert("DurationSeconds".into(), json!(d));
            }
            let arn = if topic.starts_with("arn:") {
                topic.clone()
            } else {
                topic_arn(&region, &topic)?.ok_or_else(|| {
                    StepError::new("NotFound", format!("no SNS topic {topic} in {region}"))
                })?
            };
            let body = match &message {
                Value::String(s) => s.clone(),
                v => serde_json::to_string_pretty(v)?,
            };
            let id = sns::publish(&region, &arn, Some(&subject), &body)?;
            info!("published '{subject}' to {topic}");
            Ok(json!({ "MessageId": id, "DurationSeconds": duration }))
        }
        Op::DeleteTopic { region, name } => {
            let Some(arn) = topic_arn(&region, &name)? else {
                return Ok(json!({ "Deleted": false }));
            };
            sns::delete_topic(&region, &arn)?;
            Ok(json!({ "Deleted": true, "TopicArn": arn }))
        }
    }
}

export_step!(run);
