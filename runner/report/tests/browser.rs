//! The HTML report and the trend page loaded in a real headless Chromium.

mod common;

use std::path::PathBuf;

use runbook_report::{TrendPoint, Verdict, render_html, render_trend_html};
use runbook_test_support::chromium::Chromium;

/// Kept after the run so a person can look at the page and the screenshot.
fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Text between `<tag ...id="id"` and the next `</tag>` in the dumped DOM.
fn element<'a>(dom: &'a str, tag: &str, id: &str) -> &'a str {
    let open = format!("<{tag} id=\"{id}\"");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in DOM"));
    let end = dom[start..].find(&format!("</{tag}>")).unwrap() + start;
    &dom[start..end]
}

/// No element or attribute that makes the browser fetch anything: the page must work
/// from a single file, offline. Scans real tags only (escaped user text is `&lt;...`).
fn assert_self_contained(dom: &str) {
    for tag in dom.split('<').skip(1) {
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let name = name.to_ascii_lowercase();
        assert!(
            ![
                "script", "link", "img", "iframe", "object", "embed", "image", "use", "base"
            ]
            .contains(&name.as_str()),
            "page has a <{name}> element"
        );
        for attr in [
            " src=",
            " href=",
            " xlink:href=",
            " srcset=",
            " action=",
            "url(",
        ] {
            assert!(!tag.contains(attr), "<{tag}> has {attr:?}");
        }
        // Only the SVG namespace may name a URL, and it is an identifier, not fetched.
        let without_ns = tag.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!without_ns.contains("http"), "<{tag}> names a URL");
    }
    let style = &dom[dom.find("<style>").unwrap()..dom.find("</style>").unwrap()];
    assert!(
        !style.contains("url(") && !style.contains("@import"),
        "stylesheet fetches"
    );
}

#[test]
fn report_renders_in_chromium() {
    let chromium = Chromium::find().expect("chromium installed by scripts/setup.sh");
    let g = common::small();
    let html = render_html(&g);
    let page = out_dir().join("report.html");
    std::fs::write(&page, &html).unwrap();

    let dom = chromium.dump_dom(&page).unwrap();
    assert_self_contained(&dom);
    let banner = element(&dom, "header", "verdict");
    assert!(banner.contains("Game day FAIL"), "{banner}");
    assert!(banner.contains("verdict-fail"));
    assert!(banner.contains("gameday &lt;region-loss&gt;"));
    let reasons = element(&dom, "ul", "reasons");
    assert!(
        reasons.contains("<li class=\"missed\">RTO 12.4 s exceeds target 5 s</li>"),
        "{reasons}"
    );
    assert!(reasons.contains("<li>check failed: topology restored</li>"));

    let targets = element(&dom, "section", "targets");
    assert!(
        targets.contains("<tr class=\"missed\"><td>RTO (client-seen)</td>"),
        "{targets}"
    );

    // Chromium parsed the charts as SVG: the write chart has the three stacked areas, the
    // shaded outage window and the two dashed markers; the lag chart its line segments
    // (split where the replica could not be sampled); the Gantt chart one bar per phase.
    let writes = element(&dom, "svg", "chart-writes");
    assert!(writes.matches("<polygon").count() >= 3, "areas missing");
    assert!(writes.contains("fill=\"#FFD6D6\""), "outage window missing");
    assert!(
        writes.contains("fault injected"),
        "fault marker label missing"
    );
    assert!(writes.contains("recovered"));
    // Every other milestone of the timeline has its labelled marker.
    for label in [" client error", " detected", " promote", " failback done"] {
        assert!(writes.contains(label), "marker {label:?} missing");
    }
    let lag = element(&dom, "svg", "chart-lag");
    assert!(
        lag.matches("<polyline").count() >= 2,
        "lag segments missing"
    );
    let phases = element(&dom, "svg", "chart-phases");
    for p in &g.phases {
        assert!(phases.contains(&p.name), "phase {} not labelled", p.name);
    }
    let bars = phases.matches("<rect").count();
    assert!(
        bars > g.phases.len(),
        "{bars} rects for {} phases",
        g.phases.len()
    );

    // User text is shown as text, never as markup.
    let timeline = element(&dom, "section", "timeline");
    assert!(
        timeline
            .contains("connection reset: &lt;img src=\"http://evil.example/x.png\"&gt; &amp; co")
    );
    assert_eq!(timeline.matches("<tr>").count(), g.timeline.len() + 1);
    let checks = element(&dom, "section", "checks");
    assert!(
        checks.contains(
            "<tr class=\"failed\"><td>topology restored</td><td class=\"bad\">failed</td>"
        )
    );
    assert!(checks.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(element(&dom, "section", "errors").contains("&lt;busy&gt;"));

    let shot = chromium
        .screenshot(&page, &out_dir().join("report.png"), (1280, 2000))
        .unwrap();
    assert_eq!((shot.width, shot.height), (1280, 2000));
    assert!(
        shot.bytes > 60_000,
        "suspiciously small screenshot: {} bytes",
        shot.bytes
    );
}

#[test]
fn trend_page_renders_in_chromium() {
    let chromium = Chromium::find().expect("chromium installed by scripts/setup.sh");
    let points: Vec<TrendPoint> = (0..14)
        .map(|i| TrendPoint {
            execution_id: format!("nightly-{i:02}"),
            started_ms: common::T0 + i * 86_400_000,
            verdict: match i % 5 {
                3 => Verdict::Fail,
                4 => Verdict::Inconclusive,
                _ => Verdict::Pass,
            },
            rto_seconds: (i % 5 != 4).then_some(2.0 + (i % 4) as f64 * 1.5),
            lost_writes: u64::from(i % 5 == 3),
        })
        .collect();
    let page = out_dir().join("trend.html");
    std::fs::write(&page, render_trend_html(&points)).unwrap();
    let dom = chromium.dump_dom(&page).unwrap();
    assert_self_contained(&dom);
    assert!(
        dom.contains("14 runs · 9 passed · 3 failed · 2 inconclusive"),
        "{dom}"
    );
    let chart = element(&dom, "svg", "chart-trend");
    assert_eq!(chart.matches("<circle").count(), 14);
    let runs = element(&dom, "section", "runs");
    assert_eq!(runs.matches("<tr>").count(), 15);
    // Newest first in the table.
    assert!(runs.find("nightly-13").unwrap() < runs.find("nightly-00").unwrap());

    let shot = chromium
        .screenshot(&page, &out_dir().join("trend.png"), (1280, 900))
        .unwrap();
    assert_eq!((shot.width, shot.height), (1280, 900));
}
