//! Instance networks: a bridge network per instance, on a subnet of the pool (see
//! [`super::subnet`]), created once and removed by every exact name match.

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, Network, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;
use skerry_shared::ids::{Name, NodeId};

use super::super::{RuntimeError, labels};
use super::subnet::Subnet;
use super::{DockerRuntime, error, spec};

/// How many times `create_network` picks another block when someone else took the one it
/// chose between its list and its create.
const SUBNET_ATTEMPTS: usize = 8;

impl DockerRuntime {
    pub(super) async fn create_instance_network(
        &self,
        node: NodeId,
        instance: &Name,
    ) -> Result<(), RuntimeError> {
        let _one_at_a_time = self.network_lock.lock().await;
        let name = spec::network_name(node, instance);
        let mut lost: Vec<Subnet> = Vec::new();
        for _ in 0..SUBNET_ATTEMPTS {
            let networks = self
                .docker
                .list_networks(None)
                .await
                .map_err(|e| error::engine("list networks", &e))?;
            if networks
                .iter()
                .any(|n| n.name.as_deref() == Some(name.as_str()))
            {
                return Ok(());
            }
            let mut used: Vec<Subnet> = networks.iter().flat_map(subnets_of).collect();
            used.extend(lost.iter().copied());
            let subnet = self.pool.first_free(&used).ok_or_else(|| {
                RuntimeError::Engine(format!(
                    "network {name}: every /{} of the subnet pool {} is in use",
                    self.options.block,
                    self.pool.pool()
                ))
            })?;
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_owned()),
                ipam: Some(Ipam {
                    driver: Some("default".to_owned()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                labels: Some(HashMap::from([
                    (labels::INSTANCE.to_owned(), instance.to_string()),
                    (labels::NODE.to_owned(), node.to_string()),
                ])),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => {
                    tracing::info!(network = %name, %subnet, "created the instance network");
                    return Ok(());
                }
                // Another process took the block between the list and the create.
                Err(e) if error::status(&e).is_some_and(|(_, m)| m.contains("overlap")) => {
                    tracing::debug!(network = %name, %subnet, "subnet taken meanwhile; trying the next one");
                    lost.push(subnet);
                }
                // Newer engines refuse a duplicate name: someone created it meanwhile.
                Err(e) if error::status(&e).is_some_and(|(code, _)| code == 409) => {
                    return Ok(());
                }
                Err(e) => return Err(error::engine(format!("create network {name}"), &e)),
            }
        }
        Err(RuntimeError::Engine(format!(
            "network {name}: the chosen subnets were taken {SUBNET_ATTEMPTS} times in a row"
        )))
    }

    pub(super) async fn remove_instance_network(
        &self,
        node: NodeId,
        instance: &Name,
    ) -> Result<(), RuntimeError> {
        let name = spec::network_name(node, instance);
        // The name filter matches substrings; an engine before 25 may even hold two
        // networks of one name. Remove every exact match by id.
        let filter = HashMap::from([("name", vec![name.clone()])]);
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filter).build(),
            ))
            .await
            .map_err(|e| error::engine("list networks", &e))?;
        for n in networks
            .iter()
            .filter(|n| n.name.as_deref() == Some(name.as_str()))
        {
            let id = n.id.as_deref().unwrap_or(name.as_str());
            match self.docker.remove_network(id).await {
                Ok(()) => tracing::info!(network = %name, "removed the instance network"),
                Err(e) if error::not_found(&e) => {}
                // Containers still attached: the reconciler stops them and tries again.
                Err(e) => return Err(error::engine(format!("remove network {name}"), &e)),
            }
        }
        Ok(())
    }
}

/// The IPv4 subnets a network's IPAM config holds.
fn subnets_of(network: &Network) -> Vec<Subnet> {
    network
        .ipam
        .as_ref()
        .and_then(|ipam| ipam.config.as_ref())
        .map(|configs| {
            configs
                .iter()
                .filter_map(|c| c.subnet.as_deref().and_then(Subnet::parse))
                .collect()
        })
        .unwrap_or_default()
}
