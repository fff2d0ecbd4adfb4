//! Scenario 3: a device that keeps failing is offered the job exactly its
//! attempt limit, then stays on the old image and is reported.

mod common;

use common::{assert_safe, run_scenario};
use syssync_sim::report::DeviceOffers;
use syssync_sim::sim::device_id;

#[test]
fn failing_device_gets_exactly_attempt_limit() {
    // Proves the attempt limit from both sides: offers counted on the wire and the owner's notice.
    let report = run_scenario(include_str!("../scenarios/failing-device.toml"), false);
    assert_safe(&report);

    let rollout = &report.rollouts[0];
    assert_eq!(
        rollout.attempt_limit_devices,
        vec![DeviceOffers {
            device: 3,
            offers: 3
        }]
    );
    assert_eq!(rollout.failed_attempt_limit, 1);
    assert_eq!(rollout.updated, 11);
    assert_eq!(report.running.get("v1.9.4"), Some(&1));
    assert_eq!(report.running.get("v1.10"), Some(&11));
    assert_eq!(rollout.server.failed, 1);
    assert_eq!(rollout.server.failed_attempts, 3);

    let failing = device_id(3).0;
    let notices: Vec<&str> = report
        .notifications
        .iter()
        .filter(|notification| notification.device == Some(failing))
        .map(|notification| notification.kind.as_str())
        .collect();
    assert_eq!(
        notices,
        [
            "device-failed",
            "device-failed",
            "device-failed",
            "retry-limit-reached"
        ]
    );
}
