//! Test world: a device (engine, file store and boot side on flash-sim), a
//! server stub built from syssync-proto, a link between them that can lose or
//! alter frames, and simulated time.
//!
//! The boot side is a small model of a bootloader. Its staging partition is a
//! flash-sim device on the same power rail as the file store, so power cuts
//! tear staging writes. Its state record and settings are kept in a model that
//! changes atomically and rejects every change while the power is down.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use flash_sim::{FlashConfig, FlashSim, FlashSimError, PowerRail};
use syssync_device::boot::setting;
use syssync_device::{
    BootControl, BootPhase, BootStatus, Config, Engine, Event, Instant, NorFileStore, RunningImage,
    StagedImage,
};
use syssync_proto::frame::{encode_downlink, encode_unauthenticated_refusal, Binding, Frame};
use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile, SignedManifest};
use syssync_proto::message::{
    Cancel, Chunk, Confirm, DeviceMessage, Idle, InstalledApplication, InstalledFile, Inventory,
    JobOffer, JobOutcome, JobReport, JobState, Refusal, RegistrationResult, ResetWindow,
    ServerMessage,
};
use syssync_proto::{
    Crypto, DeviceId, DeviceKey, FileName, JobId, RefusalCode, RevertReason, RustCrypto,
    TrustedKey, Version, MAX_FRAME_LEN, MAX_SIGNED_MANIFEST_LEN,
};

pub type StoreFlash = FlashSim<1024, 4>;
pub type StagingFlash = FlashSim<1024, 4>;
pub type Store = NorFileStore<StoreFlash>;
pub type Device = Engine<SimBoot, Store, RustCrypto>;

pub const DEVICE: DeviceId = DeviceId(4242);
pub const KEY: DeviceKey = DeviceKey([0x5A; 32]);
pub const TARGET: &str = "sensor-v2";
pub const RELEASE_SECRET: [u8; 32] = [0x11; 32];
pub const STORE_CAPACITY: usize = 64 * 1024;
pub const STAGING_CAPACITY: usize = 16 * 1024;
pub const CHUNK: u16 = 256;

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    RustCrypto.sha256(&[bytes])
}

/// Deterministic test content.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(u32::from(seed) * 7) as u8
        })
        .collect()
}

pub fn trusted_key() -> TrustedKey {
    TrustedKey {
        id: 1,
        public_key: manifest::public_key(&RELEASE_SECRET),
    }
}

pub fn config() -> Config {
    let mut config = Config::new(&[trusted_key()]).unwrap();
    config.chunk_size = CHUNK;
    config
}

// ---- boot side ----

#[derive(Clone, Debug)]
pub struct BootModel {
    pub phase: BootPhase,
    pub running: RunningImage,
    pub running_counter: u32,
    pub previous: Option<(RunningImage, u32)>,
    pub staged: Option<StagedImage>,
    /// The signed manifest passed with the staged image, encoded.
    pub evidence: Option<Vec<u8>>,
    pub floor: u32,
    pub last_revert: Option<RevertReason>,
    pub last_install_rejected: bool,
    pub trial_boots: u8,
    pub settings: BTreeMap<u16, Vec<u8>>,
    pub confirms: u32,
    /// Models a boot side that cannot withdraw an install request.
    pub refuse_cancel_install: bool,
    /// Failure reports to reject with a flash error before one is recorded.
    pub failing_failure_reports: u32,
}

pub const TRIAL_BOOTS: u8 = 3;

#[derive(Debug)]
pub struct SimBoot {
    pub model: Rc<RefCell<BootModel>>,
    pub staging: StagingFlash,
    pub rail: PowerRail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    Flash(FlashSimError),
    PowerLoss,
    InvalidState,
}

impl SimBoot {
    fn check_power(&self) -> Result<(), BootError> {
        if self.rail.is_down() {
            Err(BootError::PowerLoss)
        } else {
            Ok(())
        }
    }

