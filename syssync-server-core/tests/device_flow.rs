//! Scenarios of the device face: registration, replay, offers, chunks,
//! reports, inventory comparison and confirm.

mod common;

use common::*;
use syssync_proto::frame::{encode_uplink, Frame};
use syssync_proto::message::{
    CheckIn, ChunkRequest, DeviceMessage, JobOutcome, JobState, RegistrationRequest, UplinkHeader,
};
use syssync_proto::{
    AccountId, FailureCode, FrameError, JobId, Location, RefusalCode, RevertReason, RustCrypto,
    Version, MAX_FRAME_LEN,
};
use syssync_server_core::{
    Command, DeviceJobState, FailureCause, FrameStatus, NotificationKind, Server,
};

fn registration(account: AccountId) -> DeviceMessage {
    DeviceMessage::RegistrationRequest(RegistrationRequest {
        account,
        target: TARGET.try_into().expect("short"),
        version: Version::new(1, 0, 0, 1),
    })
}

fn frame_for(device: &TestDevice, counter: u32, message: &DeviceMessage) -> Vec<u8> {
    let header = UplinkHeader {
        device: device.id,
        counter,
    };
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = encode_uplink(&RustCrypto, &device.key, header, message, &mut out).expect("encodes");
    out[..len].to_vec()
}

#[test]
fn whole_update_confirms_matching_inventory() {
    // Proves the happy path: offer, download, install report, inventory, confirm.
    let (mut server, account, mut devices, release) = fleet(1);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let device = &mut devices[0];
    let (reply, _) = device.check_in(&mut server, T0 + 10);
    assert_eq!(device.accept(&reply), job);
    let requests = device.download(&mut server, T0 + 20);
    assert_eq!(requests, 3 + 1, "10000-byte image in 3 chunks, config in 1");
    device.install();
    let (reply, _) = device.report(&mut server, T0 + 30, job, JobOutcome::Installed);
    assert_eq!(reply, Reply::InventoryRequest);
    let (reply, notes) = device.report_inventory(&mut server, T0 + 31);
    assert_eq!(reply, Reply::Confirm(job));
    assert!(notes
        .iter()
        .any(|n| n.kind == NotificationKind::DeviceUpdated && n.device == Some(device.id)));
    let progress = server.job_progress(account, job).expect("progress");
    assert_eq!(progress.counters.succeeded, 1);
    let status = server
        .device_status(T0 + 31, account, device.id)
        .expect("device");
    assert_eq!(status.version, Version::new(1, 1, 0, 7));
    assert_eq!(
        status.bytes_served,
        10_000 + "version = \"1.1.0+7\"\n".len() as u64
    );
}

#[test]
fn frame_path_answers_bound_replies() {
    // Proves handle_frame verifies, decides and binds the reply to the request counter.
    let (mut server, account, mut devices, release) = fleet(1);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let device = &mut devices[0];
    let message = device.check_in_message();
    let reply = device.send_frame(&mut server, T0 + 5, message);
    assert_eq!(device.accept(&reply), job);
}

#[test]
fn frame_with_bad_mac_is_refused_unauthenticated() {
    // Proves a frame under the wrong key changes nothing and gets an advisory refusal.
    let (mut server, _, devices, _) = fleet(1);
    let mut impostor = devices[0].clone();
    impostor.key = syssync_proto::DeviceKey([0; 32]);
    let before = server.store().clone();
    let frame = frame_for(&impostor, 1, &impostor.check_in_message());
    let mut out = [0u8; MAX_FRAME_LEN];
    let outcome = server.handle_frame(T0, &frame, &mut out);
    assert_eq!(
        outcome.status,
        FrameStatus::Unauthenticated(RefusalCode::BAD_MAC)
    );
    let reply = Frame::parse(&out[..outcome.reply_len]).expect("parses");
    let opened = reply.open_downlink(
        &RustCrypto,
        &devices[0].key,
        (UplinkHeader {
            device: devices[0].id,
            counter: 1,
        })
        .into(),
    );
    assert!(matches!(opened, Err(FrameError::UnauthenticatedRefusal(_))));
    assert!(*server.store() == before, "nothing changed");
}

