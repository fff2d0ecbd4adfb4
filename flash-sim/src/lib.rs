//! A strict NOR flash model for testing code that must survive power loss.
//!
//! [`FlashSim`] implements the `embedded-storage` 0.3 traits [`ReadNorFlash`] and
//! [`NorFlash`] (and [`MultiwriteNorFlash`], whose contract it only honours in
//! non-strict mode). It behaves like NOR flash:
//!
//! - the erased value is `0xFF` and a write can only clear bits (the stored byte
//!   becomes `old & new`);
//! - offsets and lengths must be multiples of the read, write and erase sizes;
//! - in strict mode (flash with ECC) each write word may be programmed only once
//!   between erases, and programming it again returns
//!   [`FlashSimError::AlreadyProgrammed`].
//!
//! Several devices can share one [`PowerRail`], so that one power cut hits the
//! internal and the external flash at the same moment. A cut can be armed to
//! happen after a number of programmed or erased bytes ([`PowerRail::cut_after_bytes`])
//! or after a number of completed operations ([`PowerRail::cut_after_ops`]).
//! The operation that is running when the cut happens is torn:
//!
//! - a torn write leaves a prefix of its bytes programmed. The bytes from the
//!   cut to the end of that write word become *unstable*: each bit that the
//!   write was clearing reads as 0 or 1 at random on every read. A bit stays
//!   unstable until its sector is erased or a later write clears it;
//! - a torn erase leaves a prefix of the range erased, the remaining bytes of the
//!   word at the cut unstable (bits being set may read 0 or 1), and the rest
//!   untouched.
//!
//! After the cut every operation on every device of the rail returns
//! [`FlashSimError::PowerLoss`] until [`PowerRail::power_on`]. The flash contents
//! are all that survives: code under test models a reset by dropping its own
//! state and building it again from flash.
//!
//! Unstable bits come from a ChaCha8 generator seeded by [`FlashConfig::seed`],
//! so a run is reproducible.
//!
//! ```
//! use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
//! use flash_sim::{FlashConfig, FlashSim, FlashSimError, PowerRail};
//!
//! let rail = PowerRail::new();
//! let mut flash: FlashSim<256, 4> = FlashSim::new(FlashConfig::new(1024), rail.clone()).unwrap();
//! flash.write(0, &[0x00; 8]).unwrap();
//!
//! rail.cut_after_bytes(2);
//! assert_eq!(flash.write(8, &[0x00; 8]), Err(FlashSimError::PowerLoss));
//! assert_eq!(flash.erase(0, 256), Err(FlashSimError::PowerLoss));
//!
//! rail.power_on();
//! let mut buf = [0u8; 2];
//! flash.read(8, &mut buf).unwrap();
//! assert_eq!(buf, [0x00, 0x00]);
//! assert_eq!(flash.counters().write_calls, 2);
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Error returned by [`FlashSim`] operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashSimError {
    /// The range is outside the device.
    OutOfBounds,
    /// The offset or length is not a multiple of the read, write or erase size.
    NotAligned,
    /// Power failed during or before this operation. Call [`PowerRail::power_on`] to recover.
    PowerLoss,
    /// Strict mode only: a write word was programmed twice without an erase.
    AlreadyProgrammed,
}

impl fmt::Display for FlashSimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::OutOfBounds => "flash range out of bounds",
            Self::NotAligned => "flash offset or length not aligned",
            Self::PowerLoss => "power lost",
            Self::AlreadyProgrammed => "write word already programmed since its last erase",
        };
        f.write_str(text)
    }
}

impl std::error::Error for FlashSimError {}

impl NorFlashError for FlashSimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::PowerLoss | Self::AlreadyProgrammed => NorFlashErrorKind::Other,
        }
    }
}

