//! What an edge is told to be: its sites (hosts, next hop, signing, WAF, pinned digests),
//! tiers and limits; and the sites made ready from it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::uri::PathAndQuery;
use myriad_cache::signed::{SignError, UrlSigner};
use myriad_cache::Policy;

use super::limits::LimitsConfig;
use super::upstream::{Upstream, UpstreamError};
use myriad_waf::{Waf, WafConfig, WafError};

#[derive(Debug, Clone)]
pub struct CdnConfig {
    /// This cache's name in `Cache-Status` and `Via`.
    pub name: String,
    /// The sites served, matched by host name in order.
    pub sites: Vec<SiteConfig>,
    pub memory_bytes: u64,
    /// Larger objects pass through without being stored.
    pub max_object_bytes: u64,
    /// What all fetches in flight may hold of bodies they mean to store.
    pub fill_memory_bytes: u64,
    /// For the response head, and between body chunks.
    pub upstream_timeout: Duration,
    pub policy: Policy,
    pub limits: LimitsConfig,
    pub disk: Option<DiskConfig>,
    /// Where to write a line per request (`access_log.rs`); none by default.
    pub access_log: Option<PathBuf>,
}

/// One site: the host names it answers for, where it fetches from, its own protections.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Host names (any port); empty: every host.
    pub hosts: Vec<String>,
    /// The next hop: the origin, or a parent edge (shield).
    pub upstream: String,
    /// Paths that need a signed URL.
    pub signing: Option<Signing>,
    pub waf: Option<WafConfig>,
    /// Known digests (`Content-Digest` syntax) of objects by path: their bodies must match.
    pub digests: HashMap<String, String>,
}

/// A site, running.
pub(crate) struct Site {
    pub(crate) hosts: Vec<String>,
    pub(crate) upstream: Upstream,
    pub(crate) signing: Option<Signing>,
    pub(crate) waf: Option<Waf>,
    pub(crate) digests: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct DiskConfig {
    pub dir: PathBuf,
    pub capacity_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("cache directory {0}: {1}")]
    Disk(String, std::io::Error),
    #[error("access log {0}: {1}")]
    AccessLog(String, std::io::Error),
    #[error(transparent)]
    Waf(#[from] WafError),
}

#[derive(Clone)]
pub struct Signing {
    pub signer: Arc<UrlSigner>,
    /// Path prefixes that need a signature.
    pub prefixes: Vec<String>,
}

impl Signing {
    pub(crate) fn check(
        &self,
        path: &PathAndQuery,
        client: IpAddr,
        now: SystemTime,
    ) -> Result<PathAndQuery, SignError> {
        let now_unix = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let stripped = self.signer.verify(path.as_str(), client, now_unix)?;
        stripped.parse().map_err(|_| SignError::Malformed)
    }
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

impl CdnConfig {
    pub fn new(sites: Vec<SiteConfig>) -> Self {
        Self {
            name: "myriad".into(),
            sites,
            memory_bytes: 256 << 20,
            max_object_bytes: 16 << 20,
            fill_memory_bytes: 256 << 20,
            upstream_timeout: Duration::from_secs(30),
            policy: Policy::default(),
            limits: LimitsConfig::default(),
            disk: None,
            access_log: None,
        }
    }
}

/// Sites ready to serve: upstream pools made, WAF rules loaded.
pub(crate) fn build_sites(
    sites: &[SiteConfig],
    edge_name: &str,
    tier_key: &Option<crate::trust::TierKey>,
) -> Result<Vec<Arc<Site>>, CdnError> {
    sites
        .iter()
        .map(|site| {
            Ok(Arc::new(Site {
                hosts: site.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
                upstream: Upstream::new(&site.upstream, edge_name, tier_key.clone())?,
                signing: site.signing.clone(),
                waf: site.waf.as_ref().map(Waf::load).transpose()?,
                digests: site.digests.clone(),
            }))
        })
        .collect()
}
