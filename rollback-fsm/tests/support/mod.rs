//! A simulated device for tests and the power-cut sweep: every partition on
//! its own `FlashSim`, all on one power rail.
#![allow(dead_code)]

use flash_sim::{FlashConfig, FlashSim, PowerRail};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollback_fsm::{
    AppError, AppSide, BootError, BootFlashes, BootSide, Config, ImageDescriptor, Layout,
    Partition, Settings, Sha256, Sha256Hasher, Status, TargetType, Version,
};

/// Target type of the simulated board.
pub(crate) const TARGET: &str = "sim-board";
/// Sector size of the external flash (staging and recovery), in bytes.
pub(crate) const EXTERNAL_SECTOR: usize = 64;
/// Sector size of the internal flash holding the active partition, in bytes.
pub(crate) const INTERNAL_SECTOR: usize = 128;
/// Sector size of the state and settings flash, in bytes.
pub(crate) const META_SECTOR: usize = 512;
/// Size of the active, staging and recovery partitions, in bytes.
pub(crate) const IMAGE_PARTITION: u32 = 4096;
/// Size of the staging partition: an image partition plus room for the
/// largest evidence (used with the `signature` feature), in bytes.
pub(crate) const STAGING_PARTITION: u32 = IMAGE_PARTITION + 1728;
/// Space in front of the active partition, as a bootloader would use.
pub(crate) const BOOTLOADER_AREA: u32 = 1024;
/// Staging write chunk, as an update engine would write it.
pub(crate) const CHUNK: usize = 256;

pub(crate) type ActiveFlash<const IW: usize> = FlashSim<INTERNAL_SECTOR, IW>;
pub(crate) type ExternalFlash<const EW: usize> = FlashSim<EXTERNAL_SECTOR, EW>;
pub(crate) type MetaFlash<const IW: usize> = FlashSim<META_SECTOR, IW>;

/// An image with its bytes and descriptor.
#[derive(Clone, Debug)]
pub(crate) struct TestImage {
    pub(crate) descriptor: ImageDescriptor,
    pub(crate) bytes: Vec<u8>,
}

impl TestImage {
    /// Creates an image of `size` pseudo-random bytes, version `1.tag.0`.
    pub(crate) fn new(tag: u16, size: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(u64::from(tag) * 7919);
        let mut bytes = vec![0u8; size];
        rng.fill_bytes(&mut bytes);
        let mut hasher = Sha256::default();
        hasher.update(&bytes);
        let descriptor = ImageDescriptor {
            size: size as u32,
            sha256: hasher.finish(),
            target_type: TargetType::new(TARGET).unwrap(),
            version: Version::new(1, tag, 0, 0),
            security_counter: u32::from(tag),
        };
        Self { descriptor, bytes }
    }
}

pub(crate) fn config() -> Config {
    let layout = Layout {
        active: Partition::new(BOOTLOADER_AREA, IMAGE_PARTITION),
        staging: Partition::new(0, STAGING_PARTITION),
        recovery: Partition::new(0, IMAGE_PARTITION),
        state: Partition::new(0, 2 * META_SECTOR as u32),
    };
    Config::try_new(layout, TARGET).unwrap()
}

pub(crate) fn settings_partition() -> Partition {
    Partition::new(0, 2 * META_SECTOR as u32)
}

/// A simulated device. `IW` is the internal write size (active, state,
/// settings) and `EW` the external one (staging, recovery).
pub(crate) struct Device<const IW: usize, const EW: usize> {
    pub(crate) rail: PowerRail,
    pub(crate) active: ActiveFlash<IW>,
    pub(crate) staging: ExternalFlash<EW>,
    pub(crate) recovery: ExternalFlash<EW>,
    pub(crate) state: MetaFlash<IW>,
    pub(crate) settings: MetaFlash<IW>,
    pub(crate) config: Config,
}

/// Result of one boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BootResult {
    /// The bootloader reached `BootActive`.
    Booted,
    /// The power failed during the boot.
    PowerLost,
    /// The bootloader halted or failed for another reason.
    Failed(BootError),
}

impl<const IW: usize, const EW: usize> Device<IW, EW> {
    /// Creates an erased device with `factory` programmed into the active partition.
    pub(crate) fn new(strict: bool, seed: u64, factory: &TestImage) -> Self {
        let rail = PowerRail::new();
        let flash = |capacity: u32, salt: u64| {
            FlashConfig::new(capacity as usize)
                .strict(strict)
                .seed(seed.wrapping_mul(31).wrapping_add(salt))
        };
        let mut active =
            ActiveFlash::new(flash(BOOTLOADER_AREA + IMAGE_PARTITION, 1), rail.clone()).unwrap();
        active
            .load(BOOTLOADER_AREA as usize, &factory.bytes)
            .unwrap();
        Self {
            active,
            staging: ExternalFlash::new(flash(STAGING_PARTITION, 2), rail.clone()).unwrap(),
            recovery: ExternalFlash::new(flash(IMAGE_PARTITION, 3), rail.clone()).unwrap(),
            state: MetaFlash::new(flash(2 * META_SECTOR as u32, 4), rail.clone()).unwrap(),
            settings: MetaFlash::new(flash(2 * META_SECTOR as u32, 5), rail.clone()).unwrap(),
            config: config(),
            rail,
        }
    }

