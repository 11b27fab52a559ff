//! Client ledger entries → per-interval buckets for the write chart.

use crate::model::Bucket;

/// Groups writes into contiguous buckets of `bucket_ms` (empty intervals included, so an
/// outage shows as zeros rather than as a gap the chart would bridge).
///
/// Each entry is `(sent_ms, done_ms, outcome)` with outcome `acked`, `failed` or `unknown`;
/// a write counts in the bucket of the instant the client learned its outcome (`done_ms`,
/// or `sent_ms` when it never did). Other outcomes (reads' `ok`) are ignored.
/// `p50_latency_ms` is the median `done - sent` of the bucket's acknowledged writes.
///
/// # Panics
/// If `bucket_ms <= 0`.
pub fn buckets(entries: &[(i64, Option<i64>, &str)], bucket_ms: i64) -> Vec<Bucket> {
    assert!(bucket_ms > 0, "bucket_ms must be positive");
    let at = |&(sent, done, _): &(i64, Option<i64>, &str)| done.unwrap_or(sent);
    let counted = || {
        entries
            .iter()
            .filter(|e| matches!(e.2, "acked" | "failed" | "unknown"))
    };
    let (Some(min), Some(max)) = (counted().map(at).min(), counted().map(at).max()) else {
        return Vec::new();
    };
    let first = min.div_euclid(bucket_ms);
    let n = (max.div_euclid(bucket_ms) - first + 1) as usize;
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            t_ms: (first + i as i64) * bucket_ms,
            ..Bucket::default()
        })
        .collect();
    let mut latencies: Vec<Vec<i64>> = vec![Vec::new(); n];
    for e in counted() {
        let i = (at(e).div_euclid(bucket_ms) - first) as usize;
        let b = &mut out[i];
        match e.2 {
            "acked" => {
                b.acked += 1;
                if let Some(done) = e.1 {
                    latencies[i].push(done - e.0);
                }
            }
            "failed" => b.failed += 1,
            _ => b.unknown += 1,
        }
    }
    for (b, mut l) in out.iter_mut().zip(latencies) {
        b.p50_latency_ms = median(&mut l);
    }
    out
}

fn median(v: &mut [i64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid] as f64
    } else {
        (v[mid - 1] + v[mid]) as f64 / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_gives_no_buckets() {
        assert!(buckets(&[], 1000).is_empty());
        assert!(buckets(&[(5, Some(6), "ok")], 1000).is_empty());
    }

    #[test]
    fn counts_by_completion_time_and_fills_gaps() {
        let entries = [
            (1_000, Some(1_010), "acked"),
            (1_500, Some(1_530), "acked"),
            (1_900, Some(2_100), "acked"), // completes in the second bucket
            (2_200, None, "unknown"),      // never completed: counted when sent
            (4_100, Some(4_200), "failed"),
            (4_300, Some(4_900), "ok"), // a read: ignored
        ];
        let b = buckets(&entries, 1000);
        let t: Vec<i64> = b.iter().map(|b| b.t_ms).collect();
        assert_eq!(t, vec![1_000, 2_000, 3_000, 4_000]);
        assert_eq!((b[0].acked, b[0].failed, b[0].unknown), (2, 0, 0));
        assert_eq!(b[0].p50_latency_ms, Some(20.0)); // median of 10 and 30
        assert_eq!((b[1].acked, b[1].unknown), (1, 1));
        assert_eq!(b[1].p50_latency_ms, Some(200.0));
        assert_eq!(
            b[2],
            Bucket {
                t_ms: 3_000,
                ..Bucket::default()
            }
        );
        assert_eq!((b[3].acked, b[3].failed), (0, 1));
        assert_eq!(b[3].p50_latency_ms, None);
    }

    #[test]
    fn negative_times_floor_into_the_right_bucket() {
        let b = buckets(&[(-1, Some(-1), "acked"), (0, Some(0), "acked")], 1000);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].t_ms, b[0].acked), (-1000, 1));
        assert_eq!((b[1].t_ms, b[1].acked), (0, 1));
    }

    #[test]
    fn totals_are_preserved() {
        let entries: Vec<(i64, Option<i64>, &str)> = (0..1000)
            .map(|i| {
                let outcome = ["acked", "acked", "failed", "unknown"][i % 4];
                (i as i64 * 37, Some(i as i64 * 37 + 5), outcome)
            })
            .collect();
        let b = buckets(&entries, 250);
        let acked: u64 = b.iter().map(|b| b.acked).sum();
        let failed: u64 = b.iter().map(|b| b.failed).sum();
        let unknown: u64 = b.iter().map(|b| b.unknown).sum();
        assert_eq!((acked, failed, unknown), (500, 250, 250));
        assert!(b.windows(2).all(|w| w[1].t_ms - w[0].t_ms == 250));
    }
}