/// Error returned by [`FlashSim::new`] for a geometry that no flash can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryError {
    /// A read, write or erase size is zero.
    ZeroSize,
    /// The erase size is not a multiple of the write size or of the read size.
    EraseNotMultipleOfWrite,
    /// The capacity is zero or not a multiple of the erase size.
    CapacityNotMultipleOfErase,
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::ZeroSize => "read, write and erase sizes must be non-zero",
            Self::EraseNotMultipleOfWrite => {
                "erase size must be a multiple of the write size and the read size"
            }
            Self::CapacityNotMultipleOfErase => {
                "capacity must be a non-zero multiple of the erase size"
            }
        };
        f.write_str(text)
    }
}

impl std::error::Error for GeometryError {}

/// Run-time part of a [`FlashSim`] configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashConfig {
    /// Capacity in bytes; a multiple of the erase size.
    pub capacity: usize,
    /// Strict (ECC) mode: each write word may be programmed once between erases.
    pub strict: bool,
    /// Seed for the unstable-bit generator.
    pub seed: u64,
}

impl FlashConfig {
    /// Creates a non-strict configuration with seed 0.
    pub const fn new(capacity: usize) -> Self {
        Self {
            capacity,
            strict: false,
            seed: 0,
        }
    }

    /// Sets strict (ECC) mode.
    pub const fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Sets the seed of the unstable-bit generator.
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// Operation counters of one [`FlashSim`], reset by [`FlashSim::reset_counters`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters {
    /// Sectors erased (an `erase` call over 3 sectors counts 3).
    pub erases: u64,
    /// `write` calls.
    pub write_calls: u64,
    /// Bytes passed to `write`.
    pub bytes_written: u64,
    /// `read` calls.
    pub read_calls: u64,
    /// Bytes returned by `read`.
    pub bytes_read: u64,
    /// Erase count of each sector, indexed by sector number.
    pub sector_erases: Vec<u64>,
}

impl Counters {
    /// Returns the largest erase count of any one sector.
    pub fn max_sector_erases(&self) -> u64 {
        self.sector_erases.iter().copied().max().unwrap_or(0)
    }
}

/// When the armed power cut happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    None,
    /// After this many more bytes have been programmed or erased.
    AfterBytes(u64),
    /// After this many more operations (writes and erases) have completed.
    AfterOps(u64),
}

#[derive(Debug)]
struct RailState {
    cut: Cut,
    down: bool,
    bytes_total: u64,
    ops_total: u64,
}

/// A power supply shared by several [`FlashSim`] devices.
///
/// Cloning returns a handle to the same rail. Only programmed and erased bytes
/// and completed write or erase operations count towards an armed cut; reads do
/// not.
#[derive(Debug, Clone)]
pub struct PowerRail {
    // A mutex rather than a cell, so that a simulated device with its flash
    // and rail can move to another thread as a whole.
    state: Arc<Mutex<RailState>>,
}

impl Default for PowerRail {
    fn default() -> Self {
        Self::new()
    }
}

/// How much of a program or erase operation may run before the power fails.
enum Budget {
    All,
    /// Only this many bytes are done, then the power fails.
    Prefix(usize),
}

