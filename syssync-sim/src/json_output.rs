//! The `--json` report file: checked before the run, so that a bad path
//! fails at once rather than after a long simulation, and written after it.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Maximum number of symbolic links followed to find the file to replace,
/// as `MAXSYMLINKS` on Linux.
const MAX_SYMLINKS: usize = 40;

/// Destination of the report, as found by [`JsonOutput::check`].
#[derive(Debug)]
pub(crate) struct JsonOutput {
    /// The path as the user gave it, for messages.
    path: PathBuf,
    target: Target,
}

#[derive(Debug)]
enum Target {
    /// A regular file, or none yet. The report goes to a temporary file
    /// beside it that is renamed over it, so an existing report is replaced
    /// only by a complete one.
    Replace {
        /// The file to replace, with symbolic links resolved so that a link
        /// stays a link and its target gets the report.
        file: PathBuf,
        /// The temporary file in the same directory.
        temporary: PathBuf,
        /// Permissions of the existing file, which the new one keeps.
        permissions: Option<Permissions>,
    },
    /// A FIFO, character device or other file that is not regular: written
    /// in place, because it cannot be replaced by renaming.
    Direct,
}

impl JsonOutput {
    /// Checks that the report can be written to `path` and returns where it goes.
    ///
    /// Rejects `-`, a directory, a missing parent directory, a read-only file
    /// and a directory without write access. Creates no file except a
    /// short-lived probe of the directory, so an interrupted run leaves
    /// nothing behind.
    pub(crate) fn check(path: &Path) -> Result<Self, String> {
        let user_path = path.display();
        if path.as_os_str() == "-" {
            return Err(
                "--json - is not supported because the summary goes to stdout; give a file path"
                    .into(),
            );
        }
        if path.as_os_str().is_empty() {
            return Err("--json is an empty path; give a file path".into());
        }
        if path.to_string_lossy().ends_with('/') {
            return Err(format!(
                "--json {user_path} names a directory; give a file path, for example {user_path}report.json"
            ));
        }
        let (file, permissions) = match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => {
                return Err(format!(
                    "--json {user_path} is a directory; give a file path, for example {}",
                    path.join("report.json").display()
                ));
            }
            Ok(metadata) if !metadata.is_file() => {
                return Ok(Self {
                    path: path.to_owned(),
                    target: Target::Direct,
                });
            }
            Ok(metadata) => {
                if metadata.permissions().readonly() {
                    return Err(format!(
                        "--json {user_path} is read-only; make it writable or choose another file"
                    ));
                }
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|error| format!("cannot write --json {user_path}: {error}"))?;
                let file = std::fs::canonicalize(path)
                    .map_err(|error| format!("cannot write --json {user_path}: {error}"))?;
                (file, Some(metadata.permissions()))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let file = resolve_symlinks(path)
                    .map_err(|error| format!("cannot write --json {user_path}: {error}"))?;
                check_directory(path, &file)?;
                (file, None)
            }
            Err(error) => return Err(format!("cannot write --json {user_path}: {error}")),
        };
        let temporary = temporary_path(&file);
        // Probe the directory for write access with the temporary file itself.
        File::create(&temporary)
            .and_then(|_| std::fs::remove_file(&temporary))
            .map_err(|error| {
                format!(
                    "cannot write --json {user_path}: creating the temporary file {} beside it failed: {error}",
                    temporary.display()
                )
            })?;
        Ok(Self {
            path: path.to_owned(),
            target: Target::Replace {
                file,
                temporary,
                permissions,
            },
        })
    }

    /// Writes `json` to the checked path.
    pub(crate) fn write(&self, json: &str) -> Result<(), String> {
        let user_path = self.path.display();
        match &self.target {
            Target::Direct => OpenOptions::new()
                .write(true)
                .open(&self.path)
                .and_then(|mut file| file.write_all(json.as_bytes()))
                .map_err(|error| format!("cannot write --json {user_path}: {error}")),
            Target::Replace {
                file,
                temporary,
                permissions,
            } => {
                let written = write_file(temporary, json, permissions.as_ref())
                    .and_then(|()| std::fs::rename(temporary, file));
                written.map_err(|error| {
                    let _ = std::fs::remove_file(temporary);
                    format!(
                        "cannot write --json {user_path}: {error} (while writing the temporary file {}, now removed)",
                        temporary.display()
                    )
                })
            }
        }
    }
}

/// Writes `json` to a new file at `path` and flushes it to disk.
fn write_file(path: &Path, json: &str, permissions: Option<&Permissions>) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(json.as_bytes())?;
    if let Some(permissions) = permissions {
        file.set_permissions(permissions.clone())?;
    }
    file.sync_all()
}

/// Returns `FILE.partial` beside `file`.
fn temporary_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    file.with_file_name(name)
}

