//! The app manifest: its model, its YAML parser and its validation rules.
//!
//! - `model`: the types, one per part of the manifest that docs/manifest.md documents.
//! - `parse`: YAML to [`Manifest`] within fixed budgets, errors with the field's path.
//! - `validate`: the semantic rules, every broken one reported with its field.
//!
//! [`parse_manifest`] does both: a manifest it returns is one the cloud may record.

mod model;
mod parse;
mod validate;

pub use model::*;
pub use parse::{MAX_MANIFEST_BYTES, parse_manifest, parse_yaml};
pub use validate::{FieldError, MAX_CYCLES_REPORTED, ManifestError, validate};
