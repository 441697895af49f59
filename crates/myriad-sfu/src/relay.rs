//! Relay datagrams between partitions on different nodes: media of one track and layer that
//! another partition pulls, the pulls themselves (which layers of a track), the layers a
//! track has (announced to its pullers, so that they choose without receiving them all) and
//! key frame requests. Sans-IO: bytes in, values out.
//!
//! Every datagram names its sender and carries a counter that only grows; all after the
//! sender's name is encrypted with AES-256-GCM under a key derived for that sender from the
//! cluster's relay key (HKDF), the counter being the nonce and the header authenticated with
//! it. Media crossing the network between nodes is as private as SRTP made it on the way in,
//! and a datagram from outside the cluster, altered, cut short or played again is refused
//! with its reason.
//!
//! Layout (big-endian): `MYRL`, version, kind, counter (8), sender name (1 + n), then
//! encrypted: meeting (1 + n), track (8), then for media: layer (1 + n), codec, sequence
//! number (8), RTP time (8), flags, audio level, payload; for a pull: a count and that many
//! layers; for a layer announcement: a count and that many (layer, height (4), bitrate (8));
//! for a key frame request: layer. A layer is a name, empty for a track without layers.
//! Then the GCM tag (16).

use std::collections::HashMap;

use aws_lc_rs::{aead, hkdf, hmac};
use myriad_proto::{MeetingId, TrackId};

const MAGIC: &[u8; 4] = b"MYRL";
const VERSION: u8 = 3;
const TAG_LEN: usize = 16;
const KIND_MEDIA: u8 = 1;
const KIND_PULL: u8 = 2;
const KIND_KEYFRAME: u8 = 3;
const KIND_LAYERS: u8 = 4;
/// Counters older than the newest by this many are refused even if never seen.
const REPLAY_WINDOW: u64 = 128;
/// Senders remembered for replay protection (only authenticated ones are).
const MAX_SENDERS: usize = 1024;
/// The longest name, rid or meeting id a datagram may carry (a partition's name is a node's,
/// up to 64, a slash and a worker number).
const MAX_NAME: usize = 80;
/// The most simulcast layers a track may have (browsers send up to three).
pub const MAX_LAYERS: usize = 4;

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

/// One layer of a track as the partition it comes from sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLayer {
    /// Its rid; none for a track without layers.
    pub rid: Option<String>,
    /// The frame height of its latest key frame (0 for audio, or before one came).
    pub height: u32,
    pub bitrate_bps: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMsg {
    Media(RelayMedia),
    /// Send me these layers of this track (none: only its layer announcements) for a while:
    /// repeated while wanted, and sent again at once when the wanted layers change.
    Pull {
        meeting: MeetingId,
        track: TrackId,
        layers: Vec<Option<String>>,
    },
    /// The layers this track has now, to those who pull it; any not listed has stopped.
    Layers {
        meeting: MeetingId,
        track: TrackId,
        layers: Vec<RelayLayer>,
    },
    /// A subscriber here needs a key frame on this layer.
    Keyframe {
        meeting: MeetingId,
        track: TrackId,
        layer: Option<String>,
    },
}

impl RelayMsg {
    /// The meeting and track it is about.
    pub fn subject(&self) -> (&MeetingId, TrackId) {
        match self {
            RelayMsg::Media(m) => (&m.meeting, m.track),
            RelayMsg::Pull { meeting, track, .. }
            | RelayMsg::Layers { meeting, track, .. }
            | RelayMsg::Keyframe { meeting, track, .. } => (meeting, *track),
        }
    }
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

/// The key `sender` seals with: each sender its own, so counters (the nonces) of different
/// senders never meet under one key.
fn sender_key(cluster_key: &[u8], sender: &str) -> aead::LessSafeKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"myriad relay v2").extract(cluster_key);
    let info = [b"sender ".as_slice(), sender.as_bytes()];
    let okm = prk
        .expand(&info, &aead::AES_256_GCM)
        .expect("32 bytes is within HKDF-SHA256's output limit");
    aead::LessSafeKey::new(aead::UnboundKey::from(okm))
}

fn nonce(counter: u64) -> aead::Nonce {
    let mut bytes = [0u8; aead::NONCE_LEN];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    aead::Nonce::assume_unique_for_key(bytes)
}

/// Seals what this node sends.
pub struct RelaySealer {
    node: String,
    key: aead::LessSafeKey,
    counter: u64,
}

