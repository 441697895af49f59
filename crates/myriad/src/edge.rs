//! `myriad edge`: a standalone caching reverse proxy in front of one origin (flags), or of
//! several sites chosen by host name (`--config`), optionally through a parent edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use http::HeaderValue;
use myriad_bus::NatsBus;
use myriad_cache::signed::{MessageSigner, UrlSigner};
use myriad_cdn::admin::{self, PurgeBus};
use myriad_cdn::limits::{KeyRate, LimitsConfig, PathRate};
use myriad_cdn::tls::{self, CertFiles, Certificates};
use myriad_cdn::{self as cdn, Cdn, CdnConfig, DiskConfig, Signing, SiteConfig, TlsListener};
use myriad_waf::WafConfig;
use serde::Deserialize;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Args, Debug, Clone)]
pub struct EdgeArgs {
    /// Address to listen on for HTTP (port 0: any free port; the startup line tells which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The origin server, http://host[:port] (the site for every host name).
    #[arg(long, required_unless_present = "config")]
    pub origin: Option<String>,
    /// Sites by host name (TOML `[[site]]` tables: hosts, origin, parent, TLS files, signed
    /// prefixes, WAF); a site from the flags, if any, serves the other host names.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A parent edge (shield) to fetch through instead of the origin directly.
    #[arg(long)]
    pub parent: Option<String>,
    /// Address for HTTPS (HTTP/2 or HTTP/1.1 by ALPN).
    #[arg(long)]
    pub https: Option<SocketAddr>,
    /// HTTP/3 (QUIC) on the HTTPS port over UDP, announced by `Alt-Svc`.
    #[arg(long, requires = "https")]
    pub http3: bool,
    /// QUIC handshakes under way above which new clients must first prove their address
    /// (Retry); 0 asks it of every client.
    #[arg(long, default_value_t = 64)]
    pub http3_retry_above: usize,
    /// Certificate chain and private key (PEM) for HTTPS; without them a self-signed
    /// development certificate for localhost is made at start.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Secret for signed URLs (`myriad sign-url` makes them).
    #[arg(long, env = "MYRIAD_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
    /// A path prefix whose requests need a signed URL (repeatable; needs --signing-key).
    #[arg(long, requires = "signing_key")]
    pub signed_prefix: Vec<String>,
    /// Web application firewall: libmodsecurity with the OWASP Core Rule Set.
    #[arg(long)]
    pub waf: bool,
    /// CRS paranoia level (1–4).
    #[arg(long, default_value_t = 1)]
    pub waf_paranoia: u8,
    /// A CRS rule id to remove (repeatable), for a site's false positives.
    #[arg(long)]
    pub waf_exclude: Vec<u32>,
    /// Log what the rules flag without blocking it.
    #[arg(long)]
    pub waf_detect_only: bool,
    /// Admin port: `/metrics` (Prometheus), `POST /purge` and `POST /prefetch`. Keep it
    /// private.
    #[arg(long, default_value = "127.0.0.1:9480")]
    pub admin: SocketAddr,
    /// A token purges and prefetches must bring (`Authorization: Bearer …`).
    #[arg(long, env = "MYRIAD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// NATS server to carry purges to every edge (`nats://host:port`).
    #[arg(long)]
    pub nats: Option<String>,
    /// Key the edges share to sign purges on the bus; they ignore purges not signed with it.
    #[arg(
        long,
        env = "MYRIAD_PURGE_KEY",
        hide_env_values = true,
        requires = "nats"
    )]
    pub purge_key: Option<String>,
    /// This edge's name in `Cache-Status` and `Via`.
    #[arg(long, default_value = "myriad")]
    pub name: String,
    /// Memory cache size.
    #[arg(long, default_value_t = 256)]
    pub cache_mem_mb: u64,
    /// Disk cache size; 0 keeps everything in memory.
    #[arg(long, default_value_t = 0)]
    pub cache_disk_mb: u64,
    /// Where the disk cache keeps its files (read back at start).
    #[arg(long, default_value = "./myriad-cache")]
    pub cache_dir: PathBuf,
    /// Appends a JSON line per request to this file (opened again on SIGHUP, for rotation).
    #[arg(long)]
    pub access_log: Option<PathBuf>,
    /// Objects larger than this pass through without being stored.
    #[arg(long, default_value_t = 16)]
    pub max_object_mb: u64,
    /// Memory that fetches in flight may hold for storing, all together; a fetch that would
    /// need more passes through without being stored.
    #[arg(long, default_value_t = 256)]
    pub fill_mem_mb: u64,
    /// Requests per second per client (an IPv4 address or IPv6 /64; 429 above it), and the burst.
    #[arg(long, default_value_t = 1000.0)]
    pub rate_per_s: f64,
    #[arg(long, default_value_t = 2000.0)]
    pub burst: f64,
    /// A tighter rate per client address under a path prefix, PREFIX=RATE[:BURST]
    /// (repeatable; the longest prefix applies).
    #[arg(long, value_parser = parse_path_rate)]
    pub path_rate: Vec<PathRate>,
    /// Limit by the value of this request header (an API key, say), at --key-rate.
    #[arg(long, requires = "key_rate")]
    pub key_header: Option<http::HeaderName>,
    /// RATE[:BURST] per value of --key-header.
    #[arg(long, requires = "key_header", value_parser = parse_rate)]
    pub key_rate: Option<(f64, f64)>,
    /// Peers of this deployment (child edges, load balancers), as addresses or networks
    /// (repeatable): not limited per address, and believed about the client they forward
    /// for in `X-Forwarded-For`, so that limits count real clients.
    #[arg(long)]
    pub trusted_peer: Vec<ipnet::IpNet>,
    /// Load balancers (addresses or networks, repeatable) that open each connection with a
    /// PROXY protocol header (v1 or v2) naming the client: that client is the peer for
    /// limits, logs and the WAF. A connection from one that does not is closed.
    #[arg(long)]
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// A key the deployment's edges share: this edge signs the `X-Forwarded-For` it sends
    /// on with it, and believes requests signed with it about their client (as if from a
    /// --trusted-peer, the connection limit aside).
    #[arg(long, env = "MYRIAD_TIER_KEY", hide_env_values = true)]
    pub tier_key: Option<String>,
    /// Open connections per client (an IPv4 address or IPv6 /64; 429 above it).
    #[arg(long, default_value_t = 512)]
    pub max_conns_per_ip: usize,
    /// Largest request body (413 above it).
    #[arg(long, default_value_t = 64)]
    pub max_body_mb: u64,
    /// A request head must arrive within this many seconds; a body may stall this long (408).
    #[arg(long, default_value_t = 10)]
    pub header_timeout_s: u64,
    #[arg(long, default_value_t = 30)]
    pub body_timeout_s: u64,
    /// An upstream (origin or parent) must send the response head, and each part of a body,
    /// within this many seconds (504, or the response cut off).
    #[arg(long, default_value_t = 30)]
    pub upstream_timeout_s: u64,
    /// A client that takes no response data for this many seconds is disconnected.
    #[arg(long, default_value_t = 60)]
    pub send_timeout_s: u64,
    /// A connection where no bytes moved either way for this many seconds is closed, a
    /// WebSocket tunnel too (an idle HTTP/1.1 connection is closed sooner, when its next head
    /// is late).
    #[arg(long, default_value_t = 75)]
    pub idle_timeout_s: u64,
    /// On SIGTERM or SIGINT: how long connections may take to finish what they are answering
    /// before the edge exits.
    #[arg(long, default_value_t = 10)]
    pub drain_s: u64,
}

