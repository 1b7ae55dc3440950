#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use skerry_shared::hash::Digest;
use skerry_shared::outbox::{LogBatch, LogChunk, LogSource, LogSpan, LogStream, LogsDropped};
use skerry_shared::planner::ReplicaKey;
use skerry_shared::report::{ReplicaReport, ReplicaState};

use super::*;
use skerry_shared::outbox::OutboxBody;

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn source(instance: &str, component: &str, replica: u32, stream: LogStream) -> LogSource {
    LogSource {
        instance: name(instance),
        component: name(component),
        replica,
        stream,
    }
}

fn file(f: &str) -> LogStream {
    LogStream::File(f.into())
}

/// `n` lines of one source from `first`, read at `time`.
fn chunk(src: &LogSource, first: u64, n: usize, time: i64) -> LogChunk {
    LogChunk {
        source: src.clone(),
        first_line: first,
        time: Timestamp(time),
        lines: (0..n)
            .map(|i| {
                format!(
                    "{}/{}#{} {} line {}",
                    src.instance,
                    src.component,
                    src.replica,
                    src.stream,
                    first + i as u64
                )
            })
            .collect(),
        pieces: Default::default(),
    }
}

fn logs(seq: u64, chunks: &[LogChunk]) -> OutboxEntry {
    OutboxEntry {
        seq,
        body: OutboxBody::Logs(LogBatch::pack(chunks).unwrap()),
    }
}

fn status(instance: &str, component: &str, replica: u32, state: ReplicaState) -> ReplicaStatus {
    ReplicaStatus {
        report: ReplicaReport {
            instance: name(instance),
            component: name(component),
            replica,
            state,
            restarts: 0,
            reason: None,
            spec_hash: Digest::ZERO,
            ports: vec![],
        },
        last_exit: None,
    }
}

fn key(instance: &str, component: &str, replica: u32) -> ReplicaKey {
    ReplicaKey::new(&name(instance), &name(component), replica)
}

fn replica(seq: u64, s: ReplicaStatus) -> OutboxEntry {
    let r = &s.report;
    OutboxEntry {
        seq,
        body: OutboxBody::Replica {
            key: ReplicaKey::new(&r.instance, &r.component, r.replica),
            status: Some(Box::new(s.clone())),
        },
    }
}

fn gone(seq: u64, key: ReplicaKey) -> OutboxEntry {
    OutboxEntry {
        seq,
        body: OutboxBody::Replica { key, status: None },
    }
}

fn complete(seq: u64, list: Vec<ReplicaStatus>) -> OutboxEntry {
    OutboxEntry {
        seq,
        body: OutboxBody::Complete(list),
    }
}

fn dropped(seq: u64, spans: Vec<LogSpan>, batches: u64) -> OutboxEntry {
    OutboxEntry {
        seq,
        body: OutboxBody::LogsDropped(LogsDropped {
            spans,
            bytes: 100,
            batches,
        }),
    }
}

fn span(src: &LogSource, first_line: u64, lines: u64) -> LogSpan {
    LogSpan {
        source: src.clone(),
        first_line,
        lines,
    }
}

fn query(instance: &str) -> LogQuery {
    LogQuery {
        instance: name(instance),
        component: None,
        node: None,
        since: None,
        after: None,
        limit: 10_000,
    }
}

fn open(path: &Path) -> ReportStore {
    ReportStore::open(path, LogRetention::default()).unwrap()
}

/// A store whose clock is `clock` (milliseconds), which the test moves.
fn open_at(path: &Path, retention: LogRetention, clock: &Arc<AtomicI64>) -> ReportStore {
    ReportStore::open_with_clock(path, retention, Clock(Some(clock.clone()))).unwrap()
}

async fn close(store: ReportStore) {
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
}

fn texts(page: &LogPage) -> Vec<String> {
    page.lines.iter().map(|l| l.text.clone()).collect()
}

