//! Scenario test of the blocking driver over an in-memory stream that
//! carries length-delimited frames to the server stub.

mod common;

use std::convert::Infallible;

use common::*;
use syssync_device::blocking::{read_frame, write_frame, BlockingDriver, DriverError};
use syssync_device::BootPhase;

/// A stream whose far end is the server stub.
struct StubStream {
    server: ServerStub,
    written: Vec<u8>,
    readable: Vec<u8>,
}

impl embedded_io::ErrorType for StubStream {
    type Error = Infallible;
}

impl embedded_io::Write for StubStream {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.written.extend_from_slice(buf);
        while self.written.len() >= 2 {
            let len = usize::from(u16::from_le_bytes([self.written[0], self.written[1]]));
            if self.written.len() < 2 + len {
                break;
            }
            let frame: Vec<u8> = self.written.drain(..2 + len).skip(2).collect();
            let reply = self.server.handle(&frame);
            self.readable
                .extend_from_slice(&(reply.len() as u16).to_le_bytes());
            self.readable.extend_from_slice(&reply);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl embedded_io::Read for StubStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let take = buf.len().min(self.readable.len());
        buf[..take].copy_from_slice(&self.readable[..take]);
        self.readable.drain(..take);
        Ok(take)
    }
}

#[test]
fn update_through_blocking_driver() {
    // Proves that the blocking driver carries a whole update over a stream
    // with length-delimited frames.
    let release = standard_release();
    let mut world = World::new();
    let mut server = ServerStub::new();
    server.assign(1, release.clone());
    let mut driver = BlockingDriver::new(StubStream {
        server,
        written: Vec::new(),
        readable: Vec::new(),
    });
    for _ in 0..2_000 {
        if world.confirmed(1) {
            break;
        }
        let now = world.now;
        let wake = driver.poll(world.device_mut(), now).unwrap();
        world.drain_events();
        world.now = wake.unwrap_or(now).max(syssync_device::Instant(now.0 + 1));
    }
    assert!(world.confirmed(1), "events: {:?}", world.recent_events());
    assert_eq!(world.model().phase, BootPhase::Idle);
    assert_eq!(world.model().running.sha256, sha256(&release.files[0]));
    let stream = driver.into_inner();
    assert!(stream.written.is_empty());
    assert!(stream.readable.is_empty());
}

#[test]
fn frame_codec_checks_lengths() {
    // Proves the length-delimited framing and that an announced length above
    // the protocol maximum is refused before reading it.
    let mut out = [0u8; 8];
    let mut writer: &mut [u8] = &mut out;
    write_frame(&mut writer, b"abc").unwrap();
    let bytes = out[..5].to_vec();
    assert_eq!(bytes, [3, 0, b'a', b'b', b'c']);
    let mut buf = [0u8; 8];
    assert_eq!(read_frame(&mut &bytes[..], &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"abc");
    let long = [0xFF, 0xFF, 0];
    assert_eq!(
        read_frame(&mut &long[..], &mut buf),
        Err(DriverError::FrameTooLong(0xFFFF))
    );
    assert_eq!(
        read_frame(&mut &bytes[..3], &mut buf),
        Err(DriverError::UnexpectedEof)
    );
}
