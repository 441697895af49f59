//! Protocol tests over a real WebSocket against a running `myriad serve`, including bad input,
//! and the REST API and CLI around it.

#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::ws::{
    connect, expect_closed, expect_error, expect_event, expect_type, join, joined, recv, send,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn http_endpoints_and_web_client() {
    let server = common::Server::start();
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({ "status": "ready" })
    );
    for path in [
        "/",
        "/m/some-meeting",
        "/static/app.js",
        "/static/style.css",
    ] {
        let res = client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let index = client
        .get(&server.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(index.contains("/static/app.js"));
    let missing = client
        .get(format!("{}/static/nope.js", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn cli_token_is_accepted_and_foreign_tokens_are_not() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let token = server.token("m1", "alice", "host");
    let mut ws = connect(&server).await;
    let welcome = join(&mut ws, &token).await;
    assert_eq!(welcome["you"]["identity"], "alice");
    assert_eq!(welcome["you"]["role"], "host");
    assert_eq!(welcome["snapshot"]["count"], 1);

    // A token signed with another secret (another server's data dir) is rejected.
    let other = common::Server::start();
    let foreign = other.token("m1", "mallory", "host");
    let mut ws = connect(&server).await;
    send(&mut ws, json!({ "type": "join", "v": 1, "token": foreign })).await;
    let err = expect_error(&mut ws, "unauthorized").await;
    assert!(
        err["message"].as_str().unwrap().contains("API key")
            || err["message"].as_str().unwrap().contains("signature")
    );
    expect_closed(&mut ws).await;
}

#[tokio::test]
async fn bad_joins_get_clear_errors() {
    let server = common::Server::start();
    server.create_meeting("m1").await;

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "type": "join", "v": 1, "token": "not-a-jwt" }),
            "unauthorized",
        ),
        (
            json!({ "type": "join", "v": 99, "token": server.token("m1", "a", "host") }),
            "unsupported_version",
        ),
        (
            json!({ "type": "join", "v": 1, "token": server.token("nowhere", "a", "host") }),
            "meeting_not_found",
        ),
        (json!({ "type": "ping" }), "not_joined"),
        (json!({ "type": "launch_missiles" }), "bad_message"),
    ];
    for (msg, code) in cases {
        let mut ws = connect(&server).await;
        send(&mut ws, msg).await;
        expect_error(&mut ws, code).await;
        expect_closed(&mut ws).await;
    }

    let expired = server.token_with_ttl("m1", "late", "1s");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({ "type": "join", "v": 1, "token": expired })).await;
    expect_error(&mut ws, "token_expired").await;

    // Resuming somebody else's session fails.
    let mut alice = connect(&server).await;
    let welcome = join(&mut alice, &server.token("m1", "alice", "host")).await;
    let mut mallory = connect(&server).await;
    send(
        &mut mallory,
        json!({ "type": "join", "v": 1, "token": server.token("m1", "mallory", "host"),
                "resume": { "participant": welcome["you"]["id"], "session_token": welcome["session_token"], "last_seq": 0 } }),
    )
    .await;
    expect_error(&mut mallory, "resume_failed").await;

    // A meeting of one seat: the second person is told it is full.
    let (key, secret) = server.api_credentials();
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/meetings", server.url))
        .basic_auth(key, Some(secret))
        .json(&json!({ "id": "one-seat", "settings": { "max_participants": 1 } }))
        .send()
        .await
        .expect("REST reachable");
    assert_eq!(res.status(), 201);
    let mut first = connect(&server).await;
    join(&mut first, &server.token("one-seat", "first", "host")).await;
    let mut second = connect(&server).await;
    send(
        &mut second,
        json!({ "type": "join", "v": 1, "token": server.token("one-seat", "second", "attendee") }),
    )
    .await;
    expect_error(&mut second, "meeting_full").await;
}

#[tokio::test]
async fn malformed_messages_do_not_hurt_the_session_or_others() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut a = joined(&server, "m1", "a", "host").await;
    let mut b = joined(&server, "m1", "b", "panelist").await;

    for bad in [
        "{",
        "null",
        "[1,2,3]",
        r#"{"type":"mute","source":"nose","muted":true}"#,
        r#"{"type":"mute","source":"camera","muted":true,"extra":1}"#,
        r#"{"type":"offer"}"#,
    ] {
        a.send(Message::Text(bad.into())).await.unwrap();
        expect_error(&mut a, "bad_message").await;
    }
    a.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    expect_error(&mut a, "bad_message").await;

    // Invalid SDP is refused with its own code.
    send(
        &mut a,
        json!({ "type": "offer", "sdp": "v=0\r\nthis is not sdp", "tracks": [] }),
    )
    .await;
    expect_error(&mut a, "invalid_sdp").await;
    send(&mut a, json!({ "type": "answer", "sdp": "v=0" })).await;
    expect_error(&mut a, "bad_message").await;
    // Muting a track that was never published.
    send(
        &mut a,
        json!({ "type": "mute", "source": "camera", "muted": true }),
    )
    .await;
    expect_error(&mut a, "bad_message").await;

    // The session still works, and so does everyone else's.
    send(&mut a, json!({ "type": "ping" })).await;
    expect_type(&mut a, "pong").await;
    // More than a person may send in a burst is refused, not silently dropped.
    let mut limited = false;
    for i in 0..20 {
        send(
            &mut b,
            json!({ "type": "chat", "text": format!("flood {i}") }),
        )
        .await;
    }
    while let Some(msg) = recv(&mut b).await {
        if msg["code"] == "rate_limited" {
            limited = true;
            break;
        }
    }
    assert!(limited, "a chat burst is limited");
    send(&mut b, json!({ "type": "ping" })).await;
    expect_type(&mut b, "pong").await;
}