#[tokio::test]
async fn duplicates_are_acked_but_stored_once_per_node_and_lane() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("reports.redb"));
    let (a, b) = (NodeId::random(), NodeId::random());
    let web = source("web", "app", 0, file("app.log"));
    let entries = vec![
        replica(1, status("web", "app", 0, ReplicaState::Running)),
        replica(2, status("web", "app", 1, ReplicaState::Running)),
        logs(3, &[chunk(&web, 1, 3, T0)]),
    ];
    let first = store.ingest(a, 7, entries.clone()).await.unwrap();
    assert_eq!(first.acked, vec![1, 2, 3]);
    assert_eq!(first.new, entries);
    assert_eq!(first.malformed, 0);
    let commits = store.commits();

    // Sent again (the ack was lost): acknowledged again, stored once, nothing committed.
    let again = store.ingest(a, 7, entries.clone()).await.unwrap();
    assert_eq!(again.acked, vec![1, 2, 3]);
    assert!(again.new.is_empty());
    assert_eq!(store.commits(), commits);
    assert_eq!(store.query(&query("web")).unwrap().lines.len(), 3);

    // The same seqs from another node are that node's own.
    let other = store.ingest(b, 7, entries.clone()).await.unwrap();
    assert_eq!(other.new.len(), 3);
    assert_eq!(store.query(&query("web")).unwrap().lines.len(), 6);

    // The lanes keep their own watermarks: a control entry below the logs lane's highest
    // seq is new, and a log batch below it is not.
    let mixed = vec![
        logs(10, &[chunk(&web, 4, 1, T0)]),
        replica(4, status("web", "app", 2, ReplicaState::Starting)),
        logs(9, &[chunk(&web, 5, 1, T0)]),
    ];
    let got = store.ingest(a, 7, mixed).await.unwrap();
    assert_eq!(got.acked, vec![10, 4, 9]);
    assert_eq!(
        got.new.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![10, 4]
    );
    assert_eq!(store.query(&query("web")).unwrap().lines.len(), 7);
    let statuses = store.replica_statuses().unwrap();
    assert_eq!(statuses[&a].len(), 3);
    assert_eq!(statuses[&b].len(), 2);
    close(store).await;
}

#[tokio::test]
async fn a_new_epoch_restarts_the_watermark_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.redb");
    let node = NodeId::random();
    let web = source("web", "app", 0, file("app.log"));
    let store = open(&path);
    store
        .ingest(node, 1, vec![logs(50, &[chunk(&web, 1, 2, T0)])])
        .await
        .unwrap();
    close(store).await;

    let store = open(&path);
    // Below the watermark of epoch 1: a duplicate.
    let old = store
        .ingest(node, 1, vec![logs(49, &[chunk(&web, 1, 2, T0)])])
        .await
        .unwrap();
    assert!(old.new.is_empty());
    // The journal was rebuilt: epoch 2 starts again from seq 1.
    let rebuilt = store
        .ingest(node, 2, vec![logs(1, &[chunk(&web, 3, 2, T0)])])
        .await
        .unwrap();
    assert_eq!(rebuilt.new.len(), 1);
    let dup = store
        .ingest(node, 2, vec![logs(1, &[chunk(&web, 3, 2, T0)])])
        .await
        .unwrap();
    assert_eq!((dup.acked, dup.new.len()), (vec![1], 0));
    let page = store.query(&query("web")).unwrap();
    assert_eq!(
        page.lines
            .iter()
            .map(|l| (l.cursor, l.line))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 3), (4, 4)],
        "the cursor goes on after a reopen"
    );
    close(store).await;
}

