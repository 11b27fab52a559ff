//! Fleet primitives against a real 3-member etcd cluster (runbook-test-support's
//! `etcd::Cluster`, Debian's etcd-server installed by scripts/setup.sh).

use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_fleet::{Created, EtcdClient, Fleet, FleetError, LeaseKeeper, Timing};
use runbook_test_support::etcd::{AnswerDroppingProxy, Cluster};
use runbook_test_support::wait;

/// Test timing: TTL 1 s is the test cluster's minimum lease TTL (its election timeout
/// is 500 ms); 0.2 s + 2 × 0.35 s = 0.9 s < 1 s.
fn timing() -> Timing {
    Timing::new(
        Duration::from_secs(1),
        Duration::from_millis(200),
        Duration::from_millis(350),
    )
    .expect("test timing obeys the rule")
}

fn cluster() -> Cluster {
    Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)")
}

fn fleet_on(endpoints: &[String], timeout: Duration) -> Fleet {
    let client = EtcdClient::new(endpoints, timeout).expect("client");
    Fleet::new(Arc::new(client), "/runbook-test")
}

/// Same members, another order: two runners reach etcd through different members.
fn rotated(endpoints: &[String], by: usize) -> Vec<String> {
    let mut e = endpoints.to_vec();
    e.rotate_left(by);
    e
}

/// Two runners race for the same environments at the same moment: for each one,
/// exactly one wins, the other is told who holds it and with which token, and etcd
/// (read back by etcdctl, an independent client) agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_race_exactly_one_wins() {
    let c = cluster();
    let eps = c.endpoints();
    let t = timing();
    let a = fleet_on(&eps, t.request_timeout());
    let b = fleet_on(&rotated(&eps, 1), t.request_timeout());
    let la = LeaseKeeper::start(a.client().clone(), t)
        .await
        .expect("lease a");
    let lb = LeaseKeeper::start(b.client().clone(), t)
        .await
        .expect("lease b");
    let mut wins = [0, 0];
    for n in 0..10 {
        let env = format!("env-{n}");
        let (ra, rb) = tokio::join!(
            a.acquire(&env, "runner-a", la.id()),
            b.acquire(&env, "runner-b", lb.id())
        );
        let (winner, token, loser) = match (ra, rb) {
            (Ok(tok), Err(e)) => {
                wins[0] += 1;
                ("runner-a", tok, e)
            }
            (Err(e), Ok(tok)) => {
                wins[1] += 1;
                ("runner-b", tok, e)
            }
            other => panic!("{env}: exactly one owner must win, got {other:?}"),
        };
        match loser {
            FleetError::Taken {
                owner,
                token: held,
                environment,
            } => {
                assert_eq!((owner.as_str(), held), (winner, token.revision()));
                assert_eq!(environment, env);
            }
            e => panic!("{env}: loser must be told Taken, got {e:?}"),
        }
        let out = c
            .etcdctl(&["get", "--print-value-only", &a.owner_key(&env)])
            .expect("etcdctl");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), winner);
    }
    eprintln!("race wins (a, b): {wins:?}");
    assert_eq!(wins[0] + wins[1], 10);
}

/// The owner stops renewing its lease (as a paused or partitioned runner would): the
/// other runner takes the environment over only after the lease expired at etcd, with
/// a higher token; the stale owner's fenced writes are refused, the new owner's are
/// accepted, and the stale owner's lease keeper says it must stop acting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_owner_is_taken_over_and_fenced() {
    takeover(timing()).await;
}

/// The same with [`Timing::FAST`] (TTL 2 s: the fastest safe setting on etcd's default
/// election timeout), for the takeover time reported in docs/fleet.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_owner_is_taken_over_fast_timing() {
    takeover(Timing::FAST).await;
}

/// The same with [`Timing::DEFAULT`] (TTL 10 s: ~45 s of test with the 3-TTL hold), for
/// docs/fleet.md's default-settings figure:
/// `nice cargo test -p runbook-fleet --test fencing -- --ignored --nocapture default_timing`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "≈45 s; run by hand for the default-timing takeover figure"]
async fn expired_owner_is_taken_over_default_timing() {
    takeover(Timing::DEFAULT).await;
}

