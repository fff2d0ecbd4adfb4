//! Scenario tests that reproduce failures seen in other update clients, and
//! show that this engine does not repeat them.

mod common;

use common::*;
use syssync_device::{BootPhase, Event, FileStore};
use syssync_proto::message::JobOutcome;
use syssync_proto::{JobId, RevertReason, Version};

/// Returns an uplink filter that drops every job report (message 0x04).
fn drop_install_reports() -> LinkFilter {
    Box::new(|frame: &[u8]| {
        if frame[1] == 0x04 {
            LinkAction::Drop
        } else {
            LinkAction::Deliver
        }
    })
}

fn outcomes(world: &World, id: u32) -> Vec<JobOutcome> {
    world
        .server
        .reports
        .iter()
        .filter(|report| report.job == JobId(id))
        .map(|report| report.outcome)
        .collect()
}

#[test]
fn rollback_never_reported_as_completed() {
    // Proves that when the trial image fails its health check and the device
    // rolls back, the server hears "reverted", never gets a matching
    // inventory, and no confirm reaches the boot side.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release);
    world.auto_reset = true;
    assert!(world.run_until(2_000, |w| w.model().phase == BootPhase::Trial));
    let now = world.now;
    world.device_mut().report_unhealthy(now);
    world.drain_events();

    assert!(world.run_until(2_000, |w| w.job_finished()));
    let model = world.model();
    assert_eq!(model.running.sha256, sha256(&factory_image()));
    assert_eq!(model.last_revert, Some(RevertReason::APPLICATION_FAILURE));
    assert_eq!(model.confirms, 0);
    assert_eq!(world.server.confirms_sent, 0);
    assert_eq!(
        outcomes(&world, 1).last(),
        Some(&JobOutcome::Reverted(RevertReason::APPLICATION_FAILURE))
    );
}

#[test]
fn trial_limit_revert_reported() {
    // Proves that a trial image that never gets confirmed (the device resets
    // with no network) is reverted by the bootloader, and the engine reports
    // the revert with its reason, not an install.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release);
    assert!(world.run_until(2_000, |w| w.model().phase == BootPhase::Trial));
    world.network = false;
    for _ in 0..TRIAL_BOOTS {
        world.reset();
    }
    assert_eq!(world.model().phase, BootPhase::Idle);
    world.network = true;
    let now = world.now;
    world.device_mut().set_network(now, true);

    assert!(world.run_until(2_000, |w| w.job_finished()));
    assert_eq!(
        outcomes(&world, 1),
        vec![JobOutcome::Reverted(RevertReason::TRIAL_LIMIT)]
    );
    assert!(world.events.contains(&Event::Reverted {
        job: JobId(1),
        reason: RevertReason::TRIAL_LIMIT
    }));
    assert_eq!(world.model().confirms, 0);
}

#[test]
fn undelivered_report_never_activates_image() {
    // Proves that while the install report cannot be delivered the image
    // stays on trial (neither confirmed nor reverted by the engine), the
    // report is retried, and once delivered the update completes. The trial
    // timeout is off here; the next test covers it.
    let release = standard_release();
    let mut config = config();
    config.trial_timeout_s = 0;
    let mut world = World::with_config(config);
    world.server.assign(1, release.clone());
    world.uplink = Some(drop_install_reports());
    assert!(world.run_until(2_000, |w| w.model().phase == BootPhase::Trial));
    for _ in 0..200 {
        world.step();
    }
    let model = world.model();
    assert_eq!(model.phase, BootPhase::Trial);
    assert_eq!(model.confirms, 0);
    assert!(world.server.reports.is_empty());
    assert_eq!(world.server.confirms_sent, 0);

    world.uplink = None;
    assert!(
        world.run_until(2_000, |w| w.confirmed(1)),
        "{:?} {:?}",
        world.recent_events(),
        world.server.reports
    );
    assert_eq!(world.model().running.sha256, sha256(&release.files[0]));
    assert_eq!(outcomes(&world, 1), vec![JobOutcome::Installed]);
}

