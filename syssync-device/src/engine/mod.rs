//! The update engine: one way in, one way out.
//!
//! Inputs: [`Engine::handle_frame`], [`Engine::handle_timeout`],
//! [`Engine::set_network`], [`Engine::set_unix_time`],
//! [`Engine::confirm_health`] and [`Engine::report_unhealthy`]. Outputs:
//! [`Engine::poll_transmit`] (a frame to send), [`Engine::poll_event`] (news for
//! the application) and [`Engine::poll_timeout`] (when to call
//! [`Engine::handle_timeout`] next). Building the engine with [`Engine::new`]
//! after a reset is the "reset done" input: it reads everything it needs from
//! the boot side and the file store.
//!
//! # Code size
//!
//! The inputs and outputs that decode a manifest, build an inventory or do
//! background work are marked `#[inline(never)]`. With LTO and `opt-level =
//! "z"`, a firmware's drive loop otherwise inlines the whole engine into one
//! function whose stack frame contains every large local at once: 16 KiB in
//! the Cortex-M4 device-side size probe of `benches/footprint`. Thumb-2
//! loads and stores reach only 4 KiB from the stack pointer, so most
//! accesses in that frame took an extra instruction. Kept out of line, the
//! probe's code is about 2 KiB smaller and its drive loop's frame 6.8 KiB.

mod download;
mod offer;
mod record;
mod restore;

use core::mem::MaybeUninit;

use syssync_proto::frame::{derive_device_key, encode_uplink, Binding, Frame};
use syssync_proto::message::{
    CheckIn, ChunkRequest, DeviceMessage, InstalledApplication, Inventory, JobOutcome, JobProgress,
    JobReport, JobState, RegistrationRequest, ServerMessage, UplinkHeader,
};
use syssync_proto::{
    name_from_utf8, AccountId, Crypto, DeviceId, DeviceKey, FailureCode, FrameError, JobId,
    Manifest, RefusalCode, RejectReason, RevertReason, TargetType, Version,
};

use crate::boot::{setting, BootControl, BootPhase, BootStatus};
use crate::config::{ConfigError, ConfirmPolicy};
use crate::store::FileStore;
use crate::time::{Duration, Instant, Jitter};
use crate::Config;

use crate::trace::{log_info, log_warn};

use self::record::{JobRecord, Phase, FLAG_INSTALL_REPORTED, FLAG_STAGING};

/// Replay counters reserved in settings per write, so that a reset never
/// reuses a counter and the settings are written once per this many requests.
pub const COUNTER_BLOCK: u32 = 256;

/// Maximum number of undrained events; the oldest is dropped when it is full.
pub const EVENT_CAPACITY: usize = 16;

// The engine counts its undrained events in a `u8`.
const _: () = assert!(EVENT_CAPACITY > 0 && EVENT_CAPACITY <= u8::MAX as usize);

/// News for the application, drained with [`Engine::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// A word-sized tag puts the fields at word offsets, so that building and
// copying an event takes less code on 32-bit targets: 16 bytes less in the
// Cortex-M4 size probe of `benches/footprint`. The size is unchanged.
#[repr(u32)]
pub enum Event {
    /// A request is due but the network is down: bring it up and call
    /// [`Engine::set_network`].
    NetworkWanted,
    /// A job was accepted; `bytes` will be downloaded.
    JobAccepted {
        /// The job.
        job: JobId,
        /// Bytes to fetch (files that are already installed cost nothing).
        bytes: u32,
    },
    /// A job offer was refused before anything was downloaded, and reported.
    OfferRejected {
        /// The job.
        job: JobId,
        /// Why.
        reason: RejectReason,
    },
    /// Installed files are about to change: stop using them. The change starts
    /// at the next call into the engine.
    FilesChanging {
        /// The job.
        job: JobId,
    },
    /// A reset is wanted: to boot a staged image, or to revert a failed trial
    /// image. The application chooses the moment within the window.
    ResetWanted {
        /// The job, or `JobId(0)` for a trial image that belongs to no known job.
        job: JobId,
        /// Earliest instant the server allows, if it set a window.
        not_before: Option<Instant>,
        /// Latest instant the server allows, if it set a window.
        deadline: Option<Instant>,
    },
    /// The new image was made permanent.
    Confirmed {
        /// The job.
        job: JobId,
    },
    /// A job without an application image finished: its files are installed.
    Completed {
        /// The job.
        job: JobId,
    },
    /// The job failed before the new image ran; staged data was discarded.
    Failed {
        /// The job.
        job: JobId,
        /// Why.
        code: FailureCode,
    },
    /// The new image ran on trial and the device went back to the previous one.
    Reverted {
        /// The job.
        job: JobId,
        /// Why.
        reason: RevertReason,
    },
    /// The server cancelled the job; staged data was discarded.
    Cancelled {
        /// The job.
        job: JobId,
    },
    /// A received frame was rejected (bad length, CRC, version, MAC, body, or
    /// an unauthenticated refusal, which is only advice).
    FrameRejected(FrameError),
    /// A frame arrived with no request outstanding: late, duplicated or replayed.
    UnexpectedFrame,
    /// The server refused a request.
    Refused(RefusalCode),
    /// A chunk reply did not have the requested length; the chunk is requested again.
    ChunkRejected {
        /// Bytes requested.
        expected: u16,
        /// Bytes received.
        received: usize,
    },
    /// A flash operation of the boot side or the file store failed.
    StorageFailed,
    /// Automatic registration succeeded.
    Registered {
        /// The account that owns the device.
        account: AccountId,
    },
}

