//! `myriad bench …`: the benchmark scenarios.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The loopback UDP limit of this machine (1,200-byte datagrams, batched and single).
    UdpCeiling {
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long)]
        json: bool,
    },
    /// One publisher (audio + 3-layer video) to N subscribers.
    Forward {
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// A running deployment (in dev mode) instead of a `myriad serve` started for the run.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::UdpCeiling { seconds, json } => {
            myriad_bench::udp_ceiling::run(seconds)?.print(json);
        }
        BenchCommand::Forward {
            subscribers,
            seconds,
            url,
            json,
        } => {
            let args = myriad_bench::forward::ForwardArgs {
                subscribers,
                seconds,
                url,
            };
            runtime()?
                .block_on(myriad_bench::forward::run(args))?
                .print(json);
        }
    }
    Ok(())
}

/// The bench's own runtime: two workers, like the machine.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
