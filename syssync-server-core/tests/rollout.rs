//! Scenarios of rollouts over time: scheduled start, phases, maintenance
//! windows, groups, failure threshold, pause, cancel and completion.

mod common;

use std::collections::BTreeSet;

use common::*;
use syssync_proto::message::JobOutcome;
use syssync_proto::{AccountId, DeviceId, FailureCode, JobId};
use syssync_server_core::{
    Command, FailureThreshold, GroupFilter, GroupId, GroupKind, JobStatus, JobTarget,
    MaintenanceSchedule, MaintenanceWindow, NotificationKind, NotificationPrefs, Phase, ReleaseId,
    Server, Weekday,
};

fn two_phases(first_share: u16, delay_s: u64, success_permille: u16) -> Vec<Phase> {
    vec![
        Phase {
            share_permille: first_share,
            delay_s,
            success_permille: 0,
        },
        Phase {
            share_permille: 1000,
            delay_s,
            success_permille,
        },
    ]
}

/// Checks in every device without a job and takes offers; returns who got one.
fn offer_round(server: &mut Server, devices: &mut [TestDevice], now: u64) -> Vec<usize> {
    let mut offered = Vec::new();
    for (index, device) in devices.iter_mut().enumerate() {
        if device.job.is_some() {
            continue;
        }
        let (reply, _) = device.check_in(server, now);
        if let Reply::Offer { .. } = reply {
            device.accept(&reply);
            offered.push(index);
        }
    }
    offered
}

#[test]
fn phases_open_after_delay_and_success() {
    // Proves the first phase admits at most its share, and the next phase opens
    // only after its delay and once the admitted devices succeeded.
    let (mut server, account, mut devices, release) = fleet(100);
    let mut spec = fleet_job(release, T0);
    spec.phases = two_phases(100, 3600, 1000);
    let job = create_job(&mut server, T0, account, spec);

    let first = offer_round(&mut server, &mut devices, T0 + 10);
    assert!(!first.is_empty());
    assert!(first.len() <= 10, "first phase admitted {}", first.len());
    for index in &first {
        assert!(syssync_server_core::schedule::rollout_rank(devices[*index].id, job) < 100);
    }
    let again = offer_round(&mut server, &mut devices, T0 + 20);
    assert!(again.is_empty(), "no more admissions in phase 1");

    for index in &first {
        devices[*index].finish_update(&mut server, T0 + 100);
    }
    assert!(
        offer_round(&mut server, &mut devices, T0 + 3599).is_empty(),
        "delay not over"
    );
    let second = offer_round(&mut server, &mut devices, T0 + 3600);
    assert_eq!(second.len(), 100 - first.len());
    let progress = server.job_progress(account, job).expect("progress");
    assert_eq!(progress.phases[0].admitted, first.len() as u32);
    assert_eq!(progress.phases[0].succeeded, first.len() as u32);
    assert_eq!(progress.phases[1].opened_at, Some(T0 + 3600));
    assert_eq!(progress.phases[1].admitted, second.len() as u32);
}

#[test]
fn unmet_success_ratio_holds_next_phase() {
    // Proves a failing first phase keeps the next one closed past its delay.
    let (mut server, account, mut devices, release) = fleet(100);
    let mut spec = fleet_job(release, T0);
    spec.phases = two_phases(100, 600, 1000);
    spec.max_attempts = 1;
    let job = create_job(&mut server, T0, account, spec);
    let first = offer_round(&mut server, &mut devices, T0);
    assert!(!first.is_empty());
    let failing = first[0];
    devices[failing].report(
        &mut server,
        T0 + 1,
        job,
        JobOutcome::Failed(FailureCode::NO_SPACE),
    );
    devices[failing].job = None;
    for index in &first[1..] {
        devices[*index].finish_update(&mut server, T0 + 2);
    }
    let second = offer_round(&mut server, &mut devices, T0 + 7200);
    assert!(
        second.is_empty(),
        "one failure keeps a 100 % success gate closed"
    );
    let progress = server.job_progress(account, job).expect("progress");
    assert_eq!(progress.phases[1].opened_at, None);
    assert_eq!(progress.counters.failed, 1);
}

#[test]
fn scheduled_start_waits_and_notifies() {
    // Proves a job offers nothing before its start and raises JobStarted at it.
    let (mut server, account, mut devices, release) = fleet(1);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0 + 1000));
    let (reply, _) = devices[0].check_in(&mut server, T0 + 999);
    assert!(matches!(reply, Reply::Idle(_)));
    let notes = server.tick(T0 + 1000, account);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NotificationKind::JobStarted);
    assert_eq!(notes[0].job, Some(job));
    assert!(notes[0].wanted);
    let (reply, _) = devices[0].check_in(&mut server, T0 + 1001);
    assert_eq!(devices[0].accept(&reply), job);
}

