//! One simulated device: flash-sim partitions, the rollback-fsm bootloader
//! and application side, the syssync-device file store and engine.
//!
//! A reset drops the engine and every RAM structure, runs the bootloader
//! ([`rollback_fsm::BootSide`]) to completion on the flash contents, and
//! builds the engine again from flash alone, as firmware does after power-on.

use flash_sim::PowerRail;
use rollback_fsm::{BootError, BootFlashes, BootSide, Layout, Partition, Phase, Settings};
use std::sync::Arc;
use syssync_device::boot::setting;
use syssync_device::rollback::RollbackFsmBoot;
use syssync_device::{Engine, Event, Instant, NorFileStore};

use crate::boot_glue::CachedBoot;
use crate::crypto::{SignatureMemo, SimCrypto};
use crate::flash::SharedFlash;
use crate::model::{BootOutcome, DeviceEvent, DeviceModel, DeviceSpec};
use crate::queue::SimTime;
use crate::sim::unix_seconds;

/// Settings key of the application's own configuration record, which
/// updates must never change (the simulator checks it at the end).
pub const APPLICATION_SETTING: u16 = 0x0100;

/// How long the simulated application takes to reset when the engine leaves
/// the moment open, in milliseconds.
const DEFAULT_RESET_DELAY_MS: SimTime = 30_000;

/// Partition sizes of one device, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Active, staging and recovery partitions each.
    pub image_partition: u32,
    /// State record log.
    pub state: u32,
    /// Settings store (two banks).
    pub settings: u32,
    /// File store.
    pub files: u32,
}

impl Geometry {
    /// Sizes the partitions for the largest image and file set of a scenario,
    /// with erase size `sector`.
    pub fn for_release_sizes(sector: u32, max_image: u32, max_files: u32, file_count: u32) -> Self {
        let round = |bytes: u32| bytes.div_ceil(sector).max(1) * sector;
        // Directory and journal areas of the file store (two each), the
        // manifest area and one scratch sector, from the layout table in
        // `syssync_device::nor_store`.
        let metadata = 2 * round(3136) + 2 * round(128) + round(1664) + sector;
        // Old and new copy of every file, each in whole sectors, plus slack.
        let data = 2 * (round(max_files) + file_count * sector) + 2 * sector;
        Self {
            image_partition: round(max_image) + sector,
            state: 2 * sector,
            settings: 2 * sector,
            files: metadata + data,
        }
    }

    /// Total simulated flash, in bytes.
    pub fn total(&self) -> u64 {
        3 * u64::from(self.image_partition)
            + u64::from(self.state)
            + u64::from(self.settings)
            + u64::from(self.files)
    }
}

/// The flash devices of one device.
#[derive(Clone, Debug)]
pub struct DeviceFlashes<const E: usize> {
    /// Active partition.
    pub active: SharedFlash<E>,
    /// Staging partition.
    pub staging: SharedFlash<E>,
    /// Recovery partition.
    pub recovery: SharedFlash<E>,
    /// State record log.
    pub state: SharedFlash<E>,
    /// Settings store.
    pub settings: SharedFlash<E>,
    /// File store.
    pub files: SharedFlash<E>,
}

type DeviceBoot<const E: usize> =
    CachedBoot<RollbackFsmBoot<SharedFlash<E>, SharedFlash<E>, SharedFlash<E>>>;

type DeviceEngine<const E: usize> = Engine<DeviceBoot<E>, NorFileStore<SharedFlash<E>>, SimCrypto>;

/// A device with erase size `E`.
pub struct FleetDevice<const E: usize> {
    flashes: DeviceFlashes<E>,
    rail: PowerRail,
    boot_config: rollback_fsm::Config,
    engine_config: syssync_device::Config,
    geometry: Geometry,
    engine: Option<DeviceEngine<E>>,
    crypto: SimCrypto,
    seed: u64,
    factory_sha256: [u8; 32],
    factory_size: u32,
    factory_partition_sha256: [u8; 32],
    network_up: bool,
    now: SimTime,
}

fn settings_store<const E: usize>(
    flash: &SharedFlash<E>,
    geometry: &Geometry,
) -> Result<Settings<SharedFlash<E>>, String> {
    Settings::new(flash.clone(), Partition::new(0, geometry.settings))
        .map_err(|error| format!("settings partition: {error}"))
}

