//! The report of a run: outcome counts, bytes on the wire, phase times and
//! notifications, as a table for people and as JSON for tools.
//!
//! Every map is a `BTreeMap` and every list is in simulation order, so the
//! JSON of two runs with the same scenario and seed is byte-identical. The
//! wall time and peak memory are not part of the report: they differ from run
//! to run and are printed beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::link::LinkStats;

/// The whole report of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed of the run.
    pub seed: u64,
    /// Number of devices.
    pub devices: u32,
    /// Simulated time covered, in seconds.
    pub simulated_s: u64,
    /// Scenario duration, in seconds. A run with `stop_when_settled` ends
    /// earlier once every rollout has settled.
    pub duration_s: u64,
    /// Fidelity of the device model: real or synthetic images, flash size.
    pub fidelity: Fidelity,
    /// Outcome of each rollout, in scenario order.
    pub rollouts: Vec<RolloutReport>,
    /// Devices per release they run at the end, by release name.
    pub running: BTreeMap<String, u64>,
    /// Devices behind each gateway and what they run at the end.
    pub gateways: Vec<GatewayReport>,
    /// Devices on which no complete verified image boots. Must be 0.
    pub bricked: u64,
    /// Devices whose settings region differs from its contents before the run. Must be 0.
    pub settings_changed: u64,
    /// Power cuts injected.
    pub power_cuts: PowerCuts,
    /// Bytes on the wire by class.
    pub wire: WireReport,
    /// Chunks that reached a device more than once for the same job.
    pub chunks_fetched_twice: u64,
    /// Ownership checks after handovers.
    pub transfers: Vec<TransferReport>,
    /// Notifications for account owners, in the order the server produced them.
    pub notifications: Vec<NotificationRecord>,
    /// Notification counts by kind.
    pub notification_counts: BTreeMap<String, u64>,
    /// Server commands that failed during the run. Empty in a correct run.
    pub errors: Vec<String>,
}

/// Fidelity of the device model in one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fidelity {
    /// Whether the release images are the real files (`false`: synthetic images of `image_bytes`).
    pub real_images: bool,
    /// Size of the largest application image, in bytes.
    pub image_bytes: u64,
    /// Whether every file was checked against `SHA256SUMS`.
    pub checksums_verified: bool,
    /// Coverage of the files by `SHA256SUMS`, as the summary prints it.
    pub checksums: String,
    /// Reason for synthetic images, if the run used them.
    pub synthetic_reason: Option<String>,
    /// Bytes of simulated flash per device.
    pub flash_bytes_per_device: u64,
}

/// Final states of the devices that a rollout targeted.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RolloutReport {
    /// Release name.
    pub release: String,
    /// Whether the release's application passes its health check.
    pub healthy_release: bool,
    /// Devices in the rollout's group at the end.
    pub targeted: u64,
    /// Devices that booted the release on trial at least once.
    pub got_release: u64,
    /// Devices running the release, confirmed.
    pub updated: u64,
    /// Devices that installed it and went back to the previous image.
    pub reverted: u64,
    /// Devices with as many failed attempts as the attempt limit, counted by
    /// the server, that stay on their old image.
    pub failed_attempt_limit: u64,
    /// Devices never offered the release.
    pub never_reached: u64,
    /// Devices handed over to another account before the release reached
    /// them: they left the rollout's fleet and are not counted as targeted.
    pub handed_over: u64,
    /// Devices offered the release that end in none of the states above
    /// (still downloading, or waiting for another attempt).
    pub in_progress: u64,
    /// Largest number of offers that one device got.
    pub max_offers_per_device: u64,
    /// The first 100 devices counted in `failed_attempt_limit`, with their offers.
    pub attempt_limit_devices: Vec<DeviceOffers>,
    /// Simulated second at which each phase opened, `None` if it never did.
    pub phase_opened_s: Vec<Option<u64>>,
    /// Simulated second at which the rollout paused, if it did.
    pub paused_s: Option<u64>,
    /// Simulated second at which the last targeted device updated.
    pub completed_s: Option<u64>,
    /// The server's counters of the job at the end.
    pub server: ServerCounters,
}

/// The devices behind one gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatewayReport {
    /// Gateway name.
    pub name: String,
    /// CAN payload bytes per frame.
    pub mtu: u8,
    /// Devices behind it.
    pub devices: u64,
    /// Devices per release they run at the end.
    pub running: BTreeMap<String, u64>,
}

/// A job's counters as the server keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerCounters {
    /// Devices the job targets.
    pub targets: u32,
    /// Devices admitted into a phase.
    pub admitted: u32,
    /// Devices confirmed on the release.
    pub succeeded: u32,
    /// Devices that already ran the release.
    pub up_to_date: u32,
    /// Devices failed for good (attempt limit reached).
    pub failed: u32,
    /// Devices with at least one failed attempt.
    pub failing: u32,
    /// Offers made.
    pub offers: u32,
    /// Failed attempts.
    pub failed_attempts: u32,
}

