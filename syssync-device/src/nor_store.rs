//! [`NorFileStore`]: the file store and download journal over one NOR flash
//! region.
//!
//! # Layout
//!
//! All offsets are relative to the start of the flash device given to
//! [`NorFileStore::new`]; `E` is its erase size.
//!
//! | area | sectors | content |
//! |---|---|---|
//! | directory A, B | `ceil(3904 / E)` each | directory snapshots, the valid one with the higher sequence number is current |
//! | journal A, B | `ceil(128 / E)` each | 64-byte job records, the valid one with the highest sequence number is current |
//! | manifest | `ceil(1664 / E)` | the signed manifest of the job in progress |
//! | scratch | chosen at construction | a sector's data moved aside while the sector is erased |
//! | data | the rest (at most 2048) | file contents in contiguous sector extents |
//!
//! A directory snapshot is a 64-byte header (magic `SSFD`, format 1, sequence
//! number, entry count, CRC-32 of the entries, CRC-32 of the header) followed by
//! 80-byte entries (state, name, size, SHA-256, first sector, sector count).
//! Every change writes a whole new snapshot into the other directory area,
//! header last, so a power cut leaves either the old or the new snapshot
//! current. A file is therefore either committed and complete or absent.
//!
//! Each change erases one directory area; with at most 48 entries a snapshot
//! is 3904 bytes.

use embedded_storage::nor_flash::NorFlash;
use syssync_proto::frame::crc32;
use syssync_proto::{name_from_utf8, FileName, JobId, Sha256Digest, Signature, MAX_MANIFEST_LEN};

use crate::put;
use crate::store::{FileInfo, FileStore, StoreError, StoredManifest, JOB_RECORD_LEN};

/// Unit of every directory, journal and manifest access, in bytes.
const UNIT: usize = 64;
/// Maximum number of directory entries: installed plus pending files.
pub const MAX_ENTRIES: usize = 48;
/// Maximum number of installed files.
pub const MAX_FILES: usize = 32;
/// Maximum number of data sectors the store manages.
pub const MAX_DATA_SECTORS: usize = 2048;

const ENTRY_LEN: usize = 80;
const DIR_BYTES: usize = UNIT + MAX_ENTRIES * ENTRY_LEN;
const DIR_MAGIC: [u8; 4] = *b"SSFD";
const FORMAT: u8 = 1;
const STATE_COMMITTED: u8 = 1;
const STATE_PENDING: u8 = 2;
/// A state that no entry has, so a [`Change`] with it drops nothing.
const STATE_NONE: u8 = 0;

const RECORD_MAGIC: [u8; 4] = *b"SSJR";
const SLOT_LEN: usize = UNIT;
const LOG_BYTES: usize = 2 * SLOT_LEN;

const MANIFEST_MAGIC: [u8; 4] = *b"SSJM";
const MANIFEST_HEADER: usize = 2 * UNIT;
const MANIFEST_BYTES: usize = MANIFEST_HEADER + MAX_MANIFEST_LEN;

/// Bit by bit, without a 1 KiB lookup table: it covers only the directory
/// and the stored manifest, never file contents.
const CRC: crc::Crc<u32, crc::NoTable> = crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// Error returned by [`NorFileStore::new`] for a flash device it cannot use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LayoutError {
    /// The erase size is not a multiple of 64 bytes.
    EraseSize(usize),
    /// The write or read size does not divide 64 bytes.
    WriteSize(usize),
    /// The flash is too small for the metadata areas and one data sector.
    TooSmall {
        /// Capacity of the device in bytes.
        capacity: usize,
        /// Bytes the metadata areas and one data sector need.
        needed: usize,
    },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::EraseSize(size) => {
                write!(f, "erase size {size} is not a multiple of 64 bytes")
            }
            LayoutError::WriteSize(size) => {
                write!(f, "write or read size {size} does not divide 64 bytes")
            }
            LayoutError::TooSmall { capacity, needed } => write!(
                f,
                "flash of {capacity} bytes is too small: the store needs at least {needed}"
            ),
        }
    }
}

impl core::error::Error for LayoutError {}

/// A pending file of a [`NorFileStore`]: its extent and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingFile {
    first: u16,
    sectors: u16,
    size: u32,
}

impl PendingFile {
    /// Returns the file's final size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    state: u8,
    name: FileName,
    size: u32,
    sha256: Sha256Digest,
    first: u16,
    sectors: u16,
}

impl Entry {
    /// Encodes the entry into `out`, which must be all zeros on entry. The
    /// buffer is the caller's, because returning the array copies it.
    fn encode(&self, out: &mut [u8; ENTRY_LEN]) {
        out[0] = self.state;
        let name = self.name.as_bytes();
        out[1] = name.len() as u8;
        put(out, 2, name);
        put(out, 34, &self.size.to_le_bytes());
        put(out, 38, &self.sha256);
        put(out, 70, &self.first.to_le_bytes());
        put(out, 72, &self.sectors.to_le_bytes());
    }

