//! Cuts power at every byte of every write and erase, and after every
//! operation, of each update scenario. After each cut the device reboots to
//! completion twice: once without further cuts, and once with a second and a
//! third cut during recovery.
//!
//! Run with `cargo run --release -p rollback-fsm --example power-cut-sweep`.
//! The last line reads
//! `scenarios S cut-points N bricked B wrong-image W settings-lost L`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::thread;
use std::time::Instant;

use rollback_fsm::Phase;
use support::{provisioned, BootResult, Device, TestImage, EXTERNAL_SECTOR};

/// Boots after the first cut; enough for a trial image to reach its limit and revert.
const RECOVERY_BOOTS: usize = 6;

/// Settings keys written before each scenario, with their values.
const KEYS: [u16; 3] = [1, 2, 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Install,
    RevertAfterFailure,
    RevertAfterTrialLimit,
    Confirm,
    SettingsWrite,
    StagingWhileIdle,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario::Install,
    Scenario::RevertAfterFailure,
    Scenario::RevertAfterTrialLimit,
    Scenario::Confirm,
    Scenario::SettingsWrite,
    Scenario::StagingWhileIdle,
];

/// Image that must run once recovery has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Old,
    New,
    Either,
}

/// Progress of the scenario script when the power failed.
#[derive(Debug, Default, Clone, Copy)]
struct Journal {
    confirm_started: bool,
    confirm_done: bool,
    /// Value index of key 2 written last with success, and the one in flight.
    setting_done: Option<usize>,
    setting_in_flight: Option<usize>,
}

/// Error of a script step: the power failed, or the product failed outright.
#[derive(Debug)]
enum Stop {
    PowerLost,
    Failed(String),
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    scenarios: u64,
    cut_points: u64,
    bricked: u64,
    wrong_image: u64,
    settings_lost: u64,
    second_cuts: u64,
    third_cuts: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.scenarios += other.scenarios;
        self.cut_points += other.cut_points;
        self.bricked += other.bricked;
        self.wrong_image += other.wrong_image;
        self.settings_lost += other.settings_lost;
        self.second_cuts += other.second_cuts;
        self.third_cuts += other.third_cuts;
    }
}

fn setting_value(index: usize) -> Vec<u8> {
    (0..40).map(|i| (index * 41 + i) as u8).collect()
}

struct Case<const IW: usize, const EW: usize> {
    scenario: Scenario,
    old: TestImage,
    new: TestImage,
    base: Device<IW, EW>,
}

impl<const IW: usize, const EW: usize> Case<IW, EW> {
    fn new(scenario: Scenario, strict: bool, sectors: usize) -> Self {
        let size = sectors * EXTERNAL_SECTOR;
        let factory = TestImage::new(0, 4096);
        let old = TestImage::new(1, size - 3);
        let new = TestImage::new(2, size - 7);
        let mut base = provisioned::<IW, EW>(strict, &factory, &old);
        {
            let mut app = base.app();
            for key in KEYS {
                app.write_setting(key, &setting_value(key as usize))
                    .unwrap();
            }
            // Fill most of the bank, so that the scenario's writes compact it.
            for round in 0..5 {
                app.write_setting(2, &setting_value(100 + round)).unwrap();
            }
            app.write_setting(2, &setting_value(2)).unwrap();
        }
        if matches!(
            scenario,
            Scenario::RevertAfterFailure | Scenario::RevertAfterTrialLimit | Scenario::Confirm
        ) {
            base.stage(&new).unwrap();
            assert_eq!(base.boot(), BootResult::Booted);
            assert!(base.status().unwrap().on_trial);
        }
        Self {
            scenario,
            old,
            new,
            base,
        }
    }

    fn script(&self, device: &mut Device<IW, EW>, journal: &mut Journal) -> Result<(), Stop> {
        match self.scenario {
            Scenario::Install => {
                app_step(device, |d| d.stage(&self.new))?;
                boot_step(device)?;
                journal.confirm_started = true;
                app_step(device, |d| d.app().confirm())?;
                journal.confirm_done = true;
                boot_step(device)
            }
            Scenario::RevertAfterFailure => {
                app_step(device, |d| d.app().report_failure())?;
                boot_step(device)?;
                boot_step(device)
            }
            Scenario::RevertAfterTrialLimit => {
                for _ in 0..4 {
                    boot_step(device)?;
                }
                Ok(())
            }
            Scenario::Confirm => {
                journal.confirm_started = true;
                app_step(device, |d| d.app().confirm())?;
                journal.confirm_done = true;
                boot_step(device)
            }
            Scenario::SettingsWrite => {
                // Eight 40-byte values overflow the 512-byte bank, so one write compacts it.
                for index in 200..208 {
                    journal.setting_in_flight = Some(index);
                    app_step(device, |d| d.app().write_setting(2, &setting_value(index)))?;
                    journal.setting_done = Some(index);
                    journal.setting_in_flight = None;
                }
                boot_step(device)
            }
            Scenario::StagingWhileIdle => {
                app_step(device, |d| {
                    let mut app = d.app();
                    app.begin_staging(&self.new.descriptor, &[])?;
                    for (index, chunk) in self.new.bytes.chunks(support::CHUNK).enumerate() {
                        app.write_staging((index * support::CHUNK) as u32, chunk)?;
                    }
                    Ok::<(), rollback_fsm::AppError>(())
                })?;
                boot_step(device)
            }
        }
    }

