//! The server side of the simulation: `syssync-server-core` with in-memory
//! storage, driven through its device face (frames) and management face
//! (commands), as a front end and an operator would.

use std::collections::BTreeMap;

use syssync_proto::{AccountId, DeviceId, DeviceKey, JobId, TrustedKey};
use syssync_server_core::{
    AccountSettings, Command, Created, FailureCause, FailureThreshold, GroupId, GroupKind, JobSpec,
    JobStatus, JobTarget, MaintenanceSchedule, MaintenanceWindow, Notification, NotificationKind,
    Phase, ReleaseId, Server, Weekday,
};

use crate::model::{JobView, RolloutSpec, ServerModel, ServerNotification};
use crate::release::BuiltRelease;
use crate::report::ServerCounters;

/// `syssync-server-core` as the simulator's server.
pub struct CoreServer {
    server: Server,
    trusted_key: TrustedKey,
    check_in_interval_s: u32,
    target: String,
    accounts: BTreeMap<u32, AccountId>,
    releases: BTreeMap<String, ReleaseId>,
    jobs: BTreeMap<JobId, (AccountId, GroupId)>,
    notifications: Vec<ServerNotification>,
}

fn kind_name(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::JobStarted => "job-started",
        NotificationKind::DeviceUpdated => "device-updated",
        NotificationKind::DeviceFailed => "device-failed",
        NotificationKind::RetryLimitReached => "retry-limit-reached",
        NotificationKind::RolloutPaused => "rollout-paused",
        NotificationKind::RolloutCompleted => "rollout-completed",
    }
}

fn cause_text(cause: FailureCause) -> String {
    match cause {
        FailureCause::Failed(code) => format!("failed: {code}"),
        FailureCause::Reverted(reason) => format!("reverted: {reason}"),
        FailureCause::Rejected(reason) => format!("rejected: {reason}"),
        FailureCause::TimedOut => "timed out".to_owned(),
        FailureCause::Dropped => "dropped by the device".to_owned(),
    }
}

fn permille(share: f64) -> u16 {
    (share * 1000.0).round().clamp(0.0, 1000.0) as u16
}

impl CoreServer {
    /// Creates the server with account 0, which owns the fleet at the start.
    pub fn new(
        trusted_key: TrustedKey,
        check_in_interval_s: u32,
        target: &str,
    ) -> Result<Self, String> {
        let mut server = Self {
            server: Server::in_memory(),
            trusted_key,
            check_in_interval_s,
            target: target.to_owned(),
            accounts: BTreeMap::new(),
            releases: BTreeMap::new(),
            jobs: BTreeMap::new(),
            notifications: Vec::new(),
        };
        server.account(0, 0)?;
        Ok(server)
    }

    /// Returns the server account of account index `index`, creating it on first use.
    fn account(&mut self, now_unix_s: u64, index: u32) -> Result<AccountId, String> {
        if let Some(account) = self.accounts.get(&index) {
            return Ok(*account);
        }
        let mut settings = AccountSettings::new(&format!("account-{index}"));
        settings.release_keys = vec![self.trusted_key];
        settings.check_in_interval_s = self.check_in_interval_s;
        settings.overdue_after_s = 3 * self.check_in_interval_s;
        let account = self
            .server
            .create_account(settings)
            .map_err(|error| format!("creating account {index} failed: {error}"))?;
        self.execute(
            now_unix_s,
            account,
            Command::AddTargetType {
                name: self.target.clone(),
            },
        )?;
        self.accounts.insert(index, account);
        Ok(account)
    }

    fn execute(
        &mut self,
        now_unix_s: u64,
        account: AccountId,
        command: Command,
    ) -> Result<Created, String> {
        let name = format!("{command:?}");
        let executed = self
            .server
            .execute(now_unix_s, account, command)
            .map_err(|error| {
                let short: String = name.chars().take(60).collect();
                format!(
                    "server command {short}.. for account {} failed: {error}",
                    account.0
                )
            })?;
        self.push_notifications(executed.notifications);
        Ok(executed.created)
    }

