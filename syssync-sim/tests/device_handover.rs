//! Scenario 5: a device sold to another account during a rollout keeps
//! working, is never ownerless, and from then on only its new owner sees it.

mod common;

use common::{assert_safe, run_scenario};
use syssync_sim::sim::device_id;

#[test]
fn handed_over_device_has_one_owner() {
    // Proves ownership checks at every server tick after the handover, and the device's continued check-ins.
    let report = run_scenario(include_str!("../scenarios/transfer.toml"), false);
    assert_safe(&report);

    assert_eq!(report.transfers.len(), 1);
    let transfer = &report.transfers[0];
    assert_eq!(transfer.device, 5);
    assert_eq!(transfer.from_account, 0);
    assert_eq!(transfer.to_account, 1);
    assert!(transfer.never_ownerless);
    assert!(!transfer.visible_to_old_owner);
    assert!(transfer.visible_to_new_owner);
    assert!(transfer.kept_checking_in);

    let device = device_id(5).0;
    for notification in &report.notifications {
        if notification.device == Some(device) && notification.at_s >= transfer.at_s {
            assert_eq!(notification.account, 1, "{notification:?}");
        }
    }
    // The other devices are not affected by the handover.
    assert_eq!(report.running.get("v1.10"), Some(&15));
    // The old owner's rollout no longer counts the device as its target.
    let rollout = &report.rollouts[0];
    assert_eq!(rollout.handed_over, 1);
    assert_eq!(rollout.targeted, 15);
    assert_eq!(rollout.updated, 15);
    assert_eq!(rollout.never_reached, 0);
}

#[test]
fn device_handed_over_twice_is_checked_per_owner() {
    // Proves that each handover is checked until the next one of the same
    // device: the first new owner saw the device until it passed it on, and
    // the second sees it to the end.
    let text = format!(
        "{}\n[[events]]\nkind = \"transfer\"\nat_hours = 4\ndevice = 5\nto_account = 2\n",
        include_str!("../scenarios/transfer.toml")
    );
    let report = run_scenario(&text, false);
    assert_safe(&report);

    assert_eq!(report.transfers.len(), 2);
    let (first, second) = (&report.transfers[0], &report.transfers[1]);
    assert_eq!((first.from_account, first.to_account), (0, 1));
    assert_eq!((second.from_account, second.to_account), (1, 2));
    for transfer in [first, second] {
        assert!(transfer.never_ownerless, "{transfer:?}");
        assert!(!transfer.visible_to_old_owner, "{transfer:?}");
        assert!(transfer.visible_to_new_owner, "{transfer:?}");
        assert!(transfer.kept_checking_in, "{transfer:?}");
    }
}
