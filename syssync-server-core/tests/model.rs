//! A state-machine model test: random sequences of operator commands, device
//! messages and time steps, with the server's invariants checked after every
//! step.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use syssync_proto::message::{ChunkRequest, DeviceMessage, Inventory, JobOutcome, JobState};
use syssync_proto::{AccountId, DeviceId, FailureCode, JobId, RevertReason, Version};
use syssync_server_core::{
    Command, Created, DeviceJobState, FailureThreshold, GroupId, GroupKind, JobSpec, JobStatus,
    JobTarget, MaintenanceSchedule, MaintenanceWindow, MemberState, Notification, Phase, ReleaseId,
    Server, Storage, Weekday,
};

#[derive(Clone, Debug)]
enum DeviceAction {
    /// The natural next step for the device's state.
    Progress,
    CheckIn {
        lose_reply: bool,
    },
    Fetch,
    Install,
    Fail,
    Revert,
    Drop,
}

/// The parameters of a random job.
#[derive(Clone, Debug)]
struct JobChoice {
    account: usize,
    target: u8,
    phased: bool,
    max_attempts: u8,
    threshold: bool,
    window: bool,
    timeout: u64,
}

#[derive(Clone, Debug)]
enum Op {
    Device {
        device: usize,
        action: DeviceAction,
    },
    Advance {
        seconds: u64,
    },
    CreateJob(JobChoice),
    Pause {
        account: usize,
        job: usize,
    },
    Resume {
        account: usize,
        job: usize,
    },
    Cancel {
        account: usize,
        job: usize,
    },
    Transfer {
        device: usize,
    },
    Upload {
        account: usize,
        fill: u8,
        approve: bool,
    },
    Delete {
        account: usize,
        release: usize,
    },
    Tick {
        account: usize,
    },
}

fn device_action() -> impl Strategy<Value = DeviceAction> {
    prop_oneof![
        10 => Just(DeviceAction::Progress),
        3 => any::<bool>().prop_map(|lose_reply| DeviceAction::CheckIn { lose_reply }),
        1 => Just(DeviceAction::Fetch),
        1 => Just(DeviceAction::Install),
        1 => Just(DeviceAction::Fail),
        1 => Just(DeviceAction::Revert),
        1 => Just(DeviceAction::Drop),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0..DEVICES, device_action()).prop_map(|(device, action)| Op::Device { device, action }),
        3 => (1u64..8_000).prop_map(|seconds| Op::Advance { seconds }),
        2 => (0..2usize, 0..3u8, any::<bool>(), 1..4u8, any::<bool>(), any::<bool>(), 600..20_000u64).prop_map(
            |(account, target, phased, max_attempts, threshold, window, timeout)| Op::CreateJob(JobChoice {
                account, target, phased, max_attempts, threshold, window, timeout,
            })
        ),
        1 => (0..2usize, 0..4usize).prop_map(|(account, job)| Op::Pause { account, job }),
        1 => (0..2usize, 0..4usize).prop_map(|(account, job)| Op::Resume { account, job }),
        1 => (0..2usize, 0..4usize).prop_map(|(account, job)| Op::Cancel { account, job }),
        1 => (0..DEVICES).prop_map(|device| Op::Transfer { device }),
        1 => (0..2usize, 0..3u8, any::<bool>()).prop_map(|(account, fill, approve)| Op::Upload { account, fill, approve }),
        1 => (0..2usize, 0..4usize).prop_map(|(account, release)| Op::Delete { account, release }),
        1 => (0..2usize).prop_map(|account| Op::Tick { account }),
    ]
}

const DEVICES: usize = 6;

struct ModelDevice {
    device: TestDevice,
    /// The inventory before the current install, to go back to on a revert.
    previous: Option<Inventory>,
}

struct World {
    server: Server,
    now: u64,
    accounts: [AccountId; 2],
    groups: [GroupId; 2],
    devices: Vec<ModelDevice>,
    releases: [Vec<ReleaseId>; 2],
    jobs: [Vec<JobId>; 2],
    next_version: u16,
    /// Offers that started a new attempt, per job and device.
    new_attempts: BTreeMap<(JobId, DeviceId), u32>,
}

