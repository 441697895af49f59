//! The browser client, embedded in the binary: `/` (start page), `/m/<meeting-id>` (meeting)
//! and the static files they load.

use std::sync::Arc;

use crate::Node;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web"]
struct Assets;

pub fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route("/m/{id}", get(|| async { asset("index.html") }))
        .route(
            "/static/{*path}",
            get(|Path(path): Path<String>| async move { asset(&path) }),
        )
}

/// What a browser loads to join `meeting`: its page and the client's files (what a warm-up
/// fetches into the edges ahead of a join storm).
pub fn client_paths(meeting: &str) -> Vec<String> {
    let files = Assets::iter()
        .filter(|p| p != "index.html")
        .map(|p| format!("/static/{p}"));
    std::iter::once(format!("/m/{meeting}"))
        .chain(files)
        .collect()
}

fn asset(path: &str) -> Response {
    match Assets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let hash = file.metadata.sha256_hash();
            let etag: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_owned()),
                    // The client is small and changes with the binary: browsers always
                    // revalidate; edges (RFC 9213) keep it a minute, so a join storm is
                    // served at the edge, not here.
                    (header::CACHE_CONTROL, "no-cache".to_owned()),
                    (
                        header::HeaderName::from_static("cdn-cache-control"),
                        "max-age=60".to_owned(),
                    ),
                    (header::ETAG, format!("\"{etag}\"")),
                ],
                file.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
