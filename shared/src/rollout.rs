//! Rollouts as the log records them: the policy an operator gives (`--batch`, `--settle`,
//! `--timeout`, `--max-unavailable`, `--max-failed`, `--no-auto-rollback`), the batches it
//! cuts the instance's nodes into, and how a rollout ends.
//!
//! Pure: the cloud's rollout controller decides when a batch starts and passes; this module
//! only says what a batch is. Batches are cumulative shares of the instance's nodes in a
//! stable order: `1,10%,100%` of 50 nodes is the first node, then the first 5, then all 50
//! ([`cumulative`]).

use serde::{Deserialize, Serialize};

use crate::ids::{Name, NodeId};
use crate::instance::InstanceSpec;

/// The most batches one rollout has.
pub const MAX_BATCHES: usize = 16;
/// The most nodes a batch share may name (`--batch 100000`).
pub const MAX_SHARE_NODES: u32 = 100_000;
/// The longest settle time and timeout: a week.
pub const MAX_WAIT_MS: u64 = 7 * 24 * 3600 * 1000;
/// The most bytes of a failure's reason kept in the log.
pub const MAX_REASON_BYTES: usize = 512;

/// One cumulative share of an instance's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Share {
    /// So many nodes.
    Nodes(u32),
    /// So many percent of the nodes, rounded up (1 to 100).
    Percent(u8),
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Share::Nodes(n) => write!(f, "{n}"),
            Share::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A count of nodes, or a share of a batch.
pub type FailBudget = Share;

impl Share {
    /// Parses `N` or `P%`.
    pub fn parse(s: &str) -> Result<Share, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: u8 = p
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage from 1% to 100%"))?;
            if !(1..=100).contains(&p) {
                return Err(format!("{s:?} is not a percentage from 1% to 100%"));
            }
            return Ok(Share::Percent(p));
        }
        let n: u32 = s
            .parse()
            .map_err(|_| format!("{s:?} is neither a node count nor a percentage (P%)"))?;
        if n > MAX_SHARE_NODES {
            return Err(format!("{n} nodes; at most {MAX_SHARE_NODES}"));
        }
        Ok(Share::Nodes(n))
    }

    /// The count of `of` this share is, rounded up.
    pub fn of(self, of: usize) -> usize {
        match self {
            Share::Nodes(n) => (n as usize).min(of),
            Share::Percent(p) => (of * usize::from(p)).div_ceil(100),
        }
    }
}

/// Parses `--batch`: comma-separated shares, each larger than the one before when both are
/// of one kind, at most [`MAX_BATCHES`]. A batch share of 0 nodes is refused.
pub fn parse_batches(s: &str) -> Result<Vec<Share>, String> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() > MAX_BATCHES {
        return Err(format!(
            "{} batches; at most {MAX_BATCHES} are accepted",
            parts.len()
        ));
    }
    let mut out = Vec::new();
    for part in parts {
        let share = Share::parse(part)?;
        if share == Share::Nodes(0) {
            return Err("a batch of 0 nodes changes nothing".to_owned());
        }
        out.push(share);
    }
    Ok(out)
}

/// The default batches: one node, then all.
pub fn default_batches() -> Vec<Share> {
    vec![Share::Nodes(1), Share::Percent(100)]
}

/// The cumulative node counts of `shares` over `n` nodes: each at least 1 and larger than
/// the one before (a share that adds no node is dropped), the last always `n`. Empty when
/// `n` is 0.
pub fn cumulative(shares: &[Share], n: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    if n == 0 {
        return out;
    }
    for s in shares {
        let count = s.of(n).max(1).min(n);
        if out.last().is_none_or(|last| count > *last) {
            out.push(count);
        }
    }
    if out.last() != Some(&n) {
        out.push(n);
    }
    out
}

/// What kind of change a rollout makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutKind {
    /// To another version (`upgrade --to`).
    Upgrade,
    /// Back to the version before (`rollback`).
    Rollback,
    /// The same version with other overrides or weights (`upgrade` without `--to`).
    Reconfigure,
    /// The same version and settings, the replicas replaced (`restart`).
    Restart,
}

impl std::fmt::Display for RolloutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RolloutKind::Upgrade => "upgrade",
            RolloutKind::Rollback => "rollback",
            RolloutKind::Reconfigure => "reconfigure",
            RolloutKind::Restart => "restart",
        })
    }
}

/// How a rollout proceeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPolicy {
    /// The shares as given (for display); the counts are in [`RolloutStart::batches`].
    pub shares: Vec<Share>,
    /// How long every replica of a batch's nodes must have been healthy (or running).
    pub settle_ms: u64,
    /// How long a batch may take, from its start, before it fails.
    pub timeout_ms: u64,
    /// How many nodes change at once inside a batch (`None`: the whole batch).
    pub max_unavailable: Option<u32>,
    /// How many nodes of a batch may fail and the batch still pass.
    pub max_failed: FailBudget,
    /// Whether a failed batch returns every changed node to the previous version.
    pub auto_rollback: bool,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            shares: default_batches(),
            settle_ms: 30_000,
            timeout_ms: 600_000,
            max_unavailable: None,
            max_failed: Share::Nodes(0),
            auto_rollback: true,
        }
    }
}