impl World {
    fn new() -> Self {
        let mut server = Server::in_memory();
        let accounts = [account(&mut server, "acme"), account(&mut server, "globex")];
        let mut devices = Vec::new();
        for index in 0..DEVICES {
            let device = TestDevice::new(index as u64 + 1);
            let owner = accounts[index % 2];
            server
                .execute(T0, owner, device.register_command(index % 3 != 0))
                .expect("register");
            devices.push(ModelDevice {
                device,
                previous: None,
            });
        }
        let mut groups = [GroupId(0); 2];
        for (slot, owner) in accounts.iter().enumerate() {
            let members = devices
                .iter()
                .enumerate()
                .filter(|(index, _)| index % 2 == slot && *index < 4)
                .map(|(_, model)| model.device.id)
                .collect();
            let created = server
                .execute(
                    T0,
                    *owner,
                    Command::CreateGroup {
                        name: "pilot".into(),
                        kind: GroupKind::Static(members),
                    },
                )
                .expect("group")
                .created;
            let Created::Group(group) = created else {
                panic!("no group created")
            };
            groups[slot] = group;
        }
        let mut world = World {
            server,
            now: T0,
            accounts,
            groups,
            devices,
            releases: [Vec::new(), Vec::new()],
            jobs: [Vec::new(), Vec::new()],
            next_version: 1,
            new_attempts: BTreeMap::new(),
        };
        world.upload(0, 0, true);
        world.upload(1, 1, true);
        world.create_job(JobChoice {
            account: 0,
            target: 0,
            phased: true,
            max_attempts: 2,
            threshold: false,
            window: false,
            timeout: 86_400,
        });
        world
    }

    fn upload(&mut self, account: usize, fill: u8, approve: bool) {
        let files = ReleaseFiles::new(
            Version::new(1, self.next_version, 0, 1),
            fill,
            5000 + usize::from(fill) * 1000,
        );
        self.next_version += 1;
        let owner = self.accounts[account];
        if let Ok(executed) = self.server.execute(self.now, owner, files.upload_command()) {
            if let Created::Release(release) = executed.created {
                if approve {
                    self.server
                        .execute(self.now, owner, Command::ApproveRelease { release })
                        .expect("approve");
                }
                self.releases[account].push(release);
            }
        }
    }

    fn owner_slot(&self, device: DeviceId) -> usize {
        let record = self.server.store().device(device).expect("device exists");
        self.accounts
            .iter()
            .position(|a| *a == record.account)
            .expect("owner is a known account")
    }

    /// Sends one message from a device, checks the per-reply invariants and returns the reply.
    fn send(&mut self, index: usize, message: DeviceMessage) -> (Reply, Vec<Notification>) {
        let id = self.devices[index].device.id;
        let slot_before = self.server.store().device(id).and_then(|record| record.job);
        let members_before: Vec<(JobId, MemberState)> = self
            .server
            .store()
            .jobs()
            .map(|job| (job.id, self.server.store().member(job.id, id)))
            .collect();
        let now = self.now;
        let (reply, notes) = self.devices[index]
            .device
            .send(&mut self.server, now, message);
        match &reply {
            Reply::Offer { job, .. } => {
                let record = self.server.store().job(*job).expect("offered job exists");
                assert_eq!(
                    record.status,
                    JobStatus::Running,
                    "offer from a job that is not running"
                );
                let before = members_before
                    .iter()
                    .find(|(j, _)| j == job)
                    .map(|(_, m)| m.attempts)
                    .unwrap_or(0);
                let after = self.server.store().member(*job, id).attempts;
                if after > before {
                    *self.new_attempts.entry((*job, id)).or_default() += 1;
                } else {
                    let resend = slot_before.is_some_and(|slot| {
                        slot.job == *job && slot.state == DeviceJobState::Offered
                    });
                    assert!(
                        resend,
                        "an offer without a new attempt must repeat a lost one"
                    );
                }
            }
            Reply::Confirm(job) => {
                let record = self.server.store().job(*job).expect("confirmed job exists");
                let already = members_before
                    .iter()
                    .any(|(j, m)| j == job && m.has(MemberState::SUCCEEDED));
                // The first confirm may complete the job, never come from a paused or cancelled one.
                let confirming = matches!(record.status, JobStatus::Running | JobStatus::Completed);
                assert!(
                    already || confirming,
                    "first confirm from a job that is {:?}",
                    record.status
                );
            }
            _ => {}
        }
        (reply, notes)
    }

