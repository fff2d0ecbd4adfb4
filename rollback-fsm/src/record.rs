//! The state record: the persisted state of the update, encoded as in
//! `docs/FLASH-FORMAT.md`.

use crate::descriptor::{read_u32, ImageDescriptor, DESCRIPTOR_LEN};

/// Magic bytes at the start of every record body.
pub const RECORD_MAGIC: [u8; 4] = *b"SSRF";

/// Version of the record format written by this crate.
pub const FORMAT_VERSION: u8 = 1;

/// Length of an encoded record body in bytes.
pub const RECORD_LEN: usize = 192;

// A bitwise CRC without the 1 KiB lookup table, because records are 188 bytes
// and rarely written. The table would be a tenth of the boot-side size probe.
const CRC32: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// Computes the CRC-32 (ISO-HDLC, as in zlib) of `bytes`.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Phase of the update, which determines what the bootloader does at the next power-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// The active image is confirmed (or is the factory image): boot it.
    Idle = 1,
    /// The application is writing a new image into staging: boot the active image.
    Staging = 2,
    /// The application asked for the staged image to be installed: verify it.
    InstallRequested = 3,
    /// The bootloader is copying the active image into recovery.
    Backup = 4,
    /// The bootloader is copying the staged image into the active partition.
    Install = 5,
    /// The new image runs on trial until the application confirms it.
    Trial = 6,
    /// The bootloader is copying the recovery image back into the active partition.
    Revert = 7,
}

impl Phase {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Idle,
            2 => Self::Staging,
            3 => Self::InstallRequested,
            4 => Self::Backup,
            5 => Self::Install,
            6 => Self::Trial,
            7 => Self::Revert,
            _ => return None,
        })
    }
}

/// Side that wrote a record.
///
/// The bootloader rewrites (seals) each application record at the next boot,
/// so that a torn application write is read the same way on every later boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Writer {
    /// Written by the application.
    Application = 1,
    /// Written by the bootloader.
    Bootloader = 2,
}

/// Reason the bootloader reverted to the recovery image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RevertReason {
    /// The image booted the configured number of trial boots without being confirmed.
    TrialLimit = 1,
    /// The application reported the trial image as unhealthy.
    ApplicationReportedFailure = 2,
    /// The installed copy did not match the staged image's SHA-256.
    InstallVerifyFailed = 3,
}

impl RevertReason {
    fn from_u8(value: u8) -> Option<Option<Self>> {
        Some(match value {
            0 => None,
            1 => Some(Self::TrialLimit),
            2 => Some(Self::ApplicationReportedFailure),
            3 => Some(Self::InstallVerifyFailed),
            _ => return None,
        })
    }
}

/// Reason the bootloader rejected a staged image or abandoned an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rejection {
    /// No staged image was described.
    Missing = 1,
    /// The size is zero or larger than the active or staging partition.
    Size = 2,
    /// The staged bytes do not match the SHA-256 of the descriptor.
    Digest = 3,
    /// The target type is not the one this device runs.
    TargetType = 4,
    /// The signature is missing or invalid.
    Signature = 5,
    /// The security counter is below the device's confirmed counter.
    SecurityCounter = 6,
    /// The backup copy in recovery did not verify, so the update was abandoned.
    BackupFailed = 7,
    /// The recovery image did not verify, so the trial image was kept.
    RecoveryInvalid = 8,
}

impl Rejection {
    fn from_u8(value: u8) -> Option<Option<Self>> {
        Some(match value {
            0 => None,
            1 => Some(Self::Missing),
            2 => Some(Self::Size),
            3 => Some(Self::Digest),
            4 => Some(Self::TargetType),
            5 => Some(Self::Signature),
            6 => Some(Self::SecurityCounter),
            7 => Some(Self::BackupFailed),
            8 => Some(Self::RecoveryInvalid),
            _ => return None,
        })
    }
}

/// The persisted update state.
///
/// `active` describes the image the active partition contains once the current
/// phase is complete. `spare` describes the staged image in phases `Staging`
/// to `Backup`, and the recovery image from `Install` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StateRecord {
    /// Sequence number; the valid record with the highest one is current.
    pub seq: u32,
    /// Side that wrote the record.
    pub writer: Writer,
    /// Update phase.
    pub phase: Phase,
    /// Trial boots started so far (phase `Trial` only).
    pub trial_boots: u8,
    /// Reason of the last revert, kept until the next install starts.
    pub revert_reason: Option<RevertReason>,
    /// Reason the last staged image was rejected or the last update abandoned.
    pub rejection: Option<Rejection>,
    /// Lowest security counter a staged image may have; raised on confirm.
    pub security_floor: u32,
    /// Image in the active partition (`None` for an unknown factory image).
    pub active: Option<ImageDescriptor>,
    /// Staged image or recovery image, depending on the phase.
    pub spare: Option<ImageDescriptor>,
}

