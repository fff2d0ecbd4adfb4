//! The discrete-event fleet simulation: devices, links, gateways, power cuts
//! and the server, driven in simulated time.
//!
//! All randomness comes from ChaCha8 generators: one per device, seeded from
//! the scenario seed and the device index, so that adding devices does not
//! change the others' random choices. Events at the same simulated time run
//! in the order they were scheduled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use syssync_proto::message::MessageType;
use syssync_proto::{
    Binding, DeviceId, DeviceKey, DeviceMessage, Frame, JobId, RustCrypto, ServerMessage,
    MAX_FRAME_LEN,
};

use crate::link::{CanLink, DirectLink};
use crate::model::{BootOutcome, DeviceEvent, DeviceModel, DeviceSpec, RolloutSpec, ServerModel};
use crate::queue::{EventQueue, SimTime};
use crate::release::{BuiltRelease, ReleaseKey, EPOCH_UNIX_S};
use crate::report::{
    DeviceOffers, Fidelity, GatewayReport, NotificationRecord, PowerCuts, Report, RolloutReport,
    TransferReport, WireReport,
};
use crate::scenario::{FleetEvent, Scenario};

const HOUR_MS: SimTime = 3_600_000;
/// Simulated time that a run continues after it settled, so that late
/// reports and check-ins still reach the report.
const SETTLE_MS: SimTime = HOUR_MS;
/// How often the server's time-driven decisions run, in simulated milliseconds.
const SERVER_TICK_MS: SimTime = 60_000;
/// How often a progress line is printed, in simulated milliseconds.
const PROGRESS_MS: SimTime = 6 * HOUR_MS;
/// Devices listed by index in a rollout report at most.
const MAX_LISTED_DEVICES: usize = 100;

/// Returns the Unix time of a simulated instant.
pub fn unix_seconds(now: SimTime) -> u64 {
    EPOCH_UNIX_S + now / 1000
}

/// Derives the wire id of device `index`.
pub fn device_id(index: u32) -> DeviceId {
    DeviceId(1_000_000 + u64::from(index))
}

/// Derives the key of device `index` from the scenario seed.
pub fn device_key(seed: u64, index: u32) -> DeviceKey {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"syssync-sim device key");
    hasher.update(seed.to_le_bytes());
    hasher.update(index.to_le_bytes());
    DeviceKey(hasher.finalize().into())
}

fn device_rng(seed: u64, index: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(index) + 1);
    rng
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Direct,
    Gateway(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    CheckIn,
    Manifest,
    Chunk,
    Retransmission,
    Other,
}

#[derive(Clone, Debug, Default)]
struct DeviceRollout {
    offers: u64,
    trial_boots: u64,
    confirmed: bool,
}

struct DeviceState<D> {
    index: u32,
    model: D,
    rng: ChaCha8Rng,
    id: DeviceId,
    key: DeviceKey,
    route: Route,
    online: bool,
    in_group: bool,
    wake_at: Option<SimTime>,
    last_request: Option<MessageType>,
    last_exchange_failed: bool,
    pending_chunk: Option<(u8, u32)>,
    chunks_seen: BTreeSet<(u32, u8, u32)>,
    running: [u8; 32],
    trial: bool,
    bricked: bool,
    settings_before: [u8; 32],
    rollouts: Vec<DeviceRollout>,
    plan_download_cut: bool,
    plan_install_cut: bool,
    download_cut_armed: bool,
    install_cut_armed: bool,
    check_ins: u64,
    failing: bool,
    powered: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResetKind {
    /// First power-on of the device.
    PowerOn,
    /// The application resets because the engine asked (install or revert).
    Requested,
    /// Power came back after a cut.
    AfterPowerCut,
}

enum Event {
    Wake(u32),
    Online(u32),
    Uplink {
        device: u32,
        frame: Vec<u8>,
        class: Class,
    },
    Downlink {
        device: u32,
        frame: Vec<u8>,
    },
    Reset(u32),
    StartRollout(usize),
    Fleet(usize),
    ServerTick,
    Progress,
}

/// Options that override the scenario from the command line.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Print progress lines on stderr.
    pub progress: bool,
}