impl<const E: usize> FleetDevice<E> {
    /// Provisions a device as a factory would: the installed image in the
    /// active partition, identity and application settings in the settings
    /// store, everything else erased. The device is powered off until the
    /// first [`DeviceModel::reset`].
    ///
    /// `memo` contains the signature checks that the devices of a run share.
    pub fn provision(
        spec: &DeviceSpec<'_>,
        check_in_interval_s: u32,
        memo: &Arc<SignatureMemo>,
    ) -> Result<Self, String> {
        let sector = E as u32;
        let file_count = spec.installed.files.len() as u32 + 4;
        let geometry = Geometry::for_release_sizes(
            sector,
            spec.max_image_size,
            spec.max_files_size,
            file_count,
        );
        let rail = PowerRail::new();
        let flash =
            |size: u32, salt: u64| SharedFlash::<E>::new(size as usize, spec.seed ^ salt, &rail);
        let flashes = DeviceFlashes {
            active: flash(geometry.image_partition, 1)?,
            staging: flash(geometry.image_partition, 2)?,
            recovery: flash(geometry.image_partition, 3)?,
            state: flash(geometry.state, 4)?,
            settings: flash(geometry.settings, 5)?,
            files: flash(geometry.files, 6)?,
        };
        flashes.active.load(0, &spec.installed.image)?;
        // The bootloader has no descriptor of the factory image, so its first
        // backup covers the whole active partition; the record then names the
        // partition's digest.
        let factory_partition_sha256: [u8; 32] = {
            use sha2::{Digest, Sha256};
            Sha256::digest(flashes.active.contents()).into()
        };

        let mut settings = settings_store(&flashes.settings, &geometry)?;
        let write = |settings: &mut Settings<SharedFlash<E>>, key: u16, value: &[u8]| {
            settings
                .write(key, value)
                .map_err(|error| format!("writing setting {key:#06x} failed: {error:?}"))
        };
        write(&mut settings, setting::DEVICE_ID, &spec.id.0.to_le_bytes())?;
        write(&mut settings, setting::DEVICE_KEY, &spec.key.0)?;
        write(&mut settings, setting::TARGET_TYPE, spec.target.as_bytes())?;
        let application = format!(
            "{{\"site\":\"plant-{}\",\"calibration\":{}}}",
            spec.index % 7,
            spec.index
        );
        write(&mut settings, APPLICATION_SETTING, application.as_bytes())?;

        let layout = Layout {
            active: Partition::new(0, geometry.image_partition),
            staging: Partition::new(0, geometry.image_partition),
            recovery: Partition::new(0, geometry.image_partition),
            state: Partition::new(0, geometry.state),
        };
        let boot_config = rollback_fsm::Config::try_new(layout, spec.target)
            .map_err(|error| format!("bootloader configuration: {error}"))?;
        let mut engine_config = syssync_device::Config::new(&[spec.trusted_key])
            .map_err(|error| format!("engine configuration: {error}"))?;
        engine_config.check_in_interval_s = check_in_interval_s;
        engine_config.min_interval_s = engine_config.min_interval_s.min(check_in_interval_s);
        engine_config
            .validate()
            .map_err(|error| format!("engine configuration: {error}"))?;
        Ok(Self {
            flashes,
            rail,
            boot_config,
            engine_config,
            geometry,
            engine: None,
            crypto: SimCrypto::new(&spec.key.0, Arc::clone(memo)),
            seed: spec.seed,
            factory_sha256: spec.installed.image_sha256,
            factory_size: spec.installed.image.len() as u32,
            factory_partition_sha256,
            network_up: false,
            now: 0,
        })
    }

    /// Runs the bootloader to completion; `Ok(None)` means power failed.
    fn run_bootloader(&mut self) -> Result<Option<([u8; 32], bool, u32)>, ()> {
        let flashes = BootFlashes {
            active: self.flashes.active.clone(),
            staging: self.flashes.staging.clone(),
            recovery: self.flashes.recovery.clone(),
            state: self.flashes.state.clone(),
        };
        let Ok(mut boot) =
            BootSide::new(&self.boot_config, flashes, rollback_fsm::Sha256::default())
        else {
            return Err(());
        };
        match boot.run() {
            Ok(()) => {
                let record = boot.record().copied();
                let (image, size) = record
                    .and_then(|record| record.active)
                    .map_or((self.factory_sha256, self.factory_size), |descriptor| {
                        (descriptor.sha256, descriptor.size)
                    });
                let trial = record.is_some_and(|record| record.phase == Phase::Trial);
                Ok(Some((image, trial, size)))
            }
            Err(BootError::Flash(_)) if self.rail.is_down() => Ok(None),
            Err(_) => Err(()),
        }
    }

    fn build_engine(&mut self, now: SimTime) -> Result<(), ()> {
        let boot = RollbackFsmBoot::new(
            self.boot_config,
            self.flashes.staging.clone(),
            self.flashes.state.clone(),
            self.flashes.settings.clone(),
            Partition::new(0, self.geometry.settings),
        )
        .map_err(|_| ())?;
        let boot = CachedBoot::new(boot);
        let store = NorFileStore::new(self.flashes.files.clone(), 1).map_err(|_| ())?;
        let mut engine = Engine::new(
            self.engine_config.clone(),
            boot,
            store,
            self.crypto.clone(),
            Instant(now),
            self.seed,
        )
        .map_err(|_| ())?;
        engine.set_unix_time(Instant(now), unix_seconds(now));
        if self.network_up {
            engine.set_network(Instant(now), true);
        }
        self.engine = Some(engine);
        Ok(())
    }
}

