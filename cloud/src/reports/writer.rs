//! The writer thread: takes what has queued (up to [`MAX_BATCH`] requests), applies it in
//! one write transaction, commits it durably, then answers. A batch that changed nothing
//! (only duplicates) is not committed: what it acknowledges was durable already.
//!
//! After a failed write, redb refuses further work on the database, so the writer reopens
//! it (with the integrity check) before the next one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableTable, Table, WriteTransaction};
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::outbox::{
    LogChunk, LogSpan, LogsDropped, MAX_WAITING_REPLICAS, OutboxBody, OutboxEntry,
};
use skerry_shared::planner::ReplicaKey;
use skerry_shared::report::ReplicaStatus;
use tokio::sync::{mpsc, watch};

use super::tables::{
    self, CHUNKS, ChunkHead, ChunkMeta, DROPS, DropRecord, INSTANCE_INDEX, KEY_BYTES,
    KEY_NEXT_CURSOR, MARKS, META, REPLICA_COUNTS, REPLICAS, WAITING, begin_write, storage,
};
use super::{
    Clock, Db, EXPIRY_INTERVAL, IngestJob, Ingested, LogRetention, MAX_BATCH,
    MAX_REPLICAS_PER_NODE, Msg, Removed, ReportError,
};

pub(super) struct Writer {
    rx: mpsc::Receiver<Msg>,
    db: Arc<Db>,
    stored: Arc<watch::Sender<u64>>,
    retention: LogRetention,
    clock: Clock,
    /// The time given to the last chunk stored: chunks never get an earlier one, so cursor
    /// order is also the order of their stored times, even if the wall clock steps back.
    last_stored: Timestamp,
    /// A write failed: reopen the database before the next one.
    reopen: bool,
    commits: Arc<AtomicU64>,
}

impl Writer {
    pub fn new(
        rx: mpsc::Receiver<Msg>,
        db: Arc<Db>,
        stored: Arc<watch::Sender<u64>>,
        retention: LogRetention,
        clock: Clock,
        last_stored: Timestamp,
        commits: Arc<AtomicU64>,
    ) -> Self {
        Self {
            rx,
            db,
            stored,
            retention,
            clock,
            last_stored,
            reopen: false,
            commits,
        }
    }

