//! Real-browser end-to-end tests: Debian's Chromium, driven over CDP, against `myriad serve`
//! and `myriad edge`.
//!
//! Three participants join one meeting with fake camera and microphone; each must decode the
//! others' video and receive their audio; a screen share, a mute, a WebSocket drop with resume
//! and a leave must all show up for the others. A screenshot of the meeting is saved. And
//! Chromium loads a page through the edge over HTTP/3.

#![allow(clippy::disallowed_methods)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The flags from docs/architecture.md, plus autoplay, screen capture without a picker, and no
/// throttling of the pages that are not in front.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    // Screen share picks a tab titled "myriad" instead of asking.
    "--auto-select-tab-capture-source-by-title=myriad",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
];

/// Chromium with [`CHROMIUM_FLAGS`] and `extra` ones.
async fn launch(extra: &[String]) -> (Browser, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    launch_with_prefs(extra, None).await
}

/// As [`launch`], its profile starting with these preferences (as a user's settings or an
/// administrator's policy would set them).
async fn launch_with_prefs(
    extra: &[String],
    prefs: Option<Value>,
) -> (Browser, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium)"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    if let Some(prefs) = prefs {
        let default = profile.path().join("Default");
        std::fs::create_dir_all(&default).expect("profile's Default dir");
        std::fs::write(default.join("Preferences"), prefs.to_string()).expect("preferences");
    }
    let mut builder = BrowserConfig::builder()
        .chrome_executable(CHROMIUM)
        .disable_default_args()
        .with_head() // headless is passed explicitly, in the new mode
        .user_data_dir(profile.path())
        .window_size(1280, 800)
        .viewport(None)
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30));
    for flag in CHROMIUM_FLAGS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        // chromiumoxide adds the dashes itself and wants key and value apart.
        let flag = flag.trim_start_matches("--");
        builder = match flag.split_once('=') {
            Some((key, value)) => builder.arg((key, value)),
            None => builder.arg(flag),
        };
    }
    let config = builder.build().expect("browser config");
    let (browser, mut handler) = Browser::launch(config).await.expect("chromium starts");
    let task = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, task, profile)
}

async fn eval(page: &Page, js: &str) -> Value {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("evaluating `{js}`: {e}"))
        .into_value()
        .unwrap_or(Value::Null)
}

