//! The `myriad` binary: command line and wiring only.

#![allow(clippy::disallowed_methods)] // an I/O shell: reads the clock

mod bench;
mod config;
mod dns;
mod edge;
mod health_checks;
mod health_hook;
mod limits;
mod prewarm;
mod serve;
mod token;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "myriad",
    version,
    about = "Very large real-time meetings and the edge network that carries them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: control, one edge with media, the web client.
    Serve(Box<config::ServeArgs>),
    /// A caching reverse proxy (CDN edge) in front of an origin.
    Edge(Box<edge::EdgeArgs>),
    /// A signed path for content behind `myriad edge --signed-prefix`.
    SignUrl(edge::SignUrlArgs),
    /// Access tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Benchmarks that print their figures (`--json` for one JSON object).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print the API key and secret of a data dir as KEY:SECRET (for `curl -u`).
    Apikey {
        #[arg(long, default_value = config::DEFAULT_DATA)]
        data: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    limits::raise_fd_limit();
    match cli.command {
        Command::Serve(args) => {
            init_logging();
            let config = config::ServeConfig::load(*args)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve::run(config))
        }
        Command::Edge(args) => {
            init_logging();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(edge::run(*args))
        }
        Command::SignUrl(args) => edge::sign_url(args),
        Command::Token(cmd) => token::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Apikey { data } => {
            let (_, key) = serve::open_data(&data)?;
            println!("{}:{}", key.key, key.secret());
            Ok(())
        }
    }
}

/// Logs to standard error: lines for people, or with `MYRIAD_LOG_FORMAT=json` one JSON object
/// per line for a log pipeline. `RUST_LOG` filters.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,str0m=warn"));
    let json = std::env::var("MYRIAD_LOG_FORMAT").is_ok_and(|f| f == "json");
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().flatten_event(true).init();
    } else {
        // Colours only for a terminal, not in log files.
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}
