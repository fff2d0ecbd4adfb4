//! Firmware files: loading with checksum verification against `SHA256SUMS`.
//!
//! The repository's `firmware/` folder holds the images and configuration
//! files of the default scenario, with a `SHA256SUMS` file in the format of
//! `sha256sum`. Every file that a scenario names is read relative to a base
//! folder and checked against the `SHA256SUMS` of that folder when it lists
//! the file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Environment variable that names the firmware folder for a binary that
/// runs away from its source tree.
pub const FIRMWARE_DIR_VARIABLE: &str = "SYSSYNC_FIRMWARE_DIR";

/// The firmware folder: `SYSSYNC_FIRMWARE_DIR` if set, else the repository's
/// `firmware/`, found from this crate's manifest directory at build time so
/// that `cargo run -p syssync-sim` works from any directory.
pub fn default_firmware_dir() -> PathBuf {
    match std::env::var_os(FIRMWARE_DIR_VARIABLE) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("firmware"),
    }
}

/// Why a firmware file could not be loaded.
#[derive(Debug)]
pub enum FirmwareError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A line of `SHA256SUMS` is not `<64 hex digits>  <path>`.
    InvalidChecksumLine {
        /// The checksum file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The file's SHA-256 differs from the one in `SHA256SUMS`.
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Digest listed in `SHA256SUMS`, in hex.
        expected: String,
        /// Digest of the bytes read, in hex.
        actual: String,
    },
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirmwareError::Read { path, error } => {
                write!(f, "cannot read firmware file {}: {error}", path.display())
            }
            FirmwareError::InvalidChecksumLine { path, line } => write!(
                f,
                "invalid line {line} in {}: expected `<sha256 in hex>  <file>`",
                path.display()
            ),
            FirmwareError::ChecksumMismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "checksum mismatch for {}: SHA256SUMS lists {expected}, the file has {actual}; \
                 restore the file (for example with `git checkout -- firmware/`)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for FirmwareError {}

/// A loaded file with its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareFile {
    /// The path as the scenario gave it, relative to the base folder.
    pub name: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    /// Whether `SHA256SUMS` listed the file (and so its digest was checked).
    pub checked: bool,
}

/// Loads files relative to a base folder and checks them against the folder's
/// `SHA256SUMS`, if it has one.
#[derive(Debug)]
pub struct FirmwareDir {
    base: PathBuf,
    sums: BTreeMap<String, String>,
}

impl FirmwareDir {
    /// Opens `base` and reads its `SHA256SUMS`; a folder without one checks nothing.
    pub fn open(base: &Path) -> Result<Self, FirmwareError> {
        let sums_path = base.join("SHA256SUMS");
        let mut sums = BTreeMap::new();
        if sums_path.exists() {
            let text =
                std::fs::read_to_string(&sums_path).map_err(|error| FirmwareError::Read {
                    path: sums_path.clone(),
                    error,
                })?;
            for (index, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let invalid = || FirmwareError::InvalidChecksumLine {
                    path: sums_path.clone(),
                    line: index + 1,
                };
                let (digest, name) = line.split_once(char::is_whitespace).ok_or_else(invalid)?;
                // `sha256sum` writes two spaces, or a space and `*` in binary mode.
                let name = name.trim_start().trim_start_matches('*');
                if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid());
                }
                sums.insert(name.to_owned(), digest.to_ascii_lowercase());
            }
        }
        Ok(Self {
            base: base.to_owned(),
            sums,
        })
    }

    /// The base folder.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Reads `name` (relative to the base folder) and checks its digest when
    /// `SHA256SUMS` lists it.
    pub fn load(&self, name: &str) -> Result<FirmwareFile, FirmwareError> {
        let path = self.base.join(name);
        let bytes = std::fs::read(&path).map_err(|error| FirmwareError::Read {
            path: path.clone(),
            error,
        })?;
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let checked = match self.sums.get(name) {
            Some(expected) => {
                let actual = hex::encode(sha256);
                if *expected != actual {
                    return Err(FirmwareError::ChecksumMismatch {
                        path,
                        expected: expected.clone(),
                        actual,
                    });
                }
                true
            }
            None => false,
        };
        Ok(FirmwareFile {
            name: name.to_owned(),
            bytes,
            sha256,
            checked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_images_match_their_checksums() {
        // Proves that the copied images are the pinned ones and load from any working directory.
        let dir = FirmwareDir::open(&default_firmware_dir()).unwrap();
        let old = dir
            .load("micropython-esp8266/esp8266-20180511-v1.9.4.bin")
            .unwrap();
        let new = dir
            .load("micropython-esp8266/esp8266-20190125-v1.10.bin")
            .unwrap();
        assert!(old.checked && new.checked);
        assert_eq!(old.bytes.len(), 604_872);
        assert_eq!(new.bytes.len(), 615_388);
    }

    #[test]
    fn altered_file_fails_with_checksum_mismatch() {
        // Proves that a file differing from SHA256SUMS is rejected with a message naming it.
        let temp = std::env::temp_dir().join(format!("syssync-sim-fw-{}", std::process::id()));
        std::fs::create_dir_all(&temp).unwrap();
        std::fs::write(temp.join("image.bin"), b"tampered").unwrap();
        std::fs::write(
            temp.join("SHA256SUMS"),
            format!("{}  image.bin\n", "0".repeat(64)),
        )
        .unwrap();
        let error = FirmwareDir::open(&temp)
            .unwrap()
            .load("image.bin")
            .unwrap_err();
        assert!(matches!(error, FirmwareError::ChecksumMismatch { .. }));
        assert!(error.to_string().contains("image.bin"));
        std::fs::remove_dir_all(&temp).unwrap();
    }
}
