//! Segmentation and reassembly of frames for small-MTU links such as classic
//! CAN (8-byte payloads) and CAN FD (64 bytes).
//!
//! Each segment starts with one protocol control byte (PCI):
//!
//! ```text
//! PCI bits  segment       layout
//! 00LLLLLL  single        PCI, L data bytes (1..=63)
//! 01HHHHHH  first         PCI, low length byte, data; total length = H << 8 | low (1..=16383)
//! 10SSSSSS  consecutive   PCI, data; S = sequence number, 1, 2, .., 63, 0, 1, ..
//! 11xxxxxx  reserved      rejected
//! ```
//!
//! Bytes after the frame's end in the last segment are padding (CAN FD rounds a
//! payload up to its next DLC length) and are ignored. The reassembler works in
//! a caller-provided buffer and never sizes anything by a length from the wire:
//! a frame longer than the buffer is rejected at its first segment. A gateway
//! forwards whole frames and cannot alter one undetected, because the frame's
//! CRC and tag cover it end to end.

use core::fmt;

/// Payload size of a classic CAN frame.
pub const CLASSIC_CAN_MTU: usize = 8;
/// Payload size of a CAN FD frame.
pub const CAN_FD_MTU: usize = 64;
/// Smallest MTU a segmenter accepts.
pub const MIN_MTU: usize = 8;
/// Largest MTU a segmenter accepts.
pub const MAX_MTU: usize = 64;
/// Longest frame that can be segmented (14-bit length field).
pub const MAX_SEGMENTED_LEN: usize = 0x3FFF;

const KIND_MASK: u8 = 0xC0;
const SINGLE: u8 = 0x00;
const FIRST: u8 = 0x40;
const CONSECUTIVE: u8 = 0x80;
const SEQUENCE_MASK: u8 = 0x3F;

/// Error segmenting or reassembling a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentError {
    /// The MTU is outside [`MIN_MTU`]..=[`MAX_MTU`].
    InvalidMtu(usize),
    /// The frame is empty or longer than [`MAX_SEGMENTED_LEN`].
    InvalidFrameLength(usize),
    /// A segment had no bytes, or declared a length of zero.
    Empty,
    /// The PCI byte has the reserved kind `11`.
    ReservedKind(u8),
    /// A single segment declared more bytes than it carries.
    Truncated {
        /// Bytes declared.
        declared: usize,
        /// Bytes carried.
        carried: usize,
    },
    /// The declared frame length exceeds the reassembly buffer.
    TooLong {
        /// Bytes declared.
        declared: usize,
        /// Capacity of the buffer.
        capacity: usize,
    },
    /// A consecutive segment arrived with no transfer in progress.
    UnexpectedConsecutive,
    /// A consecutive segment had the wrong sequence number: one was lost,
    /// duplicated or reordered. The transfer was dropped.
    SequenceGap {
        /// Sequence number expected.
        expected: u8,
        /// Sequence number received.
        received: u8,
    },
    /// A first segment declared no more bytes than it carries itself; such a
    /// frame must be sent as a single segment.
    NotSegmented {
        /// Bytes declared.
        declared: usize,
    },
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentError::InvalidMtu(mtu) => {
                write!(f, "MTU {mtu} outside {MIN_MTU}..={MAX_MTU} bytes")
            }
            SegmentError::InvalidFrameLength(len) => {
                write!(
                    f,
                    "frame length {len} outside 1..={MAX_SEGMENTED_LEN} bytes"
                )
            }
            SegmentError::Empty => f.write_str("empty segment or zero declared length"),
            SegmentError::ReservedKind(pci) => write!(f, "reserved segment kind in PCI {pci:#04x}"),
            SegmentError::Truncated { declared, carried } => write!(
                f,
                "single segment declares {declared} bytes but carries {carried}"
            ),
            SegmentError::TooLong { declared, capacity } => write!(
                f,
                "frame of {declared} bytes exceeds the reassembly buffer of {capacity}"
            ),
            SegmentError::UnexpectedConsecutive => {
                f.write_str("consecutive segment without a first segment")
            }
            SegmentError::SequenceGap { expected, received } => write!(
                f,
                "segment sequence {received} where {expected} was expected; transfer dropped"
            ),
            SegmentError::NotSegmented { declared } => write!(
                f,
                "first segment carries its whole {declared}-byte frame; expected a single segment"
            ),
        }
    }
}

