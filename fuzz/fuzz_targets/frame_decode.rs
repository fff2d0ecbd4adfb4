//! Feeds arbitrary bytes to the frame parser and to both message decoders.
//!
//! To reach the body decoders past the CRC and tag checks, the target also
//! seals the input's tail as a frame body under a fixed key and opens it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syssync_proto::frame::{crc32, Binding, Frame};
use syssync_proto::{Crypto, DeviceId, DeviceKey, RustCrypto};

const KEY: DeviceKey = DeviceKey([0x42; 32]);

fn seal(kind: u8, body: &[u8], direction: u8, binding: Binding) -> Vec<u8> {
    let mut frame = vec![1, kind];
    frame.extend_from_slice(body);
    let mac = RustCrypto.hmac_sha256(
        &KEY.0,
        &[
            &[direction],
            &binding.device.0.to_le_bytes(),
            &binding.counter.to_le_bytes(),
            &frame,
        ],
    );
    frame.extend_from_slice(&mac[..8]);
    let crc = crc32(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

fuzz_target!(|data: &[u8]| {
    let binding = Binding {
        device: DeviceId(42),
        counter: 7,
    };
    if let Ok(frame) = Frame::parse(data) {
        let _ = frame.uplink_header();
        let _ = frame.open_uplink(&RustCrypto, &KEY);
        let _ = frame.open_downlink(&RustCrypto, &KEY, binding);
    }
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let kind = if kind & 0x80 == 0 {
        0x01 + kind % 5
    } else {
        0x81 + kind % 8
    };
    if kind & 0x80 == 0 {
        // The uplink tag is bound to the header inside the body; seal with
        // whatever header the body claims, so that the MAC check passes.
        let downlink_frame = seal(kind, body, b'U', binding);
        if let Ok(frame) = Frame::parse(&downlink_frame) {
            if let Ok(header) = frame.uplink_header() {
                let sealed = seal(kind, body, b'U', header.into());
                if let Ok(frame) = Frame::parse(&sealed) {
                    let _ = frame.open_uplink(&RustCrypto, &KEY);
                }
            }
        }
    } else {
        let sealed = seal(kind, body, b'D', binding);
        if let Ok(frame) = Frame::parse(&sealed) {
            let _ = frame.open_downlink(&RustCrypto, &KEY, binding);
        }
    }
});
