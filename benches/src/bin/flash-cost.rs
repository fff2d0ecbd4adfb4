//! Prints the flash cost of one firmware update under `embassy-boot` 0.7 and
//! `rollback-fsm` on the same simulated flash, then runs the same power-cut
//! sweep over both.
//!
//! Usage: `cargo run --release -p benches --bin flash-cost [-- OPTIONS]`
//!
//! Options:
//! - `--stride N`: cut at every N-th programmed or erased byte of each
//!   scenario (default 7; 1 cuts at every byte), besides every operation boundary;
//! - `--sweep-sectors N`: image size of the sweep in 4 KiB sectors (default 4);
//! - `--second-cut`: run each cut point again with a second cut at a
//!   pseudo-random byte of the recovery boots (doubles the run time);
//! - `--no-sweep`: print the cost table only.

use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use benches::boards::{
    Board, BoardError, EmbassyBoard, RollbackBoard, COPY_BUFFER, SECTOR, STAGING_CHUNK,
};
use benches::counts::FlashTotals;
use benches::measure::{measure_update, UpdateCost};
use benches::sweep::{Scenario, Sweep, SweepReport};

/// Image sizes of the cost table, in bytes.
const IMAGE_SIZES: [usize; 3] = [64 * 1024, 256 * 1024, 1024 * 1024];

struct Options {
    stride: u64,
    sweep_sectors: usize,
    sweep: bool,
    second_cut: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        stride: 7,
        sweep_sectors: 4,
        sweep: true,
        second_cut: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let value = args
                .next()
                .ok_or_else(|| format!("missing value after {name}"))?;
            value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("invalid value {value:?} for {name}: expected a positive integer")
            })
        };
        match arg.as_str() {
            "--stride" => options.stride = number("--stride")?,
            "--sweep-sectors" => options.sweep_sectors = number("--sweep-sectors")? as usize,
            "--no-sweep" => options.sweep = false,
            "--second-cut" => options.second_cut = true,
            other => {
                return Err(format!(
                    "unknown option {other:?}; expected --stride N, --sweep-sectors N, --second-cut or --no-sweep"
                ))
            }
        }
    }
    Ok(options)
}

fn kib(bytes: usize) -> String {
    format!("{} KiB", bytes / 1024)
}

fn print_row(write: usize, image: usize, name: &str, phase: &str, totals: &FlashTotals) {
    println!(
        "| {write} | {} | {name} | {phase} | {} | {} | {} | {} | {} |",
        kib(image),
        totals.erases,
        totals.write_calls,
        totals.bytes_written,
        totals.bytes_read,
        totals.max_sector_erases()
    );
}

fn print_cost(write: usize, image: usize, name: &str, cost: &UpdateCost) {
    let rows = [
        ("staging", &cost.staging),
        ("install", &cost.install),
        ("confirm", &cost.confirm),
        ("revert", &cost.revert),
        ("cycle: update + confirm", &cost.confirm_cycle),
        ("cycle: update + revert", &cost.revert_cycle),
    ];
    for (phase, totals) in rows {
        print_row(write, image, name, phase, totals);
    }
}

/// Costs of one write size, per image size: (embassy-boot, rollback-fsm).
type Costs = Vec<(usize, UpdateCost, UpdateCost)>;

fn measure_write_size<const W: usize>() -> Result<Costs, BoardError> {
    let mut costs = Vec::new();
    for image in IMAGE_SIZES {
        let embassy = measure_update::<EmbassyBoard<W>>(false, image)?;
        let rollback = measure_update::<RollbackBoard<W>>(false, image)?;
        print_cost(W, image, EmbassyBoard::<W>::NAME, &embassy);
        print_cost(W, image, RollbackBoard::<W>::NAME, &rollback);
        costs.push((image, embassy, rollback));
    }
    Ok(costs)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT MET"
    }
}

/// Prints the goals against embassy-boot and returns whether all are met.
fn print_goals(write: usize, costs: &Costs) -> bool {
    let mut all = true;
    for (image, embassy, rollback) in costs {
        let install = rollback.install.erases <= embassy.install.erases;
        let revert = rollback.revert.erases < embassy.revert.erases;
        println!(
            "write size {write}, {}: install erases {} vs {} ({}); revert erases {} vs {} ({})",
            kib(*image),
            rollback.install.erases,
            embassy.install.erases,
            verdict(install),
            rollback.revert.erases,
            embassy.revert.erases,
            verdict(revert)
        );
        all &= install && revert;
    }
    if let (Some(first), Some(last)) = (costs.first(), costs.last()) {
        let growth = (last.0 / first.0) as f64;
        let ratio = |small: &FlashTotals, large: &FlashTotals| {
            large.bytes_read as f64 / small.bytes_read.max(1) as f64
        };
        let rollback = ratio(&first.2.install, &last.2.install);
        let embassy = ratio(&first.1.install, &last.1.install);
        // Linear within 10 %: per-boot constant reads make small images read a
        // little more per byte.
        let linear = rollback <= growth * 1.1;
        println!(
            "write size {write}: image {growth:.0}x larger, install reads grow {rollback:.1}x for rollback-fsm ({}: linear), {embassy:.1}x for embassy-boot",
            verdict(linear)
        );
        all &= linear;
    }
    all
}

