//! Scenario tests of whole updates: install, trial, confirm, and fetching only
//! what changed.

mod common;

use common::*;
use syssync_device::boot::setting;
use syssync_device::{BootPhase, ConfirmPolicy, Engine, Event, NorFileStore};
use syssync_proto::frame::Frame;
use syssync_proto::message::DeviceMessage;
use syssync_proto::message::JobOutcome;
use syssync_proto::{JobId, RustCrypto, SignedManifest, Version, MAX_FRAME_LEN};

#[test]
fn full_update_confirmed_by_server() {
    // Proves a whole update: offer, download, file commit, reset into trial,
    // install report, inventory, server confirm, and the image made permanent.
    let mut world = World::new();
    let release = standard_release();
    world.server.assign(1, release.clone());

    assert!(
        world.run_until(2_000, |w| w.confirmed(1)),
        "events: {:?}",
        world.recent_events()
    );

    let model = world.model();
    assert_eq!(model.phase, BootPhase::Idle);
    assert_eq!(model.running.sha256, sha256(&release.files[0]));
    assert_eq!(model.floor, 2);
    assert_eq!(model.confirms, 1);
    assert_eq!(
        world.installed_file("config.json"),
        Some(release.files[1].clone())
    );
    assert_eq!(
        world.installed_file("ca.pem"),
        Some(release.files[2].clone())
    );
    assert_eq!(world.resets, 1);
    assert_eq!(world.server.chunk_requests.len(), total_chunks(&release));
    assert_eq!(
        world.server.reports.first().map(|report| report.outcome),
        Some(JobOutcome::Installed)
    );

    let order: Vec<&Event> = world
        .events
        .iter()
        .filter(|event| {
            matches!(
                event,
                Event::JobAccepted { .. }
                    | Event::FilesChanging { .. }
                    | Event::ResetWanted { .. }
                    | Event::Confirmed { .. }
            )
        })
        .collect();
    assert!(matches!(
        order[0],
        Event::JobAccepted {
            job: JobId(1),
            bytes: 7200
        }
    ));
    assert!(matches!(order[1], Event::FilesChanging { job: JobId(1) }));
    assert!(matches!(order[2], Event::ResetWanted { job: JobId(1), .. }));
    assert!(matches!(order[3], Event::Confirmed { job: JobId(1) }));
}

#[test]
fn staging_carries_the_signed_manifest() {
    // Proves that the engine hands the boot side the signed manifest of the
    // job with the staged image, byte for byte as the server signed it, so a
    // bootloader can authenticate the image against it.
    let mut world = World::new();
    let release = standard_release();
    world.server.assign(1, release.clone());
    assert!(world.run_until(2_000, |w| w.confirmed(1)));

    let evidence = world
        .model()
        .evidence
        .expect("no evidence passed to the boot side");
    let signed = SignedManifest::decode(&evidence).unwrap();
    assert_eq!(signed.body, &release.body[..]);
    assert_eq!(signed.signature, release.signature);
    assert_eq!(signed.key_id, trusted_key().id);
    let manifest = signed.verify(&RustCrypto, &[trusted_key()]).unwrap();
    assert_eq!(manifest, release.manifest);
}

#[test]
fn only_missing_files_fetched() {
    // Proves that a second release fetches only the file whose SHA-256
    // changed: the unchanged image and file cost zero bytes.
    let mut world = World::new();
    let first = standard_release();
    world.server.assign(1, first.clone());
    assert!(world.run_until(2_000, |w| w.confirmed(1)));
    let first_requests = world.server.chunk_requests.len();

    // The image bytes are unchanged, so the release keeps their version.
    let second = release(
        Version::new(1, 1, 0, 0),
        2,
        &[
            app(first.files[0].clone()),
            plain("config.json", content(1500, 9)),
            plain("ca.pem", first.files[2].clone()),
        ],
        &[],
    );
    world.server.assign(2, second.clone());
    assert!(
        world.run_until(2_000, |w| w.job_finished()),
        "events: {:?}",
        world.recent_events()
    );

    let fetched: Vec<u8> = world.server.chunk_requests[first_requests..]
        .iter()
        .map(|(file, _, _)| *file)
        .collect();
    assert_eq!(fetched.len(), 1500usize.div_ceil(usize::from(CHUNK)));
    assert!(fetched.iter().all(|file| *file == 1));
    assert_eq!(
        world.installed_file("config.json"),
        Some(second.files[1].clone())
    );
    assert!(world.events.contains(&Event::Completed { job: JobId(2) }));
    assert_eq!(
        world.resets, 1,
        "a release without a new image needs no reset"
    );

    // The check-in after the job carries the new files' inventory digest,
    // not one kept from before the job.
    let check_ins_before = world.server.check_ins.len();
    assert!(world.run_until(2_000, |w| w.server.check_ins.len() > check_ins_before));
    let sent = world
        .server
        .check_ins
        .last()
        .map(|check_in| check_in.inventory);
    let inventory = world.device_mut().inventory();
    assert_eq!(
        inventory
            .files
            .iter()
            .find(|file| file.name == "config.json")
            .map(|file| file.sha256),
        Some(sha256(&second.files[1]))
    );
    assert_eq!(sent, Some(inventory.digest(&RustCrypto)));
}