    fn handle_reply(&mut self, index: usize, reply: Reply, lose_reply: bool) {
        if lose_reply {
            return;
        }
        match reply {
            Reply::Offer { .. } if self.devices[index].device.job.is_none() => {
                self.devices[index].device.accept(&reply);
            }
            Reply::InventoryRequest => {
                let inventory = self.devices[index].device.inventory.clone();
                let (reply, notes) = self.send(index, DeviceMessage::InventoryReport(inventory));
                self.check_notifications(&notes);
                self.handle_reply(index, reply, false);
            }
            Reply::Confirm(job) => {
                let model = &mut self.devices[index];
                if model
                    .device
                    .job
                    .as_ref()
                    .is_some_and(|(j, state, _)| *j == job && *state == JobState::Trial)
                {
                    model.device.job = None;
                    model.previous = None;
                }
            }
            Reply::Cancel(job) => {
                let model = &mut self.devices[index];
                if model.device.job.as_ref().is_some_and(|(j, _, _)| *j == job) {
                    if let Some(previous) = model.previous.take() {
                        model.device.inventory = previous;
                    }
                    model.device.job = None;
                }
            }
            _ => {}
        }
    }

    fn device_step(&mut self, index: usize, action: DeviceAction) {
        let job = self.devices[index].device.job.clone();
        let action = match (action, &job) {
            (DeviceAction::Progress, Some((_, JobState::Downloading, _))) => DeviceAction::Fetch,
            (DeviceAction::Progress, Some((_, JobState::Staged, _))) => DeviceAction::Install,
            (DeviceAction::Progress, _) => DeviceAction::CheckIn { lose_reply: false },
            (action, _) => action,
        };
        match (action, job) {
            (DeviceAction::CheckIn { lose_reply }, _) => {
                let message = self.devices[index].device.check_in_message();
                let (reply, notes) = self.send(index, message);
                self.check_notifications(&notes);
                self.handle_reply(index, reply, lose_reply);
            }
            (DeviceAction::Fetch, Some((job, JobState::Downloading, manifest))) => {
                for (file_index, file) in manifest.files.iter().enumerate() {
                    let mut offset = 0u32;
                    while offset < file.size {
                        let request = ChunkRequest {
                            job,
                            file: file_index as u8,
                            offset,
                            length: 4096,
                        };
                        let (reply, notes) = self.send(index, DeviceMessage::ChunkRequest(request));
                        self.check_notifications(&notes);
                        match reply {
                            Reply::Chunk(data) => offset += data.len() as u32,
                            _ => {
                                let outcome = JobOutcome::Failed(FailureCode::DOWNLOAD_REFUSED);
                                let (_, notes) = self.send(
                                    index,
                                    DeviceMessage::JobReport(syssync_proto::message::JobReport {
                                        job,
                                        outcome,
                                    }),
                                );
                                self.check_notifications(&notes);
                                self.devices[index].device.job = None;
                                return;
                            }
                        }
                    }
                }
                self.devices[index].device.job = Some((job, JobState::Staged, manifest));
            }
            (DeviceAction::Install, Some((job, JobState::Staged, _))) => {
                let model = &mut self.devices[index];
                model.previous = Some(model.device.inventory.clone());
                model.device.install();
                let (reply, notes) = self.send(
                    index,
                    DeviceMessage::JobReport(syssync_proto::message::JobReport {
                        job,
                        outcome: JobOutcome::Installed,
                    }),
                );
                self.check_notifications(&notes);
                self.handle_reply(index, reply, false);
            }
            (DeviceAction::Fail, Some((job, state, _))) if state != JobState::Trial => {
                let outcome = JobOutcome::Failed(FailureCode::FLASH_WRITE);
                let (_, notes) = self.send(
                    index,
                    DeviceMessage::JobReport(syssync_proto::message::JobReport { job, outcome }),
                );
                self.check_notifications(&notes);
                self.devices[index].device.job = None;
            }
            (DeviceAction::Revert, Some((job, JobState::Trial, _))) => {
                let model = &mut self.devices[index];
                if let Some(previous) = model.previous.take() {
                    model.device.inventory = previous;
                }
                model.device.job = None;
                let outcome = JobOutcome::Reverted(RevertReason::TRIAL_LIMIT);
                let (_, notes) = self.send(
                    index,
                    DeviceMessage::JobReport(syssync_proto::message::JobReport { job, outcome }),
                );
                self.check_notifications(&notes);
            }
            (DeviceAction::Drop, Some(_)) => {
                let model = &mut self.devices[index];
                if let Some(previous) = model.previous.take() {
                    model.device.inventory = previous;
                }
                model.device.job = None;
            }
            _ => {}
        }
    }

