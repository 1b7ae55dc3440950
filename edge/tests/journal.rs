//! The journal's rules, on both journals: a shared suite over `&dyn Journal` runs on a
//! `MemoryJournal` and on a `RedbJournal` in a temporary directory; then what only a file
//! can do: survive a reopen, detect damage (a truncated file, a flipped byte) at open
//! without acting on it, refuse an unknown format, and open again after a failed write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::FlakyDisk;
use skerry_edge::journal::inspect::{events_report, status_report};
use skerry_edge::journal::{
    Commit, Journal, JournalError, MemoChange, MemoChanges, MemoryJournal, Memos, NodePortKey,
    RedbJournal,
};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{EventPayload, InstanceSpec, NodeEvent, NodeTarget};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::parse_manifest;
use skerry_shared::planner::{FailedInit, ReplicaKey, spec_hash};
use skerry_shared::reducer::{NodeDesired, NodeSnapshot, fold};

const CACHE: usize = 1 << 20;

fn node() -> NodeId {
    "00000000-0000-0000-0000-00000000002a".parse().unwrap()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn labelled(node_seq: u64, value: &str) -> NodeEvent {
    NodeEvent {
        node_seq,
        seq: node_seq * 10,
        time: Timestamp(1_700_000_000_000 + node_seq as i64),
        payload: EventPayload::NodeLabelled {
            node: node(),
            set: [("k".to_owned(), value.to_owned())].into(),
            removed: vec![],
        },
    }
}

fn labelled_run(from: u64, to: u64) -> Vec<NodeEvent> {
    (from..=to).map(|i| labelled(i, &format!("v{i}"))).collect()
}

/// The batch that applies `events` on top of `prev`.
fn batch(prev: &NodeDesired, events: Vec<NodeEvent>) -> Commit {
    let mut d = prev.clone();
    for e in &events {
        fold(&mut d, e.node_seq, &e.payload);
    }
    Commit::events(events, Arc::new(d))
}

fn desired_of(j: &dyn Journal) -> NodeDesired {
    j.load()
        .unwrap()
        .desired
        .unwrap_or_else(|| NodeDesired::new(node()))
}

/// Commits `from..=to` on top of what the journal has.
fn commit_run(j: &dyn Journal, from: u64, to: u64) {
    let c = batch(&desired_of(j), labelled_run(from, to));
    j.commit(&c).unwrap();
}

fn replica(instance: &str, component: &str, r: u32) -> ReplicaKey {
    ReplicaKey::new(&name(instance), &name(component), r)
}

fn all_memo_changes() -> MemoChanges {
    let port = NodePortKey {
        replica: replica("weather", "web", 0),
        container_port: 8080,
    };
    vec![
        MemoChange::InitSucceeded {
            instance: name("weather"),
            component: name("migrate"),
            spec_hash: Digest::of(b"v1"),
        },
        MemoChange::InitSucceeded {
            instance: name("weather"),
            component: name("migrate"),
            spec_hash: Digest::of(b"v2"),
        },
        MemoChange::InitFailed {
            instance: name("other"),
            component: name("setup"),
            failure: FailedInit {
                spec_hash: Digest::of(b"x"),
                deployed_at: 7,
                code: 3,
            },
        },
        MemoChange::NodePort {
            port: port.clone(),
            host_port: 30001,
        },
        MemoChange::NodePort {
            port: NodePortKey {
                container_port: 9090,
                ..port.clone()
            },
            host_port: 30002,
        },
        MemoChange::Restarts {
            replica: replica("weather", "web", 0),
            count: 4,
        },
        MemoChange::Restarts {
            replica: replica("other", "db", 1),
            count: 1,
        },
        MemoChange::NodePortReleased {
            port: NodePortKey {
                container_port: 9090,
                ..port
            },
        },
    ]
    .into()
}

// ---- The shared suite -------------------------------------------------------------------

fn a_new_journal_is_empty(j: &dyn Journal) {
    let s = j.load().unwrap();
    assert_eq!(s.desired, None);
    assert_ne!(s.epoch, 0);
    assert_eq!(s.memos, Memos::default());
    assert!(s.recent.is_empty());
    assert_eq!(s.applied(), 0);
    assert_eq!(j.event_span().unwrap(), None);
    assert_eq!(j.event(1).unwrap(), None);
    assert!(j.events(0, 10).unwrap().is_empty());
}

fn commits_are_loaded_back(j: &dyn Journal) {
    commit_run(j, 1, 3);
    commit_run(j, 4, 5);
    let s = j.load().unwrap();
    let d = s.desired.unwrap();
    assert_eq!(d.applied, 5);
    assert_eq!(d.labels["k"], "v5");
    let expected: Vec<NodeEvent> = labelled_run(1, 5);
    assert_eq!(j.events(0, 100).unwrap(), expected);
    assert_eq!(j.events(2, 2).unwrap(), expected[2..4].to_vec());
    assert_eq!(j.events(5, 2).unwrap(), vec![]);
    assert_eq!(j.events(u64::MAX, 2).unwrap(), vec![]);
    assert_eq!(j.event(3).unwrap(), Some(labelled(3, "v3")));
    assert_eq!(j.event(6).unwrap(), None);
    let span = j.event_span().unwrap().unwrap();
    assert_eq!((span.first, span.last, span.count), (1, 5, 5));
    let digests: Vec<(u64, Digest)> = expected.iter().map(|e| (e.node_seq, e.digest())).collect();
    assert_eq!(s.recent.into_iter().collect::<Vec<_>>(), digests);
}

fn commits_that_do_not_continue_are_refused(j: &dyn Journal) {
    commit_run(j, 1, 3);
    let before = j.load().unwrap();
    let d = desired_of(j);
    let invalid = |c: &Commit| matches!(j.commit(c), Err(JournalError::InvalidCommit(_)));
    // A gap, a replay, an event out of order, a desired state that does not match.
    assert!(invalid(&batch(&d, labelled_run(5, 6))));
    assert!(invalid(&batch(&d, labelled_run(3, 4))));
    assert!(invalid(&batch(
        &d,
        vec![labelled(4, "a"), labelled(6, "b"), labelled(5, "c")]
    )));
    let mut wrong = batch(&d, labelled_run(4, 5));
    Arc::make_mut(&mut wrong.desired).applied = 9;
    assert!(invalid(&wrong));
    // A snapshot that is not newer.
    let old = NodeSnapshot {
        node_seq: 3,
        state: d.clone(),
    };
    assert!(invalid(&Commit::snapshot(old.clone())));
    assert!(matches!(
        j.replace_with_snapshot(&old),
        Err(JournalError::InvalidCommit(_))
    ));
    // Another node's snapshot.
    let mut other = NodeDesired::new(NodeId::random());
    other.applied = 10;
    let mut mixed = Commit::snapshot(NodeSnapshot {
        node_seq: 10,
        state: other,
    });
    mixed.desired = Arc::new(NodeDesired {
        applied: 10,
        ..d.clone()
    });
    assert!(invalid(&mixed));
    // Nothing changed.
    assert_eq!(j.load().unwrap(), before);
    assert_eq!(j.events(0, 100).unwrap(), labelled_run(1, 3));
    // An empty batch on top of the state is fine (memos only).
    let mut memos_only = Commit::events(vec![], Arc::new(d));
    memos_only.memos = all_memo_changes();
    j.commit(&memos_only).unwrap();
    assert_eq!(j.load().unwrap().applied(), 3);
    assert!(!j.load().unwrap().memos.restarts.is_empty());
}

/// Runs on a journal with a retention of 5 events.
fn old_events_are_pruned(j: &dyn Journal) {
    commit_run(j, 1, 3);
    commit_run(j, 4, 8);
    let span = j.event_span().unwrap().unwrap();
    assert_eq!((span.first, span.last, span.count), (4, 8, 5));
    assert_eq!(j.event(3).unwrap(), None);
    assert_eq!(j.events(0, 100).unwrap(), labelled_run(4, 8));
    let recent: Vec<u64> = j.load().unwrap().recent.into_keys().collect();
    assert_eq!(recent, vec![4, 5, 6, 7, 8]);
    // One batch larger than the retention keeps its newest events.
    commit_run(j, 9, 20);
    assert_eq!(j.events(0, 100).unwrap(), labelled_run(16, 20));
    assert_eq!(j.load().unwrap().applied(), 20);
}

fn a_snapshot_replaces_the_state_and_older_events(j: &dyn Journal) {
    commit_run(j, 1, 5);
    let mut state = NodeDesired::new(node());
    state.labels.insert("snap".into(), "yes".into());
    state.applied = 8;
    let snapshot = NodeSnapshot { node_seq: 8, state };
    // A snapshot with the events that follow it, in one batch.
    let mut after = snapshot.state.clone();
    let events = labelled_run(9, 10);
    for e in &events {
        fold(&mut after, e.node_seq, &e.payload);
    }
    let c = Commit {
        snapshot: Some(snapshot),
        events,
        desired: Arc::new(after.clone()),
        memos: MemoChanges::default(),
    };
    j.commit(&c).unwrap();
    assert_eq!(j.load().unwrap().desired, Some(after));
    assert_eq!(j.event(5).unwrap(), None);
    assert_eq!(j.events(0, 100).unwrap(), labelled_run(9, 10));
    let recent: Vec<u64> = j.load().unwrap().recent.into_keys().collect();
    assert_eq!(recent, vec![9, 10]);
    // A snapshot alone drops every event up to it.
    let mut state = NodeDesired::new(node());
    state.name = Some(name("gw-1"));
    let snapshot = NodeSnapshot {
        node_seq: 20,
        state,
    };
    j.replace_with_snapshot(&snapshot).unwrap();
    let d = j.load().unwrap().desired.unwrap();
    assert_eq!(d.applied, 20);
    assert_eq!(d.name, Some(name("gw-1")));
    assert!(d.labels.is_empty());
    assert_eq!(j.event_span().unwrap(), None);
    // And the journal continues from it.
    commit_run(j, 21, 21);
    assert_eq!(j.load().unwrap().applied(), 21);
}

fn memos_are_kept(j: &dyn Journal) {
    let changes = all_memo_changes();
    j.put_memos(&changes).unwrap();
    let mut expected = Memos::default();
    expected.apply_all(&changes);
    assert_eq!(j.load().unwrap().memos, expected);
    assert_eq!(expected.inits_succeeded.len(), 2);
    assert_eq!(expected.nodeports.len(), 1);
    assert_eq!(expected.host_ports(), [30001].into());

    // In a commit's transaction too, and in order.
    let mut c = batch(&desired_of(j), labelled_run(1, 1));
    let more: MemoChanges = vec![
        MemoChange::InitFailureCleared {
            instance: name("other"),
            component: name("setup"),
        },
        MemoChange::RestartsCleared {
            replica: replica("weather", "web", 0),
        },
        MemoChange::Restarts {
            replica: replica("weather", "web", 1),
            count: 2,
        },
        MemoChange::Restarts {
            replica: replica("weather", "web", 1),
            count: 3,
        },
    ]
    .into();
    c.memos = more.clone();
    j.commit(&c).unwrap();
    expected.apply_all(&more);
    let loaded = j.load().unwrap().memos;
    assert_eq!(loaded, expected);
    assert!(loaded.inits_failed.is_empty());
    assert_eq!(loaded.restarts[&replica("weather", "web", 1)], 3);

    // Forgetting an instance drops all of its memos and nothing else.
    let forget: MemoChanges = vec![MemoChange::InstanceForgotten {
        instance: name("weather"),
    }]
    .into();
    j.put_memos(&forget).unwrap();
    expected.apply_all(&forget);
    let loaded = j.load().unwrap().memos;
    assert_eq!(loaded, expected);
    assert!(loaded.inits_succeeded.is_empty());
    assert!(loaded.nodeports.is_empty());
    assert_eq!(
        loaded.restarts.keys().cloned().collect::<Vec<_>>(),
        vec![replica("other", "db", 1)]
    );
}

fn status_and_events_print(j: &dyn Journal) {
    let manifest = parse_manifest(
        "app: weather\nversion: 1.0.0\ncomponents:\n  - name: migrate\n    kind: init\n    \
         image: db:1\n  - name: web\n    image: web:1\n    replicas: 2\n    depends_on: [migrate]\n",
    )
    .unwrap();
    let spec = InstanceSpec {
        name: name("weather"),
        env: name("plant-a"),
        app: name("weather"),
        version: manifest.version.clone(),
        manifest,
        nodes: vec![NodeTarget {
            node: node(),
            weight: 1,
        }],
        unschedulable: vec![],
        selector: Default::default(),
        overrides: vec![],
        mode: Default::default(),
        targeting: Default::default(),
        lifecycle: Default::default(),
    };
    let migrate = spec.manifest.component("migrate").unwrap().clone();
    let deploy = NodeEvent {
        node_seq: 1,
        seq: 3,
        time: Timestamp(1_700_000_000_000),
        payload: EventPayload::InstanceDeployed {
            instance: Box::new(spec.clone()),
        },
    };
    j.commit(&batch(&desired_of(j), vec![deploy])).unwrap();
    let memos: MemoChanges = vec![
        MemoChange::InitSucceeded {
            instance: name("weather"),
            component: name("migrate"),
            spec_hash: spec_hash(&spec, &migrate),
        },
        MemoChange::Restarts {
            replica: replica("weather", "web", 1),
            count: 2,
        },
        MemoChange::Restarts {
            replica: replica("gone", "web", 0),
            count: 1,
        },
    ]
    .into();
    j.put_memos(&memos).unwrap();
    let status = status_report(j).unwrap();
    assert_eq!(status.last_applied, 1);
    assert_eq!(status.instances.len(), 1);
    let comps = &status.instances[0].components;
    assert_eq!(comps[0].init.as_deref(), Some("succeeded"));
    assert_eq!(comps[1].replicas, 2);
    assert_eq!(comps[1].restarts, vec![(1, 2)]);
    assert_eq!(status.other_memos, 1);
    let text = status.to_string();
    assert!(
        text.contains("instance weather = weather@1.0.0 in plant-a"),
        "{text}"
    );
    assert!(text.contains("init succeeded"), "{text}");
    let events = events_report(j, 0, 10).unwrap();
    assert_eq!(events.events.len(), 1);
    assert_eq!(events.events[0].kind, "instance.deployed");
    let text = events.to_string();
    assert!(text.contains("instance.deployed"), "{text}");
    assert!(serde_json::to_string(&status).is_ok());
}

type Case = fn(&dyn Journal);

const SUITE: &[(&str, Case)] = &[
    ("a_new_journal_is_empty", a_new_journal_is_empty),
    ("commits_are_loaded_back", commits_are_loaded_back),
    (
        "commits_that_do_not_continue_are_refused",
        commits_that_do_not_continue_are_refused,
    ),
    (
        "a_snapshot_replaces_the_state_and_older_events",
        a_snapshot_replaces_the_state_and_older_events,
    ),
    ("memos_are_kept", memos_are_kept),
    ("status_and_events_print", status_and_events_print),
];

#[test]
fn memory_journal_passes_the_suite() {
    for (case, run) in SUITE {
        eprintln!("memory: {case}");
        run(&MemoryJournal::new());
    }
    old_events_are_pruned(&MemoryJournal::new().with_retention(5));
}

#[test]
fn redb_journal_passes_the_suite() {
    for (case, run) in SUITE {
        eprintln!("redb: {case}");
        let dir = tempfile::tempdir().unwrap();
        run(&RedbJournal::open(&dir.path().join("journal.redb"), CACHE).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let j = RedbJournal::open(&dir.path().join("journal.redb"), CACHE)
        .unwrap()
        .with_retention(5);
    old_events_are_pruned(&j);
}

#[test]
fn memory_journal_writes_fail_without_a_trace() {
    let j = MemoryJournal::new();
    commit_run(&j, 1, 2);
    let before = j.load().unwrap();
    j.set_failing(true);
    let c = batch(&desired_of(&j), labelled_run(3, 4));
    assert!(matches!(j.commit(&c), Err(JournalError::DiskFull { .. })));
    assert!(j.put_memos(&all_memo_changes()).is_err());
    assert_eq!(j.load().unwrap(), before);
    j.set_failing(false);
    j.commit(&c).unwrap();
    assert_eq!(j.load().unwrap().applied(), 4);
}

// ---- Only a file ------------------------------------------------------------------------

#[test]
fn a_reopened_journal_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = RedbJournal::path_in(dir.path());
    let j = RedbJournal::open(&path, CACHE).unwrap();
    commit_run(&j, 1, 4);
    j.put_memos(&all_memo_changes()).unwrap();
    let before = j.load().unwrap();
    drop(j);
    let j = RedbJournal::open(&path, CACHE).unwrap();
    assert_eq!(j.load().unwrap(), before);
    assert_eq!(j.events(0, 100).unwrap(), labelled_run(1, 4));
    commit_run(&j, 5, 5);
    drop(j);
    let j = RedbJournal::open_existing(&path, CACHE).unwrap();
    let after = j.load().unwrap();
    assert_eq!(after.epoch, before.epoch);
    assert_eq!(after.applied(), 5);
}

#[test]
fn a_new_journal_has_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let a = RedbJournal::open(&dir.path().join("a.redb"), CACHE).unwrap();
    let b = RedbJournal::open(&dir.path().join("b.redb"), CACHE).unwrap();
    assert_ne!(a.load().unwrap().epoch, b.load().unwrap().epoch);
}

#[test]
fn open_existing_does_not_create_and_a_second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    let err = RedbJournal::open_existing(&path, CACHE).unwrap_err();
    assert!(matches!(err, JournalError::Missing { .. }), "{err}");
    assert!(!path.exists());
    let err = RedbJournal::open_read_only(&path, CACHE).unwrap_err();
    assert!(matches!(err, JournalError::Missing { .. }), "{err}");
    let _j = RedbJournal::open(&path, CACHE).unwrap();
    let err = RedbJournal::open_existing(&path, CACHE).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn status_reads_the_journal_while_the_agent_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = RedbJournal::path_in(dir.path());
    let agent = RedbJournal::open(&path, CACHE).unwrap();
    commit_run(&agent, 1, 3);
    let status = RedbJournal::open_read_only(&path, CACHE).unwrap();
    assert_eq!(status.load().unwrap(), agent.load().unwrap());
    commit_run(&agent, 4, 6);
    assert_eq!(
        status.load().unwrap().applied(),
        6,
        "it follows the agent's commits"
    );
    assert_eq!(status.events(0, 100).unwrap(), labelled_run(1, 6));
    assert_eq!(status_report(&status).unwrap().last_applied, 6);
    let c = batch(&desired_of(&status), labelled_run(7, 7));
    let err = status.commit(&c).unwrap_err();
    assert!(matches!(err, JournalError::ReadOnly { .. }), "{err}");
    assert!(matches!(
        status.put_memos(&all_memo_changes()),
        Err(JournalError::ReadOnly { .. })
    ));
    // The agent goes on.
    agent.commit(&c).unwrap();
}