#[tokio::test]
async fn replica_statuses_are_replaced_set_deleted_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.redb");
    let (a, b) = (NodeId::random(), NodeId::random());
    let store = open(&path);
    store
        .ingest(
            a,
            1,
            vec![complete(
                1,
                vec![
                    status("web", "db", 0, ReplicaState::Running),
                    status("web", "db", 1, ReplicaState::Starting),
                    status("cam", "grab", 0, ReplicaState::Running),
                ],
            )],
        )
        .await
        .unwrap();
    store
        .ingest(
            b,
            1,
            vec![complete(
                1,
                vec![status("cam", "grab", 0, ReplicaState::Pending)],
            )],
        )
        .await
        .unwrap();
    store
        .ingest(
            a,
            1,
            vec![
                replica(2, status("web", "db", 1, ReplicaState::Healthy)),
                gone(3, key("cam", "grab", 0)),
                gone(4, key("nope", "x", 9)),
                replica(5, status("web", "api", 0, ReplicaState::Running)),
            ],
        )
        .await
        .unwrap();
    close(store).await;

    let store = open(&path);
    let all = store.replica_statuses().unwrap();
    let states = |n: NodeId| -> Vec<(String, String, u32, ReplicaState)> {
        all[&n]
            .iter()
            .map(|s| {
                let r = &s.report;
                (
                    r.instance.to_string(),
                    r.component.to_string(),
                    r.replica,
                    r.state.clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        states(a),
        vec![
            ("web".into(), "api".into(), 0, ReplicaState::Running),
            ("web".into(), "db".into(), 0, ReplicaState::Running),
            ("web".into(), "db".into(), 1, ReplicaState::Healthy),
        ]
    );
    assert_eq!(
        states(b),
        vec![("cam".into(), "grab".into(), 0, ReplicaState::Pending)]
    );
    // A complete report replaces everything the node had; an empty one leaves nothing.
    store
        .ingest(
            a,
            1,
            vec![complete(
                6,
                vec![status("new", "x", 0, ReplicaState::Running)],
            )],
        )
        .await
        .unwrap();
    assert_eq!(store.replica_statuses().unwrap()[&a].len(), 1);
    store.ingest(a, 1, vec![complete(7, vec![])]).await.unwrap();
    let all = store.replica_statuses().unwrap();
    assert!(!all.contains_key(&a));
    assert_eq!(all[&b].len(), 1);
    close(store).await;
}

#[tokio::test]
async fn replicas_per_node_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("reports.redb"));
    let node = NodeId::random();
    let max = MAX_REPLICAS_PER_NODE as u32;
    let many: Vec<_> = (0..max + 5)
        .map(|i| status("web", "db", i, ReplicaState::Running))
        .collect();
    store
        .ingest(node, 1, vec![complete(1, many)])
        .await
        .unwrap();
    assert_eq!(
        store.replica_statuses().unwrap()[&node].len(),
        MAX_REPLICAS_PER_NODE as usize
    );
    // A new replica is refused; a kept one still changes; a removal makes room.
    store
        .ingest(
            node,
            1,
            vec![
                replica(2, status("web", "other", 0, ReplicaState::Running)),
                replica(3, status("web", "db", 0, ReplicaState::Failed { code: 1 })),
                gone(4, key("web", "db", 1)),
                replica(5, status("web", "late", 0, ReplicaState::Running)),
            ],
        )
        .await
        .unwrap();
    let all = &store.replica_statuses().unwrap()[&node];
    assert_eq!(all.len(), MAX_REPLICAS_PER_NODE as usize);
    assert!(!all.iter().any(|s| s.report.component.as_str() == "other"));
    assert!(all.iter().any(|s| s.report.component.as_str() == "late"));
    assert!(all.iter().any(|s| s.report.replica == 0
        && s.report.component.as_str() == "db"
        && s.report.state == ReplicaState::Failed { code: 1 }));
    close(store).await;
}