#[test]
fn frame_from_unknown_device_is_refused() {
    // Proves an unregistered sender gets UNKNOWN_DEVICE and no record appears.
    let (mut server, _, _, _) = fleet(1);
    let stranger = TestDevice::new(999);
    let frame = frame_for(&stranger, 1, &stranger.check_in_message());
    let mut out = [0u8; MAX_FRAME_LEN];
    let outcome = server.handle_frame(T0, &frame, &mut out);
    assert_eq!(
        outcome.status,
        FrameStatus::Unauthenticated(RefusalCode::UNKNOWN_DEVICE)
    );
    assert!(server
        .store()
        .device_records()
        .iter()
        .all(|r| r.id != stranger.id));
}

#[test]
fn corrupted_frame_is_dropped() {
    // Proves a frame with a bad CRC gets no reply at all.
    let (mut server, _, devices, _) = fleet(1);
    let mut frame = frame_for(&devices[0], 1, &devices[0].check_in_message());
    frame[3] ^= 0xFF;
    let mut out = [0u8; MAX_FRAME_LEN];
    let outcome = server.handle_frame(T0, &frame, &mut out);
    assert!(matches!(
        outcome.status,
        FrameStatus::Dropped(FrameError::CrcMismatch { .. })
    ));
    assert_eq!(outcome.reply_len, 0);
}

#[test]
fn stale_counter_is_refused_with_last_accepted() {
    // Proves the replay rule: a counter not above the last accepted one is refused.
    let (mut server, _, mut devices, _) = fleet(1);
    let device = &mut devices[0];
    device.counter = 40;
    let (reply, _) = device.check_in(&mut server, T0);
    assert!(matches!(reply, Reply::Idle(_)));
    device.counter = 39;
    let (reply, _) = device.check_in(&mut server, T0 + 1);
    assert_eq!(reply, Reply::Refused(RefusalCode::STALE_COUNTER, 41));
    let (reply, _) = device.check_in(&mut server, T0 + 2);
    assert_eq!(
        reply,
        Reply::Refused(RefusalCode::STALE_COUNTER, 41),
        "equal counter"
    );
    let frame = frame_for(device, 41, &device.check_in_message());
    let mut out = [0u8; MAX_FRAME_LEN];
    let outcome = server.handle_frame(T0 + 3, &frame, &mut out);
    assert_eq!(
        outcome.status,
        FrameStatus::Answered,
        "a replayed frame is answered with an authenticated refusal"
    );
}

#[test]
fn automatic_registration_with_claim_token() {
    // Proves a device with the account's claim-derived key registers itself, and
    // that a replay of the same frame and a fake key are refused.
    let (mut server, account, _, _) = fleet(0);
    let mut device = TestDevice::new(500);
    device.key = claim_key(device.id);
    let frame = frame_for(&device, 1, &registration(account));
    let mut out = [0u8; MAX_FRAME_LEN];
    let outcome = server.handle_frame(T0, &frame, &mut out);
    assert_eq!(outcome.status, FrameStatus::Answered);
    let reply = Frame::parse(&out[..outcome.reply_len])
        .expect("parses")
        .open_downlink(
            &RustCrypto,
            &device.key,
            (UplinkHeader {
                device: device.id,
                counter: 1,
            })
            .into(),
        )
        .expect("bound reply");
    assert_eq!(Reply::from_message(&reply), Reply::Registered(account));
    assert_eq!(server.devices(T0, account).expect("list").len(), 1);

    let replayed = server.handle_frame(T0 + 1, &frame, &mut out);
    assert_eq!(replayed.status, FrameStatus::Answered);
    let reply = Frame::parse(&out[..replayed.reply_len])
        .expect("parses")
        .open_downlink(
            &RustCrypto,
            &device.key,
            (UplinkHeader {
                device: device.id,
                counter: 1,
            })
            .into(),
        )
        .expect("bound reply");
    assert_eq!(
        Reply::from_message(&reply),
        Reply::Refused(RefusalCode::STALE_COUNTER, 1)
    );

    let mut fake = TestDevice::new(501);
    fake.key = syssync_proto::DeviceKey([9; 32]);
    let frame = frame_for(&fake, 1, &registration(account));
    let outcome = server.handle_frame(T0 + 2, &frame, &mut out);
    assert_eq!(
        outcome.status,
        FrameStatus::Unauthenticated(RefusalCode::BAD_MAC)
    );
    assert_eq!(
        server.devices(T0, account).expect("list").len(),
        1,
        "fake not registered"
    );
}