impl RelaySealer {
    /// `counter` starts where no earlier run of this node reached (e.g. the time in
    /// microseconds), so a restarted node is neither taken for a replay nor reuses a nonce.
    pub fn new(node: &str, key: &[u8], counter: u64) -> Self {
        let node = node[..node.len().min(MAX_NAME)].to_owned();
        Self {
            key: sender_key(key, &node),
            node,
            counter,
        }
    }

    pub fn seal(&mut self, msg: &RelayMsg) -> Vec<u8> {
        self.counter += 1;
        let mut out = Vec::with_capacity(64 + media_len(msg) + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(match msg {
            RelayMsg::Media(_) => KIND_MEDIA,
            RelayMsg::Pull { .. } => KIND_PULL,
            RelayMsg::Keyframe { .. } => KIND_KEYFRAME,
            RelayMsg::Layers { .. } => KIND_LAYERS,
        });
        out.extend_from_slice(&self.counter.to_be_bytes());
        put_name(&mut out, &self.node);
        let header_len = out.len();
        let (meeting, track) = msg.subject();
        put_name(&mut out, meeting.as_str());
        out.extend_from_slice(&track.0.to_be_bytes());
        match msg {
            RelayMsg::Media(m) => {
                put_layer(&mut out, &m.layer);
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
            RelayMsg::Pull { layers, .. } => {
                let layers = &layers[..layers.len().min(MAX_LAYERS)];
                out.push(layers.len() as u8);
                for layer in layers {
                    put_layer(&mut out, layer);
                }
            }
            RelayMsg::Layers { layers, .. } => {
                let layers = &layers[..layers.len().min(MAX_LAYERS)];
                out.push(layers.len() as u8);
                for l in layers {
                    put_layer(&mut out, &l.rid);
                    out.extend_from_slice(&l.height.to_be_bytes());
                    out.extend_from_slice(&l.bitrate_bps.to_be_bytes());
                }
            }
            RelayMsg::Keyframe { layer, .. } => put_layer(&mut out, layer),
        }
        let (header, body) = out.split_at_mut(header_len);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(self.counter), aead::Aad::from(&*header), body)
            .expect("AES-GCM seals any datagram-sized input");
        out.extend_from_slice(tag.as_ref());
        out
    }
}

fn media_len(msg: &RelayMsg) -> usize {
    match msg {
        RelayMsg::Media(m) => m.payload.len(),
        _ => 0,
    }
}

/// A layer's rid, empty for none.
fn put_layer(out: &mut Vec<u8>, layer: &Option<String>) {
    put_name(out, layer.as_deref().unwrap_or(""));
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let bytes = &name.as_bytes()[..name.len().min(MAX_NAME)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// What an opener remembers of one authenticated sender.
struct Sender {
    key: aead::LessSafeKey,
    /// The highest counter seen, and which of the `REPLAY_WINDOW` before it were.
    highest: u64,
    seen: u128,
}

/// Opens what other nodes send: decrypts and authenticates, then checks the counter against
/// the sender's window.
pub struct RelayOpener {
    cluster_key: Vec<u8>,
    senders: HashMap<String, Sender>,
}

impl RelayOpener {
    pub fn new(key: &[u8]) -> Self {
        Self {
            cluster_key: key.to_vec(),
            senders: HashMap::new(),
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
        let kind = r.u8()?;
        let counter = r.u64()?;
        let sender = r.name()?;
        let header_len = r.at;
        if datagram.len() < header_len + TAG_LEN {
            return Err(RelayError::Truncated);
        }
        // Opened before anything else is read: nothing unauthenticated reaches the media.
        let mut body = datagram[header_len..].to_vec();
        let aad = aead::Aad::from(&datagram[..header_len]);
        let opened = match self.senders.get(&sender) {
            Some(known) => known.key.open_in_place(nonce(counter), aad, &mut body),
            None => {
                sender_key(&self.cluster_key, &sender).open_in_place(nonce(counter), aad, &mut body)
            }
        };
        let plain_len = opened.map_err(|_| RelayError::Forged)?.len();
        body.truncate(plain_len);
        let mut r = Reader { buf: &body, at: 0 };
        let meeting =
            MeetingId::parse(&r.name()?).map_err(|_| RelayError::Malformed("meeting id"))?;
        let track = TrackId(r.u64()?);
        let msg = match kind {
            KIND_MEDIA => {
                let layer = r.layer()?;
                let codec = match r.u8()? {
                    1 => RelayCodec::Opus,
                    2 => RelayCodec::Vp8,
                    _ => return Err(RelayError::Malformed("codec")),
                };
                let seq = r.u64()?;
                let time = r.u64()?;
                let flags = r.u8()?;
                let level = r.u8()? as i8;
                // The payload is the rest of the opened body: moved to its front, not copied
                // into a second buffer (every relayed packet comes this way).
                let at = r.at;
                body.drain(..at);
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
                    payload: body,
                })
            }
            KIND_PULL => {
                let count = r.count()?;
                let layers = (0..count).map(|_| r.layer()).collect::<Result<_, _>>()?;
                RelayMsg::Pull {
                    meeting,
                    track,
                    layers,
                }
            }
            KIND_LAYERS => {
                let count = r.count()?;
                let layers = (0..count)
                    .map(|_| {
                        Ok(RelayLayer {
                            rid: r.layer()?,
                            height: r.u32()?,
                            bitrate_bps: r.u64()?,
                        })
                    })
                    .collect::<Result<_, RelayError>>()?;
                RelayMsg::Layers {
                    meeting,
                    track,
                    layers,
                }
            }
            KIND_KEYFRAME => RelayMsg::Keyframe {
                meeting,
                track,
                layer: r.layer()?,
            },
            _ => return Err(RelayError::Malformed("kind")),
        };
        self.accept(&sender, counter)?;
        Ok((sender, msg))
    }

    /// Accepts `counter` from an authenticated `sender` once.
    fn accept(&mut self, sender: &str, counter: u64) -> Result<(), RelayError> {
        let replayed = || RelayError::Replayed {
            sender: sender.to_owned(),
            counter,
        };
        match self.senders.get_mut(sender) {
            Some(Sender { highest, seen, .. }) => {
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
                if self.senders.len() >= MAX_SENDERS {
                    return Err(RelayError::Malformed("too many senders"));
                }
                self.senders.insert(
                    sender.to_owned(),
                    Sender {
                        key: sender_key(&self.cluster_key, sender),
                        highest: counter,
                        seen: 1,
                    },
                );
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

    fn u32(&mut self) -> Result<u32, RelayError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
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

    /// A layer's rid, none when empty.
    fn layer(&mut self) -> Result<Option<String>, RelayError> {
        Ok(Some(self.name()?).filter(|l| !l.is_empty()))
    }

    /// How many layers follow.
    fn count(&mut self) -> Result<usize, RelayError> {
        let count = self.u8()? as usize;
        if count > MAX_LAYERS {
            return Err(RelayError::Malformed("too many layers"));
        }
        Ok(count)
    }
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
                layers: vec![Some("l".into()), Some("h".into())],
            },
            RelayMsg::Pull {
                meeting: MeetingId::parse("m1").unwrap(),
                track: TrackId(2),
                layers: vec![],
            },
            RelayMsg::Layers {
                meeting: MeetingId::parse("m1").unwrap(),
                track: TrackId(1),
                layers: vec![
                    RelayLayer {
                        rid: Some("l".into()),
                        height: 180,
                        bitrate_bps: 150_000,
                    },
                    RelayLayer {
                        rid: Some("h".into()),
                        height: 720,
                        bitrate_bps: 1_700_000,
                    },
                ],
            },
            RelayMsg::Layers {
                meeting: MeetingId::parse("m1").unwrap(),
                track: TrackId(3),
                layers: vec![RelayLayer {
                    rid: None,
                    height: 0,
                    bitrate_bps: 40_000,
                }],
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
    fn media_and_meeting_are_not_readable_on_the_wire() {
        let key = relay_key(b"secret");
        let payload = b"a frame of someone's face".to_vec();
        let msg = RelayMsg::Media(RelayMedia {
            meeting: MeetingId::parse("secret-briefing").unwrap(),
            payload: payload.clone(),
            ..match media() {
                RelayMsg::Media(m) => m,
                _ => unreachable!(),
            }
        });
        let wire = RelaySealer::new("n1", &key, 0).seal(&msg);
        let contains = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(&payload));
        assert!(!contains(b"secret-briefing"));
        // Two senders on one counter never share a key stream.
        let other = RelaySealer::new("n2", &key, 0).seal(&msg);
        let body = |w: &[u8], sender: usize| w[4 + 2 + 8 + 1 + sender..].to_vec();
        assert_ne!(body(&wire, 2), body(&other, 2));
        assert_eq!(
            RelayOpener::new(&key).open(&other),
            Ok(("n2".to_owned(), msg))
        );
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
