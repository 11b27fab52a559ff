//! CloudWatch steps of the DR runbooks: alarms (put is an upsert, so re-running
//! converges), the dashboard, the replica lag used by failover policies, custom metrics
//! the runbooks publish about themselves, and teardown.
use std::collections::BTreeMap;

use runbook_plugin_sdk::cap::cloudwatch::{self, Dimension, MetricAlarmSpec, MetricDatum, MetricStatisticsRequest};
use runbook_plugin_sdk::time::{format_time, parse_time};
use runbook_plugin_sdk::{StepError, deleted, export_step, info};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Alarm {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "rds_ns")]
    namespace: String,
    metric: String,
    dimensions: BTreeMap<String, String>,
    #[serde(default = "average")]
    statistic: String,
    #[serde(default = "sixty")]
    period: u32,
    #[serde(default = "one")]
    evaluation_periods: u32,
    #[serde(default)]
    datapoints_to_alarm: Option<u32>,
    threshold: f64,
    #[serde(default = "gt")]
    comparison: String,
    #[serde(default)]
    treat_missing_data: Option<String>,
    /// Notify the topic on ALARM and on OK.
    #[serde(default = "yes")]
    notify: bool,
}

fn rds_ns() -> String {
    "AWS/RDS".into()
}
fn average() -> String {
    "Average".into()
}
fn sixty() -> u32 {
    60
}
fn one() -> u32 {
    1
}
fn gt() -> String {
    "GreaterThanThreshold".into()
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(tag = "Op")]
enum Op {
    EnsureAlarms {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "TopicArn")]
        topic_arn: Option<String>,
        #[serde(rename = "Alarms")]
        alarms: Vec<Alarm>,
    },
    EnsureDashboard {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Name")]
        name: String,
        /// Dashboard JSON (`{"widgets": [...]}`), as an object.
        #[serde(rename = "Body")]
        body: Value,
    },
    /// The replica's `ReplicaLag` (Maximum over the last minutes): what an RPO guard
    /// judges. `LagSeconds` is null when there are no datapoints.
    ReplicaLag {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Identifier")]
        identifier: String,
        /// RFC 3339 "now" (`$$.State.EnteredTime`): plugins have no clock of their own.
        #[serde(rename = "Now")]
        now: String,
        #[serde(rename = "WindowSeconds", default = "window")]
        window_seconds: i64,
    },
    PutMetrics {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Namespace")]
        namespace: String,
        #[serde(rename = "Dimensions")]
        dimensions: BTreeMap<String, String>,
        #[serde(rename = "Metrics")]
        metrics: BTreeMap<String, Value>,
    },
    /// Stop conditions (AWS FIS): fails `GameDay.StopCondition` when any named alarm is
    /// in ALARM. No names: nothing to check.
    StopConditions {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "AlarmNames", default)]
        alarm_names: Vec<String>,
    },
    Teardown {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "AlarmNames")]
        alarm_names: Vec<String>,
        #[serde(rename = "Dashboards", default)]
        dashboards: Vec<String>,
    },
}

fn window() -> i64 {
    180
}

fn dims(m: &BTreeMap<String, String>) -> Vec<Dimension> {
    m.iter().map(|(k, v)| Dimension { name: k.clone(), value: v.clone() }).collect()
}

