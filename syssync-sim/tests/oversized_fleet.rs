//! A fleet too large for the machine's memory is rejected before it is built.

use syssync_sim::runner::{run, RunSettings};
use syssync_sim::scenario::Scenario;

#[test]
#[cfg(target_os = "linux")]
fn oversized_fleet_is_rejected() {
    // Proves that --devices 4294967295 gets an error naming the memory it
    // would need, instead of allocating until the machine runs out.
    let settings = RunSettings {
        devices: Some(u32::MAX),
        ..RunSettings::default()
    };
    let error = run(Scenario::default_scenario(), &settings)
        .expect_err("four billion devices do not fit in memory");
    assert!(error.contains("needs about"), "{error}");
    assert!(error.contains("use fewer devices"), "{error}");
}