/// Result of decoding a record slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record of this format version.
    Record(StateRecord),
    /// A record with a valid CRC that this crate cannot interpret (another
    /// format version or an unknown field value), with its sequence number.
    Unrecognised {
        /// Sequence number of the record.
        seq: u32,
    },
    /// Not a record: erased, torn or garbage.
    Invalid,
}

impl StateRecord {
    /// Returns the safe state: `Idle` with nothing known, so the bootloader
    /// boots the active partition as it is and touches no flash.
    pub const fn safe() -> Self {
        Self {
            seq: 0,
            writer: Writer::Bootloader,
            phase: Phase::Idle,
            trial_boots: 0,
            revert_reason: None,
            rejection: None,
            security_floor: 0,
            active: None,
            spare: None,
        }
    }

    /// Encodes the record body.
    pub fn to_bytes(&self) -> [u8; RECORD_LEN] {
        // The body starts erased, so an absent descriptor needs no fill of
        // its own. A fill of a range at a runtime offset would link the
        // generic `memset`, and this whole-array fill does not.
        let mut out = [0xFFu8; RECORD_LEN];
        self.encode_fields(&mut out);
        Self::set_seq(&mut out, self.seq);
        out
    }

    /// Writes every field except the sequence number and the CRC into
    /// `out`, which must hold `0xFF` bytes. [`Self::set_seq`] writes the
    /// other two.
    ///
    /// The caller owns the buffer, because returning the array copies it.
    pub(crate) fn encode_fields(&self, out: &mut [u8; RECORD_LEN]) {
        // Byte by byte at constant indices, which need no bounds checks,
        // because range copies are calls at opt-level z.
        let [magic_0, magic_1, magic_2, magic_3] = RECORD_MAGIC;
        let [floor_0, floor_1, floor_2, floor_3] = self.security_floor.to_le_bytes();
        out[0] = magic_0;
        out[1] = magic_1;
        out[2] = magic_2;
        out[3] = magic_3;
        out[4] = FORMAT_VERSION;
        out[5] = self.writer as u8;
        out[6] = self.phase as u8;
        out[7] = self.trial_boots;
        out[12] = self.revert_reason.map_or(0, |r| r as u8);
        out[13] = self.rejection.map_or(0, |r| r as u8);
        out[14] = 0;
        out[15] = 0;
        out[16] = floor_0;
        out[17] = floor_1;
        out[18] = floor_2;
        out[19] = floor_3;
        encode_descriptor(&mut out[20..104], self.active.as_ref());
        encode_descriptor(&mut out[104..188], self.spare.as_ref());
    }

    /// Decodes a record body.
    pub fn decode(bytes: &[u8; RECORD_LEN]) -> Decoded {
        let Some(seq) = Self::checked_seq(bytes) else {
            return Decoded::Invalid;
        };
        let mut record = Self::safe();
        if record.decode_fields(bytes, seq) {
            Decoded::Record(record)
        } else {
            Decoded::Unrecognised { seq }
        }
    }

    /// Returns the sequence number of a record body whose magic and CRC are
    /// valid, whether or not its fields can be interpreted.
    pub(crate) fn checked_seq(bytes: &[u8; RECORD_LEN]) -> Option<u32> {
        (bytes[0..4] == RECORD_MAGIC && crc32(&bytes[..188]) == read_u32(bytes, 188))
            .then(|| read_u32(bytes, 8))
    }

    /// Sets the sequence number of an encoded record body and updates its CRC.
    pub(crate) fn set_seq(bytes: &mut [u8; RECORD_LEN], seq: u32) {
        // Byte by byte at constant indices, because range copies are calls
        // at opt-level z.
        let [seq_0, seq_1, seq_2, seq_3] = seq.to_le_bytes();
        bytes[8] = seq_0;
        bytes[9] = seq_1;
        bytes[10] = seq_2;
        bytes[11] = seq_3;
        let [crc_0, crc_1, crc_2, crc_3] = crc32(&bytes[..188]).to_le_bytes();
        bytes[188] = crc_0;
        bytes[189] = crc_1;
        bytes[190] = crc_2;
        bytes[191] = crc_3;
    }