#[test]
fn maintenance_window_gates_offers() {
    // Proves offers happen only inside the weekly window (in local time), with
    // a reset window that closes with it, and that a device outside is told
    // to come back when the window opens.
    let (mut server, account, mut devices, release) = fleet(1);
    let mut spec = fleet_job(release, T0);
    spec.schedule = Some(MaintenanceSchedule {
        utc_offset_minutes: 60,
        windows: vec![MaintenanceWindow {
            day: Weekday::Tuesday,
            start_minute: 3 * 60,
            duration_minutes: 120,
        }],
    });
    let job = create_job(&mut server, T0, account, spec);
    let device = &mut devices[0];
    // Monday 00:00 UTC: the window is more than a day away.
    let (reply, _) = device.check_in(&mut server, T0);
    assert_eq!(reply, Reply::Idle(900));
    // Tuesday 01:50 UTC is 02:50 local: ten minutes to the window.
    let tuesday = T0 + 86_400;
    let (reply, _) = device.check_in(&mut server, tuesday + 110 * 60);
    assert_eq!(reply, Reply::Idle(600));
    // Tuesday 02:30 UTC is 03:30 local: inside, 90 minutes left.
    let (reply, _) = device.check_in(&mut server, tuesday + 150 * 60);
    match &reply {
        Reply::Offer {
            job: offered,
            reset_window,
            ..
        } => {
            assert_eq!(*offered, job);
            assert_eq!(*reset_window, Some((0, 90 * 60)));
        }
        other => panic!("expected an offer, got {other:?}"),
    }
}

#[test]
fn failure_threshold_pauses_and_resume_continues() {
    // Proves the job pauses itself past its failure threshold, offers and
    // confirms nothing while paused, and continues after a resume.
    let (mut server, account, mut devices, release) = fleet(6);
    let mut spec = fleet_job(release, T0);
    spec.failure_threshold = Some(FailureThreshold {
        max_failed_permille: 300,
        min_sample: 4,
    });
    let job = create_job(&mut server, T0, account, spec);
    for device in devices.iter_mut().take(5) {
        let (reply, _) = device.check_in(&mut server, T0);
        device.accept(&reply);
    }
    // Device 4 gets to trial before the pause.
    devices[4].download(&mut server, T0 + 1);
    devices[4].install();
    let mut paused_notes = 0;
    for device in devices.iter_mut().take(2) {
        let (_, notes) = device.report(
            &mut server,
            T0 + 2,
            job,
            JobOutcome::Failed(FailureCode::FLASH_WRITE),
        );
        paused_notes += notes
            .iter()
            .filter(|n| n.kind == NotificationKind::RolloutPaused)
            .count();
        device.job = None;
    }
    assert_eq!(paused_notes, 1, "2 of 5 admitted failed: above 30 %");
    let progress = server.job_progress(account, job).expect("progress");
    assert_eq!(progress.status, JobStatus::Paused);

    let (reply, _) = devices[5].check_in(&mut server, T0 + 3);
    assert!(
        matches!(reply, Reply::Idle(_)),
        "paused job offers nothing: {reply:?}"
    );
    let (reply, _) = devices[0].check_in(&mut server, T0 + 3);
    assert!(
        matches!(reply, Reply::Idle(_)),
        "no retry while paused: {reply:?}"
    );
    let (reply, _) = devices[4].report(&mut server, T0 + 4, job, JobOutcome::Installed);
    assert_eq!(reply, Reply::InventoryRequest);
    let (reply, _) = devices[4].report_inventory(&mut server, T0 + 5);
    assert!(
        matches!(reply, Reply::Idle(_)),
        "paused job never confirms: {reply:?}"
    );
    let (reply, _) = devices[4].check_in(&mut server, T0 + 6);
    assert!(
        matches!(reply, Reply::Idle(_)),
        "trial check-in not confirmed: {reply:?}"
    );

    server
        .execute(T0 + 10, account, Command::ResumeJob { job })
        .expect("resume");
    let (reply, _) = devices[4].check_in(&mut server, T0 + 11);
    assert_eq!(reply, Reply::Confirm(job));
    let (reply, _) = devices[5].check_in(&mut server, T0 + 11);
    assert_eq!(devices[5].accept(&reply), job);
}

