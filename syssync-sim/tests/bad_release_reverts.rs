//! Scenario 2: a bad release (its application never passes its health check)
//! is reverted on every device that got it, the failure threshold pauses the
//! rollout after the first phase, and the owner is notified.

mod common;

use common::{assert_safe, run_scenario};

#[test]
fn bad_release_is_reverted_and_paused() {
    // Proves revert on every device that booted the bad image, the pause and the owner's notice.
    let report = run_scenario(include_str!("../scenarios/bad-release.toml"), false);
    assert_safe(&report);

    let rollout = &report.rollouts[0];
    assert!(
        rollout.got_release > 0,
        "no device installed the bad release"
    );
    assert_eq!(rollout.updated, 0);
    assert_eq!(
        rollout.reverted + rollout.failed_attempt_limit,
        rollout.got_release
    );
    assert_eq!(report.running.get("v1.9.4"), Some(&60));

    assert!(rollout.paused_s.is_some(), "the rollout did not pause");
    assert!(rollout.phase_opened_s[0].is_some());
    assert_eq!(rollout.phase_opened_s[1], None, "the second phase opened");
    assert!(
        rollout.server.admitted <= 6,
        "more than the first phase was admitted"
    );

    let paused = report
        .notifications
        .iter()
        .find(|notification| notification.kind == "rollout-paused")
        .expect("the owner was told that the rollout paused");
    assert_eq!(paused.account, 0);
    assert!(paused.wanted);
    assert!(report.notifications.iter().any(|notification| {
        notification.kind == "device-failed"
            && notification.cause.as_deref() == Some("reverted: application reported failure")
    }));

    // One notice per failed attempt: the summary names how many devices they
    // are about, which matches the devices the rollout table counts as
    // reverted or failed. A download dropped because the rollout paused is
    // not a failure and gets no notice.
    let failed: Vec<u64> = report
        .notifications
        .iter()
        .filter(|notification| notification.kind == "device-failed")
        .filter_map(|notification| notification.device)
        .collect();
    let devices: std::collections::BTreeSet<u64> = failed.iter().copied().collect();
    assert_eq!(
        devices.len() as u64,
        rollout.reverted + rollout.failed_attempt_limit
    );
    assert!(report
        .notifications
        .iter()
        .all(|notification| { notification.cause.as_deref() != Some("dropped by the device") }));
    if devices.len() != failed.len() {
        let line = format!("device-failed {} ({} devices)", failed.len(), devices.len());
        assert!(report.to_table().contains(&line), "{}", report.to_table());
    }
}
