//! Golden wire frames: the format of every frame body is pinned by a checked-in file.
//!
//! Each file under `tests/golden/` holds, as hex text, the encoding of one fixed,
//! deterministic frame (fixed uuids, times and a small manifest). The test checks that
//! encoding the value gives the file and decoding the file gives the value.
//!
//! A golden file that changes is a change of the wire format: agents in the field speak
//! the old one. Before updating a file, decide how old and new peers meet: bump
//! `frame::FORMAT_VERSION` (and keep a decoder for the old version for as long as agents
//! speak it), or prove the change is compatible (a variant appended at the end of an
//! enum is; a field added, removed or reordered in a struct is not). Only then rewrite the
//! files with `SKERRY_UPDATE_GOLDEN=1 cargo test -p skerry-shared --test golden_frames`
//! and commit them with that reasoning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{
    EnvOverride, EventPayload, InstanceMode, InstanceSpec, NodeEvent, NodeTarget,
};
use skerry_shared::frame::{self, DownFrame, UpFrame};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::{
    Component, ComponentKind, CpuRange, EnvValue, Expose, Health, Manifest, MemoryRange, Port,
    Resources, Storage,
};
use skerry_shared::outbox::{
    LogBatch, LogSource, LogSpan, LogStream, LogsDropped, OutboxBody, OutboxEntry,
};
use skerry_shared::planner::ReplicaKey;
use skerry_shared::reducer::{DesiredInstance, NodeDesired, NodeSnapshot};
use skerry_shared::report::{LastExit, ReplicaReport, ReplicaState, ReplicaStatus, StatusReport};

fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn node() -> NodeId {
    NodeId(uuid::Uuid::from_u128(
        0x1111_2222_3333_4444_5555_6666_7777_8888,
    ))
}

/// 2026-11-21T10:00:00Z
const T0: i64 = 1_795_255_200_000;

fn component(name: &str, kind: ComponentKind) -> Component {
    Component {
        kind,
        ..Component::image(n(name), "weather-db:1")
    }
}

fn manifest() -> Manifest {
    let mut migrate = component("migrate", ComponentKind::Init);
    migrate.command = Some(vec!["/bin/migrate".into()]);
    migrate.storage = vec![Storage {
        name: n("data"),
        container: "/data".into(),
    }];
    let mut db = component("db", ComponentKind::Service);
    db.command = Some(vec!["/bin/db".into(), "--port".into(), "6379".into()]);
    db.depends_on = vec![n("migrate")];
    db.replicas = Some(1);
    db.env.insert("TZ".into(), EnvValue("UTC".into()));
    db.resources = Some(Resources {
        cpu: Some(CpuRange {
            request: Some("100m".parse().unwrap()),
            limit: Some("500m".parse().unwrap()),
        }),
        memory: Some(MemoryRange {
            request: Some("32Mi".parse().unwrap()),
            limit: Some("64Mi".parse().unwrap()),
        }),
    });
    db.ports = vec![Port {
        container: 6379,
        host: None,
        expose: Expose::Cluster,
    }];
    db.health = Some(Health {
        command: vec!["/bin/sh".into(), "-c".into(), "test -f /tmp/ready".into()],
        interval: Some("5s".parse().unwrap()),
        timeout: Some("2s".parse().unwrap()),
        retries: Some(3),
    });
    let mut cleanup = component("cleanup", ComponentKind::Job);
    cleanup.schedule = Some("*/5 * * * *".into());
    Manifest {
        app: n("weather"),
        version: "1.0.0".parse().unwrap(),
        description: Some("Weather station gateway apps".into()),
        platforms: None,
        components: vec![migrate, db, cleanup],
    }
}

fn instance() -> InstanceSpec {
    let manifest = manifest();
    InstanceSpec {
        name: n("weather"),
        env: n("prod"),
        app: n("weather"),
        version: manifest.version.clone(),
        manifest,
        nodes: vec![NodeTarget {
            node: node(),
            weight: 3,
        }],
        unschedulable: vec![],
        selector: [("zone".to_owned(), "north".to_owned())].into(),
        overrides: vec![EnvOverride {
            component: n("db"),
            var: "TZ".into(),
            value: "CET".into(),
        }],
        mode: InstanceMode::Production,
        targeting: skerry_shared::event::Targeting::Named,
        lifecycle: Default::default(),
    }
}

