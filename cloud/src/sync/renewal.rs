//! When the cloud asks a node to renew its certificate, as a pure rule over the
//! certificate the node's session opened with ([`PeerCertificate`]), the time and the node
//! certificate lifetime in force (`[pki] node_certificate_lifetime`, `L`):
//!
//! - a third of `L` or less is left: renew now (two thirds of a certificate's life have
//!   passed);
//! - it is valid for longer than `L` from now (by more than [`POLICY_SLACK`]): renew now,
//!   so that a certificate issued under a longer lifetime (825 days before lifetimes were
//!   configurable) is replaced at its agent's next connection;
//! - otherwise: renew when a third of `L` is left, if the session is still open then.
//!
//! The session asks once (a `RenewCertificate` frame); the agent answers with a CSR for the
//! key it has; the session signs it, records `node.certificate-renewed` and sends the new
//! certificate once that event is durable. The agent stores it and reconnects with it.

use std::time::Duration;

use skerry_shared::clock::Timestamp;

use super::transport::PeerCertificate;

/// How much longer than the lifetime in force a certificate may be valid before it is
/// renewed for that reason alone (clock steps, rounding to whole seconds).
pub const POLICY_SLACK: Duration = Duration::from_secs(60);

/// When the certificate of a session should be renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Now, for this reason (for the agent's log).
    Now(String),
    /// At this time.
    At(Timestamp),
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// See the module docs.
pub fn due(peer: &PeerCertificate, now: Timestamp, lifetime: Duration) -> Due {
    let life = millis(lifetime);
    let left = peer.not_after.0.saturating_sub(now.0);
    if left > life.saturating_add(millis(POLICY_SLACK)) {
        return Due::Now(format!(
            "it is valid until {}, longer than the {} this cloud issues certificates for",
            peer.not_after,
            humantime::format_duration(lifetime)
        ));
    }
    let renew_at = peer.not_after.0.saturating_sub(life / 3);
    if now.0 >= renew_at {
        return Due::Now(format!(
            "two thirds of its life have passed (it is valid until {})",
            peer.not_after
        ));
    }
    Due::At(Timestamp(renew_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skerry_shared::hash::Digest;
    use skerry_shared::ids::NodeId;

    fn peer(not_after: i64) -> PeerCertificate {
        PeerCertificate {
            node: NodeId::random(),
            digest: Digest::of(b"c"),
            not_before: Timestamp(0),
            not_after: Timestamp(not_after),
        }
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn renews_past_two_thirds_or_beyond_the_lifetime_in_force() {
        let l = Duration::from_secs(90 * 86_400);
        let now = Timestamp(1_000 * DAY);
        // Fresh: at the two-thirds point.
        assert_eq!(
            due(&peer(now.0 + 90 * DAY), now, l),
            Due::At(Timestamp(now.0 + 60 * DAY))
        );
        // 30 days left or fewer: now.
        assert!(matches!(due(&peer(now.0 + 30 * DAY), now, l), Due::Now(_)));
        assert!(matches!(due(&peer(now.0 + DAY), now, l), Due::Now(_)));
        assert!(matches!(due(&peer(now.0 + 31 * DAY), now, l), Due::At(_)));
        // Issued for 825 days before lifetimes: now, whatever its age.
        let Due::Now(why) = due(&peer(now.0 + 800 * DAY), now, l) else {
            panic!("an 825-day certificate is renewed");
        };
        assert!(why.contains("longer than"), "{why}");
        // Within the slack of the lifetime: not for that reason.
        assert!(matches!(
            due(&peer(now.0 + 90 * DAY + 30_000), now, l),
            Due::At(_)
        ));
    }

    #[test]
    fn a_lifetime_of_seconds_renews_after_two_thirds_of_them() {
        let l = Duration::from_secs(6);
        let now = Timestamp(10_000);
        assert_eq!(due(&peer(16_000), now, l), Due::At(Timestamp(14_000)));
        assert!(matches!(due(&peer(12_000), now, l), Due::Now(_)));
        assert!(matches!(
            due(&peer(13_000), now, l),
            Due::At(Timestamp(11_000))
        ));
        // Issued for 90 days with a policy of seconds: now.
        assert!(matches!(due(&peer(now.0 + 90 * DAY), now, l), Due::Now(_)));
    }
}
