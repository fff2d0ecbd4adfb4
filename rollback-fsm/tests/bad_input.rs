//! Bad staged images, garbage state and misconfigured geometry are rejected
//! before they can do harm.

mod support;

use flash_sim::{FlashConfig, FlashSim, PowerRail};
use rollback_fsm::core::RequestError;
use rollback_fsm::{
    AppError, BootFlashes, BootSide, Config, ConfigError, Layout, Partition, PartitionName, Phase,
    Rejection, Sha256, StagedImage, StateRecord, TargetType, FORMAT_VERSION, RECORD_LEN,
};
use support::{provisioned, BootResult, Device, TestImage, BOOTLOADER_AREA, EXTERNAL_SECTOR};

type Dev = Device<4, 1>;

fn setup() -> (Dev, TestImage, TestImage) {
    let factory = TestImage::new(0, 4096);
    let old = TestImage::new(1, 8 * EXTERNAL_SECTOR - 3);
    let new = TestImage::new(2, 8 * EXTERNAL_SECTOR - 7);
    (provisioned(false, &factory, &old), old, new)
}

/// Stages `bytes` under `descriptor`, boots, and checks that the bootloader
/// rejected it without erasing or writing the active partition.
fn assert_rejected_at_boot(
    descriptor: rollback_fsm::ImageDescriptor,
    bytes: &[u8],
    reason: Rejection,
) {
    let (mut device, old, _) = setup();
    {
        let mut app = device.app();
        app.begin_staging(&descriptor, &[]).unwrap();
        app.write_staging(0, bytes).unwrap();
        app.request_install().unwrap();
    }
    device.active.reset_counters();
    assert_eq!(device.boot(), BootResult::Booted);
    assert_eq!(device.active.counters().erases, 0, "{reason:?}");
    assert_eq!(device.active.counters().write_calls, 0, "{reason:?}");
    assert_eq!(device.active_image(&[&old]), Some(0));
    let status = device.status().unwrap();
    assert_eq!(status.staged, StagedImage::Rejected(reason));
    assert_eq!(status.running, Some(old.descriptor));
    assert!(!status.on_trial);
    let record = device.app().record().unwrap();
    assert_eq!(record.phase, Phase::Idle);
    assert_eq!(record.rejection, Some(reason));
    assert_eq!(record.active, Some(old.descriptor));
}

#[test]
fn wrong_digest_rejected_before_active() {
    // Proves that a staged image whose bytes do not match its SHA-256 never touches the active partition.
    let (_, _, new) = setup();
    let mut bytes = new.bytes.clone();
    bytes[100] ^= 1;
    assert_rejected_at_boot(new.descriptor, &bytes, Rejection::Digest);
}

#[test]
fn wrong_size_rejected_before_active() {
    // Proves that a descriptor whose size differs from the staged bytes is rejected at boot.
    let (_, _, new) = setup();
    let mut descriptor = new.descriptor;
    descriptor.size -= 1;
    assert_rejected_at_boot(
        descriptor,
        &new.bytes[..new.bytes.len() - 1],
        Rejection::Digest,
    );
}

#[test]
fn wrong_target_or_counter_rejected_at_staging() {
    // Proves that a wrong target type, an oversized image and a security counter below the floor are rejected when staging starts.
    let (mut device, _, new) = setup();
    let mut other_target = new.descriptor;
    other_target.target_type = TargetType::new("other-board").unwrap();
    let mut oversized = new.descriptor;
    oversized.size = 4097;
    // One byte more than the smallest of the active and recovery partitions
    // and the staging partition without its evidence area.
    let mut over_max = new.descriptor;
    over_max.size = device.app().max_image_size() + 1;
    let mut old_counter = new.descriptor;
    old_counter.security_counter = 0;
    let cases = [
        (other_target, Rejection::TargetType),
        (oversized, Rejection::Size),
        (over_max, Rejection::Size),
        (old_counter, Rejection::SecurityCounter),
    ];
    for (descriptor, rejection) in cases {
        let result = device.app().begin_staging(&descriptor, &[]);
        assert_eq!(
            result,
            Err(AppError::Request(RequestError::InvalidDescriptor(
                rejection
            )))
        );
    }
    assert_eq!(device.status().unwrap().phase, Phase::Idle);
}

