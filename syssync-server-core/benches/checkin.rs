//! Criterion benchmark of check-in handling on an in-memory fleet of 1,000,000
//! devices, with and without the MAC check. Throughput is reported in
//! elements (decisions) per second on one core.
// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use syssync_proto::message::UplinkHeader;

#[allow(dead_code, unreachable_pub)]
mod common {
    pub mod fleet;
}

use common::fleet::Fleet;

const DEVICES: u64 = 1_000_000;

fn check_in(c: &mut Criterion) {
    let mut fleet = Fleet::build(DEVICES);
    let mut group = c.benchmark_group("checkin");
    group.throughput(Throughput::Elements(1));

    let mut position = 0u64;
    group.bench_function("no-mac", |b| {
        let check_in = fleet.check_in.clone();
        b.iter(|| {
            if position == DEVICES {
                position = 0;
                fleet.next_round();
            }
            let header = UplinkHeader {
                device: fleet.visit(position),
                counter: fleet.round,
            };
            position += 1;
            let outcome = fleet.server.handle_message(fleet.now, header, &check_in);
            std::hint::black_box(outcome.reply);
        })
    });

    // Frames are encoded in batches outside the timed part, as a device would.
    fleet.next_round();
    let mut position = 0u64;
    let mut reply = [0u8; syssync_proto::MAX_FRAME_LEN];
    let mut frames = vec![[0u8; 64]; 65_536];
    let mut lengths = vec![0usize; 65_536];
    group.bench_function("with-mac", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            let mut remaining = iterations;
            while remaining > 0 {
                let count = remaining.min(frames.len() as u64) as usize;
                for index in 0..count {
                    if position == DEVICES {
                        position = 0;
                        fleet.next_round();
                    }
                    lengths[index] = fleet.frame(position, &mut frames[index]);
                    position += 1;
                }
                let start = Instant::now();
                for index in 0..count {
                    let frame = &frames[index][..lengths[index]];
                    let outcome = fleet.server.handle_frame(fleet.now, frame, &mut reply);
                    std::hint::black_box(outcome.reply_len);
                }
                elapsed += start.elapsed();
                remaining -= count as u64;
            }
            elapsed
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = check_in
}
criterion_main!(benches);
