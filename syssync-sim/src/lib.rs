//! Fleet simulator of syssync: a fleet of simulated devices, each with its own
//! flash, bootloader state, file store and update engine, updating from a
//! server over lossy links and through CAN gateways, with power cuts.
//!
//! Run `cargo run --release -p syssync-sim` for the built-in scenario, or pass
//! `--scenario FILE` with one of the files in this crate's `scenarios/`
//! folder. The report is a table on stdout and, with `--json FILE`, JSON; the
//! JSON of two runs with the same scenario and seed is byte-identical.
//!
//! # What runs for real
//!
//! - Every device runs `syssync-device`'s [`Engine`](syssync_device::Engine)
//!   and [`NorFileStore`](syssync_device::NorFileStore), and `rollback-fsm`'s
//!   bootloader ([`BootSide`](rollback_fsm::BootSide)) and application side,
//!   each partition on its own `flash-sim` device ([`device_node`]). A reset
//!   drops every RAM structure and rebuilds the device from flash alone.
//!   The engine reaches rollback-fsm through `syssync-device`'s own
//!   `RollbackFsmBoot`, behind a status cache ([`boot_glue`]).
//! - The server is `syssync-server-core` with in-memory storage, driven with
//!   frames and management commands ([`server_node`]).
//! - Frames, MACs, manifest signatures and CAN segmentation are those of
//!   `syssync-proto`.
//! - Power cuts use flash-sim's power rail: the cut tears the running flash
//!   operation, during a download or during the bootloader's install.
//!
//! # What is modelled
//!
//! - Time ([`queue`]): a discrete-event queue; engine calls, flash operations
//!   and server decisions take no simulated time.
//! - Links ([`link`]): loss and latency per frame, CAN bus time per segment
//!   as an estimate. The gateway forwards frames with the protocol's
//!   segmenter and reassembler; it is not itself a simulated device.
//! - The application: a healthy one lets the server confirm; one that never
//!   passes its health check reports failure at once and its watchdog resets.
//! - Fleets whose real images do not fit in memory run on 8 KiB synthetic
//!   images with 1 KiB flash sectors; the report's fidelity line says so.

pub mod boot_glue;
pub mod crypto;
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
