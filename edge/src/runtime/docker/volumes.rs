//! Named storage: a volume per instance and storage, created before a container that
//! mounts it, kept by `stop` and undeploy, removed by `purge_storage`.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::RemoveVolumeOptionsBuilder;
use skerry_shared::ids::{Name, NodeId};

use super::super::{RuntimeError, labels};
use super::{DockerRuntime, error, spec};

impl DockerRuntime {
    pub(super) async fn ensure_volume(
        &self,
        node: NodeId,
        instance: &Name,
        storage: &Name,
    ) -> Result<(), RuntimeError> {
        let name = spec::volume_name(&self.options.storage_prefix, node, instance, storage);
        // Creating a volume that exists returns it unchanged.
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(HashMap::from([
                    (labels::INSTANCE.to_owned(), instance.to_string()),
                    (labels::NODE.to_owned(), node.to_string()),
                    (spec::STORAGE_LABEL.to_owned(), storage.to_string()),
                ])),
                ..Default::default()
            })
            .await
            .map_err(|e| error::engine(format!("create volume {name}"), &e))?;
        Ok(())
    }

    pub(super) async fn purge_volume(
        &self,
        node: NodeId,
        instance: &Name,
        storage: &Name,
    ) -> Result<(), RuntimeError> {
        let name = spec::volume_name(&self.options.storage_prefix, node, instance, storage);
        match self
            .docker
            .remove_volume(&name, Some(RemoveVolumeOptionsBuilder::new().build()))
            .await
        {
            Ok(()) => {
                tracing::info!(volume = %name, "purged named storage");
                Ok(())
            }
            Err(e) if error::not_found(&e) => Ok(()),
            // 409: a container still uses it; the reconciler stops it first and retries.
            Err(e) => Err(error::engine(format!("remove volume {name}"), &e)),
        }
    }
}
