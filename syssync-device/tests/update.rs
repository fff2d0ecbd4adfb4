//! Scenario tests of whole updates: install, trial, confirm, and fetching only
//! what changed.

mod common;

use common::*;
use syssync_device::{BootPhase, ConfirmPolicy, Event};
use syssync_proto::message::JobOutcome;
use syssync_proto::{JobId, Version};

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