impl PowerRail {
    /// Creates a powered rail with no cut armed.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(RailState {
                cut: Cut::None,
                down: false,
                bytes_total: 0,
                ops_total: 0,
            })),
        }
    }

    /// Locks the rail state. A panic while it was held (a failed test)
    /// leaves the state consistent, so a poisoned lock is used as is.
    fn state(&self) -> MutexGuard<'_, RailState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Arms a cut after `bytes` more bytes have been programmed or erased.
    ///
    /// With `bytes == 0` the next write or erase does nothing but leaves its
    /// first word unstable.
    pub fn cut_after_bytes(&self, bytes: u64) {
        self.state().cut = Cut::AfterBytes(bytes);
    }

    /// Arms a cut after `ops` more write or erase operations have completed.
    ///
    /// With `ops == 0` the next write or erase fails without touching flash.
    pub fn cut_after_ops(&self, ops: u64) {
        self.state().cut = Cut::AfterOps(ops);
    }

    /// Disarms a pending cut; does not restore power.
    pub fn disarm(&self) {
        self.state().cut = Cut::None;
    }

    /// Cuts the power now.
    pub fn cut_now(&self) {
        let mut state = self.state();
        state.down = true;
        state.cut = Cut::None;
    }

    /// Restores power and disarms any pending cut; flash contents are kept.
    pub fn power_on(&self) {
        let mut state = self.state();
        state.down = false;
        state.cut = Cut::None;
    }

    /// Returns true while the power is off.
    pub fn is_down(&self) -> bool {
        self.state().down
    }

    /// Returns true while a cut is armed and has not happened yet.
    pub fn is_armed(&self) -> bool {
        self.state().cut != Cut::None
    }

    /// Returns the bytes programmed or erased on this rail since it was created.
    pub fn bytes_total(&self) -> u64 {
        self.state().bytes_total
    }

    /// Returns the write and erase operations completed on this rail since it was created.
    pub fn ops_total(&self) -> u64 {
        self.state().ops_total
    }

    /// Charges an operation of `len` bytes to the rail.
    fn begin_op(&self, len: usize) -> Result<Budget, FlashSimError> {
        let mut state = self.state();
        if state.down {
            return Err(FlashSimError::PowerLoss);
        }
        let budget = match state.cut {
            Cut::None => Budget::All,
            Cut::AfterOps(0) => {
                state.down = true;
                state.cut = Cut::None;
                return Err(FlashSimError::PowerLoss);
            }
            Cut::AfterOps(n) => {
                state.cut = Cut::AfterOps(n - 1);
                Budget::All
            }
            Cut::AfterBytes(n) if n >= len as u64 => {
                state.cut = Cut::AfterBytes(n - len as u64);
                Budget::All
            }
            Cut::AfterBytes(n) => {
                state.down = true;
                state.cut = Cut::None;
                // `n < len`, so it fits in usize.
                Budget::Prefix(n as usize)
            }
        };
        match budget {
            Budget::All => {
                state.bytes_total += len as u64;
                state.ops_total += 1;
            }
            Budget::Prefix(n) => state.bytes_total += n as u64,
        }
        Ok(budget)
    }
}

/// A NOR flash device held in RAM.
///
/// `ERASE` is the sector (erase) size, `WRITE` the write size and `READ` the
/// read size, all in bytes, as the `embedded-storage` traits require them to be
/// constants.
pub struct FlashSim<const ERASE: usize, const WRITE: usize, const READ: usize = 1> {
    config: FlashConfig,
    data: Vec<u8>,
    /// Bits that read as 0 or 1 at random, per byte. Empty until the first
    /// torn operation, so that large simulated fleets stay small and fast.
    unstable: Vec<u8>,
    /// Strict mode: whether each write word was programmed since its last
    /// erase. Empty in normal mode, which never reads it.
    programmed: Vec<bool>,
    rail: PowerRail,
    rng: ChaCha8Rng,
    counters: Counters,
}