/// A simulation ready to run.
pub struct Simulation<D, S> {
    scenario: Scenario,
    releases: Vec<BuiltRelease>,
    fidelity: Fidelity,
    server: S,
    devices: Vec<DeviceState<D>>,
    queue: EventQueue<Event>,
    crypto: RustCrypto,
    jobs: Vec<Option<JobId>>,
    phase_opened: Vec<Vec<Option<u64>>>,
    paused: Vec<Option<u64>>,
    completed: Vec<Option<u64>>,
    wire: WireReport,
    power_cuts: PowerCuts,
    chunks_twice: u64,
    notifications: Vec<NotificationRecord>,
    transfers: Vec<TransferReport>,
    transfer_check_ins: Vec<u64>,
    buffer: Vec<u8>,
    options: RunOptions,
    started: Instant,
    errors: Vec<String>,
    settled_at: Option<SimTime>,
}

fn class_of_request(kind: MessageType) -> Class {
    match kind {
        MessageType::CheckIn => Class::CheckIn,
        MessageType::ChunkRequest => Class::Chunk,
        _ => Class::Other,
    }
}

impl<D: DeviceModel, S: ServerModel> Simulation<D, S> {
    /// Builds the fleet: provisions every device through `make_device` and
    /// registers it with `server`.
    pub fn new(
        scenario: Scenario,
        releases: Vec<BuiltRelease>,
        mut fidelity: Fidelity,
        key: &ReleaseKey,
        mut server: S,
        mut make_device: impl FnMut(&DeviceSpec<'_>) -> Result<D, String>,
        options: RunOptions,
    ) -> Result<Self, String> {
        for release in &releases {
            server.add_release(EPOCH_UNIX_S, release)?;
        }
        let installed_index = releases
            .iter()
            .position(|release| release.name == scenario.fleet.installed)
            .unwrap_or(0);
        let max_image_size = releases
            .iter()
            .map(|release| release.image.len() as u32)
            .max()
            .unwrap_or(0);
        let max_files_size = releases
            .iter()
            .map(|release| release.files.iter().map(|f| f.bytes.len() as u32).sum())
            .max()
            .unwrap_or(0);
        let fleet = &scenario.fleet;
        let direct = fleet.devices - scenario.gateway_devices();
        let group_members = fleet.group_members.unwrap_or(fleet.devices);
        let mut devices = Vec::with_capacity(fleet.devices as usize);
        for index in 0..fleet.devices {
            let mut rng = device_rng(scenario.seed, index);
            let route = if index < direct {
                Route::Direct
            } else {
                let mut offset = index - direct;
                let mut gateway = 0;
                while offset >= scenario.gateways[gateway].devices {
                    offset -= scenario.gateways[gateway].devices;
                    gateway += 1;
                }
                Route::Gateway(gateway)
            };
            let id = device_id(index);
            let key_bytes = device_key(scenario.seed, index);
            let spec = DeviceSpec {
                index,
                id,
                key: key_bytes.clone(),
                target: &fleet.target,
                installed: &releases[installed_index],
                trusted_key: key.trusted_key(),
                max_image_size,
                max_files_size,
                seed: rng.gen(),
            };
            let mut model = make_device(&spec)?;
            fidelity.flash_bytes_per_device = model.flash_bytes();
            server.add_device(EPOCH_UNIX_S, 0, id, &key_bytes)?;
            let settings_before = model.settings_digest();
            let faults = &scenario.faults;
            let plan_download_cut = rng.gen_bool(faults.power_cut_download);
            let plan_install_cut = rng.gen_bool(faults.power_cut_install);
            devices.push(DeviceState {
                index,
                model,
                rng,
                id,
                key: key_bytes,
                route,
                online: false,
                in_group: index < group_members,
                wake_at: None,
                last_request: None,
                last_exchange_failed: false,
                pending_chunk: None,
                chunks_seen: BTreeSet::new(),
                running: releases[installed_index].image_sha256,
                trial: false,
                bricked: false,
                settings_before,
                rollouts: vec![DeviceRollout::default(); scenario.rollouts.len()],
                plan_download_cut,
                plan_install_cut,
                download_cut_armed: false,
                install_cut_armed: false,
                check_ins: 0,
                failing: faults.failing_devices.contains(&index),
                powered: false,
            });
        }
        let rollouts = scenario.rollouts.len();
        let phase_opened = scenario
            .rollouts
            .iter()
            .map(|rollout| vec![None; rollout.phases.len()])
            .collect();
        Ok(Self {
            releases,
            fidelity,
            server,
            devices,
            queue: EventQueue::new(),
            crypto: RustCrypto,
            jobs: vec![None; rollouts],
            phase_opened,
            paused: vec![None; rollouts],
            completed: vec![None; rollouts],
            wire: WireReport::default(),
            power_cuts: PowerCuts::default(),
            chunks_twice: 0,
            notifications: Vec::new(),
            transfers: Vec::new(),
            transfer_check_ins: Vec::new(),
            buffer: vec![0; MAX_FRAME_LEN],
            options,
            started: Instant::now(),
            errors: Vec::new(),
            settled_at: None,
            scenario,
        })
    }

    /// Runs the scenario to its end and returns the report.
    pub fn run(mut self) -> Report {
        self.started = Instant::now();
        self.schedule_start();
        let mut end = (self.scenario.duration_hours * HOUR_MS as f64) as SimTime;
        while let Some(time) = self.queue.peek_time() {
            if let Some(settled) = self.settled_at {
                end = end.min(settled + SETTLE_MS);
            }
            if time > end {
                break;
            }
            let Some((now, event)) = self.queue.pop() else {
                break;
            };
            self.handle(now, event);
        }
        self.server.tick(unix_seconds(end));
        self.collect_notifications(end);
        self.observe_jobs(end);
        self.finish(end)
    }

    fn schedule_start(&mut self) {
        let first_rollout_ms = self
            .scenario
            .rollouts
            .iter()
            .map(|rollout| (rollout.start_hours * HOUR_MS as f64) as SimTime)
            .min()
            .unwrap_or(0);
        let late_span = (self.scenario.fleet.late_online_hours * HOUR_MS as f64) as SimTime;
        let interval_ms = SimTime::from(self.scenario.fleet.check_in_interval_s) * 1000;
        for index in 0..self.devices.len() {
            let device = &mut self.devices[index];
            let late = device.rng.gen_bool(self.scenario.fleet.late_online_share);
            let online_at = if late {
                first_rollout_ms + device.rng.gen_range(0..=late_span)
            } else {
                device.rng.gen_range(0..interval_ms)
            };
            self.queue.push(online_at, Event::Online(index as u32));
        }
        for (index, rollout) in self.scenario.rollouts.iter().enumerate() {
            let at = (rollout.start_hours * HOUR_MS as f64) as SimTime;
            self.queue.push(at, Event::StartRollout(index));
        }
        for (index, event) in self.scenario.events.iter().enumerate() {
            let at = (event.at_hours() * HOUR_MS as f64) as SimTime;
            self.queue.push(at, Event::Fleet(index));
        }
        self.queue.push(SERVER_TICK_MS, Event::ServerTick);
        if self.options.progress {
            self.queue.push(PROGRESS_MS, Event::Progress);
        }
    }

    fn handle(&mut self, now: SimTime, event: Event) {
        match event {
            Event::Wake(index) => {
                let device = &mut self.devices[index as usize];
                if device.wake_at != Some(now) || !device.online {
                    return;
                }
                device.wake_at = None;
                device.model.handle_timeout(now);
                self.drive(now, index);
            }
            Event::Online(index) => {
                let device = &mut self.devices[index as usize];
                device.online = true;
                if device.powered {
                    device.model.set_network(now, true);
                    self.drive(now, index);
                } else {
                    self.reset_device(now, index, ResetKind::PowerOn);
                }
            }
            Event::Uplink {
                device,
                frame,
                class,
            } => self.server_receives(now, device, &frame, class),
            Event::Downlink { device, frame } => self.device_receives(now, device, &frame),
            Event::Reset(index) => self.reset_device(now, index, ResetKind::Requested),
            Event::StartRollout(index) => self.start_rollout(now, index),
            Event::Fleet(index) => self.fleet_event(now, index),
            Event::ServerTick => {
                self.server.tick(unix_seconds(now));
                self.collect_notifications(now);
                self.observe_jobs(now);
                self.check_transfers(now);
                if self.scenario.stop_when_settled
                    && self.settled_at.is_none()
                    && self.is_settled(now)
                {
                    self.settled_at = Some(now);
                }
                self.queue.push(now + SERVER_TICK_MS, Event::ServerTick);
            }
            Event::Progress => {
                self.print_progress(now);
                self.queue.push(now + PROGRESS_MS, Event::Progress);
            }
        }
    }

    fn start_rollout(&mut self, now: SimTime, index: usize) {
        let rollout = &self.scenario.rollouts[index];
        let Some(release) = self
            .releases
            .iter()
            .find(|release| release.name == rollout.release)
        else {
            return;
        };
        let members: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|device| device.in_group)
            .map(|device| device.id)
            .collect();
        let phases: Vec<(f64, u64, f64)> = rollout
            .phases
            .iter()
            .map(|phase| {
                (
                    phase.share,
                    (phase.delay_hours * 3600.0) as u64,
                    phase.success_ratio,
                )
            })
            .collect();
        // The scenario was validated, so every window converts.
        let windows: Vec<(u8, u16, u16)> = rollout
            .windows
            .iter()
            .filter_map(|window| window.minutes().ok())
            .collect();
        let spec = RolloutSpec {
            release,
            devices: &members,
            phases: &phases,
            attempt_limit: rollout.attempt_limit,
            failure_threshold: rollout.failure_threshold,
            failure_min_sample: rollout.failure_min_sample,
            in_progress_timeout_s: (rollout.in_progress_timeout_hours * 3600.0) as u64,
            windows: &windows,
            utc_offset_minutes: (rollout.utc_offset_hours * 60.0).round() as i16,
        };
        match self.server.start_rollout(unix_seconds(now), &spec) {
            Ok(job) => self.jobs[index] = Some(job),
            Err(error) => self.errors.push(error),
        }
        self.observe_jobs(now);
    }

