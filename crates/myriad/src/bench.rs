//! `myriad bench …`: the benchmark scenarios.

use clap::{Args, Subcommand};

/// A crowd in one meeting, sending at a rate in all from random senders.
#[derive(Args)]
pub struct CrowdArgs {
    #[arg(long, default_value_t = 1000)]
    participants: usize,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long)]
    url: Option<String>,
    /// Start `nats-server -js` and this many nodes; participants spread over them.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    #[arg(long)]
    json: bool,
}

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
        /// What to measure: myriad, Janus' VideoRoom (`scripts/peers/janus` installs it), or both
        /// side by side in one run.
        #[arg(long, value_enum, default_value_t = Target::Myriad)]
        target: Target,
        /// Run the server in a network namespace of the bench's own, reached over a veth pair
        /// (needs root; always on for Janus, which gathers no loopback candidates).
        #[arg(long)]
        netns: bool,
        /// 2 or more: start `nats-server -js` and that many nodes; measure with the
        /// subscribers on the publisher's node, then on another (the relay's cost).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// 2 or more: measure one node with one media worker, then with this many.
        #[arg(long)]
        workers: Option<u16>,
        #[arg(long)]
        json: bool,
    },
    /// N participants, M chat messages per second from random senders.
    Chat(CrowdArgs),
    /// N participants, R reactions per second in all from random senders; every participant
    /// must see every reaction counted.
    Reactions(CrowdArgs),
    /// N participants each answer one poll, spread over `--seconds` (`--rate` is unused);
    /// every vote must be counted once and the results follow for everyone.
    Poll(CrowdArgs),
    /// The chat spam filter on the held-out part of its corpus: precision, recall, cost.
    Spam {
        #[arg(long)]
        json: bool,
    },
    /// N participants watch a whiteboard that five of them draw on, R strokes a second in
    /// all; every participant must get every stroke.
    Whiteboard(CrowdArgs),
    /// A cluster of N nodes, M participants spread over them, chat flowing; one node is
    /// killed (SIGKILL) and its participants resume on others through the route API.
    Failover {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 300)]
        participants: usize,
        /// Kill the node coordinating the meeting (else another one).
        #[arg(long)]
        kill_coordinator: bool,
        /// How long the affected participants get to come back, in seconds.
        #[arg(long, default_value_t = 20.0)]
        within: f64,
        #[arg(long)]
        json: bool,
    },
    /// K publishers take turns speaking; time from onset to subscribers getting the new
    /// speaker's video key frame.
    SpeakerSwitch {
        #[arg(long, default_value_t = 3)]
        publishers: usize,
        #[arg(long, default_value_t = 5)]
        subscribers: usize,
        #[arg(long, default_value_t = 10)]
        switches: usize,
        /// Length of each speaker's turn, in seconds.
        #[arg(long, default_value_t = 2.0)]
        turn: f64,
        #[arg(long)]
        json: bool,
    },
    /// Eviction policies on a synthetic day of meeting content (join storms for the web
    /// client, slides, recordings on demand, one-off avatars): the edge's moka TinyLFU, LRU,
    /// SIEVE and S3-FIFO, object and byte hit ratios at each memory budget.
    CachePolicy {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Memory budgets, MB, comma-separated.
        #[arg(long, default_value = "64,256,1024", value_delimiter = ',')]
        budgets_mb: Vec<u64>,
        /// A smaller day (a smoke run).
        #[arg(long)]
        small: bool,
        #[arg(long)]
        json: bool,
    },
    /// GeoDNS side by side with PowerDNS Authoritative's LUA records (`ifportup` +
    /// `pickclosest`) on the same GeoLite2 City database (`scripts/peers/dns` installs both
    /// and dnsperf): queries per second, CPU per query, and health change to answer change.
    Dns {
        /// Of each dnsperf run.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Runs of each server, alternating (client subnets in Berlin, Kansas, Tokyo in turn).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The GeoLite2 City database [default: $MYRIAD_GEOIP_DB, else
        /// ~/.cache/myriad-geo/GeoLite2-City.mmdb].
        #[arg(long)]
        geoip: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The edge's cache side by side with Apache Traffic Server, nginx and Varnish
    /// (`scripts/peers/http` installs them and wrk): cached 1 KiB / 1 MiB and a cold stampede.
    Http {
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// wrk threads (they share the machine's cores with the cache unless `--pin`).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Concurrent requests for one cold object.
        #[arg(long, default_value_t = 2000)]
        cold: usize,
        /// Measurements per cache, in turns (each of `--seconds`); figures are medians, ratios
        /// the median of each round's ratio.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Which caches, comma-separated: myriad, ats, nginx, varnish.
        #[arg(
            long,
            default_value = "myriad,ats,nginx,varnish",
            value_delimiter = ','
        )]
        targets: Vec<String>,
        /// With the WAF on: myriad `--waf` against nginx + ModSecurity, same OWASP CRS
        /// (use with `--targets myriad,nginx`).
        #[arg(long)]
        waf: bool,
        /// wrk on one CPU and the caches on the others, instead of all sharing every core.
        #[arg(long)]
        pin: bool,
        #[arg(long)]
        json: bool,
    },
    /// The edge's own cost of a cache hit: `Cdn::handle` in a loop on one thread, no sockets.
    HitPath {
        /// Hits per thread.
        #[arg(long, default_value_t = 200_000)]
        requests: usize,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long)]
        json: bool,
    },
    /// Where the WAF's time goes: microseconds per request (one thread) with no rules, the
    /// whole OWASP CRS, its initialization, and (with `--per-file`) each rule file on its own.
    WafCost {
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long)]
        per_file: bool,
        #[arg(long)]
        json: bool,
    },
    /// A simulated day of scheduled meetings with join storms, with the nodes warming up
    /// ahead of each start and without, side by side: join latency and the edges' cold
    /// misses.
    Prewarm {
        #[arg(long, default_value_t = 6)]
        meetings: usize,
        /// People each meeting expects, about (three in four come).
        #[arg(long, default_value_t = 200)]
        people: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// N signalling-only participants join one meeting at R per second.
    JoinStorm {
        #[arg(long, default_value_t = 1000)]
        participants: usize,
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        #[arg(long)]
        url: Option<String>,
        /// Start `nats-server -js` and this many nodes; participants spread over them.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Target {
    Myriad,
    Janus,
    Both,
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
            target,
            netns,
            nodes,
            workers,
            json,
        } => {
            use myriad_bench::forward::{compare, run, ForwardArgs, TargetKind};
            let kind = match target {
                Target::Janus => TargetKind::Janus,
                Target::Myriad | Target::Both => TargetKind::Myriad,
            };
            let args = ForwardArgs {
                subscribers,
                seconds,
                url,
                target: kind,
                netns,
                nodes,
                workers,
            };
            let report = match target {
                Target::Both => runtime()?.block_on(compare(args))?,
                Target::Myriad | Target::Janus => runtime()?.block_on(run(args))?,
            };
            report.print(json);
        }
        BenchCommand::Chat(c) => crowd(c, myriad_bench::chat::run)?,
        BenchCommand::Poll(c) => crowd(c, myriad_bench::poll::run)?,
        BenchCommand::Reactions(c) => crowd(c, myriad_bench::reactions::run)?,
        BenchCommand::Whiteboard(c) => crowd(c, myriad_bench::whiteboard::run)?,
        BenchCommand::Spam { json } => myriad_bench::spam::run().print(json),
        BenchCommand::CachePolicy {
            seed,
            budgets_mb,
            small,
            json,
        } => {
            let args = myriad_bench::cache_policy::CachePolicyArgs {
                seed,
                budgets_mb,
                small,
            };
            myriad_bench::cache_policy::run(&args).print(json);
        }
        BenchCommand::Dns {
            seconds,
            rounds,
            geoip,
            json,
        } => {
            let geoip = geoip
                .or_else(|| std::env::var_os("MYRIAD_GEOIP_DB").map(Into::into))
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| {
                        std::path::PathBuf::from(h).join(".cache/myriad-geo/GeoLite2-City.mmdb")
                    })
                })
                .ok_or_else(|| anyhow::anyhow!("say where the GeoLite2 database is: --geoip"))?;
            let args = myriad_bench::dns::DnsArgs {
                seconds: seconds.clamp(0.5, 120.0),
                rounds,
                geoip,
            };
            myriad_bench::dns::run(&args)?.print(json);
        }
        BenchCommand::SpeakerSwitch {
            publishers,
            subscribers,
            switches,
            turn,
            json,
        } => {
            let args = myriad_bench::speaker_switch::SpeakerSwitchArgs {
                publishers,
                subscribers,
                switches,
                turn: std::time::Duration::from_secs_f64(turn.clamp(0.5, 60.0)),
            };
            runtime()?
                .block_on(myriad_bench::speaker_switch::run(args))?
                .print(json);
        }
        BenchCommand::Http {
            seconds,
            connections,
            threads,
            cold,
            rounds,
            targets,
            waf,
            pin,
            json,
        } => {
            use myriad_bench::http::{run, HttpArgs, Kind};
            let targets = targets
                .iter()
                .map(|t| Kind::parse(t).ok_or_else(|| anyhow::anyhow!("unknown target {t}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let args = HttpArgs {
                seconds,
                threads,
                connections,
                cold,
                targets,
                waf,
                rounds,
                pin,
            };
            runtime()?.block_on(run(args))?.print(json);
        }
        BenchCommand::HitPath {
            requests,
            threads,
            json,
        } => {
            let args = myriad_bench::hit_path::HitPathArgs { requests, threads };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()?
                .block_on(myriad_bench::hit_path::run(args))?
                .print(json);
        }
        BenchCommand::WafCost {
            requests,
            per_file,
            json,
        } => {
            let args = myriad_bench::waf_cost::WafCostArgs { requests, per_file };
            myriad_bench::waf_cost::run(args)?.print(json);
        }
        BenchCommand::Prewarm {
            meetings,
            people,
            seed,
            json,
        } => {
            let args = myriad_bench::prewarm::PrewarmArgs {
                meetings,
                people,
                seed,
            };
            runtime()?
                .block_on(myriad_bench::prewarm::run(args))?
                .print(json);
        }
        BenchCommand::JoinStorm {
            participants,
            rate,
            url,
            nodes,
            json,
        } => {
            let args = myriad_bench::join_storm::JoinStormArgs {
                participants,
                rate_per_s: rate,
                url,
                nodes,
            };
            runtime()?
                .block_on(myriad_bench::join_storm::run(args))?
                .print(json);
        }
        BenchCommand::Failover {
            nodes,
            participants,
            kill_coordinator,
            within,
            json,
        } => {
            let args = myriad_bench::failover::FailoverArgs {
                nodes,
                participants,
                kill_coordinator,
                recover_within: std::time::Duration::from_secs_f64(within.clamp(1.0, 600.0)),
            };
            runtime()?
                .block_on(myriad_bench::failover::run(args))?
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

/// Runs a crowd scenario and prints its report.
fn crowd<F>(c: CrowdArgs, scenario: fn(myriad_bench::crowd::CrowdArgs) -> F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<myriad_bench::Report>>,
{
    let json = c.json;
    runtime()?.block_on(scenario(c.into()))?.print(json);
    Ok(())
}

impl From<CrowdArgs> for myriad_bench::crowd::CrowdArgs {
    fn from(c: CrowdArgs) -> Self {
        Self {
            participants: c.participants,
            rate_per_s: c.rate,
            seconds: c.seconds,
            url: c.url,
            nodes: c.nodes,
        }
    }
}
