//! A log changed outside Skerry is caught: `walk` (behind `events verify`) reports the
//! first bad event, and the engine refuses to start on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};
use skerry_cloud::command::Command;
use skerry_cloud::engine::{Engine, EngineError};
use skerry_cloud::log::{RedbLog, WalkError, walk};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, ChainError, Event};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

async fn write_log(path: &std::path::Path) {
    let engine = Engine::start(Arc::new(RedbLog::open(path, 1 << 20).unwrap())).unwrap();
    for name in ["a", "b", "c"] {
        let cmd = Command::CreateEnvironment {
            name: name.into(),
            labels: BTreeMap::new(),
            entries: Vec::new(),
        };
        engine.submit(Actor::Cloud, cmd).await.unwrap();
    }
    let e = engine.clone();
    tokio::task::spawn_blocking(move || e.close())
        .await
        .unwrap();
}

fn rewrite(path: &std::path::Path, seq: u64, change: impl FnOnce(&mut Event)) {
    let db = Database::create(path).unwrap();
    let mut event: Event = {
        let rx = db.begin_read().unwrap();
        let t = rx.open_table(EVENTS).unwrap();
        postcard::from_bytes(t.get(seq).unwrap().unwrap().value()).unwrap()
    };
    change(&mut event);
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(EVENTS).unwrap();
        let bytes = postcard::to_stdvec(&event).unwrap();
        t.insert(seq, bytes.as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

#[tokio::test]
async fn a_changed_event_is_reported_and_never_acted_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    write_log(&path).await;
    rewrite(&path, 2, |e| e.time = Timestamp(e.time.0 + 1));

    let log = RedbLog::open(&path, 1 << 20).unwrap();
    let (at, err) = walk(&log, |_| {}).unwrap_err();
    assert_eq!(at.events, 1, "event 1 checked out before the fault");
    assert!(
        matches!(err, WalkError::Chain(ChainError::Tampered { seq: 2 })),
        "{err}"
    );
    let refused = Engine::start(Arc::new(log)).unwrap_err();
    assert!(matches!(
        refused,
        EngineError::Chain(ChainError::Tampered { seq: 2 })
    ));
}

#[tokio::test]
async fn a_rehashed_event_still_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    write_log(&path).await;
    // Someone who recomputes the changed event's own hash still breaks its successor's link.
    rewrite(&path, 2, |e| {
        e.time = Timestamp(e.time.0 + 1);
        e.hash = e.compute_hash().unwrap();
    });
    let log = RedbLog::open(&path, 1 << 20).unwrap();
    let (_, err) = walk(&log, |_| {}).unwrap_err();
    assert!(
        matches!(err, WalkError::Chain(ChainError::Broken { seq: 3 })),
        "{err}"
    );
}