#[tokio::test]
async fn lines_are_queried_in_order_with_every_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("reports.redb"));
    let (a, b) = (NodeId::random(), NodeId::random());
    let app = source("web", "app", 0, file("app.log"));
    let out = source("web", "app", 1, LogStream::Stdout);
    let db = source("web", "db", 0, LogStream::Stderr);
    let other = source("cam", "grab", 0, file("grab.log"));
    store
        .ingest(
            a,
            1,
            vec![
                logs(1, &[chunk(&app, 1, 3, T0), chunk(&other, 1, 2, T0)]),
                logs(2, &[chunk(&out, 1, 2, T0 + MINUTE)]),
            ],
        )
        .await
        .unwrap();
    store
        .ingest(b, 1, vec![logs(1, &[chunk(&db, 10, 2, T0 + 2 * MINUTE)])])
        .await
        .unwrap();
    store
        .ingest(a, 1, vec![logs(3, &[chunk(&app, 4, 1, T0 + 3 * MINUTE)])])
        .await
        .unwrap();

    let all = store.query(&query("web")).unwrap();
    assert_eq!(
        all.lines
            .iter()
            .map(|l| (
                l.cursor,
                l.component.as_str(),
                l.replica,
                l.file.as_str(),
                l.line
            ))
            .collect::<Vec<_>>(),
        vec![
            (1, "app", 0, "app.log", 1),
            (2, "app", 0, "app.log", 2),
            (3, "app", 0, "app.log", 3),
            (6, "app", 1, "(stdout)", 1),
            (7, "app", 1, "(stdout)", 2),
            (8, "db", 0, "(stderr)", 10),
            (9, "db", 0, "(stderr)", 11),
            (10, "app", 0, "app.log", 4),
        ]
    );
    assert_eq!(all.lines[0].text, "web/app#0 app.log line 1");
    assert_eq!(all.lines[0].node, a);
    assert_eq!(all.lines[5].node, b);
    assert_eq!(all.lines[3].time, Timestamp(T0 + MINUTE));
    assert_eq!(all.next, 10);
    assert!(all.dropped.is_empty());

    let cam = store.query(&query("cam")).unwrap();
    assert_eq!(
        cam.lines.iter().map(|l| l.cursor).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(cam.next, 10, "the end of a read is the last cursor stored");

    let cursors = |q: LogQuery| -> Vec<u64> {
        store
            .query(&q)
            .unwrap()
            .lines
            .iter()
            .map(|l| l.cursor)
            .collect()
    };
    let q = |f: &dyn Fn(&mut LogQuery)| {
        let mut q = query("web");
        f(&mut q);
        q
    };
    assert_eq!(cursors(q(&|q| q.component = Some(name("db")))), vec![8, 9]);
    assert_eq!(cursors(q(&|q| q.node = Some(b))), vec![8, 9]);
    assert_eq!(cursors(q(&|q| q.node = Some(a))), vec![1, 2, 3, 6, 7, 10]);
    assert_eq!(
        cursors(q(&|q| q.since = Some(Timestamp(T0 + MINUTE)))),
        vec![6, 7, 8, 9, 10]
    );
    assert_eq!(
        cursors(q(&|q| {
            q.component = Some(name("app"));
            q.node = Some(a);
            q.since = Some(Timestamp(T0 + 2 * MINUTE));
        })),
        vec![10]
    );
    assert!(cursors(q(&|q| q.component = Some(name("nope")))).is_empty());
    assert!(cursors(query("nope")).is_empty());

    // Pages: `after` may fall inside a chunk, and `next` goes on from the last line.
    let mut page = q(&|q| {
        q.after = Some(1);
        q.limit = 3;
    });
    let first = store.query(&page).unwrap();
    assert_eq!(
        first.lines.iter().map(|l| l.cursor).collect::<Vec<_>>(),
        vec![2, 3, 6]
    );
    assert_eq!(first.next, 6);
    page.after = Some(first.next);
    let second = store.query(&page).unwrap();
    assert_eq!(
        second.lines.iter().map(|l| l.cursor).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    page.after = Some(second.next);
    let third = store.query(&page).unwrap();
    assert_eq!(texts(&third), vec!["web/app#0 app.log line 4"]);
    assert_eq!(third.next, 10);
    page.after = Some(third.next);
    let empty = store.query(&page).unwrap();
    assert!(empty.lines.is_empty());
    assert_eq!(empty.next, 10);
    // A filter that matches nothing still moves `next` to the end.
    let none = store
        .query(&q(&|q| q.component = Some(name("nope"))))
        .unwrap();
    assert_eq!(none.next, 10);
    close(store).await;
}

#[tokio::test]
async fn drops_are_summed_per_node_and_instance_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.redb");
    let store = open(&path);
    let (a, b) = (NodeId::random(), NodeId::random());
    let app = source("web", "app", 0, file("app.log"));
    let db = source("web", "db", 0, LogStream::Stdout);
    let cam = source("cam", "grab", 0, file("grab.log"));
    store
        .ingest(
            a,
            1,
            vec![dropped(
                1,
                vec![span(&app, 1, 100), span(&db, 5, 10), span(&cam, 1, 7)],
                2,
            )],
        )
        .await
        .unwrap();
    // Touching runs of one file merge; a gap starts a new run.
    store
        .ingest(
            a,
            1,
            vec![
                dropped(2, vec![span(&app, 101, 20)], 1),
                dropped(3, vec![span(&app, 500, 5)], 1),
            ],
        )
        .await
        .unwrap();
    store
        .ingest(b, 1, vec![dropped(1, vec![span(&app, 1, 3)], 1)])
        .await
        .unwrap();
    // A duplicate counts nothing.
    store
        .ingest(b, 1, vec![dropped(1, vec![span(&app, 1, 3)], 1)])
        .await
        .unwrap();
    close(store).await;

    let store = open(&path);
    let mut web = store.query(&query("web")).unwrap().dropped;
    web.sort_by_key(|d| d.node != a);
    assert_eq!(web.len(), 2);
    assert_eq!((web[0].node, web[0].lines, web[0].batches), (a, 135, 4));
    assert_eq!(
        web[0]
            .files
            .iter()
            .map(|f| (
                f.component.as_str(),
                f.replica,
                f.file.as_str(),
                f.first_line,
                f.lines
            ))
            .collect::<Vec<_>>(),
        vec![
            ("app", 0, "app.log", 1, 120),
            ("db", 0, "(stdout)", 5, 10),
            ("app", 0, "app.log", 500, 5),
        ]
    );
    assert_eq!((web[1].node, web[1].lines, web[1].batches), (b, 3, 1));
    let cam = store.query(&query("cam")).unwrap().dropped;
    assert_eq!((cam.len(), cam[0].lines, cam[0].batches), (1, 7, 2));
    // Filters apply to drops too.
    let mut q = query("web");
    q.component = Some(name("db"));
    let only_db = store.query(&q).unwrap().dropped;
    assert_eq!(only_db.len(), 1);
    assert_eq!((only_db[0].node, only_db[0].lines), (a, 10));
    let mut q = query("web");
    q.node = Some(b);
    assert_eq!(store.query(&q).unwrap().dropped.len(), 1);
    assert!(store.has_instance(&name("cam")).unwrap());
    assert!(!store.has_instance(&name("nope")).unwrap());
    close(store).await;
}

