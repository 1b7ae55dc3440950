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
//!   names, non-empty commands, health intervals and timeouts above zero;
//! - every count and size within its bound (the `MAX_*` constants below, docs/manifest.md,
//!   "Limits"): a list or string past its bound is refused with the field and the limit,
//!   and its items are not checked one by one, so a hostile manifest costs little.
//!
//! [`validate`] is pure: the cloud runs it at publish and again on a recorded manifest
//! when it folds the event, so a manifest recorded before a bound existed is caught too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::model::{Component, ComponentKind, Manifest, Mount, Port, Storage};
use crate::cron::Schedule;
use crate::ids::Name;

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

// Bounds. Each is documented in docs/manifest.md ("Limits"); a manifest past one is
// refused with `invalid_manifest`, the field named and the limit in the message.

/// The most components in one manifest.
pub const MAX_COMPONENTS: usize = 64;
/// The most copies of a component on one node (`replicas`).
pub const MAX_REPLICAS: u32 = 64;
/// The most entries in one component's `depends_on`.
pub const MAX_DEPENDS_ON: usize = MAX_COMPONENTS;
/// The most `ports` of one component.
pub const MAX_PORTS: usize = 64;
/// The most `mounts` of one component.
pub const MAX_MOUNTS: usize = 64;
/// The most `storage` entries of one component.
pub const MAX_STORAGE: usize = 64;
/// The most `env` variables of one component (and `deploy --set` overrides per deploy).
pub const MAX_ENV: usize = 256;
/// The longest environment variable name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// The longest environment variable value, in bytes (16 KiB).
pub const MAX_ENV_VALUE_BYTES: usize = 16 * 1024;
/// The most arguments of `exec`, `command` and `health.command`, the program included.
pub const MAX_ARGS: usize = 256;
/// The longest single argument of `exec`, `command` and `health.command`, in bytes.
pub const MAX_ARG_BYTES: usize = 4096;
/// The longest `version`, in bytes, pre-release and build parts included.
pub const MAX_VERSION_BYTES: usize = 128;
/// The longest `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// The longest `image` reference, in bytes.
pub const MAX_IMAGE_BYTES: usize = 512;
/// The longest path (`mounts`, `storage[].container`, `log_dir`), in bytes (Linux' PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest cron `schedule`, in bytes.
pub const MAX_SCHEDULE_BYTES: usize = 256;
/// The most `health.retries`.
pub const MAX_HEALTH_RETRIES: u32 = 100;
/// The longest `health.interval` and `health.timeout`, in milliseconds (one day).
pub const MAX_HEALTH_DURATION_MS: u64 = 24 * 60 * 60 * 1000;
/// The most problems one refusal lists; past it, one more entry says how many were left out.
pub const MAX_ERRORS_REPORTED: usize = 64;

/// `n` items of a list at `field`, at most `max`: or why not.
fn count_within(errors: &mut Errors, field: &str, what: &str, n: usize, max: usize) -> bool {
    if n > max {
        errors.push(field, format!("{n} {what}; at most {max} are accepted"));
        return false;
    }
    true
}

/// A string at `field` of at most `max` bytes: or why not.
fn bytes_within(errors: &mut Errors, field: &str, s: &str, max: usize) -> bool {
    if s.len() > max {
        errors.push(
            field,
            format!("{} bytes long; at most {max} bytes are accepted", s.len()),
        );
        return false;
    }
    true
}

/// An argument list (`exec`, `command`, `health.command`): its length and each argument's.
fn check_args(errors: &mut Errors, field: &str, args: &[String]) -> bool {
    if !count_within(errors, field, "arguments", args.len(), MAX_ARGS) {
        return false;
    }
    let mut ok = true;
    for (j, arg) in args.iter().enumerate() {
        ok &= bytes_within(errors, &format!("{field}[{j}]"), arg, MAX_ARG_BYTES);
    }
    ok
}

/// The bounds of the manifest's top level; false when `components` is past its bound, so
/// its components are not checked one by one.
fn check_top_bounds(errors: &mut Errors, manifest: &Manifest) -> bool {
    let version = manifest.version.to_string();
    if version.len() > MAX_VERSION_BYTES {
        errors.push(
            "version",
            format!(
                "the version is {} bytes long; at most {MAX_VERSION_BYTES} bytes are accepted",
                version.len()
            ),
        );
    }
    if let Some(d) = &manifest.description {
        bytes_within(errors, "description", d, MAX_DESCRIPTION_BYTES);
    }
    count_within(
        errors,
        "components",
        "components",
        manifest.components.len(),
        MAX_COMPONENTS,
    )
}

