//! Engine configuration, checked where it is built.

use core::fmt;

use syssync_proto::{TrustedKey, MAX_CHUNK_LEN};

/// Maximum number of trusted release keys.
pub const MAX_TRUSTED_KEYS: usize = 4;

/// Who decides that a new image on trial is healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfirmPolicy {
    /// The server: the engine reports the install with the full inventory and
    /// confirms only on the server's `Confirm` for the job.
    Server,
    /// The application: [`Engine::confirm_health`](crate::Engine::confirm_health)
    /// confirms, then the engine reports the install.
    Application,
}

/// What the engine does with a manifest's expiry while it has no trusted wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ExpiryWithoutClock {
    /// Accept the manifest: expiry cannot be checked, and the security counter
    /// still prevents downgrades below the committed release.
    Accept,
    /// Reject every manifest with [`RejectReason::EXPIRED`](syssync_proto::RejectReason::EXPIRED)
    /// until [`Engine::set_unix_time`](crate::Engine::set_unix_time) is called.
    Reject,
}

/// Engine settings. Build with [`Config::new`], change fields, and let
/// [`Engine::new`](crate::Engine::new) check them with [`Config::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Release keys whose manifests the device accepts.
    pub trusted_keys: heapless::Vec<TrustedKey, MAX_TRUSTED_KEYS>,
    /// Bytes requested per chunk: a multiple of 64 from 64 to 4096. Default 1024.
    pub chunk_size: u16,
    /// Seconds between check-ins until the server sets another interval. Default 900.
    pub check_in_interval_s: u32,
    /// Shortest interval a server may set, in seconds. Default 60.
    pub min_interval_s: u32,
    /// Longest interval a server may set, in seconds. Default 86 400.
    pub max_interval_s: u32,
    /// Jitter added to each check-in interval, in percent of the interval (0 to 50). Default 10.
    pub jitter_percent: u8,
    /// Seconds between check-ins while an image runs on trial. Default 60.
    pub trial_interval_s: u32,
    /// Seconds a trial image may run unconfirmed after the engine starts.
    /// Then the engine reports it unhealthy ([`RevertReason::TRIAL_TIMEOUT`])
    /// and requests a reset, so the bootloader reverts it. This catches a new
    /// image that runs but never reaches the server. 0 waits forever, and the
    /// image is reverted only if the device resets through all its trial
    /// boots. Otherwise at least `trial_interval_s`. Default 3 600.
    ///
    /// [`RevertReason::TRIAL_TIMEOUT`]: syssync_proto::RevertReason::TRIAL_TIMEOUT
    pub trial_timeout_s: u32,
    /// Milliseconds without a reply before a request is sent again. Default 10 000.
    pub request_timeout_ms: u64,
    /// First retry delay after a timeout or refusal, in milliseconds; it doubles
    /// on each further failure. Default 2 000.
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds. Default 300 000.
    pub retry_max_ms: u64,
    /// Who confirms a trial image. Default [`ConfirmPolicy::Server`].
    pub confirm_policy: ConfirmPolicy,
    /// Manifest expiry while the wall clock is unknown. Default [`ExpiryWithoutClock::Accept`].
    pub expiry_without_clock: ExpiryWithoutClock,
}

