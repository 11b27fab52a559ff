//! CloudWatch dashboards as self-contained HTML pages: one SVG time-series chart per
//! metric widget (drawn with plotters, like the game-day report) with a clock time axis,
//! a y axis in the metric's human unit and a legend of latest values; alarm widgets as
//! state badges; text widgets as text.
//!
//! The daemon keeps `local/dashboards/NAME.html` fresh from its live state;
//! [`render_dashboard_html`] draws the same page from the persisted state and metrics
//! files, for a process that is not the daemon (`runbook serve`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runbook_caps::CapError;
use runbook_caps::types::cloudwatch::Dimension;
use serde_json::{Value, json};

use crate::daemon::Ctx;
use crate::error::{LocalError, Result};
use crate::layout::Layout;
use crate::metrics::Sample;
use crate::state::State;

/// How far back charts reach.
const WINDOW_SECS: f64 = 1800.0;
/// Samples are folded into buckets this wide with the widget's statistic: finer than a
/// CloudWatch period so a game day of a few minutes still shows its shape, coarse
/// enough to keep a page small.
const BUCKET_SECS: f64 = 5.0;
const CHART_W: u32 = 560;
const CHART_H: u32 = 220;
const FONT: &str = "sans-serif";
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

// ---- units -------------------------------------------------------------------------

/// The unit family a metric is shown in; values are in its base unit (bytes, seconds,
/// percent, a count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Bytes,
    BytesPerSecond,
    Seconds,
    Percent,
    Count,
    PerSecond,
}

/// A display scale: values are divided by `div` and followed by `suffix`.
#[derive(Debug, Clone, PartialEq)]
struct Scale {
    div: f64,
    suffix: String,
}

impl Unit {
    /// A CloudWatch unit name (as put-metric-data and the sampler record it) and the
    /// factor that brings its values to the family's base unit.
    fn from_cloudwatch(u: &str) -> Option<(Unit, f64)> {
        let k = 1024f64;
        Some(match u {
            "Bytes" => (Unit::Bytes, 1.0),
            "Kilobytes" => (Unit::Bytes, k),
            "Megabytes" => (Unit::Bytes, k.powi(2)),
            "Gigabytes" => (Unit::Bytes, k.powi(3)),
            "Terabytes" => (Unit::Bytes, k.powi(4)),
            "Bits" => (Unit::Bytes, 0.125),
            "Bytes/Second" => (Unit::BytesPerSecond, 1.0),
            "Kilobytes/Second" => (Unit::BytesPerSecond, k),
            "Megabytes/Second" => (Unit::BytesPerSecond, k.powi(2)),
            "Gigabytes/Second" => (Unit::BytesPerSecond, k.powi(3)),
            "Bits/Second" => (Unit::BytesPerSecond, 0.125),
            "Seconds" => (Unit::Seconds, 1.0),
            "Milliseconds" => (Unit::Seconds, 1e-3),
            "Microseconds" => (Unit::Seconds, 1e-6),
            "Percent" => (Unit::Percent, 1.0),
            "Count" => (Unit::Count, 1.0),
            "Count/Second" => (Unit::PerSecond, 1.0),
            _ => return None,
        })
    }

    /// The unit CloudWatch documents for a metric, by name: the RDS metrics first, then
    /// the naming habit of custom metrics (`FailoverDurationSeconds`).
    fn of_metric(metric: &str) -> Unit {
        match metric {
            "FreeStorageSpace"
            | "FreeableMemory"
            | "SwapUsage"
            | "ReplicationSlotDiskUsage"
            | "TransactionLogsDiskUsage"
            | "OldestReplicationSlotLag"
            | "FreeLocalStorage" => Unit::Bytes,
            "NetworkReceiveThroughput"
            | "NetworkTransmitThroughput"
            | "NetworkThroughput"
            | "ReadThroughput"
            | "WriteThroughput"
            | "TransactionLogsGeneration" => Unit::BytesPerSecond,
            "ReplicaLag" | "ReadLatency" | "WriteLatency" => Unit::Seconds,
            "CPUUtilization" | "BurstBalance" => Unit::Percent,
            "ReadIOPS" | "WriteIOPS" => Unit::PerSecond,
            m if m.ends_with("Seconds") => Unit::Seconds,
            m if m.ends_with("Bytes") => Unit::Bytes,
            m if m.ends_with("Percent") => Unit::Percent,
            _ => Unit::Count,
        }
    }

