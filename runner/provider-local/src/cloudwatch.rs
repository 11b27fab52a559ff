//! CloudWatch: put/get metric data, alarms evaluated by the daemon every second (with
//! periods, evaluation periods, datapoints-to-alarm, missing-data treatment) whose
//! actions publish to SNS, and dashboards (stored here, rendered by [`crate::dashboard`]).

use std::sync::Arc;
use std::time::Duration;

use runbook_caps::types::cloudwatch::*;
use runbook_caps::{CapCall, CapError, ErrorKind};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::daemon::Ctx;
use crate::ids;
use crate::metrics::Sample;
use crate::state::AlarmRec;

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("record serializes")
}

fn rnf(msg: String) -> CapError {
    CapError::not_found("ResourceNotFound", msg)
}

fn parse_ts(s: &str) -> Result<f64, CapError> {
    let t = ids::parse_time(s)
        .ok_or_else(|| CapError::invalid_parameter(format!("timestamp {s} is not RFC 3339")))?;
    Ok(t.unix_timestamp() as f64 + f64::from(t.nanosecond()) / 1e9)
}

fn fmt_ts(ts: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos((ts * 1e9) as i128)
        .unwrap_or_else(|_| ids::now());
    ids::rfc3339(t)
}

/// A CloudWatch statistic of some values; None for no values or an unknown statistic.
pub(crate) fn stat(values: &[f64], name: &str) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(match name {
        "Average" => sum / values.len() as f64,
        "Minimum" => values.iter().cloned().fold(f64::INFINITY, f64::min),
        "Maximum" => values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        "Sum" => sum,
        "SampleCount" => values.len() as f64,
        _ => return None,
    })
}

