//! Frames: version, type, body, authentication tag and CRC-32.
//!
//! ```text
//! offset   size  field
//! 0        1     protocol version (1)
//! 1        1     message type
//! 2        n     body (postcard); device messages start with an UplinkHeader
//! 2+n      8     tag: first 8 bytes of HMAC-SHA256 (see below)
//! 10+n     4     CRC-32/ISO-HDLC of bytes 0..10+n, little-endian
//! ```
//!
//! The tag is HMAC-SHA256 under the device's key over: a direction byte
//! ([`UPLINK`] or [`DOWNLINK`]), the device id (8 bytes, little-endian), the
//! replay counter (4 bytes, little-endian), then frame bytes `0..2+n`. A device
//! message carries its id and counter in its body; a server reply does not, and
//! is bound to the id and counter of the request it answers.

use serde::Deserialize;

use crate::codec::{self, Reader, SliceSink, Writer};
use crate::crypto::{constant_time_eq, Crypto};
use crate::error::{BodyError, EncodeError, FrameError};
use crate::limits::{
    CRC_LEN, MAX_CHUNK_LEN, MAX_FRAME_LEN, MIN_FRAME_LEN, PROTOCOL_VERSION, TAG_LEN,
};
use crate::message::{
    DeviceMessage, MessageType, Refusal, RegistrationRequest, ServerMessage, UplinkHeader,
};
use crate::types::{AccountId, DeviceId, DeviceKey};

/// Direction byte of the tag input for device messages.
pub const UPLINK: u8 = b'U';
/// Direction byte of the tag input for server messages.
pub const DOWNLINK: u8 = b'D';

/// Context of the key derivation for automatic registration.
pub const REGISTRATION_KEY_CONTEXT: &[u8] = b"syssync device key v1\0";

/// Hosts (feature `std`: servers, tools) use sixteen lookup tables, 16 KiB
/// and several times faster over kilobyte chunks. Microcontrollers compute
/// the CRC bit by bit, without the 1 KiB table: a frame is at most 4 KiB and
/// arrives far slower over the air than the CRC runs.
#[cfg(feature = "std")]
const CRC32: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);
#[cfg(not(feature = "std"))]
const CRC32: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// Computes the frame CRC (CRC-32/ISO-HDLC, as in Ethernet and zlib).
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// The request that a server reply answers: its tag is bound to these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The requesting device.
    pub device: DeviceId,
    /// The request's replay counter.
    pub counter: u32,
}

impl From<UplinkHeader> for Binding {
    fn from(header: UplinkHeader) -> Self {
        Binding {
            device: header.device,
            counter: header.counter,
        }
    }
}

/// Derives a device key from an account's claim token, for automatic
/// registration: HMAC-SHA256 under the claim token over
/// [`REGISTRATION_KEY_CONTEXT`] and the device id (8 bytes, little-endian).
///
/// Whoever holds the claim token can derive the key of any device id of that
/// account; fleets that need per-device secrets register devices with keys of
/// their own through a commissioning tool instead.
pub fn derive_device_key<C: Crypto + ?Sized>(
    crypto: &C,
    claim_token: &[u8],
    device: DeviceId,
) -> DeviceKey {
    DeviceKey(crypto.hmac_sha256(
        claim_token,
        &[REGISTRATION_KEY_CONTEXT, &device.0.to_le_bytes()],
    ))
}

pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, BodyError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(BodyError::TrailingBytes)
    }
}

fn compute_tag<C: Crypto + ?Sized>(
    crypto: &C,
    key: &DeviceKey,
    direction: u8,
    binding: Binding,
    signed: &[u8],
) -> [u8; TAG_LEN] {
    let mac = crypto.hmac_sha256(
        &key.0,
        &[
            &[direction],
            &binding.device.0.to_le_bytes(),
            &binding.counter.to_le_bytes(),
            signed,
        ],
    );
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&mac[..TAG_LEN]);
    tag
}

