//! Power-cut sweep: cuts the power at many points of an update, then reboots
//! the board and checks which image it settles on.
//!
//! The same scenarios and cut points run on every [`Board`]. A cut point is
//! either "after N completed write or erase operations" (every N) or "after
//! B programmed or erased bytes" (every B that is a multiple of the byte
//! stride), so cuts land between operations and inside them, including torn
//! erases and torn write words.

use crate::boards::{Board, BoardError, BootOutcome, Image};

/// Boots after the cut, without any confirm: enough for an unconfirmed image
/// to be reverted and for the board to settle.
pub const RECOVERY_BOOTS: usize = 4;

/// An update scenario, run from a board that runs a confirmed old image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Stage the new image, boot (install), confirm, boot.
    UpdateConfirm,
    /// Stage the new image, boot (install), boot again without a confirm (revert).
    UpdateRevert,
}

impl Scenario {
    /// Both scenarios.
    pub const ALL: [Scenario; 2] = [Scenario::UpdateConfirm, Scenario::UpdateRevert];

    /// Scenario name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::UpdateConfirm => "update-and-confirm",
            Self::UpdateRevert => "update-and-revert",
        }
    }
}

/// Point of a scenario at which the power fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// After this many programmed or erased bytes; the operation in flight is torn.
    Bytes(u64),
    /// After this many completed write or erase operations; the next one does nothing.
    Ops(u64),
}

/// Result of a run with one cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The board settled on an allowed image.
    Recovered,
    /// A step failed although the power had not failed yet.
    FailedBeforeCut(String),
    /// The bootloader returned an error or panicked after power came back.
    BootFailed(String),
    /// The bootloader handed over to an active partition that contains neither
    /// image completely and stably.
    IncompleteImage,
    /// The board settled on the wrong image, or did not settle.
    WrongImage(String),
}

/// Counts of one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Bytes programmed or erased by the scenario without a cut.
    pub scenario_bytes: u64,
    /// Write and erase operations of the scenario without a cut.
    pub scenario_ops: u64,
    /// Runs: one per cut point, two with second cuts.
    pub cut_points: u64,
    /// Runs in which the second cut, during recovery, fired.
    pub second_cuts: u64,
    /// Runs where a step failed before the cut.
    pub failed_before_cut: u64,
    /// Runs where the bootloader failed after the cut.
    pub boot_failed: u64,
    /// Runs where the board booted an incomplete image.
    pub incomplete_image: u64,
    /// Runs where the board settled on the wrong image.
    pub wrong_image: u64,
    /// The first few failures, with their cut points, for the report.
    pub examples: Vec<String>,
}

impl SweepReport {
    /// Returns the runs that did not recover.
    pub fn failures(&self) -> u64 {
        self.failed_before_cut + self.boot_failed + self.incomplete_image + self.wrong_image
    }

    fn record(&mut self, cut: Cut, second: Option<u64>, outcome: RunOutcome) {
        self.cut_points += 1;
        let counter = match &outcome {
            RunOutcome::Recovered => return,
            RunOutcome::FailedBeforeCut(_) => &mut self.failed_before_cut,
            RunOutcome::BootFailed(_) => &mut self.boot_failed,
            RunOutcome::IncompleteImage => &mut self.incomplete_image,
            RunOutcome::WrongImage(_) => &mut self.wrong_image,
        };
        *counter += 1;
        if self.examples.len() < MAX_EXAMPLES {
            let example = match second {
                Some(bytes) => format!("{cut:?} then Bytes({bytes}) in recovery: {outcome:?}"),
                None => format!("{cut:?}: {outcome:?}"),
            };
            self.examples.push(example);
        }
    }
}

const MAX_EXAMPLES: usize = 3;

/// Image that must run once the board has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Old,
    New,
    Either,
}

/// Steps of the scenario that completed before the power failed.
#[derive(Debug, Default, Clone, Copy)]
struct Journal {
    confirm_started: bool,
    confirm_done: bool,
}

#[derive(Debug)]
enum Stop {
    PowerLost,
    Failed(BoardError),
}

fn app_step<B: Board>(board: &mut B, result: Result<(), BoardError>) -> Result<(), Stop> {
    match result {
        Ok(()) => Ok(()),
        Err(_) if board.rail().is_down() => Err(Stop::PowerLost),
        Err(error) => Err(Stop::Failed(error)),
    }
}

fn boot_step<B: Board>(board: &mut B) -> Result<(), Stop> {
    match board.boot() {
        BootOutcome::Booted => Ok(()),
        BootOutcome::PowerLost => Err(Stop::PowerLost),
        BootOutcome::Failed(error) => Err(Stop::Failed(error)),
    }
}

/// One scenario on one kind of board: the provisioned board and the images.
pub struct Sweep<B> {
    scenario: Scenario,
    base: B,
    old: Image,
    new: Image,
}

impl<B: Board> Sweep<B> {
    /// Provisions a board with a confirmed old image of `image_size` bytes.
    pub fn new(scenario: Scenario, strict: bool, image_size: usize) -> Result<Self, BoardError> {
        let factory = Image::random(10, image_size);
        let old = Image::random(11, image_size);
        let new = Image::random(12, image_size);
        let base = B::provisioned(strict, image_size, &factory, &old)?;
        Ok(Self {
            scenario,
            base,
            old,
            new,
        })
    }

    fn script(&self, board: &mut B, journal: &mut Journal) -> Result<(), Stop> {
        let staged = board.stage(&self.new);
        app_step(board, staged)?;
        boot_step(board)?;
        match self.scenario {
            Scenario::UpdateConfirm => {
                journal.confirm_started = true;
                let confirmed = board.confirm();
                app_step(board, confirmed)?;
                journal.confirm_done = true;
                boot_step(board)
            }
            Scenario::UpdateRevert => boot_step(board),
        }
    }