#[tokio::test]
async fn oversized_messages_and_floods_are_cut_off() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut bystander = joined(&server, "m1", "calm", "host").await;

    let mut big = joined(&server, "m1", "big", "host").await;
    let huge = format!(
        r#"{{"type":"offer","sdp":"{}","tracks":[]}}"#,
        "a".repeat(100 * 1024)
    );
    let _ = big.send(Message::Text(huge.into())).await;
    expect_closed(&mut big).await;

    // A burst past the limit is answered with rate_limited (and the session goes on)…
    let mut flood = joined(&server, "m1", "flood", "host").await;
    for _ in 0..100 {
        flood
            .send(Message::Text(r#"{"type":"ping"}"#.into()))
            .await
            .unwrap();
    }
    let mut rate_limited = 0;
    while rate_limited == 0 {
        match recv(&mut flood).await {
            Some(msg) if msg["code"] == "rate_limited" => rate_limited += 1,
            Some(_) => {}
            None => break,
        }
    }
    // …and a client that keeps flooding is disconnected.
    let mut closed = false;
    for _ in 0..2000 {
        if flood
            .send(Message::Text(r#"{"type":"ping"}"#.into()))
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    if !closed {
        closed = tokio::time::timeout(Duration::from_secs(10), async {
            while recv(&mut flood).await.is_some() {}
        })
        .await
        .is_ok();
    }
    assert!(closed, "a persistent flood is disconnected");
    assert!(rate_limited > 0, "a flood is answered with rate_limited");

    send(&mut bystander, json!({ "type": "ping" })).await;
    expect_type(&mut bystander, "pong").await;
    assert!(server.log().contains("flooding"), "the flood is logged");
}

#[tokio::test]
async fn events_are_sequenced_and_resume_replays_what_was_missed() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut alice = connect(&server).await;
    let welcome = join(&mut alice, &server.token("m1", "alice", "host")).await;
    let alice_id = welcome["you"]["id"].clone();
    let session_token = welcome["session_token"].clone();
    let mut last_seq = welcome["snapshot"]["seq"].as_u64().unwrap();

    let mut bob = connect(&server).await;
    let bob_welcome = join(&mut bob, &server.token("m1", "bob", "panelist")).await;
    assert_eq!(
        bob_welcome["snapshot"]["participants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let bob_joined = expect_event(&mut alice, "participant_joined").await;
    assert_eq!(bob_joined["participant"]["identity"], "bob");
    assert!(bob_joined["seq"].as_u64().unwrap() > last_seq);
    last_seq = bob_joined["seq"].as_u64().unwrap();
    let count = expect_event(&mut alice, "count").await;
    assert_eq!(count["count"], 2);
    last_seq = last_seq.max(count["seq"].as_u64().unwrap());

    // Alice's connection drops; Carol joins meanwhile.
    drop(alice);
    let mut carol = joined(&server, "m1", "carol", "panelist").await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let mut alice = connect(&server).await;
    send(
        &mut alice,
        json!({ "type": "join", "v": 1, "token": server.token("m1", "alice", "host"),
                "resume": { "participant": alice_id, "session_token": session_token, "last_seq": last_seq } }),
    )
    .await;
    let resumed = expect_type(&mut alice, "welcome").await;
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["you"]["id"], alice_id);
    assert!(
        resumed["snapshot"].is_null(),
        "missed events follow instead of a snapshot"
    );
    let missed = expect_type(&mut alice, "events").await;
    let events = missed["events"].as_array().unwrap();
    assert!(events
        .iter()
        .any(|e| e["kind"] == "participant_joined" && e["participant"]["identity"] == "carol"));
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "missed events are contiguous: {seqs:?}"
    );
    assert_eq!(seqs[0], last_seq + 1);

    // Bob leaves for good: the others are told.
    send(&mut bob, json!({ "type": "leave" })).await;
    expect_closed(&mut bob).await;
    let left = expect_event(&mut carol, "participant_left").await;
    assert_eq!(left["participant"], bob_welcome["you"]["id"]);
}

/// A REST client for one server: `call(method, path, body)` → (status, JSON body or Null).
struct Rest {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
}

impl Rest {
    fn new(server: &common::Server, auth: Option<(String, String)>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.url.clone(),
            auth,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Some((key, secret)) => req.basic_auth(key, Some(secret)),
            None => req,
        }
    }

    /// A GET answered with text: (status, content type, body).
    async fn text(&self, path: &str) -> (u16, String, String) {
        let res = self.request(reqwest::Method::GET, path).send().await;
        let res = res.expect("REST reachable");
        let kind = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let kind = kind.unwrap_or_default().to_owned();
        (
            res.status().as_u16(),
            kind,
            res.text().await.unwrap_or_default(),
        )
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("REST reachable");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn rest_api_manages_meetings_and_participants() {
    use reqwest::Method;
    let server = common::Server::start();
    let (key, secret) = server.api_credentials();
    let api = Rest::new(&server, Some((key.clone(), secret)));

    let anonymous = Rest::new(&server, None);
    assert_eq!(
        anonymous
            .call(Method::POST, "/api/v1/meetings", Some(json!({})))
            .await
            .0,
        401
    );
    let wrong = Rest::new(&server, Some((key, "nope".into())));
    assert_eq!(
        wrong
            .call(Method::POST, "/api/v1/meetings", Some(json!({})))
            .await
            .0,
        401
    );

    let (status, created) = api
        .call(
            Method::POST,
            "/api/v1/meetings",
            Some(json!({ "title": "All hands" })),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call(Method::POST, "/api/v1/meetings", Some(json!({ "id": id })))
            .await
            .0,
        409
    );
    assert_eq!(
        api.call(
            Method::POST,
            "/api/v1/meetings",
            Some(json!({ "id": "../etc" }))
        )
        .await
        .0,
        400
    );

    let (_, token) = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "meeting": id, "identity": "pat", "role": "panelist" })),
        )
        .await;
    let mut pat = connect(&server).await;
    let welcome = join(&mut pat, token["token"].as_str().unwrap()).await;
    let pat_id = welcome["you"]["id"].as_u64().unwrap();
    let mut other = joined(&server, &id, "sam", "attendee").await;

    let (_, page) = api
        .call(
            Method::GET,
            &format!("/api/v1/meetings/{id}/participants?limit=1"),
            None,
        )
        .await;
    assert_eq!(page["count"], 2);
    assert_eq!(page["participants"].as_array().unwrap().len(), 1);
    let after = format!(
        "/api/v1/meetings/{id}/participants?after={}",
        page["next_after"]
    );
    let (_, next) = api.call(Method::GET, &after, None).await;
    assert_eq!(next["participants"][0]["identity"], "sam");

    let (status, body) = api
        .call(
            Method::POST,
            &format!("/api/v1/meetings/{id}/participants/{pat_id}/mute"),
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing published yet: {body}");

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/meetings/{id}/participants/{pat_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    expect_error(&mut pat, "removed").await;
    expect_closed(&mut pat).await;

    assert_eq!(
        api.call(Method::DELETE, &format!("/api/v1/meetings/{id}"), None)
            .await
            .0,
        204
    );
    expect_error(&mut other, "meeting_ended").await;
    let mut late = connect(&server).await;
    send(
        &mut late,
        json!({ "type": "join", "v": 1, "token": server.token(&id, "late", "host") }),
    )
    .await;
    expect_error(&mut late, "meeting_ended").await;

    let (_, info) = api
        .call(Method::GET, &format!("/api/v1/meetings/{id}"), None)
        .await;
    assert!(info["ended_unix_s"].is_u64());
}

#[tokio::test]
async fn malformed_http_requests_get_4xx() {
    use reqwest::Method;
    let server = common::Server::start();
    let (key, secret) = server.api_credentials();
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/meetings", server.url))
        .basic_auth(&key, Some(&secret))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/meetings", server.url))
        .header("authorization", "Basic !!!")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let dev = Rest::new(&server, None);
    let missing = json!({ "meeting": "missing", "name": "x" });
    assert_eq!(
        dev.call(Method::POST, "/api/dev/token", Some(missing))
            .await
            .0,
        404
    );
    let bad = json!({ "meeting": "bad/id", "name": "x" });
    assert_eq!(
        dev.call(Method::POST, "/api/dev/token", Some(bad)).await.0,
        400
    );
    let nameless = json!({ "meeting": "missing", "name": "  " });
    assert!(
        dev.call(Method::POST, "/api/dev/token", Some(nameless))
            .await
            .0
            >= 400
    );
}

#[tokio::test]
async fn chat_reaches_everyone_and_bad_chat_is_refused() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut a = joined(&server, "m1", "ann", "attendee").await;
    let mut b = joined(&server, "m1", "ben", "attendee").await;
    send(&mut a, json!({ "type": "chat", "text": "hello everyone" })).await;
    for ws in [&mut a, &mut b] {
        let ev = expect_event(ws, "chat").await;
        assert_eq!(ev["text"], "hello everyone");
        assert_eq!(ev["name"], "ann");
    }
    // A late joiner gets the history; older pages on request; moderators delete and stop.
    let mut host = connect(&server).await;
    let welcome = join(&mut host, &server.token("m1", "hana", "host")).await;
    let history = welcome["snapshot"]["chat"].as_array().unwrap().clone();
    assert_eq!(history.len(), 1, "{welcome}");
    assert_eq!(history[0]["text"], "hello everyone");
    let id = history[0]["id"].as_u64().unwrap();
    send(&mut host, json!({ "type": "chat_history", "before": id })).await;
    let page = expect_type(&mut host, "chat_history").await;
    assert_eq!(page["messages"], json!([]), "nothing older");
    send(&mut b, json!({ "type": "delete_chat", "id": id })).await;
    expect_error(&mut b, "forbidden").await;
    send(&mut host, json!({ "type": "delete_chat", "id": id })).await;
    let ev = expect_event(&mut b, "chat_deleted").await;
    assert_eq!(ev["id"], id);
    let ann = history[0]["from"].clone();
    send(
        &mut host,
        json!({ "type": "ban_chat", "participant": ann, "banned": true }),
    )
    .await;
    expect_event(&mut a, "chat_banned").await;
    send(&mut a, json!({ "type": "chat", "text": "still here?" })).await;
    expect_error(&mut a, "forbidden").await;
    send(
        &mut host,
        json!({ "type": "ban_chat", "participant": ann, "banned": false }),
    )
    .await;
    expect_event(&mut a, "chat_banned").await;

    send(&mut a, json!({ "type": "chat", "text": "   " })).await;
    expect_error(&mut a, "bad_message").await;
    send(&mut a, json!({ "type": "chat", "text": "x".repeat(3000) })).await;
    expect_error(&mut a, "bad_message").await;
    send(&mut b, json!({ "type": "ping" })).await;
    expect_type(&mut b, "pong").await;
}

/// A host changes roles live: everyone learns of it, the grants follow; those who may not
/// change roles, and changes that make no sense, get clear errors. The REST API does the same.
#[tokio::test]
async fn roles_change_live_and_refusals_are_clear() {
    use reqwest::Method;
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut cohost = connect(&server).await;
    join(&mut cohost, &server.token("m1", "cody", "co-host")).await;
    let mut att = connect(&server).await;
    let welcome = join(&mut att, &server.token("m1", "ari", "attendee")).await;
    assert_eq!(welcome["you"]["role"], "attendee");
    let ari = welcome["you"]["id"].as_u64().unwrap();

    // An attendee may not promote itself; a co-host may not make hosts.
    send(
        &mut att,
        json!({ "type": "set_role", "participant": ari, "role": "panelist" }),
    )
    .await;
    expect_error(&mut att, "forbidden").await;
    send(
        &mut cohost,
        json!({ "type": "set_role", "participant": ari, "role": "host" }),
    )
    .await;
    expect_error(&mut cohost, "forbidden").await;
    // Nonsense: no such role, no such person.
    send(
        &mut host,
        json!({ "type": "set_role", "participant": ari, "role": "emperor" }),
    )
    .await;
    expect_error(&mut host, "bad_message").await;
    send(
        &mut host,
        json!({ "type": "set_role", "participant": 999_999, "role": "panelist" }),
    )
    .await;
    expect_error(&mut host, "bad_message").await;

    send(
        &mut host,
        json!({ "type": "set_role", "participant": ari, "role": "panelist" }),
    )
    .await;
    for ws in [&mut host, &mut cohost, &mut att] {
        let ev = expect_event(ws, "role_changed").await;
        assert_eq!(ev["participant"]["id"], ari);
        assert_eq!(ev["participant"]["role"], "panelist");
        assert_eq!(ev["participant"]["name"], "ari");
    }

    let api = Rest::new(&server, Some(server.api_credentials()));
    let path = format!("/api/v1/meetings/m1/participants/{ari}/role");
    let (status, body) = api
        .call(Method::POST, &path, Some(json!({ "role": "attendee" })))
        .await;
    assert_eq!(status, 204, "{body}");
    let ev = expect_event(&mut att, "role_changed").await;
    assert_eq!(ev["participant"]["role"], "attendee");
    let (status, _) = api
        .call(Method::POST, &path, Some(json!({ "role": "emperor" })))
        .await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/meetings/nope/participants/1/role",
            Some(json!({ "role": "panelist" })),
        )
        .await;
    assert_eq!(status, 404);
}