#[test]
fn status_reads_a_journal_left_by_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    let agent = RedbJournal::open(&path, CACHE).unwrap();
    commit_run(&agent, 1, 3);
    // A copy taken while the agent has it open is what a crash leaves: not closed, and
    // no agent holding it.
    let crashed = dir.path().join("crashed.redb");
    std::fs::copy(&path, &crashed).unwrap();
    let status = RedbJournal::open_read_only(&crashed, CACHE).unwrap();
    assert_eq!(status.load().unwrap(), agent.load().unwrap());
    assert!(matches!(
        status.commit(&batch(&desired_of(&status), labelled_run(4, 4))),
        Err(JournalError::ReadOnly { .. })
    ));
}

/// Writes a journal big enough to span many pages, with a marker in each event.
fn write_big_journal(path: &Path) {
    let j = RedbJournal::open(path, CACHE).unwrap();
    for chunk in 0..10u64 {
        let events: Vec<NodeEvent> = (chunk * 40 + 1..=chunk * 40 + 40)
            .map(|i| labelled(i, &format!("MARKER-{i:05}-{}", "x".repeat(400))))
            .collect();
        j.commit(&batch(&desired_of(&j), events)).unwrap();
    }
    j.put_memos(&all_memo_changes()).unwrap();
}

fn open_is_corrupt(path: &Path) {
    match RedbJournal::open(path, CACHE) {
        Err(JournalError::Corrupt { reason, .. }) => eprintln!("corrupt: {reason}"),
        Err(other) => panic!("expected Corrupt, got {other:?}"),
        Ok(j) => panic!(
            "a damaged journal opened: {:?}",
            j.load().map(|s| s.applied())
        ),
    }
}

