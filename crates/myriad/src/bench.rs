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
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::UdpCeiling { seconds, json } => {
            myriad_bench::udp_ceiling::run(seconds)?.print(json);
        }
    }
    Ok(())
}
