//! Hand-written postcard encoding of what a device handles: the server
//! replies and the manifest it decodes, the requests and the inventory it
//! encodes.
//!
//! The bytes are exactly those of postcard 1 with serde's derived
//! implementations, and so are the errors: the tests in `tests/codec.rs`
//! check both against the serde path, which servers and tools keep using.
//! The serde path inlines every field read through several layers of
//! generic code, so here each field is one call instead, and a failed read
//! is recorded rather than returned. In the Cortex-M4 device-side size probe
//! of `benches/footprint` that takes about 3.4 KiB less code.
//!
//! Postcard's rules as used here:
//!
//! - `u8` and fixed-size byte arrays are raw bytes.
//! - `u16`, `u32`, `u64` and lengths are LEB128 varints, which postcard also
//!   accepts in non-minimal form. An `i32` is zigzag-encoded first.
//! - An `Option` is a tag byte, 0 or 1, and an enum variant is its index as
//!   a varint.
//! - Strings and byte slices are a length followed by the bytes.

use crate::crypto::Sha256Hasher;
use crate::error::{BodyError, EncodeError};
use crate::limits::{MAX_CHUNK_LEN, MAX_INVENTORY_FILES, MAX_MANIFEST_LEN};
use crate::manifest::{FileKind, Manifest, ManifestFile, SignedManifest};
use crate::message::{Cancel, Confirm, Idle, JobOffer, MessageType, Refusal};
use crate::message::{
    CheckIn, Chunk, ChunkRequest, InstalledApplication, Inventory, JobOutcome, JobReport, JobState,
    RegistrationRequest, RegistrationResult, ResetWindow, ServerMessage, UplinkHeader,
};
use crate::types::{
    name_from_utf8, AccountId, DeviceId, FileName, JobId, NameError, Signature, Version,
};
use crate::{FailureCode, RefusalCode, RejectReason, RevertReason};

/// A cursor over received bytes.
///
/// A failed read records its error, empties the cursor and returns a zero
/// value, so that a decoder reads every field without a branch and calls
/// [`Reader::finish`] once for the outcome. Later reads then fail too, but
/// the first error is the one reported, as with `?` after every field.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    error: Option<BodyError>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, error: None }
    }

    /// Records `error` unless an earlier one is recorded, and ends the input.
    // Out of line, because a copy at each failing read costs more code than the call.
    #[inline(never)]
    fn fail(&mut self, error: BodyError) {
        self.error.get_or_insert(error);
        self.bytes = &[];
    }

    /// Returns `true` once a read has failed.
    fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Takes the next `len` bytes, or none if fewer are left.
    fn take(&mut self, len: usize) -> &'a [u8] {
        if len > self.bytes.len() {
            self.fail(BodyError::Truncated);
            return &[];
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    /// Fills `out` with raw bytes, as postcard encodes a byte array.
    fn fill(&mut self, out: &mut [u8]) {
        let bytes = self.take(out.len());
        if bytes.len() == out.len() {
            out.copy_from_slice(bytes);
        }
    }

    /// Reads a varint of an integer type of `bits` bits (16, 32 or 64).
    ///
    /// Like postcard, it accepts non-minimal encodings, and rejects an
    /// encoding longer than `ceil(bits / 7)` bytes or a last byte with bits
    /// beyond the type's width.
    // Always inlined, so that the limits are constants at each caller and
    // the shared loop below does no division.
    #[inline(always)]
    fn varint(&mut self, bits: u32) -> u64 {
        let max_len = bits.div_ceil(7);
        let last_max = (1u16 << (bits - 7 * (max_len - 1))) - 1;
        self.varint_within(max_len, last_max)
    }

    /// Reads a varint of at most `max_len` bytes whose last byte, if it is
    /// byte `max_len`, is at most `last_max`.
    #[inline(never)]
    fn varint_within(&mut self, max_len: u32, last_max: u16) -> u64 {
        let mut value = 0u64;
        // 2^(7 * index): a multiplication by it takes less code on 32-bit
        // targets than a 64-bit shift by a variable amount. Bits beyond 64
        // are dropped, and such a last byte is rejected below.
        let mut weight = 1u64;
        for index in 0..max_len {
            let byte = self.u8();
            value |= u64::from(byte & 0x7F).wrapping_mul(weight);
            weight <<= 7;
            if byte & 0x80 == 0 {
                if index == max_len - 1 && u16::from(byte) > last_max {
                    break;
                }
                return value;
            }
        }
        self.fail(BodyError::BadVarint);
        0
    }

    fn u16(&mut self) -> u16 {
        self.varint(16) as u16
    }

    fn u32(&mut self) -> u32 {
        self.varint(32) as u32
    }

    fn u64(&mut self) -> u64 {
        self.varint(64)
    }

    /// Reads a length, a varint as wide as the platform's `usize`, as postcard does.
    fn len(&mut self) -> usize {
        self.varint(usize::BITS) as usize
    }

    /// Reads an `Option` tag: `true` for `Some`.
    fn option(&mut self) -> bool {
        match self.u8() {
            0 => false,
            1 => true,
            _ => {
                self.fail(BodyError::BadTag);
                false
            }
        }
    }

    /// Reads a length-prefixed byte slice, borrowed from the input.
    fn bytes(&mut self) -> &'a [u8] {
        let len = self.len();
        self.take(len)
    }

    /// Reads a target type or file name: UTF-8 of at most
    /// [`MAX_NAME_LEN`](crate::limits::MAX_NAME_LEN) bytes.
    fn name(&mut self) -> FileName {
        let bytes = self.bytes();
        name_from_utf8(bytes).unwrap_or_else(|error| {
            self.fail(match error {
                NameError::NotUtf8 => BodyError::BadUtf8,
                NameError::TooLong => BodyError::InvalidValue,
            });
            FileName::new()
        })
    }

    fn job(&mut self) -> JobId {
        JobId(self.u32())
    }

    /// Returns the first error of the reads, or
    /// [`BodyError::TrailingBytes`] unless every byte was read.
    pub(crate) fn finish(self) -> Result<(), BodyError> {
        match self.error {
            Some(error) => Err(error),
            None if !self.bytes.is_empty() => Err(BodyError::TrailingBytes),
            None => Ok(()),
        }
    }
}