#[test]
fn a_truncated_journal_is_corrupt_at_open() {
    for keep in [0.75, 0.5, 0.2] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        write_big_journal(&path);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len((len as f64 * keep) as u64).unwrap();
        drop(f);
        open_is_corrupt(&path);
        // Still there, untouched: the next open says the same.
        open_is_corrupt(&path);
    }
}

#[test]
fn a_flipped_byte_is_corrupt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    write_big_journal(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte of every copy of one event's marker (redb copies pages on write, so
    // stale copies may exist; the live one is among them).
    let marker = b"MARKER-00200";
    let mut hits = 0;
    let mut i = 0;
    while i + marker.len() <= bytes.len() {
        if &bytes[i..i + marker.len()] == marker {
            bytes[i + 8] ^= 0x01;
            hits += 1;
            i += marker.len();
        } else {
            i += 1;
        }
    }
    assert!(hits >= 1);
    std::fs::write(&path, &bytes).unwrap();
    open_is_corrupt(&path);
}

#[test]
fn a_flipped_byte_anywhere_is_caught_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine.redb");
    write_big_journal(&pristine);
    let (state, events) = {
        let j = RedbJournal::open(&pristine, CACHE).unwrap();
        (j.load().unwrap(), j.events(0, 1000).unwrap())
    };
    let original = std::fs::read(&pristine).unwrap();
    let path = dir.path().join("journal.redb");
    let (mut caught, mut harmless) = (0, 0);
    // One flip per 4 KiB page, at several offsets within the page.
    for (n, pos) in (0..original.len()).step_by(4096).enumerate() {
        let pos = pos + [17, 700, 2048, 4000][n % 4];
        if pos >= original.len() {
            continue;
        }
        let mut bytes = original.clone();
        bytes[pos] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        match RedbJournal::open(&path, CACHE) {
            Err(JournalError::Corrupt { .. }) => caught += 1,
            Err(other) => panic!("byte {pos}: expected Corrupt, got {other:?}"),
            Ok(j) => {
                // Free space, or a stale copy of a page: the journal reads the same.
                match (j.load(), j.events(0, 1000)) {
                    (Ok(s), Ok(e)) => {
                        assert_eq!(s, state, "byte {pos}: the state changed unnoticed");
                        assert_eq!(e, events, "byte {pos}: the events changed unnoticed");
                        harmless += 1;
                    }
                    (Err(JournalError::Corrupt { .. }), _)
                    | (_, Err(JournalError::Corrupt { .. })) => caught += 1,
                    other => panic!("byte {pos}: {other:?}"),
                }
            }
        }
    }
    eprintln!("flipped bytes: {caught} caught, {harmless} in unused space");
    assert!(caught > 0);
}

