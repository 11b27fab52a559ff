//! Inline SVG charts drawn with plotters' SVG backend (text is escaped by plotters).
//!
//! All time charts share the x axis (seconds since the game day started) and the same
//! plot-area insets, so the write, lag and phase charts line up one above the other.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::{GameDay, Verdict};
use crate::trend::TrendPoint;

pub(crate) const WIDTH: u32 = 1180;
const LEFT: u32 = 120; // room for phase names on the Gantt chart
const FONT: &str = "sans-serif";

const ACKED: RGBColor = RGBColor(46, 160, 67);
const FAILED: RGBColor = RGBColor(207, 34, 46);
const UNKNOWN: RGBColor = RGBColor(210, 153, 34);
const WINDOW: RGBColor = RGBColor(255, 214, 214);
const FAULT: RGBColor = RGBColor(180, 0, 0);
const RECOVERED: RGBColor = RGBColor(0, 110, 200);
const LAG: RGBColor = RGBColor(130, 80, 223);

type Err = Box<dyn std::error::Error>;

/// The height of one stacked layer in a bucket.
type Layer = dyn Fn(&crate::Bucket) -> u64;

/// Axis numbers without a pointless `.0`.
fn num_label(x: &f64) -> String {
    if x.fract().abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The instants every time chart marks.
struct Frame {
    start_ms: i64,
    x_max: f64,
    fault_s: Option<f64>,
    recovered_s: Option<f64>,
    /// The other timeline milestones: where, short label, colour.
    milestones: Vec<(f64, &'static str, RGBColor)>,
}

/// Marker colour of each milestone (fault and recovery have their own markers).
fn milestone_color(event: &str) -> Option<RGBColor> {
    use crate::milestone as ms;
    Some(match event {
        ms::FIRST_CLIENT_ERROR => RGBColor(230, 90, 40),
        ms::DETECTION => RGBColor(190, 120, 0),
        ms::DECISION => RGBColor(130, 80, 223),
        ms::FENCE => RGBColor(120, 80, 40),
        ms::PROMOTE => RGBColor(0, 140, 140),
        ms::WEIGHTS_MOVED => RGBColor(60, 60, 170),
        ms::FAILBACK_DONE => RGBColor(30, 110, 50),
        _ => return None,
    })
}

impl Frame {
    fn of(g: &GameDay) -> Frame {
        let secs = |ms: i64| (ms - g.started_ms) as f64 / 1000.0;
        Frame {
            start_ms: g.started_ms,
            x_max: secs(g.end_ms()).max(1.0) * 1.01,
            fault_s: g.fault.injected_at_ms.map(secs),
            recovered_s: g.recovered_at_ms().map(secs),
            milestones: crate::milestone::ALL
                .iter()
                .filter_map(|m| {
                    let color = milestone_color(m.event)?;
                    let e = g.timeline.iter().find(|e| e.event == m.event)?;
                    Some((secs(e.at_ms), m.label, color))
                })
                .collect(),
        }
    }
    fn s(&self, ms: i64) -> f64 {
        (ms - self.start_ms) as f64 / 1000.0
    }
}

/// Adds a class, a role and an accessible name to plotters' `<svg>` root so the page can
/// size it with CSS and tests and screen readers can find it.
fn finish(svg: String, id: &str, label: &str) -> String {
    let attrs = format!(
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"{}\" ",
        super::esc(label)
    );
    svg.replacen("<svg ", &attrs, 1)
}

fn draw(
    id: &str,
    label: &str,
    height: u32,
    f: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), Err>,
) -> String {
    let mut buf = String::new();
    let res = {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(Err::from)
            .and_then(|_| f(&root))
            .and_then(|_| root.present().map_err(Err::from))
    };
    match res {
        Ok(()) => finish(buf, id, label),
        Err(e) => format!(
            "<p class=\"chart-error\">{} could not be drawn: {}</p>",
            super::esc(label),
            super::esc(&e.to_string())
        ),
    }
}

fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.margin_top(12)
        .margin_right(20)
        .margin_left(8)
        .x_label_area_size(40)
        .y_label_area_size(LEFT);
    b
}

/// Plot-area width in pixels (the chart less its y labels and margins).
const PLOT_WIDTH: f64 = (WIDTH - LEFT - 28) as f64;

