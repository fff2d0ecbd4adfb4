//! A gateway for devices on a small-MTU link (classic CAN, CAN FD).
//!
//! [`Gateway`] reassembles segments from a device into whole frames for the
//! server, and segments the server's replies for the device, in two
//! caller-provided buffers. It forwards bytes it cannot read or forge: every
//! frame carries a CRC-32 and a tag under the device's own key, so a change
//! on the way is caught at the far end. It checks only what needs no key
//! (length, CRC, version, type and direction), so that a damaged frame costs
//! no upstream traffic.

use core::fmt;

use syssync_proto::segment::{Reassembler, Segment, SegmentError, Segmenter, MAX_MTU, MIN_MTU};
use syssync_proto::{Frame, FrameError};

/// Error returned when the gateway rejects a segment or a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayError {
    /// Segmentation or reassembly failed.
    Segment(SegmentError),
    /// A reassembled or received frame failed its CRC, version or type check.
    Frame(FrameError),
    /// A frame travels in the wrong direction for this side of the gateway.
    WrongDirection,
    /// The frame for the device does not fit the downlink buffer.
    TooLong {
        /// Length of the frame.
        len: usize,
        /// Capacity of the buffer.
        capacity: usize,
    },
    /// The previous frame for the device has not been fully sent yet.
    Busy,
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::Segment(error) => write!(f, "segment rejected: {error}"),
            GatewayError::Frame(error) => write!(f, "frame rejected: {error}"),
            GatewayError::WrongDirection => f.write_str("frame travels in the wrong direction"),
            GatewayError::TooLong { len, capacity } => write!(
                f,
                "frame of {len} bytes exceeds the downlink buffer of {capacity}"
            ),
            GatewayError::Busy => f.write_str("previous frame for the device still being sent"),
        }
    }
}

impl core::error::Error for GatewayError {}

impl From<SegmentError> for GatewayError {
    fn from(error: SegmentError) -> Self {
        GatewayError::Segment(error)
    }
}

/// Forwards frames between one small-MTU device and the server.
#[derive(Debug)]
pub struct Gateway<'b> {
    uplink: Reassembler<'b>,
    downlink: &'b mut [u8],
    downlink_len: usize,
    segments_sent: usize,
    mtu: usize,
}

impl<'b> Gateway<'b> {
    /// Creates a gateway for a link whose frames carry `mtu` bytes, with a
    /// buffer for frames from the device and one for frames to it.
    ///
    /// Buffers of [`MAX_FRAME_LEN`](syssync_proto::MAX_FRAME_LEN) bytes hold
    /// any frame; smaller ones bound the chunk size the device may use.
    pub fn new(
        uplink: &'b mut [u8],
        downlink: &'b mut [u8],
        mtu: usize,
    ) -> Result<Self, GatewayError> {
        if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            return Err(SegmentError::InvalidMtu(mtu).into());
        }
        Ok(Gateway {
            uplink: Reassembler::new(uplink),
            downlink,
            downlink_len: 0,
            segments_sent: 0,
            mtu,
        })
    }

    /// Takes one segment from the device; returns the whole frame to send to
    /// the server when its last segment has arrived.
    pub fn push_segment(&mut self, segment: &[u8]) -> Result<Option<&[u8]>, GatewayError> {
        let Some(frame) = self.uplink.push(segment)? else {
            return Ok(None);
        };
        let parsed = Frame::parse(frame).map_err(GatewayError::Frame)?;
        if !parsed.message_type().is_uplink() {
            return Err(GatewayError::WrongDirection);
        }
        Ok(Some(frame))
    }

    /// Takes one frame from the server for the device.
    pub fn push_frame(&mut self, frame: &[u8]) -> Result<(), GatewayError> {
        if self.has_segments() {
            return Err(GatewayError::Busy);
        }
        let parsed = Frame::parse(frame).map_err(GatewayError::Frame)?;
        if parsed.message_type().is_uplink() {
            return Err(GatewayError::WrongDirection);
        }
        if frame.len() > self.downlink.len() {
            return Err(GatewayError::TooLong {
                len: frame.len(),
                capacity: self.downlink.len(),
            });
        }
        // Checks the length against the 14-bit segment length field.
        Segmenter::new(frame, self.mtu)?;
        self.downlink[..frame.len()].copy_from_slice(frame);
        self.downlink_len = frame.len();
        self.segments_sent = 0;
        Ok(())
    }

    /// Returns `true` while segments for the device wait in [`poll_segment`](Self::poll_segment).
    pub fn has_segments(&self) -> bool {
        self.downlink_len > 0
    }

    /// Returns the next segment to send to the device.
    pub fn poll_segment(&mut self) -> Option<Segment> {
        if self.downlink_len == 0 {
            return None;
        }
        let segmenter = Segmenter::new(&self.downlink[..self.downlink_len], self.mtu).ok()?;
        let count = segmenter.segment_count();
        let segment = segmenter.clone().nth(self.segments_sent);
        self.segments_sent += 1;
        if segment.is_none() || self.segments_sent >= count {
            self.downlink_len = 0;
            self.segments_sent = 0;
        }
        segment
    }

    /// Returns how many device frames lost their last segments.
    pub fn interrupted_transfers(&self) -> u32 {
        self.uplink.interrupted_transfers()
    }
}