    pub fn run(mut self, runtime: &tokio::runtime::Runtime) {
        let mut next_expiry = tokio::time::Instant::now() + EXPIRY_INTERVAL;
        loop {
            let rx = &mut self.rx;
            let got =
                runtime.block_on(async { tokio::time::timeout_at(next_expiry, rx.recv()).await });
            let first = match got {
                Err(_) => {
                    next_expiry = tokio::time::Instant::now() + EXPIRY_INTERVAL;
                    if let Err(e) = self.expire() {
                        tracing::error!(error = %e, "removing old log lines failed");
                    }
                    continue;
                }
                Ok(None | Some(Msg::Stop)) => break,
                Ok(Some(msg)) => msg,
            };
            let mut jobs = Vec::new();
            let mut expiries = Vec::new();
            let mut stop = false;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Ingest(job) => jobs.push(*job),
                    Msg::Expire(reply) => expiries.push(reply),
                    Msg::Stop => {
                        stop = true;
                        break;
                    }
                }
                if jobs.len() < MAX_BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            if !jobs.is_empty() {
                self.batch(jobs);
            }
            for reply in expiries {
                let _ = reply.send(self.expire());
            }
            if stop {
                break;
            }
        }
        // Whatever is still queued is answered `Stopped` as the channel drops.
    }

    /// The time to store chunks with: now, but never before the last one.
    fn now(&mut self) -> Timestamp {
        let now = self.clock.now().max(self.last_stored);
        self.last_stored = now;
        now
    }

    fn batch(&mut self, jobs: Vec<IngestJob>) {
        let now = self.now();
        let max_bytes = self.retention.max_bytes;
        let mut replies = Vec::with_capacity(jobs.len());
        let mut work = Vec::with_capacity(jobs.len());
        for job in jobs {
            replies.push(job.reply);
            work.push((job.node, job.epoch, job.entries));
        }
        let result = self.transact(|t| {
            let mut answers = Vec::with_capacity(work.len());
            for (node, epoch, entries) in work {
                answers.push(t.ingest(node, epoch, entries, now)?);
            }
            let removed = t.trim(None, max_bytes)?;
            Ok((answers, removed))
        });
        match result {
            Ok(((answers, removed), done)) => {
                if done.lines > 0 {
                    self.stored.send_replace(done.tip);
                }
                log_removed(removed, "size");
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = replies.len(), "storing reports failed");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Removes chunks stored longer ago than the retention, and the oldest beyond its size.
    fn expire(&mut self) -> Result<Removed, ReportError> {
        let now = self.clock.now();
        let age = i64::try_from(self.retention.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.plus_millis(-age);
        let max_bytes = self.retention.max_bytes;
        let (removed, _) = self.transact(|t| t.trim(Some(cutoff), max_bytes))?;
        log_removed(removed, "age");
        Ok(removed)
    }

    /// The database, reopened first if the last write failed.
    fn database(&mut self) -> Result<Arc<Database>, ReportError> {
        if self.reopen {
            // Readers holding the old handle keep the file open a moment longer; then the
            // open below fails and the next write tries again.
            drop(self.db.slot.write().take());
            let db = tables::open_db(&self.db.path)?;
            *self.db.slot.write() = Some(Arc::new(db));
            self.reopen = false;
            tracing::info!(path = %self.db.path.display(), "the report store was reopened after a failed write");
        }
        self.db.get()
    }

    /// Runs `f` in one write transaction and commits it, if it changed anything.
    fn transact<T>(
        &mut self,
        f: impl FnOnce(&mut Tables<'_>) -> Result<T, ReportError>,
    ) -> Result<(T, Done), ReportError> {
        let db = self.database()?;
        let result = (|| {
            let tx = begin_write(&db)?;
            let (value, dirty, done) = {
                let mut t = Tables::open(&tx)?;
                let value = f(&mut t)?;
                if t.dirty {
                    t.save()?;
                }
                let done = Done {
                    lines: t.lines_stored,
                    tip: t.next_cursor.saturating_sub(1),
                };
                (value, t.dirty, done)
            };
            if dirty {
                tx.commit().map_err(storage)?;
                self.commits.fetch_add(1, Ordering::SeqCst);
            } else {
                tx.abort().map_err(storage)?;
            }
            Ok((value, done))
        })();
        if let Err(ReportError::Storage(_)) = &result {
            self.reopen = true;
        }
        result
    }
}

/// What a committed transaction stored.
struct Done {
    lines: u64,
    /// The last cursor stored.
    tip: u64,
}

fn log_removed(removed: Removed, reason: &str) {
    if removed.chunks > 0 {
        tracing::info!(
            chunks = removed.chunks,
            lines = removed.lines,
            bytes = removed.bytes,
            reason,
            "log retention removed the oldest log lines"
        );
    }
}

/// The tables of one write transaction, and the counters kept in `meta`.
struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    marks: Table<'t, (u128, u8), (u64, u64)>,
    replicas: Table<'t, (u128, &'static str, &'static str, u32), &'static [u8]>,
    counts: Table<'t, u128, u64>,
    chunks: Table<'t, u64, &'static [u8]>,
    index: Table<'t, (&'static str, u64), &'static [u8]>,
    drops: Table<'t, (&'static str, u128), &'static [u8]>,
    waiting: Table<'t, u128, &'static [u8]>,
    job_runs: Table<'t, (&'static str, u128, &'static str, u64), &'static [u8]>,
    next_cursor: u64,
    bytes: u64,
    dirty: bool,
    lines_stored: u64,
}

