//! Scenario files (TOML): the fleet, its gateways, releases, rollouts, faults
//! and fleet events. `scenarios/default.toml` in this crate is the built-in
//! default and a commented example of every section and setting.

use std::fmt;

use serde::Deserialize;
use syssync_proto::Version;

/// The built-in default scenario, as TOML.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.toml");

/// A whole simulation run.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in the report.
    pub name: String,
    /// Seed of every random choice of the run.
    #[serde(default)]
    pub seed: u64,
    /// Longest simulated time the run covers, in hours.
    pub duration_hours: f64,
    /// End the run one simulated hour after every rollout completed or
    /// paused and every fleet event happened, before `duration_hours`.
    #[serde(default = "default_true")]
    pub stop_when_settled: bool,
    /// Folder that release file paths are relative to; the repository's
    /// `firmware/` folder when absent. A relative path is taken relative to the
    /// scenario file.
    #[serde(default)]
    pub firmware_dir: Option<String>,
    /// Use small synthetic images, one per release, instead of the image
    /// files. Required when two releases name the same image file, because
    /// the simulator identifies a release by its image.
    #[serde(default)]
    pub synthetic_images: bool,
    /// The devices.
    pub fleet: Fleet,
    /// Gateways with devices behind them on a CAN link.
    #[serde(default)]
    pub gateways: Vec<Gateway>,
    /// Releases: the installed one and those that rollouts deploy.
    pub releases: Vec<Release>,
    /// Rollouts, each of one release.
    #[serde(default)]
    pub rollouts: Vec<Rollout>,
    /// Frame loss, latency, power cuts and failing devices.
    #[serde(default)]
    pub faults: Faults,
    /// Changes to the fleet during the run.
    #[serde(default)]
    pub events: Vec<FleetEvent>,
}

/// The simulated devices.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Number of devices.
    pub devices: u32,
    /// Hardware type of every device, at most 32 bytes.
    pub target: String,
    /// Name of the release every device runs at the start.
    pub installed: String,
    /// Check-in interval that the server sets, in seconds.
    #[serde(default = "default_check_in_interval_s")]
    pub check_in_interval_s: u32,
    /// Share of the devices (0..=1) that are offline at the start and come
    /// online at a random moment after the first rollout started.
    #[serde(default)]
    pub late_online_share: f64,
    /// Span after the first rollout's start over which late devices come online, in hours.
    #[serde(default)]
    pub late_online_hours: f64,
    /// Number of the devices, counted from the first, that are members of the
    /// rollout group at the start; the others join through a `join-group`
    /// event. All devices when absent.
    #[serde(default)]
    pub group_members: Option<u32>,
}

fn default_check_in_interval_s() -> u32 {
    900
}

/// A gateway: a device with its own connection that forwards frames for the
/// devices on its CAN link.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Name shown in the report.
    pub name: String,
    /// Number of devices behind it.
    pub devices: u32,
    /// Payload bytes per CAN frame: 8 (classic CAN) to 64 (CAN FD).
    pub mtu: u8,
    /// Probability (0..=1) that one CAN segment is lost.
    #[serde(default)]
    pub segment_loss: f64,
}

/// A release: an application image and plain files.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Name that the fleet and rollouts refer to.
    pub name: String,
    /// Version as `major.minor.patch` or `major.minor.patch+build`.
    pub version: String,
    /// Path of the application image.
    pub image: String,
    /// Paths of plain files installed beside the image; the file name on the
    /// device is the last path component.
    #[serde(default)]
    pub files: Vec<String>,
    /// Anti-rollback security counter of the release.
    #[serde(default)]
    pub security_counter: u32,
    /// Whether the application passes its health check after the update.
    /// `false` models a bad release: the bootloader reverts every device that installs it.
    #[serde(default = "default_true")]
    pub healthy: bool,
}

fn default_min_sample() -> u32 {
    5
}

fn default_in_progress_timeout_hours() -> f64 {
    12.0
}

fn default_true() -> bool {
    true
}