/// An output for encoded bytes: a caller's buffer or a hash computation.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Writes into a caller's buffer. Bytes that do not fit are dropped and
/// make [`SliceSink::finish`] fail, so that encoders need no error path.
pub(crate) struct SliceSink<'a> {
    out: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> SliceSink<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        SliceSink {
            out,
            len: 0,
            overflow: false,
        }
    }

    /// Returns the number of bytes written, or
    /// [`EncodeError::BufferTooSmall`] if any did not fit.
    pub(crate) fn finish(&self) -> Result<usize, EncodeError> {
        if self.overflow {
            Err(EncodeError::BufferTooSmall)
        } else {
            Ok(self.len)
        }
    }
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.out.get_mut(self.len..end) {
            Some(slot) if !self.overflow => {
                slot.copy_from_slice(bytes);
                self.len = end;
            }
            _ => self.overflow = true,
        }
    }
}

/// Feeds a SHA-256 computation, so that a value is hashed in its wire
/// encoding without a buffer for the whole of it.
pub(crate) struct HashSink<H: Sha256Hasher>(pub(crate) H);

impl<H: Sha256Hasher> Sink for HashSink<H> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Appends values to a [`Sink`]. It keeps a trait object, so that each
/// encoder is compiled once whatever the sink.
pub(crate) struct Writer<'s> {
    sink: &'s mut dyn Sink,
}

impl<'s> Writer<'s> {
    pub(crate) fn new(sink: &'s mut dyn Sink) -> Self {
        Writer { sink }
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.sink.put(bytes);
    }

    fn u8(&mut self, value: u8) {
        self.raw(&[value]);
    }

    /// Writes the minimal varint of `value`, as postcard does for every
    /// unsigned integer type.
    fn varint(&mut self, mut value: u64) {
        // A `u64` takes at most ten 7-bit groups, so the loop ends at the
        // tenth slot at the latest. Iterating over the slots instead of
        // indexing keeps a bounds check with a panic path out of the code.
        let mut buf = [0u8; 10];
        let mut len = 0;
        for slot in buf.iter_mut() {
            let byte = (value & 0x7F) as u8;
            value >>= 7;
            len += 1;
            if value == 0 {
                *slot = byte;
                break;
            }
            *slot = byte | 0x80;
        }
        self.raw(&buf[..len]);
    }