/// Polls `js` (an async expression) until `ok` accepts its value, or fails after `limit`.
async fn wait_for(
    page: &Page,
    what: &str,
    js: &str,
    limit: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = eval(page, js).await;
        if ok(&v) {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; last value: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (up to 10 s) until the text of `selector` on `page` holds `text`.
async fn wait_for_text(page: &Page, what: &str, selector: &str, text: &str) {
    let js = format!("document.querySelector('{selector}')?.textContent ?? ''");
    wait_for(page, what, &js, Duration::from_secs(10), |v| {
        v.as_str().is_some_and(|t| t.contains(text))
    })
    .await;
}

/// Waits (up to 10 s) until `js` evaluates to `want` on `page`.
async fn wait_until(page: &Page, what: &str, js: &str, want: impl Into<Value>) {
    let want = want.into();
    wait_for(page, what, js, Duration::from_secs(10), |v| v == &want).await;
}

/// Pages that join `meeting` at once, one per (name, role), each welcomed; with their
/// participant ids.
async fn joined_pages<const N: usize>(
    browser: &Browser,
    server: &common::Server,
    meeting: &str,
    people: [(&str, &str); N],
) -> [(Page, i64); N] {
    let mut pages = Vec::with_capacity(N);
    for (name, role) in people {
        let page = browser
            .new_page(join_url(server, meeting, name, role))
            .await;
        pages.push(page.unwrap_or_else(|e| panic!("{name}'s page: {e}")));
    }
    let mut joined = Vec::with_capacity(N);
    for page in pages {
        let id = participant_id(&page).await;
        joined.push((page, id));
    }
    joined
        .try_into()
        .unwrap_or_else(|_| unreachable!("N pages"))
}

/// The page that joins `meeting` at once as `name`, with a token for `role`.
fn join_url(server: &common::Server, meeting: &str, name: &str, role: &str) -> String {
    let token = server.token(meeting, name, role);
    format!(
        "{}/m/{meeting}?name={name}&join=1&token={token}",
        server.url
    )
}

const STATS: &str = "window.myriad ? window.myriad.media.stats() : null";

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Waits until the page decodes video from `n` remote tracks and audio flows, and keeps
/// growing.
async fn assert_receives(page: &Page, who: &str, n: usize) {
    let first = wait_for(
        page,
        &format!("{who} decoding {n} videos"),
        STATS,
        Duration::from_secs(40),
        |v| num(v, "videoInbound") >= n as f64 && num(v, "audioPacketsReceived") > 0.0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = eval(page, STATS).await;
    assert!(
        num(&later, "framesDecoded") > num(&first, "framesDecoded"),
        "{who}: framesDecoded stalled ({first} -> {later})"
    );
    assert!(
        num(&later, "audioPacketsReceived") > num(&first, "audioPacketsReceived"),
        "{who}: audio packets stalled ({first} -> {later})"
    );
}

/// The id of the track `participant` publishes from `source`, as `page` knows it (waits until
/// it knows one).
async fn track_of(page: &Page, participant: i64, source: &str) -> i64 {
    let js = format!(
        "[...window.myriad.state.tracks.values()].find(t => t.participant === {participant} \
         && t.source === '{source}')?.id ?? null"
    );
    wait_for(
        page,
        &format!("the {source} track of {participant}"),
        &js,
        Duration::from_secs(20),
        Value::is_i64,
    )
    .await
    .as_i64()
    .unwrap_or_default()
}

/// Waits until `page` receives the meeting track `track` (its `counter` — `framesDecoded` or
/// `packetsReceived` — above zero), then until it has grown by a second or so of media:
/// that track's own statistics, not a sum other tracks could keep growing. The growth is
/// waited for, not timed: on a loaded machine the downlink estimate may pause a slot for a
/// while, as congestion control should.
async fn assert_track_flows(page: &Page, what: &str, track: i64, counter: &str) {
    const GROWTH: f64 = 20.0;
    let js = format!("(async () => (await ({STATS}))?.tracks?.[{track}]?.{counter} ?? 0)()");
    let first = wait_for(page, what, &js, Duration::from_secs(30), |v| {
        v.as_f64().is_some_and(|n| n > 0.0)
    })
    .await
    .as_f64()
    .unwrap_or_default();
    let start = Instant::now();
    loop {
        let later = eval(page, &js).await.as_f64().unwrap_or_default();
        if later >= first + GROWTH {
            return;
        }
        if start.elapsed() > Duration::from_secs(15) {
            // What the page receives on which slot, to tell a stalled stream from a moved one.
            let seen = eval(
                page,
                &format!(
                    "(async () => JSON.stringify({{ slots: [...window.myriad.media.midTrack], \
                     stats: await ({STATS}) }}))()"
                ),
            )
            .await;
            panic!(
                "{what}: {counter} of track {track} stalled ({first} -> {later} in {:?}); \
                 the page: {seen}",
                start.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Clicks an element as a person would: the page comes to the front first (input to a
/// background tab waits until it is shown).
async fn click(page: &Page, selector: &str) {
    page.bring_to_front().await.expect("bring to front");
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}

/// Waits until the page shows `n` people in the meeting.
async fn wait_for_count(page: &Page, n: u32) {
    let expected = n.to_string();
    let js = "document.querySelector('#count')?.textContent";
    wait_for(
        page,
        &format!("count {n}"),
        js,
        Duration::from_secs(5),
        |v| v == expected.as_str(),
    )
    .await;
}

async fn participant_id(page: &Page) -> i64 {
    wait_for(
        page,
        "welcome",
        "window.myriad && window.myriad.state.me ? window.myriad.state.me.id : null",
        Duration::from_secs(20),
        |v| v.is_i64(),
    )
    .await
    .as_i64()
    .unwrap_or_default()
}

async fn screenshot(page: &Page, name: &str) {
    let path = artifact_dir().join(name);
    page.bring_to_front().await.expect("bring to front");
    let png = page
        .screenshot(ScreenshotParams::builder().build())
        .await
        .expect("screenshot");
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

fn artifact_dir() -> PathBuf {
    let dir = std::env::var_os("MYRIAD_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// Three browsers meet on one node whose partitions take one person each: each browser's
/// media is on a worker of its own, and what the others see and hear is relayed between
/// the workers in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browsers_meet() {
    let server = common::Server::start_in(
        tempfile::tempdir().expect("temp dir"),
        &["--workers", "3", "--partition-size", "1"],
    );

    let (mut browser, handler, _profile) = launch(&[]).await;

    // The start page creates a meeting and shows its link.
    let start = browser
        .new_page(server.url.clone())
        .await
        .expect("start page");
    click(&start, "#create").await;
    let link = wait_for(
        &start,
        "meeting link",
        "document.querySelector('#meeting-link')?.href ?? null",
        Duration::from_secs(10),
        Value::is_string,
    )
    .await;
    let link = link.as_str().unwrap_or_default().to_owned();
    assert!(link.contains("/m/"), "unexpected link {link}");
    let host_link = eval(&start, "document.querySelector('#host-link')?.href ?? null").await;
    let host_link = host_link.as_str().unwrap_or_default().to_owned();
    assert!(
        host_link.starts_with(&format!("{link}?host=")),
        "unexpected host link {host_link}"
    );
    // The host link reads as a button: its words are there, and not in its background's colour.
    let look =
        "(() => { const a = document.querySelector('#host-link'); const s = getComputedStyle(a); \
                return [a.textContent, s.color === s.backgroundColor]; })()";
    assert_eq!(
        eval(&start, look).await,
        serde_json::json!(["Start the meeting as host", false])
    );
    screenshot(&start, "start-created.png").await;

    // Alice, who created it, goes through the pre-join screen of the host link; Bob and Carol
    // use the meeting link with ?name=&join=1.
    let alice = browser.new_page(host_link).await.expect("alice page");
    let name = alice.find_element("#name").await.expect("name field");
    name.click().await.expect("focus");
    name.type_str("Alice").await.expect("type");
    wait_for(
        &alice,
        "camera preview",
        "document.querySelector('video.preview')?.srcObject ? true : false",
        Duration::from_secs(10),
        |v| v == &Value::Bool(true),
    )
    .await;
    click(&alice, "#join").await;
    let bob = browser
        .new_page(format!("{link}?name=Bob&join=1"))
        .await
        .expect("bob page");
    let carol = browser
        .new_page(format!("{link}?name=Carol&join=1"))
        .await
        .expect("carol page");

    let alice_id = participant_id(&alice).await;
    let bob_id = participant_id(&bob).await;
    let carol_id = participant_id(&carol).await;
    assert!(alice_id != bob_id && bob_id != carol_id);
    let role = "window.myriad.state.me.role";
    assert_eq!(eval(&alice, role).await, "host", "the creator hosts");
    assert_eq!(
        eval(&bob, role).await,
        "panelist",
        "the others get the default"
    );

    for (page, who) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        assert_receives(page, who, 2).await;
        wait_for_count(page, 3).await;
    }

    screenshot(&alice, "meeting.png").await;

    // Screen share from Bob reaches Alice and Carol as a third video.
    click(&bob, "#screen").await;
    for (page, who) in [(&alice, "alice"), (&carol, "carol")] {
        assert_receives(page, &format!("{who} (with screen)"), 3).await;
        wait_for(
            page,
            "screen tile",
            "document.querySelectorAll('.tile.screen').length",
            Duration::from_secs(10),
            |v| v == 1,
        )
        .await;
    }

    // Carol mutes: the others see it.
    click(&carol, "#mic").await;
    let carol_tile_muted = format!("document.querySelector('.tile[data-participant=\"{carol_id}\"]')?.classList.contains('muted')");
    for page in [&alice, &bob] {
        wait_for(
            page,
            "carol shown muted",
            &carol_tile_muted,
            Duration::from_secs(10),
            |v| v == &Value::Bool(true),
        )
        .await;
    }

    // Alice pins Carol: her tile moves first and is marked.
    click(&alice, &format!(".tile[data-participant=\"{carol_id}\"]")).await;
    let first_tile = "document.querySelector('#grid').children.length && [...document.querySelectorAll('#grid .tile')].sort((x, y) => getComputedStyle(x).order - getComputedStyle(y).order)[0].dataset.participant";
    wait_for(
        &alice,
        "carol pinned first",
        first_tile,
        Duration::from_secs(5),
        |v| v == &Value::String(carol_id.to_string()),
    )
    .await;

    // Carol chats; Alice sees it in her chat panel.
    click(&carol, "#chat-toggle").await;
    let input = carol.find_element("#chat-input").await.expect("chat input");
    input.click().await.expect("focus chat");
    input.type_str("Hello from Carol").await.expect("type chat");
    input.press_key("Enter").await.expect("send chat");
    click(&alice, "#chat-toggle").await;
    wait_for(
        &alice,
        "chat message",
        "document.querySelector('#chat-log')?.textContent",
        Duration::from_secs(10),
        |v| v.as_str().is_some_and(|t| t.contains("Hello from Carol")),
    )
    .await;
    screenshot(&alice, "meeting-chat.png").await;
    click(&alice, "#chat-toggle").await;

    // Alice's signalling connection drops: the page notices (reconnecting), then resumes the
    // same session (a welcome that says so) and media goes on.
    let seen = eval(&alice, "window.myriad.signal.history.length").await;
    let seen = seen.as_u64().unwrap_or_default();
    eval(&alice, "window.myriad.signal.ws.close(); true").await;
    let since_close = format!("window.myriad.signal.history.slice({seen})");
    wait_for(
        &alice,
        "reconnecting, then a resumed welcome",
        &since_close,
        Duration::from_secs(15),
        |v| {
            let steps: Vec<&str> = v
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let lost = steps.iter().position(|s| *s == "reconnecting");
            let back = steps.iter().rposition(|s| *s == "welcome:resumed");
            matches!((lost, back), (Some(l), Some(b)) if l < b)
        },
    )
    .await;
    assert_eq!(
        participant_id(&alice).await,
        alice_id,
        "resume keeps the participant"
    );
    assert_receives(&alice, "alice after resume", 3).await;

    // Alice's media connection is replaced (as after an ICE failure): she republishes under
    // new track ids, and those very tracks reach Carol.
    let alice_cam_before = track_of(&carol, alice_id, "camera").await;
    eval(&alice, "window.myriad.media.restart(); true").await;
    assert_receives(&alice, "alice after media restart", 3).await;
    let alice_video_at_carol = format!("document.querySelector('.tile[data-participant=\"{alice_id}\"]')?.classList.contains('novideo')");
    wait_for(
        &carol,
        "alice's new camera at carol",
        &alice_video_at_carol,
        Duration::from_secs(20),
        |v| v == &Value::Bool(false),
    )
    .await;
    let alice_cam = track_of(&carol, alice_id, "camera").await;
    let alice_mic = track_of(&carol, alice_id, "microphone").await;
    assert_ne!(alice_cam, alice_cam_before, "republished as a new track");
    assert_track_flows(
        &carol,
        "alice's new camera at carol",
        alice_cam,
        "framesDecoded",
    )
    .await;
    assert_track_flows(
        &carol,
        "alice's new microphone at carol",
        alice_mic,
        "packetsReceived",
    )
    .await;

    screenshot(&alice, "meeting-screen-share.png").await;
    eprintln!("server RSS with three browsers: {} kB", server.rss_kb());
    // Everything anyone received came from another worker: relayed in-process.
    let metrics = server.scrape().await;
    assert_eq!(metrics.figure("myriad_node_media_workers"), 3);
    assert!(
        metrics.figure("myriad_node_relay_sibling_sent_total") > 1000,
        "{}",
        metrics.0
    );
    assert_eq!(
        metrics.figure("myriad_node_relay_sent_total"),
        0,
        "no socket between workers"
    );

    // Bob leaves: his tile disappears for the others.
    click(&bob, "#leave").await;
    let bob_tile =
        format!("document.querySelectorAll('.tile[data-participant=\"{bob_id}\"]').length");
    for page in [&alice, &carol] {
        wait_for(page, "bob gone", &bob_tile, Duration::from_secs(10), |v| {
            v == 0
        })
        .await;
        wait_for_count(page, 2).await;
    }

    // The same meeting on a phone-sized screen.
    carol
        .execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true))
        .await
        .expect("phone viewport");
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot(&carol, "meeting-phone.png").await;
    // No control clipped or off the screen; the chat sheet closes from inside.
    let clipped = "[...document.querySelectorAll('.toolbar button')].filter(b => !b.hidden \
                   && (b.scrollWidth > b.clientWidth || b.getBoundingClientRect().right > innerWidth)) \
                   .map(b => b.textContent)";
    assert_eq!(
        eval(&carol, clipped).await,
        Value::Array(vec![]),
        "clipped controls"
    );
    if eval(&carol, "document.querySelector('#chat').hidden").await == Value::Bool(false) {
        click(&carol, "#chat .panel-close").await;
    }
    wait_until(
        &carol,
        "the chat sheet closed",
        "document.querySelector('#chat').hidden",
        true,
    )
    .await;
    screenshot(&carol, "meeting-phone-closed.png").await;

    browser.close().await.expect("close browser");
    let _ = browser.wait().await;
    handler.abort();
}

/// A page and an object, cacheable, for the edge to serve.
async fn start_origin() -> String {
    // The edge may keep them a minute; the browser must ask again each time.
    let cached = |body: &'static str, kind: &'static str| {
        move || async move {
            (
                [
                    ("cache-control", "s-maxage=60, max-age=0"),
                    ("content-type", kind),
                ],
                body,
            )
        }
    };
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(cached(
                "<!doctype html><title>myriad edge</title><h1>Served by the edge</h1>\
                 <p id=proto></p><script>document.getElementById('proto').textContent = \
                 'protocol: ' + performance.getEntriesByType('navigation')[0].nextHopProtocol\
                 </script>",
                "text/html",
            )),
        )
        .route(
            "/obj",
            axum::routing::get(cached("an object", "text/plain")),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_pages_through_the_edge_over_http3() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = common::TestCert::new(dir.path(), "edge", &["edge.test"]);
    let flags = ["--https", "127.0.0.1:0", "--http3"];
    let edge = common::Edge::start(&origin, &[&flags[..], &cert.flags()].concat());
    let port = edge.https_addr().port();
    // Chromium trusts the certificate by its key, and speaks QUIC to the edge from the start.
    let spki = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert.spki);
    use base64::Engine;
    let spki = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
    let flags = [
        format!("--origin-to-force-quic-on=edge.test:{port}"),
        "--host-resolver-rules=MAP edge.test 127.0.0.1".to_owned(),
        format!("--ignore-certificate-errors-spki-list={spki}"),
    ];
    let (mut browser, handler, _profile) = launch(&flags).await;
    let page = browser
        .new_page(format!("https://edge.test:{port}/"))
        .await
        .expect("the page loads");
    wait_for(
        &page,
        "the page over HTTP/3",
        "performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? null",
        Duration::from_secs(20),
        |v| v == "h3",
    )
    .await;
    let statuses = eval(
        &page,
        "(async () => { const out = []; for (let i = 0; i < 2; i++) { \
           const r = await fetch('/obj'); await r.text(); \
           out.push(r.headers.get('cache-status')); } \
           out.push(performance.getEntriesByName(location.origin + '/obj')[0]?.nextHopProtocol); \
           return out; })()",
    )
    .await;
    let statuses: Vec<String> = statuses
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert!(statuses[0].contains("fwd=uri-miss"), "{statuses:?}");
    assert!(statuses[1].contains("hit"), "{statuses:?}");
    assert_eq!(statuses[2], "h3", "{statuses:?}");
    screenshot(&page, "edge-http3.png").await;
    browser.close().await.ok();
    handler.abort();
}

/// A town hall: an attendee raises a hand, the host sees it in the hands panel and invites
/// them to the stage; the attendee turns the camera on, and the other attendee sees it. Taken
/// off the stage, the attendee's controls go again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_hand_is_invited_to_the_stage_and_seen_by_all() {
    let server = common::Server::start();
    server.create_meeting("hall").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let people = [("Hana", "host"), ("Ari", "attendee"), ("Bo", "attendee")];
    let [(host, _), (ari, ari_id), (bo, _)] = joined_pages(&browser, &server, "hall", people).await;
    let mic_hidden = "document.querySelector('#mic')?.hidden";
    wait_until(&ari, "an attendee's page", mic_hidden, true).await;

    click(&ari, "#hand").await;
    click(&host, "#hands-toggle").await;
    let entry = format!("#hand-list li[data-participant=\"{ari_id}\"]");
    wait_until(
        &host,
        "Ari's hand in the host's panel",
        &format!("document.querySelector('{entry} span')?.textContent"),
        "Ari",
    )
    .await;
    wait_until(
        &host,
        "the count on the hands button",
        "document.querySelector('#hands-toggle').textContent",
        "Hands (1)",
    )
    .await;
    screenshot(&host, "hands-panel.png").await;
    click(&host, &format!("{entry} button.invite")).await;
    wait_until(&ari, "publishing controls on stage", mic_hidden, false).await;
    wait_until(
        &host,
        "Ari on the stage list",
        &format!(
            "Boolean(document.querySelector('#stage-list li[data-participant=\"{ari_id}\"]'))"
        ),
        true,
    )
    .await;
    click(&ari, "#cam").await;
    let cam = track_of(&bo, ari_id, "camera").await;
    assert_track_flows(
        &bo,
        "the staged attendee's camera at another attendee",
        cam,
        "framesDecoded",
    )
    .await;
    wait_until(&bo, "Ari's tile marked on stage", &format!("document.querySelector('.tile[data-participant=\"{ari_id}\"]')?.classList.contains('onstage')"), true).await;
    screenshot(&bo, "stage-seen-by-attendee.png").await;

    // Bo applauds: the reaction is counted for everyone and rises over their meeting.
    click(&bo, "#react").await;
    click(&bo, ".reaction[data-emoji=\"👏\"]").await;
    for page in [&host, &ari] {
        wait_until(
            page,
            "the applause counted",
            "window.myriad.state.reacted['👏'] ?? 0",
            1,
        )
        .await;
    }
    let rising = eval(&host, "document.querySelectorAll('.float').length").await;
    assert!(rising.as_u64().is_some_and(|n| n >= 1), "{rising}");
    screenshot(&host, "reactions.png").await;

    // The host switches audience mode on, chat and reactions off, live: Bo's page follows.
    for switch in ["#audience-on", "#audience-chat", "#audience-reactions"] {
        click(&host, switch).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_until(
        &bo,
        "audience mode at Bo",
        "window.myriad.state.audience.on",
        true,
    )
    .await;
    wait_until(
        &bo,
        "Bo's chat to everyone off (to the hosts still on)",
        "[document.querySelector('#chat-to option[value=all]').disabled, \
          document.querySelector('#chat-to').value, document.querySelector('#chat-input').disabled].join()",
        "true,hosts,false",
    )
    .await;
    wait_until(
        &bo,
        "Bo's reactions off",
        "document.querySelector('#react').hidden",
        true,
    )
    .await;
    screenshot(&host, "audience-switches.png").await;

    click(
        &host,
        &format!("#stage-list li[data-participant=\"{ari_id}\"] button.unstage"),
    )
    .await;
    wait_until(&ari, "controls gone off stage", mic_hidden, true).await;
    wait_until(
        &bo,
        "Ari's camera gone",
        &format!("[...window.myriad.state.tracks.values()].some(t => t.participant === {ari_id})"),
        false,
    )
    .await;
    browser.close().await.ok();
    handler.abort();
}

/// A poll in the browser: the host opens it from the polls panel, two attendees answer, and
/// the host's panel shows the results as they come; closed, it takes no more answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_is_opened_answered_and_shown_live_in_the_browser() {
    let server = common::Server::start();
    server.create_meeting("vote").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let people = [("Hana", "host"), ("Ari", "attendee"), ("Bo", "attendee")];
    let [(host, _), (ari, _), (bo, _)] = joined_pages(&browser, &server, "vote", people).await;
    click(&host, "#polls-toggle").await;
    let question = host.find_element("#poll-question").await.expect("question");
    question.click().await.expect("focus");
    question.type_str("Tea or coffee?").await.expect("type");
    let options = host.find_element("#poll-options").await.expect("options");
    options.click().await.expect("focus");
    options.type_str("Tea").await.expect("type");
    options.press_key("Enter").await.expect("newline");
    options.type_str("Coffee").await.expect("type");
    click(&host, "#poll-open").await;

    for (page, pick) in [(&ari, 1), (&bo, 1)] {
        wait_until(
            page,
            "the poll announced",
            "document.querySelector('#polls-toggle').textContent",
            "Polls (1)",
        )
        .await;
        click(page, "#polls-toggle").await;
        click(
            page,
            &format!(".poll .answer label:nth-of-type({}) input", pick + 1),
        )
        .await;
        click(page, ".poll .answer .vote").await;
    }
    let results =
        "[...document.querySelectorAll('#poll-list .poll .bar .n')].map(n => n.textContent)";
    wait_until(
        &host,
        "live results at the host",
        results,
        vec!["0 · 0%", "2 · 100%"],
    )
    .await;
    screenshot(&host, "poll-results.png").await;
    screenshot(&ari, "poll-answered.png").await;
    click(&host, ".close-poll").await;
    wait_until(
        &bo,
        "the poll shown closed",
        "document.querySelector('#poll-list .poll .hint').textContent",
        "2 answered · closed",
    )
    .await;
    browser.close().await.ok();
    handler.abort();
}

/// Moderation from the browser: the host mutes a panelist from the tile, locks the meeting
/// (a newcomer is told so), removes an attendee and ends the meeting for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_moderates_from_the_browser() {
    let server = common::Server::start();
    server.create_meeting("mod").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let people = [("Hana", "host"), ("Ari", "panelist"), ("Bo", "attendee")];
    let [(host, _), (ari, ari_id), (bo, bo_id)] =
        joined_pages(&browser, &server, "mod", people).await;
    let mic = track_of(&host, ari_id, "microphone").await;
    let ari_tile = format!(".tile[data-participant=\"{ari_id}\"]");
    click(&host, &format!("{ari_tile} .mod .mute-other")).await;
    wait_until(
        &ari,
        "Ari's page muted by the host",
        "document.querySelector('#mic').textContent",
        "Unmute",
    )
    .await;
    wait_until(
        &host,
        "Ari shown muted",
        &format!("window.myriad.state.tracks.get({mic})?.muted"),
        true,
    )
    .await;

    click(&host, "#hands-toggle").await;
    click(&host, "#lock").await;
    wait_until(
        &bo,
        "the meeting shown locked",
        "document.querySelector('#locked').hidden",
        false,
    )
    .await;
    // The host has newcomers join as attendees from now on.
    eval(
        &host,
        "(() => { const s = document.querySelector('#default-role'); s.value = 'attendee'; \
         s.dispatchEvent(new Event('change')); return true; })()",
    )
    .await;
    wait_until(
        &bo,
        "the default role at Bo",
        "window.myriad.state.defaultRole",
        "attendee",
    )
    .await;
    screenshot(&host, "moderation-host.png").await;
    let late = browser
        .new_page(join_url(&server, "mod", "Cy", "attendee"))
        .await
        .expect("late page");
    wait_for_text(&late, "a newcomer told it is locked", "#fatal", "locked").await;
    screenshot(&late, "moderation-locked-out.png").await;

    click(
        &host,
        &format!(".tile[data-participant=\"{bo_id}\"] .mod .remove"),
    )
    .await;
    let heading = "document.querySelector('h1')?.textContent";
    wait_until(
        &bo,
        "Bo told he was removed",
        heading,
        "You were removed from the meeting.",
    )
    .await;
    click(&host, "#end-all").await;
    click(&host, "#end-all").await;
    wait_until(
        &ari,
        "the meeting ended for Ari",
        heading,
        "The meeting has ended.",
    )
    .await;
    browser.close().await.ok();
    handler.abort();
}

/// The waiting room in the browser: the host switches it on; two newcomers see the waiting
/// screen; the host sees them in the panel, admits one (whose meeting opens on the same page)
/// and denies the other (who is told so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_admits_and_denies_in_the_browser() {
    let server = common::Server::start();
    server.create_meeting("lobby").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let [(host, _)] = joined_pages(&browser, &server, "lobby", [("Hana", "host")]).await;
    click(&host, "#hands-toggle").await;
    click(&host, "#waiting-room-on").await;
    wait_until(
        &host,
        "the waiting room on",
        "window.myriad.state.waitingRoom.on",
        true,
    )
    .await;
    let mut waiting = Vec::new();
    for name in ["Wren", "Xavi"] {
        let page = browser
            .new_page(join_url(&server, "lobby", name, "attendee"))
            .await
            .expect("newcomer's page");
        wait_until(
            &page,
            &format!("{name} waits"),
            "document.querySelector('#waiting')?.hidden",
            false,
        )
        .await;
        waiting.push(page);
    }
    screenshot(&waiting[0], "waiting-room-newcomer.png").await;
    wait_until(
        &host,
        "two shown waiting",
        "[...document.querySelectorAll('#waiting-list li[data-ticket] span')].map(s => s.textContent).join(',')",
        "Wren,Xavi",
    )
    .await;
    screenshot(&host, "waiting-room-host.png").await;
    click(&host, "#waiting-list li[data-ticket]:first-child .admit").await;
    let wren = participant_id(&waiting[0]).await;
    assert!(wren > 0);
    wait_until(
        &waiting[0],
        "Wren's meeting open",
        "document.querySelector('#waiting').hidden",
        true,
    )
    .await;
    wait_for_count(&host, 2).await;
    click(&host, "#waiting-list li[data-ticket] .deny").await;
    wait_until(
        &waiting[1],
        "Xavi told he was not let in",
        "document.querySelector('h1')?.textContent",
        "A host did not let you in.",
    )
    .await;
    browser.close().await.ok();
    handler.abort();
}

/// Breakout rooms in the browser: the host makes two rooms, spreads the attendees, moves one
/// by hand so both share room 1, and opens them; both pages move to room 1 by themselves
/// without reloading (the same page, a room's view), one turns the camera on and the other
/// sees it; the host's message reaches the room; called back, both are in the main room
/// again and receive the host's media there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakout_rooms_move_people_and_bring_them_back_in_the_browser() {
    let server = common::Server::start();
    server.create_meeting("brk").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let people = [("Hana", "host"), ("Ari", "attendee"), ("Bo", "attendee")];
    let [(host, _), (ari, ari_id), (bo, bo_id)] =
        joined_pages(&browser, &server, "brk", people).await;
    for page in [&ari, &bo] {
        page.evaluate("window.firstPage = performance.timeOrigin")
            .await
            .expect("mark the page");
    }
    click(&host, "#rooms-toggle").await;
    click(&host, "#breakout-create").await;
    wait_until(
        &host,
        "two rooms",
        "window.myriad.state.breakouts.rooms.length",
        2,
    )
    .await;
    click(&host, "#breakout-auto").await;
    let rooms_of =
        "JSON.stringify(window.myriad.state.breakouts.rooms.map(r => r.assigned.length))";
    wait_until(&host, "spread evenly", rooms_of, "[1,1]").await;
    // Both, by hand, to room 1.
    for id in [ari_id, bo_id] {
        let pick = format!("#breakout-people li[data-participant=\"{id}\"] select");
        eval(
            &host,
            &format!(
                "(() => {{ const s = document.querySelector('{pick}'); s.value = '1'; \
                 s.dispatchEvent(new Event('change')); return true; }})()"
            ),
        )
        .await;
    }
    wait_until(&host, "both moved by hand", rooms_of, "[2,0]").await;
    let shown = |id: &str| format!("document.querySelector('{id}').offsetParent !== null");
    assert_eq!(
        eval(&host, &shown("#breakout-close")).await,
        false,
        "not open yet"
    );
    screenshot(&host, "breakouts-host.png").await;
    click(&host, "#breakout-open").await;
    wait_until(
        &host,
        "the running rooms' controls",
        &shown("#breakout-close"),
        true,
    )
    .await;
    assert_eq!(eval(&host, &shown("#breakout-open")).await, false);

    let meeting_of = "window.myriad.signal.meetingId";
    for (page, who) in [(&ari, "Ari"), (&bo, "Bo")] {
        wait_until(page, &format!("{who} in room 1"), meeting_of, "brk_br1").await;
        wait_until(
            page,
            &format!("{who}'s room view"),
            "document.querySelector('header strong')?.textContent.startsWith('Room 1')",
            true,
        )
        .await;
    }
    wait_for_count(&ari, 2).await;
    click(&ari, "#cam").await;
    let ari_in_room = participant_id(&ari).await;
    let cam = track_of(&bo, ari_in_room, "camera").await;
    assert_track_flows(
        &bo,
        "Ari's camera at Bo in their room",
        cam,
        "framesDecoded",
    )
    .await;
    click(&host, "#breakout-words").await;
    host.find_element("#breakout-words")
        .await
        .expect("the message field")
        .type_str("Two minutes left")
        .await
        .expect("type");
    click(&host, "#breakout-broadcast").await;
    wait_for_text(
        &bo,
        "the host's message in the room",
        "#notice",
        "Two minutes left",
    )
    .await;
    screenshot(&bo, "breakout-room.png").await;

    click(&host, "#breakout-close").await;
    for (page, who) in [(&ari, "Ari"), (&bo, "Bo")] {
        wait_until(
            page,
            &format!("{who} back in the main room"),
            meeting_of,
            "brk",
        )
        .await;
        wait_until(
            page,
            &format!("{who}'s page never reloaded"),
            "window.firstPage === performance.timeOrigin",
            true,
        )
        .await;
    }
    assert_receives(&ari, "Ari back in the main room", 1).await;
    screenshot(&ari, "breakout-returned.png").await;
    browser.close().await.ok();
    handler.abort();
}

/// Draws on the whiteboard of `page` as a pointer would: down at the first point (board
/// units), through the others, up at the last.
async fn stroke(page: &Page, points: &[(u32, u32)]) {
    let pts = serde_json::to_string(points).expect("points");
    eval(
        page,
        &format!(
            "(() => {{ const c = document.querySelector('#board-canvas'); \
             const r = c.getBoundingClientRect(); const pts = {pts}; \
             const at = ([x, y]) => ({{ clientX: r.left + x / 10000 * r.width, \
               clientY: r.top + y / 10000 * r.height, pointerId: 7, bubbles: true }}); \
             c.dispatchEvent(new PointerEvent('pointerdown', at(pts[0]))); \
             for (const p of pts.slice(1)) c.dispatchEvent(new PointerEvent('pointermove', at(p))); \
             c.dispatchEvent(new PointerEvent('pointerup', at(pts[pts.length - 1]))); return true; }})()"
        ),
    )
    .await;
}

/// The whiteboard in the browser: the host draws a stroke; a panelist who opens the board
/// later gets it (the board as of an event), then sees a box the host draws live; the host's
/// undo takes the box away for both; the board exports as SVG and PNG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whiteboard_strokes_appear_in_another_browser() {
    let server = common::Server::start();
    server.create_meeting("wb").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let people = [("Hana", "host"), ("Pia", "panelist")];
    let [(host, _), (pia, _)] = joined_pages(&browser, &server, "wb", people).await;
    click(&host, "#board-toggle").await;
    stroke(
        &host,
        &[(1000, 1000), (3000, 2500), (5000, 1500), (7000, 4000)],
    )
    .await;
    let count = "window.myriad.board.shapes.size";
    wait_until(&host, "the stroke on the host's board", count, 1).await;
    click(&pia, "#board-toggle").await;
    wait_until(&pia, "the board as it was, for Pia", count, 1).await;
    click(&host, ".tool[data-tool=rect]").await;
    stroke(&host, &[(2000, 5000), (6000, 9000)]).await;
    wait_until(&pia, "the box drawn live", count, 2).await;
    let kinds = "[...window.myriad.board.shapes.values()].map(s => s.shape.kind).join(',')";
    wait_until(&pia, "in the host's order", kinds, "pen,rect").await;
    screenshot(&pia, "whiteboard-other-browser.png").await;
    click(&host, "#board-undo").await;
    wait_until(&pia, "the box undone", kinds, "pen").await;
    let svg = eval(&pia, "window.myriad.board.svg()").await;
    let svg = svg.as_str().unwrap_or_default();
    assert!(
        svg.starts_with("<svg") && svg.contains("<path") && !svg.contains("<rect x"),
        "{svg}"
    );
    click(&pia, "#board-png").await;
    wait_until(
        &pia,
        "a PNG export",
        "window.myriad.board.exported?.url.startsWith('data:image/png;base64,')",
        true,
    )
    .await;
    browser.close().await.ok();
    handler.abort();
}

/// Chat to the hosts and a host's @mention in the browser: an attendee writes to the hosts
/// (the host reads it marked so, the other attendee never gets it); the host mentions a
/// panelist, whose tile is featured on the others' pages; the host spotlights her too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_to_the_hosts_and_a_hosts_mention_in_the_browser() {
    let server = common::Server::start();
    server.create_meeting("hq").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let people = [
        ("Hana", "host"),
        ("Ari", "attendee"),
        ("Bo", "attendee"),
        ("Pia", "panelist"),
    ];
    let [(host, _), (ari, _), (bo, _), (pia, pia_id)] =
        joined_pages(&browser, &server, "hq", people).await;
    click(&ari, "#chat-toggle").await;
    eval(&ari, "(() => { const s = document.querySelector('#chat-to'); s.value = 'hosts'; s.dispatchEvent(new Event('change')); return true; })()").await;
    click(&ari, "#chat-input").await;
    ari.find_element("#chat-input")
        .await
        .expect("chat input")
        .type_str("Is this recorded?")
        .await
        .expect("type");
    click(&ari, ".chat-form button[type=submit]").await;
    click(&host, "#chat-toggle").await;
    wait_until(
        &host,
        "the question to the hosts",
        "document.querySelector('#chat-log li.to-hosts')?.textContent.includes('Is this recorded?') ?? false",
        true,
    )
    .await;
    screenshot(&host, "chat-to-hosts.png").await;
    click(&host, "#chat-input").await;
    host.find_element("#chat-input")
        .await
        .expect("chat input")
        .type_str("@Pia please go ahead")
        .await
        .expect("type");
    click(&host, ".chat-form button[type=submit]").await;
    let featured = format!("document.querySelector('.tile[data-participant=\"{pia_id}\"]')?.classList.contains('featured') ?? false");
    wait_until(&bo, "Pia featured for Bo", &featured, true).await;
    let bo_chat = eval(&bo, "JSON.stringify([...window.myriad.signal.history, document.querySelector('#chat-log').textContent])").await;
    assert!(
        !bo_chat.to_string().contains("recorded"),
        "Bo never gets it: {bo_chat}"
    );
    assert_eq!(
        eval(&bo, "window.myriad.signal.gaps").await,
        0,
        "withheld, not missing"
    );
    // Spam from Bo is held for the host, who releases it to everyone.
    click(&bo, "#chat-toggle").await;
    eval(
        &bo,
        "(() => { document.querySelector('#chat-input').value = \
         'WINNER!! You have won a £900 prize! To claim call 09061701461 now'; return true; })()",
    )
    .await;
    click(&bo, ".chat-form button[type=submit]").await;
    let held = "document.querySelector('#chat-log li.flagged .held')?.textContent ?? ''";
    wait_for(
        &host,
        "the spam held for the host",
        held,
        Duration::from_secs(10),
        |v| v.as_str().is_some_and(|t| t.contains("looks like spam")),
    )
    .await;
    screenshot(&host, "chat-spam-held.png").await;
    let prize = "document.querySelector('#chat-log').textContent.includes('£900')";
    assert_eq!(eval(&ari, prize).await, false, "held from Ari");
    click(&host, "#chat-log li.flagged .release-chat").await;
    wait_until(&ari, "the released message at Ari", prize, true).await;

    // Pia (a speaker) writes; three like it: a top quote in the host's highlights.
    click(&pia, "#chat-toggle").await;
    eval(
        &pia,
        "(() => { document.querySelector('#chat-input').value = 'We ship on Friday'; return true; })()",
    )
    .await;
    click(&pia, ".chat-form button[type=submit]").await;
    let pias = "[...document.querySelectorAll('#chat-log li')].find(li => li.textContent.includes('We ship on Friday'))";
    for page in [&ari, &bo, &host] {
        wait_until(
            page,
            "Pia's message",
            &format!("Boolean({pias}?.querySelector('.like-chat'))"),
            true,
        )
        .await;
        eval(
            page,
            &format!("(() => {{ {pias}.querySelector('.like-chat').click(); return true; }})()"),
        )
        .await;
    }
    wait_until(
        &host,
        "three likes",
        &format!("{pias}?.querySelector('.like-chat').textContent"),
        "♥ 3",
    )
    .await;
    click(&host, "#highlights-toggle").await;
    let kinds = "[...document.querySelectorAll('#highlight-list li .kind')].map(k => k.textContent).join('|')";
    wait_for(
        &host,
        "the host's highlights",
        kinds,
        Duration::from_secs(10),
        |v| {
            v.as_str()
                .is_some_and(|k| k.contains("Top quote · 3 likes") && k.contains("Host"))
        },
    )
    .await;
    screenshot(&host, "highlights.png").await;
    click(
        &host,
        &format!(".tile[data-participant=\"{pia_id}\"] .mod .spotlight"),
    )
    .await;
    wait_until(
        &bo,
        "Pia in the spotlight",
        "window.myriad.state.spotlight",
        pia_id,
    )
    .await;
    screenshot(&bo, "mention-featured.png").await;
    browser.close().await.ok();
    handler.abort();
}

