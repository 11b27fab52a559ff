//! Pure decision core of `runbook serve`'s automatic failover watcher.
//!
//! `serve` gathers signals about the primary every `interval`, hands them to
//! [`observe`] as a [`Round`], journals the returned [`Decision`] (verdict, action,
//! reasons, vetoes and the round as evidence) when [`worth_journaling`] says so, and
//! starts `failover.yaml` on [`Action::Failover`]. This crate does no I/O and reads no
//! clock: the round's `at_ms` is "now", so every decision is reproducible from the
//! journal. The rules follow Patroni / pg_auto_failover / repmgrd (several rounds, a
//! replica that must be a healthy, caught-up standby, never fail over what you merely
//! cannot see) and Route 53 ARC's anti-flapping (a failover budget per window, a safety
//! lever that stops automation).
//!
//! # Judging the primary
//!
//! Four independent [`Signal`]s: `probe` (PostgreSQL from the runner), `health-check`
//! (the provider's health check), `alarm`, `control-plane` (the instance status the
//! provider reports). Each reads [`Reading::Healthy`], [`Reading::Failed`] or
//! [`Reading::Unknown`]. *Unknown* is what "cannot reach the monitoring API", a timeout
//! or "no data" must be: it counts neither as failed nor as healthy, so an outage of the
//! monitoring itself can never cause a failover. Several readings of one signal are
//! merged with any Healthy winning (one sign of life is enough to doubt).
//!
//! Each round is classified (the [`Verdict`] is what the decision reports):
//!
//! | round | count of consecutive failed rounds | verdict |
//! |---|---|---|
//! | ≥ `min_failed_signals` signals Failed | +1 | `failed` once the count reaches `failed_rounds`, else `suspect` |
//! | 1 .. `min_failed_signals`-1 signals Failed | reset to 0 | `suspect` |
//! | no Failed, at least one Healthy | reset to 0 | `healthy` |
//! | every signal Unknown (or none given) | unchanged | `unknown` |
//!
//! The reset on a partly failed round is Patroni's rule: the rounds must be consecutive
//! *and* agree across signals, so one signal failing for 100 rounds never fails over,
//! and neither does a 1-round blip. An all-Unknown round holds the count rather than
//! resetting it — it is no evidence either way — and can never itself produce `failed`;
//! the next round still needs its own agreeing failures.
//!
//! # From verdict to action
//!
//! In this order:
//! 1. mode `off`: [`Action::None`] (the verdict and count are still computed and
//!    journaled, so switching the mode on mid-incident starts from the truth);
//! 2. a failover the watcher started is in flight ([`State::in_flight`]): [`Action::Wait`],
//!    whatever the verdict;
//! 3. verdict not `failed`: [`Action::None`];
//! 4. another execution holds the environment ([`Round::environment_busy`], e.g. a
//!    failover or a game day that killed the primary on purpose): [`Action::Wait`];
//! 5. vetoes ([`Veto`]), all listed, each with a reason sentence:
//!    the replica is unreachable, not in recovery, still receiving WAL from the primary
//!    (the primary is alive; the watcher is the one cut off), lagging beyond
//!    `max_lag_seconds`, or a field needed to check this could not be read; the safety
//!    lever is engaged; the cooldown budget is spent; the startup grace is running;
//! 6. by mode: no veto → `auto`: [`Action::Failover`], `dry-run`: [`Action::WouldFailover`],
//!    `notify`: [`Action::Notify`]; any veto → [`Action::Notify`] (dry-run reports what
//!    auto would do, and auto held back tells humans).
//!
//! # The failover's life cycle
//!
//! On [`Action::Failover`], `serve` creates the `failover.yaml` execution and calls
//! [`failover_started`] (this records the start for the cooldown and makes the watcher
//! wait). When the execution ends, `serve` calls [`failover_finished`], which resets the
//! failed-round count. After a success `serve` re-targets the watcher at the new
//! topology (the promoted replica is the primary to watch) before the next round; after
//! a failure the attempt still counts against the cooldown, so the watcher notifies
//! instead of retrying in a loop.
//!
//! `serve` persists the [`State`] (it is `Serialize`/`Deserialize`) with the journal; on
//! restart it loads it and calls [`State::resume`], which restarts the startup grace and
//! forgets the stale streak but keeps the cooldown and `in_flight`.
//!
//! # Defaults and tuning ([`Config`])
//!
//! | field | default | why |
//! |---|---|---|
//! | `mode` | `notify` | automatic failover is opt-in |
//! | `failed_rounds` | 3 | at a 1 s interval, detection ≈ 3 s after the second signal agrees, while a blip of 1–2 rounds never counts |
//! | `min_failed_signals` | 2 | one signal can be wrong (the runner's own network, a flaky health checker); two independent ones rarely are together |
//! | `startup_grace_ms` | 30 000 | after a (re)start, alarm and health-check states may predate the watcher; a human gets half a minute to see it |
//! | `cooldown_ms` | 3 600 000 | with `max_failovers_per_cooldown` 1: one automatic failover per hour, then notify only (ARC-style anti-flapping) |
//! | `max_failovers_per_cooldown` | 1 | a second failure within the hour is more likely a systemic problem than a second dead primary |
//! | `max_lag_seconds` | 60 | the RPO guard, same as `failover.yaml`'s `MaxLagSeconds` |
//!
//! Trade-off of `failed_rounds` × `interval`: the time to detect is roughly
//! `(the time the second-fastest signal takes to flip) + (failed_rounds - 1) × interval`
//! (+ the probe timeout); the longest blip tolerated is `failed_rounds - 1` rounds.
//! At a 1 s interval 3 rounds detects in about 3 s once two signals agree and tolerates
//! a 1 s blip even when it straddles two rounds; 2 would fail over on such a straddling
//! blip, 5 adds 2 s to every real outage. Slow signals (a CloudWatch alarm with 1-minute
//! periods, a health check with a 30 s interval) bound detection more than
//! `failed_rounds` does: choose fast ones (the probe plus a 10 s health check) for the two
//! that must agree.
//!
//! `serve` must compute [`ReplicaView::lag_seconds`] as the lag when the replica last
//! heard from the primary, not `now() - pg_last_xact_replay_timestamp()` (that grows
//! with the outage and with idle periods, and would veto every real failover).

mod config;
mod decide;
mod model;
mod text;

pub use config::{Config, ConfigError};
pub use decide::{failover_finished, failover_started, observe};
pub use model::{
    Action, Decision, Mode, Reading, ReplicaView, Round, Signal, State, Verdict, Veto,
};
pub use text::{summary, worth_journaling};