#[test]
fn registration_to_other_account_is_refused() {
    // Proves a registered device cannot re-register into another account, and
    // an account without a claim token accepts no automatic registration.
    let (mut server, account, mut devices, _) = fleet(1);
    let other = server
        .create_account(syssync_server_core::AccountSettings::new("other"))
        .expect("account");
    let device = &mut devices[0];
    let (reply, _) = device.send(&mut server, T0, registration(other));
    assert_eq!(reply, Reply::Refused(RefusalCode::REGISTRATION_REJECTED, 0));
    assert!(
        server.device_status(T0, account, device.id).is_ok(),
        "still the owner's"
    );

    let newcomer = TestDevice::new(77);
    let frame = frame_for(&newcomer, 1, &registration(other));
    let mut out = [0u8; MAX_FRAME_LEN];
    let outcome = server.handle_frame(T0, &frame, &mut out);
    assert_eq!(
        outcome.status,
        FrameStatus::Unauthenticated(RefusalCode::REGISTRATION_REJECTED)
    );
}

#[test]
fn unknown_inventory_is_requested_before_offer() {
    // Proves the server requests the inventory before it offers a job to a
    // device whose installed files it does not have on record.
    let (mut server, account, _, release) = fleet(0);
    let mut device = TestDevice::new(5);
    server
        .execute(T0, account, device.register_command(false))
        .expect("register");
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let (reply, _) = device.check_in(&mut server, T0 + 1);
    assert_eq!(reply, Reply::InventoryRequest);
    let (reply, _) = device.report_inventory(&mut server, T0 + 2);
    assert_eq!(device.accept(&reply), job);
}

#[test]
fn lost_confirm_is_repeated() {
    // Proves confirm is idempotent: a device in trial that requests it again
    // gets it again, and the success is counted once.
    let (mut server, account, mut devices, release) = fleet(1);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let device = &mut devices[0];
    let (reply, _) = device.check_in(&mut server, T0);
    device.accept(&reply);
    device.download(&mut server, T0);
    device.install();
    device.report(&mut server, T0, job, JobOutcome::Installed);
    let (reply, _) = device.report_inventory(&mut server, T0);
    assert_eq!(reply, Reply::Confirm(job));
    // The confirm was lost: the device still checks in on trial.
    let (reply, notes) = device.check_in(&mut server, T0 + 60);
    assert_eq!(reply, Reply::Confirm(job));
    assert!(notes.is_empty());
    let (reply, _) = device.report(&mut server, T0 + 61, job, JobOutcome::Installed);
    assert_eq!(reply, Reply::Confirm(job));
    assert_eq!(
        server
            .job_progress(account, job)
            .expect("progress")
            .counters
            .succeeded,
        1
    );
    device.job = None;
    let (reply, _) = device.check_in(&mut server, T0 + 120);
    assert!(matches!(reply, Reply::Idle(_)));
    let status = server
        .device_status(T0 + 120, account, device.id)
        .expect("device");
    assert_eq!(status.job, None);
}