/// Hands go up and down and reach everyone as one queue; a host invites to the stage, which
/// everyone learns of; those who may not get clear errors.
#[tokio::test]
async fn hands_and_the_stage_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut ari = connect(&server).await;
    let ari_id = join(&mut ari, &server.token("m1", "ari", "attendee")).await["you"]["id"].clone();
    let mut bo = joined(&server, "m1", "bo", "attendee").await;

    send(&mut ari, json!({ "type": "hand", "raised": true })).await;
    for ws in [&mut host, &mut ari, &mut bo] {
        let ev = expect_event(ws, "hands").await;
        assert_eq!(ev["hands"]["raised"], 1);
        assert_eq!(ev["hands"]["first"][0]["id"], ari_id);
        assert_eq!(ev["hands"]["first"][0]["name"], "ari");
    }
    send(
        &mut bo,
        json!({ "type": "lower_hands", "participant": ari_id }),
    )
    .await;
    expect_error(&mut bo, "forbidden").await;
    send(
        &mut ari,
        json!({ "type": "stage", "participant": ari_id, "on": true }),
    )
    .await;
    expect_error(&mut ari, "forbidden").await;
    send(
        &mut host,
        json!({ "type": "stage", "participant": 999_999, "on": true }),
    )
    .await;
    expect_error(&mut host, "bad_message").await;
    send(&mut ari, json!({ "type": "hand" })).await;
    expect_error(&mut ari, "bad_message").await;

    send(
        &mut host,
        json!({ "type": "stage", "participant": ari_id, "on": true }),
    )
    .await;
    for ws in [&mut host, &mut ari, &mut bo] {
        let ev = expect_event(ws, "stage").await;
        assert_eq!(ev["participants"][0]["id"], ari_id);
        let ev = expect_event(ws, "hands").await;
        assert_eq!(ev["hands"]["raised"], 0, "invited: the hand is answered");
    }
    // Ari steps off by itself.
    send(
        &mut ari,
        json!({ "type": "stage", "participant": ari_id, "on": false }),
    )
    .await;
    let ev = expect_event(&mut bo, "stage").await;
    assert_eq!(ev["participants"], json!([]));
    // A late joiner learns the queue and the stage from its snapshot.
    send(&mut bo, json!({ "type": "hand", "raised": true })).await;
    expect_event(&mut host, "hands").await;
    let mut late = connect(&server).await;
    let welcome = join(&mut late, &server.token("m1", "late", "attendee")).await;
    assert_eq!(welcome["snapshot"]["hands"]["raised"], 1, "{welcome}");
    assert_eq!(welcome["snapshot"]["stage"], json!([]));
}

