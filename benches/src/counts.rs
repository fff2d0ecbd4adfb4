//! Flash operation counts summed over the devices of one simulated board.

use std::ops::AddAssign;

use flash_sim::Counters;

/// Operation counts of every flash device of a board, summed, with the erase
/// count of each sector kept per device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlashTotals {
    /// Sectors erased.
    pub erases: u64,
    /// `write` calls.
    pub write_calls: u64,
    /// Bytes passed to `write`.
    pub bytes_written: u64,
    /// `read` calls.
    pub read_calls: u64,
    /// Bytes returned by `read`.
    pub bytes_read: u64,
    /// Erase count of each sector, one vector per device.
    pub sector_erases: Vec<Vec<u64>>,
}

impl FlashTotals {
    /// Sums the counters of the devices of one board.
    pub fn from_devices<'a>(devices: impl IntoIterator<Item = &'a Counters>) -> Self {
        let mut totals = Self::default();
        for counters in devices {
            totals.erases += counters.erases;
            totals.write_calls += counters.write_calls;
            totals.bytes_written += counters.bytes_written;
            totals.read_calls += counters.read_calls;
            totals.bytes_read += counters.bytes_read;
            totals.sector_erases.push(counters.sector_erases.clone());
        }
        totals
    }

    /// Returns the largest erase count of any one sector of any device.
    pub fn max_sector_erases(&self) -> u64 {
        self.sector_erases
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

impl AddAssign<&FlashTotals> for FlashTotals {
    /// Adds the counts of a later phase on the same board; sector counts add
    /// up sector by sector.
    fn add_assign(&mut self, other: &FlashTotals) {
        self.erases += other.erases;
        self.write_calls += other.write_calls;
        self.bytes_written += other.bytes_written;
        self.read_calls += other.read_calls;
        self.bytes_read += other.bytes_read;
        if self.sector_erases.len() < other.sector_erases.len() {
            self.sector_erases
                .resize(other.sector_erases.len(), Vec::new());
        }
        for (mine, theirs) in self.sector_erases.iter_mut().zip(&other.sector_erases) {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(erases: &[u64], bytes_read: u64) -> Counters {
        Counters {
            erases: erases.iter().sum(),
            write_calls: 1,
            bytes_written: 8,
            read_calls: 2,
            bytes_read,
            sector_erases: erases.to_vec(),
        }
    }

    #[test]
    fn phases_add_per_sector() {
        // Proves that adding two phases sums each sector, so the maximum is per sector and not per phase.
        let first = FlashTotals::from_devices([&counters(&[1, 0], 10), &counters(&[2], 5)]);
        let second = FlashTotals::from_devices([&counters(&[1, 1], 1), &counters(&[0], 0)]);
        assert_eq!(first.max_sector_erases(), 2);

        let mut cycle = first.clone();
        cycle += &second;
        assert_eq!(cycle.sector_erases, vec![vec![2, 1], vec![2]]);
        assert_eq!(cycle.max_sector_erases(), 2);
        assert_eq!(cycle.erases, 5);
        assert_eq!(cycle.bytes_read, 16);
        assert_eq!(cycle.write_calls, 4);
    }

    #[test]
    fn empty_totals_have_zero_maximum() {
        // Proves that a board without devices reports zero erases instead of failing.
        assert_eq!(FlashTotals::default().max_sector_erases(), 0);
    }
}