    /// The bootloader's work at power-on: install, count trial boots, revert.
    pub fn power_on_reset(&mut self) {
        let mut model = self.model.borrow_mut();
        match model.phase {
            BootPhase::InstallRequested => {
                let staged = model.staged.clone().unwrap();
                let bytes = &self.staging.raw()[..staged.size as usize];
                if sha256(bytes) == staged.sha256 {
                    let old = (model.running, model.running_counter);
                    model.previous = Some(old);
                    model.running = RunningImage {
                        version: staged.version,
                        size: staged.size,
                        sha256: staged.sha256,
                    };
                    model.running_counter = staged.security_counter;
                    model.phase = BootPhase::Trial;
                    model.trial_boots = 1;
                    model.last_revert = None;
                    model.last_install_rejected = false;
                } else {
                    model.phase = BootPhase::Idle;
                    model.last_install_rejected = true;
                }
                model.staged = None;
            }
            BootPhase::Trial if model.trial_boots >= TRIAL_BOOTS => {
                revert(&mut model, RevertReason::TRIAL_LIMIT);
            }
            BootPhase::Trial => model.trial_boots += 1,
            BootPhase::RevertRequested => revert(&mut model, RevertReason::APPLICATION_FAILURE),
            BootPhase::Idle | BootPhase::Staging => {}
        }
    }
}

fn revert(model: &mut BootModel, reason: RevertReason) {
    if let Some((image, counter)) = model.previous.take() {
        model.running = image;
        model.running_counter = counter;
    }
    model.phase = BootPhase::Idle;
    model.trial_boots = 0;
    model.last_revert = Some(reason);
}

impl BootControl for SimBoot {
    type Error = BootError;

    fn status(&mut self) -> Result<BootStatus, BootError> {
        self.check_power()?;
        let model = self.model.borrow();
        Ok(BootStatus {
            phase: model.phase,
            running: Some(model.running),
            security_floor: model.floor,
            last_revert: model.last_revert,
            last_install_rejected: model.last_install_rejected,
        })
    }

    fn staging_capacity(&self) -> u32 {
        STAGING_CAPACITY as u32
    }

    fn staging_erase_size(&self) -> u32 {
        StagingFlash::ERASE_SIZE as u32
    }

    fn staging_write_size(&self) -> u32 {
        StagingFlash::WRITE_SIZE as u32
    }

    fn begin_staging(
        &mut self,
        image: &StagedImage,
        manifest: &SignedManifest<'_>,
    ) -> Result<(), BootError> {
        self.check_power()?;
        let mut model = self.model.borrow_mut();
        match model.phase {
            BootPhase::Idle | BootPhase::Staging => {}
            _ => return Err(BootError::InvalidState),
        }
        model.phase = BootPhase::Staging;
        model.staged = Some(image.clone());
        let mut evidence = [0u8; MAX_SIGNED_MANIFEST_LEN];
        model.evidence = Some(manifest.encode(&mut evidence).unwrap().to_vec());
        model.last_revert = None;
        model.last_install_rejected = false;
        Ok(())
    }

    fn erase_staging(&mut self, offset: u32) -> Result<(), BootError> {
        self.staging
            .erase(offset, offset + StagingFlash::ERASE_SIZE as u32)
            .map_err(BootError::Flash)
    }

    fn write_staging(&mut self, offset: u32, data: &[u8]) -> Result<(), BootError> {
        self.staging.write(offset, data).map_err(BootError::Flash)
    }

    fn read_staging(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), BootError> {
        self.staging.read(offset, buf).map_err(BootError::Flash)
    }

    fn request_install(&mut self) -> Result<(), BootError> {
        self.check_power()?;
        let mut model = self.model.borrow_mut();
        match model.phase {
            BootPhase::Staging | BootPhase::InstallRequested => {
                model.phase = BootPhase::InstallRequested;
                Ok(())
            }
            _ => Err(BootError::InvalidState),
        }
    }

