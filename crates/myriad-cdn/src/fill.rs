//! One upstream fetch shared by every request that wants the same object at the same time
//! (request coalescing): the fetch runs in its own task, so a client that goes away does not
//! abort it, and each request streams the body as it arrives.
//!
//! A body that will be stored is kept whole: it is bounded by the per-object limit, and all
//! such bodies together by a [`FillBudget`]. A body that will not be stored is kept only until
//! every reader has it, and the fetch waits for the slowest reader: a large object passes
//! through in bounded memory, never buffered whole. A reader that takes nothing for
//! [`SLOW_READER_LIMIT`], or has kept others waiting for that long in all, is cut off, so a
//! client that stops or trickles cannot stall the others.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, StatusCode};
use tokio::sync::watch;

/// The response head of the shared fetch.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Upstream answered a conditional request with 304: this is the stored response,
    /// freshened.
    pub revalidated: bool,
    /// The response will be stored (as far as its head tells), so it may be shared.
    pub storing: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("upstream unreachable: {0}")]
    Connect(String),
    #[error("upstream timed out")]
    Timeout,
    #[error("upstream body broke off: {0}")]
    Body(String),
    #[error("the body does not match its Content-Digest")]
    Integrity,
    #[error("the fetch stopped: {0}")]
    Stopped(&'static str),
}

/// Chunks a pass-through fetch may run ahead of its slowest reader.
const PASS_THROUGH_WINDOW: usize = 32;

/// How long a pass-through fetch waits, with its window full, for the readers at the
/// window's start to take a chunk before it cuts them off (their responses end in an
/// error); and how long in all a reader may keep the window full while another reader has
/// read all there is. nginx's `send_timeout` is 60 s for one client; here others are
/// waiting too.
pub const SLOW_READER_LIMIT: Duration = Duration::from_secs(30);

/// What became of a pushed chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Taken; this many readers were cut off first for holding the fetch back.
    Kept { cut_off: usize },
    /// Nobody reads any more: the fetch may stop.
    Unread,
}

/// Memory every fill that keeps its whole body draws on: without it, many concurrent misses
/// of large (cache-busted) objects would hold each of them whole at once.
pub struct FillBudget {
    limit: u64,
    used: AtomicU64,
}

impl FillBudget {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
        }
    }

    fn take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    #[cfg(test)]
    fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct State {
    head: Option<Result<Head, FetchError>>,
    chunks: VecDeque<Bytes>,
    /// Index of `chunks[0]` in the body.
    base: usize,
    /// Keep every chunk (the body will be stored, or may still be).
    retain_all: bool,
    readers: HashMap<u64, Place>,
    next_reader: u64,
    done: Option<Result<(), FetchError>>,
    /// Bytes drawn from the budget for the kept body.
    reserved: u64,
}

/// A reader's place in the body.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// Index of the next chunk it reads.
    next: usize,
    /// How long it has kept the window full while another reader had read all there was.
    held_others: Duration,
}

/// Whether a pass-through fetch may add a chunk.
enum Room {
    Unread,
    Free,
    Full(Hold),
}

/// The readers that hold a full window, as it was seen full.
struct Hold {
    base: usize,
    /// The readers at the window's start.
    laggards: Vec<u64>,
    /// Some reader has read every chunk there is.
    others_waiting: bool,
    /// The most any of the laggards has held others back so far.
    most_held: Duration,
}

impl State {
    fn room(&self) -> Room {
        if self.readers.is_empty() {
            return Room::Unread;
        }
        if self.retain_all || self.chunks.len() < PASS_THROUGH_WINDOW {
            return Room::Free;
        }
        let end = self.base + self.chunks.len();
        let laggards = self.readers.iter().filter(|(_, p)| p.next == self.base);
        Room::Full(Hold {
            base: self.base,
            laggards: laggards.clone().map(|(&id, _)| id).collect(),
            others_waiting: self.readers.values().any(|p| p.next >= end),
            most_held: laggards
                .map(|(_, p)| p.held_others)
                .max()
                .unwrap_or_default(),
        })
    }

    fn trim(&mut self) {
        if self.retain_all {
            return;
        }
        let min = self
            .readers
            .values()
            .map(|p| p.next)
            .min()
            .unwrap_or(usize::MAX);
        while self.base < min && self.chunks.pop_front().is_some() {
            self.base += 1;
        }
    }
}

/// Written by the fetch task, read by any number of requests.
pub struct Fill {
    budget: Arc<FillBudget>,
    state: Mutex<State>,
    /// Bumped by the fetch (head, chunk, end): wakes readers.
    version: watch::Sender<u64>,
    /// Bumped by readers moving on or leaving: wakes a pass-through fetch waiting for room.
    progress: watch::Sender<u64>,
}

