//! The pure decision core: state record + event → next action.
//!
//! Nothing here touches flash. The bootloader driver ([`crate::BootSide`])
//! feeds [`Event`]s and carries out the returned [`Action`]s, and the
//! application driver ([`crate::AppSide`]) applies the `app_*` transitions to
//! the loaded record in place. Tests can drive [`decide`] directly.

use crate::descriptor::{ImageDescriptor, TargetType, Version};
use crate::record::{Phase, Rejection, RevertReason, StateRecord, Writer};

/// Settings of the decision core, taken from [`crate::Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Policy {
    /// Trial boots an unconfirmed image gets before the bootloader reverts it.
    pub trial_boots: u8,
    /// Target type this device runs.
    pub target_type: TargetType,
    /// Largest image that fits the active, staging and recovery partitions.
    pub max_image_size: u32,
    /// Size of the active partition, backed up whole when the running image is unknown.
    pub active_size: u32,
}

/// Input to [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// The state record was just loaded after a reset.
    PowerOn,
    /// The record returned in the last [`Action::WriteRecord`] is on flash.
    RecordWritten,
    /// Result of [`Action::VerifyStaged`].
    StagedChecked(Result<(), Rejection>),
    /// Result of [`Action::BackupActive`]: the SHA-256 of the verified copy, or
    /// `None` if the copy did not verify.
    BackupDone(Option<[u8; 32]>),
    /// Result of [`Action::InstallStaged`]: whether the active partition now
    /// matches the staged image's SHA-256.
    InstallChecked(bool),
    /// Result of [`Action::CheckRecovery`].
    RecoveryChecked(bool),
    /// Result of [`Action::CheckActive`].
    ActiveChecked(bool),
    /// Result of [`Action::RevertFromRecovery`]: whether the active partition
    /// now matches the recovery image's SHA-256.
    RevertChecked(bool),
}

/// Output of [`decide`]: what the bootloader does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action {
    /// Append this record to the state log, then feed [`Event::RecordWritten`].
    WriteRecord(StateRecord),
    /// Check the staged image (`spare`) against size, target type, security
    /// counter, SHA-256 and, with the `authentication` feature, its evidence.
    VerifyStaged,
    /// Copy the active image (`active`, or the whole partition if unknown) into
    /// recovery and hash the copy.
    BackupActive,
    /// Copy the staged image into the active partition and verify it against
    /// `active`.
    InstallStaged,
    /// Hash the recovery partition and compare it with `spare`.
    CheckRecovery,
    /// Hash the active partition and compare it with `active`.
    CheckActive,
    /// Copy the recovery image into the active partition and verify it against `spare`.
    RevertFromRecovery,
    /// Start the active image.
    BootActive,
    /// Stop: no verified image can be booted.
    Halt(Halt),
}

/// Reason the bootloader cannot boot any image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Halt {
    /// The revert copy did not verify, so the active partition contains no valid image.
    RevertFailed,
    /// The recovery image is invalid and the active image no longer verifies.
    NoValidImage,
}

/// Returns the next action for `state` after `event`.
///
/// Every phase moves forward or ends in [`Action::BootActive`] or
/// [`Action::Halt`] after a bounded number of steps: no event sequence leads
/// back to an earlier copy without a new record from the application.
pub fn decide(state: &StateRecord, event: &Event, policy: &Policy) -> Action {
    // Every record the bootloader writes starts as a copy of the current one
    // with the bootloader as writer, and each arm changes only what it must.
    let mut next = *state;
    next.writer = Writer::Bootloader;
    match *event {
        // The record may come from a torn write whose unstable bits read as
        // valid now and as invalid later. Rewriting it unchanged fixes how it
        // is read from now on, before anything acts on it.
        Event::PowerOn if needs_seal(state) => {}
        Event::PowerOn | Event::RecordWritten => match state.phase {
            Phase::Idle | Phase::Staging => return Action::BootActive,
            Phase::InstallRequested => return Action::VerifyStaged,
            Phase::Backup => return Action::BackupActive,
            Phase::Install => return Action::InstallStaged,
            // Trial boots are counted at power-on only.
            Phase::Trial if *event == Event::RecordWritten => return Action::BootActive,
            Phase::Trial if state.trial_boots >= policy.trial_boots => {
                start_revert(&mut next, RevertReason::TrialLimit)
            }
            Phase::Trial => next.trial_boots += 1,
            Phase::Revert => return Action::CheckRecovery,
        },
        Event::StagedChecked(Ok(())) => {
            next.phase = Phase::Backup;
            next.revert_reason = None;
            next.rejection = None;
        }
        Event::StagedChecked(Err(rejection)) => abandon(&mut next, rejection),
        Event::BackupDone(Some(digest)) => {
            let old = match state.active {
                Some(old) => ImageDescriptor {
                    sha256: digest,
                    ..old
                },
                None => ImageDescriptor {
                    size: policy.active_size,
                    sha256: digest,
                    target_type: policy.target_type,
                    version: Version::default(),
                    security_counter: 0,
                },
            };
            next.phase = Phase::Install;
            next.active = state.spare;
            next.spare = Some(old);
        }
        Event::BackupDone(None) => abandon(&mut next, Rejection::BackupFailed),
        Event::InstallChecked(true) => {
            next.phase = Phase::Trial;
            next.trial_boots = 1;
        }
        Event::InstallChecked(false) => start_revert(&mut next, RevertReason::InstallVerifyFailed),
        Event::RecoveryChecked(true) => return Action::RevertFromRecovery,
        Event::RecoveryChecked(false) => return Action::CheckActive,
        Event::ActiveChecked(true) => {
            next.phase = Phase::Idle;
            next.trial_boots = 0;
            next.rejection = Some(Rejection::RecoveryInvalid);
        }
        Event::ActiveChecked(false) => return Action::Halt(Halt::NoValidImage),
        Event::RevertChecked(true) => {
            next.phase = Phase::Idle;
            next.trial_boots = 0;
            next.active = state.spare;
        }
        Event::RevertChecked(false) => return Action::Halt(Halt::RevertFailed),
    }
    Action::WriteRecord(next)
}

