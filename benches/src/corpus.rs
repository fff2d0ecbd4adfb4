//! Firmware images for the benchmarks, checked against `SHA256SUMS` on load.
//!
//! The Cortex-M4 images live in `benches/data/`; the MicroPython ESP8266
//! images live in `firmware/micropython-esp8266/` at the repository root.
//! Each folder has a `SHA256SUMS` file in the format of `sha256sum`.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Cortex-M4 images, relative to [`bench_data_dir`].
pub const CORTEX_M4_IMAGES: [&str; 5] = [
    "programmer/0.8.0.bin",
    "programmer/0.9.0.bin",
    "synthesizer/1.bin",
    "synthesizer/2.bin",
    "synthesizer/3.bin",
];

/// MicroPython ESP8266 images, relative to [`firmware_dir`].
pub const MICROPYTHON_IMAGES: [&str; 2] = [
    "micropython-esp8266/esp8266-20180511-v1.9.4.bin",
    "micropython-esp8266/esp8266-20190125-v1.10.bin",
];

/// Error returned when a corpus file cannot be loaded or fails its checksum.
#[derive(Debug)]
pub enum CorpusError {
    /// The file could not be read.
    Read {
        /// Path of the file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A line of `SHA256SUMS` is not `<64 hex digits>  <name>`.
    InvalidChecksumLine {
        /// Path of the `SHA256SUMS` file.
        sums: PathBuf,
        /// The line, 1-based.
        line: usize,
    },
    /// `SHA256SUMS` has no entry for the file.
    NoChecksum {
        /// Path of the `SHA256SUMS` file.
        sums: PathBuf,
        /// Name of the file as it would appear there.
        name: String,
    },
    /// The file's SHA-256 differs from its `SHA256SUMS` entry.
    Mismatch {
        /// Path of the file.
        path: PathBuf,
        /// Digest listed in `SHA256SUMS`, in hex.
        expected: String,
        /// Digest of the file, in hex.
        actual: String,
    },
}

impl fmt::Display for CorpusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(
                f,
                "failed to read firmware file {}: {source}; run from a full checkout of the repository",
                path.display()
            ),
            Self::InvalidChecksumLine { sums, line } => write!(
                f,
                "invalid line {line} in {}: expected `<sha256 in hex>  <file name>`",
                sums.display()
            ),
            Self::NoChecksum { sums, name } => {
                write!(f, "no checksum for {name} in {}", sums.display())
            }
            Self::Mismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "SHA-256 mismatch for {}: expected {expected}, found {actual}; the file is corrupt or was replaced",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CorpusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Returns `benches/data/`, where the Cortex-M4 images live.
pub fn bench_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Returns `firmware/` at the repository root, where the MicroPython images live.
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware")
}

fn read(path: &Path) -> Result<Vec<u8>, CorpusError> {
    fs::read(path).map_err(|source| CorpusError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Returns the digest listed for `name` in the `SHA256SUMS` file `sums`.
fn listed_digest(sums: &Path, text: &str, name: &str) -> Result<String, CorpusError> {
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let invalid = || CorpusError::InvalidChecksumLine {
            sums: sums.to_path_buf(),
            line: index + 1,
        };
        let (digest, file) = line.split_once(' ').ok_or_else(invalid)?;
        // `sha256sum` separates with two spaces, or a space and `*` in binary mode.
        let file = file.trim_start_matches([' ', '*']);
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        if file == name {
            return Ok(digest.to_ascii_lowercase());
        }
    }
    Err(CorpusError::NoChecksum {
        sums: sums.to_path_buf(),
        name: name.to_string(),
    })
}

/// Reads `dir/name` and checks it against `dir/SHA256SUMS`.
pub fn load_verified(dir: &Path, name: &str) -> Result<Vec<u8>, CorpusError> {
    let sums = dir.join("SHA256SUMS");
    let text = String::from_utf8_lossy(&read(&sums)?).into_owned();
    let expected = listed_digest(&sums, &text, name)?;
    let path = dir.join(name);
    let bytes = read(&path)?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        return Err(CorpusError::Mismatch {
            path,
            expected,
            actual,
        });
    }
    Ok(bytes)
}

/// Loads every corpus image, Cortex-M4 first, as `(name, bytes)`.
pub fn load_all() -> Result<Vec<(String, Vec<u8>)>, CorpusError> {
    let mut images = Vec::new();
    for name in CORTEX_M4_IMAGES {
        images.push((name.to_string(), load_verified(&bench_data_dir(), name)?));
    }
    for name in MICROPYTHON_IMAGES {
        images.push((name.to_string(), load_verified(&firmware_dir(), name)?));
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("benches-corpus-{tag}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn cortex_images_match_checksums() {
        // Proves that the images shipped in benches/data load and match their pinned digests.
        for name in CORTEX_M4_IMAGES {
            let bytes = load_verified(&bench_data_dir(), name).unwrap();
            assert!(!bytes.is_empty(), "{name} is empty");
        }
        let programmer = load_verified(&bench_data_dir(), CORTEX_M4_IMAGES[0]).unwrap();
        assert_eq!(programmer.len(), 23_504);
    }

    #[test]
    fn altered_file_is_rejected() {
        // Proves that a file whose bytes differ from SHA256SUMS fails with a mismatch naming it.
        let dir = scratch_dir("altered");
        let digest = hex::encode(Sha256::digest(b"original"));
        fs::write(dir.join("SHA256SUMS"), format!("{digest}  image.bin\n")).unwrap();
        fs::write(dir.join("image.bin"), b"replaced").unwrap();

        let error = load_verified(&dir, "image.bin").unwrap_err();
        assert!(matches!(error, CorpusError::Mismatch { .. }), "{error:?}");
        assert!(error.to_string().contains("image.bin"));
        fs::write(dir.join("image.bin"), b"original").unwrap();
        assert_eq!(load_verified(&dir, "image.bin").unwrap(), b"original");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_file_names_path() {
        // Proves that a missing image or checksum entry fails with an error that names it.
        let dir = scratch_dir("missing");
        let digest = hex::encode(Sha256::digest(b"x"));
        fs::write(dir.join("SHA256SUMS"), format!("{digest} *listed.bin\n")).unwrap();

        let error = load_verified(&dir, "listed.bin").unwrap_err();
        assert!(matches!(error, CorpusError::Read { .. }), "{error:?}");
        assert!(error.to_string().contains("listed.bin"));

        let error = load_verified(&dir, "unlisted.bin").unwrap_err();
        assert!(matches!(error, CorpusError::NoChecksum { .. }), "{error:?}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn malformed_checksum_line_rejected() {
        // Proves that a SHA256SUMS line without a 64-digit digest is reported with its line number.
        let dir = scratch_dir("malformed");
        fs::write(dir.join("SHA256SUMS"), "\nabc  image.bin\n").unwrap();
        let error = load_verified(&dir, "image.bin").unwrap_err();
        assert!(
            matches!(error, CorpusError::InvalidChecksumLine { line: 2, .. }),
            "{error:?}"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
