//! Protocol limits. Every bounded collection and buffer in this crate is sized
//! by one of these constants, never by a length read from the wire.

/// Protocol version carried in the first byte of every frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// Maximum length of a target type or file name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 32;

/// Maximum number of files (including the application image) in one manifest.
pub const MAX_MANIFEST_FILES: usize = 16;

/// Maximum number of file removals in one manifest.
pub const MAX_REMOVALS: usize = 8;

/// Maximum number of plain files in an inventory report.
pub const MAX_INVENTORY_FILES: usize = 32;

/// Maximum length of an encoded manifest body, in bytes.
pub const MAX_MANIFEST_LEN: usize = 1536;

/// Maximum number of data bytes in one chunk.
pub const MAX_CHUNK_LEN: usize = 4096;

/// Length of the truncated HMAC-SHA256 tag in every frame.
pub const TAG_LEN: usize = 8;

/// Length of the CRC-32 trailer of every frame.
pub const CRC_LEN: usize = 4;

/// Bytes of every frame outside the message body: version, type, tag and CRC.
pub const FRAME_OVERHEAD: usize = 2 + TAG_LEN + CRC_LEN;

/// Maximum length of a whole frame. A buffer of this size holds any valid frame,
/// including a chunk of [`MAX_CHUNK_LEN`] bytes, a full manifest or a full inventory.
pub const MAX_FRAME_LEN: usize = MAX_CHUNK_LEN + 64;

/// Minimum length of a frame: version, type, an empty body, tag and CRC.
pub const MIN_FRAME_LEN: usize = FRAME_OVERHEAD;
