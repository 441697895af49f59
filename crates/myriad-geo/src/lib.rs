//! Where a client is, from its address: networks the operator placed in regions first (private
//! and office networks no database knows), then a MaxMind-format database (GeoLite2 City).

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use ipnet::IpNet;
use myriad_plan::Place;
use myriad_proto::cluster::Location;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("IP geolocation database {path}: {source}")]
    Database {
        path: String,
        source: maxminddb::MaxMindDbError,
    },
}

/// A network placed in a region by the operator (`--geo-prefix 10.1.0.0/16=eu`).
#[derive(Debug, Clone, PartialEq)]
pub struct RegionPrefix {
    pub net: IpNet,
    pub region: String,
}

impl FromStr for RegionPrefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (net, region) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: a placed network is NETWORK/BITS=REGION"))?;
        let net: IpNet = net
            .parse()
            .map_err(|e| format!("{net:?}: not a network: {e}"))?;
        if region.is_empty() {
            return Err(format!("{s:?}: the region is missing"));
        }
        Ok(Self {
            net: net.trunc(),
            region: region.to_owned(),
        })
    }
}

/// Where a client was found, and how many leading bits of its address that rests on (the
/// EDNS Client Subnet scope of an answer made from it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Located<'a> {
    pub place: Place<'a>,
    pub scope: u8,
}

/// The locator: placed networks, then the database if there is one.
pub struct Geo {
    db: Option<maxminddb::Reader<Vec<u8>>>,
    /// Most specific first, so the first match is the best.
    prefixes: Vec<RegionPrefix>,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field("database", &self.db.is_some())
            .field("prefixes", &self.prefixes)
            .finish()
    }
}

/// The part of a GeoLite2 City record we read.
#[derive(Deserialize)]
struct CityRecord {
    location: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl Geo {
    pub fn new(db: Option<&Path>, mut prefixes: Vec<RegionPrefix>) -> Result<Self, GeoError> {
        let db = db
            .map(|path| {
                maxminddb::Reader::open_readfile(path).map_err(|source| GeoError::Database {
                    path: path.display().to_string(),
                    source,
                })
            })
            .transpose()?;
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.net.prefix_len()));
        Ok(Self { db, prefixes })
    }

    /// Where `ip` is. `ip` may be a client subnet's address (its host bits zero): a placed
    /// network or database entry wider than the subnet still finds it.
    pub fn locate(&self, ip: IpAddr) -> Located<'_> {
        let ip = ip.to_canonical();
        if let Some(p) = self.prefixes.iter().find(|p| p.net.contains(&ip)) {
            return Located {
                place: Place::Region(&p.region),
                scope: p.net.prefix_len(),
            };
        }
        let unknown = Located {
            place: Place::Unknown,
            scope: 0,
        };
        let Some(db) = &self.db else {
            return unknown;
        };
        let Ok(found) = db.lookup(ip) else {
            return unknown;
        };
        let scope = found.network().map_or(0, |n| n.prefix());
        let at = found
            .decode::<CityRecord>()
            .ok()
            .flatten()
            .and_then(|r| r.location)
            .and_then(|c| {
                Some(Location {
                    lat: c.latitude?,
                    lon: c.longitude?,
                })
            });
        Located {
            place: at.map_or(Place::Unknown, Place::At),
            scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placed_networks_are_read_and_the_most_specific_wins() {
        let geo = Geo::new(
            None,
            vec![
                "10.0.0.0/8=us".parse().unwrap(),
                "10.1.2.3/16=eu".parse().unwrap(),
                "fd00::/8=ap".parse().unwrap(),
            ],
        )
        .unwrap();
        let at = |ip: &str| geo.locate(ip.parse().unwrap());
        assert_eq!(at("10.1.9.9").place, Place::Region("eu"));
        assert_eq!(at("10.1.9.9").scope, 16);
        assert_eq!(at("10.2.0.1").place, Place::Region("us"));
        assert_eq!(at("fd00::1").place, Place::Region("ap"));
        // An IPv4 client seen through an IPv6 socket is the same client.
        assert_eq!(at("::ffff:10.1.0.1").place, Place::Region("eu"));
        assert_eq!(
            at("192.0.2.1"),
            Located {
                place: Place::Unknown,
                scope: 0
            }
        );
        for bad in ["10.0.0.0/8", "10.0.0.0/33=eu", "x=eu", "10.0.0.0/8="] {
            assert!(bad.parse::<RegionPrefix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_or_broken_database_is_a_clear_error() {
        let dir = std::env::temp_dir().join("myriad-dns-no-such.mmdb");
        let err = Geo::new(Some(&dir), Vec::new()).expect_err("refused");
        assert!(err.to_string().contains("myriad-dns-no-such.mmdb"), "{err}");
    }
}