    fn fleet_event(&mut self, now: SimTime, index: usize) {
        match self.scenario.events[index].clone() {
            FleetEvent::JoinGroup { first, count, .. } => {
                let mut joined = Vec::new();
                for device in &mut self.devices[first as usize..(first + count) as usize] {
                    if !device.in_group {
                        device.in_group = true;
                        joined.push(device.id);
                    }
                }
                // Joining devices enter every rollout that has started.
                for job in self.jobs.clone().into_iter().flatten() {
                    if let Err(error) = self.server.join_group(unix_seconds(now), job, &joined) {
                        self.errors.push(error);
                    }
                }
            }
            FleetEvent::Transfer {
                device, to_account, ..
            } => {
                let id = self.devices[device as usize].id;
                let unix = unix_seconds(now);
                let before = self.server.owners_seeing(unix, id);
                if let Err(error) = self.server.transfer(unix, id, to_account) {
                    self.errors.push(error);
                }
                let after = self.server.owners_seeing(unix, id);
                self.transfers.push(TransferReport {
                    device,
                    from_account: before.first().copied().unwrap_or(u32::MAX),
                    to_account,
                    at_s: now / 1000,
                    never_ownerless: before.len() == 1 && after.len() == 1,
                    visible_to_old_owner: before
                        .first()
                        .is_some_and(|owner| after.contains(owner) && *owner != to_account),
                    visible_to_new_owner: after.contains(&to_account),
                    kept_checking_in: false,
                });
                self.transfer_check_ins
                    .push(self.devices[device as usize].check_ins);
            }
        }
    }