    fn create_job(&mut self, choice: JobChoice) {
        let JobChoice {
            account,
            target,
            phased,
            max_attempts,
            threshold,
            window,
            timeout,
        } = choice;
        let owner = self.accounts[account];
        let Some(release) = self.releases[account]
            .iter()
            .rev()
            .copied()
            .find(|release| {
                self.server
                    .store()
                    .release(*release)
                    .is_some_and(|r| r.approved)
            })
        else {
            return;
        };
        let target = match target {
            0 => JobTarget::Fleet,
            1 => JobTarget::Group(self.groups[account]),
            _ => JobTarget::Device(self.devices[account].device.id),
        };
        let mut spec = JobSpec::new(release, target, self.now);
        spec.max_attempts = max_attempts;
        spec.in_progress_timeout_s = timeout;
        if phased {
            spec.phases = vec![
                Phase {
                    share_permille: 340,
                    delay_s: 3600,
                    success_permille: 0,
                },
                Phase {
                    share_permille: 700,
                    delay_s: 3600,
                    success_permille: 500,
                },
                Phase {
                    share_permille: 1000,
                    delay_s: 7200,
                    success_permille: 800,
                },
            ];
        }
        if threshold {
            spec.failure_threshold = Some(FailureThreshold {
                max_failed_permille: 400,
                min_sample: 2,
            });
        }
        if window {
            spec.schedule = Some(MaintenanceSchedule {
                utc_offset_minutes: 0,
                windows: vec![MaintenanceWindow {
                    day: Weekday::Monday,
                    start_minute: 0,
                    duration_minutes: 12 * 60,
                }],
            });
        }
        if let Ok(executed) = self
            .server
            .execute(self.now, owner, Command::CreateJob(spec))
        {
            self.check_notifications(&executed.notifications);
            if let Created::Job(job) = executed.created {
                self.jobs[account].push(job);
            }
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Device { device, action } => self.device_step(device, action),
            Op::Advance { seconds } => self.now += seconds,
            Op::CreateJob(choice) => self.create_job(choice),
            Op::Pause { account, job }
            | Op::Resume { account, job }
            | Op::Cancel { account, job }
                if self.jobs[account].is_empty() =>
            {
                let _ = job;
            }
            Op::Pause { account, job } => {
                let job = self.jobs[account][job % self.jobs[account].len()];
                let _ = self.server.execute(
                    self.now,
                    self.accounts[account],
                    Command::PauseJob { job },
                );
            }
            Op::Resume { account, job } => {
                let job = self.jobs[account][job % self.jobs[account].len()];
                if let Ok(executed) = self.server.execute(
                    self.now,
                    self.accounts[account],
                    Command::ResumeJob { job },
                ) {
                    self.check_notifications(&executed.notifications);
                }
            }
            Op::Cancel { account, job } => {
                let job = self.jobs[account][job % self.jobs[account].len()];
                let _ = self.server.execute(
                    self.now,
                    self.accounts[account],
                    Command::CancelJob { job },
                );
            }
            Op::Transfer { device } => {
                let id = self.devices[device].device.id;
                let from = self.owner_slot(id);
                let to = 1 - from;
                self.server
                    .execute(
                        self.now,
                        self.accounts[from],
                        Command::OfferTransfer {
                            device: id,
                            to: self.accounts[to],
                        },
                    )
                    .expect("owner offers");
                self.check_invariants();
                self.server
                    .execute(
                        self.now,
                        self.accounts[to],
                        Command::AcceptTransfer { device: id },
                    )
                    .expect("receiver accepts");
            }
            Op::Upload {
                account,
                fill,
                approve,
            } => self.upload(account, fill, approve),
            Op::Delete { account, release } => {
                if !self.releases[account].is_empty() {
                    let index = release % self.releases[account].len();
                    let id = self.releases[account][index];
                    if self
                        .server
                        .execute(
                            self.now,
                            self.accounts[account],
                            Command::DeleteRelease { release: id },
                        )
                        .is_ok()
                    {
                        self.releases[account].remove(index);
                    }
                }
            }
            Op::Tick { account } => {
                let notes = self.server.tick(self.now, self.accounts[account]);
                self.check_notifications(&notes);
                let notes = self
                    .server
                    .expire_attempts(self.now, self.accounts[account]);
                self.check_notifications(&notes);
            }
        }
    }

