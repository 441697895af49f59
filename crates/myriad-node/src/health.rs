//! What `/healthz` says: whether this node should be sent people now, and if not, why. A
//! pure judgement of readings (the shell reads them); a node that became overloaded stays so
//! until it is clearly below the limits again, so a node near them does not flap in and out
//! of DNS answers and routes.

use serde::Serialize;

/// Capacity and CPU shares at which a node is overloaded, and below which it is ready again.
const FULL: f64 = 1.0;
const FULL_AGAIN: f64 = 0.9;
const CPU_BUSY: f64 = 0.9;
const CPU_BUSY_AGAIN: f64 = 0.75;

/// What the node measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readings {
    /// It was asked to stop (SIGTERM) and lets its people finish.
    pub draining: bool,
    /// It hears the cluster's registry, its own announcement included.
    pub registered: bool,
    pub participants: u32,
    pub capacity: u32,
    /// Cores busy, summed (0 to `cores`).
    pub cpu: f32,
    pub cores: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Health {
    Ready,
    Draining,
    Overloaded { reason: String },
    Unavailable { reason: String },
}

impl Health {
    /// 200 when ready; 503 (send nobody new here) otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            Health::Ready => 200,
            _ => 503,
        }
    }
}

/// The node's health from its readings, given what it was (for the overload's hysteresis).
pub fn assess(r: &Readings, was: &Health) -> Health {
    if r.draining {
        return Health::Draining;
    }
    if !r.registered {
        return Health::Unavailable {
            reason: "not heard in the cluster's registry (is the bus reachable?)".into(),
        };
    }
    let overloaded = matches!(was, Health::Overloaded { .. });
    let (full, busy) = if overloaded {
        (FULL_AGAIN, CPU_BUSY_AGAIN)
    } else {
        (FULL, CPU_BUSY)
    };
    if r.capacity > 0 && f64::from(r.participants) >= full * f64::from(r.capacity) {
        return Health::Overloaded {
            reason: format!("{} of {} participants", r.participants, r.capacity),
        };
    }
    if r.cores > 0 && f64::from(r.cpu) >= busy * f64::from(r.cores) {
        return Health::Overloaded {
            reason: format!("{:.1} of {} cores busy", r.cpu, r.cores),
        };
    }
    Health::Ready
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(participants: u32, cpu: f32) -> Readings {
        Readings {
            draining: false,
            registered: true,
            participants,
            capacity: 100,
            cpu,
            cores: 2,
        }
    }

    #[test]
    fn a_node_says_what_is_wrong_draining_first() {
        assert_eq!(assess(&readings(10, 0.2), &Health::Ready), Health::Ready);
        let full = assess(&readings(100, 0.2), &Health::Ready);
        assert!(matches!(&full, Health::Overloaded { reason } if reason.contains("100 of 100")));
        let busy = assess(&readings(10, 1.9), &Health::Ready);
        assert!(matches!(&busy, Health::Overloaded { reason } if reason.contains("cores")));
        let gone = Readings {
            registered: false,
            ..readings(10, 0.2)
        };
        assert!(matches!(
            assess(&gone, &Health::Ready),
            Health::Unavailable { .. }
        ));
        let leaving = Readings {
            draining: true,
            ..gone
        };
        assert_eq!(assess(&leaving, &Health::Ready), Health::Draining);
        assert_eq!(Health::Ready.http_status(), 200);
        assert_eq!(Health::Draining.http_status(), 503);
    }

    #[test]
    fn an_overloaded_node_is_ready_again_only_clearly_below_the_limits() {
        let over = assess(&readings(100, 0.2), &Health::Ready);
        // Just below the limit: still overloaded (no flapping at the edge).
        assert_eq!(assess(&readings(95, 0.2), &over), over.clone().with(95));
        assert!(matches!(
            assess(&readings(10, 1.6), &over),
            Health::Overloaded { .. }
        ));
        assert_eq!(assess(&readings(89, 1.4), &over), Health::Ready);
        // From ready, the same readings are ready.
        assert_eq!(assess(&readings(95, 1.6), &Health::Ready), Health::Ready);
    }

    impl Health {
        /// The same overload with `n` participants of 100.
        fn with(self, n: u32) -> Health {
            match self {
                Health::Overloaded { .. } => Health::Overloaded {
                    reason: format!("{n} of 100 participants"),
                },
                other => other,
            }
        }
    }
}
