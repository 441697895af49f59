//! Relay datagrams between partitions on different nodes: media of one track and layer that
//! another partition pulls, and the pulls and key frame requests themselves. Sans-IO: bytes
//! in, values out.
//!
//! Every datagram names its sender and carries a counter that only grows, and ends with an
//! HMAC-SHA256 (truncated to 16 bytes) over all of it under the cluster's relay key: a datagram
//! from outside the cluster, altered, cut short or played again is refused with its reason.
//!
//! Layout (big-endian): `MYRL`, version, kind, counter (8), sender name (1 + n), meeting
//! (1 + n), track (8), then for media: layer (1 + n), codec, sequence number (8), RTP time (8),
//! flags, audio level, payload; for a key frame request: layer. Then the tag (16).

use std::collections::HashMap;

use aws_lc_rs::hmac;
use myriad_proto::{MeetingId, TrackId};

const MAGIC: &[u8; 4] = b"MYRL";
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const KIND_MEDIA: u8 = 1;
const KIND_PULL: u8 = 2;
const KIND_KEYFRAME: u8 = 3;
/// Counters older than the newest by this many are refused even if never seen.
const REPLAY_WINDOW: u64 = 128;
/// Senders remembered for replay protection (only authenticated ones are).
const MAX_SENDERS: usize = 1024;
/// The longest name, rid or meeting id a datagram may carry (a partition's name is a node's,
/// up to 64, a slash and a worker number).
const MAX_NAME: usize = 80;

/// Media codecs a relay carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayCodec {
    Opus,
    Vp8,
}