async fn takeover(t: Timing) {
    let c = cluster();
    let eps = c.endpoints();
    let a = fleet_on(&eps, t.request_timeout());
    let b = fleet_on(&rotated(&eps, 2), t.request_timeout());
    let la = LeaseKeeper::start(a.client().clone(), t)
        .await
        .expect("lease a");
    let lb = LeaseKeeper::start(b.client().clone(), t)
        .await
        .expect("lease b");
    let token_a = a
        .acquire("prod", "runner-a", la.id())
        .await
        .expect("a owns prod");
    a.guarded_put("/runbook-test/journal/prod/state", b"a-1", &token_a)
        .await
        .expect("the owner writes");
    assert!(matches!(
        b.acquire("prod", "runner-b", lb.id()).await,
        Err(FleetError::Taken { .. })
    ));

    // Keep a alive over several TTLs first: the keeper must really renew.
    let held = Instant::now();
    wait::poll_async(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async { held.elapsed() > 3 * t.ttl() },
    )
    .await;
    assert!(la.is_valid(), "renewed lease still valid after 3 TTLs");
    assert_eq!(
        a.owner("prod").await.expect("read").map(|o| o.0).as_deref(),
        Some("runner-a")
    );

    // a's last renewal was sent at most one interval plus one request timeout before
    // this instant, and etcd expires the lease no earlier than TTL after receiving it:
    // a takeover sooner than that would break mutual exclusion.
    la.stop_keepalives();
    let stopped_at = Instant::now();
    let token_b = wait::poll_some_async(Duration::from_secs(60), t.keepalive(), || async {
        b.acquire("prod", "runner-b", lb.id()).await.ok()
    })
    .await
    .expect("b takes prod over once a's lease expired");
    let takeover = stopped_at.elapsed();
    eprintln!(
        "takeover after keepalives stopped: {takeover:?} (TTL {:?}, keepalive {:?}, request timeout {:?}, bound {:?})",
        t.ttl(),
        t.keepalive(),
        t.request_timeout(),
        t.worst_case_takeover()
    );
    assert!(
        takeover + t.keepalive() + t.request_timeout() >= t.ttl(),
        "no takeover before the lease can have expired: {takeover:?}"
    );
    assert!(
        token_b.revision() > token_a.revision(),
        "{token_b} > {token_a}"
    );
    assert!(!la.is_valid(), "a's keeper tells it to stop acting");

    // The stale owner wakes up and writes: refused, naming the newer token.
    match a
        .guarded_put("/runbook-test/journal/prod/state", b"a-2", &token_a)
        .await
    {
        Err(FleetError::Fenced { held, current, .. }) => {
            assert_eq!((held, current), (token_a.revision(), token_b.revision()))
        }
        other => panic!("stale owner's write must be fenced, got {other:?}"),
    }
    assert!(matches!(
        a.guarded_create("/runbook-test/journal/prod/0002", b"a-2", &token_a)
            .await,
        Err(FleetError::Fenced { .. })
    ));
    b.guarded_put("/runbook-test/journal/prod/state", b"b-1", &token_b)
        .await
        .expect("the new owner writes");
    let state = b
        .client()
        .get("/runbook-test/journal/prod/state")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(state.value, b"b-1");
    assert!(
        b.client()
            .get("/runbook-test/journal/prod/0002")
            .await
            .expect("read")
            .is_none(),
        "the fenced create left nothing"
    );
}

/// etcd's request limit (`--max-request-bytes`, 1.5 MiB by default) is real: a value
/// just under it is stored through the gateway, one over it is refused by etcd, and the
/// client refuses it before sending when it knows the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_the_request_limit_are_refused() {
    let c = cluster();
    let t = timing();
    let f = fleet_on(&c.endpoints(), Duration::from_secs(10));
    let lease = LeaseKeeper::start(f.client().clone(), t)
        .await
        .expect("lease");
    let token = f
        .acquire("prod", "runner-a", lease.id())
        .await
        .expect("own");
    let limit = runbook_fleet::client::DEFAULT_MAX_REQUEST_BYTES;

    let under = vec![b'u'; limit - 4096];
    f.guarded_put("/runbook-test/big", &under, &token)
        .await
        .expect("a value under the limit is stored");
    let kv = f
        .client()
        .get("/runbook-test/big")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(kv.value.len(), under.len());

    let over = vec![b'o'; limit + 1024];
    let e = f
        .guarded_put("/runbook-test/big", &over, &token)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "fleet.too_large", "{e}");
    // Told a (wrong) larger limit, the client sends it and etcd itself refuses.
    let lax = f.clone().with_max_request_bytes(4 * limit);
    let e = lax
        .guarded_put("/runbook-test/big", &over, &token)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FleetError::Etcd { message, .. } if message.contains("too large")),
        "{e:?}"
    );
    let kv = f
        .client()
        .get("/runbook-test/big")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(
        kv.value.len(),
        under.len(),
        "the refused write changed nothing"
    );
}

