//! The outbox quota (`agent.outbox_quota`), on both journals: the control lane (every
//! entry but log batches) stays within it. What can grow there gives way in order: the
//! queued drop count is compacted to one span per source (every count kept), then the
//! oldest replica reports are dropped and counted; a complete report is never dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use skerry_edge::journal::inspect::status_report;
use skerry_edge::journal::{Journal, MemoryJournal, OutboxPush, Pushed, RedbJournal};
use skerry_shared::clock::Timestamp;
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;
use skerry_shared::outbox::{Lane, LogBatch, LogChunk, LogSource, LogStream, OutboxBody};
use skerry_shared::planner::ReplicaKey;
use skerry_shared::report::{ReplicaReport, ReplicaState, ReplicaStatus};

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn status(instance: &str, replica: u32) -> ReplicaStatus {
    ReplicaReport {
        instance: name(instance),
        component: name("web"),
        replica,
        state: ReplicaState::Running,
        restarts: 0,
        reason: Some("a reason long enough to take some room in the outbox".into()),
        spec_hash: Digest::of(b"spec"),
        ports: vec![],
    }
    .into()
}

fn replica(instance: &str, r: u32) -> OutboxBody {
    OutboxBody::Replica {
        key: ReplicaKey::new(&name(instance), &name("web"), r),
        status: Some(Box::new(status(instance, r))),
    }
}

fn size(body: &OutboxBody) -> u64 {
    postcard::to_stdvec(body).unwrap().len() as u64
}

fn push(j: &dyn Journal, bodies: Vec<OutboxBody>, log_quota: u64) -> Pushed {
    j.outbox_push(
        &OutboxPush {
            bodies,
            cursors: vec![],
        },
        log_quota,
    )
    .unwrap()
}

fn control(j: &dyn Journal) -> Vec<(u64, OutboxBody)> {
    j.outbox_read(Lane::Control, 0, usize::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.body))
        .collect()
}

fn control_bytes(j: &dyn Journal) -> u64 {
    control(j).iter().map(|(_, b)| size(b)).sum()
}

/// A log batch of one line from `file`, line `line`.
fn one_line(file: &str, line: u64) -> OutboxBody {
    let chunk = LogChunk {
        source: LogSource {
            instance: name("w1"),
            component: name("web"),
            replica: 0,
            stream: LogStream::File(file.into()),
        },
        first_line: line,
        time: Timestamp(1_700_000_000_000),
        lines: vec![format!("{file} line {line}")],
        pieces: Default::default(),
    };
    OutboxBody::Logs(LogBatch::pack(&[chunk]).unwrap())
}

