//! Janus (Debian's `janus`, VideoRoom plugin) as the peer we compare with: a config of its own,
//! the process, and its HTTP API (sessions, handles, long-poll events).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::netns::NetNs;

/// A Janus process with only the VideoRoom plugin and the plain HTTP transport, in the bench's
/// network namespace.
pub struct JanusServer {
    child: Child,
    pub url: String,
    dir: PathBuf,
}

const PLUGINS_DIR: &str = "/usr/lib/x86_64-linux-gnu/janus/plugins";
const TRANSPORTS_DIR: &str = "/usr/lib/x86_64-linux-gnu/janus/transports";

impl JanusServer {
    /// Starts Janus inside `netns`, its HTTP API and media on the namespace's address.
    pub async fn spawn(netns: &NetNs) -> anyhow::Result<Self> {
        if Command::new("janus").arg("--version").output().is_err() {
            bail!("janus is not installed: run scripts/peers/janus");
        }
        let port = 8088;
        let dir = std::env::temp_dir().join(format!("myriad-bench-janus-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        write_config(&dir, netns.ns_ip, port)?;
        let log = std::fs::File::create(dir.join("janus.log"))?;
        let child = netns
            .command("janus")
            .arg(format!("--configs-folder={}", dir.display()))
            .arg(format!("--config={}", dir.join("janus.jcfg").display()))
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .context("starting janus")?;
        let server = Self {
            child,
            url: format!("http://{}:{port}/janus", netns.ns_ip),
            dir,
        };
        // Ready when the HTTP API answers.
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let info = client.get(format!("{}/info", server.url)).send().await;
            if info.is_ok_and(|r| r.status().is_success()) {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "janus did not start; see {}",
            server.dir.join("janus.log").display()
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for JanusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("MYRIAD_BENCH_KEEP").is_some() {
            eprintln!("janus config and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn write_config(dir: &Path, ip: Ipv4Addr, port: u16) -> anyhow::Result<()> {
    let dir_s = dir.display();
    std::fs::write(
        dir.join("janus.jcfg"),
        format!(
            r#"general: {{
    configs_folder = "{dir_s}"
    plugins_folder = "{PLUGINS_DIR}"
    transports_folder = "{TRANSPORTS_DIR}"
    debug_level = 2
    session_timeout = 120
}}
media: {{
    rtp_port_range = "30000-60000"
}}
nat: {{
    ice_enforce_list = "{ip}"
    ice_lite = false
}}
plugins: {{
    disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}}
transports: {{
    disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}}
events: {{
    broadcast = false
}}
"#
        ),
    )?;
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!(
            r#"general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "{ip}"
    https = false
}}
admin: {{
    admin_http = false
}}
"#
        ),
    )?;
    // No static rooms: the bench creates its own (the packaged demo room caps bitrate).
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
    Ok(())
}

/// One Janus session with one VideoRoom handle.
pub struct JanusHandle {
    client: reqwest::Client,
    base: String,
    session: u64,
    handle: u64,
    next_tx: u64,
}

impl JanusHandle {
    pub async fn attach(url: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::new();
        let session = post(
            &client,
            url,
            json!({ "janus": "create", "transaction": "c" }),
        )
        .await?;
        let session = session["data"]["id"].as_u64().context("session id")?;
        let base = format!("{url}/{session}");
        let attached = post(
            &client,
            &base,
            json!({ "janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": "a" }),
        )
        .await?;
        let handle = attached["data"]["id"].as_u64().context("handle id")?;
        Ok(Self {
            client,
            base,
            session,
            handle,
            next_tx: 1,
        })
    }

    /// Sends a plugin message (with an optional JSEP) and returns Janus' immediate answer.
    pub async fn message(&mut self, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        self.next_tx += 1;
        let mut msg = json!({ "janus": "message", "body": body, "transaction": format!("m{}", self.next_tx) });
        if let Some(jsep) = jsep {
            msg["jsep"] = jsep;
        }
        post(&self.client, &format!("{}/{}", self.base, self.handle), msg).await
    }

    /// Tells Janus the client has no more candidates (they are all in its SDP).
    pub async fn candidates_done(&mut self) -> anyhow::Result<()> {
        self.next_tx += 1;
        let msg = json!({ "janus": "trickle", "candidate": { "completed": true }, "transaction": format!("t{}", self.next_tx) });
        post(&self.client, &format!("{}/{}", self.base, self.handle), msg).await?;
        Ok(())
    }

    /// Long-polls until an event from the plugin arrives (keepalives are skipped).
    pub async fn next_event(&self) -> anyhow::Result<Value> {
        loop {
            let res = self
                .client
                .get(format!("{}?maxev=1", self.base))
                .timeout(Duration::from_secs(40))
                .send()
                .await?
                .json::<Value>()
                .await?;
            let events = match res {
                Value::Array(a) => a,
                v => vec![v],
            };
            for ev in events {
                match ev["janus"].as_str() {
                    Some("keepalive") | None => continue,
                    _ => return Ok(ev),
                }
            }
        }
    }

    /// Waits for a plugin event carrying a JSEP (an answer or an offer).
    pub async fn wait_jsep(&self) -> anyhow::Result<(Value, Value)> {
        for _ in 0..20 {
            let ev = self.next_event().await?;
            if ev["janus"] == "event" {
                let data = ev["plugindata"]["data"].clone();
                if data["error"].is_string() {
                    bail!("janus: {}", data["error"]);
                }
                if !ev["jsep"].is_null() {
                    return Ok((data, ev["jsep"].clone()));
                }
            }
        }
        bail!("janus sent no SDP")
    }

    /// Keeps the session alive (Janus drops idle sessions) until the task is dropped.
    pub fn keepalive(&self) -> tokio::task::JoinHandle<()> {
        let client = self.client.clone();
        let base = self.base.clone();
        let session = self.session;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let ka = json!({ "janus": "keepalive", "session_id": session, "transaction": "k" });
                let _ = post(&client, &base, ka).await;
            }
        })
    }
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<Value> {
    let res: Value = client
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?
        .json()
        .await?;
    if res["janus"] == "error" {
        bail!("janus error: {}", res["error"]);
    }
    Ok(res)
}
