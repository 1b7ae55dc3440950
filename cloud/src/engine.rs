//! The engine: the cloud's single writer.
//!
//! Requests queue on a channel. One thread takes whatever has queued (up to
//! [`MAX_BATCH`] commands), runs each handler against the projections, seals the events
//! into the hash chain, and appends the whole batch to the log in one durable write
//! (group commit). Only then does it answer the requests and tell subscribers. The
//! projections' write lock is held from the first handler to the commit, so readers
//! never see an event that is not durable; if the append fails, the projections are
//! rebuilt from the log and every command of the batch is answered with the error.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, Event, NodeSeq, verify_chain};
use skerry_shared::hash::Digest;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::command::{self, Command, Refusal};
use crate::log::{EventLog, LogError};
use crate::projections::Projections;

/// The most commands one durable write carries.
pub const MAX_BATCH: usize = 4096;
const READ_PAGE: usize = 4096;

/// Why a command did not become events.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the command log's hash chain is broken: {0}")]
    Chain(#[from] skerry_shared::event::ChainError),
    #[error("the engine has stopped")]
    Stopped,
}

struct Job {
    actor: Actor,
    command: Command,
    reply: oneshot::Sender<Result<Vec<Arc<Event>>, EngineError>>,
}

/// A handle on the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Job>,
    state: Arc<RwLock<Projections>>,
    events: broadcast::Sender<Arc<Event>>,
    log: Arc<dyn EventLog>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// Folds the whole log into fresh projections, checking the hash chain as it goes.
pub fn rebuild(log: &dyn EventLog) -> Result<Projections, EngineError> {
    let mut p = Projections::default();
    let mut node_next = HashMap::new();
    let (mut next, mut prev) = (1u64, Digest::ZERO);
    loop {
        let page = log.read(next - 1, READ_PAGE)?;
        if page.is_empty() {
            break;
        }
        (next, prev) = verify_chain(&page, next, prev, &mut node_next)?;
        for e in &page {
            p.apply(e);
        }
    }
    Ok(p)
}

impl Engine {
    /// Rebuilds the projections from `log` and starts the writer thread.
    pub fn start(log: Arc<dyn EventLog>) -> Result<Engine, EngineError> {
        let state = Arc::new(RwLock::new(rebuild(log.as_ref())?));
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let (events, _) = broadcast::channel(8192);
        let writer = Writer {
            rx,
            state: state.clone(),
            events: events.clone(),
            log: log.clone(),
            last_time: state.read().head.last_time,
        };
        std::thread::Builder::new()
            .name("skerry-engine".into())
            .spawn(move || writer.run())
            .map_err(|e| LogError::Storage(format!("cannot start the engine thread: {e}")))?;
        Ok(Engine {
            tx,
            state,
            events,
            log,
        })
    }

    /// Runs `command` for `actor`; answers once its events are durable.
    pub async fn submit(&self, actor: Actor, command: Command) -> Result<Vec<Arc<Event>>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                actor,
                command,
                reply,
            })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// The projections, as of the last durable batch.
    pub fn read(&self) -> RwLockReadGuard<'_, Projections> {
        self.state.read()
    }

    /// Events as they become durable.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }
}

struct Writer {
    rx: mpsc::Receiver<Job>,
    state: Arc<RwLock<Projections>>,
    events: broadcast::Sender<Arc<Event>>,
    log: Arc<dyn EventLog>,
    last_time: Timestamp,
}

type Reply = (oneshot::Sender<Result<Vec<Arc<Event>>, EngineError>>, Result<std::ops::Range<usize>, EngineError>);

impl Writer {
    fn run(mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.batch(jobs);
        }
    }

    fn batch(&mut self, jobs: Vec<Job>) {
        // Times never go backwards in the log, even if the wall clock does.
        let now = Timestamp::now().max(self.last_time);
        self.last_time = now;
        let mut state = self.state.write();
        let mut sealed: Vec<Arc<Event>> = Vec::new();
        let mut replies: Vec<Reply> = Vec::with_capacity(jobs.len());
        let mut failed: Option<EngineError> = None;
        for job in jobs {
            if failed.is_some() {
                replies.push((job.reply, Err(EngineError::Stopped)));
                continue;
            }
            match command::handle(&state, &job.command, now) {
                Err(r) => replies.push((job.reply, Err(EngineError::Refused(r)))),
                Ok(pending) => {
                    let start = sealed.len();
                    for p in pending {
                        let mut audience = p.audience;
                        audience.sort();
                        audience.dedup();
                        let node_seqs = audience
                            .into_iter()
                            .map(|node| NodeSeq {
                                node,
                                node_seq: state.head.next_node_seq(node),
                            })
                            .collect();
                        match Event::seal(
                            state.head.next_seq,
                            now,
                            job.actor.clone(),
                            p.payload,
                            node_seqs,
                            state.head.last_hash,
                        ) {
                            Ok(e) => {
                                state.apply(&e);
                                sealed.push(Arc::new(e));
                            }
                            Err(e) => {
                                failed = Some(e.into());
                                break;
                            }
                        }
                    }
                    replies.push((job.reply, Ok(start..sealed.len())));
                }
            }
        }
        if failed.is_none() && !sealed.is_empty() {
            let plain: Vec<Event> = sealed.iter().map(|e| Event::clone(e)).collect();
            if let Err(e) = self.log.append(&plain) {
                failed = Some(e.into());
            }
        }
        if let Some(err) = failed {
            tracing::error!(error = %err, "a batch of commands failed; rebuilding projections from the log");
            match rebuild(self.log.as_ref()) {
                Ok(p) => *state = p,
                Err(e) => tracing::error!(error = %e, "cannot rebuild projections"),
            }
            drop(state);
            let message = err.to_string();
            for (reply, result) in replies {
                let answer = match result {
                    Err(EngineError::Refused(r)) => Err(EngineError::Refused(r)),
                    _ => Err(EngineError::Log(LogError::Storage(message.clone()))),
                };
                let _ = reply.send(answer);
            }
            return;
        }
        drop(state);
        for e in &sealed {
            let _ = self.events.send(e.clone());
        }
        for (reply, result) in replies {
            let _ = reply.send(result.map(|r| sealed[r].to_vec()));
        }
    }
}
