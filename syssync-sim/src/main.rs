//! `syssync-sim`: runs a fleet simulation and prints its report.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use json_output::JsonOutput;
use syssync_sim::runner::{peak_memory_bytes, run, RunSettings};
use syssync_sim::scenario::Scenario;

mod json_output;

// A large fleet is millions of small allocations (frames, events) among a few
// gigabytes of simulated flash; mimalloc serves both faster than the system
// allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulates a fleet of devices updating from a syssync server, with lossy
/// links, CAN gateways and power cuts, and prints a summary.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Scenario file (TOML); the built-in default scenario when absent.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Number of devices, overriding the scenario's fleet size.
    #[arg(long, value_name = "N", value_parser = parse_devices, allow_negative_numbers = true)]
    devices: Option<u32>,
    /// Seed of all random choices, overriding the scenario's.
    #[arg(long, value_name = "S", value_parser = parse_seed, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Writes the full report as JSON to FILE, replacing an existing regular
    /// file only once the report is complete and writing a FIFO or device in
    /// place. FILE is checked before the run. `-` is rejected, because the
    /// summary goes to stdout.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Uses small synthetic images even when the real ones fit in memory, as
    /// the scenario setting `synthetic_images = true` does. With real images
    /// each device needs about 2 MiB; fleets over 6 GiB of simulated flash
    /// switch to synthetic images on their own. The real files are still
    /// read and checked, for their names and sizes.
    #[arg(long)]
    synthetic: bool,
    /// Prints no progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Folder of release images and files with its SHA256SUMS, instead of
    /// the scenario's `firmware_dir` or the default (the repository's
    /// `firmware/`, or $SYSSYNC_FIRMWARE_DIR).
    #[arg(long, value_name = "DIR")]
    firmware_dir: Option<PathBuf>,
    /// Worker threads, 1 to 256; 0, the default, means one per core. The
    /// report is the same for any number.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        hide_default_value = true,
        value_parser = parse_threads,
        allow_negative_numbers = true
    )]
    threads: usize,
}

/// Returns whether two paths name the same existing file.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Returns the number of worker threads that `--threads` requests.
fn threads(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// Most worker threads `--threads` accepts; more only add switching.
const MAX_THREADS: usize = 256;

/// Parses `--threads`: 0 for one per core, else 1 to [`MAX_THREADS`].
fn parse_threads(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(threads) if threads <= MAX_THREADS => Ok(threads),
        _ => Err(format!(
            "expected 0 (one thread per core) or a number of threads from 1 to {MAX_THREADS}, got '{text}'"
        )),
    }
}

/// Largest scenario file that `--scenario` reads, in bytes. The bundled
/// scenarios have a few KiB, and the limit stops a read of an endless file
/// such as `/dev/zero` before it fills the memory.
const MAX_SCENARIO_BYTES: u64 = 16 << 20;

/// Reads the scenario file at `path`, rejecting one over [`MAX_SCENARIO_BYTES`].
fn read_scenario(path: &Path) -> Result<String, String> {
    let cannot_read =
        |error: std::io::Error| format!("cannot read scenario {}: {error}", path.display());
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    file.take(MAX_SCENARIO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(format!(
            "scenario {} is larger than {} MiB; give a TOML scenario file",
            path.display(),
            MAX_SCENARIO_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|error| {
        format!(
            "scenario {} is not UTF-8 text (invalid byte at offset {}); give a TOML scenario file",
            path.display(),
            error.utf8_error().valid_up_to()
        )
    })
}

/// Parses `--seed`, with an error message that names the accepted range.
fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| {
        format!(
            "expected a whole number from 0 to {}, got '{text}'",
            u64::MAX
        )
    })
}

