//! Scenario 6: 10,000 devices, 5 % of them losing power during their update,
//! 10 % frame loss, and one bad release among the good ones: no device is
//! bricked and every device converges to the last good release.
//!
//! It takes minutes, so it is ignored by `cargo test`; CI runs it with
//! `cargo test --release -p syssync-sim --test fleet_10k -- --ignored`.

mod common;

use common::{assert_safe, run_scenario};

#[test]
#[ignore = "takes minutes; CI runs it with --ignored in release mode"]
fn ten_thousand_devices_converge() {
    // Proves safety and convergence at fleet scale through a good, a bad and a good rollout.
    let report = run_scenario(include_str!("../scenarios/fleet-10k.toml"), false);
    assert_safe(&report);
    assert_eq!(report.devices, 10_000);

    assert!(report.power_cuts.download > 300, "{:?}", report.power_cuts);
    assert!(report.power_cuts.install > 300, "{:?}", report.power_cuts);

    let bad = &report.rollouts[1];
    assert!(!bad.healthy_release);
    assert_eq!(bad.updated, 0);
    assert!(bad.paused_s.is_some(), "the bad rollout did not pause");
    // The summary's failed column agrees with the server's count.
    assert_eq!(bad.failed_attempt_limit, u64::from(bad.server.failed));

    let last = &report.rollouts[2];
    assert_eq!(last.updated, 10_000);
    assert_eq!(report.running.get("v1.10.2"), Some(&10_000));
}
