//! Scenario tests of the engine on rollback-fsm: the application side stages
//! and confirms through `RollbackFsmBoot`, and rollback-fsm's bootloader
//! installs the image at each reset. Here every piece of state is on
//! flash-sim, so a power cut hits the boot records and settings too.

mod common;

use common::{sha256, standard_release, Release, ServerStub, CHUNK, DEVICE, KEY, TARGET};
use flash_sim::{FlashConfig, FlashSim, PowerRail};
use rollback_fsm::{BootFlashes, BootSide, Layout, Partition, Settings, Sha256, Step};
use syssync_device::boot::setting;
use syssync_device::boot::StagedImage;
use syssync_device::rollback::{RollbackFsmBoot, RollbackFsmError};
use syssync_device::{BootControl, BootPhase, Engine, Event, Instant, NorFileStore};
#[cfg(feature = "authentication")]
use syssync_proto::message::JobOutcome;
use syssync_proto::{JobId, RustCrypto, SignedManifest, MAX_FRAME_LEN};

type Flash = FlashSim<1024, 4>;
type Boot = RollbackFsmBoot<Flash, Flash, Flash>;
type Device = Engine<Boot, NorFileStore<Flash>, RustCrypto>;

const PART: u32 = 16 * 1024;
const SETTINGS: Partition = Partition::new(0, 4096);

fn layout() -> rollback_fsm::Config {
    let layout = Layout {
        active: Partition::new(0, PART),
        staging: Partition::new(0, PART),
        recovery: Partition::new(0, PART),
        state: Partition::new(0, 4096),
    };
    rollback_fsm::Config::try_new(layout, TARGET).unwrap()
}

fn flash(rail: &PowerRail, size: usize) -> Flash {
    Flash::new(FlashConfig::new(size).strict(true), rail.clone()).unwrap()
}

fn engine_config() -> syssync_device::Config {
    let mut config = common::config();
    config.chunk_size = CHUNK;
    config
}

/// A device on rollback-fsm, its server and simulated time.
struct Rig {
    device: Option<Device>,
    server: ServerStub,
    active: Flash,
    recovery: Flash,
    rail: PowerRail,
    now: Instant,
    events: Vec<Event>,
    resets: u32,
    cuts: u32,
    /// Release keys rollback-fsm's bootloader trusts.
    #[cfg(feature = "authentication")]
    boot_keys: Vec<syssync_proto::TrustedKey>,
}

impl Rig {
    fn new(release: Release) -> Self {
        let rail = PowerRail::new();
        let mut settings_flash = flash(&rail, 4096);
        {
            let mut settings = Settings::new(&mut settings_flash, SETTINGS).unwrap();
            settings
                .write(setting::DEVICE_ID, &DEVICE.0.to_le_bytes())
                .unwrap();
            settings.write(setting::DEVICE_KEY, &KEY.0).unwrap();
            settings
                .write(setting::TARGET_TYPE, TARGET.as_bytes())
                .unwrap();
        }
        let boot = Boot::new(
            layout(),
            flash(&rail, PART as usize),
            flash(&rail, 4096),
            settings_flash,
            SETTINGS,
        )
        .unwrap();
        let store = NorFileStore::new(flash(&rail, 64 * 1024), 1).unwrap();
        let now = Instant(0);
        let mut engine = Engine::new(engine_config(), boot, store, RustCrypto, now, 3).unwrap();
        engine.set_network(now, true);
        let mut server = ServerStub::new();
        server.assign(9, release);
        Rig {
            device: Some(engine),
            server,
            active: flash(&rail, PART as usize),
            recovery: flash(&rail, PART as usize),
            rail,
            now,
            events: Vec::new(),
            resets: 0,
            cuts: 0,
            #[cfg(feature = "authentication")]
            boot_keys: vec![common::trusted_key()],
        }
    }