/// A rollout as it starts: what it moves the instance to, over which nodes, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStart {
    pub instance: Name,
    /// From 1, one more per rollout of this instance.
    pub id: u64,
    pub kind: RolloutKind,
    /// The spec every node runs when the rollout completes (its `nodes` the instance's
    /// nodes and weights from then on).
    pub to: InstanceSpec,
    /// The instance's nodes in the rollout's order.
    pub order: Vec<NodeId>,
    /// Cumulative node counts: batch `i` (from 1) covers `order[..batches[i - 1]]`.
    pub batches: Vec<u32>,
    pub policy: RolloutPolicy,
}

impl RolloutStart {
    /// The new nodes of batch `k` (from 1): its cumulative share less the batches before;
    /// `None` past the last batch.
    pub fn batch(&self, k: usize) -> Option<&[NodeId]> {
        let to = *self.batches.get(k.checked_sub(1)?)? as usize;
        let from = match k {
            1 => 0,
            _ => self.batches[k - 2] as usize,
        };
        self.order.get(from.min(to)..to)
    }

    /// The new nodes of every batch, in order.
    pub fn batch_nodes(&self) -> impl Iterator<Item = &[NodeId]> + '_ {
        (1..=self.batches.len()).map(|k| self.batch(k).unwrap_or_default())
    }
}

/// A node that failed its batch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFailure {
    pub node: NodeId,
    pub reason: String,
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutOutcome {
    /// Every batch passed: the instance runs the new spec.
    Completed,
    /// A batch failed; every node changed went back to the previous spec.
    RolledBack { reason: String },
    /// A batch failed with `--no-auto-rollback`: the nodes changed keep the new spec.
    Failed { reason: String },
    /// An operator aborted it: the nodes changed keep the new spec.
    Aborted,
}

impl std::fmt::Display for RolloutOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RolloutOutcome::Completed => f.write_str("completed"),
            RolloutOutcome::RolledBack { reason } => write!(f, "rolled back: {reason}"),
            RolloutOutcome::Failed { reason } => write!(f, "failed: {reason}"),
            RolloutOutcome::Aborted => f.write_str("aborted"),
        }
    }
}

/// `s` cut to at most [`MAX_REASON_BYTES`], on a character boundary.
pub fn bounded_reason(s: &str) -> String {
    if s.len() <= MAX_REASON_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_REASON_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn batches_are_cumulative_shares_rounded_up() {
        let shares = parse_batches("1,10%,100%").unwrap();
        assert_eq!(cumulative(&shares, 50), vec![1, 5, 50]);
        assert_eq!(cumulative(&shares, 1000), vec![1, 100, 1000]);
        // A share that adds no node is dropped; the last batch is always every node.
        assert_eq!(cumulative(&shares, 3), vec![1, 3]);
        assert_eq!(cumulative(&shares, 1), vec![1]);
        assert_eq!(cumulative(&shares, 0), Vec::<usize>::new());
        assert_eq!(
            cumulative(&parse_batches("2,50%").unwrap(), 10),
            vec![2, 5, 10]
        );
        assert_eq!(cumulative(&default_batches(), 3), vec![1, 3]);
    }

    #[test]
    fn a_batch_is_its_share_less_the_batches_before() {
        let order: Vec<NodeId> = (0..5).map(|_| NodeId::random()).collect();
        let manifest = crate::manifest::parse_manifest(
            "app: web\nversion: 1.0.0\ncomponents:\n  - name: api\n    image: api:1\n",
        )
        .unwrap();
        let to = InstanceSpec {
            name: Name::parse("web").unwrap(),
            env: Name::parse("prod").unwrap(),
            app: Name::parse("web").unwrap(),
            version: manifest.version.clone(),
            manifest,
            nodes: vec![],
            unschedulable: vec![],
            selector: Default::default(),
            overrides: vec![],
            mode: Default::default(),
            targeting: Default::default(),
            lifecycle: Default::default(),
        };
        let start = RolloutStart {
            instance: Name::parse("web").unwrap(),
            id: 1,
            kind: RolloutKind::Upgrade,
            to,
            order: order.clone(),
            batches: vec![1, 3, 5],
            policy: RolloutPolicy::default(),
        };
        assert_eq!(start.batch(1), Some(&order[..1]));
        assert_eq!(start.batch(2), Some(&order[1..3]));
        assert_eq!(start.batch(3), Some(&order[3..]));
        assert_eq!(start.batch(0), None);
        assert_eq!(start.batch(4), None);
        assert_eq!(start.batch_nodes().count(), 3);
    }

    #[test]
    fn bad_batches_are_refused_with_why() {
        assert!(parse_batches("0,100%").unwrap_err().contains("0 nodes"));
        assert!(parse_batches("1,150%").unwrap_err().contains("1% to 100%"));
        assert!(parse_batches("x").unwrap_err().contains("neither"));
        let many = vec!["1"; MAX_BATCHES + 1].join(",");
        assert!(parse_batches(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn shares_of_a_batch() {
        assert_eq!(Share::Percent(10).of(5), 1);
        assert_eq!(Share::Nodes(2).of(1), 1);
        assert_eq!(Share::Percent(100).of(7), 7);
    }

    #[test]
    fn reasons_are_bounded_on_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let cut = bounded_reason(&long);
        assert!(cut.len() <= MAX_REASON_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
