//! The journal contract (`runbook_journal::JournalBackend`) on both backends: the
//! SQLite journal and the etcd journal against a real 3-member cluster; then what only
//! the fleet has: reading from another runner, takeover fencing a stale runner, an
//! ambiguous write retried without duplicate, documents over etcd's request limit, and
//! a member SIGKILLed mid-stream.

use std::time::Duration;

use runbook_fleet::{EtcdJournal, EtcdJournalConfig, Timing};
use runbook_journal::{
    CallRow, Claimant, ExecutionRow, Fence, Journal, JournalBackend, NewHistory,
};
use runbook_test_support::etcd::{AnswerDroppingProxy, Cluster};
use runbook_test_support::wait;
use serde_json::{Value, json};

fn cluster() -> Cluster {
    Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)")
}

/// TTL 1 s (the test cluster's minimum), 0.2 s + 2 × 0.35 s < 1 s: takeovers are quick.
fn quick() -> Timing {
    Timing::new(
        Duration::from_secs(1),
        Duration::from_millis(200),
        Duration::from_millis(350),
    )
    .expect("rule holds")
}

/// Roomier timing for tests that kill members: a leader election must not cost the lease.
fn steady() -> Timing {
    Timing::new(
        Duration::from_secs(5),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .expect("rule holds")
}

fn runner(endpoints: &[String], id: &str, timing: Timing) -> EtcdJournal {
    let mut cfg = EtcdJournalConfig::new(endpoints, id);
    cfg.prefix = "/runbook-test".into();
    cfg.timing = timing;
    EtcdJournal::connect(cfg).expect("etcd journal")
}

fn rotated(endpoints: &[String], by: usize) -> Vec<String> {
    let mut e = endpoints.to_vec();
    e.rotate_left(by);
    e
}

fn exec(id: &str, environment: Option<&str>) -> ExecutionRow {
    ExecutionRow {
        id: id.into(),
        name: "failover".into(),
        runbook_path: "failover.yaml".into(),
        runbook_text: "StartAt: A\nStates: {A: {Type: Succeed}}".into(),
        input: json!({"region": "eu-west-1", "Password": "hunter2"}),
        provider: Some("local".into()),
        status: "RUNNING".into(),
        started_ms: 1_000,
        ended_ms: None,
        output: None,
        error: None,
        cause: None,
        seed: u64::MAX - 7,
        redrive_count: 0,
        runner_pid: Some(4242),
        parent_id: None,
        environment: environment.map(String::from),
    }
}

/// Built from JSON so the row's optional fields (arguments, result) take their
/// defaults whatever the row type grows.
fn call(action: &str) -> CallRow {
    serde_json::from_value(json!({
        "seq": 0, "at_ms": 0, "state": "Promote", "plugin": "builtin", "service": "rds",
        "action": action, "region": "eu-west-1", "resource": "db-replica",
        "outcome": "ok", "error_code": null, "duration_us": 1234,
    }))
    .expect("a call row")
}

fn nobody_alive(_: u32) -> bool {
    false
}

/// One contract, any backend: what an execution writes is what a resume reads, in
/// order, with secrets redacted; stop requests reach the driver; finish is final.
fn contract(j: &dyn JournalBackend, id: &str) -> Fence {
    let fence = j.create_execution(&exec(id, None)).expect("create");
    for n in 1..=3 {
        let seq = j
            .append_event(
                id,
                &fence,
                10 + n,
                &json!({"type": "TaskSucceeded", "n": n}),
            )
            .expect("append event");
        assert_eq!(seq, n, "events are numbered 1, 2, 3");
    }
    let rows: Vec<NewHistory> = vec![
        (
            11,
            "ExecutionStarted".into(),
            None,
            json!({"password": "x"}),
        ),
        (
            12,
            "TaskStateEntered".into(),
            Some("Promote".into()),
            json!({}),
        ),
    ];
    j.append_history(id, &fence, &rows).expect("history");
    j.append_history(
        id,
        &fence,
        &[(
            13,
            "TaskSucceeded".into(),
            Some("Promote".into()),
            json!({"ok": 1}),
        )],
    )
    .expect("history 2");
    j.record_call(id, &fence, 14, &call("DescribeDBInstances"))
        .expect("call");
    j.record_call(id, &fence, 15, &call("PromoteReadReplica"))
        .expect("call 2");
    j.record_log(id, &fence, 16, "Promote", "builtin", "info", "promoted")
        .expect("log");

    assert_eq!(j.stop_request(id).expect("stop?"), None);
    j.request_stop(id, Some("Operator"), Some("game day over"))
        .expect("request stop");
    assert_eq!(
        j.stop_request(id).expect("stop?"),
        Some((Some("Operator".into()), Some("game day over".into())))
    );

    let row = j.execution(id).expect("read");
    assert_eq!(row.status, "RUNNING");
    assert_eq!(row.seed, u64::MAX - 7);
    assert_eq!(row.input, json!({"region": "eu-west-1", "Password": "***"}));

    // Resume reads: in order, as written.
    let events = j.events(id).expect("events");
    assert_eq!(
        events.iter().map(|e| (e.seq, e.at_ms)).collect::<Vec<_>>(),
        [(1, 11), (2, 12), (3, 13)]
    );
    assert_eq!(events[2].event, json!({"type": "TaskSucceeded", "n": 3}));
    let history = j.history(id).expect("history");
    assert_eq!(
        history
            .iter()
            .map(|h| (h.seq, h.kind.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "ExecutionStarted"),
            (2, "TaskStateEntered"),
            (3, "TaskSucceeded")
        ]
    );
    assert_eq!(history[0].details, json!({"password": "***"}));
    let calls = j.calls(id).expect("calls");
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.seq, c.at_ms, c.action.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, 14, "DescribeDBInstances"),
            (2, 15, "PromoteReadReplica")
        ]
    );
    assert_eq!(j.logs(id).expect("logs")[0].message, "promoted");

    j.finish(
        id,
        &fence,
        "SUCCEEDED",
        20,
        Some(&json!({"primary": "eu"})),
        None,
        None,
    )
    .expect("finish");
    let row = j.execution(id).expect("read");
    assert_eq!(
        (row.status.as_str(), row.ended_ms, row.output.clone()),
        ("SUCCEEDED", Some(20), Some(json!({"primary": "eu"})))
    );
    assert_eq!(
        j.stop_request(id).expect("stop?"),
        None,
        "spent once finished"
    );
    assert!(
        j.executions(10).expect("list").iter().any(|e| e.id == id),
        "listed"
    );
    assert_eq!(
        j.execution("no-such-execution").unwrap_err().code(),
        "E-JOURNAL-NOT-FOUND"
    );
    fence
}