    fn u32(&mut self, value: u32) {
        self.varint(u64::from(value));
    }

    /// Writes an `i32` as postcard does: zigzag, then a varint.
    fn i32(&mut self, value: i32) {
        self.u32(((value << 1) ^ (value >> 31)) as u32);
    }

    fn option(&mut self, some: bool) {
        self.u8(u8::from(some));
    }

    /// Writes a length-prefixed byte string.
    fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.raw(bytes);
    }

    fn version(&mut self, version: &Version) {
        self.varint(u64::from(version.major));
        self.varint(u64::from(version.minor));
        self.varint(u64::from(version.patch));
        self.u32(version.build);
    }
}

fn version(reader: &mut Reader<'_>) -> Version {
    Version {
        major: reader.u16(),
        minor: reader.u16(),
        patch: reader.u16(),
        build: reader.u32(),
    }
}

/// Decodes a whole manifest body into `manifest` (without the checks of
/// [`Manifest::validate`]).
pub(crate) fn decode_manifest(body: &[u8], manifest: &mut Manifest) -> Result<(), BodyError> {
    let mut reader = Reader::new(body);
    manifest.target = reader.name();
    manifest.version = version(&mut reader);
    manifest.security_counter = reader.u32();
    manifest.expires_at = reader.u64();
    manifest.files.clear();
    manifest.remove.clear();
    // Like heapless' serde support, a list one element longer than its
    // capacity fails only after that element has decoded. No list is read
    // past that element, nor past a failed read.
    let files = reader.len();
    for _ in 0..files {
        let kind = match reader.u32() {
            0 => FileKind::Application,
            1 => FileKind::Plain,
            _ => {
                reader.fail(BodyError::InvalidValue);
                FileKind::Plain
            }
        };
        let name = reader.name();
        let size = reader.u32();
        let mut sha256 = [0u8; 32];
        reader.fill(&mut sha256);
        let file = ManifestFile {
            kind,
            name,
            size,
            sha256,
        };
        if manifest.files.push(file).is_err() {
            reader.fail(BodyError::InvalidValue);
        }
        if reader.failed() {
            break;
        }
    }
    let removals = reader.len();
    for _ in 0..removals {
        let name = reader.name();
        if manifest.remove.push(name).is_err() {
            reader.fail(BodyError::InvalidValue);
        }
        if reader.failed() {
            break;
        }
    }
    reader.finish()
}

/// Decodes a key id, a borrowed body and a signature, as they appear in a
/// job offer and in [`SignedManifest::encode`]'s output.
pub(crate) fn decode_signed_manifest<'a>(reader: &mut Reader<'a>) -> SignedManifest<'a> {
    let key_id = reader.u8();
    let body = reader.bytes();
    let mut signature = [0u8; 64];
    reader.fill(&mut signature);
    SignedManifest {
        key_id,
        body,
        signature: Signature(signature),
    }
}

/// Decodes a refusal body.
pub(crate) fn decode_refusal(reader: &mut Reader<'_>) -> Refusal {
    Refusal {
        code: RefusalCode(reader.u16()),
        retry_after_s: reader.u32(),
        detail: reader.u32(),
    }
}

/// Decodes the body of a server message of type `kind`, and checks the
/// length limits of a job offer's manifest and of a chunk.
pub(crate) fn decode_server_message(
    kind: MessageType,
    body: &[u8],
) -> Result<ServerMessage<'_>, BodyError> {
    let mut reader = Reader::new(body);
    let message = match kind {
        MessageType::Idle => ServerMessage::Idle(Idle {
            interval_s: reader.u32(),
        }),
        MessageType::InventoryRequest => ServerMessage::InventoryRequest,
        MessageType::JobOffer => ServerMessage::JobOffer(JobOffer {
            job: reader.job(),
            reset_window: reader.option().then(|| ResetWindow {
                opens_in_s: reader.u32(),
                closes_in_s: reader.u32(),
            }),
            manifest: decode_signed_manifest(&mut reader),
        }),
        MessageType::Chunk => ServerMessage::Chunk(Chunk {
            data: reader.bytes(),
        }),
        MessageType::Confirm => ServerMessage::Confirm(Confirm { job: reader.job() }),
        MessageType::Cancel => ServerMessage::Cancel(Cancel { job: reader.job() }),
        MessageType::RegistrationResult => ServerMessage::RegistrationResult(RegistrationResult {
            account: AccountId(reader.u64()),
            interval_s: reader.u32(),
        }),
        MessageType::Refusal => ServerMessage::Refusal(decode_refusal(&mut reader)),
        _ => return Err(BodyError::BadTag),
    };
    reader.finish()?;
    // Checked after the whole body has decoded, so that a decoding error
    // comes first, as on the serde path.
    let too_long = match &message {
        ServerMessage::JobOffer(offer) => offer.manifest.body.len() > MAX_MANIFEST_LEN,
        ServerMessage::Chunk(chunk) => chunk.data.len() > MAX_CHUNK_LEN,
        _ => false,
    };
    if too_long {
        return Err(BodyError::LimitExceeded);
    }
    Ok(message)
}

