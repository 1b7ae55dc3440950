//! What the agent does to containers beyond create and remove: start one that exited
//! again, suspend the engine's own restart policy while the agent paces a crash loop, and
//! list the host ports the engine publishes.
//!
//! The engine restarts a container that exits by itself (its restart policy, see
//! [`super::spec::restart_policy`]), also while the agent is down. It does not restart one
//! stopped from outside (`docker stop`, `docker kill`), and it paces a crash loop with its
//! own delays (100 ms doubling to 1 min). So the agent starts an exited container again
//! itself, under [`crate::backoff::RESTART`], and while it does, the container's engine
//! policy is `no` ([`DockerRuntime::hold`]); once the container has run for a while the
//! agent gives it its policy back.

use std::collections::BTreeSet;

use bollard::models::{ContainerUpdateBody, RestartPolicy as DockerRestart, RestartPolicyNameEnum};
use bollard::query_parameters::ListContainersOptionsBuilder;
use skerry_shared::ids::NodeId;
use skerry_shared::manifest::Component;
use skerry_shared::planner::ReplicaKey;

use super::super::{ReplicaSpec, RuntimeError};
use super::{DockerRuntime, error, spec};

impl DockerRuntime {
    /// Starts the replica's existing container again (its id and output stay); a
    /// container that is gone is created afresh.
    pub(super) async fn restart_replica(&self, replica: &ReplicaSpec) -> Result<(), RuntimeError> {
        let name = spec::container_name(replica.node, &replica.key);
        match self.docker.start_container(&name, None).await {
            Ok(()) => {
                tracing::info!(container = %name, replica = %replica.key, "started again");
                Ok(())
            }
            // Running already (the engine's policy was quicker).
            Err(e) if matches!(error::status(&e), Some((304, _))) => Ok(()),
            Err(e) if error::not_found(&e) => self.start_replica(replica).await,
            // Its host port was taken meanwhile: a new container, on the port now chosen.
            Err(e) if error::status(&e).is_some_and(|(_, m)| error::port_clash(m)) => {
                tracing::info!(container = %name, "its host port is taken now; creating it again");
                self.start_replica(replica).await
            }
            Err(e) => Err(error::start(format!("start container {name}"), &e)),
        }
    }

    /// Sets the container's engine restart policy to `no` (`held`) or back to the one its
    /// component asks for.
    pub(super) async fn hold(
        &self,
        node: NodeId,
        key: &ReplicaKey,
        component: &Component,
        held: bool,
    ) -> Result<(), RuntimeError> {
        let name = spec::container_name(node, key);
        let policy = if held {
            RestartPolicyNameEnum::NO
        } else {
            spec::restart_policy(component.kind, component.restart())
        };
        let body = ContainerUpdateBody {
            restart_policy: Some(DockerRestart {
                name: Some(policy),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        match self.docker.update_container(&name, body).await {
            Ok(()) => {
                tracing::debug!(container = %name, ?policy, "engine restart policy set");
                Ok(())
            }
            Err(e) if error::not_found(&e) => Ok(()),
            Err(e) => Err(error::engine(
                format!("set the restart policy of {name}"),
                &e,
            )),
        }
    }

    /// Every host port a running container of this engine publishes (any node's, any
    /// owner's).
    pub(super) async fn published_ports(&self) -> Result<BTreeSet<u16>, RuntimeError> {
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptionsBuilder::new().all(false).build()))
            .await
            .map_err(|e| error::engine("list containers", &e))?;
        Ok(containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| p.public_port)
            .collect())
    }
}