    fn cancel_staging(&mut self) -> Result<(), BootError> {
        self.check_power()?;
        let mut model = self.model.borrow_mut();
        if model.phase == BootPhase::InstallRequested && model.refuse_cancel_install {
            return Err(BootError::InvalidState);
        }
        if matches!(
            model.phase,
            BootPhase::Staging | BootPhase::InstallRequested
        ) {
            model.phase = BootPhase::Idle;
            model.staged = None;
        }
        Ok(())
    }

    fn confirm(&mut self) -> Result<(), BootError> {
        self.check_power()?;
        let mut model = self.model.borrow_mut();
        match model.phase {
            BootPhase::Trial => {
                model.phase = BootPhase::Idle;
                model.floor = model.floor.max(model.running_counter);
                model.previous = None;
                model.trial_boots = 0;
                model.confirms += 1;
                Ok(())
            }
            BootPhase::Idle => Ok(()),
            _ => Err(BootError::InvalidState),
        }
    }

    fn report_failure(&mut self) -> Result<(), BootError> {
        self.check_power()?;
        let mut model = self.model.borrow_mut();
        if model.failing_failure_reports > 0 {
            model.failing_failure_reports -= 1;
            return Err(BootError::Flash(FlashSimError::AlreadyProgrammed));
        }
        match model.phase {
            BootPhase::Trial => {
                model.phase = BootPhase::RevertRequested;
                Ok(())
            }
            _ => Err(BootError::InvalidState),
        }
    }

    fn read_setting(&mut self, key: u16, buf: &mut [u8]) -> Result<Option<usize>, BootError> {
        self.check_power()?;
        let model = self.model.borrow();
        match model.settings.get(&key) {
            Some(value) if value.len() <= buf.len() => {
                buf[..value.len()].copy_from_slice(value);
                Ok(Some(value.len()))
            }
            Some(_) => Err(BootError::InvalidState),
            None => Ok(None),
        }
    }

    fn write_setting(&mut self, key: u16, value: &[u8]) -> Result<(), BootError> {
        self.check_power()?;
        self.model.borrow_mut().settings.insert(key, value.to_vec());
        Ok(())
    }
}

// ---- releases ----

#[derive(Clone, Debug)]
pub struct ReleaseFile {
    pub kind: FileKind,
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Release {
    pub manifest: Manifest,
    pub body: Vec<u8>,
    pub signature: syssync_proto::Signature,
    pub files: Vec<Vec<u8>>,
}

pub fn release(
    version: Version,
    security_counter: u32,
    files: &[ReleaseFile],
    remove: &[&str],
) -> Release {
    release_for(
        TARGET,
        version,
        security_counter,
        u64::MAX,
        files,
        remove,
        &RELEASE_SECRET,
    )
}

pub fn release_for(
    target: &str,
    version: Version,
    security_counter: u32,
    expires_at: u64,
    files: &[ReleaseFile],
    remove: &[&str],
    secret: &[u8; 32],
) -> Release {
    let mut manifest = Manifest {
        target: target.try_into().unwrap(),
        version,
        security_counter,
        expires_at,
        files: heapless::Vec::new(),
        remove: heapless::Vec::new(),
    };
    for file in files {
        manifest
            .files
            .push(ManifestFile {
                kind: file.kind,
                name: file.name.try_into().unwrap(),
                size: file.bytes.len() as u32,
                sha256: sha256(&file.bytes),
            })
            .unwrap();
    }
    for name in remove {
        let name: FileName = (*name).try_into().unwrap();
        manifest.remove.push(name).unwrap();
    }
    let mut buf = [0u8; 2048];
    let body = manifest.encode(&mut buf).unwrap().to_vec();
    let signature = manifest::sign(&body, secret);
    Release {
        manifest,
        body,
        signature,
        files: files.iter().map(|file| file.bytes.clone()).collect(),
    }
}

pub fn app(bytes: Vec<u8>) -> ReleaseFile {
    ReleaseFile {
        kind: FileKind::Application,
        name: "app.bin",
        bytes,
    }
}

pub fn plain(name: &'static str, bytes: Vec<u8>) -> ReleaseFile {
    ReleaseFile {
        kind: FileKind::Plain,
        name,
        bytes,
    }
}

pub fn factory_image() -> Vec<u8> {
    content(3000, 200)
}

// ---- server stub ----

#[derive(Clone, Debug)]
pub struct ServerJob {
    pub id: JobId,
    pub release: Release,
    pub reset_window: Option<ResetWindow>,
    pub cancelled: bool,
    pub finished: bool,
    /// Answer the device's cancel report with `Confirm` (a server bug).
    pub confirm_despite_cancel: bool,
}

#[derive(Debug)]
pub struct ServerStub {
    pub key: DeviceKey,
    pub last_counter: u32,
    pub interval_s: u32,
    pub job: Option<ServerJob>,
    pub previous_inventory: Option<Inventory>,
    pub chunk_requests: Vec<(u8, u32, u16)>,
    pub reports: Vec<JobReport>,
    pub inventories: Vec<Inventory>,
    pub check_ins: Vec<syssync_proto::message::CheckIn>,
    pub confirms_sent: u32,
    pub refusals_sent: u32,
    /// Replies that were sent, newest last (for replay tests).
    pub sent: Vec<Vec<u8>>,
}

impl ServerStub {
    pub fn new() -> Self {
        ServerStub {
            key: KEY,
            last_counter: 0,
            interval_s: 900,
            job: None,
            previous_inventory: None,
            chunk_requests: Vec::new(),
            reports: Vec::new(),
            inventories: Vec::new(),
            check_ins: Vec::new(),
            confirms_sent: 0,
            refusals_sent: 0,
            sent: Vec::new(),
        }
    }

