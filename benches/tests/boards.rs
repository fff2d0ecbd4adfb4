//! Scenario tests of the two simulated boards, the update measurement and
//! the power-cut sweep, on small images so that they run in seconds.

use benches::boards::{Board, BootOutcome, EmbassyBoard, Image, RollbackBoard, SECTOR};
use benches::measure::measure_update;
use benches::sweep::{Cut, RunOutcome, Scenario, Sweep};

const IMAGE: usize = 4 * SECTOR;

fn update_then_revert<B: Board>() {
    let factory = Image::random(0, IMAGE);
    let old = Image::random(1, IMAGE);
    let new = Image::random(2, IMAGE);
    let mut board = B::provisioned(false, IMAGE, &factory, &old).unwrap();
    assert!(board.active_contains(&old), "{}", B::NAME);

    board.stage(&new).unwrap();
    assert!(
        board.active_contains(&old),
        "{}: staging touched active",
        B::NAME
    );
    assert!(matches!(board.boot(), BootOutcome::Booted), "{}", B::NAME);
    assert!(board.active_contains(&new), "{}: install", B::NAME);
    assert!(matches!(board.boot(), BootOutcome::Booted), "{}", B::NAME);
    assert!(board.active_contains(&old), "{}: revert", B::NAME);
}

#[test]
fn unconfirmed_image_reverts_on_both() {
    // Proves that both boards install a staged image and put the old one back when the next boot comes without a confirm.
    update_then_revert::<EmbassyBoard<4>>();
    update_then_revert::<RollbackBoard<4>>();
    update_then_revert::<EmbassyBoard<8>>();
    update_then_revert::<RollbackBoard<8>>();
}

#[test]
fn phase_costs_match_geometry() {
    // Proves that the measured phases erase what the algorithms must: every image sector once per copy.
    let sectors = (IMAGE / SECTOR) as u64;
    let rollback = measure_update::<RollbackBoard<4>>(false, IMAGE).unwrap();
    // Staging erases the image sectors; install backs up active and copies staging.
    assert_eq!(rollback.staging.erases, sectors);
    assert_eq!(rollback.install.erases, 2 * sectors);
    assert_eq!(rollback.revert.erases, sectors);
    assert_eq!(rollback.confirm_cycle.max_sector_erases(), 1);

    let embassy = measure_update::<EmbassyBoard<4>>(false, IMAGE).unwrap();
    // The swap erases each active page and each DFU page once per direction.
    assert_eq!(embassy.install.erases, 2 * sectors);
    assert_eq!(embassy.revert.erases, 2 * sectors + 1);
    assert!(embassy.revert_cycle.max_sector_erases() > rollback.revert_cycle.max_sector_erases());
    assert!(rollback.install.bytes_written >= IMAGE as u64 * 2);
}

#[test]
fn sweep_sample_recovers_on_normal_flash() {
    // Proves that sampled cut points of both scenarios, with and without a second cut during recovery,
    // recover on both boards with flash without ECC.
    for scenario in Scenario::ALL {
        let embassy = Sweep::<EmbassyBoard<4>>::new(scenario, false, 2 * SECTOR).unwrap();
        let report = embassy.sweep(4_099, true).unwrap();
        assert!(report.cut_points > 20);
        assert_eq!(
            report.failures(),
            0,
            "embassy-boot {scenario:?}: {:?}",
            report.examples
        );

        let rollback = Sweep::<RollbackBoard<4>>::new(scenario, false, 2 * SECTOR).unwrap();
        let report = rollback.sweep(4_099, true).unwrap();
        assert!(report.cut_points > 20);
        assert_eq!(
            report.failures(),
            0,
            "rollback-fsm {scenario:?}: {:?}",
            report.examples
        );
    }
}

#[test]
fn embassy_strict_flash_bricks_after_confirm_cut() {
    // Proves the strict-mode failure that the sweep reports for embassy-boot: power lost after
    // `mark_booted` invalidated the progress word but before it erased the state partition
    // leaves a state that every later boot rejects with a flash error.
    for strict in [false, true] {
        let sweep =
            Sweep::<EmbassyBoard<4>>::new(Scenario::UpdateConfirm, strict, 2 * SECTOR).unwrap();
        let (_, ops) = sweep.measure().unwrap();
        // The last operations are: progress word written, state erased, magic written.
        let outcome = sweep.run(Cut::Ops(ops - 2));
        if strict {
            assert!(matches!(outcome, RunOutcome::BootFailed(_)), "{outcome:?}");
        } else {
            assert_eq!(outcome, RunOutcome::Recovered);
        }
    }
}

#[test]
fn rollback_strict_flash_recovers_same_cut() {
    // Proves that rollback-fsm recovers from cuts around its confirm on strict flash.
    let sweep = Sweep::<RollbackBoard<4>>::new(Scenario::UpdateConfirm, true, 2 * SECTOR).unwrap();
    let (_, ops) = sweep.measure().unwrap();
    for cut in ops.saturating_sub(6)..ops {
        assert_eq!(
            sweep.run(Cut::Ops(cut)),
            RunOutcome::Recovered,
            "cut after {cut} ops"
        );
    }
}