#[test]
fn garbage_state_decodes_to_safe_state() {
    // Proves that a state partition full of random bytes boots the active image as it is and writes nothing to it.
    let factory = TestImage::new(0, 4096);
    let mut device = Dev::new(false, 3, &factory);
    let garbage: Vec<u8> = (0..1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    device.state.load(0, &garbage).unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    assert_eq!(device.active.counters().erases, 0);
    assert_eq!(device.active_image(&[&factory]), Some(0));
    let status = device.status().unwrap();
    assert_eq!(status.phase, Phase::Idle);
    assert_eq!(status.running, None);
    // The device can still be updated from this state.
    let new = TestImage::new(2, 500);
    device.stage(&new).unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    assert_eq!(device.active_image(&[&factory, &new]), Some(1));
}

#[test]
fn other_version_decodes_to_safe_state() {
    // Proves that a newest record of another format version makes the bootloader boot the active image untouched, ignoring an older valid revert record.
    let factory = TestImage::new(0, 4096);
    let mut device = Dev::new(false, 3, &factory);
    let older = StateRecord {
        seq: 5,
        phase: Phase::Revert,
        ..StateRecord::safe()
    }
    .to_bytes();
    let mut newer = StateRecord {
        seq: 6,
        phase: Phase::Revert,
        ..StateRecord::safe()
    }
    .to_bytes();
    newer[4] = FORMAT_VERSION + 1;
    let crc = crc_of(&newer[..188]);
    newer[188..192].copy_from_slice(&crc.to_le_bytes());
    // Each slot is a 4-byte marker of zeros followed by the body.
    for (at, body) in [(0, older), (4 + RECORD_LEN, newer)] {
        device.state.load(at, &[0; 4]).unwrap();
        device.state.load(at + 4, &body).unwrap();
    }

    assert_eq!(device.boot(), BootResult::Booted);
    assert_eq!(device.active.counters().erases, 0);
    assert_eq!(device.active.counters().write_calls, 0);
    assert_eq!(device.active_image(&[&factory]), Some(0));
    let status = device.status().unwrap();
    assert_eq!(status.phase, Phase::Idle);
    assert_eq!(status.running, None);
}

fn crc_of(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(bytes)
}

#[test]
fn misconfigured_geometry_rejected() {
    // Proves that impossible layouts are rejected when the configuration and the drivers are built.
    let small_recovery = Layout {
        active: Partition::new(0, 8192),
        staging: Partition::new(0, 8192),
        recovery: Partition::new(0, 4096),
        state: Partition::new(0, 1024),
    };
    assert_eq!(
        Config::try_new(small_recovery, "board"),
        Err(ConfigError::RecoveryTooSmall)
    );
    assert_eq!(
        Config::try_new(support::config().layout().to_owned(), ""),
        Err(ConfigError::InvalidTargetType)
    );
    assert_eq!(
        support::config().with_trial_boots(0),
        Err(ConfigError::ZeroTrialBoots)
    );

    let cases = [
        (
            Layout {
                active: Partition::new(BOOTLOADER_AREA + 64, 4096),
                ..*support::config().layout()
            },
            ConfigError::NotAligned(PartitionName::Active),
        ),
        (
            Layout {
                staging: Partition::new(0, 8192),
                ..*support::config().layout()
            },
            ConfigError::OutOfBounds(PartitionName::Staging),
        ),
        (
            Layout {
                state: Partition::new(0, 512),
                ..*support::config().layout()
            },
            ConfigError::StateTooSmall,
        ),
    ];
    for (layout, expected) in cases {
        let config = Config::try_new(layout, support::TARGET).unwrap();
        let rail = PowerRail::new();
        let mut active: FlashSim<128, 4> =
            FlashSim::new(FlashConfig::new(8192), rail.clone()).unwrap();
        let mut staging: FlashSim<64, 1> = FlashSim::new(
            FlashConfig::new(support::STAGING_PARTITION as usize),
            rail.clone(),
        )
        .unwrap();
        let mut recovery: FlashSim<64, 1> =
            FlashSim::new(FlashConfig::new(4096), rail.clone()).unwrap();
        let mut state: FlashSim<512, 4> = FlashSim::new(FlashConfig::new(1024), rail).unwrap();
        let flashes = BootFlashes {
            active: &mut active,
            staging: &mut staging,
            recovery: &mut recovery,
            state: &mut state,
        };
        let result = BootSide::new(&config, flashes, Sha256::default());
        assert_eq!(result.err(), Some(expected));
    }
}

#[test]
fn staging_writes_checked() {
    // Proves that staging writes outside the image, misaligned, or before begin_staging are rejected.
    let (mut device, _, new) = setup();
    let mut app = device.app();
    assert_eq!(
        app.write_staging(0, &new.bytes[..64]),
        Err(AppError::Request(RequestError::NothingStaged))
    );
    app.begin_staging(&new.descriptor, &[]).unwrap();
    assert!(matches!(
        app.write_staging(new.descriptor.size - 4, &[0; 8]),
        Err(AppError::InvalidStagingWrite { .. })
    ));
    // The external flash of the test device has write size 1, so any offset is aligned.
    app.write_staging(0, &new.bytes).unwrap();
    assert_eq!(app.request_install(), Ok(()));
}
