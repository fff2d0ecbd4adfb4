//! Scenario test of the engine on rollback-fsm: the application side stages
//! and confirms through `RollbackFsmBoot`, and rollback-fsm's bootloader
//! installs the image at the reset.

mod common;

use common::{sha256, standard_release, ServerStub, CHUNK, DEVICE, KEY, TARGET};
use flash_sim::{FlashConfig, FlashSim, PowerRail};
use rollback_fsm::{BootFlashes, BootSide, Layout, Partition, Settings, Sha256, Step};
use syssync_device::boot::setting;
use syssync_device::rollback::RollbackFsmBoot;
use syssync_device::{BootControl, BootPhase, Engine, Event, Instant, NorFileStore};
use syssync_proto::{JobId, RustCrypto, MAX_FRAME_LEN};

type Flash = FlashSim<1024, 4>;
type Boot = RollbackFsmBoot<Flash, Flash, Flash>;
type Device = Engine<Boot, NorFileStore<Flash>, RustCrypto>;

const PART: u32 = 16 * 1024;
const SETTINGS: Partition = Partition::new(0, 4096);

fn layout() -> rollback_fsm::Config {
    let layout = Layout {
        active: Partition::new(0, PART),
        staging: Partition::new(0, PART),
        recovery: Partition::new(0, PART),
        state: Partition::new(0, 4096),
    };
    rollback_fsm::Config::try_new(layout, TARGET).unwrap()
}

fn flash(rail: &PowerRail, size: usize) -> Flash {
    Flash::new(FlashConfig::new(size).strict(true), rail.clone()).unwrap()
}

/// Runs rollback-fsm's bootloader until it boots the active image.
fn bootloader(active: &mut Flash, recovery: &mut Flash, boot: Boot) -> Boot {
    let (mut staging, mut state, settings) = boot.into_parts();
    {
        let flashes = BootFlashes {
            active: &mut *active,
            staging: &mut staging,
            recovery: &mut *recovery,
            state: &mut state,
        };
        let mut side = BootSide::new(&layout(), flashes, Sha256::default()).unwrap();
        while let Step::Continue(_) = side.step().unwrap() {}
    }
    Boot::new(layout(), staging, state, settings, SETTINGS).unwrap()
}

/// Runs the engine until `done` holds, resetting through the bootloader
/// whenever the engine wants a reset.
fn pump(
    device: &mut Option<Device>,
    server: &mut ServerStub,
    active: &mut Flash,
    recovery: &mut Flash,
    now: &mut Instant,
    events: &mut Vec<Event>,
    mut done: impl FnMut(&[Event]) -> bool,
) -> bool {
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut config = common::config();
    config.chunk_size = CHUNK;
    for _ in 0..5_000 {
        if done(events) {
            return true;
        }
        let engine = device.as_mut().unwrap();
        engine.handle_timeout(*now);
        while let Some(len) = engine.poll_transmit(*now, &mut buf) {
            let reply = server.handle(&buf[..len]);
            engine.handle_frame(*now, &reply);
        }
        let mut reset = false;
        while let Some(event) = engine.poll_event() {
            reset |= matches!(event, Event::ResetWanted { .. });
            events.push(event);
        }
        let next = engine.poll_timeout().unwrap_or(*now);
        *now = next.max(Instant(now.0 + 1));
        if reset {
            let (boot, store) = device.take().unwrap().into_parts();
            let boot = bootloader(active, recovery, boot);
            let store = NorFileStore::new(store.into_inner(), 1).unwrap();
            let mut engine = Engine::new(config.clone(), boot, store, RustCrypto, *now, 3).unwrap();
            engine.set_network(*now, true);
            *device = Some(engine);
        }
    }
    done(events)
}

#[test]
fn update_through_rollback_fsm() {
    // Proves a whole update on rollback-fsm: staging through the adapter,
    // installation and trial boot by its bootloader, and confirm on the
    // server's word, with the identity read from its settings.
    let rail = PowerRail::new();
    let mut active = flash(&rail, PART as usize);
    let mut recovery = flash(&rail, PART as usize);
    let mut settings_flash = flash(&rail, 4096);
    {
        let mut settings = Settings::new(&mut settings_flash, SETTINGS).unwrap();
        settings
            .write(setting::DEVICE_ID, &DEVICE.0.to_le_bytes())
            .unwrap();
        settings.write(setting::DEVICE_KEY, &KEY.0).unwrap();
        settings
            .write(setting::TARGET_TYPE, TARGET.as_bytes())
            .unwrap();
    }
    let boot = Boot::new(
        layout(),
        flash(&rail, PART as usize),
        flash(&rail, 4096),
        settings_flash,
        SETTINGS,
    )
    .unwrap();
    let store = NorFileStore::new(flash(&rail, 64 * 1024), 1).unwrap();
    let mut config = common::config();
    config.chunk_size = CHUNK;
    let mut now = Instant(0);
    let mut engine = Engine::new(config, boot, store, RustCrypto, now, 3).unwrap();
    engine.set_network(now, true);
    let mut device = Some(engine);

    let mut server = ServerStub::new();
    let release = standard_release();
    server.assign(9, release.clone());
    let mut events = Vec::new();
    let confirmed = pump(
        &mut device,
        &mut server,
        &mut active,
        &mut recovery,
        &mut now,
        &mut events,
        |events| events.contains(&Event::Confirmed { job: JobId(9) }),
    );
    assert!(confirmed, "events: {events:?}");

    assert_eq!(
        &active.raw()[..release.files[0].len()],
        &release.files[0][..]
    );
    let (mut boot, _) = device.take().unwrap().into_parts();
    let status = boot.status().unwrap();
    assert_eq!(status.phase, BootPhase::Idle);
    assert_eq!(
        status.running.map(|image| image.sha256),
        Some(sha256(&release.files[0]))
    );
    assert_eq!(status.security_floor, 2);
    assert_eq!(
        server.reports.first().map(|report| report.job),
        Some(JobId(9))
    );
}