/// `--config`: the sites of one edge.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeFile {
    #[serde(default)]
    site: Vec<SiteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    hosts: Vec<String>,
    origin: String,
    parent: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    signing_key: Option<String>,
    #[serde(default)]
    signed_prefixes: Vec<String>,
    #[serde(default)]
    waf: bool,
    waf_paranoia: Option<u8>,
    #[serde(default)]
    waf_exclude: Vec<u32>,
    #[serde(default)]
    waf_detect_only: bool,
    /// Path → `Content-Digest` value (`sha-256=:…:`) the body must match.
    #[serde(default)]
    digests: std::collections::HashMap<String, String>,
}

fn waf(on: bool, paranoia: u8, exclude: &[u32], detect_only: bool) -> Option<WafConfig> {
    on.then(|| WafConfig {
        paranoia,
        exclude: exclude.to_vec(),
        blocking: !detect_only,
        ..WafConfig::default()
    })
}

fn signing(key: Option<&str>, prefixes: &[String]) -> Option<Signing> {
    key.map(|k| Signing {
        signer: Arc::new(UrlSigner::new(k.as_bytes())),
        prefixes: prefixes.to_vec(),
    })
}

/// The sites and certificate files that `--config` and the flags describe.
fn configuration(args: &EdgeArgs) -> anyhow::Result<(Vec<SiteConfig>, Vec<CertFiles>)> {
    let file: EdgeFile = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => EdgeFile::default(),
    };
    let mut sites = Vec::new();
    let mut certs = Vec::new();
    for site in file.site {
        anyhow::ensure!(!site.hosts.is_empty(), "a [[site]] needs hosts");
        sites.push(SiteConfig {
            hosts: site.hosts.clone(),
            upstream: site.parent.clone().unwrap_or_else(|| site.origin.clone()),
            signing: signing(site.signing_key.as_deref(), &site.signed_prefixes),
            waf: waf(
                site.waf,
                site.waf_paranoia.unwrap_or(1),
                &site.waf_exclude,
                site.waf_detect_only,
            ),
            digests: site.digests.clone(),
        });
        match (site.tls_cert, site.tls_key) {
            (Some(cert), Some(key)) => certs.push(CertFiles {
                names: site.hosts,
                cert,
                key,
            }),
            (None, None) => {}
            _ => anyhow::bail!("site {:?}: tls_cert and tls_key go together", site.hosts),
        }
    }
    if let Some(origin) = &args.origin {
        sites.push(SiteConfig {
            hosts: Vec::new(),
            upstream: args.parent.clone().unwrap_or_else(|| origin.clone()),
            signing: signing(args.signing_key.as_deref(), &args.signed_prefix),
            waf: waf(
                args.waf,
                args.waf_paranoia,
                &args.waf_exclude,
                args.waf_detect_only,
            ),
            digests: Default::default(),
        });
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        certs.push(CertFiles {
            names: Vec::new(),
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    Ok((sites, certs))
}

/// On SIGHUP: reads `--config` and the certificate files again and serves what they say from
/// then on, with the cache kept, and opens the access log again. A configuration that does
/// not load changes nothing. (The flags, limits and cache sizes stay as started.)
async fn reload_on_hangup(args: EdgeArgs, cdn: Arc<Cdn>, certificates: Option<Certificates>) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("no reloading on SIGHUP: {e}");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        cdn.reopen_access_log();
        let (args, cdn, certificates) = (args.clone(), cdn.clone(), certificates.clone());
        // Files are read and WAF rules parsed (a second or so): off the async threads, so
        // requests keep being answered meanwhile.
        let reloaded = tokio::task::spawn_blocking(move || {
            let (sites, certs) = configuration(&args)?;
            let loaded = certificates.as_ref().map(|c| c.load(&certs)).transpose()?;
            cdn.replace_sites(&sites)?;
            if let (Some(c), Some(loaded)) = (&certificates, loaded) {
                c.install(loaded);
            }
            anyhow::Ok(sites.len())
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
        match reloaded {
            Ok(sites) => tracing::info!(sites, "configuration reloaded"),
            Err(e) => tracing::error!("configuration not reloaded, the running one stays: {e:#}"),
        }
    }
}

pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    let (sites, certs) = configuration(&args)?;
    let site_count = sites.len();
    let mut config = CdnConfig::new(sites);
    config.name = args.name.clone();
    config.memory_bytes = args.cache_mem_mb << 20;
    config.max_object_bytes = args.max_object_mb << 20;
    config.fill_memory_bytes = args.fill_mem_mb << 20;
    config.upstream_timeout = Duration::from_secs(args.upstream_timeout_s);
    config.access_log = args.access_log.clone();
    if args.cache_disk_mb > 0 {
        config.disk = Some(DiskConfig {
            dir: args.cache_dir.clone(),
            capacity_bytes: args.cache_disk_mb << 20,
        });
    }
    config.limits = LimitsConfig {
        rate_per_s: args.rate_per_s,
        burst: args.burst,
        max_connections_per_ip: args.max_conns_per_ip,
        max_body_bytes: args.max_body_mb << 20,
        header_timeout: Duration::from_secs(args.header_timeout_s),
        body_timeout: Duration::from_secs(args.body_timeout_s),
        send_timeout: Duration::from_secs(args.send_timeout_s),
        idle_timeout: Duration::from_secs(args.idle_timeout_s),
        path_rates: args.path_rate.clone(),
        trusted: args.trusted_peer.clone(),
        proxy_protocol: args.proxy_protocol_from.clone(),
        tier_key: args
            .tier_key
            .as_deref()
            .map(myriad_cdn::trust::TierKey::new),
        key_rate: args.key_header.clone().zip(args.key_rate).map(
            |(header, (rate_per_s, burst))| KeyRate {
                header,
                rate_per_s,
                burst,
            },
        ),
        ..LimitsConfig::default()
    };
    let cdn = Cdn::new(config).context("edge configuration")?;
    let cdn_admin = cdn.clone();
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("bind {}", args.http))?;
    let local = listener.local_addr()?;
    let purge_signer = args
        .purge_key
        .as_ref()
        .map(|k| Arc::new(MessageSigner::new(k.as_bytes())));
    let bus = match &args.nats {
        Some(url) => {
            let nats = NatsBus::connect(url, &format!("myriad edge {}", args.name))
                .await
                .map_err(|e| anyhow::anyhow!("NATS at {url}: {e}"))?;
            Some(
                PurgeBus::start(Arc::new(nats), cdn.clone(), purge_signer)
                    .await
                    .map_err(|e| anyhow::anyhow!("purges on NATS at {url}: {e}"))?,
            )
        }
        None => None,
    };
    let admin = tokio::net::TcpListener::bind(args.admin)
        .await
        .with_context(|| format!("bind admin {}", args.admin))?;
    let admin_local = admin.local_addr()?;
    let admin_token = args.admin_token.clone();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, admin::router(cdn_admin, bus, admin_token)).await {
            tracing::error!("admin server stopped: {e}");
        }
    });
    let (switch, drain) = cdn::drain();
    let mut https_line = String::new();
    let mut certificates = None;
    if let Some(addr) = args.https {
        let tls = tls::server(&certs, vec!["localhost".into(), addr.ip().to_string()])?;
        let tls_listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind {addr}"))?;
        let https_local = tls_listener.local_addr()?;
        https_line = format!(", https://{https_local}");
        let mut alt_svc = None;
        if args.http3 {
            // Same port as HTTPS, over UDP: what Alt-Svc tells clients to try.
            let endpoint = cdn::h3::endpoint(https_local, tls.quic)?;
            alt_svc = Some(HeaderValue::from_str(&format!(
                "h3=\":{}\"; ma=86400",
                https_local.port()
            ))?);
            tracing::info!("HTTP/3 on udp/{https_local}");
            let retry_above = args.http3_retry_above;
            tokio::spawn(cdn::h3::serve(
                endpoint,
                cdn.clone(),
                retry_above,
                drain.clone(),
            ));
        }
        certificates = Some(tls.certificates);
        let listener = TlsListener {
            acceptor: tls.tcp,
            alt_svc,
        };
        let (cdn, drain) = (cdn.clone(), drain.clone());
        tokio::spawn(async move {
            if let Err(e) = cdn::serve(tls_listener, cdn, Some(listener), drain).await {
                tracing::error!("HTTPS listener stopped: {e}");
            }
        });
    }
    tracing::info!(origin = ?args.origin, parent = ?args.parent, sites = site_count, "caching proxy ready");
    tokio::spawn(reload_on_hangup(args.clone(), cdn.clone(), certificates));
    // Tests and scripts read this line for the addresses.
    println!("myriad edge is running at http://{local} (admin http://{admin_local}{https_line})");
    tokio::spawn(async move {
        if let Err(e) = cdn::serve(listener, cdn, None, drain).await {
            tracing::error!("HTTP listener stopped: {e}");
        }
    });
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!(
        limit_s = args.drain_s,
        "stopping: answering what is under way"
    );
    if switch.drain(Duration::from_secs(args.drain_s)).await {
        tracing::info!("stopped");
    } else {
        tracing::warn!(
            "stopped with connections still open after {} s",
            args.drain_s
        );
    }
    Ok(())
}

