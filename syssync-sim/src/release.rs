//! Releases of a scenario: loaded files and the signed manifest that release
//! tooling would produce for them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use syssync_proto::manifest::{public_key, sign};
use syssync_proto::{FileKind, Manifest, ManifestFile, Signature, TargetType, TrustedKey, Version};

use crate::firmware::{FirmwareDir, FirmwareError, FirmwareFile};
use crate::scenario::{parse_version, Release, ScenarioError};

/// Id under which devices trust the simulation's release key.
pub const RELEASE_KEY_ID: u8 = 1;

/// Unix time of the simulation's start: 2026-01-05 00:00:00 UTC, a Monday,
/// so that weekly maintenance windows start on a known weekday.
pub const EPOCH_UNIX_S: u64 = 1_767_571_200;

/// Manifests expire a year after the simulation's start.
pub const MANIFEST_LIFETIME_S: u64 = 365 * 24 * 3600;

/// The release signing key of a run, derived from the scenario seed.
#[derive(Clone)]
pub struct ReleaseKey {
    secret: [u8; 32],
    /// The public key, derived once because every provisioned device needs it.
    public: [u8; 32],
}

impl std::fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReleaseKey(..)")
    }
}

impl ReleaseKey {
    /// Derives the key from the scenario seed, so that runs are reproducible.
    pub fn from_seed(seed: u64) -> Self {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"syssync-sim release key");
        hasher.update(seed.to_le_bytes());
        let secret: [u8; 32] = hasher.finalize().into();
        Self {
            secret,
            public: public_key(&secret),
        }
    }

    /// Returns the public key that devices trust.
    pub fn trusted_key(&self) -> TrustedKey {
        TrustedKey {
            id: RELEASE_KEY_ID,
            public_key: self.public,
        }
    }

    /// Signs an encoded manifest body.
    pub fn sign(&self, body: &[u8]) -> Signature {
        sign(body, &self.secret)
    }
}

/// A plain file of a release.
#[derive(Clone, Debug)]
pub struct PlainFile {
    /// Name on the device.
    pub name: String,
    /// Contents.
    pub bytes: Arc<Vec<u8>>,
    /// SHA-256 of the contents.
    pub sha256: [u8; 32],
}

/// A release ready to deploy: files, manifest and signature.
#[derive(Clone, Debug)]
pub struct BuiltRelease {
    /// Name in the scenario.
    pub name: String,
    /// Version.
    pub version: Version,
    /// Whether the application passes its health check.
    pub healthy: bool,
    /// The application image.
    pub image: Arc<Vec<u8>>,
    /// SHA-256 of the image.
    pub image_sha256: [u8; 32],
    /// Plain files, in manifest order after the image.
    pub files: Vec<PlainFile>,
    /// The manifest.
    pub manifest: Manifest,
    /// The encoded manifest body, as signed.
    pub manifest_body: Vec<u8>,
    /// Signature over the body.
    pub signature: Signature,
    /// Whether every file was checked against a `SHA256SUMS` entry.
    pub checksums_verified: bool,
    /// Each file read from the firmware directory, by its path in the
    /// scenario, with whether `SHA256SUMS` listed it. A synthetic image is
    /// not a file and is not included.
    pub checksum_listed: Vec<(String, bool)>,
}

/// Coverage of the files of a run's releases by `SHA256SUMS`, as the
/// summary's fidelity line prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChecksumCoverage {
    /// Number of distinct files read.
    pub files: usize,
    /// Paths of the files that `SHA256SUMS` does not list, so that their
    /// digest was not checked, sorted.
    pub unlisted: Vec<String>,
}

impl ChecksumCoverage {
    /// Collects the coverage of the files of `releases`, counting a file that
    /// several releases share once.
    pub fn of(releases: &[BuiltRelease]) -> Self {
        let mut listed = BTreeMap::new();
        for release in releases {
            for (path, checked) in &release.checksum_listed {
                listed.insert(path.as_str(), *checked);
            }
        }
        Self {
            files: listed.len(),
            unlisted: listed
                .into_iter()
                .filter(|(_, checked)| !checked)
                .map(|(path, _)| path.to_owned())
                .collect(),
        }
    }
}

