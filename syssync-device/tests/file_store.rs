//! Tests of the NOR file store on flash-sim: listing with digests, atomic
//! replace under power cuts, and the journal across area switches.

mod common;

use common::{content, sha256, StoreFlash, STORE_CAPACITY};
use embedded_storage::nor_flash::NorFlash;
use flash_sim::{FlashConfig, FlashSim, PowerRail};
use syssync_device::store::JOB_RECORD_LEN;
use syssync_device::{FileStore, NorFileStore};

fn fresh(rail: &PowerRail) -> NorFileStore<StoreFlash> {
    let flash = StoreFlash::new(
        FlashConfig::new(STORE_CAPACITY).strict(true).seed(9),
        rail.clone(),
    )
    .unwrap();
    NorFileStore::new(flash, 1).unwrap()
}

fn reopen(store: NorFileStore<StoreFlash>) -> NorFileStore<StoreFlash> {
    NorFileStore::new(store.into_inner(), 1).unwrap()
}

fn install<F: NorFlash>(
    store: &mut NorFileStore<F>,
    name: &str,
    bytes: &[u8],
) -> Result<(), String> {
    let file = store
        .create_pending(name, bytes.len() as u32)
        .map_err(|e| format!("{e:?}"))?;
    let erase = store.erase_size() as usize;
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4) * 4, 0xFF);
    for sector in (0..padded.len()).step_by(erase) {
        store
            .erase_pending(file, sector as u32)
            .map_err(|e| format!("{e:?}"))?;
    }
    store
        .write_pending(file, 0, &padded)
        .map_err(|e| format!("{e:?}"))?;
    store
        .commit(file, &sha256(bytes))
        .map_err(|e| format!("{e:?}"))
}

fn read_all<F: NorFlash>(store: &mut NorFileStore<F>, name: &str) -> Option<Vec<u8>> {
    let info = store.find(name).unwrap()?;
    let mut bytes = vec![0u8; info.size as usize];
    store.read(name, 0, &mut bytes).unwrap();
    Some(bytes)
}

#[test]
fn files_listed_with_digests() {
    // Proves that committed files are listed with size and SHA-256, pending
    // files are invisible, and removal frees their sectors.
    let rail = PowerRail::new();
    let mut store = fresh(&rail);
    let free = store.free_space().unwrap();
    install(&mut store, "b.txt", &content(1500, 1)).unwrap();
    install(&mut store, "a.txt", &content(10, 2)).unwrap();
    store.create_pending("c.txt", 100).unwrap();

    let mut store = reopen(store);
    assert_eq!(store.file_count().unwrap(), 2);
    let names: Vec<String> = (0..2)
        .map(|i| store.file(i).unwrap().unwrap().name.to_string())
        .collect();
    assert_eq!(names, ["b.txt", "a.txt"]);
    let a = store.find("a.txt").unwrap().unwrap();
    assert_eq!((a.size, a.sha256), (10, sha256(&content(10, 2))));
    assert_eq!(store.find("c.txt").unwrap(), None);
    assert!(store.find_pending("c.txt").unwrap().is_some());
    assert_eq!(store.free_space().unwrap(), free - 4 * 1024);

    store.discard_pending().unwrap();
    assert!(store.remove("b.txt").unwrap());
    assert!(!store.remove("b.txt").unwrap());
    assert_eq!(store.free_space().unwrap(), free - 1024);
    assert_eq!(read_all(&mut store, "a.txt"), Some(content(10, 2)));
}

