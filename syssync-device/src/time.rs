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

/// A small deterministic generator (SplitMix64) for check-in jitter, seeded by
/// the application so that a simulated fleet is reproducible.
#[derive(Clone, Debug)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    pub(crate) const fn new(seed: u64) -> Self {
        Jitter { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a value in `0..=bound`.
    ///
    /// Scales a random 64-bit value by `bound + 1` and keeps the high half of
    /// the product (Lemire's method without the rejection step). This needs
    /// no 64-bit division, which costs a Cortex-M4 about 860 bytes of code.
    /// It is as close to uniform as a remainder: the numbers of random values
    /// that map to any two results differ by at most one.
    pub(crate) fn below_or_equal(&mut self, bound: u64) -> u64 {
        match bound.checked_add(1) {
            Some(range) => mul_high(self.next_u64(), range),
            None => self.next_u64(),
        }
    }
}

/// Returns the high 64 bits of the 128-bit product `a * b`, from four
/// 32 x 32-bit multiplications, so that 32-bit targets need no 128-bit
/// arithmetic.
fn mul_high(a: u64, b: u64) -> u64 {
    let (a_high, a_low) = (a >> 32, a & 0xFFFF_FFFF);
    let (b_high, b_low) = (b >> 32, b & 0xFFFF_FFFF);
    let low = a_low * b_low;
    let middle_a = a_high * b_low;
    let middle_b = a_low * b_high;
    // The sum of the three 32-bit parts at bit 32 fits in 34 bits.
    let carry = ((low >> 32) + (middle_a & 0xFFFF_FFFF) + (middle_b & 0xFFFF_FFFF)) >> 32;
    a_high * b_high + (middle_a >> 32) + (middle_b >> 32) + carry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_high_matches_wide_product() {
        // Proves the four-part product against a 128-bit multiplication,
        // on the extremes and on a spread of ordinary values.
        let values = [
            0,
            1,
            2,
            0xFFFF_FFFF,
            0x1_0000_0000,
            0x9E37_79B9_7F4A_7C15,
            u64::MAX - 1,
            u64::MAX,
        ];
        for a in values {
            for b in values {
                let wide = ((u128::from(a) * u128::from(b)) >> 64) as u64;
                assert_eq!(mul_high(a, b), wide, "{a:#x} * {b:#x}");
            }
        }
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
