//! How containers last ended, from the engine's event stream.
//!
//! The engine resets a container's exit code when its restart policy starts it again, so a
//! container that crashed and was restarted shows only `RestartCount` and `FinishedAt`. The
//! runtime therefore follows the engine's `die` (and `oom`) events for Skerry's containers
//! and keeps, per container id, the last exit with its code and time. When the agent was
//! not running at the time of an exit, `FinishedAt` still gives when it happened.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use parking_lot::Mutex;
use skerry_shared::clock::Timestamp;
use skerry_shared::report::LastExit;

use crate::runtime::labels;

/// How long to wait before following the stream again after it ended.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Seen {
    exits: HashMap<String, LastExit>,
    oom: HashSet<String>,
}

/// The last exit of each container, kept up to date by a task that follows the engine's
/// events (stopped when this is dropped).
#[derive(Debug)]
pub(super) struct Exits {
    seen: Arc<Mutex<Seen>>,
    /// Notified on every exit, so the agent looks again at once.
    ended: Arc<tokio::sync::Notify>,
    task: Option<tokio::task::AbortHandle>,
}

impl Drop for Exits {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Exits {
    /// Follows `docker`'s events from now on (needs a tokio runtime; without one, exits
    /// come from `FinishedAt` only).
    pub(super) fn watch(docker: Docker) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let ended = Arc::new(tokio::sync::Notify::new());
        let task = tokio::runtime::Handle::try_current().ok().map(|rt| {
            rt.spawn(follow(docker, Arc::clone(&seen), Arc::clone(&ended)))
                .abort_handle()
        });
        Self { seen, ended, task }
    }

    /// Notified whenever a container ends.
    pub(super) fn ended(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.ended)
    }

    /// The last exit the events showed for container `id`.
    pub(super) fn get(&self, id: &str) -> Option<LastExit> {
        self.seen.lock().exits.get(id).cloned()
    }

    /// Forgets containers that are gone.
    pub(super) fn retain(&self, ids: &HashSet<&str>) {
        let mut seen = self.seen.lock();
        seen.exits.retain(|id, _| ids.contains(id.as_str()));
        seen.oom.retain(|id| ids.contains(id.as_str()));
    }
}

async fn follow(docker: Docker, seen: Arc<Mutex<Seen>>, ended: Arc<tokio::sync::Notify>) {
    let filters = HashMap::from([
        ("type", vec!["container"]),
        ("event", vec!["die", "oom"]),
        ("label", vec![labels::NODE]),
    ]);
    loop {
        let mut events = docker.events(Some(EventsOptionsBuilder::new().filters(&filters).build()));
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, "the engine's event stream failed");
                    break;
                }
            };
            let Some(actor) = event.actor else { continue };
            let Some(id) = actor.id else { continue };
            let attributes = actor.attributes.unwrap_or_default();
            let at = event
                .time_nano
                .map(|ns| Timestamp(ns / 1_000_000))
                .or(event.time.map(|s| Timestamp(s * 1000)))
                .unwrap_or_else(Timestamp::now);
            let mut seen = seen.lock();
            match event.action.as_deref() {
                Some("oom") => {
                    seen.oom.insert(id);
                }
                Some("die") => {
                    let code = attributes.get("exitCode").map_or("?", String::as_str);
                    let reason = if seen.oom.remove(&id) {
                        format!("OOM killed (exit {code})")
                    } else {
                        format!("exited {code}")
                    };
                    tracing::info!(container = attributes.get("name").map_or("", String::as_str), %reason, "a container ended");
                    seen.exits.insert(id, LastExit { at, reason });
                    ended.notify_one();
                }
                _ => {}
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The time in an engine `FinishedAt` (`0001-01-01T00:00:00Z` when it never ended).
pub(super) fn finished_at(finished: Option<&str>) -> Option<Timestamp> {
    let t = Timestamp::parse_rfc3339(finished?).ok()?;
    (t.0 > 0).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_at_ignores_the_zero_time() {
        assert_eq!(finished_at(Some("0001-01-01T00:00:00Z")), None);
        assert_eq!(finished_at(None), None);
        assert_eq!(
            finished_at(Some("2026-11-22T04:27:00.819081472Z")),
            Some(Timestamp(1_795_321_620_819))
        );
    }
}