    fn push_notifications(&mut self, notifications: Vec<Notification>) {
        for notification in notifications {
            let account = self
                .accounts
                .iter()
                .find(|(_, id)| **id == notification.account)
                .map_or(notification.account.0, |(index, _)| u64::from(*index));
            self.notifications.push(ServerNotification {
                account,
                kind: kind_name(notification.kind).to_owned(),
                job: notification.job,
                device: notification.device,
                cause: notification.cause.map(cause_text),
                wanted: notification.wanted,
            });
        }
    }
}

impl ServerModel for CoreServer {
    fn add_device(
        &mut self,
        now_unix_s: u64,
        account: u32,
        id: DeviceId,
        key: &DeviceKey,
    ) -> Result<(), String> {
        let account = self.account(now_unix_s, account)?;
        self.execute(
            now_unix_s,
            account,
            Command::RegisterDevice {
                device: id,
                key: key.clone(),
                target: self.target.clone(),
                tags: Vec::new(),
                inventory: None,
            },
        )?;
        Ok(())
    }

    fn add_release(&mut self, now_unix_s: u64, release: &BuiltRelease) -> Result<(), String> {
        let account = self.account(now_unix_s, 0)?;
        let mut artifacts = vec![release.image.as_ref().clone()];
        artifacts.extend(release.files.iter().map(|file| file.bytes.as_ref().clone()));
        let created = self.execute(
            now_unix_s,
            account,
            Command::UploadRelease {
                key_id: self.trusted_key.id,
                body: release.manifest_body.clone(),
                signature: release.signature,
                artifacts,
            },
        )?;
        let Created::Release(id) = created else {
            return Err(format!(
                "uploading release `{}` created no release",
                release.name
            ));
        };
        self.execute(now_unix_s, account, Command::ApproveRelease { release: id })?;
        self.releases.insert(release.name.clone(), id);
        Ok(())
    }

    fn start_rollout(&mut self, now_unix_s: u64, spec: &RolloutSpec<'_>) -> Result<JobId, String> {
        let account = self.account(now_unix_s, 0)?;
        let release = *self
            .releases
            .get(&spec.release.name)
            .ok_or_else(|| format!("release `{}` was not uploaded", spec.release.name))?;
        let members = spec.devices.iter().copied().collect();
        let Created::Group(group) = self.execute(
            now_unix_s,
            account,
            Command::CreateGroup {
                name: format!("rollout-{}", spec.release.name),
                kind: GroupKind::Static(members),
            },
        )?
        else {
            return Err("creating the rollout group created no group".into());
        };
        let mut job = JobSpec::new(release, JobTarget::Group(group), now_unix_s);
        job.phases = spec
            .phases
            .iter()
            .map(|(share, delay_s, success)| Phase {
                share_permille: permille(*share),
                delay_s: *delay_s,
                success_permille: permille(*success),
            })
            .collect();
        job.max_attempts = spec.attempt_limit;
        job.in_progress_timeout_s = spec.in_progress_timeout_s;
        job.failure_threshold = Some(FailureThreshold {
            max_failed_permille: permille(spec.failure_threshold),
            min_sample: spec.failure_min_sample,
        });
        if !spec.windows.is_empty() {
            let mut windows = Vec::new();
            for &(day, start_minute, duration_minutes) in spec.windows {
                let day = weekday(day)
                    .ok_or_else(|| format!("window day {day} is not 0 (Monday) to 6"))?;
                windows.push(MaintenanceWindow {
                    day,
                    start_minute,
                    duration_minutes,
                });
            }
            job.schedule = Some(MaintenanceSchedule {
                utc_offset_minutes: spec.utc_offset_minutes,
                windows,
            });
        }
        let Created::Job(id) = self.execute(now_unix_s, account, Command::CreateJob(job))? else {
            return Err("creating the job created no job".into());
        };
        self.jobs.insert(id, (account, group));
        Ok(id)
    }