#[test]
fn a_file_that_is_not_a_journal_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    let junk: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, junk).unwrap();
    open_is_corrupt(&path);
}

#[test]
fn an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    drop(RedbJournal::open(&path, CACHE).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            let mut t = tx.open_table(meta).unwrap();
            t.insert("format", 99).unwrap();
        }
        tx.commit().unwrap();
    }
    let err = RedbJournal::open(&path, CACHE).unwrap_err();
    assert_eq!(
        err,
        JournalError::UnknownFormat {
            journal: path.display().to_string(),
            found: 99,
            supported: 1,
        }
    );
    assert!(err.to_string().contains("format 99"), "{err}");
}

#[test]
fn after_a_full_disk_the_journal_opens_again_and_loses_nothing_committed() {
    let disk = FlakyDisk::default();
    let backend = disk.clone();
    let j = RedbJournal::open_with_backend("flaky", CACHE, move || Ok(backend.clone())).unwrap();
    commit_run(&j, 1, 3);
    let before = j.load().unwrap();

    disk.full.store(true, Ordering::SeqCst);
    let c = batch(&desired_of(&j), labelled_run(4, 6));
    let err = j.commit(&c).unwrap_err();
    assert!(matches!(err, JournalError::DiskFull { .. }), "{err}");
    assert!(!j.is_open(), "a failed write closes the database");
    // Still full: the reopen (which checks and commits) fails too, and is tried again.
    assert!(j.commit(&c).is_err());
    assert!(!j.is_open());

    disk.full.store(false, Ordering::SeqCst);
    assert_eq!(
        j.load().unwrap(),
        before,
        "nothing of the failed batch is stored"
    );
    assert!(j.is_open());
    j.commit(&c).unwrap();
    assert_eq!(j.load().unwrap().applied(), 6);
    assert_eq!(j.events(0, 100).unwrap(), labelled_run(1, 6));
    drop(j);

    // And the storage opens cleanly afterwards.
    let backend = disk.clone();
    let j = RedbJournal::open_with_backend("flaky", CACHE, move || Ok(backend.clone())).unwrap();
    assert_eq!(j.load().unwrap().applied(), 6);
    assert_eq!(j.load().unwrap().epoch, before.epoch);
}

