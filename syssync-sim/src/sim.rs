//! The discrete-event fleet simulation: devices, links, gateways, power cuts
//! and the server, driven in simulated time.
//!
//! All randomness comes from ChaCha8 generators, two per device: one for the
//! device's own choices and its uplink, one for its downlink. They are seeded
//! from the scenario seed and the device index, so adding devices does not
//! change the others' random choices.
//!
//! # Parallel windows
//!
//! No frame crosses a link in less than the link latency `L`, so nothing that
//! the devices or the server do in a window `[T, T + L)` reaches the other
//! side before the window ends. The simulation therefore runs in such
//! windows: the devices, in a fixed number of shards, and the server each
//! work through their own events of the window, on as many threads as there
//! are, and exchange the frames they sent when the window closes. Fleet-wide
//! events (rollout starts, handovers, server ticks) run alone between
//! windows. Each shard and the server handle their events in time order and
//! the frames are exchanged in a fixed order, so a run's result does not
//! depend on the number of threads or on their timing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use syssync_proto::message::MessageType;
use syssync_proto::{
    Binding, DeviceId, DeviceKey, DeviceMessage, Frame, JobId, RustCrypto, ServerMessage,
    MAX_FRAME_LEN,
};

use crate::link::{CanLink, DirectLink, LinkStats};
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

/// Device shards. A constant, so that results do not depend on the machine.
const SHARDS: usize = 8;

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

/// Returns a random generator of device `index`: `stream` 0 for the
/// device's own choices and its uplink, 1 for its downlink.
fn device_rng(seed: u64, index: u32, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(2 * u64::from(index) + 1 + stream);
    rng
}

fn shard_of(index: u32) -> usize {
    index as usize % SHARDS
}

fn slot_of(index: u32) -> usize {
    index as usize / SHARDS
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

/// An event of one device, handled by its shard.
enum DeviceInput {
    Wake,
    Online,
    Downlink(Vec<u8>),
    Reset,
}

/// A frame on its way to the server.
struct Uplink {
    device: u32,
    frame: Vec<u8>,
    class: Class,
}

/// The outcome of one frame at the server, for the device that sent it.
struct ServerOutput {
    device: u32,
    /// The reply and its arrival time, or `None` when no reply reaches the device.
    reply: Option<(SimTime, Vec<u8>)>,
    /// `Some` when the reply is a job offer: the rollout it belongs to, if known.
    offer: Option<Option<usize>>,
}

/// Fleet-wide events, handled alone between windows.
enum FleetWide {
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
    /// Worker threads; 0 uses one per core.
    pub threads: usize,
}

/// Read-only state that the devices and the server share during a window.
struct Context<'a> {
    scenario: &'a Scenario,
    releases: &'a [BuiltRelease],
    jobs: &'a [Option<JobId>],
    image_len: u64,
}

/// Counters kept by each shard and the server, added up at the end.
#[derive(Default)]
struct Tally {
    wire: WireReport,
    power_cuts: PowerCuts,
    chunks_twice: u64,
}

fn add_link(total: &mut LinkStats, part: &LinkStats) {
    total.frames_sent += part.frames_sent;
    total.frames_lost += part.frames_lost;
    total.segments_sent += part.segments_sent;
    total.segments_lost += part.segments_lost;
    total.segment_bytes += part.segment_bytes;
    total.reassembly_failures += part.reassembly_failures;
}

impl Tally {
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

    fn add(&mut self, part: &Tally) {
        let wire = &mut self.wire;
        wire.check_in_bytes += part.wire.check_in_bytes;
        wire.check_ins += part.wire.check_ins;
        wire.average_check_in_bytes += part.wire.average_check_in_bytes;
        wire.manifest_bytes += part.wire.manifest_bytes;
        wire.chunk_bytes += part.wire.chunk_bytes;
        wire.retransmission_bytes += part.wire.retransmission_bytes;
        wire.other_bytes += part.wire.other_bytes;
        wire.total_bytes += part.wire.total_bytes;
        add_link(&mut wire.upstream, &part.wire.upstream);
        add_link(&mut wire.can, &part.wire.can);
        self.power_cuts.download += part.power_cuts.download;
        self.power_cuts.install += part.power_cuts.install;
        self.chunks_twice += part.chunks_twice;
    }
}

