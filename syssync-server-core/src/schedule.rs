//! Weekly maintenance windows and the deterministic phase assignment.

use syssync_proto::{DeviceId, JobId};

const DAY_S: i64 = 86_400;
const WEEK_S: i64 = 7 * DAY_S;
/// The Unix epoch (1970-01-01) was a Thursday: day 3 when Monday is day 0.
const EPOCH_WEEKDAY: i64 = 3;

/// Day of the week, Monday first (ISO 8601).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    /// Monday.
    Monday = 0,
    /// Tuesday.
    Tuesday = 1,
    /// Wednesday.
    Wednesday = 2,
    /// Thursday.
    Thursday = 3,
    /// Friday.
    Friday = 4,
    /// Saturday.
    Saturday = 5,
    /// Sunday.
    Sunday = 6,
}

/// A weekly window in local time: it opens on `day` at `start_minute` after
/// local midnight and stays open for `duration_minutes`, possibly past midnight
/// and past the end of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Day on which the window opens.
    pub day: Weekday,
    /// Minutes after local midnight (0 to 1439).
    pub start_minute: u16,
    /// Length in minutes (1 to 10080).
    pub duration_minutes: u16,
}

/// Weekly maintenance windows with the UTC offset of the local time they are written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceSchedule {
    /// Local time minus UTC, in minutes (−840 to +840).
    pub utc_offset_minutes: i16,
    /// The windows, at least one.
    pub windows: Vec<MaintenanceWindow>,
}

/// Whether a schedule is open at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    /// Open; it closes this many seconds from now.
    Open {
        /// Seconds until the window that is open now closes (the latest one if several overlap).
        closes_in_s: u64,
    },
    /// Closed; the next window opens this many seconds from now.
    Closed {
        /// Seconds until the next window opens.
        opens_in_s: u64,
    },
}

impl MaintenanceSchedule {
    /// Checks the offset and the windows.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(-840..=840).contains(&self.utc_offset_minutes) {
            return Err("UTC offset must be within -840 and +840 minutes");
        }
        if self.windows.is_empty() {
            return Err("a schedule needs at least one window");
        }
        if self.windows.len() > crate::limits::MAX_WINDOWS {
            return Err("too many maintenance windows");
        }
        for window in &self.windows {
            if window.start_minute >= 1440 {
                return Err("window start minute must be below 1440");
            }
            if window.duration_minutes == 0 || window.duration_minutes > 7 * 1440 {
                return Err("window duration must be 1 to 10080 minutes");
            }
        }
        Ok(())
    }

    /// Returns whether a window is open at Unix time `now`.
    pub fn state_at(&self, now: u64) -> WindowState {
        let local = now as i64 + i64::from(self.utc_offset_minutes) * 60;
        let week_position = (local.div_euclid(DAY_S) + EPOCH_WEEKDAY).rem_euclid(7) * DAY_S
            + local.rem_euclid(DAY_S);
        let mut closes_in: Option<i64> = None;
        let mut opens_in = i64::MAX;
        for window in &self.windows {
            let start = window.day as i64 * DAY_S + i64::from(window.start_minute) * 60;
            let length = i64::from(window.duration_minutes) * 60;
            // The window may have opened last week and still be open.
            for start in [start - WEEK_S, start] {
                if week_position >= start && week_position < start + length {
                    let remaining = start + length - week_position;
                    closes_in = Some(closes_in.map_or(remaining, |c| c.max(remaining)));
                }
            }
            opens_in = opens_in.min((start - week_position).rem_euclid(WEEK_S));
        }
        match closes_in {
            Some(closes_in) => WindowState::Open {
                closes_in_s: closes_in as u64,
            },
            None => WindowState::Closed {
                opens_in_s: opens_in as u64,
            },
        }
    }
}

/// Places a device in a job's rollout order: a stable value in `0..1000`
/// derived from the device and job ids (SplitMix64 finalizer), so that the same
/// devices go first on every server and in every run.
pub fn rollout_rank(device: DeviceId, job: JobId) -> u16 {
    let mut x = device.0 ^ u64::from(job.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % 1000) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-01-01 00:00:00 UTC was a Monday.
    const MONDAY_2024: u64 = 1_704_067_200;

    #[test]
    fn window_open_and_closed_in_local_time() {
        // A Tuesday 02:00-04:00 window at UTC+2 is open on Tuesday 00:30 UTC.
        let schedule = MaintenanceSchedule {
            utc_offset_minutes: 120,
            windows: vec![MaintenanceWindow {
                day: Weekday::Tuesday,
                start_minute: 120,
                duration_minutes: 120,
            }],
        };
        let tuesday_0030_utc = MONDAY_2024 + 86_400 + 1800;
        assert_eq!(
            schedule.state_at(tuesday_0030_utc),
            WindowState::Open { closes_in_s: 5400 }
        );
        let tuesday_0200_utc = MONDAY_2024 + 86_400 + 7200;
        assert_eq!(
            schedule.state_at(tuesday_0200_utc),
            WindowState::Closed {
                opens_in_s: 7 * 86_400 - 7200
            }
        );
    }

    #[test]
    fn window_wrapping_past_week_end() {
        // Sunday 23:00 for three hours is still open on Monday 01:00.
        let schedule = MaintenanceSchedule {
            utc_offset_minutes: 0,
            windows: vec![MaintenanceWindow {
                day: Weekday::Sunday,
                start_minute: 23 * 60,
                duration_minutes: 180,
            }],
        };
        assert_eq!(
            schedule.state_at(MONDAY_2024 + 3600),
            WindowState::Open { closes_in_s: 3600 }
        );
    }

    #[test]
    fn rollout_rank_is_stable_and_spread() {
        assert_eq!(
            rollout_rank(DeviceId(1), JobId(1)),
            rollout_rank(DeviceId(1), JobId(1))
        );
        let below_half = (0..10_000u64)
            .filter(|id| rollout_rank(DeviceId(*id), JobId(7)) < 500)
            .count();
        assert!((4_500..5_500).contains(&below_half), "{below_half}");
    }
}
