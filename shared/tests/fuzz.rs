//! The short fuzzing pass of the normal suite, on stable Rust.
//!
//! Every decoder of outside bytes (down and up frames, log batches, snapshot chunks, the
//! manifest parser) gets proptest-generated inputs and inputs mutated from the golden
//! frames and example manifests, through the same targets as the cargo-fuzz crate
//! (`skerry_shared::fuzzing`). Each input must not panic, and the most bytes allocated at
//! one time while it is handled must stay under [`bound`]: 128 bytes per byte of input
//! (or of what it decompressed to) plus 1 MiB. The regression cases at the end are inputs
//! that once broke a bound or an invariant.
//!
//! `SKERRY_FUZZ_CASES` sets the cases per generator (default 64). Run with `--nocapture`
//! to see the cases run and the largest allocation ratio:
//! `cargo test -p skerry-shared --test fuzz -- --nocapture`. With `SKERRY_FUZZ_SEEDS=DIR`
//! the valid inputs made here are also written to `DIR/TARGET/`, a seed corpus for the
//! cargo-fuzz targets (`SKERRY_FUZZ_SEEDS=$PWD/fuzz/corpus`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{EventPayload, NodeEvent};
use skerry_shared::frame::{self, CHUNK_OVERHEAD_BYTES, SnapshotAssembler, UpFrame};
use skerry_shared::fuzzing::{self, Fuzzed};
use skerry_shared::ids::Name;
use skerry_shared::manifest::{self, MAX_CYCLES_REPORTED};
use skerry_shared::outbox::{
    CHUNKS_V2, LogBatch, LogChunk, LogSource, LogStream, OutboxBody, OutboxEntry, Pieces,
    ZSTD_LEVEL,
};

/// Bytes a decoder may hold at one time: 128 per byte of input, or of what it decompressed
/// to, plus 1 MiB (serde's cap on what a length prefix may make it reserve ahead).
fn bound(input: usize, fuzzed: Fuzzed) -> u64 {
    128 * (input + fuzzed.inflated) as u64 + (1 << 20)
}

type Target = fn(&[u8]) -> Fuzzed;

#[derive(Default)]
struct Stats {
    cases: u64,
    accepted: u64,
    peak: u64,
    /// The largest peak per byte, among inputs of 1 KiB or more (below that, the fixed
    /// part dominates).
    ratio: f64,
}

thread_local! {
    static STATS: RefCell<Stats> = RefCell::new(Stats::default());
}

/// Runs one target on one input under the allocation counter and checks the bound.
fn run(name: &str, target: Target, input: &[u8]) -> Fuzzed {
    let mut fuzzed = Fuzzed::default();
    let info = allocation_counter::measure(|| fuzzed = target(input));
    let limit = bound(input.len(), fuzzed);
    assert!(
        info.bytes_max <= limit,
        "{name}: {} bytes held at once for an input of {} bytes (inflated to {}), over {limit}; input: {}",
        info.bytes_max,
        input.len(),
        fuzzed.inflated,
        hex::encode(&input[..input.len().min(512)])
    );
    STATS.with(|s| {
        let mut s = s.borrow_mut();
        s.cases += 1;
        s.accepted += u64::from(fuzzed.accepted);
        s.peak = s.peak.max(info.bytes_max);
        let work = input.len() + fuzzed.inflated;
        if work >= 1024 {
            s.ratio = s.ratio.max(info.bytes_max as f64 / work as f64);
        }
    });
    fuzzed
}

/// Writes a valid input to the seed corpus of `target`, when `SKERRY_FUZZ_SEEDS` names one.
fn seed(target: &str, bytes: &[u8]) {
    let Some(dir) = std::env::var_os("SKERRY_FUZZ_SEEDS") else {
        return;
    };
    let dir = PathBuf::from(dir).join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let digest = skerry_shared::hash::Digest::of(bytes);
    std::fs::write(dir.join(format!("{digest}")), bytes).unwrap();
}

