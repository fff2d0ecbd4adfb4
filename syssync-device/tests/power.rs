//! Scenario tests of interruptions: lost replies at every chunk, and power
//! cuts at every flash operation and inside writes of the download and of the
//! file commit. After each cut the device is rebuilt from flash alone.

mod common;

use common::*;
use syssync_device::BootPhase;

/// Checks that the update finished and that no chunk was fetched twice
/// except the `allowed_repeats` chunks in flight when something broke.
fn assert_finished(world: &mut World, release: &Release, allowed_repeats: usize, context: &str) {
    let model = world.model();
    assert_eq!(model.phase, BootPhase::Idle, "{context}");
    assert_eq!(model.running.sha256, sha256(&release.files[0]), "{context}");
    assert_eq!(
        world.installed_file("config.json").as_deref(),
        Some(release.files[1].as_slice()),
        "{context}"
    );
    assert_eq!(
        world.installed_file("ca.pem").as_deref(),
        Some(release.files[2].as_slice()),
        "{context}"
    );
    assert_eq!(
        world.server.refusals_sent, 0,
        "{context}: a replay counter was reused after a reset"
    );
    let counts = world.chunk_counts();
    assert_eq!(counts.len(), total_chunks(release), "{context}");
    let repeated = counts.values().filter(|count| **count > 1).count();
    assert!(repeated <= allowed_repeats, "{context}: repeats {counts:?}");
    assert!(
        counts.values().all(|count| *count <= 2),
        "{context}: {counts:?}"
    );
}

#[test]
fn lost_reply_at_every_chunk() {
    // Proves that losing the reply to any one chunk request costs exactly that
    // chunk again, and the download resumes at it.
    let release = standard_release();
    for lost in 0..total_chunks(&release) {
        let mut world = World::new();
        world.server.assign(1, release.clone());
        let mut seen = 0usize;
        world.downlink = Some(Box::new(move |frame: &[u8]| {
            // A chunk reply is the only large downlink frame here.
            if frame.len() > 100 && frame[1] == 0x84 {
                seen += 1;
                if seen == lost + 1 {
                    return LinkAction::Drop;
                }
            }
            LinkAction::Deliver
        }));
        assert!(
            world.run_until(3_000, |w| w.confirmed(1)),
            "lost chunk {lost}"
        );
        assert_finished(&mut world, &release, 1, &format!("lost chunk {lost}"));
        assert_eq!(
            world.server.chunk_requests.len(),
            total_chunks(&release) + 1
        );
    }
}

#[test]
fn network_down_mid_download_resumes() {
    // Proves that a network loss pauses the download, raises `NetworkWanted`,
    // and resumes at the next missing chunk once it is back.
    let release = standard_release();
    let mut world = World::new();
    world.server.assign(1, release.clone());
    assert!(world.run_until(3_000, |w| w.server.chunk_requests.len() == 7));
    world.network = false;
    let now = world.now;
    world.device_mut().set_network(now, false);
    for _ in 0..50 {
        world.step();
    }
    assert_eq!(
        world.server.chunk_requests.len(),
        7,
        "nothing is sent while down"
    );
    assert!(world.events.contains(&syssync_device::Event::NetworkWanted));
    world.network = true;
    let now = world.now;
    world.device_mut().set_network(now, true);
    assert!(world.run_until(3_000, |w| w.confirmed(1)));
    assert_finished(&mut world, &release, 0, "network loss");
}

/// Returns how often the scratch sector was erased, that is how often a
/// sector's chunks were moved aside to rewrite a torn chunk.
fn scratch_erases(world: &mut World) -> u64 {
    // Layout of a 64 KiB store with 1 KiB sectors: directory 2 x 4, journal
    // 2 x 1, manifest 2, then the scratch sector.
    let store = world.device_mut().store();
    store.flash().counters().sector_erases[12]
}

/// Runs the standard update with a power cut armed by `arm` from the start.
fn run_with_cut(label: &str, arm: impl Fn(&flash_sim::PowerRail)) -> World {
    let mut world = World::new();
    world.server.assign(1, standard_release());
    arm(&world.rail);
    assert!(
        world.run_until(5_000, |w| w.confirmed(1)),
        "{label}: {} cuts, events: {:?}",
        world.power_cuts,
        world.recent_events()
    );
    // Let the device clear its journal and check in with the new inventory.
    for _ in 0..20 {
        world.step();
    }
    world
}

#[test]
fn power_cut_at_every_flash_operation() {
    // Proves that a power cut before any write or erase of the download and
    // the file commit leaves a device that restarts from flash and finishes,
    // fetching at most the chunk in flight twice.
    let release = standard_release();
    let clean = run_with_cut("no cut", |_| {});
    let total_ops = clean.rail.ops_total();
    assert!(
        total_ops > 100,
        "the update takes {total_ops} flash operations"
    );
    let mut cuts = 0;
    let mut moves = 0;
    for ops in 0..total_ops {
        let mut world = run_with_cut(&format!("cut after {ops} operations"), |rail| {
            rail.cut_after_ops(ops)
        });
        cuts += world.power_cuts;
        moves += scratch_erases(&mut world);
        assert_finished(
            &mut world,
            &release,
            1,
            &format!("cut after {ops} operations"),
        );
    }
    assert!(moves > 0, "no cut made the device move a sector aside");
    assert_eq!(
        cuts as u64, total_ops,
        "every run saw exactly one cut ({cuts} cuts, {total_ops} operations)"
    );
}

#[test]
fn power_cut_inside_writes_and_erases() {
    // Proves the same for cuts in the middle of a write or an erase, which
    // leave torn words that read back at random.
    let release = standard_release();
    let clean = run_with_cut("no cut", |_| {});
    let total_bytes = clean.rail.bytes_total();
    let mut cuts = 0;
    let mut bytes = 1;
    while bytes < total_bytes {
        let mut world = run_with_cut(&format!("cut after {bytes} bytes"), |rail| {
            rail.cut_after_bytes(bytes)
        });
        cuts += world.power_cuts;
        assert_finished(&mut world, &release, 1, &format!("cut after {bytes} bytes"));
        bytes += 29;
    }
    assert!(cuts > 100, "{cuts} cuts happened");
}