/// A request's place in the fill; registered when it joins, so nothing it needs is dropped.
pub struct Reader {
    fill: Arc<Fill>,
    id: u64,
    /// Joined after the body's start was let go: it cannot have the body whole.
    late: bool,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.fill.read_update(|s| {
            s.readers.remove(&self.id);
            s.trim();
        });
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        if let Ok(s) = self.state.get_mut() {
            self.budget.give_back(s.reserved);
        }
    }
}

impl Fill {
    pub fn new(budget: Arc<FillBudget>) -> Arc<Self> {
        Arc::new(Self {
            budget,
            state: Mutex::new(State {
                retain_all: true,
                ..State::default()
            }),
            version: watch::channel(0).0,
            progress: watch::channel(0).0,
        })
    }

    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        let out = self.state.lock().ok().map(|mut s| f(&mut s));
        self.version.send_modify(|v| *v = v.wrapping_add(1));
        out
    }

    /// A reader's change: only a pass-through fetch waits for those.
    fn read_update<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        let (out, notify) = match self.state.lock() {
            Ok(mut s) => (Some(f(&mut s)), !s.retain_all),
            Err(_) => (None, false),
        };
        if notify {
            self.progress.send_modify(|v| *v = v.wrapping_add(1));
        }
        out
    }

    pub fn reader(self: &Arc<Self>) -> Reader {
        let (id, late) = self
            .read_update(|s| {
                let id = s.next_reader;
                s.next_reader += 1;
                let place = Place {
                    next: s.base,
                    held_others: Duration::ZERO,
                };
                s.readers.insert(id, place);
                (id, s.base > 0)
            })
            .unwrap_or((u64::MAX, true));
        Reader {
            fill: self.clone(),
            id,
            late,
        }
    }

    /// Draws `n` more bytes of the kept body from the budget; false when it has no more.
    pub fn retain(&self, n: u64) -> bool {
        if !self.budget.take(n) {
            return false;
        }
        match self.state.lock() {
            Ok(mut s) => s.reserved += n,
            Err(_) => self.budget.give_back(n),
        }
        true
    }

    pub fn set_head(&self, head: Result<Head, FetchError>) {
        self.update(|s| s.head = Some(head));
    }

    /// The body will not be stored: keep chunks only until every reader has them.
    pub fn pass_through(&self) {
        let reserved = self.update(|s| {
            s.retain_all = false;
            s.trim();
            std::mem::take(&mut s.reserved)
        });
        self.budget.give_back(reserved.unwrap_or(0));
    }

    /// Appends a chunk; for a pass-through body, first waits until the slowest reader is
    /// close enough, or cuts off the readers at the window's start that take nothing for
    /// [`SLOW_READER_LIMIT`] or have kept others waiting that long in all.
    pub async fn push(&self, chunk: Bytes) -> Pushed {
        let mut rx = self.progress.subscribe();
        let mut stopped_at = None;
        let mut cut_off = 0;
        loop {
            rx.borrow_and_update();
            let room = self.state.lock().ok().map(|s| s.room());
            match room {
                None | Some(Room::Unread) if !self.retains() => return Pushed::Unread,
                Some(Room::Full(hold)) => {
                    let now = tokio::time::Instant::now();
                    let stopped = *stopped_at.get_or_insert(now + SLOW_READER_LIMIT);
                    let deadline = if hold.others_waiting {
                        stopped.min(now + SLOW_READER_LIMIT.saturating_sub(hold.most_held))
                    } else {
                        stopped
                    };
                    let woke = tokio::time::timeout_at(deadline, rx.changed()).await;
                    if let Ok(Err(_)) = woke {
                        return Pushed::Unread;
                    }
                    let stopped = tokio::time::Instant::now() >= stopped;
                    cut_off += self.charge_and_cut(&hold, now.elapsed(), stopped);
                }
                _ => break,
            }
        }
        self.update(|s| s.chunks.push_back(chunk));
        Pushed::Kept { cut_off }
    }

    /// After a wait with the window full: the readers that were at its start are charged
    /// the wait if others were waiting; those over the limit, and those still at the start
    /// if the fetch has waited for them for the limit (`stopped`), are unregistered (each
    /// gets an error when it next reads). How many.
    fn charge_and_cut(&self, hold: &Hold, waited: Duration, stopped: bool) -> usize {
        let cut = self.read_update(|s| {
            let mut cut = 0;
            for id in &hold.laggards {
                let Some(place) = s.readers.get_mut(id) else {
                    continue;
                };
                if hold.others_waiting {
                    place.held_others += waited;
                }
                let still = place.next == hold.base;
                if (stopped && still) || place.held_others >= SLOW_READER_LIMIT {
                    s.readers.remove(id);
                    cut += 1;
                }
            }
            s.trim();
            cut
        });
        let cut = cut.unwrap_or(0);
        if cut > 0 {
            tracing::info!(
                readers = cut,
                "cut off from a pass-through fetch: no chunk taken in {SLOW_READER_LIMIT:?}, \
                 or others kept waiting that long in all"
            );
        }
        cut
    }

    fn retains(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.retain_all)
    }

    pub fn finish(&self, result: Result<(), FetchError>) {
        self.update(|s| {
            if s.head.is_none() {
                if let Err(e) = &result {
                    s.head = Some(Err(e.clone()));
                }
            }
            s.done.get_or_insert(result);
        });
    }

    /// Waits for the response head.
    pub async fn head(&self) -> Result<Head, FetchError> {
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(head) = self.state.lock().ok().and_then(|s| s.head.clone()) {
                return head;
            }
            if rx.changed().await.is_err() {
                return Err(FetchError::Stopped("fill dropped"));
            }
        }
    }
}