    fn expect(&self, journal: &Journal) -> Expect {
        match self.scenario {
            Scenario::Install | Scenario::Confirm if journal.confirm_done => Expect::New,
            Scenario::Install | Scenario::Confirm if journal.confirm_started => Expect::Either,
            _ => Expect::Old,
        }
    }

    /// Runs the script with the first cut, then recovery with optional later cuts.
    ///
    /// Returns the bytes programmed or erased during recovery, and adds the
    /// outcome to `totals`.
    fn run(&self, first: Cut, later: &[u64], totals: &mut Totals) -> u64 {
        let mut device = self.base.snapshot();
        first.arm(&device);
        let mut journal = Journal::default();
        if let Err(Stop::Failed(reason)) = self.script(&mut device, &mut journal) {
            eprintln!(
                "{:?} {first:?}: failed before the cut: {reason}",
                self.scenario
            );
            totals.bricked += 1;
            return 0;
        }
        device.rail.disarm();
        device.power_on();

        let recovery_start = device.rail.bytes_total();
        let mut pending = later.iter();
        if let Some(cut) = pending.next() {
            device.rail.cut_after_bytes(*cut);
        }
        let mut images = Vec::new();
        let mut idle_image = None;
        let mut power_ons = 0;
        while images.len() < RECOVERY_BOOTS {
            power_ons += 1;
            if power_ons > RECOVERY_BOOTS + later.len() + 1 {
                eprintln!("{:?} {first:?}: recovery did not finish", self.scenario);
                totals.bricked += 1;
                return 0;
            }
            match device.boot() {
                BootResult::Booted => {}
                BootResult::PowerLost => {
                    if later.len() == 2 && pending.len() == 1 {
                        totals.second_cuts += 1;
                    } else if later.len() == 2 {
                        totals.third_cuts += 1;
                    } else {
                        totals.second_cuts += 1;
                    }
                    device.power_on();
                    if let Some(cut) = pending.next() {
                        device.rail.cut_after_bytes(*cut);
                    }
                    continue;
                }
                BootResult::Failed(error) => {
                    eprintln!("{:?} {first:?}: boot failed: {error:?}", self.scenario);
                    totals.bricked += 1;
                    return 0;
                }
            }
            let Some(image) = device.active_image(&[&self.old, &self.new]) else {
                eprintln!("{:?} {first:?}: booted an incomplete image", self.scenario);
                totals.bricked += 1;
                return 0;
            };
            images.push(image);
            device.rail.disarm();
            let status = device.status();
            if let Some(cut) = pending.next() {
                device.rail.cut_after_bytes(*cut);
            }
            let idle = matches!(status, Ok(s) if matches!(s.phase, Phase::Idle | Phase::Staging));
            match (idle, idle_image) {
                (true, None) => idle_image = Some(image),
                (true, Some(previous)) if previous != image => {
                    eprintln!("{:?} {first:?}: image changed while idle", self.scenario);
                    totals.wrong_image += 1;
                    return 0;
                }
                _ => {}
            }
        }
        device.rail.disarm();
        let recovery_bytes = device.rail.bytes_total() - recovery_start;

        let final_image = images[images.len() - 1];
        let settled = idle_image.is_some();
        let right = match self.expect(&journal) {
            Expect::Old => final_image == 0,
            Expect::New => final_image == 1,
            Expect::Either => true,
        };
        if !settled || !right {
            eprintln!(
                "{:?} {first:?} later {later:?}: wrong image: booted {images:?}, journal {journal:?}",
                self.scenario
            );
            totals.wrong_image += 1;
        }
        if !self.settings_intact(&mut device, &journal) {
            eprintln!("{:?} {first:?}: settings lost", self.scenario);
            totals.settings_lost += 1;
        }
        if self.scenario == Scenario::StagingWhileIdle && !self.restage_works(&mut device) {
            eprintln!(
                "{:?} {first:?}: staging after the cut failed",
                self.scenario
            );
            totals.wrong_image += 1;
        }
        recovery_bytes
    }

    fn settings_intact(&self, device: &mut Device<IW, EW>, journal: &Journal) -> bool {
        let mut app = device.app();
        let mut buf = [0u8; 64];
        for key in KEYS {
            let Ok(Some(len)) = app.read_setting(key, &mut buf) else {
                return false;
            };
            let value = &buf[..len];
            let allowed: Vec<usize> = if key == 2 {
                let done = journal.setting_done.unwrap_or(2);
                [Some(done), journal.setting_in_flight]
                    .into_iter()
                    .flatten()
                    .collect()
            } else {
                vec![key as usize]
            };
            if !allowed.iter().any(|index| value == setting_value(*index)) {
                return false;
            }
        }
        true
    }

