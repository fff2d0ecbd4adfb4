//! Power-safe key-value store for device settings (credentials, network,
//! application settings), which no install or revert touches.
//!
//! The partition is split into two banks. The current bank starts with a
//! header holding a generation number, followed by appended entries; the
//! newest valid entry of a key is its value. When the bank is full, or its
//! last entry is torn, the newest entry of every key is copied into the other
//! bank together with the new value, and that bank's header is written last.
//! Until the first header copy is written, the old bank stays current, so a
//! cut at any byte keeps either the old or the new value and never loses other
//! keys (`tests/settings.rs` cuts at every byte to check this).

use core::fmt;

use embedded_storage::nor_flash::NorFlash;

use crate::config::{round_up, ConfigError, FlashError, Partition, PartitionName, Region};
use crate::descriptor::read_u32;
use crate::record::crc32;

/// Largest value length in bytes.
pub const MAX_VALUE_LEN: usize = 1024;

/// Key reserved because it reads as erased flash.
pub const RESERVED_KEY: u16 = 0xFFFF;

const BANK_MAGIC: [u8; 4] = *b"SSST";
const BANK_VERSION: u8 = 1;
const BANK_HEADER_LEN: u32 = 16;
const ENTRY_HEADER_LEN: u32 = 8;
const SCRATCH: usize = 256;

/// Bit by bit, without a 1 KiB lookup table: entries are at most 1 KiB and
/// the store is read at start-up and written rarely.
const CRC32: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// Error returned by [`Settings`] operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SettingsError {
    /// A flash operation failed.
    Flash(FlashError),
    /// Key `0xFFFF` is reserved.
    InvalidKey,
    /// The value is longer than [`MAX_VALUE_LEN`] bytes.
    ValueTooLong {
        /// Length of the rejected value.
        len: usize,
    },
    /// The caller's buffer is shorter than the stored value.
    BufferTooSmall {
        /// Length of the stored value.
        needed: usize,
    },
    /// The newest values of all keys plus the new one do not fit in one bank.
    NoSpace,
}

impl From<FlashError> for SettingsError {
    fn from(error: FlashError) -> Self {
        Self::Flash(error)
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flash(error) => write!(f, "{error}"),
            Self::InvalidKey => f.write_str("invalid settings key 0xFFFF: it is reserved"),
            Self::ValueTooLong { len } => write!(
                f,
                "settings value of {len} bytes is too long: the maximum is {MAX_VALUE_LEN}"
            ),
            Self::BufferTooSmall { needed } => {
                write!(
                    f,
                    "buffer too small for settings value: {needed} bytes needed"
                )
            }
            Self::NoSpace => {
                f.write_str("settings partition full: the values do not fit in one bank")
            }
        }
    }
}

/// One step of a bank scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// End of the entries; `clean` is false if the bytes there are not a
    /// parseable entry, so nothing may be appended.
    End { at: u32, clean: bool },
    /// An entry; `valid` is false if its CRC does not match (a torn write).
    Entry {
        key: u16,
        len: u32,
        value_at: u32,
        next: u32,
        valid: bool,
    },
}

/// Power-safe settings store on its own partition.
#[derive(Debug)]
pub struct Settings<G> {
    flash: G,
    region: Region,
    bank_size: u32,
}

impl<G: NorFlash> Settings<G> {
    /// The device's write size. A constant rather than a field, so the
    /// offsets and sizes derived from it are computed when compiling.
    const WRITE_SIZE: u32 = G::WRITE_SIZE as u32;

    /// Creates the store; the partition must hold two banks of whole sectors.
    pub fn new(flash: G, partition: Partition) -> Result<Self, ConfigError> {
        let region = Region::new(PartitionName::Settings, partition);
        region.check(&flash)?;
        let erase = G::ERASE_SIZE as u32;
        let write_size = G::WRITE_SIZE as u32;
        if partition.size / erase < 2 || !(partition.size / erase).is_multiple_of(2) {
            return Err(ConfigError::NotAligned(PartitionName::Settings));
        }
        if write_size as usize > SCRATCH || !(SCRATCH as u32).is_multiple_of(G::READ_SIZE as u32) {
            return Err(ConfigError::UnsupportedGeometry(PartitionName::Settings));
        }
        Ok(Self {
            flash,
            region,
            bank_size: partition.size / 2,
        })
    }