impl<const ERASE: usize, const WRITE: usize, const READ: usize> fmt::Debug
    for FlashSim<ERASE, WRITE, READ>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashSim")
            .field("config", &self.config)
            .field("erase_size", &ERASE)
            .field("write_size", &WRITE)
            .field("read_size", &READ)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<const ERASE: usize, const WRITE: usize, const READ: usize> FlashSim<ERASE, WRITE, READ> {
    /// Creates an erased device on `rail`.
    pub fn new(config: FlashConfig, rail: PowerRail) -> Result<Self, GeometryError> {
        if ERASE == 0 || WRITE == 0 || READ == 0 {
            return Err(GeometryError::ZeroSize);
        }
        if !ERASE.is_multiple_of(WRITE) || !ERASE.is_multiple_of(READ) {
            return Err(GeometryError::EraseNotMultipleOfWrite);
        }
        if config.capacity == 0 || !config.capacity.is_multiple_of(ERASE) {
            return Err(GeometryError::CapacityNotMultipleOfErase);
        }
        Ok(Self {
            data: vec![0xFF; config.capacity],
            unstable: Vec::new(),
            programmed: if config.strict {
                vec![false; config.capacity / WRITE]
            } else {
                Vec::new()
            },
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            counters: Counters {
                sector_erases: vec![0; config.capacity / ERASE],
                ..Counters::default()
            },
            config,
            rail,
        })
    }

    /// Returns the configuration the device was built with.
    pub fn config(&self) -> &FlashConfig {
        &self.config
    }

    /// Returns the power rail of this device.
    pub fn rail(&self) -> &PowerRail {
        &self.rail
    }

    /// Returns the operation counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Sets every counter to zero.
    pub fn reset_counters(&mut self) {
        let sectors = self.counters.sector_erases.len();
        self.counters = Counters {
            sector_erases: vec![0; sectors],
            ..Counters::default()
        };
    }

    /// Returns the stored bytes without unstable-bit noise, power checks or counting.
    pub fn raw(&self) -> &[u8] {
        &self.data
    }

    /// Returns the number of bytes that currently have unstable bits.
    pub fn unstable_bytes(&self) -> usize {
        self.unstable_bytes_in(0..self.data.len())
    }

    /// Returns the number of bytes in `range` that currently have unstable bits.
    pub fn unstable_bytes_in(&self, range: std::ops::Range<usize>) -> usize {
        if self.unstable.is_empty() {
            return 0;
        }
        self.unstable[range]
            .iter()
            .filter(|bits| **bits != 0)
            .count()
    }

    /// Returns a copy of this device (contents, unstable bits, counters and
    /// generator state) powered by `rail`.
    ///
    /// Tests use it to restore a snapshot before each power-cut run.
    pub fn clone_onto(&self, rail: PowerRail) -> Self {
        Self {
            config: self.config,
            data: self.data.clone(),
            unstable: self.unstable.clone(),
            programmed: self.programmed.clone(),
            rail,
            rng: self.rng.clone(),
            counters: self.counters.clone(),
        }
    }

    /// Overwrites bytes directly, as a programmer (JTAG) would before the first boot.
    ///
    /// The bytes become stable and, in strict mode, the touched words count as
    /// programmed. Ignores the power rail and the counters.
    pub fn load(&mut self, offset: usize, bytes: &[u8]) -> Result<(), FlashSimError> {
        let end = offset
            .checked_add(bytes.len())
            .filter(|end| *end <= self.data.len())
            .ok_or(FlashSimError::OutOfBounds)?;
        self.data[offset..end].copy_from_slice(bytes);
        if let Some(unstable) = self.unstable.get_mut(offset..end) {
            unstable.fill(0);
        }
        self.mark_programmed(offset / WRITE..end.div_ceil(WRITE), true);
        Ok(())
    }

    /// Alias of [`PowerRail::power_on`] for the rail of this device.
    pub fn power_on(&mut self) {
        self.rail.power_on();
    }

    fn check_range(&self, offset: u32, len: usize, align: usize) -> Result<usize, FlashSimError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(FlashSimError::OutOfBounds)?;
        if end > self.data.len() {
            return Err(FlashSimError::OutOfBounds);
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FlashSimError::NotAligned);
        }
        Ok(start)
    }

    /// Sets the strict-mode programmed flag of `words`; normal mode keeps none.
    fn mark_programmed(&mut self, words: std::ops::Range<usize>, programmed: bool) {
        if let Some(flags) = self.programmed.get_mut(words) {
            flags.fill(programmed);
        }
    }

    /// Programs `values` from byte `start`: each byte ANDs into the stored one.
    fn program(&mut self, start: usize, values: &[u8]) {
        let end = start + values.len();
        for (stored, value) in self.data[start..end].iter_mut().zip(values) {
            *stored &= value;
        }
        // Clearing a bit again makes it stable.
        if let Some(unstable) = self.unstable.get_mut(start..end) {
            for (bits, value) in unstable.iter_mut().zip(values) {
                *bits &= value;
            }
        }
    }

    /// Allocates the unstable-bit mask on the first torn operation.
    fn unstable_mask(&mut self) -> &mut [u8] {
        if self.unstable.is_empty() {
            self.unstable = vec![0; self.data.len()];
        }
        &mut self.unstable
    }

    /// Leaves bytes `from..to` of a torn write unstable.
    fn tear_write(&mut self, from: usize, to: usize, values: &[u8]) {
        self.unstable_mask();
        for (index, value) in (from..to).zip(values) {
            let clearing = self.data[index] & !value;
            self.unstable[index] |= clearing;
        }
    }

    /// Leaves bytes `from..to` of a torn erase unstable.
    fn tear_erase(&mut self, from: usize, to: usize) {
        self.unstable_mask();
        for index in from..to {
            self.unstable[index] |= !self.data[index];
        }
    }
}

