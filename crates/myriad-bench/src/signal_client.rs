//! Signalling-only participants: a WebSocket client that joins with a token, reads every
//! message it is sent, and sends what the scenario gives it. Thousands fit in one process.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use myriad_proto::{ClientMsg, MeetingEvent, ServerMsg, PROTOCOL_VERSION};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a scenario learns from its participants.
pub trait Listener: Send + Sync {
    /// Joined; `join` is from the start of the connect to the welcome.
    fn welcomed(&self, join: Duration);
    fn event(&self, event: &MeetingEvent);
}

/// Joins and then reads until the server closes or `outbound` ends; sends what arrives on
/// `outbound`.
pub async fn join_and_listen(
    ws_url: &str,
    token: String,
    listener: &dyn Listener,
    mut outbound: Option<mpsc::Receiver<ClientMsg>>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut ws, _) = connect(ws_url).await?;
    let join = ClientMsg::Join {
        v: PROTOCOL_VERSION,
        token,
        resume: None,
    };
    ws.send(Message::Text(serde_json::to_string(&join)?.into()))
        .await?;
    let mut welcomed = false;
    loop {
        tokio::select! {
            msg = ws.next() => {
                let Some(msg) = msg else { bail!("connection closed") };
                let Message::Text(text) = msg? else { continue };
                match serde_json::from_str::<ServerMsg>(&text)? {
                    ServerMsg::Welcome { .. } if !welcomed => {
                        welcomed = true;
                        listener.welcomed(started.elapsed());
                    }
                    ServerMsg::Events { events } => {
                        for e in &events {
                            listener.event(&e.event);
                        }
                    }
                    ServerMsg::Error { code, message } => bail!("{code:?}: {message}"),
                    _ => {}
                }
            }
            out = next(&mut outbound) => match out {
                Some(msg) => ws.send(Message::Text(serde_json::to_string(&msg)?.into())).await?,
                None => return Ok(()),
            },
        }
    }
}

/// Connects with a small read buffer: tungstenite zeroes its whole buffer (128 KiB by default)
/// on every read, which made a quarter of the bench's CPU with thousands of clients.
pub async fn connect(ws_url: &str) -> anyhow::Result<(Ws, Response)> {
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    tokio_tungstenite::connect_async_with_config(ws_url, Some(config), false)
        .await
        .context("connect")
}

async fn next(rx: &mut Option<mpsc::Receiver<ClientMsg>>) -> Option<ClientMsg> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
