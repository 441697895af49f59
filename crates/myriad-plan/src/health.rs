//! Active health checks' verdicts: a node the registry still lists but that fails its checks
//! leaves routes and DNS answers before its silence would take it out, and comes back once it passes
//! them again; a node that keeps failing and recovering must pass longer each time (damping).
//! Pure: the shell probes and feeds the results in with the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How checks turn into verdicts.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Failed checks in a row that take a node out.
    pub fails_to_fail: u32,
    /// Passed checks in a row that bring it back, when it has not flapped.
    pub passes_to_return: u32,
    /// Falls within this window count as flapping: each one doubles the passes needed.
    pub flap_window: Duration,
    /// The passes needed never exceed this.
    pub max_passes: u32,
}

impl Default for HealthPolicy {
    /// With a check every 250 ms: out in 0.5–0.75 s, back in 0.5–0.75 s; a node that failed
    /// three times in a minute needs 2 s of passes.
    fn default() -> Self {
        Self {
            fails_to_fail: 2,
            passes_to_return: 2,
            flap_window: Duration::from_secs(60),
            max_passes: 32,
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    down: bool,
    fails: u32,
    passes: u32,
    /// When it was taken out, recently.
    falls: Vec<Instant>,
}

/// Every checked node's state.
#[derive(Debug, Default)]
pub struct HealthBook {
    policy: HealthPolicy,
    nodes: HashMap<String, Node>,
}

impl HealthBook {
    pub fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            nodes: HashMap::new(),
        }
    }

    /// One check's result; true if it changed the node's verdict.
    pub fn record(&mut self, name: &str, passed: bool, now: Instant) -> bool {
        let policy = self.policy;
        let node = self.nodes.entry(name.to_owned()).or_default();
        node.falls
            .retain(|at| now.saturating_duration_since(*at) < policy.flap_window);
        if passed {
            node.fails = 0;
            node.passes = node.passes.saturating_add(1);
            let needed = policy
                .passes_to_return
                .saturating_mul(1 << node.falls.len().saturating_sub(1).min(16))
                .min(policy.max_passes);
            if node.down && node.passes >= needed {
                node.down = false;
                return true;
            }
        } else {
            node.passes = 0;
            node.fails = node.fails.saturating_add(1);
            if !node.down && node.fails >= policy.fails_to_fail {
                node.down = true;
                node.falls.push(now);
                return true;
            }
        }
        false
    }

    /// Whether checks let the node be named: a node not checked yet is (the registry vouches
    /// for it).
    pub fn is_up(&self, name: &str) -> bool {
        self.nodes.get(name).is_none_or(|n| !n.down)
    }

    /// Forgets nodes the registry no longer lists.
    pub fn retain(&mut self, listed: impl Fn(&str) -> bool) {
        self.nodes.retain(|name, _| listed(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(250);

    #[test]
    fn two_failed_checks_take_a_node_out_and_two_passed_bring_it_back() {
        let mut book = HealthBook::default();
        let t0 = Instant::now();
        assert!(book.is_up("a"), "unchecked nodes are named");
        assert!(!book.record("a", false, t0));
        assert!(book.is_up("a"), "one failure is not enough");
        assert!(book.record("a", false, t0 + TICK));
        assert!(!book.is_up("a"));
        assert!(!book.record("a", true, t0 + TICK * 2));
        assert!(!book.is_up("a"));
        assert!(book.record("a", true, t0 + TICK * 3));
        assert!(book.is_up("a"));
        // A failure between passes starts the count again.
        assert!(!book.record("b", false, t0));
        assert!(!book.record("b", true, t0 + TICK));
        assert!(!book.record("b", false, t0 + TICK * 2));
        assert!(book.is_up("b"));
    }

    /// Two failed checks, then passes until the node is back: how many it took.
    fn outage(book: &mut HealthBook, t: &mut Instant) -> u32 {
        for _ in 0..2 {
            *t += TICK;
            book.record("a", false, *t);
        }
        assert!(!book.is_up("a"));
        (1..=64)
            .find(|_| {
                *t += TICK;
                book.record("a", true, *t);
                book.is_up("a")
            })
            .expect("back within 64 passes")
    }

    #[test]
    fn a_flapping_node_must_pass_longer_each_time_and_is_forgiven_later() {
        let mut book = HealthBook::default();
        let mut t = Instant::now();
        assert_eq!(outage(&mut book, &mut t), 2);
        assert_eq!(outage(&mut book, &mut t), 4);
        assert_eq!(outage(&mut book, &mut t), 8);
        // A minute later its past falls are forgotten.
        t += Duration::from_secs(61);
        assert_eq!(outage(&mut book, &mut t), 2);
        book.retain(|n| n != "a");
        assert!(book.is_up("a"));
    }
}
