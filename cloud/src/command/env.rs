//! Environments (created, renamed, their description and entry addresses set, deleted)
//! and enrollment tokens.

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

/// The longest description of an environment (`env set --description`), in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

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
    let audience = members(p, &env.name);
    Ok(vec![Pending {
        payload: EventPayload::EnvironmentDeleted {
            name: env.name.clone(),
        },
        audience,
    }])
}

/// `env rename ENV NEW`: one `environment.renamed`, for every node of the environment
/// (their agents rename their membership and their instances' environment; nothing
/// restarts). `local` keeps its name; the new name must be free.
pub(super) fn rename(p: &Projections, raw: &str, raw_to: &str) -> Result<Vec<Pending>, Refusal> {
    let env = environment(p, "env", raw)?;
    let to = name("name", raw_to)?;
    if env.name.as_str() == LOCAL {
        return Err(Refusal::conflict(
            "environment_protected",
            "env",
            "the environment \"local\" always exists under that name and cannot be renamed",
        ));
    }
    if to == env.name {
        return Ok(Vec::new());
    }
    if p.envs.contains_key(&to) {
        return Err(Refusal::conflict(
            "environment_exists",
            "name",
            format!("environment \"{to}\" already exists"),
        ));
    }
    Ok(vec![Pending {
        payload: EventPayload::EnvironmentRenamed {
            name: env.name.clone(),
            to,
        },
        audience: members(p, &env.name),
    }])
}

/// `env set ENV [--description TEXT] [--entry ADDR]...`: what is given replaces what the
/// environment has (an empty description clears it); at least one of them. No event when
/// nothing changes.
pub(super) fn update(
    p: &Projections,
    raw: &str,
    description: Option<&str>,
    entries: Option<&[String]>,
) -> Result<Vec<Pending>, Refusal> {
    let env = environment(p, "env", raw)?;
    if description.is_none() && entries.is_none() {
        return Err(Refusal::invalid(
            "nothing_to_set",
            "description",
            "give a description or entry addresses to set",
        ));
    }
    if let Some(d) = description {
        check_description(d)?;
    }
    if let Some(entries) = entries {
        check_entries(entries)?;
    }
    let description = match description {
        Some("") => None,
        Some(d) => Some(d.to_owned()),
        None => env.description.clone(),
    };
    let entries = entries.map_or_else(|| env.entries.clone(), <[String]>::to_vec);
    if description == env.description && entries == env.entries {
        return Ok(Vec::new());
    }
    Ok(vec![Pending::cloud_only(
        EventPayload::EnvironmentUpdated {
            name: env.name.clone(),
            description,
            entries,
        },
    )])
}

/// A description: at most [`MAX_DESCRIPTION_BYTES`], one line of printable text (no
/// control characters), so that it reads in a table.
fn check_description(d: &str) -> Result<(), Refusal> {
    if d.len() > MAX_DESCRIPTION_BYTES {
        return Err(Refusal::invalid(
            "invalid_description",
            "description",
            format!(
                "the description is {} bytes long; at most {MAX_DESCRIPTION_BYTES} are accepted",
                d.len()
            ),
        ));
    }
    if let Some(c) = d.chars().find(|c| c.is_control()) {
        return Err(Refusal::invalid(
            "invalid_description",
            "description",
            format!("the description holds the control character {c:?}; give one line of text"),
        ));
    }
    Ok(())
}