/// Reactions reach everyone counted, not one event per click; what is not a reaction, and
/// more than a person may send, get clear errors.
#[tokio::test]
async fn reactions_reach_everyone_counted_and_are_limited() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut a = joined(&server, "m1", "ann", "attendee").await;
    let mut b = joined(&server, "m1", "ben", "attendee").await;
    for _ in 0..3 {
        send(&mut a, json!({ "type": "react", "emoji": "👍" })).await;
    }
    send(&mut b, json!({ "type": "react", "emoji": "🎉" })).await;
    for ws in [&mut a, &mut b] {
        let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
        while seen.values().sum::<u64>() < 4 {
            let ev = expect_event(ws, "reactions").await;
            for c in ev["counts"].as_array().unwrap() {
                *seen.entry(c["emoji"].as_str().unwrap().into()).or_default() +=
                    c["count"].as_u64().unwrap();
            }
        }
        assert_eq!(seen, [("🎉".into(), 1), ("👍".into(), 3)].into());
    }
    send(&mut a, json!({ "type": "react", "emoji": "<b>hi</b>" })).await;
    expect_error(&mut a, "bad_message").await;
    // The burst allowance goes, then the rest is refused (not silently dropped).
    for _ in 0..20 {
        send(&mut b, json!({ "type": "react", "emoji": "👏" })).await;
    }
    expect_error(&mut b, "rate_limited").await;
}

