//! `--health-hook CMD`: tells the host's routing whether this node should get traffic. The
//! command is run (by `sh -c`) with `announce` when the node becomes ready and `withdraw` when
//! it stops being so (draining, overloaded, cut off from the registry), and `withdraw` again
//! as it exits — e.g. `birdc enable`/`disable` of the protocol that announces an anycast
//! prefix (docs/anycast.md), so that a node leaves the anycast route as it leaves DNS.

use std::sync::Arc;
use std::time::Duration;

use myriad_node::{Health, Node};

/// How often the verdict is looked at.
const EVERY: Duration = Duration::from_millis(250);

/// What the hook is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Announce,
    Withdraw,
}

impl Verb {
    fn of(health: &Health) -> Self {
        match health {
            Health::Ready => Verb::Announce,
            _ => Verb::Withdraw,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Verb::Announce => "announce",
            Verb::Withdraw => "withdraw",
        }
    }
}

/// Watches the node's health and runs the hook on each change, from the first verdict on.
pub fn watch(command: String, node: Arc<Node>) {
    tokio::spawn(async move {
        let mut told: Option<Verb> = None;
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let verb = Verb::of(&node.health());
            if told != Some(verb) {
                run(&command, verb).await;
                told = Some(verb);
            }
        }
    });
}

/// Runs the hook and waits for it (a hook that hangs is given 10 s).
pub async fn run(command: &str, verb: Verb) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} {}", verb.word()))
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(10), child).await {
        Ok(Ok(status)) if status.success() => tracing::info!(verb = verb.word(), "health hook ran"),
        Ok(Ok(status)) => tracing::warn!(verb = verb.word(), %status, "health hook failed"),
        Ok(Err(e)) => tracing::warn!(verb = verb.word(), "health hook did not start: {e}"),
        Err(_) => tracing::warn!(verb = verb.word(), "health hook took over 10 s: stopped"),
    }
}
