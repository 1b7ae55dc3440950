//! Value parsers for the command line's structured arguments: `APP@VERSION`, `NODE[=WEIGHT]`,
//! `K=V` labels, `K-` label removals, `COMPONENT.VAR=VALUE` overrides, times (`--since`) and
//! durations (`--ttl`). Each returns a message that clap shows next to the argument's name,
//! so a bad value is a usage error (exit 2).

use std::collections::BTreeMap;
use std::fmt;

use reqwest::Url;
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{check_label_key, parse_label};

use crate::api::dto::DeployNode;

/// `--cloud URL`: an `http://` or `https://` URL.
pub fn cloud_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("\"{s}\" is not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        "http" | "https" => Err(format!("\"{s}\" names no host")),
        other => Err(format!("\"{s}\" uses {other}://; use http:// or https://")),
    }
}

/// `APP@VERSION`, both parts required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVersion {
    pub app: String,
    pub version: String,
}

impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.app, self.version)
    }
}

/// Parses `APP@VERSION`; a missing `@` or an empty part is refused.
pub fn app_version(s: &str) -> Result<AppVersion, String> {
    match s.split_once('@') {
        Some((app, version)) if !app.is_empty() && !version.is_empty() => Ok(AppVersion {
            app: app.to_owned(),
            version: version.to_owned(),
        }),
        _ => Err(format!(
            "\"{s}\" is not APP@VERSION (for example weather@1.0.0)"
        )),
    }
}

/// `APP[@VERSION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    pub app: String,
    pub version: Option<String>,
}

/// Parses `APP` or `APP@VERSION`.
pub fn app_ref(s: &str) -> Result<AppRef, String> {
    if s.contains('@') {
        let AppVersion { app, version } = app_version(s)?;
        Ok(AppRef {
            app,
            version: Some(version),
        })
    } else if s.is_empty() {
        Err("the app name must not be empty".to_owned())
    } else {
        Ok(AppRef {
            app: s.to_owned(),
            version: None,
        })
    }
}

/// The largest weight of `--node NODE=WEIGHT` (docs/cli.md, "Deploy"; the cloud refuses
/// others with `invalid_weight`); the smallest is 1.
pub const MAX_WEIGHT: u32 = 1000;

/// `--node NODE[=WEIGHT]`, the weight from 1 to [`MAX_WEIGHT`].
pub fn node_choice(s: &str) -> Result<DeployNode, String> {
    let (node, weight) = match s.split_once('=') {
        Some((node, w)) => {
            let weight = count(w, MAX_WEIGHT).map_err(|_| {
                format!("\"{s}\": a weight is a whole number from 1 to {MAX_WEIGHT}, not \"{w}\"")
            })?;
            (node, Some(weight))
        }
        None => (s, None),
    };
    if node.is_empty() {
        return Err(format!("\"{s}\" is not NODE[=WEIGHT]"));
    }
    Ok(DeployNode {
        node: node.to_owned(),
        weight,
    })
}

/// A label pair `K=V`, checked by Kubernetes' rules.
pub fn label(s: &str) -> Result<(String, String), String> {
    parse_label(s).map_err(|e| e.to_string())
}

/// Collects `K=V` pairs into a map; a later pair wins.
pub fn label_map(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

/// One argument of `node label`: `K=V` sets a label, `K-` removes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelChange {
    Set(String, String),
    Remove(String),
}

/// Parses `K=V` or `K-`.
pub fn label_change(s: &str) -> Result<LabelChange, String> {
    if s.contains('=') {
        let (k, v) = label(s)?;
        Ok(LabelChange::Set(k, v))
    } else if let Some(key) = s.strip_suffix('-') {
        check_label_key(key).map_err(|e| e.to_string())?;
        Ok(LabelChange::Remove(key.to_owned()))
    } else {
        Err(format!("\"{s}\" is neither K=V (set) nor K- (remove)"))
    }
}

/// `--set COMPONENT.VAR=VALUE`; kept as written, since that is what the API takes.
pub fn env_override(s: &str) -> Result<String, String> {
    let bad = || format!("\"{s}\" is not COMPONENT.VAR=VALUE (for example db.TZ=UTC)");
    let (target, _value) = s.split_once('=').ok_or_else(bad)?;
    let (component, var) = target.split_once('.').ok_or_else(bad)?;
    if component.is_empty() || var.is_empty() {
        return Err(bad());
    }
    Ok(s.to_owned())
}

/// `--since T`: RFC 3339 or a duration before now (`90s`, `10m`, `2h`, `3d`), turned into an
/// absolute RFC 3339 time for the API.
pub fn since(s: &str) -> Result<String, String> {
    Timestamp::parse_cli(s, Timestamp::now()).map(Timestamp::to_rfc3339)
}

/// A duration such as `24h` or `30m`, checked and kept as written.
pub fn duration(s: &str) -> Result<String, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(s.to_owned()),
        Ok(_) => Err(format!(
            "\"{s}\" is zero; give a positive duration such as 24h"
        )),
        Err(e) => Err(format!(
            "\"{s}\" is not a duration such as 24h or 30m ({e})"
        )),
    }
}

/// A whole number from 1 to `max` (`--limit`, a weight); anything else, a number too large
/// for any count included, is refused naming the input and the range.
pub fn count(s: &str, max: u32) -> Result<u32, String> {
    let bad = || format!("\"{s}\" is not a whole number from 1 to {max}");
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u64>() {
        Ok(n) if (1..=u64::from(max)).contains(&n) => u32::try_from(n).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded_and_named() {
        assert_eq!(count("1", 1000), Ok(1));
        assert_eq!(count("1000", 1000), Ok(1000));
        for bad in ["0", "1001", "-1", "", "1e3", "99999999999999999999999"] {
            let e = count(bad, 1000).unwrap_err();
            assert_eq!(e, format!("\"{bad}\" is not a whole number from 1 to 1000"));
        }
    }

    #[test]
    fn weights_are_1_to_1000() {
        assert_eq!(node_choice("gw-1=7").map(|c| c.weight), Ok(Some(7)));
        let e = node_choice("gw-1=99999999999").unwrap_err();
        assert!(e.contains("from 1 to 1000"), "{e}");
        assert!(node_choice("gw-1=0").is_err());
        assert!(node_choice("gw-1=1001").is_err());
    }
}
