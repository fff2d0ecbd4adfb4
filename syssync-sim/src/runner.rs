//! Runs a scenario end to end: applies command-line overrides, loads and
//! signs the releases, provisions the fleet and runs the simulation.

use std::path::{Path, PathBuf};

use crate::crypto::SignatureMemo;
use crate::device_node::{FleetDevice, Geometry};
use crate::firmware::{default_firmware_dir, FirmwareDir};
use crate::model::DeviceSpec;
use crate::release::{build_release, BuiltRelease, ChecksumCoverage, ImageSource, ReleaseKey};
use crate::report::{Fidelity, Report};
use crate::scenario::{FleetEvent, Scenario};
use crate::server_node::CoreServer;
use crate::sim::{RunOptions, Simulation};

/// Budget for simulated flash, in bytes. Above it the run uses synthetic
/// images. flash-sim keeps one byte of RAM per flash byte, and a second one
/// (the unstable-bit mask) only on a device whose power failed during a
/// write or erase.
pub const FLASH_MEMORY_BUDGET: u64 = 6 << 30;

/// Size of the synthetic application images, in bytes.
pub const SYNTHETIC_IMAGE_SIZE: usize = 8 * 1024;

/// Erase size of the simulated flash with real images (as on the ESP8266's SPI flash).
const REAL_SECTOR: usize = 4096;

/// Erase size of the simulated flash with synthetic images, smaller to keep
/// large fleets in memory.
const SYNTHETIC_SECTOR: usize = 1024;

/// Overrides and settings of one run.
#[derive(Clone, Debug, Default)]
pub struct RunSettings {
    /// Fleet size instead of the scenario's.
    pub devices: Option<u32>,
    /// Seed instead of the scenario's.
    pub seed: Option<u64>,
    /// Folder of the scenario file, for relative `firmware_dir` paths.
    pub scenario_dir: Option<PathBuf>,
    /// Print progress on stderr.
    pub progress: bool,
    /// Use synthetic images even when the real ones fit, as the scenario's
    /// `synthetic_images = true` does.
    pub force_synthetic: bool,
    /// Worker threads; 0 uses one per core. The result does not depend on it.
    pub threads: usize,
    /// Firmware folder instead of the scenario's or the default one.
    pub firmware_dir: Option<PathBuf>,
}

/// Scales the fleet of `scenario` to `devices`, keeping the shares of
/// gateway devices, late devices and group members. Gateways left without
/// devices are removed, and so are faults and events that name devices
/// beyond the new fleet.
pub fn resize_fleet(scenario: &mut Scenario, devices: u32) {
    let old = f64::from(scenario.fleet.devices);
    let scale = |count: u32| (f64::from(count) * f64::from(devices) / old).round() as u32;
    for gateway in &mut scenario.gateways {
        gateway.devices = scale(gateway.devices);
    }
    while scenario.gateway_devices() > devices {
        if let Some(gateway) = scenario.gateways.iter_mut().find(|g| g.devices > 0) {
            gateway.devices -= 1;
        }
    }
    scenario.gateways.retain(|gateway| gateway.devices > 0);
    if let Some(members) = scenario.fleet.group_members.as_mut() {
        *members = scale(*members).min(devices);
    }
    scenario.fleet.devices = devices;
    scenario
        .faults
        .failing_devices
        .retain(|device| *device < devices);
    scenario.events.retain_mut(|event| match event {
        FleetEvent::JoinGroup { first, count, .. } => {
            *first = scale(*first).min(devices);
            *count = scale(*count).min(devices - *first);
            *count > 0
        }
        FleetEvent::Transfer { device, .. } => *device < devices,
    });
}

fn firmware_dir(scenario: &Scenario, settings: &RunSettings) -> PathBuf {
    if let Some(dir) = &settings.firmware_dir {
        return dir.clone();
    }
    match &scenario.firmware_dir {
        Some(dir) => {
            let dir = Path::new(dir);
            match (&settings.scenario_dir, dir.is_relative()) {
                (Some(base), true) => base.join(dir),
                _ => dir.to_owned(),
            }
        }
        None => default_firmware_dir(),
    }
}

fn build_releases(
    scenario: &Scenario,
    source: &ImageSource<'_>,
    key: &ReleaseKey,
) -> Result<Vec<BuiltRelease>, String> {
    scenario
        .releases
        .iter()
        .map(|release| {
            build_release(release, &scenario.fleet.target, source, key)
                .map_err(|error| error.to_string())
        })
        .collect()
}

fn run_with<const E: usize>(
    scenario: Scenario,
    releases: Vec<BuiltRelease>,
    fidelity: Fidelity,
    key: &ReleaseKey,
    settings: &RunSettings,
) -> Result<Report, String> {
    let interval = scenario.fleet.check_in_interval_s;
    let server = CoreServer::new(key.trusted_key(), interval, &scenario.fleet.target)?;
    let memo = SignatureMemo::shared();
    let make_device = |spec: &DeviceSpec<'_>| FleetDevice::<E>::provision(spec, interval, &memo);
    let simulation = Simulation::new(
        scenario,
        releases,
        fidelity,
        key,
        server,
        make_device,
        RunOptions {
            progress: settings.progress,
            threads: settings.threads,
        },
    )?;
    Ok(simulation.run())
}