/// Vertical marker lines at fault injection and recovery, labelled at the top, and
/// thinner ones at the other milestones, labelled in rows below so close ones stay
/// readable. `plot_height` is the plot area's height in pixels.
fn markers<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    frame: &Frame,
    y_top: f64,
    plot_height: f64,
) -> Result<(), Err>
where
    DB::ErrorType: 'static,
{
    let px_x = frame.x_max / PLOT_WIDTH;
    let px_y = y_top / plot_height;
    // Greedy rows: a label goes in the first row whose last label ended left of it.
    let mut row_ends: Vec<f64> = Vec::new();
    let mut sorted = frame.milestones.clone();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (x, label, color) in sorted {
        chart
            .draw_series(DashedLineSeries::new(
                [(x, 0.0), (x, y_top)],
                3,
                3,
                color.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        let width = (label.len() as f64 * 7.0 + 8.0) * px_x;
        let row = match row_ends.iter().position(|end| *end < x) {
            Some(r) => r,
            None => {
                row_ends.push(f64::MIN);
                row_ends.len() - 1
            }
        };
        row_ends[row] = x + width;
        let y = y_top - (22.0 + 15.0 * row as f64) * px_y;
        if y <= 0.0 {
            continue; // more rows than the chart has room for: the line stays
        }
        let style = (FONT, 13)
            .into_font()
            .color(&color)
            .pos(Pos::new(HPos::Left, VPos::Top));
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {label}"),
                (x, y),
                style,
            )))
            .map_err(|e| e.to_string())?;
    }
    // The fault label ends at its line and the recovery label starts at its own, so
    // the two stay readable when a short outage puts the lines close together.
    for (x, color, text, h) in [
        (frame.fault_s, FAULT, "fault injected ", HPos::Right),
        (frame.recovered_s, RECOVERED, " recovered", HPos::Left),
    ] {
        let Some(x) = x else { continue };
        chart
            .draw_series(DashedLineSeries::new(
                [(x, 0.0), (x, y_top)],
                6,
                4,
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        let style = (FONT, 16)
            .into_font()
            .color(&color)
            .pos(Pos::new(h, VPos::Top));
        chart
            .draw_series(std::iter::once(Text::new(
                text.to_string(),
                (x, y_top),
                style,
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Client-seen writes per second: acked stacked under failed and unknown, the fault →
/// recovery window shaded, markers at injection and recovery.
pub(crate) fn writes_chart(g: &GameDay) -> String {
    let frame = Frame::of(g);
    let w = &g.series.writes;
    // Buckets are contiguous; their width is the spacing (1 s when there is only one).
    let width_ms = w.get(1).map(|b| b.t_ms - w[0].t_ms).unwrap_or(1000).max(1);
    let per_s = 1000.0 / width_ms as f64;
    let y_max = w
        .iter()
        .map(|b| (b.acked + b.failed + b.unknown) as f64 * per_s)
        .fold(1.0, f64::max)
        * 1.2;
    draw(
        "chart-writes",
        "Client-seen writes per second",
        340,
        |root| {
            let mut chart = builder(root).build_cartesian_2d(0f64..frame.x_max, 0f64..y_max)?;
            chart
                .configure_mesh()
                .max_light_lines(0)
                .x_label_formatter(&num_label)
                .x_desc("seconds since start")
                .y_label_formatter(&num_label)
                .y_desc("writes/s")
                .label_style((FONT, 16))
                .axis_desc_style((FONT, 16))
                .draw()?;
            if let Some(f) = frame.fault_s {
                let end = frame.recovered_s.unwrap_or(frame.x_max);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(f, 0.0), (end, y_max)],
                        WINDOW.mix(0.6).filled(),
                    )))?
                    .label("outage window")
                    .legend(|(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 14, y + 6)], WINDOW.filled())
                    });
            }
            // Steps: each bucket is flat over its interval, so an outage drops straight to 0.
            let steps = |v: &Layer| -> Vec<(f64, f64)> {
                w.iter()
                    .flat_map(|b| {
                        let (x0, x1) = (frame.s(b.t_ms), frame.s(b.t_ms + width_ms));
                        let y = v(b) as f64 * per_s;
                        [(x0, y), (x1, y)]
                    })
                    .collect()
            };
            let layers: [(&str, RGBColor, &Layer); 3] = [
                ("unknown", UNKNOWN, &|b| b.acked + b.failed + b.unknown),
                ("failed", FAILED, &|b| b.acked + b.failed),
                ("acked", ACKED, &|b| b.acked),
            ];
            for (name, color, v) in layers {
                chart
                    .draw_series(AreaSeries::new(steps(v), 0.0, color.mix(0.85)))?
                    .label(name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                    });
            }
            markers(&mut chart, &frame, y_max, 288.0)?;
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.3))
                .label_font((FONT, 16))
                .draw()?;
            Ok(())
        },
    )
}