    /// The scale that shows magnitudes up to `max` best: binary prefixes for bytes,
    /// ms/s/min/h for durations, k/M/G for counts.
    fn scale(self, max: f64) -> Scale {
        let max = max.abs();
        let s = |div: f64, suffix: &str| Scale {
            div,
            suffix: suffix.to_string(),
        };
        match self {
            Unit::Bytes | Unit::BytesPerSecond => {
                const PREFIXES: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
                let mut i = 0;
                while i + 1 < PREFIXES.len() && max >= 1024f64.powi(i as i32 + 1) {
                    i += 1;
                }
                let per = if self == Unit::BytesPerSecond {
                    "/s"
                } else {
                    ""
                };
                s(1024f64.powi(i as i32), &format!(" {}{per}", PREFIXES[i]))
            }
            Unit::Seconds => match max {
                m if m > 0.0 && m < 1e-3 => s(1e-6, " µs"),
                m if m > 0.0 && m < 1.0 => s(1e-3, " ms"),
                m if m < 120.0 => s(1.0, " s"),
                m if m < 7200.0 => s(60.0, " min"),
                _ => s(3600.0, " h"),
            },
            Unit::Percent => s(1.0, "%"),
            Unit::Count | Unit::PerSecond => {
                let per = if self == Unit::PerSecond { "/s" } else { "" };
                let (div, p) = match max {
                    m if m >= 1e9 => (1e9, "G"),
                    m if m >= 1e6 => (1e6, "M"),
                    m if m >= 1e4 => (1e3, "k"),
                    _ => (1.0, ""),
                };
                s(div, &format!("{p}{per}"))
            }
        }
    }
}

/// Drops a fraction's trailing zeros ("1.50" → "1.5", "2.0" → "2").
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `v` to 3 significant digits, without trailing zeros ("99.98" → "100", "0.25").
fn sig3(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            v.to_string()
        };
    }
    let p = 10f64.powi(v.abs().log10().floor() as i32 - 2);
    let r = (v / p).round() * p;
    // Rounding may carry into a new digit (99.98 → 100), so count digits again.
    let decimals = (2 - r.abs().log10().floor() as i32).max(0) as usize;
    trim_zeros(format!("{r:.decimals$}"))
}

/// One value in its human unit: 107351604883 bytes → "100 GiB", 0.25 s → "250 ms".
pub(crate) fn format_value(unit: Unit, v: f64) -> String {
    let s = unit.scale(v);
    format!("{}{}", sig3(v / s.div), s.suffix)
}

