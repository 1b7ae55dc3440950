//! Environments and node addresses as operators change them: `environment.renamed`,
//! `environment.updated` and `node.address-changed` folded into the read models.
//!
//! A rename moves everything that names the environment to the new name: the
//! environment itself, the nodes' memberships, the instances (their spec, the specs some
//! of their nodes run, the spec a rollback returns to, and the running rollout's specs),
//! the instance history ([`Projections::instance_envs`]), the enrollment tokens, the API
//! tokens limited to it and the secrets limited to it. The old name is free afterwards.

use skerry_shared::ids::{Name, NodeId};

use super::Projections;

impl Projections {
    /// Folds `environment.renamed`. A rename of an environment that is not there, or onto
    /// a name that is taken (the command refuses both; only a log written by hand has
    /// them), changes nothing.
    pub(super) fn environment_renamed(&mut self, name: &Name, to: &Name) {
        if name == to || self.envs.contains_key(to) {
            tracing::error!(%name, %to, "environment rename onto a name in use is not applied");
            return;
        }
        let Some(mut env) = self.envs.remove(name) else {
            tracing::error!(%name, %to, "rename of an unknown environment is not applied");
            return;
        };
        env.name = to.clone();
        self.envs.insert(to.clone(), env);
        for n in self.nodes.values_mut() {
            if n.envs.remove(name) {
                n.envs.insert(to.clone());
            }
        }
        for i in self.instances.values_mut() {
            i.rename_env(name, to);
        }
        for env in self.instance_envs.values_mut() {
            if env == name {
                *env = to.clone();
            }
        }
        for t in self.tokens.values_mut() {
            if &t.env == name {
                t.env = to.clone();
            }
        }
        self.api_tokens.env_renamed(name, to);
        self.secrets.env_renamed(name, to);
    }

    /// Folds `environment.updated`: the description and the entry addresses, both
    /// replaced.
    pub(super) fn environment_updated(
        &mut self,
        name: &Name,
        description: &Option<String>,
        entries: &[String],
    ) {
        if let Some(e) = self.envs.get_mut(name) {
            e.description.clone_from(description);
            e.entries = entries.to_vec();
        }
    }

