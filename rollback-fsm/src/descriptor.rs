//! Image descriptors: what the bootloader must know about an image to verify it.

use core::fmt;

/// Maximum length of a target type in bytes.
pub const TARGET_TYPE_MAX_LEN: usize = 32;

/// Length of [`ImageDescriptor::to_bytes`] output.
pub const DESCRIPTOR_LEN: usize = 84;

/// Image version, ordered lexicographically by `major`, `minor`, `patch`, `build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Version {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Patch version.
    pub patch: u16,
    /// Build number.
    pub build: u32,
}

impl Version {
    /// Creates a version.
    pub const fn new(major: u16, minor: u16, patch: u16, build: u32) -> Self {
        Self {
            major,
            minor,
            patch,
            build,
        }
    }
}

/// Error returned by [`TargetType::new`] for a name longer than 32 bytes or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InvalidTargetType {
    /// Length of the rejected name in bytes.
    pub len: usize,
}

impl fmt::Display for InvalidTargetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid target type of {} bytes: expected 1 to {} bytes",
            self.len, TARGET_TYPE_MAX_LEN
        )
    }
}

impl core::error::Error for InvalidTargetType {}

/// Hardware target an image is built for, such as `"sensor-v2"`: 1 to 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetType {
    len: u8,
    bytes: [u8; TARGET_TYPE_MAX_LEN],
}

impl TargetType {
    /// Creates a target type from 1 to 32 bytes of text.
    pub const fn new(name: &str) -> Result<Self, InvalidTargetType> {
        let src = name.as_bytes();
        if src.is_empty() || src.len() > TARGET_TYPE_MAX_LEN {
            return Err(InvalidTargetType { len: src.len() });
        }
        let mut bytes = [0u8; TARGET_TYPE_MAX_LEN];
        let mut i = 0;
        while i < src.len() {
            bytes[i] = src[i];
            i += 1;
        }
        Ok(Self {
            len: src.len() as u8,
            bytes,
        })
    }

    /// Returns the name bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Debug for TargetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(text) => write!(f, "TargetType({text:?})"),
            Err(_) => write!(f, "TargetType({:02x?})", self.as_bytes()),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for TargetType {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "TargetType({=[u8]})", self.as_bytes())
    }
}

/// Description of an image: the facts the bootloader verifies and installs it by.
///
/// The fields come from the signed release manifest. `size` and `sha256` cover
/// the image bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ImageDescriptor {
    /// Image size in bytes.
    pub size: u32,
    /// SHA-256 digest of the image bytes.
    pub sha256: [u8; 32],
    /// Hardware target the image is built for.
    pub target_type: TargetType,
    /// Image version.
    pub version: Version,
    /// Anti-rollback counter: an image whose counter is below the device's
    /// confirmed counter is rejected.
    pub security_counter: u32,
}

impl ImageDescriptor {
    /// Encodes the descriptor into its 84-byte canonical form.
    ///
    /// The layout is given in `docs/FLASH-FORMAT.md`. This is also the message
    /// signed for the `signature` feature.
    pub fn to_bytes(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut out = [0u8; DESCRIPTOR_LEN];
        self.write_to(&mut out);
        out
    }

    /// Writes the canonical form into the first 84 bytes of `out`, the
    /// reserved last byte included.
    pub(crate) fn write_to(&self, out: &mut [u8]) {
        // Security counter, version and name length as one array literal.
        let [counter_0, counter_1, counter_2, counter_3] = self.security_counter.to_le_bytes();
        let [major_0, major_1] = self.version.major.to_le_bytes();
        let [minor_0, minor_1] = self.version.minor.to_le_bytes();
        let [patch_0, patch_1] = self.version.patch.to_le_bytes();
        let [build_0, build_1, build_2, build_3] = self.version.build.to_le_bytes();
        let middle = [
            counter_0,
            counter_1,
            counter_2,
            counter_3,
            major_0,
            major_1,
            minor_0,
            minor_1,
            patch_0,
            patch_1,
            build_0,
            build_1,
            build_2,
            build_3,
            self.target_type.len,
        ];
        // The fields in their order, copied in one byte loop: each range copy
        // would be a call at opt-level z.
        let size = self.size.to_le_bytes();
        let fields: [&[u8]; 5] = [&size, &self.sha256, &middle, &self.target_type.bytes, &[0]];
        let mut slots = out.iter_mut();
        for field in fields {
            // The field comes first, so `zip` takes a slot only for a byte.
            for (byte, slot) in field.iter().zip(slots.by_ref()) {
                *slot = *byte;
            }
        }
    }

