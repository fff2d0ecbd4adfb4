//! Scenario 4: devices that come online after the rollout started, and
//! devices that join the group later, still get the release.

mod common;

use common::{assert_safe, run_scenario};

#[test]
fn late_devices_still_get_the_release() {
    // Proves that neither a late first check-in nor a late group membership leaves a device behind.
    let report = run_scenario(include_str!("../scenarios/late-devices.toml"), false);
    assert_safe(&report);

    let rollout = &report.rollouts[0];
    assert_eq!(
        rollout.targeted, 40,
        "the ten late members joined the group"
    );
    assert_eq!(rollout.updated, 40);
    assert_eq!(rollout.never_reached, 0);
    assert_eq!(report.running.get("v1.10"), Some(&40));
    // The last device updated well after the last device came online (hour 21).
    let completed = rollout.completed_s.expect("every device updated");
    assert!(completed > 10 * 3600, "completed at {completed} s");
}

#[test]
fn late_members_move_completion_time() {
    // Proves that "all updated at" is the time the last group member
    // updated: members that join after every earlier member had updated
    // make the rollout incomplete again until they update too.
    let text = include_str!("../scenarios/late-devices.toml")
        .replace("late_online_share = 0.25", "late_online_share = 0.0");
    assert_ne!(text, include_str!("../scenarios/late-devices.toml"));
    let report = run_scenario(&text, false);
    assert_safe(&report);

    let rollout = &report.rollouts[0];
    assert_eq!(rollout.updated, 40);
    let last_update = report
        .notifications
        .iter()
        .filter(|notice| notice.kind == "device-updated")
        .map(|notice| notice.at_s)
        .max()
        .expect("device-updated notices");
    let completed = rollout.completed_s.expect("every device updated");
    assert!(
        completed >= last_update,
        "all updated at {completed} s, last device-updated notice at {last_update} s"
    );
}
