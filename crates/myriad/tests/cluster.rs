//! Several `myriad serve` nodes on a real `nats-server -js`: one meeting across them, the
//! route API, a node killed under its people, the coordinator's node killed, NATS restarted.

#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::ws::{connect_to, expect_type, recv, send, Ws};
use common::{Nats, Server};
use serde_json::{json, Value};

fn ws_url(node: &Server) -> String {
    node.ws_url()
}

async fn create_meeting(node: &Server, id: &str) {
    node.create_meeting(id).await;
}

/// A REST API answer of `node`, asked with the cluster's key.
async fn api_get(http: &reqwest::Client, node: &Server, path: &str) -> Value {
    let (key, secret) = node.api_credentials();
    http.get(format!("{}{path}", node.url))
        .basic_auth(&key, Some(&secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A participant joined through `node`: its connection and welcome.
async fn join_via(node: &Server, token: &str) -> (Ws, Value) {
    let mut ws = connect_to(&ws_url(node)).await;
    send(&mut ws, json!({ "type": "join", "v": 1, "token": token })).await;
    let welcome = expect_type(&mut ws, "welcome").await;
    (ws, welcome)
}

/// Every event that arrives on `ws` for `wait`, in order.
async fn events_for(ws: &mut Ws, wait: Duration) -> Vec<Value> {
    let mut all = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    while let Ok(Some(msg)) = tokio::time::timeout_at(end, recv(ws)).await {
        if msg["type"] == "events" {
            all.extend(msg["events"].as_array().cloned().unwrap_or_default());
        }
    }
    all
}

/// Waits for an event of `kind` whose `field` is `value`; returns it.
async fn wait_event(ws: &mut Ws, kind: &str, field: &str, value: &Value, limit: Duration) -> Value {
    wait_event_noting(ws, kind, field, value, limit, &mut Vec::new()).await
}

/// As [`wait_event`], noting the sequence number of every event received on the way.
async fn wait_event_noting(
    ws: &mut Ws,
    kind: &str,
    field: &str,
    value: &Value,
    limit: Duration,
    seqs: &mut Vec<u64>,
) -> Value {
    let end = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(end, recv(ws))
            .await
            .unwrap_or_else(|_| panic!("no {kind} with {field} = {value} within {limit:?}"))
            .unwrap_or_else(|| panic!("closed while waiting for {kind}"));
        if msg["type"] != "events" {
            continue;
        }
        let events = msg["events"].as_array().cloned().unwrap_or_default();
        seqs.extend(events.iter().filter_map(|e| e["seq"].as_u64()));
        if let Some(ev) = events
            .iter()
            .find(|e| e["kind"] == kind && &e[field] == value)
        {
            return ev.clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_created_on_one_node_is_joined_through_another() {
    let nats = Nats::start_js();
    let nodes = Server::cluster(&nats, &["eu", "us"]);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    create_meeting(n1, "town-hall").await;
    let http = reqwest::Client::new();

    // Any node answers where to connect, from the live registry.
    let route: Value = http
        .get(format!(
            "{}/api/v1/route?meeting=town-hall&region=us",
            n2.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(route["meeting"], "town-hall");
    assert_eq!(route["node"], "n2", "the client's region first: {route}");
    assert_eq!(route["url"], n2.url.as_str());
    let candidates = route["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{route}");
    let from_n1: Value = http
        .get(format!(
            "{}/api/v1/route?meeting=town-hall&region=eu",
            n1.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(from_n1["node"], "n1");
    let unknown = http
        .get(format!("{}/api/v1/route?meeting=no-such", n2.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "meeting_not_found");

    // Alice through n1, Bob through n2: they see each other join and chat.
    let (mut alice, _) = join_via(n1, &n1.token("town-hall", "alice", "host")).await;
    let (mut bob, bob_welcome) = join_via(n2, &n2.token("town-hall", "bob", "panelist")).await;
    let names: Vec<&str> = bob_welcome["snapshot"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["identity"].as_str())
        .collect();
    assert!(
        names.contains(&"alice"),
        "Bob's snapshot has Alice: {names:?}"
    );
    wait_event(
        &mut alice,
        "participant_joined",
        "participant",
        &bob_welcome["you"],
        Duration::from_secs(5),
    )
    .await;
    send(
        &mut bob,
        json!({ "type": "chat", "text": "hello across nodes" }),
    )
    .await;
    wait_event(
        &mut alice,
        "chat",
        "text",
        &json!("hello across nodes"),
        Duration::from_secs(5),
    )
    .await;

    // The REST API of either node sees both people; the cluster lists both nodes.
    let list = api_get(&http, n2, "/api/v1/meetings/town-hall/participants").await;
    assert_eq!(list["count"], 2, "{list}");
    let cluster = api_get(&http, n1, "/api/v1/cluster").await;
    let nodes: Vec<&str> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(nodes, ["n1", "n2"]);

    // Each node's metrics: its people, the cluster it hears, the lease it holds (n2
    // coordinates: the first route question reached it first), how late batches came.
    let scrape = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let m1 = scrape(format!("{}/metrics", n1.url)).await;
    for line in [
        "myriad_node_participants 1",
        "myriad_node_partitions 1",
        "myriad_node_cluster_nodes 2",
        "myriad_node_leases 0",
        "myriad_node_relay_links 1",
    ] {
        assert!(m1.lines().any(|l| l == line), "{line} in:\n{m1}");
    }
    let lag_count = m1
        .lines()
        .find_map(|l| l.strip_prefix("myriad_node_event_lag_seconds_count "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(lag_count.is_some_and(|n| n >= 2), "batches measured:\n{m1}");
    let m2 = scrape(format!("{}/metrics", n2.url)).await;
    assert!(m2.lines().any(|l| l == "myriad_node_leases 1"), "{m2}");
    // Through a proxy (or from elsewhere) the metrics need the API key.
    let proxied = http
        .get(format!("{}/metrics", n1.url))
        .header("via", "1.1 some-proxy")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 401);
    let (key, secret) = n1.api_credentials();
    let with_key = http
        .get(format!("{}/metrics", n1.url))
        .header("via", "1.1 some-proxy")
        .basic_auth(&key, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meeting_goes_on_when_the_coordinators_node_is_killed() {
    let nats = Nats::start_js();
    let mut nodes = Server::cluster(&nats, &["eu", "eu", "eu"]);
    create_meeting(&nodes[0], "briefing").await;
    // Alice joins first, through n1: n1 coordinates the meeting.
    let (mut alice, alice_welcome) =
        join_via(&nodes[0], &nodes[0].token("briefing", "alice", "host")).await;
    let (mut bob, _) = join_via(&nodes[1], &nodes[1].token("briefing", "bob", "panelist")).await;
    let (mut carol, carol_welcome) =
        join_via(&nodes[2], &nodes[2].token("briefing", "carol", "panelist")).await;
    send(&mut bob, json!({ "type": "chat", "text": "before" })).await;
    wait_event(
        &mut carol,
        "chat",
        "text",
        &json!("before"),
        Duration::from_secs(5),
    )
    .await;
    let before = events_for(&mut alice, Duration::from_millis(300)).await;
    let alice_seq = before
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .chain(alice_welcome["snapshot"]["seq"].as_u64())
        .max()
        .unwrap();

    // n1 dies with the coordinator and Alice's connection.
    nodes[0].kill();
    let killed = Instant::now();
    assert!(recv(&mut alice).await.is_none() || recv(&mut alice).await.is_none());
    // Bob chats meanwhile: it is answered once a coordinator took over.
    send(&mut bob, json!({ "type": "chat", "text": "during" })).await;

    // Alice resumes through n2: same participant, what she missed replayed.
    let mut alice = connect_to(&ws_url(&nodes[1])).await;
    let resume = json!({
        "participant": alice_welcome["you"]["id"],
        "session_token": alice_welcome["session_token"],
        "last_seq": alice_seq,
    });
    let token = nodes[1].token("briefing", "alice", "host");
    send(
        &mut alice,
        json!({ "type": "join", "v": 1, "token": token, "resume": resume }),
    )
    .await;
    let welcome = expect_type(&mut alice, "welcome").await;
    let took = killed.elapsed();
    eprintln!("resumed {took:?} after the kill");
    assert_eq!(welcome["resumed"], true, "{welcome}");
    assert_eq!(welcome["you"]["id"], alice_welcome["you"]["id"]);
    assert!(took < Duration::from_secs(8), "resumed after {took:?}");
    wait_event(
        &mut alice,
        "chat",
        "text",
        &json!("during"),
        Duration::from_secs(5),
    )
    .await;

    // Carol, on n3 all along, got every event exactly once, in order, nothing missing.
    send(&mut bob, json!({ "type": "chat", "text": "after" })).await;
    wait_event(
        &mut alice,
        "chat",
        "text",
        &json!("after"),
        Duration::from_secs(5),
    )
    .await;
    let mut seen: Vec<u64> = Vec::new();
    let mut start = carol_welcome["snapshot"]["seq"].as_u64().unwrap();
    for ev in events_for(&mut carol, Duration::from_millis(500)).await {
        seen.push(ev["seq"].as_u64().unwrap());
    }
    // (The chat "before" was consumed above: start after it.)
    if let Some(first) = seen.first() {
        start = start.max(first - 1);
    }
    let expected: Vec<u64> = (start + 1..=start + seen.len() as u64).collect();
    assert_eq!(seen, expected, "gap-free and duplicate-free at Carol");
    assert!(
        seen.len() >= 2,
        "at least \"during\" and \"after\": {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_nats_restarts_everyone_is_back() {
    let mut nats = Nats::start_js();
    let nodes = Server::cluster(&nats, &["eu", "us"]);
    create_meeting(&nodes[0], "standup").await;
    let (mut alice, welcome) =
        join_via(&nodes[0], &nodes[0].token("standup", "alice", "host")).await;
    let (mut bob, _) = join_via(&nodes[1], &nodes[1].token("standup", "bob", "panelist")).await;
    // Every event Alice gets, by sequence number: none may be lost or come twice.
    let mut seqs = Vec::new();
    send(&mut bob, json!({ "type": "chat", "text": "one" })).await;
    wait_event_noting(
        &mut alice,
        "chat",
        "text",
        &json!("one"),
        Duration::from_secs(5),
        &mut seqs,
    )
    .await;

    nats.restart();
    // The nodes reconnect by themselves; a chat goes across again.
    let end = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        n += 1;
        let text = format!("again {n}");
        send(&mut bob, json!({ "type": "chat", "text": text })).await;
        let got = tokio::time::timeout(
            Duration::from_secs(2),
            wait_event_noting(
                &mut alice,
                "chat",
                "text",
                &json!(text),
                Duration::from_secs(2),
                &mut seqs,
            ),
        )
        .await;
        if got.is_ok() {
            break;
        }
        assert!(
            Instant::now() < end,
            "no chat across nodes 15 s after NATS restarted"
        );
    }
    eprintln!("a chat crossed again after {n} tries");
    let first = welcome["snapshot"]["seq"].as_u64().expect("snapshot seq") + 1;
    let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "Alice's events, in order, none lost or repeated"
    );
}

/// Taking part across two nodes: the host on n1, attendees on n2. A newcomer on n2 waits in
/// the waiting room until the host on n1 lets them in; a message to the hosts from n2
/// reaches the host on n1 and is withheld from the other attendee on n2 (each node's link
/// sees to it); a breakout room's pass is had through n2 and its meeting joined through n1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_room_private_chat_and_breakouts_work_across_nodes() {
    let nats = Nats::start_js();
    let nodes = Server::cluster(&nats, &["eu", "us"]);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    create_meeting(n1, "across").await;
    let (mut host, _) = join_via(n1, &n1.token("across", "hana", "host")).await;
    let (mut ann, ann_welcome) = join_via(n2, &n2.token("across", "ann", "attendee")).await;
    let ann_id = ann_welcome["you"]["id"].clone();
    let (mut ben, _) = join_via(n2, &n2.token("across", "ben", "attendee")).await;

    send(&mut host, json!({ "type": "set_waiting_room", "on": true })).await;
    wait_event(
        &mut host,
        "waiting_room",
        "kind",
        &json!("waiting_room"),
        Duration::from_secs(5),
    )
    .await;
    let mut cy = connect_to(&ws_url(n2)).await;
    send(
        &mut cy,
        json!({ "type": "join", "v": 1, "token": n2.token("across", "cy", "attendee") }),
    )
    .await;
    expect_type(&mut cy, "waiting").await;
    let room = loop {
        let ev = wait_event(
            &mut host,
            "waiting_room",
            "kind",
            &json!("waiting_room"),
            Duration::from_secs(10),
        )
        .await;
        if ev["room"]["waiting"] == 1 {
            break ev["room"].clone();
        }
    };
    send(
        &mut host,
        json!({ "type": "admit", "ticket": room["first"][0]["ticket"], "admit": true }),
    )
    .await;
    let welcome = expect_type(&mut cy, "welcome").await;
    assert_eq!(welcome["you"]["name"], "cy");

    send(
        &mut ann,
        json!({ "type": "chat", "text": "for the hosts", "to_hosts": true }),
    )
    .await;
    wait_event(
        &mut host,
        "chat",
        "text",
        &json!("for the hosts"),
        Duration::from_secs(5),
    )
    .await;
    let seen = events_for(&mut ben, Duration::from_secs(1)).await;
    assert!(seen.iter().any(|e| e["kind"] == "withheld"), "{seen:?}");
    assert!(
        !seen.iter().any(|e| e["text"] == "for the hosts"),
        "{seen:?}"
    );

    let op = |o: Value| json!({ "type": "breakouts", "op": o });
    send(&mut host, op(json!({ "action": "create", "count": 2 }))).await;
    send(
        &mut host,
        op(json!({ "action": "assign", "participant": ann_id, "room": 2 })),
    )
    .await;
    send(&mut host, op(json!({ "action": "open" }))).await;
    wait_event(
        &mut ann,
        "breakouts",
        "kind",
        &json!("breakouts"),
        Duration::from_secs(5),
    )
    .await;
    send(&mut ann, json!({ "type": "join_breakout" })).await;
    let pass = expect_type(&mut ann, "breakout").await;
    assert_eq!(pass["meeting"], "across_br2");
    let (_, room_welcome) = join_via(n1, pass["token"].as_str().unwrap()).await;
    assert_eq!(room_welcome["meeting"], "across_br2");
    assert_eq!(room_welcome["you"]["role"], "panelist");
}

/// A node that stops (SIGTERM) leaves the registry at once: the other nodes stop listing and
/// routing to it within a second, not after its heartbeats fall silent (2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_leaves_the_registry_within_a_second() {
    let nats = Nats::start_js();
    let mut nodes = Server::cluster(&nats, &["eu", "eu"]);
    let http = reqwest::Client::new();
    let names = |cluster: &Value| -> Vec<String> {
        cluster["nodes"]
            .as_array()
            .map(|ns| {
                ns.iter()
                    .filter_map(|n| n["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let listed = api_get(&http, &nodes[0], "/api/v1/cluster").await;
    assert_eq!(names(&listed), ["n1", "n2"], "{listed}");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &nodes[1].pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopped = Instant::now();
    assert!(nodes[1]
        .wait_exit(Duration::from_secs(5))
        .is_some_and(|s| s.success()));
    loop {
        let listed = api_get(&http, &nodes[0], "/api/v1/cluster").await;
        if names(&listed) == ["n1"] {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(1),
            "still listed a second after it stopped: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A draining node (SIGTERM with a drain time) is routed around: while it still serves its
/// people and says `draining` on `/healthz`, the route API of the other node sends newcomers
/// only to the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_is_routed_around() {
    let nats = Nats::start_js();
    let nodes = Server::cluster_with(&nats, &["eu", "eu"], &["--drain-s", "5"]);
    create_meeting(&nodes[0], "drain").await;
    let http = reqwest::Client::new();
    let candidates = |route: &Value| -> Vec<String> {
        route["candidates"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|n| n["node"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let route = |node: &Server| {
        let (http, url) = (http.clone(), node.url.clone());
        async move {
            http.get(format!("{url}/api/v1/route?meeting=drain"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let before = route(&nodes[0]).await;
    assert_eq!(candidates(&before).len(), 2, "{before}");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &nodes[1].pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    loop {
        let now = route(&nodes[0]).await;
        if candidates(&now) == ["n1"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still routed to n2: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = http
        .get(format!("{}/healthz", nodes[1].url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503, "n2 still answers while it drains");
}

/// The node the route API names to a client at `ip`, asked of `node`.
async fn routed_from(ip: [u8; 4], node: &Server, meeting: &str) -> String {
    routed_for(ip, None, node, meeting).await
}

/// The same, asked by a peer at `ip` that says it forwards for `forwarded`
/// (`X-Forwarded-For`).
async fn routed_for(ip: [u8; 4], forwarded: Option<&str>, node: &Server, meeting: &str) -> String {
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap();
    let mut request = http.get(format!("{}/api/v1/route?meeting={meeting}", node.url));
    if let Some(client) = forwarded {
        request = request.header("x-forwarded-for", client);
    }
    let route: Value = request.send().await.unwrap().json().await.unwrap();
    route["node"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_say_their_region_are_routed_by_their_address() {
    let nats = Nats::start_js();
    let placed = [
        "--geo-prefix",
        "127.0.0.21/32=eu",
        "--geo-prefix",
        "127.0.0.22/32=us",
        "--geo-prefix",
        "127.0.0.23/32=ap",
        // An edge in front of the nodes, at this address: believed about its clients.
        "--trusted-proxy",
        "127.0.0.50/32",
    ];
    let mut nodes = Server::cluster_with(&nats, &["eu", "us", "ap"], &placed);
    create_meeting(&nodes[0], "by-address").await;
    for (ip, want) in [
        ([127, 0, 0, 21], "n1"),
        ([127, 0, 0, 22], "n2"),
        ([127, 0, 0, 23], "n3"),
    ] {
        for asked in &nodes {
            assert_eq!(routed_from(ip, asked, "by-address").await, want, "{ip:?}");
        }
    }
    // Nobody placed: the region of the node asked.
    assert_eq!(
        routed_from([127, 0, 0, 99], &nodes[1], "by-address").await,
        "n2"
    );
    // Through the trusted proxy, the client it forwards for is placed; a client that
    // writes the field itself is not believed.
    let forwarded =
        |ip: [u8; 4], client: &'static str| routed_for(ip, Some(client), &nodes[1], "by-address");
    assert_eq!(forwarded([127, 0, 0, 50], "127.0.0.23").await, "n3");
    assert_eq!(
        forwarded([127, 0, 0, 50], "127.0.0.23, 127.0.0.21").await,
        "n1"
    );
    assert_eq!(forwarded([127, 0, 0, 99], "127.0.0.23").await, "n2");
    // Its region's node crashes: its failed health checks take it out of the routes within
    // a second (the registry alone would take two), and the client goes elsewhere.
    nodes[1].kill();
    let start = Instant::now();
    loop {
        let now = routed_from([127, 0, 0, 22], &nodes[0], "by-address").await;
        if now != "n2" {
            assert_eq!(now, "n1", "no open node in its region: the asked node's");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still routed to n2 after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("a crashed node left the routes in {:?}", start.elapsed());
}

/// An invitation as calendar apps send it: a town hall in New York's time, a lecture with
/// our audience property, an all-day event (not a meeting).
const INVITATIONS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//EN\r\n\
BEGIN:VEVENT\r\nUID:town-hall-2027@example.org\r\n\
DTSTART;TZID=America/New_York:20270110T090000\r\nDTEND;TZID=America/New_York:20270110T100000\r\n\
SUMMARY:Town hall\r\nORGANIZER;CN=Ana:mailto:ana@example.org\r\n\
ATTENDEE:mailto:bo@example.org\r\nATTENDEE:mailto:cy@example.org\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:lecture-2027@example.org\r\nDTSTART:20270111T140000Z\r\nDURATION:PT2H\r\n\
SUMMARY:Lecture\r\nORGANIZER:mailto:ana@example.org\r\nX-MYRIAD-AUDIENCE:eu=300,us=120\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:holiday-2027\r\nDTSTART;VALUE=DATE:20270101\r\nSUMMARY:Holiday\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

/// Imports [`INVITATIONS`] through `import`, then reads what is planned, and Ana's feed,
/// through `read`.
async fn schedule_round_trip(import: &Server, read: &Server) {
    let http = reqwest::Client::new();
    let (key, secret) = import.api_credentials();
    let post = |body: String| {
        http.post(format!("{}/api/v1/calendar", import.url))
            .basic_auth(&key, Some(&secret))
            .body(body)
            .send()
    };
    let answer: Value = post(INVITATIONS.to_owned())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["created", "created", "refused"], "{answer}");
    assert!(answer["events"][2]["error"]
        .as_str()
        .unwrap()
        .contains("all-day"));
    // The same invitations again: the same meetings.
    let again: Value = post(INVITATIONS.to_owned())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["events"][0]["status"], "exists", "{again}");
    assert_eq!(
        again["events"][0]["meeting"],
        answer["events"][0]["meeting"]
    );
    let bad = post("not a calendar".to_owned()).await.unwrap();
    assert_eq!(bad.status(), 400);
    // The lecture moves an hour later (its organizer sent the event again): its meeting
    // moves with it.
    let moved = INVITATIONS.replace("20270111T140000Z", "20270111T150000Z");
    let answer: Value = post(moved).await.unwrap().json().await.unwrap();
    assert_eq!(answer["events"][0]["status"], "exists", "{answer}");
    assert_eq!(answer["events"][1]["status"], "updated", "{answer}");
    assert_eq!(answer["events"][1]["starts_unix_s"], 1_799_679_600);

    let planned = api_get(&http, read, "/api/v1/schedule?host=Ana@example.org").await;
    let meetings = planned["meetings"].as_array().unwrap();
    let titles: Vec<&str> = meetings
        .iter()
        .map(|m| m["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Town hall", "Lecture"], "soonest first: {planned}");
    // 09:00 in New York on 10 January is 14:00 UTC.
    assert_eq!(meetings[0]["schedule"]["starts_unix_s"], 1_799_589_600);
    assert_eq!(meetings[0]["schedule"]["audience"], json!({ "*": 2 }));
    assert_eq!(
        meetings[1]["schedule"]["audience"],
        json!({ "eu": 300, "us": 120 })
    );
    assert_eq!(meetings[1]["schedule"]["duration_s"], 7200);
    assert_eq!(
        meetings[1]["schedule"]["starts_unix_s"], 1_799_679_600,
        "moved"
    );

    // Ana's feed, by the URL the listing gives; a calendar app reads it back.
    let feed_url = meetings[0]["host_feed"].as_str().unwrap();
    let feed = http.get(feed_url).send().await.unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/calendar"));
    let text = feed.text().await.unwrap();
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 2, "{text}");
    assert!(
        text.contains("SUMMARY:Town hall") && text.contains("DTSTART:20270110T140000Z"),
        "{text}"
    );
    let forged = feed_url.replace("key=", "key=x");
    assert_eq!(http.get(forged).send().await.unwrap().status(), 401);

    // An ended meeting is no longer planned.
    let town_hall = meetings[0]["id"].as_str().unwrap();
    let ended = http
        .delete(format!("{}/api/v1/meetings/{town_hall}", read.url))
        .basic_auth(&key, Some(&secret))
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    let planned = api_get(&http, import, "/api/v1/schedule").await;
    assert_eq!(
        planned["meetings"].as_array().unwrap().len(),
        1,
        "{planned}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_imported_on_one_node_is_planned_on_every_node() {
    let nats = Nats::start_js();
    let nodes = Server::cluster(&nats, &["eu", "us"]);
    schedule_round_trip(&nodes[0], &nodes[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_imported_on_a_node_alone_is_planned() {
    let node = Server::start();
    schedule_round_trip(&node, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_learn_which_node_a_network_reaches_fastest() {
    let nats = Nats::start_js();
    // Every node places 127.0.1.0/24 in eu: what measurements must override.
    let placed = ["--geo-prefix", "127.0.1.0/24=eu"];
    let nodes = Server::cluster_with(&nats, &["eu", "us"], &placed);
    create_meeting(&nodes[0], "rtt").await;
    // Nothing measured: where the network is placed.
    assert_eq!(routed_from([127, 0, 1, 5], &nodes[0], "rtt").await, "n1");
    assert_eq!(routed_from([127, 0, 1, 5], &nodes[1], "rtt").await, "n1");
    let report = |from: [u8; 4], body: String| {
        let http = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(from))
            .build()
            .unwrap();
        let url = format!("{}/api/v1/route/rtt", nodes[0].url);
        async move { http.post(url).body(body).send().await.unwrap().status() }
    };
    // A client of 127.0.1.0/24 found n2 the faster (a node the registry lacks is ignored).
    let samples = r#"{"samples":[{"node":"n1","rtt_ms":80},{"node":"n2","rtt_ms":12},{"node":"n9","rtt_ms":1}]}"#;
    assert_eq!(report([127, 0, 1, 5], samples.into()).await, 204);
    // Its neighbours go to n2's region; another network does not.
    assert_eq!(routed_from([127, 0, 1, 77], &nodes[0], "rtt").await, "n2");
    assert_eq!(routed_from([127, 0, 2, 5], &nodes[0], "rtt").await, "n1");
    // The node it reported to shared it: the other node, which places the network in eu,
    // routes its neighbours by the measurements too.
    let start = Instant::now();
    while routed_from([127, 0, 1, 77], &nodes[1], "rtt").await != "n2" {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "n2 did not hear of the round trips"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        routed_from([127, 0, 2, 5], &nodes[1], "rtt").await,
        "n2",
        "its own region"
    );
    assert_eq!(
        nodes[0]
            .scrape()
            .await
            .figure("myriad_node_route_rtt_samples_total"),
        2
    );
    // Bad reports are refused and change nothing.
    let many = format!(
        r#"{{"samples":[{}]}}"#,
        [r#"{"node":"n1","rtt_ms":1}"#; 9].join(",")
    );
    for bad in [
        "not json".to_owned(),
        r#"{"samples":[{"node":"n1","rtt_ms":-1}]}"#.to_owned(),
        r#"{"samples":[{"node":"n1","rtt_ms":1e9}]}"#.to_owned(),
        many,
    ] {
        assert_eq!(report([127, 0, 1, 5], bad.clone()).await, 400, "{bad}");
    }
    assert_eq!(routed_from([127, 0, 1, 77], &nodes[0], "rtt").await, "n2");
}
