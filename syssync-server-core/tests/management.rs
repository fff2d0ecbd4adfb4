//! Scenarios of the management face: handover, artifacts and releases,
//! account isolation, and bad input that must change nothing.

mod common;

use common::*;
use syssync_proto::{AccountId, DeviceId, DeviceKey, JobId, Signature, Version};
use syssync_server_core::{
    AccountSettings, Command, Created, GroupId, JobSpec, JobStatus, JobTarget, ManagementError,
    Phase, ReleaseId, Server,
};

/// Returns `true` if the error is the one a case expects.
type ErrorCheck = fn(&ManagementError) -> bool;

fn release_id(server: &mut Server, account: AccountId, files: &ReleaseFiles) -> ReleaseId {
    match server
        .execute(T0, account, files.upload_command())
        .expect("upload")
        .created
    {
        Created::Release(id) => id,
        other => panic!("expected a release, got {other:?}"),
    }
}

fn references(server: &Server) -> Vec<u32> {
    server
        .store()
        .artifacts()
        .map(|(_, artifact)| artifact.references)
        .collect()
}

#[test]
fn handover_moves_device_in_one_step() {
    // Proves the owner keeps the device until the new owner accepts, and that
    // access moves at that instant with the device never ownerless.
    let (mut server, acme, mut devices, release) = fleet(1);
    let globex = account(&mut server, "globex");
    let device = devices[0].id;
    let job = create_job(&mut server, T0, acme, fleet_job(release, T0));
    let (reply, _) = devices[0].check_in(&mut server, T0);
    devices[0].accept(&reply);

    server
        .execute(T0, acme, Command::OfferTransfer { device, to: globex })
        .expect("offer");
    assert!(
        server.device_status(T0, acme, device).is_ok(),
        "owner keeps it while offered"
    );
    assert_eq!(
        server
            .device_status(T0, acme, device)
            .expect("device")
            .offered_to,
        Some(globex)
    );
    assert_eq!(
        server.device_status(T0, globex, device),
        Err(ManagementError::UnknownDevice(device))
    );
    assert_eq!(
        server.execute(
            T0,
            globex,
            Command::SetTags {
                device,
                tags: vec![]
            }
        ),
        Err(ManagementError::UnknownDevice(device))
    );

    server
        .execute(T0 + 1, globex, Command::AcceptTransfer { device })
        .expect("accept");
    assert_eq!(
        server.device_status(T0 + 1, acme, device),
        Err(ManagementError::UnknownDevice(device))
    );
    assert!(server.device_status(T0 + 1, globex, device).is_ok());
    let owners = server
        .store()
        .device_records()
        .iter()
        .filter(|record| record.id == device)
        .map(|record| record.account)
        .collect::<Vec<_>>();
    assert_eq!(owners, vec![globex]);

    // The old owner's job ends for the device: it is told to cancel.
    let (reply, _) = devices[0].check_in(&mut server, T0 + 2);
    assert_eq!(reply, Reply::Cancel(job));
    let progress = server.job_progress(acme, job).expect("progress");
    assert_eq!(progress.counters.left, 1);
    assert_eq!(
        server.execute(T0 + 3, globex, Command::AcceptTransfer { device }),
        Err(ManagementError::NoTransferOffer(device)),
        "an accepted offer is gone"
    );
}

#[test]
fn handover_needs_offer_to_accepting_account() {
    // Proves nobody can take a device that was not offered to them.
    let (mut server, acme, devices, _) = fleet(1);
    let globex = account(&mut server, "globex");
    let initech = account(&mut server, "initech");
    let device = devices[0].id;
    let before = server.store().clone();
    assert_eq!(
        server.execute(T0, globex, Command::AcceptTransfer { device }),
        Err(ManagementError::NoTransferOffer(device))
    );
    server
        .execute(T0, acme, Command::OfferTransfer { device, to: globex })
        .expect("offer");
    assert_eq!(
        server.execute(T0, initech, Command::AcceptTransfer { device }),
        Err(ManagementError::NoTransferOffer(device))
    );
    server
        .execute(T0, acme, Command::WithdrawTransfer { device })
        .expect("withdraw");
    assert_eq!(
        server.execute(T0, globex, Command::AcceptTransfer { device }),
        Err(ManagementError::NoTransferOffer(device))
    );
    assert!(*server.store() == before);
}

