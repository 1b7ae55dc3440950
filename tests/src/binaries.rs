//! Paths to the workspace's binaries (`skerry`, `skerry-edge`), built on demand.
//!
//! A test executable lives in `target/[TRIPLE/]PROFILE/deps/`; the binaries it drives are
//! expected in `target/[TRIPLE/]PROFILE/`. [`bin`] runs `cargo build --bin NAME -p PACKAGE`
//! into that same target directory, with the same profile and target triple, once per
//! binary per test process. Cargo makes that cheap when the binary is up to date, and it
//! means a test never runs a stale binary after the sources changed. Cargo is the one in
//! the `CARGO` environment variable (set by `cargo test`), else `cargo` on the `PATH`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::error::Error;

/// The binaries the harness knows, and the package that builds each.
const PACKAGES: &[(&str, &str)] = &[("skerry", "skerry-cloud"), ("skerry-edge", "skerry-edge")];

/// Variables that `cargo test` sets for a test process and that must not reach a nested
/// cargo (besides every `CARGO_PKG_*`).
const CARGO_TEST_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// Where the running test executable's build put things.
#[derive(Debug, Clone)]
struct Layout {
    /// `target/`
    target_dir: PathBuf,
    /// `target/[TRIPLE/]PROFILE/`: where binaries land.
    out_dir: PathBuf,
    /// The profile's directory name (`debug`, `release`, or a custom profile's name).
    profile: String,
    /// Set when the build used `--target TRIPLE`.
    triple: Option<String>,
}

fn layout() -> Result<Layout, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io("the test executable's path", e))?;
    let bad = || {
        Error::unexpected(format!(
            "{} is not under target/PROFILE/deps/",
            exe.display()
        ))
    };
    let deps = exe.parent().ok_or_else(bad)?;
    // `cargo test` puts test executables in `deps/`; an example or a bench binary may sit
    // one level up.
    let out_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().ok_or_else(bad)?
    } else {
        deps
    };
    let profile = out_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(bad)?
        .to_owned();
    let above = out_dir.parent().ok_or_else(bad)?;
    // The target directory's root holds CACHEDIR.TAG; with `--target TRIPLE` there is one
    // more level in between.
    let (target_dir, triple) = if above.join("CACHEDIR.TAG").exists() {
        (above.to_path_buf(), None)
    } else {
        let root = above.parent().ok_or_else(bad)?;
        let triple = above
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned);
        (root.to_path_buf(), triple)
    };
    Ok(Layout {
        target_dir,
        out_dir: out_dir.to_path_buf(),
        profile,
        triple,
    })
}

fn workspace_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("Cargo.toml")
}

fn cargo() -> OsString {
    std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(OsString::from))
        .unwrap_or_else(|| OsString::from("cargo"))
}

fn build(name: &str, layout: &Layout) -> Result<PathBuf, Error> {
    let package = PACKAGES
        .iter()
        .find(|(bin, _)| *bin == name)
        .map(|(_, package)| *package)
        .ok_or_else(|| {
            Error::unexpected(format!(
                "unknown binary {name}; the harness builds {:?}",
                PACKAGES.iter().map(|(b, _)| *b).collect::<Vec<_>>()
            ))
        })?;
    let mut cmd = Command::new(cargo());
    cmd.arg("build")
        .args(["--bin", name, "-p", package])
        .arg("--manifest-path")
        .arg(workspace_manifest())
        .arg("--target-dir")
        .arg(&layout.target_dir);
    match layout.profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(triple) = &layout.triple {
        cmd.args(["--target", triple]);
    }
    // `cargo test` sets these for the test process. Build scripts (ring's, through cc) ask
    // to rerun when they change, and cargo compares them against its own environment, so
    // passing them on would rebuild those crates on every alternation between `cargo test`
    // and this build.
    for (var, _) in std::env::vars_os() {
        let Some(var) = var.to_str() else { continue };
        if var.starts_with("CARGO_PKG_") || CARGO_TEST_VARS.contains(&var) {
            cmd.env_remove(var);
        }
    }
    let command = format!("{cmd:?}");
    let output = cmd
        .output()
        .map_err(|e| Error::io(format!("cannot run {command}"), e))?;
    if !output.status.success() {
        return Err(Error::Build {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let path = layout
        .out_dir
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::unexpected(format!(
            "{command} succeeded but {} does not exist",
            path.display()
        )))
    }
}

/// The path to the workspace binary `name` (`skerry` or `skerry-edge`), built first if
/// this test process has not built it yet.
pub fn try_bin(name: &str) -> Result<PathBuf, Error> {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    // Held across the build: a second test that wants the same binary waits for it.
    let mut built = built.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get(name) {
        return Ok(path.clone());
    }
    let path = build(name, &layout()?)?;
    built.insert(name.to_owned(), path.clone());
    Ok(path)
}

/// Like [`try_bin`], for tests.
///
/// # Panics
/// When the binary cannot be built; the message carries cargo's output.
pub fn bin(name: &str) -> PathBuf {
    match try_bin(name) {
        Ok(path) => path,
        Err(e) => panic!("cannot build {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_test_executables_own() {
        let layout = layout().unwrap_or_else(|e| panic!("{e}"));
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        assert!(exe.starts_with(&layout.out_dir));
        assert!(layout.out_dir.starts_with(&layout.target_dir));
        assert!(layout.target_dir.join("CACHEDIR.TAG").exists());
        assert_eq!(
            layout.out_dir.file_name().and_then(|n| n.to_str()),
            Some(layout.profile.as_str())
        );
    }
}
