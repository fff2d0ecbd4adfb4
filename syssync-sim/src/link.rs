//! Link models: the lossy path from a device or gateway to the server, and
//! the CAN link between a gateway and the devices behind it.
//!
//! A frame on a direct link is lost as a whole with the configured
//! probability. On a CAN link the frame is split with
//! [`syssync_proto::segment::Segmenter`], each segment can be lost, and the
//! receiving side rebuilds the frame with [`Reassembler`]; a frame arrives only
//! if the reassembler returns it whole.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use syssync_proto::segment::{Reassembler, SegmentError, Segmenter};

use crate::queue::SimTime;

/// Time one CAN segment occupies the bus, in microseconds: a classic CAN frame
/// with 8 data bytes at 500 kbit/s is about 130 bits including stuffing.
/// The same figure is used for CAN FD, because 64 bytes at a 2 Mbit/s data
/// phase take about as long. This is an estimate, not a bus timing model.
pub const SEGMENT_TIME_US: u64 = 260;

/// Counters of one link class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Frames handed to the link.
    pub frames_sent: u64,
    /// Frames that did not arrive.
    pub frames_lost: u64,
    /// CAN segments sent (0 on direct links).
    pub segments_sent: u64,
    /// CAN segments lost.
    pub segments_lost: u64,
    /// Bytes of all CAN segments sent, PCI bytes included.
    pub segment_bytes: u64,
    /// Frames that the reassembler dropped with an error (a sequence gap) or
    /// left incomplete because their last segments were lost.
    pub reassembly_failures: u64,
}

/// A lossy link to the server with latency and jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirectLink {
    /// Probability (0..1) that a frame is lost.
    pub loss: f64,
    /// One-way latency in milliseconds.
    pub latency_ms: u32,
    /// Uniform extra latency of 0..=jitter_ms milliseconds.
    pub jitter_ms: u32,
}

impl DirectLink {
    /// Sends one frame: returns its delay in milliseconds, or `None` if it is lost.
    pub fn transmit(&self, rng: &mut ChaCha8Rng, stats: &mut LinkStats) -> Option<SimTime> {
        stats.frames_sent += 1;
        if self.loss > 0.0 && rng.gen_bool(self.loss) {
            stats.frames_lost += 1;
            return None;
        }
        let jitter = if self.jitter_ms > 0 {
            rng.gen_range(0..=self.jitter_ms)
        } else {
            0
        };
        Some(u64::from(self.latency_ms) + u64::from(jitter))
    }
}

/// A CAN or CAN FD link between a gateway and one device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CanLink {
    /// Payload bytes per CAN frame (8..=64).
    pub mtu: usize,
    /// Probability (0..=1) that one segment is lost.
    pub segment_loss: f64,
}

impl CanLink {
    /// Carries `frame` across the link segment by segment, rebuilding it in
    /// `buffer` on the far side. Returns the bus time in milliseconds (rounded
    /// up) if the frame arrived whole, `None` if it did not.
    pub fn carry(
        &self,
        frame: &[u8],
        buffer: &mut [u8],
        rng: &mut ChaCha8Rng,
        stats: &mut LinkStats,
    ) -> Result<Option<SimTime>, SegmentError> {
        stats.frames_sent += 1;
        let segmenter = Segmenter::new(frame, self.mtu)?;
        let mut reassembler = Reassembler::new(buffer);
        let mut segments = 0u64;
        let mut arrived = false;
        let mut failed = false;
        for segment in segmenter {
            segments += 1;
            stats.segments_sent += 1;
            stats.segment_bytes += segment.as_bytes().len() as u64;
            if self.segment_loss > 0.0 && rng.gen_bool(self.segment_loss) {
                stats.segments_lost += 1;
                continue;
            }
            match reassembler.push(segment.as_bytes()) {
                Ok(Some(rebuilt)) => arrived = rebuilt == frame,
                Ok(None) => {}
                // A lost segment shows up as a sequence gap or an unexpected
                // consecutive segment; the rest of the frame is discarded.
                Err(_) => failed = true,
            }
        }
        let bus_time = (segments * SEGMENT_TIME_US).div_ceil(1000);
        if arrived && !failed {
            Ok(Some(bus_time))
        } else {
            stats.frames_lost += 1;
            stats.reassembly_failures += 1;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn lossless_can_link_rebuilds_frames() {
        // Proves that a frame crosses an 8-byte CAN link intact through the real segmenter.
        let link = CanLink {
            mtu: 8,
            segment_loss: 0.0,
        };
        let frame: Vec<u8> = (0..1100u32).map(|i| (i * 7) as u8).collect();
        let mut buffer = vec![0; 4160];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut stats = LinkStats::default();
        let delay = link
            .carry(&frame, &mut buffer, &mut rng, &mut stats)
            .unwrap();
        assert!(delay.is_some());
        assert_eq!(stats.frames_lost, 0);
        // 6 bytes in the first segment, 7 in each consecutive one.
        assert_eq!(stats.segments_sent, 1 + (1100 - 6_u64).div_ceil(7));
    }

    #[test]
    fn lost_segment_loses_the_frame() {
        // Proves that the loss of any one segment makes the reassembler drop the frame.
        let link = CanLink {
            mtu: 8,
            segment_loss: 0.005,
        };
        let frame = vec![0x5A; 1000];
        let mut buffer = vec![0; 4160];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut stats = LinkStats::default();
        let mut arrived = 0;
        for _ in 0..200 {
            if link
                .carry(&frame, &mut buffer, &mut rng, &mut stats)
                .unwrap()
                .is_some()
            {
                arrived += 1;
            }
        }
        assert!(stats.segments_lost > 0);
        assert_eq!(arrived + stats.frames_lost, 200);
        assert_eq!(stats.frames_lost, stats.reassembly_failures);
        assert!(stats.frames_lost >= 1);
        assert!(stats.frames_lost < 200);
    }

    #[test]
    fn direct_link_loses_about_the_configured_share() {
        // Proves that the loss probability is applied per frame.
        let link = DirectLink {
            loss: 0.1,
            latency_ms: 50,
            jitter_ms: 10,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut stats = LinkStats::default();
        for _ in 0..10_000 {
            if let Some(delay) = link.transmit(&mut rng, &mut stats) {
                assert!((50..=60).contains(&delay));
            }
        }
        assert!((800..1200).contains(&stats.frames_lost));
    }
}
