//! CloudWatch metrics and alarms on real servers, SNS delivery, postgres:Query and
//! dashboards: the ReplicaLag alarm fires when the link is cut and clears after heal.

use std::time::Duration;

use runbook_test_support::local::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A local webhook that answers 200 and forwards every body it receives.
async fn webhook() -> (
    u16,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<()>,
) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read until the declared body has arrived.
            loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        let _ = tx.send(body.to_string());
                        break;
                    }
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    (port, rx, task)
}

fn notifications(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|n| serde_json::from_str(n["Message"].as_str().unwrap_or("{}")).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_lag_alarm_follows_the_link() {
    let env = Env::new();
    let d = env.deploy(false).await;
    env.provider.set_sample_interval(250).await.unwrap();

    let topic = env
        .ok(
            "sns",
            "CreateTopic",
            Some(EU),
            json!({"name": "db-alerts-dev", "tags": []}),
        )
        .await;
    let topic = topic.as_str().unwrap().to_string();
    assert_eq!(topic, "arn:aws:sns:eu-west-1:000000000000:db-alerts-dev");
    let again = env
        .ok(
            "sns",
            "CreateTopic",
            Some(EU),
            json!({"name": "db-alerts-dev", "tags": []}),
        )
        .await;
    assert_eq!(again, topic.as_str(), "CreateTopic is idempotent");
    let file = env.state_dir().join("alerts.jsonl");
    env.ok(
        "sns",
        "Subscribe",
        Some(EU),
        json!({"topic_arn": topic, "protocol": "file", "endpoint": file.display().to_string()}),
    )
    .await;
    let (port, mut hooks, hook_task) = webhook().await;
    env.ok("sns", "Subscribe", Some(EU), json!({"topic_arn": topic, "protocol": "http", "endpoint": format!("http://127.0.0.1:{port}/sns")})).await;

    env.ok("cloudwatch", "PutMetricAlarm", Some(EU), json!({"spec": {
        "alarm_name": "replica-lag-dev", "alarm_description": "replication lag", "namespace": "AWS/RDS",
        "metric_name": "ReplicaLag", "dimensions": [{"name": "DBInstanceIdentifier", "value": REPLICA}],
        "statistic": "Maximum", "period": 1, "evaluation_periods": 2, "datapoints_to_alarm": null,
        "threshold": 2.0, "comparison_operator": "GreaterThanThreshold", "treat_missing_data": "missing",
        "alarm_actions": [topic], "ok_actions": [topic], "insufficient_data_actions": []}})).await;
    let a = env
        .ok(
            "cloudwatch",
            "DescribeAlarms",
            Some(EU),
            json!({"alarm_names": ["replica-lag-dev"], "name_prefix": null}),
        )
        .await;
    assert_eq!(a[0]["state_value"], "INSUFFICIENT_DATA");

    let state = || async {
        env.ok(
            "cloudwatch",
            "DescribeAlarms",
            Some(EU),
            json!({"alarm_names": ["replica-lag-dev"], "name_prefix": null}),
        )
        .await[0]["state_value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    env.wait_until(
        "alarm OK while streaming",
        Duration::from_secs(15),
        || async { state().await == "OK" },
    )
    .await;
    env.provider.partition().await.unwrap();
    env.wait_until(
        "alarm ALARM after the link is cut",
        Duration::from_secs(20),
        || async { state().await == "ALARM" },
    )
    .await;
    env.provider.heal().await.unwrap();
    env.wait_until("alarm OK after heal", Duration::from_secs(20), || async {
        state().await == "OK"
    })
    .await;

    // Each transition delivered to the file subscription and the webhook.
    let got: Vec<String> = notifications(&file)
        .iter()
        .map(|m| m["NewStateValue"].as_str().unwrap_or("").to_string())
        .collect();
    let alarm_at = got
        .iter()
        .position(|s| s == "ALARM")
        .expect("ALARM delivered");
    assert!(
        got[alarm_at..].iter().any(|s| s == "OK"),
        "OK delivered after ALARM: {got:?}"
    );
    let mut hooked = Vec::new();
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_secs(2), hooks.recv()).await {
        let n: Value = serde_json::from_str(&b).unwrap();
        hooked.push(
            serde_json::from_str::<Value>(n["Message"].as_str().unwrap()).unwrap()["NewStateValue"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        if hooked.len() >= got.len() {
            break;
        }
    }
    assert!(
        hooked.contains(&"ALARM".to_string()) && hooked.contains(&"OK".to_string()),
        "{hooked:?}"
    );
    hook_task.abort();

    // Sampled metrics are queryable.
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let stats = env.ok("cloudwatch", "GetMetricStatistics", Some(US), json!({"request": {
        "namespace": "AWS/RDS", "metric_name": "DatabaseConnections", "dimensions": [{"name": "DBInstanceIdentifier", "value": PRIMARY}],
        "start_time": fmt(now - time::Duration::minutes(5)), "end_time": fmt(now + time::Duration::minutes(1)),
        "period": 60, "statistics": ["Average", "Maximum"]}})).await;
    assert!(!stats.as_array().unwrap().is_empty(), "{stats}");
    assert!(stats[0]["maximum"].as_f64().unwrap() >= 1.0);
    env.ok("cloudwatch", "PutMetricData", Some(US), json!({"namespace": "Runbook/Gameday", "data": [
        {"metric_name": "RTO", "dimensions": [], "value": 2.5, "unit": "Seconds", "timestamp": null}]})).await;
    let rto = env.ok("cloudwatch", "GetMetricStatistics", Some(US), json!({"request": {
        "namespace": "Runbook/Gameday", "metric_name": "RTO", "dimensions": [],
        "start_time": fmt(now - time::Duration::minutes(5)), "end_time": fmt(now + time::Duration::minutes(1)),
        "period": 300, "statistics": ["Sum", "SampleCount"]}})).await;
    assert_eq!(rto[0]["sum"], 2.5);

    // set-alarm-state works and notifies.
    env.ok("cloudwatch", "SetAlarmState", Some(EU), json!({"alarm_name": "replica-lag-dev", "state_value": "ALARM", "state_reason": "game day"})).await;
    let err = env
        .call(
            "cloudwatch",
            "SetAlarmState",
            Some(EU),
            json!({"alarm_name": "nope", "state_value": "OK", "state_reason": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "ResourceNotFound");

    // Dashboard rendered as self-contained HTML.
    let body = json!({"widgets": [
        {"type": "metric", "properties": {"title": "Replica lag", "metrics": [["AWS/RDS", "ReplicaLag", "DBInstanceIdentifier", REPLICA]]}},
        {"type": "alarm", "properties": {"title": "Alarms", "alarms": ["arn:aws:cloudwatch:eu-west-1:000000000000:alarm:replica-lag-dev"]}}]});
    env.ok(
        "cloudwatch",
        "PutDashboard",
        Some(EU),
        json!({"name": "postgres-dr-dev", "body": body.to_string()}),
    )
    .await;
    let got = env
        .ok(
            "cloudwatch",
            "GetDashboard",
            Some(EU),
            json!({"name": "postgres-dr-dev"}),
        )
        .await;
    assert_eq!(got["body"], body.to_string());
    let html = env
        .provider
        .render_dashboard(EU, "postgres-dr-dev")
        .await
        .unwrap();
    let html = std::fs::read_to_string(html).unwrap();
    assert!(
        html.contains("<svg") && html.contains("polyline") && html.contains("replica-lag-dev"),
        "{html}"
    );
    // The same page from the persisted state, as another process (runbook serve) draws
    // it: the sampled lag on a clock axis, in seconds, with its latest value.
    let dir = env.state_dir();
    assert_eq!(
        runbook_provider_local::list_dashboards(&dir).unwrap(),
        ["postgres-dr-dev"]
    );
    let page = runbook_provider_local::render_dashboard_html(&dir, "postgres-dr-dev")
        .unwrap()
        .expect("dashboard exists")
        .replace('\n', "");
    assert!(
        page.contains("polyline") && page.contains("time ("),
        "{page}"
    );
    assert!(
        page.contains(" s<") || page.contains(" ms<") || page.contains(" min<"),
        "lag axis in seconds: {page}"
    );
    assert!(!page.contains(">no data<"), "{page}");
    assert!(page.contains("replica-lag-dev"));
    assert!(
        runbook_provider_local::render_dashboard_html(&dir, "nope")
            .unwrap()
            .is_none()
    );

    // postgres:Query through the routing name, with parameters, rows as text.
    let target = json!({"endpoint": NAME, "region": null, "database": "postgres", "secret_id": SECRET, "secret_region": US, "connect_timeout_ms": 3000});
    env.ok(
        "postgres",
        "Query",
        None,
        json!({"target": target, "sql": "CREATE TABLE canary (id int, at text)", "params": []}),
    )
    .await;
    let ins = env.ok("postgres", "Query", None, json!({"target": target, "sql": "INSERT INTO canary VALUES ($1, $2), ($1, NULL)", "params": ["7", "it's"]})).await;
    assert_eq!(ins["rows_affected"], 2);
    let q = env.ok("postgres", "Query", None, json!({"target": target, "sql": "SELECT id, at FROM canary ORDER BY at NULLS LAST", "params": []})).await;
    assert_eq!(q["columns"], json!(["id", "at"]));
    assert_eq!(q["rows"], json!([["7", "it's"], ["7", null]]));
    let replica_target = json!({"endpoint": REPLICA, "region": EU, "database": "postgres", "secret_id": SECRET, "secret_region": US, "connect_timeout_ms": 3000});
    let err = env.call("postgres", "Query", None, json!({"target": replica_target, "sql": "INSERT INTO canary VALUES (1, 'x')", "params": []})).await.unwrap_err();
    assert_eq!(err.code, "SQLSTATE.25006", "replica is read-only: {err:?}");

    // Secret deletion semantics.
    let err = env.call("secretsmanager", "CreateSecret", Some(US), json!({"request": {"name": SECRET, "description": null, "username": "x", "generate_password": null, "tags": []}})).await.unwrap_err();
    assert_eq!(err.code, "ResourceExistsException");
    // Crash the primary: the PostgreSQL health check fails after its threshold, describe
    // says failed, and new connections through the name go to the zero-weight replica.
    let killed = env.provider.crash(PRIMARY, None, false).await.unwrap();
    assert_eq!(killed["killed"].as_array().unwrap().len(), 1, "{killed}");
    env.wait_until(
        "health check unhealthy",
        Duration::from_secs(10),
        || async {
            env.ok(
                "route53",
                "GetHealthCheckStatus",
                None,
                json!({"id": d.health_check_id}),
            )
            .await["healthy"]
                == false
        },
    )
    .await;
    assert_eq!(env.describe(US, PRIMARY).await.unwrap()["status"], "failed");
    let via_name = env.client(NAME, SECRET).await;
    assert!(
        via_name
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get::<_, bool>(0),
        "routed to the replica"
    );
    let st = env
        .ok(
            "route53",
            "GetHealthCheckStatus",
            None,
            json!({"id": d.health_check_id}),
        )
        .await;
    assert!(
        st["observations"][0]
            .as_str()
            .unwrap()
            .starts_with("Failure: "),
        "{st}"
    );
    env.ok(
        "rds",
        "RebootDBInstance",
        Some(US),
        json!({"identifier": PRIMARY, "force_failover": false}),
    )
    .await;
    env.wait_status(US, PRIMARY, "available", Duration::from_secs(30))
        .await;
    env.wait_until(
        "health check healthy again",
        Duration::from_secs(10),
        || async {
            env.ok(
                "route53",
                "GetHealthCheckStatus",
                None,
                json!({"id": d.health_check_id}),
            )
            .await["healthy"]
                == true
        },
    )
    .await;
    env.provider.down().await.unwrap();
}
