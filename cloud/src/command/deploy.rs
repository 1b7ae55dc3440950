//! `deploy`: checking a [`DeployIntent`] (names, version, app, overrides), placing it
//! ([`placement`](super::placement)), and the per-node plan for `--dry-run` (its rounds
//! and its [`preview`](super::preview)).

use skerry_shared::event::{EventPayload, InstanceMode, InstanceSpec};
use skerry_shared::ids::{NodeId, shown};
use skerry_shared::manifest::MAX_VERSION_BYTES;
use skerry_shared::planner::{self, Action, ActualState};
use skerry_shared::reducer::{DesiredInstance, NodeDesired};

use super::checks::{environment, labels, name};
use super::intent::DeployIntent;
use super::outcome::{Pending, Refusal};
use super::overrides::overrides;
use super::placement::{Placement, Wanted, place};
use super::preview::{NodePreview, preview};
use crate::projections::Projections;

/// A checked deploy: the instance as it will be recorded.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    pub spec: InstanceSpec,
}

/// What one node will do, for `--dry-run`.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub node: NodeId,
    pub weight: u32,
    pub steps: Vec<Vec<Action>>,
    /// The room, shortfalls and replicas created ([`preview`]).
    pub preview: NodePreview,
}

impl DeployPlan {
    pub fn into_pending(self) -> Pending {
        let audience = self.spec.nodes.iter().map(|t| t.node).collect();
        Pending {
            payload: EventPayload::InstanceDeployed {
                instance: Box::new(self.spec),
            },
            audience,
        }
    }

    /// The ordered actions each target node would take, from an empty node, and what it
    /// would create there with the room it has.
    pub fn node_plans(&self, p: &Projections) -> Vec<NodePlan> {
        self.spec
            .nodes
            .iter()
            .map(|t| {
                let mut desired = NodeDesired::new(t.node);
                desired.instances.insert(
                    self.spec.name.clone(),
                    DesiredInstance {
                        spec: self.spec.clone(),
                        deployed_at: 1,
                    },
                );
                // A plan that does not converge shows the rounds it got through.
                let steps = planner::simulate(&desired, &ActualState::default())
                    .map_or_else(|nc| nc.rounds, |sim| sim.rounds);
                NodePlan {
                    node: t.node,
                    weight: t.weight,
                    steps,
                    preview: self.preview_on(p, t.node),
                }
            })
            .collect()
    }

    /// The room and the shortfalls of each node the selector matched that does not fit.
    pub fn unfit_previews(&self, p: &Projections) -> Vec<NodePreview> {
        self.spec
            .unschedulable
            .iter()
            .map(|u| self.preview_on(p, u.node))
            .collect()
    }

    /// [`preview`] of this deploy on `node` (nothing of it runs there yet).
    fn preview_on(&self, p: &Projections, node: NodeId) -> NodePreview {
        match p.nodes.get(&node) {
            Some(n) => preview(p, n, None, Some(&self.spec)),
            // Not reached: the plan was made from these projections, so its nodes are in
            // them; said rather than panicked on.
            None => NodePreview {
                node,
                room: Default::default(),
                shortfalls: vec![format!("node {node} is not known")],
                changes: Vec::new(),
            },
        }
    }
}

/// Checks a deploy against the projections and resolves it into an [`InstanceSpec`].
pub fn plan_deploy(p: &Projections, req: &DeployIntent) -> Result<DeployPlan, Refusal> {
    let instance_name = name("name", &req.name)?;
    let app = name("app", &req.app)?;
    if req.version.len() > MAX_VERSION_BYTES {
        return Err(Refusal::invalid(
            "invalid_version",
            "version",
            format!(
                "the version is {} bytes long; at most {MAX_VERSION_BYTES} bytes are accepted",
                req.version.len()
            ),
        ));
    }
    let version = semver::Version::parse(&req.version).map_err(|e| {
        Refusal::invalid(
            "invalid_version",
            "version",
            format!("{} is not a semantic version: {e}", shown(&req.version)),
        )
    })?;
    let env = environment(p, "env", &req.env)?;
    let selector = labels("selector", &req.selector)?;
    if p.instances.contains_key(&instance_name) {
        return Err(Refusal::conflict(
            "instance_exists",
            "name",
            format!(
                "an instance named \"{instance_name}\" already exists; undeploy it or upgrade it"
            ),
        ));
    }
    // One code for one fact, as GET /api/v1/apps/APP and .../versions/VERSION answer.
    let versions = p.apps.get(app.as_str()).ok_or_else(|| {
        Refusal::not_found(
            "unknown_app",
            "app",
            format!("no app named \"{app}\" is published"),
        )
    })?;
    let published = p.app_version(app.as_str(), &version).ok_or_else(|| {
        let known: Vec<String> = versions.keys().map(ToString::to_string).collect();
        Refusal::not_found(
            "unknown_app_version",
            "version",
            format!(
                "{app}@{version} is not published (published: {})",
                known.join(", ")
            ),
        )
    })?;
    let manifest = &published.manifest;

    let overrides = overrides(manifest, &req.set)?;

    let Placement {
        nodes,
        unschedulable,
    } = place(
        p,
        &Wanted {
            env,
            selector: &selector,
            chosen: &req.nodes,
            manifest,
            app: &app,
            version: &version,
        },
    )?;
    super::secret::check_deploy(p, &env.name, manifest, &nodes)?;

    Ok(DeployPlan {
        spec: InstanceSpec {
            name: instance_name,
            env: env.name.clone(),
            app,
            version,
            manifest: manifest.clone(),
            nodes,
            unschedulable,
            selector,
            overrides,
            mode: InstanceMode::Production,
            // Named nodes are a fixed set; otherwise the selector (empty: every node of
            // the environment) is followed as labels and memberships change.
            targeting: if req.nodes.is_empty() {
                skerry_shared::event::Targeting::Selector
            } else {
                skerry_shared::event::Targeting::Named
            },
            lifecycle: Default::default(),
        },
    })
}