/// A round step (1, 2 or 5 times a power of ten) near `span / 4`.
fn nice_step(span: f64) -> f64 {
    let raw = (span / 4.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The y axis: round ticks in display units covering `lo..hi` (base units), and the
/// scale and decimals of their labels.
struct YAxis {
    ticks: Vec<f64>,
    scale: Scale,
    decimals: usize,
}

impl YAxis {
    fn new(unit: Unit, lo: f64, hi: f64) -> YAxis {
        let scale = unit.scale(lo.abs().max(hi.abs()));
        let (lo_s, hi_s) = (lo / scale.div, hi / scale.div);
        let step = nice_step(hi_s - lo_s);
        let first = (lo_s / step).floor() as i64;
        let last = ((hi_s / step).ceil() as i64).max(first + 1);
        let ticks = (first..=last)
            .map(|i| i as f64 * step * scale.div)
            .collect();
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        YAxis {
            ticks,
            scale,
            decimals,
        }
    }
    fn range(&self) -> (f64, f64) {
        (self.ticks[0], self.ticks[self.ticks.len() - 1])
    }
    fn label(&self, v: f64) -> String {
        let d = self.decimals;
        let n = trim_zeros(format!("{:.d$}", v / self.scale.div));
        format!("{}{}", if n == "-0" { "0" } else { &n }, self.scale.suffix)
    }
}

// ---- time axis ---------------------------------------------------------------------

/// Ticks every 1, 2, 5, 10, 15, 30 minutes or 1, 2, 3, 6 hours, whichever gives at most
/// 7, on round minutes of the local clock.
fn time_ticks(start: f64, end: f64, tz: &TimeZone) -> Vec<f64> {
    let step = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600]
        .into_iter()
        .find(|s| (end - start) / f64::from(*s) <= 6.0)
        .unwrap_or(21600) as i64;
    let mut out = Vec::new();
    let mut t = start.ceil() as i64;
    while (t as f64) <= end {
        let off = i64::from(offset(tz, t));
        let r = (t + off).rem_euclid(step);
        if r == 0 {
            out.push(t as f64);
            t += step;
        } else {
            t += step - r;
        }
    }
    out
}

fn offset(tz: &TimeZone, unix: i64) -> i32 {
    Timestamp::from_second(unix)
        .map(|ts| tz.to_offset(ts).seconds())
        .unwrap_or(0)
}

/// `HH:MM` on the local clock.
fn hhmm(tz: &TimeZone, unix: f64) -> String {
    let t = unix.round() as i64;
    let m = (t + i64::from(offset(tz, t))).rem_euclid(86400) / 60;
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The zone's abbreviation at `unix` ("UTC", "CET").
fn zone_name(tz: &TimeZone, unix: f64) -> String {
    Timestamp::from_second(unix as i64)
        .map(|ts| ts.to_zoned_datetime(tz.clone()).strftime("%Z").to_string())
        .unwrap_or_else(|_| "UTC".into())
}

fn clock(tz: &TimeZone, unix: f64) -> String {
    Timestamp::from_second(unix as i64)
        .map(|ts| {
            ts.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_default()
}

// ---- data --------------------------------------------------------------------------

/// Where a page's samples come from: the daemon's store, or the metrics files.
pub(crate) trait SampleSource {
    /// Samples of one metric with exactly these dimensions in [start, end).
    fn samples(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dims: &[Dimension],
        start: f64,
        end: f64,
    ) -> Vec<Sample>;
}

impl SampleSource for crate::metrics::Metrics {
    fn samples(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dims: &[Dimension],
        start: f64,
        end: f64,
    ) -> Vec<Sample> {
        self.query(region, namespace, metric, dims, start, end)
    }
}

fn sorted_dims(d: &[Dimension]) -> Vec<Dimension> {
    let mut d = d.to_vec();
    d.sort_by(|a, b| a.name.cmp(&b.name));
    d
}

/// Samples by region, as read from the `metrics.jsonl` files (or built by tests).
#[derive(Default)]
pub(crate) struct SampleSet {
    by_region: HashMap<String, Vec<Sample>>,
}

impl SampleSet {
    #[cfg(test)]
    fn push(&mut self, region: &str, s: Sample) {
        self.by_region.entry(region.into()).or_default().push(s);
    }

    /// Reads the samples of `metrics` newer than `since` without touching the files:
    /// the daemon appends to them concurrently (a torn last line is skipped).
    fn read(layout: &Layout, regions: &[String], metrics: &[String], since: f64) -> SampleSet {
        // A cheap text filter first: the files hold hours of every metric.
        let needles: Vec<String> = metrics
            .iter()
            .map(|m| format!("\"metric\":{}", json!(m)))
            .collect();
        let mut set = SampleSet::default();
        for r in regions {
            let Ok(text) = std::fs::read_to_string(layout.metrics_file(r)) else {
                continue;
            };
            let v: Vec<Sample> = text
                .lines()
                .filter(|l| needles.iter().any(|n| l.contains(n.as_str())))
                .filter_map(|l| serde_json::from_str::<Sample>(l).ok())
                .filter(|s| s.ts >= since)
                .collect();
            set.by_region.insert(r.clone(), v);
        }
        set
    }
}

impl SampleSource for SampleSet {
    fn samples(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dims: &[Dimension],
        start: f64,
        end: f64,
    ) -> Vec<Sample> {
        let dims = sorted_dims(dims);
        self.by_region
            .get(region)
            .into_iter()
            .flatten()
            .filter(|s| {
                s.namespace == namespace
                    && s.metric == metric
                    && s.ts >= start
                    && s.ts < end
                    && sorted_dims(&s.dims) == dims
            })
            .cloned()
            .collect()
    }
}

/// One metric row of a widget.
struct Row {
    region: String,
    namespace: String,
    metric: String,
    dims: Vec<Dimension>,
    stat: String,
    label: Option<String>,
    color: Option<String>,
}

/// Metric rows of a widget: CloudWatch's `[ns, metric, dimName, dimValue, ...]` rows,
/// where `"."` repeats the previous row's value and a trailing object holds options
/// (`label`, `color`, `stat`, `region`) over the widget's own.
fn widget_rows(props: &Value, default_region: &str) -> Vec<Row> {
    let region = props["region"].as_str().unwrap_or(default_region);
    let stat = props["stat"].as_str().unwrap_or("Average");
    let mut prev: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for row in props["metrics"].as_array().into_iter().flatten() {
        let Some(items) = row.as_array() else {
            continue;
        };
        let opts = items.iter().find(|v| v.is_object()).unwrap_or(&Value::Null);
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
        let opt = |k: &str| opts[k].as_str().map(str::to_string);
        out.push(Row {
            region: opt("region").unwrap_or_else(|| region.to_string()),
            namespace: strs[0].clone(),
            metric: strs[1].clone(),
            dims,
            stat: opt("stat").unwrap_or_else(|| stat.to_string()),
            label: opt("label"),
            color: opt("color"),
        });
        prev = strs;
    }
    out
}

/// A plotted series: bucketed points, its unit and legend text.
struct Series {
    label: String,
    unit: Unit,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    css: String,
}

fn parse_color(c: &str) -> Option<RGBColor> {
    let h = c.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let b = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some(RGBColor(b(0)?, b(2)?, b(4)?))
}

fn series_of(src: &dyn SampleSource, row: &Row, i: usize, start: f64, end: f64) -> Series {
    let samples = src.samples(
        &row.region,
        &row.namespace,
        &row.metric,
        &row.dims,
        start,
        end,
    );
    let (unit, factor) = samples
        .iter()
        .find_map(|s| s.unit.as_deref().and_then(Unit::from_cloudwatch))
        .unwrap_or((Unit::of_metric(&row.metric), 1.0));
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for s in &samples {
        buckets
            .entry((s.ts / BUCKET_SECS).floor() as i64)
            .or_default()
            .push(s.value * factor);
    }
    let points = buckets
        .into_iter()
        .filter_map(|(b, vals)| {
            let v = crate::cloudwatch::stat(&vals, &row.stat)
                .or_else(|| crate::cloudwatch::stat(&vals, "Average"))?;
            Some((b as f64 * BUCKET_SECS, v))
        })
        .collect();
    let color = row
        .color
        .as_deref()
        .and_then(parse_color)
        .unwrap_or(PALETTE[i % PALETTE.len()]);
    let label = row.label.clone().unwrap_or_else(|| {
        let dims: Vec<&str> = row.dims.iter().map(|d| d.value.as_str()).collect();
        if dims.is_empty() {
            row.metric.clone()
        } else {
            format!("{} {}", row.metric, dims.join(","))
        }
    });
    Series {
        label,
        unit,
        points,
        css: format!("#{:02x}{:02x}{:02x}", color.0, color.1, color.2),
        color,
    }
}

/// Runs of points without a gap: a gap is more than three times the usual spacing, so
/// a replica that stopped reporting shows as a break, not a line across the outage.
fn segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut gaps: Vec<f64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_by(f64::total_cmp);
    let usual = gaps.get(gaps.len() / 2).copied().unwrap_or(BUCKET_SECS);
    let limit = usual.max(BUCKET_SECS) * 3.0;
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    for p in points {
        match out.last_mut() {
            Some(seg) if p.0 - seg[seg.len() - 1].0 <= limit => seg.push(*p),
            _ => out.push(vec![*p]),
        }
    }
    out
}

// ---- drawing -----------------------------------------------------------------------

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

type DrawErr = Box<dyn std::error::Error>;

/// An f64 axis with our own ticks, which are also its gridlines. (plotters'
/// `with_key_points` loses the label formatting `configure_mesh` needs on f64.)
struct Ticked {
    range: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Ticked {
        Ticked {
            range: (lo..hi).into(),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(v, limit)
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.range.range()
    }
}

/// One widget's chart: time on x over [start, end], the first series' unit on y.
fn chart_svg(title: &str, series: &[Series], start: f64, end: f64, tz: &TimeZone) -> String {
    let unit = series.first().map_or(Unit::Count, |s| s.unit);
    let vals = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let lo = vals().fold(0.0, f64::min);
    let hi = vals().fold(0.0, f64::max);
    // Headroom above the highest point; an all-zero chart still gets a unit-sized axis.
    let hi = if hi > lo {
        hi + (hi - lo) * 0.05
    } else if unit == Unit::Bytes || unit == Unit::BytesPerSecond {
        lo + 1024.0
    } else {
        lo + 1.0
    };
    let y = YAxis::new(unit, lo, hi);
    let x_ticks = time_ticks(start, end, tz);
    let zone = zone_name(tz, end);
    let mut buf = String::new();
    let drawn: std::result::Result<(), DrawErr> = (|| {
        let root = SVGBackend::with_string(&mut buf, (CHART_W, CHART_H)).into_drawing_area();
        root.fill(&WHITE)?;
        let (y0, y1) = y.range();
        let mut chart = ChartBuilder::on(&root)
            .margin_top(10)
            .margin_right(18)
            .margin_left(4)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(
                Ticked::new(start, end, x_ticks),
                Ticked::new(y0, y1, y.ticks.clone()),
            )?;
        let x_fmt = |t: &f64| hhmm(tz, *t);
        let y_fmt = |v: &f64| y.label(*v);
        chart
            .configure_mesh()
            .bold_line_style(RGBColor(0xe3, 0xe7, 0xea))
            .axis_style(RGBColor(0x87, 0x95, 0x96))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc(format!("time ({zone})"))
            .label_style((FONT, 14).into_font().color(&RGBColor(0x41, 0x4d, 0x5c)))
            .axis_desc_style((FONT, 13).into_font().color(&RGBColor(0x68, 0x70, 0x78)))
            .draw()?;
        for s in series {
            for seg in segments(&s.points) {
                if seg.len() == 1 {
                    chart.draw_series(std::iter::once(Circle::new(seg[0], 3, s.color.filled())))?;
                } else {
                    chart.draw_series(LineSeries::new(seg, s.color.stroke_width(2)))?;
                }
            }
        }
        if series.iter().all(|s| s.points.is_empty()) {
            let style = (FONT, 16)
                .into_font()
                .color(&RGBColor(0x87, 0x95, 0x96))
                .pos(Pos::new(HPos::Center, VPos::Center));
            chart.draw_series(std::iter::once(Text::new(
                "no data".to_string(),
                ((start + end) / 2.0, (y0 + y1) / 2.0),
                style,
            )))?;
        }
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => buf.replacen(
            "<svg ",
            &format!(
                "<svg class=\"chart\" role=\"img\" aria-label=\"{}\" ",
                esc(title)
            ),
            1,
        ),
        Err(e) => format!(
            "<p class=\"err\">chart could not be drawn: {}</p>",
            esc(&e.to_string())
        ),
    }
}

/// Alarm states by (region, name).
type AlarmStates = HashMap<(String, String), String>;

fn alarm_states(s: &State) -> AlarmStates {
    s.regions
        .iter()
        .flat_map(|(r, x)| {
            x.alarms
                .iter()
                .map(move |(n, a)| ((r.clone(), n.clone()), a.alarm.state_value.clone()))
        })
        .collect()
}

/// One dashboard page. `region` is the dashboard's; widgets may name another.
fn page(
    name: &str,
    region: &str,
    body: &str,
    alarms: &AlarmStates,
    src: &dyn SampleSource,
    now: f64,
    tz: &TimeZone,
) -> String {
    let body: Value = serde_json::from_str(body).unwrap_or(json!({"widgets": []}));
    let (start, end) = (now - WINDOW_SECS, now);
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"15\"><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:16px;background:#f4f6f8;color:#16191f}}\
         .grid{{display:flex;flex-wrap:wrap;gap:12px}}\
         .w{{background:#fff;border:1px solid #d5dbdb;border-radius:4px;padding:10px;width:{w}px}}\
         h1{{font-size:20px}}h2{{font-size:14px;margin:0 0 6px}}\
         .leg{{font-size:12px;margin-top:4px}}.leg span{{margin-right:12px;white-space:nowrap}}\
         .leg i{{display:inline-block;width:10px;height:10px;margin-right:4px}}\
         .nodata{{color:#879596}}\
         .ALARM{{background:#d13212;color:#fff}}.OK{{background:#1d8102;color:#fff}}\
         .INSUFFICIENT_DATA{{background:#879596;color:#fff}}\
         .badge{{padding:3px 8px;border-radius:3px;font-size:12px;margin:2px;display:inline-block}}\
         </style></head><body><h1>{t}</h1><p>{r} &middot; rendered {at} &middot; last {mins} minutes</p>\
         <div class=\"grid\">",
        t = esc(name),
        r = esc(region),
        w = CHART_W,
        at = esc(&clock(tz, now)),
        mins = WINDOW_SECS / 60.0
    );
    for w in body["widgets"].as_array().into_iter().flatten() {
        let props = &w["properties"];
        let title = props["title"].as_str().unwrap_or("");
        match w["type"].as_str().unwrap_or("metric") {
            "text" => html.push_str(&format!(
                "<div class=\"w\"><pre>{}</pre></div>",
                esc(props["markdown"].as_str().unwrap_or(""))
            )),
            "alarm" => {
                html.push_str(&format!("<div class=\"w\"><h2>{}</h2>", esc(title)));
                for a in props["alarms"].as_array().into_iter().flatten() {
                    let arn = a.as_str().unwrap_or("");
                    let alarm_name = arn.rsplit("alarm:").next().unwrap_or(arn);
                    // arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME
                    let alarm_region = arn
                        .split(':')
                        .nth(3)
                        .filter(|r| !r.is_empty())
                        .unwrap_or(region);
                    let state = alarms
                        .get(&(alarm_region.to_string(), alarm_name.to_string()))
                        .map(String::as_str)
                        .unwrap_or("INSUFFICIENT_DATA");
                    html.push_str(&format!(
                        "<span class=\"badge {state}\">{} {state}</span>",
                        esc(alarm_name)
                    ));
                }
                html.push_str("</div>");
            }
            _ => {
                let series: Vec<Series> = widget_rows(props, region)
                    .iter()
                    .enumerate()
                    .map(|(i, row)| series_of(src, row, i, start, end + 1.0))
                    .collect();
                let svg = chart_svg(title, &series, start, end, tz);
                let legend: Vec<String> = series
                    .iter()
                    .map(|s| {
                        let latest = match s.points.last() {
                            Some((_, v)) => format!("<b>{}</b>", esc(&format_value(s.unit, *v))),
                            None => "<b class=\"nodata\">no data</b>".into(),
                        };
                        format!(
                            "<span><i style=\"background:{}\"></i>{} {latest}</span>",
                            s.css,
                            esc(&s.label)
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
    html
}

// ---- entry points ------------------------------------------------------------------

/// Render a dashboard from the daemon's live state to `local/dashboards/NAME.html`.
pub(crate) fn render_dashboard(ctx: &Ctx, region: &str, name: &str) -> Result<PathBuf, CapError> {
    let (dash, alarms) = ctx.read(|s| {
        (
            s.region(region)
                .and_then(|x| x.dashboards.get(name))
                .cloned(),
            alarm_states(s),
        )
    });
    let dash = dash.ok_or_else(|| {
        CapError::not_found(
            "ResourceNotFound",
            format!("Dashboard {name} does not exist"),
        )
    })?;
    let html = page(
        name,
        region,
        &dash.body,
        &alarms,
        &ctx.metrics,
        crate::ids::unix_now(),
        &TimeZone::system(),
    );
    let path = ctx.layout.dashboard_html(name);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&path, html)
        .map_err(|e| CapError::internal(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}

/// Names of the local provider's CloudWatch dashboards under `state_dir`, sorted, each
/// once (a name may exist in several regions). Empty when the state dir holds no local
/// environment.
pub fn list_dashboards(state_dir: &Path) -> Result<Vec<String>, LocalError> {
    let state = State::load(&Layout::new(state_dir))?;
    let mut names: Vec<String> = state
        .regions
        .values()
        .flat_map(|r| r.dashboards.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The dashboard `name` as a self-contained HTML page (inline SVG charts of the last 30
/// minutes, time in the system's time zone), drawn from the state and metrics the
/// local daemon persists under `state_dir`, so it works from any process and whether
/// or not the daemon runs. `None` when no region has that dashboard; when several do,
/// the first region in name order is shown. Reads only: never writes the state dir.
pub fn render_dashboard_html(state_dir: &Path, name: &str) -> Result<Option<String>, LocalError> {
    let layout = Layout::new(state_dir);
    let state = State::load(&layout)?;
    let Some((region, dash)) = state
        .regions
        .iter()
        .find_map(|(r, x)| x.dashboards.get(name).map(|d| (r.clone(), d.clone())))
    else {
        return Ok(None);
    };
    let body: Value = serde_json::from_str(&dash.body).unwrap_or(Value::Null);
    let mut regions = vec![region.clone()];
    let mut metrics = Vec::new();
    for w in body["widgets"].as_array().into_iter().flatten() {
        for row in widget_rows(&w["properties"], &region) {
            regions.push(row.region);
            metrics.push(row.metric);
        }
    }
    regions.sort();
    regions.dedup();
    let now = crate::ids::unix_now();
    let samples = SampleSet::read(&layout, &regions, &metrics, now - WINDOW_SECS - BUCKET_SECS);
    Ok(Some(page(
        name,
        &region,
        &dash.body,
        &alarm_states(&state),
        &samples,
        now,
        &TimeZone::system(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_in_human_units() {
        let cases = [
            (Unit::Bytes, 107_351_604_883.0, "100 GiB"),
            (Unit::Bytes, 512.0, "512 B"),
            (Unit::Bytes, 0.0, "0 B"),
            (Unit::Bytes, 1536.0 * 1024.0, "1.5 MiB"),
            (Unit::BytesPerSecond, 1536.0, "1.5 KiB/s"),
            (Unit::Seconds, 0.25, "250 ms"),
            (Unit::Seconds, 1.5, "1.5 s"),
            (Unit::Seconds, 90.0, "90 s"),
            (Unit::Seconds, 600.0, "10 min"),
            (Unit::Percent, 42.456, "42.5%"),
            (Unit::Count, 3.0, "3"),
            (Unit::Count, 12_345.0, "12.3k"),
            (Unit::PerSecond, 250.0, "250/s"),
        ];
        for (unit, v, want) in cases {
            assert_eq!(format_value(unit, v), want, "{unit:?} {v}");
        }
    }

    #[test]
    fn units_follow_cloudwatch_names_then_metric_names() {
        assert_eq!(Unit::from_cloudwatch("Bytes"), Some((Unit::Bytes, 1.0)));
        assert_eq!(
            Unit::from_cloudwatch("Milliseconds"),
            Some((Unit::Seconds, 1e-3))
        );
        assert_eq!(Unit::from_cloudwatch("None"), None);
        assert_eq!(Unit::of_metric("FreeStorageSpace"), Unit::Bytes);
        assert_eq!(Unit::of_metric("FreeableMemory"), Unit::Bytes);
        assert_eq!(
            Unit::of_metric("NetworkReceiveThroughput"),
            Unit::BytesPerSecond
        );
        assert_eq!(Unit::of_metric("ReplicaLag"), Unit::Seconds);
        assert_eq!(Unit::of_metric("CPUUtilization"), Unit::Percent);
        assert_eq!(Unit::of_metric("DatabaseConnections"), Unit::Count);
        assert_eq!(Unit::of_metric("WriteIOPS"), Unit::PerSecond);
        assert_eq!(Unit::of_metric("FailoverDurationSeconds"), Unit::Seconds);
    }

    #[test]
    fn y_ticks_are_round_in_display_units() {
        let y = YAxis::new(Unit::Bytes, 0.0, 107_351_604_883.0 * 1.05);
        let labels: Vec<String> = y.ticks.iter().map(|t| y.label(*t)).collect();
        assert_eq!(labels.first().map(String::as_str), Some("0 GiB"));
        assert!(labels.iter().all(|l| l.ends_with(" GiB")), "{labels:?}");
        assert!(*y.ticks.last().unwrap() >= 107_351_604_883.0 * 1.05);
        let y = YAxis::new(Unit::Seconds, 0.0, 0.8);
        let labels: Vec<String> = y.ticks.iter().map(|t| y.label(*t)).collect();
        assert!(labels.contains(&"200 ms".to_string()), "{labels:?}");
    }

    #[test]
    fn time_ticks_fall_on_round_local_minutes() {
        let start = 1_800_000_000.0 - WINDOW_SECS - 17.0;
        for tz in [
            TimeZone::UTC,
            TimeZone::fixed(jiff::tz::Offset::from_seconds(5 * 3600 + 1800).unwrap()),
        ] {
            let ticks = time_ticks(start, start + WINDOW_SECS, &tz);
            assert!((5..=7).contains(&ticks.len()), "{ticks:?}");
            for t in &ticks {
                assert!(hhmm(&tz, *t).ends_with(['0', '5']), "{}", hhmm(&tz, *t));
                assert!(*t >= start && *t <= start + WINDOW_SECS);
            }
        }
    }

    fn sample(metric: &str, id: &str, ts: f64, value: f64, unit: Option<&str>) -> Sample {
        Sample {
            namespace: "AWS/RDS".into(),
            metric: metric.into(),
            dims: vec![Dimension {
                name: "DBInstanceIdentifier".into(),
                value: id.into(),
            }],
            ts,
            value,
            unit: unit.map(str::to_string),
        }
    }

    /// The widgets deploy.yaml creates, with the replica's in another region.
    fn deploy_body() -> String {
        let w = |title: &str, region: &str, metric: &str, id: &str| {
            json!({"type": "metric", "properties": {"title": title, "region": region, "stat": "Maximum",
                "period": 60, "metrics": [["AWS/RDS", metric, "DBInstanceIdentifier", id]]}})
        };
        json!({"widgets": [
            w("Replica lag (seconds)", "eu-west-1", "ReplicaLag", "replica"),
            w("Primary CPU utilization (%)", "us-east-1", "CPUUtilization", "primary"),
            w("Database connections", "us-east-1", "DatabaseConnections", "primary"),
            w("Free storage space (bytes)", "us-east-1", "FreeStorageSpace", "primary"),
            w("Freeable memory", "us-east-1", "FreeableMemory", "nobody"),
            {"type": "alarm", "properties": {"title": "Alarms",
                "alarms": ["arn:aws:cloudwatch:eu-west-1:000000000000:alarm:lag"]}},
        ]})
        .to_string()
    }

    #[test]
    fn page_has_time_axes_human_units_and_no_data_text() {
        let now = 1_800_000_000.0;
        let mut src = SampleSet::default();
        for i in 0..600 {
            let ts = now - 600.0 + f64::from(i);
            let lag = if i > 300 { 0.25 } else { 0.0 };
            src.push(
                "eu-west-1",
                sample("ReplicaLag", "replica", ts, lag, Some("Seconds")),
            );
            src.push(
                "us-east-1",
                sample("FreeStorageSpace", "primary", ts, 107_351_604_883.0, None),
            );
            src.push(
                "us-east-1",
                sample(
                    "CPUUtilization",
                    "primary",
                    ts,
                    3.0 + f64::from(i % 7),
                    None,
                ),
            );
            src.push(
                "us-east-1",
                sample("DatabaseConnections", "primary", ts, 4.0, Some("Count")),
            );
        }
        let alarms: AlarmStates = [(("eu-west-1".into(), "lag".into()), "ALARM".into())].into();
        let html = page(
            "postgres-dr-dev",
            "us-east-1",
            &deploy_body(),
            &alarms,
            &src,
            now,
            &TimeZone::UTC,
        );
        // plotters puts text on lines of its own.
        let html = html.replace('\n', "");
        assert_eq!(html.matches("<svg").count(), 5, "{html}");
        // Time axis: every tick of the window, labelled on the clock.
        let ticks = time_ticks(now - WINDOW_SECS, now, &TimeZone::UTC);
        assert!(ticks.len() >= 5);
        for t in &ticks {
            let label = format!(">{}<", hhmm(&TimeZone::UTC, *t));
            assert_eq!(html.matches(&label).count(), 5, "{label} on each chart");
        }
        assert!(html.contains("time (UTC)"));
        // Human units on the axes and in the legend, never the raw byte count.
        assert!(!html.contains("107351604883"), "{html}");
        assert!(html.contains(" GiB<"), "GiB axis labels");
        assert!(html.contains("<b>100 GiB</b>"), "latest free storage");
        assert!(html.contains("<b>250 ms</b>"), "latest lag");
        assert!(html.contains(" ms<"), "lag axis in ms");
        assert!(html.contains("%<"), "CPU axis in percent");
        assert!(html.contains("polyline"));
        // The widget without samples says so, on the chart and in the legend.
        assert_eq!(html.matches(">no data<").count(), 2, "{html}");
        assert!(html.contains("<span class=\"badge ALARM\">lag ALARM</span>"));
    }

    #[test]
    fn a_replica_that_stops_reporting_leaves_a_gap() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i) * 5.0, 1.0))
            .chain((0..10).map(|i| (300.0 + f64::from(i) * 5.0, 2.0)))
            .collect();
        let segs = segments(&pts);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].len(), 10);
    }

    #[test]
    fn file_samples_are_read_without_rewriting_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.region_dir("us-east-1")).unwrap();
        let now = crate::ids::unix_now();
        let lines: String = [
            sample("ReplicaLag", "r", now - 10.0, 1.0, None),
            sample("ReplicaLag", "r", now - 7200.0, 9.0, None),
            sample("CPUUtilization", "r", now - 10.0, 5.0, None),
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap() + "\n")
        .collect::<String>()
            + "{\"namespace\":\"AWS/RDS\",\"metric\":\"ReplicaLag\",\"di";
        std::fs::write(layout.metrics_file("us-east-1"), &lines).unwrap();
        let set = SampleSet::read(
            &layout,
            &["us-east-1".into()],
            &["ReplicaLag".into()],
            now - WINDOW_SECS,
        );
        let got = set.samples(
            "us-east-1",
            "AWS/RDS",
            "ReplicaLag",
            &sample("x", "r", 0.0, 0.0, None).dims,
            now - WINDOW_SECS,
            now + 1.0,
        );
        assert_eq!(got.iter().map(|s| s.value).collect::<Vec<_>>(), [1.0]);
        assert_eq!(
            std::fs::read_to_string(layout.metrics_file("us-east-1")).unwrap(),
            lines
        );
    }
}