/// Parses `--devices`, with an error message that names the accepted range.
fn parse_devices(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(devices) if devices > 0 => Ok(devices),
        _ => Err(format!(
            "expected a whole number of devices from 1 to {}, got '{text}'",
            u32::MAX
        )),
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    let (scenario, scenario_dir) = match &args.scenario {
        Some(path) => match read_scenario(path) {
            Ok(text) => (
                Scenario::from_toml_unchecked(&text).and_then(|mut scenario| {
                    // --synthetic sets `synthetic_images = true`, which
                    // lets two releases share one image.
                    scenario.synthetic_images |= args.synthetic;
                    scenario.validate().map(|()| scenario)
                }),
                path.parent().map(PathBuf::from),
            ),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => (Ok(Scenario::default_scenario()), None),
    };
    let scenario = match scenario {
        Ok(scenario) => scenario,
        Err(error) => {
            match &args.scenario {
                Some(path) => eprintln!("error: {}: {error}", path.display()),
                None => eprintln!("error: {error}"),
            }
            return ExitCode::FAILURE;
        }
    };
    if let (Some(json), Some(scenario)) = (&args.json, &args.scenario) {
        if same_file(json, scenario) {
            eprintln!(
                "error: --json {} would overwrite the scenario file",
                json.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let json_output = match args.json.as_deref().map(JsonOutput::check).transpose() {
        Ok(output) => output,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let settings = RunSettings {
        devices: args.devices,
        seed: args.seed,
        scenario_dir,
        progress: !args.quiet,
        force_synthetic: args.synthetic,
        threads: args.threads,
        firmware_dir: args.firmware_dir.clone(),
    };
    let report = match run(scenario, &settings) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let peak = peak_memory_bytes().map_or_else(
        || "unknown".to_owned(),
        |bytes| format!("{} MiB", bytes >> 20),
    );
    // A closed stdout (say, piped into `head`) ends the printing quietly
    // instead of panicking; the exit code still reports the fleet's outcome.
    let mut stdout = std::io::stdout().lock();
    let printed = write!(stdout, "{}", report.to_table()).and_then(|()| {
        writeln!(
            stdout,
            "wall time  {:.1} s on {}, peak memory {peak}",
            started.elapsed().as_secs_f64(),
            match threads(args.threads) {
                1 => "1 thread".to_owned(),
                n => format!("{n} threads"),
            }
        )
    });
    if let Err(error) = printed.and_then(|()| stdout.flush()) {
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot print the summary: {error}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(output) = &json_output {
        if let Err(error) = output.write(&report.to_json()) {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    }
    if !report.errors.is_empty() {
        eprintln!(
            "error: the run had {} server errors (the `error` lines above); check the scenario",
            report.errors.len()
        );
        return ExitCode::FAILURE;
    }
    if report.bricked > 0 || report.settings_changed > 0 {
        eprintln!(
            "error: {} bricked devices and {} devices with changed settings; both must be 0",
            report.bricked, report.settings_changed
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_accepted_ranges() {
        // Proves that --devices takes 1 and up and --threads 0 to 256, and
        // that other values get a message naming the accepted range.
        assert_eq!(parse_devices("300"), Ok(300));
        for bad in ["-5", "0", "many", ""] {
            let error = parse_devices(bad).expect_err(bad);
            assert!(error.contains("from 1 to"), "{error}");
        }
        for bad in ["-1", "257", "100000", "two"] {
            let error = parse_threads(bad).expect_err(bad);
            assert!(error.contains("from 1 to 256"), "{error}");
        }
        assert_eq!(parse_threads("0"), Ok(0));
        assert_eq!(parse_seed("7"), Ok(7));
        let error = parse_seed("-1").expect_err("a negative seed is refused");
        assert!(error.contains("from 0 to"), "{error}");
        assert_eq!(parse_threads("256"), Ok(256));
        let args = Args::try_parse_from(["syssync-sim", "--devices", "-5"])
            .expect_err("a negative fleet is refused");
        assert!(
            args.to_string().contains("whole number of devices"),
            "{args}"
        );
    }

    #[test]
    fn negative_threads_get_range_message() {
        // Proves that `--threads -1` and `--threads=-1` both reach the range
        // message instead of clap's "unexpected argument".
        for command in [
            ["syssync-sim", "--threads", "-1"].as_slice(),
            ["syssync-sim", "--threads=-1"].as_slice(),
        ] {
            let error = Args::try_parse_from(command).expect_err("a negative count is rejected");
            assert!(error.to_string().contains("from 1 to 256"), "{error}");
        }
    }

    #[test]
    fn threads_help_explains_zero() {
        // Proves that the --threads help text explains what 0 means.
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        assert!(
            help.contains("0, the default, means one per core"),
            "{help}"
        );
    }
}