#[test]
fn artifacts_are_shared_and_collected() {
    // Proves a file shared by two releases is stored once with two references,
    // and is deleted with the last release that references it.
    let (mut server, acme, _, first) = fleet(0);
    assert_eq!(references(&server), vec![1, 1]);
    let mut files = ReleaseFiles::new(Version::new(1, 2, 0, 1), 0x5A, 10_000);
    files.config = b"shared = true\n".to_vec();
    let second = release_id(&mut server, acme, &files);
    assert_eq!(server.store().artifacts().count(), 3, "image stored once");
    let image_refs = server
        .store()
        .artifacts()
        .find(|(_, artifact)| artifact.data.len() == 10_000)
        .map(|(_, artifact)| artifact.references);
    assert_eq!(image_refs, Some(2));

    server
        .execute(T0, acme, Command::DeleteRelease { release: first })
        .expect("delete");
    assert_eq!(references(&server), vec![1, 1]);
    server
        .execute(T0, acme, Command::DeleteRelease { release: second })
        .expect("delete");
    assert_eq!(server.store().artifacts().count(), 0);
}

#[test]
fn release_in_use_is_kept() {
    // Proves a release deployed by an open job cannot be deleted, and can be
    // once the job is cancelled.
    let (mut server, acme, _, release) = fleet(1);
    let job = create_job(&mut server, T0, acme, fleet_job(release, T0));
    let before = server.store().clone();
    assert_eq!(
        server.execute(T0, acme, Command::DeleteRelease { release }),
        Err(ManagementError::ReleaseInUse(release))
    );
    assert!(*server.store() == before);
    server
        .execute(T0, acme, Command::CancelJob { job })
        .expect("cancel");
    server
        .execute(T0, acme, Command::DeleteRelease { release })
        .expect("delete");
}

#[test]
fn unapproved_release_cannot_deploy() {
    // Proves only approved releases can be deployed.
    let (mut server, acme, _, _) = fleet(1);
    let draft = release_id(
        &mut server,
        acme,
        &ReleaseFiles::new(Version::new(2, 0, 0, 1), 1, 500),
    );
    let before = server.store().clone();
    assert_eq!(
        server.execute(T0, acme, Command::CreateJob(fleet_job(draft, T0))),
        Err(ManagementError::ReleaseNotApproved(draft))
    );
    assert!(*server.store() == before);
}

#[test]
fn duplicate_version_is_rejected() {
    // Proves a target type and version names one release per account, so an
    // approved release cannot be replaced by re-uploading.
    let (mut server, acme, _, release) = fleet(0);
    let files = ReleaseFiles::new(Version::new(1, 1, 0, 7), 0x33, 100);
    assert_eq!(
        server.execute(T0, acme, files.upload_command()),
        Err(ManagementError::DuplicateRelease(release))
    );
}

#[test]
fn accounts_see_only_their_records() {
    // Proves queries and commands of one account never reach another's records.
    let (mut server, acme, _, release) = fleet(2);
    let globex = account(&mut server, "globex");
    let job = create_job(&mut server, T0, acme, fleet_job(release, T0));
    assert!(server.devices(T0, globex).expect("list").is_empty());
    assert_eq!(server.devices(T0, acme).expect("list").len(), 2);
    assert_eq!(
        server.job_progress(globex, job),
        Err(ManagementError::UnknownJob(job))
    );
    assert_eq!(
        server.job_failures(globex, job),
        Err(ManagementError::UnknownJob(job))
    );
    assert!(server.jobs(globex).expect("jobs").is_empty());
    assert!(server.releases(globex).expect("releases").is_empty());
    let before = server.store().clone();
    let attempts = [
        (Command::PauseJob { job }, ManagementError::UnknownJob(job)),
        (
            Command::ApproveRelease { release },
            ManagementError::UnknownRelease(release),
        ),
        (
            Command::CreateJob(fleet_job(release, T0)),
            ManagementError::UnknownRelease(release),
        ),
        (
            Command::OfferTransfer {
                device: DeviceId(1),
                to: globex,
            },
            ManagementError::UnknownDevice(DeviceId(1)),
        ),
    ];
    for (command, expected) in attempts {
        assert_eq!(server.execute(T0, globex, command), Err(expected));
    }
    assert!(*server.store() == before);
}

