//! `syssync-sim`: runs a fleet simulation and prints its report.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use syssync_sim::runner::{peak_memory_bytes, run, RunSettings};
use syssync_sim::scenario::Scenario;

/// Simulates a fleet of devices updating from a syssync server, with lossy
/// links, CAN gateways and power cuts, and prints a summary.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Scenario file (TOML); the built-in default scenario when absent.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Number of devices, overriding the scenario's fleet size.
    #[arg(long, value_name = "N")]
    devices: Option<u32>,
    /// Seed of all random choices, overriding the scenario's.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Writes the full report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Uses small synthetic images even when the real ones fit in memory. With
    /// real images each device needs about 4 MiB; fleets over 6 GiB of
    /// simulated flash switch to synthetic images on their own.
    #[arg(long)]
    synthetic: bool,
    /// Prints no progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    let (scenario, scenario_dir) = match &args.scenario {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (Scenario::from_toml(&text), path.parent().map(PathBuf::from)),
            Err(error) => {
                eprintln!("error: cannot read scenario {}: {error}", path.display());
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
    // Open the JSON output before the run, so that a bad path fails at once
    // rather than after a long simulation.
    let mut json_file = match &args.json {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some(file),
            Err(error) => {
                eprintln!("error: cannot write {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let settings = RunSettings {
        devices: args.devices,
        seed: args.seed,
        scenario_dir,
        progress: !args.quiet,
        force_synthetic: args.synthetic,
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
    let _ = write!(stdout, "{}", report.to_table()).and_then(|()| {
        writeln!(
            stdout,
            "wall time  {:.1} s, peak memory {peak}",
            started.elapsed().as_secs_f64()
        )
    });
    if let (Some(file), Some(path)) = (json_file.as_mut(), &args.json) {
        if let Err(error) = file.write_all(report.to_json().as_bytes()) {
            eprintln!("error: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
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