fn cases() -> u32 {
    std::env::var("SKERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

fn report(what: &str) {
    STATS.with(|s| {
        let s = s.borrow();
        println!(
            "{what}: {} inputs, {} accepted, peak {} bytes held at once, largest ratio {:.1} bytes per input byte (inputs of 1 KiB or more; bound 128 + 1 MiB)",
            s.cases, s.accepted, s.peak, s.ratio
        );
    });
}

fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.hex"));
    let text = std::fs::read_to_string(path).unwrap();
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(digits).unwrap()
}

const DOWN: [&str; 5] = [
    "down_events",
    "down_heartbeat_ack",
    "down_node_logs_request",
    "down_outbox_ack",
    "down_snapshot_chunk",
];
const UP: [&str; 6] = [
    "up_ack",
    "up_heartbeat",
    "up_hello",
    "up_node_logs",
    "up_outbox",
    "up_status",
];

/// One mutation of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    /// Copies a range to another place (repeats structure, as a fuzzer's splice does).
    Splice(prop::sample::Index, usize, prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![0u8, 1, 0x7f, 0x80, 0xff, b'-', b':', b'\n']);
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<prop::sample::Index>(), interesting).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<prop::sample::Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (
            any::<prop::sample::Index>(),
            1usize..64,
            any::<prop::sample::Index>()
        )
            .prop_map(|(i, n, to)| Mutation::Splice(i, n, to)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            bytes.push(0);
        }
        let len = bytes.len();
        match m {
            Mutation::Set(i, b) => bytes[i.index(len)] = *b,
            Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
            Mutation::Insert(i, b) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let at = i.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Splice(i, n, to) => {
                let at = i.index(len);
                let piece = bytes[at..(at + n).min(len)].to_vec();
                let to = to.index(len + 1);
                bytes.splice(to..to, piece);
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        }
    }
    bytes
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..8)
}

#[test]
fn golden_frames_are_accepted_whole() {
    for name in DOWN {
        assert!(
            run(name, fuzzing::down_frame, &golden(name)).accepted,
            "{name}"
        );
    }
    for name in UP {
        // (Their batches and node logs carry stand-ins for zstd: `log_batches` has real ones.)
        assert!(
            run(name, fuzzing::up_frame, &golden(name)).accepted,
            "{name}"
        );
    }
    report("golden frames");
}

#[test]
fn mutated_frames() {
    let seeds: Vec<Vec<u8>> = DOWN.iter().chain(UP.iter()).map(|n| golden(n)).collect();
    runner()
        .run(&(prop::sample::select(seeds), mutations()), |(seed, m)| {
            let bytes = mutate(seed, &m);
            run("down frame", fuzzing::down_frame, &bytes);
            run("up frame", fuzzing::up_frame, &bytes);
            Ok(())
        })
        .unwrap();
    report("mutated frames");
}

#[test]
fn random_frames() {
    runner()
        .run(&prop::collection::vec(any::<u8>(), 0..2048), |mut bytes| {
            run("down frame", fuzzing::down_frame, &bytes);
            run("up frame", fuzzing::up_frame, &bytes);
            bytes.insert(0, frame::FORMAT_VERSION);
            run("down frame", fuzzing::down_frame, &bytes);
            run("up frame", fuzzing::up_frame, &bytes);
            Ok(())
        })
        .unwrap();
    report("random frames");
}

fn name() -> impl Strategy<Value = Name> {
    "[a-z][a-z0-9-]{0,8}[a-z0-9]".prop_map(|s| Name::parse(&s).unwrap())
}

fn chunks() -> impl Strategy<Value = Vec<LogChunk>> {
    let stream = prop_oneof![
        Just(LogStream::Stdout),
        Just(LogStream::Stderr),
        "[a-z.]{1,12}".prop_map(LogStream::File),
    ];
    let chunk = (
        name(),
        name(),
        0u32..3,
        stream,
        1u64..1_000_000,
        prop::collection::vec(".{0,40}", 0..20),
        (0u32..3, any::<u32>()),
    )
        .prop_map(
            |(instance, component, replica, stream, first_line, lines, (first_part, cut))| {
                // Pieces of long lines: entries whose bit is set go on in the next one.
                let continued = (0..lines.len() as u32)
                    .filter(|i| cut & (1 << i) != 0)
                    .collect();
                LogChunk {
                    source: LogSource {
                        instance,
                        component,
                        replica,
                        stream,
                    },
                    first_line,
                    time: Timestamp(1_700_000_000_000),
                    lines,
                    pieces: Pieces {
                        first_part,
                        continued,
                    },
                }
            },
        );
    prop::collection::vec(chunk, 0..6)
}