#[test]
fn a_damaged_journal_is_set_aside_and_a_new_one_started() {
    for damage in ["truncated", "flipped"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        write_big_journal(&path);
        let old_epoch = RedbJournal::open(&path, CACHE)
            .unwrap()
            .load()
            .unwrap()
            .epoch;
        let mut bytes = std::fs::read(&path).unwrap();
        match damage {
            "truncated" => bytes.truncate(bytes.len() / 2),
            _ => {
                // Every copy of one event's marker, as in a_flipped_byte_is_corrupt_at_open.
                let mut hits = 0;
                for i in 0..bytes.len().saturating_sub(12) {
                    if &bytes[i..i + 12] == b"MARKER-00200" {
                        bytes[i + 8] ^= 0x01;
                        hits += 1;
                    }
                }
                assert!(hits >= 1);
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let (j, state, aside) = RedbJournal::open_or_set_aside(&path, CACHE).unwrap();
        let aside = aside.unwrap_or_else(|| panic!("{damage}: not set aside"));
        // The damaged file is kept as it was, beside the new journal.
        assert_eq!(std::fs::read(&aside).unwrap(), bytes, "{damage}");
        assert!(
            aside
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("journal.redb.damaged-"),
            "{}",
            aside.display()
        );
        // Nothing of it is used: the new journal is empty, under a new epoch.
        assert_eq!(state.desired, None, "{damage}");
        assert_eq!(state.applied(), 0);
        assert_ne!(state.epoch, old_epoch, "{damage}");
        assert_eq!(j.event_span().unwrap(), None);
        assert_eq!(state.memos, Memos::default());
        commit_run(&j, 1, 3);
        drop(j);
        // The new journal is sound: opened again, nothing is set aside.
        let (j, state, again) = RedbJournal::open_or_set_aside(&path, CACHE).unwrap();
        assert_eq!(again, None);
        assert_eq!(state.applied(), 3);
        drop(j);
    }
}

#[test]
fn a_sound_journal_is_opened_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    write_big_journal(&path);
    let before = RedbJournal::open(&path, CACHE).unwrap().load().unwrap();
    let (_j, state, aside) = RedbJournal::open_or_set_aside(&path, CACHE).unwrap();
    assert_eq!(aside, None);
    assert_eq!(state, before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
