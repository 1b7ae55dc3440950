//! The outbox, on both journals: a shared suite over `&dyn Journal` runs on a
//! `MemoryJournal` and on a `RedbJournal` (coalescing, the log quota, reads by lane within
//! limits, acks, cursors, the status report); then what only a file can do (survive a
//! reopen, read a journal written before the outbox existed), failed pushes that store
//! nothing, and a property test that runs random pushes, acks and reopens on both journals
//! and compares everything they read back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use common::FlakyDisk;
use proptest::prelude::*;
use skerry_edge::journal::inspect::status_report;
use skerry_edge::journal::{
    Journal, JournalError, MemoryJournal, OutboxPush, OutboxStats, Pushed, RedbJournal,
};
use skerry_shared::clock::Timestamp;
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;
use skerry_shared::outbox::{
    Lane, LogBatch, LogChunk, LogSource, LogStream, LogsDropped, OutboxBody, OutboxEntry,
};
use skerry_shared::planner::ReplicaKey;
use skerry_shared::report::{ReplicaReport, ReplicaState, ReplicaStatus};

const CACHE: usize = 1 << 20;
const NO_QUOTA: u64 = u64::MAX;

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn key(instance: &str, replica: u32) -> ReplicaKey {
    ReplicaKey::new(&name(instance), &name("web"), replica)
}

fn status(instance: &str, replica: u32, restarts: u32) -> ReplicaStatus {
    ReplicaReport {
        instance: name(instance),
        component: name("web"),
        replica,
        state: ReplicaState::Running,
        restarts,
        reason: None,
        spec_hash: Digest::of(b"spec"),
        ports: vec![],
    }
    .into()
}

/// A replica's state; `restarts` tells one report from the next.
fn replica(instance: &str, r: u32, restarts: u32) -> OutboxBody {
    OutboxBody::Replica {
        key: key(instance, r),
        status: Some(Box::new(status(instance, r, restarts))),
    }
}

fn gone(instance: &str, r: u32) -> OutboxBody {
    OutboxBody::Replica {
        key: key(instance, r),
        status: None,
    }
}

fn complete(instances: &[&str]) -> OutboxBody {
    OutboxBody::Complete(instances.iter().map(|i| status(i, 0, 0)).collect())
}

fn source(file: &str) -> LogSource {
    LogSource {
        instance: name("w1"),
        component: name("web"),
        replica: 0,
        stream: LogStream::File(file.into()),
    }
}

fn chunk(file: &str, first: u64, n: usize) -> LogChunk {
    LogChunk {
        source: source(file),
        first_line: first,
        time: Timestamp(1_700_000_000_000),
        lines: (0..n)
            .map(|i| {
                format!(
                    "{file} line {} seed {}",
                    first + i as u64,
                    (first * 7919) % 997
                )
            })
            .collect(),
        pieces: Default::default(),
    }
}

fn batch(file: &str, first: u64, n: usize) -> LogBatch {
    LogBatch::pack(&[chunk(file, first, n)]).unwrap()
}

fn logs(file: &str, first: u64, n: usize) -> OutboxBody {
    OutboxBody::Logs(batch(file, first, n))
}

/// The encoded size of a body: what the quota and the read limit count.
fn size(body: &OutboxBody) -> u64 {
    postcard::to_stdvec(body).unwrap().len() as u64
}

fn push(j: &dyn Journal, bodies: Vec<OutboxBody>) -> Pushed {
    push_quota(j, bodies, NO_QUOTA)
}

fn push_quota(j: &dyn Journal, bodies: Vec<OutboxBody>, quota: u64) -> Pushed {
    j.outbox_push(
        &OutboxPush {
            bodies,
            cursors: vec![],
        },
        quota,
    )
    .unwrap()
}

fn all(j: &dyn Journal, lane: Lane) -> Vec<OutboxEntry> {
    j.outbox_read(lane, 0, usize::MAX, usize::MAX).unwrap()
}

