//! The harnesses themselves: a guarded child dies with its guard, a temp cluster
//! serves and leaves nothing behind, and the client's ledger sees a real outage and
//! no acknowledged write is lost.

use std::process::Command;
use std::time::{Duration, Instant};

use runbook_test_support::client::{self, Writer, missing};
use runbook_test_support::pg::TempCluster;
use runbook_test_support::process::{self, alive};
use runbook_test_support::wait;

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_guarded_child_is_stopped_by_pid_on_drop() {
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    let child = process::spawn(cmd, libc::SIGTERM).unwrap();
    let pid = child.pid() as i32;
    assert!(alive(pid));
    drop(child);
    assert!(!alive(pid), "sleep {pid} outlived its guard");
}

#[test]
fn waits_end_at_their_deadline() {
    let t = Instant::now();
    assert!(!wait::poll(
        Duration::from_millis(200),
        Duration::from_millis(20),
        || false
    ));
    assert!(t.elapsed() >= Duration::from_millis(200));
    let mut n = 0;
    let got = wait::poll_some(MINUTE, Duration::from_millis(1), || {
        n += 1;
        (n == 3).then_some(n)
    });
    assert_eq!(got, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_measures_an_outage_and_every_ack_is_stored() {
    let pg = TempCluster::start();
    let conn = pg.conn_str();
    let admin = client::client(&conn).await.expect("connect");
    client::create_table(&admin).await.unwrap();

    let writer = Writer::start(conn.clone(), 1);
    let began = Instant::now();
    assert!(writer.wait_acked_since(began, 5, MINUTE).await);
    // Take the table away: writes fail (unacknowledged) until it is back.
    let cut = Instant::now();
    admin
        .batch_execute("ALTER TABLE acked RENAME TO away")
        .await
        .unwrap();
    let failing = wait::poll_async(MINUTE, Duration::from_millis(20), || async {
        let l = writer.ledger();
        l.attempts
            .iter()
            .filter(|a| !a.acked && a.at >= cut)
            .count()
            >= 2
    })
    .await;
    assert!(failing, "writes kept succeeding without their table");
    admin
        .batch_execute("ALTER TABLE away RENAME TO acked")
        .await
        .unwrap();
    let healed = Instant::now();
    assert!(writer.wait_acked_since(healed, 5, MINUTE).await);
    let outage = writer.outage_between(cut, Instant::now());
    // Two failed attempts are 100 ms apart at least.
    assert!(
        outage.is_some_and(|d| d >= Duration::from_millis(100)),
        "{outage:?}"
    );
    assert_eq!(writer.outage_between(began, cut), None);

    let (acked, longest) = writer.finish().await;
    assert!(acked.len() >= 10, "{acked:?}");
    assert!(longest >= outage, "{longest:?} < {outage:?}");
    assert_eq!(missing(&conn, &acked).await, Vec::<i64>::new());

    let (pid, data) = (pg.pid() as i32, pg.data_dir());
    drop(admin);
    drop(pg);
    assert!(!alive(pid), "postgres {pid} outlived its cluster");
    assert!(!data.exists(), "{} left behind", data.display());
}
