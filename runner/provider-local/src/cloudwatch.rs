//! CloudWatch: put/get metric data, alarms evaluated by the daemon every second (with
//! periods, evaluation periods, datapoints-to-alarm, missing-data treatment) whose
//! actions publish to SNS, and dashboards rendered as self-contained HTML with SVG charts.

use std::path::PathBuf;
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

fn stat(values: &[f64], name: &str) -> Option<f64> {
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
            render_dashboard(ctx, r, &name)?;
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
                    let _ = render_dashboard(&ctx, &r, &n);
                }
            }
        }
    });
}

// ---- dashboards --------------------------------------------------------------------

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Metric series of a widget: CloudWatch's `[ns, metric, dimName, dimValue, ...]` rows,
/// where `"."` repeats the previous row's value and a trailing object holds options.
fn widget_series(metrics: &[Value]) -> Vec<(String, String, Vec<Dimension>)> {
    let mut prev: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for row in metrics {
        let Some(items) = row.as_array() else {
            continue;
        };
        let strs: Vec<String> = items
            .iter()
            .filter_map(Value::as_str)
            .enumerate()
            .map(|(i, s)| {
                if s == "." {
                    prev.get(i).cloned().unwrap_or_default()
                } else {
                    s.to_string()
                }
            })
            .collect();
        if strs.len() < 2 {
            continue;
        }
        let dims = strs[2..]
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| Dimension {
                name: c[0].clone(),
                value: c[1].clone(),
            })
            .collect();
        out.push((strs[0].clone(), strs[1].clone(), dims));
        prev = strs;
    }
    out
}

/// Render to `local/dashboards/NAME.html`: one SVG line chart per metric widget (last
/// 30 minutes), alarm widgets as state badges, text widgets as preformatted text.
pub(crate) fn render_dashboard(ctx: &Ctx, region: &str, name: &str) -> Result<PathBuf, CapError> {
    let (dash, alarms) = ctx.read(|s| {
        let r = s.region(region);
        (
            r.and_then(|x| x.dashboards.get(name)).cloned(),
            r.map(|x| x.alarms.clone()).unwrap_or_default(),
        )
    });
    let dash = dash.ok_or_else(|| rnf(format!("Dashboard {name} does not exist")))?;
    let body: Value = serde_json::from_str(&dash.body).unwrap_or(json!({"widgets": []}));
    let now = ids::unix_now();
    let window = 1800.0;
    let palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:16px;background:#f4f6f8;color:#16191f}}\
         .grid{{display:flex;flex-wrap:wrap;gap:12px}}.w{{background:#fff;border:1px solid #d5dbdb;border-radius:4px;padding:10px;width:560px}}\
         h1{{font-size:20px}}h2{{font-size:14px;margin:0 0 6px}}.leg span{{margin-right:10px;font-size:12px}}\
         .ALARM{{background:#d13212;color:#fff}}.OK{{background:#1d8102;color:#fff}}.INSUFFICIENT_DATA{{background:#879596;color:#fff}}\
         .badge{{padding:3px 8px;border-radius:3px;font-size:12px;margin:2px;display:inline-block}}\
         </style></head><body><h1>{t}</h1><p>{region} &middot; rendered {at} &middot; last 30 minutes</p><div class=\"grid\">",
        t = esc(name),
        at = ids::now_str()
    );
    for w in body["widgets"].as_array().cloned().unwrap_or_default() {
        let props = &w["properties"];
        let title = props["title"].as_str().unwrap_or("");
        match w["type"].as_str().unwrap_or("metric") {
            "text" => html.push_str(&format!(
                "<div class=\"w\"><pre>{}</pre></div>",
                esc(props["markdown"].as_str().unwrap_or(""))
            )),
            "alarm" => {
                html.push_str(&format!("<div class=\"w\"><h2>{}</h2>", esc(title)));
                for a in props["alarms"].as_array().cloned().unwrap_or_default() {
                    let arn = a.as_str().unwrap_or("");
                    let alarm_name = arn.rsplit("alarm:").next().unwrap_or(arn);
                    let state = alarms
                        .get(alarm_name)
                        .map(|x| x.alarm.state_value.clone())
                        .unwrap_or_else(|| "INSUFFICIENT_DATA".into());
                    html.push_str(&format!(
                        "<span class=\"badge {state}\">{} {state}</span>",
                        esc(alarm_name)
                    ));
                }
                html.push_str("</div>");
            }
            _ => {
                let series = widget_series(
                    props["metrics"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                );
                let data: Vec<Vec<(f64, f64)>> = series
                    .iter()
                    .map(|(ns, m, d)| {
                        ctx.metrics
                            .query(region, ns, m, d, now - window, now + 1.0)
                            .iter()
                            .map(|s| (s.ts, s.value))
                            .collect()
                    })
                    .collect();
                let max = data
                    .iter()
                    .flatten()
                    .map(|p| p.1)
                    .fold(0.0f64, f64::max)
                    .max(1e-9);
                let (w_px, h_px) = (540.0, 180.0);
                let mut svg = format!(
                    "<svg width=\"{w_px}\" height=\"{h_px}\" viewBox=\"0 0 {w_px} {h_px}\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\" stroke=\"#eaeded\"/>"
                );
                svg.push_str(&format!("<text x=\"4\" y=\"12\" font-size=\"10\" fill=\"#687078\">{max:.2}</text><text x=\"4\" y=\"{}\" font-size=\"10\" fill=\"#687078\">0</text>", h_px - 4.0));
                for (i, pts) in data.iter().enumerate() {
                    let path: Vec<String> = pts
                        .iter()
                        .map(|(t, v)| {
                            format!(
                                "{:.1},{:.1}",
                                (t - (now - window)) / window * w_px,
                                h_px - 16.0 - v / max * (h_px - 32.0)
                            )
                        })
                        .collect();
                    svg.push_str(&format!(
                        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                        palette[i % palette.len()],
                        path.join(" ")
                    ));
                }
                svg.push_str("</svg>");
                let legend: Vec<String> = series
                    .iter()
                    .enumerate()
                    .map(|(i, (_, m, d))| {
                        let dims: Vec<String> = d.iter().map(|x| x.value.clone()).collect();
                        format!(
                            "<span style=\"color:{}\">&#9632; {} {}</span>",
                            palette[i % palette.len()],
                            esc(m),
                            esc(&dims.join(","))
                        )
                    })
                    .collect();
                html.push_str(&format!(
                    "<div class=\"w\"><h2>{}</h2>{svg}<div class=\"leg\">{}</div></div>",
                    esc(title),
                    legend.join("")
                ));
            }
        }
    }
    html.push_str("</div></body></html>\n");
    let path = ctx.layout.dashboard_html(name);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&path, html)
        .map_err(|e| CapError::internal(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}