/// Returns whether the record must be rewritten before it is acted on at power-on.
///
/// This holds for every application record and every record of a phase that
/// overwrites an image. A copy must never start from a reading that could
/// change after a reset.
fn needs_seal(state: &StateRecord) -> bool {
    state.writer == Writer::Application
        || matches!(state.phase, Phase::Backup | Phase::Install | Phase::Revert)
}

fn start_revert(next: &mut StateRecord, reason: RevertReason) {
    next.phase = Phase::Revert;
    next.revert_reason = Some(reason);
}

/// Gives up the staged image before the active partition was touched.
fn abandon(next: &mut StateRecord, rejection: Rejection) {
    next.phase = Phase::Idle;
    next.trial_boots = 0;
    next.rejection = Some(rejection);
    next.spare = None;
}

/// Checks the fields of a staged descriptor that need no flash access.
pub fn check_descriptor(
    descriptor: &ImageDescriptor,
    policy: &Policy,
    security_floor: u32,
) -> Result<(), Rejection> {
    if descriptor.size == 0 || descriptor.size > policy.max_image_size {
        return Err(Rejection::Size);
    }
    if descriptor.target_type != policy.target_type {
        return Err(Rejection::TargetType);
    }
    if descriptor.security_counter < security_floor {
        return Err(Rejection::SecurityCounter);
    }
    Ok(())
}

/// Error returned by an application-side request that the current phase does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestError {
    /// The running image is on trial. Confirm it or let it revert first,
    /// because installing another image would overwrite its recovery copy.
    ImageOnTrial,
    /// The bootloader has an update in progress (phase `InstallRequested`,
    /// `Backup`, `Install` or `Revert`); reboot to let it finish.
    UpdateInProgress,
    /// No image is being staged: call `begin_staging` first.
    NothingStaged,
    /// The running image is not on trial.
    NotOnTrial,
    /// The descriptor was rejected for this device.
    InvalidDescriptor(Rejection),
}

/// Returns the record that starts staging `descriptor`.
pub fn app_begin_staging(
    state: &StateRecord,
    descriptor: &ImageDescriptor,
    policy: &Policy,
) -> Result<StateRecord, RequestError> {
    let mut next = *state;
    begin_staging(&mut next, descriptor, policy)?;
    Ok(next)
}

/// Returns the record that requests installation of the staged image.
pub fn app_request_install(state: &StateRecord) -> Result<StateRecord, RequestError> {
    let mut next = *state;
    request_install(&mut next)?;
    Ok(next)
}

/// Returns the record that confirms the trial image, or `None` if the image
/// is already confirmed.
///
/// Confirming raises the security floor to the image's security counter.
pub fn app_confirm(state: &StateRecord) -> Result<Option<StateRecord>, RequestError> {
    let mut next = *state;
    Ok(confirm(&mut next)?.then_some(next))
}

/// Returns the record that makes the next boot revert the trial image.
pub fn app_report_failure(state: &StateRecord) -> Result<StateRecord, RequestError> {
    let mut next = *state;
    report_failure(&mut next)?;
    Ok(next)
}

// The transitions below change the record in place, so the application
// driver applies them to the loaded record without copying it. Each returns
// whether the record changed.

