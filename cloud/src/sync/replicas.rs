//! The latest replica reports of one node, kept in memory.
//!
//! Reports are not events: the cloud keeps the last state of each replica (with how it last
//! ended), and when the cloud stored that report, so that `status` can say how old a state
//! is once its node stops reporting. Agents report through their outbox; the report store
//! keeps the reports (and their times) durably and the hub loads them at start, and an
//! agent sends a complete report after every connect.

use std::collections::BTreeMap;

use skerry_shared::clock::Timestamp;
use skerry_shared::ids::Name;
use skerry_shared::outbox::OutboxBody;
use skerry_shared::report::{ReplicaStatus, StatusReport};

/// The most replicas kept per node; reports beyond it are dropped (and logged), so a node
/// cannot grow the cloud's memory without bound.
pub const MAX_REPLICAS_PER_NODE: usize = 16_384;

/// A replica's latest status, and when the cloud stored the report it came from (`None`
/// for a status an older build stored without its time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub status: ReplicaStatus,
    pub at: Option<Timestamp>,
}

/// The latest report per (instance, component, replica) of one node.
#[derive(Debug, Clone, Default)]
pub struct Replicas {
    by_instance: BTreeMap<Name, BTreeMap<(Name, u32), Reported>>,
    len: usize,
}

impl Replicas {
    /// Applies a report received `at`: a complete one replaces everything, then
    /// `replicas` are set and `removed` deleted. Returns how many replicas were refused
    /// for the bound.
    pub fn apply(&mut self, report: StatusReport, at: Timestamp) -> usize {
        let StatusReport {
            complete,
            replicas,
            removed,
        } = report;
        self.change(
            complete,
            replicas.into_iter().map(|r| Reported {
                status: ReplicaStatus::from(r),
                at: Some(at),
            }),
            removed,
        )
    }

    /// Replaces everything with statuses loaded from the report store, each with its
    /// time. Returns how many replicas were refused for the bound.
    pub fn load(&mut self, all: Vec<(ReplicaStatus, Option<Timestamp>)>) -> usize {
        self.change(
            true,
            all.into_iter().map(|(status, at)| Reported { status, at }),
            Vec::new(),
        )
    }

    /// Applies an outbox entry stored `at` (`Complete` or `Replica`; others change
    /// nothing). Returns how many replicas were refused for the bound.
    pub fn apply_entry(&mut self, body: &OutboxBody, at: Timestamp) -> usize {
        let reported = |status: &ReplicaStatus| Reported {
            status: status.clone(),
            at: Some(at),
        };
        match body {
            OutboxBody::Complete(all) => self.change(true, all.iter().map(reported), Vec::new()),
            OutboxBody::Replica {
                status: Some(status),
                ..
            } => self.change(false, [reported(status)], Vec::new()),
            OutboxBody::Replica { key, status: None } => self.change(
                false,
                [],
                vec![(key.instance.clone(), key.component.clone(), key.replica)],
            ),
            OutboxBody::LogsDropped(_)
            | OutboxBody::Logs(_)
            | OutboxBody::LogsWaiting(_)
            | OutboxBody::JobRun(_) => 0,
        }
    }

    fn change(
        &mut self,
        complete: bool,
        replicas: impl IntoIterator<Item = Reported>,
        removed: Vec<(Name, Name, u32)>,
    ) -> usize {
        if complete {
            self.by_instance.clear();
            self.len = 0;
        }
        let mut refused = 0;
        for r in replicas {
            let slot = self
                .by_instance
                .entry(r.status.report.instance.clone())
                .or_default();
            let key = (r.status.report.component.clone(), r.status.report.replica);
            if !slot.contains_key(&key) {
                if self.len >= MAX_REPLICAS_PER_NODE {
                    refused += 1;
                    continue;
                }
                self.len += 1;
            }
            slot.insert(key, r);
        }
        for (instance, component, replica) in removed {
            if let Some(slot) = self.by_instance.get_mut(&instance)
                && slot.remove(&(component, replica)).is_some()
            {
                self.len -= 1;
                if slot.is_empty() {
                    self.by_instance.remove(&instance);
                }
            }
        }
        self.by_instance.retain(|_, slot| !slot.is_empty());
        refused
    }