pub(crate) async fn handle(ctx: &Arc<Ctx>, call: &CapCall) -> Result<Value, CapError> {
    let region = call.region()?.to_string();
    let r = region.as_str();
    match call.action.as_str() {
        "PutMetricData" => {
            let namespace: String = call.arg_as("namespace")?;
            let data: Vec<MetricDatum> = call.arg_as("data")?;
            if namespace.starts_with("AWS/") {
                return Err(CapError::invalid_parameter(
                    "The value AWS/ for parameter Namespace is invalid.",
                ));
            }
            let now = ids::unix_now();
            let mut samples = Vec::new();
            for d in data {
                let ts = match &d.timestamp {
                    Some(t) => parse_ts(t)?,
                    None => now,
                };
                if !d.value.is_finite() {
                    return Err(CapError::invalid_parameter(format!(
                        "value of {} is not finite",
                        d.metric_name
                    )));
                }
                samples.push(Sample {
                    namespace: namespace.clone(),
                    metric: d.metric_name,
                    dims: d.dimensions,
                    ts,
                    value: d.value,
                    unit: d.unit,
                });
            }
            ctx.metrics.put(&ctx.layout, r, samples);
            Ok(Value::Null)
        }
        "GetMetricStatistics" => {
            let q: MetricStatisticsRequest = call.arg_as("request")?;
            let (start, end) = (parse_ts(&q.start_time)?, parse_ts(&q.end_time)?);
            if q.period == 0 || end <= start {
                return Err(CapError::invalid_parameter(
                    "period must be positive and end-time after start-time",
                ));
            }
            let samples =
                ctx.metrics
                    .query(r, &q.namespace, &q.metric_name, &q.dimensions, start, end);
            let p = f64::from(q.period);
            let mut buckets: std::collections::BTreeMap<i64, Vec<&Sample>> = Default::default();
            for s in &samples {
                buckets
                    .entry(((s.ts - start) / p).floor() as i64)
                    .or_default()
                    .push(s);
            }
            let points: Vec<Datapoint> = buckets
                .into_iter()
                .map(|(i, ss)| {
                    let vals: Vec<f64> = ss.iter().map(|s| s.value).collect();
                    let want = |n: &str| {
                        if q.statistics.iter().any(|x| x == n) {
                            stat(&vals, n)
                        } else {
                            None
                        }
                    };
                    Datapoint {
                        timestamp: fmt_ts(start + i as f64 * p),
                        average: want("Average"),
                        minimum: want("Minimum"),
                        maximum: want("Maximum"),
                        sum: want("Sum"),
                        sample_count: want("SampleCount"),
                        unit: ss.first().and_then(|s| s.unit.clone()),
                    }
                })
                .collect();
            Ok(to_value(points))
        }
        "PutMetricAlarm" => {
            let spec: MetricAlarmSpec = call.arg_as("spec")?;
            validate_alarm(&spec)?;
            ctx.mutate(|s| {
                let alarms = &mut s.region_mut(r).alarms;
                match alarms.get_mut(&spec.alarm_name) {
                    Some(a) => a.alarm.spec = spec,
                    None => {
                        let alarm = MetricAlarm {
                            alarm_arn: ids::arn(
                                "cloudwatch",
                                r,
                                &format!("alarm:{}", spec.alarm_name),
                            ),
                            spec: spec.clone(),
                            state_value: "INSUFFICIENT_DATA".into(),
                            state_reason: "Unchecked: Initial alarm creation".into(),
                            state_updated: ids::now_str(),
                        };
                        alarms.insert(spec.alarm_name.clone(), AlarmRec { alarm });
                    }
                }
                Ok(Value::Null)
            })
        }
        "DescribeAlarms" => {
            let names: Vec<String> = call.arg_as("alarm_names")?;
            let prefix: Option<String> = call.arg_as("name_prefix")?;
            Ok(ctx.read(|s| {
                let list: Vec<MetricAlarm> = s
                    .region(r)
                    .map(|x| {
                        x.alarms
                            .values()
                            .filter(|a| {
                                names.is_empty() || names.contains(&a.alarm.spec.alarm_name)
                            })
                            .filter(|a| {
                                prefix
                                    .as_deref()
                                    .is_none_or(|p| a.alarm.spec.alarm_name.starts_with(p))
                            })
                            .map(|a| a.alarm.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                to_value(list)
            }))
        }
        "SetAlarmState" => {
            let name: String = call.arg_as("alarm_name")?;
            let state: String = call.arg_as("state_value")?;
            let reason: String = call.arg_as("state_reason")?;
            if !matches!(state.as_str(), "OK" | "ALARM" | "INSUFFICIENT_DATA") {
                return Err(CapError::invalid_parameter(format!(
                    "state {state} is not OK, ALARM or INSUFFICIENT_DATA"
                )));
            }
            if !ctx.read(|s| s.region(r).is_some_and(|x| x.alarms.contains_key(&name))) {
                return Err(rnf(format!("Alarm {name} does not exist")));
            }
            transition(ctx, r, &name, &state, &reason).await;
            Ok(Value::Null)
        }
        "DeleteAlarms" => {
            let names: Vec<String> = call.arg_as("alarm_names")?;
            ctx.mutate(|s| {
                let alarms = &mut s.region_mut(r).alarms;
                if let Some(missing) = names.iter().find(|n| !alarms.contains_key(*n)) {
                    return Err(rnf(format!("Alarm {missing} does not exist")));
                }
                for n in &names {
                    alarms.remove(n);
                }
                Ok(Value::Null)
            })
        }
        "PutDashboard" => {
            let name: String = call.arg_as("name")?;
            let body: String = call.arg_as("body")?;
            let parsed: Value = serde_json::from_str(&body).map_err(|e| {
                CapError::new(
                    ErrorKind::InvalidParameter,
                    "InvalidParameterInput",
                    format!("dashboard body is not JSON: {e}"),
                )
            })?;
            if !parsed.get("widgets").is_some_and(Value::is_array) {
                return Err(CapError::new(
                    ErrorKind::InvalidParameter,
                    "InvalidParameterInput",
                    "The dashboard body must have a widgets array",
                ));
            }
            ctx.mutate(|s| {
                let d = Dashboard {
                    arn: format!("arn:aws:cloudwatch::{}:dashboard/{name}", ids::ACCOUNT),
                    name: name.clone(),
                    body,
                };
                s.region_mut(r).dashboards.insert(name.clone(), d);
                Ok(())
            })?;
            crate::dashboard::render_dashboard(ctx, r, &name)?;
            Ok(Value::Null)
        }
        "GetDashboard" => {
            let name: String = call.arg_as("name")?;
            ctx.read(|s| {
                s.region(r)
                    .and_then(|x| x.dashboards.get(&name))
                    .map(to_value)
                    .ok_or_else(|| rnf(format!("Dashboard {name} does not exist")))
            })
        }
        "ListDashboards" => {
            let prefix: Option<String> = call.arg_as("name_prefix")?;
            Ok(ctx.read(|s| {
                let names: Vec<String> = s
                    .region(r)
                    .map(|x| {
                        x.dashboards
                            .keys()
                            .filter(|n| prefix.as_deref().is_none_or(|p| n.starts_with(p)))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                to_value(names)
            }))
        }
        "DeleteDashboards" => {
            let names: Vec<String> = call.arg_as("names")?;
            ctx.mutate(|s| {
                let ds = &mut s.region_mut(r).dashboards;
                if let Some(missing) = names.iter().find(|n| !ds.contains_key(*n)) {
                    return Err(rnf(format!("Dashboard {missing} does not exist")));
                }
                for n in &names {
                    ds.remove(n);
                }
                Ok(())
            })?;
            for n in &names {
                let _ = std::fs::remove_file(ctx.layout.dashboard_html(n));
            }
            Ok(Value::Null)
        }
        _ => Err(CapError::unsupported(call, "local")),
    }
}

fn validate_alarm(spec: &MetricAlarmSpec) -> Result<(), CapError> {
    if spec.alarm_name.is_empty() || spec.period == 0 || spec.evaluation_periods == 0 {
        return Err(CapError::invalid_parameter(
            "alarm name, period and evaluation periods are required",
        ));
    }
    if spec
        .datapoints_to_alarm
        .is_some_and(|m| m == 0 || m > spec.evaluation_periods)
    {
        return Err(CapError::invalid_parameter(
            "datapoints-to-alarm must be between 1 and evaluation-periods",
        ));
    }
    if !matches!(
        spec.comparison_operator.as_str(),
        "GreaterThanThreshold"
            | "GreaterThanOrEqualToThreshold"
            | "LessThanThreshold"
            | "LessThanOrEqualToThreshold"
    ) {
        return Err(CapError::invalid_parameter(format!(
            "unknown comparison operator {}",
            spec.comparison_operator
        )));
    }
    if stat(&[1.0], &spec.statistic).is_none() {
        return Err(CapError::invalid_parameter(format!(
            "unknown statistic {}",
            spec.statistic
        )));
    }
    Ok(())
}

fn breaches(spec: &MetricAlarmSpec, v: f64) -> bool {
    match spec.comparison_operator.as_str() {
        "GreaterThanThreshold" => v > spec.threshold,
        "GreaterThanOrEqualToThreshold" => v >= spec.threshold,
        "LessThanThreshold" => v < spec.threshold,
        _ => v <= spec.threshold,
    }
}

/// The state the data says, or None to keep the current one (`ignore`).
fn evaluate(ctx: &Ctx, region: &str, spec: &MetricAlarmSpec) -> Option<(String, String)> {
    let p = f64::from(spec.period);
    let n = spec.evaluation_periods as usize;
    let m = spec.datapoints_to_alarm.unwrap_or(spec.evaluation_periods) as usize;
    // Only complete periods count.
    let end = (ids::unix_now() / p).floor() * p;
    let samples = ctx.metrics.query(
        region,
        &spec.namespace,
        &spec.metric_name,
        &spec.dimensions,
        end - p * n as f64,
        end,
    );
    let mut points: Vec<Option<f64>> = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (end - p * (i + 1) as f64, end - p * i as f64);
        let vals: Vec<f64> = samples
            .iter()
            .filter(|s| s.ts >= a && s.ts < b)
            .map(|s| s.value)
            .collect();
        points.push(stat(&vals, &spec.statistic));
    }
    let treat = spec.treat_missing_data.as_deref().unwrap_or("missing");
    let present: Vec<f64> = points.iter().flatten().copied().collect();
    let missing = n - present.len();
    let mut breaching = present.iter().filter(|v| breaches(spec, **v)).count();
    if treat == "breaching" {
        breaching += missing;
    }
    if present.is_empty() {
        return match treat {
            "breaching" => Some((
                "ALARM".into(),
                format!(
                    "Threshold Crossed: no datapoints were received for {n} periods and missing data is treated as breaching."
                ),
            )),
            "notBreaching" => Some((
                "OK".into(),
                "no datapoints; missing data is treated as not breaching".into(),
            )),
            "ignore" => None,
            _ => Some((
                "INSUFFICIENT_DATA".into(),
                format!("Insufficient Data: {n} datapoints were unknown."),
            )),
        };
    }
    let recent: Vec<String> = present.iter().map(|v| format!("{v:.3}")).collect();
    if breaching >= m {
        Some((
            "ALARM".into(),
            format!(
                "Threshold Crossed: {breaching} out of the last {n} datapoints [{}] were {} the threshold ({}).",
                recent.join(", "),
                op_words(&spec.comparison_operator),
                spec.threshold
            ),
        ))
    } else {
        Some((
            "OK".into(),
            format!(
                "Threshold Crossed: {} out of the last {n} datapoints [{}] were not {} the threshold ({}).",
                n - breaching,
                recent.join(", "),
                op_words(&spec.comparison_operator),
                spec.threshold
            ),
        ))
    }
}

fn op_words(op: &str) -> &'static str {
    match op {
        "GreaterThanThreshold" => "greater than",
        "GreaterThanOrEqualToThreshold" => "greater than or equal to",
        "LessThanThreshold" => "less than",
        _ => "less than or equal to",
    }
}

/// Change an alarm's state and run the actions of the new state (SNS topics).
async fn transition(ctx: &Arc<Ctx>, region: &str, name: &str, state: &str, reason: &str) {
    let changed = ctx
        .mutate(|s| {
            let Some(a) = s.region_mut(region).alarms.get_mut(name) else {
                return Ok(None);
            };
            let old = a.alarm.state_value.clone();
            a.alarm.state_value = state.into();
            a.alarm.state_reason = reason.into();
            a.alarm.state_updated = ids::now_str();
            Ok(if old != state {
                Some((old, a.alarm.clone()))
            } else {
                None
            })
        })
        .ok()
        .flatten();
    let Some((old, alarm)) = changed else { return };
    info!(region, alarm = name, from = %old, to = state, "alarm state changed");
    let actions = match state {
        "ALARM" => &alarm.spec.alarm_actions,
        "OK" => &alarm.spec.ok_actions,
        _ => &alarm.spec.insufficient_data_actions,
    };
    let spec = &alarm.spec;
    let message = json!({
        "AlarmName": spec.alarm_name,
        "AlarmDescription": spec.alarm_description,
        "AWSAccountId": ids::ACCOUNT,
        "NewStateValue": state,
        "NewStateReason": reason,
        "StateChangeTime": alarm.state_updated,
        "Region": region,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old,
        "Trigger": {
            "MetricName": spec.metric_name, "Namespace": spec.namespace, "Statistic": spec.statistic,
            "Dimensions": spec.dimensions.iter().map(|d| json!({"name": d.name, "value": d.value})).collect::<Vec<_>>(),
            "Period": spec.period, "EvaluationPeriods": spec.evaluation_periods,
            "ComparisonOperator": spec.comparison_operator, "Threshold": spec.threshold,
        }
    });
    let subject = format!("{state}: \"{}\" in {region}", spec.alarm_name);
    for action in actions {
        if action.starts_with("arn:aws:sns:") {
            let topic_region = action.split(':').nth(3).unwrap_or(region).to_string();
            if let Err(e) = crate::sns::publish(
                ctx,
                &topic_region,
                action,
                Some(&subject),
                &message.to_string(),
            )
            .await
            {
                warn!(alarm = name, action, error = %e, "alarm action failed");
            }
        } else {
            warn!(
                alarm = name,
                action, "only SNS alarm actions are supported locally"
            );
        }
    }
}

pub(crate) fn spawn_evaluator(ctx: Arc<Ctx>) {
    tokio::spawn(async move {
        let mut tick: u64 = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            tick += 1;
            let alarms: Vec<(String, MetricAlarm)> = ctx.read(|s| {
                s.regions
                    .iter()
                    .flat_map(|(r, x)| x.alarms.values().map(move |a| (r.clone(), a.alarm.clone())))
                    .collect()
            });
            for (region, a) in alarms {
                if let Some((state, reason)) = evaluate(&ctx, &region, &a.spec)
                    && state != a.state_value
                {
                    transition(&ctx, &region, &a.spec.alarm_name, &state, &reason).await;
                }
            }
            // Keep rendered dashboards fresh (every 15 s).
            if tick.is_multiple_of(30) {
                let names: Vec<(String, String)> = ctx.read(|s| {
                    s.regions
                        .iter()
                        .flat_map(|(r, x)| x.dashboards.keys().map(move |n| (r.clone(), n.clone())))
                        .collect()
                });
                for (r, n) in names {
                    let _ = crate::dashboard::render_dashboard(&ctx, &r, &n);
                }
            }
        }
    });
}
