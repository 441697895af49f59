//! The zone's answers, as a pure function of the question, where the client is, and the
//! registry's nodes: the shell only parses and sends.

use std::net::IpAddr;
use std::str::FromStr;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use myriad_plan::nearest;
use myriad_proto::cluster::NodeInfo;

use myriad_geo::Located;

/// A name server of the zone (`--dns-ns NAME[=IP]`); one inside the zone with an address is
/// answered for too (its glue).
#[derive(Debug, Clone, PartialEq)]
pub struct NameServer {
    pub name: Name,
    pub addr: Option<IpAddr>,
}

impl FromStr for NameServer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, addr) = match s.split_once('=') {
            Some((name, addr)) => (
                name,
                Some(
                    addr.parse()
                        .map_err(|_| format!("{addr:?}: not an IP address"))?,
                ),
            ),
            None => (s, None),
        };
        Ok(Self {
            name: fqdn(name)?,
            addr,
        })
    }
}

/// A name as operators write it, made absolute.
pub fn fqdn(s: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(s).map_err(|e| format!("{s:?}: not a domain name: {e}"))?;
    if name.is_root() {
        return Err("the root is not a zone myriad serves".into());
    }
    name.set_fqdn(true);
    Ok(name)
}

/// The zone myriad is authoritative for: its apex names the nodes.
#[derive(Debug, Clone)]
pub struct Zone {
    pub apex: Name,
    pub nameservers: Vec<NameServer>,
    /// Of the nodes' records: short, so that a health change reaches clients soon.
    pub ttl: u32,
    /// Nodes named in one answer at most.
    pub answers: usize,
    /// The SOA's serial (the time the server started: answers are made live, not from a
    /// zone that secondaries copy).
    pub serial: u32,
    apex_lower: LowerName,
}

impl Zone {
    pub fn new(
        apex: Name,
        nameservers: Vec<NameServer>,
        ttl: u32,
        answers: usize,
        serial: u32,
    ) -> Self {
        let nameservers = if nameservers.is_empty() {
            vec![NameServer {
                name: Name::from_ascii("ns1")
                    .and_then(|ns| ns.append_domain(&apex))
                    .unwrap_or_else(|_| apex.clone()),
                addr: None,
            }]
        } else {
            nameservers
        };
        Self {
            apex_lower: LowerName::new(&apex),
            apex,
            nameservers,
            ttl,
            answers: answers.max(1),
            serial,
        }
    }

    fn soa(&self) -> Record {
        let hostmaster = Name::from_ascii("hostmaster")
            .and_then(|h| h.append_domain(&self.apex))
            .unwrap_or_else(|_| self.apex.clone());
        let soa = SOA::new(
            self.nameservers[0].name.clone(),
            hostmaster,
            self.serial,
            3600,
            600,
            86400,
            self.ttl,
        );
        Record::from_rdata(self.apex.clone(), self.ttl, RData::SOA(soa))
    }

    fn ns_records(&self) -> Vec<Record> {
        self.nameservers
            .iter()
            .map(|ns| Record::from_rdata(self.apex.clone(), 3600, RData::NS(NS(ns.name.clone()))))
            .collect()
    }

    /// Address records of the in-zone name servers that have one, for one of them or all.
    fn glue(&self, only: Option<&LowerName>, qtype: RecordType) -> Vec<Record> {
        self.nameservers
            .iter()
            .filter(|ns| only.is_none_or(|n| *n == LowerName::new(&ns.name)))
            .filter(|ns| self.apex_lower.zone_of(&LowerName::new(&ns.name)))
            .filter_map(|ns| address_record(&ns.name, ns.addr?, qtype, 3600))
            .collect()
    }
}

/// One question of a query.
#[derive(Debug, Clone)]
pub struct Question {
    pub name: LowerName,
    pub qtype: RecordType,
    pub class: DNSClass,
}

/// What to answer: the sections, the code, and the client-subnet scope (the leading bits of
/// the client's address the answer rests on; 0 when it is the same for everyone).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
    pub scope: u8,
}

impl Reply {
    fn refused() -> Self {
        Self {
            code: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            scope: 0,
        }
    }

    fn answer(answers: Vec<Record>) -> Self {
        Self {
            code: ResponseCode::NoError,
            authoritative: true,
            answers,
            authority: Vec::new(),
            additionals: Vec::new(),
            scope: 0,
        }
    }

    /// No such record (`NoError`) or no such name (`NXDomain`): the SOA says how long to
    /// remember that.
    fn negative(zone: &Zone, code: ResponseCode) -> Self {
        Self {
            code,
            authority: vec![zone.soa()],
            ..Self::answer(Vec::new())
        }
    }
}