/// Formats the coverage for the report's fidelity line: `verified` when
/// `SHA256SUMS` lists every file, else how many files were checked and
/// which were not listed.
impl fmt::Display for ChecksumCoverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checked = self.files - self.unlisted.len();
        if self.unlisted.is_empty() {
            f.write_str("verified")
        } else if checked == 0 {
            write!(
                f,
                "not listed in SHA256SUMS for any of the {} files",
                self.files
            )
        } else {
            write!(
                f,
                "verified for {checked} of {} files, not listed in SHA256SUMS: {}",
                self.files,
                self.unlisted.join(", ")
            )
        }
    }
}

/// Error of a release that could not be built.
#[derive(Debug)]
pub enum ReleaseError {
    /// A file failed to load or verify.
    Firmware(FirmwareError),
    /// The release breaks a scenario or manifest rule.
    Scenario(ScenarioError),
}

impl std::fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReleaseError::Firmware(error) => error.fmt(f),
            ReleaseError::Scenario(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ReleaseError {}

impl From<FirmwareError> for ReleaseError {
    fn from(error: FirmwareError) -> Self {
        ReleaseError::Firmware(error)
    }
}

impl From<ScenarioError> for ReleaseError {
    fn from(error: ScenarioError) -> Self {
        ReleaseError::Scenario(error)
    }
}

fn file_name(path: &str) -> Result<heapless::String<32>, ScenarioError> {
    let base = path.rsplit('/').next().unwrap_or(path);
    heapless::String::try_from(base).map_err(|_| {
        ScenarioError(format!(
            "file name `{base}` is longer than 32 bytes; rename the file"
        ))
    })
}

/// Source of the bytes of a release.
pub enum ImageSource<'a> {
    /// Files of a firmware folder, checked against its `SHA256SUMS`.
    Files(&'a FirmwareDir),
    /// Deterministic synthetic images of the given size, derived from the
    /// release name, for runs whose fleet cannot hold the real images in memory.
    Synthetic {
        /// Folder of the plain files (they are small and always real).
        dir: &'a FirmwareDir,
        /// Image size in bytes.
        image_size: usize,
    },
}

fn synthetic_image(name: &str, size: usize) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(size + 32);
    let mut counter = 0u64;
    while out.len() < size {
        let mut hasher = Sha256::new();
        hasher.update(name.as_bytes());
        hasher.update(counter.to_le_bytes());
        out.extend_from_slice(&hasher.finalize());
        counter += 1;
    }
    out.truncate(size);
    out
}

/// Loads a release's files and builds its signed manifest.
pub fn build_release(
    release: &Release,
    target: &str,
    source: &ImageSource<'_>,
    key: &ReleaseKey,
) -> Result<BuiltRelease, ReleaseError> {
    let version = parse_version(&release.version)?;
    let mut checksum_listed = Vec::new();
    let (image, mut checksums_verified, dir) = match source {
        ImageSource::Files(dir) => {
            let file: FirmwareFile = dir.load(&release.image)?;
            if file.bytes.is_empty() {
                return Err(ReleaseError::Scenario(ScenarioError(format!(
                    "release `{}`: application image {} is empty",
                    release.name, release.image
                ))));
            }
            checksum_listed.push((release.image.clone(), file.checked));
            (file.bytes, file.checked, *dir)
        }
        ImageSource::Synthetic { dir, image_size } => {
            (synthetic_image(&release.name, *image_size), true, *dir)
        }
    };
    let image_sha256 = {
        use sha2::{Digest, Sha256};
        Sha256::digest(&image).into()
    };
    let target: TargetType = heapless::String::try_from(target)
        .map_err(|_| ScenarioError("target type longer than 32 bytes".into()))?;
    let mut manifest = Manifest {
        target,
        version,
        security_counter: release.security_counter,
        expires_at: EPOCH_UNIX_S + MANIFEST_LIFETIME_S,
        files: heapless::Vec::new(),
        remove: heapless::Vec::new(),
    };
    let too_many = || ScenarioError(format!("release `{}` has too many files", release.name));
    manifest
        .files
        .push(ManifestFile {
            kind: FileKind::Application,
            name: file_name(&release.image)?,
            size: image.len() as u32,
            sha256: image_sha256,
        })
        .map_err(|_| too_many())?;
    let mut files = Vec::new();
    for path in &release.files {
        let file = dir.load(path)?;
        checksums_verified &= file.checked;
        checksum_listed.push((path.clone(), file.checked));
        let name = file_name(path)?;
        manifest
            .files
            .push(ManifestFile {
                kind: FileKind::Plain,
                name: name.clone(),
                size: file.bytes.len() as u32,
                sha256: file.sha256,
            })
            .map_err(|_| too_many())?;
        files.push(PlainFile {
            name: name.as_str().to_owned(),
            sha256: file.sha256,
            bytes: Arc::new(file.bytes),
        });
    }
    let mut buffer = [0u8; syssync_proto::MAX_MANIFEST_LEN];
    let manifest_body = manifest
        .encode(&mut buffer)
        .map_err(|error| {
            ScenarioError(format!(
                "manifest of release `{}` cannot be encoded: {error:?}",
                release.name
            ))
        })?
        .to_vec();
    let signature = key.sign(&manifest_body);
    Ok(BuiltRelease {
        name: release.name.clone(),
        version,
        healthy: release.healthy,
        image: Arc::new(image),
        image_sha256,
        files,
        manifest,
        manifest_body,
        signature,
        checksums_verified,
        checksum_listed,
    })
}

