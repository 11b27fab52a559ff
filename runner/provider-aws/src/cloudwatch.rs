//! `cloudwatch` on aws-sdk-cloudwatch (pinned to the last Query-protocol release, see
//! Cargo.toml).

use aws_sdk_cloudwatch::types as t;
use runbook_caps::types::cloudwatch::*;
use runbook_caps::{CapCall, CapError};
use serde_json::Value;

use crate::error::send;
use crate::{AwsProvider, parse_time, rfc3339, to_value};

fn dims(v: &[Dimension]) -> Option<Vec<t::Dimension>> {
    Some(
        v.iter()
            .map(|d| {
                t::Dimension::builder()
                    .name(&d.name)
                    .value(&d.value)
                    .build()
            })
            .collect(),
    )
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn u32_of(v: Option<i32>) -> u32 {
    v.and_then(|x| u32::try_from(x).ok()).unwrap_or(0)
}

fn alarm(a: &t::MetricAlarm) -> MetricAlarm {
    MetricAlarm {
        spec: MetricAlarmSpec {
            alarm_name: a.alarm_name().unwrap_or_default().into(),
            alarm_description: a.alarm_description().map(str::to_string),
            namespace: a.namespace().unwrap_or_default().into(),
            metric_name: a.metric_name().unwrap_or_default().into(),
            dimensions: a
                .dimensions()
                .iter()
                .map(|d| Dimension {
                    name: d.name().unwrap_or_default().into(),
                    value: d.value().unwrap_or_default().into(),
                })
                .collect(),
            statistic: a
                .statistic()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            period: u32_of(a.period()),
            evaluation_periods: u32_of(a.evaluation_periods()),
            datapoints_to_alarm: a.datapoints_to_alarm().and_then(|x| u32::try_from(x).ok()),
            threshold: a.threshold().unwrap_or_default(),
            comparison_operator: a
                .comparison_operator()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            treat_missing_data: a.treat_missing_data().map(str::to_string),
            alarm_actions: a.alarm_actions().to_vec(),
            ok_actions: a.ok_actions().to_vec(),
            insufficient_data_actions: a.insufficient_data_actions().to_vec(),
        },
        alarm_arn: a.alarm_arn().unwrap_or_default().into(),
        state_value: a
            .state_value()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        state_reason: a.state_reason().unwrap_or_default().into(),
        state_updated: a.state_updated_timestamp().map(rfc3339).unwrap_or_default(),
    }
}

pub(crate) async fn handle(p: &AwsProvider, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let c = p.cloudwatch(&region).await;
    match call.action.as_str() {
        "PutMetricData" => {
            let namespace: String = call.arg_as("namespace")?;
            let data: Vec<MetricDatum> = call.arg_as("data")?;
            let mut list = Vec::new();
            for d in data {
                list.push(
                    t::MetricDatum::builder()
                        .metric_name(&d.metric_name)
                        .set_dimensions(dims(&d.dimensions))
                        .value(d.value)
                        .set_unit(d.unit.as_deref().map(t::StandardUnit::from))
                        .set_timestamp(d.timestamp.as_deref().map(parse_time).transpose()?)
                        .build(),
                );
            }
            // PutMetricData takes at most 1,000 data points per call.
            for chunk in list.chunks(1000) {
                send(
                    call,
                    "PutMetricData",
                    c.put_metric_data()
                        .namespace(&namespace)
                        .set_metric_data(Some(chunk.to_vec()))
                        .send(),
                )
                .await?;
            }
            Ok(Value::Null)
        }
        "GetMetricStatistics" => {
            let q: MetricStatisticsRequest = call.arg_as("request")?;
            let o = send(
                call,
                "GetMetricStatistics",
                c.get_metric_statistics()
                    .namespace(&q.namespace)
                    .metric_name(&q.metric_name)
                    .set_dimensions(dims(&q.dimensions))
                    .start_time(parse_time(&q.start_time)?)
                    .end_time(parse_time(&q.end_time)?)
                    .period(i32_of(q.period))
                    .set_statistics(Some(
                        q.statistics
                            .iter()
                            .map(|s| t::Statistic::from(s.as_str()))
                            .collect(),
                    ))
                    .send(),
            )
            .await?;
            let mut points: Vec<Datapoint> = o
                .datapoints()
                .iter()
                .map(|d| Datapoint {
                    timestamp: d.timestamp().map(rfc3339).unwrap_or_default(),
                    average: d.average(),
                    minimum: d.minimum(),
                    maximum: d.maximum(),
                    sum: d.sum(),
                    sample_count: d.sample_count(),
                    unit: d.unit().map(|u| u.as_str().to_string()),
                })
                .collect();
            // CloudWatch returns datapoints unordered; the local provider in time order.
            points.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
            Ok(to_value(points))
        }
        "PutMetricAlarm" => {
            let s: MetricAlarmSpec = call.arg_as("spec")?;
            send(
                call,
                "PutMetricAlarm",
                c.put_metric_alarm()
                    .alarm_name(&s.alarm_name)
                    .set_alarm_description(s.alarm_description.clone())
                    .namespace(&s.namespace)
                    .metric_name(&s.metric_name)
                    .set_dimensions(dims(&s.dimensions))
                    .statistic(t::Statistic::from(s.statistic.as_str()))
                    .period(i32_of(s.period))
                    .evaluation_periods(i32_of(s.evaluation_periods))
                    .set_datapoints_to_alarm(s.datapoints_to_alarm.map(i32_of))
                    .threshold(s.threshold)
                    .comparison_operator(t::ComparisonOperator::from(
                        s.comparison_operator.as_str(),
                    ))
                    .set_treat_missing_data(s.treat_missing_data.clone())
                    .set_alarm_actions(Some(s.alarm_actions.clone()))
                    .set_ok_actions(Some(s.ok_actions.clone()))
                    .set_insufficient_data_actions(Some(s.insufficient_data_actions.clone()))
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        "DescribeAlarms" => {
            let names: Vec<String> = call.arg_as("alarm_names")?;
            let prefix: Option<String> = call.arg_as("name_prefix")?;
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "DescribeAlarms",
                    c.describe_alarms()
                        .set_alarm_names((!names.is_empty()).then(|| names.clone()))
                        .set_alarm_name_prefix(prefix.clone())
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(o.metric_alarms().iter().map(alarm));
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "SetAlarmState" => {
            let name: String = call.arg_as("alarm_name")?;
            let state: String = call.arg_as("state_value")?;
            let reason: String = call.arg_as("state_reason")?;
            send(
                call,
                "SetAlarmState",
                c.set_alarm_state()
                    .alarm_name(&name)
                    .state_value(t::StateValue::from(state.as_str()))
                    .state_reason(&reason)
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        "DeleteAlarms" => {
            let names: Vec<String> = call.arg_as("alarm_names")?;
            // At most 100 names per call.
            for chunk in names.chunks(100) {
                send(
                    call,
                    "DeleteAlarms",
                    c.delete_alarms()
                        .set_alarm_names(Some(chunk.to_vec()))
                        .send(),
                )
                .await?;
            }
            Ok(Value::Null)
        }
        "PutDashboard" => {
            let name: String = call.arg_as("name")?;
            let body: String = call.arg_as("body")?;
            let o = send(
                call,
                "PutDashboard",
                c.put_dashboard()
                    .dashboard_name(&name)
                    .dashboard_body(&body)
                    .send(),
            )
            .await?;
            for m in o.dashboard_validation_messages() {
                tracing::warn!(dashboard = %name, path = ?m.data_path(), message = ?m.message(), "dashboard validation");
            }
            Ok(Value::Null)
        }
        "GetDashboard" => {
            let name: String = call.arg_as("name")?;
            let o = send(
                call,
                "GetDashboard",
                c.get_dashboard().dashboard_name(&name).send(),
            )
            .await?;
            Ok(to_value(Dashboard {
                name: o.dashboard_name().unwrap_or(&name).into(),
                arn: o.dashboard_arn().unwrap_or_default().into(),
                body: o.dashboard_body().unwrap_or_default().into(),
            }))
        }
        "ListDashboards" => {
            let prefix: Option<String> = call.arg_as("name_prefix")?;
            let mut out: Vec<String> = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let o = send(
                    call,
                    "ListDashboards",
                    c.list_dashboards()
                        .set_dashboard_name_prefix(prefix.clone())
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
                out.extend(
                    o.dashboard_entries()
                        .iter()
                        .filter_map(|d| d.dashboard_name().map(str::to_string)),
                );
                match o.next_token() {
                    Some(n) if !n.is_empty() => token = Some(n.to_string()),
                    _ => break,
                }
            }
            Ok(to_value(out))
        }
        "DeleteDashboards" => {
            let names: Vec<String> = call.arg_as("names")?;
            send(
                call,
                "DeleteDashboards",
                c.delete_dashboards()
                    .set_dashboard_names(Some(names))
                    .send(),
            )
            .await?;
            Ok(Value::Null)
        }
        _ => Err(CapError::unsupported(call, "aws")),
    }
}