/// Q&A in the browser: an attendee asks, another upvotes, the host sees the question with
/// its votes and answers it; everyone sees it answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_is_asked_upvoted_and_answered_in_the_browser() {
    let server = common::Server::start();
    server.create_meeting("qa").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let people = [("Hana", "host"), ("Ari", "attendee"), ("Bo", "attendee")];
    let [(host, _), (ari, _), (bo, _)] = joined_pages(&browser, &server, "qa", people).await;
    click(&ari, "#qa-toggle").await;
    let input = ari.find_element("#qa-input").await.expect("question input");
    input.click().await.expect("focus");
    input
        .type_str("Will the slides be shared?")
        .await
        .expect("type");
    click(&ari, "#qa-ask").await;
    wait_until(
        &bo,
        "the question counted on Bo's button",
        "document.querySelector('#qa-toggle').textContent",
        "Q&A (1)",
    )
    .await;
    click(&bo, "#qa-toggle").await;
    click(&bo, "#qa-list li[data-question] .upvote").await;
    click(&host, "#qa-toggle").await;
    let votes = "document.querySelector('#qa-list li[data-question] .upvote')?.textContent";
    wait_until(&host, "two votes at the host", votes, "▲ 2").await;
    screenshot(&host, "qa-host.png").await;
    let answer = host
        .find_element("#qa-list .answer-text")
        .await
        .expect("answer field");
    answer.click().await.expect("focus");
    answer.type_str("Yes, after the call.").await.expect("type");
    click(&host, "#qa-list .answer").await;
    wait_until(
        &ari,
        "the answer at the asker",
        "document.querySelector('#qa-list li .a')?.textContent",
        "Answer: Yes, after the call.",
    )
    .await;
    screenshot(&ari, "qa-answered.png").await;

    // Bo chats; Cy joins late and finds it in the chat panel.
    click(&bo, "#chat-toggle").await;
    let input = bo.find_element("#chat-input").await.expect("chat input");
    input.click().await.expect("focus chat");
    input
        .type_str("Thanks for the answer")
        .await
        .expect("type chat");
    input.press_key("Enter").await.expect("send chat");
    let thanks = "Thanks for the answer";
    wait_for_text(&host, "Bo's chat at the host", "#chat-log", thanks).await;
    let late = browser
        .new_page(join_url(&server, "qa", "Cy", "attendee"))
        .await
        .expect("late page");
    wait_for_text(
        &late,
        "the chat history at a late joiner",
        "#chat-log",
        thanks,
    )
    .await;
    click(&late, "#chat-toggle").await;
    screenshot(&late, "chat-history-late-join.png").await;
    browser.close().await.ok();
    handler.abort();
}