    /// Drains a device's outputs: frames, events and its next wake-up.
    fn drive(&mut self, now: SimTime, index: u32) {
        loop {
            if self.devices[index as usize].model.power_rail().is_down() {
                self.power_cut(now, index);
                continue;
            }
            let length = {
                let device = &mut self.devices[index as usize];
                device.model.poll_transmit(now, &mut self.buffer)
            };
            if let Some(length) = length {
                let frame = self.buffer[..length].to_vec();
                self.device_sends(now, index, frame);
                continue;
            }
            let event = self.devices[index as usize].model.poll_event();
            if let Some(event) = event {
                self.device_event(now, index, event);
                continue;
            }
            break;
        }
        let device = &mut self.devices[index as usize];
        if let Some(at) = device.model.poll_timeout() {
            let at = at.max(now);
            if device
                .wake_at
                .is_none_or(|current| at < current || current < now)
            {
                device.wake_at = Some(at);
                self.queue.push(at, Event::Wake(index));
            }
        }
    }

    fn device_event(&mut self, now: SimTime, index: u32, event: DeviceEvent) {
        let image_len = self.max_image_len();
        let device = &mut self.devices[index as usize];
        match event {
            DeviceEvent::DownloadStarted => {
                if device.plan_download_cut && !device.download_cut_armed {
                    device.download_cut_armed = true;
                    let at = device.rng.gen_range(1..image_len.max(2));
                    device.model.power_rail().cut_after_bytes(at);
                }
            }
            DeviceEvent::ResetWanted { deadline } => {
                let delay = device.rng.gen_range(1_000..=60_000);
                let at = (now + delay).min(deadline.max(now));
                self.queue.push(at, Event::Reset(index));
            }
            DeviceEvent::Confirmed => {
                device.trial = false;
                for (rollout, state) in self.scenario.rollouts.iter().zip(&mut device.rollouts) {
                    let confirmed = self.releases.iter().any(|release| {
                        release.name == rollout.release && release.image_sha256 == device.running
                    });
                    if confirmed {
                        state.confirmed = true;
                    }
                }
            }
            DeviceEvent::Failed | DeviceEvent::Reverted => {}
        }
    }

