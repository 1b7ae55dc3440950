//! The rules of a component's `secrets`: each entry names a secret and exactly one of `env`
//! (a variable name not also set in `env`) and `file` (an absolute path), and no variable
//! or file is the target of two entries. Whether the secret exists is the cloud's check at
//! deploy time, not the manifest's.

use std::collections::BTreeSet;

use super::bounds::{MAX_PATH_BYTES, MAX_SECRET_USES, count_within};
use super::errors::Errors;
use crate::manifest::model::Component;

pub(super) fn check_secrets(errors: &mut Errors, i: usize, c: &Component) {
    if !count_within(
        errors,
        &format!("components[{i}].secrets"),
        "secrets",
        c.secrets.len(),
        MAX_SECRET_USES,
    ) {
        return;
    }
    let mut vars = BTreeSet::new();
    let mut files = BTreeSet::new();
    let mut basenames = BTreeSet::new();
    for (j, s) in c.secrets.iter().enumerate() {
        let at = |field: &str| format!("components[{i}].secrets[{j}].{field}");
        match (&s.env, &s.file) {
            (Some(_), Some(_)) => errors.push(
                format!("components[{i}].secrets[{j}]"),
                "both env and file are set; a secret reaches a component as one of them \
                 (list the secret twice for both)",
            ),
            (None, None) => errors.push(
                format!("components[{i}].secrets[{j}]"),
                "neither env nor file is set; give one of them",
            ),
            (Some(var), None) => {
                if !is_env_name(var) || var.len() > 256 {
                    errors.push(
                        at("env"),
                        format!("\"{var}\" is not a variable name; use [A-Za-z_][A-Za-z0-9_]*"),
                    );
                } else if c.env.contains_key(var) {
                    errors.push(
                        at("env"),
                        format!("{var} is also set in env; a variable has one source"),
                    );
                } else if !vars.insert(var.as_str()) {
                    errors.push(at("env"), format!("{var} is the target of two secrets"));
                }
            }
            (None, Some(path)) => {
                if let Err(reason) = check_file(path) {
                    errors.push(at("file"), reason);
                } else if !files.insert(path.as_str()) {
                    errors.push(at("file"), format!("{path} is the target of two secrets"));
                } else if c.exec.is_some()
                    && !basenames.insert(path.rsplit('/').next().unwrap_or_default())
                {
                    // An exec component gets its files side by side in one directory.
                    errors.push(
                        at("file"),
                        format!(
                            "{path}: an exec component's secret files share one directory, \
                             so their file names must differ"
                        ),
                    );
                }
            }
        }
    }
}

fn check_file(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the path is {} bytes long; at most {MAX_PATH_BYTES} bytes are accepted",
            path.len()
        ));
    }
    if !path.starts_with('/') {
        return Err(format!("\"{path}\" is not an absolute path"));
    }
    if path.contains('\0') {
        return Err("a path must not contain a NUL character".into());
    }
    if path.ends_with('/') {
        return Err(format!("\"{path}\" names a directory; name the file"));
    }
    if path.split('/').any(|part| part == ".." || part == ".") {
        return Err(format!("\"{path}\" holds . or ..; give the plain path"));
    }
    Ok(())
}

/// Whether `name` is an environment variable name: a letter or `_`, then letters, digits
/// and `_` (used by `env` and by a secret's `env` alike).
pub(super) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
