//! A load generator for large objects that reads each response's head and has the kernel
//! drop its body (`recv` with `MSG_TRUNC`): no copy into the client. `wrk` reads every body
//! into user space in 8 KiB calls, and on this machine one wrk thread receives ~2,500
//! responses of 1 MiB a second whatever serves them — a measure of wrk, not of the cache.
//! Like wrk: HTTP/1.1 keep-alive connections, one request in flight on each, one thread
//! (pinned to the load's CPU with `--pin`). The head is read into a buffer of its own, with
//! whatever part of the body arrived with it (at most `HEAD_BYTES`).

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use super::cpus::Split;
use super::Load;

/// Largest response head read.
const HEAD_BYTES: usize = 16 * 1024;

/// Loads `port`/`path` on `connections` connections for `duration`, from a thread of its own.
pub fn run(
    port: u16,
    path: &str,
    connections: usize,
    duration: Duration,
    pin: Option<Split>,
) -> anyhow::Result<Load> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let thread = std::thread::Builder::new()
        .name("discard-load".into())
        .spawn(move || {
            if let Some(split) = pin {
                split.pin_this_thread_to_load()?;
            }
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(load(port, request, connections.max(1), duration))
        })?;
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))?
}

async fn load(
    port: u16,
    request: String,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let started = Instant::now();
    let until = started + duration;
    let tasks = tokio::task::LocalSet::new();
    let handles: Vec<_> = streams
        .into_iter()
        .map(|stream| tasks.spawn_local(connection(stream, request.clone(), until)))
        .collect();
    let mut latencies = Vec::new();
    tasks
        .run_until(async {
            for handle in handles {
                latencies.extend(handle.await.context("load task")??);
            }
            anyhow::Ok(())
        })
        .await?;
    let elapsed = started.elapsed().min(duration).as_secs_f64();
    ensure!(!latencies.is_empty(), "no response within {duration:?}");
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Load {
        requests_per_s: latencies.len() as f64 / elapsed,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    })
}

/// Requests one after another until `until`; the latency (ms) of each answered in time.
async fn connection(
    mut stream: TcpStream,
    request: String,
    until: Instant,
) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    let mut head = vec![0u8; HEAD_BYTES];
    while Instant::now() < until {
        let sent = Instant::now();
        stream.write_all(request.as_bytes()).await?;
        let answered = tokio::time::timeout_at(until.into(), async {
            let mut filled = 0;
            let (head_len, body_len) = loop {
                if filled == head.len() {
                    bail!("a response head over {HEAD_BYTES} bytes");
                }
                let n = stream.read(&mut head[filled..]).await?;
                ensure!(n > 0, "the cache closed the connection");
                filled += n;
                if let Some(sizes) = response_sizes(&head[..filled])? {
                    break sizes;
                }
            };
            let read_of_body = (filled - head_len) as u64;
            ensure!(
                read_of_body <= body_len,
                "more bytes than the response's length (pipelined?)"
            );
            discard(&stream, body_len - read_of_body).await
        })
        .await;
        match answered {
            Ok(done) => done?,
            Err(_) => break,
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    Ok(latencies)
}

/// Drops the next `left` bytes of the stream in the kernel.
async fn discard(stream: &TcpStream, mut left: u64) -> anyhow::Result<()> {
    while left > 0 {
        stream.readable().await?;
        let want = usize::try_from(left).unwrap_or(usize::MAX);
        let dropped = stream.try_io(Interest::READABLE, || {
            // SAFETY: with MSG_TRUNC a TCP socket drops up to `want` received bytes and
            // writes nothing to the buffer, which may then be null.
            let n = unsafe {
                libc::recv(
                    stream.as_raw_fd(),
                    std::ptr::null_mut(),
                    want,
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match dropped {
            Ok(0) => bail!("the cache closed the connection mid-body"),
            Ok(n) => left = left.saturating_sub(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The head's length and the body's (`Content-Length`) once `buf` holds a whole head; a
/// status other than 2xx, or a body of no stated length, is an error (a cache that fails
/// requests is not fast).
fn response_sizes(buf: &[u8]) -> anyhow::Result<Option<(usize, u64)>> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    let head_len = match response.parse(buf).context("a malformed response head")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let code = response.code.unwrap_or(0);
    ensure!((200..300).contains(&code), "a response with status {code}");
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .context("a response without Content-Length")?;
    Ok(Some((head_len, length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_head_and_body_sizes() {
        let head = b"HTTP/1.1 200 OK\r\nAge: 3\r\ncontent-length: 1048576\r\n\r\n";
        assert_eq!(response_sizes(head).unwrap(), Some((head.len(), 1_048_576)));
        let mut with_body = head.to_vec();
        with_body.extend_from_slice(b"abc");
        assert_eq!(
            response_sizes(&with_body).unwrap(),
            Some((head.len(), 1_048_576))
        );
        assert_eq!(response_sizes(&head[..20]).unwrap(), None);
    }

    #[test]
    fn refuses_failures_and_unsized_bodies() {
        assert!(response_sizes(b"HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n").is_err());
        assert!(response_sizes(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(response_sizes(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(response_sizes(b"NOT HTTP\r\n\r\n").is_err());
    }

    /// Against a real server on loopback: every body dropped whole, requests counted.
    #[test]
    fn loads_a_server_and_drops_its_bodies() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = vec![b'x'; 300_000];
        std::thread::spawn(move || {
            use std::io::{BufRead, BufReader, Write};
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let body = body.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            );
                            if stream.write_all(head.as_bytes()).is_err()
                                || stream.write_all(&body).is_err()
                            {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let load = run(port, "/obj", 2, Duration::from_millis(500), None).unwrap();
        assert!(load.requests_per_s > 10.0, "{load:?}");
        assert!(load.p50_ms <= load.p99_ms);
    }
}