    fn max_image_len(&self) -> u64 {
        self.releases
            .iter()
            .map(|release| release.image.len() as u64)
            .max()
            .unwrap_or(1)
    }

    fn power_cut(&mut self, now: SimTime, index: u32) {
        let device = &mut self.devices[index as usize];
        device.model.power_rail().disarm();
        device.model.power_rail().power_on();
        if device.install_cut_armed && device.plan_install_cut {
            device.plan_install_cut = false;
            self.power_cuts.install += 1;
        } else {
            device.plan_download_cut = false;
            self.power_cuts.download += 1;
        }
        self.reset_device(now, index, ResetKind::AfterPowerCut);
    }

    fn reset_device(&mut self, now: SimTime, index: u32, kind: ResetKind) {
        let image_len = self.max_image_len();
        let device = &mut self.devices[index as usize];
        if device.bricked {
            return;
        }
        // The reset that starts an install is where the install power cut goes.
        device.powered = true;
        if kind == ResetKind::Requested && device.plan_install_cut && !device.install_cut_armed {
            device.install_cut_armed = true;
            let at = device.rng.gen_range(1..(image_len * 2).max(2));
            device.model.power_rail().cut_after_bytes(at);
        }
        let outcome = loop {
            let outcome = device.model.reset(now);
            if outcome == BootOutcome::PowerLost || device.model.power_rail().is_down() {
                device.model.power_rail().disarm();
                device.model.power_rail().power_on();
                if device.plan_install_cut {
                    device.plan_install_cut = false;
                    self.power_cuts.install += 1;
                }
                continue;
            }
            break outcome;
        };
        match outcome {
            BootOutcome::Bricked | BootOutcome::PowerLost => {
                device.bricked = true;
                device.online = false;
                return;
            }
            BootOutcome::Booted {
                image_sha256,
                trial,
            } => {
                device.running = image_sha256;
                device.trial = trial;
                device.wake_at = None;
                device.last_request = None;
                if trial {
                    let unhealthy = device.failing
                        || self.releases.iter().any(|release| {
                            release.image_sha256 == image_sha256 && !release.healthy
                        });
                    for (rollout, state) in self.scenario.rollouts.iter().zip(&mut device.rollouts)
                    {
                        let matches = self.releases.iter().any(|release| {
                            release.name == rollout.release && release.image_sha256 == image_sha256
                        });
                        if matches {
                            state.trial_boots += 1;
                        }
                    }
                    // An application that never passes its health check
                    // reports failure before the engine sends anything, and
                    // its watchdog resets the device at once.
                    // NOTE: with a delay between the failure report and the
                    // reset, the engine checks in from the trial image and
                    // the server counts the device as up to date.
                    if unhealthy {
                        device.model.report_unhealthy(now);
                        self.reset_device(now, index, ResetKind::Requested);
                        return;
                    }
                }
            }
        }
        if device.online {
            device.model.set_network(now, true);
        }
        self.drive(now, index);
    }