/// A poll over WebSockets: a host opens it, answers are counted once each and the results
/// reach everyone; bad polls, bad answers and second answers get clear errors; the REST API
/// opens, closes and exports polls (CSV).
#[tokio::test]
async fn polls_count_one_answer_each_and_export_as_csv() {
    use reqwest::Method;
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut a = joined(&server, "m1", "ann", "attendee").await;
    let mut b = joined(&server, "m1", "ben", "attendee").await;
    let single = json!({ "type": "single", "options": ["tea", "coffee, black"] });

    send(
        &mut a,
        json!({ "type": "create_poll", "question": "Q?", "kind": single }),
    )
    .await;
    expect_error(&mut a, "forbidden").await;
    let one_option = json!({ "type": "single", "options": ["only"] });
    send(
        &mut host,
        json!({ "type": "create_poll", "question": "Q?", "kind": one_option }),
    )
    .await;
    expect_error(&mut host, "bad_message").await;
    send(
        &mut host,
        json!({ "type": "create_poll", "question": "Drinks?", "kind": single }),
    )
    .await;
    let mut poll = 0;
    for ws in [&mut host, &mut a, &mut b] {
        let ev = expect_event(ws, "poll_opened").await;
        assert_eq!(ev["poll"]["question"], "Drinks?");
        poll = ev["poll"]["id"].as_u64().unwrap();
    }
    let vote = |option: u32| json!({ "type": "vote", "poll": poll, "answer": { "type": "single", "option": option } });
    send(&mut a, vote(1)).await;
    // Ann's answer first (the export keeps the order given).
    let ev = expect_event(&mut b, "poll_results").await;
    assert_eq!(ev["results"]["voters"], 1);
    send(&mut b, vote(0)).await;
    for ws in [&mut host, &mut a, &mut b] {
        loop {
            let ev = expect_event(ws, "poll_results").await;
            if ev["results"]["voters"] == 2 {
                assert_eq!(ev["results"]["counts"], json!([1, 1]));
                break;
            }
        }
    }
    send(&mut a, vote(0)).await;
    expect_error(&mut a, "already_voted").await;
    send(&mut host, vote(7)).await;
    expect_error(&mut host, "bad_message").await;
    send(
        &mut host,
        json!({ "type": "vote", "poll": 999, "answer": { "type": "single", "option": 0 } }),
    )
    .await;
    expect_error(&mut host, "bad_message").await;

    let api = Rest::new(&server, Some(server.api_credentials()));
    let csv_path = format!("/api/v1/meetings/m1/polls/{poll}/answers.csv");
    let (status, kind, csv) = api.text(&csv_path).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert!(
        csv.starts_with(
            "answer_no,identity,name,answer\n1,ann,ann,\"coffee, black\"\n2,ben,ben,tea\n"
        ),
        "{csv}"
    );
    let (status, _) = api
        .call(
            Method::GET,
            "/api/v1/meetings/m1/polls/999/answers.csv",
            None,
        )
        .await;
    assert_eq!(status, 404);

    // The operator's backend opens an anonymous rating poll, and closes it.
    let (status, created) = api
        .call(
            Method::POST,
            "/api/v1/meetings/m1/polls",
            Some(json!({ "question": "Rate us", "kind": { "type": "rating", "max": 5 }, "anonymous": true })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let rating = created["id"].as_u64().unwrap();
    expect_event(&mut b, "poll_opened").await;
    send(
        &mut b,
        json!({ "type": "vote", "poll": rating, "answer": { "type": "rating", "value": 6 } }),
    )
    .await;
    expect_error(&mut b, "bad_message").await;
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/meetings/m1/polls/{rating}/close"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let ev = expect_event(&mut b, "poll_closed").await;
    assert_eq!(ev["results"]["poll"], rating);
    send(
        &mut b,
        json!({ "type": "vote", "poll": rating, "answer": { "type": "rating", "value": 3 } }),
    )
    .await;
    expect_error(&mut b, "bad_message").await;
    // A late joiner sees both polls, with their results.
    let mut late = connect(&server).await;
    let welcome = join(&mut late, &server.token("m1", "late", "attendee")).await;
    assert_eq!(
        welcome["snapshot"]["polls"].as_array().unwrap().len(),
        2,
        "{welcome}"
    );
}

/// Moderation over WebSockets: remove someone, lock the meeting against newcomers (those in
/// it may still resume), end it for all; attendees may do none of it.
#[tokio::test]
async fn moderators_remove_lock_and_end_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut a = connect(&server).await;
    let a_id = join(&mut a, &server.token("m1", "ann", "attendee")).await["you"]["id"].clone();
    let mut b = joined(&server, "m1", "ben", "attendee").await;
    for msg in [
        json!({ "type": "remove", "participant": a_id }),
        json!({ "type": "lock", "locked": true }),
        json!({ "type": "mute_all" }),
        json!({ "type": "end_meeting" }),
        json!({ "type": "mute_other", "participant": a_id, "source": "microphone" }),
    ] {
        send(&mut b, msg).await;
        expect_error(&mut b, "forbidden").await;
    }
    send(
        &mut host,
        json!({ "type": "mute_other", "participant": a_id, "source": "microphone" }),
    )
    .await;
    expect_error(&mut host, "bad_message").await; // nothing published to mute

    send(&mut host, json!({ "type": "lock", "locked": true })).await;
    let ev = expect_event(&mut b, "locked").await;
    assert_eq!(ev["locked"], true);
    let mut late = connect(&server).await;
    send(
        &mut late,
        json!({ "type": "join", "v": 1, "token": server.token("m1", "late", "attendee") }),
    )
    .await;
    expect_error(&mut late, "meeting_locked").await;

    send(&mut host, json!({ "type": "remove", "participant": a_id })).await;
    expect_error(&mut a, "removed").await;
    expect_closed(&mut a).await;

    send(&mut host, json!({ "type": "end_meeting" })).await;
    expect_error(&mut b, "meeting_ended").await;
}

/// The waiting room over WebSockets: newcomers wait on their connection (told so once, pings
/// answered) until a host lets them in (the welcome follows) or turns them away; attendees may
/// neither switch it nor decide; a host switching it off lets the rest in.
#[tokio::test]
async fn the_waiting_room_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut a = joined(&server, "m1", "ann", "attendee").await;
    send(&mut a, json!({ "type": "set_waiting_room", "on": true })).await;
    expect_error(&mut a, "forbidden").await;
    send(&mut host, json!({ "type": "set_waiting_room", "on": true })).await;
    let ev = expect_event(&mut host, "waiting_room").await;
    assert_eq!(ev["room"]["on"], true);
    // Who waits is the hosts' to know: others get the event's number only.
    let msg = expect_type(&mut a, "events").await;
    assert!(
        msg["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "withheld"),
        "{msg}"
    );

    let knock = |name: &'static str| {
        let server = &server;
        async move {
            let mut ws = connect(server).await;
            send(
                &mut ws,
                json!({ "type": "join", "v": 1, "token": server.token("m1", name, "attendee") }),
            )
            .await;
            expect_type(&mut ws, "waiting").await;
            ws
        }
    };
    let mut bob = knock("bob").await;
    let mut cy = knock("cy").await;
    let mut dee = knock("dee").await;
    send(&mut bob, json!({ "type": "ping" })).await;
    expect_type(&mut bob, "pong").await;
    send(&mut bob, json!({ "type": "chat", "text": "let me in" })).await;
    expect_error(&mut bob, "not_joined").await;

    let room = loop {
        let ev = expect_event(&mut host, "waiting_room").await;
        if ev["room"]["waiting"] == 3 {
            break ev["room"].clone();
        }
    };
    let names: Vec<&str> = room["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "cy", "dee"]);
    let ticket = |i: usize| room["first"][i]["ticket"].clone();

    send(
        &mut a,
        json!({ "type": "admit", "ticket": ticket(0), "admit": true }),
    )
    .await;
    expect_error(&mut a, "forbidden").await;
    send(
        &mut host,
        json!({ "type": "admit", "ticket": 999, "admit": true }),
    )
    .await;
    expect_error(&mut host, "bad_message").await;
    send(
        &mut host,
        json!({ "type": "admit", "ticket": ticket(0), "admit": true }),
    )
    .await;
    let welcome = expect_type(&mut bob, "welcome").await;
    assert_eq!(welcome["you"]["name"], "bob");
    assert_eq!(welcome["snapshot"]["waiting_room"]["on"], true);
    assert_eq!(
        welcome["snapshot"]["waiting_room"]["first"],
        json!([]),
        "not Bob's to know"
    );
    send(
        &mut host,
        json!({ "type": "admit", "ticket": ticket(1), "admit": false }),
    )
    .await;
    expect_error(&mut cy, "denied").await;
    expect_closed(&mut cy).await;
    // Turned away stays away.
    let mut again = connect(&server).await;
    send(
        &mut again,
        json!({ "type": "join", "v": 1, "token": server.token("m1", "cy", "attendee") }),
    )
    .await;
    expect_error(&mut again, "denied").await;

    send(
        &mut host,
        json!({ "type": "set_waiting_room", "on": false }),
    )
    .await;
    expect_type(&mut dee, "welcome").await;
}

/// Breakout rooms over WebSockets: a host makes rooms, assigns people, opens them; each
/// person gets a way into their own room only (a token for the room's meeting, where they may
/// talk), joins it on a second connection while the first stays; a broadcast reaches everyone
/// on their main connection; closing calls everyone back. Attendees may do none of the
/// moderators' part.
#[tokio::test]
async fn breakout_rooms_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut a = connect(&server).await;
    let a_id = join(&mut a, &server.token("m1", "ann", "attendee")).await["you"]["id"].clone();
    let mut b = connect(&server).await;
    let b_id = join(&mut b, &server.token("m1", "ben", "attendee")).await["you"]["id"].clone();
    let breakouts = |op: Value| json!({ "type": "breakouts", "op": op });
    send(&mut a, breakouts(json!({ "action": "create", "count": 2 }))).await;
    expect_error(&mut a, "forbidden").await;
    send(
        &mut host,
        breakouts(json!({ "action": "create", "count": 99 })),
    )
    .await;
    expect_error(&mut host, "bad_message").await;
    send(&mut host, breakouts(json!({ "action": "launch" }))).await;
    expect_error(&mut host, "bad_message").await;
    send(&mut a, json!({ "type": "join_breakout" })).await;
    expect_error(&mut a, "forbidden").await; // nothing open

    send(
        &mut host,
        breakouts(json!({ "action": "create", "count": 2 })),
    )
    .await;
    for (who, room) in [(&a_id, 1), (&b_id, 2)] {
        let assign = json!({ "action": "assign", "participant": who, "room": room });
        send(&mut host, breakouts(assign)).await;
    }
    send(
        &mut host,
        breakouts(json!({ "action": "open", "minutes": 10 })),
    )
    .await;
    let ev = loop {
        let ev = expect_event(&mut a, "breakouts").await;
        if ev["breakouts"]["open"] == true {
            break ev;
        }
    };
    let rooms = &ev["breakouts"]["rooms"];
    assert_eq!(rooms[0]["assigned"], json!([a_id]));
    assert_eq!(rooms[1]["meeting"], "m1_br2");
    assert!(ev["breakouts"]["remaining_s"].as_u64().unwrap() > 590);

    send(&mut a, json!({ "type": "join_breakout", "room": 2 })).await;
    expect_error(&mut a, "forbidden").await;
    send(&mut a, json!({ "type": "join_breakout" })).await;
    let pass = expect_type(&mut a, "breakout").await;
    assert_eq!(
        (pass["room"].as_u64(), pass["meeting"].as_str()),
        (Some(1), Some("m1_br1"))
    );
    let mut a_room = connect(&server).await;
    let welcome = join(&mut a_room, pass["token"].as_str().unwrap()).await;
    assert_eq!(welcome["meeting"], "m1_br1");
    assert_eq!(welcome["snapshot"]["count"], 1);
    assert_eq!(
        welcome["you"]["role"], "panelist",
        "everyone talks in a room"
    );
    assert_eq!(welcome["you"]["name"], "ann");
    send(&mut host, json!({ "type": "join_breakout", "room": 2 })).await;
    let pass = expect_type(&mut host, "breakout").await;
    let mut host_room = connect(&server).await;
    let welcome = join(&mut host_room, pass["token"].as_str().unwrap()).await;
    assert_eq!(
        welcome["you"]["role"], "co_host",
        "moderators moderate there too"
    );
    // Ben joins the host in room 2; Ann is alone in room 1.
    send(&mut b, json!({ "type": "join_breakout" })).await;
    let pass = expect_type(&mut b, "breakout").await;
    let mut b_room = connect(&server).await;
    join(&mut b_room, pass["token"].as_str().unwrap()).await;
    let ev = expect_event(&mut host_room, "participant_joined").await;
    assert_eq!(ev["participant"]["name"], "ben");
    send(&mut a_room, json!({ "type": "chat", "text": "anyone?" })).await;
    let ev = expect_event(&mut a_room, "chat").await;
    assert_eq!(ev["text"], "anyone?");

    send(
        &mut host,
        breakouts(json!({ "action": "broadcast", "text": "Two minutes" })),
    )
    .await;
    let said = expect_event(&mut a, "broadcast").await;
    assert_eq!(
        (said["from"].as_str(), said["text"].as_str()),
        (Some("hana"), Some("Two minutes"))
    );
    send(&mut host, breakouts(json!({ "action": "close" }))).await;
    let ev = expect_event(&mut b, "breakouts").await;
    let ev = if ev["breakouts"]["open"] == true {
        expect_event(&mut b, "breakouts").await
    } else {
        ev
    };
    assert_eq!(ev["breakouts"]["open"], false);
    send(&mut b, json!({ "type": "join_breakout" })).await;
    expect_error(&mut b, "forbidden").await;
}