    fn check_notifications(&self, notes: &[Notification]) {
        for note in notes {
            if let Some(job) = note.job {
                let record = self.server.store().job(job).expect("notified job exists");
                assert_eq!(
                    record.account, note.account,
                    "notification to another account than the job's"
                );
            }
            if let Some(device) = note.device {
                let record = self
                    .server
                    .store()
                    .device(device)
                    .expect("notified device exists");
                assert_eq!(
                    record.account, note.account,
                    "notification about another account's device"
                );
            }
        }
    }

    fn check_invariants(&self) {
        let store = self.server.store();

        // Every device has exactly one owner, a known account, at every step.
        assert_eq!(store.device_count(), DEVICES);
        for record in store.device_records() {
            assert!(
                self.accounts.contains(&record.account),
                "device {:?} has an unknown owner",
                record.id
            );
        }
        let mut listed = 0;
        for account in self.accounts {
            let devices = self.server.devices(self.now, account).expect("list");
            for status in &devices {
                assert_eq!(
                    store.device(status.id).map(|r| r.account),
                    Some(account),
                    "listed another account's device"
                );
            }
            listed += devices.len();
        }
        assert_eq!(listed, DEVICES, "each device listed by exactly one account");

        // Artifact reference counts equal the references of the releases.
        let mut expected: BTreeMap<[u8; 32], u32> = BTreeMap::new();
        for release in store.releases() {
            for digest in &release.artifacts {
                *expected.entry(*digest).or_default() += 1;
            }
        }
        let actual: BTreeMap<[u8; 32], u32> = store
            .artifacts()
            .map(|(digest, artifact)| (*digest, artifact.references))
            .collect();
        assert_eq!(actual, expected);

        for job in store.jobs() {
            // Attempt limit.
            for model in &self.devices {
                let member = store.member(job.id, model.device.id);
                assert!(
                    member.attempts <= job.spec.max_attempts,
                    "attempts above the limit"
                );
                let seen = self
                    .new_attempts
                    .get(&(job.id, model.device.id))
                    .copied()
                    .unwrap_or(0);
                assert!(
                    seen <= u32::from(job.spec.max_attempts),
                    "offered more often than the limit"
                );
                assert_eq!(seen, u32::from(member.attempts));
            }
            // Phase shares: the admissions up to each open phase stay within its cap.
            let mut admitted = 0u64;
            for (spec, counters) in job.spec.phases.iter().zip(&job.phases) {
                admitted += u64::from(counters.admitted);
                match counters.opened_at {
                    Some(_) => {
                        let cap = (u64::from(spec.share_permille)
                            * u64::from(job.counters.targets))
                        .div_ceil(1000);
                        assert!(
                            admitted <= cap,
                            "phase admitted {admitted} over its cap {cap}"
                        );
                    }
                    None => assert_eq!(counters.admitted, 0, "admissions in a closed phase"),
                }
            }
            assert_eq!(admitted, u64::from(job.counters.admitted));

            // Account isolation of job queries.
            for account in self.accounts {
                let visible = self.server.job_progress(account, job.id).is_ok();
                assert_eq!(
                    visible,
                    account == job.account,
                    "job visible to another account"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn server_invariants_hold(ops in proptest::collection::vec(op(), 1..100)) {
        // Proves, for random operator commands, device messages and time steps,
        // the attempt limit, phase caps, single ownership, artifact reference
        // counts, no new offers from paused or cancelled jobs, and isolation.
        let mut world = World::new();
        world.check_invariants();
        for op in ops {
            world.apply(op);
            world.check_invariants();
        }
    }
}
