//! The manifest's semantic rules, beyond what its types already enforce.
//!
//! [`validate`] reports every broken rule, each with the field it concerns, in the order
//! of the components and of their fields. The rules (docs/manifest.md, "Validation"):
//! - at least one component, component names unique;
//! - `depends_on` names other components of the app that are not jobs, without cycles;
//! - exactly one of `image` and `exec`; an `exec` component takes none of `pull`,
//!   `command`, `ports`, `host_network` and `mounts`;
//! - `schedule` on jobs only, and a valid Unix cron expression there;
//! - init and job components run once per node: `replicas` 1 and no `restart: always`;
//!   `replicas` is at least 1;
//! - resource limits not below their requests, and not zero;
//! - ports 1-65535, a fixed host port only with `replicas: 1` and a published `expose`,
//!   no port twice, no host port twice in the app, and no ports with `host_network`;
//! - environment variable names `[A-Za-z_][A-Za-z0-9_]*`, absolute paths, unique storage
//!   names, non-empty commands, health intervals and timeouts above zero.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::model::{Component, ComponentKind, Manifest};
use crate::cron::Schedule;

/// One refused field: where (`components[2].depends_on`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldError {
    /// The field's path; empty when the error concerns the document as a whole.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// A refused manifest: every reason found, in document order. Displays as the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.first())]
pub struct ManifestError {
    pub errors: Vec<FieldError>,
}

static NO_ERROR: FieldError = FieldError {
    field: String::new(),
    message: String::new(),
};

impl ManifestError {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// The first error (an empty one if `errors` was emptied by hand).
    pub fn first(&self) -> &FieldError {
        self.errors.first().unwrap_or(&NO_ERROR)
    }
}

impl From<FieldError> for ManifestError {
    fn from(e: FieldError) -> Self {
        Self { errors: vec![e] }
    }
}

/// Checks every semantic rule; `Err` lists all that are broken.
pub fn validate(manifest: &Manifest) -> Result<(), ManifestError> {
    let mut errors = Errors::default();
    if manifest.components.is_empty() {
        errors.push("components", "at least one component is required");
    }
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in manifest.components.iter().enumerate() {
        if let Some(j) = first_index.get(c.name.as_str()) {
            errors.push(
                format!("components[{i}].name"),
                format!(
                    "duplicate component name \"{}\" (also components[{j}])",
                    c.name
                ),
            );
        } else {
            first_index.insert(c.name.as_str(), i);
        }
    }
    let mut host_ports: BTreeMap<u16, String> = BTreeMap::new();
    for (i, c) in manifest.components.iter().enumerate() {
        check_component(&mut errors, manifest, &first_index, i, c);
        for (j, port) in c.ports.iter().enumerate() {
            if let Some(host) = port.host.filter(|h| *h != 0) {
                let here = format!("components[{i}].ports[{j}]");
                match host_ports.get(&host) {
                    Some(there) => errors.push(
                        format!("{here}.host"),
                        format!("host port {host} is also used by {there}"),
                    ),
                    None => {
                        host_ports.insert(host, here);
                    }
                }
            }
        }
    }
    check_cycles(&mut errors, manifest, &first_index);
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(ManifestError { errors: errors.0 })
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
}

/// The kind with its article: "a service", "an init", "a job".
fn a_kind(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Service => "a service",
        ComponentKind::Init => "an init",
        ComponentKind::Job => "a job",
    }
}