impl<const ERASE: usize, const WRITE: usize, const READ: usize> ErrorType
    for FlashSim<ERASE, WRITE, READ>
{
    type Error = FlashSimError;
}

impl<const ERASE: usize, const WRITE: usize, const READ: usize> ReadNorFlash
    for FlashSim<ERASE, WRITE, READ>
{
    const READ_SIZE: usize = READ;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let start = self.check_range(offset, bytes.len(), READ)?;
        if self.rail.is_down() {
            return Err(FlashSimError::PowerLoss);
        }
        let end = start + bytes.len();
        bytes.copy_from_slice(&self.data[start..end]);
        if let Some(unstable) = self.unstable.get(start..end) {
            if unstable.iter().any(|bits| *bits != 0) {
                for (out, bits) in bytes.iter_mut().zip(unstable) {
                    if *bits != 0 {
                        let noise = (self.rng.next_u32() & 0xFF) as u8;
                        *out = (*out & !bits) | (noise & bits);
                    }
                }
            }
        }
        self.counters.read_calls += 1;
        self.counters.bytes_read += bytes.len() as u64;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const ERASE: usize, const WRITE: usize, const READ: usize> NorFlash
    for FlashSim<ERASE, WRITE, READ>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if to < from {
            return Err(FlashSimError::OutOfBounds);
        }
        let len = (to - from) as usize;
        let start = self.check_range(from, len, ERASE)?;
        let done = match self.rail.begin_op(len)? {
            Budget::All => len,
            Budget::Prefix(n) => n,
        };
        let end = start + len;
        let erased_end = start + done;

        for sector in start / ERASE..erased_end.div_ceil(ERASE) {
            self.counters.erases += 1;
            self.counters.sector_erases[sector] += 1;
        }
        self.data[start..erased_end].fill(0xFF);
        if let Some(unstable) = self.unstable.get_mut(start..erased_end) {
            unstable.fill(0);
        }
        // Only whole words become unprogrammed; the word at the cut stays
        // programmed so that strict mode rejects writing it.
        self.mark_programmed(start / WRITE..erased_end / WRITE, false);

        if done < len {
            let word_end = ((erased_end / WRITE) + 1) * WRITE;
            self.tear_erase(erased_end, word_end.min(end));
            return Err(FlashSimError::PowerLoss);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let start = self.check_range(offset, bytes.len(), WRITE)?;
        if self.config.strict {
            if self.rail.is_down() {
                return Err(FlashSimError::PowerLoss);
            }
            let words = start / WRITE..(start + bytes.len()) / WRITE;
            if words.clone().any(|word| self.programmed[word]) {
                return Err(FlashSimError::AlreadyProgrammed);
            }
        }
        let done = match self.rail.begin_op(bytes.len())? {
            Budget::All => bytes.len(),
            Budget::Prefix(n) => n,
        };
        self.counters.write_calls += 1;
        self.counters.bytes_written += done as u64;

        self.program(start, &bytes[..done]);
        let touched_end = if done < bytes.len() {
            (start + done) / WRITE * WRITE + WRITE
        } else {
            start + done
        };
        self.mark_programmed(start / WRITE..touched_end / WRITE, true);

        if done < bytes.len() {
            let cut = start + done;
            let word_end = touched_end.min(start + bytes.len());
            self.tear_write(cut, word_end, &bytes[done..]);
            return Err(FlashSimError::PowerLoss);
        }
        Ok(())
    }
}

