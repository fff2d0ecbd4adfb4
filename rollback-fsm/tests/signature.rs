//! With the `signature` feature, a staged image installs only with a valid
//! Ed25519 signature: over its descriptor, or over a syssync release manifest
//! whose application image is exactly the staged image.
#![cfg(feature = "signature")]

mod support;

use ed25519_dalek::{Signer, SigningKey};
use rollback_fsm::{
    Ed25519Authenticator, ImageAuthenticator, ManifestAuthenticator, Rejection, StagedImage,
};
use support::{provisioned, BootResult, Device, TestImage};
use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile, SignedManifest};
use syssync_proto::TrustedKey;

type Dev = Device<4, 1>;

fn boot_with(device: &mut Dev, authenticator: &dyn ImageAuthenticator) -> BootResult {
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

const RELEASE_SECRET: [u8; 32] = [9; 32];

/// Encodes a release manifest whose application image is `image`, signed with
/// `secret`, as a device stores it next to the staged image.
fn manifest_evidence(
    image: &TestImage,
    secret: &[u8; 32],
    edit: impl Fn(&mut Manifest),
) -> Vec<u8> {
    let descriptor = &image.descriptor;
    let mut files = heapless::Vec::new();
    files
        .push(ManifestFile {
            kind: FileKind::Application,
            name: "app.bin".try_into().unwrap(),
            size: descriptor.size,
            sha256: descriptor.sha256,
        })
        .unwrap();
    let version = descriptor.version;
    let mut release = Manifest {
        target: core::str::from_utf8(descriptor.target_type.as_bytes())
            .unwrap()
            .try_into()
            .unwrap(),
        version: syssync_proto::Version::new(
            version.major,
            version.minor,
            version.patch,
            version.build,
        ),
        security_counter: descriptor.security_counter,
        expires_at: u64::MAX,
        files,
        remove: heapless::Vec::new(),
    };
    edit(&mut release);
    let mut body = [0u8; 2048];
    let body: &[u8] = release.encode(&mut body).unwrap();
    let signed = SignedManifest {
        key_id: 3,
        body,
        signature: manifest::sign(body, secret),
    };
    let mut out = [0u8; 2048];
    signed.encode(&mut out).unwrap().to_vec()
}

fn trusted_release_keys() -> [TrustedKey; 1] {
    [TrustedKey {
        id: 3,
        public_key: manifest::public_key(&RELEASE_SECRET),
    }]
}

#[test]
fn manifest_signed_image_installs() {
    // Proves that an image whose signed release manifest names exactly it
    // installs, and that a forged signature, an unknown key or a manifest for
    // another image is rejected before the active partition is touched.
    let trusted = trusted_release_keys();
    check_manifest_authenticator(&ManifestAuthenticator::new(&trusted));
}

#[test]
fn manifest_check_with_salty_crypto() {
    // Proves the same with the smaller `SaltyCrypto` backend verifying the
    // manifest signature, as a bootloader short of flash would build it.
    let trusted = trusted_release_keys();
    check_manifest_authenticator(&ManifestAuthenticator::with_crypto(
        &trusted,
        syssync_proto::SaltyCrypto,
    ));
}

#[test]
fn manifest_check_with_compact_crypto() {
    // Proves the same with `CompactCrypto`, the smallest backend, which the
    // boot-side size probe links.
    let trusted = trusted_release_keys();
    check_manifest_authenticator(&ManifestAuthenticator::with_crypto(
        &trusted,
        syssync_proto::CompactCrypto,
    ));
}

fn check_manifest_authenticator(authenticator: &dyn ImageAuthenticator) {
    let factory = TestImage::new(0, 4096);
    let old = TestImage::new(1, 900);
    let new = TestImage::new(2, 1200);

    let mut device = Dev::new(false, 1, &factory);
    stage_signed(
        &mut device,
        &old,
        &manifest_evidence(&old, &RELEASE_SECRET, |_| {}),
    );
    assert_eq!(boot_with(&mut device, authenticator), BootResult::Booted);
    device.app().confirm().unwrap();
    assert_eq!(device.active_image(&[&old]), Some(0));

    let rejected: [(&str, Vec<u8>); 6] = [
        ("other signer", manifest_evidence(&new, &[8; 32], |_| {})),
        (
            "other image",
            manifest_evidence(&old, &RELEASE_SECRET, |_| {}),
        ),
        (
            "other target",
            manifest_evidence(&new, &RELEASE_SECRET, |m| {
                m.target = "other-board".try_into().unwrap()
            }),
        ),
        (
            "other counter",
            manifest_evidence(&new, &RELEASE_SECRET, |m| m.security_counter += 1),
        ),
        (
            "no application",
            manifest_evidence(&new, &RELEASE_SECRET, |m| m.files[0].kind = FileKind::Plain),
        ),
        (
            "truncated",
            manifest_evidence(&new, &RELEASE_SECRET, |_| {})[..40].to_vec(),
        ),
    ];
    for (case, evidence) in &rejected {
        let mut run = device.snapshot();
        stage_signed(&mut run, &new, evidence);
        run.active.reset_counters();
        assert_eq!(
            boot_with(&mut run, authenticator),
            BootResult::Booted,
            "{case}"
        );
        assert_eq!(run.active.counters().erases, 0, "{case}");
        assert_eq!(
            run.status().unwrap().staged,
            StagedImage::Rejected(Rejection::Signature),
            "{case}"
        );
        assert_eq!(run.active_image(&[&old, &new]), Some(0), "{case}");
    }

    let mut run = device.snapshot();
    stage_signed(
        &mut run,
        &new,
        &manifest_evidence(&new, &RELEASE_SECRET, |_| {}),
    );
    assert_eq!(boot_with(&mut run, authenticator), BootResult::Booted);
    assert_eq!(run.active_image(&[&old, &new]), Some(1));
    assert!(run.status().unwrap().on_trial);
}