impl<const E: usize> DeviceModel for FleetDevice<E> {
    fn handle_timeout(&mut self, now: SimTime) {
        self.now = now;
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_timeout(Instant(now));
        }
    }

    fn handle_frame(&mut self, now: SimTime, frame: &[u8]) {
        self.now = now;
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_frame(Instant(now), frame);
        }
    }

    fn set_network(&mut self, now: SimTime, up: bool) {
        self.now = now;
        self.network_up = up;
        if let Some(engine) = self.engine.as_mut() {
            engine.set_network(Instant(now), up);
        }
    }

    fn report_unhealthy(&mut self, now: SimTime) {
        self.now = now;
        if let Some(engine) = self.engine.as_mut() {
            engine.report_unhealthy(Instant(now));
        }
    }

    fn poll_transmit(&mut self, now: SimTime, out: &mut [u8]) -> Option<usize> {
        self.now = now;
        self.engine.as_mut()?.poll_transmit(Instant(now), out)
    }

    fn poll_event(&mut self) -> Option<DeviceEvent> {
        let now = self.now;
        loop {
            let engine = self.engine.as_mut()?;
            let event = engine.poll_event()?;
            let mapped = match event {
                Event::NetworkWanted => {
                    if self.network_up {
                        engine.set_network(Instant(now), true);
                    }
                    continue;
                }
                Event::JobAccepted { .. } => DeviceEvent::DownloadStarted,
                Event::ResetWanted { deadline, .. } => DeviceEvent::ResetWanted {
                    deadline: deadline.map_or(now + DEFAULT_RESET_DELAY_MS, Instant::as_millis),
                },
                Event::Confirmed { .. } | Event::Completed { .. } => DeviceEvent::Confirmed,
                Event::Failed { .. } | Event::Cancelled { .. } => DeviceEvent::Failed,
                Event::Reverted { .. } => DeviceEvent::Reverted,
                _ => continue,
            };
            return Some(mapped);
        }
    }

    fn poll_timeout(&self) -> Option<SimTime> {
        self.engine.as_ref()?.poll_timeout().map(Instant::as_millis)
    }

    fn power_rail(&self) -> &PowerRail {
        &self.rail
    }

    fn reset(&mut self, now: SimTime) -> BootOutcome {
        self.now = now;
        self.engine = None;
        let booted = match self.run_bootloader() {
            Ok(Some(booted)) => booted,
            Ok(None) => return BootOutcome::PowerLost,
            Err(()) => return BootOutcome::Bricked,
        };
        if self.build_engine(now).is_err() {
            if self.rail.is_down() {
                return BootOutcome::PowerLost;
            }
            // NOTE: an engine that cannot start from flash leaves the device
            // without updates; the report counts it as bricked.
            return BootOutcome::Bricked;
        }
        let image_sha256 = if booted.0 == self.factory_partition_sha256 {
            self.factory_sha256
        } else {
            booted.0
        };
        BootOutcome::Booted {
            image_sha256,
            trial: booted.1,
        }
    }

    fn boots_verified_image(&mut self, now: SimTime) -> bool {
        use sha2::{Digest, Sha256};
        self.now = now;
        self.engine = None;
        let Ok(Some((image, _, size))) = self.run_bootloader() else {
            return false;
        };
        let contents = self.flashes.active.contents();
        let Some(bytes) = contents.get(..size as usize) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        digest == image
    }

    fn settings_digest(&mut self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        let Ok(mut settings) = settings_store(&self.flashes.settings, &self.geometry) else {
            return [0; 32];
        };
        let mut buffer = [0u8; 256];
        for key in [
            setting::DEVICE_ID,
            setting::DEVICE_KEY,
            setting::TARGET_TYPE,
            APPLICATION_SETTING,
        ] {
            hasher.update(key.to_le_bytes());
            match settings.read(key, &mut buffer) {
                Ok(Some(len)) => hasher.update(&buffer[..len]),
                Ok(None) => hasher.update(b"absent"),
                Err(_) => hasher.update(b"unreadable"),
            }
        }
        hasher.finalize().into()
    }

    fn flash_bytes(&self) -> u64 {
        self.geometry.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_server_can_move_between_threads() {
        // Proves at compile time what the parallel simulation needs: a device
        // and the server are `Send`.
        fn send<T: Send>() {}
        send::<FleetDevice<4096>>();
        send::<crate::server_node::CoreServer>();
    }
}