#[test]
fn pause_charges_no_attempt_for_dropped_downloads() {
    // Proves that a device that gives up its download because the job paused
    // (its chunk requests are refused) gets no failed attempt and no failure
    // notice, and is offered the job again after a resume.
    let (mut server, account, mut devices, release) = fleet(6);
    let mut spec = fleet_job(release, T0);
    spec.failure_threshold = Some(FailureThreshold {
        max_failed_permille: 300,
        min_sample: 4,
    });
    let job = create_job(&mut server, T0, account, spec);
    for device in devices.iter_mut().take(5) {
        let (reply, _) = device.check_in(&mut server, T0);
        device.accept(&reply);
    }
    for device in devices.iter_mut().take(2) {
        device.report(
            &mut server,
            T0 + 2,
            job,
            JobOutcome::Failed(FailureCode::FLASH_WRITE),
        );
        device.job = None;
    }
    let before = server.job_progress(account, job).expect("progress");
    assert_eq!(before.status, JobStatus::Paused);

    let (reply, notes) = devices[2].report(&mut server, T0 + 3, job, JobOutcome::Cancelled);
    devices[2].job = None;
    assert!(matches!(reply, Reply::Idle(_)), "{reply:?}");
    assert!(
        notes
            .iter()
            .all(|n| n.kind != NotificationKind::DeviceFailed),
        "{notes:?}"
    );
    let after = server.job_progress(account, job).expect("progress");
    assert_eq!(after.counters, before.counters);

    server
        .execute(T0 + 10, account, Command::ResumeJob { job })
        .expect("resume");
    let (reply, _) = devices[2].check_in(&mut server, T0 + 11);
    assert_eq!(devices[2].accept(&reply), job);
}

#[test]
fn cancelled_job_cancels_devices_and_offers_nothing() {
    // Proves a cancel reaches devices on the job and stops new offers.
    let (mut server, account, mut devices, release) = fleet(2);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let (reply, _) = devices[0].check_in(&mut server, T0);
    devices[0].accept(&reply);
    devices[0].download(&mut server, T0);
    server
        .execute(T0 + 5, account, Command::CancelJob { job })
        .expect("cancel");
    let (reply, _) = devices[0].check_in(&mut server, T0 + 6);
    assert_eq!(reply, Reply::Cancel(job));
    let (reply, notes) = devices[0].report(&mut server, T0 + 7, job, JobOutcome::Cancelled);
    assert!(matches!(reply, Reply::Idle(_)));
    assert!(notes.is_empty(), "a cancel is no failure");
    devices[0].job = None;
    let (reply, _) = devices[0].check_in(&mut server, T0 + 8);
    assert!(matches!(reply, Reply::Idle(_)));
    let (reply, _) = devices[1].check_in(&mut server, T0 + 8);
    assert!(matches!(reply, Reply::Idle(_)));
    assert!(server
        .job_failures(account, job)
        .expect("failures")
        .is_empty());
}

/// Creates a static group "pilot" holding `device` and a job of `release`
/// for it at `T0`, and returns both.
fn pilot_group_job(
    server: &mut Server,
    account: AccountId,
    device: DeviceId,
    release: ReleaseId,
) -> (GroupId, JobId) {
    let members: BTreeSet<_> = [device].into_iter().collect();
    let group = match server
        .execute(
            T0,
            account,
            Command::CreateGroup {
                name: "pilot".into(),
                kind: GroupKind::Static(members),
            },
        )
        .expect("group")
        .created
    {
        syssync_server_core::Created::Group(id) => id,
        other => panic!("expected a group, got {other:?}"),
    };
    let job = create_job(
        server,
        T0,
        account,
        syssync_server_core::JobSpec::new(release, JobTarget::Group(group), T0),
    );
    (group, job)
}

/// Adds `device` to the static group `group` at `now`.
fn add_to_group(
    server: &mut Server,
    now: u64,
    account: AccountId,
    group: GroupId,
    device: DeviceId,
) {
    server
        .execute(now, account, Command::AddToGroup { group, device })
        .expect("add to group");
}

#[test]
fn static_group_job_reaches_late_members() {
    // Proves a group job offers only to members, and to a device added after
    // the job started.
    let (mut server, account, mut devices, release) = fleet(3);
    let (group, job) = pilot_group_job(&mut server, account, devices[0].id, release);
    assert_eq!(
        server
            .job_progress(account, job)
            .expect("progress")
            .counters
            .targets,
        1
    );
    let (reply, _) = devices[0].check_in(&mut server, T0);
    assert_eq!(devices[0].accept(&reply), job);
    let (reply, _) = devices[1].check_in(&mut server, T0);
    assert!(matches!(reply, Reply::Idle(_)), "not a member");

    add_to_group(&mut server, T0 + 10, account, group, devices[1].id);
    let (reply, _) = devices[1].check_in(&mut server, T0 + 11);
    assert_eq!(devices[1].accept(&reply), job);
    assert_eq!(
        server
            .job_progress(account, job)
            .expect("progress")
            .counters
            .targets,
        2
    );
    let (reply, _) = devices[2].check_in(&mut server, T0 + 11);
    assert!(matches!(reply, Reply::Idle(_)));
}

