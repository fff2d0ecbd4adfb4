//! Measures check-in decisions per second on one core, with and without the
//! MAC check, and the live heap bytes per device of an in-memory fleet.
//!
//! `cargo run --release -p syssync-server-core --example checkin-throughput [DEVICES]`
//! (default 1000000 devices; building the fleet takes a few seconds).
#![allow(unsafe_code)] // The counting allocator must implement the unsafe GlobalAlloc trait.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use syssync_proto::message::UplinkHeader;

#[path = "../benches/common/fleet.rs"]
#[allow(dead_code, unreachable_pub)]
mod fleet;

/// Counts the bytes currently allocated, so that memory per device is measured
/// from the actual allocations rather than estimated from type sizes.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter only observes sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Returns the CPU time this thread has run, in nanoseconds, from Linux's
/// `/proc/thread-self/schedstat`; `None` where that file is missing.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Measures a closure in wall-clock time and, where available, thread CPU time.
fn measure(mut run: impl FnMut()) -> (Duration, Option<Duration>) {
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    run();
    let wall = start.elapsed();
    let cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(start), Some(end)) => Some(Duration::from_nanos(end.saturating_sub(start))),
        _ => None,
    };
    (wall, cpu)
}

fn main() {
    let devices: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("DEVICES must be a positive integer"))
        .unwrap_or(1_000_000);
    let baseline = LIVE_BYTES.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut fleet = fleet::Fleet::build(devices);
    let built = started.elapsed();
    let bytes_per_device = (LIVE_BYTES.load(Ordering::Relaxed) - baseline) as u64 / devices;
    eprintln!("built {devices} devices in {:.1} s", built.as_secs_f64());

    // Without MAC: decoded messages straight into handle_message.
    let rounds = 3;
    let mut wall = Duration::ZERO;
    let mut cpu = Some(Duration::ZERO);
    let mut decisions = 0u64;
    for _ in 0..rounds {
        let check_in = fleet.check_in.clone();
        let (round_wall, round_cpu) = measure(|| {
            for position in 0..devices {
                let header = UplinkHeader {
                    device: fleet.visit(position),
                    counter: fleet.round,
                };
                let outcome = fleet.server.handle_message(fleet.now, header, &check_in);
                std::hint::black_box(&outcome.reply);
            }
        });
        wall += round_wall;
        cpu = cpu.zip(round_cpu).map(|(total, round)| total + round);
        decisions += devices;
        fleet.next_round();
    }
    let no_mac = Rates::new(decisions, wall, cpu);

    // With MAC: whole frames into handle_frame, encoded in batches outside the timing.
    let batch = 65_536u64;
    let mut frames = vec![0u8; batch as usize * 64];
    let mut lengths = vec![0usize; batch as usize];
    let mut reply = [0u8; syssync_proto::MAX_FRAME_LEN];
    let mut wall = Duration::ZERO;
    let mut cpu = Some(Duration::ZERO);
    let mut decisions = 0u64;
    for _ in 0..rounds {
        let mut position = 0;
        while position < devices {
            let count = batch.min(devices - position);
            for index in 0..count {
                let slot = &mut frames[index as usize * 64..][..64];
                lengths[index as usize] = fleet.frame(position + index, slot);
            }
            let (batch_wall, batch_cpu) = measure(|| {
                for index in 0..count {
                    let frame = &frames[index as usize * 64..][..lengths[index as usize]];
                    let outcome = fleet.server.handle_frame(fleet.now, frame, &mut reply);
                    std::hint::black_box(outcome.reply_len);
                }
            });
            wall += batch_wall;
            cpu = cpu.zip(batch_cpu).map(|(total, batch)| total + batch);
            decisions += count;
            position += count;
        }
        fleet.next_round();
    }
    let with_mac = Rates::new(decisions, wall, cpu);

    // Per core means per second of this thread's CPU time; the wall-clock
    // rate is lower when other processes share the core.
    println!("devices {devices}");
    println!("checkins-per-s-no-mac {:.0}", no_mac.per_cpu_second());
    println!("checkins-per-s-with-mac {:.0}", with_mac.per_cpu_second());
    println!("bytes-per-device {bytes_per_device}");
    println!("checkins-per-wall-s-no-mac {:.0}", no_mac.per_wall_second);
    println!(
        "checkins-per-wall-s-with-mac {:.0}",
        with_mac.per_wall_second
    );
}

/// Decisions per second of wall-clock and of CPU time.
struct Rates {
    per_wall_second: f64,
    per_cpu_second: Option<f64>,
}

impl Rates {
    fn new(decisions: u64, wall: Duration, cpu: Option<Duration>) -> Self {
        Self {
            per_wall_second: decisions as f64 / wall.as_secs_f64(),
            per_cpu_second: cpu.map(|cpu| decisions as f64 / cpu.as_secs_f64()),
        }
    }

    /// The CPU-time rate, or the wall-clock rate where CPU time is unavailable.
    fn per_cpu_second(&self) -> f64 {
        self.per_cpu_second.unwrap_or(self.per_wall_second)
    }
}
