//! Helpers shared by the scenario tests.

#![allow(dead_code)]

use syssync_sim::report::Report;
use syssync_sim::runner::{run, RunSettings};
use syssync_sim::scenario::Scenario;

/// Parses a scenario and runs it; `synthetic` swaps the real images for small synthetic ones.
pub(crate) fn run_scenario(text: &str, synthetic: bool) -> Report {
    let scenario = Scenario::from_toml(text).expect("the scenario file is valid");
    let settings = RunSettings {
        force_synthetic: synthetic,
        ..RunSettings::default()
    };
    let report = run(scenario, &settings).expect("the simulation runs");
    assert!(
        report.errors.is_empty(),
        "server errors: {:?}",
        report.errors
    );
    report
}

/// Asserts the two invariants of every run: nothing bricked, no settings changed.
pub(crate) fn assert_safe(report: &Report) {
    assert_eq!(report.bricked, 0, "bricked devices");
    assert_eq!(report.settings_changed, 0, "devices with changed settings");
}