/// Runs `scenario` with `settings` and returns its report.
pub fn run(mut scenario: Scenario, settings: &RunSettings) -> Result<Report, String> {
    if let Some(devices) = settings.devices {
        if devices == 0 {
            return Err("--devices must be at least 1".into());
        }
        let gateways = scenario.gateways.len();
        let (failing, events) = (scenario.faults.failing_devices.len(), scenario.events.len());
        resize_fleet(&mut scenario, devices);
        let dropped =
            failing - scenario.faults.failing_devices.len() + (events - scenario.events.len());
        if dropped > 0 {
            eprintln!(
                "warning: --devices {devices} drops {dropped} scenario {} (failing devices, fleet events) that name devices outside the new fleet",
                if dropped == 1 { "entry" } else { "entries" }
            );
        }
        let dropped_gateways = gateways - scenario.gateways.len();
        if dropped_gateways > 0 {
            eprintln!(
                "warning: --devices {devices} leaves {dropped_gateways} gateways without devices; the run leaves them out"
            );
        }
    }
    if let Some(seed) = settings.seed {
        scenario.seed = seed;
    }
    if settings.force_synthetic {
        scenario.synthetic_images = true;
    }
    scenario.validate().map_err(|error| error.to_string())?;
    let dir = FirmwareDir::open(&firmware_dir(&scenario, settings)).map_err(|e| e.to_string())?;
    let key = ReleaseKey::from_seed(scenario.seed);
    let real = build_releases(&scenario, &ImageSource::Files(&dir), &key)?;

    let max_image = real.iter().map(|r| r.image.len() as u32).max().unwrap_or(0);
    let per_device = flash_per_device(&real, REAL_SECTOR as u32);
    let fits = per_device * u64::from(scenario.fleet.devices) <= FLASH_MEMORY_BUDGET;
    if fits && !settings.force_synthetic && !scenario.synthetic_images {
        let fidelity = Fidelity {
            real_images: true,
            image_bytes: u64::from(max_image),
            checksums_verified: real.iter().all(|release| release.checksums_verified),
            checksums: ChecksumCoverage::of(&real).to_string(),
            flash_bytes_per_device: per_device,
            synthetic_reason: None,
        };
        run_with::<REAL_SECTOR>(scenario, real, fidelity, &key, settings)
    } else {
        let source = ImageSource::Synthetic {
            dir: &dir,
            image_size: SYNTHETIC_IMAGE_SIZE,
        };
        let releases = build_releases(&scenario, &source, &key)?;
        check_memory(&scenario, &releases)?;
        let reason = if settings.force_synthetic {
            "--synthetic"
        } else if scenario.synthetic_images {
            "the scenario asks for them"
        } else {
            "the real ones do not fit in memory at this fleet size"
        };
        let fidelity = Fidelity {
            real_images: false,
            synthetic_reason: Some(reason.to_owned()),
            image_bytes: SYNTHETIC_IMAGE_SIZE as u64,
            checksums_verified: real.iter().all(|release| release.checksums_verified),
            checksums: ChecksumCoverage::of(&real).to_string(),
            flash_bytes_per_device: 0,
        };
        run_with::<SYNTHETIC_SECTOR>(scenario, releases, fidelity, &key, settings)
    }
}

/// Memory of one simulated device beyond its flash (engine, server record,
/// queues), in bytes: an estimate from a 100,000-device run, which peaked
/// at about 74 KiB per device with 56 KiB of flash each.
const DEVICE_OVERHEAD_BYTES: u64 = 24 * 1024;

/// Rejects a fleet of synthetic devices that cannot fit in the memory
/// available, before it is built. Skipped where the platform does not
/// report available memory.
fn check_memory(scenario: &Scenario, releases: &[BuiltRelease]) -> Result<(), String> {
    let Some(available) = available_memory_bytes() else {
        return Ok(());
    };
    let flash = flash_per_device(releases, SYNTHETIC_SECTOR as u32);
    let per_device = flash + DEVICE_OVERHEAD_BYTES;
    let needed = per_device.saturating_mul(u64::from(scenario.fleet.devices));
    if needed > available {
        return Err(format!(
            "a fleet of {} devices needs about {} MiB of memory ({} KiB per device), but {} MiB are available; use fewer devices (at most about {})",
            scenario.fleet.devices,
            needed >> 20,
            per_device >> 10,
            available >> 20,
            available / per_device
        ));
    }
    Ok(())
}

/// Returns the simulated flash of one device, in bytes, for the largest image
/// and file set of `releases` and erase size `sector`.
fn flash_per_device(releases: &[BuiltRelease], sector: u32) -> u64 {
    let max_image = releases
        .iter()
        .map(|r| r.image.len() as u32)
        .max()
        .unwrap_or(0);
    let max_files = releases
        .iter()
        .map(|r| r.files.iter().map(|f| f.bytes.len() as u32).sum::<u32>())
        .max()
        .unwrap_or(0);
    let file_count = releases
        .iter()
        .map(|r| r.files.len() as u32)
        .max()
        .unwrap_or(0)
        + 4;
    Geometry::for_release_sizes(sector, max_image, max_files, file_count).total()
}

/// Returns the memory available to new processes in bytes, where the
/// platform reports it (`MemAvailable` in `/proc/meminfo` on Linux).
fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Returns the peak resident memory of this process in bytes, where the
/// platform reports it (`VmHWM` in `/proc/self/status` on Linux).
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fleet_drops_empty_gateways() {
        // Proves that scaling the default fleet down to one device leaves no
        // gateway with 0 devices, which the scenario checks reject.
        let mut scenario = Scenario::default_scenario();
        resize_fleet(&mut scenario, 1);
        assert!(scenario.gateways.is_empty(), "{:?}", scenario.gateways);
        assert_eq!(scenario.validate(), Ok(()));
    }
}