fn seqs(entries: &[OutboxEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

fn entry(seq: u64, body: OutboxBody) -> OutboxEntry {
    OutboxEntry { seq, body }
}

/// Everything a journal's outbox reads back.
fn snapshot(
    j: &dyn Journal,
) -> (
    Vec<OutboxEntry>,
    Vec<OutboxEntry>,
    OutboxStats,
    BTreeMap<String, Vec<u8>>,
) {
    (
        all(j, Lane::Control),
        all(j, Lane::Logs),
        j.outbox_stats().unwrap(),
        j.log_cursors().unwrap(),
    )
}

/// The rules the outbox keeps whatever happens.
fn check_invariants(j: &dyn Journal) {
    let control = all(j, Lane::Control);
    let logs = all(j, Lane::Logs);
    let stats = j.outbox_stats().unwrap();
    assert_eq!(stats.control_entries, control.len() as u64);
    assert_eq!(stats.log_entries, logs.len() as u64);
    assert_eq!(
        stats.log_bytes,
        logs.iter().map(|e| size(&e.body)).sum::<u64>()
    );
    assert!(logs.iter().all(|e| e.body.lane() == Lane::Logs));
    assert!(control.iter().all(|e| e.body.lane() == Lane::Control));
    for lane in [&control, &logs] {
        assert!(lane.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(lane.iter().all(|e| e.seq >= 1 && e.seq < stats.next_seq));
    }
    let dropped = control
        .iter()
        .filter(|e| matches!(e.body, OutboxBody::LogsDropped(_)))
        .count();
    assert!(dropped <= 1, "{dropped} drop counts queued");
    let completes: Vec<u64> = control
        .iter()
        .filter(|e| matches!(e.body, OutboxBody::Complete(_)))
        .map(|e| e.seq)
        .collect();
    assert!(completes.len() <= 1, "{completes:?}");
    let mut keys = std::collections::BTreeSet::new();
    for e in &control {
        if let OutboxBody::Replica { key, .. } = &e.body {
            assert!(keys.insert(key.clone()), "two entries for {key:?}");
            assert!(
                completes.iter().all(|c| *c < e.seq),
                "a Replica older than a Complete"
            );
        }
    }
}

// ---- The shared suite -------------------------------------------------------------------

fn a_new_outbox_is_empty(j: &dyn Journal) {
    let stats = j.outbox_stats().unwrap();
    assert_eq!(
        stats,
        OutboxStats {
            next_seq: 1,
            ..OutboxStats::default()
        }
    );
    assert!(all(j, Lane::Control).is_empty());
    assert!(all(j, Lane::Logs).is_empty());
    assert!(j.log_cursors().unwrap().is_empty());
    j.outbox_ack(&[1, 2, 3]).unwrap();
    assert_eq!(j.outbox_stats().unwrap(), stats);
    // A push of nothing changes nothing either.
    assert_eq!(push(j, vec![]), Pushed::default());
    assert_eq!(j.outbox_stats().unwrap(), stats);
}

fn status_coalesces_per_replica(j: &dyn Journal) {
    assert_eq!(push(j, vec![replica("a", 0, 1)]).seqs, vec![1]);
    assert_eq!(
        push(j, vec![replica("b", 0, 1), replica("a", 1, 1)]).seqs,
        vec![2, 3]
    );
    // A newer state of a replica supersedes the queued one and gets a new seq.
    assert_eq!(push(j, vec![replica("a", 0, 2)]).seqs, vec![4]);
    assert_eq!(
        all(j, Lane::Control),
        vec![
            entry(2, replica("b", 0, 1)),
            entry(3, replica("a", 1, 1)),
            entry(4, replica("a", 0, 2)),
        ]
    );
    // Within one push too, and a replica that is gone coalesces like the others.
    assert_eq!(
        push(
            j,
            vec![replica("b", 0, 2), gone("b", 0), replica("c", 0, 1)]
        )
        .seqs,
        vec![5, 6, 7]
    );
    assert_eq!(
        all(j, Lane::Control),
        vec![
            entry(3, replica("a", 1, 1)),
            entry(4, replica("a", 0, 2)),
            entry(6, gone("b", 0)),
            entry(7, replica("c", 0, 1)),
        ]
    );
    // Once acknowledged, the next state of that replica is queued without deleting any.
    j.outbox_ack(&[4]).unwrap();
    assert_eq!(push(j, vec![replica("a", 0, 3)]).seqs, vec![8]);
    assert_eq!(seqs(&all(j, Lane::Control)), vec![3, 6, 7, 8]);
    // Logs are another lane: untouched.
    push(j, vec![logs("a.log", 1, 3)]);
    push(j, vec![replica("a", 0, 4)]);
    assert_eq!(seqs(&all(j, Lane::Control)), vec![3, 6, 7, 10]);
    assert_eq!(seqs(&all(j, Lane::Logs)), vec![9]);
    assert_eq!(j.outbox_stats().unwrap().next_seq, 11);
    check_invariants(j);
}

fn complete_supersedes_status(j: &dyn Journal) {
    push(j, vec![replica("a", 0, 1), replica("b", 0, 1)]);
    push(j, vec![logs("a.log", 1, 5)]);
    assert_eq!(push(j, vec![complete(&["a", "b"])]).seqs, vec![4]);
    assert_eq!(all(j, Lane::Control), vec![entry(4, complete(&["a", "b"]))]);
    let drop_count = LogsDropped {
        spans: vec![],
        bytes: 10,
        batches: 1,
    };
    push(
        j,
        vec![
            replica("c", 0, 1),
            OutboxBody::LogsDropped(drop_count.clone()),
        ],
    );
    // A newer Complete supersedes the older one and every Replica; drop counts stay.
    assert_eq!(
        push(j, vec![replica("a", 0, 2), complete(&["c"])]).seqs,
        vec![7, 8]
    );
    assert_eq!(
        all(j, Lane::Control),
        vec![
            entry(6, OutboxBody::LogsDropped(drop_count)),
            entry(8, complete(&["c"])),
        ]
    );
    assert_eq!(seqs(&all(j, Lane::Logs)), vec![3]);
    // The replica index was emptied with them: a new state deletes nothing it should not.
    push(j, vec![replica("a", 0, 3)]);
    assert_eq!(seqs(&all(j, Lane::Control)), vec![6, 8, 9]);
    // An acknowledged Complete is gone; the next one finds nothing to supersede.
    j.outbox_ack(&[8]).unwrap();
    push(j, vec![complete(&[])]);
    assert_eq!(seqs(&all(j, Lane::Control)), vec![6, 10]);
    check_invariants(j);
}

fn drop_counts_merge_into_one(j: &dyn Journal) {
    let mut d1 = LogsDropped::default();
    d1.add_batch(&batch("a.log", 1, 10));
    let mut d2 = LogsDropped::default();
    d2.add_batch(&batch("a.log", 11, 5));
    d2.add_batch(&batch("b.log", 1, 2));
    assert_eq!(
        push(j, vec![OutboxBody::LogsDropped(d1.clone())]).seqs,
        vec![1]
    );
    push(j, vec![replica("a", 0, 1)]);
    assert_eq!(
        push(j, vec![OutboxBody::LogsDropped(d2.clone())]).seqs,
        vec![3]
    );
    let mut merged = d1.clone();
    merged.merge(d2.clone());
    assert_eq!(
        merged.spans.len(),
        2,
        "runs of a.log that touch are one span"
    );
    assert_eq!(
        all(j, Lane::Control),
        vec![
            entry(2, replica("a", 0, 1)),
            entry(3, OutboxBody::LogsDropped(merged)),
        ]
    );
    // Pushed drop counts are not the quota's: the lifetime totals do not move.
    assert_eq!(j.outbox_stats().unwrap().dropped_lines, 0);
    j.outbox_ack(&[3]).unwrap();
    assert_eq!(
        push(j, vec![OutboxBody::LogsDropped(d1.clone())]).seqs,
        vec![4]
    );
    assert_eq!(
        all(j, Lane::Control)[1],
        entry(4, OutboxBody::LogsDropped(d1))
    );
    check_invariants(j);
}

fn the_quota_drops_the_oldest_batches(j: &dyn Journal) {
    let b: Vec<OutboxBody> = (0..6u64).map(|i| logs("app.log", 1 + i * 20, 20)).collect();
    let sizes: Vec<u64> = b.iter().map(size).collect();
    // Any three batches fit, no four do.
    let quota = sizes.windows(3).map(|w| w.iter().sum()).max().unwrap();
    assert!(sizes.windows(4).all(|w| w.iter().sum::<u64>() > quota));
    // Up to the quota exactly: nothing is dropped.
    for (i, body) in b[..3].iter().enumerate() {
        let pushed = push_quota(j, vec![body.clone()], quota);
        assert_eq!(pushed.seqs, vec![i as u64 + 1]);
        assert_eq!(pushed.dropped, LogsDropped::default());
    }
    assert_eq!(
        j.outbox_stats().unwrap().log_bytes,
        sizes[0] + sizes[1] + sizes[2]
    );
    // Over it: the oldest goes, counted in a drop count queued in the same push.
    let pushed = push_quota(j, vec![b[3].clone()], quota);
    assert_eq!(pushed.seqs, vec![4]);
    let OutboxBody::Logs(first) = &b[0] else {
        unreachable!()
    };
    let mut expected = LogsDropped::default();
    expected.add_batch(first);
    assert_eq!(pushed.dropped, expected);
    assert_eq!(pushed.dropped.lines(), 20);
    assert_eq!(
        all(j, Lane::Control),
        vec![entry(5, OutboxBody::LogsDropped(expected.clone()))]
    );
    assert_eq!(seqs(&all(j, Lane::Logs)), vec![2, 3, 4]);
    let stats = j.outbox_stats().unwrap();
    assert!(stats.log_bytes <= quota);
    assert_eq!(stats.log_bytes, sizes[1] + sizes[2] + sizes[3]);
    assert_eq!((stats.dropped_lines, stats.dropped_batches), (20, 1));
    // Again: the queued drop count takes the new drops and a new seq.
    let pushed = push_quota(j, vec![b[4].clone(), b[5].clone()], quota);
    assert_eq!(pushed.seqs, vec![6, 7]);
    assert_eq!(pushed.dropped.batches, 2);
    assert_eq!(pushed.dropped.lines(), 40);
    let control = all(j, Lane::Control);
    assert_eq!(seqs(&control), vec![8]);
    let OutboxBody::LogsDropped(queued) = &control[0].body else {
        panic!("{control:?}")
    };
    assert_eq!(queued.lines(), 60);
    assert_eq!(queued.batches, 3);
    assert_eq!(
        queued.spans.len(),
        1,
        "lines 1 to 60 of app.log in one span"
    );
    assert_eq!((queued.spans[0].first_line, queued.spans[0].lines), (1, 60));
    assert_eq!(seqs(&all(j, Lane::Logs)), vec![4, 6, 7]);
    // A batch over the quota by itself goes too, with everything before it.
    let big = logs("big.log", 1, 400);
    assert!(size(&big) > quota);
    let pushed = push_quota(j, vec![big], quota);
    assert_eq!(pushed.seqs, vec![9]);
    assert_eq!(pushed.dropped.batches, 4);
    assert_eq!(pushed.dropped.lines(), 60 + 400);
    assert!(all(j, Lane::Logs).is_empty());
    let stats = j.outbox_stats().unwrap();
    assert_eq!(stats.log_bytes, 0);
    assert_eq!((stats.dropped_lines, stats.dropped_batches), (520, 7));
    assert_eq!(seqs(&all(j, Lane::Control)), vec![10]);
    // The drop count is never dropped, and the lifetime totals stay when it is acked.
    j.outbox_ack(&[10]).unwrap();
    let stats = j.outbox_stats().unwrap();
    assert_eq!((stats.dropped_lines, stats.dropped_batches), (520, 7));
    assert_eq!(stats.control_entries, 0);
    check_invariants(j);
}

fn reads_go_by_lane_in_seq_order_within_limits(j: &dyn Journal) {
    let bodies = vec![
        logs("a.log", 1, 10),
        replica("a", 0, 1),
        logs("a.log", 11, 30),
        replica("b", 0, 1),
        logs("a.log", 41, 5),
        replica("c", 0, 1),
    ];
    assert_eq!(push(j, bodies.clone()).seqs, vec![1, 2, 3, 4, 5, 6]);
    let control = all(j, Lane::Control);
    assert_eq!(seqs(&control), vec![2, 4, 6]);
    assert_eq!(control[1].body, bodies[3]);
    let logs_lane = all(j, Lane::Logs);
    assert_eq!(seqs(&logs_lane), vec![1, 3, 5]);
    assert_eq!(logs_lane[1].body, bodies[2]);
    // After a seq.
    assert_eq!(
        seqs(&j.outbox_read(Lane::Logs, 1, 10, usize::MAX).unwrap()),
        vec![3, 5]
    );
    assert_eq!(
        seqs(&j.outbox_read(Lane::Logs, 3, 10, usize::MAX).unwrap()),
        vec![5]
    );
    assert!(
        j.outbox_read(Lane::Logs, 5, 10, usize::MAX)
            .unwrap()
            .is_empty()
    );
    assert!(
        j.outbox_read(Lane::Logs, u64::MAX, 10, usize::MAX)
            .unwrap()
            .is_empty()
    );
    // At most so many entries.
    assert_eq!(
        seqs(&j.outbox_read(Lane::Control, 0, 2, usize::MAX).unwrap()),
        vec![2, 4]
    );
    assert!(
        j.outbox_read(Lane::Control, 0, 0, usize::MAX)
            .unwrap()
            .is_empty()
    );
    // At most so many bytes, but one entry at least.
    let (s1, s3, s5) = (size(&bodies[0]), size(&bodies[2]), size(&bodies[4]));
    let read = |max_bytes: u64| {
        seqs(
            &j.outbox_read(Lane::Logs, 0, 10, usize::try_from(max_bytes).unwrap())
                .unwrap(),
        )
    };
    assert_eq!(read(0), vec![1]);
    assert_eq!(read(s1), vec![1]);
    assert_eq!(read(s1 + s3 - 1), vec![1]);
    assert_eq!(read(s1 + s3), vec![1, 3]);
    assert_eq!(read(s1 + s3 + s5), vec![1, 3, 5]);
    assert_eq!(
        seqs(
            &j.outbox_read(Lane::Logs, 1, 10, usize::try_from(s3 + s5 - 1).unwrap())
                .unwrap()
        ),
        vec![3]
    );
    // Entries stay until acknowledged: reading twice reads the same.
    assert_eq!(all(j, Lane::Logs), logs_lane);
}

fn acks_delete_and_repeats_are_harmless(j: &dyn Journal) {
    let bodies = vec![
        logs("a.log", 1, 10),
        replica("a", 0, 1),
        logs("a.log", 11, 10),
        complete(&["a"]),
        logs("a.log", 21, 10),
    ];
    push(j, bodies.clone());
    // seq 2 is superseded by the Complete (4).
    assert_eq!(seqs(&all(j, Lane::Control)), vec![4]);
    j.outbox_ack(&[1, 4]).unwrap();
    assert!(all(j, Lane::Control).is_empty());
    assert_eq!(seqs(&all(j, Lane::Logs)), vec![3, 5]);
    let stats = j.outbox_stats().unwrap();
    assert_eq!(stats.log_bytes, size(&bodies[2]) + size(&bodies[4]));
    assert_eq!((stats.control_entries, stats.log_entries), (0, 2));
    // Repeated, superseded, unknown and future seqs, and none at all.
    j.outbox_ack(&[1, 4, 2, 99, u64::MAX]).unwrap();
    j.outbox_ack(&[]).unwrap();
    assert_eq!(j.outbox_stats().unwrap(), stats);
    j.outbox_ack(&[5, 3, 5]).unwrap();
    let stats = j.outbox_stats().unwrap();
    assert_eq!(
        (stats.log_entries, stats.log_bytes, stats.next_seq),
        (0, 0, 6)
    );
    // Seqs are not reused once their entries are gone.
    assert_eq!(push(j, vec![replica("a", 0, 2)]).seqs, vec![6]);
    check_invariants(j);
}

fn cursors_are_stored_with_the_push(j: &dyn Journal) {
    let pushed = j
        .outbox_push(
            &OutboxPush {
                bodies: vec![logs("a.log", 1, 3)],
                cursors: vec![
                    ("a.log".into(), Some(b"offset 120".to_vec())),
                    ("b.log".into(), Some(b"offset 7".to_vec())),
                ],
            },
            NO_QUOTA,
        )
        .unwrap();
    assert_eq!(pushed.seqs, vec![1]);
    assert_eq!(
        j.log_cursors().unwrap(),
        BTreeMap::from([
            ("a.log".to_owned(), b"offset 120".to_vec()),
            ("b.log".to_owned(), b"offset 7".to_vec()),
        ])
    );
    // Cursors alone, and a deletion; later ones in a push win.
    j.outbox_push(
        &OutboxPush {
            bodies: vec![],
            cursors: vec![
                ("a.log".into(), None),
                ("b.log".into(), Some(b"offset 8".to_vec())),
                ("b.log".into(), Some(b"offset 9".to_vec())),
                ("missing.log".into(), None),
            ],
        },
        NO_QUOTA,
    )
    .unwrap();
    assert_eq!(
        j.log_cursors().unwrap(),
        BTreeMap::from([("b.log".to_owned(), b"offset 9".to_vec())])
    );
    assert_eq!(j.outbox_stats().unwrap().next_seq, 2);
    // Acks leave the cursors alone.
    j.outbox_ack(&[1]).unwrap();
    assert_eq!(j.log_cursors().unwrap().len(), 1);
}

fn status_shows_the_outbox(j: &dyn Journal) {
    let (b1, b2) = (logs("a.log", 1, 40), logs("a.log", 41, 40));
    push(j, vec![replica("a", 0, 1), b1.clone()]);
    push_quota(j, vec![b2.clone()], size(&b1).max(size(&b2)));
    let status = status_report(j).unwrap();
    assert_eq!(status.outbox, j.outbox_stats().unwrap());
    assert_eq!(
        (
            status.outbox.control_entries,
            status.outbox.log_entries,
            status.outbox.dropped_lines,
            status.outbox.dropped_batches
        ),
        (2, 1, 40, 1)
    );
    let text = status.to_string();
    assert!(
        text.contains("outbox:        control 2, logs 1 ("),
        "{text}"
    );
    assert!(text.contains("next seq 5"), "{text}");
    assert!(
        text.contains("logs dropped:  lines 40, batches 1 "),
        "{text}"
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["outbox"]["dropped_lines"], 40);
    assert_eq!(json["outbox"]["next_seq"], 5);
}

type Case = fn(&dyn Journal);

const SUITE: &[(&str, Case)] = &[
    ("a_new_outbox_is_empty", a_new_outbox_is_empty),
    ("status_coalesces_per_replica", status_coalesces_per_replica),
    ("complete_supersedes_status", complete_supersedes_status),
    ("drop_counts_merge_into_one", drop_counts_merge_into_one),
    (
        "the_quota_drops_the_oldest_batches",
        the_quota_drops_the_oldest_batches,
    ),
    (
        "reads_go_by_lane_in_seq_order_within_limits",
        reads_go_by_lane_in_seq_order_within_limits,
    ),
    (
        "acks_delete_and_repeats_are_harmless",
        acks_delete_and_repeats_are_harmless,
    ),
    (
        "cursors_are_stored_with_the_push",
        cursors_are_stored_with_the_push,
    ),
    ("status_shows_the_outbox", status_shows_the_outbox),
];

#[test]
fn memory_outbox_passes_the_suite() {
    for (case, run) in SUITE {
        eprintln!("memory: {case}");
        run(&MemoryJournal::new());
    }
}

#[test]
fn redb_outbox_passes_the_suite() {
    for (case, run) in SUITE {
        eprintln!("redb: {case}");
        let dir = tempfile::tempdir().unwrap();
        run(&RedbJournal::open(&dir.path().join("journal.redb"), CACHE).unwrap());
    }
}

// ---- Failures store nothing -------------------------------------------------------------

/// Fills the outbox with one of everything, and a cursor.
fn fill(j: &dyn Journal) {
    j.outbox_push(
        &OutboxPush {
            bodies: vec![
                replica("a", 0, 1),
                logs("a.log", 1, 20),
                OutboxBody::LogsDropped(LogsDropped {
                    spans: vec![],
                    bytes: 1,
                    batches: 1,
                }),
                logs("a.log", 21, 20),
            ],
            cursors: vec![("a.log".into(), Some(b"40".to_vec()))],
        },
        NO_QUOTA,
    )
    .unwrap();
}

/// A push that touches every rule: coalescing, a Complete, a merge, the quota, cursors.
fn a_push_of_everything() -> OutboxPush {
    OutboxPush {
        bodies: vec![
            replica("a", 0, 2),
            complete(&["a"]),
            OutboxBody::LogsDropped(LogsDropped {
                spans: vec![],
                bytes: 2,
                batches: 1,
            }),
            logs("a.log", 41, 20),
        ],
        cursors: vec![
            ("a.log".into(), Some(b"60".to_vec())),
            ("b.log".into(), Some(b"1".to_vec())),
        ],
    }
}

#[test]
fn memory_outbox_writes_fail_without_a_trace() {
    let j = MemoryJournal::new();
    fill(&j);
    let before = snapshot(&j);
    j.set_failing(true);
    let err = j.outbox_push(&a_push_of_everything(), 10).unwrap_err();
    assert!(matches!(err, JournalError::DiskFull { .. }), "{err}");
    assert!(matches!(
        j.outbox_ack(&[1, 2]),
        Err(JournalError::DiskFull { .. })
    ));
    assert_eq!(
        snapshot(&j),
        before,
        "nothing of the push or the ack is stored"
    );
    j.set_failing(false);
    let pushed = j.outbox_push(&a_push_of_everything(), 10).unwrap();
    assert_eq!(pushed.seqs, vec![5, 6, 7, 8]);
    assert_eq!(j.log_cursors().unwrap()["b.log"], b"1");
    check_invariants(&j);
}

#[test]
fn redb_outbox_writes_fail_without_a_trace() {
    let disk = FlakyDisk::default();
    let backend = disk.clone();
    let j = RedbJournal::open_with_backend("flaky", CACHE, move || Ok(backend.clone())).unwrap();
    fill(&j);
    let before = snapshot(&j);

    disk.full.store(true, Ordering::SeqCst);
    let err = j.outbox_push(&a_push_of_everything(), 10).unwrap_err();
    assert!(matches!(err, JournalError::DiskFull { .. }), "{err}");
    assert!(!j.is_open(), "a failed write closes the database");
    assert!(j.outbox_ack(&[1, 2]).is_err());

    disk.full.store(false, Ordering::SeqCst);
    assert_eq!(
        snapshot(&j),
        before,
        "nothing of the push or the ack is stored"
    );
    let pushed = j.outbox_push(&a_push_of_everything(), 10).unwrap();
    assert_eq!(
        pushed.seqs,
        vec![5, 6, 7, 8],
        "no seq was used by the failed push"
    );
    check_invariants(&j);
    let after = snapshot(&j);
    drop(j);

    let backend = disk.clone();
    let j = RedbJournal::open_with_backend("flaky", CACHE, move || Ok(backend.clone())).unwrap();
    assert_eq!(snapshot(&j), after);
}

#[test]
fn a_read_only_journal_refuses_outbox_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = RedbJournal::path_in(dir.path());
    let agent = RedbJournal::open(&path, CACHE).unwrap();
    fill(&agent);
    let status = RedbJournal::open_read_only(&path, CACHE).unwrap();
    assert_eq!(snapshot(&status), snapshot(&agent));
    assert!(matches!(
        status.outbox_push(&a_push_of_everything(), NO_QUOTA),
        Err(JournalError::ReadOnly { .. })
    ));
    assert!(matches!(
        status.outbox_ack(&[1]),
        Err(JournalError::ReadOnly { .. })
    ));
    // It follows the agent's pushes.
    push(&agent, vec![replica("z", 0, 1)]);
    assert_eq!(snapshot(&status), snapshot(&agent));
}

// ---- Only a file ------------------------------------------------------------------------

#[test]
fn the_outbox_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = RedbJournal::path_in(dir.path());
    let j = RedbJournal::open(&path, CACHE).unwrap();
    fill(&j);
    let (s2, s4) = (size(&logs("a.log", 1, 20)), size(&logs("a.log", 21, 20)));
    let (b7, b10) = (logs("a.log", 41, 20), logs("a.log", 61, 20));
    // The oldest batch (seq 2) goes.
    push_quota(
        &j,
        vec![complete(&["a"]), replica("b", 0, 1), b7.clone()],
        s2 + s4 + size(&b7) - 1,
    );
    j.outbox_ack(&[1]).unwrap();
    let epoch = j.load().unwrap().epoch;
    let before = snapshot(&j);
    assert_eq!(before.2.dropped_batches, 1);
    drop(j);

    let j = RedbJournal::open(&path, CACHE).unwrap();
    assert_eq!(snapshot(&j), before);
    assert_eq!(j.load().unwrap().epoch, epoch);
    // next_seq goes on, and the indexes came back: the replica, the Complete and the drop
    // count are each superseded as before.
    let next = before.2.next_seq;
    let pushed = push_quota(
        &j,
        vec![replica("b", 0, 2), b10.clone()],
        size(&b7) + size(&b10),
    );
    assert_eq!(pushed.seqs, vec![next, next + 1]);
    assert_eq!(pushed.dropped.batches, 1);
    check_invariants(&j);
    let control = all(&j, Lane::Control);
    assert_eq!(control.len(), 3, "{control:?}");
    let OutboxBody::LogsDropped(d) = &control[2].body else {
        panic!("{control:?}")
    };
    assert_eq!(d.batches, 3, "the new drop merged into the queued count");
    push(&j, vec![complete(&[])]);
    assert_eq!(all(&j, Lane::Control).len(), 2);
    let after = snapshot(&j);
    drop(j);
    let j = RedbJournal::open_existing(&path, CACHE).unwrap();
    assert_eq!(snapshot(&j), after);
}

#[test]
fn a_journal_from_before_the_outbox_reads_as_an_empty_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = RedbJournal::path_in(dir.path());
    drop(RedbJournal::open(&path, CACHE).unwrap());
    // What an older build left: the same format, without the outbox's tables.
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        // Deleting goes by name only.
        for table in [
            "outbox_control",
            "outbox_logs",
            "outbox_replicas",
            "log_cursors",
        ] {
            let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new(table);
            assert!(tx.delete_table(def).unwrap(), "{table}");
        }
        tx.commit().unwrap();
    }
    assert_no_outbox_tables(&path);
    let status = RedbJournal::open_read_only(&path, CACHE).unwrap();
    assert_eq!(snapshot(&status).2.next_seq, 1);
    assert!(snapshot(&status).0.is_empty());
    assert!(status_report(&status).is_ok());
    drop(status);
    // The agent of this build opens it and queues.
    let j = RedbJournal::open(&path, CACHE).unwrap();
    assert_eq!(push(&j, vec![replica("a", 0, 1)]).seqs, vec![1]);
}