    /// Consumes the store and returns the flash device.
    pub fn into_inner(self) -> G {
        self.flash
    }

    /// Copies the value of `key` into `buf` and returns its length, or `None`
    /// if the key has no value.
    ///
    /// The first access after a compaction that was cut before its second
    /// header copy writes that copy, so a read can write flash once.
    pub fn read(&mut self, key: u16, buf: &mut [u8]) -> Result<Option<usize>, SettingsError> {
        if key == RESERVED_KEY {
            return Err(SettingsError::InvalidKey);
        }
        let Some((bank, _)) = self.current_bank()? else {
            return Ok(None);
        };
        let Some((value_at, len)) = self.find(bank, key)? else {
            return Ok(None);
        };
        let len = len as usize;
        if buf.len() < len {
            return Err(SettingsError::BufferTooSmall { needed: len });
        }
        self.read_bytes(bank_base(bank, self.bank_size) + value_at, &mut buf[..len])?;
        Ok(Some(len))
    }

    /// Stores `value` under `key`; a power cut keeps either the old or the new value.
    pub fn write(&mut self, key: u16, value: &[u8]) -> Result<(), SettingsError> {
        if key == RESERVED_KEY {
            return Err(SettingsError::InvalidKey);
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(SettingsError::ValueTooLong { len: value.len() });
        }
        let current = self.current_bank()?;
        if let Some((bank, generation)) = current {
            self.clear_torn_header(1 - bank, generation)?;
            let at = self.append_point(bank)?;
            let size = self.entry_size(value.len() as u32);
            if let Some(at) = at.filter(|at| at + size <= self.bank_size) {
                let base = bank_base(bank, self.bank_size);
                self.write_entry(base + at, key, value)?;
                if self.entry_is_valid(bank, at)? {
                    return Ok(());
                }
            }
        }
        self.compact(current, key, value)
    }

    /// Erases the first sector of `bank` if its header area contains anything but
    /// erased bytes or a valid older header.
    ///
    /// Such bytes come from a compaction cut while writing the first header
    /// copy. Its bits may read as valid later, which would hide values
    /// appended to the current bank, so the header is removed before appending.
    fn clear_torn_header(&mut self, bank: u32, current_generation: u32) -> Result<(), FlashError> {
        let base = bank_base(bank, self.bank_size);
        let mut erased = true;
        let mut older_valid = false;
        for copy in 0..2 {
            let (header, copy_erased) = self.read_header(base + copy * self.header_slot())?;
            erased &= copy_erased;
            older_valid |= header.is_some_and(|generation| generation < current_generation);
        }
        if !erased && !older_valid {
            let sector = G::ERASE_SIZE as u32;
            self.region.erase(&mut self.flash, base, base + sector)?;
        }
        Ok(())
    }

    /// Reads one header copy; returns its generation if valid, and whether the slot is erased.
    fn read_header(&mut self, at: u32) -> Result<(Option<u32>, bool), FlashError> {
        let len = self.header_slot() as usize;
        // A header slot is at most two write words of at most 256 bytes each.
        let mut area = [0u8; 2 * SCRATCH];
        self.read_bytes(at, &mut area[..len])?;
        let erased = area[..len].iter().all(|b| *b == 0xFF);
        let header = &area[Self::WRITE_SIZE as usize..Self::WRITE_SIZE as usize + 16];
        let valid = header[0..4] == BANK_MAGIC
            && header[4] == BANK_VERSION
            && crc32(&header[..12]) == read_u32(header, 12);
        Ok((valid.then(|| read_u32(header, 8)), erased))
    }