    fn expect(&self, journal: &Journal) -> Expect {
        match self.scenario {
            Scenario::UpdateConfirm if journal.confirm_done => Expect::New,
            Scenario::UpdateConfirm if journal.confirm_started => Expect::Either,
            _ => Expect::Old,
        }
    }

    /// Returns the bytes programmed or erased and the operations of the
    /// scenario without a cut, after checking that it ends on the right image.
    pub fn measure(&self) -> Result<(u64, u64), BoardError> {
        let mut board = self.base.snapshot();
        let mut journal = Journal::default();
        let (bytes, ops) = (board.rail().bytes_total(), board.rail().ops_total());
        match self.script(&mut board, &mut journal) {
            Ok(()) => {}
            Err(Stop::Failed(error)) => return Err(error),
            Err(Stop::PowerLost) => {
                return Err(BoardError::Unexpected("power lost without a cut".into()))
            }
        }
        let expected = match self.expect(&journal) {
            Expect::New => &self.new,
            Expect::Old | Expect::Either => &self.old,
        };
        if !board.active_contains(expected) {
            return Err(BoardError::Unexpected(format!(
                "{}: {} without a cut ended on the wrong image",
                B::NAME,
                self.scenario.name()
            )));
        }
        let rail = board.rail();
        Ok((rail.bytes_total() - bytes, rail.ops_total() - ops))
    }

    /// Runs the scenario with power failing at `cut`, then boots
    /// [`RECOVERY_BOOTS`] times and checks the images the board ran.
    pub fn run(&self, cut: Cut) -> RunOutcome {
        self.run_with(cut, None).0
    }

    /// Runs like [`run`](Self::run), with a second cut after `recovery_cut`
    /// programmed or erased bytes of the recovery boots, if given.
    ///
    /// Returns the outcome, the bytes programmed or erased during recovery,
    /// and whether the second cut fired.
    pub fn run_with(&self, cut: Cut, recovery_cut: Option<u64>) -> (RunOutcome, u64, bool) {
        let mut board = self.base.snapshot();
        match cut {
            Cut::Bytes(bytes) => board.rail().cut_after_bytes(bytes),
            Cut::Ops(ops) => board.rail().cut_after_ops(ops),
        }
        let mut journal = Journal::default();
        if let Err(Stop::Failed(error)) = self.script(&mut board, &mut journal) {
            return (RunOutcome::FailedBeforeCut(error.to_string()), 0, false);
        }
        board.rail().power_on();
        let recovery_start = board.rail().bytes_total();
        if let Some(bytes) = recovery_cut {
            board.rail().cut_after_bytes(bytes);
        }

        let mut images = Vec::with_capacity(RECOVERY_BOOTS);
        let mut second_fired = false;
        while images.len() < RECOVERY_BOOTS {
            match board.boot() {
                BootOutcome::Booted => {}
                BootOutcome::PowerLost if recovery_cut.is_some() && !second_fired => {
                    second_fired = true;
                    board.rail().power_on();
                    continue;
                }
                BootOutcome::PowerLost => {
                    return (
                        RunOutcome::BootFailed("power lost with no cut armed".into()),
                        0,
                        second_fired,
                    )
                }
                BootOutcome::Failed(error) => {
                    return (RunOutcome::BootFailed(error.to_string()), 0, second_fired)
                }
            }
            let image = if board.active_contains(&self.old) {
                Expect::Old
            } else if board.active_contains(&self.new) {
                Expect::New
            } else {
                return (RunOutcome::IncompleteImage, 0, second_fired);
            };
            images.push(image);
        }
        board.rail().disarm();
        let recovery_bytes = board.rail().bytes_total() - recovery_start;

        let last = images[RECOVERY_BOOTS - 1];
        let settled = images[RECOVERY_BOOTS - 2] == last;
        let expected = self.expect(&journal);
        if !settled || (expected != Expect::Either && expected != last) {
            let outcome = RunOutcome::WrongImage(format!(
                "booted {images:?}, expected {expected:?}, journal {journal:?}"
            ));
            return (outcome, recovery_bytes, second_fired);
        }
        (RunOutcome::Recovered, recovery_bytes, second_fired)
    }

    /// Runs every operation cut and every byte cut at a multiple of `byte_stride`.
    ///
    /// With `second_cut`, each cut point runs a second time with another cut
    /// at a pseudo-random byte of the recovery that the first run measured.
    pub fn sweep(&self, byte_stride: u64, second_cut: bool) -> Result<SweepReport, BoardError> {
        let (bytes, ops) = self.measure()?;
        let mut report = SweepReport {
            scenario_bytes: bytes,
            scenario_ops: ops,
            ..SweepReport::default()
        };
        let stride = byte_stride.max(1) as usize;
        let cuts = (0..ops)
            .map(Cut::Ops)
            .chain((0..bytes).step_by(stride).map(Cut::Bytes));
        for (index, cut) in cuts.enumerate() {
            let (outcome, recovery_bytes, _) = self.run_with(cut, None);
            report.record(cut, None, outcome);
            if second_cut {
                let second = sample(index as u64, recovery_bytes);
                let (outcome, _, fired) = self.run_with(cut, Some(second));
                report.second_cuts += u64::from(fired);
                report.record(cut, Some(second), outcome);
            }
        }
        Ok(report)
    }
}

/// Returns a deterministic pseudo-random value in `0..limit` (0 if `limit` is 0).
fn sample(seed: u64, limit: u64) -> u64 {
    let mixed = seed
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29);
    mixed.wrapping_mul(0xBF58_476D_1CE4_E5B9) % limit.max(1)
}
