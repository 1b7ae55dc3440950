//! What `skerry-edge status --data DIR` and `skerry-edge events --data DIR` print: the
//! local journal's view, read without the cloud and without the runtime.
//!
//! [`status_report`] gives the desired state as of the last applied event, with the
//! agent's memos beside each component (init results, restarts, node ports), and what the
//! outbox holds (entries queued for the cloud, log lines dropped for the quota);
//! [`events_report`] lists the stored events. Both are plain data (`serde::Serialize`
//! for JSON) that display as text.

use std::fmt;

use serde::Serialize;
use skerry_shared::ids::Name;
use skerry_shared::manifest::ComponentKind;
use skerry_shared::planner::replica_hash;

use super::{EventSpan, Journal, JournalError, Memos, OutboxStats};

/// The journal's view of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalStatus {
    /// The journal's epoch, in hex.
    pub epoch: String,
    /// The node id, once an event or snapshot was applied.
    pub node: Option<String>,
    pub name: Option<String>,
    /// The `node_seq` of the last applied event (0: none).
    pub last_applied: u64,
    pub envs: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub instances: Vec<InstanceStatus>,
    /// The stored events.
    pub events: Option<EventSpan>,
    /// Memos about instances that are no longer desired here (kept until forgotten).
    pub other_memos: usize,
    /// What the outbox holds for the cloud, and the log lines it dropped.
    pub outbox: OutboxStats,
    /// Log files not read for want of a slot (a log directory with more files than the
    /// collector reads at once), per replica, as the collector last saved its positions.
    pub logs_waiting: Vec<WaitingFiles>,
    /// The agent's clock offset when it last started (`none`, `+3h`): jobs run and
    /// windows open by that clock.
    pub clock_offset: String,
    /// The jobs' runs in flight and when each job last handled a due time.
    pub jobs: Vec<JobStatus>,
}

/// A job as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatus {
    pub instance: String,
    pub component: String,
    /// The last due time handled (RFC 3339, by the agent's clock).
    pub handled_through: String,
    /// The ids of the runs in flight.
    pub running: Vec<u64>,
}

/// Files of one replica's log directory that wait for a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingFiles {
    pub instance: String,
    pub component: String,
    pub replica: u32,
    pub files: u64,
}

/// A desired instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStatus {
    pub name: String,
    pub app: String,
    pub version: String,
    pub env: String,
    /// The `node_seq` of its deploy.
    pub deployed_at: u64,
    pub components: Vec<ComponentStatus>,
}

/// A component of a desired instance, with what the agent recorded about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentStatus {
    pub name: String,
    /// `service`, `init` or `job`.
    pub kind: String,
    pub replicas: u32,
    /// The first 12 hex digits of its spec hash.
    pub spec_hash: String,
    /// For an init: `succeeded`, `failed (exit N)` or `not run` for the current spec.
    pub init: Option<String>,
    /// Restarts counted, by replica.
    pub restarts: Vec<(u32, u32)>,
    /// Node ports: (replica, container port, host port).
    pub nodeports: Vec<(u32, u16, u16)>,
}

/// One stored event, for `skerry-edge events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventLine {
    pub node_seq: u64,
    /// The global sequence number in the cloud's log.
    pub seq: u64,
    /// RFC 3339.
    pub time: String,
    pub kind: String,
    pub summary: String,
}

/// The stored events, in `node_seq` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventsReport {
    pub events: Vec<EventLine>,
}

