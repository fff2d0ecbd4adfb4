//! The state log on a device whose write words are longer than a record
//! body, so every record is padded to a whole write word.
// The update installs an unsigned image, which the `authentication` feature
// rejects.
#![cfg(not(feature = "authentication"))]

use flash_sim::{FlashConfig, FlashSim, PowerRail};
use rollback_fsm::{
    AppSide, BootFlashes, BootSide, Config, ImageDescriptor, Layout, Partition, Phase, Settings,
    Sha256, Sha256Hasher, Step, TargetType, Version,
};

type StateFlash = FlashSim<2048, 256>;

#[test]
fn padded_records_survive_an_update() {
    // Proves that records padded to 256-byte write words are written, read
    // back and loaded through an install, a trial boot and a confirm.
    let rail = PowerRail::new();
    let mut active: FlashSim<2048, 8> =
        FlashSim::new(FlashConfig::new(64 * 1024), rail.clone()).unwrap();
    let mut staging: FlashSim<4096, 1> =
        FlashSim::new(FlashConfig::new(32 * 1024), rail.clone()).unwrap();
    let mut recovery: FlashSim<4096, 1> =
        FlashSim::new(FlashConfig::new(32 * 1024), rail.clone()).unwrap();
    let mut state: StateFlash =
        FlashSim::new(FlashConfig::new(4096).strict(true), rail.clone()).unwrap();
    let mut settings_flash: FlashSim<2048, 8> =
        FlashSim::new(FlashConfig::new(4096), rail).unwrap();
    let layout = Layout {
        active: Partition::new(0x4000, 16 * 1024),
        staging: Partition::new(0, 32 * 1024),
        recovery: Partition::new(0, 16 * 1024),
        state: Partition::new(0, 4096),
    };
    let config = Config::try_new(layout, "sensor-v2").unwrap();

    let image = vec![0x3C; 3000];
    let mut hasher = Sha256::default();
    hasher.update(&image);
    let descriptor = ImageDescriptor {
        size: image.len() as u32,
        sha256: hasher.finish(),
        target_type: TargetType::new("sensor-v2").unwrap(),
        version: Version::new(1, 0, 0, 1),
        security_counter: 1,
    };
    {
        let settings = Settings::new(&mut settings_flash, Partition::new(0, 4096)).unwrap();
        let mut app = AppSide::new(&config, &mut staging, &mut state, settings).unwrap();
        app.begin_staging(&descriptor, &[]).unwrap();
        app.write_staging(0, &image).unwrap();
        app.request_install().unwrap();
        assert_eq!(app.record().unwrap().phase, Phase::InstallRequested);
    }

    let flashes = BootFlashes {
        active: &mut active,
        staging: &mut staging,
        recovery: &mut recovery,
        state: &mut state,
    };
    let mut boot = BootSide::new(&config, flashes, Sha256::default()).unwrap();
    let mut steps = 0;
    while boot.step() != Ok(Step::BootActive) {
        steps += 1;
        assert!(steps < 1000, "the bootloader did not finish");
    }
    assert_eq!(boot.record().map(|record| record.phase), Some(Phase::Trial));

    let settings = Settings::new(&mut settings_flash, Partition::new(0, 4096)).unwrap();
    let mut app = AppSide::new(&config, &mut staging, &mut state, settings).unwrap();
    assert!(app.status().unwrap().on_trial);
    app.confirm().unwrap();
    let record = app.record().unwrap();
    assert_eq!(record.phase, Phase::Idle);
    assert_eq!(record.active, Some(descriptor));
    assert_eq!(record.security_floor, 1);
}