/// Why a configuration was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// A word-sized tag puts the fields at word offsets, which takes less code
// to build and copy on 32-bit targets (see `Event`).
#[repr(u32)]
pub enum ConfigError {
    /// No trusted release key, or more than [`MAX_TRUSTED_KEYS`].
    TrustedKeys,
    /// Two trusted release keys have this id, so a manifest naming it could
    /// only ever be checked against the first.
    DuplicateKeyId(u8),
    /// The chunk size is not a multiple of 64 from 64 to 4096.
    ChunkSize(u16),
    /// The intervals are not ordered `0 < min <= check-in <= max`, or the trial
    /// interval is outside `min..=max`.
    Intervals,
    /// The jitter is above 50 %.
    Jitter(u8),
    /// A timeout or retry delay is zero, or the initial retry delay exceeds the maximum.
    Timeouts,
    /// The trial timeout is neither 0 nor at least the trial interval.
    TrialTimeout(u32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::TrustedKeys => write!(
                f,
                "expected 1 to {MAX_TRUSTED_KEYS} trusted release keys"
            ),
            ConfigError::DuplicateKeyId(id) => write!(
                f,
                "two trusted release keys have id {id}: give each key its own id"
            ),
            ConfigError::ChunkSize(size) => write!(
                f,
                "chunk size {size} is not a multiple of 64 from 64 to {MAX_CHUNK_LEN}"
            ),
            ConfigError::Intervals => f.write_str(
                "check-in intervals must satisfy 0 < min <= default <= max, with the trial interval within min..=max",
            ),
            ConfigError::Jitter(percent) => write!(f, "jitter of {percent} % exceeds 50 %"),
            ConfigError::Timeouts => f.write_str(
                "request timeout and retry delays must be non-zero, with the initial delay at most the maximum",
            ),
            ConfigError::TrialTimeout(seconds) => write!(
                f,
                "trial timeout of {seconds} s is shorter than the trial interval: use 0 to wait forever"
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// Creates the default configuration trusting `trusted_keys`.
    pub fn new(trusted_keys: &[TrustedKey]) -> Result<Self, ConfigError> {
        let keys =
            heapless::Vec::from_slice(trusted_keys).map_err(|()| ConfigError::TrustedKeys)?;
        let config = Config {
            trusted_keys: keys,
            chunk_size: 1024,
            check_in_interval_s: 900,
            min_interval_s: 60,
            max_interval_s: 86_400,
            jitter_percent: 10,
            trial_interval_s: 60,
            trial_timeout_s: 3_600,
            request_timeout_ms: 10_000,
            retry_initial_ms: 2_000,
            retry_max_ms: 300_000,
            confirm_policy: ConfirmPolicy::Server,
            expiry_without_clock: ExpiryWithoutClock::Accept,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.trusted_keys.is_empty() {
            return Err(ConfigError::TrustedKeys);
        }
        let mut rest = self.trusted_keys.as_slice();
        while let [key, later @ ..] = rest {
            if later.iter().any(|other| other.id == key.id) {
                return Err(ConfigError::DuplicateKeyId(key.id));
            }
            rest = later;
        }
        let chunk = usize::from(self.chunk_size);
        if chunk == 0 || chunk % 64 != 0 || chunk > MAX_CHUNK_LEN {
            return Err(ConfigError::ChunkSize(self.chunk_size));
        }
        let ordered = 0 < self.min_interval_s
            && self.min_interval_s <= self.check_in_interval_s
            && self.check_in_interval_s <= self.max_interval_s
            && (self.min_interval_s..=self.max_interval_s).contains(&self.trial_interval_s);
        if !ordered {
            return Err(ConfigError::Intervals);
        }
        if self.trial_timeout_s != 0 && self.trial_timeout_s < self.trial_interval_s {
            return Err(ConfigError::TrialTimeout(self.trial_timeout_s));
        }
        if self.jitter_percent > 50 {
            return Err(ConfigError::Jitter(self.jitter_percent));
        }
        if self.request_timeout_ms == 0
            || self.retry_initial_ms == 0
            || self.retry_initial_ms > self.retry_max_ms
        {
            return Err(ConfigError::Timeouts);
        }
        Ok(())
    }

    /// Clamps a server-set interval to `min_interval_s..=max_interval_s`.
    ///
    /// A configuration that fails [`validate`](Self::validate) with
    /// `min_interval_s > max_interval_s` gets `max_interval_s`, where
    /// `u32::clamp` would panic.
    pub fn clamp_interval(&self, interval_s: u32) -> u32 {
        interval_s.max(self.min_interval_s).min(self.max_interval_s)
    }

    /// Returns a server's retry advice of `retry_after_s` seconds in
    /// milliseconds, clamped to `retry_initial_ms..=retry_max_ms` in the same
    /// way as [`clamp_interval`](Self::clamp_interval).
    pub(crate) fn retry_delay_ms(&self, retry_after_s: u32) -> u64 {
        u64::from(retry_after_s)
            .saturating_mul(1000)
            .max(self.retry_initial_ms)
            .min(self.retry_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use syssync_proto::TrustedKey;

    fn default_config() -> Config {
        // Cannot fail: one key and the default fields pass `validate`.
        Config::new(&[TrustedKey {
            id: 1,
            public_key: [0x5a; 32],
        }])
        .unwrap()
    }

    #[test]
    fn clamps_without_panic() {
        // Proves both clamps keep their bounds, and that bounds out of order
        // (a configuration that `validate` rejects) give the upper bound
        // instead of a panic.
        let config = default_config();
        assert_eq!(config.clamp_interval(1), 60);
        assert_eq!(config.clamp_interval(1_000), 1_000);
        assert_eq!(config.clamp_interval(u32::MAX), 86_400);
        assert_eq!(config.retry_delay_ms(0), config.retry_initial_ms);
        assert_eq!(config.retry_delay_ms(7), 7_000);
        assert_eq!(config.retry_delay_ms(u32::MAX), 300_000);

        let unordered = Config {
            min_interval_s: 100,
            max_interval_s: 50,
            retry_initial_ms: 9_000,
            retry_max_ms: 1_000,
            ..default_config()
        };
        assert_eq!(unordered.clamp_interval(70), 50);
        assert_eq!(unordered.retry_delay_ms(5), 1_000);
    }
}
