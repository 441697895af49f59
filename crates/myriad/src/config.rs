//! `myriad serve` settings: embedded defaults, then a TOML file, then flags.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use myriad_dns::hickory::Name;
use myriad_dns::{fqdn, NameServer, RrlConfig};
use myriad_geo::RegionPrefix;
use myriad_node::Turn;
use myriad_plan::prewarm::WarmupConfig;
use myriad_proto::cluster::Location;
use serde::Deserialize;

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML config file (keys: the flags' names with `_` for `-`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// HTTP listen address (web client, signalling, REST API).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// UDP listen address of the first media worker; worker i listens at its port + i
    /// [default: the HTTP address's IP, its port + 1].
    #[arg(long)]
    pub udp: Option<SocketAddr>,
    /// Media workers, each on a core of its own with its own UDP socket [default: one per
    /// core].
    #[arg(long)]
    pub workers: Option<u16>,
    /// Participants of one meeting a partition (one media worker's share of it) carries at
    /// most [default: 500].
    #[arg(long)]
    pub partition_size: Option<u32>,
    /// The IP browsers send media to, when the UDP address is a wildcard.
    #[arg(long)]
    pub public_ip: Option<IpAddr>,
    /// Data directory (SQLite database, API key).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Dev mode: the web page gets tokens for typed names [default: on for loopback only].
    #[arg(long)]
    pub dev: Option<bool>,
    /// Also run the edge's caching proxy in front of this origin (http://host[:port]), e.g.
    /// for a site's assets next to the meetings.
    #[arg(long)]
    pub cdn_origin: Option<String>,
    /// Where the caching proxy listens [default: the HTTP address's IP, its port + 100].
    #[arg(long)]
    pub cdn_http: Option<SocketAddr>,
    /// Join a cluster: the NATS server (with JetStream) its nodes share.
    #[arg(long)]
    pub nats: Option<String>,
    /// This node's name in the cluster (letters, digits, '-' and '_') [default: local].
    #[arg(long)]
    pub node: Option<String>,
    /// This node's region, for routing clients to a node near them [default: default].
    #[arg(long)]
    pub region: Option<String>,
    /// Participants this node takes at most [default: 2000].
    #[arg(long)]
    pub capacity: Option<u32>,
    /// Carry media; false makes a control-only node [default: true].
    #[arg(long)]
    pub media: Option<bool>,
    /// The URL clients reach this node at [default: http://<the HTTP address>].
    #[arg(long)]
    pub public_url: Option<String>,
    /// UDP address of the first worker's relay to the other nodes of the cluster; worker i
    /// relays at its port + i [default: the UDP address's IP, any ports].
    #[arg(long)]
    pub relay: Option<SocketAddr>,
    /// Also serve HTTPS here (browsers off localhost need it for camera and microphone).
    #[arg(long)]
    pub https: Option<SocketAddr>,
    /// Certificate chain (PEM) for HTTPS [default: a self-signed development certificate];
    /// read again on SIGHUP.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// On SIGTERM: seconds to go on serving while saying it drains (`/healthz` 503
    /// `draining`, nobody new routed here), so that balancers and routes move away first
    /// [default: 0].
    #[arg(long)]
    pub drain_s: Option<u64>,
    /// Where this node is, LAT,LON in degrees: DNS sends clients to the nearest nodes.
    #[arg(long)]
    pub location: Option<Location>,
    /// Serve authoritative GeoDNS here (UDP and TCP) for `--dns-zone`: its apex names the
    /// open nodes nearest each client, least loaded first.
    #[arg(long)]
    pub dns: Option<SocketAddr>,
    /// The zone DNS answers for [default: myriad.localhost].
    #[arg(long)]
    pub dns_zone: Option<String>,
    /// A name server of the zone, NAME or NAME=IP (an IP makes an in-zone name answered);
    /// repeat for more [default: ns1.<zone>].
    #[arg(long)]
    pub dns_ns: Vec<NameServer>,
    /// TTL of the nodes' records, seconds [default: 20].
    #[arg(long)]
    pub dns_ttl: Option<u32>,
    /// Nodes named in one DNS answer at most [default: 2].
    #[arg(long)]
    pub dns_answers: Option<usize>,
    /// Identical DNS answers over UDP per client network (/24, /56) a second; beyond, most
    /// are dropped and every second one is sent truncated (the client retries over TCP).
    /// 0: no limit [default: 20].
    #[arg(long)]
    pub dns_rate_per_s: Option<u32>,
    /// MaxMind-format IP geolocation database (e.g. GeoLite2-City.mmdb) placing clients for
    /// DNS answers and routes.
    #[arg(long)]
    pub geoip: Option<PathBuf>,
    /// A network placed in a region, NETWORK/BITS=REGION (private and office networks);
    /// these come before the database. Repeat for more.
    #[arg(long)]
    pub geo_prefix: Vec<RegionPrefix>,
    /// A TURN (or STUN) server the clients' browsers may relay media through, as browsers
    /// take it (`turn:host:3478?transport=tcp`); repeat for more. Needs `--turn-secret`.
    #[arg(long)]
    pub turn: Vec<String>,
    /// The secret shared with the TURN servers (coturn's `static-auth-secret`): each
    /// participant gets credentials of its own from it.
    #[arg(long, env = "MYRIAD_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// How long a participant's TURN credentials last, seconds [default: 43200].
    #[arg(long)]
    pub turn_ttl_s: Option<u64>,
    /// A command run (by `sh -c`) with `announce` when the node becomes ready and `withdraw`
    /// when it stops being (draining, overloaded, cut off) and as it exits: e.g. to have BIRD
    /// announce or withdraw an anycast prefix.
    #[arg(long)]
    pub health_hook: Option<String>,
    /// Also take media over ICE-TCP (RFC 6544), at each worker's UDP port, for browsers
    /// that cannot use UDP [default: true].
    #[arg(long)]
    pub ice_tcp: Option<bool>,
    /// A proxy in front of this node (an edge, a load balancer), as an address or network
    /// (repeatable): believed about the client it forwards for in `X-Forwarded-For`, so that
    /// routes place that client, not the proxy.
    #[arg(long)]
    pub trusted_proxy: Vec<ipnet::IpNet>,
    /// Warm up ahead of scheduled meetings [default: true].
    #[arg(long)]
    pub prewarm: Option<bool>,
    /// How long before a scheduled meeting's first forecast joins this node readies its
    /// share of seats and its edges' content, seconds [default: 300].
    #[arg(long)]
    pub prewarm_lead_s: Option<u64>,
    /// How long after half the forecast people should have joined a meeting nobody came
    /// to is undone, seconds [default: 600].
    #[arg(long)]
    pub prewarm_grace_s: Option<u64>,
    /// The admin address of a `myriad edge` next to this node (http://host:port): scheduled
    /// meetings' pages, the web client and their content are fetched into it ahead of the
    /// start. Repeat for more.
    #[arg(long)]
    pub prewarm_edge: Vec<String>,
    /// The edges' admin token.
    #[arg(long, env = "MYRIAD_EDGE_TOKEN", hide_env_values = true)]
    pub prewarm_edge_token: Option<String>,
    /// The URL the edges serve this site at [default: the node's public URL].
    #[arg(long)]
    pub prewarm_site: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    workers: Option<u16>,
    partition_size: Option<u32>,
    public_ip: Option<IpAddr>,
    data: Option<PathBuf>,
    dev: Option<bool>,
    cdn_origin: Option<String>,
    cdn_http: Option<SocketAddr>,
    nats: Option<String>,
    node: Option<String>,
    region: Option<String>,
    capacity: Option<u32>,
    media: Option<bool>,
    public_url: Option<String>,
    relay: Option<SocketAddr>,
    https: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    drain_s: Option<u64>,
    location: Option<String>,
    dns: Option<SocketAddr>,
    dns_zone: Option<String>,
    #[serde(default)]
    dns_ns: Vec<String>,
    dns_ttl: Option<u32>,
    dns_answers: Option<usize>,
    dns_rate_per_s: Option<u32>,
    geoip: Option<PathBuf>,
    #[serde(default)]
    geo_prefix: Vec<String>,
    #[serde(default)]
    turn: Vec<String>,
    turn_secret: Option<String>,
    turn_ttl_s: Option<u64>,
    health_hook: Option<String>,
    ice_tcp: Option<bool>,
    #[serde(default)]
    trusted_proxy: Vec<String>,
    prewarm: Option<bool>,
    prewarm_lead_s: Option<u64>,
    prewarm_grace_s: Option<u64>,
    #[serde(default)]
    prewarm_edge: Vec<String>,
    prewarm_edge_token: Option<String>,
    prewarm_site: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub http: SocketAddr,
    pub udp: SocketAddr,
    pub workers: u16,
    pub partition_size: u32,
    /// The IP browsers send media to.
    pub media_ip: IpAddr,
    pub data: PathBuf,
    pub dev: bool,
    /// The caching proxy: its address and origin.
    pub cdn: Option<(SocketAddr, String)>,
    /// The cluster's NATS server, if this node is one of several.
    pub nats: Option<String>,
    pub node: String,
    pub region: String,
    pub capacity: u32,
    pub media: bool,
    /// How clients reach this node; filled in from the bound address when not given.
    pub public_url: Option<String>,
    /// Where the relay to other nodes listens (a cluster's media nodes).
    pub relay: SocketAddr,
    pub https: Option<SocketAddr>,
    /// Certificate and key files, if not a self-signed development certificate.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long it drains on SIGTERM.
    pub drain: std::time::Duration,
    pub location: Option<Location>,
    /// Where clients are: a geolocation database and placed networks.
    pub geoip: Option<PathBuf>,
    pub geo_prefixes: Vec<RegionPrefix>,
    pub dns: Option<DnsConfig>,
    pub turn: Option<Turn>,
    /// Whether media workers also listen for ICE-TCP.
    pub ice_tcp: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub health_hook: Option<String>,
    /// The warm-up ahead of scheduled meetings (its site: the public URL when not given);
    /// none when turned off.
    pub prewarm: Option<Prewarm>,
}

