//! The embedded log's on-disk format is a promise: a log written by an earlier build must
//! open, verify and rebuild the same projections. `fixtures/events-v1.redb` was written by
//! the first release's format; regenerate it only for a deliberate format change, with
//! `SKERRY_UPDATE_FIXTURES=1 cargo test -p skerry-cloud --test log_compat`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use skerry_cloud::command::Command;
use skerry_cloud::engine::Engine;
use skerry_cloud::log::{EventLog, RedbLog};
use skerry_shared::event::Actor;
use skerry_shared::manifest::parse_manifest;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events-v1.redb")
}

const MANIFEST: &str =
    "app: hello\nversion: 1.0.0\ncomponents:\n  - name: web\n    image: hello:1\n";

async fn write_fixture(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    let log = Arc::new(RedbLog::open(path, 1 << 20).unwrap());
    let engine = Engine::start(log).unwrap();
    let actor = Actor::Anonymous {
        peer: "127.0.0.1".into(),
    };
    engine
        .submit(Actor::Cloud, Command::Bootstrap)
        .await
        .unwrap();
    let labels = BTreeMap::from([("site".to_owned(), "berlin".to_owned())]);
    let create = Command::CreateEnvironment {
        name: "plant-a".into(),
        labels,
        entries: vec!["10.0.0.5:443".into()],
    };
    engine.submit(actor.clone(), create).await.unwrap();
    let manifest = Box::new(parse_manifest(MANIFEST).unwrap());
    engine
        .submit(actor, Command::PublishApp { manifest })
        .await
        .unwrap();
    let e = engine.clone();
    tokio::task::spawn_blocking(move || e.close())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_log_from_the_first_format_still_opens_and_verifies() {
    if std::env::var_os("SKERRY_UPDATE_FIXTURES").is_some() {
        write_fixture(&fixture()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("events.redb");
    std::fs::copy(fixture(), &copy).unwrap();
    let log = Arc::new(RedbLog::open(&copy, 1 << 20).unwrap());
    assert_eq!(log.last_seq().unwrap(), 3);
    let engine = Engine::start(log).unwrap();
    let p = engine.read();
    assert!(p.envs.contains_key("local"));
    assert_eq!(p.envs["plant-a"].labels["site"], "berlin");
    let v = semver::Version::new(1, 0, 0);
    assert!(p.app_version("hello", &v).is_some());
}