#[test]
fn application_confirms_own_health() {
    // Proves that with the application policy the trial image is confirmed by
    // the application's health check, then the install is reported.
    let mut config = config();
    config.confirm_policy = ConfirmPolicy::Application;
    let mut world = World::with_config(config);
    world.auto_health = true;
    world.server.assign(1, standard_release());

    assert!(world.run_until(2_000, |w| w.job_finished()
        || w.server
            .reports
            .iter()
            .any(|r| r.outcome == JobOutcome::Installed)));
    assert!(world.confirmed(1));
    assert_eq!(world.model().phase, BootPhase::Idle);
    assert_eq!(world.model().confirms, 1);
}

#[test]
fn files_removed_by_manifest() {
    // Proves that a manifest's removals delete installed files after its new files are committed.
    let mut world = World::new();
    world.server.assign(1, standard_release());
    assert!(world.run_until(2_000, |w| w.confirmed(1)));

    let second = release(
        Version::new(1, 2, 0, 0),
        2,
        &[plain("extra.txt", content(100, 4))],
        &["ca.pem"],
    );
    world.server.assign(2, second);
    assert!(world.run_until(2_000, |w| w.job_finished()));
    assert_eq!(world.installed_file("ca.pem"), None);
    assert_eq!(world.installed_file("extra.txt"), Some(content(100, 4)));
}

#[test]
fn reset_window_passed_to_application() {
    // Proves that the server's reset window reaches the application as
    // instants, and that the engine waits for the application's reset.
    let mut world = World::new();
    world.auto_reset = false;
    world.server.assign(1, standard_release());
    world.server.job.as_mut().unwrap().reset_window = Some(syssync_proto::message::ResetWindow {
        opens_in_s: 600,
        closes_in_s: 3_600,
    });
    let offered_at = std::cell::Cell::new(None);
    assert!(world.run_until(2_000, |w| {
        if offered_at.get().is_none() && !w.server.check_ins.is_empty() {
            offered_at.set(Some(w.now));
        }
        w.events
            .iter()
            .any(|event| matches!(event, Event::ResetWanted { .. }))
    }));
    let offered_at = offered_at.get().unwrap();
    let Some(Event::ResetWanted {
        not_before,
        deadline,
        ..
    }) = world
        .events
        .iter()
        .find(|event| matches!(event, Event::ResetWanted { .. }))
        .copied()
    else {
        unreachable!("checked above");
    };
    let opens = not_before.unwrap().saturating_since(offered_at).as_millis();
    let closes = deadline.unwrap().saturating_since(offered_at).as_millis();
    assert!(
        (599_000..=600_000).contains(&opens),
        "opens after {opens} ms"
    );
    assert!(
        (3_599_000..=3_600_000).contains(&closes),
        "closes after {closes} ms"
    );

    for _ in 0..50 {
        world.step();
    }
    assert_eq!(world.model().phase, BootPhase::InstallRequested);
    assert_eq!(world.resets, 0);
    world.reset();
    assert!(world.run_until(2_000, |w| w.confirmed(1)));
}

#[test]
fn automatic_registration_then_update() {
    // Proves that a device with an account and claim token but no key
    // registers first, stores the derived key, and then updates normally.
    let mut model = initial_model();
    model.settings.remove(&setting::DEVICE_KEY);
    model
        .settings
        .insert(setting::ACCOUNT, 77u64.to_le_bytes().to_vec());
    model
        .settings
        .insert(setting::CLAIM_TOKEN, b"claim-token-of-account-77".to_vec());
    let mut world = World::with_model(config(), model);
    let key = syssync_proto::frame::derive_device_key(
        &syssync_proto::RustCrypto,
        b"claim-token-of-account-77",
        DEVICE,
    );
    world.server.key = key.clone();
    world.server.assign(1, standard_release());
    assert!(
        world.run_until(2_000, |w| w.confirmed(1)),
        "{:?}",
        world.recent_events()
    );
    assert!(world.events.contains(&Event::Registered {
        account: syssync_proto::AccountId(77)
    }));
    assert_eq!(
        world.model().settings.get(&setting::DEVICE_KEY),
        Some(&key.0.to_vec())
    );
}

#[test]
fn engine_built_in_place_resumes_download() {
    // Proves that `Engine::new_in` restores a job after a reset as
    // `Engine::new` does: the engine it writes into a `MaybeUninit` requests
    // the next chunk of the interrupted download, not for the first.
    let mut world = World::new();
    world.server.assign(1, standard_release());
    assert!(world.run_until(2_000, |w| w.server.chunk_requests.len() >= 3));
    let (file, offset, length) = *world.server.chunk_requests.last().unwrap();

    let (boot, store) = world.device.take().unwrap().into_parts();
    let store = NorFileStore::new(store.into_inner(), 1).unwrap();
    let now = world.now + syssync_device::Duration(5_000);
    let mut slot = Box::new(core::mem::MaybeUninit::<Device>::uninit());
    let device = Engine::new_in(
        &mut slot,
        world.config.clone(),
        boot,
        store,
        RustCrypto,
        now,
        7,
    )
    .unwrap();
    device.set_network(now, true);
    device.handle_timeout(now);

    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let len = device.poll_transmit(now, &mut buf).unwrap();
    let frame = Frame::parse(&buf[..len]).unwrap();
    let (_, message) = frame.open_uplink(&RustCrypto, &KEY).unwrap();
    let DeviceMessage::ChunkRequest(request) = message else {
        panic!("expected a chunk request, got {message:?}");
    };
    assert_eq!(request.job, JobId(1));
    assert_eq!(request.file, file);
    assert_eq!(request.offset, offset + u32::from(length));
}