    fn device_sends(&mut self, now: SimTime, index: u32, frame: Vec<u8>) {
        let Some(kind) = frame.get(1).and_then(|byte| MessageType::from_u8(*byte)) else {
            return;
        };
        let device = &mut self.devices[index as usize];
        let retransmission = device.last_exchange_failed && device.last_request == Some(kind);
        device.last_request = Some(kind);
        device.last_exchange_failed = false;
        device.pending_chunk = None;
        if kind == MessageType::CheckIn {
            device.check_ins += 1;
            self.wire.check_ins += 1;
            self.wire.average_check_in_bytes += frame.len() as f64;
        }
        if kind == MessageType::ChunkRequest {
            if let Ok(parsed) = Frame::parse(&frame) {
                if let Ok((_, DeviceMessage::ChunkRequest(request))) =
                    parsed.open_uplink(&self.crypto, &device.key)
                {
                    device.pending_chunk = Some((request.file, request.offset));
                }
            }
        }
        let class = if retransmission {
            Class::Retransmission
        } else {
            class_of_request(kind)
        };
        self.count_bytes(class, frame.len());
        let delay = self.carry(index, &frame, true);
        match delay {
            Some(delay) => self.queue.push(
                now + delay,
                Event::Uplink {
                    device: index,
                    frame,
                    class,
                },
            ),
            None => self.devices[index as usize].last_exchange_failed = true,
        }
    }

    /// Carries a frame over the device's route; `None` if it is lost.
    fn carry(&mut self, index: u32, frame: &[u8], uplink: bool) -> Option<SimTime> {
        let faults = &self.scenario.faults;
        let upstream = DirectLink {
            loss: faults.frame_loss,
            latency_ms: faults.latency_ms,
            jitter_ms: faults.jitter_ms,
        };
        let device = &mut self.devices[index as usize];
        match device.route {
            Route::Direct => upstream.transmit(&mut device.rng, &mut self.wire.upstream),
            Route::Gateway(gateway) => {
                let gateway = &self.scenario.gateways[gateway];
                let can = CanLink {
                    mtu: usize::from(gateway.mtu),
                    segment_loss: gateway.segment_loss,
                };
                let mut scratch = [0u8; MAX_FRAME_LEN];
                let rng = &mut device.rng;
                let can_stats = &mut self.wire.can;
                let upstream_stats = &mut self.wire.upstream;
                if uplink {
                    let bus = can.carry(frame, &mut scratch, rng, can_stats).ok()??;
                    let net = upstream.transmit(rng, upstream_stats)?;
                    Some(bus + net)
                } else {
                    let net = upstream.transmit(rng, upstream_stats)?;
                    let bus = can.carry(frame, &mut scratch, rng, can_stats).ok()??;
                    Some(bus + net)
                }
            }
        }
    }

    fn count_bytes(&mut self, class: Class, length: usize) {
        let length = length as u64;
        match class {
            Class::CheckIn => self.wire.check_in_bytes += length,
            Class::Manifest => self.wire.manifest_bytes += length,
            Class::Chunk => self.wire.chunk_bytes += length,
            Class::Retransmission => self.wire.retransmission_bytes += length,
            Class::Other => self.wire.other_bytes += length,
        }
        self.wire.total_bytes += length;
    }

    fn server_receives(&mut self, now: SimTime, index: u32, frame: &[u8], class: Class) {
        let mut reply = [0u8; MAX_FRAME_LEN];
        let Some(length) = self
            .server
            .handle_frame(unix_seconds(now), frame, &mut reply)
        else {
            self.devices[index as usize].last_exchange_failed = true;
            return;
        };
        let reply = reply[..length].to_vec();
        let mut class = class;
        if reply.get(1) == Some(&(MessageType::JobOffer as u8)) {
            self.count_offer(index, frame, &reply);
            if class != Class::Retransmission {
                class = Class::Manifest;
            }
        }
        self.count_bytes(class, reply.len());
        match self.carry(index, &reply, false) {
            Some(delay) => self.queue.push(
                now + delay,
                Event::Downlink {
                    device: index,
                    frame: reply,
                },
            ),
            None => self.devices[index as usize].last_exchange_failed = true,
        }
    }

    fn count_offer(&mut self, index: u32, request: &[u8], reply: &[u8]) {
        let device = &mut self.devices[index as usize];
        let Ok(header) = Frame::parse(request).and_then(|frame| frame.uplink_header()) else {
            return;
        };
        let Ok(frame) = Frame::parse(reply) else {
            return;
        };
        if let Ok(ServerMessage::JobOffer(offer)) =
            frame.open_downlink(&self.crypto, &device.key, Binding::from(header))
        {
            if let Some(rollout) = self.jobs.iter().position(|job| *job == Some(offer.job)) {
                device.rollouts[rollout].offers += 1;
            }
            // A new attempt downloads from the start, so only repeats within
            // one attempt count as chunks fetched twice.
            device.chunks_seen.clear();
        }
    }