/// RATE[:BURST] (the burst defaults to twice the rate).
fn parse_rate(s: &str) -> Result<(f64, f64), String> {
    let (rate, burst) = match s.split_once(':') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let num = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n > 0.0)
            .ok_or_else(|| format!("{v:?} is not a positive number"))
    };
    let rate = num(rate)?;
    Ok((rate, burst.map(num).transpose()?.unwrap_or(rate * 2.0)))
}

/// PREFIX=RATE[:BURST]
fn parse_path_rate(s: &str) -> Result<PathRate, String> {
    let (prefix, rate) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected PREFIX=RATE[:BURST]"))?;
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?}: a path prefix starts with /"));
    }
    let (rate_per_s, burst) = parse_rate(rate)?;
    Ok(PathRate {
        prefix: prefix.to_owned(),
        rate_per_s,
        burst,
    })
}

#[derive(Args, Debug)]
pub struct SignUrlArgs {
    /// The secret the edges verify with.
    #[arg(long, env = "MYRIAD_SIGNING_KEY", hide_env_values = true)]
    pub key: String,
    /// Path and query to sign, e.g. /private/video.mp4
    pub path: String,
    /// Valid for this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_s: u64,
    /// Only for this client address.
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
}

/// Prints a signed path for `--signed-prefix` content.
pub fn sign_url(args: SignUrlArgs) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let signer = UrlSigner::new(args.key.as_bytes());
    println!(
        "{}",
        signer.sign(&args.path, now.as_secs() + args.ttl_s, args.ip)
    );
    Ok(())
}
