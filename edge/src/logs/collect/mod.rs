//! The log collector: every source of the desired state, read about once a second, queued
//! in the outbox together with the cursors that say how far it was read.
//!
//! Sources:
//! - a container component with a `log_dir`: the node's directory mounted there
//!   (`DATA/logs/{instance}/{component}-{replica}`), one per replica;
//! - an `exec` component with a `log_dir`: that host path, one source per replica. The
//!   replicas write `{component}-{replica}.stdout.log` and `.stderr.log` there, and other
//!   `exec` components may name the same path, so each source reads only its own files
//!   ([`NameFilter`](super::filter::NameFilter)): those whose path there starts with `{component}-{replica}.`, and
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
//!
//! # Layout
//! - `mod.rs`: [`Collector`], its sources and cursors, and [`Collector::collect`], one
//!   round: reading, then queueing.
//! - `ids.rs`: the ids of sources in the journal's cursors (`dir/`, `out/`, `own/`), and
//!   [`waiting_of`], which reads the files waiting for a slot from them.
//! - `sources.rs`: which sources the desired state calls for, and
//!   [`Collector::follow`], which adds them and lets the others go after [`GRACE`].
//! - `read.rs`: the reading of a round: containers' output through the Docker runtime's
//!   [`OutputReader`], then the directories on the blocking pool, within the budgets.
//! - `queue.rs`: the queueing of a round: zstd batches of at most [`BATCH_RAW_BYTES`],
//!   the push with the cursors in one transaction, and the rewind after a failed one.

mod ids;
mod queue;
mod read;
mod sources;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skerry_shared::ids::NodeId;
use skerry_shared::outbox::{LogChunk, LogsDropped};
use skerry_shared::planner::ReplicaKey;
use tokio::time::Instant;

pub use self::ids::waiting_of;
use super::tail::DirTailer;
use crate::journal::{Journal, JournalError};
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

/// What the reading of one round found, for its queueing.
#[derive(Debug)]
struct Round {
    chunks: Vec<LogChunk>,
    /// New cursors by source id; `None` drops a source's cursor.
    cursors: Vec<(String, Option<Vec<u8>>)>,
    /// A source had more than one round takes.
    more: bool,
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

    /// One round: reads what is new and queues it with the cursors, in one journal
    /// transaction. On an error nothing moved: the next round reads the same lines again.
    pub async fn collect(&mut self) -> Result<Collected, JournalError> {
        let round = self.read_round().await?;
        if round.chunks.is_empty() && round.cursors.is_empty() {
            return Ok(Collected::default());
        }
        self.queue(round).await
    }
}
