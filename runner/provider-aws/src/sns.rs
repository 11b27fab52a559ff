//! `sns` on aws-sdk-sns.

use aws_sdk_sns::types as t;
use runbook_caps::types::common::Tag;
use runbook_caps::types::sns::Subscription;
use runbook_caps::{CapCall, CapError};
use serde_json::{Value, json};

use crate::error::send;
use crate::{AwsProvider, to_value};

pub(crate) async fn handle(p: &AwsProvider, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let c = p.sns(&region).await;
    match call.action.as_str() {
        "CreateTopic" => {
            let name: String = call.arg_as("name")?;
            let tags: Vec<Tag> = call.arg_as("tags")?;
            let tags = tags
                .iter()
                .map(|x| t::Tag::builder().key(&x.key).value(&x.value).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CapError::invalid_parameter(format!("tag: {e}")))?;
            // Idempotent in SNS: the same name (and tags) returns the existing ARN.
            let o = send(
                call,
                "CreateTopic",
                c.create_topic()
                    .name(&name)
                    .set_tags((!tags.is_empty()).then_some(tags))
                    .send(),
            )
            .await?;
            Ok(json!(o.topic_arn().unwrap_or_default()))
        }
        "ListTopics" => {
            let mut out: Vec<String> = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "ListTopics",
                    c.list_topics().set_next_token(token.take()).send(),
                )
                .await?;
                out.extend(
                    o.topics()
                        .iter()
                        .filter_map(|x| x.topic_arn().map(str::to_string)),
                );
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "DeleteTopic" => {
            let arn: String = call.arg_as("topic_arn")?;
            match send(call, "DeleteTopic", c.delete_topic().topic_arn(&arn).send()).await {
                // SNS deletes idempotently; so does the local provider, whatever the
                // endpoint (some emulators answer NotFound) says.
                Ok(_) => Ok(Value::Null),
                Err(e) if e.kind == runbook_caps::ErrorKind::NotFound => Ok(Value::Null),
                Err(e) => Err(e),
            }
        }
        "Subscribe" => {
            let arn: String = call.arg_as("topic_arn")?;
            let protocol: String = call.arg_as("protocol")?;
            let endpoint: String = call.arg_as("endpoint")?;
            let o = send(
                call,
                "Subscribe",
                c.subscribe()
                    .topic_arn(&arn)
                    .protocol(&protocol)
                    .endpoint(&endpoint)
                    .return_subscription_arn(true)
                    .send(),
            )
            .await?;
            Ok(json!(o.subscription_arn().unwrap_or_default()))
        }
        "ListSubscriptionsByTopic" => {
            let arn: String = call.arg_as("topic_arn")?;
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "ListSubscriptionsByTopic",
                    c.list_subscriptions_by_topic()
                        .topic_arn(&arn)
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(o.subscriptions().iter().map(|s| Subscription {
                    subscription_arn: s.subscription_arn().unwrap_or_default().into(),
                    topic_arn: s.topic_arn().unwrap_or_default().into(),
                    protocol: s.protocol().unwrap_or_default().into(),
                    endpoint: s.endpoint().unwrap_or_default().into(),
                }));
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "Unsubscribe" => {
            let arn: String = call.arg_as("subscription_arn")?;
            send(
                call,
                "Unsubscribe",
                c.unsubscribe().subscription_arn(&arn).send(),
            )
            .await?;
            Ok(Value::Null)
        }
        "Publish" => {
            let arn: String = call.arg_as("topic_arn")?;
            let subject: Option<String> = call.arg_as("subject")?;
            let message: String = call.arg_as("message")?;
            let o = send(
                call,
                "Publish",
                c.publish()
                    .topic_arn(&arn)
                    .set_subject(subject)
                    .message(message)
                    .send(),
            )
            .await?;
            Ok(json!(o.message_id().unwrap_or_default()))
        }
        _ => Err(CapError::unsupported(call, "aws")),
    }
}