/// Why [`Engine::new`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// A word-sized tag, as for `Event`.
#[repr(u32)]
pub enum InitError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// A setting is missing or malformed: device id, target type, and either a
    /// device key or an account with a claim token.
    MissingIdentity(u16),
    /// The boot side or the file store could not be read.
    Storage,
    /// The scratch area is smaller than a staging or file store sector, or a
    /// write size does not divide 64 bytes.
    Geometry,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Config(error) => write!(f, "invalid configuration: {error}"),
            InitError::MissingIdentity(key) => {
                write!(f, "setting {key:#06x} is missing or malformed")
            }
            InitError::Storage => f.write_str("boot side or file store could not be read"),
            InitError::Geometry => f.write_str(
                "scratch area smaller than a staging or file store sector, or a write size that does not divide 64",
            ),
        }
    }
}

impl core::error::Error for InitError {}

/// Logs an event with its ids and codes.
fn log_event(event: &Event) {
    match *event {
        Event::NetworkWanted => log_info!("network wanted for a due request"),
        Event::JobAccepted { job, bytes } => {
            log_info!("job {} accepted: {} bytes to fetch", job.0, bytes)
        }
        Event::OfferRejected { job, reason } => {
            log_warn!("job {} rejected: reason {}", job.0, reason.0)
        }
        Event::FilesChanging { job } => log_info!("job {}: files about to change", job.0),
        Event::ResetWanted { job, .. } => log_info!("job {}: reset wanted", job.0),
        Event::Confirmed { job } => log_info!("job {}: image confirmed", job.0),
        Event::Completed { job } => log_info!("job {}: files installed", job.0),
        Event::Failed { job, code } => log_warn!("job {} failed: code {}", job.0, code.0),
        Event::Reverted { job, reason } => {
            log_warn!("job {} reverted: reason {}", job.0, reason.0)
        }
        Event::Cancelled { job } => log_info!("job {} cancelled by the server", job.0),
        Event::FrameRejected(_) => log_warn!("received frame rejected"),
        Event::UnexpectedFrame => log_warn!("frame received with no request outstanding"),
        Event::Refused(code) => log_warn!("request refused by the server: code {}", code.0),
        Event::ChunkRejected { expected, received } => log_warn!(
            "chunk of {} bytes rejected: {} requested",
            received,
            expected
        ),
        Event::StorageFailed => log_warn!("flash operation failed"),
        Event::Registered { account } => log_info!("registered with account {}", account.0),
    }
}

/// A request the engine sends, rebuilt from its state for each attempt.
///
/// With `repr(u32)` the fields follow a 4-byte tag in the order declared,
/// so a request is copied in whole words, where the 1-byte tag of the
/// default layout made each copy a `memcpy` call. The chunk's fields are
/// in the order that took the least code in the Cortex-M4 size probe of
/// `benches/footprint`: 36 bytes less in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum Request {
    Registration,
    CheckIn,
    Inventory,
    Chunk { offset: u32, file: u8, length: u16 },
    Report(JobReport),
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    counter: u32,
    request: Request,
    deadline: Instant,
}

/// Destination of one manifest file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dest<H> {
    Staging,
    File(H),
}

struct ActiveJob<H, V> {
    record: JobRecord,
    manifest: Option<Manifest>,
    pending: Option<H>,
    staging_begun: bool,
    verify: Option<(V, u32)>,
    reset_window: Option<(Instant, Instant)>,
    files_event: bool,
}

/// The device's update engine, sans IO (see the crate docs for the drive loop).
///
/// `B` is the boot side, `S` the file store and `C` the cryptography.
pub struct Engine<B, S: FileStore, C: Crypto> {
    config: Config,
    boot: B,
    store: S,
    crypto: C,
    device: DeviceId,
    key: DeviceKey,
    target: TargetType,
    registration: Option<AccountId>,
    counter: u32,
    reserved: u32,
    status: BootStatus,
    network_up: bool,
    network_wanted: bool,
    unix_offset_ms: Option<i64>,
    jitter: Jitter,
    interval_s: u32,
    next_check_in: Instant,
    outstanding: Option<Outstanding>,
    retry_at: Instant,
    backoff_ms: u64,
    inventory_requested: bool,
    /// Digest of the inventory as of the last check-in without a job. It
    /// saves reading the whole file directory from flash at every check-in.
    /// A job clears it when it starts, because only a job changes files, and
    /// so does every read of the boot status.
    inventory_digest: Option<[u8; 8]>,
    side_report: Option<JobReport>,
    job: Option<ActiveJob<S::Handle, C::Sha256>>,
    /// Undrained events, oldest first: a ring of `event_count` events from
    /// index `event_head`. A plain array takes less code than
    /// `heapless::Deque`, whose `push_back` copies each event twice.
    events: [Event; EVENT_CAPACITY],
    event_head: u8,
    event_count: u8,
    last_now: Instant,
    storage_failures: u8,
    /// Instant at which an image still on trial is given up, set when the
    /// engine starts with an image on trial.
    trial_deadline: Option<Instant>,
}

/// Returns `percent` % of `interval_s` seconds in milliseconds:
/// `interval_s * 1000 * percent / 100` without the 64-bit division.
fn jitter_spread_ms(interval_s: u32, percent: u8) -> u64 {
    u64::from(interval_s) * 10 * u64::from(percent)
}

/// Reads the identity settings for `Engine::new` and records the first error.
///
/// A failed read records its error and returns 0, as for a setting that is
/// not set, and the engine checks for an error once, after the last read.
/// That first error is the one that returning at each failed read would
/// give, because the reads after it change nothing. In the Cortex-M4 size
/// probe of `benches/footprint`, the one check took 160 bytes less code
/// than a `?` after each read.
struct IdentityReader<'b, B> {
    boot: &'b mut B,
    error: Option<InitError>,
}

