//! Fail closed, against a real 3-member etcd cluster: with two members killed the
//! runner stops acting by its lease's local deadline and says why; with them back it
//! acquires again with a new lease and a higher token, and its old token is fenced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_fleet::{Actor, EtcdClient, Fleet, FleetError, Quorum, Timing};
use runbook_test_support::etcd::{Cluster, ELECTION_MS};
use runbook_test_support::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_stops_acting_without_quorum_and_resumes_with_a_higher_token() {
    let mut c = Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)");
    let t = Timing::FAST;
    let client = EtcdClient::new(&c.endpoints(), t.request_timeout()).expect("client");
    let actor = Actor::new(Fleet::new(Arc::new(client), "/runbook-q"), "runner-a", t);
    assert!(!actor.may_act(), "no lease yet: may not act");

    let (token1, lease1) = actor.acquire("prod").await.expect("acquire");
    assert!(actor.may_act() && actor.may_act_on(lease1));
    assert_eq!(actor.quorum(), Quorum::Healthy);
    actor
        .fleet()
        .guarded_put("/runbook-q/state", b"1", &token1)
        .await
        .expect("owner writes");

    // Quorum gone: member 0 (first in the runner's order) is left alone.
    c.kill(1);
    c.kill(2);
    let killed = Instant::now();
    let stopped = wait::poll_async(
        Duration::from_secs(30),
        Duration::from_millis(10),
        || async { !actor.may_act() },
    )
    .await;
    let after = killed.elapsed();
    assert!(stopped, "the runner must stop acting without quorum");
    eprintln!(
        "may_act false {after:?} after two of three members were killed (TTL {:?})",
        t.ttl()
    );
    // The last keepalive that succeeded was sent before the kill, or while member 0
    // still believed it led (at most one election timeout: etcd renews leases on the
    // leader alone); the deadline is that send + TTL, checked every 10 ms here.
    let bound = t.ttl() + Duration::from_millis(ELECTION_MS) + t.keepalive();
    assert!(after <= bound, "stopped after {after:?}, bound {bound:?}");
    assert!(!actor.may_act_on(lease1));

    // And it says why.
    assert!(
        wait::poll(Duration::from_secs(10), Duration::from_millis(20), || {
            !actor.quorum().is_healthy()
        }),
        "quorum reported lost"
    );
    match actor.quorum() {
        Quorum::NoQuorum {
            since,
            code,
            last_error,
        } => {
            assert!(since >= killed - t.keepalive(), "{since:?}");
            assert!(
                matches!(code, "fleet.unavailable" | "fleet.ambiguous"),
                "{code}"
            );
            assert!(!last_error.is_empty());
        }
        Quorum::Healthy => unreachable!(),
    }
    let status = actor.status();
    let metrics = status.prometheus();
    assert!(
        metrics.contains("runbook_fleet_lease_valid 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("runbook_fleet_quorum 0\n"), "{metrics}");
    assert!(
        metrics.contains("runbook_fleet_etcd_errors_total{code=\"fleet."),
        "{metrics}"
    );
    let e = actor
        .acquire("prod")
        .await
        .expect_err("no quorum, no owner");
    assert!(e.is_ambiguous() || e.code() == "fleet.unavailable", "{e:?}");

    // Quorum back: a fresh lease, a new token higher than the old one.
    c.restart(1).expect("restart member 1");
    c.restart(2).expect("restart member 2");
    c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let resumed = Instant::now();
    let (token2, lease2) = wait::poll_some_async(
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async { actor.acquire("prod").await.ok() },
    )
    .await
    .expect("re-acquired once quorum is back");
    eprintln!(
        "re-acquired {:?} after the cluster was healthy again",
        resumed.elapsed()
    );
    assert_ne!(lease2, lease1, "a new lease");
    assert!(token2.revision() > token1.revision(), "{token2} > {token1}");
    assert!(actor.may_act() && actor.may_act_on(lease2) && !actor.may_act_on(lease1));
    assert_eq!(actor.quorum(), Quorum::Healthy);
    assert!(
        actor
            .status()
            .prometheus()
            .contains("runbook_fleet_lease_valid 1\n")
    );

    // What it did under the old token stays dead.
    assert!(matches!(
        actor
            .fleet()
            .guarded_put("/runbook-q/state", b"stale", &token1)
            .await,
        Err(FleetError::Fenced { .. })
    ));
    actor
        .fleet()
        .guarded_put("/runbook-q/state", b"2", &token2)
        .await
        .expect("new token writes");
}