    pub fn assign(&mut self, id: u32, release: Release) {
        self.job = Some(ServerJob {
            id: JobId(id),
            release,
            reset_window: None,
            cancelled: false,
            finished: false,
            confirm_despite_cancel: false,
        });
    }

    pub fn expected_inventory_matches(&self, inventory: &Inventory) -> bool {
        let Some(job) = &self.job else {
            return false;
        };
        let manifest = &job.release.manifest;
        if let Some((_, file)) = manifest.application() {
            let expected = InstalledApplication {
                version: manifest.version,
                size: file.size,
                sha256: file.sha256,
            };
            if inventory.application != expected {
                return false;
            }
        }
        manifest
            .files
            .iter()
            .filter(|file| file.kind == FileKind::Plain)
            .all(|file| {
                inventory.files.iter().any(|installed: &InstalledFile| {
                    installed.name == file.name && installed.sha256 == file.sha256
                })
            })
            && manifest.remove.iter().all(|name| {
                inventory
                    .files
                    .iter()
                    .all(|installed| &installed.name != name)
            })
    }

    fn reply_to(&mut self, message: &DeviceMessage) -> ServerMessage<'static> {
        let idle = ServerMessage::Idle(Idle {
            interval_s: self.interval_s,
        });
        match message {
            DeviceMessage::CheckIn(check_in) => {
                self.check_ins.push(*check_in);
                let Some(job) = self.job.as_ref() else {
                    return idle;
                };
                // A device still on trial for the job asks again: the confirm
                // is idempotent, as a lost confirm must be sent again.
                let on_trial = check_in.job.is_some_and(|progress| {
                    progress.job == job.id && progress.state == JobState::Trial
                });
                if job.finished && !on_trial {
                    return idle;
                }
                if job.cancelled {
                    return ServerMessage::Cancel(Cancel { job: job.id });
                }
                match check_in.job {
                    Some(progress)
                        if progress.job == job.id && progress.state == JobState::Trial =>
                    {
                        ServerMessage::InventoryRequest
                    }
                    Some(progress) if progress.job == job.id => idle,
                    _ => self.offer(),
                }
            }
            DeviceMessage::ChunkRequest(request) => {
                self.chunk_requests
                    .push((request.file, request.offset, request.length));
                let Some(job) = self.job.as_ref() else {
                    return refusal(RefusalCode::UNKNOWN_JOB);
                };
                if job.cancelled {
                    return ServerMessage::Cancel(Cancel { job: job.id });
                }
                let Some(bytes) = job.release.files.get(usize::from(request.file)) else {
                    return refusal(RefusalCode::OUT_OF_RANGE);
                };
                let start = request.offset as usize;
                let end = (start + usize::from(request.length)).min(bytes.len());
                if start >= end {
                    return refusal(RefusalCode::OUT_OF_RANGE);
                }
                let data: &'static [u8] = Box::leak(bytes[start..end].to_vec().into_boxed_slice());
                ServerMessage::Chunk(Chunk { data })
            }
            DeviceMessage::JobReport(report) => {
                self.reports.push(*report);
                let Some(job) = self.job.as_mut() else {
                    return idle;
                };
                if report.job != job.id {
                    return idle;
                }
                match report.outcome {
                    JobOutcome::Installed if job.cancelled => {
                        ServerMessage::Cancel(Cancel { job: job.id })
                    }
                    JobOutcome::Cancelled if job.confirm_despite_cancel => {
                        job.finished = true;
                        self.confirms_sent += 1;
                        ServerMessage::Confirm(Confirm { job: job.id })
                    }
                    JobOutcome::Installed => ServerMessage::InventoryRequest,
                    _ => {
                        job.finished = true;
                        idle
                    }
                }
            }
            DeviceMessage::InventoryReport(inventory) => {
                self.inventories.push(inventory.clone());
                let matches = self.expected_inventory_matches(inventory);
                let Some(job) = self.job.as_mut() else {
                    return idle;
                };
                if job.cancelled {
                    return idle;
                }
                if matches {
                    self.confirms_sent += 1;
                    job.finished = true;
                    ServerMessage::Confirm(Confirm { job: job.id })
                } else {
                    idle
                }
            }
            DeviceMessage::RegistrationRequest(request) => {
                ServerMessage::RegistrationResult(RegistrationResult {
                    account: request.account,
                    interval_s: self.interval_s,
                })
            }
        }
    }

