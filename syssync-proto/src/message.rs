//! The messages of the protocol, one struct each, and the two direction enums.
//!
//! The device starts every exchange: each [`DeviceMessage`] gets exactly one
//! [`ServerMessage`] in reply, and the reply's authentication is bound to the
//! request's replay counter.

use serde::{Deserialize, Serialize};

use crate::codec::{self, HashSink, Writer};
use crate::codes::{FailureCode, RefusalCode, RejectReason, RevertReason};
use crate::crypto::{Crypto, Sha256Hasher};
use crate::error::BodyError;
use crate::limits::{MAX_CHUNK_LEN, MAX_INVENTORY_FILES};
use crate::manifest::SignedManifest;
use crate::types::{
    AccountId, DeviceId, FileName, InventoryDigest, JobId, Location, Sha256Digest, TargetType,
    Version,
};

/// The registered message types: the second byte of every frame.
///
/// Types below `0x80` travel from a device to the server, types from `0x80`
/// up from the server to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// [`CheckIn`].
    CheckIn = 0x01,
    /// [`Inventory`], sent on the server's request.
    InventoryReport = 0x02,
    /// [`ChunkRequest`].
    ChunkRequest = 0x03,
    /// [`JobReport`].
    JobReport = 0x04,
    /// [`RegistrationRequest`].
    RegistrationRequest = 0x05,
    /// [`Idle`].
    Idle = 0x81,
    /// A request for an [`Inventory`] report; empty body.
    InventoryRequest = 0x82,
    /// [`JobOffer`].
    JobOffer = 0x83,
    /// [`Chunk`].
    Chunk = 0x84,
    /// [`Confirm`].
    Confirm = 0x85,
    /// [`Cancel`].
    Cancel = 0x86,
    /// [`RegistrationResult`].
    RegistrationResult = 0x87,
    /// [`Refusal`].
    Refusal = 0x88,
}

impl MessageType {
    /// Every registered type, in code order.
    pub const ALL: [MessageType; 13] = [
        MessageType::CheckIn,
        MessageType::InventoryReport,
        MessageType::ChunkRequest,
        MessageType::JobReport,
        MessageType::RegistrationRequest,
        MessageType::Idle,
        MessageType::InventoryRequest,
        MessageType::JobOffer,
        MessageType::Chunk,
        MessageType::Confirm,
        MessageType::Cancel,
        MessageType::RegistrationResult,
        MessageType::Refusal,
    ];

    /// Looks up a type byte; `None` for an unregistered value.
    pub fn from_u8(value: u8) -> Option<Self> {
        // A match compiles to a range check and a table, without the copy of
        // `ALL` on the stack that a search through it takes.
        Some(match value {
            0x01 => MessageType::CheckIn,
            0x02 => MessageType::InventoryReport,
            0x03 => MessageType::ChunkRequest,
            0x04 => MessageType::JobReport,
            0x05 => MessageType::RegistrationRequest,
            0x81 => MessageType::Idle,
            0x82 => MessageType::InventoryRequest,
            0x83 => MessageType::JobOffer,
            0x84 => MessageType::Chunk,
            0x85 => MessageType::Confirm,
            0x86 => MessageType::Cancel,
            0x87 => MessageType::RegistrationResult,
            0x88 => MessageType::Refusal,
            _ => return None,
        })
    }

    /// Returns `true` for types that travel from a device to the server.
    pub const fn is_uplink(self) -> bool {
        (self as u8) < 0x80
    }
}

/// Sender and replay counter, at the start of every device message body.
///
/// The server accepts a device message only if `counter` is above the last
/// counter it accepted from that device, and binds its reply to `counter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UplinkHeader {
    /// Sender.
    pub device: DeviceId,
    /// Replay counter, strictly increasing over the device's lifetime.
    pub counter: u32,
}

/// Where a device stands in its current job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// Fetching files; `bytes_done` counts verified bytes.
    Downloading,
    /// Every file is verified and the application image staged; waiting for the reset.
    Staged,
    /// Running the new image on trial, waiting for the server's confirm.
    Trial,
}