/// The whiteboard over WebSockets: a panelist draws, everyone gets the shape in order; an
/// attendee may not draw; a bad shape is refused; a late joiner asks for the board and gets it
/// as of an event; only one's own shapes are erased and undone; a host clears the board.
#[tokio::test]
async fn the_whiteboard_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut pan = joined(&server, "m1", "pia", "panelist").await;
    let mut att = joined(&server, "m1", "ann", "attendee").await;
    let board = |op: Value| json!({ "type": "board", "op": op });
    let pen = |points: Value| json!({ "action": "draw", "shape": { "kind": "pen", "color": "#112233", "width": 3, "points": points } });
    send(&mut att, board(pen(json!([[1, 1]])))).await;
    expect_error(&mut att, "forbidden").await;
    send(&mut pan, board(pen(json!([[1, 1], [20000, 0]])))).await;
    expect_error(&mut pan, "bad_message").await;
    send(&mut pan, board(json!({ "action": "draw", "shape": { "kind": "text", "color": "#000000", "width": 3, "points": [[5, 5]] } }))).await;
    expect_error(&mut pan, "bad_message").await;
    send(&mut pan, board(pen(json!([[1, 1], [2, 2]])))).await;
    let drawn = expect_event(&mut att, "drawn").await;
    assert_eq!(drawn["shape"]["id"], 0);
    assert_eq!(drawn["shape"]["shape"]["points"], json!([[1, 1], [2, 2]]));
    send(&mut host, board(json!({ "action": "draw", "shape": { "kind": "rect", "color": "#ff0000", "width": 2, "points": [[10, 10], [90, 90]] } }))).await;
    expect_event(&mut att, "drawn").await;

    let mut late = joined(&server, "m1", "lou", "panelist").await;
    send(&mut late, json!({ "type": "board_state" })).await;
    let state = expect_type(&mut late, "board").await;
    let kinds: Vec<&str> = state["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shape"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["pen", "rect"]);
    assert!(state["seq"].as_u64().unwrap() > 0);

    send(&mut pan, board(json!({ "action": "erase", "ids": [1] }))).await;
    expect_error(&mut pan, "forbidden").await;
    send(&mut pan, board(json!({ "action": "undo" }))).await;
    let erased = expect_event(&mut late, "erased").await;
    assert_eq!(erased["ids"], json!([0]));
    send(&mut pan, board(json!({ "action": "clear" }))).await;
    expect_error(&mut pan, "forbidden").await;
    send(&mut host, board(json!({ "action": "clear" }))).await;
    expect_event(&mut late, "board_cleared").await;
    send(&mut late, json!({ "type": "board_state" })).await;
    assert_eq!(expect_type(&mut late, "board").await["shapes"], json!([]));
}

/// Chat to the hosts only over WebSockets: the hosts and the sender read it; another attendee
/// gets its number only (`withheld`, so its sequence has no gap), and not in its history nor
/// a late joiner's snapshot. A host's @mention and spotlight feature people for everyone; an
/// attendee may not spotlight.
#[tokio::test]
async fn messages_to_the_hosts_mentions_and_the_spotlight_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut a = connect(&server).await;
    let a_id = join(&mut a, &server.token("m1", "ann", "attendee")).await["you"]["id"].clone();
    let mut b = connect(&server).await;
    let b_id = join(&mut b, &server.token("m1", "ben", "attendee")).await["you"]["id"].clone();
    send(
        &mut a,
        json!({ "type": "chat", "text": "only for hosts", "to_hosts": true }),
    )
    .await;
    for ws in [&mut host, &mut a] {
        let ev = expect_event(ws, "chat").await;
        assert_eq!(ev["text"], "only for hosts");
        assert_eq!(ev["only"].as_array().map(Vec::len), Some(2));
    }
    let msg = expect_type(&mut b, "events").await;
    let ev = msg["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] != "count")
        .cloned()
        .unwrap();
    assert_eq!(ev["kind"], "withheld", "{msg}");
    assert!(!msg.to_string().contains("only for hosts"));
    send(&mut b, json!({ "type": "chat_history", "before": 1000 })).await;
    assert_eq!(
        expect_type(&mut b, "chat_history").await["messages"],
        json!([])
    );
    send(&mut a, json!({ "type": "chat_history", "before": 1000 })).await;
    assert_eq!(
        expect_type(&mut a, "chat_history").await["messages"][0]["text"],
        "only for hosts"
    );
    let mut late = connect(&server).await;
    let welcome = join(&mut late, &server.token("m1", "lou", "attendee")).await;
    assert_eq!(welcome["snapshot"]["chat"], json!([]));

    send(&mut a, json!({ "type": "spotlight", "participant": b_id })).await;
    expect_error(&mut a, "forbidden").await;
    send(
        &mut host,
        json!({ "type": "spotlight", "participant": b_id }),
    )
    .await;
    let ev = expect_event(&mut late, "featured").await;
    assert_eq!(ev["spotlight"], b_id);
    send(
        &mut host,
        json!({ "type": "chat", "text": "@ann, your turn", "mentions": [a_id] }),
    )
    .await;
    let ev = expect_event(&mut late, "featured").await;
    assert_eq!(ev["mentioned"].as_array().map(Vec::len), Some(1));
}