/// Replica lag over time; a gap where the replica could not be sampled.
pub(crate) fn lag_chart(g: &GameDay) -> String {
    let frame = Frame::of(g);
    let lag = &g.series.lag;
    let y_max = lag.iter().filter_map(|s| s.lag_seconds).fold(0.5, f64::max) * 1.25;
    draw("chart-lag", "Replica lag (seconds)", 240, |root| {
        let mut chart = builder(root).build_cartesian_2d(0f64..frame.x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_label_formatter(&num_label)
            .x_desc("seconds since start")
            .y_label_formatter(&num_label)
            .y_desc("lag (s)")
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let mut segment: Vec<(f64, f64)> = Vec::new();
        let mut segments = Vec::new();
        for s in lag {
            match s.lag_seconds {
                Some(v) => segment.push((frame.s(s.t_ms), v)),
                None if !segment.is_empty() => segments.push(std::mem::take(&mut segment)),
                None => {}
            }
        }
        segments.push(segment);
        for seg in segments.into_iter().filter(|s| !s.is_empty()) {
            chart.draw_series(LineSeries::new(seg, LAG.stroke_width(2)))?;
        }
        markers(&mut chart, &frame, y_max, 188.0)?;
        Ok(())
    })
}

fn phase_color(status: &str) -> RGBColor {
    match status {
        "SUCCEEDED" => ACKED,
        "FAILED" | "TIMED_OUT" | "ABORTED" => FAILED,
        "RUNNING" => RECOVERED,
        _ => RGBColor(150, 150, 150),
    }
}

/// The phases as a Gantt-like bar chart, first phase on top.
pub(crate) fn phases_chart(g: &GameDay) -> String {
    let frame = Frame::of(g);
    let n = g.phases.len() as i32;
    let names: Vec<String> = g.phases.iter().rev().map(|p| p.name.clone()).collect();
    let height = 80 + 34 * n.max(1) as u32;
    draw("chart-phases", "Phases", height, |root| {
        let mut chart =
            builder(root).build_cartesian_2d(0f64..frame.x_max, (0..n.max(1)).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            // Not max_light_lines(0): plotters 0.3.7 overflows computing integer key
            // points for zero lines on the segmented axis.
            .light_line_style(TRANSPARENT)
            .y_labels(n.max(1) as usize)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&num_label)
            .x_desc("seconds since start")
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let end = frame.x_max;
        chart.draw_series(g.phases.iter().enumerate().map(|(i, p)| {
            let row = n - 1 - i as i32;
            let x1 = p.finished_ms.map(|f| frame.s(f)).unwrap_or(end);
            let x0 = frame.s(p.started_ms);
            let mut r = Rectangle::new(
                [
                    (x0, SegmentValue::Exact(row)),
                    (x1.max(x0), SegmentValue::Exact(row + 1)),
                ],
                phase_color(&p.status).mix(0.8).filled(),
            );
            r.set_margin(5, 5, 0, 0);
            r
        }))?;
        let main = [(frame.fault_s, FAULT, 2), (frame.recovered_s, RECOVERED, 2)];
        let others = frame.milestones.iter().map(|m| (Some(m.0), m.2, 1));
        for (x, color, width) in main.into_iter().chain(others) {
            let Some(x) = x else { continue };
            chart.draw_series(DashedLineSeries::new(
                [
                    (x, SegmentValue::Exact(0)),
                    (x, SegmentValue::Exact(n.max(1))),
                ],
                6,
                4,
                color.stroke_width(width),
            ))?;
        }
        Ok(())
    })
}

fn verdict_color(v: Verdict) -> RGBColor {
    match v {
        Verdict::Pass => ACKED,
        Verdict::Fail => FAILED,
        Verdict::Inconclusive => UNKNOWN,
    }
}

/// RTO of each run in order, points coloured by verdict (missing RTO drawn at 0 as a ring).
pub(crate) fn trend_chart(points: &[TrendPoint], dates: &[String]) -> String {
    let n = points.len().max(1) as f64;
    let y_max = points
        .iter()
        .filter_map(|p| p.rto_seconds)
        .fold(1.0, f64::max)
        * 1.25;
    draw("chart-trend", "RTO per game day", 340, |root| {
        let mut chart = builder(root).build_cartesian_2d(-0.5f64..n - 0.5, 0f64..y_max)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_labels(points.len().clamp(1, 12))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    dates.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&num_label)
            .y_desc("RTO (s)")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let line: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.rto_seconds.map(|r| (i as f64, r)))
            .collect();
        chart.draw_series(LineSeries::new(line, RGBColor(90, 90, 90).stroke_width(1)))?;
        chart.draw_series(points.iter().enumerate().map(|(i, p)| {
            let c = verdict_color(p.verdict);
            match p.rto_seconds {
                Some(r) => Circle::new((i as f64, r), 5, c.filled()),
                None => Circle::new((i as f64, 0.0), 5, c.stroke_width(2)),
            }
        }))?;
        Ok(())
    })
}
