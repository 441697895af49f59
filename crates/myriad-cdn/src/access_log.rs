//! The access log (`--access-log FILE`): one JSON line per request once its response body is
//! done or dropped — who asked for what, the status, how the cache answered, the bytes handed
//! to the connection and the times. A thread of its own writes the lines through a bounded
//! queue, so a slow or full disk costs lines (counted in the metrics), never requests. The
//! file is opened again on SIGHUP, for log rotation.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

use super::metrics::{BlockReason, Outcome};
use crate::body::{BoxError, ProxyBody};

/// Lines waiting for the writer; beyond this they are dropped.
const QUEUE_LINES: usize = 64 * 1024;
/// How often the writer writes what has queued up.
const WRITE_EVERY: Duration = Duration::from_millis(50);
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

enum Command {
    Line(String),
    Reopen,
}

/// Where lines go: the writer thread's queue.
pub struct AccessLog {
    queue: SyncSender<Command>,
    dropped: Counter,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl AccessLog {
    /// Opens (or creates) `path` for appending and starts its writer; lines the queue cannot
    /// take are counted in `dropped`.
    pub fn open(path: PathBuf, dropped: Counter) -> std::io::Result<Self> {
        let file = open_append(&path)?;
        let (queue, lines) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&path, file, lines))?;
        Ok(Self { queue, dropped })
    }

    /// Opens the file again by its name (after a rotation moved the old one away).
    pub fn reopen(&self) {
        if self.queue.try_send(Command::Reopen).is_err() {
            tracing::warn!("access log not reopened: its queue is full");
        }
    }

    /// A line for what was refused before it became a request: a head too slow, too large
    /// or malformed, a connection over its address's limit. `status`: what the client was
    /// answered, if anything (HTTP/2 and QUIC refusals close instead).
    pub fn refused(&self, client: IpAddr, reason: BlockReason, status: Option<u16>) {
        self.write(json_line(&RefusalLine {
            time: rfc3339(SystemTime::now()),
            client,
            refused: reason,
            status,
        }));
    }

    fn write(&self, line: String) {
        if self.queue.try_send(Command::Line(line)).is_err() {
            self.dropped.inc();
        }
    }
}

/// The writer: wakes every [`WRITE_EVERY`] and writes what has queued up. Sleeping on a
/// timer rather than on the queue spares every request a wake-up of this thread.
fn write_lines(path: &Path, file: File, lines: Receiver<Command>) {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let mut failing = false;
    loop {
        std::thread::sleep(WRITE_EVERY);
        loop {
            match lines.try_recv() {
                Ok(Command::Line(line)) => {
                    let written = out.write_all(line.as_bytes());
                    note_outcome(&mut failing, written, path);
                }
                Ok(Command::Reopen) => {
                    let _ = out.flush();
                    match open_append(path) {
                        Ok(file) => out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), "access log not reopened: {e}")
                        }
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let flushed = out.flush();
        note_outcome(&mut failing, flushed, path);
    }
}

/// Logs a write error once, not once per line, and its end.
fn note_outcome(failing: &mut bool, result: std::io::Result<()>, path: &Path) {
    match (result, *failing) {
        (Err(e), false) => {
            tracing::warn!(path = %path.display(), "access log lines lost: {e}");
            *failing = true;
        }
        (Ok(()), true) => {
            tracing::info!(path = %path.display(), "access log written again");
            *failing = false;
        }
        _ => {}
    }
}

/// What is known of a request when it arrives.
pub struct Arrival {
    time: SystemTime,
    started: Instant,
    client: IpAddr,
    method: Method,
    host: String,
    target: String,
    version: Version,
    referer: Option<String>,
    user_agent: Option<String>,
}

fn field(headers: &HeaderMap, name: http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

impl Arrival {
    pub fn of<B>(req: &Request<B>, client: IpAddr, started: Instant) -> Self {
        let headers = req.headers();
        // As the client named it, port and all (`:authority`, else `Host`).
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| field(headers, http::header::HOST))
            .unwrap_or_default();
        Self {
            time: SystemTime::now(),
            started,
            client,
            method: req.method().clone(),
            host,
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), ToString::to_string),
            version: req.version(),
            referer: field(headers, http::header::REFERER),
            user_agent: field(headers, http::header::USER_AGENT),
        }
    }
}

/// One line of the log.
#[derive(Serialize)]
struct Line<'a> {
    /// When the request arrived (RFC 3339, UTC).
    time: String,
    client: IpAddr,
    method: &'a str,
    host: &'a str,
    target: &'a str,
    protocol: &'static str,
    status: u16,
    /// How the cache answered, named as in `/metrics` (Hit, Miss, Stale, …).
    cache: Outcome,
    /// Body bytes handed to the connection.
    bytes: u64,
    /// Whether the whole body was handed over (false: the client left, or the next hop
    /// failed, before its end).
    complete: bool,
    /// From arrival to the response head, and to the body's end.
    head_ms: f64,
    duration_ms: f64,
    referer: Option<&'a str>,
    user_agent: Option<&'a str>,
}

