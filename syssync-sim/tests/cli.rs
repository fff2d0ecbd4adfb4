//! The command line keeps the user's files safe: a failed run leaves an
//! existing JSON report alone, and `--json` never overwrites the scenario.

use std::path::PathBuf;
use std::process::Command;

/// Returns a fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("syssync-sim-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary folder");
    dir
}

fn simulator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syssync-sim"))
}

#[test]
fn failed_run_keeps_old_report() {
    // Proves that a run that fails (an image is missing) exits with an error
    // and leaves the previous JSON report as it was.
    let dir = scratch("keep");
    let scenario = dir.join("missing-image.toml");
    let text = include_str!("../scenarios/transfer.toml")
        .replace("esp8266-20190125-v1.10.bin", "no-such-image.bin");
    std::fs::write(&scenario, text).expect("scenario written");
    let report = dir.join("report.json");
    std::fs::write(&report, "previous report").expect("report written");

    let output = simulator()
        .arg("--scenario")
        .arg(&scenario)
        .arg("--json")
        .arg(&report)
        .arg("--quiet")
        .output()
        .expect("the simulator starts");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-image.bin"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&report).expect("report kept"),
        "previous report"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_never_overwrites_scenario() {
    // Proves that `--json` naming the scenario file itself is refused before
    // anything is written.
    let dir = scratch("self");
    let scenario = dir.join("transfer.toml");
    let text = include_str!("../scenarios/transfer.toml");
    std::fs::write(&scenario, text).expect("scenario written");

    let output = simulator()
        .arg("--scenario")
        .arg(&scenario)
        .arg("--json")
        .arg(&scenario)
        .arg("--quiet")
        .output()
        .expect("the simulator starts");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("would overwrite the scenario"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&scenario).expect("scenario kept"),
        text
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oversized_scenario_is_rejected() {
    // Proves that a scenario file over 16 MiB is rejected before it is
    // parsed or run, so that `--scenario /dev/zero` cannot fill the memory.
    // The file is a valid scenario followed by comment lines, which the
    // simulator would otherwise run.
    let dir = scratch("large");
    let scenario = dir.join("large.toml");
    let mut text = include_str!("../scenarios/transfer.toml").to_owned();
    let comment = format!("# {}\n", "x".repeat(1021));
    while text.len() <= 16 << 20 {
        text.push_str(&comment);
    }
    std::fs::write(&scenario, text).expect("scenario written");

    let output = simulator()
        .arg("--scenario")
        .arg(&scenario)
        .arg("--quiet")
        .output()
        .expect("the simulator starts");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is larger than 16 MiB"), "{stderr}");
    assert!(output.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn endless_scenario_is_rejected() {
    // Proves that reading `/dev/zero` as a scenario stops at the size limit.
    let output = simulator()
        .args(["--scenario", "/dev/zero", "--quiet"])
        .output()
        .expect("the simulator starts");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is larger than 16 MiB"), "{stderr}");
}

#[test]
fn synthetic_flag_allows_shared_image() {
    // Proves that --synthetic works like `synthetic_images = true`: two
    // releases may share one image file, and without the flag the error
    // names both ways out.
    let dir = scratch("shared");
    let scenario = dir.join("shared-image.toml");
    let text = include_str!("../scenarios/transfer.toml")
        .replace("esp8266-20190125-v1.10.bin", "esp8266-20180511-v1.9.4.bin");
    std::fs::write(&scenario, text).expect("scenario written");

    let output = simulator()
        .arg("--scenario")
        .arg(&scenario)
        .arg("--quiet")
        .output()
        .expect("the simulator starts");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("use the same image"), "{stderr}");
    assert!(stderr.contains("--synthetic"), "{stderr}");

    let output = simulator()
        .arg("--scenario")
        .arg(&scenario)
        .arg("--synthetic")
        .arg("--quiet")
        .output()
        .expect("the simulator starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("synthetic images (--synthetic)"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the transfer scenario with `--json path` in `dir` and returns the output.
fn run_with_json(dir: &std::path::Path, path: &str) -> std::process::Output {
    let scenario = dir.join("transfer.toml");
    std::fs::write(&scenario, include_str!("../scenarios/transfer.toml"))
        .expect("scenario written");
    simulator()
        .current_dir(dir)
        .arg("--scenario")
        .arg(&scenario)
        .args(["--quiet", "--json", path])
        .output()
        .expect("the simulator starts")
}

#[test]
fn bad_json_paths_fail_before_run() {
    // Proves that a --json path that cannot take the report is rejected
    // before the simulation, which would print the summary on stdout.
    let dir = scratch("paths");
    std::fs::create_dir(dir.join("reports")).expect("directory");
    std::fs::write(dir.join("read-only.json"), "old").expect("report written");
    let mut permissions = std::fs::metadata(dir.join("read-only.json"))
        .expect("report")
        .permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(dir.join("read-only.json"), permissions).expect("read-only");
    let cases = [
        ("reports", "--json reports is a directory"),
        ("reports/", "--json reports/ names a directory"),
        ("missing/report.json", "directory missing does not exist"),
        ("-", "--json - is not supported"),
        ("read-only.json", "--json read-only.json is read-only"),
    ];
    for (path, expected) in cases {
        let output = run_with_json(&dir, path);
        assert!(!output.status.success(), "{path}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{path}: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.is_empty(), "{path} ran the simulation: {stdout}");
    }
    assert!(!dir.join("-").exists());
    let text = std::fs::read_to_string(dir.join("read-only.json")).expect("report kept");
    assert_eq!(text, "old");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_symlink_stays_link() {
    // Proves that a report written through a symbolic link goes to the
    // link's target and leaves the link in place.
    let dir = scratch("link");
    std::fs::write(dir.join("real.json"), "old").expect("report written");
    std::os::unix::fs::symlink("real.json", dir.join("link.json")).expect("link");

    let output = run_with_json(&dir, "link.json");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let metadata = std::fs::symlink_metadata(dir.join("link.json")).expect("link");
    assert!(metadata.file_type().is_symlink());
    let text = std::fs::read_to_string(dir.join("real.json")).expect("report");
    assert!(text.contains("\"scenario\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_fifo_written_in_place() {
    // Proves that a report to a FIFO goes to the reader at the other end
    // and leaves the FIFO in place instead of replacing it.
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("fifo");
    let fifo = dir.join("report.fifo");
    let created = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(created.success());
    let mut reader = Command::new("cat")
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cat starts");

    let output = run_with_json(&dir, "report.fifo");
    let still_fifo = std::fs::symlink_metadata(&fifo)
        .map(|metadata| metadata.file_type().is_fifo())
        .unwrap_or(false);
    if !still_fifo {
        // The reader would wait for a writer forever.
        let _ = reader.kill();
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(still_fifo, "the FIFO was replaced");
    let mut text = String::new();
    reader
        .stdout
        .take()
        .expect("pipe")
        .read_to_string(&mut text)
        .expect("report read");
    let _ = reader.wait();
    assert!(text.contains("\"scenario\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
