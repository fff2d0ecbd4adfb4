//! Flash cost of one update, phase by phase, on a [`Board`].

use crate::boards::{Board, BoardError, Image};
use crate::counts::FlashTotals;

/// Flash counts of each phase of one update, and of the two whole cycles.
#[derive(Debug, Clone)]
pub struct UpdateCost {
    /// The application writes the new image and requests its installation.
    pub staging: FlashTotals,
    /// The first boot after the request: the bootloader installs the image.
    pub install: FlashTotals,
    /// The application confirms the new image, and the bootloader runs once more.
    pub confirm: FlashTotals,
    /// From the state after install: the bootloader runs again without a
    /// confirm and puts the old image back.
    pub revert: FlashTotals,
    /// Staging, install and confirm added up.
    pub confirm_cycle: FlashTotals,
    /// Staging, install and revert added up.
    pub revert_cycle: FlashTotals,
}

fn expect_active<B: Board>(board: &B, image: &Image, after: &str) -> Result<(), BoardError> {
    if board.active_contains(image) {
        Ok(())
    } else {
        Err(BoardError::Unexpected(format!(
            "{}: the active partition does not hold version 1.{}.0 after {after}",
            B::NAME,
            image.descriptor.version.minor
        )))
    }
}

/// Measures one update from a provisioned board running an old image to a
/// new one, on images of `image_size` bytes.
///
/// Counters are reset between phases. Each phase is checked: the new image
/// must be active after install and confirm, and the old one after revert.
pub fn measure_update<B: Board>(strict: bool, image_size: usize) -> Result<UpdateCost, BoardError> {
    let factory = Image::random(0, image_size);
    let old = Image::random(1, image_size);
    let new = Image::random(2, image_size);
    let mut board = B::provisioned(strict, image_size, &factory, &old)?;

    board.stage(&new)?;
    let staging = board.totals();
    board.reset_counters();

    board.boot().into_result()?;
    expect_active(&board, &new, "install")?;
    let install = board.totals();
    board.reset_counters();
    let mut reverting = board.snapshot();

    board.confirm()?;
    board.boot().into_result()?;
    expect_active(&board, &new, "confirm")?;
    let confirm = board.totals();

    reverting.boot().into_result()?;
    expect_active(&reverting, &old, "revert")?;
    let revert = reverting.totals();

    let mut confirm_cycle = staging.clone();
    confirm_cycle += &install;
    let mut revert_cycle = confirm_cycle.clone();
    confirm_cycle += &confirm;
    revert_cycle += &revert;
    Ok(UpdateCost {
        staging,
        install,
        confirm,
        revert,
        confirm_cycle,
        revert_cycle,
    })
}