#[test]
fn sqlite_satisfies_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(&dir.path().join("journal.db")).expect("open");
    assert_eq!(contract(&j, "exec-sqlite"), Fence::Local);
}

/// The contract on etcd, then everything read again by a second runner connected
/// through other members: the same rows.
#[test]
fn etcd_satisfies_the_contract_and_another_runner_reads_it() {
    let c = cluster();
    let eps = c.endpoints();
    let a = runner(&eps, "runner-a", quick());
    let fence = contract(&a, "exec-etcd");
    assert!(matches!(fence, Fence::Token { revision, .. } if revision > 0));

    let b = runner(&rotated(&eps, 1), "runner-b", quick());
    assert_eq!(
        b.execution("exec-etcd").unwrap(),
        a.execution("exec-etcd").unwrap()
    );
    assert_eq!(
        b.events("exec-etcd").unwrap(),
        a.events("exec-etcd").unwrap()
    );
    assert_eq!(
        b.history("exec-etcd").unwrap(),
        a.history("exec-etcd").unwrap()
    );
    assert_eq!(b.calls("exec-etcd").unwrap(), a.calls("exec-etcd").unwrap());
    assert_eq!(b.logs("exec-etcd").unwrap(), a.logs("exec-etcd").unwrap());
    // A finished execution cannot be claimed.
    let who = Claimant {
        pid: 1,
        alive: &nobody_alive,
    };
    assert_eq!(b.claim("exec-etcd", &who).unwrap(), None);
    // etcdctl, an independent client, sees the layout of docs/fleet.md.
    let out = c
        .etcdctl(&[
            "get",
            "--keys-only",
            "--prefix",
            "/runbook-test/exec/exec-etcd/events/",
        ])
        .expect("etcdctl");
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert_eq!(
        keys,
        (1..=3)
            .map(|n| format!("/runbook-test/exec/exec-etcd/events/{n:016}"))
            .collect::<Vec<_>>()
    );
}