fn run(op: Op) -> Result<Value, StepError> {
    match op {
        Op::EnsureAlarms { region, topic_arn, alarms } => {
            let mut names = Vec::new();
            for a in alarms {
                let actions: Vec<String> = if a.notify { topic_arn.iter().cloned().collect() } else { vec![] };
                cloudwatch::put_metric_alarm(
                    &region,
                    &MetricAlarmSpec {
                        alarm_name: a.name.clone(),
                        alarm_description: a.description,
                        namespace: a.namespace,
                        metric_name: a.metric,
                        dimensions: dims(&a.dimensions),
                        statistic: a.statistic,
                        period: a.period,
                        evaluation_periods: a.evaluation_periods,
                        datapoints_to_alarm: a.datapoints_to_alarm,
                        threshold: a.threshold,
                        comparison_operator: a.comparison,
                        treat_missing_data: a.treat_missing_data,
                        alarm_actions: actions.clone(),
                        ok_actions: actions,
                        insufficient_data_actions: vec![],
                    },
                )?;
                names.push(a.name);
            }
            info!("{region}: alarms {}", names.join(", "));
            let states: BTreeMap<String, String> = cloudwatch::describe_alarms(&region, &names, None)?
                .into_iter()
                .map(|a| (a.spec.alarm_name, a.state_value))
                .collect();
            Ok(json!({ "Region": region, "Alarms": states }))
        }
        Op::StopConditions { region, alarm_names } => {
            if alarm_names.is_empty() {
                return Ok(json!({ "Region": region, "Alarms": {} }));
            }
            let states: BTreeMap<String, String> = cloudwatch::describe_alarms(&region, &alarm_names, None)?
                .into_iter()
                .map(|a| (a.spec.alarm_name, a.state_value))
                .collect();
            let firing: Vec<&String> = states.iter().filter(|(_, v)| v.as_str() == "ALARM").map(|(k, _)| k).collect();
            if !firing.is_empty() {
                return Err(StepError::new(
                    "GameDay.StopCondition",
                    format!("stop condition: {} in ALARM ({region})", firing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
                ));
            }
            Ok(json!({ "Region": region, "Alarms": states }))
        }
        Op::EnsureDashboard { region, name, body } => {
            cloudwatch::put_dashboard(&region, &name, &body.to_string())?;
            Ok(json!({ "Region": region, "Dashboard": name }))
        }
        Op::ReplicaLag { region, identifier, now, window_seconds } => {
            let end = parse_time(&now)
                .ok_or_else(|| StepError::new("InvalidParameterValue", format!("Now is not RFC 3339: {now}")))?
                .ceil() as i64;
            let points = cloudwatch::get_metric_statistics(
                &region,
                &MetricStatisticsRequest {
                    namespace: "AWS/RDS".into(),
                    metric_name: "ReplicaLag".into(),
                    dimensions: vec![Dimension { name: "DBInstanceIdentifier".into(), value: identifier.clone() }],
                    start_time: format_time(end - window_seconds),
                    end_time: format_time(end + 1),
                    period: 60,
                    statistics: vec!["Maximum".into()],
                },
            )?;
            let latest = points
                .iter()
                .filter_map(|p| Some((parse_time(&p.timestamp)?, p.maximum?)))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let max = points.iter().filter_map(|p| p.maximum).fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            Ok(json!({
                "Identifier": identifier,
                "LagSeconds": latest.map(|l| l.1),
                "MaxLagSeconds": max,
                "Datapoints": points.len(),
            }))
        }
        Op::PutMetrics { region, namespace, dimensions, metrics } => {
            let d = dims(&dimensions);
            let data: Vec<MetricDatum> = metrics
                .iter()
                .filter_map(|(k, v)| {
                    Some(MetricDatum {
                        metric_name: k.clone(),
                        dimensions: d.clone(),
                        value: v.as_f64()?,
                        unit: None,
                        timestamp: None,
                    })
                })
                .collect();
            if !data.is_empty() {
                cloudwatch::put_metric_data(&region, &namespace, &data)?;
            }
            Ok(json!({ "Published": data.len() }))
        }
        Op::Teardown { region, alarm_names, dashboards } => {
            let existing: Vec<String> = cloudwatch::describe_alarms(&region, &alarm_names, None)?
                .into_iter()
                .map(|a| a.spec.alarm_name)
                .collect();
            if !existing.is_empty() {
                cloudwatch::delete_alarms(&region, &existing)?;
            }
            let mut gone = Vec::new();
            for d in dashboards {
                if deleted(cloudwatch::delete_dashboards(&region, std::slice::from_ref(&d)))? {
                    gone.push(d);
                }
            }
            Ok(json!({ "Region": region, "Alarms": existing, "Dashboards": gone }))
        }
    }
}

export_step!(run);