    /// Decodes a descriptor, returning `None` for an absent (erased) or invalid one.
    pub fn from_bytes(bytes: &[u8; DESCRIPTOR_LEN]) -> Option<Self> {
        let size = read_u32(bytes, 0);
        let len = bytes[50] as usize;
        if size == 0 || size == u32::MAX || len == 0 || len > TARGET_TYPE_MAX_LEN {
            return None;
        }
        if bytes[51 + len..83].iter().any(|b| *b != 0) || bytes[83] != 0 {
            return None;
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&bytes[4..36]);
        let mut name = [0u8; TARGET_TYPE_MAX_LEN];
        name.copy_from_slice(&bytes[51..83]);
        Some(Self {
            size,
            sha256,
            target_type: TargetType {
                len: len as u8,
                bytes: name,
            },
            version: Version {
                major: read_u16(bytes, 40),
                minor: read_u16(bytes, 42),
                patch: read_u16(bytes, 44),
                build: read_u32(bytes, 46),
            },
            security_counter: read_u32(bytes, 36),
        })
    }
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Reads a little-endian `u32` at `at`. One range check, after which the
/// four byte reads need none, is smaller than checking each byte index.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let word = &bytes[at..at + 4];
    u32::from_le_bytes([word[0], word[1], word[2], word[3]])
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_orders_lexicographically() {
        // Proves that a higher minor outranks any patch or build of a lower minor.
        assert!(Version::new(1, 2, 0, 0) > Version::new(1, 1, 9, 99));
        assert!(Version::new(2, 0, 0, 0) > Version::new(1, 9, 9, 9));
        assert!(Version::new(1, 1, 1, 2) > Version::new(1, 1, 1, 1));
    }

    #[test]
    fn target_type_length_checked() {
        // Proves that empty and over-long target types are rejected.
        assert_eq!(TargetType::new(""), Err(InvalidTargetType { len: 0 }));
        assert!(TargetType::new(core::str::from_utf8(&[b'x'; 33]).unwrap()).is_err());
        assert_eq!(
            TargetType::new(core::str::from_utf8(&[b'x'; 32]).unwrap()).map(|t| t.as_bytes().len()),
            Ok(32)
        );
    }

    #[test]
    fn descriptor_golden_bytes() {
        // Proves the canonical encoding byte by byte and that it decodes back.
        let descriptor = ImageDescriptor {
            size: 0x0102_0304,
            sha256: [0xAA; 32],
            target_type: TargetType::new("ab").unwrap(),
            version: Version::new(1, 2, 3, 4),
            security_counter: 7,
        };
        let bytes = descriptor.to_bytes();
        assert_eq!(bytes[0..4], [0x04, 0x03, 0x02, 0x01]);
        assert_eq!(bytes[4..36], [0xAA; 32]);
        assert_eq!(bytes[36..40], [7, 0, 0, 0]);
        assert_eq!(bytes[40..50], [1, 0, 2, 0, 3, 0, 4, 0, 0, 0]);
        assert_eq!(bytes[50], 2);
        assert_eq!(bytes[51..53], *b"ab");
        assert!(bytes[53..84].iter().all(|b| *b == 0));
        assert_eq!(ImageDescriptor::from_bytes(&bytes), Some(descriptor));
        assert_eq!(ImageDescriptor::from_bytes(&[0xFF; DESCRIPTOR_LEN]), None);
    }
}