/// A device and the number of offers it got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceOffers {
    /// Device index.
    pub device: u32,
    /// Offers the server made to it.
    pub offers: u64,
}

/// Power cuts injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PowerCuts {
    /// Cuts during a download.
    pub download: u64,
    /// Cuts during an install (bootloader steps).
    pub install: u64,
}

/// Bytes on the wire by class. Counted are whole frames on the server side
/// of each link; CAN segment overhead is in `can`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WireReport {
    /// Check-ins and their replies (idle, inventory request), bytes.
    pub check_in_bytes: u64,
    /// Check-in frames sent by devices.
    pub check_ins: u64,
    /// Average check-in frame, bytes (device to server only).
    pub average_check_in_bytes: f64,
    /// Job offers (with the signed manifest), bytes.
    pub manifest_bytes: u64,
    /// Chunk requests and chunks, bytes.
    pub chunk_bytes: u64,
    /// Requests repeated after a lost request or reply, and their replies, bytes.
    pub retransmission_bytes: u64,
    /// Job reports, inventory reports, confirms, cancels and refusals, bytes.
    pub other_bytes: u64,
    /// Sum of all classes.
    pub total_bytes: u64,
    /// Links between devices (or gateways) and the server.
    pub upstream: LinkStats,
    /// CAN links between gateways and their devices.
    pub can: LinkStats,
}

/// One handover and what the accounts saw afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// Device index.
    pub device: u32,
    /// Previous owner account index.
    pub from_account: u32,
    /// New owner account index.
    pub to_account: u32,
    /// Simulated second of the handover.
    pub at_s: u64,
    /// Whether the device had exactly one owner at every check. The checks
    /// of a handover end where the device's next handover begins.
    pub never_ownerless: bool,
    /// Whether the old owner could still see the device after the handover.
    pub visible_to_old_owner: bool,
    /// Whether the new owner saw the device at every check.
    pub visible_to_new_owner: bool,
    /// Whether the device kept checking in after the handover.
    pub kept_checking_in: bool,
}

/// A notification the account owner would have received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NotificationRecord {
    /// Simulated second.
    pub at_s: u64,
    /// Account index.
    pub account: u64,
    /// Kind, such as `rollout-paused`.
    pub kind: String,
    /// Job id, if any.
    pub job: Option<u32>,
    /// Device id, if any.
    pub device: Option<u64>,
    /// Failure cause, for failure notifications.
    pub cause: Option<String>,
    /// Whether the account's preferences want this kind.
    pub wanted: bool,
}

fn hours(seconds: u64) -> String {
    format!("{:.1} h", seconds as f64 / 3600.0)
}

fn bytes(value: u64) -> String {
    if value >= 10 * 1024 * 1024 {
        format!("{:.1} MiB", value as f64 / (1024.0 * 1024.0))
    } else if value >= 10 * 1024 {
        format!("{:.1} KiB", value as f64 / 1024.0)
    } else {
        format!("{value} B")
    }
}