    fn decode(bytes: &[u8; ENTRY_LEN]) -> Option<Self> {
        let state = bytes[0];
        if state != STATE_COMMITTED && state != STATE_PENDING {
            return None;
        }
        let len = usize::from(bytes[1]);
        if len == 0 || len > 32 {
            return None;
        }
        let name = name_from_utf8(&bytes[2..2 + len]).ok()?;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&bytes[38..70]);
        Some(Entry {
            state,
            name,
            size: read_u32(bytes, 34),
            sha256,
            first: u16::from_le_bytes([bytes[70], bytes[71]]),
            sectors: u16::from_le_bytes([bytes[72], bytes[73]]),
        })
    }

    fn info(&self) -> FileInfo {
        FileInfo {
            name: self.name.clone(),
            size: self.size,
            sha256: self.sha256,
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Directory {
    /// Area holding the current snapshot, or `None` on a fresh store.
    area: Option<u8>,
    seq: u32,
    count: u16,
}

/// The journal cursor, and the area and slot of the latest valid record.
type JournalScan = (Journal, Option<(u8, u32)>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Journal {
    area: u8,
    next_slot: u32,
    seq: u32,
}

/// A power-safe file store over one NOR flash device (see the module docs for
/// the layout).
///
/// It keeps no copy of the directory in RAM: every operation reads what it
/// needs from flash, so its size is a few dozen bytes plus the flash driver.
#[derive(Debug)]
pub struct NorFileStore<F> {
    flash: F,
    scratch_size: u32,
    data_start: u32,
    data_sectors: u32,
    directory: Option<Directory>,
    journal: Option<Journal>,
}

/// The changes that a new directory snapshot makes to the current one.
struct Change<'a> {
    /// Entries in this state are dropped, if they have the name `drop_name`
    /// or it is `None`. [`STATE_NONE`] drops nothing.
    drop_state: u8,
    drop_name: Option<&'a str>,
    /// The pending file with this extent is committed with this digest.
    commit: Option<(PendingFile, &'a Sha256Digest)>,
    /// An entry added after the kept ones.
    extra: Option<&'a Entry>,
}

impl Change<'_> {
    fn drops(&self, entry: &Entry) -> bool {
        entry.state == self.drop_state && self.drop_name.is_none_or(|name| entry.name == name)
    }

    fn commits(&self, entry: &Entry) -> bool {
        // Extents of pending files never overlap, so this selects one entry.
        self.commit.is_some_and(|(file, _)| {
            entry.state == STATE_PENDING
                && entry.first == file.first
                && entry.sectors == file.sectors
        })
    }
}

/// Returns whether `len` bytes at `offset` end within `size` bytes, without
/// an addition that could overflow and in the pointer width instead of 64
/// bits.
fn fits(offset: u32, len: usize, size: u32) -> bool {
    let size = size as usize;
    len <= size && offset as usize <= size - len
}

fn sectors_for(bytes: usize, erase: usize) -> u32 {
    bytes.div_ceil(erase) as u32
}

impl<F: NorFlash> NorFileStore<F> {
    /// Builds the store over the whole of `flash`, with a scratch area of
    /// `scratch_sectors` sectors (at least one). The scratch area must be as
    /// large as the largest sector the engine writes, staging sectors included.
    ///
    /// A fresh (erased) device is an empty store; no formatting is needed.
    pub fn new(flash: F, scratch_sectors: u32) -> Result<Self, LayoutError> {
        let erase = F::ERASE_SIZE;
        if erase == 0 || erase % UNIT != 0 {
            return Err(LayoutError::EraseSize(erase));
        }
        for size in [F::WRITE_SIZE, F::READ_SIZE] {
            if size == 0 || !UNIT.is_multiple_of(size) {
                return Err(LayoutError::WriteSize(size));
            }
        }
        let dir = sectors_for(DIR_BYTES, erase);
        let log = sectors_for(LOG_BYTES, erase);
        let manifest = sectors_for(MANIFEST_BYTES, erase);
        let scratch = scratch_sectors.max(1);
        let meta = 2 * dir + 2 * log + manifest + scratch;
        let capacity = flash.capacity();
        let total = (capacity / erase) as u32;
        if total < meta + 1 {
            return Err(LayoutError::TooSmall {
                capacity,
                needed: (meta as usize + 1) * erase,
            });
        }
        let erase = erase as u32;
        let data_sectors = (total - meta).min(MAX_DATA_SECTORS as u32);
        Ok(Self {
            flash,
            scratch_size: scratch * erase,
            data_start: meta * erase,
            data_sectors,
            directory: None,
            journal: None,
        })
    }

    // The areas before the scratch area depend only on `F::ERASE_SIZE`, so
    // the compiler folds their sizes and offsets to constants. A store
    // exists only after `new` has rejected an erase size of zero.

    fn sector_size() -> u32 {
        F::ERASE_SIZE as u32
    }

    fn dir_area() -> u32 {
        sectors_for(DIR_BYTES, F::ERASE_SIZE) * Self::sector_size()
    }

    fn log_area() -> u32 {
        sectors_for(LOG_BYTES, F::ERASE_SIZE) * Self::sector_size()
    }

    fn manifest_start() -> u32 {
        2 * Self::dir_area() + 2 * Self::log_area()
    }

    fn manifest_area() -> u32 {
        sectors_for(MANIFEST_BYTES, F::ERASE_SIZE) * Self::sector_size()
    }

    fn scratch_start() -> u32 {
        Self::manifest_start() + Self::manifest_area()
    }

    /// Returns the flash device.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Returns the flash device for inspection.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// Returns the number of data sectors.
    pub fn data_sectors(&self) -> u32 {
        self.data_sectors
    }

    fn flash_err(error: F::Error) -> StoreError<F::Error> {
        StoreError::Flash(error)
    }

    /// Reads any range, whatever the read size, through aligned units.
    fn read_bytes(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), StoreError<F::Error>> {
        // A flash with 1-byte reads takes any range as it is. The condition
        // is a constant, so each firmware keeps only one of the two paths.
        if F::READ_SIZE == 1 {
            return self.flash.read(offset, buf).map_err(Self::flash_err);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset as usize + done;
            let unit_start = at / UNIT * UNIT;
            let mut unit = [0u8; UNIT];
            self.flash
                .read(unit_start as u32, &mut unit)
                .map_err(Self::flash_err)?;
            let from = at - unit_start;
            let take = (UNIT - from).min(buf.len() - done);
            buf[done..done + take].copy_from_slice(&unit[from..from + take]);
            done += take;
        }
        Ok(())
    }

    /// Writes and reads back; `offset` and `data.len()` are multiples of the write size.
    fn write_verified(&mut self, offset: u32, data: &[u8]) -> Result<(), StoreError<F::Error>> {
        self.flash.write(offset, data).map_err(Self::flash_err)?;
        let mut done = 0;
        while done < data.len() {
            let take = UNIT.min(data.len() - done);
            let mut unit = [0u8; UNIT];
            self.read_bytes(offset + done as u32, &mut unit[..take])?;
            if unit[..take] != data[done..done + take] {
                return Err(StoreError::VerifyFailed);
            }
            done += take;
        }
        Ok(())
    }

    fn erase_range(&mut self, start: u32, len: u32) -> Result<(), StoreError<F::Error>> {
        self.flash
            .erase(start, start + len)
            .map_err(Self::flash_err)
    }

    // ---- directory ----

    fn dir_start(&self, area: u8) -> u32 {
        u32::from(area) * Self::dir_area()
    }

    /// Validates the snapshot in `area`; returns its sequence number and entry count.
    fn check_snapshot(&mut self, area: u8) -> Result<Option<(u32, u16)>, StoreError<F::Error>> {
        let start = self.dir_start(area);
        let mut header = [0u8; UNIT];
        self.read_bytes(start, &mut header)?;
        if header[0..4] != DIR_MAGIC || header[4] != FORMAT {
            return Ok(None);
        }
        if crc32(&header[..20]) != read_u32(&header, 20) {
            return Ok(None);
        }
        let seq = read_u32(&header, 8);
        let count = u16::from_le_bytes([header[12], header[13]]);
        if usize::from(count) > MAX_ENTRIES {
            return Ok(None);
        }
        let mut digest = CRC.digest();
        for index in 0..usize::from(count) {
            let mut entry = [0u8; ENTRY_LEN];
            self.read_bytes(start + (UNIT + index * ENTRY_LEN) as u32, &mut entry)?;
            digest.update(&entry);
        }
        if digest.finalize() != read_u32(&header, 16) {
            return Ok(None);
        }
        Ok(Some((seq, count)))
    }

    fn directory(&mut self) -> Result<Directory, StoreError<F::Error>> {
        if let Some(directory) = self.directory {
            return Ok(directory);
        }
        // The valid snapshot with the higher sequence number is current, and
        // area 0 wins a tie.
        let mut directory = Directory {
            area: None,
            seq: 0,
            count: 0,
        };
        for area in 0..2 {
            if let Some((seq, count)) = self.check_snapshot(area)? {
                if directory.area.is_none() || seq > directory.seq {
                    directory = Directory {
                        area: Some(area),
                        seq,
                        count,
                    };
                }
            }
        }
        self.directory = Some(directory);
        Ok(directory)
    }

    fn entry(
        &mut self,
        directory: Directory,
        index: usize,
    ) -> Result<Option<Entry>, StoreError<F::Error>> {
        let Some(area) = directory.area else {
            return Ok(None);
        };
        if index >= usize::from(directory.count) {
            return Ok(None);
        }
        let mut bytes = [0u8; ENTRY_LEN];
        self.read_bytes(
            self.dir_start(area) + (UNIT + index * ENTRY_LEN) as u32,
            &mut bytes,
        )?;
        Ok(Entry::decode(&bytes))
    }

    /// Writes a new snapshot with every current entry that `change` keeps,
    /// then `change.extra`.
    ///
    /// Kept entries are encoded again from the entry as read, without a clone.
    fn rewrite(&mut self, change: &Change<'_>) -> Result<(), StoreError<F::Error>> {
        let directory = self.directory()?;
        let target = match directory.area {
            Some(0) => 1,
            _ => 0,
        };
        let start = self.dir_start(target);
        self.directory = None;
        self.erase_range(start, Self::dir_area())?;

        let mut writer = UnitWriter::new(start + UNIT as u32);
        let mut digest = CRC.digest();
        let mut count: u16 = 0;
        // The kept entries, then `change.extra`, go through one encoding and
        // write path.
        let entries = usize::from(directory.count);
        for index in 0..=entries {
            let mut bytes = [0u8; ENTRY_LEN];
            if index < entries {
                // Borrowed, because moving the entry out of the result copies it.
                match self.entry(directory, index) {
                    Ok(Some(ref entry)) if !change.drops(entry) => {
                        entry.encode(&mut bytes);
                        if change.commits(entry) {
                            bytes[0] = STATE_COMMITTED;
                            if let Some((_, sha256)) = change.commit {
                                put(&mut bytes, 38, sha256);
                            }
                        }
                    }
                    Ok(_) => continue,
                    Err(error) => return Err(error),
                }
            } else {
                let Some(entry) = change.extra else {
                    break;
                };
                if usize::from(count) >= MAX_ENTRIES {
                    return Err(StoreError::DirectoryFull);
                }
                entry.encode(&mut bytes);
            }
            digest.update(&bytes);
            writer.push(self, &bytes)?;
            count += 1;
        }
        writer.finish(self)?;

        let seq = directory.seq.wrapping_add(1);
        let mut header = [0u8; UNIT];
        // Bytes 0 to 19 are one array literal, so they take one copy
        // instead of a call per field.
        let [m0, m1, m2, m3] = DIR_MAGIC;
        let [seq_0, seq_1, seq_2, seq_3] = seq.to_le_bytes();
        let [count_0, count_1] = count.to_le_bytes();
        let [crc_0, crc_1, crc_2, crc_3] = digest.finalize().to_le_bytes();
        put(
            &mut header,
            0,
            &[
                m0, m1, m2, m3, FORMAT, 0, 0, 0, seq_0, seq_1, seq_2, seq_3, count_0, count_1, 0,
                0, crc_0, crc_1, crc_2, crc_3,
            ],
        );
        let header_crc = crc32(&header[..20]);
        put(&mut header, 20, &header_crc.to_le_bytes());
        self.write_verified(start, &header)?;

        match self.check_snapshot(target)? {
            Some((written, _)) if written == seq => {
                self.directory = Some(Directory {
                    area: Some(target),
                    seq,
                    count,
                });
                Ok(())
            }
            _ => Err(StoreError::VerifyFailed),
        }
    }

    /// Returns the first directory entry for which `matches` returns `true`.
    /// `matches` is a trait object for the same reason as in `rewrite`, and
    /// callers that visit every entry pass one that returns `false`.
    fn find_entry(
        &mut self,
        matches: &mut dyn FnMut(&Entry) -> bool,
    ) -> Result<Option<Entry>, StoreError<F::Error>> {
        let directory = self.directory()?;
        for index in 0..usize::from(directory.count) {
            // Returned whole, because moving the entry out of the result
            // and into a new one copies it twice.
            let found = self.entry(directory, index);
            match &found {
                Ok(Some(entry)) if !matches(entry) => {}
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return found,
            }
        }
        Ok(None)
    }

    /// Returns the first directory entry in `state`, with the name `name`
    /// unless it is `None`.
    ///
    /// The lookups by state and name share this one predicate, instead of a
    /// closure each.
    fn find_file(
        &mut self,
        state: u8,
        name: Option<&str>,
    ) -> Result<Option<Entry>, StoreError<F::Error>> {
        self.find_entry(&mut |entry| {
            entry.state == state && name.is_none_or(|name| entry.name == name)
        })
    }

    /// Sets the bit of each data sector in use in `used`, which must be all
    /// zeros on entry.
    ///
    /// The bitmap is the caller's, because returning it in a `Result`
    /// copies it once more.
    fn used_sectors(
        &mut self,
        used: &mut [u8; MAX_DATA_SECTORS / 8],
    ) -> Result<(), StoreError<F::Error>> {
        let data_sectors = self.data_sectors;
        self.find_entry(&mut |entry| {
            let end = (u32::from(entry.first) + u32::from(entry.sectors)).min(data_sectors);
            for sector in u32::from(entry.first)..end {
                used[sector as usize / 8] |= 1 << (sector % 8);
            }
            false
        })?;
        Ok(())
    }

    fn pending_address(
        &self,
        file: PendingFile,
        offset: u32,
        len: usize,
    ) -> Result<u32, StoreError<F::Error>> {
        // A file's extent lies within the data area, whose addresses are
        // `u32`, so the saturated size is exact for every real extent.
        let size = u32::from(file.sectors).saturating_mul(Self::sector_size());
        if !fits(offset, len, size) {
            return Err(StoreError::InvalidArgument);
        }
        Ok(self.data_start + u32::from(file.first) * Self::sector_size() + offset)
    }

    // ---- journal ----

    fn log_start(&self, area: u8) -> u32 {
        2 * Self::dir_area() + u32::from(area) * Self::log_area()
    }

    fn slots_per_area(&self) -> u32 {
        Self::log_area() / SLOT_LEN as u32
    }

    // The buffer is the caller's, because returning it in a `Result` copies
    // it once more.
    fn read_slot(
        &mut self,
        area: u8,
        slot: u32,
        bytes: &mut [u8; SLOT_LEN],
    ) -> Result<(), StoreError<F::Error>> {
        self.read_bytes(self.log_start(area) + slot * SLOT_LEN as u32, bytes)
    }

    fn valid_slot(bytes: &[u8; SLOT_LEN]) -> Option<u32> {
        if bytes[0..4] != RECORD_MAGIC {
            return None;
        }
        let end = 8 + JOB_RECORD_LEN;
        if crc32(&bytes[..end]) != read_u32(bytes, end) {
            return None;
        }
        Some(read_u32(bytes, 4))
    }

    fn encode_slot(seq: u32, record: &[u8; JOB_RECORD_LEN]) -> [u8; SLOT_LEN] {
        let mut slot = [0u8; SLOT_LEN];
        let [m0, m1, m2, m3] = RECORD_MAGIC;
        let [seq_0, seq_1, seq_2, seq_3] = seq.to_le_bytes();
        put(&mut slot, 0, &[m0, m1, m2, m3, seq_0, seq_1, seq_2, seq_3]);
        put(&mut slot, 8, record);
        let end = 8 + JOB_RECORD_LEN;
        let crc = crc32(&slot[..end]);
        put(&mut slot, end, &crc.to_le_bytes());
        slot
    }

    /// Scans both journal areas; returns the cursor and the latest valid record's location.
    fn scan_journal(&mut self) -> Result<JournalScan, StoreError<F::Error>> {
        let mut best: Option<(u32, u8, u32)> = None;
        // Per area, the slot after the last one that is not erased.
        let mut after_used = [0u32; 2];
        let mut invalid = 0u32;
        let mut bytes = [0u8; SLOT_LEN];
        for area in 0..2u8 {
            for slot in 0..self.slots_per_area() {
                self.read_slot(area, slot, &mut bytes)?;
                let used = bytes.iter().any(|byte| *byte != 0xFF);
                if used {
                    after_used[usize::from(area)] = slot + 1;
                }
                match Self::valid_slot(&bytes) {
                    Some(seq) if best.is_none_or(|(best_seq, _, _)| seq > best_seq) => {
                        best = Some((seq, area, slot));
                    }
                    Some(_) => {}
                    None if used => invalid += 1,
                    None => {}
                }
            }
        }
        let (area, latest) = match best {
            Some((seq, area, _)) => (area, seq),
            None => (0, 0),
        };
        // Each torn write may carry the sequence number after `latest` and
        // read as valid later. Skipping one number per damaged slot keeps the
        // next record above all of them.
        let seq = latest.wrapping_add(invalid);
        let next_slot = after_used[usize::from(area)];
        let journal = Journal {
            area,
            next_slot,
            seq,
        };
        Ok((journal, best.map(|(_, area, slot)| (area, slot))))
    }
}

/// Buffers bytes into write units of [`UNIT`] bytes; the last is padded with `0xFF`.
struct UnitWriter {
    offset: u32,
    buf: [u8; UNIT],
    fill: usize,
}

impl UnitWriter {
    fn new(offset: u32) -> Self {
        Self {
            offset,
            buf: [0xFF; UNIT],
            fill: 0,
        }
    }

    fn push<F: NorFlash>(
        &mut self,
        store: &mut NorFileStore<F>,
        bytes: &[u8],
    ) -> Result<(), StoreError<F::Error>> {
        // Byte by byte, which takes less code than range copies, as those
        // are calls at opt-level z.
        for byte in bytes {
            self.buf[self.fill] = *byte;
            self.fill += 1;
            if self.fill == UNIT {
                store.write_verified(self.offset, &self.buf)?;
                self.offset += UNIT as u32;
                self.buf = [0xFF; UNIT];
                self.fill = 0;
            }
        }
        Ok(())
    }

    /// Writes the last, partly filled unit. The writer is borrowed, because
    /// taking it by value copies its buffer.
    fn finish<F: NorFlash>(
        &mut self,
        store: &mut NorFileStore<F>,
    ) -> Result<(), StoreError<F::Error>> {
        if self.fill > 0 {
            store.write_verified(self.offset, &self.buf)?;
            self.fill = 0;
        }
        Ok(())
    }
}

impl<F: NorFlash> FileStore for NorFileStore<F> {
    type Error = F::Error;
    type Handle = PendingFile;

    fn file_count(&mut self) -> Result<usize, StoreError<F::Error>> {
        let mut count = 0;
        self.find_entry(&mut |entry| {
            if entry.state == STATE_COMMITTED {
                count += 1;
            }
            false
        })?;
        Ok(count)
    }

    fn file(&mut self, index: usize) -> Result<Option<FileInfo>, StoreError<F::Error>> {
        let mut seen = 0;
        let found = self.find_entry(&mut |entry| {
            if entry.state != STATE_COMMITTED {
                return false;
            }
            seen += 1;
            seen > index
        });
        // Borrowed, because moving the entry out of the result copies it.
        match found {
            Ok(ref entry) => Ok(entry.as_ref().map(Entry::info)),
            Err(error) => Err(error),
        }
    }

    fn find(&mut self, name: &str) -> Result<Option<FileInfo>, StoreError<F::Error>> {
        match self.find_file(STATE_COMMITTED, Some(name)) {
            Ok(ref entry) => Ok(entry.as_ref().map(Entry::info)),
            Err(error) => Err(error),
        }
    }

    fn read(
        &mut self,
        name: &str,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<usize, StoreError<F::Error>> {
        let entry = self
            .find_file(STATE_COMMITTED, Some(name))?
            .ok_or(StoreError::NotFound)?;
        if offset >= entry.size {
            return Ok(0);
        }
        let len = buf.len().min((entry.size - offset) as usize);
        let address = self.data_start + u32::from(entry.first) * Self::sector_size() + offset;
        self.read_bytes(address, &mut buf[..len])?;
        Ok(len)
    }

    fn free_space(&mut self) -> Result<u32, StoreError<F::Error>> {
        let mut used = [0u8; MAX_DATA_SECTORS / 8];
        self.used_sectors(&mut used)?;
        let used_count: u32 = used.iter().map(|byte| byte.count_ones()).sum();
        Ok(self.data_sectors.saturating_sub(used_count) * Self::sector_size())
    }

    fn space_needed(&self, size: u32) -> u32 {
        size.div_ceil(Self::sector_size())
            .saturating_mul(Self::sector_size())
    }

    fn erase_size(&self) -> u32 {
        Self::sector_size()
    }

    fn write_size(&self) -> u32 {
        F::WRITE_SIZE as u32
    }

    fn create_pending(
        &mut self,
        name: &str,
        size: u32,
    ) -> Result<PendingFile, StoreError<F::Error>> {
        // The name is copied straight into the new entry, because each move
        // of a `FileName` through an `Option` or a `Result` copies it.
        let mut entry = Entry {
            state: STATE_PENDING,
            name: FileName::new(),
            size,
            sha256: [0; 32],
            first: 0,
            sectors: 0,
        };
        if name.is_empty() || entry.name.push_str(name).is_err() {
            return Err(StoreError::InvalidArgument);
        }
        let found = self.find_file(STATE_PENDING, Some(name));
        if let Some(pending) = found? {
            if pending.size == size {
                return Ok(PendingFile {
                    first: pending.first,
                    sectors: pending.sectors,
                    size,
                });
            }
            // Only one pending file has a given name, so matching the name
            // removes exactly the entry found.
            self.rewrite(&Change {
                drop_state: STATE_PENDING,
                drop_name: Some(name),
                commit: None,
                extra: None,
            })?;
        }
        let needed = size.div_ceil(Self::sector_size());
        let mut used = [0u8; MAX_DATA_SECTORS / 8];
        self.used_sectors(&mut used)?;
        let is_used = |sector: u32| used[sector as usize / 8] & (1 << (sector % 8)) != 0;
        let mut first = None;
        let mut run = 0u32;
        for sector in 0..self.data_sectors {
            if needed == 0 {
                first = Some(0);
                break;
            }
            if is_used(sector) {
                run = 0;
                continue;
            }
            run += 1;
            if run == needed {
                first = Some(sector + 1 - needed);
                break;
            }
        }
        let first = first.ok_or(StoreError::NoSpace)?;
        entry.first = first as u16;
        entry.sectors = needed as u16;
        self.rewrite(&Change {
            drop_state: STATE_NONE,
            drop_name: None,
            commit: None,
            extra: Some(&entry),
        })?;
        Ok(PendingFile {
            first: first as u16,
            sectors: needed as u16,
            size,
        })
    }

    fn find_pending(&mut self, name: &str) -> Result<Option<PendingFile>, StoreError<F::Error>> {
        match self.find_file(STATE_PENDING, Some(name)) {
            Ok(ref entry) => Ok(entry.as_ref().map(|entry| PendingFile {
                first: entry.first,
                sectors: entry.sectors,
                size: entry.size,
            })),
            Err(error) => Err(error),
        }
    }

    fn erase_pending(
        &mut self,
        file: PendingFile,
        offset: u32,
    ) -> Result<(), StoreError<F::Error>> {
        if !offset.is_multiple_of(Self::sector_size()) {
            return Err(StoreError::InvalidArgument);
        }
        let address = self.pending_address(file, offset, Self::sector_size() as usize)?;
        self.erase_range(address, Self::sector_size())
    }

    fn write_pending(
        &mut self,
        file: PendingFile,
        offset: u32,
        data: &[u8],
    ) -> Result<(), StoreError<F::Error>> {
        let address = self.pending_address(file, offset, data.len())?;
        self.flash.write(address, data).map_err(Self::flash_err)
    }

    fn read_pending(
        &mut self,
        file: PendingFile,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), StoreError<F::Error>> {
        let address = self.pending_address(file, offset, buf.len())?;
        self.read_bytes(address, buf)
    }

    fn commit(
        &mut self,
        file: PendingFile,
        sha256: &Sha256Digest,
    ) -> Result<(), StoreError<F::Error>> {
        // Borrowed, because moving the entry out of the result copies it.
        let found = self.find_entry(&mut |entry| {
            entry.state == STATE_PENDING
                && entry.first == file.first
                && entry.sectors == file.sectors
        });
        let pending = match found {
            Ok(Some(ref entry)) => entry,
            Ok(None) => return Err(StoreError::NotFound),
            Err(error) => return Err(error),
        };
        // One scan counts the installed files and looks for one of the
        // pending file's name.
        let mut committed_count = 0;
        let mut replaces = false;
        self.find_entry(&mut |entry| {
            if entry.state == STATE_COMMITTED {
                committed_count += 1;
                replaces |= entry.name == pending.name;
            }
            false
        })?;
        if !replaces && committed_count >= MAX_FILES {
            return Err(StoreError::DirectoryFull);
        }
        self.rewrite(&Change {
            drop_state: STATE_COMMITTED,
            drop_name: Some(pending.name.as_str()),
            commit: Some((file, sha256)),
            extra: None,
        })
    }

    fn discard_pending(&mut self) -> Result<(), StoreError<F::Error>> {
        if self.find_file(STATE_PENDING, None)?.is_none() {
            return Ok(());
        }
        self.rewrite(&Change {
            drop_state: STATE_PENDING,
            drop_name: None,
            commit: None,
            extra: None,
        })
    }

    fn remove(&mut self, name: &str) -> Result<bool, StoreError<F::Error>> {
        if self.find(name)?.is_none() {
            return Ok(false);
        }
        self.rewrite(&Change {
            drop_state: STATE_COMMITTED,
            drop_name: Some(name),
            commit: None,
            extra: None,
        })?;
        Ok(true)
    }

    fn load_job_record(
        &mut self,
        out: &mut [u8; JOB_RECORD_LEN],
    ) -> Result<bool, StoreError<F::Error>> {
        let (journal, latest) = self.scan_journal()?;
        self.journal = Some(journal);
        let Some((area, slot)) = latest else {
            return Ok(false);
        };
        let mut bytes = [0u8; SLOT_LEN];
        self.read_slot(area, slot, &mut bytes)?;
        if Self::valid_slot(&bytes).is_none() {
            return Ok(false);
        }
        out.copy_from_slice(&bytes[8..8 + JOB_RECORD_LEN]);
        Ok(true)
    }

    fn store_job_record(
        &mut self,
        record: &[u8; JOB_RECORD_LEN],
    ) -> Result<(), StoreError<F::Error>> {
        let mut journal = match self.journal {
            Some(journal) => journal,
            None => self.scan_journal()?.0,
        };
        self.journal = None;
        let mut seq = journal.seq;

        // A slot that does not take the write (left unstable by a cut write)
        // is skipped. When the area is full, the other area is erased and used.
        let mut last_error = StoreError::VerifyFailed;
        for _ in 0..4 {
            if journal.next_slot >= self.slots_per_area() {
                let other = 1 - journal.area;
                self.erase_range(self.log_start(other), Self::log_area())?;
                journal = Journal {
                    area: other,
                    next_slot: 0,
                    seq: journal.seq,
                };
            }
            let address = self.log_start(journal.area) + journal.next_slot * SLOT_LEN as u32;
            journal.next_slot += 1;
            // A failed attempt may still read as valid later: never reuse its number.
            seq = seq.wrapping_add(1);
            let slot = Self::encode_slot(seq, record);
            match self.write_verified(address, &slot) {
                Ok(()) => {
                    journal.seq = seq;
                    self.journal = Some(journal);
                    return Ok(());
                }
                // A strict (ECC) flash refuses to program a word twice; a
                // torn word that reads as erased fails here and is skipped.
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn store_manifest(
        &mut self,
        job: JobId,
        key_id: u8,
        signature: &Signature,
        body: &[u8],
    ) -> Result<(), StoreError<F::Error>> {
        if body.len() > MAX_MANIFEST_LEN {
            return Err(StoreError::InvalidArgument);
        }
        self.erase_range(Self::manifest_start(), Self::manifest_area())?;
        let mut writer = UnitWriter::new(Self::manifest_start() + MANIFEST_HEADER as u32);
        writer.push(self, body)?;
        writer.finish(self)?;

        let mut header = [0u8; MANIFEST_HEADER];
        // Bytes 0 to 15 are one array literal, so they take one copy
        // instead of a call per field.
        let [m0, m1, m2, m3] = MANIFEST_MAGIC;
        let [job_0, job_1, job_2, job_3] = job.0.to_le_bytes();
        let [len_0, len_1] = (body.len() as u16).to_le_bytes();
        put(
            &mut header,
            0,
            &[
                m0, m1, m2, m3, job_0, job_1, job_2, job_3, key_id, 0, 0, 0, len_0, len_1, 0, 0,
            ],
        );
        put(&mut header, 16, &signature.0);
        let mut digest = CRC.digest();
        digest.update(&header[..80]);
        digest.update(body);
        put(&mut header, 80, &digest.finalize().to_le_bytes());
        self.write_verified(Self::manifest_start(), &header)
    }

    fn load_manifest(
        &mut self,
        body: &mut [u8; MAX_MANIFEST_LEN],
    ) -> Result<Option<StoredManifest>, StoreError<F::Error>> {
        let mut header = [0u8; MANIFEST_HEADER];
        self.read_bytes(Self::manifest_start(), &mut header)?;
        if header[0..4] != MANIFEST_MAGIC {
            return Ok(None);
        }
        let len = usize::from(u16::from_le_bytes([header[12], header[13]]));
        if len > MAX_MANIFEST_LEN {
            return Ok(None);
        }
        self.read_bytes(
            Self::manifest_start() + MANIFEST_HEADER as u32,
            &mut body[..len],
        )?;
        let mut digest = CRC.digest();
        digest.update(&header[..80]);
        digest.update(&body[..len]);
        if digest.finalize() != read_u32(&header, 80) {
            return Ok(None);
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&header[16..80]);
        Ok(Some(StoredManifest {
            job: JobId(read_u32(&header, 4)),
            key_id: header[8],
            signature: Signature(signature),
            len,
        }))
    }

    fn scratch_size(&self) -> u32 {
        self.scratch_size
    }

    fn erase_scratch(&mut self) -> Result<(), StoreError<F::Error>> {
        self.erase_range(Self::scratch_start(), self.scratch_size)
    }

    fn write_scratch(&mut self, offset: u32, data: &[u8]) -> Result<(), StoreError<F::Error>> {
        if !fits(offset, data.len(), self.scratch_size) {
            return Err(StoreError::InvalidArgument);
        }
        self.flash
            .write(Self::scratch_start() + offset, data)
            .map_err(Self::flash_err)
    }

    fn read_scratch(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), StoreError<F::Error>> {
        if !fits(offset, buf.len(), self.scratch_size) {
            return Err(StoreError::InvalidArgument);
        }
        self.read_bytes(Self::scratch_start() + offset, buf)
    }
}
