//! With the `signature` feature, a staged image installs only with a valid
//! Ed25519 signature over its descriptor.
#![cfg(feature = "signature")]

mod support;

use ed25519_dalek::{Signer, SigningKey};
use rollback_fsm::{Ed25519Authenticator, Rejection, StagedImage};
use support::{provisioned, BootResult, Device, TestImage};

type Dev = Device<4, 1>;

fn boot_with(device: &mut Dev, authenticator: &Ed25519Authenticator) -> BootResult {
    let rail = device.rail.clone();
    let mut boot = device.boot_side();
    boot.set_authenticator(authenticator);
    match boot.run() {
        Ok(()) => BootResult::Booted,
        Err(_) if rail.is_down() => BootResult::PowerLost,
        Err(error) => BootResult::Failed(error),
    }
}

fn stage_signed(device: &mut Dev, image: &TestImage, evidence: &[u8]) {
    let mut app = device.app();
    app.begin_staging(&image.descriptor, evidence).unwrap();
    app.write_staging(0, &image.bytes).unwrap();
    app.request_install().unwrap();
}

#[test]
fn signed_image_installs_and_forged_is_rejected() {
    // Proves that a correctly signed image installs, and a wrong key or a missing signature is rejected before the active partition is touched.
    let factory = TestImage::new(0, 4096);
    let old = TestImage::new(1, 900);
    let new = TestImage::new(2, 1200);
    let key = SigningKey::from_bytes(&[7; 32]);
    let other = SigningKey::from_bytes(&[8; 32]);
    let authenticator = Ed25519Authenticator::new(key.verifying_key());
    let signature = key.sign(&new.descriptor.to_bytes()).to_bytes();
    let forged = other.sign(&new.descriptor.to_bytes()).to_bytes();

    // The provisioning install goes through the same check.
    let mut device = Dev::new(false, 1, &factory);
    let old_signature = key.sign(&old.descriptor.to_bytes()).to_bytes();
    stage_signed(&mut device, &old, &old_signature);
    assert_eq!(boot_with(&mut device, &authenticator), BootResult::Booted);
    device.app().confirm().unwrap();
    assert_eq!(device.active_image(&[&old]), Some(0));

    for evidence in [&forged[..], &[], &signature[..10]] {
        let mut run = device.snapshot();
        stage_signed(&mut run, &new, evidence);
        run.active.reset_counters();
        assert_eq!(boot_with(&mut run, &authenticator), BootResult::Booted);
        assert_eq!(run.active.counters().erases, 0);
        assert_eq!(
            run.status().unwrap().staged,
            StagedImage::Rejected(Rejection::Signature)
        );
    }

    let mut run = device.snapshot();
    stage_signed(&mut run, &new, &signature);
    assert_eq!(boot_with(&mut run, &authenticator), BootResult::Booted);
    assert_eq!(run.active_image(&[&old, &new]), Some(1));
    assert!(run.status().unwrap().on_trial);
}

#[test]
fn no_authenticator_rejects() {
    // Proves that a bootloader built with the feature but without an authenticator rejects every staged image.
    let factory = TestImage::new(0, 4096);
    let old = TestImage::new(1, 900);
    let _ = provisioned::<4, 1>;
    let mut device = Dev::new(false, 1, &factory);
    stage_signed(&mut device, &old, &[0; 64]);
    assert_eq!(device.boot(), BootResult::Booted);
    assert_eq!(
        device.status().unwrap().staged,
        StagedImage::Rejected(Rejection::Signature)
    );
}