#[derive(Debug, Clone)]
pub struct Prewarm {
    pub warmup: WarmupConfig,
    /// Admin addresses of the `myriad edge`s next to this node.
    pub edges: Vec<String>,
    /// Their admin token.
    pub edge_token: Option<String>,
    /// The URL the edges serve this site at: content given as paths is fetched under it.
    pub site: Option<String>,
}

/// The GeoDNS server's settings.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub addr: SocketAddr,
    pub zone: Name,
    pub nameservers: Vec<NameServer>,
    pub ttl: u32,
    pub answers: usize,
    pub rrl: RrlConfig,
}

pub const DEFAULT_HTTP: &str = "127.0.0.1:8480";
pub const DEFAULT_DATA: &str = "myriad-data";

impl ServeConfig {
    pub fn load(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let http = args
            .http
            .or(file.http)
            .unwrap_or_else(|| DEFAULT_HTTP.parse().expect("valid default"));
        let udp = args.udp.or(file.udp).unwrap_or_else(|| {
            let port = if http.port() == 0 {
                0
            } else {
                http.port().wrapping_add(1)
            };
            SocketAddr::new(http.ip(), port)
        });
        let public_ip = args.public_ip.or(file.public_ip);
        let media_ip = match (udp.ip().is_unspecified(), public_ip) {
            (_, Some(ip)) => ip,
            (false, None) => udp.ip(),
            (true, None) => bail!("--udp {udp} listens on every address: say which one browsers reach with --public-ip"),
        };
        let dev = args
            .dev
            .or(file.dev)
            .unwrap_or_else(|| http.ip().is_loopback());
        let cdn = args.cdn_origin.or(file.cdn_origin).map(|origin| {
            let addr = args.cdn_http.or(file.cdn_http).unwrap_or_else(|| {
                let port = if http.port() == 0 {
                    0
                } else {
                    http.port().wrapping_add(100)
                };
                SocketAddr::new(http.ip(), port)
            });
            (addr, origin)
        });
        let node = args
            .node
            .or(file.node)
            .unwrap_or_else(|| "local".to_owned());
        if !valid_name(&node) {
            bail!("--node {node:?}: a node's name is 1-64 letters, digits, '-' or '_'");
        }
        let region = args
            .region
            .or(file.region)
            .unwrap_or_else(|| "default".to_owned());
        if !valid_name(&region) {
            bail!("--region {region:?}: a region's name is 1-64 letters, digits, '-' or '_'");
        }
        let location = match (args.location, file.location) {
            (Some(at), _) => Some(at),
            (None, Some(at)) => Some(at.parse().map_err(anyhow::Error::msg)?),
            (None, None) => None,
        };
        let dns = match args.dns.or(file.dns) {
            None => None,
            Some(addr) => Some(DnsConfig {
                addr,
                zone: fqdn(
                    &args
                        .dns_zone
                        .or(file.dns_zone)
                        .unwrap_or_else(|| "myriad.localhost".to_owned()),
                )
                .map_err(|e| anyhow::anyhow!("--dns-zone {e}"))?,
                nameservers: parse_all(args.dns_ns, &file.dns_ns, "dns_ns")?,
                ttl: args.dns_ttl.or(file.dns_ttl).unwrap_or(20),
                answers: args.dns_answers.or(file.dns_answers).unwrap_or(2),
                rrl: RrlConfig {
                    per_second: args
                        .dns_rate_per_s
                        .or(file.dns_rate_per_s)
                        .unwrap_or(RrlConfig::default().per_second),
                    ..RrlConfig::default()
                },
            }),
        };
        let turn_urls = if args.turn.is_empty() {
            file.turn
        } else {
            args.turn
        };
        let turn = match (turn_urls.is_empty(), args.turn_secret.or(file.turn_secret)) {
            (true, None) => None,
            (true, Some(_)) => {
                bail!("--turn-secret without --turn: say where the TURN servers are")
            }
            (false, None) => bail!("--turn needs --turn-secret (coturn's static-auth-secret)"),
            (false, Some(secret)) => {
                if let Some(bad) = turn_urls.iter().find(|u| {
                    !["turn:", "turns:", "stun:"]
                        .iter()
                        .any(|s| u.starts_with(s))
                }) {
                    bail!("--turn {bad:?}: a TURN server is turn:, turns: or stun:host[:port]");
                }
                Some(Turn {
                    urls: turn_urls,
                    secret,
                    ttl: std::time::Duration::from_secs(
                        args.turn_ttl_s.or(file.turn_ttl_s).unwrap_or(43_200),
                    ),
                })
            }
        };
        let defaults = WarmupConfig::default();
        let prewarm = Prewarm {
            warmup: WarmupConfig {
                lead_s: args
                    .prewarm_lead_s
                    .or(file.prewarm_lead_s)
                    .unwrap_or(defaults.lead_s),
                grace_s: args
                    .prewarm_grace_s
                    .or(file.prewarm_grace_s)
                    .unwrap_or(defaults.grace_s),
                ..defaults
            },
            edges: if args.prewarm_edge.is_empty() {
                file.prewarm_edge
            } else {
                args.prewarm_edge
            },
            edge_token: args.prewarm_edge_token.or(file.prewarm_edge_token),
            site: args.prewarm_site.or(file.prewarm_site),
        };
        if let Some(bad) = prewarm
            .edges
            .iter()
            .chain(&prewarm.site)
            .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            bail!("{bad:?}: an edge's admin address and the site are http:// or https:// URLs");
        }
        Ok(Self {
            ice_tcp: args.ice_tcp.or(file.ice_tcp).unwrap_or(true),
            trusted_proxies: match args.trusted_proxy.is_empty() {
                false => args.trusted_proxy,
                true => file
                    .trusted_proxy
                    .iter()
                    .map(|v| {
                        v.parse()
                            .map_err(|e| anyhow::anyhow!("trusted_proxy {v:?}: {e}"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            },
            prewarm: args
                .prewarm
                .or(file.prewarm)
                .unwrap_or(true)
                .then_some(prewarm),
            health_hook: args.health_hook.or(file.health_hook),
            turn,
            location,
            geoip: args.geoip.or(file.geoip),
            geo_prefixes: parse_all(args.geo_prefix, &file.geo_prefix, "geo_prefix")?,
            dns,
            nats: args.nats.or(file.nats),
            node,
            region,
            capacity: args.capacity.or(file.capacity).unwrap_or(2000),
            media: args.media.or(file.media).unwrap_or(true),
            public_url: args.public_url.or(file.public_url),
            relay: args
                .relay
                .or(file.relay)
                .unwrap_or_else(|| SocketAddr::new(udp.ip(), 0)),
            https: args.https.or(file.https),
            drain: std::time::Duration::from_secs(args.drain_s.or(file.drain_s).unwrap_or(0)),
            tls: match (
                args.tls_cert.or(file.tls_cert),
                args.tls_key.or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => bail!("tls_cert and tls_key go together"),
            },
            http,
            udp,
            workers: match args.workers.or(file.workers) {
                Some(0) => bail!("--workers 0: a node with media needs a worker"),
                Some(n) => n,
                None => std::thread::available_parallelism()
                    .map_or(1, |n| u16::try_from(n.get()).unwrap_or(u16::MAX)),
            },
            partition_size: match args.partition_size.or(file.partition_size) {
                Some(0) => bail!("--partition-size 0: a partition carries someone"),
                Some(n) => n,
                None => 500,
            },
            media_ip,
            data: args
                .data
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
            dev,
            cdn,
        })
    }
}

/// A repeated flag's values, or else the file's (parsed as the flag would be).
fn parse_all<T: std::str::FromStr<Err = String>>(
    flags: Vec<T>,
    file: &[String],
    key: &str,
) -> anyhow::Result<Vec<T>> {
    if !flags.is_empty() {
        return Ok(flags);
    }
    file.iter()
        .map(|v| v.parse().map_err(|e| anyhow::anyhow!("{key}: {e}")))
        .collect()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_loopback_dev_server() {
        let c = ServeConfig::load(ServeArgs::default()).unwrap();
        assert_eq!(c.http.to_string(), DEFAULT_HTTP);
        assert_eq!(c.udp.to_string(), "127.0.0.1:8481");
        assert!(c.dev);
    }

    #[test]
    fn a_wildcard_udp_address_needs_a_public_ip() {
        let args = ServeArgs {
            udp: Some("0.0.0.0:9000".parse().unwrap()),
            ..ServeArgs::default()
        };
        assert!(ServeConfig::load(args).is_err());
    }

    #[test]
    fn flags_override_the_file_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "http = \"127.0.0.1:9000\"\ndev = false\n").unwrap();
        let c = ServeConfig::load(ServeArgs {
            config: Some(path.clone()),
            dev: Some(true),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(c.http.port(), 9000);
        assert!(c.dev);
        std::fs::write(&path, "htp = 1\n").unwrap();
        assert!(ServeConfig::load(ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .is_err());
    }
}

#[cfg(test)]
mod edge_network_tests {
    use super::*;

    #[test]
    fn turn_servers_need_their_secret_and_browser_urls() {
        let with = |turn: &[&str], secret: Option<&str>| {
            ServeConfig::load(ServeArgs {
                turn: turn.iter().map(|s| (*s).to_owned()).collect(),
                turn_secret: secret.map(str::to_owned),
                ..ServeArgs::default()
            })
        };
        let url = "turn:turn.example.org:3478?transport=tcp";
        assert!(with(&[url], None).is_err(), "no secret");
        assert!(with(&[], Some("s")).is_err(), "a secret for nobody");
        assert!(
            with(&["turn.example.org:3478"], Some("s")).is_err(),
            "not a URL"
        );
        let ok = with(&[url, "stun:stun.example.org"], Some("s")).unwrap();
        let turn = ok.turn.expect("TURN");
        assert_eq!(turn.urls.len(), 2);
        assert_eq!(turn.ttl.as_secs(), 43_200);
        assert!(with(&[], None).unwrap().turn.is_none());
    }

    #[test]
    fn dns_and_places_are_read_from_flags() {
        let c = ServeConfig::load(ServeArgs {
            dns: Some("127.0.0.1:5353".parse().unwrap()),
            dns_zone: Some("Meet.Example.org".into()),
            geo_prefix: vec!["10.0.0.0/8=eu".parse().unwrap()],
            location: Some("50.1,8.7".parse().unwrap()),
            ..ServeArgs::default()
        })
        .unwrap();
        let dns = c.dns.expect("DNS");
        assert_eq!(dns.zone.to_string(), "Meet.Example.org.");
        assert_eq!((dns.ttl, dns.answers), (20, 2));
        assert_eq!(c.geo_prefixes.len(), 1);
        assert!(c.location.is_some());
        let bad = ServeConfig::load(ServeArgs {
            dns: Some("127.0.0.1:5353".parse().unwrap()),
            dns_zone: Some(".".into()),
            ..ServeArgs::default()
        });
        assert!(bad.is_err(), "the root is no zone of ours");
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::*;

    #[test]
    fn node_and_region_names_are_checked() {
        let bad = ServeConfig::load(ServeArgs {
            node: Some("n 1".into()),
            ..ServeArgs::default()
        });
        assert!(bad.is_err());
        let ok = ServeConfig::load(ServeArgs {
            nats: Some("nats://127.0.0.1:4222".into()),
            node: Some("n1".into()),
            region: Some("eu-west".into()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!((ok.node.as_str(), ok.region.as_str()), ("n1", "eu-west"));
        assert!(ok.media);
    }
}