pub(crate) fn begin_staging(
    record: &mut StateRecord,
    descriptor: &ImageDescriptor,
    policy: &Policy,
) -> Result<bool, RequestError> {
    match record.phase {
        Phase::Idle | Phase::Staging => {}
        Phase::Trial => return Err(RequestError::ImageOnTrial),
        _ => return Err(RequestError::UpdateInProgress),
    }
    check_descriptor(descriptor, policy, record.security_floor)
        .map_err(RequestError::InvalidDescriptor)?;
    record.writer = Writer::Application;
    record.phase = Phase::Staging;
    record.trial_boots = 0;
    record.rejection = None;
    record.spare = Some(*descriptor);
    Ok(true)
}

pub(crate) fn request_install(record: &mut StateRecord) -> Result<bool, RequestError> {
    match record.phase {
        Phase::Staging => {
            record.writer = Writer::Application;
            record.phase = Phase::InstallRequested;
            Ok(true)
        }
        Phase::InstallRequested => Ok(false),
        Phase::Trial => Err(RequestError::ImageOnTrial),
        Phase::Idle => Err(RequestError::NothingStaged),
        _ => Err(RequestError::UpdateInProgress),
    }
}

pub(crate) fn confirm(record: &mut StateRecord) -> Result<bool, RequestError> {
    match record.phase {
        Phase::Trial => {
            let counter = record.active.map_or(0, |image| image.security_counter);
            record.writer = Writer::Application;
            record.phase = Phase::Idle;
            record.trial_boots = 0;
            record.revert_reason = None;
            record.rejection = None;
            record.security_floor = record.security_floor.max(counter);
            Ok(true)
        }
        Phase::Idle | Phase::Staging => Ok(false),
        _ => Err(RequestError::NotOnTrial),
    }
}