#[tokio::test]
async fn retention_by_size_removes_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(T0));
    let store = open_at(
        &dir.path().join("reports.redb"),
        LogRetention {
            max_age: Duration::from_secs(3600),
            max_bytes: 4000,
        },
        &clock,
    );
    let node = NodeId::random();
    let app = source("web", "app", 0, file("app.log"));
    // Each chunk of 10 lines is about 400 bytes.
    for i in 0..20u64 {
        store
            .ingest(
                node,
                1,
                vec![logs(i + 1, &[chunk(&app, i * 10 + 1, 10, T0)])],
            )
            .await
            .unwrap();
    }
    let page = store.query(&query("web")).unwrap();
    let first = page.lines[0].line;
    assert!(first > 1, "nothing was removed");
    assert_eq!(first % 10, 1, "whole chunks are removed");
    assert_eq!(page.lines.last().unwrap().line, 200, "the newest are kept");
    // What is left is the newest, without gaps.
    let numbers: Vec<u64> = page.lines.iter().map(|l| l.line).collect();
    assert_eq!(numbers, (first..=200).collect::<Vec<_>>());
    let kept: u64 = page.lines.iter().map(|l| l.text.len() as u64 + 1).sum();
    assert!(kept <= 4000, "{kept}");
    assert_eq!(store.expire().await.unwrap(), Removed::default());
    close(store).await;
}