/// Checks every semantic rule and bound; `Err` lists those that are broken (at most
/// [`MAX_ERRORS_REPORTED`], then how many more).
pub fn validate(manifest: &Manifest) -> Result<(), ManifestError> {
    validate_with(manifest, |expr| {
        Schedule::parse(expr).map(|_| ()).map_err(|e| e.to_string())
    })
}

/// [`validate`] but for the syntax of cron schedules (their length is still bounded): what
/// a node checks before it takes a recorded deploy ([`crate::reducer`]). The cloud parsed
/// every schedule at publish; leaving the parser out keeps it, and what it pulls in, out
/// of the agent's binary.
pub fn validate_on_node(manifest: &Manifest) -> Result<(), ManifestError> {
    validate_with(manifest, |_| Ok(()))
}

/// The rules, with `schedule` checking a job's cron expression.
fn validate_with(
    manifest: &Manifest,
    schedule: fn(&str) -> Result<(), String>,
) -> Result<(), ManifestError> {
    let mut errors = Errors::default();
    if !check_top_bounds(&mut errors, manifest) {
        return Err(ManifestError { errors: errors.0 });
    }
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
        check_component(&mut errors, manifest, &first_index, i, c, schedule);
        if c.ports.len() > MAX_PORTS {
            continue;
        }
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
    let mut errors = errors.0;
    if errors.is_empty() {
        return Ok(());
    }
    if errors.len() > MAX_ERRORS_REPORTED {
        let more = errors.len() - MAX_ERRORS_REPORTED;
        errors.truncate(MAX_ERRORS_REPORTED);
        errors.push(FieldError::new(
            "",
            format!("and {more} more problems, not listed"),
        ));
    }
    Err(ManifestError { errors })
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
    schedule: fn(&str) -> Result<(), String>,
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
    if let Some(image) = &c.image {
        if image.trim().is_empty() {
            errors.push(at("image"), "must not be empty");
        } else {
            bytes_within(errors, &at("image"), image, MAX_IMAGE_BYTES);
        }
    }
    if let Some(exec) = &c.exec {
        if check_args(errors, &at("exec"), exec) {
            if exec.is_empty() {
                errors.push(at("exec"), "must name the program to run");
            } else if exec[0].trim().is_empty() {
                errors.push(at("exec[0]"), "the program must not be empty");
            }
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
        && check_args(errors, &at("command"), command)
        && command.is_empty()
    {
        errors.push(at("command"), "must not be empty when given");
    }

    // Dependencies (cycles are checked for the whole app afterwards).
    let deps_ok = count_within(
        errors,
        &at("depends_on"),
        "dependencies",
        c.depends_on.len(),
        MAX_DEPENDS_ON,
    );
    let deps: &[Name] = if deps_ok { &c.depends_on } else { &[] };
    for dep in deps {
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
            if bytes_within(errors, &at("schedule"), expr, MAX_SCHEDULE_BYTES)
                && let Err(e) = schedule(expr)
            {
                errors.push(at("schedule"), e);
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
        Some(n) if n > MAX_REPLICAS => errors.push(
            at("replicas"),
            format!("{n} replicas; at most {MAX_REPLICAS} per node are accepted"),
        ),
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
    let ports_ok = count_within(errors, &at("ports"), "ports", c.ports.len(), MAX_PORTS);
    let mut container_ports = BTreeSet::new();
    let ports: &[Port] = if ports_ok { &c.ports } else { &[] };
    for (j, port) in ports.iter().enumerate() {
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
    if count_within(errors, &at("env"), "variables", c.env.len(), MAX_ENV) {
        for (name, value) in &c.env {
            if name.len() > MAX_ENV_NAME_BYTES {
                errors.push(
                    at("env"),
                    format!(
                        "a variable name is {} bytes long; at most {MAX_ENV_NAME_BYTES} bytes are accepted",
                        name.len()
                    ),
                );
            } else if !is_env_name(name) {
                errors.push(
                    format!("components[{i}].env.{name}"),
                    format!("\"{name}\" is not a variable name; use [A-Za-z_][A-Za-z0-9_]*"),
                );
            } else {
                bytes_within(
                    errors,
                    &format!("components[{i}].env.{name}"),
                    value.as_str(),
                    MAX_ENV_VALUE_BYTES,
                );
            }
        }
    }
    let mounts_ok = count_within(errors, &at("mounts"), "mounts", c.mounts.len(), MAX_MOUNTS);
    let mounts: &[Mount] = if mounts_ok { &c.mounts } else { &[] };
    for (j, mount) in mounts.iter().enumerate() {
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
    let storage_ok = count_within(
        errors,
        &at("storage"),
        "storage entries",
        c.storage.len(),
        MAX_STORAGE,
    );
    let mut storage_names = BTreeSet::new();
    let storage: &[Storage] = if storage_ok { &c.storage } else { &[] };
    for (j, storage) in storage.iter().enumerate() {
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
        if check_args(errors, &at("health.command"), &health.command) && health.command.is_empty() {
            errors.push(at("health.command"), "must not be empty");
        }
        for (field, d) in [("interval", health.interval), ("timeout", health.timeout)] {
            match d.map(|d| d.millis()) {
                Some(0) => errors.push(at(&format!("health.{field}")), "must be more than 0"),
                Some(ms) if ms > MAX_HEALTH_DURATION_MS => errors.push(
                    at(&format!("health.{field}")),
                    format!("{ms}ms; at most {MAX_HEALTH_DURATION_MS}ms (1d) is accepted"),
                ),
                _ => {}
            }
        }
        if let Some(n) = health.retries
            && n > MAX_HEALTH_RETRIES
        {
            errors.push(
                at("health.retries"),
                format!("{n} retries; at most {MAX_HEALTH_RETRIES} are accepted"),
            );
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
    if path.len() > MAX_PATH_BYTES {
        errors.push(
            field,
            format!(
                "the path is {} bytes long; at most {MAX_PATH_BYTES} bytes are accepted",
                path.len()
            ),
        );
    } else if !path.starts_with('/') {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::manifest::{EnvValue, Health, Port, Storage};
    use crate::quantity::Duration;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn manifest(components: Vec<Component>) -> Manifest {
        Manifest {
            app: name("a"),
            version: semver::Version::new(1, 0, 0),
            description: None,
            components,
        }
    }

    fn web() -> Component {
        Component::image(name("web"), "web:1")
    }

    fn one(c: Component) -> Manifest {
        manifest(vec![c])
    }

    /// Asserts `m` is accepted.
    fn accepted(m: &Manifest) {
        if let Err(e) = validate(m) {
            panic!("refused: {:?}", e.errors);
        }
    }

    /// Asserts `m` is refused with `field` as its first error, the message naming `limit`.
    fn refused(m: &Manifest, field: &str, limit: impl fmt::Display) {
        let e = validate(m).expect_err("accepted");
        let first = e.first();
        assert_eq!(first.field, field, "{:?}", e.errors);
        let limit = limit.to_string();
        assert!(
            first.message.contains(&format!("at most {limit}")),
            "expected the limit {limit}: {}",
            first.message
        );
    }

    /// `n` components named c0, c1, ...
    fn components(n: usize) -> Vec<Component> {
        (0..n)
            .map(|i| Component::image(name(&format!("c{i}")), "web:1"))
            .collect()
    }

    #[test]
    fn components_are_bounded() {
        accepted(&manifest(components(MAX_COMPONENTS)));
        let m = manifest(components(MAX_COMPONENTS + 1));
        refused(&m, "components", MAX_COMPONENTS);
        // Only that: the components past the bound are not checked one by one.
        assert_eq!(validate(&m).unwrap_err().errors.len(), 1);
    }

    #[test]
    fn replicas_are_bounded() {
        accepted(&one(Component {
            replicas: Some(MAX_REPLICAS),
            ..web()
        }));
        for n in [MAX_REPLICAS + 1, u32::MAX] {
            refused(
                &one(Component {
                    replicas: Some(n),
                    ..web()
                }),
                "components[0].replicas",
                MAX_REPLICAS,
            );
        }
    }

    #[test]
    fn depends_on_is_bounded() {
        let mut cs = components(2);
        cs[0].depends_on = vec![name("c1"); MAX_DEPENDS_ON];
        accepted(&manifest(cs.clone()));
        cs[0].depends_on.push(name("c1"));
        refused(&manifest(cs), "components[0].depends_on", MAX_DEPENDS_ON);
    }

    #[test]
    fn ports_mounts_and_storage_are_bounded() {
        let ports = |n: usize| -> Vec<Port> {
            (1..=n)
                .map(|p| Port {
                    container: u16::try_from(p).unwrap(),
                    host: None,
                    expose: Default::default(),
                })
                .collect()
        };
        accepted(&one(Component {
            ports: ports(MAX_PORTS),
            ..web()
        }));
        refused(
            &one(Component {
                ports: ports(MAX_PORTS + 1),
                ..web()
            }),
            "components[0].ports",
            MAX_PORTS,
        );

        let mounts = |n: usize| -> Vec<Mount> {
            (0..n)
                .map(|i| Mount {
                    host: format!("/h{i}"),
                    container: format!("/c{i}"),
                    kind: crate::manifest::MountType::File,
                })
                .collect()
        };
        accepted(&one(Component {
            mounts: mounts(MAX_MOUNTS),
            ..web()
        }));
        refused(
            &one(Component {
                mounts: mounts(MAX_MOUNTS + 1),
                ..web()
            }),
            "components[0].mounts",
            MAX_MOUNTS,
        );

        let storage = |n: usize| -> Vec<Storage> {
            (0..n)
                .map(|i| Storage {
                    name: name(&format!("s{i}")),
                    container: format!("/s{i}"),
                })
                .collect()
        };
        accepted(&one(Component {
            storage: storage(MAX_STORAGE),
            ..web()
        }));
        refused(
            &one(Component {
                storage: storage(MAX_STORAGE + 1),
                ..web()
            }),
            "components[0].storage",
            MAX_STORAGE,
        );
    }

    #[test]
    fn env_is_bounded_in_count_name_and_value() {
        let env = |n: usize| -> BTreeMap<String, EnvValue> {
            (0..n)
                .map(|i| (format!("V{i}"), EnvValue("x".into())))
                .collect()
        };
        accepted(&one(Component {
            env: env(MAX_ENV),
            ..web()
        }));
        refused(
            &one(Component {
                env: env(MAX_ENV + 1),
                ..web()
            }),
            "components[0].env",
            MAX_ENV,
        );

        let with = |k: String, v: String| Component {
            env: BTreeMap::from([(k, EnvValue(v))]),
            ..web()
        };
        accepted(&one(with("V".repeat(MAX_ENV_NAME_BYTES), "x".into())));
        refused(
            &one(with("V".repeat(MAX_ENV_NAME_BYTES + 1), "x".into())),
            "components[0].env",
            format!("{MAX_ENV_NAME_BYTES} bytes"),
        );
        accepted(&one(with("V".into(), "x".repeat(MAX_ENV_VALUE_BYTES))));
        refused(
            &one(with("V".into(), "x".repeat(MAX_ENV_VALUE_BYTES + 1))),
            "components[0].env.V",
            format!("{MAX_ENV_VALUE_BYTES} bytes"),
        );
    }

    #[test]
    fn argument_lists_are_bounded() {
        let args = |n: usize, len: usize| -> Vec<String> { vec!["a".repeat(len); n] };
        // exec
        let exec = |a: Vec<String>| Component {
            image: None,
            exec: Some(a),
            ..web()
        };
        accepted(&one(exec(args(MAX_ARGS, 1))));
        refused(
            &one(exec(args(MAX_ARGS + 1, 1))),
            "components[0].exec",
            MAX_ARGS,
        );
        accepted(&one(exec(args(2, MAX_ARG_BYTES))));
        refused(
            &one(exec(args(2, MAX_ARG_BYTES + 1))),
            "components[0].exec[0]",
            format!("{MAX_ARG_BYTES} bytes"),
        );
        // command
        let command = |a: Vec<String>| Component {
            command: Some(a),
            ..web()
        };
        accepted(&one(command(args(MAX_ARGS, MAX_ARG_BYTES))));
        refused(
            &one(command(args(MAX_ARGS + 1, 1))),
            "components[0].command",
            MAX_ARGS,
        );
        let mut long_last = args(3, 1);
        long_last[2] = "a".repeat(MAX_ARG_BYTES + 1);
        refused(
            &one(command(long_last)),
            "components[0].command[2]",
            format!("{MAX_ARG_BYTES} bytes"),
        );
        // health.command
        let health = |a: Vec<String>| Component {
            health: Some(Health {
                command: a,
                interval: None,
                timeout: None,
                retries: None,
            }),
            ..web()
        };
        accepted(&one(health(args(MAX_ARGS, 1))));
        refused(
            &one(health(args(MAX_ARGS + 1, 1))),
            "components[0].health.command",
            MAX_ARGS,
        );
        refused(
            &one(health(args(1, MAX_ARG_BYTES + 1))),
            "components[0].health.command[0]",
            format!("{MAX_ARG_BYTES} bytes"),
        );
    }

    #[test]
    fn health_numbers_are_bounded() {
        let health = |interval: u64, timeout: u64, retries: u32| Component {
            health: Some(Health {
                command: vec!["/bin/true".into()],
                interval: Some(Duration::from_millis(interval)),
                timeout: Some(Duration::from_millis(timeout)),
                retries: Some(retries),
            }),
            ..web()
        };
        let max = MAX_HEALTH_DURATION_MS;
        accepted(&one(health(max, max, MAX_HEALTH_RETRIES)));
        refused(
            &one(health(max + 1, 1, 1)),
            "components[0].health.interval",
            format!("{max}ms"),
        );
        refused(
            &one(health(1, max + 1, 1)),
            "components[0].health.timeout",
            format!("{max}ms"),
        );
        refused(
            &one(health(1, 1, MAX_HEALTH_RETRIES + 1)),
            "components[0].health.retries",
            MAX_HEALTH_RETRIES,
        );
    }

    #[test]
    fn strings_are_bounded() {
        // version: the whole text, pre-release and build included.
        let version =
            |pre: usize| semver::Version::parse(&format!("1.0.0-{}", "a".repeat(pre))).unwrap();
        let mut m = one(web());
        m.version = version(MAX_VERSION_BYTES - "1.0.0-".len());
        accepted(&m);
        m.version = version(MAX_VERSION_BYTES - "1.0.0-".len() + 1);
        refused(&m, "version", format!("{MAX_VERSION_BYTES} bytes"));
        m.version = version(100_000);
        refused(&m, "version", format!("{MAX_VERSION_BYTES} bytes"));

        let mut m = one(web());
        m.description = Some("d".repeat(MAX_DESCRIPTION_BYTES));
        accepted(&m);
        m.description = Some("d".repeat(MAX_DESCRIPTION_BYTES + 1));
        refused(&m, "description", format!("{MAX_DESCRIPTION_BYTES} bytes"));

        let image = |len: usize| Component::image(name("web"), &"i".repeat(len));
        accepted(&one(image(MAX_IMAGE_BYTES)));
        refused(
            &one(image(MAX_IMAGE_BYTES + 1)),
            "components[0].image",
            format!("{MAX_IMAGE_BYTES} bytes"),
        );

        let path = |len: usize| format!("/{}", "p".repeat(len - 1));
        accepted(&one(Component {
            log_dir: Some(path(MAX_PATH_BYTES)),
            ..web()
        }));
        refused(
            &one(Component {
                log_dir: Some(path(MAX_PATH_BYTES + 1)),
                ..web()
            }),
            "components[0].log_dir",
            format!("{MAX_PATH_BYTES} bytes"),
        );
        refused(
            &one(Component {
                storage: vec![Storage {
                    name: name("s"),
                    container: path(MAX_PATH_BYTES + 1),
                }],
                ..web()
            }),
            "components[0].storage[0].container",
            format!("{MAX_PATH_BYTES} bytes"),
        );

        // A schedule: the fields padded with spaces up to the bound still parse.
        let job = |expr: String| Component {
            kind: ComponentKind::Job,
            schedule: Some(expr),
            ..web()
        };
        let padded = |len: usize| format!("{}* * * * *", " ".repeat(len - 9));
        accepted(&one(job(padded(MAX_SCHEDULE_BYTES))));
        refused(
            &one(job(padded(MAX_SCHEDULE_BYTES + 1))),
            "components[0].schedule",
            format!("{MAX_SCHEDULE_BYTES} bytes"),
        );
    }

    #[test]
    fn a_node_checks_every_rule_but_the_cron_syntax() {
        let job = |expr: &str, replicas: u32| {
            one(Component {
                kind: ComponentKind::Job,
                schedule: Some(expr.to_owned()),
                replicas: Some(replicas),
                ..web()
            })
        };
        let bad_cron = job("61 * * * *", 1);
        assert!(validate(&bad_cron).is_err());
        assert!(validate_on_node(&bad_cron).is_ok());
        let too_many = job("* * * * *", MAX_REPLICAS + 1);
        let e = validate_on_node(&too_many).unwrap_err();
        assert_eq!(e.errors[0].field, "components[0].replicas", "{e}");
        assert!(validate(&too_many).is_err());
        let too_long = job(&format!("{}* * * * *", " ".repeat(MAX_SCHEDULE_BYTES)), 1);
        assert!(validate_on_node(&too_long).is_err());
    }

    #[test]
    fn the_errors_listed_are_bounded() {
        // Every component with two bad ports: more problems than are listed.
        let mut cs = components(MAX_COMPONENTS);
        for c in &mut cs {
            c.ports = vec![
                Port {
                    container: 0,
                    host: None,
                    expose: Default::default(),
                };
                2
            ];
        }
        let e = validate(&manifest(cs)).unwrap_err();
        assert_eq!(e.errors.len(), MAX_ERRORS_REPORTED + 1);
        let last = e.errors.last().unwrap();
        assert!(last.message.starts_with("and 64 more problems"), "{last}");
    }
}
