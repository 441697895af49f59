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

fn asset(path: &str) -> Response {
    match Assets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_owned()),
                    // The client is small and changes with the binary: always revalidate.
                    (header::CACHE_CONTROL, "no-cache".to_owned()),
                ],
                file.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
