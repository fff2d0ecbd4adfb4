//! A blocking driver over any `embedded-io` stream (feature `blocking`).
//!
//! Frames travel length-delimited: a 2-byte little-endian length, then the
//! frame. The driver suits a socket or a modem UART that blocks on reads and
//! reports a read timeout as an error. The engine then sends the request
//! again on its own schedule.
//!
//! ```no_run
//! # fn run<B, S, C, T>(
//! #     mut engine: syssync_device::Engine<B, S, C>,
//! #     socket: T,
//! #     clock: impl Fn() -> syssync_device::Instant,
//! #     sleep_until: impl Fn(syssync_device::Instant),
//! # ) where
//! #     B: syssync_device::BootControl,
//! #     S: syssync_device::FileStore,
//! #     C: syssync_proto::Crypto,
//! #     T: embedded_io::Read + embedded_io::Write,
//! # {
//! use syssync_device::blocking::BlockingDriver;
//!
//! let mut driver = BlockingDriver::new(socket);
//! loop {
//!     let wake = driver.poll(&mut engine, clock()).ok().flatten();
//!     while let Some(event) = engine.poll_event() {
//!         // Bring the network up, stop using files, choose a reset moment...
//!         let _ = event;
//!     }
//!     if let Some(wake) = wake {
//!         sleep_until(wake);
//!     }
//! }
//! # }
//! ```

use core::fmt;

use embedded_io::{Read, ReadExactError, Write};
use syssync_proto::{Crypto, MAX_FRAME_LEN};

use crate::boot::BootControl;
use crate::store::FileStore;
use crate::time::Instant;
use crate::Engine;

/// Maximum number of request and reply exchanges in one [`BlockingDriver::poll`].
pub const MAX_EXCHANGES_PER_POLL: usize = 64;

/// Error that stopped the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverError<E> {
    /// The stream returned an error (a read timeout included).
    Io(E),
    /// The stream ended in the middle of a frame.
    UnexpectedEof,
    /// A length prefix announced a frame longer than the protocol allows.
    FrameTooLong(usize),
}

impl<E: fmt::Debug> fmt::Display for DriverError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Io(error) => write!(f, "stream error: {error:?}"),
            DriverError::UnexpectedEof => f.write_str("stream ended in the middle of a frame"),
            DriverError::FrameTooLong(len) => write!(
                f,
                "announced frame of {len} bytes exceeds the maximum of {MAX_FRAME_LEN}"
            ),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for DriverError<E> {}

impl<E> From<ReadExactError<E>> for DriverError<E> {
    fn from(error: ReadExactError<E>) -> Self {
        match error {
            ReadExactError::UnexpectedEof => DriverError::UnexpectedEof,
            ReadExactError::Other(error) => DriverError::Io(error),
        }
    }
}

/// Writes one length-delimited frame.
pub fn write_frame<T: Write>(stream: &mut T, frame: &[u8]) -> Result<(), DriverError<T::Error>> {
    let len = u16::try_from(frame.len()).map_err(|_| DriverError::FrameTooLong(frame.len()))?;
    stream
        .write_all(&len.to_le_bytes())
        .map_err(DriverError::Io)?;
    stream.write_all(frame).map_err(DriverError::Io)?;
    stream.flush().map_err(DriverError::Io)
}

/// Reads one length-delimited frame into `buf`; returns its length.
pub fn read_frame<T: Read>(stream: &mut T, buf: &mut [u8]) -> Result<usize, DriverError<T::Error>> {
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix)?;
    let len = usize::from(u16::from_le_bytes(prefix));
    if len > MAX_FRAME_LEN || len > buf.len() {
        return Err(DriverError::FrameTooLong(len));
    }
    stream.read_exact(&mut buf[..len])?;
    Ok(len)
}

/// Runs an [`Engine`] over a blocking stream.
pub struct BlockingDriver<T> {
    stream: T,
    buf: [u8; MAX_FRAME_LEN],
}

impl<T: Read + Write> BlockingDriver<T> {
    /// Wraps a connected stream.
    pub fn new(stream: T) -> Self {
        BlockingDriver {
            stream,
            buf: [0; MAX_FRAME_LEN],
        }
    }

    /// Returns the stream.
    pub fn into_inner(self) -> T {
        self.stream
    }

    /// Runs the engine's timers and background work, sends every request that
    /// is due and feeds each reply back, at most [`MAX_EXCHANGES_PER_POLL`]
    /// times. Returns when the engine next wants to be called.
    ///
    /// The network counts as up while the driver runs.
    pub fn poll<B: BootControl, S: FileStore, C: Crypto>(
        &mut self,
        engine: &mut Engine<B, S, C>,
        now: Instant,
    ) -> Result<Option<Instant>, DriverError<T::Error>> {
        engine.set_network(now, true);
        for _ in 0..MAX_EXCHANGES_PER_POLL {
            engine.handle_timeout(now);
            if let Some(len) = engine.poll_transmit(now, &mut self.buf) {
                write_frame(&mut self.stream, &self.buf[..len])?;
                let reply = read_frame(&mut self.stream, &mut self.buf)?;
                engine.handle_frame(now, &self.buf[..reply]);
                continue;
            }
            match engine.poll_timeout() {
                Some(wake) if wake <= now => continue,
                wake => return Ok(wake),
            }
        }
        Ok(engine.poll_timeout())
    }
}
