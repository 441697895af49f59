//! A meeting node (`myriad serve`): the embedded web client, WebSocket signalling sessions,
//! this node's media, its links to the meetings it has people in, and the REST API, on one
//! port. Everything about a meeting's state is asked of its coordinator over the bus.

#![allow(clippy::disallowed_methods)] // an I/O shell: reads the clock

mod api;
mod link;
mod session;
mod web;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::Router;
use myriad_control::{Control, MeetingClient};
use myriad_proto::meeting::ConnRef;
use myriad_sfu::{PeerId, SfuHandle};
use tokio::sync::mpsc;

use link::{LinkHandle, Links, SessionMsg};

/// One node: its name on the bus, the control layer, its media task and its meeting links.
pub struct Node {
    pub control: Arc<Control>,
    pub sfu: SfuHandle,
    /// How this node is named in connection references (unique in a cluster).
    pub name: String,
    links: Links,
    next_conn: AtomicU64,
    next_peer: AtomicU64,
}

impl Node {
    pub fn new(control: Arc<Control>, sfu: SfuHandle, name: String) -> Arc<Self> {
        Arc::new(Self {
            control,
            sfu,
            name,
            links: Links::default(),
            next_conn: AtomicU64::new(1),
            next_peer: AtomicU64::new(1),
        })
    }

    /// A new signalling connection's reference.
    fn connection(&self) -> ConnRef {
        ConnRef {
            node: self.name.clone(),
            conn: self.next_conn.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A new media connection's id (unique on this node).
    fn peer_id(&self) -> PeerId {
        PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a connection with this node's link to the meeting.
    async fn register(
        &self,
        client: &MeetingClient,
        conn: u64,
        tx: mpsc::Sender<SessionMsg>,
    ) -> Result<LinkHandle, myriad_bus::BusError> {
        link::register(&self.links, &self.name, client, &self.sfu, conn, tx).await
    }
}

/// Everything `myriad serve` answers on its HTTP port.
pub fn router(node: Arc<Node>) -> Router {
    api::router()
        .route("/ws", axum::routing::get(session::upgrade))
        .merge(web::router())
        .with_state(node)
}

/// Serves until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
