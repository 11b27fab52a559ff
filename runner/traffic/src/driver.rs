//! The session driver: a scheduler per kind issues ids at a fixed cadence onto one
//! queue; a fixed pool of worker tasks, each owning one persistent (reconnecting)
//! connection, takes them; the main loop gathers ledger events and flushes them to the
//! sink every 100 ms.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::{Client, Statement};
use tracing::{debug, info, warn};

use crate::conn::{self, describe, write_outcome};
use crate::{
    Batch, Config, Entry, Kind, LagSample, Outcome, SharedResolver, Sink, TrafficError, Which,
    now_ms,
};

/// Reconnect backoff: the first attempt after a connection breaks is immediate, then
/// 50 ms doubling to 500 ms, so a failover is followed within half a second of the
/// name answering again, without a connection attempt per write.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const LAG_EVERY: Duration = Duration::from_millis(500);

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Requested,
    MaxRun,
}

/// Totals of one session (final outcomes only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    pub started_ms: i64,
    pub stopped_ms: i64,
    /// When the pool was connected and the table existed (the "started" batch).
    pub ready_ms: Option<i64>,
    pub stop_reason: StopReason,
    pub writes_sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub lag_samples: u64,
    /// Target connections successfully opened, initial pool included: equals the pool
    /// size when nothing broke.
    pub connections_opened: u64,
}

struct Job {
    kind: Kind,
    id: u64,
    sent_ms: i64,
    /// End of the wait for a connection (the statement then gets its own timeout).
    deadline: Instant,
}

enum Event {
    Entry(Entry),
    Lag(LagSample),
}

struct Shared {
    config: Config,
    resolver: SharedResolver,
    app_name: String,
    insert_sql: String,
    count_sql: String,
    lag_sql: String,
    started_ms: i64,
    opened: AtomicU64,
    /// Sent time of the newest acknowledged write (i64::MIN: none yet).
    newest_acked_sent: AtomicI64,
}

/// One pooled connection with its prepared statements (one round trip per write).
struct Conn {
    client: Client,
    insert: Statement,
    count: Statement,
}

impl Shared {
    /// Open a pool connection; during setup it first runs `create`, so the pool's own
    /// first connection creates the table and no extra connection is opened.
    async fn open(&self, deadline: Instant, create: Option<&str>) -> Result<Conn, TrafficError> {
        let client = conn::connect(&self.resolver, Which::Target, &self.app_name, deadline).await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        if let Some(sql) = create {
            match tokio::time::timeout_at(deadline, client.batch_execute(sql)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(TrafficError::Setup(describe(&e))),
                Err(_) => return Err(TrafficError::Setup("timed out".into())),
            }
        }
        let prepare = async {
            let insert = client.prepare(&self.insert_sql).await?;
            let count = client.prepare(&self.count_sql).await?;
            Ok::<_, tokio_postgres::Error>((insert, count))
        };
        match tokio::time::timeout_at(deadline, prepare).await {
            Ok(Ok((insert, count))) => Ok(Conn {
                client,
                insert,
                count,
            }),
            Ok(Err(e)) => Err(TrafficError::Connect(format!(
                "preparing: {}",
                describe(&e)
            ))),
            Err(_) => Err(TrafficError::Connect(
                "timed out preparing statements".into(),
            )),
        }
    }
}

