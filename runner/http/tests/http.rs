//! The HTTP face against a fake backend: routes, the control endpoints' token rules,
//! `/metrics` judged by promtool, and the status page rendered by a real headless
//! Chromium.

mod fixture;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use fixture::*;
use runbook_http::*;
use runbook_test_support::{chromium::Chromium, http, promtool};
use serde_json::json;

fn start(token: Option<&str>) -> (Arc<FakeBackend>, Server) {
    let backend = Arc::new(FakeBackend::default());
    let server = Server::start(backend.clone(), token);
    (backend, server)
}

#[test]
fn pages_health_metrics_and_not_found() {
    let (_, server) = start(None);
    let addr = server.addr;

    let r = http::get(addr, "/healthz").unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));

    let r = http::get(addr, "/metrics").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4"),
        "{r:?}"
    );
    assert!(
        r.body
            .contains("runbook_executions_total{runbook=\"failover\",status=\"failed\"} 1"),
        "{}",
        r.body
    );

    let r = http::get(addr, "/").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|p| p.contains("default-src 'none'")),
        "{r:?}"
    );
    assert!(r.body.contains(NEXT_FIRE), "{}", r.body);

    // An execution with a game-day report: the show text and the report embedded.
    let r = http::get(addr, &format!("/executions/{GAMEDAY_ID}")).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains(&format!("<pre>execution {GAMEDAY_ID}\n")),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("srcdoc=\"&lt;!doctype html&gt;"),
        "{}",
        r.body
    );
    let r = http::get(addr, &format!("/executions/{GAMEDAY_ID}/report")).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<p id=\"rto\">RTO 38.2 s</p>"),
        "{}",
        r.body
    );

    // Without a report: the page, but no report section and a 404 for the report.
    let r = http::get(addr, &format!("/executions/{PLAIN_ID}")).unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("<iframe"), "{}", r.body);
    assert_eq!(
        http::get(addr, &format!("/executions/{PLAIN_ID}/report"))
            .unwrap()
            .status,
        404
    );

    let r = http::get(addr, "/dashboards/prod-overview").unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, DASHBOARD_HTML));
    let r = http::get(addr, "/dashboards").unwrap();
    assert!(
        r.body.contains("href=\"/dashboards/prod-overview\""),
        "{}",
        r.body
    );

    for path in ["/executions/nope", "/dashboards/nope", "/no/such/page"] {
        let r = http::get(addr, path).unwrap();
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(r.body.contains("Not found"), "{path}: {}", r.body);
    }
    // The 404 page escapes the id it echoes.
    let r = http::get(addr, "/executions/%3Cb%3Ex").unwrap();
    assert_eq!(r.status, 404);
    assert!(r.body.contains("No execution &lt;b&gt;x"), "{}", r.body);

    server.stop().unwrap();
    assert!(
        http::get(addr, "/healthz").is_err(),
        "still answering after stop"
    );
}

#[test]
fn control_without_a_token_is_forbidden() {
    let (backend, server) = start(None);
    for path in ["/pause", "/resume", "/trigger"] {
        let r = http::post_json(server.addr, path, Some("anything"), &json!({})).unwrap();
        assert_eq!(r.status, 403, "{path}: {r:?}");
        let body = r.json();
        assert_eq!(body["error"]["code"], "http.control_disabled");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Http.TokenFile"),
            "{body}"
        );
    }
    assert!(backend.calls().is_empty(), "{:?}", backend.calls());
    // Read-only pages stay open.
    assert_eq!(http::get(server.addr, "/").unwrap().status, 200);
}

#[test]
fn control_with_a_token_from_a_0600_file() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("http-token");
    std::fs::write(&token_file, "tok-3f9a1c\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_token(&token_file).unwrap_err();
    assert_eq!(err.code(), "http.token_mode");
    assert!(err.to_string().contains("0644"), "{err}");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token = load_token(&token_file).unwrap();
    // A non-loopback address needs that token.
    let lan: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
    assert_eq!(
        check_listen(lan, false).unwrap_err().code(),
        "http.non_loopback"
    );
    check_listen(lan, true).unwrap();

    let (backend, server) = start(Some(&token));
    let addr = server.addr;
    let pause = json!({"target": "weekly-gameday", "reason": "change freeze"});

    let r = http::post_json(addr, "/pause", None, &pause).unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "http.unauthorized");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let r = http::post_json(addr, "/pause", Some("tok-3f9a1d"), &pause).unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert!(backend.calls().is_empty());

    let r = http::post_json(addr, "/pause", Some(&token), &pause).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["target"], "weekly-gameday");

    // An empty body is "everything, no reason".
    let auth = format!("Bearer {token}");
    let r = http::request(addr, "POST", "/resume", &[("Authorization", &auth)], None).unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    let r = http::post_json(
        addr,
        "/trigger",
        Some(&token),
        &json!({"target": "weekly-gameday"}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["execution_id"], "01JTRIGGERED000000000000001");

    assert_eq!(
        backend.calls(),
        vec![
            (
                "pause".to_string(),
                ControlRequest {
                    target: Some("weekly-gameday".into()),
                    reason: Some("change freeze".into())
                }
            ),
            ("resume".to_string(), ControlRequest::default()),
            (
                "trigger".to_string(),
                ControlRequest {
                    target: Some("weekly-gameday".into()),
                    reason: None
                }
            ),
        ]
    );

    // Refusals: the backend's 404, a trigger without target, a body that is not the
    // request, and GET on a control path.
    let r = http::post_json(
        addr,
        "/pause",
        Some(&token),
        &json!({"target": "no-such-schedule"}),
    )
    .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "control.not_found");
    let r = http::post_json(addr, "/trigger", Some(&token), &json!({})).unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    let r = http::post_json(addr, "/pause", Some(&token), &json!({"targte": "x"})).unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "http.bad_request");
    assert_eq!(http::get(addr, "/pause").unwrap().status, 405);
    assert_eq!(backend.calls().len(), 3, "{:?}", backend.calls());
}