/// The device's current job and its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobProgress {
    /// The job.
    pub job: JobId,
    /// Its state on the device.
    pub state: JobState,
    /// Bytes fetched and verified so far, over all files of the job.
    pub bytes_done: u32,
}

/// The periodic check-in: small, and independent of how many files are installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckIn {
    /// The job in progress, if any.
    pub job: Option<JobProgress>,
    /// [`Inventory::digest`] of everything installed.
    pub inventory: InventoryDigest,
    /// The device's position, if its firmware opts in.
    pub location: Option<Location>,
}

/// The running application image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstalledApplication {
    /// Version of the running image.
    pub version: Version,
    /// Size in bytes.
    pub size: u32,
    /// SHA-256 of the image.
    pub sha256: Sha256Digest,
}

/// One installed plain file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstalledFile {
    /// Name in the device's file store.
    pub name: FileName,
    /// Size in bytes.
    pub size: u32,
    /// SHA-256 of the file.
    pub sha256: Sha256Digest,
}

/// Everything installed on a device: the full inventory report.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Inventory {
    /// Hardware type.
    pub target: TargetType,
    /// The running application image.
    pub application: InstalledApplication,
    /// The anti-rollback counter the device has committed to.
    pub security_counter: u32,
    /// Installed plain files, sorted by name (byte order), names unique.
    pub files: heapless::Vec<InstalledFile, MAX_INVENTORY_FILES>,
}

/// Bytes that precede the encoded inventory in its digest (domain separation).
pub const INVENTORY_DIGEST_CONTEXT: &[u8] = b"syssync inventory v1\0";

impl Inventory {
    /// Returns an inventory with no target, application or files, for a
    /// device to fill in place. An inventory is about 2.4 KiB, and on a
    /// microcontroller each move of one through a return value can take
    /// another copy on the stack.
    pub const fn empty() -> Self {
        Self {
            target: heapless::String::new(),
            application: InstalledApplication {
                version: Version {
                    major: 0,
                    minor: 0,
                    patch: 0,
                    build: 0,
                },
                size: 0,
                sha256: [0; 32],
            },
            security_counter: 0,
            files: heapless::Vec::new(),
        }
    }

    /// Sorts the files by name, as the encoding and the digest require.
    pub fn normalize(&mut self) {
        // An insertion sort, because the list is short and usually sorted
        // already. In the Cortex-M4 device-side size probe it takes 3.4 KiB
        // less code than `sort_unstable_by`, which also links `memmove`.
        let files = &mut self.files;
        for index in 1..files.len() {
            let mut at = index;
            while at > 0 && files[at - 1].name.as_bytes() > files[at].name.as_bytes() {
                files.swap(at - 1, at);
                at -= 1;
            }
        }
    }

    /// Returns `true` if the files are sorted by name and no name repeats.
    pub fn is_normalized(&self) -> bool {
        self.files
            .windows(2)
            .all(|pair| pair[0].name.as_bytes() < pair[1].name.as_bytes())
    }

    /// Computes the short inventory digest carried in every check-in: the first
    /// 8 bytes of SHA-256 over [`INVENTORY_DIGEST_CONTEXT`] followed by the
    /// encoded inventory with its files sorted by name.
    pub fn digest<C: Crypto + ?Sized>(&self, crypto: &C) -> InventoryDigest {
        let mut hasher = crypto.sha256_start();
        hasher.update(INVENTORY_DIGEST_CONTEXT);
        let mut sink = HashSink(hasher);
        codec::encode_inventory(&mut Writer::new(&mut sink), self);
        let digest = sink.0.finalize();
        let mut short = [0u8; 8];
        short.copy_from_slice(&digest[..8]);
        short
    }
}

/// A request for one piece of one file of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// The job.
    pub job: JobId,
    /// Index of the file in the job's manifest.
    pub file: u8,
    /// Byte offset in the file.
    pub offset: u32,
    /// Bytes wanted, at most [`MAX_CHUNK_LEN`]. The reply may be shorter at the end of the file.
    pub length: u16,
}