pub(crate) fn report_failure(record: &mut StateRecord) -> Result<bool, RequestError> {
    match record.phase {
        Phase::Trial => {
            record.writer = Writer::Application;
            record.phase = Phase::Revert;
            record.revert_reason = Some(RevertReason::ApplicationReportedFailure);
            Ok(true)
        }
        _ => Err(RequestError::NotOnTrial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn policy() -> Policy {
        Policy {
            trial_boots: 3,
            target_type: TargetType::new("board").unwrap(),
            max_image_size: 4096,
            active_size: 4096,
        }
    }

    fn image(tag: u8) -> ImageDescriptor {
        ImageDescriptor {
            size: 1000,
            sha256: [tag; 32],
            target_type: TargetType::new("board").unwrap(),
            version: Version::new(1, tag as u16, 0, 0),
            security_counter: tag as u32,
        }
    }

    /// Runs the core with every check succeeding until it boots or halts,
    /// returning the final record and the actions taken.
    fn run(mut state: StateRecord, results_ok: bool) -> (StateRecord, Vec<Action>) {
        let policy = policy();
        let mut event = Event::PowerOn;
        let mut actions = Vec::new();
        for _ in 0..32 {
            let action = decide(&state, &event, &policy);
            actions.push(action);
            event = match action {
                Action::WriteRecord(record) => {
                    state = record;
                    Event::RecordWritten
                }
                Action::VerifyStaged => Event::StagedChecked(Ok(())),
                Action::BackupActive => Event::BackupDone(Some([9; 32])),
                Action::InstallStaged => Event::InstallChecked(results_ok),
                Action::CheckRecovery => Event::RecoveryChecked(results_ok),
                Action::CheckActive => Event::ActiveChecked(results_ok),
                Action::RevertFromRecovery => Event::RevertChecked(results_ok),
                Action::BootActive | Action::Halt(_) => return (state, actions),
            };
        }
        panic!("core did not reach a boot or halt in 32 steps: {actions:?}");
    }

    fn idle_with(active: ImageDescriptor) -> StateRecord {
        StateRecord {
            active: Some(active),
            ..StateRecord::safe()
        }
    }

    #[test]
    fn install_then_trial_then_revert() {
        // Proves the full path: request → backup → install → 3 trial boots → revert to the old image.
        let policy = policy();
        let staged = app_begin_staging(&idle_with(image(1)), &image(2), &policy).unwrap();
        let requested = app_request_install(&staged).unwrap();

        let (state, _) = run(requested, true);
        assert_eq!(state.phase, Phase::Trial);
        assert_eq!(state.active, Some(image(2)));
        assert_eq!(state.spare.map(|s| s.sha256), Some([9; 32]));
        assert_eq!(state.trial_boots, 1);

        let (state, _) = run(state, true);
        let (state, _) = run(state, true);
        assert_eq!(state.trial_boots, 3);
        let (state, _) = run(state, true);
        assert_eq!(state.phase, Phase::Idle);
        assert_eq!(state.revert_reason, Some(RevertReason::TrialLimit));
        assert_eq!(state.active.map(|s| s.version), Some(image(1).version));
    }

    #[test]
    fn confirmed_image_never_reverts() {
        // Proves that after confirm every later boot boots the active image with no record write.
        let trial = StateRecord {
            phase: Phase::Trial,
            trial_boots: 3,
            active: Some(image(2)),
            spare: Some(image(1)),
            ..StateRecord::safe()
        };
        let confirmed = app_confirm(&trial).unwrap().unwrap();
        assert_eq!(confirmed.security_floor, 2);
        let (sealed, actions) = run(confirmed, true);
        assert_eq!(sealed.phase, Phase::Idle);
        assert_eq!(actions.len(), 2);
        for _ in 0..5 {
            let (state, actions) = run(sealed, true);
            assert_eq!(state, sealed);
            assert_eq!(actions, vec![Action::BootActive]);
        }
    }

    #[test]
    fn staging_rejected_on_trial() {
        // Proves that staging is refused while the running image is on trial.
        let trial = StateRecord {
            phase: Phase::Trial,
            ..idle_with(image(1))
        };
        assert_eq!(
            app_begin_staging(&trial, &image(2), &policy()),
            Err(RequestError::ImageOnTrial)
        );
    }

    #[test]
    fn rejected_descriptors() {
        // Proves that size, target type and security counter are checked before anything else.
        let policy = policy();
        let idle = StateRecord {
            security_floor: 5,
            ..idle_with(image(1))
        };
        let mut big = image(6);
        big.size = 4097;
        let mut other_target = image(6);
        other_target.target_type = TargetType::new("other").unwrap();
        let cases = [
            (big, Rejection::Size),
            (other_target, Rejection::TargetType),
            (image(4), Rejection::SecurityCounter),
        ];
        for (descriptor, rejection) in cases {
            assert_eq!(
                app_begin_staging(&idle, &descriptor, &policy),
                Err(RequestError::InvalidDescriptor(rejection))
            );
        }
    }

    #[test]
    fn failed_recovery_keeps_trial_image() {
        // Proves that a revert with an invalid recovery image keeps a verified trial image instead of erasing it.
        let revert = StateRecord {
            phase: Phase::Revert,
            writer: Writer::Bootloader,
            active: Some(image(2)),
            spare: Some(image(1)),
            ..StateRecord::safe()
        };
        let policy = policy();
        assert_eq!(
            decide(&revert, &Event::PowerOn, &policy),
            Action::WriteRecord(revert)
        );
        assert_eq!(
            decide(&revert, &Event::RecordWritten, &policy),
            Action::CheckRecovery
        );
        assert_eq!(
            decide(&revert, &Event::RecoveryChecked(false), &policy),
            Action::CheckActive
        );
        let Action::WriteRecord(kept) = decide(&revert, &Event::ActiveChecked(true), &policy)
        else {
            panic!("expected a record write");
        };
        assert_eq!(kept.phase, Phase::Idle);
        assert_eq!(kept.active, Some(image(2)));
        assert_eq!(
            decide(&revert, &Event::ActiveChecked(false), &policy),
            Action::Halt(Halt::NoValidImage)
        );
    }

    #[test]
    fn application_record_sealed_at_power_on() {
        // Proves that the first boot after an application write rewrites the record as the bootloader's.
        let requested = StateRecord {
            writer: Writer::Application,
            phase: Phase::InstallRequested,
            ..StateRecord::safe()
        };
        let action = decide(&requested, &Event::PowerOn, &policy());
        assert_eq!(
            action,
            Action::WriteRecord(StateRecord {
                writer: Writer::Bootloader,
                ..requested
            })
        );
    }

    #[test]
    fn every_state_terminates() {
        // Proves that from any phase, writer and trial count, with checks passing or failing, the core boots or halts within 16 steps.
        let phases = [
            Phase::Idle,
            Phase::Staging,
            Phase::InstallRequested,
            Phase::Backup,
            Phase::Install,
            Phase::Trial,
            Phase::Revert,
        ];
        for phase in phases {
            for writer in [Writer::Application, Writer::Bootloader] {
                for trial_boots in [0, 1, 3, 200] {
                    for results_ok in [true, false] {
                        let state = StateRecord {
                            phase,
                            writer,
                            trial_boots,
                            active: Some(image(2)),
                            spare: Some(image(1)),
                            ..StateRecord::safe()
                        };
                        let (_, actions) = run(state, results_ok);
                        assert!(
                            actions.len() <= 16,
                            "{phase:?} {writer:?} {trial_boots}: {actions:?}"
                        );
                    }
                }
            }
        }
    }
}
