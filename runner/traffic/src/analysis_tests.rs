use super::*;

/// Write `id` sent every 20 ms from t=0 with the given latency and outcome.
fn w(id: u64, outcome: Outcome, latency: i64) -> Entry {
    let sent = id as i64 * 20;
    Entry {
        kind: Kind::Write,
        id,
        conn: (id % 4) as u32,
        sent_ms: sent,
        done_ms: (outcome != Outcome::InFlight).then_some(sent + latency),
        outcome,
        error: match outcome {
            Outcome::Failed => Some(format!("refused {id}")),
            Outcome::Unknown => Some(format!("reset {id}")),
            _ => None,
        },
    }
}

/// 1..=n acked (3 ms), except the ids in `bad` (failed when even, unknown when odd).
fn ledger(n: u64, bad: std::ops::Range<u64>) -> Vec<Entry> {
    (1..=n)
        .map(|id| {
            if bad.contains(&id) {
                let o = if id % 2 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Unknown
                };
                w(id, o, 5)
            } else {
                w(id, Outcome::Acked, 3)
            }
        })
        .collect()
}

#[test]
fn tally_counts_the_latest_state_of_each_entry() {
    let mut l = vec![w(1, Outcome::InFlight, 0)];
    l.extend(ledger(10, 4..6));
    l.push(w(11, Outcome::InFlight, 0));
    l.push(Entry {
        kind: Kind::Read,
        id: 1,
        conn: 0,
        sent_ms: 5,
        done_ms: Some(6),
        outcome: Outcome::Ok,
        error: None,
    });
    l.push(Entry {
        kind: Kind::Read,
        id: 2,
        conn: 1,
        sent_ms: 7,
        done_ms: Some(9),
        outcome: Outcome::Failed,
        error: Some("x".into()),
    });
    let t = Tally::from_ledger(&l);
    assert_eq!(t.writes, 11);
    assert_eq!((t.acked, t.failed, t.unknown, t.in_flight), (8, 1, 1, 1));
    assert_eq!((t.reads_ok, t.reads_failed), (1, 1));
    assert_eq!(t.acked_since_error, 5); // 6..=10
    assert_eq!(t.last_ack_ms, Some(10 * 20 + 3));
    assert_eq!(t.last_error_ms, Some(5 * 20 + 5));
    assert_eq!(t.last_error.as_deref(), Some("reset 5"));
}

#[test]
fn a_clean_ledger_has_no_outage() {
    let l = ledger(200, 0..0);
    assert!(outages(&l, Duration::from_millis(100)).is_empty());
    let m = measure(&l, &[], Some(1000));
    assert!(m.outage.is_none());
    // No outage after the fault: the first write sent at/after it acked 3 ms later.
    assert_eq!(m.rto_seconds, Some(0.003));
    assert_eq!((m.latency_p50_ms, m.latency_p99_ms), (Some(3.0), Some(3.0)));
}

#[test]
fn one_failure_run_is_one_outage_bounded_by_acks() {
    let l = ledger(100, 40..60);
    let o = outages(&l, Duration::from_secs(10));
    assert_eq!(o.len(), 1, "{o:?}");
    let o = &o[0];
    assert_eq!(o.from_ms, 39 * 20 + 3, "ack time of write 39");
    assert_eq!(o.to_ms, 60 * 20 + 3, "ack time of write 60");
    assert_eq!((o.failed, o.unknown), (10, 10));
    assert_eq!(o.first_error.as_deref(), Some("refused 40"));
    assert!(o.recovered);
    assert!((o.seconds() - 0.42).abs() < 1e-9);
}

#[test]
fn silences_count_only_from_min_gap() {
    // Writes 21..=29 never happened (a stalled client): 200 ms without an ack.
    let l: Vec<Entry> = ledger(50, 0..0)
        .into_iter()
        .filter(|e| !(21..30).contains(&e.id))
        .collect();
    assert!(outages(&l, Duration::from_millis(201)).is_empty());
    let o = outages(&l, Duration::from_millis(200));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].from_ms, o[0].to_ms), (20 * 20 + 3, 30 * 20 + 3));
    assert_eq!(
        (o[0].failed, o[0].unknown, o[0].first_error.clone()),
        (0, 0, None)
    );
}