/// One rollout of a release to the group.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Name of the release.
    pub release: String,
    /// Simulated time of the start, in hours.
    pub start_hours: f64,
    /// Number of offers a device gets at most.
    pub attempt_limit: u8,
    /// Share of failed devices among attempted ones (0..=1) above which the rollout pauses.
    pub failure_threshold: f64,
    /// Devices with an outcome needed before the failure threshold applies.
    #[serde(default = "default_min_sample")]
    pub failure_min_sample: u32,
    /// Time a device may take from offer to outcome before the attempt counts as failed, in hours.
    #[serde(default = "default_in_progress_timeout_hours")]
    pub in_progress_timeout_hours: f64,
    /// Phases in order; the last one's share must be 1.
    pub phases: Vec<Phase>,
    /// Weekly maintenance windows; offers happen only inside one. Empty means
    /// at any time. The simulation starts on a Monday at 00:00 UTC.
    #[serde(default)]
    pub windows: Vec<Window>,
    /// Local time minus UTC of the windows, in hours (-14 to 14).
    #[serde(default)]
    pub utc_offset_hours: f64,
}

/// A weekly maintenance window, in the rollout's local time.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Day on which the window opens: `monday` to `sunday`.
    pub day: String,
    /// Local time at which it opens, as `HH:MM`.
    pub start: String,
    /// Length in hours (at most one week).
    pub hours: f64,
}

/// Weekday names in the order the server numbers them (Monday is 0).
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl Window {
    /// Returns the day (0 for Monday), the start in minutes after local
    /// midnight and the length in minutes, or an error naming the bad field.
    pub fn minutes(&self) -> Result<(u8, u16, u16), ScenarioError> {
        let day = WEEKDAYS
            .iter()
            .position(|name| name.eq_ignore_ascii_case(&self.day))
            .ok_or_else(|| {
                ScenarioError(format!(
                    "window day `{}` is not a weekday name; expected monday to sunday",
                    self.day
                ))
            })?;
        let invalid_start = || {
            ScenarioError(format!(
                "window start `{}` is invalid; expected HH:MM from 00:00 to 23:59",
                self.start
            ))
        };
        let (hours, minutes) = self.start.split_once(':').ok_or_else(invalid_start)?;
        let hours: u16 = hours.parse().map_err(|_| invalid_start())?;
        let minutes: u16 = minutes.parse().map_err(|_| invalid_start())?;
        if hours > 23 || minutes > 59 {
            return Err(invalid_start());
        }
        let length = self.hours * 60.0;
        if !(1.0..=10_080.0).contains(&length) {
            return Err(ScenarioError(format!(
                "window length of {} hours is invalid; expected 1 minute to 168 hours",
                self.hours
            )));
        }
        Ok((day as u8, hours * 60 + minutes, length.round() as u16))
    }
}

/// One phase of a rollout.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Cumulative share (0..=1) of the group's devices that the phase opens to.
    pub share: f64,
    /// Minimum delay after the previous phase opened, in hours.
    #[serde(default)]
    pub delay_hours: f64,
    /// Share of the devices of earlier phases (0..=1) that must have updated before the phase opens.
    #[serde(default)]
    pub success_ratio: f64,
}

/// Faults injected into the run.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Probability (0..=1) that one frame is lost on a device's or gateway's link to the server.
    #[serde(default)]
    pub frame_loss: f64,
    /// One-way latency of a link to the server, in milliseconds.
    #[serde(default)]
    pub latency_ms: u32,
    /// Uniform random extra latency of each frame, 0..=jitter_ms milliseconds.
    #[serde(default)]
    pub jitter_ms: u32,
    /// Share of the devices (0..=1) that lose power at a random flash operation of their download.
    #[serde(default)]
    pub power_cut_download: f64,
    /// Share of the devices (0..=1) that lose power at a random flash operation of their install.
    #[serde(default)]
    pub power_cut_install: f64,
    /// Indices of devices (0-based) whose application never passes its health
    /// check after any update, so that every update attempt reverts.
    #[serde(default)]
    pub failing_devices: Vec<u32>,
}

