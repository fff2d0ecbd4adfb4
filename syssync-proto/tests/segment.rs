//! Segmentation for classic CAN and CAN FD: frames of any length survive the
//! trip, and lost, duplicated, reordered or oversized segments give typed errors.

use proptest::collection::vec;
use proptest::prelude::*;
use syssync_proto::segment::{
    Reassembler, SegmentError, Segmenter, CAN_FD_MTU, CLASSIC_CAN_MTU, MAX_SEGMENTED_LEN,
};

fn segments(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    Segmenter::new(frame, mtu)
        .unwrap()
        .map(|segment| segment.as_bytes().to_vec())
        .collect()
}

fn reassemble(segments: &[Vec<u8>], capacity: usize) -> Result<Vec<u8>, SegmentError> {
    let mut buffer = vec![0u8; capacity];
    let mut reassembler = Reassembler::new(&mut buffer);
    let mut complete = None;
    for segment in segments {
        if let Some(frame) = reassembler.push(segment)? {
            complete = Some(frame.to_vec());
        }
    }
    Ok(complete.expect("no frame completed"))
}

proptest! {
    #[test]
    fn frames_survive_segmentation(frame in vec(any::<u8>(), 1..5000), mtu in 8usize..=64) {
        let parts = segments(&frame, mtu);
        prop_assert_eq!(parts.len(), Segmenter::new(&frame, mtu).unwrap().segment_count());
        for part in &parts {
            prop_assert!(part.len() <= mtu);
        }
        prop_assert_eq!(reassemble(&parts, 5000).unwrap(), frame);
    }

    #[test]
    fn arbitrary_segments_never_panic(parts in vec(vec(any::<u8>(), 0..70), 0..40)) {
        let mut buffer = [0u8; 256];
        let mut reassembler = Reassembler::new(&mut buffer);
        for part in &parts {
            if let Ok(Some(frame)) = reassembler.push(part) {
                prop_assert!(frame.len() <= 256);
            }
        }
    }
}

#[test]
fn segment_counts_for_can_links() {
    let check_in = [0u8; 30];
    assert_eq!(segments(&check_in, CLASSIC_CAN_MTU).len(), 5);
    assert_eq!(segments(&check_in, CAN_FD_MTU).len(), 1);
    let chunk = [0u8; 1040];
    assert_eq!(segments(&chunk, CLASSIC_CAN_MTU).len(), 149);
    assert_eq!(segments(&chunk, CAN_FD_MTU).len(), 17);
}

#[test]
fn lost_segment_is_a_sequence_gap() {
    let frame: Vec<u8> = (0..100).collect();
    let mut parts = segments(&frame, CLASSIC_CAN_MTU);
    parts.remove(3);
    assert_eq!(
        reassemble(&parts, 256),
        Err(SegmentError::SequenceGap {
            expected: 3,
            received: 4
        })
    );
}

#[test]
fn duplicated_segment_is_a_sequence_gap() {
    let frame: Vec<u8> = (0..100).collect();
    let mut parts = segments(&frame, CLASSIC_CAN_MTU);
    let copy = parts[2].clone();
    parts.insert(3, copy);
    assert_eq!(
        reassemble(&parts, 256),
        Err(SegmentError::SequenceGap {
            expected: 3,
            received: 2
        })
    );
}

#[test]
fn reordered_segments_are_a_sequence_gap() {
    let frame: Vec<u8> = (0..100).collect();
    let mut parts = segments(&frame, CLASSIC_CAN_MTU);
    parts.swap(4, 5);
    assert_eq!(
        reassemble(&parts, 256),
        Err(SegmentError::SequenceGap {
            expected: 4,
            received: 5
        })
    );
}

#[test]
fn sequence_wraps_after_63() {
    let frame: Vec<u8> = (0..1000).map(|i| i as u8).collect();
    let parts = segments(&frame, CLASSIC_CAN_MTU);
    assert!(parts.len() > 64);
    assert_eq!(parts[63][0], 0x80 | 63);
    assert_eq!(parts[64][0], 0x80);
    assert_eq!(reassemble(&parts, 1000).unwrap(), frame);
}

#[test]
fn declared_length_beyond_buffer_is_rejected_at_first_segment() {
    let frame = vec![7u8; 300];
    let parts = segments(&frame, CLASSIC_CAN_MTU);
    let mut buffer = [0u8; 200];
    let mut reassembler = Reassembler::new(&mut buffer);
    assert_eq!(
        reassembler.push(&parts[0]),
        Err(SegmentError::TooLong {
            declared: 300,
            capacity: 200
        })
    );
    assert_eq!(
        reassembler.push(&parts[1]),
        Err(SegmentError::UnexpectedConsecutive)
    );
}

#[test]
fn malformed_segments_are_rejected() {
    let mut buffer = [0u8; 64];
    let mut reassembler = Reassembler::new(&mut buffer);
    assert_eq!(reassembler.push(&[]), Err(SegmentError::Empty));
    assert_eq!(
        reassembler.push(&[0xC0, 1, 2]),
        Err(SegmentError::ReservedKind(0xC0))
    );
    assert_eq!(reassembler.push(&[0x00]), Err(SegmentError::Empty));
    assert_eq!(
        reassembler.push(&[0x05, 1, 2]),
        Err(SegmentError::Truncated {
            declared: 5,
            carried: 2
        })
    );
    assert_eq!(
        reassembler.push(&[0x81, 1]),
        Err(SegmentError::UnexpectedConsecutive)
    );
    assert_eq!(
        reassembler.push(&[0x40, 0x03, 1, 2, 3]),
        Err(SegmentError::NotSegmented { declared: 3 })
    );
    assert_eq!(reassembler.push(&[0x40, 0x00]), Err(SegmentError::Empty));
}

#[test]
fn single_segment_padding_is_ignored() {
    let mut buffer = [0u8; 64];
    let mut reassembler = Reassembler::new(&mut buffer);
    assert_eq!(
        reassembler.push(&[0x03, 9, 8, 7, 0xCC, 0xCC]).unwrap(),
        Some(&[9u8, 8, 7][..])
    );
}

#[test]
fn new_transfer_drops_an_incomplete_one() {
    let first: Vec<u8> = (0..50).collect();
    let second: Vec<u8> = (100..120).collect();
    let first_parts = segments(&first, CLASSIC_CAN_MTU);
    let second_parts = segments(&second, CLASSIC_CAN_MTU);
    let mut buffer = [0u8; 128];
    let mut reassembler = Reassembler::new(&mut buffer);
    for part in &first_parts[..3] {
        assert_eq!(reassembler.push(part), Ok(None));
    }
    let mut complete = None;
    for part in &second_parts {
        if let Some(frame) = reassembler.push(part).unwrap() {
            complete = Some(frame.to_vec());
        }
    }
    assert_eq!(complete, Some(second));
    assert_eq!(reassembler.interrupted_transfers(), 1);
}

#[test]
fn segmenter_rejects_bad_arguments() {
    assert_eq!(
        Segmenter::new(&[1], 7).err(),
        Some(SegmentError::InvalidMtu(7))
    );
    assert_eq!(
        Segmenter::new(&[1], 65).err(),
        Some(SegmentError::InvalidMtu(65))
    );
    assert_eq!(
        Segmenter::new(&[], 8).err(),
        Some(SegmentError::InvalidFrameLength(0))
    );
    let long = vec![0u8; MAX_SEGMENTED_LEN + 1];
    assert_eq!(
        Segmenter::new(&long, 8).err(),
        Some(SegmentError::InvalidFrameLength(MAX_SEGMENTED_LEN + 1))
    );
}
