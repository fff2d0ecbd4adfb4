//! Small value types shared by messages and manifests.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::MAX_NAME_LEN;

/// Identifier of a device, unique within one update server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(pub u64);

/// Identifier of an account (a customer that owns devices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub u64);

/// Identifier of an update job, assigned by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u32);

/// A device's symmetric message-authentication key (HMAC-SHA256).
///
/// `Debug` prints no key bytes, so that a key never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey(pub [u8; 32]);

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// The first 8 bytes of a SHA-256 digest over a device's whole inventory.
pub type InventoryDigest = [u8; 8];

/// Name of a hardware (target) type, such as `esp8266-4m`. At most 32 bytes of UTF-8.
pub type TargetType = heapless::String<MAX_NAME_LEN>;

/// Name of a file on the device. At most 32 bytes of UTF-8.
pub type FileName = heapless::String<MAX_NAME_LEN>;

/// Error of [`name_from_utf8`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The bytes are not valid UTF-8.
    NotUtf8,
    /// The bytes are valid UTF-8 but longer than [`MAX_NAME_LEN`].
    TooLong,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::NotUtf8 => f.write_str("name is not valid UTF-8"),
            NameError::TooLong => write!(f, "name is longer than {MAX_NAME_LEN} bytes"),
        }
    }
}

impl core::error::Error for NameError {}

/// Builds a [`FileName`] or [`TargetType`] from bytes read from the wire or
/// from flash.
///
/// The bytes must be valid UTF-8 as `core::str::from_utf8` defines it: no
/// overlong forms, no surrogates, nothing above U+10FFFF, no truncated
/// sequence. Invalid UTF-8 is reported before a length over
/// [`MAX_NAME_LEN`]. This checks each character as it is decoded, which
/// takes less code than `core::str::from_utf8` and its fast path for long
/// text (names are at most 32 bytes).
pub fn name_from_utf8(bytes: &[u8]) -> Result<FileName, NameError> {
    let mut name = FileName::new();
    let mut too_long = false;
    let mut rest = bytes;
    while let [first, tail @ ..] = rest {
        // Continuation bytes that follow, the smallest code point that needs
        // them (anything below is an overlong form) and the lead byte's bits.
        let (extra, min, mut code) = match *first {
            0x00..=0x7F => (0, 0, u32::from(*first)),
            0xC0..=0xDF => (1, 0x80, u32::from(*first & 0x1F)),
            0xE0..=0xEF => (2, 0x800, u32::from(*first & 0x0F)),
            0xF0..=0xF4 => (3, 0x1_0000, u32::from(*first & 0x07)),
            _ => return Err(NameError::NotUtf8),
        };
        let Some((continuation, next)) = tail.split_at_checked(extra) else {
            return Err(NameError::NotUtf8);
        };
        for byte in continuation {
            if byte & 0xC0 != 0x80 {
                return Err(NameError::NotUtf8);
            }
            code = code << 6 | u32::from(byte & 0x3F);
        }
        // `char::from_u32` rejects surrogates and values above U+10FFFF.
        let Some(ch) = char::from_u32(code).filter(|_| code >= min) else {
            return Err(NameError::NotUtf8);
        };
        too_long |= name.push(ch).is_err();
        rest = next;
    }
    if too_long {
        return Err(NameError::TooLong);
    }
    Ok(name)
}

/// A release version: semantic version plus a build number.
///
/// Versions order lexicographically by `major`, `minor`, `patch`, then `build`.
/// Pre-release labels of semantic versioning are not represented: a release
/// candidate is a build of the version it precedes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Incompatible changes.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
    /// Fixes.
    pub patch: u16,
    /// Build number within one semantic version.
    pub build: u32,
}

impl Version {
    /// Creates a version from its four parts.
    pub const fn new(major: u16, minor: u16, patch: u16, build: u32) -> Self {
        Self {
            major,
            minor,
            patch,
            build,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}+{}",
            self.major, self.minor, self.patch, self.build
        )
    }
}

/// A position that a device reports when its firmware opts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// Latitude in units of 10⁻⁷ degree (WGS 84).
    pub latitude_e7: i32,
    /// Longitude in units of 10⁻⁷ degree (WGS 84).
    pub longitude_e7: i32,
    /// Radius of the 68 % confidence circle, in metres.
    pub accuracy_m: u32,
}

/// An Ed25519 signature.
///
/// Encoded as 64 raw bytes with no length prefix.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "..)")
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SignatureVisitor;

        impl<'de> serde::de::Visitor<'de> for SignatureVisitor {
            type Value = Signature;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Signature, A::Error> {
                let mut bytes = [0u8; 64];
                for (index, slot) in bytes.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(index, &self))?;
                }
                Ok(Signature(bytes))
            }
        }

        deserializer.deserialize_tuple(64, SignatureVisitor)
    }
}

/// Deserializes a [`Sha256Digest`] in a loop, for use with
/// `#[serde(deserialize_with = ...)]`. The wire format is serde's own for
/// `[u8; 32]`: a tuple of 32 bytes. serde's implementation unrolls the 32
/// element reads, which took about 1 KiB more code in the Cortex-M4 size
/// probes for `ManifestFile::sha256` alone.
pub(crate) fn deserialize_digest<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Sha256Digest, D::Error> {
    struct DigestVisitor;

    impl<'de> serde::de::Visitor<'de> for DigestVisitor {
        type Value = Sha256Digest;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("32 SHA-256 digest bytes")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Sha256Digest, A::Error> {
            let mut bytes = [0u8; 32];
            for (index, slot) in bytes.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(index, &self))?;
            }
            Ok(bytes)
        }
    }

    deserializer.deserialize_tuple(32, DigestVisitor)
}