    fn restage_works(&self, device: &mut Device<IW, EW>) -> bool {
        device.stage(&self.new).is_ok()
            && device.boot() == BootResult::Booted
            && device.active_image(&[&self.old, &self.new]) == Some(1)
    }

    /// Returns the bytes and operations of an uncut script run.
    fn measure(&self) -> (u64, u64) {
        let mut device = self.base.snapshot();
        let (bytes, ops) = (device.rail.bytes_total(), device.rail.ops_total());
        self.script(&mut device, &mut Journal::default()).unwrap();
        (
            device.rail.bytes_total() - bytes,
            device.rail.ops_total() - ops,
        )
    }
}

fn app_step<const IW: usize, const EW: usize, T, E: std::fmt::Debug>(
    device: &mut Device<IW, EW>,
    f: impl FnOnce(&mut Device<IW, EW>) -> Result<T, E>,
) -> Result<T, Stop> {
    let rail = device.rail.clone();
    f(device).map_err(|error| {
        if rail.is_down() {
            Stop::PowerLost
        } else {
            Stop::Failed(format!("{error:?}"))
        }
    })
}

fn boot_step<const IW: usize, const EW: usize>(device: &mut Device<IW, EW>) -> Result<(), Stop> {
    match device.boot() {
        BootResult::Booted => Ok(()),
        BootResult::PowerLost => Err(Stop::PowerLost),
        BootResult::Failed(error) => Err(Stop::Failed(format!("{error:?}"))),
    }
}

#[derive(Debug, Clone, Copy)]
enum Cut {
    Bytes(u64),
    Ops(u64),
}

impl Cut {
    fn arm<const IW: usize, const EW: usize>(self, device: &Device<IW, EW>) {
        match self {
            Cut::Bytes(bytes) => device.rail.cut_after_bytes(bytes),
            Cut::Ops(ops) => device.rail.cut_after_ops(ops),
        }
    }
}

/// Deterministic pseudo-random offset in `0..limit` for the later cuts.
fn sample(seed: u64, limit: u64) -> u64 {
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xD6E8_FEB8_6659_FD93;
    mixed.wrapping_mul(0x94D0_49BB_1331_11EB) % limit.max(1)
}

fn sweep<const IW: usize, const EW: usize>(strict: bool) -> Totals {
    let mut totals = Totals::default();
    for sectors in [1, 8, 64] {
        for scenario in SCENARIOS {
            let case = Case::<IW, EW>::new(scenario, strict, sectors);
            let (bytes, ops) = case.measure();
            let cuts = (0..bytes).map(Cut::Bytes).chain((1..=ops).map(Cut::Ops));
            let mut local = Totals {
                scenarios: 1,
                ..Totals::default()
            };
            for (index, cut) in cuts.enumerate() {
                local.cut_points += 1;
                let recovery = case.run(cut, &[], &mut local);
                let second = sample(index as u64, recovery);
                let third = sample(index as u64 ^ 0x5555, recovery / 2);
                case.run(cut, &[second, third], &mut local);
            }
            println!(
                "write sizes {IW}/{EW} strict {strict} image {sectors:>2} sectors {scenario:?}: \
                 cut-points {} ({bytes} bytes, {ops} operations) second-cuts {} third-cuts {} \
                 bricked {} wrong-image {} settings-lost {}",
                local.cut_points,
                local.second_cuts,
                local.third_cuts,
                local.bricked,
                local.wrong_image,
                local.settings_lost
            );
            totals.add(&local);
        }
    }
    totals
}

fn main() {
    let started = Instant::now();
    // Internal/external write sizes 4/1 on flash without ECC, and 16/8 in strict (ECC) mode.
    let normal = thread::spawn(|| sweep::<4, 1>(false));
    let strict = thread::spawn(|| sweep::<16, 8>(true));
    let mut totals = Totals::default();
    for handle in [normal, strict] {
        match handle.join() {
            Ok(part) => totals.add(&part),
            Err(_) => {
                eprintln!("a sweep thread panicked");
                std::process::exit(1);
            }
        }
    }
    println!(
        "each cut point ran twice: once rebooting without further cuts, once with a second cut \
         at a sampled byte of recovery and a third at a sampled byte after it ({} second and {} third cuts fired); \
         {:.1} s",
        totals.second_cuts,
        totals.third_cuts,
        started.elapsed().as_secs_f64()
    );
    println!(
        "scenarios {} cut-points {} bricked {} wrong-image {} settings-lost {}",
        totals.scenarios,
        totals.cut_points,
        totals.bricked,
        totals.wrong_image,
        totals.settings_lost
    );
}