/// The owner stops renewing (paused, partitioned): the other runner claims the
/// execution once the lease expired, with a higher token, resumes its event stream
/// where it ended, and the stale owner's appends are refused from then on.
#[test]
fn stale_runner_is_fenced_after_takeover() {
    let c = cluster();
    let eps = c.endpoints();
    let a = runner(&eps, "runner-a", quick());
    let b = runner(&rotated(&eps, 2), "runner-b", quick());
    let id = "exec-takeover";
    let fa = a
        .create_execution(&exec(id, Some("local/prod")))
        .expect("create");
    for n in 1..=2 {
        a.append_event(id, &fa, n, &json!({"n": n}))
            .expect("append");
    }
    let who = Claimant {
        pid: 2,
        alive: &nobody_alive,
    };
    assert_eq!(
        b.claim(id, &who).expect("claim"),
        None,
        "a's lease is alive"
    );

    a.stop_keepalives();
    let fb = wait::poll_some(Duration::from_secs(30), Duration::from_millis(50), || {
        b.claim(id, &who).expect("claim")
    })
    .expect("b takes over once a's lease expired");
    let (Fence::Token { revision: ra, .. }, Fence::Token { revision: rb, .. }) = (&fa, &fb) else {
        panic!("etcd fences are tokens: {fa:?} {fb:?}");
    };
    assert!(rb > ra, "the new owner's token is higher: {rb} > {ra}");

    assert_eq!(
        b.append_event(id, &fb, 3, &json!({"n": 3}))
            .expect("b appends"),
        3
    );
    let e = a
        .append_event(id, &fa, 4, &json!({"n": "stale"}))
        .expect_err("stale owner refused");
    assert_eq!(e.code(), "fleet.fenced", "{e}");
    let e = a
        .finish(id, &fa, "FAILED", 5, None, Some("x"), None)
        .expect_err("stale finish refused");
    assert_eq!(e.code(), "fleet.fenced", "{e}");
    assert_eq!(
        b.events(id)
            .unwrap()
            .iter()
            .map(|e| e.event.clone())
            .collect::<Vec<Value>>(),
        [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
    );
    assert_eq!(b.execution(id).unwrap().status, "RUNNING");
    b.finish(id, &fb, "SUCCEEDED", 6, None, None, None)
        .expect("b finishes");
}

/// An append whose answer is lost (applied at etcd, the client never told) is retried
/// by the journal itself and lands once; when it stays ambiguous the caller gets
/// `fleet.ambiguous` and repeating the same call still lands it once.
#[test]
fn ambiguous_append_retried_lands_once() {
    let c = cluster();
    let proxy = AnswerDroppingProxy::start(c.member(0).client_port, 0).expect("proxy");
    let j = runner(&[proxy.endpoint()], "runner-a", steady());
    let id = "exec-ambiguous";
    let f = j.create_execution(&exec(id, None)).expect("create");
    assert_eq!(j.append_event(id, &f, 1, &json!({"n": 1})).unwrap(), 1);

    proxy.drop_next(1);
    assert_eq!(
        j.append_event(id, &f, 2, &json!({"n": 2}))
            .expect("retried inside"),
        2
    );
    assert_eq!(proxy.dropped(), 1, "one answer was lost");

    proxy.drop_next(usize::MAX);
    let e = j
        .append_event(id, &f, 3, &json!({"n": 3}))
        .expect_err("every answer lost");
    assert_eq!(e.code(), "fleet.ambiguous", "{e}");
    proxy.drop_next(0);
    assert_eq!(
        j.append_event(id, &f, 3, &json!({"n": 3}))
            .expect("caller's retry"),
        3
    );
    assert_eq!(j.append_event(id, &f, 4, &json!({"n": 4})).unwrap(), 4);

    let direct = runner(&c.endpoints(), "reader", steady());
    let events = direct.events(id).unwrap();
    assert_eq!(
        events.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        [
            json!({"n": 1}),
            json!({"n": 2}),
            json!({"n": 3}),
            json!({"n": 4})
        ]
    );
    // Written once each: etcd's version counter of a key is 1 after one write.
    for seq in [2, 3] {
        let out = c
            .etcdctl(&[
                "get",
                "-w",
                "json",
                &format!("/runbook-test/exec/{id}/events/{seq:016}"),
            ])
            .expect("etcdctl");
        let v: Value = serde_json::from_slice(&out.stdout).expect("etcdctl json");
        assert_eq!(v["kvs"][0]["version"], json!(1), "event {seq} written once");
    }
}

/// Documents over etcd's request limit (1.5 MiB) are chunked: a 3 MiB runbook text
/// and a 3 MiB event round-trip through another runner, and no stored value comes
/// near the limit.
#[test]
fn large_documents_are_chunked() {
    let c = cluster();
    let eps = c.endpoints();
    let a = runner(&eps, "runner-a", steady());
    let id = "exec-large";
    let mut row = exec(id, None);
    let big: String = (0..3 * 1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    row.runbook_text = big.clone();
    let f = a.create_execution(&row).expect("create with 3 MiB runbook");
    a.append_event(id, &f, 1, &json!({"blob": big}))
        .expect("3 MiB event");
    a.append_event(id, &f, 2, &json!({"small": true}))
        .expect("small event");
    a.finish(id, &f, "SUCCEEDED", 3, Some(&json!({"n": 1})), None, None)
        .expect("finish rewrites the chunked head");

    let b = runner(&rotated(&eps, 1), "runner-b", steady());
    let read = b.execution(id).expect("read");
    assert_eq!(read.runbook_text.len(), big.len());
    assert!(read.runbook_text == big, "runbook text intact");
    assert_eq!(read.status, "SUCCEEDED");
    let events = b.events(id).expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].event["blob"].as_str().map(str::len),
        Some(big.len())
    );
    assert_eq!(events[1].event, json!({"small": true}));

    let out = c
        .etcdctl(&["get", "--prefix", "-w", "json", "/runbook-test/"])
        .expect("etcdctl");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let kvs = v["kvs"].as_array().expect("kvs");
    let largest = kvs
        .iter()
        .map(|kv| {
            use base64::Engine as _;
            kv["value"].as_str().map_or(0, |s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_or(0, |v| v.len())
            })
        })
        .max()
        .unwrap_or(0);
    let chunks = kvs
        .iter()
        .filter(|kv| {
            kv["key"].as_str().is_some_and(|k| {
                use base64::Engine as _;
                let k = base64::engine::general_purpose::STANDARD
                    .decode(k)
                    .unwrap_or_default();
                String::from_utf8_lossy(&k).contains("/chunks/")
            })
        })
        .count();
    assert!(chunks >= 12, "3 MiB docs in 512 KiB chunks: {chunks}");
    assert!(
        largest <= 512 * 1024,
        "largest stored value {largest} bytes"
    );
}

