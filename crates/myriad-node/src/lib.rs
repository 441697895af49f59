//! A meeting node (`myriad serve`): the embedded web client, WebSocket signalling sessions
//! and the control API, on one port.

#![allow(clippy::disallowed_methods)] // an I/O shell: reads the clock

mod session;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use myriad_control::Control;

/// Everything `myriad serve` answers on its HTTP port.
pub fn router(control: Arc<Control>) -> Router {
    myriad_control::router()
        .route("/ws", axum::routing::get(session::upgrade))
        .merge(web::router())
        .with_state(control)
}

/// Serves until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
