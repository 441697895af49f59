//! A signalling client over a real WebSocket, for the end-to-end tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(server: &super::Server) -> Ws {
    connect_to(&server.ws_url()).await
}

/// A connection to a node's signalling URL (`ws://host:port/ws`).
pub async fn connect_to(url: &str) -> Ws {
    connect_async(url).await.expect("websocket connects").0
}

pub async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON message, or `None` once the server closed the connection.
pub async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("server answered within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                return Some(serde_json::from_str(&t).expect("server sends JSON"))
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Skips messages until one of `kind` (the `type` field) arrives.
pub async fn expect_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = recv(ws)
            .await
            .unwrap_or_else(|| panic!("closed while waiting for {kind}"));
        if msg["type"] == kind {
            return msg;
        }
    }
}

pub async fn expect_error(ws: &mut Ws, code: &str) -> Value {
    let msg = expect_type(ws, "error").await;
    assert_eq!(msg["code"], code, "unexpected error {msg}");
    assert!(
        msg["message"].as_str().is_some_and(|m| !m.is_empty()),
        "errors explain themselves: {msg}"
    );
    msg
}

pub async fn expect_closed(ws: &mut Ws) {
    while let Some(msg) = recv(ws).await {
        assert_ne!(msg["type"], "welcome", "should have been closed, got {msg}");
    }
}

pub async fn join(ws: &mut Ws, token: &str) -> Value {
    send(ws, json!({ "type": "join", "v": 1, "token": token })).await;
    expect_type(ws, "welcome").await
}

/// A connection joined to `meeting` as `identity`.
pub async fn joined(server: &super::Server, meeting: &str, identity: &str, role: &str) -> Ws {
    let mut ws = connect(server).await;
    join(&mut ws, &server.token(meeting, identity, role)).await;
    ws
}

/// Collects `events` messages until one has an event of `kind`.
pub async fn expect_event(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = expect_type(ws, "events").await;
        if let Some(ev) = msg["events"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["kind"] == kind))
        {
            return ev.clone();
        }
    }
}
