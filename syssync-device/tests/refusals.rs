//! Scenario tests of input the device must refuse: bad manifests, damaged,
//! forged or replayed frames, and a server that sets an interval outside the
//! firmware's limits.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use syssync_device::{Config, Event, ExpiryWithoutClock};
use syssync_proto::frame::encode_downlink;
use syssync_proto::message::{Chunk, JobOutcome, ServerMessage};
use syssync_proto::{Binding, DeviceKey, FrameError, JobId, RejectReason, Version, MAX_FRAME_LEN};

/// Offers `release` and checks that it is rejected for `reason`, reported,
/// and that nothing was downloaded.
fn assert_rejected(mut world: World, release: Release, reason: RejectReason) {
    world.server.assign(1, release);
    assert!(
        world.run_until(500, |w| w.job_finished()),
        "events: {:?}",
        world.recent_events()
    );
    assert!(world.events.contains(&Event::OfferRejected {
        job: JobId(1),
        reason
    }));
    assert_eq!(
        world.server.reports.last().map(|report| report.outcome),
        Some(JobOutcome::Rejected(reason))
    );
    assert!(world.server.chunk_requests.is_empty());
    assert_eq!(world.model().staged, None);
}

fn files() -> Vec<ReleaseFile> {
    vec![app(content(2000, 1)), plain("config.json", content(300, 2))]
}

#[test]
fn bad_signature_rejected() {
    // Proves that a manifest signed by an untrusted key is refused before any download.
    let release = release_for(
        TARGET,
        Version::new(2, 0, 0, 0),
        2,
        u64::MAX,
        &files(),
        &[],
        &[0x22; 32],
    );
    assert_rejected(World::new(), release, RejectReason::BAD_SIGNATURE);
}

#[test]
fn foreign_target_rejected() {
    // Proves that a manifest for another hardware type is refused.
    let release = release_for(
        "other-board",
        Version::new(2, 0, 0, 0),
        2,
        u64::MAX,
        &files(),
        &[],
        &RELEASE_SECRET,
    );
    assert_rejected(World::new(), release, RejectReason::WRONG_TARGET);
}

#[test]
fn expired_manifest_rejected() {
    // Proves that with a trusted wall clock an expired manifest is refused.
    let release = release_for(
        TARGET,
        Version::new(2, 0, 0, 0),
        2,
        1_700_000_000,
        &files(),
        &[],
        &RELEASE_SECRET,
    );
    let mut world = World::new();
    let now = world.now;
    world.device_mut().set_unix_time(now, 1_800_000_000);
    assert_rejected(world, release, RejectReason::EXPIRED);
}

#[test]
fn expiry_checked_in_seconds() {
    // Proves that the wall clock is compared in seconds: a manifest that
    // expires a day after the clock's time installs, one that expired a
    // second before it is refused.
    let clock_s = 1_750_000_000;
    let fresh = release_for(
        TARGET,
        Version::new(2, 0, 0, 0),
        2,
        clock_s + 86_400,
        &files(),
        &[],
        &RELEASE_SECRET,
    );
    let mut world = World::new();
    let now = world.now;
    world.device_mut().set_unix_time(now, clock_s);
    world.server.assign(1, fresh);
    assert!(world.run_until(2_000, |w| w.confirmed(1)));

    let stale = release_for(
        TARGET,
        Version::new(2, 0, 0, 0),
        2,
        clock_s - 1,
        &files(),
        &[],
        &RELEASE_SECRET,
    );
    let mut world = World::new();
    let now = world.now;
    world.device_mut().set_unix_time(now, clock_s);
    assert_rejected(world, stale, RejectReason::EXPIRED);
}

#[test]
fn expiry_without_clock_follows_policy() {
    // Proves that without a wall clock the configured policy decides: reject
    // refuses every manifest, accept installs it.
    let release = release_for(
        TARGET,
        Version::new(2, 0, 0, 0),
        2,
        1_700_000_000,
        &files(),
        &[],
        &RELEASE_SECRET,
    );
    let mut strict: Config = config();
    strict.expiry_without_clock = ExpiryWithoutClock::Reject;
    assert_rejected(
        World::with_config(strict),
        release.clone(),
        RejectReason::EXPIRED,
    );

    let mut world = World::new();
    world.server.assign(1, release);
    assert!(world.run_until(2_000, |w| w.confirmed(1)));
}

#[test]
fn downgrade_rejected() {
    // Proves that a security counter below the device's committed one is refused.
    let release = release(Version::new(2, 0, 0, 0), 0, &files(), &[]);
    assert_rejected(World::new(), release, RejectReason::DOWNGRADE);
}

#[test]
fn oversized_release_rejected() {
    // Proves that files that do not fit staging or the file store are refused up front.
    let release = release(
        Version::new(2, 0, 0, 0),
        2,
        &[app(content(STAGING_CAPACITY + 1, 1))],
        &[],
    );
    assert_rejected(World::new(), release, RejectReason::TOO_LARGE);
}

