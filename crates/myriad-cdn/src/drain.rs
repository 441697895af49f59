//! Graceful stop: the listeners stop accepting, every connection is asked to close once its
//! requests are answered (HTTP/1.1 `Connection: close`, an HTTP/2 or HTTP/3 GOAWAY), and the
//! edge waits for them, up to a limit, before it exits.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// Held by each listener and connection: tells them to stop, and keeps the switch waiting
/// while any of them is alive.
#[derive(Clone)]
pub struct Drain {
    stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

/// Starts a drain.
pub struct DrainSwitch {
    stop: watch::Sender<bool>,
    alive: mpsc::Receiver<()>,
}

/// A switch and the first handle; clone the handle for each listener.
pub fn drain() -> (DrainSwitch, Drain) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, alive_rx) = mpsc::channel(1);
    (
        DrainSwitch {
            stop: stop_tx,
            alive: alive_rx,
        },
        Drain {
            stop: stop_rx,
            _alive: alive_tx,
        },
    )
}

impl Drain {
    /// Resolves once the drain has started (never, if the switch is gone without starting it).
    pub async fn stopped(&mut self) {
        loop {
            if *self.stop.borrow_and_update() {
                return;
            }
            if self.stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl DrainSwitch {
    /// Stops the listeners and waits until every handle is gone — each listener and each
    /// connection it made — or `limit` passes. True when all finished in time.
    pub async fn drain(mut self, limit: Duration) -> bool {
        let _ = self.stop.send(true);
        tokio::time::timeout(limit, self.alive.recv()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_switch_waits_for_every_handle() {
        let (switch, first) = drain();
        let mut conn = first.clone();
        drop(first);
        let worker = tokio::spawn(async move {
            conn.stopped().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(conn);
        });
        assert!(switch.drain(Duration::from_secs(5)).await);
        worker.await.unwrap();
    }

    #[tokio::test]
    async fn the_switch_gives_up_at_its_limit() {
        let (switch, held) = drain();
        assert!(!switch.drain(Duration::from_millis(50)).await);
        drop(held);
    }

    #[tokio::test]
    async fn without_a_drain_nothing_stops() {
        let (switch, mut handle) = drain();
        drop(switch);
        let waited = tokio::time::timeout(Duration::from_millis(50), handle.stopped()).await;
        assert!(waited.is_err());
    }
}