#[test]
fn replace_atomic_under_power_cuts() {
    // Proves that a power cut at any flash operation of replacing a file
    // leaves either the whole old file or the whole new one, never a mix.
    let old = content(2500, 3);
    let new = content(1800, 4);
    let mut outcomes = [0usize; 2];
    for ops in 0..40 {
        let rail = PowerRail::new();
        let mut store = fresh(&rail);
        install(&mut store, "config.json", &old).unwrap();
        rail.cut_after_ops(ops);
        let result = install(&mut store, "config.json", &new);
        rail.power_on();
        let mut store = reopen(store);
        let found = read_all(&mut store, "config.json").unwrap();
        let info = store.find("config.json").unwrap().unwrap();
        if found == new {
            assert_eq!(info.sha256, sha256(&new), "cut after {ops}");
            outcomes[1] += 1;
        } else {
            assert_eq!(found, old, "cut after {ops}: neither old nor new");
            assert_eq!(info.sha256, sha256(&old));
            assert!(result.is_err(), "cut after {ops}: commit reported success");
            outcomes[0] += 1;
        }
        assert_eq!(store.file_count().unwrap(), 1);
    }
    assert!(outcomes[0] > 0, "no cut kept the old file: {outcomes:?}");
    assert!(
        outcomes[1] > 0,
        "no cut let the new file through: {outcomes:?}"
    );
}

#[test]
fn journal_keeps_latest_record() {
    // Proves that the journal returns the latest record across many writes
    // (switching areas), and the previous one after a write torn before its
    // CRC (bytes 56..60 of the 64-byte slot) was complete.
    let rail = PowerRail::new();
    let mut store = fresh(&rail);
    let mut out = [0u8; JOB_RECORD_LEN];
    assert!(!store.load_job_record(&mut out).unwrap());
    for round in 0..100u8 {
        store.store_job_record(&[round; JOB_RECORD_LEN]).unwrap();
    }
    let mut store = reopen(store);
    assert!(store.load_job_record(&mut out).unwrap());
    assert_eq!(out, [99; JOB_RECORD_LEN]);

    for bytes in [1, 13, 40, 59] {
        rail.cut_after_bytes(bytes);
        assert!(store.store_job_record(&[200; JOB_RECORD_LEN]).is_err());
        rail.power_on();
        store = reopen(store);
        assert!(store.load_job_record(&mut out).unwrap());
        assert_eq!(out, [99; JOB_RECORD_LEN], "torn after {bytes} bytes");
    }
    store.store_job_record(&[7; JOB_RECORD_LEN]).unwrap();
    let mut store = reopen(store);
    assert!(store.load_job_record(&mut out).unwrap());
    assert_eq!(out, [7; JOB_RECORD_LEN]);
}

#[test]
fn read_size_above_one_supported() {
    // Proves that a device with 16-byte read units lists, reads, replaces
    // and journals through reads at offsets that are not multiples of 16.
    let flash: FlashSim<1024, 4, 16> = FlashSim::new(
        FlashConfig::new(STORE_CAPACITY).strict(true),
        PowerRail::new(),
    )
    .unwrap();
    let mut store = NorFileStore::new(flash, 1).unwrap();
    install(&mut store, "a.bin", &content(1500, 5)).unwrap();
    install(&mut store, "b.bin", &content(37, 6)).unwrap();
    install(&mut store, "a.bin", &content(900, 7)).unwrap();
    for round in 0..40u8 {
        store.store_job_record(&[round; JOB_RECORD_LEN]).unwrap();
    }

    let mut store = NorFileStore::new(store.into_inner(), 1).unwrap();
    assert_eq!(store.file_count().unwrap(), 2);
    assert_eq!(read_all(&mut store, "a.bin"), Some(content(900, 7)));
    assert_eq!(read_all(&mut store, "b.bin"), Some(content(37, 6)));
    let b = store.find("b.bin").unwrap().unwrap();
    assert_eq!((b.size, b.sha256), (37, sha256(&content(37, 6))));
    let mut middle = [0u8; 100];
    assert_eq!(store.read("a.bin", 7, &mut middle).unwrap(), 100);
    assert_eq!(&middle[..], &content(900, 7)[7..107]);
    let mut out = [0u8; JOB_RECORD_LEN];
    assert!(store.load_job_record(&mut out).unwrap());
    assert_eq!(out, [39; JOB_RECORD_LEN]);
}