/// Many distinct replicas report while the link is down: the control lane stays within
/// the quota, the oldest reports go first and are counted, the newest stay.
fn replica_reports_are_bounded(j: &dyn Journal) {
    let one = size(&replica("a", 0));
    let quota = 10 * one;
    j.set_outbox_quota(quota);
    let mut dropped = 0;
    for r in 0..40 {
        let pushed = push(j, vec![replica("a", r)], u64::MAX);
        dropped += pushed.dropped_reports;
        assert!(control_bytes(j) <= quota, "after replica {r}");
    }
    let kept = control(j);
    assert_eq!(kept.len(), 10, "{kept:?}");
    assert_eq!(dropped, 30);
    // The newest reports are the ones kept, in order.
    let indexes: Vec<u32> = kept
        .iter()
        .map(|(_, b)| match b {
            OutboxBody::Replica { key, .. } => key.replica,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(indexes, (30..40).collect::<Vec<_>>());
    let stats = j.outbox_stats().unwrap();
    assert_eq!(stats.dropped_reports, 30);
    assert_eq!(stats.control_bytes, control_bytes(j));
    assert_eq!(stats.control_entries, 10);
    // The index still coalesces the kept ones: a new state of replica 35 replaces its entry.
    push(j, vec![replica("a", 35)], u64::MAX);
    assert_eq!(control(j).len(), 10);
    assert_eq!(j.outbox_stats().unwrap().control_bytes, control_bytes(j));
    // A complete report (what the agent queues after a drop) supersedes them all, and is
    // kept even when it alone is over the quota.
    let all = OutboxBody::Complete((0..40).map(|r| status("a", r)).collect());
    assert!(size(&all) > quota);
    assert_eq!(push(j, vec![all.clone()], u64::MAX).dropped_reports, 0);
    let kept = control(j);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, all);
    // Acks take the bytes off.
    j.outbox_ack(&[kept[0].0]).unwrap();
    assert_eq!(j.outbox_stats().unwrap().control_bytes, 0);
    let text = status_report(j).unwrap().to_string();
    assert!(text.contains("reports dropped: 30"), "{text}");
}

/// Log drops from many sources in turn make the drop count grow span by span; over the
/// quota it is compacted to one span per source, with every line still counted.
fn the_drop_count_is_compacted(j: &dyn Journal) {
    // A log quota of one line's batch: each push drops the one before.
    let line = size(&one_line("f0.log", 1));
    let mut pushed_lines = 0u64;
    for i in 0..60u64 {
        let file = format!("f{}.log", i % 3);
        push(j, vec![one_line(&file, i + 1)], line + 8);
        pushed_lines += 1;
    }
    let spans = |j: &dyn Journal| {
        control(j)
            .into_iter()
            .find_map(|(_, b)| match b {
                OutboxBody::LogsDropped(d) => Some(d),
                _ => None,
            })
            .unwrap()
    };
    let before = spans(j);
    assert!(before.spans.len() > 50, "{}", before.spans.len());
    let lines = before.lines();
    assert_eq!(lines, pushed_lines - 1);
    // Now a quota below the drop count's size: the next push compacts it.
    let bound = control_bytes(j) / 4;
    j.set_outbox_quota(bound);
    push(j, vec![one_line("f0.log", 100)], line + 8);
    let after = spans(j);
    assert_eq!(after.spans.len(), 3, "{after:?}");
    assert_eq!(
        after.lines(),
        lines + 1,
        "every dropped line is still counted"
    );
    assert_eq!(after.batches, before.batches + 1);
    assert!(control_bytes(j) <= bound, "{} > {bound}", control_bytes(j));
    assert_eq!(j.outbox_stats().unwrap().control_bytes, control_bytes(j));
    assert_eq!(j.outbox_stats().unwrap().dropped_reports, 0);
}

/// Without a quota set nothing is dropped (the simulator's journals).
fn no_quota_drops_nothing(j: &dyn Journal) {
    for r in 0..50 {
        assert_eq!(push(j, vec![replica("b", r)], u64::MAX).dropped_reports, 0);
    }
    assert_eq!(control(j).len(), 50);
    assert_eq!(j.outbox_stats().unwrap().control_bytes, control_bytes(j));
}

type Case = fn(&dyn Journal);

const SUITE: &[(&str, Case)] = &[
    ("replica_reports_are_bounded", replica_reports_are_bounded),
    ("the_drop_count_is_compacted", the_drop_count_is_compacted),
    ("no_quota_drops_nothing", no_quota_drops_nothing),
    ("files_waiting_coalesce", files_waiting_coalesce),
];

#[test]
fn memory_outbox_keeps_the_quota() {
    for (case, run) in SUITE {
        eprintln!("memory: {case}");
        run(&MemoryJournal::new());
    }
}

#[test]
fn redb_outbox_keeps_the_quota() {
    for (case, run) in SUITE {
        eprintln!("redb: {case}");
        let dir = tempfile::tempdir().unwrap();
        run(&RedbJournal::open(&dir.path().join("journal.redb"), 1 << 20).unwrap());
    }
}

#[test]
fn the_counts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    let j = RedbJournal::open(&path, 1 << 20).unwrap();
    j.set_outbox_quota(3 * size(&replica("a", 0)));
    for r in 0..5 {
        push(&j, vec![replica("a", r)], u64::MAX);
    }
    let before = j.outbox_stats().unwrap();
    assert_eq!(before.dropped_reports, 2);
    drop(j);
    let j = RedbJournal::open(&path, 1 << 20).unwrap();
    assert_eq!(j.outbox_stats().unwrap(), before);
}

/// What waits for a slot is said whole by each entry: one is queued at most, so it cannot
/// grow while the link is down.
fn files_waiting_coalesce(j: &dyn Journal) {
    use skerry_shared::outbox::LogsWaiting;
    let waiting = |files: u64| {
        OutboxBody::LogsWaiting(vec![LogsWaiting {
            replica: ReplicaKey::new(&name("a"), &name("web"), 0),
            files,
        }])
    };
    let mut last = 0;
    for files in 1..=20 {
        last = push(j, vec![waiting(files)], u64::MAX).seqs[0];
    }
    let queued = control(j);
    assert_eq!(queued, vec![(last, waiting(20))]);
    assert_eq!(j.outbox_stats().unwrap().control_bytes, size(&waiting(20)));
    j.outbox_ack(&[last]).unwrap();
    assert!(control(j).is_empty());
    assert_eq!(j.outbox_stats().unwrap().control_bytes, 0);
    // After the ack, the next one is queued as the only one again.
    push(j, vec![waiting(0)], u64::MAX);
    assert_eq!(control(j).len(), 1);
}
