//! Scripted rounds through the watcher's decision core.

use runbook_watcher::{
    Action, Config, ConfigError, Decision, Mode, Reading, ReplicaView, Round, Signal, State,
    Verdict, Veto, failover_finished, failover_started, observe, summary, worth_journaling,
};

/// 2025-03-01T14:03:00Z.
const T0: i64 = 1_740_837_780_000;
const SECOND: i64 = 1_000;

fn auto() -> Config {
    Config {
        mode: Mode::Auto,
        ..Config::default()
    }
}

fn good_replica() -> ReplicaView {
    ReplicaView {
        reachable: true,
        in_recovery: Some(true),
        receiving_from_primary: Some(false),
        lag_seconds: Some(2.0),
        detail: "replica-postgres-dev".into(),
    }
}

fn healthy() -> Vec<(Signal, Reading)> {
    Signal::ALL
        .iter()
        .map(|s| (*s, Reading::healthy("ok")))
        .collect()
}

/// Region loss as the runner sees it: probe, health check and alarm fail; the control
/// plane of the lost region cannot be asked.
fn outage() -> Vec<(Signal, Reading)> {
    vec![
        (Signal::Probe, Reading::failed("connect timeout after 2 s")),
        (
            Signal::HealthCheck,
            Reading::failed("3 of 3 checkers report failure"),
        ),
        (
            Signal::Alarm,
            Reading::failed("primary-cpu-credits-dev in ALARM"),
        ),
        (
            Signal::ControlPlane,
            Reading::unknown("DescribeDBInstances timed out"),
        ),
    ]
}

/// Only the runner's probe fails (the runner's own network, say).
fn probe_only() -> Vec<(Signal, Reading)> {
    let mut r = healthy();
    r[0] = (Signal::Probe, Reading::failed("connection refused"));
    r
}

fn monitoring_down() -> Vec<(Signal, Reading)> {
    Signal::ALL
        .iter()
        .map(|s| (*s, Reading::unknown("monitoring API unreachable")))
        .collect()
}

/// A watcher driven one round per second, starting after the startup grace unless told.
struct Sim {
    cfg: Config,
    st: State,
    now: i64,
    decisions: Vec<Decision>,
}

impl Sim {
    fn new(cfg: Config) -> Sim {
        cfg.validate().expect("test config is valid");
        let now = T0 + cfg.startup_grace_ms;
        Sim {
            cfg,
            st: State::new(T0),
            now,
            decisions: Vec::new(),
        }
    }

    fn round_with(&mut self, readings: Vec<(Signal, Reading)>, replica: ReplicaView) -> Decision {
        self.round_full(Round {
            at_ms: self.now,
            readings,
            replica,
            lever_engaged: false,
            environment_busy: None,
        })
    }

    fn round_full(&mut self, mut round: Round) -> Decision {
        round.at_ms = self.now;
        let d = observe(&self.cfg, &mut self.st, &round);
        self.now += SECOND;
        self.decisions.push(d.clone());
        d
    }

    fn round(&mut self, readings: Vec<(Signal, Reading)>) -> Decision {
        self.round_with(readings, good_replica())
    }

    fn actions(&self) -> Vec<Action> {
        self.decisions.iter().map(|d| d.action).collect()
    }

    /// Runs an outage until the first decision with verdict Failed and returns it.
    fn until_failed(&mut self) -> Decision {
        for _ in 0..self.cfg.failed_rounds {
            let d = self.round(outage());
            if d.verdict == Verdict::Failed {
                return d;
            }
        }
        panic!(
            "no failed verdict after {} outage rounds",
            self.cfg.failed_rounds
        );
    }
}

fn has_reason(d: &Decision, needle: &str) -> bool {
    d.reasons.iter().any(|r| r.contains(needle))
}

#[test]
fn defaults_are_valid_and_as_documented() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(c.mode, Mode::Notify);
    assert_eq!(c.failed_rounds, 3);
    assert_eq!(c.min_failed_signals, 2);
    assert_eq!(c.startup_grace_ms, 30_000);
    assert_eq!(c.cooldown_ms, 3_600_000);
    assert_eq!(c.max_failovers_per_cooldown, 1);
    assert_eq!(c.max_lag_seconds, 60.0);
}

