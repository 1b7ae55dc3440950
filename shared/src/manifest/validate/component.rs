//! The rules of one component: what runs, its dependencies and kind, resources, ports,
//! environment, paths, storage and health (the app-wide rules, duplicate names, host
//! ports and cycles, are checked by the caller).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::bounds::{
    MAX_DEPENDS_ON, MAX_ENV, MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, MAX_HEALTH_DURATION_MS,
    MAX_HEALTH_RETRIES, MAX_IMAGE_BYTES, MAX_JOB_TIMEOUT_MS, MAX_MOUNTS, MAX_PATH_BYTES, MAX_PORTS,
    MAX_REPLICAS, MAX_SCHEDULE_BYTES, MAX_STORAGE, MAX_TIMEZONE_BYTES, bytes_within, check_args,
    count_within,
};
use super::errors::Errors;
use super::secrets::is_env_name;
use crate::ids::Name;
use crate::manifest::model::{
    Component, ComponentKind, Manifest, Mount, Port, RestartPolicy, Storage,
};

/// The kind with its article: "a service", "an init", "a job".
fn a_kind(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Service => "a service",
        ComponentKind::Init => "an init",
        ComponentKind::Job => "a job",
    }
}

pub(super) fn check_component(
    errors: &mut Errors,
    manifest: &Manifest,
    index_of: &BTreeMap<&str, usize>,
    i: usize,
    c: &Component,
    mode: super::Mode,
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
                && let Err(e) = mode.check_schedule(expr)
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
    if c.kind != ComponentKind::Service && c.restart == Some(RestartPolicy::Always) {
        errors.push(
            at("restart"),
            if c.kind == ComponentKind::Job {
                format!("{kind} component runs to completion; use never")
            } else {
                format!("{kind} component runs to completion; use on-failure or never")
            },
        );
    } else if c.kind == ComponentKind::Job
        && c.restart == Some(RestartPolicy::OnFailure)
        && mode == super::Mode::Publish
    {
        // Refused at publish only: versions recorded before jobs ran keep deploying.
        errors.push(
            at("restart"),
            "a job's failed run is not run again: its next run comes on its schedule; use never",
        );
    }
    check_job_settings(errors, i, c, kind);

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
    super::secrets::check_secrets(errors, i, c);
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

/// `timezone`, `concurrency` and `timeout`: a job's only, a zone of the IANA database, a
/// timeout from 1 second to [`MAX_JOB_TIMEOUT_MS`].
fn check_job_settings(errors: &mut Errors, i: usize, c: &Component, kind: &str) {
    let at = |field: &str| format!("components[{i}].{field}");
    if c.kind != ComponentKind::Job {
        for (field, set) in [
            ("timezone", c.timezone.is_some()),
            ("concurrency", c.concurrency.is_some()),
            ("timeout", c.timeout.is_some()),
        ] {
            if set {
                errors.push(
                    at(field),
                    format!("only a job takes a {field}; this component is {kind}"),
                );
            }
        }
        return;
    }
    if let Some(name) = &c.timezone
        && bytes_within(errors, &at("timezone"), name, MAX_TIMEZONE_BYTES)
        && let Err(e) = crate::cron::zone(name)
    {
        errors.push(at("timezone"), e);
    }
    match c.timeout.map(|d| d.millis()) {
        Some(ms) if ms < 1000 => errors.push(at("timeout"), "must be at least 1s"),
        Some(ms) if ms > MAX_JOB_TIMEOUT_MS => errors.push(
            at("timeout"),
            format!("{ms}ms; at most {MAX_JOB_TIMEOUT_MS}ms (7d) is accepted"),
        ),
        _ => {}
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