#[test]
fn log_batches() {
    runner()
        .run(&(chunks(), mutations()), |(chunks, m)| {
            // The lines as a batch carries them (chunk format 2; compressed by the target).
            let raw = postcard::to_extend(&chunks, CHUNKS_V2.to_vec()).unwrap();
            seed("log_batch", &raw);
            assert!(run("log lines", fuzzing::log_batch, &raw).inflated > 0);
            run("log lines", fuzzing::log_batch, &mutate(raw, &m));
            // A whole batch, mutated, zstd included.
            let batch = postcard::to_stdvec(&LogBatch::pack(&chunks).unwrap()).unwrap();
            seed("log_batch", &batch);
            run("log batch", fuzzing::log_batch, &mutate(batch.clone(), &m));
            // The batch in an up frame.
            let frame = frame::encode_up(&UpFrame::Outbox {
                epoch: 1,
                entries: vec![OutboxEntry {
                    seq: 1,
                    body: OutboxBody::Logs(LogBatch::pack(&chunks).unwrap()),
                }],
            })
            .unwrap();
            seed("up_frame", &frame);
            assert!(run("up frame", fuzzing::up_frame, &frame).accepted);
            run("up frame", fuzzing::up_frame, &mutate(frame, &m));
            Ok(())
        })
        .unwrap();
    report("log batches");
}

/// The postcard of the chunks `fuzzing::snapshot_chunks` takes.
fn chunk_list(chunks: &[(u64, u32, u32, Vec<u8>)]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Chunk<'a> {
        node_seq: u64,
        index: u32,
        total: u32,
        #[serde(with = "serde_bytes_compat")]
        bytes: &'a [u8],
    }
    mod serde_bytes_compat {
        pub fn serialize<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }
    let list: Vec<Chunk<'_>> = chunks
        .iter()
        .map(|(node_seq, index, total, bytes)| Chunk {
            node_seq: *node_seq,
            index: *index,
            total: *total,
            bytes,
        })
        .collect();
    postcard::to_stdvec(&list).unwrap()
}

/// The snapshot in the golden chunk frame, cut into `pieces` chunks, shuffled by `order`.
fn snapshot_pieces(pieces: usize, order: &[prop::sample::Index]) -> Vec<(u64, u32, u32, Vec<u8>)> {
    let frame::DownFrame::SnapshotChunk {
        node_seq, bytes, ..
    } = frame::decode_down(&golden("down_snapshot_chunk")).unwrap()
    else {
        panic!("not a chunk")
    };
    let size = bytes.len().div_ceil(pieces).max(1);
    let parts: Vec<Vec<u8>> = bytes.chunks(size).map(<[u8]>::to_vec).collect();
    let total = parts.len() as u32;
    let mut chunks: Vec<_> = parts
        .into_iter()
        .zip(0u32..)
        .map(|(b, i)| (node_seq, i, total, b))
        .collect();
    for (k, i) in order.iter().enumerate() {
        let len = chunks.len();
        chunks.swap(k % len, i.index(len));
    }
    chunks
}

#[test]
fn snapshot_chunks() {
    runner()
        .run(
            &(
                1usize..12,
                prop::collection::vec(any::<prop::sample::Index>(), 0..12),
                mutations(),
            ),
            |(pieces, order, m)| {
                let list = chunk_list(&snapshot_pieces(pieces, &order));
                seed("snapshot_chunks", &list);
                assert!(run("snapshot chunks", fuzzing::snapshot_chunks, &list).accepted);
                run(
                    "snapshot chunks",
                    fuzzing::snapshot_chunks,
                    &mutate(list, &m),
                );
                Ok(())
            },
        )
        .unwrap();
    report("snapshot chunks");
}