    fn offer(&mut self) -> ServerMessage<'static> {
        let job = self.job.as_ref().unwrap();
        let body: &'static [u8] = Box::leak(job.release.body.clone().into_boxed_slice());
        ServerMessage::JobOffer(JobOffer {
            job: job.id,
            reset_window: job.reset_window,
            manifest: SignedManifest {
                key_id: 1,
                body,
                signature: job.release.signature,
            },
        })
    }

    /// Handles one uplink frame and returns the reply frame.
    pub fn handle(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; MAX_FRAME_LEN];
        let frame = match Frame::parse(bytes) {
            Ok(frame) => frame,
            Err(_) => {
                let refusal = Refusal {
                    code: RefusalCode::BAD_MAC,
                    retry_after_s: 0,
                    detail: 0,
                };
                let len = encode_unauthenticated_refusal(&refusal, &mut out).unwrap();
                out.truncate(len);
                return out;
            }
        };
        let (header, message) = match frame.open_uplink(&RustCrypto, &self.key) {
            Ok(opened) => opened,
            Err(_) => {
                let refusal = Refusal {
                    code: RefusalCode::BAD_MAC,
                    retry_after_s: 0,
                    detail: 0,
                };
                let len = encode_unauthenticated_refusal(&refusal, &mut out).unwrap();
                out.truncate(len);
                return out;
            }
        };
        let reply = if header.counter <= self.last_counter {
            self.refusals_sent += 1;
            ServerMessage::Refusal(Refusal {
                code: RefusalCode::STALE_COUNTER,
                retry_after_s: 0,
                detail: self.last_counter,
            })
        } else {
            self.last_counter = header.counter;
            self.reply_to(&message)
        };
        let len = encode_downlink(
            &RustCrypto,
            &self.key,
            Binding::from(header),
            &reply,
            &mut out,
        )
        .unwrap();
        out.truncate(len);
        self.sent.push(out.clone());
        out
    }
}

fn refusal(code: RefusalCode) -> ServerMessage<'static> {
    ServerMessage::Refusal(Refusal {
        code,
        retry_after_s: 0,
        detail: 0,
    })
}

// ---- the world ----

