//! A replica's container: created and started from its spec (with its image, volumes and
//! log directory first), stopped and removed.

use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use skerry_shared::ids::NodeId;
use skerry_shared::planner::ReplicaKey;

use super::super::{ReplicaSpec, RuntimeError};
use super::{DockerRuntime, error, spec};

impl DockerRuntime {
    pub(super) async fn start_replica(&self, spec: &ReplicaSpec) -> Result<(), RuntimeError> {
        let body = spec::container_body(spec, &self.options.storage_prefix)?;
        let image = body.image.clone().unwrap_or_default();
        self.ensure_image(&image, spec.component.pull()).await?;

        for storage in &spec.storage {
            if storage.container.is_none() {
                continue;
            }
            self.ensure_volume(spec.node, &spec.key.instance, &storage.name)
                .await?;
        }
        if let (Some(dir), Some(_)) = (&spec.log_dir_host, &spec.component.log_dir) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                RuntimeError::Engine(format!("create log directory {}: {e}", dir.display()))
            })?;
        }

        // A container of that name may be left from a crash between create and start, or
        // be an older spec the reconciler replaces.
        let name = spec::container_name(spec.node, &spec.key);
        self.remove_container(&name).await?;

        self.docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| error::create(format!("create container {name}"), &e))?;
        if let Err(e) = self.docker.start_container(&name, None).await {
            let err = error::start(format!("start container {name}"), &e);
            // A created container that never ran would be observed as Starting forever.
            if let Err(cleanup) = self.remove_container(&name).await {
                tracing::warn!(container = %name, "could not remove the container that failed to start: {cleanup}");
            }
            return Err(err);
        }
        tracing::info!(container = %name, replica = %spec.key, "started");
        Ok(())
    }

    /// Removes a container whatever its state; absent is fine.
    pub(super) async fn remove_container(&self, name: &str) -> Result<(), RuntimeError> {
        match self
            .docker
            .remove_container(
                name,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if error::not_found(&e) => Ok(()),
            // Another caller is already removing it.
            Err(e) if error::status(&e).is_some_and(|(_, m)| m.contains("already in progress")) => {
                Ok(())
            }
            Err(e) => Err(error::engine(format!("remove container {name}"), &e)),
        }
    }

    pub(super) async fn stop_replica(
        &self,
        node: NodeId,
        key: &ReplicaKey,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let name = spec::container_name(node, key);
        let timeout = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        match self
            .docker
            .stop_container(
                &name,
                Some(StopContainerOptionsBuilder::new().t(timeout).build()),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if error::not_found(&e) => {
                crate::runtime::secrets::remove_files(node, key);
                return Ok(());
            }
            // 304: it was not running. Anything else: the forced remove below kills it.
            Err(e) => {
                if !matches!(error::status(&e), Some((304, _))) {
                    tracing::debug!(container = %name, "stop failed, removing by force: {e}");
                }
            }
        }
        self.remove_container(&name).await?;
        crate::runtime::secrets::remove_files(node, key);
        tracing::info!(container = %name, replica = %key, "stopped and removed");
        Ok(())
    }
}