/// The nodes of environment `env`.
fn members(p: &Projections, env: &Name) -> Vec<skerry_shared::ids::NodeId> {
    p.nodes
        .values()
        .filter(|n| n.envs.contains(env))
        .map(|n| n.id)
        .collect()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::fit::tests::{fixture, n};
    use super::super::selection::tests::apply;
    use super::*;
    use crate::command::RefusalKind;

    /// `plant` with node `gw`, `lab` with none, and `local`.
    fn envs() -> (Projections, skerry_shared::ids::NodeId) {
        let (mut p, node) = fixture("raspberry-pi-4");
        for env in ["lab", LOCAL] {
            apply(
                &mut p,
                EventPayload::EnvironmentCreated {
                    name: n(env),
                    labels: Labels::new(),
                    entries: vec![],
                },
            );
        }
        (p, node)
    }

    fn refused(r: Result<Vec<Pending>, Refusal>) -> (RefusalKind, String, String) {
        let r = r.unwrap_err();
        (r.kind, r.code.to_owned(), r.field.unwrap_or_default())
    }

    #[test]
    fn a_rename_is_one_event_for_every_node_of_the_environment() {
        let (p, node) = envs();
        let out = rename(&p, "plant", "factory").unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].audience, [node]);
        assert_eq!(
            out[0].payload,
            EventPayload::EnvironmentRenamed {
                name: n("plant"),
                to: n("factory"),
            }
        );
        // An environment without nodes concerns none; the same name changes nothing.
        assert!(rename(&p, "lab", "bench").unwrap()[0].audience.is_empty());
        assert!(rename(&p, "plant", "plant").unwrap().is_empty());
    }

    #[test]
    fn a_rename_of_local_onto_a_taken_name_of_an_unknown_one_or_to_a_bad_one_is_refused() {
        let (p, _) = envs();
        let cases = [
            (
                "local",
                "home",
                RefusalKind::Conflict,
                "environment_protected",
                "env",
            ),
            (
                "plant",
                "lab",
                RefusalKind::Conflict,
                "environment_exists",
                "name",
            ),
            (
                "plant",
                LOCAL,
                RefusalKind::Conflict,
                "environment_exists",
                "name",
            ),
            (
                "nowhere",
                "factory",
                RefusalKind::NotFound,
                "unknown_environment",
                "env",
            ),
            (
                "plant",
                "Factory!",
                RefusalKind::Invalid,
                "invalid_name",
                "name",
            ),
        ];
        for (from, to, kind, code, field) in cases {
            assert_eq!(
                refused(rename(&p, from, to)),
                (kind, code.to_owned(), field.to_owned()),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn a_rename_then_a_create_of_the_old_name() {
        let (mut p, _) = envs();
        let out = rename(&p, "plant", "factory").unwrap();
        apply(&mut p, out[0].payload.clone());
        assert!(create(&p, "plant", &BTreeMap::new(), &[]).is_ok());
        assert_eq!(
            refused(create(&p, "factory", &BTreeMap::new(), &[])).1,
            "environment_exists"
        );
    }

    #[test]
    fn an_update_sets_what_is_given_and_keeps_the_rest() {
        let (mut p, _) = envs();
        let entries = vec!["10.0.0.1:80".to_owned()];
        let out = update(&p, "plant", Some("line 3"), Some(&entries)).unwrap();
        assert!(out[0].audience.is_empty());
        apply(&mut p, out[0].payload.clone());
        assert_eq!(p.envs["plant"].description.as_deref(), Some("line 3"));
        // Only the entries: the description stays; the same again changes nothing.
        let other = vec!["gw.example.com:443".to_owned()];
        let out = update(&p, "plant", None, Some(&other)).unwrap();
        assert_eq!(
            out[0].payload,
            EventPayload::EnvironmentUpdated {
                name: n("plant"),
                description: Some("line 3".into()),
                entries: other.clone(),
            }
        );
        apply(&mut p, out[0].payload.clone());
        assert!(update(&p, "plant", None, Some(&other)).unwrap().is_empty());
        // An empty description clears it.
        let out = update(&p, "plant", Some(""), None).unwrap();
        apply(&mut p, out[0].payload.clone());
        assert_eq!(p.envs["plant"].description, None);
        assert_eq!(p.envs["plant"].entries, other);
    }

    #[test]
    fn an_update_with_nothing_a_long_or_multiline_description_or_bad_entries_is_refused() {
        let (p, _) = envs();
        let long = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
        let twice = vec!["10.0.0.1".to_owned(), "10.0.0.1".to_owned()];
        let bad = vec!["gw.example.com".to_owned()];
        /// A description, entries, and the refusal's code and field.
        type Case<'a> = (Option<&'a str>, Option<&'a [String]>, &'a str, &'a str);
        let cases: [Case; 5] = [
            (None, None, "nothing_to_set", "description"),
            (Some(&long), None, "invalid_description", "description"),
            (
                Some("two\nlines"),
                None,
                "invalid_description",
                "description",
            ),
            (None, Some(&twice), "invalid_entry", "entries[1]"),
            (None, Some(&bad), "invalid_entry", "entries[0]"),
        ];
        for (description, entries, code, field) in cases {
            assert_eq!(
                refused(update(&p, "plant", description, entries)),
                (RefusalKind::Invalid, code.to_owned(), field.to_owned())
            );
        }
        let exactly = "é".repeat(MAX_DESCRIPTION_BYTES / 2);
        assert!(update(&p, "plant", Some(&exactly), None).is_ok());
        assert_eq!(
            refused(update(&p, "nowhere", Some("x"), None)).0,
            RefusalKind::NotFound
        );
    }
}
