//! Settings survive power cuts at any byte of a write, including the writes
//! that compact the store.

use flash_sim::{FlashConfig, FlashSim, PowerRail};
use rollback_fsm::{Partition, Settings, SettingsError, MAX_VALUE_LEN, RESERVED_KEY};

type Flash = FlashSim<256, 8>;

fn flash(strict: bool) -> Flash {
    Flash::new(
        FlashConfig::new(512).strict(strict).seed(9),
        PowerRail::new(),
    )
    .unwrap()
}

fn store(flash: &mut Flash) -> Settings<&mut Flash> {
    Settings::new(flash, Partition::new(0, 512)).unwrap()
}

fn value(tag: u8) -> Vec<u8> {
    (0..20)
        .map(|i| tag.wrapping_mul(13).wrapping_add(i))
        .collect()
}

fn read(flash: &mut Flash, key: u16) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    store(flash)
        .read(key, &mut buf)
        .unwrap()
        .map(|len| buf[..len].to_vec())
}

#[test]
fn settings_round_trip_and_overwrite() {
    // Proves that values read back, later writes win, and unknown keys read as absent.
    let mut flash = flash(false);
    let mut settings = store(&mut flash);
    settings.write(1, b"wifi-ssid").unwrap();
    settings.write(2, b"secret").unwrap();
    settings.write(1, b"other-ssid").unwrap();
    settings.write(3, b"").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(settings.read(1, &mut buf), Ok(Some(10)));
    assert_eq!(&buf[..10], b"other-ssid");
    assert_eq!(settings.read(2, &mut buf), Ok(Some(6)));
    assert_eq!(settings.read(3, &mut buf), Ok(Some(0)));
    assert_eq!(settings.read(4, &mut buf), Ok(None));
    assert_eq!(
        settings.read(1, &mut buf[..4]),
        Err(SettingsError::BufferTooSmall { needed: 10 })
    );
    assert_eq!(
        settings.write(RESERVED_KEY, b"x"),
        Err(SettingsError::InvalidKey)
    );
    assert_eq!(
        settings.write(5, &[0; MAX_VALUE_LEN + 1]),
        Err(SettingsError::ValueTooLong {
            len: MAX_VALUE_LEN + 1
        })
    );
    assert_eq!(settings.write(5, &[0; 300]), Err(SettingsError::NoSpace));
}

#[test]
fn many_writes_compact_and_keep_keys() {
    // Proves that repeated writes compact the store without losing any key, in normal and strict mode.
    for strict in [false, true] {
        let mut flash = flash(strict);
        for round in 0..50u8 {
            let mut settings = store(&mut flash);
            settings.write(1, &value(1)).unwrap();
            settings.write(2, &value(round)).unwrap();
            assert_eq!(read(&mut flash, 1), Some(value(1)), "round {round}");
            assert_eq!(read(&mut flash, 2), Some(value(round)), "round {round}");
        }
        assert!(flash.counters().erases > 4, "no compaction happened");
    }
}

#[test]
fn cut_at_every_byte_keeps_old_or_new() {
    // Proves that a cut at any byte of any write, compactions included, keeps the old or new value and every other key.
    for strict in [false, true] {
        let mut base = flash(strict);
        {
            let mut settings = store(&mut base);
            settings.write(1, &value(1)).unwrap();
            settings.write(3, &value(3)).unwrap();
        }
        for round in 0..12u8 {
            let rail = PowerRail::new();
            let mut probe = base.clone_onto(rail.clone());
            store(&mut probe).write(2, &value(100 + round)).unwrap();
            let bytes = rail.bytes_total();
            let old = read(&mut base, 2);

            for cut in 0..bytes {
                let rail = PowerRail::new();
                let mut run = base.clone_onto(rail.clone());
                rail.cut_after_bytes(cut);
                assert!(store(&mut run).write(2, &value(100 + round)).is_err());
                rail.power_on();
                let now = read(&mut run, 2);
                assert!(
                    now == old || now == Some(value(100 + round)),
                    "strict {strict} round {round} cut {cut}: {now:?}"
                );
                assert_eq!(read(&mut run, 1), Some(value(1)), "cut {cut}");
                assert_eq!(read(&mut run, 3), Some(value(3)), "cut {cut}");
                // The store keeps working after the cut.
                store(&mut run).write(2, &value(7)).unwrap();
                assert_eq!(read(&mut run, 2), Some(value(7)), "cut {cut}");
                assert_eq!(read(&mut run, 1), Some(value(1)), "cut {cut}");
            }
            store(&mut base).write(2, &value(100 + round)).unwrap();
        }
    }
}

#[test]
fn largest_write_size_supported() {
    // Proves that a device with 256-byte write words stores and reads settings.
    let mut flash: FlashSim<2048, 256> =
        FlashSim::new(FlashConfig::new(4096).strict(true), PowerRail::new()).unwrap();
    let mut settings = Settings::new(&mut flash, Partition::new(0, 4096)).unwrap();
    for round in 0..6u8 {
        settings.write(1, &value(round)).unwrap();
        settings.write(2, b"fixed").unwrap();
    }
    let mut buf = [0u8; 32];
    assert_eq!(settings.read(1, &mut buf), Ok(Some(20)));
    assert_eq!(&buf[..20], &value(5)[..]);
    assert_eq!(settings.read(2, &mut buf), Ok(Some(5)));
}

#[test]
fn read_size_above_one_supported() {
    // Proves that a device with 16-byte read units, larger than its write
    // words, stores, compacts and reads values at unaligned offsets.
    let mut flash: FlashSim<256, 8, 16> =
        FlashSim::new(FlashConfig::new(1024).strict(true), PowerRail::new()).unwrap();
    let mut settings = Settings::new(&mut flash, Partition::new(0, 1024)).unwrap();
    for round in 0..30u8 {
        let odd = vec![round; 1 + usize::from(round % 13)];
        settings.write(1, &odd).unwrap();
        settings.write(2, &value(round)).unwrap();
        let mut buf = [0u8; 32];
        assert_eq!(
            settings.read(1, &mut buf),
            Ok(Some(odd.len())),
            "round {round}"
        );
        assert_eq!(&buf[..odd.len()], &odd[..], "round {round}");
        assert_eq!(settings.read(2, &mut buf), Ok(Some(20)), "round {round}");
        assert_eq!(&buf[..20], &value(round)[..], "round {round}");
    }
    assert_eq!(settings.read(3, &mut [0u8; 8]), Ok(None));
    assert!(flash.counters().erases > 2, "no compaction happened");
}