/// The answer to `q` from a client at `client`, with the registry's living `nodes`.
///
/// The apex names the open nodes nearest the client, least loaded first (at most
/// `zone.answers`). When no open node has an address of the asked family (all full or
/// draining) it names living nodes with media rather than none: a client is better off
/// trying one.
pub fn answer(zone: &Zone, q: &Question, client: Located<'_>, nodes: &[NodeInfo]) -> Reply {
    if q.class != DNSClass::IN || !zone.apex_lower.zone_of(&q.name) {
        return Reply::refused();
    }
    if matches!(q.qtype, RecordType::AXFR | RecordType::IXFR) {
        // Answers are made per client: there is no zone to transfer.
        return Reply::refused();
    }
    if q.name != zone.apex_lower {
        let glue = zone.glue(Some(&q.name), q.qtype);
        let known = zone
            .nameservers
            .iter()
            .any(|ns| LowerName::new(&ns.name) == q.name && ns.addr.is_some());
        return match (known, glue.is_empty()) {
            (false, _) => Reply::negative(zone, ResponseCode::NXDomain),
            (true, true) => Reply::negative(zone, ResponseCode::NoError),
            (true, false) => Reply::answer(glue),
        };
    }
    match q.qtype {
        RecordType::SOA => Reply::answer(vec![zone.soa()]),
        RecordType::NS => Reply {
            additionals: zone.glue(None, RecordType::A),
            ..Reply::answer(zone.ns_records())
        },
        RecordType::A | RecordType::AAAA => {
            let records = node_records(zone, q.qtype, client, nodes);
            let scope = client.scope;
            if records.is_empty() {
                return Reply {
                    scope,
                    ..Reply::negative(zone, ResponseCode::NoError)
                };
            }
            Reply {
                scope,
                ..Reply::answer(records)
            }
        }
        _ => Reply::negative(zone, ResponseCode::NoError),
    }
}

fn node_records(
    zone: &Zone,
    qtype: RecordType,
    client: Located<'_>,
    nodes: &[NodeInfo],
) -> Vec<Record> {
    let records = |chosen: Vec<&NodeInfo>| -> Vec<Record> {
        chosen
            .into_iter()
            .filter_map(|n| {
                n.addrs
                    .iter()
                    .find_map(|ip| address_record(&zone.apex, *ip, qtype, zone.ttl))
            })
            .take(zone.answers)
            .collect()
    };
    let open = records(nearest(nodes, client.place));
    if !open.is_empty() {
        return open;
    }
    records(nodes.iter().filter(|n| n.media).collect())
}

