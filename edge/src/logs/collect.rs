//! The log collector: every source of the desired state, read about once a second, queued
//! in the outbox together with the cursors that say how far it was read.
//!
//! Sources:
//! - a container component with a `log_dir`: the node's directory mounted there
//!   (`DATA/logs/{instance}/{component}-{replica}`), one per replica;
//! - an `exec` component with a `log_dir`: that host path, one source per replica. The
//!   replicas write `{component}-{replica}.stdout.log` and `.stderr.log` there, and other
//!   `exec` components may name the same path, so each source reads only its own files
//!   ([`NameFilter`]): those whose path there starts with `{component}-{replica}.`, and
//!   the first source of the path (by instance, component, replica) also the files that no
//!   replica's name claims. Every file is read once, under one replica.
//! - an `exec` replica without a `log_dir`: its standard output and error, which the
//!   process runtime writes to files of its own ([`crate::runtime::process::output_dir`]),
//!   shipped as `(stdout)` and `(stderr)` as a container's are;
//! - every container replica's own stdout and stderr, from the engine.
//!
//! One round reads what is new from every source (bounded per source and in all), packs it
//! into zstd batches of at most [`BATCH_RAW_BYTES`], and pushes the batches and the new
//! cursors to the journal in ONE transaction ([`Journal::outbox_push`]). Only after that
//! commit does the collector move its cursors on: after a crash, the journal's cursors and
//! the queued batches agree, so a line is neither lost nor queued twice. A source that
//! leaves the desired state is read for [`GRACE`] more (its last lines, written while it
//! stopped) and then dropped, with its cursor.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skerry_shared::clock::Timestamp;
use skerry_shared::ids::NodeId;
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::outbox::{
    LogBatch, LogChunk, LogSource, LogStream, LogsDropped, LogsWaiting, MAX_WAITING_REPLICAS,
    OutboxBody,
};
use skerry_shared::planner::ReplicaKey;
use skerry_shared::reducer::NodeDesired;
use tokio::time::Instant;

use super::filter::NameFilter;
use super::tail::DirTailer;
use crate::journal::{Journal, JournalError, OutboxPush};
use crate::reconciler::resolve::log_dir_host;
use crate::runtime::docker::spec::container_name;
use crate::runtime::docker::{OutputCursor, OutputReader};

/// Uncompressed bytes per batch at most.
pub const BATCH_RAW_BYTES: usize = 128 * 1024;
/// Bytes read from one source per round at most.
pub const SOURCE_ROUND_BYTES: usize = 512 * 1024;
/// Bytes read in one round at most, all sources together.
pub const ROUND_BYTES: usize = 4 * 1024 * 1024;
/// How long a source that is no longer desired is still read.
pub const GRACE: Duration = Duration::from_secs(30);

/// Where a source's lines come from.
#[derive(Debug)]
enum Reader {
    Dir(Box<DirTailer>),
    Output {
        container: String,
        cursor: OutputCursor,
    },
}

#[derive(Debug)]
struct Source {
    /// Lines are attributed to this replica.
    key: ReplicaKey,
    reader: Reader,
    /// Set when it left the desired state.
    gone_since: Option<Instant>,
    /// Its files are a process's own output: `….stdout.log` is `(stdout)`, `….stderr.log`
    /// `(stderr)`.
    process_output: bool,
    /// Files of its directory not read for want of a slot, at its last poll.
    waiting: u64,
}

/// A source the desired state calls for.
#[derive(Debug)]
struct Wanted {
    key: ReplicaKey,
    /// `None`: the container's output from the engine.
    dir: Option<PathBuf>,
    filter: Option<NameFilter>,
    process_output: bool,
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Lines queued in the outbox.
    pub lines: u64,
    pub batches: usize,
    /// What the push dropped for the quota.
    pub dropped: LogsDropped,
    /// A source had more than one round takes: run again soon.
    pub more: bool,
}

/// Reads the node's log sources into the outbox.
#[derive(Debug)]
pub struct Collector {
    node: NodeId,
    data: PathBuf,
    journal: Arc<dyn Journal>,
    docker: Option<OutputReader>,
    quota: u64,
    /// The cursors as the journal has them.
    committed: BTreeMap<String, Vec<u8>>,
    sources: BTreeMap<String, Source>,
    /// The files waiting for a slot, per replica, as last queued for the cloud.
    reported_waiting: BTreeMap<ReplicaKey, u64>,
}

fn dir_key(key: &ReplicaKey) -> String {
    format!("dir/{}/{}/{}", key.instance, key.component, key.replica)
}

