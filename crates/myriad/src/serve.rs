//! `myriad serve`: control, one node with its media workers, and the web client in one
//! process, on the in-process bus alone or on a cluster's NATS.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use myriad_auth::ApiKey;
use myriad_bus::{Bus, InProcessBus, NatsBus};
use myriad_cdn::tls::{self, CertFiles, Certificates};
use myriad_cdn::{self as cdn, Cdn, CdnConfig, SiteConfig};
use myriad_control::{
    generate_api_key, now_unix_s, Control, ControlConfig, Directory, PlannerConfig,
};
use myriad_geo::Geo;
use myriad_node::{Node, NodeConfig, TlsListener};

use myriad_sfu::relay::relay_key;
use myriad_sfu::{Media, MediaConfig};
use myriad_store::Store;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::ServeConfig;

pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let (store, api_key) = open_data(&config.data)?;
    // In a cluster, media workers relay to other nodes' workers: a socket of their own,
    // datagrams sealed with a key every node of the cluster derives from the shared secret.
    let relay = config
        .nats
        .is_some()
        .then(|| (config.relay, relay_key(api_key.secret().as_bytes())));
    let media = match config.media {
        true => Some(
            Media::start(MediaConfig {
                node: config.node.clone(),
                bind: config.udp,
                public_ip: Some(config.media_ip),
                workers: config.workers,
                relay,
                ice_tcp: config.ice_tcp,
            })
            .await
            .with_context(|| {
                format!(
                    "binding {} media workers' UDP from {} (and their relays')",
                    config.workers, config.udp
                )
            })?,
        ),
        false => None,
    };
    let media_public: Vec<SocketAddr> = media.as_ref().map_or_else(Vec::new, |m| {
        m.workers()
            .iter()
            .map(|w| SocketAddr::new(config.media_ip, w.local_addr().port()))
            .collect()
    });
    // One node alone: the bus and the directory are in this process. In a cluster: NATS,
    // and the directory in its KV store.
    let (bus, directory): (Arc<dyn Bus>, Directory) = match &config.nats {
        Some(url) => {
            let bus = NatsBus::connect(url, &format!("myriad serve {}", config.node))
                .await
                .with_context(|| format!("NATS at {url}"))?;
            let directory = Directory::shared(&bus)
                .await
                .with_context(|| format!("the meeting directory on NATS at {url}"))?;
            (Arc::new(bus), directory)
        }
        None => (Arc::new(InProcessBus::new()), Directory::Local(store)),
    };
    let control = Control::start(
        directory,
        api_key.clone(),
        bus,
        ControlConfig {
            dev_mode: config.dev,
            node: config.node.clone(),
            partitions: PlannerConfig::with_capacity(config.partition_size),
        },
    )
    .await
    .context("hearing the cluster's registry")?;
    let geo = Arc::new(
        Geo::new(config.geoip.as_deref(), config.geo_prefixes.clone())
            .context("placing clients")?,
    );
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("binding HTTP {}", config.http))?;
    let http = listener.local_addr()?;
    let https = match config.https {
        Some(addr) => Some(https_listener(addr, &config).await?),
        None => None,
    };
    let url = config.public_url.clone().unwrap_or_else(|| match &https {
        Some((listener, _)) => format!("https://{}", listener_addr(listener)),
        None => format!("http://{http}"),
    });
    let node = Node::start(
        control,
        media,
        NodeConfig {
            name: config.node.clone(),
            region: config.region.clone(),
            url: url.clone(),
            capacity: config.capacity,
            relay_ip: config.nats.is_some().then_some(config.media_ip),
            addrs: vec![config.media_ip],
            location: config.location,
            geo: Arc::clone(&geo),
            turn: config.turn.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
        },
    )
    .await
    .context("joining the cluster's registry")?;
    tracing::info!(%http, media = ?media_public, dev = config.dev, data = %config.data.display(), node = %config.node, region = %config.region, cluster = config.nats.is_some(), "myriad serve ready");
    match &https {
        Some((listener, _)) => println!(
            "myriad is running at http://{http}/ and https://{}/",
            listener_addr(listener)
        ),
        None => println!("myriad is running at http://{http}/"),
    }
    println!(
        "  API key: {}  (`myriad apikey --data {}` prints key:secret)",
        api_key.key,
        config.data.display()
    );
    if config.dev {
        println!("  dev mode: the web page creates meetings and tokens for anyone who reaches it");
    }
    crate::health_checks::start(Arc::clone(&node.control))?;
    if let Some(settings) = &config.dns {
        let running = crate::dns::start(settings, Arc::clone(&node.control), geo).await?;
        println!(
            "  GeoDNS for {} at {} (UDP and TCP)",
            settings.zone, running.addr
        );
        crate::dns::watch(running);
    }
    if let Some((addr, origin)) = &config.cdn {
        let cdn = Cdn::new(CdnConfig::new(vec![SiteConfig {
            hosts: Vec::new(),
            upstream: origin.clone(),
            signing: None,
            waf: None,
            digests: Default::default(),
        }]))
        .context("caching proxy")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the cache's HTTP {addr}"))?;
        println!(
            "myriad cache is running at http://{} (origin {origin})",
            listener.local_addr()?
        );
        // Stops with the process (no drain of its own).
        let (_, drain) = cdn::drain();
        tokio::spawn(async move {
            if let Err(e) = cdn::serve(listener, cdn, None, drain).await {
                tracing::error!("caching proxy stopped: {e}");
            }
        });
    }
    if let Some(hook) = &config.health_hook {
        crate::health_hook::watch(hook.clone(), Arc::clone(&node));
    }
    if let Some(prewarm) = &config.prewarm {
        crate::prewarm::start(prewarm.clone(), &url, Arc::clone(&node.control))?;
    }
    let app = myriad_node::router(Arc::clone(&node));
    if let Some((listener, certificates)) = https {
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = myriad_node::serve_https(listener, app).await {
                tracing::error!("HTTPS server stopped: {e}");
            }
        });
        tokio::spawn(reload_on_hangup(config.tls.clone(), certificates));
    }
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let serving = myriad_node::serve(listener, app);
    tokio::pin!(serving);
    tokio::select! {
        res = &mut serving => return res.context("HTTP server failed"),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted, shutting down");
            leave(&node, &config).await;
            return Ok(());
        }
        _ = terminate.recv() => {}
    }
    // SIGTERM: say so and go on serving for the drain time, so that balancers and routes
    // move away before the node does; then leave the registry.
    node.drain();
    tracing::info!(
        drain_s = config.drain.as_secs(),
        "SIGTERM: draining, then stopping"
    );
    let res = tokio::select! {
        res = &mut serving => res.context("HTTP server failed"),
        () = tokio::time::sleep(config.drain) => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    leave(&node, &config).await;
    res
}