fn assert_no_outbox_tables(path: &Path) {
    use redb::{ReadableDatabase, TableHandle};
    let db = redb::Database::open(path).unwrap();
    let rx = db.begin_read().unwrap();
    let names: Vec<String> = rx
        .list_tables()
        .unwrap()
        .map(|h| h.name().to_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("outbox") && n != "log_cursors"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "meta"), "{names:?}");
}

// ---- Both journals, at random -----------------------------------------------------------

#[derive(Debug, Clone)]
enum Body {
    Replica {
        instance: u8,
        gone: bool,
        restarts: u8,
    },
    Complete(u8),
    Dropped(u8),
    Logs {
        file: u8,
        first: u8,
        lines: u8,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Push {
        bodies: Vec<Body>,
        cursors: Vec<(u8, Option<u8>)>,
        quota: u64,
    },
    Ack(Vec<u64>),
    Read {
        logs: bool,
        after: u64,
        max_entries: usize,
        max_bytes: usize,
    },
    Reopen,
}

const INSTANCES: [&str; 3] = ["a", "b", "c"];

fn body(b: &Body) -> OutboxBody {
    match *b {
        Body::Replica {
            instance,
            gone: true,
            ..
        } => gone(INSTANCES[usize::from(instance)], 0),
        Body::Replica {
            instance, restarts, ..
        } => replica(INSTANCES[usize::from(instance)], 0, u32::from(restarts)),
        Body::Complete(n) => complete(&INSTANCES[..usize::from(n)]),
        Body::Dropped(lines) => {
            let mut d = LogsDropped::default();
            d.add_batch(&batch("x.log", 1, usize::from(lines)));
            OutboxBody::LogsDropped(d)
        }
        Body::Logs { file, first, lines } => logs(
            ["a.log", "b.log"][usize::from(file)],
            u64::from(first) + 1,
            usize::from(lines),
        ),
    }
}

fn body_strategy() -> impl Strategy<Value = Body> {
    prop_oneof![
        3 => (0..3u8, any::<bool>(), any::<u8>()).prop_map(|(instance, gone, restarts)| {
            Body::Replica { instance, gone, restarts }
        }),
        1 => (0..4u8).prop_map(Body::Complete),
        1 => (1..5u8).prop_map(Body::Dropped),
        4 => (0..2u8, any::<u8>(), 1..30u8).prop_map(|(file, first, lines)| {
            Body::Logs { file, first, lines }
        }),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec(body_strategy(), 0..4),
            prop::collection::vec((0..3u8, prop::option::of(any::<u8>())), 0..3),
            prop_oneof![Just(0u64), 200..2_000u64, Just(NO_QUOTA)],
        )
            .prop_map(|(bodies, cursors, quota)| Op::Push { bodies, cursors, quota }),
        2 => prop::collection::vec(0..30u64, 0..6).prop_map(Op::Ack),
        2 => (any::<bool>(), 0..30u64, 0..5usize, 0..1_000usize).prop_map(
            |(logs, after, max_entries, max_bytes)| Op::Read { logs, after, max_entries, max_bytes }
        ),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn redb_and_memory_outboxes_agree(ops in prop::collection::vec(op_strategy(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let path = RedbJournal::path_in(dir.path());
        let mut redb = RedbJournal::open(&path, CACHE).unwrap();
        let memory = MemoryJournal::new();
        for op in &ops {
            match op {
                Op::Push { bodies, cursors, quota } => {
                    let push = OutboxPush {
                        bodies: bodies.iter().map(body).collect(),
                        cursors: cursors
                            .iter()
                            .map(|(n, v)| (format!("c{n}"), v.map(|v| vec![v; usize::from(v % 4)])))
                            .collect(),
                    };
                    let next = memory.outbox_stats().unwrap().next_seq;
                    let pushed = memory.outbox_push(&push, *quota).unwrap();
                    prop_assert_eq!(&redb.outbox_push(&push, *quota).unwrap(), &pushed);
                    prop_assert_eq!(pushed.seqs.len(), push.bodies.len());
                    prop_assert!(pushed.seqs.iter().enumerate().all(|(i, s)| *s == next + i as u64));
                    let stats = memory.outbox_stats().unwrap();
                    prop_assert!(stats.log_bytes <= *quota);
                }
                Op::Ack(seqs) => {
                    memory.outbox_ack(seqs).unwrap();
                    redb.outbox_ack(seqs).unwrap();
                }
                Op::Read { logs, after, max_entries, max_bytes } => {
                    let lane = if *logs { Lane::Logs } else { Lane::Control };
                    let read = memory.outbox_read(lane, *after, *max_entries, *max_bytes).unwrap();
                    prop_assert_eq!(
                        &redb.outbox_read(lane, *after, *max_entries, *max_bytes).unwrap(),
                        &read
                    );
                    prop_assert!(read.len() <= *max_entries);
                    let total: u64 = read.iter().map(|e| size(&e.body)).sum();
                    prop_assert!(read.len() <= 1 || total <= *max_bytes as u64);
                }
                Op::Reopen => {
                    drop(redb);
                    redb = RedbJournal::open(&path, CACHE).unwrap();
                }
            }
            prop_assert_eq!(snapshot(&redb), snapshot(&memory));
            check_invariants(&memory);
        }
    }
}
