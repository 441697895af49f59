//! HTTP/2 frames written by hand, for what a well-behaved client (the `h2` crate) will not
//! send: streams past the advertised limit, resets of streams just opened, frames on streams
//! already closed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

pub const REFUSED_STREAM: u32 = 0x7;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const FRAME_SIZE_ERROR: u32 = 0x6;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let code = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(code.try_into().ok()?))
    }
}

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small frame");
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A GET's header block in HPACK with neither the dynamic table nor Huffman coding: static
/// entries for the method and scheme, literal values for the path and authority.
pub fn get(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    for (name_index, value) in [(4u8, path), (1, "edge.test")] {
        // A literal without indexing, its name from the static table; a short length.
        let len = u8::try_from(value.len())
            .ok()
            .filter(|&n| n < 0x7f)
            .expect("a short value");
        block.extend([name_index, len]);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// A `user-agent: a` field (a literal without indexing, the name from the static table).
pub const USER_AGENT_A: [u8; 4] = [0x0f, 0x2b, 0x01, b'a'];

pub struct RawH2 {
    pub reader: FrameReader,
    pub writer: OwnedWriteHalf,
    /// The edge's SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_streams: Option<u32>,
}

impl RawH2 {
    /// Connects with prior knowledge, exchanges settings and acknowledges the edge's.
    pub async fn connect(addr: SocketAddr) -> RawH2 {
        let (read, mut writer) = TcpStream::connect(addr)
            .await
            .expect("connects")
            .into_split();
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        writer.write_all(&hello).await.expect("writes");
        let mut reader = FrameReader {
            read,
            buf: Vec::new(),
        };
        let settings = loop {
            let f = reader.next().await.expect("the edge's settings");
            if f.kind == SETTINGS && f.flags & ACK == 0 {
                break f.payload;
            }
        };
        let max_streams = settings.chunks_exact(6).find_map(|s| {
            (u16::from_be_bytes([s[0], s[1]]) == SETTINGS_MAX_CONCURRENT_STREAMS)
                .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
        });
        writer
            .write_all(&frame(SETTINGS, ACK, 0, &[]))
            .await
            .expect("writes");
        RawH2 {
            reader,
            writer,
            max_streams,
        }
    }
}

pub struct FrameReader {
    read: OwnedReadHalf,
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next frame; `None` once the edge has closed the connection. Panics after 15 s of
    /// silence: the edge must answer or close, never hang.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let head: Vec<u8> = self.buf.drain(..9 + len).collect();
                    return Some(Frame {
                        kind: head[3],
                        flags: head[4],
                        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                            & 0x7fff_ffff,
                        payload: head[9..].to_vec(),
                    });
                }
            }
            let mut chunk = [0u8; 16 << 10];
            let n = tokio::time::timeout(Duration::from_secs(15), self.read.read(&mut chunk))
                .await
                .expect("the edge answers or closes")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The error code of the GOAWAY the edge sends before it closes the connection.
    pub async fn goaway(&mut self) -> Option<u32> {
        let frames = self.until_closed().await;
        frames.iter().find(|f| f.kind == GOAWAY)?.error_code()
    }

    /// Every frame until the edge closes the connection.
    pub async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = self.next().await {
            frames.push(f);
        }
        frames
    }
}
