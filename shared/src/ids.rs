//! Names, ids and labels.
//!
//! Names (environments, apps, components, instances, nodes, storage) match
//! `[a-z0-9]([-a-z0-9]*[a-z0-9])?` and are at most 63 characters. Label keys and
//! values follow Kubernetes' rules, and an object carries at most [`MAX_LABELS`] of them.
//! An environment's entry addresses ([`check_entry`]) are IP addresses or `host:port`,
//! at most [`MAX_ENTRIES`] per environment.

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
            "{what} {} is {} characters long; at most 63 are allowed",
            shown(s),
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

/// The most labels one object (an environment, a node) carries, and the most terms of a
/// deploy's selector.
pub const MAX_LABELS: usize = 64;

/// The most entry addresses of one environment.
pub const MAX_ENTRIES: usize = 64;

/// The longest host name of an entry address, in bytes (RFC 1123).
pub const MAX_HOST_BYTES: usize = 253;

/// `s` for a message: as it is when short, else its length and its first bytes.
pub fn shown(s: &str) -> String {
    const MAX_SHOWN: usize = 80;
    if s.len() <= MAX_SHOWN {
        return format!("\"{s}\"");
    }
    let mut end = MAX_SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("\"{}...\" ({} bytes)", &s[..end], s.len())
}

/// Checks a host name by RFC 1123: at most [`MAX_HOST_BYTES`] bytes, dot-separated labels
/// of 1 to 63 letters, digits and `-` that start and end with a letter or digit, and a last
/// label that is not all digits (so `999.1.1.1` is not taken for a name).
pub fn check_host_name(host: &str) -> Result<(), IdError> {
    if host.len() > MAX_HOST_BYTES {
        return Err(IdError(format!(
            "the host name is {} bytes long; at most {MAX_HOST_BYTES} are accepted",
            host.len()
        )));
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(IdError(format!(
                "host {}: an empty label (two dots, or a dot at an end)",
                shown(host)
            )));
        }
        if label.len() > 63 {
            return Err(IdError(format!(
                "host {}: the label {} is {} characters long; at most 63 are accepted",
                shown(host),
                shown(label),
                label.len()
            )));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(IdError(format!(
                "host {}: {c:?} is not allowed; use letters, digits, '-' and '.'",
                shown(host)
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(IdError(format!(
                "host {}: the label \"{label}\" must start and end with a letter or digit",
                shown(host)
            )));
        }
    }
    if host
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(IdError(format!(
            "host {}: is neither an IPv4 address nor a name (its last label is all digits)",
            shown(host)
        )));
    }
    Ok(())
}

/// A port of an entry address: digits only, 1 to 65535.
fn entry_port(port: &str) -> Result<u16, IdError> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError(format!(
            "the port {} is not a number 1-65535",
            shown(port)
        )));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(IdError("port 0 is out of range 1-65535".into())),
        Ok(p) => Ok(p),
        Err(_) => Err(IdError(format!(
            "the port {} is out of range 1-65535",
            shown(port)
        ))),
    }
}