impl<'t> Tables<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Self, ReportError> {
        let meta = tx.open_table(META).map_err(storage)?;
        let next_cursor = tables::meta_get(&meta, KEY_NEXT_CURSOR)?.max(1);
        let bytes = tables::meta_get(&meta, KEY_BYTES)?;
        Ok(Self {
            meta,
            marks: tx.open_table(MARKS).map_err(storage)?,
            replicas: tx.open_table(REPLICAS).map_err(storage)?,
            counts: tx.open_table(REPLICA_COUNTS).map_err(storage)?,
            chunks: tx.open_table(CHUNKS).map_err(storage)?,
            index: tx.open_table(INSTANCE_INDEX).map_err(storage)?,
            drops: tx.open_table(DROPS).map_err(storage)?,
            waiting: tx.open_table(WAITING).map_err(storage)?,
            job_runs: tx.open_table(super::jobs::JOB_RUNS).map_err(storage)?,
            next_cursor,
            bytes,
            dirty: false,
            lines_stored: 0,
        })
    }

    fn save(&mut self) -> Result<(), ReportError> {
        self.meta
            .insert(KEY_NEXT_CURSOR, self.next_cursor)
            .map_err(storage)?;
        self.meta.insert(KEY_BYTES, self.bytes).map_err(storage)?;
        Ok(())
    }

    /// Applies one node's entries; see [`super::ReportStore::ingest`].
    fn ingest(
        &mut self,
        node: NodeId,
        epoch: u64,
        entries: Vec<OutboxEntry>,
        now: Timestamp,
    ) -> Result<Ingested, ReportError> {
        let id = tables::node_key(node);
        let mut out = Ingested {
            at: now,
            ..Ingested::default()
        };
        for entry in entries {
            out.acked.push(entry.seq);
            let lane = tables::lane_key(entry.body.lane());
            let mark = self
                .marks
                .get((id, lane))
                .map_err(storage)?
                .map(|g| g.value());
            if !mark.is_none_or(|(e, seq)| e != epoch || entry.seq > seq) {
                continue;
            }
            self.marks
                .insert((id, lane), (epoch, entry.seq))
                .map_err(storage)?;
            self.dirty = true;
            match &entry.body {
                OutboxBody::Complete(list) => self.replace_replicas(node, list, now)?,
                OutboxBody::Replica { key, status } => {
                    self.set_replica(node, key, status.as_deref(), now)?;
                }
                OutboxBody::LogsDropped(d) => self.add_drops(node, d)?,
                OutboxBody::LogsWaiting(list) => {
                    let id = tables::node_key(node);
                    if list.is_empty() {
                        self.waiting.remove(id).map_err(storage)?;
                    } else {
                        let list = &list[..list.len().min(MAX_WAITING_REPLICAS)];
                        let bytes = postcard::to_stdvec(list).map_err(storage)?;
                        self.waiting.insert(id, bytes.as_slice()).map_err(storage)?;
                    }
                }
                OutboxBody::JobRun(report) => {
                    if !super::jobs::store(&mut self.job_runs, node, report, now)? {
                        out.malformed += 1;
                        tracing::warn!(
                            node = %node,
                            epoch,
                            seq = entry.seq,
                            "a job run report beyond its bounds was acknowledged and not stored"
                        );
                        continue;
                    }
                }
                OutboxBody::Logs(batch) => match batch.unpack() {
                    Ok(chunks) => {
                        for chunk in chunks {
                            self.store_chunk(node, chunk, now)?;
                        }
                    }
                    Err(e) => {
                        out.malformed += 1;
                        // The batch's content is never logged: only why it was refused.
                        tracing::warn!(
                            node = %node,
                            epoch,
                            seq = entry.seq,
                            error = %e,
                            "a log batch that does not unpack was acknowledged and not stored"
                        );
                        continue;
                    }
                },
            }
            out.new.push(entry);
        }
        Ok(out)
    }

    fn replica_count(&self, id: u128) -> Result<u64, ReportError> {
        Ok(self
            .counts
            .get(id)
            .map_err(storage)?
            .map_or(0, |g| g.value()))
    }

    fn set_count(&mut self, id: u128, count: u64) -> Result<(), ReportError> {
        if count == 0 {
            self.counts.remove(id).map_err(storage)?;
        } else {
            self.counts.insert(id, count).map_err(storage)?;
        }
        Ok(())
    }

    /// `Complete`: the node's statuses become `list` (up to the bound).
    fn replace_replicas(
        &mut self,
        node: NodeId,
        list: &[ReplicaStatus],
        now: Timestamp,
    ) -> Result<(), ReportError> {
        let id = tables::node_key(node);
        let start = (id, "", "", 0u32);
        match id.checked_add(1) {
            Some(end) => self
                .replicas
                .retain_in(start..(end, "", "", 0u32), |_, _| false),
            None => self.replicas.retain_in(start.., |_, _| false),
        }
        .map_err(storage)?;
        let mut count = 0u64;
        let mut refused = 0u64;
        for status in list {
            let r = &status.report;
            let key = (id, r.instance.as_str(), r.component.as_str(), r.replica);
            if count >= MAX_REPLICAS_PER_NODE && self.replicas.get(key).map_err(storage)?.is_none()
            {
                refused += 1;
                continue;
            }
            let bytes = tables::encode_status(status, now)?;
            if self
                .replicas
                .insert(key, bytes.as_slice())
                .map_err(storage)?
                .is_none()
            {
                count += 1;
            }
        }
        self.set_count(id, count)?;
        if refused > 0 {
            tracing::warn!(node = %node, refused, limit = MAX_REPLICAS_PER_NODE, "a node reported more replicas than the cloud keeps; the rest were not stored");
        }
        Ok(())
    }

    /// `Replica`: sets or (`None`) deletes one status.
    fn set_replica(
        &mut self,
        node: NodeId,
        key: &ReplicaKey,
        status: Option<&ReplicaStatus>,
        now: Timestamp,
    ) -> Result<(), ReportError> {
        let id = tables::node_key(node);
        let k = (
            id,
            key.instance.as_str(),
            key.component.as_str(),
            key.replica,
        );
        let count = self.replica_count(id)?;
        match status {
            Some(status) => {
                let exists = self.replicas.get(k).map_err(storage)?.is_some();
                if !exists && count >= MAX_REPLICAS_PER_NODE {
                    tracing::warn!(node = %node, replica = %key, limit = MAX_REPLICAS_PER_NODE, "a node reported more replicas than the cloud keeps; this one was not stored");
                    return Ok(());
                }
                let bytes = tables::encode_status(status, now)?;
                self.replicas.insert(k, bytes.as_slice()).map_err(storage)?;
                if !exists {
                    self.set_count(id, count + 1)?;
                }
            }
            None => {
                if self.replicas.remove(k).map_err(storage)?.is_some() {
                    self.set_count(id, count.saturating_sub(1))?;
                }
            }
        }
        Ok(())
    }

    /// `LogsDropped`: adds to the node's totals, per instance.
    fn add_drops(&mut self, node: NodeId, d: &LogsDropped) -> Result<(), ReportError> {
        let id = tables::node_key(node);
        let mut by_instance: BTreeMap<&Name, Vec<&LogSpan>> = BTreeMap::new();
        for span in &d.spans {
            by_instance
                .entry(&span.source.instance)
                .or_default()
                .push(span);
        }
        for (instance, spans) in by_instance {
            let key = (instance.as_str(), id);
            let old = self
                .drops
                .get(key)
                .map_err(storage)?
                .map(|g| postcard::from_bytes::<DropRecord>(g.value()));
            let mut record = match old {
                None => DropRecord::default(),
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    tracing::warn!(node = %node, instance = %instance, error = %e, "stored drop counts do not decode; counting again from zero");
                    DropRecord::default()
                }
            };
            record.batches = record.batches.saturating_add(d.batches);
            for span in spans {
                record.add_span(span);
            }
            let bytes = postcard::to_stdvec(&record).map_err(storage)?;
            self.drops.insert(key, bytes.as_slice()).map_err(storage)?;
        }
        Ok(())
    }

    /// Stores a chunk under the next cursor.
    fn store_chunk(
        &mut self,
        node: NodeId,
        chunk: LogChunk,
        now: Timestamp,
    ) -> Result<(), ReportError> {
        let LogChunk {
            source,
            first_line,
            time,
            lines,
            pieces,
        } = chunk;
        let n = lines.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let head = ChunkHead {
            node,
            instance: source.instance,
            component: source.component,
            replica: source.replica,
            stream: source.stream,
            first_line,
            lines: n,
            time,
            stored: now,
        };
        let bytes = tables::encode_chunk(&head, &lines, &pieces)?;
        let meta = postcard::to_stdvec(&ChunkMeta {
            node,
            component: head.component.clone(),
            replica: head.replica,
            time,
            lines: n,
        })
        .map_err(storage)?;
        let cursor = self.next_cursor;
        self.chunks
            .insert(cursor, bytes.as_slice())
            .map_err(storage)?;
        self.index
            .insert((head.instance.as_str(), cursor), meta.as_slice())
            .map_err(storage)?;
        self.next_cursor = cursor.saturating_add(n);
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
        self.lines_stored += n;
        self.dirty = true;
        Ok(())
    }

    /// Removes the oldest chunks while they are stored before `cutoff` or the chunks take
    /// more than `max_bytes`.
    fn trim(&mut self, cutoff: Option<Timestamp>, max_bytes: u64) -> Result<Removed, ReportError> {
        let mut removed = Removed::default();
        loop {
            let (cursor, head, len) = {
                let Some((k, v)) = self.chunks.first().map_err(storage)? else {
                    break;
                };
                let len = v.value().len() as u64;
                match tables::decode_head(v.value()) {
                    Ok((head, _)) => (k.value(), Some(head), len),
                    Err(e) => {
                        tracing::warn!(cursor = k.value(), error = %e, "a stored log chunk does not decode; removing it");
                        (k.value(), None, len)
                    }
                }
            };
            let old = match (&head, cutoff) {
                (Some(h), Some(c)) => h.stored < c,
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !old && self.bytes <= max_bytes {
                break;
            }
            self.chunks.remove(cursor).map_err(storage)?;
            if let Some(h) = &head {
                self.index
                    .remove((h.instance.as_str(), cursor))
                    .map_err(storage)?;
                removed.lines += h.lines;
            }
            self.bytes = self.bytes.saturating_sub(len);
            removed.chunks += 1;
            removed.bytes += len;
            self.dirty = true;
        }
        Ok(removed)
    }
}