#[test]
fn trial_that_never_reaches_the_server_is_reverted() {
    // Proves that a new image which runs but cannot reach the server is given
    // up when the trial timeout passes, not before. The engine has the
    // bootloader revert it, the device resets into the previous image, and
    // the server later receives the reason.
    let release = standard_release();
    let mut config = config();
    config.trial_timeout_s = 600;
    let mut world = World::with_config(config);
    world.server.assign(1, release.clone());
    // The install report never arrives: the new image's network path is broken.
    world.uplink = Some(drop_install_reports());
    assert!(world.run_until(2_000, |w| w.model().phase == BootPhase::Trial));
    let trial_start = world.now;
    let resets = world.resets;

    assert!(world.run_until(2_000, |w| w.resets > resets));
    let model = world.model();
    assert_eq!(model.phase, BootPhase::Idle);
    assert_ne!(model.running.sha256, sha256(&release.files[0]));
    assert_eq!(model.confirms, 0);
    let reverted_at = world.now;
    assert!(
        reverted_at.0 >= trial_start.0 + 600_000,
        "reverted {} ms after the trial began",
        reverted_at.0 - trial_start.0
    );
    assert!(world.events.contains(&Event::Reverted {
        job: JobId(1),
        reason: RevertReason::TRIAL_TIMEOUT
    }));

    world.uplink = None;
    assert!(world.run_until(2_000, |w| !w.server.reports.is_empty()));
    assert_eq!(
        outcomes(&world, 1),
        vec![JobOutcome::Reverted(RevertReason::TRIAL_TIMEOUT)]
    );
}

#[test]
fn trial_timeout_retries_failed_report() {
    // Proves that a flash error while the engine records a timed-out trial
    // as failed does not leave the image on trial: the engine tries again
    // after the retry delay and the image is reverted.
    let release = standard_release();
    let mut config = config();
    config.trial_timeout_s = 600;
    let mut world = World::with_config(config);
    world.server.assign(1, release.clone());
    world.uplink = Some(drop_install_reports());
    assert!(world.run_until(2_000, |w| w.model().phase == BootPhase::Trial));
    world
        .device
        .as_ref()
        .unwrap()
        .boot()
        .model
        .borrow_mut()
        .failing_failure_reports = 2;
    let resets = world.resets;

    assert!(world.run_until(2_000, |w| w.resets > resets));
    let failures = world
        .events
        .iter()
        .filter(|event| **event == Event::StorageFailed)
        .count();
    assert_eq!(failures, 2);
    assert_eq!(world.model().phase, BootPhase::Idle);
    assert_ne!(world.model().running.sha256, sha256(&release.files[0]));
    assert!(world.events.contains(&Event::Reverted {
        job: JobId(1),
        reason: RevertReason::TRIAL_TIMEOUT
    }));
}