/// A host changes an attendee's role from the attendee's tile: the attendee's page shows no
/// publishing controls until promoted, then publishes a camera that reaches the host; demoted,
/// the camera stops and the controls go; an attendee trying to change roles is told no.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_changes_roles_live_from_the_browser() {
    let server = common::Server::start();
    server.create_meeting("roles").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let people = [("Hana", "host"), ("Ari", "attendee")];
    let [(host, _), (att, ari)] = joined_pages(&browser, &server, "roles", people).await;
    let controls_hidden = "['#mic', '#cam', '#screen'].map(s => document.querySelector(s)?.hidden)";
    wait_until(
        &att,
        "no publishing controls",
        controls_hidden,
        vec![true; 3],
    )
    .await;
    let sending = "Object.keys(window.myriad.media.senders).length";
    assert_eq!(
        eval(&att, sending).await,
        0,
        "an attendee offers nothing to send"
    );

    let select = format!(".tile[data-participant=\"{ari}\"] select.role");
    let choose = |role: &str| {
        format!(
            "(() => {{ const s = document.querySelector('{select}'); if (!s) return false; \
             s.value = '{role}'; s.dispatchEvent(new Event('change')); return true; }})()"
        )
    };
    wait_until(
        &host,
        "the role control on Ari's tile",
        &choose("panelist"),
        true,
    )
    .await;
    wait_until(&att, "publishing controls", controls_hidden, vec![false; 3]).await;
    let notice = "document.querySelector('#notice')?.textContent ?? ''";
    let told = eval(&att, notice).await;
    assert!(
        told.as_str().is_some_and(|t| t.contains("panelist")),
        "{told}"
    );
    screenshot(&att, "roles-promoted.png").await;

    click(&att, "#cam").await;
    let cam = track_of(&host, ari, "camera").await;
    assert_track_flows(
        &host,
        "the promoted attendee's camera",
        cam,
        "framesDecoded",
    )
    .await;
    screenshot(&host, "roles-host.png").await;

    assert!(eval(&host, &choose("attendee")).await == Value::Bool(true));
    wait_until(&att, "controls gone again", controls_hidden, vec![true; 3]).await;
    wait_until(
        &host,
        "the demoted camera gone",
        &format!("[...window.myriad.state.tracks.values()].some(t => t.participant === {ari})"),
        false,
    )
    .await;
    assert_eq!(
        eval(&att, sending).await,
        0,
        "the demoted offers nothing to send"
    );
    let hana = participant_id(&host).await;
    let hana_cam = track_of(&att, hana, "camera").await;
    assert_track_flows(
        &att,
        "the host's camera at the demoted",
        hana_cam,
        "framesDecoded",
    )
    .await;

    eval(
        &att,
        &format!("window.myriad.signal.send({{ type: 'set_role', participant: {ari}, role: 'host' }}); true"),
    )
    .await;
    wait_for(
        &att,
        "a refusal shown",
        notice,
        Duration::from_secs(10),
        |v| v.as_str().is_some_and(|t| t.starts_with("Not allowed")),
    )
    .await;
    screenshot(&att, "roles-refused.png").await;
    browser.close().await.ok();
    handler.abort();
}