/// An A record for an IPv4 address or an AAAA for an IPv6 one, if that is what was asked.
fn address_record(name: &Name, ip: IpAddr, qtype: RecordType, ttl: u32) -> Option<Record> {
    let rdata = match (ip, qtype) {
        (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
        (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(name.clone(), ttl, rdata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use myriad_plan::Place;
    use myriad_proto::cluster::Location;

    fn node(name: &str, region: &str, ip: &str, location: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            region: region.into(),
            url: format!("https://{ip}"),
            relays: Vec::new(),
            media: true,
            workers: 2,
            capacity: 100,
            participants: 0,
            partitions: 0,
            cpu: 0.0,
            egress_bps: 0,
            draining: false,
            addrs: vec![ip.parse().unwrap()],
            location: Some(location.parse().unwrap()),
        }
    }

    fn nodes() -> Vec<NodeInfo> {
        vec![
            node("fra1", "eu", "192.0.2.1", "50.11,8.68"),
            node("fra2", "eu", "192.0.2.2", "50.11,8.68"),
            node("nyc1", "us", "198.51.100.1", "40.71,-74.01"),
            node("nyc6", "us", "2001:db8::1", "40.71,-74.01"),
        ]
    }

    fn zone() -> Zone {
        Zone::new(
            fqdn("meet.example.org").unwrap(),
            vec!["ns1.meet.example.org=203.0.113.53".parse().unwrap()],
            20,
            2,
            7,
        )
    }

    fn ask(name: &str, qtype: RecordType, client: Place<'_>, nodes: &[NodeInfo]) -> Reply {
        let q = Question {
            name: LowerName::new(&fqdn(name).unwrap()),
            qtype,
            class: DNSClass::IN,
        };
        answer(
            &zone(),
            &q,
            Located {
                place: client,
                scope: 24,
            },
            nodes,
        )
    }

    fn ips(reply: &Reply) -> Vec<String> {
        reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                other => panic!("not an address: {other:?}"),
            })
            .collect()
    }

    const PARIS: Place<'static> = Place::At(Location {
        lat: 48.86,
        lon: 2.35,
    });
    const BOSTON: Place<'static> = Place::At(Location {
        lat: 42.36,
        lon: -71.06,
    });

    #[test]
    fn the_apex_names_the_nearest_nodes_with_a_short_ttl_and_the_clients_scope() {
        let reply = ask("Meet.Example.org", RecordType::A, PARIS, &nodes());
        assert_eq!(reply.code, ResponseCode::NoError);
        assert!(reply.authoritative);
        assert_eq!(ips(&reply), ["192.0.2.1", "192.0.2.2"]);
        assert!(reply.answers.iter().all(|r| r.ttl == 20));
        assert_eq!(reply.scope, 24);
        assert_eq!(
            ips(&ask("meet.example.org", RecordType::A, BOSTON, &nodes())),
            ["198.51.100.1"]
        );
        assert_eq!(
            ips(&ask("meet.example.org", RecordType::AAAA, BOSTON, &nodes())),
            ["2001:db8::1"]
        );
    }

    #[test]
    fn load_orders_the_answer_and_caps_it() {
        let mut nodes = nodes();
        nodes[0].participants = 90;
        nodes.push(node("fra3", "eu", "192.0.2.3", "50.11,8.68"));
        nodes[4].participants = 10;
        assert_eq!(
            ips(&ask("meet.example.org", RecordType::A, PARIS, &nodes)),
            ["192.0.2.2", "192.0.2.3"]
        );
    }

    #[test]
    fn an_unhealthy_region_is_passed_over_and_nobody_open_still_names_someone() {
        let mut nodes = nodes();
        nodes[0].draining = true;
        nodes[1].participants = 100;
        assert_eq!(
            ips(&ask("meet.example.org", RecordType::A, PARIS, &nodes)),
            ["198.51.100.1"]
        );
        nodes[2].draining = true;
        let all = ask("meet.example.org", RecordType::A, PARIS, &nodes);
        assert_eq!(ips(&all), ["192.0.2.1", "192.0.2.2"]);
        let none = ask("meet.example.org", RecordType::A, PARIS, &[]);
        assert_eq!(none.code, ResponseCode::NoError);
        assert!(none.answers.is_empty());
        assert_eq!(none.authority.len(), 1, "the SOA, for negative caching");
    }

    #[test]
    fn soa_ns_and_glue_are_answered_and_other_types_have_no_data() {
        let soa = ask("meet.example.org", RecordType::SOA, PARIS, &nodes());
        assert_eq!(soa.answers.len(), 1);
        assert_eq!(soa.scope, 0, "the same for everyone");
        let ns = ask("meet.example.org", RecordType::NS, PARIS, &nodes());
        assert_eq!(ns.answers.len(), 1);
        assert_eq!(
            ips(&Reply {
                answers: ns.additionals.clone(),
                ..ns.clone()
            }),
            ["203.0.113.53"]
        );
        let glue = ask(
            "ns1.meet.example.org",
            RecordType::A,
            Place::Unknown,
            &nodes(),
        );
        assert_eq!(ips(&glue), ["203.0.113.53"]);
        let mx = ask("meet.example.org", RecordType::MX, PARIS, &nodes());
        assert_eq!(
            (mx.code, mx.answers.len(), mx.authority.len()),
            (ResponseCode::NoError, 0, 1)
        );
    }

    #[test]
    fn names_outside_the_zone_are_refused_and_unknown_ones_do_not_exist() {
        let out = ask("example.org", RecordType::A, PARIS, &nodes());
        assert_eq!(
            (out.code, out.authoritative),
            (ResponseCode::Refused, false)
        );
        let other = ask("meet.example.org.evil.test", RecordType::A, PARIS, &nodes());
        assert_eq!(other.code, ResponseCode::Refused);
        let missing = ask("nope.meet.example.org", RecordType::A, PARIS, &nodes());
        assert_eq!(
            (missing.code, missing.authority.len()),
            (ResponseCode::NXDomain, 1)
        );
        let axfr = ask("meet.example.org", RecordType::AXFR, PARIS, &nodes());
        assert_eq!(axfr.code, ResponseCode::Refused);
        let q = Question {
            name: LowerName::new(&fqdn("meet.example.org").unwrap()),
            qtype: RecordType::A,
            class: DNSClass::CH,
        };
        let chaos = answer(
            &zone(),
            &q,
            Located {
                place: PARIS,
                scope: 0,
            },
            &nodes(),
        );
        assert_eq!(chaos.code, ResponseCode::Refused);
    }

    #[test]
    fn name_servers_and_names_are_read_as_operators_write_them() {
        let ns: NameServer = "ns2.example.net".parse().unwrap();
        assert_eq!(
            (ns.name.to_string().as_str(), ns.addr),
            ("ns2.example.net.", None)
        );
        assert!("ns2.example.net=nope".parse::<NameServer>().is_err());
        assert!(fqdn(".").is_err());
        let zone = Zone::new(fqdn("meet.example.org").unwrap(), Vec::new(), 20, 0, 1);
        assert_eq!(
            zone.nameservers[0].name.to_string(),
            "ns1.meet.example.org."
        );
        assert_eq!(zone.answers, 1);
    }
}
