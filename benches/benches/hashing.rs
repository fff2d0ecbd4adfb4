//! CRC-32 and SHA-256 over the firmware corpus.
//!
//! Run with `cargo bench -p benches --bench hashing`. Loading checks every
//! image against its `SHA256SUMS` and stops with an error naming the file.
// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use benches::corpus;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use syssync_proto::{Crypto, RustCrypto};

fn hashing(c: &mut Criterion) {
    let images = match corpus::load_all() {
        Ok(images) => images,
        Err(error) => panic!("cannot load the firmware corpus: {error}"),
    };
    let mut group = c.benchmark_group("corpus");
    for (name, bytes) in &images {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(BenchmarkId::new("crc32", name), |b| {
            b.iter(|| syssync_proto::frame::crc32(black_box(bytes)))
        });
        group.bench_function(BenchmarkId::new("sha256", name), |b| {
            b.iter(|| Sha256::digest(black_box(bytes)))
        });
        // The same digest in the engine's 4 KiB chunks through the `Crypto` trait.
        group.bench_function(BenchmarkId::new("sha256-4k-chunks", name), |b| {
            b.iter(|| {
                let parts: Vec<&[u8]> = bytes.chunks(4096).collect();
                RustCrypto.sha256(black_box(&parts))
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

criterion_group! {
    name = corpus_hashing;
    config = config();
    targets = hashing
}
criterion_main!(corpus_hashing);
