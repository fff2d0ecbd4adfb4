//! The device engine's cost per downloaded chunk: receive the frame (CRC-32,
//! MAC, decode), hash the data, write it to `flash-sim` through rollback-fsm's
//! staging, and encode the next chunk request.
//!
//! Run with `cargo bench -p benches --bench device`. The image is the
//! 159,208-byte Cortex-M4 `synthesizer/1.bin`; a new device starts when a
//! download ends, outside the measurement. `flash-sim` programs byte by byte
//! in RAM, so the flash part of the figure is the simulator's, not a chip's.
// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use benches::corpus;
use benches::device_rig::Rig;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn per_chunk(c: &mut Criterion) {
    let image = match corpus::load_verified(&corpus::bench_data_dir(), "synthesizer/1.bin") {
        Ok(image) => image,
        Err(error) => panic!("cannot load the benchmark image: {error}"),
    };
    let mut group = c.benchmark_group("engine-chunk");
    for chunk_size in [1024u16, 4096] {
        group.throughput(Throughput::Bytes(u64::from(chunk_size)));
        group.bench_function(BenchmarkId::new("receive-verify-write", chunk_size), |b| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                let mut rig: Option<Rig> = None;
                for _ in 0..iters {
                    let current = match rig.as_mut() {
                        Some(current) => current,
                        None => rig.insert(
                            Rig::new(image.clone(), chunk_size).expect("rig reaches the download"),
                        ),
                    };
                    let started = Instant::now();
                    let sent = current.receive_chunk();
                    measured += started.elapsed();
                    let more = match sent {
                        Some(len) => current
                            .prepare_next(len)
                            .expect("the mini server replies to chunk requests"),
                        None => false,
                    };
                    if !more {
                        rig = None;
                    }
                }
                measured
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args()
}

criterion_group! {
    name = device;
    config = config();
    targets = per_chunk
}
criterion_main!(device);