#[test]
fn completed_group_job_reaches_late_members() {
    // Proves a group job that completed still reaches a device added to the
    // group afterwards: the job reopens, updates it and completes again.
    let (mut server, account, mut devices, release) = fleet(2);
    let (group, job) = pilot_group_job(&mut server, account, devices[0].id, release);
    let (reply, _) = devices[0].check_in(&mut server, T0);
    assert_eq!(devices[0].accept(&reply), job);
    let notes = devices[0].finish_update(&mut server, T0 + 10);
    let completions = |notes: &[syssync_server_core::Notification]| {
        notes
            .iter()
            .filter(|n| n.kind == NotificationKind::RolloutCompleted)
            .count()
    };
    assert_eq!(completions(&notes), 1);
    assert_eq!(
        server.job_progress(account, job).expect("progress").status,
        JobStatus::Completed
    );

    add_to_group(&mut server, T0 + 100, account, group, devices[1].id);
    let (reply, _) = devices[1].check_in(&mut server, T0 + 101);
    assert_eq!(devices[1].accept(&reply), job);
    assert_eq!(
        server.job_progress(account, job).expect("progress").status,
        JobStatus::Running
    );
    let notes = devices[1].finish_update(&mut server, T0 + 110);
    assert_eq!(completions(&notes), 1);
    let progress = server.job_progress(account, job).expect("progress");
    assert_eq!(progress.status, JobStatus::Completed);
    assert_eq!(progress.counters.targets, 2);
    assert_eq!(progress.counters.succeeded, 2);

    // A member that already has its outcome is not offered the job again.
    let (reply, _) = devices[0].check_in(&mut server, T0 + 120);
    assert!(matches!(reply, Reply::Idle(_)));
}

#[test]
fn tag_filter_group_follows_tags() {
    // Proves a filter group admits devices once they carry its tag.
    let (mut server, account, mut devices, release) = fleet(2);
    let filter = GroupFilter {
        target: Some(TARGET.into()),
        version: None,
        tag: Some("beta".into()),
    };
    let group = match server
        .execute(
            T0,
            account,
            Command::CreateGroup {
                name: "beta".into(),
                kind: GroupKind::Filter(filter),
            },
        )
        .expect("group")
        .created
    {
        syssync_server_core::Created::Group(id) => id,
        other => panic!("expected a group, got {other:?}"),
    };
    let job = create_job(
        &mut server,
        T0,
        account,
        syssync_server_core::JobSpec::new(release, JobTarget::Group(group), T0),
    );
    let (reply, _) = devices[1].check_in(&mut server, T0);
    assert!(matches!(reply, Reply::Idle(_)));
    server
        .execute(
            T0,
            account,
            Command::SetTags {
                device: devices[1].id,
                tags: vec!["beta".into()],
            },
        )
        .expect("tags");
    let (reply, _) = devices[1].check_in(&mut server, T0 + 1);
    assert_eq!(devices[1].accept(&reply), job);
    let (reply, _) = devices[0].check_in(&mut server, T0 + 1);
    assert!(matches!(reply, Reply::Idle(_)));
}

#[test]
fn deleted_release_ends_completed_job() {
    // Proves a completed group job whose release was deleted reaches no
    // device that joins the group later, and counts no attempt for it.
    let (mut server, account, mut devices, release) = fleet(2);
    let (group, job) = pilot_group_job(&mut server, account, devices[0].id, release);
    let (reply, _) = devices[0].check_in(&mut server, T0);
    assert_eq!(devices[0].accept(&reply), job);
    devices[0].finish_update(&mut server, T0 + 10);
    server
        .execute(T0 + 20, account, Command::DeleteRelease { release })
        .expect("a completed job's release may be deleted");

    add_to_group(&mut server, T0 + 100, account, group, devices[1].id);
    let (reply, _) = devices[1].check_in(&mut server, T0 + 101);
    assert!(matches!(reply, Reply::Idle(_)), "{reply:?}");
    let member = syssync_server_core::Storage::member(server.store(), job, devices[1].id);
    assert_eq!(member.attempts, 0);
    let progress = server.job_progress(account, job).expect("progress");
    assert_eq!(progress.status, JobStatus::Completed);
}