    /// Resets: powers on if the power failed, runs rollback-fsm's bootloader
    /// until it boots the active image, and rebuilds the engine from flash.
    fn reset(&mut self) {
        if self.rail.is_down() {
            self.rail.power_on();
        }
        let (boot, store) = self.device.take().unwrap().into_parts();
        let (mut staging, mut state, settings) = boot.into_parts();
        loop {
            let flashes = BootFlashes {
                active: &mut self.active,
                staging: &mut staging,
                recovery: &mut self.recovery,
                state: &mut state,
            };
            let mut side = BootSide::new(&layout(), flashes, Sha256::default()).unwrap();
            // With authentication the bootloader installs only an image that
            // the stored signed manifest describes, signed by a trusted key.
            #[cfg(feature = "authentication")]
            let authenticator =
                rollback_fsm::ManifestAuthenticator::with_crypto(&self.boot_keys, RustCrypto);
            #[cfg(feature = "authentication")]
            side.set_authenticator(&authenticator);
            let booted = loop {
                match side.step() {
                    Ok(Step::Continue(_)) => {}
                    Ok(Step::BootActive) => break true,
                    // A cut while the bootloader runs: it starts again at power-on.
                    Err(_) if self.rail.is_down() => break false,
                    Err(error) => panic!("bootloader failed: {error:?}"),
                }
            };
            if booted {
                break;
            }
            self.cuts += 1;
            self.rail.power_on();
        }
        let boot = Boot::new(layout(), staging, state, settings, SETTINGS).unwrap();
        let store = NorFileStore::new(store.into_inner(), 1).unwrap();
        self.now = Instant(self.now.0 + 5_000);
        let mut engine =
            Engine::new(engine_config(), boot, store, RustCrypto, self.now, 3).unwrap();
        engine.set_network(self.now, true);
        self.device = Some(engine);
        self.resets += 1;
    }

    /// Returns whether the power failed during the last engine call.
    fn cut(&mut self) -> bool {
        if self.rail.is_down() {
            self.cuts += 1;
            self.reset();
            return true;
        }
        false
    }

    fn step(&mut self) {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let now = self.now;
        self.device.as_mut().unwrap().handle_timeout(now);
        if self.cut() {
            return;
        }
        while let Some(len) = self.device.as_mut().unwrap().poll_transmit(now, &mut buf) {
            if self.cut() {
                return;
            }
            let reply = self.server.handle(&buf[..len]);
            self.device.as_mut().unwrap().handle_frame(now, &reply);
            if self.cut() {
                return;
            }
        }
        let mut reset = false;
        while let Some(event) = self.device.as_mut().unwrap().poll_event() {
            reset |= matches!(event, Event::ResetWanted { .. });
            self.events.push(event);
        }
        let next = self.device.as_ref().unwrap().poll_timeout().unwrap_or(now);
        self.now = next.max(Instant(now.0 + 1));
        if reset {
            self.reset();
        }
    }

    fn confirmed(&self) -> bool {
        self.events.contains(&Event::Confirmed { job: JobId(9) })
    }

    fn run_until_confirmed(&mut self) -> bool {
        for _ in 0..5_000 {
            if self.confirmed() {
                return true;
            }
            self.step();
        }
        self.confirmed()
    }
}

#[test]
fn update_through_rollback_fsm() {
    // Proves a whole update on rollback-fsm: staging through the adapter,
    // installation and trial boot by its bootloader, and confirm on the
    // server's word, with the identity read from its settings.
    let release = standard_release();
    let mut rig = Rig::new(release.clone());
    assert!(rig.run_until_confirmed(), "events: {:?}", rig.events);

    assert_eq!(
        &rig.active.raw()[..release.files[0].len()],
        &release.files[0][..]
    );
    let (mut boot, _) = rig.device.take().unwrap().into_parts();
    let status = boot.status().unwrap();
    assert_eq!(status.phase, BootPhase::Idle);
    assert_eq!(
        status.running.map(|image| image.sha256),
        Some(sha256(&release.files[0]))
    );
    assert_eq!(status.security_floor, 2);
    assert_eq!(
        rig.server.reports.first().map(|report| report.job),
        Some(JobId(9))
    );
}