#[test]
fn validate_refuses_unsafe_settings_with_stable_codes() {
    let bad = [
        (
            Config {
                failed_rounds: 0,
                ..Config::default()
            },
            "watcher.failed_rounds_zero",
        ),
        (
            Config {
                min_failed_signals: 0,
                ..Config::default()
            },
            "watcher.min_failed_signals_out_of_range",
        ),
        (
            Config {
                min_failed_signals: 5,
                ..Config::default()
            },
            "watcher.min_failed_signals_out_of_range",
        ),
        (
            Config {
                max_failovers_per_cooldown: 0,
                ..Config::default()
            },
            "watcher.max_failovers_zero",
        ),
        (
            Config {
                cooldown_ms: -1,
                ..Config::default()
            },
            "watcher.negative_duration",
        ),
        (
            Config {
                startup_grace_ms: -1,
                ..Config::default()
            },
            "watcher.negative_duration",
        ),
        (
            Config {
                max_lag_seconds: f64::NAN,
                ..Config::default()
            },
            "watcher.bad_max_lag",
        ),
        (
            Config {
                max_lag_seconds: -1.0,
                ..Config::default()
            },
            "watcher.bad_max_lag",
        ),
    ];
    for (cfg, code) in bad {
        let err = cfg.validate().expect_err(code);
        assert_eq!(err.code(), code, "{err}");
    }
    let single = Config {
        min_failed_signals: 1,
        ..Config::default()
    };
    single.validate().unwrap();
    assert_eq!(
        Config {
            min_failed_signals: 7,
            ..Config::default()
        }
        .validate(),
        Err(ConfigError::MinFailedSignalsOutOfRange(7))
    );
}