/// Checks an entry address and returns it in canonical form (to tell duplicates): an IPv4
/// or IPv6 address (`10.0.0.1`, `fe80::1`), an IPv4 address with a port (`10.0.0.1:80`),
/// an IPv6 address in brackets with a port (`[::1]:8080`), or a host name
/// ([`check_host_name`]) with a port (`gw.example.com:443`). Ports are 1-65535.
pub fn check_entry(entry: &str) -> Result<String, IdError> {
    use std::net::{IpAddr, Ipv6Addr};
    let bad = |why: String| {
        IdError(format!(
            "{} is not an IP address or host:port: {why}",
            shown(entry)
        ))
    };
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(bad("a '[' without its ']'".into()));
        };
        let ip = inside.parse::<Ipv6Addr>().map_err(|_| {
            bad(format!(
                "{} is not an IPv6 address; only an IPv6 address is written in brackets",
                shown(inside)
            ))
        })?;
        let Some(port) = after.strip_prefix(':') else {
            return Err(bad(
                "an IPv6 address in brackets needs a port ([::1]:8080), or give it without brackets".into(),
            ));
        };
        let port = entry_port(port).map_err(|e| bad(e.0))?;
        return Ok(format!("[{ip}]:{port}"));
    }
    let Some((host, port)) = entry.rsplit_once(':') else {
        return Err(bad("a host name needs a port (gw.example.com:443)".into()));
    };
    let port = entry_port(port).map_err(|e| bad(e.0))?;
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Ok(format!("{ip}:{port}"));
    }
    if host.contains(':') {
        return Err(bad(
            "an IPv6 address with a port is written in brackets ([::1]:8080)".into(),
        ));
    }
    check_host_name(host).map_err(|e| bad(e.0))?;
    Ok(format!("{}:{port}", host.to_ascii_lowercase()))
}

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
                "label key {}: the prefix must be 1 to 253 characters",
                shown(key)
            )));
        }
        for part in p.split('.') {
            check_dns_label(part, "label key prefix part")
                .map_err(|e| IdError(format!("label key {}: {e}", shown(key))))?;
        }
    }
    check_label_segment(name).map_err(|why| IdError(format!("label key {}: {why}", shown(key))))
}

/// Checks a label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` that start
/// and end alphanumeric.
pub fn check_label_value(value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_segment(value)
        .map_err(|why| IdError(format!("label value {}: {why}", shown(value))))
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
#[allow(clippy::expect_used)]
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
    fn entries() {
        for (ok, canonical) in [
            ("10.0.0.1", "10.0.0.1"),
            ("10.0.0.1:80", "10.0.0.1:80"),
            ("fe80::1", "fe80::1"),
            ("[::1]:8080", "[::1]:8080"),
            ("[0:0::1]:1", "[::1]:1"),
            ("gw-1.Example.com:65535", "gw-1.example.com:65535"),
            ("localhost:1", "localhost:1"),
        ] {
            assert_eq!(check_entry(ok).ok().as_deref(), Some(canonical), "{ok}");
        }
        let long_label = format!("{}.example.com:80", "a".repeat(64));
        let at_label = format!("{}.example.com:80", "a".repeat(63));
        assert!(check_entry(&at_label).is_ok());
        // 253 bytes of host: four labels of 63 and a dot between each (255 with two more).
        let host_at = [
            &"a".repeat(63)[..],
            &"b".repeat(63),
            &"c".repeat(63),
            &"d".repeat(61),
        ]
        .join(".");
        assert_eq!(host_at.len(), MAX_HOST_BYTES);
        assert!(check_entry(&format!("{host_at}:80")).is_ok());
        let host_past = format!("{host_at}d");
        assert!(check_entry(&format!("{host_past}:80")).is_err());
        for (bad, why) in [
            ("10.0.0.1:0", "port 0"),
            ("gw.example.com:0", "port 0"),
            ("gw.example.com:65536", "out of range"),
            ("gw.example.com:+80", "not a number"),
            ("gw.example.com:", "not a number"),
            ("gw.example.com", "needs a port"),
            ("-bad-.com:80", "-bad-"),
            ("a..b:80", "empty label"),
            ("a_b.com:80", "'_'"),
            ("999.1.1.1:80", "all digits"),
            (long_label.as_str(), "at most 63"),
            ("[::1]", "needs a port"),
            ("[::1]:0", "port 0"),
            ("[gw.example.com]:80", "IPv6"),
            ("[::1:80", "without its"),
            ("::1::2:80", "brackets"),
            ("", "needs a port"),
        ] {
            let e = check_entry(bad).expect_err(bad);
            assert!(e.0.contains(why), "{bad}: {e}");
        }
        // A long entry is not echoed whole.
        let huge = format!("{}:80", "a".repeat(100_000));
        assert!(check_entry(&huge).unwrap_err().0.len() < 400);
    }

    #[test]
    fn node_id_round_trip() {
        let id = NodeId::random();
        assert_eq!(id.to_string().parse::<NodeId>().ok(), Some(id));
    }
}
