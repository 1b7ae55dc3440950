//! Environments and enrollment tokens.

use std::collections::BTreeMap;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::EventPayload;
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Labels, MAX_ENTRIES, Name, TokenId, check_entry};

use super::checks::{environment, labels, name};
use super::outcome::{Pending, Refusal};
use crate::projections::Projections;

/// The environment that always exists.
pub const LOCAL: &str = "local";

pub(super) fn bootstrap(p: &Projections) -> Vec<Pending> {
    if p.envs.contains_key(LOCAL) {
        return Vec::new();
    }
    match Name::parse(LOCAL) {
        Ok(name) => vec![Pending::cloud_only(EventPayload::EnvironmentCreated {
            name,
            labels: Labels::new(),
            entries: Vec::new(),
        })],
        Err(_) => Vec::new(),
    }
}

/// Checks an environment's entry addresses: at most [`MAX_ENTRIES`], each an IP address or
/// `host:port` ([`check_entry`]), none twice (compared in canonical form, so
/// `GW.example.com:80` and `gw.example.com:80` are the same entry).
pub(crate) fn check_entries(entries: &[String]) -> Result<(), Refusal> {
    if entries.len() > MAX_ENTRIES {
        return Err(Refusal::invalid(
            "invalid_entry",
            "entries",
            format!(
                "{} entry addresses; at most {MAX_ENTRIES} are accepted",
                entries.len()
            ),
        ));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let canonical = check_entry(entry).map_err(|e| {
            Refusal::invalid("invalid_entry", format!("entries[{i}]"), e.to_string())
        })?;
        if let Some(j) = seen.get(&canonical) {
            return Err(Refusal::invalid(
                "invalid_entry",
                format!("entries[{i}]"),
                format!("\"{entry}\" is listed twice (also entries[{j}])"),
            ));
        }
        seen.insert(canonical, i);
    }
    Ok(())
}

pub(super) fn create(
    p: &Projections,
    raw_name: &str,
    raw_labels: &BTreeMap<String, String>,
    entries: &[String],
) -> Result<Vec<Pending>, Refusal> {
    let name = name("name", raw_name)?;
    let labels = labels("labels", raw_labels)?;
    check_entries(entries)?;
    if p.envs.contains_key(&name) {
        return Err(Refusal::conflict(
            "environment_exists",
            "name",
            format!("environment \"{name}\" already exists"),
        ));
    }
    Ok(vec![Pending::cloud_only(
        EventPayload::EnvironmentCreated {
            name,
            labels,
            entries: entries.to_vec(),
        },
    )])
}

pub(super) fn delete(p: &Projections, raw: &str) -> Result<Vec<Pending>, Refusal> {
    let env = environment(p, "name", raw)?;
    if env.name.as_str() == LOCAL {
        return Err(Refusal::conflict(
            "environment_protected",
            "name",
            "the environment \"local\" always exists and cannot be deleted",
        ));
    }
    let instances: Vec<&str> = p
        .instances
        .values()
        .filter(|i| i.spec.env == env.name)
        .map(|i| i.spec.name.as_str())
        .collect();
    if !instances.is_empty() {
        return Err(Refusal::conflict(
            "environment_in_use",
            "name",
            format!(
                "environment \"{}\" has instances ({}); undeploy them first",
                env.name,
                instances.join(", ")
            ),
        ));
    }
    let audience = p
        .nodes
        .values()
        .filter(|n| n.envs.contains(&env.name))
        .map(|n| n.id)
        .collect();
    Ok(vec![Pending {
        payload: EventPayload::EnvironmentDeleted {
            name: env.name.clone(),
        },
        audience,
    }])
}

pub(super) fn issue_token(
    p: &Projections,
    raw_env: &str,
    id: TokenId,
    secret_hash: Digest,
    expires: Timestamp,
    now: Timestamp,
) -> Result<Vec<Pending>, Refusal> {
    let env = environment(p, "env", raw_env)?;
    if expires <= now {
        return Err(Refusal::invalid(
            "invalid_ttl",
            "ttl",
            "the token's lifetime must be positive",
        ));
    }
    Ok(vec![Pending::cloud_only(
        EventPayload::EnrollmentTokenIssued {
            token: id,
            env: env.name.clone(),
            secret_hash,
            expires,
        },
    )])
}
