//! An independent, application-like PostgreSQL client: it writes rows one by one
//! through a connection string (typically the routed name), reconnecting on errors, and
//! keeps its own ledger of every attempt. What the server acknowledged is what an
//! application believes is stored; [`missing`] checks those rows afterwards, and the
//! ledger gives the outage the client itself saw — independent of what the runner
//! reports about its own run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

/// The table the writer inserts into.
pub const TABLE: &str = "acked";

/// Pause after an acknowledged write, and after a failed one (reconnecting).
const PACE_OK: Duration = Duration::from_millis(20);
const PACE_FAILED: Duration = Duration::from_millis(100);

/// Connect with a libpq-style connection string; the connection runs on its own task.
pub async fn client(conn: &str) -> Result<Client, tokio_postgres::Error> {
    let (c, connection) = tokio_postgres::connect(conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(c)
}

/// Create the writer's table (`id` the primary key, `at` the server's commit time).
pub async fn create_table(c: &Client) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(&format!(
        "CREATE TABLE {TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"
    ))
    .await
}

/// Insert one row with `id`.
pub async fn insert(c: &Client, id: i64) -> Result<u64, tokio_postgres::Error> {
    c.execute(&format!("INSERT INTO {TABLE} (id) VALUES ($1)"), &[&id])
        .await
}

/// One write attempt, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub id: i64,
    /// When the attempt's answer (or failure) arrived.
    pub at: Instant,
    pub acked: bool,
}

/// Every attempt in order.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub attempts: Vec<Attempt>,
}

impl Ledger {
    pub fn acked(&self) -> Vec<i64> {
        self.attempts
            .iter()
            .filter(|a| a.acked)
            .map(|a| a.id)
            .collect()
    }

    /// How many writes were acknowledged at or after `t`.
    pub fn acked_since(&self, t: Instant) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.acked && a.at >= t)
            .count()
    }

    /// Each outage as (first failed attempt, first acknowledged write after it); the
    /// end is None while it lasts.
    pub fn outages(&self) -> Vec<(Instant, Option<Instant>)> {
        let mut out: Vec<(Instant, Option<Instant>)> = Vec::new();
        for a in &self.attempts {
            match out.last_mut() {
                Some((_, end @ None)) if a.acked => *end = Some(a.at),
                Some((_, None)) => {}
                _ if !a.acked => out.push((a.at, None)),
                _ => {}
            }
        }
        out
    }

    /// The longest outage the client saw within [from, to], each outage clipped to
    /// that window (one still going counts until `to`); None when every write in the
    /// window was acknowledged.
    pub fn outage_between(&self, from: Instant, to: Instant) -> Option<Duration> {
        self.outages()
            .into_iter()
            .filter_map(|(start, end)| {
                let end = end.unwrap_or(to).min(to);
                let start = start.max(from);
                (start < end).then(|| end - start)
            })
            .max()
    }
}

/// The writer task and its ledger.
pub struct Writer {
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    started: Instant,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Start writing ids `first_id`, `first_id + 1`, … through `conn` (one id per
    /// attempt, so an id never acknowledged is never reused).
    pub fn start(conn: String, first_id: i64) -> Writer {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (ledger.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut id = first_id;
            let mut c: Option<Client> = None;
            while !s.load(Ordering::Relaxed) {
                if c.as_ref().is_none_or(|c| c.is_closed()) {
                    c = client(&conn).await.ok();
                }
                let acked = match &c {
                    Some(cl) => insert(cl, id).await.is_ok(),
                    None => false,
                };
                let at = Instant::now();
                l.lock().unwrap().attempts.push(Attempt { id, at, acked });
                if !acked {
                    c = None;
                }
                id += 1;
                tokio::time::sleep(if acked { PACE_OK } else { PACE_FAILED }).await;
            }
        });
        Writer {
            ledger,
            stop,
            started: Instant::now(),
            task,
        }
    }

    /// A copy of the ledger so far.
    pub fn ledger(&self) -> Ledger {
        self.ledger.lock().unwrap().clone()
    }

    /// The longest outage the client saw within [from, to] (see
    /// [`Ledger::outage_between`]).
    pub fn outage_between(&self, from: Instant, to: Instant) -> Option<Duration> {
        self.ledger.lock().unwrap().outage_between(from, to)
    }

    /// Wait until at least `n` writes were acknowledged at or after `since` (progress
    /// instead of a fixed sleep); whether they were before `timeout`.
    pub async fn wait_acked_since(&self, since: Instant, n: usize, timeout: Duration) -> bool {
        crate::wait::poll_async(timeout, PACE_OK, || async {
            self.ledger.lock().unwrap().acked_since(since) >= n
        })
        .await
    }

    /// Stop writing: the acknowledged ids, and the longest outage the client saw while
    /// it wrote (None when every write was acknowledged).
    pub async fn finish(self) -> (Vec<i64>, Option<Duration>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let ledger = self.ledger.lock().unwrap();
        (
            ledger.acked(),
            ledger.outage_between(self.started, Instant::now()),
        )
    }
}

/// The acknowledged ids that are not in the table, read through `conn`.
pub async fn missing(conn: &str, acked: &[i64]) -> Vec<i64> {
    let c = client(conn).await.expect("connect through the routed name");
    let rows = c
        .query(&format!("SELECT id FROM {TABLE}"), &[])
        .await
        .unwrap();
    let have: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    acked
        .iter()
        .copied()
        .filter(|i| !have.contains(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(t0: Instant, marks: &[(u64, bool)]) -> Ledger {
        Ledger {
            attempts: marks
                .iter()
                .enumerate()
                .map(|(i, &(ms, acked))| Attempt {
                    id: i as i64,
                    at: t0 + Duration::from_millis(ms),
                    acked,
                })
                .collect(),
        }
    }

    #[test]
    fn outages_are_measured_from_the_first_failure_to_the_next_ack() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let l = ledger(
            t0,
            &[
                (0, true),
                (100, false),
                (200, false),
                (400, true),
                (500, true),
                (600, false),
                (650, true),
                (700, false),
            ],
        );
        assert_eq!(l.acked(), [0, 3, 4, 6]);
        assert_eq!(
            l.outages(),
            [
                (t0 + ms(100), Some(t0 + ms(400))),
                (t0 + ms(600), Some(t0 + ms(650))),
                (t0 + ms(700), None)
            ]
        );
        let end = t0 + ms(1000);
        // The longest in the whole run is the last, still going at `end`.
        assert_eq!(l.outage_between(t0, end), Some(ms(300)));
        assert_eq!(l.outage_between(t0, t0 + ms(690)), Some(ms(300)));
        // Clipped to the window.
        assert_eq!(l.outage_between(t0 + ms(300), t0 + ms(690)), Some(ms(100)));
        assert_eq!(l.outage_between(t0 + ms(450), t0 + ms(550)), None);
        assert_eq!(
            ledger(t0, &[(0, true), (20, true)]).outage_between(t0, end),
            None
        );
    }
}