    fn device_receives(&mut self, now: SimTime, index: u32, frame: &[u8]) {
        let device = &mut self.devices[index as usize];
        if !device.online || device.bricked {
            return;
        }
        if frame.get(1) == Some(&(MessageType::Chunk as u8)) {
            if let Some((file, offset)) = device.pending_chunk.take() {
                let job = self
                    .jobs
                    .iter()
                    .flatten()
                    .map(|job| job.0)
                    .next_back()
                    .unwrap_or(0);
                if !device.chunks_seen.insert((job, file, offset)) {
                    self.chunks_twice += 1;
                }
            }
        }
        device.model.handle_frame(now, frame);
        self.drive(now, index);
    }

    fn collect_notifications(&mut self, now: SimTime) {
        for notification in self.server.drain_notifications() {
            self.notifications.push(NotificationRecord {
                at_s: now / 1000,
                account: notification.account,
                kind: notification.kind,
                job: notification.job.map(|job| job.0),
                device: notification.device.map(|device| device.0),
                cause: notification.cause,
                wanted: notification.wanted,
            });
        }
    }

    fn observe_jobs(&mut self, now: SimTime) {
        for (index, job) in self.jobs.iter().enumerate() {
            let Some(job) = job else { continue };
            let view = self.server.job_view(*job);
            for (phase, opened) in self.phase_opened[index].iter_mut().zip(&view.phases_opened) {
                if let Some(opened) = opened {
                    phase.get_or_insert(opened.saturating_sub(EPOCH_UNIX_S));
                }
            }
            if view.paused {
                self.paused[index].get_or_insert(now / 1000);
            }
            if self.completed[index].is_none() {
                let release = &self.scenario.rollouts[index].release;
                let image = self
                    .releases
                    .iter()
                    .find(|r| &r.name == release)
                    .map(|r| r.image_sha256);
                let all = self
                    .devices
                    .iter()
                    .filter(|device| device.in_group)
                    .all(|device| Some(device.running) == image && !device.trial);
                if all {
                    self.completed[index] = Some(now / 1000);
                }
            }
        }
    }

    /// Checks every handed-over device: exactly one account, the new owner, lists it.
    fn check_transfers(&mut self, now: SimTime) {
        for transfer in &mut self.transfers {
            let id = self.devices[transfer.device as usize].id;
            let owners = self.server.owners_seeing(unix_seconds(now), id);
            transfer.never_ownerless &= owners.len() == 1;
            transfer.visible_to_old_owner |= owners.contains(&transfer.from_account);
            transfer.visible_to_new_owner &= owners.contains(&transfer.to_account);
        }
    }

    /// Returns whether nothing is left to happen: every rollout started and
    /// is completed or paused, every fleet event is past, and no device is
    /// online with an image on trial.
    fn is_settled(&self, now: SimTime) -> bool {
        let events_past = self
            .scenario
            .events
            .iter()
            .all(|event| (event.at_hours() * HOUR_MS as f64) as SimTime <= now);
        let rollouts_done = self.jobs.iter().all(|job| {
            job.is_some_and(|job| {
                let view = self.server.job_view(job);
                view.completed || view.paused
            })
        });
        events_past
            && rollouts_done
            && self
                .devices
                .iter()
                .all(|device| !device.trial || device.bricked)
    }

    fn print_progress(&self, now: SimTime) {
        let online = self.devices.iter().filter(|device| device.online).count();
        let mut running: BTreeMap<&str, usize> = BTreeMap::new();
        for device in &self.devices {
            let name = self
                .releases
                .iter()
                .find(|release| release.image_sha256 == device.running)
                .map_or("unknown", |release| release.name.as_str());
            *running.entry(name).or_default() += 1;
        }
        let running: Vec<String> = running
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        eprintln!(
            "[{:>6.1} h] online {online}/{}, running {}, {} MiB on the wire, wall {:.1} s",
            now as f64 / HOUR_MS as f64,
            self.devices.len(),
            running.join(", "),
            self.wire.total_bytes / (1024 * 1024),
            self.started.elapsed().as_secs_f64()
        );
    }

