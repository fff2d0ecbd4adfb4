//! Error types, one per operation.

use core::fmt;

/// Error decoding a message body or a manifest body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The body ended before the message did.
    Truncated,
    /// Bytes remained after the message ended.
    TrailingBytes,
    /// A variable-length integer was malformed or out of range for its field.
    BadVarint,
    /// A string was not valid UTF-8.
    BadUtf8,
    /// An option tag or boolean had a value other than 0 or 1.
    BadTag,
    /// An unknown enum variant, or a string or list longer than the protocol
    /// allows (the decoder reports both the same way).
    InvalidValue,
    /// A field broke a limit that this crate checks after decoding, such as a
    /// chunk request longer than `MAX_CHUNK_LEN`, or an unsorted inventory.
    LimitExceeded,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::Truncated => "body truncated",
            BodyError::TrailingBytes => "trailing bytes after the body",
            BodyError::BadVarint => "malformed variable-length integer",
            BodyError::BadUtf8 => "string is not valid UTF-8",
            BodyError::BadTag => "option or boolean tag other than 0 or 1",
            BodyError::InvalidValue => {
                "unknown enum variant, or string or list longer than the protocol allows"
            }
            BodyError::LimitExceeded => "field outside the protocol's limits",
        })
    }
}

impl From<postcard::Error> for BodyError {
    fn from(error: postcard::Error) -> Self {
        use postcard::Error as E;
        match error {
            E::DeserializeUnexpectedEnd => BodyError::Truncated,
            E::DeserializeBadVarint => BodyError::BadVarint,
            E::DeserializeBadUtf8 | E::DeserializeBadChar => BodyError::BadUtf8,
            E::DeserializeBadBool | E::DeserializeBadOption => BodyError::BadTag,
            // serde reports an unknown variant index, and heapless a string or
            // list over capacity, as a custom error.
            E::DeserializeBadEnum | E::SerdeDeCustom => BodyError::InvalidValue,
            _ => BodyError::InvalidValue,
        }
    }
}

/// Error parsing, authenticating or decoding a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
// A word-sized tag puts the fields at word offsets: on a Cortex-M4 the
// device's engine, which builds and copies these errors in its events,
// took 32 bytes less code in the size probe of `benches/footprint`.
#[repr(u32)]
pub enum FrameError {
    /// Shorter than the smallest frame (version, type, tag and CRC).
    TooShort {
        /// Length received.
        len: usize,
    },
    /// Longer than [`MAX_FRAME_LEN`](crate::limits::MAX_FRAME_LEN).
    TooLong {
        /// Length received.
        len: usize,
    },
    /// The CRC-32 trailer did not match the frame.
    CrcMismatch {
        /// CRC carried in the frame.
        received: u32,
        /// CRC computed over the frame.
        computed: u32,
    },
    /// The version byte names a protocol version this build does not speak.
    UnsupportedVersion(u8),
    /// The type byte is not a registered message type.
    UnknownType(u8),
    /// A device message was given to a device, or a server message to a server.
    WrongDirection(u8),
    /// The message authentication code did not verify under the key.
    BadMac,
    /// The body could not be decoded.
    Body(BodyError),
    /// A refusal with an all-zero tag: the server could not authenticate the
    /// request. Anyone on the path can forge one, so a device may back off on it
    /// but must not change any update state.
    UnauthenticatedRefusal(crate::message::Refusal),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort { len } => write!(f, "frame of {len} bytes is too short"),
            FrameError::TooLong { len } => write!(
                f,
                "frame of {len} bytes exceeds the maximum of {}",
                crate::limits::MAX_FRAME_LEN
            ),
            FrameError::CrcMismatch { received, computed } => write!(
                f,
                "frame CRC mismatch: received {received:#010x}, computed {computed:#010x}"
            ),
            FrameError::UnsupportedVersion(version) => {
                write!(f, "unsupported protocol version {version}")
            }
            FrameError::UnknownType(kind) => write!(f, "unknown message type {kind:#04x}"),
            FrameError::WrongDirection(kind) => {
                write!(f, "message type {kind:#04x} travels in the other direction")
            }
            FrameError::BadMac => f.write_str("message authentication failed"),
            FrameError::Body(error) => write!(f, "invalid message body: {error}"),
            FrameError::UnauthenticatedRefusal(refusal) => {
                write!(f, "unauthenticated refusal: {}", refusal.code)
            }
        }
    }
}

impl From<BodyError> for FrameError {
    fn from(error: BodyError) -> Self {
        FrameError::Body(error)
    }
}

/// Error encoding a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small for the frame.
    BufferTooSmall,
    /// A field breaks a protocol limit (chunk too long, manifest too long).
    LimitExceeded,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::BufferTooSmall => "output buffer too small for the frame",
            EncodeError::LimitExceeded => "a field exceeds a protocol limit",
        })
    }
}

/// Error checking or decoding a signed manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// No trusted release key has this id.
    UnknownKey(u8),
    /// The signature did not verify.
    BadSignature,
    /// The body is longer than [`MAX_MANIFEST_LEN`](crate::limits::MAX_MANIFEST_LEN).
    TooLong,
    /// The body could not be decoded.
    Body(BodyError),
    /// More than one application image.
    SeveralApplications,
    /// Two files share a name, or a file is both installed and removed.
    DuplicateName,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::UnknownKey(id) => write!(f, "no trusted release key with id {id}"),
            ManifestError::BadSignature => f.write_str("manifest signature invalid"),
            ManifestError::TooLong => write!(
                f,
                "manifest exceeds {} bytes",
                crate::limits::MAX_MANIFEST_LEN
            ),
            ManifestError::Body(error) => write!(f, "invalid manifest body: {error}"),
            ManifestError::SeveralApplications => {
                f.write_str("manifest lists more than one application image")
            }
            ManifestError::DuplicateName => {
                f.write_str("manifest names a file twice or both installs and removes it")
            }
        }
    }
}

impl core::error::Error for BodyError {}
impl core::error::Error for FrameError {}
impl core::error::Error for EncodeError {}
impl core::error::Error for ManifestError {}
