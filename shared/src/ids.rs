//! Names, ids and labels.
//!
//! Names (environments, apps, components, instances, nodes, storage) match
//! `[a-z0-9]([-a-z0-9]*[a-z0-9])?` and are at most 63 characters. Label keys and
//! values follow Kubernetes' rules.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name, id or label was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

/// A validated name: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, 1 to 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Checks `s` against the name rule.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_dns_label(s, "name")?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_dns_label(s: &str, what: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError(format!("{what} must not be empty")));
    }
    if s.len() > 63 {
        return Err(IdError(format!(
            "{what} \"{s}\" is {} characters long; at most 63 are allowed",
            s.len()
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(IdError(format!(
            "{what} \"{s}\" contains {c:?}; use lowercase letters, digits and '-'"
        )));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(IdError(format!(
            "{what} \"{s}\" must start and end with a lowercase letter or digit"
        )));
    }
    Ok(())
}

impl TryFrom<String> for Name {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        check_dns_label(&s, "name")?;
        Ok(Self(s))
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl FromStr for Name {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

macro_rules! uuid_id {
    ($(#[$m:meta])* $t:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $t(pub uuid::Uuid);

        impl $t {
            /// A new random id.
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4())
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                uuid::Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|e| IdError(format!("\"{s}\" is not an id: {e}")))
            }
        }
    };
}

uuid_id!(
    /// A node's id: assigned at enrollment, never changes. It names the node's topics and
    /// is the subject of its certificate.
    NodeId
);
uuid_id!(
    /// An enrollment token's id (the token's secret is never stored, only its hash).
    TokenId
);

/// Labels: Kubernetes-style keys and values.
pub type Labels = BTreeMap<String, String>;

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name of at most
/// 63 characters of `[A-Za-z0-9._-]` that starts and ends alphanumeric.
pub fn check_label_key(key: &str) -> Result<(), IdError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return Err(IdError(format!(
                "label key \"{key}\": the prefix must be 1 to 253 characters"
            )));
        }
        for part in p.split('.') {
            check_dns_label(part, "label key prefix part")
                .map_err(|e| IdError(format!("label key \"{key}\": {e}")))?;
        }
    }
    check_label_segment(name).map_err(|why| IdError(format!("label key \"{key}\": {why}")))
}

/// Checks a label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` that start
/// and end alphanumeric.
pub fn check_label_value(value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_segment(value).map_err(|why| IdError(format!("label value \"{value}\": {why}")))
}

fn check_label_segment(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the name part must not be empty".into());
    }
    if s.len() > 63 {
        return Err("at most 63 characters are allowed".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{c:?} is not allowed; use letters, digits, '-', '_' and '.'"
        ));
    }
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok_end(s.chars().next()) || !ok_end(s.chars().last()) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// Parses `K=V` into a checked label pair.
pub fn parse_label(kv: &str) -> Result<(String, String), IdError> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| IdError(format!("\"{kv}\" is not K=V")))?;
    check_label_key(k)?;
    check_label_value(v)?;
    Ok((k.to_owned(), v.to_owned()))
}

/// True when every `selector` pair is present in `labels` with the same value.
pub fn labels_match(labels: &Labels, selector: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "a-b", "0", "weather-1", &"a".repeat(63)] {
            assert!(Name::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(Name::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert!(check_label_key("zone").is_ok());
        assert!(check_label_key("example.com/zone").is_ok());
        assert!(check_label_key("/zone").is_err());
        assert!(check_label_key("zone-").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("eu_west.1").is_ok());
        assert!(check_label_value("a b").is_err());
        assert_eq!(parse_label("a=b").ok(), Some(("a".into(), "b".into())));
        assert!(parse_label("ab").is_err());
    }

    #[test]
    fn node_id_round_trip() {
        let id = NodeId::random();
        assert_eq!(id.to_string().parse::<NodeId>().ok(), Some(id));
    }
}
