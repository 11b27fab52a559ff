//! Observed RPO: how much acknowledged history the recovered database does not have,
//! in seconds, from the client's ledger and its read-back.
//!
//! Definition (the README's "Game days" section repeats it):
//!
//! * Only **acknowledged** writes count (a failed or unknown-outcome write was never
//!   promised to anyone). Each is *lost* when the read-back did not find it, otherwise it
//!   *survived*.
//! * The **recovery point** is the acknowledgement time of the newest surviving write
//!   acknowledged no later than the oldest lost one: the database is whole up to there.
//!   With no such write (the very first acknowledged write was lost), it is the send time
//!   of the oldest lost write.
//! * **RPO** = acknowledgement time of the newest lost write − the recovery point: the
//!   span of acknowledged history that is gone (writes that survived inside that span, on
//!   other connections, do not shorten it). 0 when nothing was lost.
//!
//! The report's `rpo_seconds` is this figure when the session was verified (read back),
//! and `null` when it was not (nothing to say); a verified run that lost nothing has an
//! RPO of 0 and is judged against an RPO target like any other.

/// One acknowledged write of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckedWrite {
    pub sent_ms: i64,
    pub acked_ms: i64,
    /// Read back after the game day.
    pub survived: bool,
}

/// The observed RPO of `writes` in seconds (see the module docs); 0 when none was lost.
pub fn observed_rpo_seconds(writes: &[AckedWrite]) -> f64 {
    let lost = writes.iter().filter(|w| !w.survived);
    let Some(oldest) = lost.clone().min_by_key(|w| (w.acked_ms, w.sent_ms)) else {
        return 0.0;
    };
    let newest_ack = lost.map(|w| w.acked_ms).max().unwrap_or(oldest.acked_ms);
    let recovery_point = writes
        .iter()
        .filter(|w| w.survived && w.acked_ms <= oldest.acked_ms)
        .map(|w| w.acked_ms)
        .max()
        .unwrap_or(oldest.sent_ms);
    (newest_ack - recovery_point).max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes every 20 ms acknowledged 5 ms after sending; `lost` picks the lost ones.
    fn ledger(n: i64, lost: impl Fn(i64) -> bool) -> Vec<AckedWrite> {
        (0..n)
            .map(|i| AckedWrite {
                sent_ms: 1_000 + i * 20,
                acked_ms: 1_005 + i * 20,
                survived: !lost(i),
            })
            .collect()
    }

    #[test]
    fn nothing_lost_is_zero() {
        assert_eq!(observed_rpo_seconds(&ledger(100, |_| false)), 0.0);
        assert_eq!(observed_rpo_seconds(&[]), 0.0);
    }

    #[test]
    fn a_lost_tail_spans_from_the_last_survivor_to_the_newest_loss() {
        // Region loss with 0.5 s of lag: the last 25 acknowledged writes are gone.
        let w = ledger(100, |i| i >= 75);
        // Last survivor acked at 1005 + 74·20; newest loss at 1005 + 99·20.
        assert_eq!(observed_rpo_seconds(&w), 0.5);
    }

    #[test]
    fn one_lost_write_costs_the_gap_to_its_predecessor() {
        let w = ledger(10, |i| i == 9);
        assert_eq!(observed_rpo_seconds(&w), 0.02);
    }

    #[test]
    fn survivors_inside_the_window_do_not_shorten_it() {
        // Split brain: the old primary kept acknowledging some writes that the new one
        // never saw, interleaved with writes that did reach the new one.
        let w = ledger(100, |i| (50..90).contains(&i) && i % 2 == 0);
        // Recovery point: write 49; newest loss: write 88.
        assert_eq!(observed_rpo_seconds(&w), ((88 - 49) * 20) as f64 / 1000.0);
    }

    #[test]
    fn losing_everything_counts_from_the_first_send() {
        let w = ledger(3, |_| true);
        // Sent at 1000, the last acked at 1045.
        assert_eq!(observed_rpo_seconds(&w), 0.045);
    }

    #[test]
    fn order_of_the_ledger_does_not_matter() {
        let mut w = ledger(100, |i| i >= 75);
        w.reverse();
        assert_eq!(observed_rpo_seconds(&w), 0.5);
    }
}