#[test]
fn bad_input_is_rejected_without_change() {
    // Proves each kind of bad management input gets its typed error and leaves
    // every record as it was.
    let (mut server, acme, _, release) = fleet(1);
    let files = ReleaseFiles::new(Version::new(3, 0, 0, 1), 7, 300);
    let mut wrong_target = files.manifest();
    wrong_target.target = "other-board".try_into().expect("short");
    let mut buffer = [0u8; 1536];
    let body = wrong_target.encode(&mut buffer).expect("encodes").to_vec();
    let signature = syssync_proto::manifest::sign(&body, &RELEASE_SECRET);
    let unknown_target_upload = Command::UploadRelease {
        key_id: 1,
        body,
        signature,
        artifacts: vec![files.image.clone(), files.config.clone()],
    };
    let Command::UploadRelease {
        key_id,
        body,
        signature,
        ..
    } = files.upload_command()
    else {
        panic!("upload command expected");
    };
    let mismatched_upload = Command::UploadRelease {
        key_id,
        body: body.clone(),
        signature,
        artifacts: vec![files.image.clone(), b"tampered".to_vec()],
    };
    let short_upload = Command::UploadRelease {
        key_id,
        body: body.clone(),
        signature,
        artifacts: vec![files.image.clone()],
    };
    let forged_upload = Command::UploadRelease {
        key_id,
        body: body.clone(),
        signature: Signature([1; 64]),
        artifacts: vec![files.image.clone(), files.config.clone()],
    };
    let garbage_upload = Command::UploadRelease {
        key_id,
        body: vec![0xFF; 40],
        signature,
        artifacts: vec![],
    };
    let oversized_upload = Command::UploadRelease {
        key_id,
        body: vec![0; 4000],
        signature,
        artifacts: vec![],
    };
    let mut no_phases = JobSpec::new(release, JobTarget::Fleet, T0);
    no_phases.phases.clear();
    let mut falling_phases = JobSpec::new(release, JobTarget::Fleet, T0);
    falling_phases.phases = vec![
        Phase {
            share_permille: 500,
            delay_s: 0,
            success_permille: 0,
        },
        Phase {
            share_permille: 400,
            delay_s: 0,
            success_permille: 0,
        },
    ];
    let mut zero_attempts = JobSpec::new(release, JobTarget::Fleet, T0);
    zero_attempts.max_attempts = 0;
    let cases: Vec<(&str, Command, ErrorCheck)> = vec![
        ("unknown target type", unknown_target_upload, |e| {
            matches!(e, ManagementError::UnknownTargetType(_))
        }),
        ("file mismatch", mismatched_upload, |e| {
            matches!(e, ManagementError::ArtifactMismatch { index: 1 })
        }),
        ("missing file", short_upload, |e| {
            matches!(
                e,
                ManagementError::ArtifactCount {
                    expected: 2,
                    received: 1
                }
            )
        }),
        ("forged signature", forged_upload, |e| {
            matches!(e, ManagementError::Manifest(_))
        }),
        ("garbage manifest", garbage_upload, |e| {
            matches!(e, ManagementError::Manifest(_))
        }),
        ("oversized manifest", oversized_upload, |e| {
            matches!(e, ManagementError::TooLarge { .. })
        }),
        ("no phases", Command::CreateJob(no_phases), |e| {
            matches!(e, ManagementError::Invalid { .. })
        }),
        ("falling phases", Command::CreateJob(falling_phases), |e| {
            matches!(e, ManagementError::Invalid { .. })
        }),
        ("zero attempts", Command::CreateJob(zero_attempts), |e| {
            matches!(e, ManagementError::Invalid { .. })
        }),
        (
            "unknown device job",
            Command::CreateJob(JobSpec::new(release, JobTarget::Device(DeviceId(404)), T0)),
            |e| matches!(e, ManagementError::UnknownDevice(DeviceId(404))),
        ),
        (
            "unknown group job",
            Command::CreateJob(JobSpec::new(release, JobTarget::Group(GroupId(9)), T0)),
            |e| matches!(e, ManagementError::UnknownGroup(GroupId(9))),
        ),
        ("unknown job", Command::ResumeJob { job: JobId(77) }, |e| {
            matches!(e, ManagementError::UnknownJob(JobId(77)))
        }),
        (
            "device id taken",
            TestDevice::new(1).register_command(true),
            |e| matches!(e, ManagementError::DeviceExists(DeviceId(1))),
        ),
        (
            "device of unknown type",
            Command::RegisterDevice {
                device: DeviceId(900),
                key: DeviceKey([0; 32]),
                target: "toaster".into(),
                tags: vec![],
                inventory: None,
            },
            |e| matches!(e, ManagementError::UnknownTargetType(_)),
        ),
        (
            "too many tags",
            Command::SetTags {
                device: DeviceId(1),
                tags: (0..40).map(|i| format!("t{i}")).collect(),
            },
            |e| {
                matches!(
                    e,
                    ManagementError::TooLarge {
                        what: "tag list",
                        ..
                    }
                )
            },
        ),
        (
            "oversized tag",
            Command::SetTags {
                device: DeviceId(1),
                tags: vec!["x".repeat(500)],
            },
            |e| matches!(e, ManagementError::TooLarge { what: "tag", .. }),
        ),
        (
            "oversized target name",
            Command::AddTargetType {
                name: "n".repeat(33),
            },
            |e| matches!(e, ManagementError::TooLarge { .. }),
        ),
        (
            "unknown device tags",
            Command::SetTags {
                device: DeviceId(404),
                tags: vec![],
            },
            |e| matches!(e, ManagementError::UnknownDevice(DeviceId(404))),
        ),
        (
            "resume running job",
            Command::ResumeJob { job: JobId(0) },
            |e| matches!(e, ManagementError::UnknownJob(_)),
        ),
    ];
    let before = server.store().clone();
    for (name, command, expected) in cases {
        let result = server.execute(T0, acme, command);
        match result {
            Err(error) => assert!(expected(&error), "{name}: unexpected error {error}"),
            Ok(executed) => panic!("{name}: accepted, created {:?}", executed.created),
        }
        assert!(*server.store() == before, "{name}: records changed");
    }
    assert_eq!(
        server.execute(T0, AccountId(999), Command::PauseJob { job: JobId(1) }),
        Err(ManagementError::UnknownAccount(AccountId(999)))
    );
    let mut bad = AccountSettings::new("");
    assert!(matches!(
        server.create_account(bad.clone()),
        Err(ManagementError::Invalid { .. })
    ));
    bad.name = "ok".into();
    bad.check_in_interval_s = 0;
    assert!(matches!(
        server.create_account(bad),
        Err(ManagementError::Invalid { .. })
    ));
    assert!(*server.store() == before);
}

#[test]
fn job_status_commands_follow_lifecycle() {
    // Proves pause, resume and cancel apply only in the statuses that allow them.
    let (mut server, acme, _, release) = fleet(1);
    let job = create_job(&mut server, T0, acme, fleet_job(release, T0));
    assert_eq!(
        server.execute(T0, acme, Command::ResumeJob { job }),
        Err(ManagementError::JobStatus {
            job,
            status: JobStatus::Running
        })
    );
    server
        .execute(T0, acme, Command::PauseJob { job })
        .expect("pause");
    server
        .execute(T0, acme, Command::ResumeJob { job })
        .expect("resume");
    server
        .execute(T0, acme, Command::CancelJob { job })
        .expect("cancel");
    assert_eq!(
        server.execute(T0, acme, Command::PauseJob { job }),
        Err(ManagementError::JobStatus {
            job,
            status: JobStatus::Cancelled
        })
    );
}