/// Appends tag and CRC after `body_end` and returns the frame length.
fn seal<C: Crypto + ?Sized>(
    crypto: &C,
    key: Option<&DeviceKey>,
    direction: u8,
    binding: Binding,
    out: &mut [u8],
    body_end: usize,
) -> Result<usize, EncodeError> {
    // Every caller writes its body into `body_space`, so neither check
    // below fails. The limit is checked first, because then the compiler
    // can prove that `total` does not wrap and that the splits cannot fail.
    if body_end > MAX_FRAME_LEN - TAG_LEN - CRC_LEN {
        return Err(EncodeError::LimitExceeded);
    }
    let total = body_end + TAG_LEN + CRC_LEN;
    let frame = out.get_mut(..total).ok_or(EncodeError::BufferTooSmall)?;
    // Split off the trailer's fields as arrays, so that neither write has a
    // bounds check that could panic.
    let (covered, crc) = frame
        .split_last_chunk_mut::<CRC_LEN>()
        .ok_or(EncodeError::BufferTooSmall)?;
    let (signed, tag) = covered
        .split_last_chunk_mut::<TAG_LEN>()
        .ok_or(EncodeError::BufferTooSmall)?;
    *tag = match key {
        Some(key) => compute_tag(crypto, key, direction, binding, signed),
        None => [0u8; TAG_LEN],
    };
    *crc = crc32(covered).to_le_bytes();
    Ok(total)
}

fn body_space(out: &mut [u8]) -> Result<&mut [u8], EncodeError> {
    let end = out
        .len()
        .min(MAX_FRAME_LEN)
        .checked_sub(TAG_LEN + CRC_LEN)
        .filter(|end| *end >= 2)
        .ok_or(EncodeError::BufferTooSmall)?;
    Ok(&mut out[2..end])
}

fn map_encode(error: postcard::Error) -> EncodeError {
    match error {
        postcard::Error::SerializeBufferFull => EncodeError::BufferTooSmall,
        _ => EncodeError::LimitExceeded,
    }
}

/// Encodes a device message into `out` and returns the frame length.
pub fn encode_uplink<C: Crypto + ?Sized>(
    crypto: &C,
    key: &DeviceKey,
    header: UplinkHeader,
    message: &DeviceMessage,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut sink = SliceSink::new(body_space(out)?);
    let mut writer = Writer::new(&mut sink);
    codec::encode_uplink_header(&mut writer, &header);
    message.encode_body(&mut writer);
    let body_len = sink.finish()?;
    out[0] = PROTOCOL_VERSION;
    out[1] = message.message_type() as u8;
    seal(crypto, Some(key), UPLINK, header.into(), out, 2 + body_len)
}

/// Encodes a server reply to the request `binding` into `out` and returns the frame length.
pub fn encode_downlink<C: Crypto + ?Sized>(
    crypto: &C,
    key: &DeviceKey,
    binding: Binding,
    message: &ServerMessage<'_>,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    if let ServerMessage::Chunk(chunk) = message {
        if chunk.data.len() > MAX_CHUNK_LEN {
            return Err(EncodeError::LimitExceeded);
        }
    }
    let space = body_space(out)?;
    let body_len = message.encode_body(space).map_err(map_encode)?;
    out[0] = PROTOCOL_VERSION;
    out[1] = message.message_type() as u8;
    seal(crypto, Some(key), DOWNLINK, binding, out, 2 + body_len)
}

/// Encodes a refusal that the server cannot authenticate, because it has no key
/// for the requester (unknown device, bad tag, unsupported version). Its tag is
/// all zero; a device treats it as advice only (see [`FrameError::UnauthenticatedRefusal`]).
pub fn encode_unauthenticated_refusal(
    refusal: &Refusal,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let space = body_space(out)?;
    let body_len = postcard::to_slice(refusal, space)
        .map_err(map_encode)?
        .len();
    out[0] = PROTOCOL_VERSION;
    out[1] = MessageType::Refusal as u8;
    let binding = Binding {
        device: DeviceId(0),
        counter: 0,
    };
    seal(&NoCrypto, None, DOWNLINK, binding, out, 2 + body_len)
}

/// Stands in where sealing needs no key.
struct NoCrypto;

impl Crypto for NoCrypto {
    type Sha256 = NoHasher;

    fn sha256_start(&self) -> NoHasher {
        NoHasher
    }

    fn hmac_sha256(&self, _key: &[u8], _parts: &[&[u8]]) -> [u8; 32] {
        [0; 32]
    }

    fn verify_ed25519(&self, _: &[u8; 32], _: &[u8], _: &[u8; 64]) -> bool {
        false
    }
}

struct NoHasher;

impl crate::crypto::Sha256Hasher for NoHasher {
    fn update(&mut self, _data: &[u8]) {}

    fn finalize(self) -> [u8; 32] {
        [0; 32]
    }
}