/// Carries a frame over `route`; `None` if it is lost.
fn carry(
    scenario: &Scenario,
    route: Route,
    frame: &[u8],
    uplink: bool,
    rng: &mut ChaCha8Rng,
    wire: &mut WireReport,
) -> Option<SimTime> {
    let faults = &scenario.faults;
    let upstream = DirectLink {
        loss: faults.frame_loss,
        latency_ms: faults.latency_ms,
        jitter_ms: faults.jitter_ms,
    };
    match route {
        Route::Direct => upstream.transmit(rng, &mut wire.upstream),
        Route::Gateway(gateway) => {
            let gateway = &scenario.gateways[gateway];
            let can = CanLink {
                mtu: usize::from(gateway.mtu),
                segment_loss: gateway.segment_loss,
            };
            let mut scratch = [0u8; MAX_FRAME_LEN];
            if uplink {
                let bus = can.carry(frame, &mut scratch, rng, &mut wire.can).ok()??;
                let net = upstream.transmit(rng, &mut wire.upstream)?;
                Some(bus + net)
            } else {
                let net = upstream.transmit(rng, &mut wire.upstream)?;
                let bus = can.carry(frame, &mut scratch, rng, &mut wire.can).ok()??;
                Some(bus + net)
            }
        }
    }
}

fn class_of_request(kind: MessageType) -> Class {
    match kind {
        MessageType::CheckIn => Class::CheckIn,
        MessageType::ChunkRequest => Class::Chunk,
        _ => Class::Other,
    }
}

/// A fixed share of the fleet: every `SHARDS`-th device.
struct Shard<D> {
    devices: Vec<DeviceState<D>>,
    queue: EventQueue<(u32, DeviceInput)>,
    tally: Tally,
    buffer: Vec<u8>,
    crypto: RustCrypto,
    /// Frames sent during the current window, with their arrival times.
    sent: Vec<(SimTime, Uplink)>,
}

impl<D: DeviceModel> Shard<D> {
    fn device(&mut self, index: u32) -> &mut DeviceState<D> {
        &mut self.devices[slot_of(index)]
    }

    fn next_time(&self) -> Option<SimTime> {
        self.queue.peek_time()
    }

    /// Handles every event before `until`, including those it schedules.
    fn run_until(&mut self, context: &Context<'_>, until: SimTime) {
        while self.queue.peek_time().is_some_and(|time| time < until) {
            let Some((now, (index, input))) = self.queue.pop() else {
                break;
            };
            self.handle(context, now, index, input);
        }
    }

    fn handle(&mut self, context: &Context<'_>, now: SimTime, index: u32, input: DeviceInput) {
        match input {
            DeviceInput::Wake => {
                let device = self.device(index);
                if device.wake_at != Some(now) || !device.online {
                    return;
                }
                device.wake_at = None;
                device.model.handle_timeout(now);
                self.drive(context, now, index);
            }
            DeviceInput::Online => {
                let device = self.device(index);
                device.online = true;
                if device.powered {
                    device.model.set_network(now, true);
                    self.drive(context, now, index);
                } else {
                    self.reset_device(context, now, index, ResetKind::PowerOn);
                }
            }
            DeviceInput::Downlink(frame) => self.device_receives(context, now, index, &frame),
            DeviceInput::Reset => self.reset_device(context, now, index, ResetKind::Requested),
        }
    }

    /// Drains a device's outputs: frames, events and its next wake-up.
    fn drive(&mut self, context: &Context<'_>, now: SimTime, index: u32) {
        loop {
            if self.device(index).model.power_rail().is_down() {
                self.power_cut(context, now, index);
                continue;
            }
            let slot = slot_of(index);
            let length = self.devices[slot]
                .model
                .poll_transmit(now, &mut self.buffer);
            if let Some(length) = length {
                let frame = self.buffer[..length].to_vec();
                self.device_sends(context, now, index, frame);
                continue;
            }
            let event = self.device(index).model.poll_event();
            if let Some(event) = event {
                self.device_event(context, now, index, event);
                continue;
            }
            break;
        }
        let device = &mut self.devices[slot_of(index)];
        if let Some(at) = device.model.poll_timeout() {
            let at = at.max(now);
            if device
                .wake_at
                .is_none_or(|current| at < current || current < now)
            {
                device.wake_at = Some(at);
                self.queue.push(at, (index, DeviceInput::Wake));
            }
        }
    }