const EXAMPLE: &str = include_str!("../../deploy/examples/weather.yaml");

const SMALL: &str = "app: a\nversion: 1.0.0\ncomponents:\n  - { name: db, image: i, depends_on: [web] }\n  - name: web\n    image: i\n    ports: [ { container: 80, expose: nodeport } ]\n    env: &e { A: b }\n    health: { command: [x], interval: 5s }\n  - { name: job, kind: job, image: i, schedule: '*/5 * * * *' }\n";

/// Pieces of YAML and of the manifest's vocabulary that byte mutations rarely make.
const TOKENS: [&str; 16] = [
    "&a ",
    "*a",
    "<<: *a\n",
    "[",
    "]",
    "{",
    "}",
    "\n  - ",
    ": ",
    "depends_on: [db, web]",
    "replicas: 99999999999",
    "memory: { request: 1Ei, limit: 1Ki }",
    "!!binary ",
    "? ",
    "\"\\u0000\"",
    "'",
];

#[test]
fn manifests() {
    assert!(run("example", fuzzing::manifest, EXAMPLE.as_bytes()).accepted);
    assert!(run("small", fuzzing::manifest, SMALL.as_bytes()).accepted);
    let token_edit = (
        any::<prop::sample::Index>(),
        prop::sample::select(TOKENS.to_vec()),
    );
    runner()
        .run(
            &(
                prop::sample::select(vec![EXAMPLE, SMALL]),
                prop::collection::vec(token_edit, 0..6),
                mutations(),
                any::<bool>(),
            ),
            |(seed, tokens, m, bytes_too)| {
                let mut text = seed.to_owned();
                for (at, token) in tokens {
                    let mut i = at.index(text.len() + 1);
                    while !text.is_char_boundary(i) {
                        i -= 1;
                    }
                    text.insert_str(i, token);
                }
                run("manifest", fuzzing::manifest, text.as_bytes());
                if bytes_too {
                    run(
                        "manifest",
                        fuzzing::manifest,
                        &mutate(text.into_bytes(), &m),
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    report("manifests");
}

// Regression cases.

/// A chain of components where the last depends on every other: as many cycles as
/// components, each as long as the chain. Reporting every one took memory quadratic in the
/// manifest (4.5 million names in the messages for 3,000 components in 170 KB). Since
/// components are bounded ([`manifest::MAX_COMPONENTS`]) the chain is that long: still
/// more cycles than are reported.
#[test]
fn many_dependency_cycles_are_capped() {
    let n = manifest::MAX_COMPONENTS;
    let mut yaml = String::from("app: a\nversion: 1.0.0\ncomponents:\n");
    for i in 0..n - 1 {
        yaml.push_str(&format!(
            "  - {{ name: c{i}, image: i, depends_on: [c{}] }}\n",
            i + 1
        ));
    }
    let all: Vec<String> = (0..n - 1).map(|i| format!("c{i}")).collect();
    yaml.push_str(&format!(
        "  - {{ name: c{}, image: i, depends_on: [{}] }}\n",
        n - 1,
        all.join(", ")
    ));
    run("cycles", fuzzing::manifest, yaml.as_bytes());
    let errors = manifest::parse_manifest(&yaml).unwrap_err().errors;
    let cycles = errors
        .iter()
        .filter(|e| e.message.starts_with("cycle: "))
        .count();
    println!(
        "{n} components ({} bytes): {} errors, {cycles} cycles reported",
        yaml.len(),
        errors.len()
    );
    assert_eq!(cycles, MAX_CYCLES_REPORTED);
    assert_eq!(errors.len(), MAX_CYCLES_REPORTED + 1);
    assert!(
        errors
            .last()
            .unwrap()
            .message
            .contains("more dependency cycles")
    );
}

/// Chunks of one byte each: every one held some 70 bytes while it counted one against the
/// assembler's limit, so a limit of 1 MiB let them hold tens of MiB.
#[test]
fn tiny_snapshot_chunks_count_their_overhead() {
    let limit = 1 << 20;
    let mut assembler = SnapshotAssembler::new(limit);
    let mut kept = 0u32;
    let info = allocation_counter::measure(|| {
        for index in 0..u32::MAX - 1 {
            match assembler.offer(7, index, u32::MAX, vec![index as u8]) {
                Ok(_) => kept += 1,
                Err(_) => break,
            }
        }
        // Held only while the partial snapshot is; it was dropped at the refusal.
    });
    let per_chunk = info.bytes_max as f64 / f64::from(kept.max(1));
    println!(
        "assembler limit {limit} bytes: {kept} one-byte chunks kept, {} bytes held at most ({per_chunk:.1} per chunk, {CHUNK_OVERHEAD_BYTES} counted)",
        info.bytes_max
    );
    assert!(kept > 0);
    assert!(
        info.bytes_max <= 2 * limit as u64,
        "{} bytes held under a limit of {limit}",
        info.bytes_max
    );
}

/// A log batch whose zstd data goes on after its frame (a second frame of nothing, which
/// zstd alone decompresses to the same lines) is refused: one batch, one encoding.
#[test]
fn bytes_after_a_batch_frame_are_refused() {
    let chunk = LogChunk {
        source: LogSource {
            instance: Name::parse("w1").unwrap(),
            component: Name::parse("web").unwrap(),
            replica: 0,
            stream: LogStream::Stdout,
        },
        first_line: 1,
        time: Timestamp(0),
        lines: vec!["hello".into(); 10],
        pieces: Default::default(),
    };
    let mut batch = LogBatch::pack(&[chunk]).unwrap();
    let bytes = postcard::to_stdvec(&batch).unwrap();
    assert!(run("batch", fuzzing::log_batch, &bytes).inflated > 0);
    batch
        .data
        .extend(zstd::bulk::compress(&[], ZSTD_LEVEL).unwrap());
    assert!(batch.unpack().is_err());
    let bytes = postcard::to_stdvec(&batch).unwrap();
    assert_eq!(run("batch", fuzzing::log_batch, &bytes).inflated, 0);
}

/// Large variants are boxed, so one event decoded from a few bytes does not take hundreds
/// of bytes of memory. Before, `EventPayload` took 320 bytes, `NodeEvent` 344 and
/// `OutboxBody` 240: events of 6 bytes each filled a frame with 57 times their size.
#[test]
fn events_stay_small_in_memory() {
    let sizes = [
        ("EventPayload", size_of::<EventPayload>()),
        ("NodeEvent", size_of::<NodeEvent>()),
        ("OutboxBody", size_of::<OutboxBody>()),
    ];
    println!("sizes in memory: {sizes:?}");
    for (what, size) in sizes {
        assert!(size <= 192, "{what} takes {size} bytes");
    }
    // A frame full of the smallest events.
    let ev = NodeEvent {
        node_seq: 1,
        seq: 1,
        time: Timestamp(0),
        payload: EventPayload::EnvironmentDeleted {
            name: Name::parse("a").unwrap(),
        },
    };
    let one = postcard::to_stdvec(&ev).unwrap().len();
    let events = vec![ev; (frame::MAX_FRAME_BYTES - 8) / one];
    let bytes = frame::encode_down(&frame::DownFrame::Events(events)).unwrap();
    run("smallest events", fuzzing::down_frame, &bytes);
    report("smallest events");
}

/// Postcard takes an overlong varint as the number it encodes, so a frame may decode from
/// more than one byte string; re-encoding gives the shortest. Documented, not refused.
#[test]
fn overlong_varints_decode_to_the_same_value() {
    let short = frame::encode_up(&UpFrame::Ack { node_seq: 1 }).unwrap();
    assert_eq!(short, [frame::FORMAT_VERSION, 1, 1]);
    let long = [frame::FORMAT_VERSION, 1, 0x81, 0x80, 0x00];
    assert_eq!(frame::decode_up(&long), Ok(UpFrame::Ack { node_seq: 1 }));
    assert!(run("overlong", fuzzing::up_frame, &long).accepted);
}