fn down_events() -> DownFrame {
    let ev = |node_seq: u64, payload| NodeEvent {
        node_seq,
        seq: 100 + node_seq,
        time: Timestamp(T0 + node_seq as i64),
        payload,
    };
    DownFrame::Events(vec![
        ev(
            1,
            EventPayload::NodeJoined {
                node: node(),
                env: n("prod"),
            },
        ),
        ev(
            2,
            EventPayload::NodeLabelled {
                node: node(),
                set: [("zone".to_owned(), "north".to_owned())].into(),
                removed: vec!["rack".into()],
            },
        ),
        ev(
            3,
            EventPayload::InstanceDeployed {
                instance: Box::new(instance()),
            },
        ),
        ev(
            4,
            EventPayload::InstanceUndeployed {
                name: n("weather"),
                purge: false,
            },
        ),
    ])
}

fn snapshot() -> NodeSnapshot {
    let mut state = NodeDesired::new(node());
    state.name = Some(n("gw-1"));
    state.labels.insert("zone".into(), "north".into());
    state.envs.insert(n("prod"));
    state.instances.insert(
        n("weather"),
        DesiredInstance {
            spec: instance(),
            deployed_at: 3,
        },
    );
    state.applied = 3;
    NodeSnapshot { node_seq: 3, state }
}

fn down_snapshot_chunk() -> DownFrame {
    let frames = frame::snapshot_frames(&snapshot()).unwrap();
    assert_eq!(frames.len(), 1);
    frames.into_iter().next().unwrap()
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.hex"))
}

/// Hex in lines of 64 digits, so a diff shows where the bytes changed.
fn to_hex_text(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    let mut out = String::new();
    for line in hex.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out
}

fn from_hex_text(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(digits).unwrap()
}

