//! Scenario 1: a good release reaches every device, including those behind
//! an 8-byte classic CAN gateway, with 10 % frame loss and power cuts during
//! download and install.

mod common;

use common::{assert_safe, run_scenario};

#[test]
fn good_release_reaches_every_device() {
    // Proves that the real images arrive everywhere despite loss, CAN segmentation and power cuts.
    let report = run_scenario(include_str!("../scenarios/good-release-can.toml"), false);
    assert_safe(&report);
    assert!(report.fidelity.real_images);

    let rollout = &report.rollouts[0];
    assert_eq!(rollout.targeted, 24);
    assert_eq!(rollout.updated, 24);
    assert_eq!(report.running.get("v1.10"), Some(&24));

    let classic = report
        .gateways
        .iter()
        .find(|gateway| gateway.mtu == 8)
        .expect("the scenario has an 8-byte CAN gateway");
    assert_eq!(classic.devices, 8);
    assert_eq!(classic.running.get("v1.10"), Some(&8));

    assert!(
        report.power_cuts.download > 0,
        "no power cut during a download"
    );
    assert!(
        report.power_cuts.install > 0,
        "no power cut during an install"
    );
    assert!(report.wire.upstream.frames_lost > 0, "no frame was lost");
    assert!(
        report.wire.can.segments_sent > 0,
        "nothing crossed the CAN links"
    );
    assert!(report.wire.retransmission_bytes > 0);
}