#[tokio::test]
async fn retention_by_age_removes_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.redb");
    let clock = Arc::new(AtomicI64::new(T0));
    let retention = LogRetention {
        max_age: Duration::from_secs(3600),
        max_bytes: 1 << 30,
    };
    let store = open_at(&path, retention, &clock);
    let node = NodeId::random();
    let app = source("web", "app", 0, file("app.log"));
    store
        .ingest(node, 1, vec![logs(1, &[chunk(&app, 1, 2, T0)])])
        .await
        .unwrap();
    clock.store(T0 + 30 * MINUTE, Ordering::SeqCst);
    // The agent's time says nothing about age: this chunk claims to be very old.
    store
        .ingest(node, 1, vec![logs(2, &[chunk(&app, 3, 2, 0)])])
        .await
        .unwrap();
    clock.store(T0 + 50 * MINUTE, Ordering::SeqCst);
    store
        .ingest(node, 1, vec![logs(3, &[chunk(&app, 5, 2, T0)])])
        .await
        .unwrap();

    clock.store(T0 + 59 * MINUTE, Ordering::SeqCst);
    assert_eq!(store.expire().await.unwrap(), Removed::default());
    clock.store(T0 + 61 * MINUTE, Ordering::SeqCst);
    let removed = store.expire().await.unwrap();
    assert_eq!((removed.chunks, removed.lines), (1, 2));
    assert!(removed.bytes > 0);
    let lines = |s: &ReportStore| -> Vec<u64> {
        s.query(&query("web"))
            .unwrap()
            .lines
            .iter()
            .map(|l| l.line)
            .collect()
    };
    assert_eq!(lines(&store), vec![3, 4, 5, 6]);
    close(store).await;

    // The stored times are kept: after a reopen, age still counts from the first store.
    let store = open_at(&path, retention, &clock);
    clock.store(T0 + 91 * MINUTE, Ordering::SeqCst);
    assert_eq!(store.expire().await.unwrap().chunks, 1);
    assert_eq!(lines(&store), vec![5, 6]);
    clock.store(T0 + 200 * MINUTE, Ordering::SeqCst);
    store.expire().await.unwrap();
    assert!(lines(&store).is_empty());
    // The cursor goes on, and nothing is left to count.
    store
        .ingest(node, 1, vec![logs(4, &[chunk(&app, 7, 1, T0)])])
        .await
        .unwrap();
    let page = store.query(&query("web")).unwrap();
    assert_eq!(page.lines[0].cursor, 7);
    close(store).await;
}

