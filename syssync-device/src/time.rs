//! Monotonic time, passed in by the application.

use core::fmt;
use core::ops::{Add, Sub};

/// A point on the application's monotonic clock, in milliseconds.
///
/// The origin is arbitrary (usually the boot); only differences matter. The
/// engine never reads a clock: every input carries the current instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(pub u64);

/// A span of monotonic time, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration(pub u64);

impl Instant {
    /// Returns the instant in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Returns the time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    /// Creates a duration from seconds.
    pub const fn from_secs(seconds: u64) -> Self {
        Duration(seconds.saturating_mul(1000))
    }

    /// Creates a duration from milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration(millis)
    }

    /// Returns the duration in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    // Out of line, because a 64-bit saturating add at each deadline the engine
    // sets costs more code than the call.
    #[inline(never)]
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// A small deterministic generator for check-in jitter, seeded by the
/// application so that a simulated fleet is reproducible.
///
/// It adds the golden-ratio constant to a 32-bit state (a Weyl sequence with
/// period 2^32) and mixes the state with xor-shifts and odd multipliers, as
/// SplitMix64 does with 64 bits. Each mixing step is invertible, so over
/// one period every 32-bit value is drawn exactly once. With the scaling of
/// [`Jitter::below_or_equal`], the 32-bit arithmetic takes 112 bytes less
/// code than SplitMix64 in the Cortex-M4 size probe of `benches/footprint`.
#[derive(Clone, Debug)]
pub(crate) struct Jitter {
    state: u32,
}

impl Jitter {
    /// Folds the 64-bit seed into the 32-bit state by Fibonacci hashing:
    /// the upper 32 bits of the seed times 2^64 divided by the golden ratio,
    /// modulo 2^64. Every bit of the seed counts and consecutive seeds, such
    /// as device ids, land far apart. Seeds with two equal halves do not all
    /// share one state, as they did with a plain XOR of the halves.
    pub(crate) const fn new(seed: u64) -> Self {
        Jitter {
            state: (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32,
        }
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9E37_79B9);
        let mut z = self.state;
        z = (z ^ (z >> 16)).wrapping_mul(0x21F0_AAAD);
        z = (z ^ (z >> 15)).wrapping_mul(0x735A_2D97);
        z ^ (z >> 15)
    }

    /// Returns a value in `0..=bound`.
    ///
    /// Scales a random 32-bit value by `bound + 1` and drops the low 32 bits
    /// of the product (Lemire's method without the rejection step). This
    /// needs no 64-bit division, which costs a Cortex-M4 about 860 bytes of
    /// code. Up to a `bound` of `u32::MAX` it is as close to uniform as a
    /// remainder: the numbers of random values that map to any two results
    /// differ by at most one. Above that only about one result in every
    /// `(bound + 1) / 2^32` can be drawn. The engine's bound is a check-in
    /// spread of at most 50 % of `u32::MAX` seconds, so the results that can
    /// be drawn are at most 500 ms apart.
    pub(crate) fn below_or_equal(&mut self, bound: u64) -> u64 {
        let random = u64::from(self.next_u32());
        match bound.checked_add(1) {
            // `range * random / 2^32` from two 32 x 32-bit products. It is
            // below `range`, so it neither overflows nor exceeds `bound`.
            Some(range) => (range >> 32) * random + (((range & 0xFFFF_FFFF) * random) >> 32),
            None => random << 32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_with_equal_halves_differ() {
        let states: [u32; 4] = [0, 1, 0x1234_5678, u32::MAX].map(|half| {
            let seed = u64::from(half) << 32 | u64::from(half);
            Jitter::new(seed).state
        });
        for (i, a) in states.iter().enumerate() {
            for b in &states[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn consecutive_seeds_differ() {
        let mut states = [0u32; 4096];
        for (seed, state) in (1_000_000u64..).zip(states.iter_mut()) {
            *state = Jitter::new(seed).state;
        }
        states.sort_unstable();
        for pair in states.windows(2) {
            assert_ne!(pair[0], pair[1]);
        }
    }

    #[test]
    fn scaling_matches_wide_product() {
        // Proves the two-part product against a 128-bit multiplication: the
        // result is floor((bound + 1) * random / 2^32) for every bound.
        let bounds = [
            0,
            1,
            9,
            0xFFFF_FFFE,
            0xFFFF_FFFF,
            0x1_0000_0000,
            0x9E37_79B9_7F4A_7C15,
            u64::MAX - 1,
            u64::MAX,
        ];
        for seed in 0..64 {
            for bound in bounds {
                let mut jitter = Jitter::new(seed);
                let random = u128::from(Jitter::new(seed).next_u32());
                let wide = ((u128::from(bound) + 1) * random) >> 32;
                assert_eq!(u128::from(jitter.below_or_equal(bound)), wide, "{bound:#x}");
            }
        }
    }

    #[test]
    fn jitter_covers_a_small_range_evenly() {
        // Proves that draws in 0..=9 reach every value about equally often.
        let mut jitter = Jitter::new(42);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            counts[jitter.below_or_equal(9) as usize] += 1;
        }
        for (value, count) in counts.iter().enumerate() {
            assert!(
                (900..=1100).contains(count),
                "value {value}: {count} of 10000"
            );
        }
    }

    #[test]
    fn seed_halves_both_count() {
        // Proves that seeds differing only in their upper 32 bits start
        // different sequences.
        let mut low = Jitter::new(7);
        let mut high = Jitter::new(7 | 1 << 40);
        assert_ne!(low.next_u32(), high.next_u32());
    }

    #[test]
    fn jitter_stays_within_bound() {
        // Proves that every draw lies in 0..=bound, including bound 0 and u64::MAX.
        let mut jitter = Jitter::new(7);
        for bound in [0, 1, 9, 90_000, 4_294_967_296_000, u64::MAX] {
            for _ in 0..1000 {
                assert!(jitter.below_or_equal(bound) <= bound);
            }
        }
    }
}