    fn entry_size(&self, len: u32) -> u32 {
        Self::WRITE_SIZE + round_up(ENTRY_HEADER_LEN + len, Self::WRITE_SIZE)
    }

    /// Size of one header copy: a marker word and the header.
    fn header_slot(&self) -> u32 {
        Self::WRITE_SIZE + round_up(BANK_HEADER_LEN, Self::WRITE_SIZE)
    }

    /// Size of the header area: two copies of the header.
    fn header_size(&self) -> u32 {
        2 * self.header_slot()
    }

    /// Returns the bank with the valid header of the highest generation.
    ///
    /// A bank is valid if either header copy is. A second copy that is still
    /// erased means the compaction was cut during or after the first copy, whose
    /// bits may then be unstable. Writing the second copy now makes the choice
    /// permanent.
    fn current_bank(&mut self) -> Result<Option<(u32, u32)>, FlashError> {
        let mut best: Option<(u32, u32, bool)> = None;
        for bank in 0..2 {
            let base = bank_base(bank, self.bank_size);
            let (first, _) = self.read_header(base)?;
            let (second, second_erased) = self.read_header(base + self.header_slot())?;
            let Some(generation) = second.or(first) else {
                continue;
            };
            let unfinished = second.is_none() && second_erased;
            if best.is_none_or(|(_, best_gen, _)| generation > best_gen) {
                best = Some((bank, generation, unfinished));
            }
        }
        let Some((bank, generation, unfinished)) = best else {
            return Ok(None);
        };
        if unfinished {
            let base = bank_base(bank, self.bank_size);
            self.write_header(base + self.header_slot(), generation)?;
        }
        Ok(Some((bank, generation)))
    }

    fn write_header(&mut self, at: u32, generation: u32) -> Result<(), FlashError> {
        // Magic, version, three zero bytes and the generation, then their
        // CRC: the 16 bytes that `read_header` checks. An array literal needs
        // no range copies, which are calls at opt-level z.
        let [magic_0, magic_1, magic_2, magic_3] = BANK_MAGIC;
        let [gen_0, gen_1, gen_2, gen_3] = generation.to_le_bytes();
        let body = [
            magic_0,
            magic_1,
            magic_2,
            magic_3,
            BANK_VERSION,
            0,
            0,
            0,
            gen_0,
            gen_1,
            gen_2,
            gen_3,
        ];
        let crc = crc32(&body).to_le_bytes();
        self.write_marked(at, &[&body, &crc])
    }

    /// Reads the entry at `at` (relative to the bank).
    fn scan_at(&mut self, bank: u32, at: u32) -> Result<Scan, FlashError> {
        let base = bank_base(bank, self.bank_size);
        if at + Self::WRITE_SIZE + ENTRY_HEADER_LEN > self.bank_size {
            return Ok(Scan::End { at, clean: false });
        }
        let mut head = [0u8; SCRATCH + ENTRY_HEADER_LEN as usize];
        let head_len = (Self::WRITE_SIZE + ENTRY_HEADER_LEN) as usize;
        self.read_bytes(base + at, &mut head[..head_len])?;
        if head[..head_len].iter().all(|b| *b == 0xFF) {
            return Ok(Scan::End { at, clean: true });
        }
        // A slice of constant length, so the field reads below need no
        // bounds checks of their own.
        let header = &head[Self::WRITE_SIZE as usize..][..ENTRY_HEADER_LEN as usize];
        let key = u16::from_le_bytes([header[0], header[1]]);
        let len = u16::from_le_bytes([header[2], header[3]]) as u32;
        let stored_crc = read_u32(header, 4);
        let next = at + self.entry_size(len);
        if key == RESERVED_KEY || len as usize > MAX_VALUE_LEN || next > self.bank_size {
            return Ok(Scan::End { at, clean: false });
        }

        let value_at = at + Self::WRITE_SIZE + ENTRY_HEADER_LEN;
        let mut digest = CRC32.digest();
        digest.update(&header[..4]);
        // The value is read in pieces into the same buffer, whose header
        // bytes are no longer needed.
        let mut done = 0;
        while done < len {
            let n = (len - done).min(SCRATCH as u32) as usize;
            let piece = &mut head[..n];
            self.read_bytes(base + value_at + done, piece)?;
            digest.update(piece);
            done += n as u32;
        }
        Ok(Scan::Entry {
            key,
            len,
            value_at,
            next,
            valid: digest.finalize() == stored_crc,
        })
    }