#[tokio::test]
async fn a_malformed_batch_is_counted_acked_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("reports.redb"));
    let node = NodeId::random();
    let app = source("web", "app", 0, file("app.log"));
    let mut garbage = LogBatch::pack(&[chunk(&app, 1, 5, T0)]).unwrap();
    garbage.data = b"\x28\xb5\x2f\xfd not zstd at all".to_vec();
    let got = store
        .ingest(
            node,
            1,
            vec![
                OutboxEntry {
                    seq: 1,
                    body: OutboxBody::Logs(garbage.clone()),
                },
                logs(2, &[chunk(&app, 6, 1, T0)]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(got.acked, vec![1, 2]);
    assert_eq!(got.malformed, 1);
    assert_eq!(got.new.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    assert_eq!(texts(&store.query(&query("web")).unwrap()).len(), 1);
    // Resent, it is a duplicate: not counted again.
    let again = store
        .ingest(
            node,
            1,
            vec![OutboxEntry {
                seq: 1,
                body: OutboxBody::Logs(garbage),
            }],
        )
        .await
        .unwrap();
    assert_eq!((again.acked, again.malformed), (vec![1], 0));
    close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_share_commits_and_are_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("reports.redb"));
    let mut wake = store.subscribe();
    const NODES: u64 = 32;
    const EACH: u64 = 20;
    let mut tasks = Vec::new();
    for n in 0..NODES {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let node = NodeId::random();
            let src = source("web", "app", n as u32, file("app.log"));
            for i in 0..EACH {
                let got = store
                    .ingest(
                        node,
                        1,
                        vec![
                            logs(i + 1, &[chunk(&src, i * 3 + 1, 3, T0)]),
                            replica(i + 1, status("web", "app", n as u32, ReplicaState::Running)),
                        ],
                    )
                    .await
                    .unwrap();
                assert_eq!(got.acked, vec![i + 1, i + 1]);
                assert_eq!(got.new.len(), 2);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let commits = store.commits();
    assert!(
        commits < NODES * EACH,
        "{commits} commits for {} requests",
        NODES * EACH
    );
    let page = store.query(&query("web")).unwrap();
    assert_eq!(page.lines.len() as u64, NODES * EACH * 3);
    // Cursors number the lines without gaps, and each file's lines are in order.
    let cursors: Vec<u64> = page.lines.iter().map(|l| l.cursor).collect();
    assert_eq!(cursors, (1..=NODES * EACH * 3).collect::<Vec<_>>());
    for n in 0..NODES as u32 {
        let numbers: Vec<u64> = page
            .lines
            .iter()
            .filter(|l| l.replica == n)
            .map(|l| l.line)
            .collect();
        assert_eq!(numbers, (1..=EACH * 3).collect::<Vec<_>>());
    }
    assert_eq!(store.replica_statuses().unwrap().len() as u64, NODES);
    assert!(wake.has_changed().unwrap());
    assert_eq!(*wake.borrow_and_update(), NODES * EACH * 3);
    let closer = store.clone();
    tokio::task::spawn_blocking(move || closer.close())
        .await
        .unwrap();
    assert!(matches!(
        store.ingest(NodeId::random(), 1, vec![]).await,
        Err(ReportError::Stopped)
    ));
    assert!(matches!(
        store.query(&query("web")),
        Err(ReportError::Stopped)
    ));
}

#[tokio::test]
async fn replica_statuses_keep_the_time_they_were_stored_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.redb");
    let node = NodeId::random();
    let store = open(&path);
    let first = store
        .ingest(
            node,
            1,
            vec![complete(
                1,
                vec![
                    status("web", "db", 0, ReplicaState::Running),
                    status("web", "db", 1, ReplicaState::Running),
                ],
            )],
        )
        .await
        .unwrap();
    let second = store
        .ingest(
            node,
            1,
            vec![replica(2, status("web", "db", 1, ReplicaState::Healthy))],
        )
        .await
        .unwrap();
    assert!(second.at >= first.at);
    close(store).await;
    let store = open(&path);
    let all = store.replica_reports().unwrap();
    let times: Vec<(u32, Option<Timestamp>)> = all[&node]
        .iter()
        .map(|(s, at)| (s.report.replica, *at))
        .collect();
    assert_eq!(times, vec![(0, Some(first.at)), (1, Some(second.at))]);
    // The statuses alone read as before.
    assert_eq!(store.replica_statuses().unwrap()[&node].len(), 2);
    close(store).await;
}
