//! The state log: state records appended to slots in a ring of sectors.
//!
//! Each slot is a marker (one write word of `0x00`) followed by the record
//! body. The marker is written first, as its own write, so a slot that was
//! touched by a torn write is seen as used and never written again before an
//! erase. The valid record with the highest sequence number is current.

use embedded_storage::nor_flash::NorFlash;

use crate::config::{round_up, slot_size, ConfigError, FlashError, Region};
use crate::record::{StateRecord, RECORD_LEN};

/// Largest write size the log supports, in bytes.
const MAX_WRITE: usize = 256;

/// Slot location: sector index and slot index in that sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotPosition {
    sector: u32,
    slot: u32,
}

/// The current record as loaded from flash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loaded {
    /// Current record, or the safe state when none is recognised.
    pub(crate) record: StateRecord,
    /// Highest sequence number seen, including unrecognised records.
    pub(crate) last_seq: u32,
    /// Slot of the record with `last_seq`.
    pub(crate) position: Option<SlotPosition>,
}

/// The state log on one partition.
///
/// Sector, write and slot sizes come from the constants of the flash type
/// that each method is called with, so the compiler folds the offsets
/// computed from them. The drivers call every method with the flash type
/// that `new` checked against the partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateLog {
    region: Region,
    sectors: u32,
}

/// Sizes of the log on flash type `F`, in bytes.
struct Geometry {
    sector_size: u32,
    write_size: u32,
    slot_size: u32,
    slots_per_sector: u32,
}

impl Geometry {
    fn of<F: NorFlash>() -> Self {
        let sector_size = F::ERASE_SIZE as u32;
        let write_size = F::WRITE_SIZE as u32;
        let slot_size = slot_size(write_size);
        Self {
            sector_size,
            write_size,
            slot_size,
            slots_per_sector: sector_size / slot_size,
        }
    }

    fn slot_offset(&self, position: SlotPosition) -> u32 {
        position.sector * self.sector_size + position.slot * self.slot_size
    }
}

impl StateLog {
    pub(crate) fn new<F: NorFlash>(region: Region, flash: &F) -> Result<Self, ConfigError> {
        region.check(flash)?;
        let sector_size = F::ERASE_SIZE as u32;
        let write_size = F::WRITE_SIZE as u32;
        let slot_size = slot_size(write_size);
        let sectors = region.part.size / sector_size;
        let read_fits = write_size.is_multiple_of(F::READ_SIZE as u32)
            && (RECORD_LEN as u32).is_multiple_of(F::READ_SIZE as u32);
        if sectors < 2 || slot_size > sector_size || !read_fits || F::WRITE_SIZE > MAX_WRITE {
            return Err(ConfigError::StateTooSmall);
        }
        Ok(Self { region, sectors })
    }

    /// Reads every slot once and returns the current record.
    ///
    /// Unless the newest valid record is of this format version and fully
    /// understood, the record is the safe state ([`StateRecord::safe`]).
    pub(crate) fn load<F: NorFlash>(&self, flash: &mut F) -> Result<Loaded, FlashError> {
        let geometry = Geometry::of::<F>();
        // Highest sequence number and slot so far. The body read from that
        // slot is kept and decoded once, so every decision uses the same read.
        let mut best: Option<(u32, SlotPosition)> = None;
        let mut best_body = [0u8; RECORD_LEN];
        let mut body = [0u8; RECORD_LEN];
        for sector in 0..self.sectors {
            for slot in 0..geometry.slots_per_sector {
                let position = SlotPosition { sector, slot };
                let at = geometry.slot_offset(position) + geometry.write_size;
                self.region.read(flash, at, &mut body)?;
                let Some(seq) = StateRecord::checked_seq(&body) else {
                    continue;
                };
                if best.is_none_or(|(best_seq, _)| seq > best_seq) {
                    best = Some((seq, position));
                    best_body = body;
                }
            }
        }
        let (last_seq, position) = match best {
            Some((seq, position)) => (seq, Some(position)),
            None => (0, None),
        };
        // The record is decoded in place, so it is not copied into `Loaded`.
        let mut loaded = Loaded {
            record: StateRecord::safe(),
            last_seq,
            position,
        };
        if position.is_some() && !loaded.record.decode_fields(&best_body, last_seq) {
            loaded.record = StateRecord::safe();
        }
        Ok(loaded)
    }

