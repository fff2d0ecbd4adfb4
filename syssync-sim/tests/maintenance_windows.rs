//! Maintenance windows: a rollout offers its release only inside the weekly
//! windows of its scenario, in the rollout's local time.

mod common;

use common::{assert_safe, run_scenario};
use syssync_sim::runner::{run, RunSettings};
use syssync_sim::scenario::Scenario;

const SCENARIO: &str = include_str!("../scenarios/maintenance-windows.toml");

#[test]
fn rollout_waits_for_its_window() {
    // Proves that no device updates before the first window opens (hour 23,
    // Tuesday 01:00 at UTC+2) and that every device updates once it is open.
    let report = run_scenario(SCENARIO, true);
    assert_safe(&report);

    let rollout = &report.rollouts[0];
    assert_eq!(rollout.targeted, 30);
    assert_eq!(rollout.updated, 30);
    let completed = rollout.completed_s.expect("every device updated");
    assert!(
        completed > 23 * 3600,
        "completed at {completed} s, before the window"
    );
}

#[test]
fn same_rollout_without_windows_is_earlier() {
    // Proves the windows are what delays the rollout above: without them the
    // same fleet completes before the first window would have opened.
    let mut scenario = Scenario::from_toml(SCENARIO).expect("the scenario file is valid");
    scenario.rollouts[0].windows.clear();
    let settings = RunSettings {
        force_synthetic: true,
        ..RunSettings::default()
    };
    let report = run(scenario, &settings).expect("the simulation runs");
    assert_safe(&report);

    let rollout = &report.rollouts[0];
    assert_eq!(rollout.updated, 30);
    let completed = rollout.completed_s.expect("every device updated");
    assert!(completed < 23 * 3600, "completed at {completed} s");
}

#[test]
fn invalid_window_is_reported() {
    // Proves that a bad window is a clear scenario error, not a panic.
    for (bad, expected) in [
        ("day = \"tuesday\"", "day = \"someday\""),
        (
            "start = \"01:00\", hours = 3 },\n    { day = \"wednesday\"",
            "start = \"25:00\", hours = 3 },\n    { day = \"wednesday\"",
        ),
    ] {
        let text = SCENARIO.replacen(bad, expected, 1);
        let error = Scenario::from_toml(&text).expect_err("the window is invalid");
        assert!(error.to_string().contains("window"), "{error}");
    }
}