#[test]
fn damaged_chunk_refetched() {
    // Proves that a chunk whose frame CRC fails is rejected, reported to the
    // application, fetched again, and never reaches flash.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release.clone());
    let mut chunks = 0;
    world.downlink = Some(Box::new(move |frame: &[u8]| {
        if frame[1] == 0x84 {
            chunks += 1;
            if chunks == 3 {
                let mut damaged = frame.to_vec();
                damaged[20] ^= 0x01;
                return LinkAction::Replace(damaged);
            }
        }
        LinkAction::Deliver
    }));
    assert!(world.run_until(3_000, |w| w.confirmed(1)));
    assert!(world
        .events
        .iter()
        .any(|event| matches!(event, Event::FrameRejected(FrameError::CrcMismatch { .. }))));
    assert_eq!(
        world.server.chunk_requests.len(),
        total_chunks(&release) + 1
    );
    assert_eq!(world.model().running.sha256, sha256(&release.files[0]));
}

#[test]
fn forged_chunk_rejected() {
    // Proves that a chunk with a valid CRC but a tag under another key is
    // rejected as a bad MAC and its bytes are never written.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release.clone());
    let mut chunks = 0;
    world.downlink = Some(Box::new(move |frame: &[u8]| {
        if frame[1] == 0x84 {
            chunks += 1;
            if chunks == 2 {
                let forged = ServerMessage::Chunk(Chunk { data: &[0xEE; 256] });
                let mut out = vec![0u8; MAX_FRAME_LEN];
                let binding = Binding {
                    device: DEVICE,
                    counter: 0,
                };
                let len = encode_downlink(
                    &syssync_proto::RustCrypto,
                    &DeviceKey([1; 32]),
                    binding,
                    &forged,
                    &mut out,
                )
                .unwrap();
                out.truncate(len);
                return LinkAction::Replace(out);
            }
        }
        LinkAction::Deliver
    }));
    assert!(world.run_until(3_000, |w| w.confirmed(1)));
    assert!(world
        .events
        .contains(&Event::FrameRejected(FrameError::BadMac)));
    assert_eq!(world.model().running.sha256, sha256(&release.files[0]));
}

#[test]
fn replayed_reply_rejected() {
    // Proves that a recorded server reply, replayed in place of a later one
    // or with no request outstanding, is rejected and changes nothing.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release.clone());
    let recorded: Rc<RefCell<Option<Vec<u8>>>> = Rc::new(RefCell::new(None));
    let slot = recorded.clone();
    let mut chunks = 0;
    world.downlink = Some(Box::new(move |frame: &[u8]| {
        if frame[1] == 0x84 {
            chunks += 1;
            if chunks == 1 {
                *slot.borrow_mut() = Some(frame.to_vec());
            }
            if chunks == 5 {
                return LinkAction::Replace(slot.borrow().clone().unwrap());
            }
        }
        LinkAction::Deliver
    }));
    assert!(world.run_until(3_000, |w| w.confirmed(1)));
    assert!(world
        .events
        .contains(&Event::FrameRejected(FrameError::BadMac)));
    assert_eq!(world.model().running.sha256, sha256(&release.files[0]));
    assert_eq!(
        world.installed_file("config.json"),
        Some(release.files[1].clone())
    );

    // With nothing outstanding, a replay is not even opened.
    let old = recorded.borrow().clone().unwrap();
    let now = world.now;
    world.device_mut().handle_frame(now, &old);
    assert_eq!(
        world.device_mut().poll_event(),
        Some(Event::UnexpectedFrame)
    );
}

#[test]
fn server_interval_clamped() {
    // Proves that a server cannot set a check-in interval outside the
    // firmware's limits: too short becomes the minimum, too long the maximum.
    let mut world = World::new();
    world.server.interval_s = 1;
    assert!(world.run_until(100, |w| !w.server.check_ins.is_empty()));
    world.step();
    assert_eq!(world.device_mut().check_in_interval_s(), 60);

    world.server.interval_s = u32::MAX;
    let before = world.server.check_ins.len();
    assert!(world.run_until(100, |w| w.server.check_ins.len() > before));
    world.step();
    assert_eq!(world.device_mut().check_in_interval_s(), 86_400);
    let next = world.device_mut().next_check_in();
    let waited = next.saturating_since(world.now).as_millis();
    assert!(
        waited <= 86_400_000 * 11 / 10,
        "next check-in in {waited} ms"
    );
}

#[test]
fn full_event_queue_drops_oldest() {
    // Proves that undrained events beyond `EVENT_CAPACITY` push out the
    // oldest ones: after 20 rejected frames the application reads the last
    // 16 rejections, in the order they arrived.
    let mut world = World::new();
    let now = world.now;
    let device = world.device_mut();
    while device.poll_event().is_some() {}
    let lengths = (1..=20).map(|extra| MAX_FRAME_LEN + extra);
    for len in lengths.clone() {
        device.handle_frame(now, &vec![0; len]);
    }

    let mut received = Vec::new();
    while let Some(event) = device.poll_event() {
        received.push(event);
    }
    let expected: Vec<Event> = lengths
        .skip(20 - syssync_device::EVENT_CAPACITY)
        .map(|len| Event::FrameRejected(FrameError::TooLong { len }))
        .collect();
    assert_eq!(received, expected);
}