    /// Appends `loaded.record` with the next sequence number and makes it
    /// current in `loaded`.
    ///
    /// The caller changes `loaded.record` in place before the call, so the
    /// record is not copied again. After an error, `loaded.record` may differ
    /// from the current record on flash, so the caller loads the log again.
    ///
    /// NOTE: a slot whose torn marker reads as all `0xFF` can be written again.
    /// Bits that the new record leaves at 1 can then stay unstable, and the
    /// read-back catches them only if they read wrong at that moment.
    ///
    /// Slots after the current one that are not fully erased are skipped. When
    /// the sector is used up, the next sector in the ring is erased first; it
    /// holds only older records. A slot whose write fails or does not read back
    /// is skipped as well.
    pub(crate) fn append<F: NorFlash>(
        &self,
        flash: &mut F,
        loaded: &mut Loaded,
    ) -> Result<(), FlashError> {
        let geometry = Geometry::of::<F>();
        let (mut sector, mut slot) = match loaded.position {
            Some(position) => (position.sector, position.slot + 1),
            None => (0, 0),
        };
        // Whether this call erased `sector`, so that its slots need no check.
        let mut erased = false;
        // Encoded in place, and the sequence number and CRC are set per
        // slot below.
        let mut body = [0xFFu8; RECORD_LEN];
        loaded.record.encode_fields(&mut body);

        // Every slot passed over raises the sequence number by one more, so the
        // new record outranks any torn record in those slots, even one whose
        // unstable bits later read as valid.
        let mut seq = loaded.last_seq.wrapping_add(1);
        let mut last_error = None;
        loop {
            if slot == geometry.slots_per_sector {
                if erased {
                    break;
                }
                // The next sector in the ring holds only older records.
                // Without a current record, sector 0 itself is erased.
                // A comparison rather than a remainder, which would link a
                // division and its division-by-zero panic.
                if loaded.position.is_some() {
                    sector += 1;
                    if sector == self.sectors {
                        sector = 0;
                    }
                }
                let from = sector * geometry.sector_size;
                self.region
                    .erase(flash, from, from + geometry.sector_size)?;
                erased = true;
                slot = 0;
            }
            let position = SlotPosition { sector, slot };
            slot += 1;
            if !erased && !self.slot_is_erased(flash, position)? {
                seq = seq.wrapping_add(1);
                continue;
            }
            StateRecord::set_seq(&mut body, seq);
            match self.write_slot(flash, position, &body) {
                Ok(true) => {
                    loaded.record.seq = seq;
                    loaded.last_seq = seq;
                    loaded.position = Some(position);
                    return Ok(());
                }
                Ok(false) => {}
                Err(error) => last_error = Some(error),
            }
            seq = seq.wrapping_add(1);
        }
        Err(last_error.unwrap_or(FlashError {
            partition: self.region.name,
            kind: embedded_storage::nor_flash::NorFlashErrorKind::Other,
        }))
    }

    fn slot_is_erased<F: NorFlash>(
        &self,
        flash: &mut F,
        position: SlotPosition,
    ) -> Result<bool, FlashError> {
        let geometry = Geometry::of::<F>();
        let mut buf = [0u8; MAX_WRITE];
        // A whole number of write words, so every read stays aligned to the read size.
        let piece = geometry.write_size * (MAX_WRITE as u32 / geometry.write_size);
        let start = geometry.slot_offset(position);
        let mut at = 0;
        while at < geometry.slot_size {
            let len = piece.min(geometry.slot_size - at) as usize;
            self.region.read(flash, start + at, &mut buf[..len])?;
            if buf[..len].iter().any(|b| *b != 0xFF) {
                return Ok(false);
            }
            at += len as u32;
        }
        Ok(true)
    }

    /// Writes marker and body, then reads the body back; returns whether it matches.
    fn write_slot<F: NorFlash>(
        &self,
        flash: &mut F,
        position: SlotPosition,
        body: &[u8; RECORD_LEN],
    ) -> Result<bool, FlashError> {
        let geometry = Geometry::of::<F>();
        let write_size = geometry.write_size;
        let start = geometry.slot_offset(position);
        let marker = [0u8; MAX_WRITE];
        self.region
            .write(flash, start, &marker[..write_size as usize])?;

        // A body of whole write words is written as it is. The condition is
        // a constant, so each firmware keeps only one of the two paths.
        let padded_len = round_up(RECORD_LEN as u32, write_size) as usize;
        if padded_len == RECORD_LEN {
            self.region.write(flash, start + write_size, body)?;
        } else {
            let mut padded = [0xFFu8; RECORD_LEN + MAX_WRITE];
            padded[..RECORD_LEN].copy_from_slice(body);
            self.region
                .write(flash, start + write_size, &padded[..padded_len])?;
        }

        let mut check = [0u8; RECORD_LEN];
        self.region.read(flash, start + write_size, &mut check)?;
        Ok(&check == body)
    }
}
