//! The manifest's semantic rules, beyond what its types already enforce.
//!
//! [`validate`] reports every broken rule, each with the field it concerns, in the order
//! of the components and of their fields. The rules (docs/manifest.md, "Validation"):
//! - `platforms`, when given, names at least one platform and none twice;
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
//! - each of `secrets` with exactly one of `env` (a variable name not also in `env`) and
//!   `file` (an absolute path), no variable or file the target of two entries;
//! - every count and size within its bound (the `MAX_*` constants of `bounds`,
//!   docs/manifest.md, "Limits"): a list or string past its bound is refused with the field
//!   and the limit, and its items are not checked one by one, so a hostile manifest costs
//!   little.
//!
//! [`validate`] is pure: the cloud runs it at publish and again on a recorded manifest
//! when it folds the event, so a manifest recorded before a bound existed is caught too.
//!
//! # Parts
//! - this module: [`validate`] and [`validate_on_node`], the rules in order and the cap
//!   on the errors listed;
//! - `errors`: [`FieldError`], [`ManifestError`] and the list the checks push to;
//! - `bounds`: the `MAX_*` limits and the checks of counts and sizes against them;
//! - `component`: the rules of one component (what runs, dependencies, kind, resources,
//!   ports, environment, paths, storage, health);
//! - `cycles`: the dependency cycles, each reported once;
//! - `secrets`: the rules of a component's `secrets`;
//! - `tests`: the bounds, one test each.

use std::collections::BTreeMap;

use crate::cron::Schedule;
use crate::manifest::model::Manifest;

mod bounds;
mod component;
mod cycles;
mod errors;
mod secrets;
#[cfg(test)]
mod tests;

use bounds::check_top_bounds;
pub use bounds::{
    MAX_ARG_BYTES, MAX_ARGS, MAX_COMPONENTS, MAX_CYCLES_REPORTED, MAX_DEPENDS_ON,
    MAX_DESCRIPTION_BYTES, MAX_ENV, MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, MAX_ERRORS_REPORTED,
    MAX_HEALTH_DURATION_MS, MAX_HEALTH_RETRIES, MAX_IMAGE_BYTES, MAX_JOB_TIMEOUT_MS, MAX_MOUNTS,
    MAX_PATH_BYTES, MAX_PLATFORMS, MAX_PORTS, MAX_REPLICAS, MAX_SCHEDULE_BYTES, MAX_SECRET_USES,
    MAX_STORAGE, MAX_TIMEZONE_BYTES, MAX_VERSION_BYTES,
};
use component::check_component;
use cycles::check_cycles;
use errors::Errors;
pub use errors::{FieldError, ManifestError};

/// Checks every semantic rule and bound; `Err` lists those that are broken (at most
/// [`MAX_ERRORS_REPORTED`], then how many more).
pub fn validate(manifest: &Manifest) -> Result<(), ManifestError> {
    validate_with(manifest, Mode::Publish)
}

/// Where the rules are checked: at publish, or on a node before it takes a recorded deploy
/// (which skips the cron syntax, which the cloud parsed at publish, and the rules added
/// after manifests were first recorded, so that no recorded deploy that was valid when it
/// was recorded is refused by a newer agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Publish,
    Node,
}

impl Mode {
    /// Checks a job's cron expression (on a node: only its length, checked elsewhere).
    pub(super) fn check_schedule(self, expr: &str) -> Result<(), String> {
        match self {
            Mode::Publish => Schedule::parse(expr).map(|_| ()).map_err(|e| e.to_string()),
            Mode::Node => Ok(()),
        }
    }
}

/// [`validate`] but for the syntax of cron schedules (their length is still bounded): what
/// a node checks before it takes a recorded deploy ([`crate::reducer`]). The cloud parsed
/// every schedule at publish; leaving the parser out keeps it, and what it pulls in, out
/// of the agent's binary.
pub fn validate_on_node(manifest: &Manifest) -> Result<(), ManifestError> {
    validate_with(manifest, Mode::Node)
}

/// `platforms`: left out (any platform), or at least one, at most [`MAX_PLATFORMS`],
/// none twice. (An unknown platform does not parse: `parse` names it.)
fn check_platforms(errors: &mut Errors, manifest: &Manifest) {
    let Some(platforms) = &manifest.platforms else {
        return;
    };
    if platforms.is_empty() {
        errors.push(
            "platforms",
            "an empty list fits no node; leave the field out to run on any platform",
        );
        return;
    }
    if !bounds::count_within(
        errors,
        "platforms",
        "platforms",
        platforms.len(),
        MAX_PLATFORMS,
    ) {
        return;
    }
    for (i, platform) in platforms.iter().enumerate() {
        if let Some(j) = platforms[..i].iter().position(|p| p == platform) {
            errors.push(
                format!("platforms[{i}]"),
                format!("{platform} is listed twice (also platforms[{j}])"),
            );
        }
    }
}

/// The rules, as `mode` checks them.
fn validate_with(manifest: &Manifest, mode: Mode) -> Result<(), ManifestError> {
    let mut errors = Errors::default();
    if !check_top_bounds(&mut errors, manifest) {
        return Err(ManifestError { errors: errors.0 });
    }
    check_platforms(&mut errors, manifest);
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
        check_component(&mut errors, manifest, &first_index, i, c, mode);
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