#[test]
fn trial_timeout_below_interval_rejected() {
    // Proves that a trial timeout that would give up before the first trial
    // check-in is rejected, and that 0 (wait forever) is accepted.
    let mut config = config();
    config.trial_timeout_s = config.trial_interval_s - 1;
    assert_eq!(
        config.validate(),
        Err(syssync_device::ConfigError::TrialTimeout(59))
    );
    config.trial_timeout_s = 0;
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn duplicate_trusted_key_id_rejected() {
    // Proves that two trusted keys with one id are rejected: a manifest
    // naming that id would only ever be checked against the first key.
    let first = trusted_key();
    let second = syssync_proto::TrustedKey {
        id: first.id,
        public_key: syssync_proto::manifest::public_key(&[0x22; 32]),
    };
    assert_eq!(
        syssync_device::Config::new(&[first, second]).err(),
        Some(syssync_device::ConfigError::DuplicateKeyId(first.id))
    );
    let other = syssync_proto::TrustedKey {
        id: first.id + 1,
        ..second
    };
    assert!(syssync_device::Config::new(&[first, other]).is_ok());
}

#[test]
fn older_version_update_not_failed() {
    // Proves that success is judged by digests, not by comparing versions: a
    // release with a lower version number (same security counter) and one
    // with the running version both install and confirm.
    let mut world = World::new();
    let lower = release(Version::new(0, 9, 0, 0), 1, &[app(content(4000, 5))], &[]);
    world.server.assign(1, lower.clone());
    assert!(
        world.run_until(2_000, |w| w.confirmed(1)),
        "{:?}",
        world.recent_events()
    );
    assert_eq!(world.model().running.sha256, sha256(&lower.files[0]));

    let same = release(Version::new(0, 9, 0, 0), 1, &[app(content(4000, 6))], &[]);
    world.server.assign(2, same.clone());
    assert!(
        world.run_until(2_000, |w| w.confirmed(2)),
        "{:?}",
        world.recent_events()
    );
    assert_eq!(world.model().running.sha256, sha256(&same.files[0]));
    assert!(!world
        .events
        .iter()
        .any(|event| matches!(event, Event::Failed { .. })));
    assert_eq!(outcomes(&world, 2), vec![JobOutcome::Installed]);
}

#[test]
fn aborted_job_never_confirmed() {
    // Proves that a job the server cancelled while the device was on trial is
    // never confirmed, even when a confirm for it arrives afterwards, and the
    // device goes back to its previous image.
    let release = standard_release();
    let mut world = World::new();
    world.auto_reset = false;
    world.server.assign(1, release);
    assert!(world.run_until(2_000, |w| w
        .events
        .iter()
        .any(|event| matches!(event, Event::ResetWanted { .. }))));
    world.reset();
    assert_eq!(world.model().phase, BootPhase::Trial);
    {
        let job = world.server.job.as_mut().unwrap();
        job.cancelled = true;
        job.confirm_despite_cancel = true;
    }
    assert!(world.run_until(2_000, |w| w.job_finished()));
    for _ in 0..20 {
        world.step();
    }
    assert_eq!(
        world.server.confirms_sent, 1,
        "the server did send a confirm"
    );
    assert_eq!(world.model().confirms, 0);
    assert_eq!(world.model().phase, BootPhase::RevertRequested);
    assert!(world.events.contains(&Event::Cancelled { job: JobId(1) }));
    assert!(!world.confirmed(1));

    world.reset();
    assert_eq!(world.model().running.sha256, sha256(&factory_image()));
    assert_eq!(
        outcomes(&world, 1),
        vec![JobOutcome::Installed, JobOutcome::Cancelled]
    );
}

#[test]
fn cancel_mid_download_acknowledged() {
    // Proves that a cancel in the middle of a download discards the staged
    // data, that the acknowledgement is retried until delivered, and that the
    // device then takes the next job.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release);
    assert!(world.run_until(2_000, |w| w.server.chunk_requests.len() == 24));
    world.server.job.as_mut().unwrap().cancelled = true;
    let mut dropped = 0;
    world.uplink = Some(Box::new(move |frame: &[u8]| {
        if frame[1] == 0x04 && dropped < 3 {
            dropped += 1;
            return LinkAction::Drop;
        }
        LinkAction::Deliver
    }));
    assert!(
        world.run_until(2_000, |w| w.job_finished()),
        "{:?}",
        world.recent_events()
    );
    assert!(world.events.contains(&Event::Cancelled { job: JobId(1) }));
    assert_eq!(outcomes(&world, 1), vec![JobOutcome::Cancelled]);
    assert_eq!(world.model().phase, BootPhase::Idle);
    assert_eq!(world.model().staged, None);
    let store = world.device_mut().store();
    assert_eq!(store.find_pending("config.json").unwrap(), None);
    assert_eq!(store.find_pending("ca.pem").unwrap(), None);
    assert_eq!(store.find("config.json").unwrap(), None);

    let next = release_for(
        TARGET,
        Version::new(1, 2, 0, 0),
        2,
        u64::MAX,
        &[plain("config.json", content(900, 8))],
        &[],
        &RELEASE_SECRET,
    );
    world.uplink = None;
    world.server.assign(2, next.clone());
    assert!(world.run_until(2_000, |w| w.job_finished()));
    assert_eq!(
        world.installed_file("config.json"),
        Some(next.files[0].clone())
    );
}

#[test]
fn cancel_after_install_request_reverts() {
    // Proves that a job cancelled after its install was requested, on a boot
    // side that cannot withdraw the request, is reverted after the reset
    // instead of running unconfirmed on trial.
    let mut model = initial_model();
    model.refuse_cancel_install = true;
    let mut world = World::with_model(config(), model);
    world.auto_reset = false;
    world.server.assign(1, standard_release());
    assert!(world.run_until(2_000, |w| w.model().phase == BootPhase::InstallRequested));
    world.server.job.as_mut().unwrap().cancelled = true;
    assert!(
        world.run_until(5_000, |w| w.job_finished()),
        "{:?}",
        world.recent_events()
    );
    assert_eq!(outcomes(&world, 1), vec![JobOutcome::Cancelled]);
    assert_eq!(world.model().phase, BootPhase::InstallRequested);

    world.auto_reset = true;
    world.reset();
    world.drain_events();
    assert_eq!(world.model().phase, BootPhase::Idle);
    assert_eq!(world.model().running.sha256, sha256(&factory_image()));
    assert_eq!(world.model().confirms, 0);
    assert_eq!(world.resets, 2);
}