    /// Decodes the fields of a record body whose magic and CRC are valid
    /// into `self` and returns whether every field is recognised.
    ///
    /// The fields are written in place, because returning a record by value
    /// copies it, and each copy of its two descriptors is a call. When a
    /// field is not recognised, `self` is left partly written.
    pub(crate) fn decode_fields(&mut self, bytes: &[u8; RECORD_LEN], seq: u32) -> bool {
        if bytes[4] != FORMAT_VERSION || bytes[14..16] != [0, 0] {
            return false;
        }
        let writer = match bytes[5] {
            1 => Writer::Application,
            2 => Writer::Bootloader,
            _ => return false,
        };
        let (Some(phase), Some(revert_reason), Some(rejection)) = (
            Phase::from_u8(bytes[6]),
            RevertReason::from_u8(bytes[12]),
            Rejection::from_u8(bytes[13]),
        ) else {
            return false;
        };
        self.seq = seq;
        self.writer = writer;
        self.phase = phase;
        self.trial_boots = bytes[7];
        self.revert_reason = revert_reason;
        self.rejection = rejection;
        self.security_floor = read_u32(bytes, 16);
        decode_descriptor(&bytes[20..104], &mut self.active)
            && decode_descriptor(&bytes[104..188], &mut self.spare)
    }
}

/// Writes a present descriptor over `out`. An absent descriptor leaves the
/// erased bytes that `out` already holds.
fn encode_descriptor(out: &mut [u8], descriptor: Option<&ImageDescriptor>) {
    if let Some(descriptor) = descriptor {
        descriptor.write_to(out);
    }
}

/// Decodes an optional descriptor into `out` and returns whether the bytes
/// are valid. An erased descriptor decodes to `None`, and invalid bytes
/// leave `out` unchanged.
fn decode_descriptor(bytes: &[u8], out: &mut Option<ImageDescriptor>) -> bool {
    if bytes.iter().all(|b| *b == 0xFF) {
        *out = None;
        return true;
    }
    let Ok(array) = <&[u8; DESCRIPTOR_LEN]>::try_from(bytes) else {
        return false;
    };
    match ImageDescriptor::from_bytes(array) {
        Some(descriptor) => {
            *out = Some(descriptor);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::{TargetType, Version};

    fn sample() -> StateRecord {
        StateRecord {
            seq: 0x0A0B_0C0D,
            writer: Writer::Application,
            phase: Phase::Trial,
            trial_boots: 2,
            revert_reason: Some(RevertReason::TrialLimit),
            rejection: None,
            security_floor: 5,
            active: Some(ImageDescriptor {
                size: 100,
                sha256: [1; 32],
                target_type: TargetType::new("t").unwrap(),
                version: Version::new(1, 0, 0, 0),
                security_counter: 5,
            }),
            spare: None,
        }
    }

    #[test]
    fn record_golden_bytes() {
        // Proves the record header layout and CRC position and that it decodes back.
        let record = sample();
        let bytes = record.to_bytes();
        assert_eq!(bytes[0..4], *b"SSRF");
        assert_eq!(bytes[4..8], [1, 1, 6, 2]);
        assert_eq!(bytes[8..12], [0x0D, 0x0C, 0x0B, 0x0A]);
        assert_eq!(bytes[12..16], [1, 0, 0, 0]);
        assert_eq!(bytes[16..20], [5, 0, 0, 0]);
        assert_eq!(bytes[20..24], [100, 0, 0, 0]);
        assert!(bytes[104..188].iter().all(|b| *b == 0xFF));
        assert_eq!(read_u32(&bytes, 188), crc32(&bytes[..188]));
        assert_eq!(StateRecord::decode(&bytes), Decoded::Record(record));
    }

    #[test]
    fn other_version_is_unrecognised() {
        // Proves that a record of another format version is recognised as a record but not interpreted.
        let mut bytes = sample().to_bytes();
        bytes[4] = 2;
        let crc = crc32(&bytes[..188]);
        bytes[188..192].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            StateRecord::decode(&bytes),
            Decoded::Unrecognised { seq: 0x0A0B_0C0D }
        );
    }

    #[test]
    fn corrupt_or_erased_is_invalid() {
        // Proves that a flipped bit, an erased slot and zeros never decode as a record.
        let mut bytes = sample().to_bytes();
        bytes[30] ^= 0x10;
        assert_eq!(StateRecord::decode(&bytes), Decoded::Invalid);
        assert_eq!(StateRecord::decode(&[0xFF; RECORD_LEN]), Decoded::Invalid);
        assert_eq!(StateRecord::decode(&[0x00; RECORD_LEN]), Decoded::Invalid);
    }

    #[test]
    fn unknown_phase_is_unrecognised() {
        // Proves that an unknown phase value in a valid record is not guessed at.
        let mut bytes = sample().to_bytes();
        bytes[6] = 42;
        let crc = crc32(&bytes[..188]);
        bytes[188..192].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            StateRecord::decode(&bytes),
            Decoded::Unrecognised { .. }
        ));
    }
}
