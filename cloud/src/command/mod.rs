//! Command handlers.
//!
//! A handler checks a [`Command`] against the [`Projections`] and returns either a
//! [`Refusal`] (a field and a reason) or the events the command causes, each with the
//! nodes it concerns. Handlers do no I/O: the engine seals and appends what they return.
//!
//! # Layout
//! - [`intent`]: what callers ask for, [`Command`] and the intent types it carries
//!   ([`Enrollment`], [`DeployIntent`]); the API converts its request bodies into them.
//! - [`outcome`]: what a handler returns, [`Pending`] events or a [`Refusal`].
//! - `checks`: the checks handlers share (names, labels, an environment or a node by name).
//! - `env`, `node`, `app`: the handlers of environments and tokens, nodes, apps and
//!   undeploy.
//! - `deploy`: a deploy checked into an [`InstanceSpec`](skerry_shared::event::InstanceSpec)
//!   ([`plan_deploy`]), and the per-node plan of a dry run.
//! - [`token`]: API tokens, created ([`token::NewApiToken`]) and revoked.
//! - [`secret`]: secrets set ([`secret::NewSecret`]), delivered to nodes, deleted, and
//!   what a deploy needs of them.
//! - [`rollout`]: `upgrade`, `rollback` and `restart` into a rollout, its steps (from the
//!   rollout controller) and the operator's pause, resume and abort.
//! - `lifecycle`: `stop` and `start` of an instance, on every node or on some.
//! - `remove`: node removal (`node remove`), the refusal of a removed node's enrollment,
//!   and certificates renewed over the link.
//! - `overrides`: `--set COMPONENT.VAR=VALUE` checked against a manifest, and merged for an
//!   upgrade.
//! - [`placement`]: which nodes an instance goes on (named nodes, the selector, weights),
//!   using [`fit`]: whether a node can take it.
//! - [`preview`]: what a deploy or an upgrade would do on one node (room, shortfalls, the
//!   replicas created, replaced or removed), for dry runs.
//! - [`selection`]: an instance whose nodes follow its selector re-placed against the
//!   current nodes and labels (the selectors controller's command).
//!
//! Imports run one way: this file uses its children; the handlers use `intent`, `outcome`,
//! `checks` and `placement`, never this file, and nothing here uses the API or the CLI.

mod app;
mod checks;
mod deploy;
mod env;
pub mod fit;
pub mod intent;
mod lifecycle;
mod node;
pub mod outcome;
mod overrides;
pub mod placement;
pub mod preview;
mod remove;
pub mod rollout;
pub mod secret;
pub mod selection;
pub mod token;

use skerry_shared::clock::Timestamp;

use crate::projections::Projections;

pub use deploy::{DeployPlan, NodePlan, plan_deploy};
pub use intent::{Command, DeployIntent, Enrollment, LifecycleIntent, NodeChoice};
pub use outcome::{Pending, Refusal, RefusalKind};

/// Checks `command` at time `now`: the events it causes, or why it is refused. An empty
/// list means the command changes nothing (a repeated publish of the same content).
pub fn handle(p: &Projections, command: &Command, now: Timestamp) -> Result<Vec<Pending>, Refusal> {
    match command {
        Command::Bootstrap => Ok(env::bootstrap(p)),
        Command::CreateEnvironment {
            name,
            labels,
            entries,
        } => env::create(p, name, labels, entries),
        Command::DeleteEnvironment { name } => env::delete(p, name),
        Command::RenameEnvironment { name, to } => env::rename(p, name, to),
        Command::UpdateEnvironment {
            name,
            description,
            entries,
        } => env::update(p, name, description.as_deref(), entries.as_deref()),
        Command::SetNodeAddress { node, address } => node::set_address(p, node, address),
        Command::IssueEnrollmentToken {
            env,
            id,
            secret_hash,
            expires,
        } => env::issue_token(p, env, *id, *secret_hash, *expires, now),
        Command::Enroll(e) => {
            remove::check_not_removed(p, e.node)?;
            let mut out = node::enroll(p, e, now)?;
            if let Some(key) = e.secrets_key {
                out.extend(secret::register_key(p, e.node, key)?);
            }
            Ok(out)
        }
        Command::RenameNode { node, name } => node::rename(p, node, name),
        Command::LabelNode { node, set, remove } => node::label(p, node, set, remove),
        Command::JoinEnvironment { node, env } => node::join(p, node, env),
        Command::LeaveEnvironment { node, env } => node::leave(p, node, env),
        Command::PublishApp { manifest } => app::publish(p, manifest),
        Command::Deploy(intent) => {
            let plan = plan_deploy(p, intent)?;
            Ok(vec![plan.into_pending()])
        }
        Command::Undeploy { name, purge } => app::undeploy(p, name, *purge),
        Command::SetNodeStatus { node, status } => node::set_status(p, *node, *status),
        Command::CreateApiToken(t) => token::create(p, t, now),
        Command::RevokeApiToken { id, within } => token::revoke(p, id, within.as_deref()),
        Command::SetSecret(s) => secret::set(p, s),
        Command::DeliverSecret {
            name,
            version,
            node,
            sealed,
        } => secret::deliver(p, name, *version, *node, sealed),
        Command::DeleteSecret { name } => secret::delete(p, name),
        Command::RemoveNode { node } => remove::remove(p, node),
        Command::RenewNodeCertificate {
            node,
            certificate,
            expires,
        } => remove::renewed(p, *node, *certificate, *expires),
        Command::RegisterNodeSecretsKey { node, key } => {
            secret::register_key_over_link(p, *node, *key)
        }
        Command::StartRollout(intent) => {
            let plan = rollout::plan(p, intent)?;
            Ok(vec![Pending::cloud_only(
                skerry_shared::event::EventPayload::RolloutStarted {
                    rollout: Box::new(plan.start),
                },
            )])
        }
        Command::StopOrStart(intent) => lifecycle::stop_or_start(p, intent),
        Command::ControlRollout { instance, action } => rollout::control(p, instance, *action),
        Command::AdvanceRollout {
            instance,
            rollout: id,
            step,
        } => rollout::advance(p, instance, *id, step),
        Command::FollowSelector { instance, joined } => selection::follow(p, instance, joined),
    }
}
