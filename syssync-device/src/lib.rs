//! Device side of syssync: the update engine a firmware integrator embeds.
//!
//! - [`Engine`]: a sans-IO engine that speaks the `syssync-proto` protocol,
//!   downloads releases into staging and a file store, and drives the boot
//!   side through [`BootControl`]. It never reads a clock, a socket or a
//!   random source: time and a seed are passed in, so a simulated fleet is
//!   deterministic.
//! - [`NorFileStore`]: a power-safe file store over any `embedded-storage`
//!   NOR flash, used by the engine through the [`FileStore`] trait.
//! - [`Gateway`]: forwards a CAN device's segmented frames, which it can
//!   neither read nor forge.
//! - `rollback::RollbackFsmBoot` (feature `rollback-fsm`): [`BootControl`]
//!   for `rollback-fsm`'s application side. It stores the job's signed
//!   manifest next to the staged image, where a bootloader built with
//!   rollback-fsm's `authentication` (feature `authentication` here) checks
//!   it before installing.
//! - `blocking::BlockingDriver` (feature `blocking`): runs the engine over
//!   any `embedded-io` stream with length-delimited frames.
//!
//! # Drive loop
//!
//! One way in, one way out. Each call does a bounded amount of work: at most
//! one chunk written to flash, or one step of verifying or committing a file,
//! plus a journal record. Accepting an offer also stores the manifest (up to
//! 1.6 KiB), and starting a plain file writes a directory snapshot (up to
//! 3.9 KiB). The one larger step is moving a sector aside after a power cut,
//! described below.
//!
//! ```no_run
//! use syssync_device::{BootControl, Engine, Event, FileStore, Instant};
//! use syssync_proto::{Crypto, MAX_FRAME_LEN};
//!
//! /// What the firmware provides: a clock, a link and a way to sleep.
//! trait Platform {
//!     fn now(&self) -> Instant;
//!     fn send(&mut self, frame: &[u8]);
//!     fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
//!     fn network_up(&mut self) -> bool;
//!     fn sleep_until(&mut self, wake: Option<Instant>);
//! }
//!
//! fn run<B: BootControl, S: FileStore, C: Crypto>(
//!     engine: &mut Engine<B, S, C>,
//!     platform: &mut impl Platform,
//! ) -> ! {
//!     let mut tx = [0u8; MAX_FRAME_LEN];
//!     let mut rx = [0u8; MAX_FRAME_LEN];
//!     loop {
//!         let now = platform.now();
//!         let up = platform.network_up();
//!         engine.set_network(now, up);
//!         if let Some(len) = platform.receive(&mut rx) {
//!             engine.handle_frame(now, &rx[..len]);
//!         }
//!         engine.handle_timeout(now);
//!         while let Some(len) = engine.poll_transmit(now, &mut tx) {
//!             platform.send(&tx[..len]);
//!         }
//!         while let Some(event) = engine.poll_event() {
//!             match event {
//!                 Event::NetworkWanted => { /* bring the modem up */ }
//!                 Event::FilesChanging { .. } => { /* close installed files */ }
//!                 Event::ResetWanted { deadline, .. } => { /* reset before `deadline` */ }
//!                 _ => {}
//!             }
//!         }
//!         platform.sleep_until(engine.poll_timeout());
//!     }
//! }
//! ```
//!
//! After every reset, build the engine again with [`Engine::new`]: it reads
//! the identity from the boot side's settings, the boot status, and the job
//! journal from the file store, and carries on from there. That construction
//! is the "reset done" input.
//!
//! # Building the engine
//!
//! With rollback-fsm's application side (feature `rollback-fsm`) and the NOR
//! file store. Here `flash-sim` replaces the chip's flash drivers; each
//! partition may be its own driver or a window of one chip.
//!
//! ```
//! # #[cfg(all(feature = "rollback-fsm", feature = "rustcrypto"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use flash_sim::{FlashConfig, FlashSim, PowerRail};
//! use rollback_fsm::{Layout, Partition, Settings};
//! use syssync_device::boot::setting;
//! use syssync_device::rollback::RollbackFsmBoot;
//! use syssync_device::{Config, Engine, Instant, NorFileStore};
//! use syssync_proto::{RustCrypto, TrustedKey};
//!
//! type Flash = FlashSim<4096, 4>;
//! let rail = PowerRail::new();
//! let flash = |bytes: usize| Flash::new(FlashConfig::new(bytes), rail.clone());
//! let image = 256 * 1024;
//! let (mut staging, mut state, mut settings) = (flash(image)?, flash(8192)?, flash(8192)?);
//! let mut files = flash(64 * 1024)?;
//!
//! // In the factory: the device's identity goes into the settings store.
//! let mut store = Settings::new(&mut settings, Partition::new(0, 8192))?;
//! store.write(setting::DEVICE_ID, &1_000_042u64.to_le_bytes())?;
//! store.write(setting::DEVICE_KEY, &[7; 32])?;
//! store.write(setting::TARGET_TYPE, b"esp8266-4m")?;
//!
//! // After every reset: the bootloader's configuration, the boot side, the
//! // file store (one scratch sector) and the engine.
//! let layout = Layout {
//!     active: Partition::new(0, image as u32),
//!     staging: Partition::new(0, image as u32),
//!     recovery: Partition::new(0, image as u32),
//!     state: Partition::new(0, 8192),
//! };
//! let boot_config = rollback_fsm::Config::try_new(layout, "esp8266-4m")?;
//! let boot = RollbackFsmBoot::new(
//!     boot_config,
//!     &mut staging,
//!     &mut state,
//!     &mut settings,
//!     Partition::new(0, 8192),
//! )?;
//! let store = NorFileStore::new(&mut files, 1)?;
//! let release_key = TrustedKey { id: 1, public_key: [0x5a; 32] };
//! let config = Config::new(&[release_key])?;
//! let mut now = Instant(0);
//! let mut engine = Engine::new(config, boot, store, RustCrypto, now, 1_000_042)?;
//!
//! // The drive loop above takes over from here: the first check-in goes out
//! // when the engine's timer expires.
//! engine.set_network(now, true);
//! if let Some(wake) = engine.poll_timeout() {
//!     now = wake;
//! }
//! engine.handle_timeout(now);
//! let mut frame = [0u8; syssync_proto::MAX_FRAME_LEN];
//! let check_in = engine.poll_transmit(now, &mut frame).ok_or("no check-in")?;
//! assert!(check_in <= 40, "a check-in is {check_in} bytes");
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "rollback-fsm", feature = "rustcrypto")))]
//! # fn main() {}
//! ```
//!
//! # Check-ins
//!
//! The engine checks in every 900 s by default, plus a jitter of up to 10 %
//! drawn from the seed. A server's `Idle { interval_s }` is clamped to
//! [`Config::min_interval_s`]`..=`[`Config::max_interval_s`] (60 s to
//! 86 400 s by default), so a hostile server or gateway cannot silence a
//! device for long. Every request carries a fresh replay counter. The engine
//! reserves counters in blocks of [`COUNTER_BLOCK`] in the settings before
//! using them, so a reset never reuses one. A reply is accepted only for the
//! one outstanding request, once; a request without a reply is sent again
//! after [`Config::request_timeout_ms`] with a doubling back-off.
//!
//! # Identity
//!
//! Read from the boot side's settings (keys in [`boot::setting`]): device id,
//! target type, and either the device key or an account with a claim token.
//! With the latter the engine registers first (the key is derived from the
//! claim token) and stores the key once the server accepts.
//!
//! # Offers
//!
//! Before anything is downloaded the engine checks the manifest's signature
//! against [`Config::trusted_keys`], the target type, the expiry, the security
//! counter against the committed one, and that the image fits staging and the
//! changed plain files fit the file store. A refused offer is reported as
//! `JobReport { Rejected(reason) }` and raised as [`Event::OfferRejected`].
//!
//! Without a trusted wall clock ([`Engine::set_unix_time`] never called) the
//! expiry cannot be checked, so [`Config::expiry_without_clock`] chooses the
//! policy. The default accepts the manifest, because the security counter
//! still stops downgrades below the committed release. The alternative
//! rejects every manifest until the clock is set.
//!
//! # Downloads
//!
//! Only files whose SHA-256 and size differ from what is installed are
//! fetched; the rest cost zero bytes. The application image is written into
//! staging, plain files into pending files of the store, in chunks of
//! [`Config::chunk_size`] bytes (default 1 KiB), each checked by the frame's
//! CRC and tag. After each chunk is written and read back, a 48-byte job
//! record counting it goes into the store's journal; a chunk counts as
//! complete only then. A finished file is read back from flash and hashed
//! before it can become visible.
//!
//! After a power cut the download resumes at the first chunk the journal does
//! not count. NOR flash cannot rewrite a torn region without erasing its
//! sector, which may hold earlier chunks of the same file, so when the chunk's
//! place does not take the write the engine copies the sector's earlier
//! chunks into the store's scratch area, records that in the journal, erases
//! the sector and copies them back; a power cut during that move finishes it
//! from the scratch copy. No chunk counted as complete is fetched twice. The
//! move is the one step that does more than one chunk of flash work.
//!
//! Plain files are committed one by one, each atomically (a file is either
//! complete and verified or absent), after [`Event::FilesChanging`].
//! NOTE: they are committed before the reset into the new image, so a revert
//! of the image keeps the new files, and a cancel that arrives while they are
//! being committed leaves the ones already committed.
//!
//! # After the reset
//!
//! The new image runs on trial. With [`ConfirmPolicy::Server`] the engine
//! reports `Installed`, answers the server's inventory request with the full
//! inventory, and confirms only on the server's `Confirm` for that job. With
//! [`ConfirmPolicy::Application`] the application calls
//! [`Engine::confirm_health`] and the engine then reports the install. A job
//! the server cancelled is never confirmed: on trial the engine reports
//! failure to the boot side so the next boot reverts. A revert is reported as
//! `Reverted(reason)`, never as `Installed`. A job report is retried until
//! the server replies to it. An image not confirmed within
//! [`Config::trial_timeout_s`] (an hour by default), for example one that
//! cannot reach the server, is reported to the boot side as failed, and the
//! engine requests the reset that reverts it.
//!
//! # RAM
//!
//! `size_of` on `thumbv7em-none-eabihf` (rustc 1.95, measured with a
//! compile-time array-length probe), for the size probe's `Engine`:
//! `RollbackFsmBoot` and a `NorFileStore` over a zero-sized flash driver,
//! and `CompactCrypto` (every software backend has the same hasher type):
//!
//! | item | bytes |
//! |---|---|
//! | `Engine` (the decoded manifest takes 1576 of them) | 3136 |
//! | of which `RollbackFsmBoot` | 196 |
//! | of which `NorFileStore` | 36 plus the flash driver |
//! | transmit buffer passed to `poll_transmit` | up to 4160 (an inventory report takes about 2.4 KiB; a chunk request 30 bytes) |
//! | receive buffer for `handle_frame` | chunk size + 30 (about 1.1 KiB at the default) |
//! | `Gateway` | 44 plus two caller buffers of up to 4160 |
//!
//! The engine builds an inventory (2396 bytes) on the stack for each
//! check-in and inventory report, and a manifest body buffer (1536 bytes) at
//! construction and when staging starts; `RollbackFsmBoot` adds the encoded
//! signed manifest (up to 1603 bytes) to the latter. In the Cortex-M4 size
//! probe of `benches/footprint`, upper bounds computed from the disassembly
//! are 8,380 bytes from [`Engine::new_in`], reached while it restores a job
//! and verifies its stored manifest, 4,300 from
//! [`handle_frame`](Engine::handle_frame) and 4,548 from
//! [`poll_transmit`](Engine::poll_transmit); the caller's frame adds to
//! them (`bash benches/footprint.sh` prints the deepest path from `main`).
//! The probe gives both frame buffers the full 4160 bytes.
//!
//! A firmware that keeps the engine in a static should start it uninitialised
//! (`MaybeUninit`, or a crate such as `static_cell`), which puts it in `.bss`.
//! An `Option<Engine>` that starts as `None` goes in `.data`, and its initial
//! value then takes the engine's size in flash as well. Build the engine in
//! the static with [`Engine::new_in`]. With [`Engine::new`] the caller's
//! frame contains the `Result` with the whole engine in it. In the size
//! probe the stack bound from `main` is 9,460 bytes with `new_in`, 12,572
//! with `new` and the result written into the static in a `match`, and
//! 15,516 with the engine bound by `let` before it is written.
//!
//! # Panics
//!
//! Nothing a peer, a gateway or a flash chip sends makes the engine panic:
//! bad input becomes an [`Event`] and a retry, flash errors become
//! [`Event::StorageFailed`] and, after three in a row, a failed job.
//!
//! # Features
//!
//! - `rustcrypto` (default): the software [`Crypto`](syssync_proto::Crypto)
//!   of `syssync-proto`.
//! - `rollback-fsm`: `rollback::RollbackFsmBoot`.
//! - `authentication`: `rollback-fsm` with rollback-fsm's `authentication`,
//!   for a bootloader that checks the signed manifest before installing.
//! - `blocking`: `blocking::BlockingDriver`.
//! - `log` or `defmt`: logs every event the engine raises (jobs at info
//!   level, rejected frames, refusals and flash failures at warn level)
//!   through that crate. With neither, logging compiles to nothing; with
//!   both, `defmt` is used.
#![no_std]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "blocking")]
pub mod blocking;
pub mod boot;
pub mod config;
mod engine;
pub mod gateway;
pub mod nor_store;
#[cfg(feature = "rollback-fsm")]
pub mod rollback;
pub mod store;
pub mod time;
mod trace;

pub use boot::{BootControl, BootPhase, BootStatus, RunningImage, StagedImage};
pub use config::{Config, ConfigError, ConfirmPolicy, ExpiryWithoutClock};
pub use engine::{Engine, Event, InitError, COUNTER_BLOCK, EVENT_CAPACITY};
pub use gateway::{Gateway, GatewayError};
pub use nor_store::{NorFileStore, PendingFile};
pub use store::{FileInfo, FileStore, StoreError};
pub use time::{Duration, Instant};

/// Copies `bytes` into `out` at `at`, for the fixed layouts of the job record
/// and the file store. It is one shared function, because at opt-level z an
/// inline range index and `copy_from_slice` compile to two calls per field.
pub(crate) fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}