impl<B: BootControl> IdentityReader<'_, B> {
    fn fail(&mut self, error: InitError) {
        self.error.get_or_insert(error);
    }

    /// Reads setting `key` into `buf` and returns its length. It returns 0
    /// for a setting that is not set, one that cannot be read (recording
    /// `Storage`), and one shorter than `min` or longer than `buf`
    /// (recording `MissingIdentity(key)` if `strict`). `min` is at least 1,
    /// so 0 is never the length of a value that was read.
    fn read(&mut self, key: u16, buf: &mut [u8], min: usize, strict: bool) -> usize {
        match self.boot.read_setting(key, buf) {
            Ok(Some(len)) if (min..=buf.len()).contains(&len) => return len,
            Ok(None) => {}
            Ok(Some(_)) if strict => self.fail(InitError::MissingIdentity(key)),
            Ok(Some(_)) => {}
            Err(_) => self.fail(InitError::Storage),
        }
        0
    }

    /// Reads setting `key` as `read` does, and records `MissingIdentity(key)`
    /// if it is not set or malformed too.
    fn required(&mut self, key: u16, buf: &mut [u8], min: usize) -> usize {
        let len = self.read(key, buf, min, true);
        if len == 0 {
            self.fail(InitError::MissingIdentity(key));
        }
        len
    }
}

impl<B: BootControl, S: FileStore, C: Crypto> Engine<B, S, C> {
    /// Builds the engine from the boot side's settings and status and the file
    /// store's journal, after every reset.
    ///
    /// `now` is the current monotonic time and `seed` seeds the check-in jitter.
    /// Give each device its own seed (its id works) so a fleet spreads its check-ins.
    ///
    /// A firmware that keeps the engine in a static builds it there with
    /// [`Engine::new_in`] instead.
    // Out of line because the engine it builds is about 3 KiB (see "Code size").
    #[inline(never)]
    pub fn new(
        config: Config,
        boot: B,
        store: S,
        crypto: C,
        now: Instant,
        seed: u64,
    ) -> Result<Self, InitError> {
        // The result is returned as `assemble` built it. Binding the engine
        // and returning `Ok(engine)` held a second copy of it in this frame:
        // 6,336 bytes against 3,176 in the Cortex-M4 size probe.
        let mut result = Self::assemble(config, boot, store, crypto, now, seed);
        if let Ok(engine) = &mut result {
            engine.start(now)?;
        }
        result
    }

    /// Builds the engine as [`Engine::new`] does, but writes it into `slot`
    /// and returns it there. After an error `slot` may hold an engine that
    /// must not be used.
    ///
    /// It is for an engine kept in a static (a `MaybeUninit`, which goes in
    /// `.bss`). The caller's frame then contains no `Result` with the 3.1 KiB
    /// engine in it, as it does with `Engine::new`. `new_in` itself still
    /// builds the engine in its own frame and then moves it into `slot`, so
    /// one copy remains on the stack while it runs. In the Cortex-M4 size
    /// probe of `benches/footprint` the stack bound from `main` is 9,460
    /// bytes with `new_in` and 12,572 with `new`.
    // Out of line because the engine it builds is about 3 KiB (see "Code size").
    #[inline(never)]
    pub fn new_in(
        slot: &mut MaybeUninit<Self>,
        config: Config,
        boot: B,
        store: S,
        crypto: C,
        now: Instant,
        seed: u64,
    ) -> Result<&mut Self, InitError> {
        // Written straight from the result: `?` moved the engine through
        // another stack copy first.
        let engine = match Self::assemble(config, boot, store, crypto, now, seed) {
            Ok(engine) => slot.write(engine),
            Err(error) => return Err(error),
        };
        engine.start(now)?;
        Ok(engine)
    }

    /// Checks the configuration and the geometry, reads the identity
    /// settings and the boot status, and returns the engine without a job.
    #[inline(never)]
    fn assemble(
        config: Config,
        mut boot: B,
        store: S,
        crypto: C,
        now: Instant,
        seed: u64,
    ) -> Result<Self, InitError> {
        config.validate().map_err(InitError::Config)?;
        let scratch = store.scratch_size();
        let divides_unit = |size: u32| size != 0 && 64 % size == 0;
        if scratch < boot.staging_erase_size()
            || scratch < store.erase_size()
            || !divides_unit(boot.staging_write_size())
            || !divides_unit(store.write_size())
        {
            return Err(InitError::Geometry);
        }

        let mut settings = IdentityReader {
            boot: &mut boot,
            error: None,
        };
        let mut device_bytes = [0u8; 8];
        settings.required(setting::DEVICE_ID, &mut device_bytes, 8);
        let device = DeviceId(u64::from_le_bytes(device_bytes));
        let mut target_bytes = [0u8; 32];
        let len = settings.required(setting::TARGET_TYPE, &mut target_bytes, 1);
        let target = name_from_utf8(&target_bytes[..len]).unwrap_or_else(|_| {
            settings.fail(InitError::MissingIdentity(setting::TARGET_TYPE));
            TargetType::new()
        });
        let mut key_bytes = [0u8; 32];
        // A missing or malformed device key means automatic registration.
        let (key, registration) =
            match settings.read(setting::DEVICE_KEY, &mut key_bytes, 32, false) {
                0 => {
                    let mut account_bytes = [0u8; 8];
                    settings.required(setting::ACCOUNT, &mut account_bytes, 8);
                    let account = AccountId(u64::from_le_bytes(account_bytes));
                    let mut token = [0u8; 64];
                    let len = settings.required(setting::CLAIM_TOKEN, &mut token, 1);
                    (
                        derive_device_key(&crypto, &token[..len], device),
                        Some(account),
                    )
                }
                _ => (DeviceKey(key_bytes), None),
            };
        let mut reserved_bytes = [0u8; 4];
        let reserved = match settings.read(setting::COUNTER_RESERVED, &mut reserved_bytes, 4, true)
        {
            0 => 0,
            _ => u32::from_le_bytes(reserved_bytes),
        };
        if let Some(error) = settings.error {
            return Err(error);
        }
        let Ok(status) = boot.status() else {
            return Err(InitError::Storage);
        };

        let mut jitter = Jitter::new(seed);
        let interval_s = config.check_in_interval_s;
        let first_delay =
            jitter.below_or_equal(jitter_spread_ms(interval_s, config.jitter_percent));
        let backoff_ms = config.retry_initial_ms;
        Ok(Engine {
            config,
            boot,
            store,
            crypto,
            device,
            key,
            target,
            registration,
            counter: reserved,
            reserved,
            status,
            network_up: false,
            network_wanted: false,
            unix_offset_ms: None,
            jitter,
            interval_s,
            next_check_in: now + Duration(first_delay),
            outstanding: None,
            retry_at: now,
            backoff_ms,
            inventory_requested: false,
            inventory_digest: None,
            side_report: None,
            job: None,
            // The slots' contents are never read before they are written.
            events: [Event::NetworkWanted; EVENT_CAPACITY],
            event_head: 0,
            event_count: 0,
            last_now: now,
            storage_failures: 0,
            trial_deadline: None,
        })
    }

