//! The same scenario and seed give byte-identical JSON reports, on any
//! number of threads; another seed gives another run.

mod common;

use common::run_scenario;
use syssync_sim::runner::{run, RunSettings};
use syssync_sim::scenario::Scenario;

#[test]
fn same_seed_gives_identical_json() {
    // Proves determinism end to end: devices, links, power cuts, server and report.
    let text = include_str!("../scenarios/good-release-can.toml");
    let first = run_scenario(text, true).to_json();
    let second = run_scenario(text, true).to_json();
    assert_eq!(first, second);

    let other = run_scenario(&text.replace("seed = 11", "seed = 12"), true).to_json();
    assert_ne!(first, other);
}

#[test]
fn thread_count_does_not_change_the_report() {
    // Proves that the parallel windows are deterministic: one, two and five
    // worker threads give the same JSON report.
    let text = include_str!("../scenarios/good-release-can.toml");
    let report = |threads: usize| {
        let scenario = Scenario::from_toml(text).expect("the scenario file is valid");
        let settings = RunSettings {
            force_synthetic: true,
            threads,
            ..RunSettings::default()
        };
        run(scenario, &settings)
            .expect("the simulation runs")
            .to_json()
    };
    let one = report(1);
    assert_eq!(one, report(2));
    assert_eq!(one, report(5));
}