#[cfg(test)]
mod tests {
    use syssync_proto::{RustCrypto, SignedManifest};

    use super::*;
    use crate::firmware::default_firmware_dir;
    use crate::scenario::Scenario;

    #[test]
    fn default_release_manifest_verifies() {
        // Proves that the built manifest carries the real image digests and verifies under the trusted key.
        let scenario = Scenario::default_scenario();
        let dir = FirmwareDir::open(&default_firmware_dir()).unwrap();
        let key = ReleaseKey::from_seed(scenario.seed);
        let release = scenario.release("v1.10").unwrap();
        let built = build_release(
            release,
            &scenario.fleet.target,
            &ImageSource::Files(&dir),
            &key,
        )
        .unwrap();
        assert!(built.checksums_verified);
        assert_eq!(built.manifest.files.len(), 3);
        let signed = SignedManifest {
            key_id: RELEASE_KEY_ID,
            body: &built.manifest_body,
            signature: built.signature,
        };
        let manifest = signed.verify(&RustCrypto, &[key.trusted_key()]).unwrap();
        assert_eq!(manifest.files[0].size, 615_388);
        assert_eq!(manifest.version, Version::new(1, 10, 0, 0));
    }

    /// Builds the releases of `scenario` from `dir`.
    fn build_all(scenario: &Scenario, dir: &FirmwareDir) -> Vec<BuiltRelease> {
        let key = ReleaseKey::from_seed(scenario.seed);
        scenario
            .releases
            .iter()
            .map(|release| {
                build_release(
                    release,
                    &scenario.fleet.target,
                    &ImageSource::Files(dir),
                    &key,
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn checksum_coverage_counts_listed_files() {
        // Proves that the coverage wording differs for a SHA256SUMS that
        // lists every file, some of them or none.
        let scenario = Scenario::default_scenario();
        let source = default_firmware_dir();
        let sums = std::fs::read_to_string(source.join("SHA256SUMS")).unwrap();
        let temp = std::env::temp_dir().join(format!("syssync-sim-sums-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&temp);
        for release in &scenario.releases {
            for path in std::iter::once(&release.image).chain(&release.files) {
                let copy = temp.join(path);
                std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
                std::fs::copy(source.join(path), copy).unwrap();
            }
        }

        let none = ChecksumCoverage::of(&build_all(&scenario, &FirmwareDir::open(&temp).unwrap()));
        assert_eq!(none.files, 4);
        assert_eq!(
            none.to_string(),
            "not listed in SHA256SUMS for any of the 4 files"
        );

        let images_only: String = sums
            .lines()
            .filter(|line| line.ends_with(".bin"))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(temp.join("SHA256SUMS"), images_only).unwrap();
        let partial =
            ChecksumCoverage::of(&build_all(&scenario, &FirmwareDir::open(&temp).unwrap()));
        assert_eq!(
            partial.to_string(),
            "verified for 2 of 4 files, not listed in SHA256SUMS: config/network.json, config/telemetry.json"
        );

        std::fs::write(temp.join("SHA256SUMS"), &sums).unwrap();
        let all = ChecksumCoverage::of(&build_all(&scenario, &FirmwareDir::open(&temp).unwrap()));
        assert_eq!(all.to_string(), "verified");
        std::fs::remove_dir_all(&temp).unwrap();
    }
}
