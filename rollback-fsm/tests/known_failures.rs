//! Scenarios in which other bootloaders have failed in the field, each run
//! against simulated flash with power cuts.

mod support;

use rollback_fsm::{AppError, Phase, RevertReason, StagedImage};
use support::{provisioned, BootResult, Device, TestImage, EXTERNAL_SECTOR};

type Dev = Device<4, 1>;
type StrictDev = Device<16, 8>;

fn images(sectors: usize) -> (TestImage, TestImage, TestImage) {
    let size = sectors * EXTERNAL_SECTOR;
    (
        TestImage::new(0, 4096),
        TestImage::new(1, size - 3),
        TestImage::new(2, size - 7),
    )
}

/// Returns a device running `new` on its first trial boot, with `old` confirmed before it.
fn on_trial<const IW: usize, const EW: usize>(
    strict: bool,
    old: &TestImage,
    new: &TestImage,
    factory: &TestImage,
) -> Device<IW, EW> {
    let mut device = provisioned::<IW, EW>(strict, factory, old);
    device.stage(new).unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    assert!(device.status().unwrap().on_trial);
    device
}

/// Returns the bytes programmed or erased by `f` on a snapshot of `device`.
fn bytes_of<const IW: usize, const EW: usize>(
    device: &Device<IW, EW>,
    f: impl FnOnce(&mut Device<IW, EW>),
) -> u64 {
    let mut copy = device.snapshot();
    let before = copy.rail.bytes_total();
    f(&mut copy);
    copy.rail.bytes_total() - before
}

/// Boots until the bootloader reaches `BootActive`, restoring power after cuts.
fn boot_through_cuts<const IW: usize, const EW: usize>(device: &mut Device<IW, EW>) {
    for _ in 0..8 {
        match device.boot() {
            BootResult::Booted => return,
            BootResult::PowerLost => device.power_on(),
            BootResult::Failed(error) => panic!("boot failed: {error:?}"),
        }
    }
    panic!("no boot completed in 8 power-ons");
}

#[test]
fn revert_cut_midway_stays_on_old() {
    // Proves that a revert interrupted by a power cut completes and the old image stays on every later boot.
    let (factory, old, new) = images(8);
    let mut device: Dev = on_trial(false, &old, &new, &factory);
    for _ in 1..3 {
        assert_eq!(device.boot(), BootResult::Booted);
    }
    let revert_bytes = bytes_of(&device, |d| {
        d.boot();
    });
    for cut in [revert_bytes / 4, revert_bytes / 2, revert_bytes - 300] {
        let mut run = device.snapshot();
        run.rail.cut_after_bytes(cut);
        assert_eq!(run.boot(), BootResult::PowerLost);
        run.power_on();
        for boot in 0..10 {
            assert_eq!(
                run.boot(),
                BootResult::Booted,
                "boot {boot} after cut {cut}"
            );
            assert_eq!(
                run.active_image(&[&old, &new]),
                Some(0),
                "boot {boot} after cut {cut}"
            );
            let status = run.status().unwrap();
            assert_eq!(status.phase, Phase::Idle);
            assert_eq!(status.last_revert, Some(RevertReason::TrialLimit));
        }
    }
}

#[test]
fn resumed_install_ignores_erased_fields() {
    // Proves that a second cut while resuming an install, including one whose Install record is torn with erased fields, ends on the verified new image.
    let (factory, old, new) = images(4);
    let mut device: Dev = provisioned(false, &factory, &old);
    device.stage(&new).unwrap();
    let install_bytes = bytes_of(&device, |d| {
        d.boot();
    });
    for first in 0..install_bytes {
        let mut run = device.snapshot();
        run.rail.cut_after_bytes(first);
        assert_eq!(run.boot(), BootResult::PowerLost);
        run.power_on();
        let resume_bytes = bytes_of(&run, |d| {
            d.boot();
        });
        run.rail.cut_after_bytes(resume_bytes / 2);
        if run.boot() == BootResult::PowerLost {
            run.power_on();
        }
        boot_through_cuts(&mut run);
        assert_eq!(
            run.active_image(&[&old, &new]),
            Some(1),
            "first cut {first}"
        );
        let status = run.status().unwrap();
        assert!(status.on_trial, "first cut {first}");
        assert_eq!(status.running, Some(new.descriptor));
    }
}