/// One RTP packet of a track, as the publisher's node received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMedia {
    pub meeting: MeetingId,
    pub track: TrackId,
    /// The simulcast layer (rid), if the track has layers.
    pub layer: Option<String>,
    pub codec: RelayCodec,
    /// The publisher's RTP sequence number and time, extended.
    pub seq: u64,
    pub time: u64,
    pub marker: bool,
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMsg {
    Media(RelayMedia),
    /// Send me this track's media (every layer) for a while: repeated while wanted.
    Pull {
        meeting: MeetingId,
        track: TrackId,
    },
    /// A subscriber here needs a key frame on this layer.
    Keyframe {
        meeting: MeetingId,
        track: TrackId,
        layer: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("not a relay datagram")]
    NotRelay,
    #[error("relay version {0} is not spoken here")]
    Version(u8),
    #[error("cut short")]
    Truncated,
    #[error("its tag does not verify: not from this cluster, or altered")]
    Forged,
    #[error("played again (counter {counter} from {sender})")]
    Replayed { sender: String, counter: u64 },
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// Seals what this node sends.
pub struct RelaySealer {
    node: String,
    key: hmac::Key,
    counter: u64,
}

impl RelaySealer {
    /// `counter` starts where no earlier run of this node reached (e.g. the time in
    /// microseconds), so a restarted node is not taken for a replay.
    pub fn new(node: &str, key: &[u8], counter: u64) -> Self {
        Self {
            node: node.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            counter,
        }
    }

    pub fn seal(&mut self, msg: &RelayMsg) -> Vec<u8> {
        self.counter += 1;
        let mut out = Vec::with_capacity(64 + media_len(msg));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(match msg {
            RelayMsg::Media(_) => KIND_MEDIA,
            RelayMsg::Pull { .. } => KIND_PULL,
            RelayMsg::Keyframe { .. } => KIND_KEYFRAME,
        });
        out.extend_from_slice(&self.counter.to_be_bytes());
        put_name(&mut out, &self.node);
        match msg {
            RelayMsg::Media(m) => {
                put_name(&mut out, m.meeting.as_str());
                out.extend_from_slice(&m.track.0.to_be_bytes());
                put_name(&mut out, m.layer.as_deref().unwrap_or(""));
                out.push(match m.codec {
                    RelayCodec::Opus => 1,
                    RelayCodec::Vp8 => 2,
                });
                out.extend_from_slice(&m.seq.to_be_bytes());
                out.extend_from_slice(&m.time.to_be_bytes());
                let flags = u8::from(m.marker)
                    | u8::from(m.audio_level.is_some()) << 1
                    | u8::from(m.voice_activity.is_some()) << 2
                    | u8::from(m.voice_activity == Some(true)) << 3;
                out.push(flags);
                out.push(m.audio_level.unwrap_or(0) as u8);
                out.extend_from_slice(&m.payload);
            }
            RelayMsg::Pull { meeting, track } => {
                put_name(&mut out, meeting.as_str());
                out.extend_from_slice(&track.0.to_be_bytes());
            }
            RelayMsg::Keyframe {
                meeting,
                track,
                layer,
            } => {
                put_name(&mut out, meeting.as_str());
                out.extend_from_slice(&track.0.to_be_bytes());
                put_name(&mut out, layer.as_deref().unwrap_or(""));
            }
        }
        let tag = hmac::sign(&self.key, &out);
        out.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
        out
    }
}

fn media_len(msg: &RelayMsg) -> usize {
    match msg {
        RelayMsg::Media(m) => m.payload.len(),
        _ => 0,
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let bytes = &name.as_bytes()[..name.len().min(MAX_NAME)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// Opens what other nodes send: checks the tag, then the counter against the sender's
/// window.
pub struct RelayOpener {
    key: hmac::Key,
    /// Per sender: the highest counter seen, and which of the `REPLAY_WINDOW` before it were.
    windows: HashMap<String, (u64, u128)>,
}

impl RelayOpener {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            windows: HashMap::new(),
        }
    }

    /// The sender and the message of a datagram.
    pub fn open(&mut self, datagram: &[u8]) -> Result<(String, RelayMsg), RelayError> {
        if datagram.len() < MAGIC.len() || &datagram[..MAGIC.len()] != MAGIC {
            return Err(RelayError::NotRelay);
        }
        let mut r = Reader {
            buf: datagram,
            at: MAGIC.len(),
        };
        let version = r.u8()?;
        if version != VERSION {
            return Err(RelayError::Version(version));
        }
        if datagram.len() < r.at + TAG_LEN {
            return Err(RelayError::Truncated);
        }
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        // Verified before anything else is read: nothing unauthenticated reaches the media.
        let expected = hmac::sign(&self.key, signed);
        if !constant_time_eq(&expected.as_ref()[..TAG_LEN], tag) {
            return Err(RelayError::Forged);
        }
        let mut r = Reader {
            buf: signed,
            at: r.at,
        };
        let kind = r.u8()?;
        let counter = r.u64()?;
        let sender = r.name()?;
        let meeting =
            MeetingId::parse(&r.name()?).map_err(|_| RelayError::Malformed("meeting id"))?;
        let track = TrackId(r.u64()?);
        let msg = match kind {
            KIND_MEDIA => {
                let layer = Some(r.name()?).filter(|l| !l.is_empty());
                let codec = match r.u8()? {
                    1 => RelayCodec::Opus,
                    2 => RelayCodec::Vp8,
                    _ => return Err(RelayError::Malformed("codec")),
                };
                let seq = r.u64()?;
                let time = r.u64()?;
                let flags = r.u8()?;
                let level = r.u8()? as i8;
                RelayMsg::Media(RelayMedia {
                    meeting,
                    track,
                    layer,
                    codec,
                    seq,
                    time,
                    marker: flags & 1 != 0,
                    audio_level: (flags & 2 != 0).then_some(level),
                    voice_activity: (flags & 4 != 0).then_some(flags & 8 != 0),
                    payload: r.rest().to_vec(),
                })
            }
            KIND_PULL => RelayMsg::Pull { meeting, track },
            KIND_KEYFRAME => RelayMsg::Keyframe {
                meeting,
                track,
                layer: Some(r.name()?).filter(|l| !l.is_empty()),
            },
            _ => return Err(RelayError::Malformed("kind")),
        };
        self.accept(&sender, counter)?;
        Ok((sender, msg))
    }

    /// Accepts `counter` from `sender` once.
    fn accept(&mut self, sender: &str, counter: u64) -> Result<(), RelayError> {
        let replayed = || RelayError::Replayed {
            sender: sender.to_owned(),
            counter,
        };
        match self.windows.get_mut(sender) {
            Some((highest, seen)) => {
                if counter > *highest {
                    let shift = counter - *highest;
                    *seen = if shift >= REPLAY_WINDOW {
                        0
                    } else {
                        *seen << shift
                    };
                    *seen |= 1;
                    *highest = counter;
                } else {
                    let back = *highest - counter;
                    if back >= REPLAY_WINDOW || *seen & (1u128 << back) != 0 {
                        return Err(replayed());
                    }
                    *seen |= 1u128 << back;
                }
            }
            None => {
                if self.windows.len() >= MAX_SENDERS {
                    return Err(RelayError::Malformed("too many senders"));
                }
                self.windows.insert(sender.to_owned(), (counter, 1));
            }
        }
        Ok(())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RelayError> {
        let end = self.at.checked_add(n).ok_or(RelayError::Truncated)?;
        let bytes = self.buf.get(self.at..end).ok_or(RelayError::Truncated)?;
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, RelayError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, RelayError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn name(&mut self) -> Result<String, RelayError> {
        let len = self.u8()? as usize;
        if len > MAX_NAME {
            return Err(RelayError::Malformed("name too long"));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RelayError::Malformed("name not UTF-8"))
    }

    fn rest(&mut self) -> &[u8] {
        let rest = &self.buf[self.at..];
        self.at = self.buf.len();
        rest
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The relay key of a cluster whose nodes share `secret` (the API secret).
pub fn relay_key(secret: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, b"myriad relay v1").as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media() -> RelayMsg {
        RelayMsg::Media(RelayMedia {
            meeting: MeetingId::parse("m1").unwrap(),
            track: TrackId(7),
            layer: Some("h".into()),
            codec: RelayCodec::Vp8,
            seq: 70_000,
            time: 123_456,
            marker: true,
            audio_level: None,
            voice_activity: Some(false),
            payload: vec![0x90, 0x80, 1, 2, 3],
        })
    }

    #[test]
    fn every_kind_round_trips() {
        let key = relay_key(b"secret");
        let mut seal = RelaySealer::new("n1", &key, 1_000);
        let mut open = RelayOpener::new(&key);
        for msg in [
            media(),
            RelayMsg::Pull {
                meeting: MeetingId::parse("m1").unwrap(),
                track: TrackId(1),
            },
            RelayMsg::Keyframe {
                meeting: MeetingId::parse("m1").unwrap(),
                track: TrackId(1),
                layer: None,
            },
            RelayMsg::Media(RelayMedia {
                layer: None,
                codec: RelayCodec::Opus,
                audio_level: Some(-30),
                voice_activity: None,
                marker: false,
                payload: Vec::new(),
                ..match media() {
                    RelayMsg::Media(m) => m,
                    _ => unreachable!(),
                }
            }),
        ] {
            let bytes = seal.seal(&msg);
            assert_eq!(open.open(&bytes), Ok(("n1".to_owned(), msg)));
        }
    }

    #[test]
    fn forged_altered_truncated_and_foreign_datagrams_are_refused() {
        let key = relay_key(b"secret");
        let mut seal = RelaySealer::new("n1", &key, 0);
        let mut open = RelayOpener::new(&key);
        let good = seal.seal(&media());
        // Another cluster's key.
        let mut stranger = RelaySealer::new("n1", &relay_key(b"other"), 0);
        assert_eq!(open.open(&stranger.seal(&media())), Err(RelayError::Forged));
        // Any byte changed.
        for at in [5, 10, 20, good.len() / 2, good.len() - 1] {
            let mut altered = good.clone();
            altered[at] ^= 0x40;
            assert!(open.open(&altered).is_err(), "byte {at}");
        }
        // Cut short anywhere.
        for len in [0, 3, 4, 6, 20, good.len() - 1] {
            assert!(open.open(&good[..len]).is_err(), "{len} bytes");
        }
        assert_eq!(
            open.open(b"\x16\x03\x01 a TLS record"),
            Err(RelayError::NotRelay)
        );
        let mut future = good.clone();
        future[4] = 9;
        assert_eq!(open.open(&future), Err(RelayError::Version(9)));
        // The good one still passes (nothing above consumed its counter).
        assert!(open.open(&good).is_ok());
    }

    #[test]
    fn a_datagram_is_accepted_once_and_late_ones_within_the_window() {
        let key = relay_key(b"secret");
        let mut seal = RelaySealer::new("n1", &key, 0);
        let mut open = RelayOpener::new(&key);
        let sent: Vec<Vec<u8>> = (0..200).map(|_| seal.seal(&media())).collect();
        // Out of order within the window is fine; each once.
        assert!(open.open(&sent[150]).is_ok());
        assert!(open.open(&sent[100]).is_ok());
        assert!(matches!(
            open.open(&sent[100]),
            Err(RelayError::Replayed { .. })
        ));
        assert!(matches!(
            open.open(&sent[150]),
            Err(RelayError::Replayed { .. })
        ));
        // Too old to tell: refused.
        assert!(matches!(
            open.open(&sent[10]),
            Err(RelayError::Replayed { .. })
        ));
        assert!(open.open(&sent[199]).is_ok());
        // A restarted node starts its counter past where it was.
        let mut restarted = RelaySealer::new("n1", &key, 10_000);
        assert!(open.open(&restarted.seal(&media())).is_ok());
    }
}