    /// Restores the job and the trial deadline of an assembled engine.
    fn start(&mut self, now: Instant) -> Result<(), InitError> {
        self.restore_job(now)?;
        self.revert_orphan_trial();
        let timeout_s = self.config.trial_timeout_s;
        if self.status.phase == BootPhase::Trial && timeout_s != 0 {
            self.trial_deadline = Some(now + Duration(u64::from(timeout_s) * 1000));
        }
        Ok(())
    }

    /// Returns the device id read from the settings.
    pub fn device_id(&self) -> DeviceId {
        self.device
    }

    /// Returns the boot side, for inspection.
    pub fn boot(&self) -> &B {
        &self.boot
    }

    /// Returns the file store, for reading installed files.
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// Consumes the engine and returns the boot side and the file store.
    pub fn into_parts(self) -> (B, S) {
        (self.boot, self.store)
    }

    /// Returns the interval between check-ins in force, in seconds.
    pub fn check_in_interval_s(&self) -> u32 {
        self.interval_s
    }

    /// Returns the instant of the next periodic check-in.
    pub fn next_check_in(&self) -> Instant {
        self.next_check_in
    }

    // ---- inputs ----

    /// Tells the engine whether the network is up. While it is down nothing is
    /// sent; a due request raises [`Event::NetworkWanted`] once.
    pub fn set_network(&mut self, now: Instant, up: bool) {
        self.last_now = now;
        self.network_up = up;
        if up {
            self.network_wanted = false;
        } else if let Some(outstanding) = self.outstanding.take() {
            // The reply cannot arrive any more; send again when the network is back.
            self.last_request_lost(outstanding);
        }
    }

    /// Gives the engine a trusted wall clock: `unix_s` is the Unix time at `now`.
    /// Without it manifest expiry cannot be checked, and the engine follows
    /// [`Config::expiry_without_clock`].
    pub fn set_unix_time(&mut self, now: Instant, unix_s: u64) {
        let unix_ms = i128::from(unix_s) * 1000;
        let offset = unix_ms - i128::from(now.0);
        self.unix_offset_ms = i64::try_from(offset).ok();
    }

    /// Reports that the application's health check passed. With [`ConfirmPolicy::Application`]
    /// this confirms a trial image (unless the server cancelled the job) and
    /// queues the install report. With [`ConfirmPolicy::Server`] it does nothing.
    pub fn confirm_health(&mut self, now: Instant) {
        self.last_now = now;
        if self.config.confirm_policy != ConfirmPolicy::Application {
            return;
        }
        let Some(job) = self.job.as_ref() else {
            return;
        };
        if job.record.phase != Phase::Trial {
            return;
        }
        let id = job.record.job;
        if !self.end_trial(true) {
            return;
        }
        self.set_outcome(JobOutcome::Installed);
        self.push(Event::Confirmed { job: id });
    }

    /// Reports the trial image as unhealthy: the next boot reverts it, and the
    /// engine reports the revert to the server.
    pub fn report_unhealthy(&mut self, now: Instant) {
        self.last_now = now;
        // On a flash error the application gets `StorageFailed` and can call again.
        let _ = self.revert_trial(RevertReason::APPLICATION_FAILURE);
    }

    /// Makes the next boot revert the trial image, for `reason`, and requests
    /// that reset.
    ///
    /// Returns false if the boot side failed to record the failure.
    fn revert_trial(&mut self, reason: RevertReason) -> bool {
        if self.status.phase != BootPhase::Trial {
            self.trial_deadline = None;
            return true;
        }
        if !self.end_trial(false) {
            return false;
        }
        self.trial_deadline = None;
        if let Some(id) = self.job.as_ref().map(|job| job.record.job) {
            self.set_outcome(JobOutcome::Reverted(reason));
            self.push_reset_wanted(id);
        }
        true
    }

