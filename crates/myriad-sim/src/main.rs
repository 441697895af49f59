//! `myriad-sim`: runs the cluster simulation for one seed or a range of them, at CI's scale or
//! the full one (100 nodes, 100,000 people); a failure prints its seed, and `--seed S`
//! replays it exactly.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use myriad_sim::{run, Config};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scale {
    /// 20 nodes, 5,000 people in 10 meetings.
    Ci,
    /// 100 nodes, 100,000 people in 50 meetings.
    Full,
}

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of a myriad cluster under faults")]
struct Args {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many seeds, from `--seed` on.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    #[arg(long, value_enum, default_value_t = Scale::Ci)]
    scale: Scale,
    /// Override the scale's node count.
    #[arg(long)]
    nodes: Option<usize>,
    /// Override the scale's participant count.
    #[arg(long)]
    participants: Option<usize>,
    /// Print everything participant N is told (p<N> in failure messages).
    #[arg(long)]
    trace: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    for seed in args.seed..args.seed + args.seeds {
        let mut config = match args.scale {
            Scale::Ci => Config::ci(seed),
            Scale::Full => Config::full(seed),
        };
        if let Some(n) = args.nodes {
            config.nodes = n;
        }
        if let Some(p) = args.participants {
            config.participants = p;
        }
        config.trace_client = args.trace;
        #[allow(clippy::disallowed_methods)] // wall time of a run, for the operator
        let started = Instant::now();
        match run(config) {
            Ok(report) => println!("ok  {report} ({:.1} s)", started.elapsed().as_secs_f64()),
            Err(violation) => {
                eprintln!("FAIL {violation}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