fn output_key(key: &ReplicaKey) -> String {
    format!("out/{}/{}/{}", key.instance, key.component, key.replica)
}

/// The replica of a directory source's id (`dir/…` or `own/…`).
fn source_replica(id: &str) -> Option<ReplicaKey> {
    let rest = id
        .strip_prefix("dir/")
        .or_else(|| id.strip_prefix("own/"))?;
    let mut parts = rest.split('/');
    let instance = skerry_shared::ids::Name::parse(parts.next()?).ok()?;
    let component = skerry_shared::ids::Name::parse(parts.next()?).ok()?;
    let replica = parts.next()?.parse().ok()?;
    Some(ReplicaKey::new(&instance, &component, replica))
}

/// Files waiting for a slot per replica, as the saved positions in `cursors` say (for
/// `skerry-edge status`, which reads only the journal).
pub fn waiting_of(cursors: &BTreeMap<String, Vec<u8>>) -> BTreeMap<ReplicaKey, u64> {
    let mut out = BTreeMap::new();
    for (id, state) in cursors {
        let Some(key) = source_replica(id) else {
            continue;
        };
        let files = super::tail::waiting_in(state);
        if files > 0 {
            *out.entry(key).or_insert(0) += files;
        }
    }
    out
}

fn process_output_key(key: &ReplicaKey) -> String {
    format!("own/{}/{}/{}", key.instance, key.component, key.replica)
}

/// The stream of a line read from a process's own output file.
fn process_stream(file: String) -> LogStream {
    if file.ends_with(".stdout.log") {
        LogStream::Stdout
    } else if file.ends_with(".stderr.log") {
        LogStream::Stderr
    } else {
        LogStream::File(file)
    }
}

/// The sources of `desired`, by id. `data` is the agent's data directory.
fn wanted(desired: &NodeDesired, data: &std::path::Path, docker: bool) -> BTreeMap<String, Wanted> {
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    // `exec` replicas per shared directory, and those without a `log_dir`.
    let mut shared: BTreeMap<PathBuf, Vec<ReplicaKey>> = BTreeMap::new();
    let mut own: Vec<ReplicaKey> = Vec::new();
    for instance in desired.instances.values() {
        let spec = &instance.spec;
        for c in &spec.manifest.components {
            let container = c.runtime() == RuntimeKind::Docker;
            for replica in 0..c.replicas() {
                let key = ReplicaKey::new(&spec.name, &c.name, replica);
                match (&c.log_dir, container) {
                    (Some(_), true) => {
                        wanted.insert(
                            dir_key(&key),
                            Wanted {
                                dir: Some(log_dir_host(data, &key)),
                                key: key.clone(),
                                filter: None,
                                process_output: false,
                            },
                        );
                    }
                    (Some(dir), false) => shared
                        .entry(PathBuf::from(dir))
                        .or_default()
                        .push(key.clone()),
                    (None, false) => own.push(key.clone()),
                    (None, true) => {}
                }
                if container && docker {
                    wanted.insert(
                        output_key(&key),
                        Wanted {
                            key,
                            dir: None,
                            filter: None,
                            process_output: false,
                        },
                    );
                }
            }
        }
    }
    for (dir, mut keys) in shared {
        keys.sort();
        let prefixes: Vec<String> = keys
            .iter()
            .map(|k| format!("{}-{}.", k.component, k.replica))
            .collect();
        for (i, key) in keys.into_iter().enumerate() {
            wanted.insert(
                dir_key(&key),
                Wanted {
                    key,
                    dir: Some(dir.clone()),
                    filter: Some(NameFilter::new(prefixes.clone(), i, true)),
                    process_output: false,
                },
            );
        }
    }
    own.sort();
    let prefixes: Vec<String> = own
        .iter()
        .map(|k| format!("{}.{}.{}.", k.instance, k.component, k.replica))
        .collect();
    let out_dir = crate::runtime::process::output_dir(data);
    for (i, key) in own.into_iter().enumerate() {
        wanted.insert(
            process_output_key(&key),
            Wanted {
                key,
                dir: Some(out_dir.clone()),
                filter: Some(NameFilter::new(prefixes.clone(), i, false)),
                process_output: true,
            },
        );
    }
    wanted
}

