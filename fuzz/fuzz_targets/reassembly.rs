//! Splits arbitrary bytes into segments and feeds them to a reassembler with a
//! small buffer; also checks that segmenting and reassembling is lossless.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syssync_proto::segment::{Reassembler, Segmenter};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };

    // Arbitrary segments: each starts with its length byte.
    let mut buffer = [0u8; 300];
    let mut reassembler = Reassembler::new(&mut buffer);
    let mut input = rest;
    while let Some((&len, tail)) = input.split_first() {
        let len = usize::from(len % 65).min(tail.len());
        let (segment, tail) = tail.split_at(len);
        if let Ok(Some(frame)) = reassembler.push(segment) {
            assert!(frame.len() <= 300);
        }
        input = tail;
    }

    // Round trip at the MTU chosen by the first byte.
    let mtu = 8 + usize::from(control % 57);
    if let Ok(segmenter) = Segmenter::new(rest, mtu) {
        let mut buffer = vec![0u8; rest.len()];
        let mut reassembler = Reassembler::new(&mut buffer);
        let mut complete = None;
        for segment in segmenter {
            assert!(segment.as_bytes().len() <= mtu);
            if let Some(frame) = reassembler.push(segment.as_bytes()).expect("own segments") {
                complete = Some(frame.to_vec());
            }
        }
        assert_eq!(complete.as_deref(), Some(rest));
    }
});
