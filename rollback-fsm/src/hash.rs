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

/// Software SHA-256 from RustCrypto's `sha2` crate.
#[cfg(feature = "sha2")]
#[derive(Debug, Clone, Default)]
pub struct Sha256 {
    inner: sha2::Sha256,
}

#[cfg(feature = "sha2")]
impl Sha256Hasher for Sha256 {
    fn reset(&mut self) {
        self.inner = sha2::Sha256::default();
    }

    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.inner, data);
    }

    fn finish(&mut self) -> [u8; 32] {
        let digest = sha2::Digest::finalize_reset(&mut self.inner);
        digest.into()
    }
}