    /// Confirms the trial image, or reports it as failed if `confirm` is
    /// false, and reads the new boot status. Returns false after raising
    /// `StorageFailed` if the boot side could not record it.
    // Out of line, because five inputs end a trial and one call is smaller
    // than the calls and checks it contains.
    #[inline(never)]
    fn end_trial(&mut self, confirm: bool) -> bool {
        let recorded = if confirm {
            self.boot.confirm().is_ok()
        } else {
            self.boot.report_failure().is_ok()
        };
        if !recorded {
            self.push_storage_failed();
            return false;
        }
        self.refresh_status();
        true
    }

    /// Handles one received frame: a reply to the outstanding request, or
    /// something to reject. Writes at most one chunk to flash.
    // Out of line because it decodes and dispatches every reply (see "Code size").
    #[inline(never)]
    pub fn handle_frame(&mut self, now: Instant, bytes: &[u8]) {
        self.last_now = now;
        let frame = match Frame::parse(bytes) {
            Ok(frame) => frame,
            Err(error) => {
                self.push(Event::FrameRejected(error));
                return;
            }
        };
        let Some(outstanding) = self.outstanding else {
            self.push(Event::UnexpectedFrame);
            return;
        };
        let binding = Binding {
            device: self.device,
            counter: outstanding.counter,
        };
        match frame.open_downlink(&self.crypto, &self.key, binding) {
            Ok(message) => {
                self.outstanding = None;
                self.backoff_ms = self.config.retry_initial_ms;
                self.dispatch(now, outstanding.request, message);
            }
            Err(FrameError::UnauthenticatedRefusal(refusal)) => {
                // Anyone on the path can forge this: back off, change nothing else.
                self.push(Event::FrameRejected(FrameError::UnauthenticatedRefusal(
                    refusal,
                )));
                self.outstanding = None;
                let delay = self.config.retry_delay_ms(refusal.retry_after_s);
                self.retry_at = now + Duration(delay);
            }
            Err(error) => self.push(Event::FrameRejected(error)),
        }
    }