    /// Folds `node.address-changed`.
    pub(super) fn node_address_changed(&mut self, node: NodeId, address: &str) {
        if let Some(n) = self.nodes.get_mut(&node) {
            address.clone_into(&mut n.address);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use skerry_shared::access::Role;
    use skerry_shared::clock::Timestamp;
    use skerry_shared::event::{
        Actor, Event, EventPayload, InstanceMode, InstanceSpec, NodeTarget, Targeting,
    };
    use skerry_shared::hash::Digest;
    use skerry_shared::ids::{Labels, Name, NodeId, TokenId};
    use skerry_shared::manifest::parse_manifest;
    use skerry_shared::rollout::{RolloutKind, RolloutPolicy, RolloutStart};
    use skerry_shared::secret::SealedAtRest;

    use crate::command::{Command, handle};
    use crate::projections::{Projections, RolloutState};

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn apply(p: &mut Projections, payload: EventPayload) {
        let seq = p.head.next_seq;
        let e = Event::seal(
            seq,
            Timestamp(seq as i64),
            Actor::Cloud,
            payload,
            vec![],
            p.head.last_hash,
        )
        .unwrap();
        p.apply(&e);
    }

    /// Environment `plant` with node `gw`, an enrollment token, an API token and a secret
    /// limited to it, and instance `web` deployed there, running 1.0.0 on `gw` but in the
    /// middle of a rollout to 2.0.0, with 0.9.0 to roll back to.
    fn plant() -> (Projections, NodeId, TokenId, TokenId) {
        let mut p = Projections::default();
        for env in ["plant", "lab"] {
            apply(
                &mut p,
                EventPayload::EnvironmentCreated {
                    name: n(env),
                    labels: Labels::new(),
                    entries: vec![],
                },
            );
        }
        let (node, enrollment, api) = (NodeId::random(), TokenId::random(), TokenId::random());
        apply(
            &mut p,
            EventPayload::EnrollmentTokenIssued {
                token: enrollment,
                env: n("plant"),
                secret_hash: Digest::ZERO,
                expires: Timestamp(i64::MAX),
            },
        );
        apply(
            &mut p,
            EventPayload::NodeEnrolled {
                node,
                name: n("gw"),
                env: n("plant"),
                address: "10.0.0.7".into(),
                profile: Box::new(skerry_shared::profile::builtin("raspberry-pi-4").unwrap()),
                token: TokenId::random(),
                certificate: Digest::ZERO,
            },
        );
        apply(
            &mut p,
            EventPayload::NodeJoined {
                node,
                env: n("lab"),
            },
        );
        apply(
            &mut p,
            EventPayload::ApiTokenCreated {
                token: api,
                role: Role::Operator,
                envs: vec![n("lab"), n("plant")],
                secret_hash: Digest::ZERO,
                expires: None,
                description: String::new(),
            },
        );
        apply(
            &mut p,
            EventPayload::SecretSet {
                name: n("db-password"),
                env: Some(n("plant")),
                version: 1,
                sealed: SealedAtRest {
                    nonce: Default::default(),
                    ciphertext: vec![1, 2, 3],
                },
            },
        );
        let mut spec = None;
        for version in ["0.9.0", "1.0.0", "2.0.0"] {
            let manifest = parse_manifest(&format!(
                "app: weather\nversion: {version}\ncomponents:\n  - name: web\n    image: web:1\n"
            ))
            .unwrap();
            apply(
                &mut p,
                EventPayload::AppVersionPublished {
                    digest: Digest::of(&postcard::to_stdvec(&manifest).unwrap()),
                    manifest: manifest.clone(),
                },
            );
            spec = Some(InstanceSpec {
                name: n("web"),
                env: n("plant"),
                app: manifest.app.clone(),
                version: manifest.version.clone(),
                manifest,
                nodes: vec![NodeTarget { node, weight: 1 }],
                unschedulable: vec![],
                selector: Labels::new(),
                overrides: vec![],
                mode: InstanceMode::Production,
                targeting: Targeting::Named,
                lifecycle: Default::default(),
            });
        }
        let to = spec.unwrap();
        let mut from = to.clone();
        from.version = "1.0.0".parse().unwrap();
        let mut before = to.clone();
        before.version = "0.9.0".parse().unwrap();
        apply(
            &mut p,
            EventPayload::InstanceDeployed {
                instance: Box::new(from.clone()),
            },
        );
        // What a rollout and the one before it leave, put in by hand.
        let i = p.instances.get_mut("web").unwrap();
        i.previous = Some(Arc::new(before));
        i.runs.insert(node, Arc::new(to.clone()));
        let state = RolloutState::new(
            RolloutStart {
                instance: n("web"),
                id: 1,
                kind: RolloutKind::Upgrade,
                to,
                order: vec![node],
                batches: vec![1],
                policy: RolloutPolicy::default(),
            },
            i,
            Timestamp(1),
        );
        i.rollout = Some(state);
        (p, node, enrollment, api)
    }

    #[test]
    fn a_rename_moves_everything_that_names_the_environment() {
        let (mut p, node, enrollment, api) = plant();
        apply(
            &mut p,
            EventPayload::EnvironmentRenamed {
                name: n("plant"),
                to: n("factory"),
            },
        );
        assert!(!p.envs.contains_key("plant"));
        assert_eq!(p.envs["factory"].name, n("factory"));
        assert_eq!(
            p.nodes[&node]
                .envs
                .iter()
                .map(Name::as_str)
                .collect::<Vec<_>>(),
            ["factory", "lab"]
        );
        let i = &p.instances["web"];
        assert_eq!(i.spec.env, n("factory"));
        assert_eq!(i.runs[&node].env, n("factory"));
        assert_eq!(i.previous.as_ref().unwrap().env, n("factory"));
        let r = i.rollout.as_ref().unwrap();
        assert_eq!(
            (r.from.env.as_str(), r.start.to.env.as_str()),
            ("factory", "factory")
        );
        assert_eq!(p.instance_envs["web"], n("factory"));
        assert_eq!(p.tokens[&enrollment].env, n("factory"));
        assert_eq!(
            p.api_tokens.get(&api).unwrap().envs,
            [n("lab"), n("factory")]
        );
        assert_eq!(
            p.secrets.get("db-password").unwrap().env,
            Some(n("factory"))
        );
        // The old name is free.
        let create = Command::CreateEnvironment {
            name: "plant".into(),
            labels: Default::default(),
            entries: vec![],
        };
        assert_eq!(handle(&p, &create, Timestamp(0)).unwrap().len(), 1);
    }

    #[test]
    fn a_rename_onto_a_taken_name_or_of_an_unknown_one_changes_nothing() {
        let (mut p, node, ..) = plant();
        for (name, to) in [("plant", "lab"), ("nowhere", "factory")] {
            apply(
                &mut p,
                EventPayload::EnvironmentRenamed {
                    name: n(name),
                    to: n(to),
                },
            );
        }
        assert!(p.envs.contains_key("plant") && !p.envs.contains_key("factory"));
        assert!(p.nodes[&node].envs.contains("plant"));
        assert_eq!(p.instances["web"].spec.env, n("plant"));
    }

    #[test]
    fn an_update_replaces_description_and_entries_and_an_address_change_the_address() {
        let (mut p, node, ..) = plant();
        apply(
            &mut p,
            EventPayload::EnvironmentUpdated {
                name: n("plant"),
                description: Some("line 3".into()),
                entries: vec!["10.0.0.1:80".into()],
            },
        );
        assert_eq!(p.envs["plant"].description.as_deref(), Some("line 3"));
        assert_eq!(p.envs["plant"].entries, ["10.0.0.1:80"]);
        apply(
            &mut p,
            EventPayload::NodeAddressChanged {
                node,
                address: "gw-7.plant.example".into(),
            },
        );
        assert_eq!(p.nodes[&node].address, "gw-7.plant.example");
    }
}