    fn entry_is_valid(&mut self, bank: u32, at: u32) -> Result<bool, FlashError> {
        Ok(matches!(
            self.scan_at(bank, at)?,
            Scan::Entry { valid: true, .. }
        ))
    }

    /// Returns where the next entry can go, or `None` if the bank must be compacted
    /// because its last entry is torn or its tail is unreadable.
    fn append_point(&mut self, bank: u32) -> Result<Option<u32>, FlashError> {
        let mut at = self.header_size();
        let mut last_valid = true;
        loop {
            match self.scan_at(bank, at)? {
                Scan::End { at, clean } => return Ok((clean && last_valid).then_some(at)),
                Scan::Entry { next, valid, .. } => {
                    last_valid = valid;
                    at = next;
                }
            }
        }
    }

    /// Returns the value offset and length of the newest valid entry for `key`.
    fn find(&mut self, bank: u32, key: u16) -> Result<Option<(u32, u32)>, FlashError> {
        self.find_from(bank, self.header_size(), key)
    }

    fn find_from(
        &mut self,
        bank: u32,
        from: u32,
        key: u16,
    ) -> Result<Option<(u32, u32)>, FlashError> {
        let mut found = None;
        let mut at = from;
        loop {
            match self.scan_at(bank, at)? {
                Scan::End { .. } => return Ok(found),
                Scan::Entry {
                    key: entry_key,
                    len,
                    value_at,
                    next,
                    valid,
                } => {
                    if valid && entry_key == key {
                        found = Some((value_at, len));
                    }
                    at = next;
                }
            }
        }
    }

    /// Visits the newest valid entry of every key except `skip`, in bank order.
    ///
    /// Returns the total bytes those entries take; with `copy_to`, also copies
    /// them to that offset in the other bank.
    fn newest_entries(
        &mut self,
        bank: u32,
        skip: u16,
        mut copy_to: Option<u32>,
    ) -> Result<u32, FlashError> {
        let mut total = 0;
        let mut at = self.header_size();
        loop {
            let Scan::Entry {
                key,
                len,
                value_at,
                next,
                valid,
            } = self.scan_at(bank, at)?
            else {
                return Ok(total);
            };
            let newest = valid && key != skip && self.find_from(bank, next, key)?.is_none();
            if newest {
                total += self.entry_size(len);
                if let Some(target) = copy_to {
                    self.copy_entry(bank, value_at, key, len, target)?;
                    copy_to = Some(target + self.entry_size(len));
                }
            }
            at = next;
        }
    }

    /// Writes the newest entries of `current` and the new value into the other
    /// bank, then commits it by writing its header.
    fn compact(
        &mut self,
        current: Option<(u32, u32)>,
        key: u16,
        value: &[u8],
    ) -> Result<(), SettingsError> {
        let (target, generation) = match current {
            Some((bank, generation)) => (1 - bank, generation.wrapping_add(1)),
            None => (0, 1),
        };
        let kept_bytes = match current {
            Some((bank, _)) => self.newest_entries(bank, key, None)?,
            None => 0,
        };
        let needed = self.header_size() + kept_bytes + self.entry_size(value.len() as u32);
        if needed > self.bank_size {
            return Err(SettingsError::NoSpace);
        }

        let base = bank_base(target, self.bank_size);
        self.region
            .erase(&mut self.flash, base, base + self.bank_size)?;
        let mut at = self.header_size();
        if let Some((bank, _)) = current {
            at += self.newest_entries(bank, key, Some(base + at))?;
        }
        self.write_entry(base + at, key, value)?;

        // The first header copy commits the bank; the second makes it permanent.
        self.write_header(base, generation)?;
        self.write_header(base + self.header_slot(), generation)?;
        Ok(())
    }