/// The acceptance of a cluster: three nodes on one NATS, a meeting created on the first, one
/// browser on each node; each decodes the others' video and hears them (relayed between the
/// nodes, authenticated). Then the node of a browser that does not coordinate the meeting
/// dies: that browser resumes on another node as the same participant, with media both ways.
/// Then the coordinator's node dies: the meeting goes on (a chat sent then reaches everyone)
/// and no page ever missed an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_on_three_nodes_meet_and_outlive_their_nodes() {
    let nats = common::Nats::start_js();
    let regions = ["eu", "us", "ap"];
    let mut nodes = common::Server::cluster(&nats, &regions);
    nodes[0].create_meeting("across").await;
    let (mut browser, handler, _profile) = launch(&[]).await;
    let mut pages = Vec::new();
    // Each link names its node's region: every browser here shares one network, whose
    // measured round trips would otherwise send them all to the fastest node.
    for ((name, node), region) in ["Alice", "Bob", "Carol"]
        .into_iter()
        .zip(&nodes)
        .zip(regions)
    {
        let page = browser
            .new_page(format!(
                "{}/m/across?name={name}&join=1&region={region}",
                node.url
            ))
            .await
            .expect("page");
        let id = participant_id(&page).await;
        pages.push((name, page, id));
    }
    let on = |page: &Page| {
        let page = page.clone();
        async move {
            eval(&page, "window.myriad.signal.ws.url")
                .await
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    for ((name, page, _), node) in pages.iter().zip(&nodes) {
        let url = on(page).await;
        assert!(
            url.starts_with(&node.ws_url()),
            "{name} on its own node: {url}"
        );
    }
    for (name, page, _) in &pages {
        assert_receives(page, name, 2).await;
    }
    screenshot(&pages[1].1, "three-nodes-bob.png").await;
    // The media crossed between the nodes, authenticated: relayed, none refused.
    for node in &nodes {
        let metrics = node.scrape().await;
        assert!(
            metrics.figure("myriad_node_relay_sent_total") > 100,
            "{}",
            metrics.0
        );
        assert!(
            metrics.figure("myriad_node_relay_received_total") > 100,
            "{}",
            metrics.0
        );
        assert_eq!(metrics.figure("myriad_node_relay_refused_total"), 0);
    }
    // Each page timed the nodes it was offered and told the node that routed it.
    let mut reported = 0;
    for node in &nodes {
        reported += node
            .scrape()
            .await
            .figure("myriad_node_route_rtt_samples_total");
    }
    assert!(reported >= 3, "round trips reported: {reported}");
    let mut coordinator = None;
    for (i, node) in nodes.iter().enumerate() {
        if node.scrape().await.figure("myriad_node_leases") == 1 {
            coordinator = Some(i);
        }
    }
    let coordinator = coordinator.expect("a node coordinates the meeting");

    // A browser's node dies (not the coordinator's): that browser is back elsewhere, the
    // same participant, and media flows both ways again.
    let victim = (coordinator + 1) % nodes.len();
    let (name, page, id) = &pages[victim];
    let cam_before = track_of(&pages[coordinator].1, *id, "camera").await;
    nodes[victim].kill();
    let killed = Instant::now();
    let dead_ws = nodes[victim].ws_url();
    wait_for(
        page,
        "back on a live node",
        "window.myriad.signal.state === 'connected' ? window.myriad.signal.ws.url : null",
        Duration::from_secs(30),
        |v| v.as_str().is_some_and(|u| !u.starts_with(&dead_ws)),
    )
    .await;
    eprintln!(
        "{name} back on a live node {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(participant_id(page).await, *id, "the same participant");
    let watcher = &pages[coordinator].1;
    let cam = wait_for(
        watcher,
        "the camera republished",
        &format!(
            "[...window.myriad.state.tracks.values()].find(t => t.participant === {id} \
             && t.source === 'camera')?.id ?? null"
        ),
        Duration::from_secs(30),
        |v| v.as_i64().is_some_and(|t| t != cam_before),
    )
    .await
    .as_i64()
    .unwrap_or_default();
    assert_track_flows(watcher, "the returned camera", cam, "framesDecoded").await;
    let watched = track_of(page, pages[coordinator].2, "camera").await;
    assert_track_flows(
        page,
        "a camera at the returned page",
        watched,
        "framesDecoded",
    )
    .await;
    eprintln!(
        "media both ways again {:?} after the kill",
        killed.elapsed()
    );
    screenshot(page, "failover-returned.png").await;

    // The coordinator's node dies: another takes the meeting over; a chat sent then reaches
    // everyone, wherever they are now.
    nodes[coordinator].kill();
    let killed = Instant::now();
    let third = 3 - victim - coordinator;
    let speaker = &pages[third].1;
    let text = "still here after the coordinator went";
    eval(
        speaker,
        &format!("window.myriad.signal.send({{ type: 'chat', text: '{text}' }}); true"),
    )
    .await;
    for (name, page, _) in &pages {
        wait_for(
            page,
            &format!("{name} gets the chat after the coordinator died"),
            &format!("document.querySelector('#chat-log')?.textContent.includes('{text}')"),
            Duration::from_secs(30),
            |v| v == &Value::Bool(true),
        )
        .await;
    }
    eprintln!(
        "the meeting went on {:?} after its coordinator's node died",
        killed.elapsed()
    );
    for (name, page, _) in &pages {
        let gaps = eval(page, "window.myriad.signal.gaps").await;
        assert_eq!(gaps, 0, "{name} missed no event");
    }
    browser.close().await.ok();
    handler.abort();
}

/// A coturn (Debian's) on loopback checking the credentials myriad mints from `secret`
/// (`use-auth-secret`); stopped on drop.
struct Coturn {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    fn start(secret: &str) -> Coturn {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = common::free_port();
        let child = std::process::Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip",
                "127.0.0.1",
                "--relay-ip",
                "127.0.0.1",
            ])
            .args(["--listening-port", &port.to_string()])
            .args(["--min-port", "49160", "--max-port", "49260"])
            .args(["--use-auth-secret", "--static-auth-secret", secret])
            .args(["--realm", "myriad.test", "--allow-loopback-peers"])
            .args(["--no-cli", "--no-tls", "--no-dtls", "--simple-log"])
            .arg("--log-file")
            .arg(dir.path().join("turn.log"))
            .arg("--pidfile")
            .arg(dir.path().join("turn.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("turnserver runs (scripts/setup --test installs coturn)");
        let listening = (0..250).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(listening, "coturn did not listen on {port}");
        Coturn {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ada and Bo, panelists of a new meeting `meeting`, in a browser that may send no UDP but
/// through a proxy; once each receives the other's media.
async fn two_without_udp(
    server: &common::Server,
    meeting: &str,
) -> (
    Browser,
    tokio::task::JoinHandle<()>,
    tempfile::TempDir,
    [Page; 2],
) {
    server.create_meeting(meeting).await;
    let no_udp =
        serde_json::json!({ "webrtc": { "ip_handling_policy": "disable_non_proxied_udp" } });
    let (browser, handler, profile) = launch_with_prefs(&[], Some(no_udp)).await;
    let people = [("Ada", "panelist"), ("Bo", "panelist")];
    let [(ada, _), (bo, _)] = joined_pages(&browser, server, meeting, people).await;
    assert_receives(&ada, "Ada", 1).await;
    assert_receives(&bo, "Bo", 1).await;
    (browser, handler, profile, [ada, bo])
}

/// A browser that may send no UDP but through a proxy (Chromium's WebRTC IP handling policy
/// `disable_non_proxied_udp`, as networks that block UDP have it set) still gets media, over
/// ICE-TCP to the node itself. The node listens on every address (`--udp 0.0.0.0`) and
/// tells clients its public one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_over_ice_tcp_when_udp_is_blocked() {
    let server = common::Server::start_in(
        tempfile::tempdir().expect("temp dir"),
        &["--udp", "0.0.0.0:0", "--public-ip", "127.0.0.1"],
    );
    let (mut browser, handler, _profile, [ada, bo]) = two_without_udp(&server, "tcp-only").await;
    for (page, who) in [(&ada, "Ada"), (&bo, "Bo")] {
        let path = eval(page, &format!("(async () => (await ({STATS})).path)()")).await;
        // An active TCP candidate's port is only known once connected: peer-reflexive.
        assert!(
            ["host", "prflx"].contains(&path["type"].as_str().unwrap_or_default()),
            "{who} reaches the node itself, not a relay: {path}"
        );
        assert_eq!(
            path["protocol"], "tcp",
            "{who}'s media goes over TCP: {path}"
        );
    }
    let scrape = server.scrape().await;
    for name in ["received", "sent"] {
        let figure = scrape.figure(&format!("myriad_node_media_tcp_packets_{name}_total"));
        assert!(figure > 100, "{name} over TCP: {figure}");
    }
    screenshot(&bo, "ice-tcp-no-udp.png").await;
    browser.close().await.ok();
    handler.abort();
}

/// The same browser, with a node that takes no ICE-TCP: media goes over TURN on TCP with the
/// credentials its node minted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_over_turn_when_udp_is_blocked() {
    let secret = "turn-test-secret";
    let turn = Coturn::start(secret);
    let url = format!("turn:127.0.0.1:{}?transport=tcp", turn.port);
    // No ICE-TCP on the node: media can only go through TURN.
    let server = common::Server::start_in(
        tempfile::tempdir().expect("temp dir"),
        &[
            "--turn",
            &url,
            "--turn-secret",
            secret,
            "--ice-tcp",
            "false",
        ],
    );
    let (mut browser, handler, _profile, [ada, bo]) = two_without_udp(&server, "no-udp").await;
    for (page, who) in [(&ada, "Ada"), (&bo, "Bo")] {
        let path = eval(page, &format!("(async () => (await ({STATS})).path)()")).await;
        assert_eq!(
            path["type"], "relay",
            "{who}'s media goes through TURN: {path}"
        );
        assert_eq!(
            path["relayProtocol"], "tcp",
            "{who} reaches TURN over TCP: {path}"
        );
    }
    let servers = eval(&ada, "JSON.stringify(window.myriad.media.iceServers)").await;
    assert!(
        servers
            .as_str()
            .is_some_and(|s| s.contains("no-udp.") && s.contains(&url)),
        "credentials of its own: {servers}"
    );
    screenshot(&bo, "turn-no-udp.png").await;
    browser.close().await.ok();
    handler.abort();
}
