//! A tunnel: an upgraded connection relayed between the client and the next hop until either
//! side closes it, or the edge ends it — nothing moved for the idle timeout, or the edge is
//! draining. A WebSocket tunnel then closes as WebSocket does ([`super::websocket`]): each
//! side gets a Close between two frames and answers with its own. Other protocols are cut.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::websocket::{close_frame, Direction, Toward};

/// How long the two sides get to answer the edge's Close before the tunnel is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
const BUFFER_BYTES: usize = 16 * 1024;

/// Why the edge ended a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Idle,
    Draining,
}

impl Ending {
    /// The Close frame's reason.
    fn reason(self) -> &'static str {
        match self {
            Ending::Idle => "idle timeout",
            Ending::Draining => "edge shutting down",
        }
    }
}

/// Relays until both sides have closed (or either fails), or until `end` resolves and the
/// closing that follows is done or has taken [`CLOSE_GRACE`]. Says why the edge ended it, if
/// it did.
pub async fn relay<C, U>(
    client: C,
    upstream: U,
    websocket: bool,
    end: impl Future<Output = Ending>,
) -> Option<Ending>
where
    C: AsyncRead + AsyncWrite,
    U: AsyncRead + AsyncWrite,
{
    let (ending_tx, ending) = watch::channel(None);
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let both = async {
        tokio::try_join!(
            pump(
                client_read,
                upstream_write,
                Direction::new(websocket),
                Toward::Upstream,
                ending.clone()
            ),
            pump(
                upstream_read,
                client_write,
                Direction::new(websocket),
                Toward::Client,
                ending
            ),
        )
    };
    tokio::pin!(both);
    let why = tokio::select! {
        ended = &mut both => {
            if let Err(e) = ended {
                tracing::debug!("tunnel ended: {e}");
            }
            return None;
        }
        why = end => why,
    };
    let _ = ending_tx.send(Some(why));
    match tokio::time::timeout(CLOSE_GRACE, both).await {
        Ok(Err(e)) => tracing::debug!(?why, "tunnel ended while closing: {e}"),
        Err(_) => tracing::debug!(?why, "tunnel cut: not closed within {CLOSE_GRACE:?}"),
        Ok(Ok(_)) => {}
    }
    Some(why)
}

/// Carries one direction: bytes from `from` to `to`, and once the tunnel is ending, what
/// [`Direction`] decides. Shuts `to`'s write half when `from` is done.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut direction: Direction,
    toward: Toward,
    mut ending: watch::Receiver<Option<Ending>>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; BUFFER_BYTES];
    let mut told = false;
    loop {
        let step = tokio::select! {
            read = from.read(&mut buf) => match read? {
                0 => break,
                n => direction.read(&buf[..n]),
            },
            _ = ending.wait_for(Option::is_some), if !told => {
                told = true;
                direction.end()
            }
        };
        to.write_all(&buf[..step.forward]).await?;
        if step.then_close {
            let why = (*ending.borrow()).unwrap_or(Ending::Draining);
            to.write_all(&close_frame(why.reason(), toward)).await?;
        }
        // TLS may hold written bytes until flushed.
        to.flush().await?;
        if step.finished {
            break;
        }
    }
    to.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, DuplexStream};

    /// A tunnel between two in-memory pipes; returns the far ends (the client's and the
    /// upstream's) and a trigger that ends the tunnel.
    fn tunnel(
        websocket: bool,
    ) -> (
        DuplexStream,
        DuplexStream,
        tokio::sync::oneshot::Sender<Ending>,
        tokio::task::JoinHandle<Option<Ending>>,
    ) {
        let (client, client_edge) = duplex(1 << 20);
        let (upstream, upstream_edge) = duplex(1 << 20);
        let (end_tx, end_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(relay(client_edge, upstream_edge, websocket, async {
            end_rx.await.unwrap_or(Ending::Draining)
        }));
        (client, upstream, end_tx, task)
    }

    async fn read_exact(s: &mut DuplexStream, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        s.read_exact(&mut v).await.unwrap();
        v
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_and_a_close_by_either_side_ends_it() {
        let (mut client, mut upstream, _end, task) = tunnel(true);
        client
            .write_all(&[0x81, 0x82, 1, 2, 3, 4, 0x48 ^ 1, 0x69 ^ 2])
            .await
            .unwrap();
        assert_eq!(
            read_exact(&mut upstream, 8).await[6..],
            [0x48 ^ 1, 0x69 ^ 2]
        );
        upstream.write_all(&[0x81, 2, b'o', b'k']).await.unwrap();
        assert_eq!(read_exact(&mut client, 4).await, [0x81, 2, b'o', b'k']);
        drop(client);
        upstream.shutdown().await.unwrap();
        assert_eq!(task.await.unwrap(), None, "ended by the sides");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_websocket_tunnel_sends_each_side_a_close_and_awaits_theirs() {
        let (mut client, mut upstream, end, task) = tunnel(true);
        // A message from the upstream is half through when the tunnel is to end.
        upstream.write_all(&[0x82, 10, 0, 1, 2, 3]).await.unwrap();
        assert_eq!(read_exact(&mut client, 6).await, [0x82, 10, 0, 1, 2, 3]);
        end.send(Ending::Draining).unwrap();
        // The upstream gets its Close at once (the client's direction is between frames).
        let to_upstream = read_exact(&mut upstream, 6 + 20).await;
        assert_eq!(to_upstream[..2], [0x88, 0x80 | 20]);
        // The message's rest goes to the client whole, then the Close; a later frame not.
        upstream
            .write_all(&[4, 5, 6, 7, 8, 9, 0x81, 1, b'x'])
            .await
            .unwrap();
        assert_eq!(read_exact(&mut client, 6).await, [4, 5, 6, 7, 8, 9]);
        let to_client = read_exact(&mut client, 22).await;
        assert_eq!(to_client[..4], [0x88, 20, 0x03, 0xe9]);
        assert_eq!(&to_client[4..], b"edge shutting down");
        // Each answers with its Close; the tunnel ends with both halves shut.
        client
            .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9])
            .await
            .unwrap();
        upstream.write_all(&[0x88, 2, 0x03, 0xe9]).await.unwrap();
        assert_eq!(task.await.unwrap(), Some(Ending::Draining));
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing after the Close: {rest:?}");
        upstream.read_to_end(&mut rest).await.unwrap();
        assert!(
            rest.is_empty(),
            "the client's Close is not passed on: {rest:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sides_that_never_answer_are_cut_after_the_grace() {
        let (_client, _upstream, end, task) = tunnel(true);
        end.send(Ending::Idle).unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(task.await.unwrap(), Some(Ending::Idle));
        assert_eq!(started.elapsed(), CLOSE_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn other_protocols_are_cut_at_once() {
        let (mut client, mut upstream, end, task) = tunnel(false);
        client.write_all(b"\x00anything").await.unwrap();
        assert_eq!(read_exact(&mut upstream, 9).await, b"\x00anything");
        end.send(Ending::Draining).unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(task.await.unwrap(), Some(Ending::Draining));
        assert_eq!(started.elapsed(), Duration::ZERO);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