#[test]
fn adapter_reports_each_request() {
    // Proves that `RollbackFsmBoot` reports the phase after each request,
    // keeps a restaged identical image, and rejects the cancel of a
    // requested install.
    let rail = PowerRail::new();
    let mut boot = Boot::new(
        layout(),
        flash(&rail, PART as usize),
        flash(&rail, 4096),
        flash(&rail, 4096),
        SETTINGS,
    )
    .unwrap();
    let status = boot.status().unwrap();
    assert_eq!(status.phase, BootPhase::Idle);
    assert_eq!(status.running, None);
    assert!(!status.last_install_rejected);

    let release = standard_release();
    let image = StagedImage {
        size: release.files[0].len() as u32,
        sha256: sha256(&release.files[0]),
        target: release.manifest.target.clone(),
        version: release.manifest.version,
        security_counter: release.manifest.security_counter,
    };
    let manifest = SignedManifest {
        key_id: 1,
        body: &release.body,
        signature: release.signature,
    };
    boot.begin_staging(&image, &manifest).unwrap();
    assert_eq!(boot.status().unwrap().phase, BootPhase::Staging);
    boot.begin_staging(&image, &manifest).unwrap();
    assert_eq!(boot.status().unwrap().phase, BootPhase::Staging);
    assert_eq!(boot.cancel_staging(), Ok(()));

    boot.request_install().unwrap();
    let status = boot.status().unwrap();
    assert_eq!(status.phase, BootPhase::InstallRequested);
    assert_eq!(status.running, None);
    assert_eq!(
        boot.cancel_staging(),
        Err(RollbackFsmError::CannotCancelInstall)
    );
}

#[test]
fn power_cut_sweep_on_rollback_fsm() {
    // Proves that a power cut before any flash operation of the device, the
    // boot records and settings included, leaves a device that restarts
    // through rollback-fsm's bootloader and finishes the update. No replay
    // counter is reused, and only the chunk in flight is fetched twice.
    let release = standard_release();
    let mut clean = Rig::new(release.clone());
    assert!(clean.run_until_confirmed());
    let total_ops = clean.rail.ops_total();
    assert!(
        total_ops > 100,
        "the update takes {total_ops} flash operations"
    );
    for ops in 0..total_ops {
        let mut rig = Rig::new(release.clone());
        rig.rail.cut_after_ops(ops);
        let done = rig.run_until_confirmed();
        assert!(
            done,
            "cut after {ops} operations: events {:?}, reports {:?}, inventory {:?}, status {:?}, cuts {}",
            rig.events,
            rig.server.reports,
            rig.server.inventories.last(),
            rig.device.take().map(|device| device.into_parts().0.status()),
            rig.cuts
        );
        assert_eq!(
            &rig.active.raw()[..release.files[0].len()],
            &release.files[0][..],
            "cut after {ops} operations"
        );
        assert_eq!(rig.server.refusals_sent, 0, "cut after {ops} operations");
        let mut counts = std::collections::BTreeMap::new();
        for (file, offset, _) in &rig.server.chunk_requests {
            *counts.entry((*file, *offset)).or_insert(0usize) += 1;
        }
        let repeated = counts.values().filter(|count| **count > 1).count();
        assert!(repeated <= 1, "cut after {ops} operations: {counts:?}");
    }
}

#[cfg(feature = "authentication")]
#[test]
fn bootloader_rejects_a_manifest_it_does_not_trust() {
    // Proves that the staged image reaches rollback-fsm's bootloader with the
    // signed manifest as evidence, and that the bootloader checks it. A
    // bootloader that trusts another release key rejects the image and keeps
    // the running one, and the device reports the job as failed.
    let release = standard_release();
    let mut rig = Rig::new(release.clone());
    rig.boot_keys = vec![syssync_proto::TrustedKey {
        id: common::trusted_key().id,
        public_key: syssync_proto::manifest::public_key(&[0x22; 32]),
    }];
    for _ in 0..5_000 {
        if !rig.server.reports.is_empty() {
            break;
        }
        rig.step();
    }
    let report = rig.server.reports.first().expect("no job report");
    assert!(
        matches!(report.outcome, JobOutcome::Failed(_)),
        "report {report:?}"
    );
    assert!(!rig.confirmed());
    assert_ne!(
        &rig.active.raw()[..release.files[0].len()],
        &release.files[0][..]
    );
    let (mut boot, _) = rig.device.take().unwrap().into_parts();
    let status = boot.status().unwrap();
    assert!(status.last_install_rejected, "status {status:?}");
}
