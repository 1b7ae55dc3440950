//! The local node: `skerry serve` runs an agent in-process, in the environment `local`,
//! unless `--no-local-node` is given.
//!
//! It is an ordinary node: at its first start the cloud issues it a token and it enrolls
//! through the API like any other agent, then links over the MQTT endpoint. Its data is
//! `<data>/local-node`. This is the only place the cloud calls the agent crate. It takes
//! the engine and the CA it needs, not the composition root's types: `serve` calls it, and
//! it calls nothing of `serve`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use skerry_edge::config::AgentConfig;
use skerry_edge::identity::Identity;
use skerry_shared::clock::Timestamp;
use skerry_shared::event::Actor;

use crate::command::Command;
use crate::engine::Engine;
use crate::pki::Pki;

/// How long the local node's own enrollment token lives.
const TOKEN_TTL_MS: i64 = 10 * 60 * 1000;

/// Runs the local node until `shutdown`, with its data in `data`, enrolling (the first time)
/// through the API at `api` with a token that `pki` issues and `engine` records. Problems
/// are logged: the cloud serves on without its local node.
pub async fn run(
    data: PathBuf,
    api: String,
    engine: Engine,
    pki: Arc<Pki>,
    shutdown: impl Future<Output = ()>,
) {
    let enrolled = matches!(Identity::load(&data), Ok(Some(_)));
    let (cloud_url, token) = if enrolled {
        (None, None)
    } else {
        let token = pki.new_token();
        let issue = Command::IssueEnrollmentToken {
            env: "local".into(),
            id: token.id,
            secret_hash: token.secret_hash(),
            expires: Timestamp::now().plus_millis(TOKEN_TTL_MS),
        };
        if let Err(e) = engine.submit(Actor::Cloud, issue).await {
            tracing::error!(error = %e, "cannot issue the local node's token; running without a local node");
            return;
        }
        (Some(api), Some(token.to_string()))
    };
    let config = match AgentConfig::new(data, cloud_url, token, None, None, None) {
        // It logs with the cloud, to the cloud's output.
        Ok(c) => AgentConfig {
            runtime_log: None,
            ..c
        },
        Err(e) => {
            tracing::error!(error = %e, "the local node's configuration is refused");
            return;
        }
    };
    tracing::info!(name = %config.name, "starting the local node");
    if let Err(e) = skerry_edge::agent::run(config, shutdown).await {
        tracing::error!(error = %e, "the local node stopped");
    }
}
