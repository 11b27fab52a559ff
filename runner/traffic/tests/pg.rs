//! The traffic driver against a real PostgreSQL 15: a steady run, and a crash and
//! restart of the server in the middle of one.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Counting, Pg, TestSink, client, wait_for};
use runbook_traffic::{Config, Entry, Kind, Outcome, measure, now_ms, outages, run, verify};

fn config(session: &str) -> Config {
    Config {
        session: session.into(),
        writes_per_second: 50,
        connections: 4,
        max_run: Duration::from_secs(120),
        ..Config::default()
    }
}

fn acked(e: &Entry) -> bool {
    e.outcome == Outcome::Acked
}

/// Writes per second over the ledger's send times.
fn rate(writes: &[Entry]) -> f64 {
    let first = writes.iter().map(|e| e.sent_ms).min().unwrap();
    let last = writes.iter().map(|e| e.sent_ms).max().unwrap();
    (writes.len() - 1) as f64 / ((last - first) as f64 / 1000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_writes_are_all_acked_over_a_fixed_pool() {
    let pg = Pg::start();
    // The replica is the same server here: its lag in ledger terms must stay near 0.
    let resolver = Counting::new(pg.info(), Some(pg.info()));
    let sink = TestSink::default();
    let mut cfg = config("steady");
    cfg.reads_per_second = 10;
    cfg.sample_replica = true;
    let driver = tokio::spawn(run(cfg.clone(), resolver.clone(), Box::new(sink.clone())));

    wait_for("the started batch", 60, || sink.get(|r| r.batches > 0)).await;
    assert_eq!(sink.get(|r| r.first_batch_empty), Some(true));
    // Watch the server's view of the pool while ~2 s of writes go through.
    let check = client(&pg.info()).await;
    let mut max_conns = 0i64;
    let mut polls = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while sink.get(|r| r.writes().iter().filter(|e| acked(e)).count()) < 100 {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for 100 acks"
        );
        let n: i64 = check
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'runbook-traffic steady'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        max_conns = max_conns.max(n);
        polls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.request_stop();
    let stats = driver.await.unwrap().expect("run");

    let writes = sink.get(|r| r.writes());
    let entries = sink.get(|r| r.entries());
    let n = writes.len() as u64;
    assert!(n >= 100, "{stats:?}");
    assert!(
        writes.iter().all(acked),
        "not all acked: {:?}",
        writes.iter().find(|e| !acked(e))
    );
    let ids: Vec<u64> = writes.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=n).collect::<Vec<_>>(), "ids contiguous from 1");
    assert_eq!(
        (stats.writes_sent, stats.acked, stats.failed, stats.unknown),
        (n, n, 0, 0)
    );
    // The pool stays at its size: no connection per write.
    assert_eq!(stats.connections_opened, 4);
    assert!(
        polls > 5 && max_conns == 4,
        "pg_stat_activity saw {max_conns} in {polls} polls"
    );
    // Pool connections plus the replica sampler's one; nothing reconnected.
    assert_eq!(resolver.calls.load(Ordering::Relaxed), 5);
    let reads: Vec<&Entry> = entries.iter().filter(|e| e.kind == Kind::Read).collect();
    assert!(!reads.is_empty() && reads.iter().all(|e| e.outcome == Outcome::Ok));
    assert_eq!(stats.reads_ok, reads.len() as u64);

    let lag = sink.get(|r| r.lag.clone());
    assert!(lag.len() >= 2, "lag samples: {lag:?}");
    assert!(
        lag.iter()
            .all(|s| s.lag.is_some_and(|l| (0.0..1.0).contains(&l))),
        "{lag:?}"
    );

    let achieved = rate(&writes);
    assert!((40.0..=60.0).contains(&achieved), "rate {achieved}");
    let m = measure(&entries, &lag, None);
    assert!(m.outage.is_none() && m.rto_seconds.is_none(), "{m:?}");
    println!(
        "steady: {n} writes, {achieved:.1} writes/s, p50 {:?} ms, p99 {:?} ms, {} reads, {} lag samples",
        m.latency_p50_ms,
        m.latency_p99_ms,
        reads.len(),
        lag.len()
    );

    let report = verify(&cfg, resolver.clone(), &entries)
        .await
        .expect("verify");
    assert_eq!(report.checked, n);
    assert!(report.acked_missing.is_empty(), "{report:?}");
    assert_eq!(report.rows, n);
    assert_eq!(
        (
            report.unknown_present,
            report.unknown_absent,
            report.failed_present
        ),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_crash_is_one_outage_and_no_acked_write_is_lost() {
    let pg = Pg::start();
    let resolver = Counting::new(pg.info(), None);
    let sink = TestSink::default();
    let cfg = config("crash");
    let driver = tokio::spawn(run(cfg.clone(), resolver.clone(), Box::new(sink.clone())));
    let acks = |s: &TestSink| s.get(|r| r.writes().iter().filter(|e| acked(e)).count());
    wait_for("50 acks", 60, || acks(&sink) >= 50).await;

    let kill_at = now_ms();
    tokio::task::block_in_place(|| pg.stop_immediate());
    let killed = now_ms();
    // Let it stay down until a good number of writes failed after the crash.
    wait_for("failures while down", 60, || {
        sink.get(|r| {
            r.writes()
                .iter()
                .filter(|e| {
                    e.sent_ms > killed && matches!(e.outcome, Outcome::Failed | Outcome::Unknown)
                })
                .count()
                >= 25
        })
    })
    .await;
    let restart_at = now_ms();
    tokio::task::block_in_place(|| pg.start_again());
    let restarted = now_ms();
    let before = acks(&sink);
    wait_for("acks after the restart", 60, || acks(&sink) >= before + 50).await;
    sink.request_stop();
    let stats = driver.await.unwrap().expect("run");

    let writes = sink.get(|r| r.writes());
    let n = writes.len() as u64;
    let ids: Vec<u64> = writes.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=n).collect::<Vec<_>>(),
        "every id has a ledger entry"
    );
    assert!(
        writes
            .iter()
            .all(|e| e.outcome != Outcome::InFlight && e.done_ms.is_some())
    );
    // Nothing was acknowledged while the server was down (a write sent then may still
    // be acknowledged after the restart, having waited for a connection), and writes
    // sent then failed.
    assert!(
        !writes
            .iter()
            .any(|e| acked(e) && e.done_ms.unwrap() > killed && e.done_ms.unwrap() < restart_at)
    );
    let down = writes
        .iter()
        .filter(|e| e.sent_ms > killed && e.sent_ms < restart_at && !acked(e))
        .count();
    assert!(down >= 25, "{down}");
    let bad: Vec<&Entry> = writes.iter().filter(|e| !acked(e)).collect();
    assert!(bad.iter().any(|e| e.outcome == Outcome::Failed));
    assert!(bad.iter().all(|e| e.error.is_some()));
    assert!(writes.iter().any(|e| acked(e) && e.sent_ms > restarted));

    // One outage, bounded by the acks either side of it.
    let found = outages(&writes, Duration::from_secs(1));
    assert_eq!(found.len(), 1, "{found:#?}");
    let o = &found[0];
    assert!(o.recovered);
    assert_eq!(o.failed + o.unknown, bad.len() as u64);
    let ack_times: Vec<i64> = writes
        .iter()
        .filter(|e| acked(e))
        .filter_map(|e| e.done_ms)
        .collect();
    assert!(ack_times.contains(&o.from_ms) && ack_times.contains(&o.to_ms));
    assert!(
        !ack_times.iter().any(|t| *t > killed && *t < o.to_ms),
        "the outage ends at the first ack after the crash"
    );
    assert!(
        o.from_ms <= killed && o.from_ms >= kill_at - 2_000,
        "{o:?} kill {kill_at}"
    );
    assert!(o.to_ms >= restart_at, "{o:?} restart {restart_at}");

    // Client-seen RTO: at least the downtime, at most the restart plus reconnecting.
    let m = measure(&writes, &[], Some(kill_at));
    let rto = m.rto_seconds.expect("recovered");
    let low = (restart_at - kill_at) as f64 / 1000.0;
    let high = (restarted - kill_at) as f64 / 1000.0 + 3.0;
    assert!(
        rto >= low && rto <= high,
        "rto {rto} not in [{low}, {high}]"
    );
    assert_eq!(m.outage.as_ref(), Some(o));

    // Reconnected once per pool slot or so, not once per write.
    assert!((5..=8).contains(&stats.connections_opened), "{stats:?}");
    assert!(resolver.calls.load(Ordering::Relaxed) >= stats.connections_opened);

    let report = verify(&cfg, resolver.clone(), &writes)
        .await
        .expect("verify");
    assert!(report.acked_missing.is_empty(), "lost writes: {report:?}");
    assert_eq!(
        report.failed_present, 0,
        "a write recorded failed committed: {report:?}"
    );
    assert_eq!(
        report.checked,
        writes.iter().filter(|e| acked(e)).count() as u64
    );
    assert_eq!(report.unknown_present + report.unknown_absent, o.unknown);
    println!(
        "crash: {n} writes at {:.1}/s, acked {} failed {} unknown {} (present {}), \
         downtime {:.2} s, rto {rto:.2} s, p50 {:?} ms, connections {}",
        rate(&writes),
        m.acked,
        m.failed,
        m.unknown,
        report.unknown_present,
        (restarted - killed) as f64 / 1000.0,
        m.latency_p50_ms,
        stats.connections_opened
    );
    if std::env::var("TRAFFIC_DEBUG").is_ok() {
        for e in writes.iter().filter(|e| e.sent_ms > killed).take(400) {
            println!(
                "{} {:?} sent+{} lat {} conn {} {:?}",
                e.id,
                e.outcome,
                e.sent_ms - killed,
                e.done_ms.unwrap() - e.sent_ms,
                e.conn,
                e.error
            );
        }
        println!(
            "restart_at +{} restarted +{}",
            restart_at - killed,
            restarted - killed
        );
    }
    let _ = pg.log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_name_is_followed_when_the_old_primary_turns_read_only() {
    let (a, b) = (Pg::start(), Pg::start());
    let resolver = Counting::new(a.info(), None);
    let sink = TestSink::default();
    let cfg = config("moved");
    let driver = tokio::spawn(run(cfg.clone(), resolver.clone(), Box::new(sink.clone())));
    let acks = |s: &TestSink| s.get(|r| r.writes().iter().filter(|e| acked(e)).count());
    wait_for("50 acks on A", 60, || acks(&sink) >= 50).await;

    // "Fail over" without replication: B gets the table, the name moves to B, and A
    // stays up but refuses writes, as a fenced old primary does.
    let cb = client(&b.info()).await;
    cb.batch_execute(
        "CREATE TABLE runbook_traffic(session text, id bigint, conn int, sent_at timestamptz, \
         payload text, PRIMARY KEY(session, id))",
    )
    .await
    .unwrap();
    *resolver.target.lock().unwrap() = b.info();
    let ca = client(&a.info()).await;
    for sql in [
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        ca.batch_execute(sql).await.unwrap();
    }
    let count = async |c: &tokio_postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM runbook_traffic WHERE session = 'moved'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    };
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while count(&cb).await < 50 {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for writes on B"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.request_stop();
    let stats = driver.await.unwrap().expect("run");

    let writes = sink.get(|r| r.writes());
    let refused: Vec<&Entry> = writes.iter().filter(|e| !acked(e)).collect();
    assert!(!refused.is_empty());
    assert!(
        refused.iter().all(|e| e.outcome == Outcome::Failed
            && e.error.as_deref().is_some_and(|m| m.contains("25006"))),
        "{refused:?}"
    );
    // Each slot left A once and connected to B: no connection per refused write.
    assert!((5..=8).contains(&stats.connections_opened), "{stats:?}");
    let found = outages(&writes, Duration::from_secs(1));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].failed, refused.len() as u64);

    // Read back through the name (now B): what A acknowledged is lost to B, exactly.
    let on_a: Vec<u64> = ca
        .query(
            "SELECT id FROM runbook_traffic WHERE session = 'moved' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect();
    let report = verify(&cfg, resolver.clone(), &writes)
        .await
        .expect("verify");
    assert_eq!(report.acked_missing, on_a, "{report:?}");
    assert_eq!(report.rows as i64, count(&cb).await);
    assert_eq!(report.failed_present, 0);
    println!(
        "moved: {} writes, {} acked on A, {} refused (25006), then {} on B; connections {}",
        writes.len(),
        on_a.len(),
        refused.len(),
        report.rows,
        stats.connections_opened
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_run_bounds_both_setup_and_the_session() {
    // Nothing listens: setup retries until max_run, then fails without "starting".
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nowhere = runbook_caps::ConnectInfo {
        host: "127.0.0.1".into(),
        port: closed,
        user: "postgres".into(),
        password: String::new(),
        database: "postgres".into(),
    };
    let resolver = Counting::new(nowhere, None);
    let sink = TestSink::default();
    let mut cfg = config("nowhere");
    cfg.max_run = Duration::from_millis(1500);
    let err = run(cfg, resolver.clone(), Box::new(sink.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "E-TRAFFIC-CONNECT", "{err}");
    assert_eq!(sink.get(|r| r.batches), 0);
    // Retried with backoff, not in a tight loop.
    let calls = resolver.calls.load(Ordering::Relaxed);
    assert!((2..=20).contains(&calls), "{calls} attempts");

    // Reachable: the session stops by itself at max_run.
    let pg = Pg::start();
    let mut cfg = config("bounded");
    cfg.max_run = Duration::from_secs(2);
    let sink = TestSink::default();
    let stats = run(cfg, Counting::new(pg.info(), None), Box::new(sink.clone()))
        .await
        .expect("run");
    assert_eq!(stats.stop_reason, runbook_traffic::StopReason::MaxRun);
    assert!(
        stats.acked >= 20 && stats.failed + stats.unknown == 0,
        "{stats:?}"
    );
    assert_eq!(sink.get(|r| r.writes().len()) as u64, stats.writes_sent);
    assert!(stats.stopped_ms - stats.started_ms >= 2_000);
}