/// Run one session until the sink asks to stop or `max_run` passes. See the crate docs.
pub async fn run(
    config: Config,
    resolver: SharedResolver,
    mut sink: Box<dyn Sink>,
) -> Result<RunStats, TrafficError> {
    conn::check_table(&config.table)?;
    if config.connections == 0 {
        return Err(TrafficError::Config(
            "connections must be at least 1".into(),
        ));
    }
    let started = Instant::now();
    let deadline = started + config.max_run;
    let t = &config.table;
    let shared = Arc::new(Shared {
        app_name: format!("runbook-traffic {}", config.session),
        insert_sql: format!(
            "INSERT INTO {t} (session, id, conn, sent_at, payload) VALUES ($1, $2, $3, $4, $5)"
        ),
        count_sql: format!("SELECT count(*) FROM {t} WHERE session = $1"),
        lag_sql: format!(
            "SELECT (extract(epoch FROM max(sent_at)) * 1000)::bigint FROM {t} WHERE session = $1"
        ),
        started_ms: now_ms(),
        opened: AtomicU64::new(0),
        newest_acked_sent: AtomicI64::new(i64::MIN),
        resolver,
        config,
    });
    let mut stats = RunStats {
        started_ms: shared.started_ms,
        stopped_ms: 0,
        ready_ms: None,
        stop_reason: StopReason::MaxRun,
        writes_sent: 0,
        acked: 0,
        failed: 0,
        unknown: 0,
        reads_ok: 0,
        reads_failed: 0,
        lag_samples: 0,
        connections_opened: 0,
    };

    let pool = match setup(&shared, sink.as_mut(), deadline).await? {
        Some(pool) => pool,
        None => {
            stats.stop_reason = StopReason::Requested;
            stats.stopped_ms = now_ms();
            stats.connections_opened = shared.opened.load(Ordering::Relaxed);
            return Ok(stats);
        }
    };
    sink.write(&Batch::default()).map_err(TrafficError::Sink)?;
    stats.ready_ms = Some(now_ms());
    info!(session = %shared.config.session, connections = pool.len(), "traffic started");

    let (job_tx, job_rx) = mpsc::unbounded_channel::<Job>();
    let queue = Arc::new(Mutex::new(job_rx));
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut pool = pool.into_iter();
    for slot in 0..shared.config.connections {
        tokio::spawn(worker(
            slot,
            shared.clone(),
            pool.next(),
            queue.clone(),
            ev_tx.clone(),
        ));
    }
    for (kind, rate) in [
        (Kind::Write, shared.config.writes_per_second),
        (Kind::Read, shared.config.reads_per_second),
    ] {
        let timeout = shared.config.write_timeout;
        tokio::spawn(schedule(
            kind,
            rate,
            timeout,
            job_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(job_tx);
    if shared.config.sample_replica {
        tokio::spawn(sample_lag(shared.clone(), ev_tx.clone(), stop_rx.clone()));
    }
    drop(ev_tx);

    let mut pending = Pending::default();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stopping = false;
    loop {
        tokio::select! {
            ev = ev_rx.recv() => match ev {
                Some(ev) => {
                    stats.record(&ev);
                    pending.add(ev);
                }
                // Every worker drained the queue and the sampler stopped.
                None => break,
            },
            _ = flush.tick() => {
                if let Err(e) = pending.flush(sink.as_mut()) {
                    // Kept and retried at the next flush: the journal may be busy.
                    warn!(error = %e, "traffic ledger flush failed; retrying");
                }
                if !stopping {
                    let reason = if sink.stop_requested() {
                        Some(StopReason::Requested)
                    } else if Instant::now() >= deadline {
                        Some(StopReason::MaxRun)
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        info!(session = %shared.config.session, ?reason, "traffic stopping");
                        stats.stop_reason = reason;
                        stopping = true;
                        let _ = stop_tx.send(true);
                    }
                }
            }
        }
    }
    let mut last = Ok(());
    for _ in 0..5 {
        last = pending.flush(sink.as_mut());
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(FLUSH_EVERY).await;
    }
    last.map_err(TrafficError::Sink)?;
    stats.stopped_ms = now_ms();
    stats.connections_opened = shared.opened.load(Ordering::Relaxed);
    Ok(stats)
}

/// Open the pool and create the table, retrying until `deadline`. `None` when the sink
/// asked to stop first.
async fn setup(
    shared: &Shared,
    sink: &mut dyn Sink,
    deadline: Instant,
) -> Result<Option<Vec<Conn>>, TrafficError> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {} (session text, id bigint, conn int, \
         sent_at timestamptz, payload text, PRIMARY KEY (session, id))",
        shared.config.table
    );
    let want = shared.config.connections as usize;
    let mut pool: Vec<Conn> = Vec::with_capacity(want);
    let mut table_ready = false;
    let mut backoff = BACKOFF_MIN;
    let mut last_err: Option<TrafficError> = None;
    loop {
        if sink.stop_requested() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(last_err.unwrap_or_else(|| {
                TrafficError::Connect("max run reached before the target was reachable".into())
            }));
        }
        pool.retain(|c| !c.client.is_closed());
        let attempt = async {
            if !table_ready {
                // Create before preparing: the INSERT needs the table.
                pool.push(shared.open(deadline, Some(&create)).await?);
                table_ready = true;
            }
            while pool.len() < want {
                pool.push(shared.open(deadline, None).await?);
            }
            Ok::<_, TrafficError>(())
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(())) => return Ok(Some(pool)),
            Ok(Err(e)) => {
                debug!(error = %e, "traffic setup attempt failed");
                last_err = Some(e);
            }
            Err(_) => continue,
        }
        tokio::time::sleep_until((Instant::now() + backoff).min(deadline)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Issue ids 1, 2, 3… at a fixed cadence (not back-to-back: a slow write does not
/// delay the next id). Each job carries its send time and deadline from dispatch.
async fn schedule(
    kind: Kind,
    rate: u32,
    timeout: Duration,
    jobs: mpsc::UnboundedSender<Job>,
    mut stop: watch::Receiver<bool>,
) {
    if rate == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut id = 0u64;
    loop {
        tokio::select! {
            biased;
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            _ = tick.tick() => {}
        }
        id += 1;
        let job = Job {
            kind,
            id,
            sent_ms: now_ms(),
            deadline: Instant::now() + timeout,
        };
        if jobs.send(job).is_err() {
            break;
        }
    }
}

/// One pool slot: takes jobs from the shared queue and runs them on its connection,
/// reconnecting (re-resolving the target) when it breaks.
async fn worker(
    slot: u32,
    shared: Arc<Shared>,
    conn: Option<Conn>,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut w = Worker {
        slot,
        shared,
        conn,
        backoff: BACKOFF_MIN,
        next_attempt: Instant::now(),
        last_err: String::new(),
    };
    loop {
        let job = { queue.lock().await.recv().await };
        let Some(job) = job else { break };
        let mut entry = Entry {
            kind: job.kind,
            id: job.id,
            conn: slot,
            sent_ms: job.sent_ms,
            done_ms: None,
            outcome: Outcome::InFlight,
            error: None,
        };
        if job.kind == Kind::Write {
            let _ = events.send(Event::Entry(entry.clone()));
        }
        let (outcome, error) = w.perform(&job).await;
        entry.done_ms = Some(now_ms());
        entry.outcome = outcome;
        entry.error = error;
        let _ = events.send(Event::Entry(entry));
    }
}

struct Worker {
    slot: u32,
    shared: Arc<Shared>,
    conn: Option<Conn>,
    backoff: Duration,
    next_attempt: Instant,
    last_err: String,
}

impl Worker {
    fn failed(msg: String) -> (Outcome, Option<String>) {
        (Outcome::Failed, Some(msg))
    }

    /// Make sure there is a live connection before `deadline`; the error is the
    /// ledger's reason for a write that was never sent.
    async fn ensure_conn(&mut self, deadline: Instant) -> Result<(), String> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
            self.next_attempt = Instant::now();
        }
        if self.conn.is_some() {
            return Ok(());
        }
        if self.next_attempt >= deadline {
            return Err(format!("no connection (reconnecting): {}", self.last_err));
        }
        tokio::time::sleep_until(self.next_attempt).await;
        // The connection gets its own deadline: one that comes up just after this job
        // ran out of time is kept for the next job, not thrown away.
        let connect_by = Instant::now() + self.shared.config.write_timeout;
        match self.shared.open(connect_by, None).await {
            Ok(c) => {
                debug!(slot = self.slot, "traffic connection (re)opened");
                // The backoff resets only once a statement succeeds: a node that
                // accepts connections but refuses writes must not get one per write.
                self.conn = Some(c);
                if Instant::now() >= deadline {
                    return Err("timed out waiting for a connection".into());
                }
                Ok(())
            }
            Err(e) => {
                self.last_err = e.to_string();
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                Err(self.last_err.clone())
            }
        }
    }

    async fn perform(&mut self, job: &Job) -> (Outcome, Option<String>) {
        if Instant::now() >= job.deadline {
            return Self::failed("timed out waiting for a free connection".into());
        }
        if let Err(e) = self.ensure_conn(job.deadline).await {
            return Self::failed(e);
        }
        let c = self.conn.as_ref().expect("connected");
        let session = &self.shared.config.session;
        // Like a pool: the wait for a connection (above) and the statement are each
        // bounded by the timeout, so a statement that starts late still gets its full
        // time, and a timeout is evidence about the server, not about the queue.
        let timeout = self.shared.config.write_timeout;
        let timeout_ms = timeout.as_millis();
        let (result, fate) = match job.kind {
            Kind::Write => {
                let id = job.id as i64;
                let slot = self.slot as i32;
                let sent_at = UNIX_EPOCH + Duration::from_millis(job.sent_ms.max(0) as u64);
                let payload = format!("{session}/{}", job.id);
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                    [session, &id, &slot, &sent_at, &payload];
                let exec = c.client.execute(&c.insert, &params);
                match tokio::time::timeout(timeout, exec).await {
                    Ok(Ok(_)) => {
                        self.shared
                            .newest_acked_sent
                            .fetch_max(job.sent_ms, Ordering::Relaxed);
                        ((Outcome::Acked, None), Fate::Keep)
                    }
                    Ok(Err(e)) => {
                        let outcome = write_outcome(&e);
                        ((outcome, Some(describe(&e))), Fate::after(&e, &c.client))
                    }
                    // The statement may still commit: unknowable, and the connection is
                    // in an unknown state, so it is replaced.
                    Err(_) => (
                        (
                            Outcome::Unknown,
                            Some(format!("timed out after {timeout_ms} ms")),
                        ),
                        Fate::Broken,
                    ),
                }
            }
            Kind::Read => {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [session];
                let read = c.client.query_one(&c.count, &params);
                match tokio::time::timeout(timeout, read).await {
                    Ok(Ok(row)) => match row.try_get::<_, i64>(0) {
                        Ok(_) => ((Outcome::Ok, None), Fate::Keep),
                        Err(e) => ((Outcome::Failed, Some(describe(&e))), Fate::Keep),
                    },
                    Ok(Err(e)) => (
                        (Outcome::Failed, Some(describe(&e))),
                        Fate::after(&e, &c.client),
                    ),
                    Err(_) => (
                        (
                            Outcome::Failed,
                            Some(format!("timed out after {timeout_ms} ms")),
                        ),
                        Fate::Broken,
                    ),
                }
            }
        };
        match fate {
            // A statement went through: the next break starts from the short backoff.
            Fate::Keep => self.backoff = BACKOFF_MIN,
            // Reconnect at the next job, at once: the name may already point elsewhere.
            Fate::Broken => {
                self.conn = None;
                self.next_attempt = Instant::now();
            }
            // The node answers but is not (or no longer) the writer: re-resolve, with
            // backoff, so a name that has not moved yet is not hammered.
            Fate::WrongNode => {
                self.conn = None;
                self.last_err = result.1.clone().unwrap_or_default();
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
        result
    }
}

/// What becomes of a pool connection after a statement.
enum Fate {
    Keep,
    Broken,
    WrongNode,
}

impl Fate {
    fn after(e: &tokio_postgres::Error, client: &Client) -> Fate {
        if client.is_closed() || e.code().is_none() || write_outcome(e) == Outcome::Unknown {
            Fate::Broken
        } else if conn::wrong_node(e) {
            Fate::WrongNode
        } else {
            Fate::Keep
        }
    }
}

/// Every 500 ms, the replica's lag in ledger terms over its own persistent connection.
async fn sample_lag(
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(LAG_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut client: Option<Client> = None;
    let app = format!("{} replica", shared.app_name);
    loop {
        tokio::select! {
            biased;
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            _ = tick.tick() => {}
        }
        let deadline = Instant::now() + shared.config.write_timeout;
        // Read before querying, so a write acked meanwhile cannot make the lag negative.
        let newest = shared.newest_acked_sent.load(Ordering::Relaxed);
        if client.as_ref().is_some_and(|c| c.is_closed()) {
            client = None;
        }
        if client.is_none() {
            match conn::connect(&shared.resolver, Which::Replica, &app, deadline).await {
                Ok(c) => client = Some(c),
                Err(e) => debug!(error = %e, "replica unreachable"),
            }
        }
        let mut lag = None;
        if let Some(c) = &client {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&shared.config.session];
            let q = c.query_one(&shared.lag_sql, &params);
            match tokio::time::timeout_at(deadline, q).await {
                Ok(Ok(row)) => {
                    let replayed: Option<i64> = row.try_get(0).unwrap_or(None);
                    lag = Some(lag_seconds(newest, replayed, shared.started_ms));
                }
                Ok(Err(e)) => {
                    debug!(error = %describe(&e), "replica lag query failed");
                    if e.code().is_none() {
                        client = None;
                    }
                }
                Err(_) => client = None,
            }
        }
        let sample = LagSample {
            at_ms: now_ms(),
            lag,
        };
        if events.send(Event::Lag(sample)).is_err() {
            break;
        }
    }
}

/// Newest acked write's send time minus the newest send time the replica holds;
/// a replica holding none of the session's rows lags by everything since the start.
fn lag_seconds(newest_acked: i64, replayed: Option<i64>, started_ms: i64) -> f64 {
    if newest_acked == i64::MIN {
        return 0.0;
    }
    let behind = match replayed {
        Some(r) => newest_acked - r,
        None => newest_acked - started_ms,
    };
    behind.max(0) as f64 / 1000.0
}

impl RunStats {
    fn record(&mut self, ev: &Event) {
        match ev {
            Event::Lag(_) => self.lag_samples += 1,
            Event::Entry(e) => match (e.kind, e.outcome) {
                (_, Outcome::InFlight) => {}
                (Kind::Write, o) => {
                    self.writes_sent += 1;
                    match o {
                        Outcome::Acked | Outcome::Ok => self.acked += 1,
                        Outcome::Failed => self.failed += 1,
                        _ => self.unknown += 1,
                    }
                }
                (Kind::Read, Outcome::Ok | Outcome::Acked) => self.reads_ok += 1,
                (Kind::Read, _) => self.reads_failed += 1,
            },
        }
    }
}

/// Entries not yet written to the sink, the latest state per (kind, id).
#[derive(Default)]
struct Pending {
    entries: BTreeMap<(Kind, u64), Entry>,
    lag: Vec<LagSample>,
}

impl Pending {
    fn add(&mut self, ev: Event) {
        match ev {
            Event::Entry(e) => {
                self.entries.insert((e.kind, e.id), e);
            }
            Event::Lag(s) => self.lag.push(s),
        }
    }

    fn flush(&mut self, sink: &mut dyn Sink) -> Result<(), String> {
        if self.entries.is_empty() && self.lag.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            entries: self.entries.values().cloned().collect(),
            lag: self.lag.clone(),
        };
        sink.write(&batch)?;
        self.entries.clear();
        self.lag.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_in_ledger_terms() {
        assert_eq!(lag_seconds(i64::MIN, None, 1_000), 0.0);
        assert_eq!(lag_seconds(5_000, Some(5_000), 1_000), 0.0);
        assert_eq!(lag_seconds(5_000, Some(3_500), 1_000), 1.5);
        // A replica ahead of what we saw acked (a write acked after the read) is 0.
        assert_eq!(lag_seconds(5_000, Some(5_200), 1_000), 0.0);
        assert_eq!(lag_seconds(5_000, None, 1_000), 4.0);
    }

    #[test]
    fn pending_keeps_the_latest_state_per_entry() {
        struct Rec(Vec<Batch>);
        impl Sink for Rec {
            fn write(&mut self, b: &Batch) -> Result<(), String> {
                self.0.push(b.clone());
                Ok(())
            }
            fn stop_requested(&mut self) -> bool {
                false
            }
        }
        let e = |id, outcome| Entry {
            kind: Kind::Write,
            id,
            conn: 0,
            sent_ms: 10,
            done_ms: None,
            outcome,
            error: None,
        };
        let mut p = Pending::default();
        p.add(Event::Entry(e(2, Outcome::InFlight)));
        p.add(Event::Entry(e(1, Outcome::InFlight)));
        p.add(Event::Entry(e(1, Outcome::Acked)));
        let mut sink = Rec(Vec::new());
        p.flush(&mut sink).unwrap();
        p.flush(&mut sink).unwrap(); // nothing new: no empty batch
        assert_eq!(sink.0.len(), 1);
        let got: Vec<_> = sink.0[0]
            .entries
            .iter()
            .map(|e| (e.id, e.outcome))
            .collect();
        assert_eq!(got, vec![(1, Outcome::Acked), (2, Outcome::InFlight)]);
    }
}