/// Reads the journal's view of the node.
pub fn status_report(journal: &dyn Journal) -> Result<JournalStatus, JournalError> {
    let state = journal.load()?;
    let events = journal.event_span()?;
    let outbox = journal.outbox_stats()?;
    let cursors = journal.log_cursors()?;
    let clock_offset = crate::clock::describe_offset(crate::clock::recorded(&cursors));
    let jobs = cursors
        .iter()
        .filter_map(|(key, bytes)| {
            let (instance, component) = crate::jobs::parse_state_key(key)?;
            let state: crate::jobs::JobState = postcard::from_bytes(bytes).ok()?;
            Some(JobStatus {
                instance: instance.to_string(),
                component: component.to_string(),
                handled_through: skerry_shared::clock::Timestamp(state.cursor).to_rfc3339(),
                running: state.runs.iter().map(|r| r.id).collect(),
            })
        })
        .collect();
    let logs_waiting = crate::logs::collect::waiting_of(&cursors)
        .into_iter()
        .map(|(k, files)| WaitingFiles {
            instance: k.instance.to_string(),
            component: k.component.to_string(),
            replica: k.replica,
            files,
        })
        .collect();
    let memos = &state.memos;
    let mut status = JournalStatus {
        epoch: format!("{:016x}", state.epoch),
        node: None,
        name: None,
        last_applied: state.applied(),
        envs: Vec::new(),
        labels: Vec::new(),
        instances: Vec::new(),
        events,
        other_memos: 0,
        outbox,
        logs_waiting,
        clock_offset,
        jobs,
    };
    let Some(desired) = &state.desired else {
        status.other_memos = memo_count(memos, |_| true);
        return Ok(status);
    };
    status.node = Some(desired.node.to_string());
    status.name = desired.name.as_ref().map(ToString::to_string);
    status.envs = desired.envs.iter().map(ToString::to_string).collect();
    status.labels = desired
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, instance) in &desired.instances {
        let spec = &instance.spec;
        let components = spec
            .manifest
            .components
            .iter()
            .map(|c| {
                let hash = replica_hash(spec, c, &desired.secrets);
                let init = (c.kind == ComponentKind::Init).then(|| {
                    let key = (name.clone(), c.name.clone());
                    if memos
                        .inits_succeeded
                        .contains(&(name.clone(), c.name.clone(), hash))
                    {
                        "succeeded".to_owned()
                    } else if let Some(f) = memos.inits_failed.get(&key) {
                        format!("failed (exit {})", f.code)
                    } else {
                        "not run".to_owned()
                    }
                });
                let restarts = memos
                    .restarts
                    .iter()
                    .filter(|(k, _)| k.instance == *name && k.component == c.name)
                    .map(|(k, n)| (k.replica, *n))
                    .collect();
                let nodeports = memos
                    .nodeports
                    .iter()
                    .filter(|(k, _)| k.replica.instance == *name && k.replica.component == c.name)
                    .map(|(k, host)| (k.replica.replica, k.container_port, *host))
                    .collect();
                ComponentStatus {
                    name: c.name.to_string(),
                    kind: kind_name(c.kind).to_owned(),
                    replicas: c.replicas(),
                    spec_hash: hash.short(),
                    init,
                    restarts,
                    nodeports,
                }
            })
            .collect();
        status.instances.push(InstanceStatus {
            name: name.to_string(),
            app: spec.app.to_string(),
            version: spec.version.to_string(),
            env: spec.env.to_string(),
            deployed_at: instance.deployed_at,
            components,
        });
    }
    status.other_memos = memo_count(memos, |i| !desired.instances.contains_key(i));
    Ok(status)
}

/// Reads up to `limit` stored events after `after`.
pub fn events_report(
    journal: &dyn Journal,
    after: u64,
    limit: usize,
) -> Result<EventsReport, JournalError> {
    let events = journal
        .events(after, limit)?
        .into_iter()
        .map(|e| EventLine {
            node_seq: e.node_seq,
            seq: e.seq,
            time: e.time.to_rfc3339(),
            kind: e.payload.kind().to_owned(),
            summary: e.payload.summary(),
        })
        .collect();
    Ok(EventsReport { events })
}

fn kind_name(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Service => "service",
        ComponentKind::Init => "init",
        ComponentKind::Job => "job",
    }
}

fn memo_count(memos: &Memos, of: impl Fn(&Name) -> bool) -> usize {
    memos
        .inits_succeeded
        .iter()
        .filter(|(i, _, _)| of(i))
        .count()
        + memos.inits_failed.keys().filter(|(i, _)| of(i)).count()
        + memos
            .nodeports
            .keys()
            .filter(|k| of(&k.replica.instance))
            .count()
        + memos.restarts.keys().filter(|k| of(&k.instance)).count()
}

