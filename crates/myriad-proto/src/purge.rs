//! Cache purges: asked for on an edge's admin API, carried to every edge over the bus.

use serde::{Deserialize, Serialize};

use crate::bus::BusMessage;

/// Subject purges travel on.
pub const PURGE_SUBJECT: &str = "myriad.cdn.purge";
/// Items per purge, all lists together.
pub const MAX_PURGE_ITEMS: usize = 1000;

/// What to drop from every edge's cache. URLs and prefixes are `http[s]://host/path…` or
/// `host/path…`; tags are those of `Surrogate-Key` / `Cache-Tag` response fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Purge {
    pub fn len(&self) -> usize {
        self.urls.len() + self.prefixes.len() + self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes a purge's signature covers: its JSON as this build writes it.
    pub fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A purge on the bus, signed by an edge of the deployment (`t=…,sig=…` over
/// [`Purge::signed_bytes`] with the edges' shared key) or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeMsg {
    pub purge: Purge,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl BusMessage for PurgeMsg {
    const KIND: &'static str = "cdn.purge";
    const VERSION: u32 = 1;
}