    fn device_event(
        &mut self,
        context: &Context<'_>,
        now: SimTime,
        index: u32,
        event: DeviceEvent,
    ) {
        let image_len = context.image_len;
        let device = &mut self.devices[slot_of(index)];
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
                self.queue.push(at, (index, DeviceInput::Reset));
            }
            DeviceEvent::Confirmed => {
                device.trial = false;
                for (rollout, state) in context.scenario.rollouts.iter().zip(&mut device.rollouts) {
                    let confirmed = context.releases.iter().any(|release| {
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

    fn power_cut(&mut self, context: &Context<'_>, now: SimTime, index: u32) {
        let device = &mut self.devices[slot_of(index)];
        device.model.power_rail().disarm();
        device.model.power_rail().power_on();
        if device.install_cut_armed && device.plan_install_cut {
            device.plan_install_cut = false;
            self.tally.power_cuts.install += 1;
        } else {
            device.plan_download_cut = false;
            self.tally.power_cuts.download += 1;
        }
        self.reset_device(context, now, index, ResetKind::AfterPowerCut);
    }

    fn reset_device(&mut self, context: &Context<'_>, now: SimTime, index: u32, kind: ResetKind) {
        let image_len = context.image_len;
        let device = &mut self.devices[slot_of(index)];
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
                    self.tally.power_cuts.install += 1;
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
                        || context.releases.iter().any(|release| {
                            release.image_sha256 == image_sha256 && !release.healthy
                        });
                    for (rollout, state) in
                        context.scenario.rollouts.iter().zip(&mut device.rollouts)
                    {
                        let matches = context.releases.iter().any(|release| {
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
                        self.reset_device(context, now, index, ResetKind::Requested);
                        return;
                    }
                }
            }
        }
        if device.online {
            device.model.set_network(now, true);
        }
        self.drive(context, now, index);
    }

    fn device_sends(&mut self, context: &Context<'_>, now: SimTime, index: u32, frame: Vec<u8>) {
        let Some(kind) = frame.get(1).and_then(|byte| MessageType::from_u8(*byte)) else {
            return;
        };
        let device = &mut self.devices[slot_of(index)];
        let retransmission = device.last_exchange_failed && device.last_request == Some(kind);
        device.last_request = Some(kind);
        device.last_exchange_failed = false;
        device.pending_chunk = None;
        if kind == MessageType::CheckIn {
            device.check_ins += 1;
            self.tally.wire.check_ins += 1;
            self.tally.wire.average_check_in_bytes += frame.len() as f64;
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
        self.tally.count_bytes(class, frame.len());
        let delay = carry(
            context.scenario,
            device.route,
            &frame,
            true,
            &mut device.rng,
            &mut self.tally.wire,
        );
        match delay {
            Some(delay) => self.sent.push((
                now + delay,
                Uplink {
                    device: index,
                    frame,
                    class,
                },
            )),
            None => device.last_exchange_failed = true,
        }
    }

    fn device_receives(&mut self, context: &Context<'_>, now: SimTime, index: u32, frame: &[u8]) {
        let device = &mut self.devices[slot_of(index)];
        if !device.online || device.bricked {
            return;
        }
        if frame.get(1) == Some(&(MessageType::Chunk as u8)) {
            if let Some((file, offset)) = device.pending_chunk.take() {
                let job = context
                    .jobs
                    .iter()
                    .flatten()
                    .map(|job| job.0)
                    .next_back()
                    .unwrap_or(0);
                if !device.chunks_seen.insert((job, file, offset)) {
                    self.tally.chunks_twice += 1;
                }
            }
        }
        device.model.handle_frame(now, frame);
        self.drive(context, now, index);
    }

    /// Applies the outcome of a frame at the server to the device that sent it.
    fn server_answered(&mut self, output: ServerOutput) {
        let device = &mut self.devices[slot_of(output.device)];
        if let Some(rollout) = output.offer {
            if let Some(rollout) = rollout {
                device.rollouts[rollout].offers += 1;
            }
            // A new attempt downloads from the start, so only repeats within
            // one attempt count as chunks fetched twice.
            device.chunks_seen.clear();
        }
        match output.reply {
            Some((at, frame)) => self
                .queue
                .push(at, (output.device, DeviceInput::Downlink(frame))),
            None => device.last_exchange_failed = true,
        }
    }
}

/// One task of a window.
enum Part<'a, D, S> {
    Server(&'a mut ServerSide<S>),
    Shard(&'a mut Shard<D>),
}

/// The server's end of every device's link.
struct LinkEnd {
    rng: ChaCha8Rng,
    route: Route,
    key: DeviceKey,
}

/// The server and the frames that reach it.
struct ServerSide<S> {
    server: S,
    queue: EventQueue<Uplink>,
    links: Vec<LinkEnd>,
    tally: Tally,
    crypto: RustCrypto,
    /// Outcomes of the current window's frames, for their devices.
    answered: Vec<ServerOutput>,
}

impl<S: ServerModel> ServerSide<S> {
    fn next_time(&self) -> Option<SimTime> {
        self.queue.peek_time()
    }

    fn run_until(&mut self, context: &Context<'_>, until: SimTime) {
        while self.queue.peek_time().is_some_and(|time| time < until) {
            let Some((now, uplink)) = self.queue.pop() else {
                break;
            };
            let output = self.receive(context, now, uplink);
            self.answered.push(output);
        }
    }

    fn receive(&mut self, context: &Context<'_>, now: SimTime, uplink: Uplink) -> ServerOutput {
        let index = uplink.device;
        let mut output = ServerOutput {
            device: index,
            reply: None,
            offer: None,
        };
        let mut reply = [0u8; MAX_FRAME_LEN];
        let Some(length) = self
            .server
            .handle_frame(unix_seconds(now), &uplink.frame, &mut reply)
        else {
            return output;
        };
        let reply = reply[..length].to_vec();
        let mut class = uplink.class;
        if reply.get(1) == Some(&(MessageType::JobOffer as u8)) {
            output.offer = self.offer_rollout(context, index, &uplink.frame, &reply);
            if output.offer.is_some() && class != Class::Retransmission {
                class = Class::Manifest;
            }
        }
        self.tally.count_bytes(class, reply.len());
        let link = &mut self.links[index as usize];
        output.reply = carry(
            context.scenario,
            link.route,
            &reply,
            false,
            &mut link.rng,
            &mut self.tally.wire,
        )
        .map(|delay| (now + delay, reply));
        output
    }

    /// Returns `Some(rollout)` when `reply` is a job offer to the device that
    /// sent `request`, with the index of the offered job's rollout if known.
    fn offer_rollout(
        &self,
        context: &Context<'_>,
        index: u32,
        request: &[u8],
        reply: &[u8],
    ) -> Option<Option<usize>> {
        let header = Frame::parse(request)
            .and_then(|frame| frame.uplink_header())
            .ok()?;
        let frame = Frame::parse(reply).ok()?;
        let key = &self.links[index as usize].key;
        match frame.open_downlink(&self.crypto, key, Binding::from(header)) {
            Ok(ServerMessage::JobOffer(offer)) => {
                Some(context.jobs.iter().position(|job| *job == Some(offer.job)))
            }
            _ => None,
        }
    }
}

/// A simulation ready to run.
pub struct Simulation<D, S> {
    scenario: Scenario,
    releases: Vec<BuiltRelease>,
    fidelity: Fidelity,
    devices: usize,
    shards: Vec<Shard<D>>,
    server: ServerSide<S>,
    fleet_wide: EventQueue<FleetWide>,
    /// Shortest time any frame takes over any link, in milliseconds (at least 1).
    lookahead: SimTime,
    /// Length of the largest application image, where power cuts are placed.
    image_len: u64,
    /// Worker threads, built once for provisioning, the run and the final checks.
    pool: std::sync::Arc<rayon::ThreadPool>,
    jobs: Vec<Option<JobId>>,
    phase_opened: Vec<Vec<Option<u64>>>,
    paused: Vec<Option<u64>>,
    completed: Vec<Option<u64>>,
    notifications: Vec<NotificationRecord>,
    transfers: Vec<TransferReport>,
    transfer_check_ins: Vec<u64>,
    /// Per handover: whether it is the device's latest one. Only the latest
    /// is checked further, because an earlier one was checked until the next
    /// began.
    transfer_open: Vec<bool>,
    options: RunOptions,
    started: Instant,
    errors: Vec<String>,
    settled_at: Option<SimTime>,
}

impl<D: DeviceModel + Send, S: ServerModel + Send> Simulation<D, S> {
    /// Builds the fleet: provisions every device through `make_device` (on
    /// several threads) and registers it with `server`.
    pub fn new(
        scenario: Scenario,
        releases: Vec<BuiltRelease>,
        mut fidelity: Fidelity,
        key: &ReleaseKey,
        mut server: S,
        make_device: impl Fn(&DeviceSpec<'_>) -> Result<D, String> + Sync,
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
        let trusted_key = key.trusted_key();
        let route_of = |index: u32| {
            if index < direct {
                return Route::Direct;
            }
            let mut offset = index - direct;
            let mut gateway = 0;
            while offset >= scenario.gateways[gateway].devices {
                offset -= scenario.gateways[gateway].devices;
                gateway += 1;
            }
            Route::Gateway(gateway)
        };
        let provision = |index: u32| -> Result<DeviceState<D>, String> {
            let mut rng = device_rng(scenario.seed, index, 0);
            let id = device_id(index);
            let key_bytes = device_key(scenario.seed, index);
            let spec = DeviceSpec {
                index,
                id,
                key: key_bytes.clone(),
                target: &fleet.target,
                installed: &releases[installed_index],
                trusted_key,
                max_image_size,
                max_files_size,
                seed: rng.gen(),
            };
            let mut model = make_device(&spec)?;
            let settings_before = model.settings_digest();
            let faults = &scenario.faults;
            let plan_download_cut = rng.gen_bool(faults.power_cut_download);
            let plan_install_cut = rng.gen_bool(faults.power_cut_install);
            Ok(DeviceState {
                index,
                model,
                rng,
                id,
                key: key_bytes,
                route: route_of(index),
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
            })
        };
        let pool = std::sync::Arc::new(thread_pool(options.threads)?);
        let shards: Vec<Shard<D>> = pool.install(|| {
            (0..SHARDS)
                .into_par_iter()
                .map(|shard| {
                    let devices = (shard as u32..fleet.devices)
                        .step_by(SHARDS)
                        .map(provision)
                        .collect::<Result<Vec<_>, String>>()?;
                    Ok(Shard {
                        devices,
                        queue: EventQueue::new(),
                        tally: Tally::default(),
                        buffer: vec![0; MAX_FRAME_LEN],
                        crypto: RustCrypto,
                        sent: Vec::new(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        })?;
        let mut links = Vec::with_capacity(fleet.devices as usize);
        for index in 0..fleet.devices {
            let state = &shards[shard_of(index)].devices[slot_of(index)];
            fidelity.flash_bytes_per_device = state.model.flash_bytes();
            server.add_device(EPOCH_UNIX_S, 0, state.id, &state.key)?;
            links.push(LinkEnd {
                rng: device_rng(scenario.seed, index, 1),
                route: state.route,
                key: state.key.clone(),
            });
        }
        let rollouts = scenario.rollouts.len();
        let phase_opened = scenario
            .rollouts
            .iter()
            .map(|rollout| vec![None; rollout.phases.len()])
            .collect();
        // A direct frame takes at least the latency; a gateway adds bus time.
        let lookahead = SimTime::from(scenario.faults.latency_ms).max(1);
        let image_len = max_image_len(&releases);
        Ok(Self {
            releases,
            fidelity,
            devices: fleet.devices as usize,
            shards,
            server: ServerSide {
                server,
                queue: EventQueue::new(),
                links,
                tally: Tally::default(),
                crypto: RustCrypto,
                answered: Vec::new(),
            },
            fleet_wide: EventQueue::new(),
            lookahead,
            image_len,
            pool,
            jobs: vec![None; rollouts],
            phase_opened,
            paused: vec![None; rollouts],
            completed: vec![None; rollouts],
            notifications: Vec::new(),
            transfers: Vec::new(),
            transfer_check_ins: Vec::new(),
            transfer_open: Vec::new(),
            options,
            started: Instant::now(),
            errors: Vec::new(),
            settled_at: None,
            scenario,
        })
    }

    fn device(&self, index: u32) -> &DeviceState<D> {
        &self.shards[shard_of(index)].devices[slot_of(index)]
    }

    fn device_mut(&mut self, index: u32) -> &mut DeviceState<D> {
        &mut self.shards[shard_of(index)].devices[slot_of(index)]
    }

    /// Returns every device, in fleet order.
    fn fleet(&self) -> impl Iterator<Item = &DeviceState<D>> + '_ {
        (0..self.devices as u32).map(|index| self.device(index))
    }

    /// Runs the scenario to its end and returns the report.
    pub fn run(self) -> Report {
        let pool = std::sync::Arc::clone(&self.pool);
        pool.install(|| self.run_windows())
    }

    fn run_windows(mut self) -> Report {
        self.started = Instant::now();
        self.schedule_start();
        let mut end = (self.scenario.duration_hours * HOUR_MS as f64) as SimTime;
        loop {
            if let Some(settled) = self.settled_at {
                end = end.min(settled + SETTLE_MS);
            }
            let next_fleet_wide = self.fleet_wide.peek_time();
            let next_local = self
                .shards
                .iter()
                .filter_map(Shard::next_time)
                .chain(self.server.next_time())
                .min();
            let Some(time) = next_fleet_wide.into_iter().chain(next_local).min() else {
                break;
            };
            if time > end {
                break;
            }
            if next_fleet_wide == Some(time) {
                if let Some((now, event)) = self.fleet_wide.pop() {
                    self.handle_fleet_wide(now, event);
                }
                continue;
            }
            let until = (time + self.lookahead)
                .min(next_fleet_wide.unwrap_or(SimTime::MAX))
                .min(end + 1);
            self.run_window(until);
        }
        self.server.server.tick(unix_seconds(end));
        self.collect_notifications(end);
        self.observe_jobs(end);
        self.finish(end)
    }

    /// Runs the shards and the server up to `until`, then exchanges the
    /// frames they sent.
    fn run_window(&mut self, until: SimTime) {
        let context = Context {
            scenario: &self.scenario,
            releases: &self.releases,
            jobs: &self.jobs,
            image_len: self.image_len,
        };
        let due = |time: Option<SimTime>| time.is_some_and(|time| time < until);
        let busy = self
            .shards
            .iter()
            .filter(|shard| due(shard.next_time()))
            .count()
            + usize::from(due(self.server.next_time()));
        let shards = &mut self.shards;
        let server = &mut self.server;
        if busy > 1 && rayon::current_num_threads() > 1 {
            // The server and each shard with work in the window are tasks
            // that idle threads steal, which keeps the threads evenly busy
            // while the share of the server's work changes over the run.
            let mut parts: Vec<Part<'_, D, S>> = Vec::with_capacity(SHARDS + 1);
            if due(server.next_time()) {
                parts.push(Part::Server(&mut *server));
            }
            parts.extend(
                shards
                    .iter_mut()
                    .filter(|shard| due(shard.next_time()))
                    .map(Part::Shard),
            );
            parts
                .par_iter_mut()
                .with_max_len(1)
                .for_each(|part| match part {
                    Part::Server(server) => server.run_until(&context, until),
                    Part::Shard(shard) => shard.run_until(&context, until),
                });
        } else {
            for shard in shards.iter_mut() {
                shard.run_until(&context, until);
            }
            server.run_until(&context, until);
        }
        for shard in shards.iter_mut() {
            for (at, uplink) in shard.sent.drain(..) {
                server.queue.push(at, uplink);
            }
        }
        for output in server.answered.drain(..) {
            shards[shard_of(output.device)].server_answered(output);
        }
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
        let late_share = self.scenario.fleet.late_online_share;
        for shard in &mut self.shards {
            for device in &mut shard.devices {
                let late = device.rng.gen_bool(late_share);
                let online_at = if late {
                    first_rollout_ms + device.rng.gen_range(0..=late_span)
                } else {
                    device.rng.gen_range(0..interval_ms)
                };
                shard
                    .queue
                    .push(online_at, (device.index, DeviceInput::Online));
            }
        }
        for (index, rollout) in self.scenario.rollouts.iter().enumerate() {
            let at = (rollout.start_hours * HOUR_MS as f64) as SimTime;
            self.fleet_wide.push(at, FleetWide::StartRollout(index));
        }
        for (index, event) in self.scenario.events.iter().enumerate() {
            let at = (event.at_hours() * HOUR_MS as f64) as SimTime;
            self.fleet_wide.push(at, FleetWide::Fleet(index));
        }
        self.fleet_wide.push(SERVER_TICK_MS, FleetWide::ServerTick);
        if self.options.progress {
            self.fleet_wide.push(PROGRESS_MS, FleetWide::Progress);
        }
    }

    fn handle_fleet_wide(&mut self, now: SimTime, event: FleetWide) {
        match event {
            FleetWide::StartRollout(index) => self.start_rollout(now, index),
            FleetWide::Fleet(index) => self.fleet_event(now, index),
            FleetWide::ServerTick => {
                self.server.server.tick(unix_seconds(now));
                self.collect_notifications(now);
                self.observe_jobs(now);
                self.check_transfers(now);
                if self.scenario.stop_when_settled
                    && self.settled_at.is_none()
                    && self.is_settled(now)
                {
                    self.settled_at = Some(now);
                }
                self.fleet_wide
                    .push(now + SERVER_TICK_MS, FleetWide::ServerTick);
            }
            FleetWide::Progress => {
                self.print_progress(now);
                self.fleet_wide.push(now + PROGRESS_MS, FleetWide::Progress);
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
            .fleet()
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
        match self.server.server.start_rollout(unix_seconds(now), &spec) {
            Ok(job) => self.jobs[index] = Some(job),
            Err(error) => self.errors.push(error),
        }
        self.observe_jobs(now);
    }

    fn fleet_event(&mut self, now: SimTime, index: usize) {
        match self.scenario.events[index].clone() {
            FleetEvent::JoinGroup { first, count, .. } => {
                let mut joined = Vec::new();
                let mut joined_running = Vec::new();
                for index in first..first + count {
                    let device = self.device_mut(index);
                    if !device.in_group {
                        device.in_group = true;
                        joined.push(device.id);
                        joined_running.push(device.running);
                    }
                }
                // A rollout that had updated its whole group is not complete
                // any more if a device joins without its release.
                for (index, completed) in self.completed.iter_mut().enumerate() {
                    let release = &self.scenario.rollouts[index].release;
                    let image = self
                        .releases
                        .iter()
                        .find(|r| &r.name == release)
                        .map(|r| r.image_sha256);
                    if joined_running.iter().any(|running| Some(*running) != image) {
                        *completed = None;
                    }
                }
                // Joining devices enter every rollout that has started.
                for job in self.jobs.clone().into_iter().flatten() {
                    if let Err(error) =
                        self.server
                            .server
                            .join_group(unix_seconds(now), job, &joined)
                    {
                        self.errors.push(error);
                    }
                }
            }
            FleetEvent::Transfer {
                device, to_account, ..
            } => {
                let id = self.device(device).id;
                let unix = unix_seconds(now);
                for (transfer, open) in self.transfers.iter().zip(&mut self.transfer_open) {
                    if transfer.device == device {
                        *open = false;
                    }
                }
                let before = self.server.server.owners_seeing(unix, id);
                if let Err(error) = self.server.server.transfer(unix, id, to_account) {
                    self.errors.push(error);
                }
                let after = self.server.server.owners_seeing(unix, id);
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
                let check_ins = self.device(device).check_ins;
                self.transfer_check_ins.push(check_ins);
                self.transfer_open.push(true);
            }
        }
    }

    fn collect_notifications(&mut self, now: SimTime) {
        for notification in self.server.server.drain_notifications() {
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
            let view = self.server.server.job_view(*job);
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
                    .shards
                    .iter()
                    .flat_map(|shard| &shard.devices)
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
        for (transfer, _) in self
            .transfers
            .iter_mut()
            .zip(&self.transfer_open)
            .filter(|(_, open)| **open)
        {
            let id = self.shards[shard_of(transfer.device)].devices[slot_of(transfer.device)].id;
            let owners = self.server.server.owners_seeing(unix_seconds(now), id);
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
                let view = self.server.server.job_view(job);
                view.completed || view.paused
            })
        });
        events_past
            && rollouts_done
            && self
                .shards
                .iter()
                .flat_map(|shard| &shard.devices)
                .all(|device| !device.trial || device.bricked)
    }

    fn print_progress(&self, now: SimTime) {
        let online = self.fleet().filter(|device| device.online).count();
        let mut running: BTreeMap<&str, usize> = BTreeMap::new();
        for device in self.fleet() {
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
            self.devices,
            running.join(", "),
            self.wire_bytes() / (1024 * 1024),
            self.started.elapsed().as_secs_f64()
        );
    }

    fn wire_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.tally.wire.total_bytes)
            .sum::<u64>()
            + self.server.tally.wire.total_bytes
    }

    fn finish(mut self, end: SimTime) -> Report {
        let mut tally = Tally::default();
        for shard in &self.shards {
            tally.add(&shard.tally);
        }
        tally.add(&self.server.tally);
        let mut wire = tally.wire;
        if wire.check_ins > 0 {
            wire.average_check_in_bytes /= wire.check_ins as f64;
            wire.average_check_in_bytes = (wire.average_check_in_bytes * 10.0).round() / 10.0;
        }
        // A final power cycle: the device counts as bricked unless the
        // bootloader boots an image whose bytes match its digest. Devices
        // are independent, so the shards check theirs in parallel.
        let checks = |shard: &mut Shard<D>| -> Vec<(bool, bool)> {
            shard
                .devices
                .iter_mut()
                .map(|device| {
                    let bricked = device.bricked || !device.model.boots_verified_image(end);
                    let changed = device.model.settings_digest() != device.settings_before;
                    (bricked, changed)
                })
                .collect()
        };
        let checked: Vec<Vec<(bool, bool)>> = self.shards.par_iter_mut().map(checks).collect();
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
        for device in self.fleet() {
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
            let (is_bricked, changed) = checked[shard_of(device.index)][slot_of(device.index)];
            bricked += u64::from(is_bricked);
            settings_changed += u64::from(changed);
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
                    .map(|job| self.server.server.job_view(job).counters)
                    .unwrap_or_default(),
                ..RolloutReport::default()
            };
            // The server decides when a device has used up its attempts. The
            // device's own offer count also includes offers that a paused
            // rollout cancelled, which cost no attempt.
            let failed_attempts = self.jobs[index]
                .map(|job| self.server.server.failed_attempts(job))
                .unwrap_or_default();
            for device in self.fleet().filter(|device| device.in_group) {
                let state = &device.rollouts[index];
                let handed_over = self
                    .transfers
                    .iter()
                    .any(|transfer| transfer.device == device.index);
                if handed_over && state.offers == 0 && !state.confirmed {
                    // The new owner's fleet is not part of the rollout.
                    report.handed_over += 1;
                    continue;
                }
                report.targeted += 1;
                report.max_offers_per_device = report.max_offers_per_device.max(state.offers);
                if state.trial_boots > 0 {
                    report.got_release += 1;
                }
                if state.confirmed || (Some(device.running) == image && !device.trial) {
                    report.updated += 1;
                } else if failed_attempts.get(&device.id).copied().unwrap_or(0)
                    >= u32::from(rollout.attempt_limit)
                {
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
        let mut transfers = std::mem::take(&mut self.transfers);
        for ((transfer, check_ins_before), open) in transfers
            .iter_mut()
            .zip(&self.transfer_check_ins)
            .zip(&self.transfer_open)
        {
            let device = self.device(transfer.device);
            transfer.kept_checking_in = device.check_ins > *check_ins_before;
            if !open {
                continue;
            }
            let owners = self
                .server
                .server
                .owners_seeing(unix_seconds(end), device.id);
            transfer.never_ownerless &= owners.len() == 1;
            transfer.visible_to_old_owner |= owners.contains(&transfer.from_account);
            transfer.visible_to_new_owner &= owners.contains(&transfer.to_account);
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
            duration_s: (self.scenario.duration_hours * 3600.0) as u64,
            fidelity: self.fidelity,
            rollouts,
            running,
            gateways,
            bricked,
            settings_changed,
            power_cuts: tally.power_cuts,
            wire,
            chunks_fetched_twice: tally.chunks_twice,
            transfers,
            notifications: self.notifications,
            notification_counts,
            errors: self.errors,
        }
    }
}

fn max_image_len(releases: &[BuiltRelease]) -> u64 {
    releases
        .iter()
        .map(|release| release.image.len() as u64)
        .max()
        .unwrap_or(1)
}

/// Builds the pool of worker threads; `threads == 0` uses one per core.
fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|error| format!("cannot start worker threads: {error}"))
}