    /// Returns a copy of the flash contents on a fresh rail, as after a reset.
    pub(crate) fn snapshot(&self) -> Self {
        let rail = PowerRail::new();
        Self {
            active: self.active.clone_onto(rail.clone()),
            staging: self.staging.clone_onto(rail.clone()),
            recovery: self.recovery.clone_onto(rail.clone()),
            state: self.state.clone_onto(rail.clone()),
            settings: self.settings.clone_onto(rail.clone()),
            config: self.config,
            rail,
        }
    }

    /// Builds a bootloader from flash contents alone.
    pub(crate) fn boot_side(
        &mut self,
    ) -> BootSide<
        '_,
        &mut ActiveFlash<IW>,
        &mut ExternalFlash<EW>,
        &mut ExternalFlash<EW>,
        &mut MetaFlash<IW>,
        Sha256,
    > {
        let flashes = BootFlashes {
            active: &mut self.active,
            staging: &mut self.staging,
            recovery: &mut self.recovery,
            state: &mut self.state,
        };
        BootSide::new(&self.config, flashes, Sha256::default()).unwrap()
    }

    /// Builds the application side from flash contents alone.
    pub(crate) fn app(
        &mut self,
    ) -> AppSide<&mut ExternalFlash<EW>, &mut MetaFlash<IW>, &mut MetaFlash<IW>> {
        let settings = Settings::new(&mut self.settings, settings_partition()).unwrap();
        AppSide::new(&self.config, &mut self.staging, &mut self.state, settings).unwrap()
    }

    /// Runs the bootloader of one power-on until it boots, fails, or the power is cut.
    pub(crate) fn boot(&mut self) -> BootResult {
        let rail = self.rail.clone();
        #[cfg(feature = "authentication")]
        let authenticator = test_authenticator();
        let mut boot = self.boot_side();
        #[cfg(feature = "authentication")]
        boot.set_authenticator(&authenticator);
        let result = boot.run();
        match result {
            Ok(()) => BootResult::Booted,
            Err(_) if rail.is_down() => BootResult::PowerLost,
            Err(error) => BootResult::Failed(error),
        }
    }

    /// Stages `image` in 256-byte chunks and requests its installation.
    pub(crate) fn stage(&mut self, image: &TestImage) -> Result<(), AppError> {
        let evidence = evidence_for(image);
        let mut app = self.app();
        app.begin_staging(&image.descriptor, &evidence)?;
        for (index, chunk) in image.bytes.chunks(CHUNK).enumerate() {
            app.write_staging((index * CHUNK) as u32, chunk)?;
        }
        app.request_install()
    }

    pub(crate) fn status(&mut self) -> Result<Status, AppError> {
        self.app().status()
    }

    /// Returns the index of the image in `images` that the active partition
    /// contains completely and stably, or `None`.
    pub(crate) fn active_image(&self, images: &[&TestImage]) -> Option<usize> {
        let start = BOOTLOADER_AREA as usize;
        images.iter().position(|image| {
            let end = start + image.bytes.len();
            self.active.raw()[start..end] == image.bytes[..]
                && self.active.unstable_bytes_in(start..end) == 0
        })
    }

    /// Restores power after a cut.
    pub(crate) fn power_on(&mut self) {
        self.rail.power_on();
    }
}

/// Returns the key that signs test images when the `authentication` feature is on.
#[cfg(feature = "authentication")]
pub(crate) fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// Returns the crate's descriptor signature check for [`signing_key`].
#[cfg(feature = "signature")]
fn test_authenticator() -> rollback_fsm::Ed25519Authenticator {
    rollback_fsm::Ed25519Authenticator::new(signing_key().verifying_key())
}

/// Returns a descriptor signature check for [`signing_key`], in place of
/// `Ed25519Authenticator`, which only the `signature` feature builds.
#[cfg(all(feature = "authentication", not(feature = "signature")))]
fn test_authenticator() -> DescriptorSignature {
    DescriptorSignature(signing_key().verifying_key())
}

/// Ed25519 over the image descriptor, checked with the test's own
/// `ed25519-dalek` dependency.
#[cfg(all(feature = "authentication", not(feature = "signature")))]
struct DescriptorSignature(ed25519_dalek::VerifyingKey);

#[cfg(all(feature = "authentication", not(feature = "signature")))]
impl rollback_fsm::ImageAuthenticator for DescriptorSignature {
    fn authenticate(
        &self,
        descriptor: &rollback_fsm::ImageDescriptor,
        evidence: &[u8],
    ) -> Result<(), rollback_fsm::AuthError> {
        let signature = ed25519_dalek::Signature::from_slice(evidence)
            .map_err(|_| rollback_fsm::AuthError::MalformedEvidence)?;
        self.0
            .verify_strict(&descriptor.to_bytes(), &signature)
            .map_err(|_| rollback_fsm::AuthError::InvalidSignature)
    }
}

/// Returns the evidence stored with `image`: its signature with the
/// `authentication` feature, else nothing.
pub(crate) fn evidence_for(image: &TestImage) -> Vec<u8> {
    #[cfg(feature = "authentication")]
    {
        use ed25519_dalek::Signer;
        signing_key()
            .sign(&image.descriptor.to_bytes())
            .to_bytes()
            .to_vec()
    }
    #[cfg(not(feature = "authentication"))]
    {
        let _ = image;
        Vec::new()
    }
}

/// Installs `old` as a confirmed known image on a factory device, without cuts.
pub(crate) fn provisioned<const IW: usize, const EW: usize>(
    strict: bool,
    factory: &TestImage,
    old: &TestImage,
) -> Device<IW, EW> {
    let mut device = Device::new(strict, 1, factory);
    device.stage(old).unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    device.app().confirm().unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    device
}