impl Report {
    /// Serialises the report as pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // The report holds only structs, string-keyed maps, strings and numbers,
        // which serde_json serialises without error.
        #[allow(clippy::expect_used)]
        let mut text = serde_json::to_string_pretty(self).expect("report serialises");
        text.push('\n');
        text
    }

    /// Renders the summary table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario   {}", self.scenario);
        let stopped_early = if self.simulated_s < self.duration_s {
            format!(
                " of {} (stopped once every rollout had settled)",
                hours(self.duration_s)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "fleet      {}, seed {}, {} simulated{stopped_early}",
            count(self.devices.into(), "device", "devices"),
            self.seed,
            hours(self.simulated_s)
        );
        let images = match &self.fidelity.synthetic_reason {
            None => "real release images".to_owned(),
            Some(reason) => format!("synthetic images ({reason})"),
        };
        let _ = writeln!(
            out,
            "fidelity   {images}, largest {}, {} flash per device, checksums {}",
            bytes(self.fidelity.image_bytes),
            bytes(self.fidelity.flash_bytes_per_device),
            self.fidelity.checksums
        );
        let _ = writeln!(out);
        let name_of = |rollout: &RolloutReport| {
            if rollout.healthy_release {
                rollout.release.clone()
            } else {
                format!("{} (bad)", rollout.release)
            }
        };
        let width = self
            .rollouts
            .iter()
            .map(|rollout| name_of(rollout).len())
            .max()
            .unwrap_or(0)
            .max(12);
        let _ = writeln!(
            out,
            "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  phases opened at",
            "rollout", "targeted", "updated", "reverted", "failed", "unreached", "pending"
        );
        for rollout in &self.rollouts {
            let phases: Vec<String> = rollout
                .phase_opened_s
                .iter()
                .map(|opened| opened.map_or_else(|| "-".to_owned(), hours))
                .collect();
            let _ = write!(
                out,
                "{:<width$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {}",
                name_of(rollout),
                rollout.targeted,
                rollout.updated,
                rollout.reverted,
                rollout.failed_attempt_limit,
                rollout.never_reached,
                rollout.in_progress,
                phases.join(", ")
            );
            if rollout.handed_over > 0 {
                let _ = write!(
                    out,
                    "; {} handed over to another account first",
                    rollout.handed_over
                );
            }
            if let Some(paused) = rollout.paused_s {
                let _ = write!(out, "; paused at {}", hours(paused));
            }
            if let Some(completed) = rollout.completed_s {
                let _ = write!(out, "; all updated at {}", hours(completed));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "(reverted: booted the release and went back; failed: out of attempts, as the server counts them;\n \
             unreached: never offered it; pending: offered, no outcome yet, or waiting for a paused rollout to resume)"
        );
        if self.rollouts.iter().any(|rollout| !rollout.healthy_release) {
            let _ = writeln!(
                out,
                "(bad: a release whose application fails its health check on the device)"
            );
        }
        let _ = writeln!(out);
        let running: Vec<String> = self
            .running
            .iter()
            .map(|(release, count)| format!("{release}: {count}"))
            .collect();
        let _ = writeln!(out, "running    {}", running.join(", "));
        for gateway in &self.gateways {
            let running: Vec<String> = gateway
                .running
                .iter()
                .map(|(release, count)| format!("{release}: {count}"))
                .collect();
            let devices = count(gateway.devices, "device", "devices");
            let running = if running.is_empty() {
                String::new()
            } else {
                format!(", running {}", running.join(", "))
            };
            let _ = writeln!(
                out,
                "gateway    {} (CAN, {}-byte frames): {devices}{running}",
                gateway.name, gateway.mtu,
            );
        }
        let _ = writeln!(
            out,
            "bricked    {}    settings changed {}    power cuts {} in download, {} in install",
            self.bricked, self.settings_changed, self.power_cuts.download, self.power_cuts.install
        );
        let wire = &self.wire;
        let _ = writeln!(
            out,
            "wire       {} total: check-ins {} ({} frames, {:.1} B each), manifests {}, chunks {}, \
             retransmissions {}, other {}",
            bytes(wire.total_bytes),
            bytes(wire.check_in_bytes),
            wire.check_ins,
            wire.average_check_in_bytes,
            bytes(wire.manifest_bytes),
            bytes(wire.chunk_bytes),
            bytes(wire.retransmission_bytes),
            bytes(wire.other_bytes)
        );
        let _ = writeln!(
            out,
            "links      upstream {} of {} frames lost; CAN {} of {} segments lost, {} frames failed reassembly",
            wire.upstream.frames_lost,
            wire.upstream.frames_sent,
            wire.can.segments_lost,
            wire.can.segments_sent,
            wire.can.reassembly_failures
        );
        let _ = writeln!(out, "chunks fetched twice {}", self.chunks_fetched_twice);
        for transfer in &self.transfers {
            let _ = writeln!(
                out,
                "handover   device {} from account {} to {} at {}: one owner at every check {}, old owner lost access {}, new owner sees it {}, kept checking in {}",
                transfer.device,
                transfer.from_account,
                transfer.to_account,
                hours(transfer.at_s),
                yes_no(transfer.never_ownerless),
                yes_no(!transfer.visible_to_old_owner),
                yes_no(transfer.visible_to_new_owner),
                yes_no(transfer.kept_checking_in)
            );
        }
        // A device can be the subject of several notices (one per failed
        // attempt, say), so the count of devices follows where it differs.
        let counts: Vec<String> = self
            .notification_counts
            .iter()
            .map(|(kind, count)| {
                let devices: BTreeSet<u64> = self
                    .notifications
                    .iter()
                    .filter(|n| &n.kind == kind)
                    .filter_map(|n| n.device)
                    .collect();
                if devices.is_empty() || devices.len() as u64 == *count {
                    format!("{kind} {count}")
                } else {
                    format!(
                        "{kind} {count} ({})",
                        self::count(devices.len() as u64, "device", "devices")
                    )
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "notices    {}",
            if counts.is_empty() {
                "none".to_owned()
            } else {
                counts.join(", ")
            }
        );
        for error in &self.errors {
            let _ = writeln!(out, "error      {error}");
        }
        for notification in self
            .notifications
            .iter()
            .filter(|n| n.device.is_none())
            .take(10)
        {
            let _ = writeln!(
                out,
                "           {} account {} {}{}",
                hours(notification.at_s),
                notification.account,
                notification.kind,
                notification
                    .job
                    .map(|job| format!(" (job {job})"))
                    .unwrap_or_default()
            );
        }
        out
    }
}

/// Returns `n` with the singular or plural noun.
fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "NO"
    }
}