#[test]
fn trial_check_in_with_matching_digest_confirms() {
    // Proves a trial check-in whose digest equals the expected inventory's is
    // confirmed without another inventory round.
    let (mut server, account, mut devices, release) = fleet(1);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let device = &mut devices[0];
    let (reply, _) = device.check_in(&mut server, T0);
    device.accept(&reply);
    device.download(&mut server, T0);
    device.install();
    let (reply, _) = device.check_in(&mut server, T0 + 5);
    assert_eq!(reply, Reply::Confirm(job));
}

#[test]
fn mismatching_inventory_is_not_confirmed() {
    // Proves the confirm needs the exact expected inventory: a device that
    // installed the wrong image is not confirmed.
    let (mut server, account, mut devices, release) = fleet(1);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let device = &mut devices[0];
    let (reply, _) = device.check_in(&mut server, T0);
    device.accept(&reply);
    device.download(&mut server, T0);
    device.install();
    device.inventory.application.sha256[0] ^= 1;
    let (reply, _) = device.report(&mut server, T0 + 1, job, JobOutcome::Installed);
    assert_eq!(reply, Reply::InventoryRequest);
    let (reply, _) = device.report_inventory(&mut server, T0 + 2);
    assert!(matches!(reply, Reply::Idle(_)), "{reply:?}");
    let (reply, _) = device.check_in(&mut server, T0 + 3);
    assert_eq!(reply, Reply::InventoryRequest, "trial with unknown digest");
    assert_eq!(
        server
            .job_progress(account, job)
            .expect("progress")
            .counters
            .succeeded,
        0
    );
}

#[test]
fn revert_counts_failed_attempt_and_retries() {
    // Proves a reported revert is a failed attempt, and the next check-in offers again.
    let (mut server, account, mut devices, release) = fleet(1);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let device = &mut devices[0];
    let (reply, _) = device.check_in(&mut server, T0);
    device.accept(&reply);
    let (reply, notes) = device.report(
        &mut server,
        T0 + 1,
        job,
        JobOutcome::Reverted(RevertReason::TRIAL_LIMIT),
    );
    assert!(matches!(reply, Reply::Idle(_)));
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NotificationKind::DeviceFailed);
    assert_eq!(
        notes[0].cause,
        Some(FailureCause::Reverted(RevertReason::TRIAL_LIMIT))
    );
    device.job = None;
    let (reply, _) = device.check_in(&mut server, T0 + 2);
    assert_eq!(device.accept(&reply), job, "second attempt");
    let failures = server.job_failures(account, job).expect("failures");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].attempt, 1);
}

#[test]
fn attempt_limit_fails_device_and_tells_owner() {
    // Proves a device is offered a job at most max_attempts times, then failed
    // with a retry-limit notification.
    let (mut server, account, mut devices, release) = fleet(1);
    let mut spec = fleet_job(release, T0);
    spec.max_attempts = 2;
    let job = create_job(&mut server, T0, account, spec);
    let device = &mut devices[0];
    let mut offers = 0;
    let mut limit_notes = 0;
    for step in 0..6 {
        let (reply, _) = device.check_in(&mut server, T0 + step * 10);
        if let Reply::Offer { .. } = reply {
            offers += 1;
            device.accept(&reply);
            let (_, notes) = device.report(
                &mut server,
                T0 + step * 10 + 1,
                job,
                JobOutcome::Failed(FailureCode::FLASH_WRITE),
            );
            limit_notes += notes
                .iter()
                .filter(|n| n.kind == NotificationKind::RetryLimitReached)
                .count();
            device.job = None;
        }
    }
    assert_eq!(offers, 2);
    assert_eq!(limit_notes, 1);
    let progress = server.job_progress(account, job).expect("progress");
    assert_eq!(progress.counters.failed, 1);
    assert_eq!(progress.status, syssync_server_core::JobStatus::Completed);
}

