//! Which sources the desired state calls for ([`wanted`]), and [`Collector::follow`],
//! which adds the new ones (resuming from their cursors) and lets the others go after
//! [`GRACE`](super::GRACE).

use std::collections::BTreeMap;
use std::path::PathBuf;

use skerry_shared::manifest::RuntimeKind;
use skerry_shared::planner::ReplicaKey;
use skerry_shared::reducer::NodeDesired;
use tokio::time::Instant;

use super::super::filter::NameFilter;
use super::super::tail::DirTailer;
use super::ids::{dir_key, output_key, process_output_key};
use super::{Collector, Reader, Source};
use crate::reconciler::resolve::log_dir_host;
use crate::runtime::docker::spec::container_name;

/// A source the desired state calls for.
#[derive(Debug)]
struct Wanted {
    key: ReplicaKey,
    /// `None`: the container's output from the engine.
    dir: Option<PathBuf>,
    filter: Option<NameFilter>,
    process_output: bool,
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
            // A job's runs use up to `slots()` replicas (`concurrency: allow`).
            for replica in 0..c.slots() {
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
    /// Follows the sources of `desired`: new ones are added (resuming from their cursors),
    /// and those no longer desired are read for [`GRACE`](super::GRACE) more.
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
}