/// Sweep parameters: image size in sectors, byte stride and second cuts.
#[derive(Clone, Copy)]
struct Plan {
    sectors: usize,
    stride: u64,
    second_cut: bool,
}

fn sweep_one<B: Board>(
    strict: bool,
    plan: Plan,
) -> Result<Vec<(Scenario, SweepReport)>, BoardError> {
    let mut reports = Vec::new();
    for scenario in Scenario::ALL {
        let sweep = Sweep::<B>::new(scenario, strict, plan.sectors * SECTOR)?;
        reports.push((scenario, sweep.sweep(plan.stride, plan.second_cut)?));
    }
    Ok(reports)
}

type SweepRows = Vec<(&'static str, usize, Scenario, SweepReport)>;

fn sweep_mode<const W: usize>(strict: bool, plan: Plan) -> Result<SweepRows, BoardError> {
    let mut rows = Vec::new();
    for (scenario, report) in sweep_one::<EmbassyBoard<W>>(strict, plan)? {
        rows.push((EmbassyBoard::<W>::NAME, W, scenario, report));
    }
    for (scenario, report) in sweep_one::<RollbackBoard<W>>(strict, plan)? {
        rows.push((RollbackBoard::<W>::NAME, W, scenario, report));
    }
    Ok(rows)
}

/// Prints one table row per sweep and returns the first failures of each row
/// and whether rollback-fsm recovered at every cut point.
fn print_sweep_rows(mode: &str, rows: &SweepRows, examples: &mut Vec<String>) -> bool {
    let mut clean = true;
    for (name, write, scenario, report) in rows {
        println!(
            "| {mode} | {write} | {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            scenario.name(),
            report.scenario_bytes,
            report.scenario_ops,
            report.cut_points,
            report.second_cuts,
            report.failed_before_cut,
            report.boot_failed,
            report.incomplete_image,
            report.wrong_image
        );
        if *name == RollbackBoard::<4>::NAME && report.failures() > 0 {
            clean = false;
        }
        for example in &report.examples {
            examples.push(format!(
                "{mode} {write} {name} {}: {example}",
                scenario.name()
            ));
        }
    }
    clean
}

fn run_sweeps(options: &Options) -> Result<bool, String> {
    let plan = Plan {
        sectors: options.sweep_sectors,
        stride: options.stride,
        second_cut: options.second_cut,
    };
    let (sectors, stride) = (plan.sectors, plan.stride);
    let started = Instant::now();
    // Normal flash in one thread, strict (ECC) flash in the other.
    let handles = [false, true].map(|strict| {
        thread::spawn(move || -> Result<SweepRows, BoardError> {
            let mut rows = sweep_mode::<4>(strict, plan)?;
            rows.extend(sweep_mode::<8>(strict, plan)?);
            Ok(rows)
        })
    });

    println!();
    let bytes = if stride == 1 {
        "every byte".to_string()
    } else {
        format!("every {stride}th byte")
    };
    let second = if plan.second_cut {
        ", each cut point run again with a second cut during recovery"
    } else {
        ""
    };
    println!(
        "Power-cut sweep: image of {} ({} sectors), every operation boundary and {bytes}, then {} boots without a confirm{second}",
        kib(sectors * SECTOR),
        sectors,
        benches::sweep::RECOVERY_BOOTS
    );
    println!();
    println!("| flash | write size | bootloader | scenario | bytes | operations | runs | second cuts fired | failed before cut | boot failed | incomplete image | wrong image |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut examples = Vec::new();
    let mut clean = true;
    for (handle, mode) in handles.into_iter().zip(["normal", "strict (ECC)"]) {
        let rows = handle
            .join()
            .map_err(|_| format!("the {mode} sweep thread panicked"))?
            .map_err(|error| format!("{mode} sweep failed to run: {error}"))?;
        clean &= print_sweep_rows(mode, &rows, &mut examples);
    }

    if !examples.is_empty() {
        println!();
        println!("First failures of each row:");
        for example in examples {
            println!("- {example}");
        }
    }
    println!();
    println!("sweep time {:.1} s", started.elapsed().as_secs_f64());
    Ok(clean)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("flash-cost: {message}");
            return ExitCode::from(2);
        }
    };
    println!(
        "Flash cost of one update: flash-sim devices with {} KiB sectors, one device per partition, \
         image = active partition size, staging in {STAGING_CHUNK}-byte writes, copy buffer {COPY_BUFFER} bytes",
        SECTOR / 1024
    );
    println!();
    println!("| write size | image | bootloader | phase | sector erases | write calls | bytes written | bytes read | max erases of one sector |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let costs = match (measure_write_size::<4>(), measure_write_size::<8>()) {
        (Ok(four), Ok(eight)) => [(4, four), (8, eight)],
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("flash-cost: measurement failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!();
    let mut goals = true;
    for (write, costs) in &costs {
        goals &= print_goals(*write, costs);
    }

    let mut sweep_clean = true;
    if options.sweep {
        match run_sweeps(&options) {
            Ok(clean) => sweep_clean = clean,
            Err(message) => {
                eprintln!("flash-cost: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    if goals && sweep_clean {
        ExitCode::SUCCESS
    } else {
        eprintln!("flash-cost: a goal was not met or rollback-fsm failed a cut point; see above");
        ExitCode::FAILURE
    }
}
