//! Scenario tests of a device behind a gateway on classic CAN: frames are
//! segmented to 8 bytes, forwarded unchanged, and a damaged segment is caught.

mod common;

use common::*;
use syssync_device::{Event, Gateway, GatewayError};
use syssync_proto::segment::{Reassembler, Segmenter, CLASSIC_CAN_MTU};
use syssync_proto::{FrameError, MAX_FRAME_LEN};

/// Runs the world's device through a gateway until `done`; `damage` may alter
/// a segment from the device (by index) before the gateway receives it.
fn run_through_gateway(
    world: &mut World,
    mut damage: impl FnMut(usize, &mut Vec<u8>),
    mut done: impl FnMut(&World) -> bool,
) -> (bool, Vec<GatewayError>) {
    let mut up = vec![0u8; MAX_FRAME_LEN];
    let mut down = vec![0u8; MAX_FRAME_LEN];
    let mut gateway = Gateway::new(&mut up, &mut down, CLASSIC_CAN_MTU).unwrap();
    let mut device_rx = vec![0u8; MAX_FRAME_LEN];
    let mut errors = Vec::new();
    let mut segment_index = 0;
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    for _ in 0..20_000 {
        if done(world) {
            return (true, errors);
        }
        let now = world.now;
        world.device_mut().handle_timeout(now);
        if let Some(len) = world.device_mut().poll_transmit(now, &mut buf) {
            let mut forwarded = None;
            for segment in Segmenter::new(&buf[..len], CLASSIC_CAN_MTU).unwrap() {
                let mut bytes = segment.as_bytes().to_vec();
                damage(segment_index, &mut bytes);
                segment_index += 1;
                match gateway.push_segment(&bytes) {
                    Ok(Some(frame)) => forwarded = Some(frame.to_vec()),
                    Ok(None) => {}
                    Err(error) => errors.push(error),
                }
            }
            if let Some(frame) = forwarded {
                let reply = world.server.handle(&frame);
                gateway.push_frame(&reply).unwrap();
                let mut reassembler = Reassembler::new(&mut device_rx);
                while let Some(segment) = gateway.poll_segment() {
                    assert!(segment.as_bytes().len() <= CLASSIC_CAN_MTU);
                    if let Some(frame) = reassembler.push(segment.as_bytes()).unwrap() {
                        let frame = frame.to_vec();
                        world.device_mut().handle_frame(now, &frame);
                    }
                }
                assert!(!gateway.has_segments());
            }
        }
        world.drain_events();
        let next = world.device.as_ref().unwrap().poll_timeout().unwrap_or(now);
        world.now = next.max(syssync_device::Instant(now.0 + 1));
    }
    (done(world), errors)
}

#[test]
fn update_over_classic_can() {
    // Proves a whole update through the gateway with 8-byte segments, the
    // frames arriving at both ends unchanged.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release.clone());
    let (confirmed, errors) = run_through_gateway(&mut world, |_, _| {}, |w| w.confirmed(1));
    assert!(confirmed, "events: {:?}", world.recent_events());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(world.model().running.sha256, sha256(&release.files[0]));
    assert_eq!(
        world.installed_file("ca.pem"),
        Some(release.files[2].clone())
    );
}

#[test]
fn damaged_segment_dropped_at_gateway() {
    // Proves that a bit flipped in one segment is caught by the frame CRC at
    // the gateway, which forwards nothing, and the device's retry succeeds.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release.clone());
    let (confirmed, errors) = run_through_gateway(
        &mut world,
        |index, bytes| {
            if index == 20 {
                bytes[3] ^= 0x40;
            }
        },
        |w| w.confirmed(1),
    );
    assert!(confirmed);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(
        errors[0],
        GatewayError::Frame(FrameError::CrcMismatch { .. })
    ));
    assert!(!world
        .events
        .contains(&Event::FrameRejected(FrameError::BadMac)));
}

#[test]
fn gateway_buffers_bounded() {
    // Proves that the gateway refuses frames larger than its buffers instead of growing.
    let mut up = [0u8; 64];
    let mut down = [0u8; 64];
    let mut gateway = Gateway::new(&mut up, &mut down, CLASSIC_CAN_MTU).unwrap();
    let mut world = World::new();
    world.server.assign(1, standard_release());
    assert!(world.run_until(100, |w| !w.server.sent.is_empty()));
    let reply = world.server.sent[0].clone();
    assert!(reply.len() > 64, "the offer is {} bytes", reply.len());
    assert_eq!(
        gateway.push_frame(&reply),
        Err(GatewayError::TooLong {
            len: reply.len(),
            capacity: 64
        })
    );
    let first = [0x41, 0x00, 1, 2, 3, 4, 5, 6];
    assert!(matches!(
        gateway.push_segment(&first),
        Err(GatewayError::Segment(_))
    ));
    assert_eq!(
        Gateway::new(&mut [0u8; 8], &mut [0u8; 8], 4).err(),
        Some(GatewayError::Segment(
            syssync_proto::segment::SegmentError::InvalidMtu(4)
        ))
    );
}