    /// Handles timers: request timeouts, due check-ins, and one step of
    /// background work (verifying a file, committing a file, finishing an
    /// interrupted sector move). Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if let Some(outstanding) = self.outstanding {
            if now >= outstanding.deadline {
                self.outstanding = None;
                self.last_request_lost(outstanding);
                let delay = self.backoff_ms;
                self.retry_at = now + Duration(delay);
                self.backoff_ms = delay.saturating_mul(2).min(self.config.retry_max_ms);
            }
        }
        if self.trial_deadline.is_some_and(|deadline| now >= deadline)
            && !self.revert_trial(RevertReason::TRIAL_TIMEOUT)
        {
            // The boot side could not record the failure: try again after
            // the first retry delay.
            self.trial_deadline = Some(now + Duration(self.config.retry_initial_ms));
        }
        if !self.network_up && !self.network_wanted && self.next_request(now).is_some() {
            self.network_wanted = true;
            self.push(Event::NetworkWanted);
        }
        self.work_step(now);
    }

    // ---- outputs ----

    /// Encodes the next request into `buf` (at least
    /// [`MAX_FRAME_LEN`](syssync_proto::MAX_FRAME_LEN) bytes) and returns its
    /// length, or `None` if nothing is to be sent now.
    // Out of line because the message it encodes may be a 2.4 KiB inventory
    // (see "Code size").
    #[inline(never)]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.last_now = now;
        if self.outstanding.is_some() || !self.network_up || now < self.retry_at {
            return None;
        }
        if self.has_work() {
            return None;
        }
        let request = self.next_request(now)?;
        let counter = self.next_counter()?;
        // The check-in's inventory digest is computed here, before
        // `encode_request` builds the message, so that the inventory it reads
        // and the message are never on the stack at once (2.4 KiB each).
        let digest = match request {
            Request::CheckIn => self.inventory_digest(),
            _ => [0; 8],
        };
        let len = self.encode_request(&request, counter, digest, buf)?;
        self.outstanding = Some(Outstanding {
            counter,
            request,
            deadline: now + Duration(self.config.request_timeout_ms),
        });
        Some(len)
    }

    /// Builds the message for `request` and encodes it into `buf`. A
    /// check-in carries `digest`.
    // Out of line: see `poll_transmit`.
    #[inline(never)]
    fn encode_request(
        &mut self,
        request: &Request,
        counter: u32,
        digest: [u8; 8],
        buf: &mut [u8],
    ) -> Option<usize> {
        let header = UplinkHeader {
            device: self.device,
            counter,
        };
        let mut message = self.build_message(request, digest);
        if let DeviceMessage::InventoryReport(inventory) = &mut message {
            self.read_inventory(inventory);
        }
        encode_uplink(&self.crypto, &self.key, header, &message, buf).ok()
    }

    /// Returns the next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.event_count == 0 {
            return None;
        }
        let head = usize::from(self.event_head);
        let event = self.events[head % EVENT_CAPACITY];
        self.event_head = ((head + 1) % EVENT_CAPACITY) as u8;
        self.event_count -= 1;
        Some(event)
    }

    /// Returns when [`handle_timeout`](Self::handle_timeout) should be called
    /// next. An instant in the past means "now": background work is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The trial deadline counts only while the image is still on trial.
        let trial = self
            .trial_deadline
            .filter(|_| self.status.phase == BootPhase::Trial);
        match (self.next_wake(), trial) {
            (Some(wake), Some(trial)) => Some(wake.min(trial)),
            (wake, trial) => wake.or(trial),
        }
    }

    /// Returns when requests or work next need a call, without the trial deadline.
    fn next_wake(&self) -> Option<Instant> {
        if self.has_work() {
            return Some(self.last_now);
        }
        if let Some(outstanding) = self.outstanding {
            return Some(outstanding.deadline);
        }
        let due = self.next_request(self.last_now).is_some();
        if !self.network_up {
            // Nothing can be sent; wake once to raise `NetworkWanted`, then
            // wait for `set_network` (or the next check-in, to raise it again).
            return if due && !self.network_wanted {
                Some(self.last_now)
            } else if due {
                None
            } else {
                Some(self.next_check_in)
            };
        }
        if due {
            return Some(self.retry_at.max(self.last_now));
        }
        Some(self.next_check_in.max(self.retry_at))
    }

    // ---- requests ----

    fn push(&mut self, event: Event) {
        log_event(&event);
        let head = usize::from(self.event_head);
        let count = usize::from(self.event_count);
        // The slot after the newest event, which is the oldest one's slot
        // when the ring is full: that event is dropped.
        self.events[(head + count) % EVENT_CAPACITY] = event;
        if count == EVENT_CAPACITY {
            self.event_head = ((head + 1) % EVENT_CAPACITY) as u8;
        } else {
            self.event_count += 1;
        }
    }

    /// Pushes [`Event::ResetWanted`] for job `job` without a reset window.
    // Out of line, because building the event at each caller costs more code
    // than the call.
    #[inline(never)]
    fn push_reset_wanted(&mut self, job: JobId) {
        self.push(Event::ResetWanted {
            job,
            not_before: None,
            deadline: None,
        });
    }

    /// Pushes [`Event::StorageFailed`].
    // Out of line, because building the event at each caller costs more code
    // than the call.
    #[inline(never)]
    fn push_storage_failed(&mut self) {
        self.push(Event::StorageFailed);
    }

    fn next_counter(&mut self) -> Option<u32> {
        let next = self.counter.checked_add(1)?;
        if next > self.reserved {
            let reserved = next.saturating_add(COUNTER_BLOCK - 1);
            if self
                .boot
                .write_setting(setting::COUNTER_RESERVED, &reserved.to_le_bytes())
                .is_err()
            {
                self.push_storage_failed();
                return None;
            }
            self.reserved = reserved;
        }
        self.counter = next;
        Some(next)
    }

    fn next_request(&self, now: Instant) -> Option<Request> {
        if self.registration.is_some() {
            return Some(Request::Registration);
        }
        if let Some(report) = self.side_report {
            return Some(Request::Report(report));
        }
        if let Some(job) = &self.job {
            let record = &job.record;
            match record.phase {
                Phase::Reporting => {
                    let outcome = record.outcome?;
                    return Some(Request::Report(JobReport {
                        job: record.job,
                        outcome,
                    }));
                }
                Phase::Trial
                    if self.config.confirm_policy == ConfirmPolicy::Server
                        && !record.has_flag(FLAG_INSTALL_REPORTED) =>
                {
                    return Some(Request::Report(JobReport {
                        job: record.job,
                        outcome: JobOutcome::Installed,
                    }));
                }
                Phase::Downloading => {
                    if let Some(request) = self.chunk_request(job) {
                        return Some(request);
                    }
                }
                _ => {}
            }
        }
        if self.inventory_requested {
            return Some(Request::Inventory);
        }
        (now >= self.next_check_in).then_some(Request::CheckIn)
    }

    fn chunk_request(&self, job: &ActiveJob<S::Handle, C::Sha256>) -> Option<Request> {
        if job.verify.is_some() || job.record.relocation.is_some() {
            return None;
        }
        let manifest = job.manifest.as_ref()?;
        let file = manifest.files.get(usize::from(job.record.file))?;
        let remaining = file.size.checked_sub(job.record.offset)?;
        if remaining == 0 {
            return None;
        }
        let length = remaining.min(u32::from(self.config.chunk_size)) as u16;
        Some(Request::Chunk {
            file: job.record.file,
            offset: job.record.offset,
            length,
        })
    }

    fn build_message(&mut self, request: &Request, digest: [u8; 8]) -> DeviceMessage {
        match *request {
            Request::Registration => DeviceMessage::RegistrationRequest(RegistrationRequest {
                account: self.registration.unwrap_or(AccountId(0)),
                target: self.target.clone(),
                version: self
                    .status
                    .running
                    .map_or(Version::default(), |image| image.version),
            }),
            Request::CheckIn => DeviceMessage::CheckIn(CheckIn {
                job: self.progress(),
                inventory: digest,
                location: None,
            }),
            // Filled in place by `poll_transmit`.
            Request::Inventory => DeviceMessage::InventoryReport(Inventory::empty()),
            Request::Chunk {
                file,
                offset,
                length,
            } => DeviceMessage::ChunkRequest(ChunkRequest {
                job: self.job.as_ref().map_or(JobId(0), |job| job.record.job),
                file,
                offset,
                length,
            }),
            Request::Report(report) => DeviceMessage::JobReport(report),
        }
    }

    fn progress(&self) -> Option<JobProgress> {
        let record = &self.job.as_ref()?.record;
        let state = match record.phase {
            Phase::Downloading | Phase::Committing => JobState::Downloading,
            Phase::Staged => JobState::Staged,
            Phase::Trial => JobState::Trial,
            Phase::Reporting => return None,
        };
        Some(JobProgress {
            job: record.job,
            state,
            bytes_done: record.bytes_done,
        })
    }

    /// Returns the digest of the inventory for a check-in, from the cache
    /// when no job has run since it was computed.
    // Out of line because it builds a 2.4 KiB inventory (see "Code size").
    #[inline(never)]
    fn inventory_digest(&mut self) -> [u8; 8] {
        if self.job.is_none() {
            if let Some(digest) = self.inventory_digest {
                return digest;
            }
        }
        let mut inventory = Inventory::empty();
        let clean = self.read_inventory(&mut inventory);
        let digest = inventory.digest(&self.crypto);
        // Keep only a digest read without storage faults, outside a job.
        self.inventory_digest = (self.job.is_none() && clean).then_some(digest);
        digest
    }

    /// Builds the full inventory from the boot side's status and the file store.
    pub fn inventory(&mut self) -> Inventory {
        let mut inventory = Inventory::empty();
        self.read_inventory(&mut inventory);
        inventory.normalize();
        inventory
    }

    /// Builds the inventory into `inventory` and returns whether every read
    /// succeeded. It fills the caller's value, because each move of the
    /// 2.4 KiB inventory through a return value took another stack copy.
    ///
    /// The files are in the store's order: the digest and the inventory
    /// report encode them sorted by name without sorting the inventory.
    fn read_inventory(&mut self, inventory: &mut Inventory) -> bool {
        let mut clean = self.refresh_status();
        let application = self.status.running.map_or(
            InstalledApplication {
                version: Version::default(),
                size: 0,
                sha256: [0; 32],
            },
            |image| InstalledApplication {
                version: image.version,
                size: image.size,
                sha256: image.sha256,
            },
        );
        inventory.target = self.target.clone();
        inventory.application = application;
        inventory.security_counter = self.status.security_floor;
        inventory.files.clear();
        // The store lists its files from index 0 until `file` returns `None`.
        for index in 0.. {
            match self.store.file(index) {
                Ok(Some(file)) => {
                    if inventory.files.push(file).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.push_storage_failed();
                    clean = false;
                    break;
                }
            }
        }
        clean
    }

    /// Reads the boot side's status; `false` when the read failed.
    ///
    /// A successful read drops the cached inventory digest without comparing
    /// the new status with the old one. The status is read only when the
    /// inventory is read or a trial or a job ends, so the digest is seldom
    /// computed again for nothing. Comparing every field of the status took
    /// 156 bytes of code in the Cortex-M4 size probe of `benches/footprint`.
    fn refresh_status(&mut self) -> bool {
        // Borrowed from the result, because moving it out copies each field.
        match &self.boot.status() {
            Ok(status) => {
                self.inventory_digest = None;
                self.status = *status;
                true
            }
            Err(_) => {
                self.push_storage_failed();
                false
            }
        }
    }

    fn last_request_lost(&mut self, _outstanding: Outstanding) {
        // Requests are rebuilt from state, so a lost one is simply sent again
        // with a fresh counter; nothing else to undo.
    }

    fn schedule_check_in(&mut self, now: Instant) {
        let on_trial = self
            .job
            .as_ref()
            .is_some_and(|job| job.record.phase == Phase::Trial);
        let interval_s = if on_trial {
            self.config.trial_interval_s
        } else {
            self.interval_s
        };
        let base = u64::from(interval_s) * 1000;
        let spread = jitter_spread_ms(interval_s, self.config.jitter_percent);
        let jitter = self.jitter.below_or_equal(spread);
        self.next_check_in = now + Duration(base + jitter);
    }

    // ---- replies ----

    fn dispatch(&mut self, now: Instant, request: Request, message: ServerMessage<'_>) {
        if matches!(request, Request::Inventory) {
            self.inventory_requested = false;
        }
        if let Request::Report(report) = request {
            // Any authenticated reply to a report means the server has it.
            self.report_delivered(now, report);
        }
        if matches!(request, Request::CheckIn) {
            self.schedule_check_in(now);
        }
        match message {
            ServerMessage::Idle(idle) => {
                self.interval_s = self.config.clamp_interval(idle.interval_s);
                if matches!(request, Request::CheckIn) {
                    self.schedule_check_in(now);
                }
                if let Request::Chunk { .. } = request {
                    // The server has nothing for this request: try again later.
                    self.retry_at = now + Duration(self.config.retry_initial_ms);
                }
            }
            ServerMessage::InventoryRequest => self.inventory_requested = true,
            ServerMessage::JobOffer(offer) => self.handle_offer(now, &offer),
            ServerMessage::Chunk(chunk) => match request {
                Request::Chunk {
                    file,
                    offset,
                    length,
                } => self.handle_chunk(now, file, offset, length, chunk.data),
                _ => self.push(Event::UnexpectedFrame),
            },
            ServerMessage::Confirm(confirm) => self.handle_confirm(now, confirm.job),
            ServerMessage::Cancel(cancel) => self.handle_cancel(request, cancel.job),
            ServerMessage::RegistrationResult(result) => {
                if !matches!(request, Request::Registration) {
                    self.push(Event::UnexpectedFrame);
                    return;
                }
                if self
                    .boot
                    .write_setting(setting::DEVICE_KEY, &self.key.0)
                    .is_err()
                {
                    self.push_storage_failed();
                    return;
                }
                self.registration = None;
                self.interval_s = self.config.clamp_interval(result.interval_s);
                self.schedule_check_in(now);
                self.push(Event::Registered {
                    account: result.account,
                });
            }
            ServerMessage::Refusal(refusal) => self.handle_refusal(now, request, refusal),
        }
    }

    fn report_delivered(&mut self, now: Instant, report: JobReport) {
        if self.side_report == Some(report) {
            self.side_report = None;
            return;
        }
        let Some(job) = self.job.as_mut() else {
            return;
        };
        if job.record.job != report.job {
            return;
        }
        match job.record.phase {
            Phase::Reporting => {
                self.clear_job();
                // Tell the server the new inventory soon.
                self.next_check_in = now;
            }
            Phase::Trial if matches!(report.outcome, JobOutcome::Installed) => {
                job.record.flags |= FLAG_INSTALL_REPORTED;
                self.persist();
                self.schedule_check_in(now);
            }
            _ => {}
        }
    }

    fn handle_refusal(
        &mut self,
        now: Instant,
        request: Request,
        refusal: syssync_proto::message::Refusal,
    ) {
        self.push(Event::Refused(refusal.code));
        let backoff = now + Duration(self.config.retry_initial_ms);
        match refusal.code {
            RefusalCode::STALE_COUNTER => {
                self.counter = self.counter.max(refusal.detail);
                self.retry_at = now;
            }
            RefusalCode::BUSY => {
                let delay = self.config.retry_delay_ms(refusal.retry_after_s);
                self.retry_at = now + Duration(delay);
            }
            RefusalCode::UNKNOWN_JOB | RefusalCode::JOB_NOT_ACTIVE => {
                if let Request::Chunk { .. } = request {
                    self.abort_job(JobOutcome::Cancelled);
                } else {
                    self.retry_at = backoff;
                }
            }
            RefusalCode::OUT_OF_RANGE if matches!(request, Request::Chunk { .. }) => {
                self.fail(FailureCode::DOWNLOAD_REFUSED);
            }
            _ => self.retry_at = backoff,
        }
    }

    fn handle_confirm(&mut self, now: Instant, id: JobId) {
        let Some(job) = self.job.as_ref() else {
            return;
        };
        // Only a job on trial is confirmed; a cancelled or failed job is in
        // the reporting phase and never reaches this.
        if job.record.job != id
            || job.record.phase != Phase::Trial
            || self.config.confirm_policy != ConfirmPolicy::Server
        {
            return;
        }
        if !self.end_trial(true) {
            return;
        }
        self.clear_job();
        self.push(Event::Confirmed { job: id });
        self.next_check_in = now;
    }

    fn handle_cancel(&mut self, request: Request, id: JobId) {
        let current = self
            .job
            .as_ref()
            .map(|job| (job.record.job, job.record.phase));
        match current {
            Some((job, phase)) if job == id => match phase {
                Phase::Downloading | Phase::Committing | Phase::Staged => {
                    self.abort_job(JobOutcome::Cancelled)
                }
                Phase::Trial => {
                    // Never confirm an aborted job: the next boot reverts it.
                    if !self.end_trial(false) {
                        // The status is read after a failed report too.
                        self.refresh_status();
                    }
                    self.set_outcome(JobOutcome::Cancelled);
                    self.push_reset_wanted(id);
                }
                Phase::Reporting => {}
            },
            _ => {
                let acknowledged = matches!(request, Request::Report(report) if report.job == id);
                if !acknowledged {
                    // Acknowledge a cancel of a job this device does not run,
                    // so the server can close it.
                    self.side_report = Some(JobReport {
                        job: id,
                        outcome: JobOutcome::Cancelled,
                    });
                }
            }
        }
    }

    // ---- job state ----

    /// Stores the job record; returns whether it is on flash.
    fn persist(&mut self) -> bool {
        let bytes = JobRecord::encode(self.job.as_ref().map(|job| &job.record));
        if self.store.store_job_record(&bytes).is_err() {
            self.push_storage_failed();
            return false;
        }
        true
    }

    /// Drops the job and stores the empty record in the journal.
    fn clear_job(&mut self) {
        self.job = None;
        self.persist();
    }

    /// Ends the job with `outcome` to report and keeps nothing but the
    /// record. A failed, reverted or cancelled job also raises its event.
    fn set_outcome(&mut self, outcome: JobOutcome) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let id = job.record.job;
        job.record.phase = Phase::Reporting;
        job.record.outcome = Some(outcome);
        job.record.relocation = None;
        job.verify = None;
        job.pending = None;
        self.persist();
        // The events are built here once rather than at every caller.
        match outcome {
            JobOutcome::Failed(code) => self.push(Event::Failed { job: id, code }),
            JobOutcome::Reverted(reason) => self.push(Event::Reverted { job: id, reason }),
            JobOutcome::Cancelled => self.push(Event::Cancelled { job: id }),
            JobOutcome::Installed | JobOutcome::Rejected(_) => {}
        }
    }

    fn discard_staged(&mut self) {
        if self.store.discard_pending().is_err() {
            self.push_storage_failed();
        }
        let staging = self
            .job
            .as_ref()
            .is_some_and(|job| job.record.has_flag(FLAG_STAGING));
        if staging && self.boot.cancel_staging().is_err() {
            self.push_storage_failed();
        }
        self.refresh_status();
    }

    fn fail(&mut self, code: FailureCode) {
        self.abort_job(JobOutcome::Failed(code));
    }

    /// Ends the job with `outcome` before its image runs. It discards what
    /// was staged and raises the outcome's event.
    fn abort_job(&mut self, outcome: JobOutcome) {
        if self.job.is_none() {
            return;
        }
        self.discard_staged();
        self.set_outcome(outcome);
    }

    /// Moves the download cursor to the next file still to fetch, or to the
    /// commit phase when none is left.
    fn advance_file(&mut self) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let Some(manifest) = job.manifest.as_ref() else {
            return;
        };
        let count = manifest.files.len();
        let next = (0..count).find(|index| {
            let bit = 1u16 << index;
            job.record.fetch & bit != 0 && job.record.done & bit == 0
        });
        job.pending = None;
        job.verify = None;
        match next {
            Some(index) => {
                job.record.file = index as u8;
                job.record.offset = 0;
            }
            None => {
                job.record.phase = Phase::Committing;
                job.record.file = 0;
                job.record.offset = 0;
            }
        }
    }
}
