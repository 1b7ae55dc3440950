//! The engine: the cloud's single writer.
//!
//! Requests queue on a channel. One thread takes whatever has queued (up to
//! [`MAX_BATCH`] commands), runs each handler against the projections, seals the events
//! into the hash chain, and appends the whole batch to the log in one durable write
//! (group commit). Only then does it answer the requests and tell subscribers. The
//! projections' write lock is held from the first handler to the commit, so readers
//! never see an event that is not durable; if the append fails, the projections are
//! rebuilt from the log and every command of the batch is answered with the error.

use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, Event, NodeSeq};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::command::{self, Command, Refusal};
use crate::log::{EventLog, LogError};
use crate::projections::Projections;

/// The most commands one durable write carries.
pub const MAX_BATCH: usize = 4096;

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

enum Msg {
    Job(Box<Job>),
    Stop,
}

struct Job {
    actor: Actor,
    command: Command,
    reply: oneshot::Sender<Result<Vec<Arc<Event>>, EngineError>>,
}

/// A handle on the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Msg>,
    thread: Arc<parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>>,
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
    crate::log::walk(log, |e| p.apply(e)).map_err(|(_, e)| match e {
        crate::log::WalkError::Log(e) => EngineError::Log(e),
        crate::log::WalkError::Chain(e) => EngineError::Chain(e),
    })?;
    Ok(p)
}

/// How many refused events [`report_refused`] names in its line; the rest are counted.
const REFUSED_NAMED: usize = 16;

/// Says at start how many recorded events the projections did not apply, naming them
/// (each was logged with its reason as it was folded).
fn report_refused(p: &Projections) {
    if p.refused_total == 0 {
        return;
    }
    let named: Vec<String> = p
        .refused
        .values()
        .take(REFUSED_NAMED)
        .map(|r| format!("{} ({})", r.seq, r.kind))
        .collect();
    let more = p.refused_total.saturating_sub(named.len() as u64);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    tracing::warn!(
        refused = p.refused_total,
        "{} recorded event(s) were not applied: {}{more}; they stay in the log and its chain, \
         marked \"refused\" in `skerry events`",
        p.refused_total,
        named.join(", ")
    );
}

impl Engine {
    /// Rebuilds the projections from `log` and starts the writer thread.
    pub fn start(log: Arc<dyn EventLog>) -> Result<Engine, EngineError> {
        let rebuilt = rebuild(log.as_ref())?;
        report_refused(&rebuilt);
        let state = Arc::new(RwLock::new(rebuilt));
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let (events, _) = broadcast::channel(8192);
        let writer = Writer {
            rx,
            state: state.clone(),
            events: events.clone(),
            log: log.clone(),
            last_time: state.read().head.last_time,
        };
        let thread = std::thread::Builder::new()
            .name("skerry-engine".into())
            .spawn(move || writer.run())
            .map_err(|e| LogError::Storage(format!("cannot start the engine thread: {e}")))?;
        Ok(Engine {
            tx,
            thread: Arc::new(parking_lot::Mutex::new(Some(thread))),
            state,
            events,
            log,
        })
    }