/// What the link does with one frame.
pub enum LinkAction {
    Deliver,
    Drop,
    Replace(Vec<u8>),
}

pub type LinkFilter = Box<dyn FnMut(&[u8]) -> LinkAction>;

pub struct World {
    pub device: Option<Device>,
    pub server: ServerStub,
    pub now: Instant,
    pub rail: PowerRail,
    pub config: Config,
    pub events: Vec<Event>,
    pub resets: u32,
    pub power_cuts: u32,
    pub uplink: Option<LinkFilter>,
    pub downlink: Option<LinkFilter>,
    pub network: bool,
    pub auto_reset: bool,
    pub auto_health: bool,
}

pub fn initial_model() -> BootModel {
    let factory = factory_image();
    let mut settings = BTreeMap::new();
    settings.insert(setting::DEVICE_ID, DEVICE.0.to_le_bytes().to_vec());
    settings.insert(setting::DEVICE_KEY, KEY.0.to_vec());
    settings.insert(setting::TARGET_TYPE, TARGET.as_bytes().to_vec());
    BootModel {
        phase: BootPhase::Idle,
        running: RunningImage {
            version: Version::new(1, 0, 0, 0),
            size: factory.len() as u32,
            sha256: sha256(&factory),
        },
        running_counter: 1,
        previous: None,
        staged: None,
        evidence: None,
        floor: 1,
        last_revert: None,
        last_install_rejected: false,
        trial_boots: 0,
        settings,
        confirms: 0,
        refuse_cancel_install: false,
        failing_failure_reports: 0,
    }
}

impl World {
    pub fn new() -> Self {
        Self::with_config(config())
    }

    pub fn with_config(config: Config) -> Self {
        Self::with_model(config, initial_model())
    }

    pub fn with_model(config: Config, model: BootModel) -> Self {
        let rail = PowerRail::new();
        let store_flash = StoreFlash::new(
            FlashConfig::new(STORE_CAPACITY).strict(true).seed(1),
            rail.clone(),
        )
        .unwrap();
        let staging = StagingFlash::new(
            FlashConfig::new(STAGING_CAPACITY).strict(true).seed(2),
            rail.clone(),
        )
        .unwrap();
        let boot = SimBoot {
            model: Rc::new(RefCell::new(model)),
            staging,
            rail: rail.clone(),
        };
        let store = NorFileStore::new(store_flash, 1).unwrap();
        let now = Instant(1_000);
        let device = Engine::new(config.clone(), boot, store, RustCrypto, now, 7).unwrap();
        let mut world = World {
            device: Some(device),
            server: ServerStub::new(),
            now,
            rail,
            config,
            events: Vec::new(),
            resets: 0,
            power_cuts: 0,
            uplink: None,
            downlink: None,
            network: true,
            auto_reset: true,
            auto_health: false,
        };
        world.device_mut().set_network(now, true);
        world
    }

    pub fn device_mut(&mut self) -> &mut Device {
        self.device.as_mut().unwrap()
    }

    pub fn model(&self) -> BootModel {
        self.device.as_ref().unwrap().boot().model.borrow().clone()
    }

    /// Resets the device: drops all RAM state, runs the bootloader and
    /// rebuilds the engine from flash alone.
    pub fn reset(&mut self) {
        if self.rail.is_down() {
            // Powering on disarms a pending cut, so only do it after one.
            self.rail.power_on();
        }
        let (mut boot, store) = self.device.take().unwrap().into_parts();
        boot.power_on_reset();
        let store = NorFileStore::new(store.into_inner(), 1).unwrap();
        self.now = self.now + syssync_device::Duration(5_000);
        let device = Engine::new(
            self.config.clone(),
            boot,
            store,
            RustCrypto,
            self.now,
            7 + u64::from(self.resets),
        )
        .unwrap();
        self.device = Some(device);
        self.resets += 1;
        let now = self.now;
        let network = self.network;
        self.device_mut().set_network(now, network);
    }