impl Reader {
    /// The body from the start, as it arrives.
    pub fn body(self) -> impl Stream<Item = Result<Bytes, FetchError>> + Send + 'static {
        let rx = self.fill.version.subscribe();
        futures_util::stream::unfold(Some((self, rx)), |state| async move {
            // `None`: an error was reported, the stream is over.
            let (reader, mut rx) = state?;
            if reader.late {
                let e = FetchError::Stopped("joined after the start was let go");
                return Some((Err(e), None));
            }
            loop {
                rx.borrow_and_update();
                let step = reader
                    .fill
                    .read_update(|s| {
                        let Some(place) = s.readers.get_mut(&reader.id) else {
                            return Step::Fail(FetchError::Stopped(
                                "cut off: it fell too far behind the fetch",
                            ));
                        };
                        match (
                            place.next.checked_sub(s.base).and_then(|i| s.chunks.get(i)),
                            &s.done,
                        ) {
                            (Some(c), _) => {
                                let c = c.clone();
                                place.next += 1;
                                s.trim();
                                Step::Chunk(c)
                            }
                            (None, Some(Ok(()))) => Step::End,
                            (None, Some(Err(e))) => Step::Fail(e.clone()),
                            (None, None) => Step::Wait,
                        }
                    })
                    .unwrap_or(Step::Fail(FetchError::Stopped("fill state poisoned")));
                match step {
                    Step::Chunk(c) => return Some((Ok(c), Some((reader, rx)))),
                    Step::End => return None,
                    Step::Fail(e) => return Some((Err(e), None)),
                    Step::Wait => {
                        if rx.changed().await.is_err() {
                            return Some((Err(FetchError::Stopped("fill dropped")), None));
                        }
                    }
                }
            }
        })
    }
}

enum Step {
    Chunk(Bytes),
    End,
    Fail(FetchError),
    Wait,
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn budget() -> Arc<FillBudget> {
        Arc::new(FillBudget::new(1 << 20))
    }

    #[tokio::test]
    async fn fills_draw_on_one_budget_and_give_it_back() {
        let budget = Arc::new(FillBudget::new(100));
        let a = Fill::new(budget.clone());
        let b = Fill::new(budget.clone());
        assert!(a.retain(60));
        assert!(!b.retain(60), "over the budget");
        assert!(b.retain(40));
        assert_eq!(budget.used(), 100);
        // Passing through gives the kept body's share back; so does the end of a fill.
        a.pass_through();
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(!Fill::new(budget).retain(101));
    }