impl core::error::Error for SegmentError {}

/// One segment, at most [`MAX_MTU`] bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    bytes: [u8; MAX_MTU],
    len: u8,
}

impl Segment {
    /// The segment's bytes, PCI first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Segment(")?;
        for byte in self.as_bytes() {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// Splits one frame into segments of at most `mtu` bytes.
#[derive(Clone, Debug)]
pub struct Segmenter<'a> {
    frame: &'a [u8],
    mtu: usize,
    offset: usize,
    sequence: u8,
}

impl<'a> Segmenter<'a> {
    /// Prepares to segment `frame` for a link whose frames carry `mtu` bytes.
    pub fn new(frame: &'a [u8], mtu: usize) -> Result<Self, SegmentError> {
        if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            return Err(SegmentError::InvalidMtu(mtu));
        }
        if frame.is_empty() || frame.len() > MAX_SEGMENTED_LEN {
            return Err(SegmentError::InvalidFrameLength(frame.len()));
        }
        Ok(Self {
            frame,
            mtu,
            offset: 0,
            sequence: 0,
        })
    }

    /// Returns how many segments the frame takes in total.
    pub fn segment_count(&self) -> usize {
        let len = self.frame.len();
        if len < self.mtu {
            1
        } else {
            let after_first = len - (self.mtu - 2);
            1 + after_first.div_ceil(self.mtu - 1)
        }
    }
}

impl Iterator for Segmenter<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        let len = self.frame.len();
        if self.offset >= len {
            return None;
        }
        let mut segment = Segment {
            bytes: [0; MAX_MTU],
            len: 0,
        };
        let header_len = if self.offset > 0 {
            self.sequence = (self.sequence + 1) & SEQUENCE_MASK;
            segment.bytes[0] = CONSECUTIVE | self.sequence;
            1
        } else if len < self.mtu {
            // The length fits the 6-bit field because len < mtu <= 64.
            segment.bytes[0] = SINGLE | len as u8;
            1
        } else {
            segment.bytes[0] = FIRST | (len >> 8) as u8;
            segment.bytes[1] = (len & 0xFF) as u8;
            2
        };
        let take = (self.mtu - header_len).min(len - self.offset);
        segment.bytes[header_len..header_len + take]
            .copy_from_slice(&self.frame[self.offset..self.offset + take]);
        segment.len = (header_len + take) as u8;
        self.offset += take;
        Some(segment)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transfer {
    Idle,
    Receiving {
        declared: usize,
        received: usize,
        next_sequence: u8,
    },
}

/// Rebuilds frames from segments, in a caller-provided buffer.
///
/// Feed segments in arrival order with [`Reassembler::push`]; it returns the
/// frame when its last segment arrives. A lost, duplicated or reordered segment
/// drops the transfer with [`SegmentError::SequenceGap`], and the next first or
/// single segment starts afresh. A first or single segment that arrives during
/// an incomplete transfer drops that transfer (its last segments were lost),
/// counts it in [`Reassembler::interrupted_transfers`] and is then handled as usual.
#[derive(Debug)]
pub struct Reassembler<'b> {
    buffer: &'b mut [u8],
    transfer: Transfer,
    interrupted: u32,
}

impl<'b> Reassembler<'b> {
    /// Creates a reassembler that accepts frames up to `buffer.len()` bytes.
    pub fn new(buffer: &'b mut [u8]) -> Self {
        Self {
            buffer,
            transfer: Transfer::Idle,
            interrupted: 0,
        }
    }