/// How a job ended on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobOutcome {
    /// The new release runs on trial and matches the job. The device expects
    /// [`Confirm`] before it makes the image permanent.
    Installed,
    /// The update failed before the new image ran.
    Failed(FailureCode),
    /// The new image ran on trial and the bootloader went back to the previous one.
    Reverted(RevertReason),
    /// The device refused the offer without downloading.
    Rejected(RejectReason),
    /// The device stopped the job on the server's cancel and discarded its staged data.
    Cancelled,
}

/// The outcome of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobReport {
    /// The job.
    pub job: JobId,
    /// Its outcome.
    pub outcome: JobOutcome,
}

/// An automatic registration: the device names the account it belongs to.
///
/// The frame is authenticated with the key derived from the account's claim
/// token (see [`crate::frame::derive_device_key`]), so the server can check it
/// before the device exists.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegistrationRequest {
    /// The account the device claims to belong to.
    pub account: AccountId,
    /// Hardware type.
    pub target: TargetType,
    /// Version of the running application.
    pub version: Version,
}

/// Nothing to do: check in again after `interval_s` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Idle {
    /// Seconds until the next check-in. The device clamps it to its own limits.
    pub interval_s: u32,
}

/// When the device may reset into the new image, relative to the reply's arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResetWindow {
    /// Seconds from now until the window opens.
    pub opens_in_s: u32,
    /// Seconds from now until the window closes.
    pub closes_in_s: u32,
}

/// A job for the device, with the signed release manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOffer<'a> {
    /// The job.
    pub job: JobId,
    /// When the device may reset into the new image; `None` means at the application's choice.
    pub reset_window: Option<ResetWindow>,
    /// The release manifest, as signed by the release key.
    #[serde(borrow)]
    pub manifest: SignedManifest<'a>,
}

/// The bytes of a chunk request's reply. Its CRC-32 is the frame's CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Chunk<'a> {
    /// File bytes from the requested offset.
    pub data: &'a [u8],
}

/// The installed files match the job: the device may make the new image permanent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Confirm {
    /// The job.
    pub job: JobId,
}

/// The server cancelled the job: stop, discard staged data and report [`JobOutcome::Cancelled`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cancel {
    /// The job.
    pub job: JobId,
}

/// The registration was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegistrationResult {
    /// The account that now owns the device.
    pub account: AccountId,
    /// Seconds until the first check-in.
    pub interval_s: u32,
}

/// A typed refusal of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Refusal {
    /// Why.
    pub code: RefusalCode,
    /// Seconds the device should wait before it retries; 0 for no advice.
    pub retry_after_s: u32,
    /// Code-specific detail: for [`RefusalCode::STALE_COUNTER`] the last accepted counter.
    pub detail: u32,
}

/// A message from a device to the server.
///
/// The inventory variant is large (about 2.7 KB) because the crate has no heap;
/// a device builds it only when the server requests it.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceMessage {
    /// Periodic check-in.
    CheckIn(CheckIn),
    /// Full inventory, on the server's request. Its files are encoded sorted
    /// by name, as a receiver requires, in whatever order the value lists them.
    InventoryReport(Inventory),
    /// Request for a chunk of a file.
    ChunkRequest(ChunkRequest),
    /// Outcome of a job.
    JobReport(JobReport),
    /// Automatic registration.
    RegistrationRequest(RegistrationRequest),
}