/// A node asked to stop (SIGTERM) with a drain time says so on `/healthz` (503 `draining`)
/// while it goes on serving its people, routes nobody new there, and exits when the time is
/// up; a full node says it is overloaded.
#[tokio::test]
async fn health_says_draining_and_overloaded() {
    let http = reqwest::Client::new();
    let health = |url: String| {
        let http = http.clone();
        async move {
            let res = http.get(format!("{url}/healthz")).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let full = common::Server::start_in(tempfile::tempdir().unwrap(), &["--capacity", "1"]);
    full.create_meeting("m1").await;
    assert_eq!(health(full.url.clone()).await.0, 200);
    let _ann = joined(&full, "m1", "ann", "panelist").await;
    let (status, body) = health(full.url.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "overloaded");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("1 of 1")),
        "{body}"
    );

    let mut server = common::Server::start_in(tempfile::tempdir().unwrap(), &["--drain-s", "3"]);
    server.create_meeting("m2").await;
    let mut ben = joined(&server, "m2", "ben", "panelist").await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = std::time::Instant::now();
    let drained = loop {
        let (status, body) = health(server.url.clone()).await;
        if status == 503 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not draining: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(drained, json!({ "status": "draining" }));
    // With its next announcement in the registry (a heartbeat), routes leave it out.
    loop {
        let route = http
            .get(format!("{}/api/v1/route?meeting=m2", server.url))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        if route["error"]["code"] == "no_node" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still routed here: {route}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Those on it carry on meanwhile.
    send(&mut ben, json!({ "type": "ping" })).await;
    expect_type(&mut ben, "pong").await;
    let exited = server.wait_exit(Duration::from_secs(10));
    assert!(
        exited.is_some_and(|s| s.success()),
        "stops after its drain: {exited:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the drain time"
    );
}

/// The spam filter and likes over WebSockets: an attendee's spam is held (the host and the
/// sender get it marked, another attendee its number only); an attendee may not release it,
/// a host does and everyone gets it; a message to everyone is liked once per person, the
/// counts coalesced; a held or unknown message cannot be liked.
#[tokio::test]
async fn held_spam_is_released_and_messages_are_liked_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut a = joined(&server, "m1", "ann", "attendee").await;
    let mut b = joined(&server, "m1", "ben", "attendee").await;
    let spam =
        "WINNER!! You have been selected for a £900 prize reward! To claim call 09061701461 now";
    send(&mut a, json!({ "type": "chat", "text": spam })).await;
    let held = expect_event(&mut host, "chat").await;
    assert_eq!(held["flagged"], "looks_like_spam", "{held}");
    let id = held["id"].clone();
    assert_eq!(
        expect_event(&mut a, "chat").await["flagged"],
        "looks_like_spam"
    );
    let msg = expect_type(&mut b, "events").await;
    assert!(!msg.to_string().contains("WINNER"), "{msg}");
    send(&mut b, json!({ "type": "like_chat", "id": id })).await;
    expect_error(&mut b, "bad_message").await; // not a message to everyone (yet)
    send(&mut b, json!({ "type": "release_chat", "id": id })).await;
    expect_error(&mut b, "forbidden").await;
    send(&mut host, json!({ "type": "release_chat", "id": 999 })).await;
    expect_error(&mut host, "bad_message").await;
    send(&mut host, json!({ "type": "release_chat", "id": id })).await;
    let released = expect_event(&mut b, "chat").await;
    assert_eq!(
        (released["id"].clone(), released["text"].as_str()),
        (id.clone(), Some(spam))
    );
    assert!(released.get("flagged").is_none(), "{released}");

    send(&mut b, json!({ "type": "like_chat", "id": id })).await;
    send(&mut host, json!({ "type": "like_chat", "id": id })).await;
    send(&mut b, json!({ "type": "like_chat", "id": id })).await;
    expect_error(&mut b, "already_voted").await;
    let likes = loop {
        let ev = expect_event(&mut a, "chat_liked").await;
        if ev["likes"][0]["likes"] == 2 {
            break ev;
        }
    };
    assert_eq!(likes["likes"][0]["id"], id);
}

/// Q&A over WebSockets: asked, upvoted once each, answered by a moderator; the refusals.
#[tokio::test]
async fn questions_are_asked_upvoted_and_answered_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut a = joined(&server, "m1", "ann", "attendee").await;
    let mut b = joined(&server, "m1", "ben", "attendee").await;
    send(&mut a, json!({ "type": "ask", "text": "x".repeat(501) })).await;
    expect_error(&mut a, "bad_message").await;
    send(&mut a, json!({ "type": "ask", "text": "Slides?" })).await;
    let mut q = 0;
    for ws in [&mut host, &mut a, &mut b] {
        let ev = expect_event(ws, "question_asked").await;
        assert_eq!(
            (
                ev["question"]["text"].as_str(),
                ev["question"]["from"].as_str()
            ),
            (Some("Slides?"), Some("ann"))
        );
        q = ev["question"]["id"].as_u64().unwrap();
    }
    send(&mut b, json!({ "type": "upvote", "question": q })).await;
    let ev = expect_event(&mut host, "question_updated").await;
    assert_eq!(ev["question"]["votes"], 2);
    send(&mut b, json!({ "type": "upvote", "question": q })).await;
    expect_error(&mut b, "already_voted").await;
    send(&mut b, json!({ "type": "upvote", "question": 999 })).await;
    expect_error(&mut b, "bad_message").await;
    send(&mut b, json!({ "type": "answer_question", "question": q })).await;
    expect_error(&mut b, "forbidden").await;
    send(
        &mut host,
        json!({ "type": "answer_question", "question": q }),
    )
    .await;
    // Ann gets the upvote's update first, then the answer.
    let answered = loop {
        let ev = expect_event(&mut a, "question_updated").await;
        if ev["question"]["answered"] == true {
            break ev;
        }
    };
    assert!(answered["question"]["answer"].is_null(), "answered live");
}

/// Audience mode over WebSockets: a host switches it live, everyone learns of it, an
/// attendee's chat and hand are refused while they are off; an attendee may not switch it.
#[tokio::test]
async fn audience_mode_is_switched_live_over_websockets() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let mut host = joined(&server, "m1", "hana", "host").await;
    let mut a = joined(&server, "m1", "ann", "attendee").await;
    let strict = json!({ "on": true, "chat": false, "chat_hosts": false, "reactions": false, "hands": false });
    send(
        &mut a,
        json!({ "type": "set_audience", "audience": strict }),
    )
    .await;
    expect_error(&mut a, "forbidden").await;
    send(
        &mut host,
        json!({ "type": "set_audience", "audience": { "on": true } }),
    )
    .await;
    expect_error(&mut host, "bad_message").await;
    send(
        &mut host,
        json!({ "type": "set_audience", "audience": strict }),
    )
    .await;
    let ev = expect_event(&mut a, "audience").await;
    assert_eq!(ev["audience"], strict);
    send(&mut a, json!({ "type": "chat", "text": "hello?" })).await;
    expect_error(&mut a, "forbidden").await;
    send(&mut a, json!({ "type": "hand", "raised": true })).await;
    expect_error(&mut a, "forbidden").await;
    let mut late = connect(&server).await;
    let welcome = join(&mut late, &server.token("m1", "late", "attendee")).await;
    assert_eq!(welcome["snapshot"]["audience"], strict);
}

/// A node whose partitions of a meeting are full refers newcomers to the route (which has
/// nowhere else to send them on a one-node cluster); a seat freed is taken again.
#[tokio::test]
async fn a_full_node_refers_joiners_to_the_route() {
    let server = common::Server::start_in(
        tempfile::tempdir().expect("temp dir"),
        &["--workers", "2", "--partition-size", "1"],
    );
    server.create_meeting("small").await;
    let mut a = joined(&server, "small", "ann", "attendee").await;
    let _b = joined(&server, "small", "ben", "attendee").await;
    let mut c = connect(&server).await;
    let token = server.token("small", "cid", "attendee");
    send(&mut c, json!({ "type": "join", "v": 1, "token": token })).await;
    let refused = expect_error(&mut c, "wrong_node").await;
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("route")),
        "{refused}"
    );
    let route = reqwest::get(format!("{}/api/v1/route?meeting=small", server.url))
        .await
        .expect("route");
    assert_eq!(route.status(), 503);
    // Ann leaves: her seat (her partition, her worker) is free again.
    send(&mut a, json!({ "type": "leave" })).await;
    expect_closed(&mut a).await;
    let route: Value = reqwest::get(format!("{}/api/v1/route?meeting=small", server.url))
        .await
        .expect("route")
        .json()
        .await
        .expect("route JSON");
    assert!(route["node"].is_string(), "{route}");
    let mut c = connect(&server).await;
    let welcome = join(&mut c, &token).await;
    assert_eq!(welcome["you"]["identity"], "cid");
}