/// A change to the fleet during the run.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FleetEvent {
    /// Devices `first..first + count` join the rollout group.
    JoinGroup {
        /// Simulated time, in hours.
        at_hours: f64,
        /// Index of the first device.
        first: u32,
        /// Number of devices.
        count: u32,
    },
    /// A device is handed over to another account (offer and accept).
    Transfer {
        /// Simulated time, in hours.
        at_hours: f64,
        /// Index of the device.
        device: u32,
        /// Index of the receiving account; account 0 owns the fleet at the start.
        to_account: u32,
    },
}

impl FleetEvent {
    /// Simulated time of the event, in hours.
    pub fn at_hours(&self) -> f64 {
        match self {
            FleetEvent::JoinGroup { at_hours, .. } | FleetEvent::Transfer { at_hours, .. } => {
                *at_hours
            }
        }
    }
}

/// Error of an invalid scenario, with the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid scenario: {}", self.0)
    }
}

impl std::error::Error for ScenarioError {}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), ScenarioError> {
    if condition {
        Ok(())
    } else {
        Err(ScenarioError(message()))
    }
}

/// Maximum simulated duration a scenario accepts, in hours (ten years).
const MAX_DURATION_HOURS: f64 = 87_600.0;

/// Maximum check-in interval a scenario accepts, in seconds (a week).
const MAX_CHECK_IN_INTERVAL_S: u32 = 7 * 24 * 3600;

/// Maximum link latency and jitter a scenario accepts, in milliseconds (an hour).
const MAX_LATENCY_MS: u32 = 3_600_000;

/// Returns the name a device stores a plain file under: its last path component.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn check_share(value: f64, what: &str) -> Result<(), ScenarioError> {
    check((0.0..=1.0).contains(&value), || {
        format!("{what} is {value}; expected a share between 0 and 1")
    })
}

fn check_hours(value: f64, what: &str) -> Result<(), ScenarioError> {
    check(value.is_finite() && value >= 0.0, || {
        format!("{what} is {value}; expected a non-negative number of hours")
    })
}

/// Parses `1.10.0` or `1.10.0+7`.
pub fn parse_version(text: &str) -> Result<Version, ScenarioError> {
    let invalid = || {
        ScenarioError(format!(
            "version `{text}` is not `major.minor.patch` or `major.minor.patch+build`"
        ))
    };
    let (semver, build) = match text.split_once('+') {
        Some((semver, build)) => (semver, build.parse::<u32>().map_err(|_| invalid())?),
        None => (text, 0),
    };
    let mut parts = semver.split('.').map(str::parse::<u16>);
    let mut next = || parts.next().ok_or_else(invalid)?.map_err(|_| invalid());
    let version = Version::new(next()?, next()?, next()?, build);
    if parts.next().is_some() {
        return Err(invalid());
    }
    Ok(version)
}

impl Scenario {
    /// Parses a scenario from TOML and checks it.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let scenario = Self::from_toml_unchecked(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Parses a scenario from TOML without the checks of [`Scenario::validate`],
    /// for a caller that changes it (as command-line options do) before
    /// checking it.
    pub fn from_toml_unchecked(text: &str) -> Result<Self, ScenarioError> {
        toml::from_str(text).map_err(|error| ScenarioError(error.to_string()))
    }

    /// Returns the built-in default scenario.
    pub fn default_scenario() -> Self {
        // The default scenario is a constant of this crate and a unit test parses it.
        #[allow(clippy::expect_used)]
        Self::from_toml(DEFAULT_SCENARIO).expect("the built-in default scenario is valid")
    }

    /// Returns the release called `name`.
    pub fn release(&self, name: &str) -> Option<&Release> {
        self.releases.iter().find(|release| release.name == name)
    }

    /// Number of devices behind gateways (the last ones of the fleet).
    pub fn gateway_devices(&self) -> u32 {
        self.gateways.iter().map(|gateway| gateway.devices).sum()
    }