impl Collector {
    /// A collector for `node`, resuming from the cursors in `journal`, queueing at most
    /// `quota` bytes of log batches (the profile's `agent.log_quota`). Without `docker`
    /// (the agent's engine's [`OutputReader`]), containers' own output is not read.
    pub fn new(
        node: NodeId,
        data: PathBuf,
        journal: Arc<dyn Journal>,
        docker: Option<OutputReader>,
        quota: u64,
    ) -> Result<Self, JournalError> {
        let committed = journal.log_cursors()?;
        // What the last agent said, as its saved positions have it.
        let reported_waiting = waiting_of(&committed);
        Ok(Self {
            reported_waiting,
            node,
            data,
            journal,
            docker,
            quota,
            committed,
            sources: BTreeMap::new(),
        })
    }

    /// Sources being read now.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Follows the sources of `desired`: new ones are added (resuming from their cursors),
    /// and those no longer desired are read for [`GRACE`] more.
    pub fn follow(&mut self, desired: &NodeDesired) {
        let now = Instant::now();
        let mut wanted = wanted(desired, &self.data, self.docker.is_some());
        for (id, source) in &mut self.sources {
            match wanted.get(id) {
                Some(w) => {
                    source.gone_since = None;
                    // Another replica came to (or left) a shared directory.
                    if let Reader::Dir(t) = &mut source.reader
                        && t.filter() != w.filter.as_ref()
                        && let Some(f) = &w.filter
                    {
                        t.set_filter(f.clone());
                    }
                }
                None => {
                    if source.gone_since.is_none() {
                        source.gone_since = Some(now);
                    }
                }
            }
        }
        wanted.retain(|id, _| !self.sources.contains_key(id));
        for (id, w) in wanted {
            let state = self.committed.get(&id).map(Vec::as_slice);
            let reader = match w.dir {
                Some(dir) => {
                    let tailer = DirTailer::new(dir, state);
                    Reader::Dir(Box::new(match w.filter {
                        Some(f) => tailer.with_filter(f),
                        None => tailer,
                    }))
                }
                None => Reader::Output {
                    container: container_name(self.node, &w.key),
                    cursor: state
                        .and_then(|b| postcard::from_bytes(b).ok())
                        .unwrap_or_default(),
                },
            };
            self.sources.insert(
                id,
                Source {
                    key: w.key,
                    reader,
                    gone_since: None,
                    process_output: w.process_output,
                    waiting: 0,
                },
            );
        }
    }