#[test]
fn torn_revert_marker_leads_to_old() {
    // Proves that a cut at any byte of the record that finishes a revert still ends on the old image for good.
    let (factory, old, new) = images(2);
    for strict in [false, true] {
        let mut device: Dev = on_trial(strict, &old, &new, &factory);
        device.app().report_failure().unwrap();
        let revert_bytes = bytes_of(&device, |d| {
            d.boot();
        });
        // The final record is a 4-byte marker and a 192-byte body.
        for cut in revert_bytes - 196..revert_bytes {
            let mut run = device.snapshot();
            run.rail.cut_after_bytes(cut);
            assert_eq!(run.boot(), BootResult::PowerLost);
            run.power_on();
            for boot in 0..6 {
                assert_eq!(run.boot(), BootResult::Booted, "cut {cut} boot {boot}");
                assert_eq!(
                    run.active_image(&[&old, &new]),
                    Some(0),
                    "cut {cut} boot {boot}"
                );
                assert!(!run.status().unwrap().on_trial);
            }
        }
    }
}

#[test]
fn torn_erase_of_rejected_image_then_restage() {
    // Proves that after a cut while erasing a rejected staged image, the next staging is accepted and installed.
    let (factory, old, new) = images(4);
    let mut device: Dev = provisioned(false, &factory, &old);
    let mut corrupt = new.clone();
    corrupt.bytes[10] ^= 0xFF;
    device.stage(&corrupt).unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    assert_eq!(
        device.status().unwrap().staged,
        StagedImage::Rejected(rollback_fsm::Rejection::Digest)
    );
    assert_eq!(device.active_image(&[&old]), Some(0));

    // begin_staging writes one 196-byte record; the first sector erase follows.
    for cut in [196 + 1, 196 + 32, 196 + 63] {
        let mut run = device.snapshot();
        run.rail.cut_after_bytes(cut);
        assert!(run.stage(&new).is_err());
        run.power_on();
        run.stage(&new).unwrap();
        assert_eq!(run.boot(), BootResult::Booted);
        assert_eq!(run.active_image(&[&old, &new]), Some(1), "cut {cut}");
        assert!(run.status().unwrap().on_trial);
    }
}

#[test]
fn staging_on_trial_is_rejected() {
    // Proves that staging while the running image is on trial is refused and leaves recovery intact.
    let (factory, old, new) = images(4);
    let mut device: Dev = on_trial(false, &old, &new, &factory);
    let recovery_before = device.recovery.raw().to_vec();
    let third = TestImage::new(3, 200);
    let result = device.app().begin_staging(&third.descriptor, &[]);
    assert_eq!(
        result,
        Err(AppError::Request(
            rollback_fsm::core::RequestError::ImageOnTrial
        ))
    );
    assert_eq!(device.recovery.raw(), &recovery_before[..]);
    assert!(device.status().unwrap().on_trial);
}

#[test]
fn cut_every_boot_before_confirm() {
    // Proves that cutting power on every boot before confirm ends on a working image, without halting or looping.
    let (factory, old, new) = images(8);
    for strict in [false, true] {
        let mut device: Dev = on_trial(strict, &old, &new, &factory);
        for round in 0..40u64 {
            device.rail.cut_after_bytes((round * 97) % 1500);
            match device.boot() {
                BootResult::Booted | BootResult::PowerLost => {}
                BootResult::Failed(error) => panic!("round {round}: {error:?}"),
            }
            device.rail.disarm();
            device.power_on();
        }
        boot_through_cuts(&mut device);
        assert_eq!(device.active_image(&[&old, &new]), Some(0));
        let status = device.status().unwrap();
        assert_eq!(status.phase, Phase::Idle);
        assert_eq!(status.running, Some(old.descriptor));
    }
}

