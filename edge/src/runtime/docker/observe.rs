//! `observe`: every container labelled with the node, inspected, as replicas with their
//! phase, restarts and last exit; and the instances that have a network (see the module
//! docs of [`super`], "What the engine says").

use std::collections::{BTreeSet, HashMap};

use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};
use futures_util::{StreamExt, stream};
use skerry_shared::ids::{Name, NodeId};

use super::super::{Observed, ObservedReplica, RuntimeError, labels};
use super::{DockerRuntime, error, exits, state};

/// How many containers `observe` inspects at once.
const INSPECT_CONCURRENCY: usize = 8;

impl DockerRuntime {
    pub(super) async fn observe_node(&self, node: NodeId) -> Result<Observed, RuntimeError> {
        let node_filter = HashMap::from([("label", vec![format!("{}={node}", labels::NODE)])]);
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&node_filter)
                    .build(),
            ))
            .await
            .map_err(|e| error::engine("list containers", &e))?;

        let mut found = Vec::with_capacity(containers.len());
        for c in containers {
            let id = c.id.unwrap_or_default();
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_else(|| id.clone());
            match state::key_from_labels(&c.labels.unwrap_or_default()) {
                Ok((key, hash)) => found.push((id, key, hash)),
                Err(why) => {
                    tracing::warn!(container = %name, "skipping a container with bad labels: {why}");
                }
            }
        }

        let inspected: Vec<Result<Option<(String, ObservedReplica)>, RuntimeError>> =
            stream::iter(found)
                .map(|(id, key, spec_hash)| async move {
                    match self.docker.inspect_container(&id, None).await {
                        Ok(c) => {
                            let s = c.state.unwrap_or_default();
                            if state::never_started(&s) {
                                // The agent died between create and start (passes never
                                // overlap, so no start of ours is in flight): remove it, and
                                // the planner starts the replica afresh.
                                tracing::warn!(container = %id, replica = %key, "removing a container that was created and never started");
                                self.remove_container(&id).await?;
                                return Ok(None);
                            }
                            let restarts = state::restarts(c.restart_count);
                            let last_exit = state::last_exit(&s);
                            // The time is the engine's (`FinishedAt`); the code is the
                            // state's while it is not running, else the events' (the engine
                            // resets it when its policy starts the container again).
                            let seen = self.exits.get(&id);
                            let at = exits::finished_at(s.finished_at.as_deref())
                                .or(seen.as_ref().map(|e| e.at));
                            let reason =
                                last_exit.clone().or(seen.map(|e| e.reason)).or_else(|| {
                                    (restarts > 0)
                                        .then(|| "exited (code not seen by the agent)".to_owned())
                                });
                            let exited = at
                                .zip(reason)
                                .map(|(at, reason)| skerry_shared::report::LastExit { at, reason });
                            Ok(Some((
                                id,
                                ObservedReplica {
                                    phase: state::phase(&s),
                                    restarts,
                                    last_exit,
                                    exited,
                                    key,
                                    spec_hash,
                                },
                            )))
                        }
                        // Removed between the list and the inspect.
                        Err(e) if error::not_found(&e) => Ok(None),
                        Err(e) => Err(error::engine(format!("inspect container {id}"), &e)),
                    }
                })
                .buffered(INSPECT_CONCURRENCY)
                .collect()
                .await;
        let mut replicas = Vec::with_capacity(inspected.len());
        let mut ids = std::collections::HashSet::new();
        for r in &inspected {
            if let Ok(Some((id, _))) = r {
                ids.insert(id.as_str());
            }
        }
        self.exits.retain(&ids);
        for r in inspected {
            replicas.extend(r?.map(|(_, o)| o));
        }
        replicas.sort_by(|a, b| a.key.cmp(&b.key));

        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new()
                    .filters(&node_filter)
                    .build(),
            ))
            .await
            .map_err(|e| error::engine("list networks", &e))?;
        let networks: BTreeSet<Name> = networks
            .iter()
            .filter_map(|n| {
                let value = n.labels.as_ref()?.get(labels::INSTANCE)?;
                match Name::parse(value) {
                    Ok(name) => Some(name),
                    Err(e) => {
                        tracing::warn!(network = ?n.name, "skipping a network with a bad instance label: {}", e.0);
                        None
                    }
                }
            })
            .collect();

        Ok(Observed {
            replicas,
            networks: networks.into_iter().collect(),
        })
    }
}
