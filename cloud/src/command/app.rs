//! Apps, versions and undeploy.

use skerry_shared::event::EventPayload;
use skerry_shared::hash::Digest;
use skerry_shared::manifest::Manifest;

use super::outcome::{Pending, Refusal};
use crate::projections::Projections;

/// The identity of a manifest's content.
pub fn manifest_digest(m: &Manifest) -> Digest {
    Digest::of(&postcard::to_stdvec(m).unwrap_or_default())
}

pub(super) fn publish(p: &Projections, manifest: &Manifest) -> Result<Vec<Pending>, Refusal> {
    let digest = manifest_digest(manifest);
    if let Some(existing) = p.app_version(manifest.app.as_str(), &manifest.version) {
        if existing.digest == digest {
            return Ok(Vec::new());
        }
        return Err(Refusal::conflict(
            "version_exists",
            "version",
            format!(
                "{}@{} is already published with other content; versions are immutable, publish a new version",
                manifest.app, manifest.version
            ),
        ));
    }
    Ok(vec![Pending::cloud_only(
        EventPayload::AppVersionPublished {
            manifest: manifest.clone(),
            digest,
        },
    )])
}

pub(super) fn undeploy(p: &Projections, name: &str, purge: bool) -> Result<Vec<Pending>, Refusal> {
    let instance = p.instances.get(name).ok_or_else(|| {
        Refusal::not_found(
            "unknown_instance",
            "instance",
            format!("no instance named \"{name}\""),
        )
    })?;
    Ok(vec![Pending {
        payload: EventPayload::InstanceUndeployed {
            name: instance.spec.name.clone(),
            purge,
        },
        audience: instance.spec.nodes.iter().map(|t| t.node).collect(),
    }])
}