/// A fenced write whose answer is lost (the request reached etcd and was applied; the
/// connection broke before the response) reports an ambiguous outcome; retrying it is
/// safe: `guarded_create` finds its own value and writes nothing again, a different
/// value is a conflict, and `guarded_put` rewrites the same value under the same fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_write_after_ambiguous_error_is_safe() {
    let c = cluster();
    let eps = c.endpoints();
    let t = timing();
    let direct = fleet_on(&eps, t.request_timeout());
    let lease = LeaseKeeper::start(direct.client().clone(), t)
        .await
        .expect("lease");
    let token = direct
        .acquire("prod", "runner-a", lease.id())
        .await
        .expect("own");
    let proxy = AnswerDroppingProxy::start(c.member(0).client_port, usize::MAX).expect("proxy");
    let lossy = fleet_on(&[proxy.endpoint()], t.request_timeout());

    let key = "/runbook-test/journal/prod/0001";
    let e = lossy
        .guarded_create(key, b"step-1", &token)
        .await
        .expect_err("the answer was lost");
    assert!(e.is_ambiguous(), "{e:?}");
    let kv = direct
        .client()
        .get(key)
        .await
        .expect("read")
        .expect("the lost write was applied");
    assert_eq!((kv.value.as_slice(), kv.version), (&b"step-1"[..], 1));

    // The retry: nothing new written, same revision reported.
    assert_eq!(
        direct
            .guarded_create(key, b"step-1", &token)
            .await
            .expect("retry"),
        Created::Already(kv.create_revision)
    );
    let again = direct
        .client()
        .get(key)
        .await
        .expect("read")
        .expect("present");
    assert_eq!((again.version, again.mod_revision), (1, kv.mod_revision));
    assert!(matches!(
        direct.guarded_create(key, b"other", &token).await,
        Err(FleetError::Conflict { revision, .. }) if revision == kv.create_revision
    ));

    // An ambiguous guarded_put, retried: same value, still fenced.
    let state = "/runbook-test/journal/prod/state";
    assert!(
        lossy
            .guarded_put(state, b"s-1", &token)
            .await
            .unwrap_err()
            .is_ambiguous()
    );
    direct
        .guarded_put(state, b"s-1", &token)
        .await
        .expect("retry");
    let kv = direct
        .client()
        .get(state)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(kv.value, b"s-1");

    // Once the owner is gone, even a retry is fenced.
    lease.revoke().await.expect("revoke");
    assert!(matches!(
        direct.guarded_put(state, b"s-2", &token).await,
        Err(FleetError::Fenced { current: 0, .. })
    ));
}

/// The client keeps working through member failures: with the member it used killed,
/// calls fail over to the others; with a member paused (it accepts connections but
/// never answers), at most one attempt times out before another member answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_fails_over_when_a_member_dies_or_hangs() {
    let mut c = cluster();
    let eps = c.endpoints();
    let t = timing();
    let f = fleet_on(&eps, t.request_timeout());
    let lease = LeaseKeeper::start(f.client().clone(), t)
        .await
        .expect("lease");
    let token = f
        .acquire("prod", "runner-a", lease.id())
        .await
        .expect("own");
    f.guarded_put("/runbook-test/k", b"1", &token)
        .await
        .expect("write");

    // Killed: connections are refused, the next member answers (a leader election
    // may be under way if member 0 led, so the write is repeated until it lands: safe,
    // it is fenced and writes the same value).
    c.kill(0);
    let started = Instant::now();
    let put = |v: &'static [u8]| {
        let f = &f;
        let token = &token;
        async move { f.guarded_put("/runbook-test/k", v, token).await.ok() }
    };
    wait::poll_some_async(Duration::from_secs(30), Duration::from_millis(50), || {
        put(b"2")
    })
    .await
    .expect("write with member 0 dead");
    eprintln!(
        "write landed {:?} after member 0 was killed",
        started.elapsed()
    );

    // Paused (after member 0 is back, for quorum): member 1 takes connections and never
    // answers, so each attempt there costs one request timeout before failover.
    c.restart(0).expect("restart member 0");
    c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    c.pause(1);
    let started = Instant::now();
    wait::poll_some_async(Duration::from_secs(30), Duration::from_millis(50), || {
        put(b"3")
    })
    .await
    .expect("write with member 1 paused");
    eprintln!(
        "write landed {:?} after member 1 was paused",
        started.elapsed()
    );
    c.resume(1);
    let kv = f
        .client()
        .get("/runbook-test/k")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(kv.value, b"3");
    let out = c
        .etcdctl(&["get", "--print-value-only", "/runbook-test/k"])
        .expect("etcdctl");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
}

/// Latency of fenced appends on the 3-member loopback cluster (reported in
/// docs/fleet.md; the criterion comparison with SQLite is left to the journal backend):
/// every append lands, at strictly increasing revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_append_latency() {
    let c = cluster();
    let t = timing();
    let f = fleet_on(&c.endpoints(), Duration::from_secs(5));
    let lease = LeaseKeeper::start(f.client().clone(), t)
        .await
        .expect("lease");
    let token = f
        .acquire("prod", "runner-a", lease.id())
        .await
        .expect("own");
    let record = vec![b'r'; 512];
    let mut lat = Vec::new();
    let mut last = 0;
    for i in 0..200 {
        let started = Instant::now();
        let r = f
            .guarded_create(
                &format!("/runbook-test/journal/prod/{i:08}"),
                &record,
                &token,
            )
            .await
            .expect("append");
        lat.push(started.elapsed());
        assert!(
            matches!(r, Created::Now(rev) if rev > last),
            "{r:?} after {last}"
        );
        last = r.revision();
    }
    lat.sort();
    eprintln!(
        "fenced 512-byte append, 200 sequential: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        lat[100], lat[180], lat[198], lat[199]
    );
    let all = f
        .client()
        .get_prefix("/runbook-test/journal/prod/")
        .await
        .expect("range");
    assert_eq!(all.len(), 200);
}