#[test]
fn unstable_torn_record_read_consistently() {
    // Proves that a torn confirm record with unstable bits is read the same way on every boot after the first.
    let (factory, old, new) = images(2);
    let device: Dev = on_trial(false, &old, &new, &factory);
    let confirm_bytes = bytes_of(&device, |d| d.app().confirm().unwrap());
    let mut unstable_runs = 0;
    for cut in 0..confirm_bytes {
        let mut run = device.snapshot();
        run.rail.cut_after_bytes(cut);
        assert!(run.app().confirm().is_err());
        run.power_on();
        if run.state.unstable_bytes() > 0 {
            unstable_runs += 1;
        }
        assert_eq!(run.boot(), BootResult::Booted);
        let first = run.status().unwrap();
        for _ in 0..5 {
            assert_eq!(run.status().unwrap().phase, first.phase, "cut {cut}");
        }
        let confirmed = first.phase == Phase::Idle;
        for boot in 0..6 {
            assert_eq!(run.boot(), BootResult::Booted);
            let image = run.active_image(&[&old, &new]);
            if confirmed {
                assert_eq!(
                    image,
                    Some(1),
                    "cut {cut} boot {boot}: confirmed image left"
                );
            } else {
                assert!(image.is_some(), "cut {cut} boot {boot}: no complete image");
            }
        }
        let expected = if confirmed { 1 } else { 0 };
        assert_eq!(run.active_image(&[&old, &new]), Some(expected), "cut {cut}");
    }
    assert!(unstable_runs > 0, "no cut left unstable bits");
}

fn confirm_cut_at_every_operation<const IW: usize, const EW: usize>(strict: bool) {
    let (factory, old, new) = images(2);
    let device: Device<IW, EW> = on_trial(strict, &old, &new, &factory);
    let mut probe = device.snapshot();
    let ops_before = probe.rail.ops_total();
    probe.app().confirm().unwrap();
    let confirm_ops = probe.rail.ops_total() - ops_before;
    let confirm_bytes = bytes_of(&device, |d| d.app().confirm().unwrap());

    let cuts = (0..confirm_ops)
        .map(|ops| (true, ops))
        .chain((0..confirm_bytes).map(|bytes| (false, bytes)));
    for (by_ops, at) in cuts {
        let mut run = device.snapshot();
        if by_ops {
            run.rail.cut_after_ops(at);
        } else {
            run.rail.cut_after_bytes(at);
        }
        assert!(run.app().confirm().is_err());
        run.power_on();

        assert_eq!(run.boot(), BootResult::Booted, "cut {at}");
        let status = run.status().unwrap();
        assert_eq!(run.active_image(&[&old, &new]), Some(1), "cut {at}");
        assert_eq!(status.running, Some(new.descriptor));
        let confirmed = status.phase == Phase::Idle;
        assert!(
            confirmed || status.on_trial,
            "cut {at}: phase {:?}",
            status.phase
        );

        for _ in 0..5 {
            assert_eq!(run.boot(), BootResult::Booted, "cut {at}");
        }
        let expected = if confirmed { 1 } else { 0 };
        assert_eq!(run.active_image(&[&old, &new]), Some(expected), "cut {at}");
        assert_eq!(run.status().unwrap().phase, Phase::Idle);
    }
}

#[test]
fn confirm_cut_normal_flash() {
    // Proves that a cut at any operation or byte of confirm leaves state and image in agreement, on flash without ECC.
    confirm_cut_at_every_operation::<4, 1>(false);
}

#[test]
fn confirm_cut_strict_flash() {
    // Proves the same for flash with ECC, where a word may be programmed only once per erase.
    confirm_cut_at_every_operation::<16, 8>(true);
}

#[test]
fn full_cycle_on_strict_flash() {
    // Proves that install, trial, confirm and a second update work on strict (ECC) flash.
    let (factory, old, new) = images(8);
    let mut device: StrictDev = on_trial(true, &old, &new, &factory);
    device.app().confirm().unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    let third = TestImage::new(3, 300);
    device.stage(&third).unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    assert_eq!(device.active_image(&[&old, &new, &third]), Some(2));
    device.app().report_failure().unwrap();
    assert_eq!(device.boot(), BootResult::Booted);
    assert_eq!(device.active_image(&[&old, &new, &third]), Some(1));
    let status = device.status().unwrap();
    assert_eq!(
        status.last_revert,
        Some(RevertReason::ApplicationReportedFailure)
    );
}