    /// Returns `true` while a multi-segment transfer is incomplete.
    pub fn in_progress(&self) -> bool {
        matches!(self.transfer, Transfer::Receiving { .. })
    }

    /// Drops any incomplete transfer.
    pub fn reset(&mut self) {
        self.transfer = Transfer::Idle;
    }

    /// Accepts one segment; returns the whole frame when it is complete.
    pub fn push(&mut self, segment: &[u8]) -> Result<Option<&[u8]>, SegmentError> {
        let Some((&pci, data)) = segment.split_first() else {
            return Err(SegmentError::Empty);
        };
        match pci & KIND_MASK {
            SINGLE => self.push_single(pci, data),
            FIRST => self.push_first(pci, data),
            CONSECUTIVE => self.push_consecutive(pci, data),
            _ => Err(SegmentError::ReservedKind(pci)),
        }
    }

    /// Returns how many incomplete transfers were dropped because a new first
    /// or single segment arrived: each means the previous frame lost its last
    /// segments.
    pub fn interrupted_transfers(&self) -> u32 {
        self.interrupted
    }

    fn abandon(&mut self) {
        if self.in_progress() {
            self.interrupted = self.interrupted.saturating_add(1);
        }
        self.transfer = Transfer::Idle;
    }

    fn push_single(&mut self, pci: u8, data: &[u8]) -> Result<Option<&[u8]>, SegmentError> {
        self.abandon();
        let declared = usize::from(pci & SEQUENCE_MASK);
        if declared == 0 {
            return Err(SegmentError::Empty);
        }
        if data.len() < declared {
            return Err(SegmentError::Truncated {
                declared,
                carried: data.len(),
            });
        }
        if declared > self.buffer.len() {
            return Err(SegmentError::TooLong {
                declared,
                capacity: self.buffer.len(),
            });
        }
        self.buffer[..declared].copy_from_slice(&data[..declared]);
        Ok(Some(&self.buffer[..declared]))
    }

    fn push_first(&mut self, pci: u8, data: &[u8]) -> Result<Option<&[u8]>, SegmentError> {
        self.abandon();
        let Some((&low, data)) = data.split_first() else {
            return Err(SegmentError::Empty);
        };
        let declared = usize::from(pci & SEQUENCE_MASK) << 8 | usize::from(low);
        if declared == 0 {
            return Err(SegmentError::Empty);
        }
        if declared <= data.len() {
            return Err(SegmentError::NotSegmented { declared });
        }
        if declared > self.buffer.len() {
            return Err(SegmentError::TooLong {
                declared,
                capacity: self.buffer.len(),
            });
        }
        self.buffer[..data.len()].copy_from_slice(data);
        self.transfer = Transfer::Receiving {
            declared,
            received: data.len(),
            next_sequence: 1,
        };
        Ok(None)
    }

    fn push_consecutive(&mut self, pci: u8, data: &[u8]) -> Result<Option<&[u8]>, SegmentError> {
        let Transfer::Receiving {
            declared,
            received,
            next_sequence,
        } = self.transfer
        else {
            return Err(SegmentError::UnexpectedConsecutive);
        };
        let sequence = pci & SEQUENCE_MASK;
        if sequence != next_sequence {
            self.transfer = Transfer::Idle;
            return Err(SegmentError::SequenceGap {
                expected: next_sequence,
                received: sequence,
            });
        }
        if data.is_empty() {
            self.transfer = Transfer::Idle;
            return Err(SegmentError::Empty);
        }
        let take = data.len().min(declared - received);
        self.buffer[received..received + take].copy_from_slice(&data[..take]);
        let received = received + take;
        if received == declared {
            self.transfer = Transfer::Idle;
            return Ok(Some(&self.buffer[..declared]));
        }
        self.transfer = Transfer::Receiving {
            declared,
            received,
            next_sequence: (next_sequence + 1) & SEQUENCE_MASK,
        };
        Ok(None)
    }
}