/// Rewriting a word works only in non-strict mode.
///
/// A strict device returns [`FlashSimError::AlreadyProgrammed`] instead, so
/// code that relies on this trait must not run against one.
impl<const ERASE: usize, const WRITE: usize, const READ: usize> MultiwriteNorFlash
    for FlashSim<ERASE, WRITE, READ>
{
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sim = FlashSim<64, 4>;

    fn sim(strict: bool) -> (Sim, PowerRail) {
        let rail = PowerRail::new();
        let flash = Sim::new(FlashConfig::new(256).strict(strict).seed(7), rail.clone()).unwrap();
        (flash, rail)
    }

    fn read_vec(flash: &mut Sim, offset: u32, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        flash.read(offset, &mut buf).unwrap();
        buf
    }

    #[test]
    fn write_only_clears_bits() {
        // Proves that a second write ANDs into the stored byte, as NOR flash does.
        let (mut flash, _) = sim(false);
        flash.write(0, &[0xF0, 0x0F, 0xFF, 0x00]).unwrap();
        flash.write(0, &[0x3C, 0xFF, 0x00, 0xFF]).unwrap();
        assert_eq!(read_vec(&mut flash, 0, 4), [0x30, 0x0F, 0x00, 0x00]);
    }

    #[test]
    fn alignment_and_bounds_enforced() {
        // Proves that misaligned and out-of-range operations are errors and change nothing.
        let (mut flash, _) = sim(false);
        assert_eq!(flash.write(2, &[0; 4]), Err(FlashSimError::NotAligned));
        assert_eq!(flash.write(0, &[0; 3]), Err(FlashSimError::NotAligned));
        assert_eq!(flash.write(256, &[0; 4]), Err(FlashSimError::OutOfBounds));
        assert_eq!(flash.erase(0, 32), Err(FlashSimError::NotAligned));
        assert_eq!(flash.erase(64, 0), Err(FlashSimError::OutOfBounds));
        assert_eq!(flash.erase(0, 320), Err(FlashSimError::OutOfBounds));
        assert!(flash.raw().iter().all(|b| *b == 0xFF));
        assert_eq!(flash.counters().write_calls, 0);
    }

    #[test]
    fn strict_mode_rejects_second_program() {
        // Proves that strict mode allows one program per word between erases.
        let (mut flash, _) = sim(true);
        flash.write(0, &[0xFF, 0xFF, 0xFF, 0x7F]).unwrap();
        assert_eq!(
            flash.write(0, &[0x00; 4]),
            Err(FlashSimError::AlreadyProgrammed)
        );
        flash.write(4, &[0x00; 4]).unwrap();
        flash.erase(0, 64).unwrap();
        flash.write(0, &[0x00; 4]).unwrap();
    }

    #[test]
    fn torn_write_leaves_prefix_and_unstable_word() {
        // Proves that a cut inside a write keeps the prefix and leaves the rest of that word unstable.
        let (mut flash, rail) = sim(false);
        rail.cut_after_bytes(5);
        assert_eq!(flash.write(0, &[0x00; 12]), Err(FlashSimError::PowerLoss));
        assert!(rail.is_down());
        assert_eq!(flash.read(0, &mut [0; 4]), Err(FlashSimError::PowerLoss));
        rail.power_on();

        assert_eq!(read_vec(&mut flash, 0, 5), [0x00; 5]);
        assert_eq!(flash.unstable_bytes(), 3);
        assert_eq!(read_vec(&mut flash, 8, 4), [0xFF; 4]);
        let samples: Vec<Vec<u8>> = (0..16).map(|_| read_vec(&mut flash, 5, 3)).collect();
        assert!(
            samples.iter().any(|s| s != &samples[0]),
            "unstable bytes never changed"
        );

        flash.erase(0, 64).unwrap();
        assert_eq!(flash.unstable_bytes(), 0);
    }

    #[test]
    fn torn_erase_leaves_sector_partly_erased() {
        // Proves that a cut inside an erase erases a prefix and keeps the remaining old data.
        let (mut flash, rail) = sim(false);
        flash.write(0, &[0x00; 64]).unwrap();
        rail.cut_after_bytes(10);
        assert_eq!(flash.erase(0, 64), Err(FlashSimError::PowerLoss));
        rail.power_on();
        assert_eq!(read_vec(&mut flash, 0, 10), [0xFF; 10]);
        assert_eq!(read_vec(&mut flash, 12, 52), [0x00; 52]);
        assert_eq!(flash.unstable_bytes(), 2);
        assert_eq!(flash.counters().sector_erases[0], 1);
    }

    #[test]
    fn cut_after_ops_shared_by_rail() {
        // Proves that one rail cuts power to every device on it after the armed operation count.
        let rail = PowerRail::new();
        let mut a = Sim::new(FlashConfig::new(256), rail.clone()).unwrap();
        let mut b: FlashSim<128, 8> = FlashSim::new(FlashConfig::new(256), rail.clone()).unwrap();
        rail.cut_after_ops(2);
        a.write(0, &[0; 4]).unwrap();
        b.write(0, &[0; 8]).unwrap();
        assert_eq!(a.write(4, &[0; 4]), Err(FlashSimError::PowerLoss));
        assert_eq!(b.erase(0, 128), Err(FlashSimError::PowerLoss));
        rail.power_on();
        assert_eq!(read_vec(&mut a, 4, 4), [0xFF; 4]);
        assert_eq!(rail.ops_total(), 2);
    }

    #[test]
    fn strict_torn_word_counts_as_programmed() {
        // Proves that in strict mode a word torn by a cut cannot be programmed again before an erase.
        let (mut flash, rail) = sim(true);
        rail.cut_after_bytes(1);
        assert_eq!(flash.write(0, &[0x00; 4]), Err(FlashSimError::PowerLoss));
        rail.power_on();
        assert_eq!(
            flash.write(0, &[0x00; 4]),
            Err(FlashSimError::AlreadyProgrammed)
        );
    }

    #[test]
    fn counters_track_and_reset() {
        // Proves that the counters record erases, writes and reads and can be reset.
        let (mut flash, _) = sim(false);
        flash.erase(0, 128).unwrap();
        flash.write(0, &[0; 8]).unwrap();
        read_vec(&mut flash, 0, 16);
        let counters = flash.counters().clone();
        assert_eq!(counters.erases, 2);
        assert_eq!(counters.write_calls, 1);
        assert_eq!(counters.bytes_written, 8);
        assert_eq!(counters.bytes_read, 16);
        assert_eq!(counters.max_sector_erases(), 1);
        flash.reset_counters();
        assert_eq!(
            flash.counters(),
            &Counters {
                sector_erases: vec![0; 4],
                ..Counters::default()
            }
        );
    }

    #[test]
    fn geometry_checked_at_build() {
        // Proves that impossible geometries are rejected when the device is built.
        let rail = PowerRail::new();
        assert!(matches!(
            FlashSim::<64, 4>::new(FlashConfig::new(100), rail.clone()),
            Err(GeometryError::CapacityNotMultipleOfErase)
        ));
        assert!(matches!(
            FlashSim::<64, 24>::new(FlashConfig::new(128), rail),
            Err(GeometryError::EraseNotMultipleOfWrite)
        ));
    }
}