    /// Runs `command` for `actor`; answers once its events are durable.
    pub async fn submit(
        &self,
        actor: Actor,
        command: Command,
    ) -> Result<Vec<Arc<Event>>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Job(Box::new(Job {
                actor,
                command,
                reply,
            })))
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

    /// Finishes the commands already queued, stops the writer and waits for it. Later
    /// submissions answer [`EngineError::Stopped`]. Blocking: call it off the async runtime.
    pub fn close(&self) {
        let _ = self.tx.blocking_send(Msg::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

struct Writer {
    rx: mpsc::Receiver<Msg>,
    state: Arc<RwLock<Projections>>,
    events: broadcast::Sender<Arc<Event>>,
    log: Arc<dyn EventLog>,
    last_time: Timestamp,
}

type Reply = (
    oneshot::Sender<Result<Vec<Arc<Event>>, EngineError>>,
    Result<std::ops::Range<usize>, EngineError>,
);

impl Writer {
    fn run(mut self) {
        while let Some(Msg::Job(first)) = self.rx.blocking_recv() {
            let mut jobs = vec![*first];
            let mut stop = false;
            while jobs.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(Msg::Job(j)) => jobs.push(*j),
                    Ok(Msg::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.batch(jobs);
            if stop {
                break;
            }
        }
        // Whatever is still queued is answered `Stopped` as the channel drops.
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
        if failed.is_none()
            && !sealed.is_empty()
            && let Err(e) = self.log.append(&sealed)
        {
            failed = Some(e.into());
        }
        if let Some(err) = failed {
            tracing::error!(error = %err, "a batch of commands failed; rebuilding projections from the log");
            match rebuild(self.log.as_ref()) {
                Ok(p) => *state = p,
                Err(e) => tracing::error!(error = %e, "cannot rebuild projections"),
            }
            drop(state);
            let message = err.to_string();
            // Every command of the batch gets the error, of the same kind: a retryable one
            // (a networked backend out of reach) stays retryable.
            let retryable = matches!(&err, EngineError::Log(e) if e.is_retryable());
            for (reply, result) in replies {
                let answer = match result {
                    Err(EngineError::Refused(r)) => Err(EngineError::Refused(r)),
                    _ if retryable => Err(EngineError::Log(LogError::Unavailable(message.clone()))),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::log::RedbLog;

    fn create(name: &str) -> Command {
        Command::CreateEnvironment {
            name: name.to_owned(),
            labels: BTreeMap::new(),
            entries: Vec::new(),
        }
    }

    fn actor() -> Actor {
        Actor::Anonymous {
            peer: "127.0.0.1".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commands_share_commits_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.redb");
        {
            let log = Arc::new(RedbLog::open(&path, 1 << 20).unwrap());
            let engine = Engine::start(log).unwrap();
            let mut tasks = Vec::new();
            for client in 0..64 {
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..10 {
                        let name = format!("c{client}-{i}");
                        let events = engine.submit(actor(), create(&name)).await.unwrap();
                        assert_eq!(events.len(), 1);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            // A duplicate is refused and records nothing.
            let err = engine.submit(actor(), create("c0-0")).await.unwrap_err();
            assert!(matches!(err, EngineError::Refused(r) if r.field.as_deref() == Some("name")));
            assert_eq!(engine.read().head.next_seq, 641);
            let closer = engine.clone();
            tokio::task::spawn_blocking(move || closer.close())
                .await
                .unwrap();
            assert!(matches!(
                engine.submit(actor(), create("late")).await,
                Err(EngineError::Stopped)
            ));
        }
        let log = Arc::new(RedbLog::open(&path, 1 << 20).unwrap());
        let engine = Engine::start(log).unwrap();
        let p = engine.read();
        assert_eq!(p.envs.len(), 640);
        assert_eq!(p.head.next_seq, 641);
    }

    /// A log whose appends fail on demand, to show that a failed batch leaves no trace in
    /// the projections.
    #[derive(Default)]
    struct FlakyLog {
        events: parking_lot::Mutex<Vec<Event>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl EventLog for FlakyLog {
        fn append(&self, events: &[Arc<Event>]) -> Result<(), LogError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(LogError::Storage("disk full".into()));
            }
            self.events
                .lock()
                .extend(events.iter().map(|e| Event::clone(e)));
            Ok(())
        }
        fn read(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>, LogError> {
            let all = self.events.lock();
            Ok(all
                .iter()
                .filter(|e| e.seq > after_seq)
                .take(limit)
                .cloned()
                .collect())
        }
        fn read_node(
            &self,
            _: skerry_shared::ids::NodeId,
            _: u64,
            _: usize,
        ) -> Result<Vec<Event>, LogError> {
            Ok(Vec::new())
        }
        fn last_seq(&self) -> Result<u64, LogError> {
            Ok(self.events.lock().last().map_or(0, |e| e.seq))
        }
    }

    #[tokio::test]
    async fn a_failed_append_is_not_visible_and_not_acknowledged() {
        let log = Arc::new(FlakyLog::default());
        let engine = Engine::start(log.clone()).unwrap();
        engine.submit(actor(), create("a")).await.unwrap();
        log.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = engine.submit(actor(), create("b")).await.unwrap_err();
        assert!(matches!(err, EngineError::Log(_)));
        assert!(!engine.read().envs.contains_key("b"));
        log.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        engine.submit(actor(), create("b")).await.unwrap();
        let p = engine.read();
        assert!(p.envs.contains_key("b"));
        assert_eq!(p.head.next_seq, 3);
    }
}