#[test]
fn completed_rollout_notifies_with_preferences() {
    // Proves the job completes when every target has an outcome, and that the
    // account's preferences set each notification's `wanted`.
    let (mut server, account, mut devices, release) = fleet(2);
    let prefs = NotificationPrefs::ALL.with(NotificationKind::DeviceUpdated, false);
    server
        .execute(T0, account, Command::SetNotifications(prefs))
        .expect("prefs");
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let mut notes = Vec::new();
    for device in devices.iter_mut() {
        let (reply, _) = device.check_in(&mut server, T0);
        device.accept(&reply);
        notes.extend(device.finish_update(&mut server, T0 + 10));
    }
    let updated: Vec<_> = notes
        .iter()
        .filter(|n| n.kind == NotificationKind::DeviceUpdated)
        .collect();
    assert_eq!(updated.len(), 2);
    assert!(updated.iter().all(|n| !n.wanted));
    let completed: Vec<_> = notes
        .iter()
        .filter(|n| n.kind == NotificationKind::RolloutCompleted)
        .collect();
    assert_eq!(completed.len(), 1);
    assert!(completed[0].wanted);
    assert_eq!(completed[0].job, Some(job));
    assert_eq!(
        server.job_progress(account, job).expect("progress").status,
        JobStatus::Completed
    );
    let (reply, _) = devices[0].check_in(&mut server, T0 + 20);
    assert!(matches!(reply, Reply::Idle(_)));
}

#[test]
fn device_already_on_release_counts_up_to_date() {
    // Proves a device that already runs the release is not offered it and
    // counts toward completion.
    let (mut server, account, mut devices, release) = fleet(1);
    let first = create_job(&mut server, T0, account, fleet_job(release, T0));
    let (reply, _) = devices[0].check_in(&mut server, T0);
    devices[0].accept(&reply);
    devices[0].finish_update(&mut server, T0 + 1);
    devices[0].check_in(&mut server, T0 + 2);
    let second = create_job(&mut server, T0 + 3, account, fleet_job(release, T0 + 3));
    assert_ne!(first, second);
    let (reply, _) = devices[0].check_in(&mut server, T0 + 4);
    assert!(matches!(reply, Reply::Idle(_)), "{reply:?}");
    let progress = server.job_progress(account, second).expect("progress");
    assert_eq!(progress.counters.up_to_date, 1);
    assert_eq!(progress.status, JobStatus::Completed);
    let _ = JobId(0);
}

#[test]
fn version_filter_group_selects_old_devices() {
    // Proves a version filter group takes only devices below the bound.
    let (mut server, account, mut devices, release) = fleet(2);
    let first = create_job(
        &mut server,
        T0,
        account,
        syssync_server_core::JobSpec::new(release, JobTarget::Device(devices[0].id), T0),
    );
    let (reply, _) = devices[0].check_in(&mut server, T0);
    assert_eq!(devices[0].accept(&reply), first);
    devices[0].finish_update(&mut server, T0 + 1);
    devices[0].check_in(&mut server, T0 + 2);

    let files = ReleaseFiles::new(syssync_proto::Version::new(1, 2, 0, 1), 0x66, 2_000);
    let newer = approved_release(&mut server, account, &files);
    let filter = GroupFilter {
        target: None,
        version: Some(syssync_server_core::VersionFilter::Below(
            syssync_proto::Version::new(1, 1, 0, 0),
        )),
        tag: None,
    };
    let group = match server
        .execute(
            T0,
            account,
            Command::CreateGroup {
                name: "old".into(),
                kind: GroupKind::Filter(filter),
            },
        )
        .expect("group")
        .created
    {
        syssync_server_core::Created::Group(id) => id,
        other => panic!("expected a group, got {other:?}"),
    };
    let second = create_job(
        &mut server,
        T0 + 3,
        account,
        syssync_server_core::JobSpec::new(newer, JobTarget::Group(group), T0 + 3),
    );
    assert_eq!(
        server
            .job_progress(account, second)
            .expect("progress")
            .counters
            .targets,
        1
    );
    let (reply, _) = devices[0].check_in(&mut server, T0 + 4);
    assert!(
        matches!(reply, Reply::Idle(_)),
        "1.1.0 is not below 1.1.0: {reply:?}"
    );
    let (reply, _) = devices[1].check_in(&mut server, T0 + 4);
    assert_eq!(devices[1].accept(&reply), second);
}