impl fmt::Display for JournalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = "-";
        writeln!(f, "node:          {}", self.node.as_deref().unwrap_or(none))?;
        writeln!(f, "name:          {}", self.name.as_deref().unwrap_or(none))?;
        writeln!(f, "journal epoch: {}", self.epoch)?;
        writeln!(f, "clock offset:  {}", self.clock_offset)?;
        if self.last_applied == 0 {
            writeln!(f, "last applied:  none")?;
        } else {
            writeln!(f, "last applied:  node_seq {}", self.last_applied)?;
        }
        match &self.events {
            Some(s) => writeln!(
                f,
                "events kept:   {} (node_seq {} to {})",
                s.count, s.first, s.last
            )?,
            None => writeln!(f, "events kept:   0")?,
        }
        let o = &self.outbox;
        writeln!(
            f,
            "outbox:        control {}, logs {} ({} bytes), next seq {}",
            o.control_entries, o.log_entries, o.log_bytes, o.next_seq
        )?;
        if o.dropped_batches == 0 {
            writeln!(f, "logs dropped:  none")?;
        } else {
            writeln!(
                f,
                "logs dropped:  lines {}, batches {} (for the quota, since the journal was created)",
                o.dropped_lines, o.dropped_batches
            )?;
        }
        if o.dropped_reports > 0 {
            writeln!(
                f,
                "reports dropped: {} (for the outbox quota, each followed by a complete report)",
                o.dropped_reports
            )?;
        }
        if o.dropped_runs > 0 {
            writeln!(
                f,
                "runs dropped:  {} job run reports (for the outbox quota)",
                o.dropped_runs
            )?;
        }
        for j in &self.jobs {
            let running = if j.running.is_empty() {
                "none running".to_owned()
            } else {
                let ids: Vec<String> = j.running.iter().map(u64::to_string).collect();
                format!("running {}", ids.join(", "))
            };
            writeln!(
                f,
                "job:           {}/{} due times handled through {}, {running}",
                j.instance, j.component, j.handled_through
            )?;
        }
        if self.logs_waiting.is_empty() {
            writeln!(f, "logs waiting:  none")?;
        } else {
            let total: u64 = self.logs_waiting.iter().map(|w| w.files).sum();
            let each: Vec<String> = (self.logs_waiting.iter())
                .map(|w| format!("{}/{}-{} {}", w.instance, w.component, w.replica, w.files))
                .collect();
            writeln!(
                f,
                "logs waiting:  {total} files not read for want of a slot (at most {} per log_dir): {}",
                crate::logs::tail::MAX_TRACKED,
                each.join(", ")
            )?;
        }
        let envs = if self.envs.is_empty() {
            none.to_owned()
        } else {
            self.envs.join(", ")
        };
        writeln!(f, "environments:  {envs}")?;
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let labels = if labels.is_empty() {
            none.to_owned()
        } else {
            labels.join(", ")
        };
        writeln!(f, "labels:        {labels}")?;
        if self.instances.is_empty() {
            writeln!(f, "instances:     none")?;
        }
        for i in &self.instances {
            writeln!(f)?;
            writeln!(
                f,
                "instance {} = {}@{} in {} (deployed at node_seq {})",
                i.name, i.app, i.version, i.env, i.deployed_at
            )?;
            for c in &i.components {
                write!(
                    f,
                    "  {:<20} {:<8} replicas {:<3} spec {}",
                    c.name, c.kind, c.replicas, c.spec_hash
                )?;
                if let Some(init) = &c.init {
                    write!(f, "  init {init}")?;
                }
                for (replica, n) in &c.restarts {
                    write!(f, "  #{replica} restarts {n}")?;
                }
                for (replica, container, host) in &c.nodeports {
                    write!(f, "  #{replica} port {container}->{host}")?;
                }
                writeln!(f)?;
            }
        }
        if self.other_memos > 0 {
            writeln!(f)?;
            writeln!(
                f,
                "memos about instances no longer desired here: {}",
                self.other_memos
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for EventsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>8}  {:>8}  {:<24}  {:<24}  SUMMARY",
            "NODE_SEQ", "SEQ", "TIME", "KIND"
        )?;
        for e in &self.events {
            writeln!(
                f,
                "{:>8}  {:>8}  {:<24}  {:<24}  {}",
                e.node_seq, e.seq, e.time, e.kind, e.summary
            )?;
        }
        Ok(())
    }
}
