//! Benchmarks and measurement commands for syssync.
//!
//! - [`boards`]: two simulated boards, one booted by `embassy-boot` 0.7 and
//!   one by `rollback-fsm`, on `flash-sim` devices with 4 KiB sectors;
//! - [`measure`]: the flash cost of one update, phase by phase;
//! - [`sweep`]: the same power-cut sweep over both boards;
//! - [`corpus`]: firmware images, checked against their `SHA256SUMS` when loaded;
//! - [`samples`]: one sample of every protocol message;
//! - [`device_rig`]: a device engine mid-download, for the cost per chunk.
//!
//! The `flash-cost` binary prints the measurements:
//! `cargo run --release -p benches --bin flash-cost`.

pub mod boards;
pub mod corpus;
pub mod counts;
pub mod device_rig;
pub mod measure;
pub mod samples;
pub mod sweep;
