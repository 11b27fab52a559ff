//! Once across the fleet, against a real 3-member etcd cluster: schedule slots raced by
//! three runners (three independent clients on three threads released together), with
//! and without a member SIGKILLed mid-race; a claim retried after a lost answer; outage
//! episodes of a watcher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use runbook_fleet::{ClaimRecord, Claimed, EtcdClient, Fleet, FleetError};
use runbook_test_support::etcd::{AnswerDroppingProxy, Cluster};
use runbook_test_support::wait;

const PREFIX: &str = "/runbook-once";
const SLOTS: usize = 50;
const RUNNERS: usize = 3;
/// Slot times one minute apart, as a cron schedule would produce them.
const T0: i64 = 1_700_000_000_000;

fn fleet_on(endpoints: &[String]) -> Fleet {
    let client = EtcdClient::new(endpoints, Duration::from_millis(500)).expect("client");
    Fleet::new(Arc::new(client), PREFIX)
}

fn rotated(endpoints: &[String], by: usize) -> Vec<String> {
    let mut e = endpoints.to_vec();
    e.rotate_left(by);
    e
}

fn execution(runner: usize, slot: usize) -> String {
    format!("exec-r{runner}-s{slot}")
}

/// A claim repeated while etcd cannot answer (a member killed, an election): safe, a
/// repeat by the same runner is `Already`.
async fn claim_until_answered(f: &Fleet, runner: usize, slot: usize) -> Claimed {
    let mut last = None;
    for _ in 0..200 {
        match f
            .claim_schedule_slot(
                "nightly",
                T0 + slot as i64 * 60_000,
                &format!("r{runner}"),
                &execution(runner, slot),
            )
            .await
        {
            Ok(c) => return c,
            Err(e @ (FleetError::Unavailable(_) | FleetError::Ambiguous(_))) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("r{runner} slot {slot}: {e:?}"),
        }
    }
    panic!("r{runner} slot {slot}: etcd never answered: {last:?}")
}

/// Three runners race for every slot, released by a barrier per slot; `progress`
/// counts slots every runner has finished. Outcomes indexed [slot][runner].
fn race(endpoints: &[String], progress: Arc<AtomicUsize>) -> Vec<Vec<Claimed>> {
    let barrier = Arc::new(Barrier::new(RUNNERS));
    let handles: Vec<_> = (0..RUNNERS)
        .map(|r| {
            let eps = rotated(endpoints, r);
            let barrier = barrier.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                // Each runner its own client: its own connections and member order.
                let f = fleet_on(&eps);
                (0..SLOTS)
                    .map(|slot| {
                        barrier.wait();
                        let c = rt.block_on(claim_until_answered(&f, r, slot));
                        if r == 0 {
                            progress.fetch_add(1, Ordering::SeqCst);
                        }
                        c
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let per_runner: Vec<Vec<Claimed>> = handles
        .into_iter()
        .map(|h| h.join().expect("runner thread"))
        .collect();
    (0..SLOTS)
        .map(|s| per_runner.iter().map(|r| r[s].clone()).collect())
        .collect()
}

/// Every slot fired by exactly one runner; every other runner was told the winner's
/// execution id; etcd holds exactly one claim per slot, written once.
fn check_exactly_once(c: &Cluster, f: &Fleet, outcomes: &[Vec<Claimed>]) -> [usize; RUNNERS] {
    let mut wins = [0; RUNNERS];
    for (slot, per_runner) in outcomes.iter().enumerate() {
        let firing: Vec<usize> = (0..RUNNERS).filter(|&r| per_runner[r].fires()).collect();
        assert_eq!(firing.len(), 1, "slot {slot}: {per_runner:?}");
        let w = firing[0];
        wins[w] += 1;
        let revision = per_runner[w].revision();
        for (r, outcome) in per_runner.iter().enumerate() {
            if r == w {
                continue;
            }
            match outcome {
                Claimed::Lost {
                    record,
                    revision: seen,
                } => {
                    assert_eq!(record.execution, execution(w, slot), "slot {slot}");
                    assert_eq!(record.runner, format!("r{w}"));
                    assert_eq!(*seen, revision);
                }
                other => panic!("slot {slot}, r{r}: expected Lost, got {other:?}"),
            }
        }
        let key = f.schedule_slot_key("nightly", T0 + slot as i64 * 60_000);
        let out = c
            .etcdctl(&["get", "--print-value-only", &key])
            .expect("etcdctl");
        let stored: ClaimRecord =
            serde_json::from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes())
                .expect("claim record in etcd");
        assert_eq!(stored.execution, execution(w, slot));
    }
    let out = c
        .etcdctl(&[
            "get",
            "--prefix",
            "--keys-only",
            &format!("{PREFIX}/once/schedule/nightly/"),
        ])
        .expect("etcdctl");
    let keys = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(keys, SLOTS, "one claim key per slot");
    wins
}

#[test]
fn three_runners_race_fifty_slots_each_fires_once() {
    let c = Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)");
    let outcomes = race(&c.endpoints(), Arc::new(AtomicUsize::new(0)));
    let f = fleet_on(&c.endpoints());
    let wins = check_exactly_once(&c, &f, &outcomes);
    eprintln!("slot wins per runner: {wins:?}");
    assert_eq!(wins.iter().sum::<usize>(), SLOTS);
}

#[test]
fn slots_fire_once_while_a_member_is_killed_mid_race() {
    let mut c = Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)");
    let eps = c.endpoints();
    let progress = Arc::new(AtomicUsize::new(0));
    let racing = {
        let p = progress.clone();
        let eps = eps.clone();
        std::thread::spawn(move || race(&eps, p))
    };
    // Kill member 0 (the first member of runner 0's order) once a third is done.
    assert!(
        wait::poll(Duration::from_secs(60), Duration::from_millis(5), || {
            progress.load(Ordering::SeqCst) >= SLOTS / 3
        }),
        "race made progress"
    );
    c.kill(0);
    let killed_at = progress.load(Ordering::SeqCst);
    let outcomes = racing.join().expect("race");
    eprintln!("member 0 SIGKILLed after slot {killed_at}");
    assert!(killed_at < SLOTS, "the kill happened mid-race");
    let f = fleet_on(&eps[1..]);
    let wins = check_exactly_once(&c, &f, &outcomes);
    eprintln!("slot wins per runner with a member killed: {wins:?}");
}

/// The claim reached etcd and was applied, its answer was lost: the runner retries and
/// is told `Already` with its own execution id; etcd holds the key once (version 1).
/// Another runner still loses to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_retried_after_lost_answer_is_already() {
    let c = Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)");
    let proxy = AnswerDroppingProxy::start(c.member(0).client_port, 1).expect("proxy");
    let lossy = fleet_on(&[proxy.endpoint()]);
    let e = lossy
        .claim_schedule_slot("hourly", T0, "r0", "exec-1")
        .await
        .expect_err("the answer is lost");
    assert!(e.is_ambiguous(), "{e:?}");
    assert_eq!(proxy.dropped(), 1);

    let direct = fleet_on(&c.endpoints());
    let key = direct.schedule_slot_key("hourly", T0);
    let kv = direct
        .client()
        .get(&key)
        .await
        .expect("read")
        .expect("the lost claim was applied");
    // The retry (through the proxy again, now answering): Already, nothing written.
    let retry = lossy
        .claim_schedule_slot("hourly", T0, "r0", "exec-1-retry")
        .await
        .expect("retry");
    match retry {
        Claimed::Already { record, revision } => {
            assert_eq!(record.execution, "exec-1", "follow the first attempt's id");
            assert_eq!(revision, kv.create_revision);
        }
        other => panic!("expected Already, got {other:?}"),
    }
    let again = direct.client().get(&key).await.expect("read").expect("kv");
    assert_eq!((again.version, again.mod_revision), (1, kv.mod_revision));
    let other = direct
        .claim_schedule_slot("hourly", T0, "r1", "exec-2")
        .await
        .expect("claim");
    assert!(
        matches!(&other, Claimed::Lost { record, .. } if record.execution == "exec-1"),
        "{other:?}"
    );
}