/// A frame whose length, CRC, version and type have been checked, but whose tag
/// has not: nothing in it is trustworthy until [`Frame::open_uplink`] or
/// [`Frame::open_downlink`] has verified the tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    message_type: MessageType,
    signed: &'a [u8],
    body: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Checks the frame's length, CRC, version and type, in that order.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let len = bytes.len();
        if len < MIN_FRAME_LEN {
            return Err(FrameError::TooShort { len });
        }
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong { len });
        }
        let (covered, crc_bytes) = bytes.split_at(len - CRC_LEN);
        let received = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        let computed = crc32(covered);
        if received != computed {
            return Err(FrameError::CrcMismatch { received, computed });
        }
        if covered[0] != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion(covered[0]));
        }
        let message_type =
            MessageType::from_u8(covered[1]).ok_or(FrameError::UnknownType(covered[1]))?;
        let (signed, tag) = covered.split_at(covered.len() - TAG_LEN);
        Ok(Frame {
            message_type,
            signed,
            body: &signed[2..],
            tag,
        })
    }

    /// Returns the message type.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// Reads the sender and counter of a device message without checking the tag,
    /// so that a server can look up the sender's key.
    pub fn uplink_header(&self) -> Result<UplinkHeader, FrameError> {
        if !self.message_type.is_uplink() {
            return Err(FrameError::WrongDirection(self.message_type as u8));
        }
        let (header, _) =
            postcard::take_from_bytes::<UplinkHeader>(self.body).map_err(BodyError::from)?;
        Ok(header)
    }

    /// Reads the account named by a registration request without checking the
    /// tag, or returns `None` for another message type or a body that does not
    /// decode. The tag of a registration is keyed with the account's claim
    /// token, so a server needs the account before it can verify; nothing else
    /// of the request may be trusted until [`Frame::open_uplink`] succeeds.
    pub fn registration_account(&self) -> Option<AccountId> {
        if self.message_type != MessageType::RegistrationRequest {
            return None;
        }
        let (_, rest) = postcard::take_from_bytes::<UplinkHeader>(self.body).ok()?;
        let request: RegistrationRequest = decode_exact(rest).ok()?;
        Some(request.account)
    }

    /// Verifies the tag of a device message under the sender's key and decodes it.
    ///
    /// The caller still has to check the replay counter against the last one it
    /// accepted from this device.
    pub fn open_uplink<C: Crypto + ?Sized>(
        &self,
        crypto: &C,
        key: &DeviceKey,
    ) -> Result<(UplinkHeader, DeviceMessage), FrameError> {
        let header = self.uplink_header()?;
        let expected = compute_tag(crypto, key, UPLINK, header.into(), self.signed);
        if !constant_time_eq(&expected, self.tag) {
            return Err(FrameError::BadMac);
        }
        let (_, rest) =
            postcard::take_from_bytes::<UplinkHeader>(self.body).map_err(BodyError::from)?;
        let message = DeviceMessage::decode_body(self.message_type, rest)?;
        Ok((header, message))
    }

    /// Verifies the tag of a server reply to the request `binding` and decodes it.
    ///
    /// A reply bound to another counter, such as a recorded reply to an earlier
    /// request, fails with [`FrameError::BadMac`]. An all-zero tag on a refusal
    /// yields [`FrameError::UnauthenticatedRefusal`].
    pub fn open_downlink<C: Crypto + ?Sized>(
        &self,
        crypto: &C,
        key: &DeviceKey,
        binding: Binding,
    ) -> Result<ServerMessage<'a>, FrameError> {
        if self.message_type.is_uplink() {
            return Err(FrameError::WrongDirection(self.message_type as u8));
        }
        let expected = compute_tag(crypto, key, DOWNLINK, binding, self.signed);
        if !constant_time_eq(&expected, self.tag) {
            if self.message_type == MessageType::Refusal && self.tag.iter().all(|byte| *byte == 0) {
                let mut reader = Reader::new(self.body);
                let refusal = codec::decode_refusal(&mut reader);
                reader.finish()?;
                return Err(FrameError::UnauthenticatedRefusal(refusal));
            }
            return Err(FrameError::BadMac);
        }
        Ok(ServerMessage::decode_body(self.message_type, self.body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::crc32;

    #[test]
    fn crc_matches_the_bitwise_computation() {
        // Proves that the host's sixteen-table CRC equals the table-free CRC
        // that microcontrollers use, and the one-table CRC, on the standard
        // check string and on every length up to two chunks.
        let bitwise = crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);
        let single = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let bytes: [u8; 2100] = core::array::from_fn(|i| (i * 31 + i / 7) as u8);
        for len in 0..=bytes.len() {
            let expected = bitwise.checksum(&bytes[..len]);
            assert_eq!(crc32(&bytes[..len]), expected, "length {len}");
            assert_eq!(single.checksum(&bytes[..len]), expected, "length {len}");
        }
    }
}