    fn finish(mut self, end: SimTime) -> Report {
        if self.wire.check_ins > 0 {
            self.wire.average_check_in_bytes /= self.wire.check_ins as f64;
            self.wire.average_check_in_bytes =
                (self.wire.average_check_in_bytes * 10.0).round() / 10.0;
        }
        let mut running: BTreeMap<String, u64> = BTreeMap::new();
        let mut gateways: Vec<GatewayReport> = self
            .scenario
            .gateways
            .iter()
            .map(|gateway| GatewayReport {
                name: gateway.name.clone(),
                mtu: gateway.mtu,
                ..GatewayReport::default()
            })
            .collect();
        let mut bricked = 0;
        let mut settings_changed = 0;
        for device in &mut self.devices {
            let name = self
                .releases
                .iter()
                .find(|release| release.image_sha256 == device.running)
                .map_or_else(|| "unknown".to_owned(), |release| release.name.clone());
            if let Route::Gateway(gateway) = device.route {
                gateways[gateway].devices += 1;
                *gateways[gateway].running.entry(name.clone()).or_default() += 1;
            }
            *running.entry(name).or_default() += 1;
            // A final power cycle: the device counts as bricked unless the
            // bootloader boots an image whose bytes match its digest.
            if device.bricked || !device.model.boots_verified_image(end) {
                bricked += 1;
            }
            if device.model.settings_digest() != device.settings_before {
                settings_changed += 1;
            }
        }
        let mut rollouts = Vec::new();
        for (index, rollout) in self.scenario.rollouts.iter().enumerate() {
            let release = self
                .releases
                .iter()
                .find(|release| release.name == rollout.release);
            let image = release.map(|release| release.image_sha256);
            let mut report = RolloutReport {
                release: rollout.release.clone(),
                healthy_release: release.is_some_and(|release| release.healthy),
                phase_opened_s: self.phase_opened[index].clone(),
                paused_s: self.paused[index],
                completed_s: self.completed[index],
                server: self.jobs[index]
                    .map(|job| self.server.job_view(job).counters)
                    .unwrap_or_default(),
                ..RolloutReport::default()
            };
            for device in self.devices.iter().filter(|device| device.in_group) {
                let state = &device.rollouts[index];
                report.targeted += 1;
                report.max_offers_per_device = report.max_offers_per_device.max(state.offers);
                if state.trial_boots > 0 {
                    report.got_release += 1;
                }
                if state.confirmed || (Some(device.running) == image && !device.trial) {
                    report.updated += 1;
                } else if state.offers >= u64::from(rollout.attempt_limit) {
                    report.failed_attempt_limit += 1;
                    if report.attempt_limit_devices.len() < MAX_LISTED_DEVICES {
                        report.attempt_limit_devices.push(DeviceOffers {
                            device: device.index,
                            offers: state.offers,
                        });
                    }
                } else if state.trial_boots > 0 {
                    report.reverted += 1;
                } else if state.offers == 0 {
                    report.never_reached += 1;
                } else {
                    report.in_progress += 1;
                }
            }
            rollouts.push(report);
        }
        for (transfer, check_ins_before) in self.transfers.iter_mut().zip(&self.transfer_check_ins)
        {
            let device = &self.devices[transfer.device as usize];
            let owners = self.server.owners_seeing(unix_seconds(end), device.id);
            transfer.never_ownerless &= owners.len() == 1;
            transfer.visible_to_old_owner |= owners.contains(&transfer.from_account);
            transfer.visible_to_new_owner &= owners.contains(&transfer.to_account);
            transfer.kept_checking_in = device.check_ins > *check_ins_before;
        }
        let mut notification_counts = BTreeMap::new();
        for notification in &self.notifications {
            *notification_counts
                .entry(notification.kind.clone())
                .or_default() += 1;
        }
        Report {
            scenario: self.scenario.name.clone(),
            seed: self.scenario.seed,
            devices: self.scenario.fleet.devices,
            simulated_s: end / 1000,
            fidelity: self.fidelity,
            rollouts,
            running,
            gateways,
            bricked,
            settings_changed,
            power_cuts: self.power_cuts,
            wire: self.wire,
            chunks_fetched_twice: self.chunks_twice,
            transfers: self.transfers,
            notifications: self.notifications,
            notification_counts,
            errors: self.errors,
        }
    }
}
