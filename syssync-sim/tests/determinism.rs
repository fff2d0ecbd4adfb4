//! The same scenario and seed give byte-identical JSON reports; another seed
//! gives another run.

mod common;

use common::run_scenario;

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
