//! The bootloader's flash work stays linear in the image size, and the
//! flash-sim counters expose it per phase.

mod support;

use support::{provisioned, BootResult, Device, TestImage, EXTERNAL_SECTOR, INTERNAL_SECTOR};

type Dev = Device<4, 1>;

/// Counter totals of one phase.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    active_erases: u64,
    recovery_erases: u64,
    staging_erases: u64,
    state_erases: u64,
    write_calls: u64,
    bytes_written: u64,
    bytes_read: u64,
    max_sector_erases: u64,
}

fn reset(device: &mut Dev) {
    device.active.reset_counters();
    device.staging.reset_counters();
    device.recovery.reset_counters();
    device.state.reset_counters();
}

fn cost(device: &Dev) -> Cost {
    let all = [
        device.active.counters(),
        device.staging.counters(),
        device.recovery.counters(),
        device.state.counters(),
    ];
    Cost {
        active_erases: device.active.counters().erases,
        recovery_erases: device.recovery.counters().erases,
        staging_erases: device.staging.counters().erases,
        state_erases: device.state.counters().erases,
        write_calls: all.iter().map(|c| c.write_calls).sum(),
        bytes_written: all.iter().map(|c| c.bytes_written).sum(),
        bytes_read: all.iter().map(|c| c.bytes_read).sum(),
        max_sector_erases: all.iter().map(|c| c.max_sector_erases()).max().unwrap_or(0),
    }
}

#[test]
fn install_and_revert_cost_linear() {
    // Proves that an install erases each image sector once in recovery and in active, a revert once in active, and reads stay within a small multiple of the image.
    let factory = TestImage::new(0, 4096);
    let old = TestImage::new(1, 64 * EXTERNAL_SECTOR - 3);
    let new = TestImage::new(2, 64 * EXTERNAL_SECTOR - 7);
    let mut device: Dev = provisioned(false, &factory, &old);
    device.stage(&new).unwrap();

    reset(&mut device);
    assert_eq!(device.boot(), BootResult::Booted);
    let install = cost(&device);

    device.app().report_failure().unwrap();
    reset(&mut device);
    assert_eq!(device.boot(), BootResult::Booted);
    let revert = cost(&device);

    let size = new.bytes.len() as u64;
    let external_sectors = size.div_ceil(EXTERNAL_SECTOR as u64);
    let internal_sectors = size.div_ceil(INTERNAL_SECTOR as u64);
    eprintln!("image {size} bytes; install {install:?}; revert {revert:?}");

    assert_eq!(
        install.recovery_erases,
        old.bytes.len().div_ceil(EXTERNAL_SECTOR) as u64
    );
    assert_eq!(install.active_erases, internal_sectors);
    assert_eq!(install.staging_erases, 0);
    assert!(install.state_erases <= 4, "{install:?}");
    assert!(install.max_sector_erases <= 2, "{install:?}");
    // Verify staged, back up (read + verify), install (read + verify): 5 image reads,
    // plus the state log of 1 KiB read once per load.
    assert!(install.bytes_read <= 5 * 4096 + 8 * 1024, "{install:?}");
    assert!(install.bytes_written <= 2 * 4096 + 4 * 256, "{install:?}");

    assert_eq!(
        revert.active_erases,
        old.bytes.len().div_ceil(INTERNAL_SECTOR) as u64
    );
    assert_eq!(revert.recovery_erases, 0);
    assert!(revert.bytes_read <= 3 * 4096 + 8 * 1024, "{revert:?}");
    assert!(revert.bytes_written <= 4096 + 4 * 256, "{revert:?}");
    assert!(external_sectors > 0);
}

#[test]
fn confirmed_boot_reads_only_state() {
    // Proves that a normal boot of a confirmed image reads the state log once and writes nothing.
    let factory = TestImage::new(0, 4096);
    let old = TestImage::new(1, 1000);
    let mut device: Dev = provisioned(false, &factory, &old);
    reset(&mut device);
    assert_eq!(device.boot(), BootResult::Booted);
    let boot = cost(&device);
    assert_eq!(boot.write_calls, 0);
    assert_eq!(boot.active_erases + boot.state_erases, 0);
    assert_eq!(boot.bytes_read, 2 * 2 * 192);
}