fn check_component(
    errors: &mut Errors,
    manifest: &Manifest,
    index_of: &BTreeMap<&str, usize>,
    i: usize,
    c: &Component,
) {
    let at = |field: &str| format!("components[{i}].{field}");
    let kind = a_kind(c.kind);

    // What runs: an image or an exec, never both.
    match (&c.image, &c.exec) {
        (Some(_), Some(_)) => errors.push(
            format!("components[{i}]"),
            "both image and exec are set; a component runs either an image (Docker) or an \
             exec (a native process)",
        ),
        (None, None) => errors.push(
            format!("components[{i}]"),
            "neither image nor exec is set; give one of them",
        ),
        _ => {}
    }
    if c.image.as_deref().is_some_and(|s| s.trim().is_empty()) {
        errors.push(at("image"), "must not be empty");
    }
    if let Some(exec) = &c.exec {
        if exec.is_empty() {
            errors.push(at("exec"), "must name the program to run");
        } else if exec[0].trim().is_empty() {
            errors.push(at("exec[0]"), "the program must not be empty");
        }
        let foreign = [
            ("pull", c.pull.is_some()),
            ("command", c.command.is_some()),
            ("ports", !c.ports.is_empty()),
            ("host_network", c.host_network.is_some()),
            ("mounts", !c.mounts.is_empty()),
        ];
        for (field, present) in foreign {
            if present && c.image.is_none() {
                errors.push(at(field), "not taken by an exec component");
            }
        }
    }
    if let Some(command) = &c.command
        && command.is_empty()
    {
        errors.push(at("command"), "must not be empty when given");
    }

    // Dependencies (cycles are checked for the whole app afterwards).
    for dep in &c.depends_on {
        match index_of.get(dep.as_str()) {
            None => errors.push(
                at("depends_on"),
                format!("\"{dep}\" is not a component of this app"),
            ),
            Some(_) if *dep == c.name => {
                errors.push(at("depends_on"), format!("\"{dep}\" depends on itself"));
            }
            Some(&j) if manifest.components[j].kind == ComponentKind::Job => errors.push(
                at("depends_on"),
                format!("\"{dep}\" is a job; a job runs on its schedule, so nothing waits for it"),
            ),
            Some(_) => {}
        }
    }

    // Kind.
    match (c.kind, &c.schedule) {
        (ComponentKind::Job, None) => errors.push(at("schedule"), "a job needs a schedule"),
        (ComponentKind::Job, Some(expr)) => {
            if let Err(e) = Schedule::parse(expr) {
                errors.push(at("schedule"), e.to_string());
            }
        }
        (_, Some(_)) => errors.push(
            at("schedule"),
            format!("only a job takes a schedule; this component is {kind}"),
        ),
        (_, None) => {}
    }
    match c.replicas {
        Some(0) => errors.push(at("replicas"), "must be at least 1"),
        Some(n) if n != 1 && c.kind != ComponentKind::Service => errors.push(
            at("replicas"),
            format!("{kind} component runs once per node; replicas must be 1, not {n}"),
        ),
        _ => {}
    }
    if c.kind != ComponentKind::Service && c.restart == Some(super::model::RestartPolicy::Always) {
        errors.push(
            at("restart"),
            format!("{kind} component runs to completion; use on-failure or never"),
        );
    }

    // Resources.
    if let Some(resources) = &c.resources {
        if let Some(cpu) = &resources.cpu {
            check_range(errors, &at("resources.cpu"), cpu.request, cpu.limit);
        }
        if let Some(memory) = &resources.memory {
            check_range(
                errors,
                &at("resources.memory"),
                memory.request,
                memory.limit,
            );
        }
    }

    // Ports.
    if c.host_network() && !c.ports.is_empty() {
        errors.push(at("ports"), "ports are not mapped with host_network");
    }
    let mut container_ports = BTreeSet::new();
    for (j, port) in c.ports.iter().enumerate() {
        let at_port = |field: &str| format!("components[{i}].ports[{j}].{field}");
        if port.container == 0 {
            errors.push(at_port("container"), "port 0 is out of range 1-65535");
        } else if !container_ports.insert(port.container) {
            errors.push(
                at_port("container"),
                format!("container port {} is listed twice", port.container),
            );
        }
        match port.host {
            Some(0) => errors.push(at_port("host"), "port 0 is out of range 1-65535"),
            Some(host) if !port.expose.published() => errors.push(
                at_port("host"),
                format!("host port {host} needs expose: nodeport or loadbalancer"),
            ),
            Some(_) if c.replicas() != 1 => errors.push(
                at_port("host"),
                format!(
                    "a fixed host port requires replicas: 1 (replicas is {})",
                    c.replicas()
                ),
            ),
            _ => {}
        }
    }

    // Environment, paths, storage, health.
    for name in c.env.keys() {
        if !is_env_name(name) {
            errors.push(
                format!("components[{i}].env.{name}"),
                format!("\"{name}\" is not a variable name; use [A-Za-z_][A-Za-z0-9_]*"),
            );
        }
    }
    for (j, mount) in c.mounts.iter().enumerate() {
        check_absolute(
            errors,
            format!("components[{i}].mounts[{j}].host"),
            &mount.host,
        );
        check_absolute(
            errors,
            format!("components[{i}].mounts[{j}].container"),
            &mount.container,
        );
    }
    let mut storage_names = BTreeSet::new();
    for (j, storage) in c.storage.iter().enumerate() {
        if !storage_names.insert(storage.name.as_str()) {
            errors.push(
                format!("components[{i}].storage[{j}].name"),
                format!("duplicate storage name \"{}\"", storage.name),
            );
        }
        check_absolute(
            errors,
            format!("components[{i}].storage[{j}].container"),
            &storage.container,
        );
    }
    if let Some(dir) = &c.log_dir {
        check_absolute(errors, at("log_dir"), dir);
    }
    if let Some(health) = &c.health {
        if health.command.is_empty() {
            errors.push(at("health.command"), "must not be empty");
        }
        if health.interval.is_some_and(|d| d.millis() == 0) {
            errors.push(at("health.interval"), "must be more than 0");
        }
        if health.timeout.is_some_and(|d| d.millis() == 0) {
            errors.push(at("health.timeout"), "must be more than 0");
        }
    }
}