#[test]
fn a_pool_recovering_out_of_id_order_is_still_one_outage() {
    let mut l = ledger(11, 6..9);
    // Write 9 waited for its connection to come back and was acked at 400; write 10,
    // sent before that, failed; write 11 was acked at 405.
    l[8].done_ms = Some(400);
    l[9] = w(10, Outcome::Failed, 1);
    l[10].done_ms = Some(405);
    let o = outages(&l, Duration::from_secs(1));
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!((o[0].from_ms, o[0].to_ms), (5 * 20 + 3, 400));
    assert_eq!(o[0].failed + o[0].unknown, 4);
}

#[test]
fn an_outage_that_has_not_ended_is_not_recovered() {
    let l = ledger(30, 20..31);
    let o = outages(&l, Duration::from_secs(1));
    assert_eq!(o.len(), 1);
    assert!(!o[0].recovered);
    assert_eq!((o[0].from_ms, o[0].to_ms), (19 * 20 + 3, 30 * 20 + 5));
    let m = measure(&l, &[], Some(19 * 20 + 10));
    assert_eq!(m.rto_seconds, None);
    assert!(m.outage.is_some());
}

#[test]
fn measure_rto_latency_and_lag_around_a_fault() {
    let mut l = ledger(300, 100..150);
    l[0].done_ms = Some(20 + 50); // one slow write for p99
    let fault = 100 * 20 - 5;
    let lag = vec![
        LagSample {
            at_ms: 500,
            lag: Some(0.0),
        },
        LagSample {
            at_ms: fault - 100,
            lag: Some(0.25),
        },
        LagSample {
            at_ms: fault + 1,
            lag: None,
        },
        LagSample {
            at_ms: fault + 900,
            lag: Some(1.5),
        },
    ];
    let m = measure(&l, &lag, Some(fault));
    let o = m.outage.clone().expect("outage");
    assert_eq!(o.to_ms, 150 * 20 + 3);
    assert_eq!(m.rto_seconds, Some((o.to_ms - fault) as f64 / 1000.0));
    assert_eq!((m.acked, m.failed, m.unknown), (250, 25, 25));
    assert_eq!(m.outages, 1);
    assert_eq!(m.latency_p50_ms, Some(3.0));
    assert_eq!(m.latency_p99_ms, Some(3.0));
    assert_eq!(m.lag_at_fault_seconds, Some(0.25));
    assert_eq!(m.max_lag_seconds, Some(1.5));

    // Without a fault time: from the start of the largest outage.
    let l2 = {
        let mut l = ledger(300, 10..20);
        l.retain(|e| !(200..260).contains(&e.id)); // 1.2 s silence, larger
        l
    };
    let m = measure(&l2, &[], None);
    let o = m.outage.clone().unwrap();
    assert_eq!((o.from_ms, o.to_ms), (199 * 20 + 3, 260 * 20 + 3));
    assert_eq!(m.rto_seconds, Some(1.22));
    assert_eq!(m.outages, 2);
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<i64> = (1..=100).collect();
    assert_eq!(percentile(&v, 50.0), Some(50.0));
    assert_eq!(percentile(&v, 99.0), Some(99.0));
    assert_eq!(percentile(&[7], 99.0), Some(7.0));
    assert_eq!(percentile(&[], 50.0), None);
}

#[test]
fn a_recovery_must_hold_for_min_gap() {
    // Write 50 (sent at 1000) dies with the server at ~1010; write 49, sent before it,
    // is acknowledged at 1004, after 50 was sent: by time, 50's failure comes first.
    let mut l = ledger(100, 50..70);
    l[48].done_ms = Some(1004);
    let split = outages(&l, Duration::ZERO);
    assert_eq!(split.len(), 2, "{split:#?}");
    let one = outages(&l, Duration::from_secs(1));
    assert_eq!(one.len(), 1, "{one:#?}");
    assert_eq!((one[0].from_ms, one[0].to_ms), (48 * 20 + 3, 70 * 20 + 3));
    assert_eq!(one[0].failed + one[0].unknown, 20);
    assert_eq!(one[0].first_error.as_deref(), Some("refused 50"));
    // Two failure runs 1.2 s apart stay two.
    let l = ledger(200, 20..30);
    let mut l2 = l.clone();
    for e in l2.iter_mut().filter(|e| (90..95).contains(&e.id)) {
        *e = w(e.id, Outcome::Failed, 1);
    }
    assert_eq!(outages(&l2, Duration::from_secs(1)).len(), 2);
}
