//! WebSocket frames as a tunnel sees them (RFC 6455 §5.2). The edge relays an upgraded
//! connection's bytes as they come and reads only the frame headers, to know where one frame
//! ends and the next begins. That is enough to end a tunnel the way WebSocket ends: a Close
//! (1001, going away) to each side between two frames, then each side's own Close awaited —
//! where a cut socket shows in a browser as an abnormal closure (1006), no reason given.

/// Longest frame header: two bytes, a 64-bit length and a masking key.
const MAX_HEADER: usize = 14;
const OPCODE_CLOSE: u8 = 0x8;
/// RFC 6455 §7.4.1: the endpoint is going away (a server going down, or leaving a page).
const GOING_AWAY: u16 = 1001;

/// Where a stream of frames stands: in a header, in a payload, or between two frames.
#[derive(Debug, Default)]
pub struct FrameCursor {
    header: [u8; MAX_HEADER],
    /// Bytes of the current header seen so far.
    have: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// A Close frame has begun.
    saw_close: bool,
}

/// The whole header's length, once its first two bytes are known.
fn header_len(first_two: [u8; 2]) -> usize {
    let length = match first_two[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if first_two[1] & 0x80 != 0 { 4 } else { 0 };
    2 + length + mask
}

/// The payload length a complete header declares.
fn payload_len(header: &[u8]) -> u64 {
    match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => header[2..10]
            .iter()
            .fold(0, |n, &b| (n << 8) | u64::from(b)),
        n => u64::from(n),
    }
}

impl FrameCursor {
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0
    }

    /// Moves over `bytes` — only to the end of the current frame if `to_boundary` (nothing,
    /// if already between frames) — and returns how many it moved over.
    pub fn advance(&mut self, bytes: &[u8], to_boundary: bool) -> usize {
        let mut at = 0;
        while at < bytes.len() && !(to_boundary && self.at_boundary()) {
            if self.payload_left > 0 {
                let n = self.payload_left.min((bytes.len() - at) as u64);
                self.payload_left -= n;
                at += n as usize;
                continue;
            }
            self.header[self.have] = bytes[at];
            self.have += 1;
            at += 1;
            if self.have >= 2 && self.have == header_len([self.header[0], self.header[1]]) {
                self.payload_left = payload_len(&self.header[..self.have]);
                self.saw_close |= self.header[0] & 0x0f == OPCODE_CLOSE;
                self.have = 0;
            }
        }
        at
    }

    /// A Close frame has begun: its sender sends no more frames.
    pub fn saw_close(&self) -> bool {
        self.saw_close
    }
}

/// Which way a tunnel's bytes go: a Close the edge sends to the upstream is masked, as from a
/// client (RFC 6455 §5.3); one to the client is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    Client,
    Upstream,
}

/// A Close frame with code 1001 and `reason` (at most 123 bytes: control frames carry 125).
pub fn close_frame(reason: &str, toward: Toward) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = GOING_AWAY.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    let len = payload.len() as u8;
    match toward {
        Toward::Client => [vec![0x80 | OPCODE_CLOSE, len], payload].concat(),
        Toward::Upstream => {
            let key: [u8; 4] = rand::random();
            let masked = payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]);
            [0x80 | OPCODE_CLOSE, 0x80 | len]
                .into_iter()
                .chain(key)
                .chain(masked)
                .collect()
        }
    }
}

/// One direction of a tunnel: which of the bytes read from one side go on to the other.
#[derive(Debug)]
pub struct Direction {
    /// `None` for a protocol other than WebSocket: bytes the edge cannot read.
    frames: Option<FrameCursor>,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Relaying,
    /// To end: the current frame goes on whole, then the edge's Close.
    Closing,
    /// The edge's Close sent: what the source sends is dropped until its own Close.
    Discarding,
    Finished,
}

/// What to do with bytes just read (or on [`Direction::end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// How many of them, from the first, go on to the other side.
    pub forward: usize,
    /// Then the edge's Close goes to the other side.
    pub then_close: bool,
    /// This direction is done: the other side's write half can be shut.
    pub finished: bool,
}