/// The line of a refusal.
#[derive(Serialize)]
struct RefusalLine {
    time: String,
    client: IpAddr,
    refused: BlockReason,
    status: Option<u16>,
}

/// `value` as one line of JSON.
fn json_line(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string(value).unwrap_or_default();
    text.push('\n');
    text
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// RFC 3339 in UTC with milliseconds, always three digits (lines of one width sort as text).
fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The response's side of a line, fixed once its head is out.
struct Answer {
    status: u16,
    outcome: Outcome,
    head_ms: f64,
}

fn millis(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// The line for `arrival` answered with `answer`, `bytes` of its body handed over.
fn line(arrival: &Arrival, answer: &Answer, bytes: u64, complete: bool) -> String {
    let line = Line {
        time: rfc3339(arrival.time),
        client: arrival.client,
        method: arrival.method.as_str(),
        host: &arrival.host,
        target: &arrival.target,
        protocol: protocol(arrival.version),
        status: answer.status,
        cache: answer.outcome,
        bytes,
        complete,
        head_ms: answer.head_ms,
        duration_ms: millis(arrival.started),
        referer: arrival.referer.as_deref(),
        user_agent: arrival.user_agent.as_deref(),
    };
    json_line(&line)
}

/// A response body that writes the request's line when it ends or is dropped.
pub struct LoggedBody {
    inner: ProxyBody,
    bytes: u64,
    /// The body's length, when known from the start (its size or `Content-Length`): hyper
    /// stops polling once it has sent that much, so a body may be whole without having said
    /// it ended.
    length: Option<u64>,
    pending: Option<(Arc<AccessLog>, Arrival, Answer)>,
}

impl LoggedBody {
    /// `response` with its body logged as the answer to `arrival`.
    pub fn wrap(
        response: http::Response<ProxyBody>,
        log: Arc<AccessLog>,
        arrival: Arrival,
        outcome: Outcome,
    ) -> http::Response<ProxyBody> {
        let answer = Answer {
            status: response.status().as_u16(),
            outcome,
            head_ms: millis(arrival.started),
        };
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        response.map(|inner| {
            LoggedBody {
                length: inner.size_hint().exact().or(declared),
                inner,
                bytes: 0,
                pending: Some((log, arrival, answer)),
            }
            .boxed_unsync()
        })
    }

    fn finish(&mut self, complete: bool) {
        if let Some((log, arrival, answer)) = self.pending.take() {
            log.write(line(&arrival, &answer, self.bytes, complete));
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += data.len() as u64;
            }
        }
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finish(true);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let whole = self.inner.is_end_stream() || self.length == Some(self.bytes);
        self.finish(whole);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn arrival(headers: &[(&str, &str)]) -> Arrival {
        let mut req = Request::get("http://site.test/a/b?x=1").version(Version::HTTP_2);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        Arrival::of(
            &req.body(()).unwrap(),
            "192.0.2.7".parse().unwrap(),
            Instant::now(),
        )
    }

    fn temp_log() -> (tempfile::TempDir, PathBuf, Arc<AccessLog>, Counter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let dropped = Counter::default();
        let log = Arc::new(AccessLog::open(path.clone(), dropped.clone()).unwrap());
        (dir, path, log, dropped)
    }

    /// The file's lines, once `n` are there.
    fn lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..500 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= n {
                return text
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{n} lines not written to {}", path.display());
    }

    #[test]
    fn a_line_says_who_asked_for_what_and_how_it_was_answered() {
        let answer = Answer {
            status: 200,
            outcome: Outcome::Hit,
            head_ms: 0.25,
        };
        let text = line(
            &arrival(&[("referer", "https://r.test/"), ("user-agent", "curl/8")]),
            &answer,
            1024,
            true,
        );
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["client"], "192.0.2.7");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["host"], "site.test");
        assert_eq!(v["target"], "/a/b?x=1");
        assert_eq!(v["protocol"], "HTTP/2");
        assert_eq!(v["status"], 200);
        assert_eq!(v["cache"], "Hit");
        assert_eq!(v["bytes"], 1024);
        assert_eq!(v["complete"], true);
        assert_eq!(v["head_ms"], 0.25);
        assert_eq!(v["referer"], "https://r.test/");
        assert_eq!(v["user_agent"], "curl/8");
        let time = v["time"].as_str().unwrap();
        assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
    }

    #[test]
    fn times_are_utc_to_the_millisecond_in_one_width() {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        // 2026-12-06T14:43:29.810Z and .800Z: trailing zeros kept.
        assert_eq!(rfc3339(at(1_796_568_209_810)), "2026-12-06T14:43:29.810Z");
        assert_eq!(rfc3339(at(1_796_568_209_800)), "2026-12-06T14:43:29.800Z");
        assert_eq!(rfc3339(at(951_782_400_007)), "2000-02-29T00:00:00.007Z");
    }

    #[test]
    fn what_a_client_sends_cannot_break_a_line() {
        // Header values may hold quotes, backslashes, tabs and bytes that are not UTF-8
        // (replaced); the line stays one line of valid JSON.
        let mut req = Request::get("/").header("user-agent", "a\"b\\c\t");
        req = req.header(
            "referer",
            http::HeaderValue::from_bytes(b"x\xff\"}{").unwrap(),
        );
        let arrival = Arrival::of(
            &req.body(()).unwrap(),
            [127, 0, 0, 1].into(),
            Instant::now(),
        );
        let answer = Answer {
            status: 400,
            outcome: Outcome::Blocked,
            head_ms: 0.0,
        };
        let text = line(&arrival, &answer, 0, true);
        assert_eq!(text.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["user_agent"], "a\"b\\c\t");
        assert_eq!(v["referer"], "x\u{fffd}\"}{");
        assert_eq!(v["host"], "");
    }

    #[tokio::test]
    async fn bodies_read_to_their_end_are_logged_whole_and_one_dropped_early_is_not() {
        let (_dir, path, log, dropped) = temp_log();
        let whole = http::Response::new(
            Full::new(Bytes::from_static(b"hello"))
                .map_err(|e| match e {})
                .boxed_unsync(),
        );
        let body = LoggedBody::wrap(whole, log.clone(), arrival(&[]), Outcome::Hit).into_body();
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");

        // A stream does not know it has ended until it is polled past its last frame.
        let streamed = || {
            let chunks = futures_util::stream::iter(
                [b"abc".as_slice(), b"def"]
                    .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c)))),
            );
            http::Response::new(StreamBody::new(chunks).boxed_unsync())
        };
        let body = LoggedBody::wrap(streamed(), log.clone(), arrival(&[]), Outcome::Miss);
        assert_eq!(
            body.into_body().collect().await.unwrap().to_bytes(),
            "abcdef"
        );
        let mut body =
            LoggedBody::wrap(streamed(), log.clone(), arrival(&[]), Outcome::Miss).into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        drop(body);

        let got = lines(&path, 3);
        let ends: Vec<_> = got
            .iter()
            .map(|l| {
                (
                    l["cache"].as_str(),
                    l["bytes"].as_u64(),
                    l["complete"].as_bool(),
                )
            })
            .collect();
        assert_eq!(
            ends,
            [
                (Some("Hit"), Some(5), Some(true)),
                (Some("Miss"), Some(6), Some(true)),
                (Some("Miss"), Some(3), Some(false))
            ]
        );
        assert_eq!(dropped.get(), 0);
    }

    #[tokio::test]
    async fn an_empty_body_never_polled_is_logged_complete() {
        let (_dir, path, log, _) = temp_log();
        let empty = http::Response::new(
            http_body_util::Empty::new()
                .map_err(|e| match e {})
                .boxed_unsync(),
        );
        drop(LoggedBody::wrap(
            empty,
            log,
            arrival(&[]),
            Outcome::Revalidated,
        ));
        let got = lines(&path, 1);
        assert_eq!(
            (got[0]["bytes"].as_u64(), got[0]["complete"].as_bool()),
            (Some(0), Some(true))
        );
    }

    #[test]
    fn a_reopen_follows_a_rotation() {
        let (dir, path, log, _) = temp_log();
        let answer = || Answer {
            status: 200,
            outcome: Outcome::Hit,
            head_ms: 0.0,
        };
        log.write(line(&arrival(&[]), &answer(), 1, true));
        lines(&path, 1);
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        log.write(line(&arrival(&[]), &answer(), 2, true));
        assert_eq!(lines(&path, 1)[0]["bytes"], 2, "the new line in a new file");
        assert_eq!(lines(&rotated, 1).len(), 1, "the old file keeps its own");
    }

    #[test]
    fn a_refusal_says_who_was_refused_why_and_what_they_were_answered() {
        let (_dir, path, log, _) = temp_log();
        log.refused([192, 0, 2, 9].into(), BlockReason::Malformed, Some(400));
        log.refused([192, 0, 2, 9].into(), BlockReason::Http2Abuse, None);
        let got = lines(&path, 2);
        assert_eq!(got[0]["client"], "192.0.2.9");
        assert_eq!(got[0]["refused"], "Malformed");
        assert_eq!(got[0]["status"], 400);
        assert_eq!(got[1]["refused"], "Http2Abuse");
        assert!(got[1]["status"].is_null());
    }

    #[test]
    fn lines_the_queue_cannot_take_are_counted() {
        let (queue, _held) = sync_channel(1);
        let dropped = Counter::default();
        let log = AccessLog {
            queue,
            dropped: dropped.clone(),
        };
        log.write("one\n".into());
        log.write("two\n".into());
        log.write("three\n".into());
        assert_eq!(dropped.get(), 2);
    }
}
