//! Fleet simulator of syssync: a fleet of simulated devices, each with its own
//! flash, bootloader state, file store and update engine, updating from a
//! server over lossy links and through CAN gateways, with power cuts.
//!
//! The simulator owns time, links, faults and bookkeeping ([`sim`]); what a
//! device or the server decides comes from the crates behind the traits of
//! [`model`]. Scenarios are TOML files ([`scenario`]); the report
//! ([`report`]) is a table for people and JSON for tools, and the JSON of two
//! runs with the same scenario and seed is byte-identical.

pub mod boot_glue;
pub mod device_node;
pub mod firmware;
pub mod flash;
pub mod link;
pub mod model;
pub mod queue;
pub mod release;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod server_node;
pub mod sim;