    fn after_call(&mut self) -> bool {
        if self.rail.is_down() {
            self.power_cuts += 1;
            // The cut is the reset: a reset the device wanted does not add another.
            let auto_reset = self.auto_reset;
            self.auto_reset = false;
            self.drain_events();
            self.auto_reset = auto_reset;
            self.reset();
            return true;
        }
        false
    }

    pub fn drain_events(&mut self) {
        let device = self.device.as_mut().unwrap();
        let mut fresh = Vec::new();
        while let Some(event) = device.poll_event() {
            fresh.push(event);
        }
        for event in fresh {
            if let Event::ResetWanted { .. } = event {
                if self.auto_reset {
                    self.events.push(event);
                    self.reset();
                    continue;
                }
            }
            self.events.push(event);
        }
    }

    /// Runs one round: timers, then every frame the device sends now.
    pub fn step(&mut self) {
        let now = self.now;
        self.device_mut().handle_timeout(now);
        if self.after_call() {
            return;
        }
        if self.auto_health && self.model().phase == BootPhase::Trial {
            self.device_mut().confirm_health(now);
        }
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        for _ in 0..4 {
            let Some(len) = self.device_mut().poll_transmit(now, &mut buf) else {
                break;
            };
            if self.after_call() {
                return;
            }
            let uplink = buf[..len].to_vec();
            let uplink = match self
                .uplink
                .as_mut()
                .map_or(LinkAction::Deliver, |f| f(&uplink))
            {
                LinkAction::Deliver => uplink,
                LinkAction::Drop => continue,
                LinkAction::Replace(bytes) => bytes,
            };
            let reply = self.server.handle(&uplink);
            let reply = match self
                .downlink
                .as_mut()
                .map_or(LinkAction::Deliver, |f| f(&reply))
            {
                LinkAction::Deliver => reply,
                LinkAction::Drop => continue,
                LinkAction::Replace(bytes) => bytes,
            };
            self.device_mut().handle_frame(now, &reply);
            if self.after_call() {
                return;
            }
        }
        self.drain_events();
        let next = self
            .device
            .as_ref()
            .unwrap()
            .poll_timeout()
            .unwrap_or(self.now + syssync_device::Duration(1_000));
        self.now = next.max(self.now + syssync_device::Duration(1));
    }

    /// Steps until `done` holds or `max_steps` have run; returns whether it held.
    pub fn run_until(&mut self, max_steps: usize, mut done: impl FnMut(&World) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// The last few events, for failure messages.
    pub fn recent_events(&self) -> &[Event] {
        &self.events[self.events.len().saturating_sub(12)..]
    }

    pub fn job_finished(&self) -> bool {
        self.server.job.as_ref().is_some_and(|job| job.finished)
    }

    pub fn confirmed(&self, id: u32) -> bool {
        self.events.contains(&Event::Confirmed { job: JobId(id) })
    }

    pub fn installed_file(&mut self, name: &str) -> Option<Vec<u8>> {
        use syssync_device::FileStore;
        let store = self.device_mut().store();
        let info = store.find(name).unwrap()?;
        let mut bytes = vec![0u8; info.size as usize];
        let len = store.read(name, 0, &mut bytes).unwrap();
        assert_eq!(len, bytes.len());
        Some(bytes)
    }

    /// Chunk requests per `(file, offset)`.
    pub fn chunk_counts(&self) -> BTreeMap<(u8, u32), usize> {
        let mut counts = BTreeMap::new();
        for (file, offset, _) in &self.server.chunk_requests {
            *counts.entry((*file, *offset)).or_insert(0) += 1;
        }
        counts
    }
}

/// A release with an application image and two plain files.
pub fn standard_release() -> Release {
    release(
        Version::new(1, 1, 0, 0),
        2,
        &[
            app(content(5000, 1)),
            plain("config.json", content(1500, 2)),
            plain("ca.pem", content(700, 3)),
        ],
        &[],
    )
}

pub fn total_chunks(release: &Release) -> usize {
    release
        .files
        .iter()
        .map(|bytes| bytes.len().div_ceil(usize::from(CHUNK)))
        .sum()
}
