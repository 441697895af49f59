//! The origin every cache under test sits in front of: `/obj/{size}` returns `size` bytes,
//! cacheable for an hour; `/cold/{name}` answers after a delay, so concurrent misses overlap;
//! `/pass/{n}` is 1 KiB no cache may keep.
//! It counts the requests it gets per path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

#[derive(Default)]
pub struct Counts(Mutex<HashMap<String, u64>>);

impl Counts {
    fn hit(&self, path: String) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(path).or_default() += 1;
        }
    }

    pub fn get(&self, path: &str) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(path).copied())
            .unwrap_or(0)
    }
}

pub struct Origin {
    pub port: u16,
    pub counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

/// How long a cold object takes to come from the origin.
const COLD_DELAY: Duration = Duration::from_millis(500);

impl Origin {
    pub async fn start() -> anyhow::Result<Self> {
        let counts = Arc::new(Counts::default());
        let app = Router::new()
            .route("/obj/{size}", get(object))
            .route("/cold/{name}", get(cold))
            .route("/pass/{n}", get(pass))
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { port, counts, task })
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn object(State(counts): State<Arc<Counts>>, Path(size): Path<usize>) -> impl IntoResponse {
    counts.hit(format!("/obj/{size}"));
    body(size.min(64 << 20))
}

async fn cold(State(counts): State<Arc<Counts>>, Path(name): Path<String>) -> impl IntoResponse {
    counts.hit(format!("/cold/{name}"));
    tokio::time::sleep(COLD_DELAY).await;
    body(1024)
}

/// What no cache may keep (an API's answer, a page with a session): not counted, every one
/// is new.
async fn pass() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "private, no-store")],
        vec![b'x'; 1024],
    )
}

fn body(size: usize) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        vec![b'x'; size],
    )
}