    /// Every replica, by instance, component and replica.
    pub fn all(&self) -> Vec<ReplicaStatus> {
        self.by_instance
            .values()
            .flat_map(|slot| slot.values().map(|r| r.status.clone()))
            .collect()
    }

    /// The replicas of one instance, with the time of their reports.
    pub fn of(&self, instance: &str) -> Vec<Reported> {
        self.by_instance
            .get(instance)
            .map(|slot| slot.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use skerry_shared::hash::Digest;
    use skerry_shared::report::{ReplicaReport, ReplicaState};

    use super::*;

    const T1: Timestamp = Timestamp(1_000);
    const T2: Timestamp = Timestamp(2_000);

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn report(instance: &str, component: &str, replica: u32, state: ReplicaState) -> ReplicaReport {
        ReplicaReport {
            instance: name(instance),
            component: name(component),
            replica,
            state,
            restarts: 0,
            reason: None,
            spec_hash: Digest::ZERO,
            ports: vec![],
        }
    }

    #[test]
    fn complete_replaces_changes_update_removed_delete() {
        let mut r = Replicas::default();
        r.apply(
            StatusReport {
                complete: true,
                replicas: vec![
                    report("web", "db", 0, ReplicaState::Running),
                    report("web", "db", 1, ReplicaState::Starting),
                    report("cam", "grab", 0, ReplicaState::Running),
                ],
                removed: vec![],
            },
            T1,
        );
        assert_eq!(r.len(), 3);
        r.apply(
            StatusReport {
                complete: false,
                replicas: vec![report("web", "db", 1, ReplicaState::Healthy)],
                removed: vec![(name("cam"), name("grab"), 0), (name("x"), name("y"), 9)],
            },
            T2,
        );
        assert_eq!(r.len(), 2);
        assert!(r.of("cam").is_empty());
        assert_eq!(r.of("web")[1].status.report.state, ReplicaState::Healthy);
        // Each replica keeps the time of the report it came from.
        assert_eq!(r.of("web")[0].at, Some(T1));
        assert_eq!(r.of("web")[1].at, Some(T2));
        r.apply(
            StatusReport {
                complete: true,
                replicas: vec![report("new", "a", 0, ReplicaState::Pending)],
                removed: vec![],
            },
            T1,
        );
        assert_eq!(r.all().len(), 1);
        assert_eq!(r.len(), 1);
        r.apply(
            StatusReport {
                complete: true,
                replicas: vec![],
                removed: vec![],
            },
            T1,
        );
        assert!(r.is_empty());
    }

    #[test]
    fn the_number_of_replicas_is_bounded() {
        let mut r = Replicas::default();
        let many: Vec<_> = (0..MAX_REPLICAS_PER_NODE as u32 + 5)
            .map(|i| report("web", "db", i, ReplicaState::Running))
            .collect();
        let refused = r.apply(
            StatusReport {
                complete: true,
                replicas: many,
                removed: vec![],
            },
            T1,
        );
        assert_eq!(refused, 5);
        assert_eq!(r.len(), MAX_REPLICAS_PER_NODE);
        // Updating a kept replica is still allowed.
        assert_eq!(
            r.apply(
                StatusReport {
                    complete: false,
                    replicas: vec![report("web", "db", 0, ReplicaState::Failed { code: 1 })],
                    removed: vec![],
                },
                T2
            ),
            0
        );
    }

    #[test]
    fn outbox_entries_and_loaded_statuses_keep_their_times() {
        let mut r = Replicas::default();
        let status = |state| ReplicaStatus::from(report("web", "db", 0, state));
        r.load(vec![(status(ReplicaState::Running), None)]);
        assert_eq!(r.of("web")[0].at, None);
        r.apply_entry(
            &OutboxBody::Complete(vec![status(ReplicaState::Running)]),
            T1,
        );
        assert_eq!(r.of("web")[0].at, Some(T1));
        r.apply_entry(
            &OutboxBody::Replica {
                key: skerry_shared::planner::ReplicaKey {
                    instance: name("web"),
                    component: name("db"),
                    replica: 0,
                },
                status: Some(Box::new(status(ReplicaState::Healthy))),
            },
            T2,
        );
        let got = &r.of("web")[0];
        assert_eq!(
            (got.status.report.state.clone(), got.at),
            (ReplicaState::Healthy, Some(T2))
        );
    }
}