    /// Checks every rule that the TOML types do not.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        check(!self.name.trim().is_empty(), || {
            "name is empty or only spaces; give the scenario a name for the report".into()
        })?;
        check_hours(self.duration_hours, "duration_hours")?;
        check(
            self.duration_hours > 0.0 && self.duration_hours <= MAX_DURATION_HOURS,
            || {
                format!(
                    "duration_hours is {}; expected more than 0 and at most {MAX_DURATION_HOURS} (ten years)",
                    self.duration_hours
                )
            },
        )?;
        check(self.fleet.devices > 0, || "fleet.devices is 0".into())?;
        check(
            !self.fleet.target.is_empty() && self.fleet.target.len() <= 32,
            || "fleet.target must have 1 to 32 bytes".into(),
        )?;
        check(
            (10..=MAX_CHECK_IN_INTERVAL_S).contains(&self.fleet.check_in_interval_s),
            || {
                format!(
                    "fleet.check_in_interval_s is {}; expected 10 to {MAX_CHECK_IN_INTERVAL_S} s (a week)",
                    self.fleet.check_in_interval_s
                )
            },
        )?;
        check_share(self.fleet.late_online_share, "fleet.late_online_share")?;
        check_hours(self.fleet.late_online_hours, "fleet.late_online_hours")?;
        if let Some(members) = self.fleet.group_members {
            check(members <= self.fleet.devices, || {
                format!(
                    "fleet.group_members is {members} but the fleet has {} devices",
                    self.fleet.devices
                )
            })?;
        }
        check(self.gateway_devices() <= self.fleet.devices, || {
            format!(
                "the gateways have {} devices but the fleet has {}",
                self.gateway_devices(),
                self.fleet.devices
            )
        })?;
        for (index, gateway) in self.gateways.iter().enumerate() {
            check(
                self.gateways[..index]
                    .iter()
                    .all(|other| other.name != gateway.name),
                || format!("gateway name `{}` appears twice", gateway.name),
            )?;
            check(gateway.devices > 0, || {
                format!(
                    "gateway `{}` has devices = 0; expected at least 1, or remove the gateway",
                    gateway.name
                )
            })?;
            check((8..=64).contains(&gateway.mtu), || {
                format!(
                    "gateway `{}` has MTU {}; expected 8 to 64 bytes",
                    gateway.name, gateway.mtu
                )
            })?;
            check_share(
                gateway.segment_loss,
                &format!("gateway `{}` segment_loss", gateway.name),
            )?;
            check(gateway.segment_loss < 1.0, || {
                format!("gateway `{}` segment_loss must be below 1", gateway.name)
            })?;
        }
        for (index, release) in self.releases.iter().enumerate() {
            check(!release.name.trim().is_empty(), || {
                format!(
                    "release with version `{}` has an empty name; give it the name that fleet.installed or a rollout uses",
                    release.version
                )
            })?;
            parse_version(&release.version)?;
            check(
                self.releases[..index]
                    .iter()
                    .all(|other| other.name != release.name),
                || format!("release name `{}` appears twice", release.name),
            )?;
            check(release.files.len() < 16, || {
                format!("release `{}` has more than 15 plain files", release.name)
            })?;
            for (position, file) in release.files.iter().enumerate() {
                let name = file_name(file);
                check(
                    release.files[..position]
                        .iter()
                        .all(|other| file_name(other) != name),
                    || {
                        format!(
                            "release `{}` lists two files named `{name}`; a device stores files by name",
                            release.name
                        )
                    },
                )?;
            }
        }
        for (index, release) in self.releases.iter().enumerate() {
            let shared = self.releases[..index]
                .iter()
                .find(|other| other.image == release.image);
            if let (Some(other), false) = (shared, self.synthetic_images) {
                return Err(ScenarioError(format!(
                    "releases `{}` and `{}` use the same image; the simulator identifies a \
                     release by its image, so set `synthetic_images = true` (or pass --synthetic) \
                     or use different images",
                    other.name, release.name
                )));
            }
        }
        check(self.release(&self.fleet.installed).is_some(), || {
            format!(
                "fleet.installed names release `{}`, which is not defined",
                self.fleet.installed
            )
        })?;
        for rollout in &self.rollouts {
            check(self.release(&rollout.release).is_some(), || {
                format!(
                    "a rollout names release `{}`, which is not defined",
                    rollout.release
                )
            })?;
            check_hours(rollout.start_hours, "rollout start_hours")?;
            check(rollout.start_hours < self.duration_hours, || {
                format!(
                    "rollout of release `{}` has start_hours {}, at or after the end of the run (duration_hours {}); start it earlier or raise duration_hours",
                    rollout.release, rollout.start_hours, self.duration_hours
                )
            })?;
            check(rollout.attempt_limit > 0, || {
                "rollout attempt_limit must be at least 1".into()
            })?;
            check_share(rollout.failure_threshold, "rollout failure_threshold")?;
            check(
                rollout.in_progress_timeout_hours.is_finite()
                    && rollout.in_progress_timeout_hours * 3600.0 >= 1.0,
                || {
                    format!(
                        "rollout in_progress_timeout_hours is {}; expected at least one second ({:.6} h)",
                        rollout.in_progress_timeout_hours,
                        1.0 / 3600.0
                    )
                },
            )?;
            check(!rollout.phases.is_empty(), || {
                "a rollout needs at least one phase".into()
            })?;
            let mut previous = 0.0;
            for phase in &rollout.phases {
                check_share(phase.share, "phase share")?;
                check_share(phase.success_ratio, "phase success_ratio")?;
                check_hours(phase.delay_hours, "phase delay_hours")?;
                check(phase.share > previous, || {
                    "phase shares must increase from phase to phase".into()
                })?;
                previous = phase.share;
            }
            check(previous == 1.0, || {
                "the last phase of a rollout must have share 1".into()
            })?;
            for window in &rollout.windows {
                window.minutes()?;
            }
            check((-14.0..=14.0).contains(&rollout.utc_offset_hours), || {
                format!(
                    "rollout utc_offset_hours is {}; expected -14 to 14",
                    rollout.utc_offset_hours
                )
            })?;
        }
        let faults = &self.faults;
        check_share(faults.frame_loss, "faults.frame_loss")?;
        check(faults.frame_loss < 1.0, || {
            "faults.frame_loss must be below 1".into()
        })?;
        for (what, value) in [
            ("faults.latency_ms", faults.latency_ms),
            ("faults.jitter_ms", faults.jitter_ms),
        ] {
            check(value <= MAX_LATENCY_MS, || {
                format!("{what} is {value}; expected at most {MAX_LATENCY_MS} ms (one hour)")
            })?;
        }
        check_share(faults.power_cut_download, "faults.power_cut_download")?;
        check_share(faults.power_cut_install, "faults.power_cut_install")?;
        for (index, device) in faults.failing_devices.iter().enumerate() {
            check(*device < self.fleet.devices, || {
                format!("faults.failing_devices names device {device}, outside the fleet")
            })?;
            check(!faults.failing_devices[..index].contains(device), || {
                format!("faults.failing_devices lists device {device} twice; list each device once")
            })?;
        }
        for event in &self.events {
            check_hours(event.at_hours(), "event at_hours")?;
            match event {
                FleetEvent::JoinGroup { first, count, .. } => {
                    check(
                        u64::from(*first) + u64::from(*count) <= u64::from(self.fleet.devices),
                        || format!("join-group event {first}+{count} is outside the fleet"),
                    )?;
                }
                FleetEvent::Transfer {
                    device, to_account, ..
                } => {
                    check(*device < self.fleet.devices, || {
                        format!("transfer event names device {device}, outside the fleet")
                    })?;
                    check(*to_account > 0, || {
                        "transfer event to_account must not be 0, the fleet's first owner".into()
                    })?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_parses() {
        // Proves that the built-in scenario is valid and has the shape the command promises.
        let scenario = Scenario::default_scenario();
        assert_eq!(scenario.fleet.devices, 300);
        assert!(scenario.gateways.iter().any(|gateway| gateway.mtu == 8));
        assert_eq!(scenario.rollouts[0].phases.len(), 3);
    }

    #[test]
    fn default_scenario_shows_every_setting() {
        // Proves that default.toml names every setting, and that its
        // commented-out examples parse once uncommented.
        let settings = [
            "name",
            "seed",
            "duration_hours",
            "stop_when_settled",
            "firmware_dir",
            "synthetic_images",
            "[fleet]",
            "devices",
            "target",
            "installed",
            "check_in_interval_s",
            "late_online_share",
            "late_online_hours",
            "group_members",
            "[[gateways]]",
            "mtu",
            "segment_loss",
            "[[releases]]",
            "version",
            "image",
            "files",
            "security_counter",
            "healthy",
            "[[rollouts]]",
            "release",
            "start_hours",
            "attempt_limit",
            "failure_threshold",
            "failure_min_sample",
            "in_progress_timeout_hours",
            "phases",
            "share",
            "delay_hours",
            "success_ratio",
            "windows",
            "day",
            "start",
            "hours",
            "utc_offset_hours",
            "[faults]",
            "frame_loss",
            "latency_ms",
            "jitter_ms",
            "power_cut_download",
            "power_cut_install",
            "failing_devices",
            "[[events]]",
            "kind",
            "at_hours",
            "first",
            "count",
            "device",
            "to_account",
        ];
        for setting in settings {
            assert!(DEFAULT_SCENARIO.contains(setting), "{setting}");
        }

        let examples = [
            "stop_when_settled = false",
            "firmware_dir = \"../../firmware\"",
            "synthetic_images = true",
            "group_members = 250",
            "healthy = false",
            "failure_min_sample = 10",
            "in_progress_timeout_hours = 6",
            "windows = [{ day = \"tuesday\", start = \"01:00\", hours = 3 }]",
            "utc_offset_hours = 2",
            "failing_devices = [3, 17]",
            "[[events]]",
            "kind = \"join-group\"",
            "at_hours = 10",
            "first = 250",
            "count = 50",
            "kind = \"transfer\"",
            "at_hours = 2",
            "device = 5",
            "to_account = 1",
        ];
        let mut text = DEFAULT_SCENARIO.to_owned();
        for example in examples {
            let commented = format!("\n# {example}\n");
            assert!(text.contains(&commented), "{example}");
            text = text.replace(&commented, &format!("\n{example}\n"));
        }
        let scenario = Scenario::from_toml(&text).unwrap();
        assert!(!scenario.stop_when_settled);
        assert_eq!(scenario.firmware_dir.as_deref(), Some("../../firmware"));
        assert!(scenario.synthetic_images);
        assert_eq!(scenario.fleet.group_members, Some(250));
        assert!(!scenario.releases[1].healthy);
        assert_eq!(scenario.rollouts[0].failure_min_sample, 10);
        assert_eq!(scenario.rollouts[0].in_progress_timeout_hours, 6.0);
        assert_eq!(scenario.rollouts[0].windows.len(), 1);
        assert_eq!(scenario.rollouts[0].utc_offset_hours, 2.0);
        assert_eq!(scenario.faults.failing_devices, [3, 17]);
        assert_eq!(scenario.events.len(), 2);
    }

    #[test]
    fn version_parses_with_and_without_build() {
        // Proves the two accepted version spellings and the rejection of others.
        assert_eq!(parse_version("1.10.0").unwrap(), Version::new(1, 10, 0, 0));
        assert_eq!(parse_version("1.9.4+7").unwrap(), Version::new(1, 9, 4, 7));
        assert!(parse_version("1.9").is_err());
        assert!(parse_version("1.9.4.5").is_err());
        assert!(parse_version("v1.9.4").is_err());
    }

    #[test]
    fn invalid_phase_share_is_rejected() {
        // Proves that a rollout whose phases do not end at share 1 is rejected with a reason.
        let text = DEFAULT_SCENARIO.replace("{ share = 1.0,", "{ share = 0.9,");
        let error = Scenario::from_toml(&text).unwrap_err();
        assert!(error.0.contains("last phase"), "{error}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        // Proves that values the server or the links cannot take are scenario
        // errors that name the field, not failures in the middle of a run.
        let cases = [
            (
                "segment_loss = 0.001",
                "segment_loss = 1.0",
                "segment_loss must be below 1",
            ),
            (
                "duration_hours = 72",
                "duration_hours = 1e12",
                "duration_hours is 1000000000000",
            ),
            (
                "duration_hours = 72",
                "duration_hours = 0",
                "duration_hours is 0",
            ),
            (
                "check_in_interval_s = 900",
                "check_in_interval_s = 4294967295",
                "check_in_interval_s is 4294967295",
            ),
            (
                "failure_threshold = 0.2",
                "failure_threshold = 0.2\nin_progress_timeout_hours = 0.0001",
                "in_progress_timeout_hours is 0.0001",
            ),
            (
                "files = [\"config/network.json\", \"config/telemetry.json\"]",
                "files = [\"config/network.json\", \"other/network.json\"]",
                "two files named `network.json`",
            ),
            (
                "name = \"line-2-canfd\"",
                "name = \"line-1-can\"",
                "gateway name `line-1-can` appears twice",
            ),
            (
                "devices = 20",
                "devices = 0",
                "gateway `line-2-canfd` has devices = 0",
            ),
            (
                "start_hours = 1",
                "start_hours = 72",
                "has start_hours 72, at or after the end of the run (duration_hours 72)",
            ),
            (
                "start_hours = 1",
                "start_hours = 100",
                "has start_hours 100, at or after the end",
            ),
            (
                "latency_ms = 80",
                "latency_ms = 3600001",
                "faults.latency_ms is 3600001; expected at most 3600000",
            ),
            (
                "jitter_ms = 40",
                "jitter_ms = 4294967295",
                "faults.jitter_ms is 4294967295; expected at most 3600000",
            ),
            (
                "power_cut_install = 0.05",
                "power_cut_install = 0.05\nfailing_devices = [3, 7, 3]",
                "faults.failing_devices lists device 3 twice",
            ),
            (
                "name = \"default: MicroPython v1.10 over v1.9.4\"",
                "name = \"\"",
                "name is empty",
            ),
            (
                "name = \"v1.10\"",
                "name = \"\"",
                "release with version `1.10.0` has an empty name",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(DEFAULT_SCENARIO.contains(from), "{from}");
            let text = DEFAULT_SCENARIO.replacen(from, to, 1);
            let error = Scenario::from_toml(&text).expect_err(to);
            assert!(error.0.contains(expected), "{to}: {error}");
        }
    }

    #[test]
    fn limit_values_are_accepted() {
        // Proves that the latency, rollout start and failing-device checks accept
        // values up to their limits.
        let cases = [
            ("latency_ms = 80", "latency_ms = 3600000"),
            ("jitter_ms = 40", "jitter_ms = 3600000"),
            ("start_hours = 1", "start_hours = 71.9"),
            (
                "power_cut_install = 0.05",
                "power_cut_install = 0.05\nfailing_devices = [3, 7]",
            ),
        ];
        for (from, to) in cases {
            assert!(DEFAULT_SCENARIO.contains(from), "{from}");
            let text = DEFAULT_SCENARIO.replacen(from, to, 1);
            if let Err(error) = Scenario::from_toml(&text) {
                panic!("{to}: {error}");
            }
        }
    }

    #[test]
    fn unknown_field_is_rejected() {
        // Proves that a misspelt key is an error instead of being ignored.
        let text = DEFAULT_SCENARIO.replace("frame_loss = 0.05", "frame_los = 0.05");
        assert!(Scenario::from_toml(&text).is_err());
    }
}