/// Dev mode serves this machine's clients only: not a client that came through a proxy,
/// even one on this machine (an edge with TLS in front of the server), and its tokens carry
/// at most the meeting's default role.
#[tokio::test]
async fn dev_powers_stop_at_proxies_and_the_default_role() {
    let server = common::Server::start();
    server.create_meeting("m1").await;
    let http = reqwest::Client::new();
    let dev_token = |base: String, body: Value| {
        let http = http.clone();
        async move {
            let res = http
                .post(format!("{base}/api/dev/token"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    // Directly: a panelist by default, an attendee if asked, never a host.
    let (status, _) = dev_token(
        server.url.clone(),
        json!({ "meeting": "m1", "name": "ann" }),
    )
    .await;
    assert_eq!(status, 200);
    let ask = json!({ "meeting": "m1", "name": "att", "role": "attendee" });
    assert_eq!(dev_token(server.url.clone(), ask).await.0, 200);
    let ask = json!({ "meeting": "m1", "name": "boss", "role": "host" });
    let (status, body) = dev_token(server.url.clone(), ask).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("dev_role")),
        "{body}"
    );
    // Whoever creates a meeting gets its host link: its key makes a host of that meeting only.
    let res = http
        .post(format!("{}/api/dev/meetings", server.url))
        .json(&json!({ "settings": { "default_role": "attendee" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let (id, host_key) = (&created["id"], &created["host_key"]);
    let ask = json!({ "meeting": id, "name": "hana", "host_key": host_key });
    let (status, body) = dev_token(server.url.clone(), ask).await;
    assert_eq!(status, 200, "{body}");
    let mut ws = connect(&server).await;
    let welcome = join(&mut ws, body["token"].as_str().unwrap()).await;
    assert_eq!(welcome["you"]["role"], "host");
    let ask = json!({ "meeting": id, "name": "ari" });
    let (_, body) = dev_token(server.url.clone(), ask).await;
    let mut ws = connect(&server).await;
    let welcome = join(&mut ws, body["token"].as_str().unwrap()).await;
    assert_eq!(welcome["you"]["role"], "attendee", "the meeting's default");
    // The host sets the default live: the next link joins as a panelist; attendees and
    // co-hosts may not set it, and nobody makes hosts by default.
    send(
        &mut ws,
        json!({ "type": "set_default_role", "role": "panelist" }),
    )
    .await;
    expect_error(&mut ws, "forbidden").await;
    let mut host = connect(&server).await;
    let ask = json!({ "meeting": id, "name": "hana", "host_key": host_key });
    join(
        &mut host,
        dev_token(server.url.clone(), ask).await.1["token"]
            .as_str()
            .unwrap(),
    )
    .await;
    send(
        &mut host,
        json!({ "type": "set_default_role", "role": "host" }),
    )
    .await;
    expect_error(&mut host, "forbidden").await;
    send(
        &mut host,
        json!({ "type": "set_default_role", "role": "panelist" }),
    )
    .await;
    let ev = expect_event(&mut ws, "default_role").await;
    assert_eq!(ev["role"], "panelist");
    let ask = json!({ "meeting": id, "name": "cy" });
    let (_, body) = dev_token(server.url.clone(), ask).await;
    let mut cy = connect(&server).await;
    let welcome = join(&mut cy, body["token"].as_str().unwrap()).await;
    assert_eq!(welcome["you"]["role"], "panelist", "the new default");
    assert_eq!(welcome["snapshot"]["default_role"], "panelist");
    // And back through the REST API.
    let (key, secret) = server.api_credentials();
    let res = http
        .post(format!(
            "{}/api/v1/meetings/{}/default_role",
            server.url,
            id.as_str().unwrap()
        ))
        .basic_auth(key, Some(secret))
        .json(&json!({ "role": "attendee" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, body) = dev_token(server.url.clone(), json!({ "meeting": id, "name": "dee" })).await;
    let mut dee = connect(&server).await;
    assert_eq!(
        join(&mut dee, body["token"].as_str().unwrap()).await["you"]["role"],
        "attendee"
    );
    for (meeting, key) in [
        ("m1", host_key.clone()),
        (id.as_str().unwrap(), json!("forged")),
    ] {
        let ask = json!({ "meeting": meeting, "name": "eve", "host_key": key });
        let (status, body) = dev_token(server.url.clone(), ask).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("bad_host_key")),
            "{body}"
        );
    }

    // Through a real edge on this machine: no dev powers at all.
    let edge = common::Edge::start(&server.url, &[]);
    let (status, body) =
        dev_token(edge.url.clone(), json!({ "meeting": "m1", "name": "eve" })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("dev_not_proxied")),
        "{body}"
    );
    let res = http
        .post(format!("{}/api/dev/meetings", edge.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // With a forwarding field written by hand, the same.
    let res = http
        .post(format!("{}/api/dev/token", server.url))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({ "meeting": "m1", "name": "eve" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

/// HTTPS on a node: the REST API and signalling over TLS with the operator's certificate,
/// which SIGHUP reloads (a renewed certificate is served to new connections, no restart).
#[tokio::test]
async fn a_node_serves_https_and_reloads_its_certificate_on_sighup() {
    use std::sync::Arc;
    use tokio_rustls::rustls;

    let dir = tempfile::tempdir().unwrap();
    let first = common::TestCert::new(dir.path(), "node", &["node.test"]);
    let (cert, key) = (first.cert.to_str().unwrap(), first.key.to_str().unwrap());
    let server = common::Server::start_in(
        tempfile::tempdir().unwrap(),
        &[
            "--https",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    let https = server.https.clone().expect("an HTTPS address");
    let addr: std::net::SocketAddr = https.trim_start_matches("https://").parse().unwrap();
    let base = format!("https://node.test:{}", addr.port());
    let health = first
        .client("node.test", addr)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("the certificate verifies");
    assert_eq!(health.status(), 200);

    // Signalling over TLS (wss): join and get a welcome.
    server.create_meeting("m1").await;
    let token = server.token("m1", "tess", "panelist");
    let tls = |der: Vec<u8>| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der.into()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };
    let name = rustls::pki_types::ServerName::try_from("node.test").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tls(first.der.clone())
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("wss://node.test:{}/ws", addr.port()), stream)
            .await
            .expect("websocket over TLS");
    ws.send(Message::Text(
        json!({ "type": "join", "v": 1, "token": token })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let msg: Value = serde_json::from_str(&t).unwrap();
                if msg["type"] == "welcome" {
                    break;
                }
            }
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    // A renewed certificate in the same files, then SIGHUP: new connections get it.
    let renewed = common::TestCert::new(dir.path(), "node", &["node.test"]);
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) }, 0);
    let started = std::time::Instant::now();
    loop {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        if tls(renewed.der.clone())
            .connect(name.clone(), tcp)
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the renewed certificate is served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old certificate no longer verifies for new connections.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(tls(first.der.clone()).connect(name, tcp).await.is_err());
}

/// With MYRIAD_LOG_FORMAT=json every log line is one JSON object with its level, target and
/// fields, for a log pipeline.
#[tokio::test]
async fn logs_can_be_json_lines() {
    let server = common::Server::start_in_env(
        tempfile::tempdir().unwrap(),
        &[],
        &[("MYRIAD_LOG_FORMAT", "json")],
    );
    server.create_meeting("m1").await;
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "meeting created" && l["meeting"] == "m1"),
        "{log}"
    );
}