/// Checks that the directory of the new file `file` exists; `path` is the
/// user's path, for messages.
fn check_directory(path: &Path, file: &Path) -> Result<(), String> {
    let directory = match file.parent() {
        Some(directory) if !directory.as_os_str().is_empty() => directory,
        _ => Path::new("."),
    };
    match std::fs::metadata(directory) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "cannot write --json {}: {} is not a directory",
            path.display(),
            directory.display()
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(format!(
            "cannot write --json {}: directory {} does not exist; create it first",
            path.display(),
            directory.display()
        )),
        Err(error) => Err(format!(
            "cannot write --json {}: cannot read directory {}: {error}",
            path.display(),
            directory.display()
        )),
    }
}

/// Follows symbolic links from `path` to the first path that is not one,
/// which may not exist yet (the target of a dangling link).
fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_owned();
    for _ in 0..MAX_SYMLINKS {
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?;
                // A relative target is relative to the link's directory, and
                // joining an absolute one replaces the directory.
                path = match path.parent() {
                    Some(directory) => directory.join(target),
                    None => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_SYMLINKS} levels of symbolic links"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns a fresh, empty folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("syssync-sim-json-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary folder");
        dir
    }

    #[test]
    fn check_leaves_no_file() {
        // Proves that checking the path creates nothing that an interrupted
        // run would leave behind.
        let dir = scratch("none");
        let output = JsonOutput::check(&dir.join("report.json")).expect("writable");
        let entries: Vec<_> = std::fs::read_dir(&dir).expect("folder").collect();
        assert!(entries.is_empty(), "{entries:?}");

        output.write("{}").expect("written");
        let text = std::fs::read_to_string(dir.join("report.json")).expect("report");
        assert_eq!(text, "{}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn write_error_names_user_path() {
        // Proves that a failure at the end names the path the user gave and
        // mentions the temporary file only as context.
        let dir = scratch("gone");
        let folder = dir.join("out");
        std::fs::create_dir(&folder).expect("folder");
        let path = folder.join("report.json");
        let output = JsonOutput::check(&path).expect("writable");
        std::fs::remove_dir(&folder).expect("folder removed");

        let error = output.write("{}").expect_err("the folder is gone");
        let expected = format!("cannot write --json {}: ", path.display());
        assert!(error.starts_with(&expected), "{error}");
        assert!(
            error.contains("report.json.partial, now removed"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn existing_file_keeps_permissions() {
        // Proves that a replaced report keeps the mode of the old one.
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let path = dir.join("report.json");
        std::fs::write(&path, "old").expect("old report");
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).expect("mode set");

        JsonOutput::check(&path)
            .expect("writable")
            .write("{}")
            .expect("written");
        let mode = std::fs::metadata(&path)
            .expect("report")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn proc_directory_rejected() {
        // Proves that the check rejects a directory where no file can be
        // created. Even root cannot create a file under /proc.
        let path = Path::new("/proc/syssync-sim-report.json");
        let error = JsonOutput::check(path).expect_err("/proc takes no new file");
        let expected = "cannot write --json /proc/syssync-sim-report.json: \
                        creating the temporary file /proc/syssync-sim-report.json.partial";
        assert!(error.starts_with(expected), "{error}");
    }

    #[test]
    fn read_only_directory_matches_system() {
        // Proves that the check of a directory without write permission
        // agrees with the system. Root ignores the mode bits, so there the
        // check must accept the directory.
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("locked");
        let locked = dir.join("locked");
        std::fs::create_dir(&locked).expect("folder");
        std::fs::set_permissions(&locked, Permissions::from_mode(0o555)).expect("mode set");

        let result = JsonOutput::check(&locked.join("report.json"));
        let creatable = File::create(locked.join("probe")).is_ok();
        match result {
            Ok(_) => assert!(creatable, "accepted a directory that takes no file"),
            Err(error) => {
                assert!(!creatable, "rejected a writable directory: {error}");
                assert!(error.contains("creating the temporary file"), "{error}");
            }
        }
        let entries = std::fs::read_dir(&locked).expect("folder").count();
        assert_eq!(entries, usize::from(creatable), "the check left a file");
        std::fs::set_permissions(&locked, Permissions::from_mode(0o755)).expect("mode reset");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dangling_symlink_gets_target() {
        // Proves that a link to a file that does not exist yet stays a link
        // and the report is created at its target.
        let dir = scratch("dangling");
        let link = dir.join("report.json");
        std::os::unix::fs::symlink("real.json", &link).expect("link");

        JsonOutput::check(&link)
            .expect("writable")
            .write("{}")
            .expect("written");
        let metadata = std::fs::symlink_metadata(&link).expect("link");
        assert!(metadata.file_type().is_symlink());
        let text = std::fs::read_to_string(dir.join("real.json")).expect("target");
        assert_eq!(text, "{}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