/// A member SIGKILLed mid-stream (the one the runner talks to first): writes go on
/// through the others, nothing acknowledged is lost, and a restarted member serves
/// the same journal.
#[test]
fn writes_continue_when_a_member_is_killed() {
    let mut c = cluster();
    let eps = c.endpoints();
    let a = runner(&eps, "runner-a", steady());
    let id = "exec-kill";
    let f = a
        .create_execution(&exec(id, Some("local/dr")))
        .expect("create");
    for n in 1..=10 {
        assert_eq!(a.append_event(id, &f, n, &json!({"n": n})).unwrap(), n);
    }
    c.kill(0);
    for n in 11..=30 {
        assert_eq!(
            a.append_event(id, &f, n, &json!({"n": n}))
                .unwrap_or_else(|e| panic!("append {n} after kill: {e} ({})", e.code())),
            n
        );
    }
    a.append_history(id, &f, &[(31, "TaskSucceeded".into(), None, json!({}))])
        .expect("history after kill");
    let b = runner(&rotated(&eps, 1), "runner-b", steady());
    let seqs: Vec<i64> = b.events(id).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());

    c.restart(0).expect("restart member 0");
    c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let only0 = runner(&eps[..1], "reader-0", steady());
    assert_eq!(
        only0.events(id).unwrap().len(),
        30,
        "restarted member caught up"
    );
}