/// A watcher failover: three runners that see primary db-a down compute the same
/// episode and exactly one wins it; a lagging runner that still sees db-a down after
/// the failover to db-b loses to the same claim; db-b's later outage is a new episode;
/// a failover back to db-a and its outage is a new episode again (higher term).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_happens_once_per_outage_episode() {
    let c = Cluster::start(3).expect("3-member etcd cluster (run scripts/setup.sh)");
    let eps = c.endpoints();
    let runners: Vec<Fleet> = (0..RUNNERS).map(|r| fleet_on(&rotated(&eps, r))).collect();

    let episode_a = runners[0]
        .outage_episode("prod", "db-a")
        .await
        .expect("episode");
    assert_eq!(episode_a.term, 0, "no failover yet");
    let claims = futures_claims(&runners, "prod", "db-a").await;
    let winners: Vec<_> = claims.iter().filter(|c| c.fires()).collect();
    assert_eq!(winners.len(), 1, "{claims:?}");

    // Failover to db-b done. A lagging runner still sees db-a down: same episode, Lost.
    let late = runners[2]
        .outage_episode("prod", "db-a")
        .await
        .expect("episode");
    assert_eq!(late, episode_a);
    let c2 = runners[2]
        .claim_failover("prod", &late, "r-late", "exec-late")
        .await
        .expect("claim");
    assert!(matches!(c2, Claimed::Lost { .. }), "{c2:?}");

    // db-b fails: a new episode whose term is the db-a failover's claim.
    let episode_b = runners[1]
        .outage_episode("prod", "db-b")
        .await
        .expect("episode");
    assert_eq!(episode_b.term, winners[0].revision());
    let claims_b = futures_claims(&runners, "prod", "db-b").await;
    assert_eq!(claims_b.iter().filter(|c| c.fires()).count(), 1);
    // Failed back to db-a, which fails again: a new episode, higher term.
    let episode_a2 = runners[0]
        .outage_episode("prod", "db-a")
        .await
        .expect("episode");
    assert!(episode_a2.term > episode_a.term);
    assert_eq!(episode_a2.term, claims_b[0].revision());
    let claims_a2 = futures_claims(&runners, "prod", "db-a").await;
    assert_eq!(claims_a2.iter().filter(|c| c.fires()).count(), 1);
    assert_ne!(claims_a2[0].revision(), claims[0].revision());
}

/// Every runner computes the episode of `primary`'s outage and claims it, concurrently.
async fn futures_claims(runners: &[Fleet], env: &str, primary: &str) -> Vec<Claimed> {
    let tasks: Vec<_> = runners
        .iter()
        .enumerate()
        .map(|(r, f)| {
            let f = f.clone();
            let (env, primary) = (env.to_string(), primary.to_string());
            tokio::spawn(async move {
                let ep = f.outage_episode(&env, &primary).await.expect("episode");
                f.claim_failover(&env, &ep, &format!("r{r}"), &format!("fo-{primary}-r{r}"))
                    .await
                    .expect("claim")
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}