    #[tokio::test]
    async fn a_reader_joining_after_the_start_was_let_go_gets_an_error_not_a_tail() {
        let fill = Fill::new(budget());
        let first = fill.reader();
        fill.pass_through();
        let f = fill.clone();
        let writer = tokio::spawn(async move {
            for _ in 0..3 {
                f.push(Bytes::from_static(b"x")).await;
            }
        });
        let mut body = Box::pin(first.body());
        body.next().await.unwrap().unwrap();
        let late = fill.reader();
        let got = late.body().collect::<Vec<_>>().await;
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        body.next().await.unwrap().unwrap();
        body.next().await.unwrap().unwrap();
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn every_reader_gets_the_whole_body() {
        let fill = Fill::new(budget());
        let a = fill.reader();
        let b = fill.reader();
        let f = fill.clone();
        let writer = tokio::spawn(async move {
            for i in 0..100u8 {
                assert_eq!(
                    f.push(Bytes::from(vec![i; 10])).await,
                    Pushed::Kept { cut_off: 0 }
                );
            }
            f.finish(Ok(()));
        });
        let (x, y) = tokio::join!(a.body().collect::<Vec<_>>(), b.body().collect::<Vec<_>>());
        writer.await.unwrap();
        assert_eq!(x.len(), 100);
        assert_eq!(y.len(), 100);
        assert!(x.iter().all(|c| c.is_ok()));
    }

    #[tokio::test]
    async fn pass_through_keeps_a_bounded_window() {
        let fill = Fill::new(budget());
        fill.pass_through();
        let reader = fill.reader();
        let f = fill.clone();
        let writer = tokio::spawn(async move {
            for _ in 0..1000 {
                if f.push(Bytes::from_static(b"0123456789")).await == Pushed::Unread {
                    return false;
                }
                let held = f.state.lock().unwrap().chunks.len();
                assert!(held <= PASS_THROUGH_WINDOW, "held {held}");
            }
            f.finish(Ok(()));
            true
        });
        let got = reader.body().collect::<Vec<_>>().await;
        assert!(writer.await.unwrap());
        assert_eq!(got.len(), 1000);
    }

    /// The fetch's chunks for a pass-through body, then its end; how many readers it cut
    /// off.
    fn pass_through_of(fill: &Arc<Fill>, chunks: usize) -> tokio::task::JoinHandle<usize> {
        let f = fill.clone();
        tokio::spawn(async move {
            let mut cut = 0;
            for _ in 0..chunks {
                match f.push(Bytes::from_static(b"x")).await {
                    Pushed::Kept { cut_off } => cut += cut_off,
                    Pushed::Unread => panic!("someone reads"),
                }
            }
            f.finish(Ok(()));
            cut
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_reading_is_cut_off_and_the_others_go_on() {
        let fill = Fill::new(budget());
        fill.pass_through();
        let stalled = fill.reader();
        let reading = fill.reader();
        let started = tokio::time::Instant::now();
        let writer = pass_through_of(&fill, PASS_THROUGH_WINDOW * 3);
        let got = reading.body().collect::<Vec<_>>().await;
        assert_eq!(writer.await.unwrap(), 1, "one reader cut off");
        assert_eq!(got.len(), PASS_THROUGH_WINDOW * 3);
        assert!(got.iter().all(|c| c.is_ok()));
        // Held back once, for the limit.
        assert_eq!(started.elapsed().as_secs(), SLOW_READER_LIMIT.as_secs());
        let late = stalled.body().collect::<Vec<_>>().await;
        assert_eq!(late.len(), 1);
        assert!(late[0].is_err(), "told it was cut off");
    }

    /// Reads the body, sleeping `pause` after each chunk; the chunks and whether it ended
    /// in an error.
    async fn read_slowly(reader: Reader, pause: Duration) -> (usize, bool) {
        let mut body = Box::pin(reader.body());
        let mut n = 0;
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                return (n, true);
            }
            n += 1;
            tokio::time::sleep(pause).await;
        }
        (n, false)
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_trickles_is_cut_off_once_it_kept_the_others_waiting_for_the_limit() {
        let fill = Fill::new(budget());
        fill.pass_through();
        let slow = fill.reader();
        let fast = fill.reader();
        let started = tokio::time::Instant::now();
        let writer = pass_through_of(&fill, PASS_THROUGH_WINDOW * 3);
        // A chunk every 12 s, never 30 s without one: each wait is within the limit.
        let fast = async {
            let got = fast.body().collect::<Vec<_>>().await;
            (got, started.elapsed())
        };
        let (slow, (fast, fast_took)) =
            tokio::join!(read_slowly(slow, SLOW_READER_LIMIT * 2 / 5), fast);
        assert_eq!(writer.await.unwrap(), 1, "one reader cut off");
        assert_eq!(
            slow,
            (3, true),
            "three chunks, at 0, 12 and 24 s, then the error"
        );
        assert_eq!(fast.len(), PASS_THROUGH_WINDOW * 3);
        assert!(fast.iter().all(|c| c.is_ok()));
        assert_eq!(fast_took, SLOW_READER_LIMIT, "held back 30 s in all");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_alone_sets_the_pace_and_gets_the_whole_body() {
        let fill = Fill::new(budget());
        fill.pass_through();
        let slow = fill.reader();
        let writer = pass_through_of(&fill, PASS_THROUGH_WINDOW * 3);
        let got = read_slowly(slow, SLOW_READER_LIMIT / 2).await;
        assert_eq!(writer.await.unwrap(), 0, "nobody cut off");
        assert_eq!(got, (PASS_THROUGH_WINDOW * 3, false));
    }

    #[tokio::test]
    async fn a_pass_through_fetch_stops_when_nobody_reads() {
        let fill = Fill::new(budget());
        fill.pass_through();
        drop(fill.reader());
        assert_eq!(fill.push(Bytes::from_static(b"x")).await, Pushed::Unread);
    }

    #[tokio::test]
    async fn errors_end_the_stream() {
        let fill = Fill::new(budget());
        let r = fill.reader();
        fill.finish(Err(FetchError::Timeout));
        let got = r.body().collect::<Vec<_>>().await;
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        assert!(fill.head().await.is_err());
    }
}
