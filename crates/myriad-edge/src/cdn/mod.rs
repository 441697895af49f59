//! The edge as a caching reverse proxy (`myriad edge --origin …`): HTTP/1.1 and HTTP/2
//! (cleartext, by prior knowledge) in front of one origin or a parent edge.

pub mod admin;
mod fill;
mod metrics;
mod proxy;
mod store;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub use metrics::{BlockReason, Metrics, Outcome};
pub use proxy::{Cdn, CdnConfig};
pub use upstream::UpstreamError;

/// Request heads must arrive within this (slow-header clients are cut off).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (HTTP/1.1 read buffer).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Accepts connections until the listener fails.
pub async fn serve(listener: TcpListener, cdn: Arc<Cdn>) -> std::io::Result<()> {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let cdn = cdn.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let cdn = cdn.clone();
                async move { Ok::<_, std::convert::Infallible>(cdn.handle(req, remote).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES);
            builder.http2().timer(TokioTimer::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%remote, "connection ended: {e}");
            }
        });
    }
}