    /// One round: reads what is new and queues it with the cursors, in one journal
    /// transaction. On an error nothing moved: the next round reads the same lines again.
    pub async fn collect(&mut self) -> Result<Collected, JournalError> {
        let now = Instant::now();
        let mut chunks: Vec<LogChunk> = Vec::new();
        let mut cursors: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut budget = ROUND_BYTES;
        let mut more = false;
        let time = Timestamp::now();

        // Container output first (async reads from the engine).
        for (id, source) in &mut self.sources {
            let Reader::Output { container, cursor } = &source.reader else {
                continue;
            };
            let Some(docker) = &self.docker else { continue };
            if budget == 0 {
                more = true;
                break;
            }
            match docker
                .read(container, cursor, SOURCE_ROUND_BYTES.min(budget))
                .await
            {
                Ok((lines, next)) => {
                    if next != *cursor {
                        let n: usize = lines
                            .iter()
                            .map(|l| l.lines.iter().map(|t| t.len() + 1).sum::<usize>())
                            .sum();
                        budget = budget.saturating_sub(n);
                        more |= n >= SOURCE_ROUND_BYTES;
                        for l in lines {
                            chunks.push(LogChunk {
                                source: source_of(&source.key, l.stream),
                                first_line: l.first_line,
                                time,
                                lines: l.lines,
                                pieces: l.pieces,
                            });
                        }
                        cursors.push((id.clone(), postcard::to_stdvec(&next).ok()));
                    }
                }
                Err(e) => {
                    tracing::debug!(%container, error = %e, "cannot read the container's output")
                }
            }
        }

        // Then the directories, on the blocking pool (file reads).
        let mut dirs: Vec<(String, (ReplicaKey, bool), Box<DirTailer>)> = Vec::new();
        for (id, source) in &mut self.sources {
            if let Reader::Dir(_) = &source.reader {
                let Reader::Dir(tailer) = std::mem::replace(
                    &mut source.reader,
                    Reader::Output {
                        container: String::new(),
                        cursor: OutputCursor::new(),
                    },
                ) else {
                    continue;
                };
                dirs.push((
                    id.clone(),
                    (source.key.clone(), source.process_output),
                    tailer,
                ));
            }
        }
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut budget = budget;
            let mut more = false;
            for (id, key, mut tailer) in dirs {
                let got = if budget == 0 {
                    more = true;
                    None
                } else {
                    match tailer.poll(SOURCE_ROUND_BYTES.min(budget)) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            tracing::warn!(dir = %tailer.dir().display(), error = %e, "cannot read the log directory");
                            None
                        }
                    }
                };
                if let Some(r) = &got {
                    let n: usize = r
                        .files
                        .iter()
                        .map(|f| f.lines.iter().map(|t| t.len() + 1).sum::<usize>())
                        .sum();
                    budget = budget.saturating_sub(n);
                    more |= r.more;
                }
                out.push((id, key, tailer, got));
            }
            (out, more)
        })
        .await
        .map_err(|e| JournalError::Storage {
            journal: "log collector".into(),
            reason: e.to_string(),
        })?;
        let (dirs, dirs_more) = read;
        more |= dirs_more;
        let mut polled: Vec<(String, Box<DirTailer>, Option<u64>)> = Vec::new();
        for (id, (key, process_output), tailer, got) in dirs {
            let waiting = got.as_ref().map(|r| r.waiting);
            if let Some(r) = got {
                if !r.files.is_empty() {
                    for f in r.files {
                        let stream = if process_output {
                            process_stream(f.stream)
                        } else {
                            LogStream::File(f.stream)
                        };
                        chunks.push(LogChunk {
                            source: source_of(&key, stream),
                            first_line: f.first_line,
                            time,
                            lines: f.lines,
                            pieces: f.pieces,
                        });
                    }
                }
                if self.committed.get(&id) != Some(&r.state) {
                    cursors.push((id.clone(), Some(r.state)));
                }
            }
            polled.push((id, tailer, waiting));
        }
        for (id, tailer, waiting) in polled {
            if let Some(source) = self.sources.get_mut(&id) {
                source.reader = Reader::Dir(tailer);
                if let Some(w) = waiting {
                    source.waiting = w;
                }
            }
        }

        // Sources gone for longer than the grace: dropped with their cursors.
        let expired: Vec<String> = self
            .sources
            .iter()
            .filter(|(_, s)| s.gone_since.is_some_and(|t| now.duration_since(t) >= GRACE))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.sources.remove(id);
            if self.committed.contains_key(id) {
                cursors.retain(|(k, _)| k != id);
                cursors.push((id.clone(), None));
            }
        }

        if chunks.is_empty() && cursors.is_empty() {
            return Ok(Collected::default());
        }
        let lines: u64 = chunks.iter().map(|c| c.lines.len() as u64).sum();
        let mut bodies = pack(chunks)?;
        // Files waiting for a slot: said to the cloud when that changes.
        let mut waiting: BTreeMap<ReplicaKey, u64> = BTreeMap::new();
        for s in self.sources.values().filter(|s| s.waiting > 0) {
            *waiting.entry(s.key.clone()).or_insert(0) += s.waiting;
        }
        let waiting_changed = waiting != self.reported_waiting;
        if waiting_changed {
            let list: Vec<LogsWaiting> = waiting
                .iter()
                .take(MAX_WAITING_REPLICAS)
                .map(|(replica, &files)| LogsWaiting {
                    replica: replica.clone(),
                    files,
                })
                .collect();
            let total: u64 = waiting.values().sum();
            if total > 0 {
                tracing::warn!(
                    files = total,
                    limit = super::tail::MAX_TRACKED,
                    "log files wait for a slot: a log_dir holds more files than are read at once (reported)"
                );
            }
            bodies.push(OutboxBody::LogsWaiting(list));
        }
        let batches = bodies.len();
        let push = OutboxPush { bodies, cursors };
        let (journal, quota) = (Arc::clone(&self.journal), self.quota);
        let pushed = tokio::task::spawn_blocking(move || {
            let r = journal.outbox_push(&push, quota);
            (r, push)
        })
        .await
        .map_err(|e| JournalError::Storage {
            journal: "log collector".into(),
            reason: e.to_string(),
        })?;
        match pushed {
            (Ok(p), push) => {
                if waiting_changed {
                    self.reported_waiting = waiting;
                }
                for (id, cursor) in push.cursors {
                    match cursor {
                        Some(c) => {
                            self.committed.insert(id, c);
                        }
                        None => {
                            self.committed.remove(&id);
                        }
                    }
                }
                // Container output moves on to what was just committed.
                for (id, source) in &mut self.sources {
                    if let Reader::Output { cursor, .. } = &mut source.reader
                        && let Some(c) = self
                            .committed
                            .get(id)
                            .and_then(|b| postcard::from_bytes(b).ok())
                    {
                        *cursor = c;
                    }
                }
                if p.dropped.lines() > 0 {
                    tracing::warn!(
                        lines = p.dropped.lines(),
                        batches = p.dropped.batches,
                        "the log quota is full: dropped the oldest queued log lines (counted and reported)"
                    );
                }
                Ok(Collected {
                    lines,
                    batches,
                    dropped: p.dropped,
                    more,
                })
            }
            (Err(e), _) => {
                // Back to the committed cursors: those lines are read again next round.
                self.rewind();
                Err(e)
            }
        }
    }

    /// Every source back at its committed cursor.
    fn rewind(&mut self) {
        for (id, source) in &mut self.sources {
            let state = self.committed.get(id).map(Vec::as_slice);
            source.reader = match &source.reader {
                Reader::Dir(t) => {
                    let tailer = DirTailer::new(t.dir().to_owned(), state);
                    Reader::Dir(Box::new(match t.filter() {
                        Some(f) => tailer.with_filter(f.clone()),
                        None => tailer,
                    }))
                }
                Reader::Output { container, .. } => Reader::Output {
                    container: container.clone(),
                    cursor: state
                        .and_then(|b| postcard::from_bytes(b).ok())
                        .unwrap_or_default(),
                },
            };
        }
    }
}