    fn copy_entry(
        &mut self,
        bank: u32,
        value_at: u32,
        key: u16,
        len: u32,
        target: u32,
    ) -> Result<(), FlashError> {
        let mut value = [0u8; MAX_VALUE_LEN];
        let source = bank_base(bank, self.bank_size) + value_at;
        self.read_bytes(source, &mut value[..len as usize])?;
        self.write_entry(target, key, &value[..len as usize])
    }

    fn write_entry(&mut self, at: u32, key: u16, value: &[u8]) -> Result<(), FlashError> {
        let len = value.len() as u16;
        let ([key_low, key_high], [len_low, len_high]) = (key.to_le_bytes(), len.to_le_bytes());
        let head = [key_low, key_high, len_low, len_high];
        let mut digest = CRC32.digest();
        digest.update(&head);
        digest.update(value);
        let crc = digest.finalize().to_le_bytes();
        self.write_marked(at, &[&head, &crc, value])
    }

    /// Writes a marker word of zeros at `at`, then the concatenated `parts`
    /// padded with `0xFF` to whole write words.
    fn write_marked(&mut self, at: u32, parts: &[&[u8]]) -> Result<(), FlashError> {
        let ws = Self::WRITE_SIZE as usize;
        // A local buffer rather than a field of the store, so the store
        // takes no RAM for it between writes.
        let mut buf = [0u8; SCRATCH];
        self.region.write(&mut self.flash, at, &buf[..ws])?;

        let capacity = SCRATCH / ws * ws;
        let mut offset = at + Self::WRITE_SIZE;
        let mut fill = 0;
        for part in parts {
            for byte in part.iter() {
                // Each piece starts from an erased buffer, so the padding
                // needs no fill of a range at a runtime offset, which would
                // link the generic `memset`.
                if fill == 0 {
                    buf = [0xFF; SCRATCH];
                }
                buf[fill] = *byte;
                fill += 1;
                if fill == capacity {
                    self.region.write(&mut self.flash, offset, &buf[..fill])?;
                    offset += fill as u32;
                    fill = 0;
                }
            }
        }
        if fill > 0 {
            let padded = round_up(fill as u32, Self::WRITE_SIZE) as usize;
            self.region.write(&mut self.flash, offset, &buf[..padded])?;
        }
        Ok(())
    }

    /// Reads any byte range, splitting it into reads aligned to the read size.
    fn read_bytes(&mut self, offset: u32, out: &mut [u8]) -> Result<(), FlashError> {
        // Bytes can be read at any offset, so no aligned reads through a
        // buffer are needed. The constant condition leaves one of
        // the two paths in the firmware.
        if G::READ_SIZE == 1 {
            return self.region.read(&mut self.flash, offset, out);
        }
        let read_size = G::READ_SIZE as u32;
        let max_span = SCRATCH as u32 / read_size * read_size;
        let mut buf = [0u8; SCRATCH];
        let mut done = 0usize;
        while done < out.len() {
            let position = offset + done as u32;
            let aligned = position / read_size * read_size;
            let skip = (position - aligned) as usize;
            let wanted = skip as u32 + (out.len() - done) as u32;
            let span = round_up(wanted, read_size).min(max_span) as usize;
            self.region
                .read(&mut self.flash, aligned, &mut buf[..span])?;
            let n = (span - skip).min(out.len() - done);
            out[done..done + n].copy_from_slice(&buf[skip..skip + n]);
            done += n;
        }
        Ok(())
    }
}

fn bank_base(bank: u32, bank_size: u32) -> u32 {
    bank * bank_size
}

impl core::error::Error for SettingsError {}