#[test]
fn in_progress_timeout_counts_failed_attempt() {
    // Proves a device that took an offer but never reported is failed after the
    // in-progress timeout and sent a cancel.
    let (mut server, account, mut devices, release) = fleet(1);
    let mut spec = fleet_job(release, T0);
    spec.in_progress_timeout_s = 3600;
    let job = create_job(&mut server, T0, account, spec);
    let device = &mut devices[0];
    let (reply, _) = device.check_in(&mut server, T0);
    device.accept(&reply);
    let (reply, _) = device.check_in(&mut server, T0 + 1800);
    assert!(matches!(reply, Reply::Idle(_)), "still within the timeout");
    let (reply, notes) = device.check_in(&mut server, T0 + 3601);
    assert_eq!(reply, Reply::Cancel(job));
    assert!(notes
        .iter()
        .any(|n| n.cause == Some(FailureCause::TimedOut)));
    let (reply, _) = device.report(&mut server, T0 + 3602, job, JobOutcome::Cancelled);
    assert!(matches!(reply, Reply::Idle(_)));
    device.job = None;
    let (reply, _) = device.check_in(&mut server, T0 + 3700);
    assert_eq!(
        device.accept(&reply),
        job,
        "second attempt after the timeout"
    );
}

#[test]
fn chunk_requests_are_checked_and_leave_no_history() {
    // Proves chunk requests outside the device's job or file are refused, and
    // that serving chunks adds no history rows.
    let (mut server, account, mut devices, release) = fleet(2);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let (first, rest) = devices.split_at_mut(1);
    let device = &mut first[0];
    let bystander = &mut rest[0];
    let (reply, _) = device.check_in(&mut server, T0);
    device.accept(&reply);
    let chunk = |job, file, offset, length| {
        DeviceMessage::ChunkRequest(ChunkRequest {
            job,
            file,
            offset,
            length,
        })
    };
    let (reply, _) = device.send(&mut server, T0, chunk(JobId(99), 0, 0, 100));
    assert_eq!(reply, Reply::Refused(RefusalCode::UNKNOWN_JOB, 0));
    let (reply, _) = device.send(&mut server, T0, chunk(job, 2, 0, 100));
    assert_eq!(reply, Reply::Refused(RefusalCode::OUT_OF_RANGE, 0));
    let (reply, _) = device.send(&mut server, T0, chunk(job, 0, 10_000, 100));
    assert_eq!(reply, Reply::Refused(RefusalCode::OUT_OF_RANGE, 0));
    let (reply, _) = device.send(&mut server, T0, chunk(job, 0, 9_990, 100));
    assert_eq!(
        reply,
        Reply::Chunk(vec![0x5A; 10]),
        "clipped at the end of the file"
    );
    let (reply, _) = bystander.send(&mut server, T0, chunk(job, 0, 0, 100));
    assert_eq!(
        reply,
        Reply::Refused(RefusalCode::UNKNOWN_JOB, 0),
        "not on the job"
    );

    let before = server.store().jobs().cloned().collect::<Vec<_>>();
    for _ in 0..1000 {
        let (reply, _) = device.send(&mut server, T0, chunk(job, 0, 0, 4096));
        assert!(matches!(reply, Reply::Chunk(_)));
    }
    let after = server.store().jobs().cloned().collect::<Vec<_>>();
    assert_eq!(before, after, "no job record grows per chunk");
    let status = server
        .device_status(T0, account, device.id)
        .expect("device");
    assert_eq!(status.bytes_served, 10 + 1000 * 4096);
}

#[test]
fn stray_job_on_device_gets_cancel() {
    // Proves a device naming a job the server does not assign to it is sent a cancel.
    let (mut server, _, mut devices, _) = fleet(1);
    let device = &mut devices[0];
    let message = DeviceMessage::CheckIn(CheckIn {
        job: Some(syssync_proto::message::JobProgress {
            job: JobId(42),
            state: JobState::Downloading,
            bytes_done: 0,
        }),
        inventory: device.inventory.digest(&RustCrypto),
        location: None,
    });
    let (reply, _) = device.send(&mut server, T0, message);
    assert_eq!(reply, Reply::Cancel(JobId(42)));
}