/// Encodes the header that starts every device message body.
pub(crate) fn encode_uplink_header(writer: &mut Writer<'_>, header: &UplinkHeader) {
    let DeviceId(device) = header.device;
    writer.varint(device);
    writer.u32(header.counter);
}

pub(crate) fn encode_check_in(writer: &mut Writer<'_>, check_in: &CheckIn) {
    writer.option(check_in.job.is_some());
    if let Some(progress) = &check_in.job {
        writer.u32(progress.job.0);
        let state = match progress.state {
            JobState::Downloading => 0,
            JobState::Staged => 1,
            JobState::Trial => 2,
        };
        writer.u32(state);
        writer.u32(progress.bytes_done);
    }
    writer.raw(&check_in.inventory);
    writer.option(check_in.location.is_some());
    if let Some(location) = &check_in.location {
        writer.i32(location.latitude_e7);
        writer.i32(location.longitude_e7);
        writer.u32(location.accuracy_m);
    }
}

/// Encodes an inventory with its files sorted by name, as
/// [`Inventory::normalize`] sorts them, whatever their order in `inventory`.
/// It sorts indices, so the inventory is neither changed nor copied.
pub(crate) fn encode_inventory(writer: &mut Writer<'_>, inventory: &Inventory) {
    writer.bytes(inventory.target.as_bytes());
    let InstalledApplication {
        version,
        size,
        sha256,
    } = &inventory.application;
    writer.version(version);
    writer.u32(*size);
    writer.raw(sha256);
    writer.u32(inventory.security_counter);

    let files = &inventory.files;
    let mut indices = [0u8; MAX_INVENTORY_FILES];
    let indices = &mut indices[..files.len()];
    for (index, slot) in indices.iter_mut().enumerate() {
        *slot = index as u8;
    }
    // The insertion sort of `Inventory::normalize`, on indices: equal names
    // keep their order, so the bytes equal those of a normalized copy.
    let name = |index: u8| files[usize::from(index)].name.as_bytes();
    for next in 1..indices.len() {
        let mut at = next;
        while at > 0 && name(indices[at - 1]) > name(indices[at]) {
            indices.swap(at - 1, at);
            at -= 1;
        }
    }
    writer.varint(files.len() as u64);
    for index in indices.iter() {
        let file = &files[usize::from(*index)];
        writer.bytes(file.name.as_bytes());
        writer.u32(file.size);
        writer.raw(&file.sha256);
    }
}

pub(crate) fn encode_chunk_request(writer: &mut Writer<'_>, request: &ChunkRequest) {
    writer.u32(request.job.0);
    writer.u8(request.file);
    writer.u32(request.offset);
    writer.varint(u64::from(request.length));
}

pub(crate) fn encode_job_report(writer: &mut Writer<'_>, report: &JobReport) {
    writer.u32(report.job.0);
    let (variant, code) = match report.outcome {
        JobOutcome::Installed => (0, None),
        JobOutcome::Failed(FailureCode(code)) => (1, Some(code)),
        JobOutcome::Reverted(RevertReason(code)) => (2, Some(code)),
        JobOutcome::Rejected(RejectReason(code)) => (3, Some(code)),
        JobOutcome::Cancelled => (4, None),
    };
    writer.u32(variant);
    if let Some(code) = code {
        writer.varint(u64::from(code));
    }
}

pub(crate) fn encode_registration_request(writer: &mut Writer<'_>, request: &RegistrationRequest) {
    writer.varint(request.account.0);
    writer.bytes(request.target.as_bytes());
    writer.version(&request.version);
}
