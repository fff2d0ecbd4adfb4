//! Encode and decode of every protocol message, and the MAC and signature checks.
//!
//! Run with `cargo bench -p benches --bench proto`. Decoding includes
//! `Frame::parse` (length, CRC-32, version, type) and the tag check, as a
//! receiver always does both.
// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use benches::samples::{self, ServerSamples};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use syssync_proto::frame::{encode_downlink, encode_uplink, Frame};
use syssync_proto::{CompactCrypto, Crypto, Manifest, RustCrypto, SaltyCrypto, MAX_FRAME_LEN};

fn uplink(c: &mut Criterion) {
    let crypto = RustCrypto;
    let key = samples::device_key();
    let mut group = c.benchmark_group("uplink");
    for (name, message) in samples::device_messages() {
        let mut out = [0u8; MAX_FRAME_LEN];
        let len = encode_uplink(&crypto, &key, samples::header(), &message, &mut out)
            .expect("sample device messages encode");
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                encode_uplink(
                    &crypto,
                    &key,
                    samples::header(),
                    black_box(&message),
                    &mut out,
                )
            })
        });
        let frame = out[..len].to_vec();
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                let frame = Frame::parse(black_box(&frame)).expect("valid frame");
                frame.open_uplink(&crypto, &key)
            })
        });
    }
    group.finish();
}

fn downlink(c: &mut Criterion) {
    let crypto = RustCrypto;
    let key = samples::device_key();
    let server = ServerSamples::new();
    let mut group = c.benchmark_group("downlink");
    for (name, message) in server.messages() {
        let mut out = [0u8; MAX_FRAME_LEN];
        let len = encode_downlink(&crypto, &key, samples::binding(), &message, &mut out)
            .expect("sample server messages encode");
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                encode_downlink(
                    &crypto,
                    &key,
                    samples::binding(),
                    black_box(&message),
                    &mut out,
                )
            })
        });
        let frame = out[..len].to_vec();
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                let frame = Frame::parse(black_box(&frame)).expect("valid frame");
                frame
                    .open_downlink(&crypto, &key, samples::binding())
                    .map(|message| message.message_type())
            })
        });
    }
    group.finish();
}

fn checks(c: &mut Criterion) {
    let crypto = RustCrypto;
    let key = samples::device_key();
    let server = ServerSamples::new();
    let mut group = c.benchmark_group("checks");

    // The tag is HMAC-SHA256 over the direction, device id, counter and frame bytes.
    for len in [32usize, 1_050, 4_110] {
        let frame = vec![0xA5u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("hmac-sha256", len), |b| {
            b.iter(|| crypto.hmac_sha256(&key.0, &[b"D", &[0; 12], black_box(&frame)]))
        });
    }
    group.throughput(Throughput::Elements(1));

    let mut out = [0u8; MAX_FRAME_LEN];
    let len = encode_uplink(
        &crypto,
        &key,
        samples::header(),
        &samples::steady_check_in(),
        &mut out,
    )
    .expect("check-in encodes");
    let frame = out[..len].to_vec();
    group.bench_function("frame-parse-crc-only/check-in", |b| {
        b.iter(|| Frame::parse(black_box(&frame)).map(|frame| frame.message_type()))
    });

    let signed = server.signed_manifest();
    let trusted = samples::trusted_keys();
    group.bench_function("manifest-verify-ed25519", |b| {
        b.iter(|| black_box(&signed).verify(&crypto, &trusted))
    });
    // The smaller backends, on the host: `salty` runs its portable field
    // arithmetic here, not the assembly it uses on a Cortex-M4.
    group.bench_function("manifest-verify-ed25519/salty", |b| {
        b.iter(|| black_box(&signed).verify(&SaltyCrypto, &trusted))
    });
    group.bench_function("manifest-verify-ed25519/compact", |b| {
        b.iter(|| black_box(&signed).verify(&CompactCrypto, &trusted))
    });
    group.bench_function("manifest-decode-only", |b| {
        b.iter(|| Manifest::decode(black_box(signed.body)))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

criterion_group! {
    name = proto;
    config = config();
    targets = uplink, downlink, checks
}
criterion_main!(proto);