#[test]
fn check_in_records_location_and_last_seen() {
    // Proves a check-in updates last seen and location, and the dashboard marks
    // a silent device overdue.
    let (mut server, account, mut devices, _) = fleet(1);
    let device = &mut devices[0];
    let location = Location {
        latitude_e7: 473_769_000,
        longitude_e7: 85_417_000,
        accuracy_m: 12,
    };
    let message = DeviceMessage::CheckIn(CheckIn {
        job: None,
        inventory: device.inventory.digest(&RustCrypto),
        location: Some(location),
    });
    device.send(&mut server, T0 + 100, message);
    let status = server
        .device_status(T0 + 200, account, device.id)
        .expect("device");
    assert_eq!(status.last_seen, Some(T0 + 100));
    assert_eq!(status.location, Some(location));
    assert!(!status.overdue);
    let later = server.devices(T0 + 100 + 2701, account).expect("list");
    assert!(later[0].overdue, "overdue after 2700 s");
}

#[test]
fn unknown_device_message_changes_nothing() {
    // Proves handle_message refuses an unknown device without creating a record.
    let mut server = Server::in_memory();
    let before = server.store().clone();
    let mut stranger = TestDevice::new(3);
    let (reply, _) = stranger.check_in(&mut server, T0);
    assert_eq!(reply, Reply::Refused(RefusalCode::UNKNOWN_DEVICE, 0));
    assert!(*server.store() == before);
}

#[test]
fn device_job_state_follows_progress() {
    // Proves the dashboard shows the device's job state move with its check-ins.
    let (mut server, account, mut devices, release) = fleet(1);
    let job = create_job(&mut server, T0, account, fleet_job(release, T0));
    let device = &mut devices[0];
    let (reply, _) = device.check_in(&mut server, T0);
    device.accept(&reply);
    device.check_in(&mut server, T0 + 1);
    let status = server
        .device_status(T0 + 1, account, device.id)
        .expect("device");
    assert_eq!(
        status.job.map(|j| (j.job, j.state)),
        Some((job, DeviceJobState::Downloading))
    );
    let _ = Command::PauseJob { job };
}

#[test]
fn silent_device_times_out_in_sweep() {
    // Proves the sweep counts the timeout of a device that went silent mid-job,
    // so that the job can complete, and that the device is sent a cancel later.
    let (mut server, account, mut devices, release) = fleet(1);
    let mut spec = fleet_job(release, T0);
    spec.in_progress_timeout_s = 600;
    spec.max_attempts = 1;
    let job = create_job(&mut server, T0, account, spec);
    let (reply, _) = devices[0].check_in(&mut server, T0);
    devices[0].accept(&reply);
    assert!(
        server.expire_attempts(T0 + 600, account).is_empty(),
        "not yet timed out"
    );
    let notes = server.expire_attempts(T0 + 601, account);
    let kinds: Vec<_> = notes.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        vec![
            NotificationKind::DeviceFailed,
            NotificationKind::RetryLimitReached,
            NotificationKind::RolloutCompleted
        ]
    );
    assert!(
        server.expire_attempts(T0 + 700, account).is_empty(),
        "counted once"
    );
    let progress = server.job_progress(account, job).expect("progress");
    assert_eq!(progress.counters.failed, 1);
    let (reply, _) = devices[0].check_in(&mut server, T0 + 800);
    assert_eq!(reply, Reply::Cancel(job));
}

#[test]
fn malformed_body_with_valid_mac_is_refused() {
    // Proves a frame whose MAC verifies but whose body breaks a protocol limit
    // gets an authenticated INVALID_REQUEST and changes nothing.
    let (mut server, _, mut devices, _) = fleet(1);
    let before = server.store().clone();
    let request = DeviceMessage::ChunkRequest(ChunkRequest {
        job: JobId(1),
        file: 0,
        offset: 0,
        length: 0,
    });
    let reply = devices[0].send_frame(&mut server, T0, request);
    assert_eq!(reply, Reply::Refused(RefusalCode::INVALID_REQUEST, 0));
    assert!(*server.store() == before);
}