/// A message from the server to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMessage<'a> {
    /// Nothing to do.
    Idle(Idle),
    /// Send a full [`Inventory`].
    InventoryRequest,
    /// A job.
    JobOffer(JobOffer<'a>),
    /// File bytes.
    Chunk(Chunk<'a>),
    /// Make the new image permanent.
    Confirm(Confirm),
    /// Stop the job.
    Cancel(Cancel),
    /// Registration accepted.
    RegistrationResult(RegistrationResult),
    /// Request refused.
    Refusal(Refusal),
}

impl DeviceMessage {
    /// Returns the message's type byte.
    pub fn message_type(&self) -> MessageType {
        match self {
            DeviceMessage::CheckIn(_) => MessageType::CheckIn,
            DeviceMessage::InventoryReport(_) => MessageType::InventoryReport,
            DeviceMessage::ChunkRequest(_) => MessageType::ChunkRequest,
            DeviceMessage::JobReport(_) => MessageType::JobReport,
            DeviceMessage::RegistrationRequest(_) => MessageType::RegistrationRequest,
        }
    }

    pub(crate) fn encode_body(&self, writer: &mut Writer<'_>) {
        match self {
            DeviceMessage::CheckIn(body) => codec::encode_check_in(writer, body),
            DeviceMessage::InventoryReport(body) => codec::encode_inventory(writer, body),
            DeviceMessage::ChunkRequest(body) => codec::encode_chunk_request(writer, body),
            DeviceMessage::JobReport(body) => codec::encode_job_report(writer, body),
            DeviceMessage::RegistrationRequest(body) => {
                codec::encode_registration_request(writer, body)
            }
        }
    }

    pub(crate) fn decode_body(kind: MessageType, body: &[u8]) -> Result<Self, BodyError> {
        use crate::frame::decode_exact;
        let message = match kind {
            MessageType::CheckIn => DeviceMessage::CheckIn(decode_exact(body)?),
            MessageType::InventoryReport => {
                let inventory: Inventory = decode_exact(body)?;
                if !inventory.is_normalized() {
                    return Err(BodyError::LimitExceeded);
                }
                DeviceMessage::InventoryReport(inventory)
            }
            MessageType::ChunkRequest => {
                let request: ChunkRequest = decode_exact(body)?;
                if usize::from(request.length) > MAX_CHUNK_LEN || request.length == 0 {
                    return Err(BodyError::LimitExceeded);
                }
                DeviceMessage::ChunkRequest(request)
            }
            MessageType::JobReport => DeviceMessage::JobReport(decode_exact(body)?),
            MessageType::RegistrationRequest => {
                DeviceMessage::RegistrationRequest(decode_exact(body)?)
            }
            _ => return Err(BodyError::BadTag),
        };
        Ok(message)
    }
}

impl<'a> ServerMessage<'a> {
    /// Returns the message's type byte.
    pub fn message_type(&self) -> MessageType {
        match self {
            ServerMessage::Idle(_) => MessageType::Idle,
            ServerMessage::InventoryRequest => MessageType::InventoryRequest,
            ServerMessage::JobOffer(_) => MessageType::JobOffer,
            ServerMessage::Chunk(_) => MessageType::Chunk,
            ServerMessage::Confirm(_) => MessageType::Confirm,
            ServerMessage::Cancel(_) => MessageType::Cancel,
            ServerMessage::RegistrationResult(_) => MessageType::RegistrationResult,
            ServerMessage::Refusal(_) => MessageType::Refusal,
        }
    }

    pub(crate) fn encode_body(&self, out: &mut [u8]) -> Result<usize, postcard::Error> {
        let written = match self {
            ServerMessage::Idle(body) => postcard::to_slice(body, out)?.len(),
            ServerMessage::InventoryRequest => 0,
            ServerMessage::JobOffer(body) => postcard::to_slice(body, out)?.len(),
            ServerMessage::Chunk(body) => postcard::to_slice(body, out)?.len(),
            ServerMessage::Confirm(body) => postcard::to_slice(body, out)?.len(),
            ServerMessage::Cancel(body) => postcard::to_slice(body, out)?.len(),
            ServerMessage::RegistrationResult(body) => postcard::to_slice(body, out)?.len(),
            ServerMessage::Refusal(body) => postcard::to_slice(body, out)?.len(),
        };
        Ok(written)
    }

    pub(crate) fn decode_body(kind: MessageType, body: &'a [u8]) -> Result<Self, BodyError> {
        codec::decode_server_message(kind, body)
    }
}

#[cfg(test)]
mod tests {
    use super::MessageType;

    #[test]
    fn type_byte_lookup_matches_the_registry() {
        // Proves that `from_u8` accepts exactly the bytes of `ALL`, each as
        // its own type, and rejects every other byte.
        for byte in 0..=u8::MAX {
            let expected = MessageType::ALL
                .into_iter()
                .find(|kind| *kind as u8 == byte);
            assert_eq!(MessageType::from_u8(byte), expected, "byte {byte:#04x}");
        }
    }
}
