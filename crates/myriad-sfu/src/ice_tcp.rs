//! ICE over TCP (RFC 6544) for one media worker: the listener of its passive TCP candidate,
//! for browsers on networks that let no UDP through. Each connection carries RFC 4571
//! frames (a 2-byte length, then one STUN, DTLS or SRTP packet): those that come in are
//! handed to the worker like datagrams, and what the core sends to the connection's address
//! goes back framed on it. A connection that says nothing for a while, or whose reader falls
//! behind, loses packets as UDP would rather than holding the worker up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Connections one worker keeps at most; more are closed at once.
pub const MAX_CONNS: usize = 1024;
/// A connection must send its first frame (a STUN check) within this.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// And then one at least this often (browsers check consent every few seconds).
const IDLE: Duration = Duration::from_secs(30);
/// Packets waiting to be written to one connection; beyond, they are dropped.
const OUT_QUEUE: usize = 512;
/// Frames waiting for the worker, from all connections.
const IN_QUEUE: usize = 4096;

enum TcpEvent {
    Connected {
        from: SocketAddr,
        out: mpsc::Sender<Bytes>,
    },
    Frame {
        from: SocketAddr,
        data: Vec<u8>,
    },
    Closed {
        from: SocketAddr,
    },
}

/// The worker's side: frames in, packets out by the connection's address.
pub struct IceTcp {
    local: SocketAddr,
    events: mpsc::Receiver<TcpEvent>,
    conns: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
}

impl IceTcp {
    /// Listens at `addr` (its port: the UDP socket's, when free) and accepts in a task of
    /// the current runtime.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(_) if addr.port() != 0 => TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?,
            Err(e) => return Err(e),
        };
        let local = listener.local_addr()?;
        let (events_tx, events) = mpsc::channel(IN_QUEUE);
        tokio::spawn(accept(listener, events_tx));
        Ok(Self {
            local,
            events,
            conns: HashMap::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next frame from a client: (its address, the packet).
    pub async fn next(&mut self) -> (SocketAddr, Vec<u8>) {
        loop {
            match self.events.recv().await {
                Some(TcpEvent::Connected { from, out }) => {
                    self.conns.insert(from, out);
                }
                Some(TcpEvent::Closed { from }) => {
                    self.conns.remove(&from);
                }
                Some(TcpEvent::Frame { from, data }) => return (from, data),
                None => std::future::pending().await,
            }
        }
    }

    /// Queues `packet` for the connection from `to`; false if there is none or it is full.
    pub fn send(&self, to: SocketAddr, packet: &[u8]) -> bool {
        self.conns
            .get(&to)
            .is_some_and(|out| out.try_send(Bytes::copy_from_slice(packet)).is_ok())
    }
}

async fn accept(listener: TcpListener, events: mpsc::Sender<TcpEvent>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::warn!("ICE-TCP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if events.is_closed() {
            return;
        }
        if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNS {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(%from, "ICE-TCP connection refused: {MAX_CONNS} open");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (events, open) = (events.clone(), Arc::clone(&open));
        tokio::spawn(async move {
            serve(stream, from, &events).await;
            let _ = events.send(TcpEvent::Closed { from }).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Reads one connection's frames until it ends, errs or idles; writes what is queued for
/// it meanwhile.
async fn serve(stream: TcpStream, from: SocketAddr, events: &mpsc::Sender<TcpEvent>) {
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out) = mpsc::channel::<Bytes>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(packet) = out.recv().await {
            let Ok(len) = u16::try_from(packet.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(2 + packet.len());
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&packet);
            match tokio::time::timeout(IDLE, wr.write_all(&framed)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    });
    if events
        .send(TcpEvent::Connected { from, out: out_tx })
        .await
        .is_err()
    {
        writer.abort();
        return;
    }
    let mut wait = FIRST_FRAME;
    loop {
        let len = match tokio::time::timeout(wait, rd.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => break,
        };
        let mut data = vec![0u8; len];
        match tokio::time::timeout(IDLE, rd.read_exact(&mut data)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        wait = IDLE;
        if data.is_empty() {
            continue;
        }
        if events.send(TcpEvent::Frame { from, data }).await.is_err() {
            break;
        }
    }
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn framed(stream: &mut TcpStream, packet: &[u8]) {
        let len = u16::try_from(packet.len()).unwrap().to_be_bytes();
        stream.write_all(&len).await.unwrap();
        stream.write_all(packet).await.unwrap();
    }

    #[tokio::test]
    async fn frames_come_in_by_address_and_go_back_framed() {
        let mut tcp = IceTcp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut client = TcpStream::connect(tcp.local_addr()).await.unwrap();
        let me = client.local_addr().unwrap();
        // One frame in two writes, an empty one (skipped), and another.
        client.write_all(&[0, 5, b'h', b'e']).await.unwrap();
        client.write_all(b"llo").await.unwrap();
        framed(&mut client, b"").await;
        framed(&mut client, b"again").await;
        assert_eq!(tcp.next().await, (me, b"hello".to_vec()));
        assert_eq!(tcp.next().await, (me, b"again".to_vec()));
        assert!(tcp.send(me, b"back"));
        let mut got = [0u8; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x00\x04back");
        assert!(!tcp.send("127.0.0.1:9".parse().unwrap(), b"nobody"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed() {
        let tcp = IceTcp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut client = TcpStream::connect(tcp.local_addr()).await.unwrap();
        let mut buf = [0u8; 1];
        // Nothing said: the server closes it once the first frame is overdue.
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        // A length promising more than ever comes is overdue too.
        let mut client = TcpStream::connect(tcp.local_addr()).await.unwrap();
        client.write_all(&[0xff, 0xff, 1, 2, 3]).await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_closed_connection_is_forgotten() {
        let mut tcp = IceTcp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut first = TcpStream::connect(tcp.local_addr()).await.unwrap();
        let gone = first.local_addr().unwrap();
        framed(&mut first, b"x").await;
        assert_eq!(tcp.next().await.0, gone);
        drop(first);
        // Its close is on its way before the next connection's frame.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut second = TcpStream::connect(tcp.local_addr()).await.unwrap();
        framed(&mut second, b"y").await;
        assert_eq!(tcp.next().await.1, b"y".to_vec());
        assert!(!tcp.send(gone, b"late"));
    }
}
