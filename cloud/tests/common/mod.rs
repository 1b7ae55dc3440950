//! What the cloud's integration tests share: an engine on a real `RedbLog` in a directory
//! of the test's, with the environment `local`, and a node enrolled in it as an agent
//! enrolls (a token issued by the cloud, then `Command::Enroll` as the node).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use skerry_cloud::command::{Command, Enrollment};
use skerry_cloud::engine::Engine;
use skerry_cloud::log::RedbLog;
use skerry_shared::clock::Timestamp;
use skerry_shared::enroll::EnrollmentToken;
use skerry_shared::event::Actor;
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId, TokenId};
use skerry_shared::profile::FirmwareProfile;

/// The built-in profile `x86-64-host`.
pub fn x86() -> FirmwareProfile {
    skerry_shared::profile::builtin("x86-64-host").unwrap()
}

/// An engine on `dir/events.redb`, bootstrapped (the environment `local` exists).
pub async fn engine(dir: &Path) -> Engine {
    let log = RedbLog::open(&dir.join("events.redb"), 1 << 20).unwrap();
    let engine = Engine::start(Arc::new(log)).unwrap();
    engine
        .submit(Actor::Cloud, Command::Bootstrap)
        .await
        .unwrap();
    engine
}

/// Enrolls a new node `name` with `profile` in the environment `local`: a token issued by
/// the cloud, then the node's enrollment with it.
pub async fn enroll(engine: &Engine, name: &str, profile: FirmwareProfile) -> NodeId {
    let token = EnrollmentToken {
        id: TokenId::random(),
        secret: [7; 32],
        ca: Digest::ZERO,
    };
    engine
        .submit(
            Actor::Cloud,
            Command::IssueEnrollmentToken {
                env: "local".into(),
                id: token.id,
                secret_hash: token.secret_hash(),
                expires: Timestamp::now().plus_millis(3_600_000),
            },
        )
        .await
        .unwrap();
    let node = NodeId::random();
    engine
        .submit(
            Actor::Node(node),
            Command::Enroll(Box::new(Enrollment {
                token,
                node,
                name: Name::parse(name).unwrap(),
                profile,
                address: "192.0.2.10".into(),
                certificate: Digest::ZERO,
                secrets_key: None,
            })),
        )
        .await
        .unwrap();
    node
}

/// Records a new admin API token in `engine` and answers a reqwest client that sends it.
#[allow(dead_code)]
pub async fn admin_client(engine: &Engine) -> reqwest::Client {
    let token = skerry_cloud::api::tokens::random_token();
    engine
        .submit(
            Actor::Cloud,
            Command::CreateApiToken(Box::new(skerry_cloud::command::token::NewApiToken {
                id: token.id,
                secret_hash: token.secret_hash(),
                role: skerry_shared::access::Role::Admin,
                envs: Vec::new(),
                expires: None,
                description: "test".into(),
                within: None,
            })),
        )
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
