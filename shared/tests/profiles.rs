//! Every file in `firmware-profiles/` parses and validates against the schema, is named
//! like its file, and is one of the builtin profiles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use skerry_shared::profile::{FirmwareProfile, builtin, builtin_names};

fn profile_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware-profiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_profile_file_parses_and_validates() {
    let files = profile_files();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let profile =
            FirmwareProfile::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        profile.validate().unwrap();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(profile.name, stem, "{}", path.display());
        assert!(!profile.description.is_empty(), "{}", path.display());
        assert!(profile.capacity_millicores() >= 1000);
        let bytes = postcard::to_allocvec(&profile).unwrap();
        assert_eq!(
            postcard::from_bytes::<FirmwareProfile>(&bytes).unwrap(),
            profile
        );
    }
}

#[test]
fn builtin_lists_every_profile_file() {
    let mut names: Vec<String> = profile_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut builtins: Vec<String> = builtin_names().iter().map(|s| (*s).to_owned()).collect();
    builtins.sort();
    assert_eq!(names, builtins);
    for name in builtin_names() {
        let from_file = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../firmware-profiles/{name}.toml")),
        )
        .unwrap();
        assert_eq!(
            builtin(name),
            Some(FirmwareProfile::from_toml(&from_file).unwrap())
        );
    }
}