    fn join_group(
        &mut self,
        now_unix_s: u64,
        job: JobId,
        devices: &[DeviceId],
    ) -> Result<(), String> {
        let (account, group) = *self
            .jobs
            .get(&job)
            .ok_or_else(|| format!("job {} is unknown", job.0))?;
        for device in devices {
            self.execute(
                now_unix_s,
                account,
                Command::AddToGroup {
                    group,
                    device: *device,
                },
            )?;
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        now_unix_s: u64,
        device: DeviceId,
        to_account: u32,
    ) -> Result<(), String> {
        let to = self.account(now_unix_s, to_account)?;
        let from = self
            .accounts
            .values()
            .copied()
            .find(|account| {
                self.server
                    .device_status(now_unix_s, *account, device)
                    .is_ok()
            })
            .ok_or_else(|| format!("device {} has no owner", device.0))?;
        self.execute(now_unix_s, from, Command::OfferTransfer { device, to })?;
        self.execute(now_unix_s, to, Command::AcceptTransfer { device })?;
        Ok(())
    }

    fn owners_seeing(&self, now_unix_s: u64, device: DeviceId) -> Vec<u32> {
        self.accounts
            .iter()
            .filter(|(_, account)| {
                self.server
                    .device_status(now_unix_s, **account, device)
                    .is_ok()
            })
            .map(|(index, _)| *index)
            .collect()
    }

    fn handle_frame(&mut self, now_unix_s: u64, frame: &[u8], out: &mut [u8]) -> Option<usize> {
        let outcome = self.server.handle_frame(now_unix_s, frame, out);
        self.push_notifications(outcome.notifications);
        (outcome.reply_len > 0).then_some(outcome.reply_len)
    }

    fn tick(&mut self, now_unix_s: u64) {
        let accounts: Vec<AccountId> = self.accounts.values().copied().collect();
        for account in accounts {
            let notifications = self.server.tick(now_unix_s, account);
            self.push_notifications(notifications);
        }
    }

    fn drain_notifications(&mut self) -> Vec<ServerNotification> {
        std::mem::take(&mut self.notifications)
    }

    fn failed_attempts(&self, job: JobId) -> BTreeMap<DeviceId, u32> {
        let mut attempts = BTreeMap::new();
        let Some((account, _)) = self.jobs.get(&job) else {
            return attempts;
        };
        for failure in self.server.job_failures(*account, job).unwrap_or_default() {
            *attempts.entry(failure.device).or_default() += 1;
        }
        attempts
    }

    fn job_view(&self, job: JobId) -> JobView {
        let Some((account, _)) = self.jobs.get(&job) else {
            return JobView::default();
        };
        match self.server.job_progress(*account, job) {
            Ok(progress) => JobView {
                phases_opened: progress
                    .phases
                    .iter()
                    .map(|phase| phase.opened_at)
                    .collect(),
                paused: progress.status == JobStatus::Paused,
                completed: progress.status == JobStatus::Completed,
                counters: ServerCounters {
                    targets: progress.counters.targets,
                    admitted: progress.counters.admitted,
                    succeeded: progress.counters.succeeded,
                    up_to_date: progress.counters.up_to_date,
                    failed: progress.counters.failed,
                    failing: progress.counters.failing,
                    offers: progress.counters.offers,
                    failed_attempts: progress.counters.failed_attempts,
                },
            },
            Err(_) => JobView::default(),
        }
    }
}

/// Maps a day number (Monday 0) to the server's weekday.
fn weekday(day: u8) -> Option<Weekday> {
    Some(match day {
        0 => Weekday::Monday,
        1 => Weekday::Tuesday,
        2 => Weekday::Wednesday,
        3 => Weekday::Thursday,
        4 => Weekday::Friday,
        5 => Weekday::Saturday,
        6 => Weekday::Sunday,
        _ => return None,
    })
}