impl Direction {
    pub fn new(websocket: bool) -> Self {
        Self {
            frames: websocket.then(FrameCursor::default),
            phase: Phase::Relaying,
        }
    }

    /// The tunnel is to end. Without frames to read, the direction ends at once.
    pub fn end(&mut self) -> Step {
        match (&self.frames, self.phase) {
            (None, _) => {
                self.phase = Phase::Finished;
                self.step(0, false)
            }
            (Some(_), Phase::Relaying) => {
                self.phase = Phase::Closing;
                self.read(&[])
            }
            _ => self.step(0, false),
        }
    }

    /// Bytes read from the source.
    pub fn read(&mut self, bytes: &[u8]) -> Step {
        let Some(frames) = &mut self.frames else {
            return self.step(bytes.len(), false);
        };
        match self.phase {
            Phase::Relaying => {
                frames.advance(bytes, false);
                self.step(bytes.len(), false)
            }
            Phase::Closing => {
                let forward = frames.advance(bytes, true);
                if !frames.at_boundary() {
                    return self.step(forward, false);
                }
                // The source's own Close, passed on whole, stands for the edge's.
                let closed_already = frames.saw_close();
                frames.advance(&bytes[forward..], false);
                self.phase = Phase::Discarding;
                self.step(forward, !closed_already)
            }
            Phase::Discarding => {
                frames.advance(bytes, false);
                self.step(0, false)
            }
            Phase::Finished => self.step(0, false),
        }
    }

