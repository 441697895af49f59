//! O(1) demultiplexing of one UDP socket's datagrams to peers: by the local ICE ufrag in a
//! STUN request's USERNAME, then by remote address once ICE has seen that address.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::PeerId;

/// The local ufrag (the part before ':') of a STUN message's USERNAME attribute.
/// Returns `None` for anything that is not a well-formed STUN message with a USERNAME.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    const USERNAME: u16 = 0x0006;
    if datagram.len() < 20 || datagram[0] & 0xC0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body_len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(20..20 + body_len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Where datagrams go. Addresses are learned only from STUN that the owning peer accepted.
#[derive(Debug, Default)]
pub struct Demux {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
}

impl Demux {
    pub fn add_peer(&mut self, ufrag: &str, peer: PeerId) {
        self.by_ufrag.insert(ufrag.to_owned(), peer);
    }

    pub fn learn_addr(&mut self, addr: SocketAddr, peer: PeerId) {
        self.by_addr.insert(addr, peer);
    }

    pub fn remove_peer(&mut self, ufrag: &str, addrs: &[SocketAddr]) {
        self.by_ufrag.remove(ufrag);
        for a in addrs {
            self.by_addr.remove(a);
        }
    }

    /// The peer a datagram is for, and whether it came through the STUN ufrag.
    pub fn route(&self, source: SocketAddr, datagram: &[u8]) -> Option<(PeerId, bool)> {
        if let Some(ufrag) = stun_local_ufrag(datagram) {
            return self.by_ufrag.get(ufrag).map(|p| (*p, true));
        }
        self.by_addr.get(&source).map(|p| (*p, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(username: &str) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend((username.len() as u16).to_be_bytes());
        attr.extend(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend((attr.len() as u16).to_be_bytes());
        msg.extend([0x21, 0x12, 0xA4, 0x42]);
        msg.extend([7u8; 12]);
        msg.extend(attr);
        msg
    }

    #[test]
    fn finds_the_local_ufrag() {
        assert_eq!(
            stun_local_ufrag(&stun_with_username("srv1:cli9")),
            Some("srv1")
        );
    }

    #[test]
    fn rejects_truncated_and_foreign_datagrams() {
        let good = stun_with_username("abc:def");
        for n in 0..good.len() {
            // Any prefix is either rejected or, if the attribute survived whole, parsed.
            let _ = stun_local_ufrag(&good[..n]);
        }
        assert_eq!(stun_local_ufrag(&good[..24]), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None, "RTP is not STUN");
        let mut bad_len = good.clone();
        bad_len[3] = 0xFF;
        assert_eq!(stun_local_ufrag(&bad_len), None);
    }

    #[test]
    fn routes_by_ufrag_then_address() {
        let mut d = Demux::default();
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        d.add_peer("srv1", PeerId(1));
        assert_eq!(
            d.route(addr, &stun_with_username("srv1:x")),
            Some((PeerId(1), true))
        );
        assert_eq!(d.route(addr, &[0x80; 40]), None);
        d.learn_addr(addr, PeerId(1));
        assert_eq!(d.route(addr, &[0x80; 40]), Some((PeerId(1), false)));
        d.remove_peer("srv1", &[addr]);
        assert_eq!(d.route(addr, &[0x80; 40]), None);
        assert_eq!(d.route(addr, &stun_with_username("srv1:x")), None);
    }
}