#[test]
fn metrics_pass_promtool() {
    let (_, server) = start(None);
    let body = http::get(server.addr, "/metrics").unwrap().body;
    let check = promtool::check_metrics(&body).expect("promtool installed by scripts/setup.sh");
    assert!(check.clean(), "promtool: {check:?}\n{body}");
    for family in [
        "runbook_executions_total",
        "runbook_execution_duration_seconds",
        "runbook_watcher_up",
        "runbook_watcher_consecutive_failures",
        "runbook_watcher_verdict",
        "runbook_watcher_failovers_total",
        "runbook_readiness_ready",
        "runbook_schedule_next_fire_timestamp_seconds",
        "runbook_schedule_paused",
        "runbook_schedule_fires_total",
        "runbook_gameday_last_rto_seconds",
        "runbook_gameday_last_lost_writes",
        "runbook_gameday_last_pass",
        "runbook_safety_lever_engaged",
        "runbook_build_info",
    ] {
        assert!(
            body.contains(&format!("# HELP {family} ")),
            "no HELP for {family}:\n{body}"
        );
    }
    let expected = status();
    let ready_eu = format!(
        "runbook_readiness_ready{{environment=\"eu\"}} {}",
        expected.readiness[1].ready as u8
    );
    let next = format!(
        "runbook_schedule_next_fire_timestamp_seconds{{schedule=\"weekly-gameday\"}} {}",
        expected.schedules[0].next_fire_unix_ms.unwrap() / 1000
    );
    let rto = format!(
        "runbook_gameday_last_rto_seconds {}",
        expected.gamedays[0].rto_seconds.unwrap()
    );
    for line in [ready_eu, next, rto] {
        assert!(body.contains(&line), "missing {line}:\n{body}");
    }
    // The empty snapshot (a server with nothing configured yet) is valid too.
    let check = promtool::check_metrics(&render_metrics(&Status::default())).unwrap();
    assert!(check.clean(), "promtool on an empty snapshot: {check:?}");
}

#[test]
fn status_page_in_headless_chromium() {
    let (_, server) = start(None);
    let chromium = Chromium::find().expect("chromium installed by scripts/setup.sh");

    // The live page, as an operator's browser loads it.
    let dom = chromium
        .dump_dom_url(&format!("http://{}/", server.addr))
        .unwrap();
    assert_unpwned(&dom);
    assert!(dom.contains(NEXT_FIRE), "{dom}");
    assert!(
        dom.contains("<td class=\"verdict\"><span class=\"badge warn\">suspect</span></td>"),
        "{dom}"
    );
    assert!(dom.contains("2 / 3"), "consecutive failures x/N: {dom}");
    let eu_row = dom
        .split("<tr>")
        .find(|row| row.contains("<td>eu</td>") && row.contains("READY"))
        .unwrap_or_else(|| panic!("no eu readiness row: {dom}"));
    assert!(eu_row.contains("NOT READY"), "{eu_row}");
    assert!(eu_row.contains(NOT_READY_REASON), "{eu_row}");
    let rto = format!("{:.1} s", status().gamedays[0].rto_seconds.unwrap());
    assert!(
        dom.contains(&format!("RTO <strong>{rto}</strong>")),
        "{rto} not in {dom}"
    );
    assert!(dom.contains("<svg id=\"rto-trend\""), "{dom}");
    assert!(
        dom.contains(&format!("href=\"/executions/{PLAIN_ID}\"")),
        "{dom}"
    );

    // The same document from disk, where no Content-Security-Policy header applies:
    // only the escaping stands between the hostile schedule name and a running script.
    let body = http::get(server.addr, "/").unwrap().body;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("status.html");
    std::fs::write(&page, &body).unwrap();
    assert_unpwned(&chromium.dump_dom(&page).unwrap());
}

/// The hostile schedule name shows as text and its script never ran.
fn assert_unpwned(dom: &str) {
    assert!(
        dom.contains("<title>runbook serve — status</title>"),
        "title changed: {dom}"
    );
    assert!(!dom.contains("pwned</title>"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "hostile name not shown as text: {dom}"
    );
}