fn source_of(key: &ReplicaKey, stream: LogStream) -> LogSource {
    LogSource {
        instance: key.instance.clone(),
        component: key.component.clone(),
        replica: key.replica,
        stream,
    }
}

/// Packs chunks into batches of at most [`BATCH_RAW_BYTES`] of text each (a chunk larger
/// than that is split).
fn pack(chunks: Vec<LogChunk>) -> Result<Vec<OutboxBody>, JournalError> {
    let mut bodies = Vec::new();
    let mut batch: Vec<LogChunk> = Vec::new();
    let mut bytes = 0usize;
    let flush =
        |batch: &mut Vec<LogChunk>, bodies: &mut Vec<OutboxBody>| -> Result<(), JournalError> {
            if batch.is_empty() {
                return Ok(());
            }
            let packed = LogBatch::pack(batch).map_err(|e| JournalError::Storage {
                journal: "log collector".into(),
                reason: e.to_string(),
            })?;
            bodies.push(OutboxBody::Logs(packed));
            batch.clear();
            Ok(())
        };
    for chunk in chunks {
        let mut rest = chunk;
        while !rest.lines.is_empty() {
            // Take the lines that fit what is left of the batch (at least one).
            let mut take = 0;
            let mut size = 0;
            for l in &rest.lines {
                if take > 0 && bytes + size + l.len() + 1 > BATCH_RAW_BYTES {
                    break;
                }
                size += l.len() + 1;
                take += 1;
            }
            if take == 0 || (bytes > 0 && bytes + size > BATCH_RAW_BYTES) {
                flush(&mut batch, &mut bodies)?;
                bytes = 0;
                continue;
            }
            // The rest goes on where these stop (a long line's pieces keep its number).
            let tail = rest.split_off(take);
            bytes += size;
            batch.push(std::mem::replace(&mut rest, tail));
            if bytes >= BATCH_RAW_BYTES {
                flush(&mut batch, &mut bodies)?;
                bytes = 0;
            }
        }
    }
    flush(&mut batch, &mut bodies)?;
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use skerry_shared::ids::Name;

    use super::*;

    fn chunk(first: u64, n: usize, width: usize) -> LogChunk {
        LogChunk {
            source: LogSource {
                instance: Name::parse("w").unwrap(),
                component: Name::parse("c").unwrap(),
                replica: 0,
                stream: LogStream::Stdout,
            },
            first_line: first,
            time: Timestamp(0),
            lines: (0..n)
                .map(|i| format!("{:>width$}", first + i as u64))
                .collect(),
            pieces: Default::default(),
        }
    }

    #[test]
    fn batches_keep_to_their_size_and_every_line() {
        let bodies = pack(vec![chunk(1, 10_000, 63), chunk(10_001, 3, 10)]).unwrap();
        assert!(bodies.len() >= 5, "{}", bodies.len());
        let mut next = 1;
        for b in &bodies {
            let OutboxBody::Logs(batch) = b else { panic!() };
            let chunks = batch.unpack().unwrap();
            let raw: usize = chunks.iter().map(LogChunk::text_bytes).sum();
            assert!(raw <= BATCH_RAW_BYTES, "{raw}");
            for c in chunks {
                assert_eq!(c.first_line, next);
                next += c.lines.len() as u64;
            }
        }
        assert_eq!(next, 10_004);
    }
}