/// Leaves the registry, and the routes the health hook announced.
async fn leave(node: &Node, config: &ServeConfig) {
    node.withdraw().await;
    if let Some(hook) = &config.health_hook {
        crate::health_hook::run(hook, crate::health_hook::Verb::Withdraw).await;
    }
}

/// The HTTPS listener: the certificate files, or a self-signed development certificate for
/// the names a browser on this machine uses.
async fn https_listener(
    addr: SocketAddr,
    config: &ServeConfig,
) -> anyhow::Result<(TlsListener, Certificates)> {
    let files = cert_files(&config.tls);
    let dev_names = vec!["localhost".to_owned(), addr.ip().to_string()];
    let tls = tls::server(&files, dev_names).context("HTTPS certificate")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding HTTPS {addr}"))?;
    Ok((TlsListener::new(listener, tls.tcp)?, tls.certificates))
}

fn cert_files(tls: &Option<(std::path::PathBuf, std::path::PathBuf)>) -> Vec<CertFiles> {
    tls.iter()
        .map(|(cert, key)| CertFiles {
            names: Vec::new(),
            cert: cert.clone(),
            key: key.clone(),
        })
        .collect()
}

fn listener_addr(listener: &TlsListener) -> SocketAddr {
    use axum::serve::Listener;
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// On SIGHUP: reads the certificate files again; new connections get what they hold. Files
/// that do not load leave the running certificate in place.
async fn reload_on_hangup(
    files: Option<(std::path::PathBuf, std::path::PathBuf)>,
    certificates: Certificates,
) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("no certificate reloading on SIGHUP: {e}");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match certificates.load(&cert_files(&files)) {
            Ok(loaded) => {
                certificates.install(loaded);
                tracing::info!("certificates reloaded");
            }
            Err(e) => tracing::error!("certificates not reloaded, the running ones stay: {e}"),
        }
    }
}

/// Opens (creating if needed) the data directory and its database, and the API key.
pub fn open_data(dir: &std::path::Path) -> anyhow::Result<(Arc<Store>, ApiKey)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    let store = Store::open(&dir.join("myriad.db")).context("opening the database")?;
    let (key, secret) = store.ensure_api_key(now_unix_s(), generate_api_key)?;
    Ok((Arc::new(store), ApiKey::new(key, secret)))
}