fn check<T: PartialEq + std::fmt::Debug>(
    name: &str,
    value: T,
    encode: impl Fn(&T) -> Result<Vec<u8>, frame::FrameError>,
    decode: impl Fn(&[u8]) -> Result<T, frame::FrameError>,
) {
    let bytes = encode(&value).unwrap();
    let path = golden_path(name);
    if std::env::var_os("SKERRY_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, to_hex_text(&bytes)).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with SKERRY_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    let golden = from_hex_text(&text);
    assert_eq!(
        to_hex_text(&bytes),
        to_hex_text(&golden),
        "{name}: the encoding changed. This is a wire-format change; read the note at the \
         top of tests/golden_frames.rs before updating the file."
    );
    assert_eq!(
        decode(&golden).unwrap(),
        value,
        "{name}: the golden frame decodes to another value"
    );
}

#[test]
fn down_events_frame() {
    check(
        "down_events",
        down_events(),
        frame::encode_down,
        frame::decode_down,
    );
}

#[test]
fn down_snapshot_chunk_frame() {
    check(
        "down_snapshot_chunk",
        down_snapshot_chunk(),
        frame::encode_down,
        frame::decode_down,
    );
}

#[test]
fn down_heartbeat_ack_frame() {
    check(
        "down_heartbeat_ack",
        DownFrame::HeartbeatAck {
            time: Timestamp(T0),
        },
        frame::encode_down,
        frame::decode_down,
    );
}

#[test]
fn up_hello_frame() {
    check(
        "up_hello",
        UpFrame::Hello {
            last_node_seq: 42,
            agent_version: "0.1.0".into(),
        },
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn up_rebuild_frame() {
    check(
        "up_rebuild",
        UpFrame::Rebuild {
            agent_version: "0.1.0".into(),
        },
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn up_ack_frame() {
    check(
        "up_ack",
        UpFrame::Ack { node_seq: 300 },
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn up_heartbeat_frame() {
    check(
        "up_heartbeat",
        UpFrame::Heartbeat {
            time: Timestamp(T0),
            last_node_seq: 300,
        },
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn up_status_frame() {
    let report = ReplicaReport {
        instance: n("weather"),
        component: n("db"),
        replica: 0,
        state: ReplicaState::Failed { code: 3 },
        restarts: 2,
        reason: Some("exited 3".into()),
        spec_hash: Digest::of(b"db"),
        ports: vec![(8080, 30001)],
    };
    check(
        "up_status",
        UpFrame::Status(StatusReport {
            complete: true,
            replicas: vec![report],
            removed: vec![(n("weather"), n("cleanup"), 1)],
        }),
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn up_outbox_frame() {
    let report = ReplicaReport {
        instance: n("weather"),
        component: n("web"),
        replica: 0,
        state: ReplicaState::Running,
        restarts: 1,
        reason: None,
        spec_hash: Digest::of(b"web"),
        ports: vec![],
    };
    let source = LogSource {
        instance: n("weather"),
        component: n("web"),
        replica: 0,
        stream: LogStream::File("app.log".into()),
    };
    let span = LogSpan {
        source: source.clone(),
        first_line: 1,
        lines: 2,
    };
    check(
        "up_outbox",
        UpFrame::Outbox {
            epoch: 0x1234_5678_9abc,
            entries: vec![
                OutboxEntry {
                    seq: 7,
                    body: OutboxBody::Replica {
                        key: ReplicaKey::new(&n("weather"), &n("web"), 0),
                        status: Some(Box::new(ReplicaStatus {
                            report,
                            last_exit: Some(LastExit {
                                at: Timestamp(T0),
                                reason: "exited 137".into(),
                            }),
                        })),
                    },
                },
                OutboxEntry {
                    seq: 8,
                    body: OutboxBody::LogsDropped(LogsDropped {
                        spans: vec![span.clone()],
                        bytes: 120,
                        batches: 1,
                    }),
                },
                OutboxEntry {
                    seq: 9,
                    body: OutboxBody::Logs(LogBatch {
                        spans: vec![LogSpan {
                            source: LogSource {
                                stream: LogStream::Stderr,
                                ..source
                            },
                            first_line: 3,
                            lines: 1,
                        }],
                        raw_len: 40,
                        data: vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3],
                    }),
                },
            ],
        },
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn up_node_logs_frame() {
    check(
        "up_node_logs",
        UpFrame::NodeLogs {
            request: 3,
            result: frame::NodeLogs::Text {
                raw_len: 11,
                zstd: vec![0x28, 0xb5, 0x2f, 0xfd, 9],
                truncated: true,
            },
        },
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn down_outbox_ack_frame() {
    check(
        "down_outbox_ack",
        DownFrame::OutboxAck {
            epoch: 0x1234_5678_9abc,
            seqs: vec![7, 8, 9],
        },
        frame::encode_down,
        frame::decode_down,
    );
}

#[test]
fn down_node_logs_request_frame() {
    check(
        "down_node_logs_request",
        DownFrame::NodeLogsRequest {
            request: 3,
            since: Some(Timestamp(T0)),
            max_bytes: 1 << 20,
        },
        frame::encode_down,
        frame::decode_down,
    );
}

/// The snapshot inside the chunk reassembles to the fixed snapshot.
#[test]
fn golden_snapshot_chunk_reassembles() {
    let text = std::fs::read_to_string(golden_path("down_snapshot_chunk")).unwrap();
    let DownFrame::SnapshotChunk {
        node_seq,
        index,
        total,
        bytes,
    } = frame::decode_down(&from_hex_text(&text)).unwrap()
    else {
        panic!("not a snapshot chunk");
    };
    let mut a = frame::SnapshotAssembler::default();
    match a.offer(node_seq, index, total, bytes).unwrap() {
        frame::Assembly::Complete(snap) => assert_eq!(*snap, snapshot()),
        other => panic!("{other:?}"),
    }
}

/// The raw payload of a log batch (before zstd), chunk format 2: `CHUNKS_V2`, then the
/// chunks, with a long line in pieces. Batches of format 1 (no prefix, no pieces) are still
/// read (`outbox::tests::batches_of_chunk_format_1_are_still_read`).
#[test]
fn log_chunks_v2_payload() {
    use skerry_shared::outbox::{CHUNKS_V2, LogChunk, Pieces, decode_chunks};
    let chunks = vec![LogChunk {
        source: LogSource {
            instance: n("weather"),
            component: n("db"),
            replica: 1,
            stream: LogStream::File("app.log".into()),
        },
        first_line: 41,
        time: Timestamp(T0),
        lines: vec!["tail of 41".into(), "42a".into(), "42b".into(), "43".into()],
        pieces: Pieces {
            first_part: 2,
            continued: vec![1],
        },
    }];
    check(
        "log_chunks_v2",
        chunks,
        |c| Ok(postcard::to_extend(c, CHUNKS_V2.to_vec()).unwrap()),
        |b| Ok(decode_chunks(b).unwrap()),
    );
}

#[test]
fn down_renew_certificate_frame() {
    check(
        "down_renew_certificate",
        DownFrame::RenewCertificate {
            reason: "two thirds of its life have passed".into(),
        },
        frame::encode_down,
        frame::decode_down,
    );
}

#[test]
fn down_certificate_frame() {
    check(
        "down_certificate",
        DownFrame::Certificate {
            certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            expires: Timestamp(T0),
        },
        frame::encode_down,
        frame::decode_down,
    );
}

#[test]
fn down_certificate_refused_frame() {
    check(
        "down_certificate_refused",
        DownFrame::CertificateRefused {
            reason: "the certificate signing request is not valid".into(),
        },
        frame::encode_down,
        frame::decode_down,
    );
}

#[test]
fn up_certificate_request_frame() {
    check(
        "up_certificate_request",
        UpFrame::CertificateRequest {
            csr: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
                .into(),
        },
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn up_secrets_key_frame() {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::try_from(i).unwrap();
    }
    let frame = UpFrame::SecretsKey {
        key: skerry_shared::secret::NodeSecretsKey(key),
    };
    check(
        "up_secrets_key",
        frame.clone(),
        frame::encode_up,
        frame::decode_up,
    );
    // Fixed size: the format byte, the variant, the 32 bytes; a short key does not decode.
    let bytes = frame::encode_up(&frame).unwrap();
    assert_eq!(bytes.len(), 34);
    assert!(frame::decode_up(&bytes[..33]).is_err());
}

/// A stop and a restart as a node receives them: the spec's lifecycle rides in its last
/// postcard slot (tag 2), after the first release's fields.
#[test]
fn down_events_lifecycle_frame() {
    let mut stopped = instance();
    stopped.lifecycle.stopped = true;
    let mut restarted = instance();
    restarted.lifecycle.restarts.insert(n("db"), 2);
    let change = |spec: InstanceSpec, reason| EventPayload::InstanceNodesChanged {
        instance: Box::new(spec),
        changes: vec![skerry_shared::event::NodeChange {
            node: node(),
            reason,
        }],
    };
    let frame = DownFrame::Events(vec![
        NodeEvent {
            node_seq: 5,
            seq: 105,
            time: Timestamp(T0 + 5),
            payload: change(
                stopped,
                skerry_shared::event::ChangeReason::Stopped { all: true },
            ),
        },
        NodeEvent {
            node_seq: 6,
            seq: 106,
            time: Timestamp(T0 + 6),
            payload: change(
                restarted,
                skerry_shared::event::ChangeReason::Rollout {
                    rollout: 1,
                    batch: 1,
                },
            ),
        },
    ]);
    check(
        "down_events_lifecycle",
        frame,
        frame::encode_down,
        frame::decode_down,
    );
}

/// A replica of a stopped instance, as its node reports it.
#[test]
fn up_status_stopped_frame() {
    let report = ReplicaReport {
        instance: n("weather"),
        component: n("db"),
        replica: 0,
        state: ReplicaState::Stopped,
        restarts: 0,
        reason: None,
        spec_hash: Digest::of(b"db"),
        ports: vec![],
    };
    check(
        "up_status_stopped",
        UpFrame::Status(StatusReport {
            complete: true,
            replicas: vec![report],
            removed: vec![],
        }),
        frame::encode_up,
        frame::decode_up,
    );
}

/// A job's run as its node reports it at its end, in an outbox frame; and a job with a time
/// zone, a concurrency and a timeout in a deploy (the component's fourth tail variant).
#[test]
fn up_outbox_job_run_frame() {
    use skerry_shared::job::{JobRun, RunOutcome, RunTrigger};
    use skerry_shared::outbox::{JobReport, OutboxBody, OutboxEntry};
    let run = JobRun {
        instance: n("weather"),
        component: n("cleanup"),
        replica: 0,
        id: 1_796_515_200_000,
        trigger: RunTrigger::Schedule {
            due: Timestamp(1_796_515_200_000),
        },
        started: Timestamp(1_796_515_200_000),
        ended: Some(Timestamp(1_796_515_201_500)),
        outcome: RunOutcome::Exited { code: 0 },
        skipped: 1,
        spec_hash: Digest::of(b"cleanup"),
        last_lines: vec!["removed 3 files".into()],
    };
    check(
        "up_outbox_job_run",
        UpFrame::Outbox {
            epoch: 7,
            entries: vec![OutboxEntry {
                seq: 12,
                body: OutboxBody::JobRun(Box::new(JobReport {
                    run,
                    dropped_before: 0,
                })),
            }],
        },
        frame::encode_up,
        frame::decode_up,
    );
}

#[test]
fn job_settings_component_bytes() {
    use skerry_shared::manifest::Concurrency;
    let mut c = component("cleanup", ComponentKind::Job);
    c.schedule = Some("0 9 * * *".into());
    c.timezone = Some("Europe/Berlin".into());
    c.concurrency = Some(Concurrency::Replace);
    c.timeout = Some("10m".parse().unwrap());
    let bytes = postcard::to_stdvec(&c).unwrap();
    let path = golden_path("component_job_settings");
    if std::env::var_os("SKERRY_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, to_hex_text(&bytes)).unwrap();
        return;
    }
    let golden = from_hex_text(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(to_hex_text(&bytes), to_hex_text(&golden));
    assert_eq!(
        postcard::from_bytes::<skerry_shared::manifest::Component>(&golden).unwrap(),
        c
    );
}
