//! SHA-256 behind a small trait, so a hardware hash engine can replace the
//! default software one.

/// An incremental SHA-256 hasher.
pub trait Sha256Hasher {
    /// Starts a new digest, discarding any data fed so far.
    fn reset(&mut self);
    /// Feeds `data` into the digest.
    fn update(&mut self, data: &[u8]);
    /// Returns the digest of the data fed since the last reset.
    fn finish(&mut self) -> [u8; 32];
}

/// Software SHA-256: syssync-proto's `crypto::Sha256`.
#[cfg(feature = "sha2")]
pub use syssync_proto::crypto::Sha256;

#[cfg(feature = "sha2")]
impl Sha256Hasher for Sha256 {
    fn reset(&mut self) {
        Sha256::reset(self);
    }

    fn update(&mut self, data: &[u8]) {
        Sha256::update(self, data);
    }

    fn finish(&mut self) -> [u8; 32] {
        self.finalize_reset()
    }
}

#[cfg(all(test, feature = "sha2"))]
mod tests {
    use super::{Sha256, Sha256Hasher};

    /// SHA-256 of "abc", FIPS 180-4.
    const ABC: [u8; 32] = [
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22,
        0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00,
        0x15, 0xad,
    ];

    #[test]
    fn finish_and_reset_start_a_new_digest() {
        let mut hasher = Sha256::default();
        hasher.update(b"ab");
        hasher.update(b"c");
        assert_eq!(hasher.finish(), ABC);
        hasher.update(b"abc");
        assert_eq!(hasher.finish(), ABC);
        hasher.update(b"discarded");
        Sha256Hasher::reset(&mut hasher);
        hasher.update(b"abc");
        assert_eq!(hasher.finish(), ABC);
    }
}
