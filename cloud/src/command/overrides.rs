//! `--set COMPONENT.VAR=VALUE`: environment overrides of a deploy or an upgrade, checked
//! against the manifest they apply to.

use skerry_shared::event::EnvOverride;
use skerry_shared::ids::shown;
use skerry_shared::manifest::{MAX_ENV, MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, Manifest};

use super::outcome::Refusal;

/// The most `--set` overrides of one deploy: as many as a component has variables.
pub const MAX_OVERRIDES: usize = MAX_ENV;

fn parse_set(i: usize, s: &str) -> Result<(String, String, String), Refusal> {
    let field = format!("set[{i}]");
    let bad = |why: &str| {
        Refusal::invalid(
            "invalid_override",
            field.clone(),
            format!("{}: {why}", shown(s)),
        )
    };
    let (lhs, value) = s
        .split_once('=')
        .ok_or_else(|| bad("expected COMPONENT.VAR=VALUE"))?;
    let (component, var) = lhs
        .split_once('.')
        .ok_or_else(|| bad("expected COMPONENT.VAR=VALUE"))?;
    let valid_var = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if var.len() > MAX_ENV_NAME_BYTES {
        return Err(bad(&format!(
            "the variable name is {} bytes long; at most {MAX_ENV_NAME_BYTES} bytes are accepted",
            var.len()
        )));
    }
    if !valid_var {
        return Err(bad("the variable name must match [A-Za-z_][A-Za-z0-9_]*"));
    }
    if value.len() > MAX_ENV_VALUE_BYTES {
        return Err(bad(&format!(
            "the value is {} bytes long; at most {MAX_ENV_VALUE_BYTES} bytes are accepted",
            value.len()
        )));
    }
    Ok((component.to_owned(), var.to_owned(), value.to_owned()))
}

/// Checks `set` (`--set` values, fields `set[i]`) against `manifest`: each names one of its
/// components, a valid variable and a bounded value.
pub fn overrides(manifest: &Manifest, set: &[String]) -> Result<Vec<EnvOverride>, Refusal> {
    let (app, version) = (&manifest.app, &manifest.version);
    if set.len() > MAX_OVERRIDES {
        return Err(Refusal::invalid(
            "invalid_override",
            "set",
            format!(
                "{} overrides; at most {MAX_OVERRIDES} are accepted",
                set.len()
            ),
        ));
    }
    let mut overrides = Vec::new();
    for (i, s) in set.iter().enumerate() {
        let (component, var, value) = parse_set(i, s)?;
        let component = manifest
            .component(&component)
            .map(|c| c.name.clone())
            .ok_or_else(|| {
                Refusal::invalid(
                    "invalid_override",
                    format!("set[{i}]"),
                    format!("{app}@{version} has no component {}", shown(&component)),
                )
            })?;
        overrides.push(EnvOverride {
            component,
            var,
            value,
        });
    }

    Ok(overrides)
}

/// `base` with each of `changes` set (a later `COMPONENT.VAR` replaces the earlier one), and
/// without the overrides of components `manifest` does not have.
pub fn merged(
    base: &[EnvOverride],
    changes: Vec<EnvOverride>,
    manifest: &Manifest,
) -> Vec<EnvOverride> {
    let mut out: Vec<EnvOverride> = base
        .iter()
        .filter(|o| manifest.component(o.component.as_str()).is_some())
        .filter(|o| {
            !changes
                .iter()
                .any(|c| c.component == o.component && c.var == o.var)
        })
        .cloned()
        .collect();
    out.extend(changes);
    out
}