/// A limit not below its request, and not zero.
fn check_range<Q: Ord + Copy + Default + fmt::Display>(
    errors: &mut Errors,
    at: &str,
    request: Option<Q>,
    limit: Option<Q>,
) {
    let Some(limit) = limit else { return };
    if limit == Q::default() {
        errors.push(format!("{at}.limit"), "must be more than 0");
    } else if let Some(request) = request
        && limit < request
    {
        errors.push(
            format!("{at}.limit"),
            format!("limit {limit} is below the request {request}"),
        );
    }
}

fn check_absolute(errors: &mut Errors, field: String, path: &str) {
    if !path.starts_with('/') {
        errors.push(field, format!("\"{path}\" is not an absolute path"));
    } else if path.contains('\0') {
        errors.push(field, "a path must not contain a NUL character");
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The most dependency cycles reported; the search stops at the next one.
pub const MAX_CYCLES_REPORTED: usize = 16;

/// Reports each cycle in `depends_on` once, at the component of the cycle that comes
/// first in the manifest, as `cycle: a -> b -> a`: the first [`MAX_CYCLES_REPORTED`] that
/// a depth-first search meets, and then that there are more. A manifest can hold many
/// long cycles (one component that depends on every other of a chain makes as many cycles
/// as the chain is long, each as long), so reporting them all would take memory and time
/// quadratic in the manifest's size.
fn check_cycles(errors: &mut Errors, manifest: &Manifest, index_of: &BTreeMap<&str, usize>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let n = manifest.components.len();
    // Edges to other, known components; the first of each duplicate name stands for it.
    let edges: Vec<Vec<usize>> = manifest
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // Each target once, in the order written.
            let mut seen = BTreeSet::new();
            c.depends_on
                .iter()
                .filter_map(|d| index_of.get(d.as_str()).copied())
                .filter(|&j| j != i && seen.insert(j))
                .collect::<Vec<usize>>()
        })
        .collect();
    let mut marks = vec![Mark::New; n];
    let mut found: BTreeSet<Vec<usize>> = BTreeSet::new();
    let mut more = false;
    'search: for root in 0..n {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative depth-first search: (node, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::Open;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            top.1 += 1;
            if let Some(&to) = edges[node].get(next) {
                match marks[to] {
                    Mark::New => {
                        marks[to] = Mark::Open;
                        stack.push((to, 0));
                    }
                    Mark::Open if found.len() == MAX_CYCLES_REPORTED => {
                        // Each back edge closes a cycle of its own.
                        more = true;
                        break 'search;
                    }
                    Mark::Open => {
                        let start = stack.iter().position(|&(v, _)| v == to).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[start..].iter().map(|&(v, _)| v).collect();
                        // Start at the component that comes first in the manifest.
                        if let Some(min_at) = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|&(_, v)| *v)
                            .map(|(k, _)| k)
                        {
                            cycle.rotate_left(min_at);
                        }
                        found.insert(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    for cycle in found {
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&v| manifest.components[v].name.as_str())
            .collect();
        errors.push(
            format!("components[{}].depends_on", cycle[0]),
            format!("cycle: {}", names.join(" -> ")),
        );
    }
    if more {
        errors.push(
            "components",
            format!("more dependency cycles than the {MAX_CYCLES_REPORTED} reported"),
        );
    }
}