#[test]
fn config_fills_defaults_and_refuses_unknown_fields() {
    let c: Config = serde_json::from_str(r#"{"mode":"dry-run","failed_rounds":5}"#).unwrap();
    assert_eq!(c.mode, Mode::DryRun);
    assert_eq!(c.failed_rounds, 5);
    assert_eq!(c.cooldown_ms, Config::default().cooldown_ms);
    assert!(serde_json::from_str::<Config>(r#"{"failed_round":5}"#).is_err());
}

#[test]
fn real_outage_fails_over_after_n_rounds() {
    let mut sim = Sim::new(auto());
    for _ in 0..5 {
        assert_eq!(sim.round(healthy()).verdict, Verdict::Healthy);
    }
    let d1 = sim.round(outage());
    let d2 = sim.round(outage());
    let d3 = sim.round(outage());
    assert_eq!(
        (d1.verdict, d1.action, d1.consecutive_failed),
        (Verdict::Suspect, Action::None, 1)
    );
    assert_eq!(
        (d2.verdict, d2.action, d2.consecutive_failed),
        (Verdict::Suspect, Action::None, 2)
    );
    assert_eq!(
        (d3.verdict, d3.action, d3.consecutive_failed),
        (Verdict::Failed, Action::Failover, 3)
    );
    assert_eq!(
        d3.failed_signals,
        vec![Signal::Probe, Signal::HealthCheck, Signal::Alarm]
    );
    assert_eq!(d3.unknown_signals, vec![Signal::ControlPlane]);
    assert!(d3.vetoes.is_empty());
    assert!(has_reason(&d3, "probe failed: connect timeout"));
    assert!(has_reason(&d3, "3 consecutive failed rounds"));
    // Detection took failed_rounds rounds at a 1 s interval.
    assert_eq!(d3.at_ms - d1.at_ms, 2 * SECOND);
}

#[test]
fn one_failed_round_never_fails_over() {
    let mut sim = Sim::new(auto());
    for _ in 0..50 {
        sim.round(outage());
        sim.round(healthy());
    }
    assert!(sim.actions().iter().all(|a| *a == Action::None));
    assert!(sim.decisions.iter().all(|d| d.consecutive_failed <= 1));
}

#[test]
fn one_signal_failing_for_100_rounds_never_fails_over() {
    let mut sim = Sim::new(auto());
    for _ in 0..100 {
        let d = sim.round(probe_only());
        assert_eq!(d.verdict, Verdict::Suspect);
        assert_eq!(d.consecutive_failed, 0);
        assert_eq!(d.action, Action::None);
    }
    assert!(has_reason(
        sim.decisions.last().unwrap(),
        "only 1 signal(s) failed"
    ));
}

#[test]
fn monitoring_api_down_for_100_rounds_never_fails_over() {
    let mut sim = Sim::new(auto());
    for _ in 0..100 {
        let d = sim.round(monitoring_down());
        assert_eq!(d.verdict, Verdict::Unknown);
        assert_eq!(d.action, Action::None);
        assert_eq!(d.unknown_signals.len(), 4);
    }
    // No readings at all is the same: nothing known.
    let d = sim.round(Vec::new());
    assert_eq!((d.verdict, d.action), (Verdict::Unknown, Action::None));
}

#[test]
fn blips_of_one_or_two_rounds_never_fail_over_with_defaults() {
    let mut sim = Sim::new(auto());
    for blip in [1, 2, 1, 2, 2, 1] {
        for _ in 0..blip {
            sim.round(outage());
        }
        for _ in 0..3 {
            sim.round(healthy());
        }
    }
    assert!(sim.actions().iter().all(|a| *a == Action::None));
    assert_eq!(sim.st.consecutive_failed, 0);
}

#[test]
fn a_partly_failed_round_resets_the_streak() {
    let mut sim = Sim::new(auto());
    sim.round(outage());
    sim.round(outage());
    let d = sim.round(probe_only());
    assert_eq!((d.verdict, d.consecutive_failed), (Verdict::Suspect, 0));
    assert!(has_reason(&d, "streak of 2 reset"));
    assert_eq!(sim.round(outage()).consecutive_failed, 1);
    assert_eq!(sim.round(outage()).action, Action::None);
    assert_eq!(sim.round(outage()).action, Action::Failover);
}

#[test]
fn unknown_rounds_hold_the_streak_but_never_fail_over_themselves() {
    let mut sim = Sim::new(auto());
    sim.round(outage());
    sim.round(outage());
    for _ in 0..10 {
        let d = sim.round(monitoring_down());
        assert_eq!(
            (d.verdict, d.action, d.consecutive_failed),
            (Verdict::Unknown, Action::None, 2)
        );
        assert!(has_reason(&d, "held at 2"));
    }
    // Reaching the threshold needs a fresh round of agreeing failures.
    let d = sim.round(outage());
    assert_eq!((d.verdict, d.action), (Verdict::Failed, Action::Failover));
}

#[test]
fn duplicate_readings_of_one_signal_count_once_and_healthy_wins() {
    let mut sim = Sim::new(Config {
        min_failed_signals: 2,
        ..auto()
    });
    // Two failed probes are one signal: never two.
    let two_probes = vec![
        (Signal::Probe, Reading::failed("from runner a")),
        (Signal::Probe, Reading::failed("from runner b")),
        (Signal::HealthCheck, Reading::healthy("ok")),
    ];
    for _ in 0..5 {
        let d = sim.round(two_probes.clone());
        assert_eq!(d.failed_signals, vec![Signal::Probe]);
        assert_eq!((d.verdict, d.action), (Verdict::Suspect, Action::None));
    }
    // One healthy probe among failed ones: the probe signal is healthy.
    let conflicting = vec![
        (Signal::Probe, Reading::failed("from runner a")),
        (Signal::Probe, Reading::healthy("from runner b")),
        (Signal::HealthCheck, Reading::failed("failing")),
    ];
    let d = sim.round(conflicting);
    assert_eq!(d.failed_signals, vec![Signal::HealthCheck]);
    assert_eq!(d.consecutive_failed, 0);
}

fn vetoed_with(replica: ReplicaView) -> Decision {
    let mut sim = Sim::new(auto());
    sim.round_with(outage(), replica.clone());
    sim.round_with(outage(), replica.clone());
    let d = sim.round_with(outage(), replica);
    assert_eq!(d.verdict, Verdict::Failed);
    assert_eq!(d.action, Action::Notify, "{d:#?}");
    d
}

#[test]
fn replica_still_receiving_wal_vetoes() {
    let d = vetoed_with(ReplicaView {
        receiving_from_primary: Some(true),
        ..good_replica()
    });
    assert_eq!(d.vetoes, vec![Veto::ReplicaReceivingWal]);
    assert!(has_reason(&d, "watcher is the one cut off"));
}

#[test]
fn replica_lagging_beyond_the_guard_vetoes() {
    let d = vetoed_with(ReplicaView {
        lag_seconds: Some(75.5),
        ..good_replica()
    });
    assert_eq!(
        d.vetoes,
        vec![Veto::ReplicaLagging {
            lag_seconds: 75.5,
            max: 60.0
        }]
    );
    assert!(has_reason(&d, "lag 75.5 s exceeds the guard of 60 s"));
    // At the guard exactly is allowed.
    let mut sim = Sim::new(auto());
    let at_guard = ReplicaView {
        lag_seconds: Some(60.0),
        ..good_replica()
    };
    sim.round_with(outage(), at_guard.clone());
    sim.round_with(outage(), at_guard.clone());
    assert_eq!(sim.round_with(outage(), at_guard).action, Action::Failover);
}

#[test]
fn replica_unreachable_vetoes() {
    let d = vetoed_with(ReplicaView {
        reachable: false,
        in_recovery: None,
        receiving_from_primary: None,
        lag_seconds: None,
        detail: "connect timeout".into(),
    });
    assert_eq!(d.vetoes, vec![Veto::ReplicaUnreachable]);
    assert!(has_reason(&d, "unreachable (connect timeout)"));
}

#[test]
fn replica_not_in_recovery_vetoes() {
    let d = vetoed_with(ReplicaView {
        in_recovery: Some(false),
        receiving_from_primary: Some(false),
        ..good_replica()
    });
    assert_eq!(d.vetoes, vec![Veto::ReplicaNotInRecovery]);
}

#[test]
fn unreadable_replica_state_vetoes() {
    let d = vetoed_with(ReplicaView {
        in_recovery: None,
        receiving_from_primary: None,
        lag_seconds: Some(f64::NAN),
        ..good_replica()
    });
    let fields: Vec<_> = d
        .vetoes
        .iter()
        .map(|v| match v {
            Veto::ReplicaStateUnknown { field } => field.as_str(),
            other => panic!("unexpected veto {other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        ["in_recovery", "receiving_from_primary", "lag_seconds"]
    );
}

#[test]
fn engaged_lever_notifies_instead_of_failing_over() {
    let mut sim = Sim::new(auto());
    let mut last = None;
    for _ in 0..3 {
        last = Some(sim.round_full(Round {
            at_ms: 0,
            readings: outage(),
            replica: good_replica(),
            lever_engaged: true,
            environment_busy: None,
        }));
    }
    let d = last.unwrap();
    assert_eq!((d.verdict, d.action), (Verdict::Failed, Action::Notify));
    assert_eq!(d.vetoes, vec![Veto::LeverEngaged]);
    assert!(has_reason(&d, "safety lever is engaged"));
}

#[test]
fn startup_grace_notifies_then_allows_failover() {
    let cfg = auto();
    let mut st = State::new(T0);
    let round = |at_ms| Round {
        at_ms,
        readings: outage(),
        replica: good_replica(),
        lever_engaged: false,
        environment_busy: None,
    };
    let mut d = observe(&cfg, &mut st, &round(T0));
    for s in 1..3 {
        d = observe(&cfg, &mut st, &round(T0 + s * SECOND));
    }
    assert_eq!((d.verdict, d.action), (Verdict::Failed, Action::Notify));
    assert_eq!(
        d.vetoes,
        vec![Veto::StartupGrace {
            until_ms: T0 + 30_000
        }]
    );
    assert!(
        has_reason(
            &d,
            "started 2 s ago; no automatic failover before 14:03:30Z"
        ),
        "{:?}",
        d.reasons
    );
    let d = observe(&cfg, &mut st, &round(T0 + 30_000));
    assert_eq!(d.action, Action::Failover);
}

#[test]
fn cooldown_allows_one_automatic_failover_per_hour_then_notifies() {
    let mut sim = Sim::new(auto());
    let d = sim.until_failed();
    assert_eq!(d.action, Action::Failover);
    let started = sim.now;
    failover_started(&mut sim.st, "exec-1", started);
    assert!(failover_finished(
        &mut sim.st,
        "exec-1",
        true,
        started + 90 * SECOND
    ));
    assert_eq!(sim.st.consecutive_failed, 0);

    // The new primary fails 10 minutes later: inside the hour, humans are told.
    sim.now = started + 600 * SECOND;
    let d = sim.until_failed();
    assert_eq!(d.action, Action::Notify);
    assert_eq!(
        d.vetoes,
        vec![Veto::Cooldown {
            until_ms: started + 3_600_000
        }]
    );
    let expected = format!(
        "cooldown: 1 automatic failover in the last 60 min (until {})",
        "15:03:33Z"
    );
    assert_eq!(
        started,
        T0 + 33 * SECOND,
        "sim timing changed; update the expected time"
    );
    assert!(has_reason(&d, &expected), "{:?}", d.reasons);

    // After the hour, the budget is back.
    sim.now = started + 3_600_000;
    assert_eq!(sim.round(outage()).action, Action::Failover);
}

#[test]
fn cooldown_budget_of_two() {
    let mut sim = Sim::new(Config {
        max_failovers_per_cooldown: 2,
        ..auto()
    });
    let mut starts = Vec::new();
    for i in 0..2 {
        assert_eq!(sim.until_failed().action, Action::Failover);
        let id = format!("exec-{i}");
        starts.push(sim.now);
        failover_started(&mut sim.st, &id, sim.now);
        failover_finished(&mut sim.st, &id, true, sim.now);
        sim.now += 60 * SECOND;
    }
    let d = sim.until_failed();
    assert_eq!(d.action, Action::Notify);
    // Frees up when the older of the two leaves the window.
    assert_eq!(
        d.vetoes,
        vec![Veto::Cooldown {
            until_ms: starts[0] + 3_600_000
        }]
    );
    assert!(has_reason(&d, "2 automatic failovers in the last 60 min"));
}

#[test]
fn a_failed_failover_still_counts_against_the_cooldown() {
    let mut sim = Sim::new(auto());
    sim.until_failed();
    failover_started(&mut sim.st, "exec-1", sim.now);
    assert!(failover_finished(
        &mut sim.st,
        "exec-1",
        false,
        sim.now + 30 * SECOND
    ));
    // The same primary is still down: no retry loop, a notification.
    let d = sim.until_failed();
    assert_eq!(d.action, Action::Notify);
    assert!(matches!(d.vetoes.as_slice(), [Veto::Cooldown { .. }]));
}

#[test]
fn in_flight_failover_waits_and_never_retriggers() {
    let mut sim = Sim::new(auto());
    assert_eq!(sim.until_failed().action, Action::Failover);
    failover_started(&mut sim.st, "exec-1", sim.now);
    for _ in 0..20 {
        let d = sim.round(outage());
        assert_eq!(d.action, Action::Wait);
        assert!(has_reason(&d, "waiting for failover execution exec-1"));
    }
    // Waiting holds whatever the primary looks like.
    assert_eq!(sim.round(healthy()).action, Action::Wait);
    // Another id does not end the wait.
    assert!(!failover_finished(&mut sim.st, "exec-2", true, sim.now));
    assert_eq!(sim.st.in_flight.as_deref(), Some("exec-1"));
    assert!(failover_finished(&mut sim.st, "exec-1", true, sim.now));
    assert_eq!(
        (sim.st.in_flight.as_deref(), sim.st.consecutive_failed),
        (None, 0)
    );
    assert_eq!(sim.round(healthy()).action, Action::None);
}

#[test]
fn busy_environment_waits() {
    let mut sim = Sim::new(auto());
    let busy = |sim: &mut Sim, readings| {
        sim.round_full(Round {
            at_ms: 0,
            readings,
            replica: good_replica(),
            lever_engaged: false,
            environment_busy: Some("gameday-42".into()),
        })
    };
    // Healthy while busy: nothing to hold back.
    assert_eq!(busy(&mut sim, healthy()).action, Action::None);
    let mut d = busy(&mut sim, outage());
    for _ in 0..20 {
        d = busy(&mut sim, outage());
        assert_ne!(d.action, Action::Failover);
    }
    assert_eq!((d.verdict, d.action), (Verdict::Failed, Action::Wait));
    assert!(has_reason(&d, "execution gameday-42 holds the environment"));
    // Once released, a still-failed primary is failed over.
    assert_eq!(sim.round(outage()).action, Action::Failover);
}

#[test]
fn mode_decides_the_action_on_a_failed_primary() {
    for (mode, want) in [
        (Mode::Off, Action::None),
        (Mode::DryRun, Action::WouldFailover),
        (Mode::Notify, Action::Notify),
        (Mode::Auto, Action::Failover),
    ] {
        let mut sim = Sim::new(Config {
            mode,
            ..Config::default()
        });
        let d = sim.until_failed();
        assert_eq!(
            d.verdict,
            Verdict::Failed,
            "{mode:?}: verdict is computed in every mode"
        );
        assert_eq!(d.action, want, "{mode:?}");
        assert_eq!(d.mode, mode);
    }
}

#[test]
fn vetoed_failover_notifies_in_every_mode_but_off() {
    for (mode, want) in [
        (Mode::Off, Action::None),
        (Mode::DryRun, Action::Notify),
        (Mode::Notify, Action::Notify),
        (Mode::Auto, Action::Notify),
    ] {
        let mut sim = Sim::new(Config {
            mode,
            ..Config::default()
        });
        let lagging = ReplicaView {
            lag_seconds: Some(600.0),
            ..good_replica()
        };
        let mut d = sim.round_with(outage(), lagging.clone());
        for _ in 1..3 {
            d = sim.round_with(outage(), lagging.clone());
        }
        assert_eq!(d.action, want, "{mode:?}");
    }
}

#[test]
fn state_survives_a_restart_with_its_cooldown() {
    let mut sim = Sim::new(auto());
    sim.until_failed();
    let started = sim.now;
    failover_started(&mut sim.st, "exec-1", started);
    failover_finished(&mut sim.st, "exec-1", true, started + 60 * SECOND);
    sim.round(outage());

    let saved = serde_json::to_string(&sim.st).unwrap();
    let mut st: State = serde_json::from_str(&saved).unwrap();
    assert_eq!(st, sim.st);
    let restart = started + 300 * SECOND;
    st.resume(restart);
    assert_eq!((st.started_ms, st.consecutive_failed), (restart, 0));
    assert_eq!(st.failovers, vec![started]);

    let cfg = auto();
    let mut d = None;
    for s in 0..40 {
        let round = Round {
            at_ms: restart + s * SECOND,
            readings: outage(),
            replica: good_replica(),
            lever_engaged: false,
            environment_busy: None,
        };
        d = Some(observe(&cfg, &mut st, &round));
    }
    // After the new startup grace, the cooldown from before the restart still holds.
    let d = d.unwrap();
    assert_eq!(d.action, Action::Notify);
    assert_eq!(
        d.vetoes,
        vec![Veto::Cooldown {
            until_ms: started + 3_600_000
        }]
    );
}

#[test]
fn failover_history_is_bounded() {
    let mut st = State::new(T0);
    for i in 0..(State::MAX_FAILOVERS_KEPT as i64 + 10) {
        failover_started(&mut st, "x", T0 + i);
    }
    assert_eq!(st.failovers.len(), State::MAX_FAILOVERS_KEPT);
    assert_eq!(
        *st.failovers.last().unwrap(),
        T0 + State::MAX_FAILOVERS_KEPT as i64 + 9
    );
}

#[test]
fn decisions_are_deterministic() {
    let script = |sim: &mut Sim| {
        for r in [
            healthy(),
            outage(),
            probe_only(),
            monitoring_down(),
            outage(),
            outage(),
            outage(),
        ] {
            sim.round(r);
        }
    };
    let mut a = Sim::new(auto());
    let mut b = Sim::new(auto());
    script(&mut a);
    script(&mut b);
    assert_eq!(a.decisions, b.decisions);
    assert_eq!(a.decisions.last().unwrap().action, Action::Failover);
}

/// Which of `decisions` `serve` would journal, by index.
fn journaled(decisions: &[Decision]) -> Vec<usize> {
    (0..decisions.len())
        .filter(|i| worth_journaling(i.checked_sub(1).map(|p| &decisions[p]), &decisions[*i]))
        .collect()
}

#[test]
fn steady_states_are_journaled_once() {
    let mut sim = Sim::new(auto());
    for _ in 0..60 {
        sim.round(healthy());
    }
    assert_eq!(journaled(&sim.decisions), vec![0]);

    // A failed primary held back by a lagging replica whose lag keeps changing: the
    // streak, the verdict change and the veto are journaled, the repeats are not.
    let mut sim = Sim::new(auto());
    sim.round(healthy());
    for i in 0..30 {
        let replica = ReplicaView {
            lag_seconds: Some(100.0 + f64::from(i)),
            ..good_replica()
        };
        sim.round_with(outage(), replica);
    }
    assert_eq!(journaled(&sim.decisions), vec![0, 1, 2, 3]);
    assert_eq!(sim.decisions[3].action, Action::Notify);
}

#[test]
fn changes_that_matter_are_journaled() {
    let mut sim = Sim::new(auto());
    sim.round(healthy()); // 0 first
    sim.round(probe_only()); // 1 verdict suspect
    sim.round(probe_only()); // 2 same
    sim.round(monitoring_down()); // 3 verdict unknown
    let mut alarm_unknown = healthy();
    alarm_unknown[2] = (Signal::Alarm, Reading::unknown("GetMetricData throttled"));
    sim.round(alarm_unknown.clone()); // 4 verdict healthy
    sim.round(alarm_unknown); // 5 same
    sim.round(healthy()); // 6 unknown set changed
    sim.round(outage()); // 7 streak 1
    sim.round(outage()); // 8 streak 2
    sim.round(outage()); // 9 failover
    failover_started(&mut sim.st, "exec-1", sim.now);
    sim.round(outage()); // 10 wait
    sim.round(outage()); // 11 same
    assert_eq!(journaled(&sim.decisions), vec![0, 1, 3, 4, 6, 7, 8, 9, 10]);
    assert!(
        worth_journaling(Some(&sim.decisions[9]), &sim.decisions[9]),
        "a failover is always journaled"
    );
}

#[test]
fn summary_is_one_line_with_verdict_action_and_vetoes() {
    let mut sim = Sim::new(auto());
    let d = sim.until_failed();
    let s = summary(&d);
    assert_eq!(
        s,
        "watcher[auto]: primary failed (3 consecutive failed rounds; failed: probe, health-check, alarm; unknown: control-plane) -> failover"
    );
    failover_started(&mut sim.st, "exec-1", sim.now);
    failover_finished(&mut sim.st, "exec-1", true, sim.now);
    let d = sim.until_failed();
    let s = summary(&d);
    assert!(
        s.ends_with("-> notify (vetoed: cooldown until 15:03:33Z)"),
        "{s}"
    );
    assert!(!s.contains('\n'));
    let h = summary(&sim.round(healthy()));
    assert_eq!(h, "watcher[auto]: primary healthy -> none");
}

#[test]
fn decision_json_carries_the_evidence() {
    let mut sim = Sim::new(auto());
    let d = sim.round_with(
        outage(),
        ReplicaView {
            lag_seconds: Some(90.0),
            ..good_replica()
        },
    );
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["verdict"], "suspect");
    assert_eq!(v["action"], "none");
    assert_eq!(v["mode"], "auto");
    assert_eq!(
        v["failed_signals"],
        serde_json::json!(["probe", "health-check", "alarm"])
    );
    assert_eq!(v["evidence"]["readings"][0]["signal"], "probe");
    assert_eq!(v["evidence"]["readings"][0]["reading"], "failed");
    assert_eq!(
        v["evidence"]["readings"][3]["detail"],
        "DescribeDBInstances timed out"
    );
    assert_eq!(v["evidence"]["replica"]["lag_seconds"], 90.0);
    assert_eq!(v["evidence"]["failed_rounds"], 3);
    let back: Decision = serde_json::from_value(v).unwrap();
    assert_eq!(back, d);

    let vetoes = serde_json::to_value(vec![
        Veto::Cooldown { until_ms: 5 },
        Veto::ReplicaReceivingWal,
    ])
    .unwrap();
    assert_eq!(
        vetoes,
        serde_json::json!([{"veto": "cooldown", "until_ms": 5}, {"veto": "replica-receiving-wal"}])
    );
    let reading = serde_json::to_value(Reading::unknown("no data")).unwrap();
    assert_eq!(
        reading,
        serde_json::json!({"reading": "unknown", "detail": "no data"})
    );
}