    fn step(&mut self, forward: usize, then_close: bool) -> Step {
        if self.phase == Phase::Discarding && self.frames.as_ref().is_some_and(|f| f.saw_close()) {
            self.phase = Phase::Finished;
        }
        Step {
            forward,
            then_close,
            finished: self.phase == Phase::Finished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(forward: usize, then_close: bool, finished: bool) -> Step {
        Step {
            forward,
            then_close,
            finished,
        }
    }

    /// A frame as a client sends it (masked) or a server (not), with `len` payload bytes.
    fn frame(opcode: u8, len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let mask = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => f.push(mask | len as u8),
            126..=0xffff => {
                f.push(mask | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(mask | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(0x55, len));
        f
    }

    /// Frames of every length form, masked and not, and where each ends in the stream.
    fn stream() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for (len, masked) in [
            (0, false),
            (5, true),
            (125, false),
            (126, true),
            (300, false),
        ]
        .into_iter()
        .chain([(70_000, true), (1, false)])
        {
            bytes.extend(frame(0x2, len, masked));
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    #[test]
    fn boundaries_are_found_however_the_bytes_are_split() {
        let (bytes, ends) = stream();
        for piece in [1, 2, 3, 7, 13, 100, 4096, bytes.len()] {
            let mut cursor = FrameCursor::default();
            let mut boundaries = Vec::new();
            let mut at = 0;
            for chunk in bytes.chunks(piece) {
                assert_eq!(cursor.advance(chunk, false), chunk.len());
                at += chunk.len();
                if cursor.at_boundary() {
                    boundaries.push(at);
                }
            }
            let expected: Vec<usize> = ends
                .iter()
                .copied()
                .filter(|e| e % piece == 0 || *e == bytes.len())
                .collect();
            assert_eq!(boundaries, expected, "piece {piece}");
            assert!(!cursor.saw_close());
        }
    }

    #[test]
    fn advancing_to_the_boundary_stops_at_each_frames_end() {
        let (bytes, ends) = stream();
        let mut cursor = FrameCursor::default();
        assert_eq!(cursor.advance(&bytes, true), 0, "between frames already");
        // One byte in, then to the boundary: the end of the first frame with a payload.
        let mut at = cursor.advance(&bytes[..1], false);
        for &end in &ends {
            if at >= end {
                continue;
            }
            at += cursor.advance(&bytes[at..], true);
            assert_eq!(at, end);
            assert!(cursor.at_boundary());
            // Into the next frame by one byte, so the next stop is its end.
            at += cursor.advance(&bytes[at..(at + 1).min(bytes.len())], false);
        }
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn a_close_is_seen_once_its_header_is_complete() {
        let mut cursor = FrameCursor::default();
        let close = frame(OPCODE_CLOSE, 2, true);
        cursor.advance(&close[..5], false);
        assert!(!cursor.saw_close(), "header not complete");
        cursor.advance(&close[5..], false);
        assert!(cursor.saw_close() && cursor.at_boundary());
    }

    #[test]
    fn close_frames_say_going_away_masked_toward_the_upstream_only() {
        let to_client = close_frame("edge shutting down", Toward::Client);
        assert_eq!(to_client[..4], [0x88, 20, 0x03, 0xe9]);
        assert_eq!(&to_client[4..], b"edge shutting down");

        let to_upstream = close_frame("idle", Toward::Upstream);
        assert_eq!(to_upstream[..2], [0x88, 0x80 | 6]);
        let key = &to_upstream[2..6];
        let payload: Vec<u8> = to_upstream[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(payload, b"\x03\xe9idle");

        let long = close_frame(&"x".repeat(500), Toward::Client);
        assert_eq!(
            long.len(),
            2 + 125,
            "a control frame's payload is at most 125 bytes"
        );
        for frame in [to_client, to_upstream, long] {
            let mut cursor = FrameCursor::default();
            assert_eq!(cursor.advance(&frame, false), frame.len());
            assert!(cursor.at_boundary() && cursor.saw_close());
        }
    }

    #[test]
    fn ending_waits_for_the_frame_under_way_then_drops_all_but_the_sources_close() {
        let mut d = Direction::new(true);
        let data = frame(0x1, 1000, false);
        assert_eq!(d.read(&data[..600]), step(600, false, false));
        // Mid-frame: nothing to send yet.
        assert_eq!(d.end(), step(0, false, false));
        // The frame's rest and the start of the next arrive together: the rest goes on, then
        // the Close; the next frame is dropped.
        let mut more = data[600..].to_vec();
        more.extend(frame(0x1, 50, false));
        assert_eq!(d.read(&more), step(404, true, false));
        assert_eq!(d.read(&frame(0x2, 70_000, false)).forward, 0);
        // The source answers with its Close: done.
        assert_eq!(d.read(&frame(OPCODE_CLOSE, 2, false)), step(0, false, true));
        assert_eq!(d.read(b"late").forward, 0);
    }

    #[test]
    fn ending_between_frames_closes_at_once() {
        let mut d = Direction::new(true);
        d.read(&frame(0x1, 10, true));
        assert_eq!(d.end(), step(0, true, false));
        assert_eq!(d.end(), step(0, false, false), "once");
    }

    #[test]
    fn a_source_that_closed_already_gets_no_second_close_sent_for_it() {
        let mut d = Direction::new(true);
        let close = frame(OPCODE_CLOSE, 2, true);
        d.read(&close[..1]);
        // Its Close is under way when the tunnel is to end: it goes on whole, and is all.
        assert_eq!(d.end().forward, 0);
        assert_eq!(d.read(&close[1..]), step(close.len() - 1, false, true));

        let mut d = Direction::new(true);
        d.read(&close);
        assert_eq!(d.end(), step(0, false, true));
    }

    #[test]
    fn other_protocols_pass_whole_and_end_at_once() {
        let mut d = Direction::new(false);
        assert_eq!(d.read(&[0xff; 100]), step(100, false, false));
        assert_eq!(d.end(), step(0, false, true));
    }

    #[test]
    fn garbage_never_panics_and_ends_by_the_grace_period_only() {
        // A 64-bit length with every bit set: a frame that never ends.
        let mut d = Direction::new(true);
        let mut bytes = vec![0x82, 127];
        bytes.extend([0xff; 8]);
        bytes.extend([0; 1000]);
        assert_eq!(d.read(&bytes).forward, bytes.len());
        assert_eq!(d.end(), step(0, false, false));
        assert_eq!(d.read(&[0; 4096]).forward, 4096, "the frame goes on");
    }
}
