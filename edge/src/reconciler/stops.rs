//! Stopping many replicas at once (an undeploy, an upgrade): every instance at the same
//! time, and within one instance in reverse dependency order (dependents first), in waves
//! that share one grace period. A replica that ignores SIGTERM is killed when the grace
//! period ends, whichever wave it is in, so an undeploy takes about one grace period, not
//! one per replica.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::planner::ReplicaKey;
use tokio::time::Instant;

use crate::runtime::{Runtime, RuntimeError};

/// What each component of an instance depends on (as last desired).
pub type Dependencies = BTreeMap<Name, Vec<Name>>;

/// One replica to stop, with the runtime that holds it.
pub struct Stop {
    pub key: ReplicaKey,
    pub runtime: Arc<dyn Runtime>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("key", &self.key)
            .field("runtime", &self.runtime.kind())
            .finish()
    }
}

/// How deep a component is in its instance's dependency graph: 0 for one that depends on
/// nothing, else one more than its deepest dependency. Unknown components (an instance
/// not desired since the agent started) and cycles count as the deepest, so they go first.
pub fn depth(deps: Option<&Dependencies>, component: &Name) -> u32 {
    fn go(deps: &Dependencies, c: &Name, seen: &mut Vec<Name>) -> u32 {
        let Some(on) = deps.get(c) else {
            return u32::MAX;
        };
        if seen.contains(c) {
            return u32::MAX;
        }
        seen.push(c.clone());
        let d = on
            .iter()
            .map(|dep| go(deps, dep, seen).saturating_add(1))
            .max()
            .unwrap_or(0);
        seen.pop();
        d
    }
    deps.map_or(u32::MAX, |deps| go(deps, component, &mut Vec::new()))
}

/// Stops `stops`: instances at once; in each, the deepest components first, each wave at
/// once, all within one grace period from now (the longest of the runtimes'). Returns
/// each replica's result.
pub async fn stop_all(
    node: NodeId,
    stops: Vec<Stop>,
    deps: &BTreeMap<Name, Dependencies>,
) -> Vec<(ReplicaKey, Result<(), RuntimeError>)> {
    let grace = stops
        .iter()
        .map(|s| s.runtime.stop_grace())
        .max()
        .unwrap_or(Duration::ZERO);
    let deadline = Instant::now() + grace;
    // instance -> depth (deepest first) -> replicas
    let mut waves: BTreeMap<Name, BTreeMap<std::cmp::Reverse<u32>, Vec<Stop>>> = BTreeMap::new();
    for s in stops {
        let d = depth(deps.get(&s.key.instance), &s.key.component);
        waves
            .entry(s.key.instance.clone())
            .or_default()
            .entry(std::cmp::Reverse(d))
            .or_default()
            .push(s);
    }
    let per_instance = waves.into_values().map(|waves| async move {
        let mut results = Vec::new();
        for wave in waves.into_values() {
            let left = deadline.saturating_duration_since(Instant::now());
            let done = join_all(wave.into_iter().map(|s| async move {
                let r = s.runtime.stop_within(node, &s.key, left).await;
                (s.key, r)
            }))
            .await;
            results.extend(done);
        }
        results
    });
    join_all(per_instance).await.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn dependents_are_deeper_than_what_they_depend_on() {
        let deps: Dependencies = [
            (n("db"), vec![]),
            (n("api"), vec![n("db")]),
            (n("web"), vec![n("api"), n("db")]),
            (n("loop-a"), vec![n("loop-b")]),
            (n("loop-b"), vec![n("loop-a")]),
        ]
        .into();
        assert_eq!(depth(Some(&deps), &n("db")), 0);
        assert_eq!(depth(Some(&deps), &n("api")), 1);
        assert_eq!(depth(Some(&deps), &n("web")), 2);
        assert_eq!(depth(Some(&deps), &n("loop-a")), u32::MAX);
        assert_eq!(depth(Some(&deps), &n("gone")), u32::MAX);
        assert_eq!(depth(None, &n("db")), u32::MAX);
    }
}
