//! The app manifest: its model, its YAML parser and its validation rules.
//!
//! - `model`: the types, one per part of the manifest that docs/manifest.md documents.
//! - `parse`: YAML to [`Manifest`] within fixed budgets, errors with the field's path.
//! - `validate`: the semantic rules, every broken one reported with its field.
//! - `wire`: a component's and a manifest's serde, whose postcard form keeps the first
//!   release's bytes.
//!
//! [`parse_manifest`] does both: a manifest it returns is one the cloud may record.

mod model;
mod parse;
mod validate;
mod wire;

pub use model::*;
pub use parse::{
    MAX_MANIFEST_BYTES, MAX_YAML_ALIASES, MAX_YAML_ANCHORS, parse_manifest, parse_yaml,
};
pub use validate::{
    FieldError, MAX_ARG_BYTES, MAX_ARGS, MAX_COMPONENTS, MAX_CYCLES_REPORTED, MAX_DEPENDS_ON,
    MAX_DESCRIPTION_BYTES, MAX_ENV, MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, MAX_ERRORS_REPORTED,
    MAX_HEALTH_DURATION_MS, MAX_HEALTH_RETRIES, MAX_IMAGE_BYTES, MAX_JOB_TIMEOUT_MS, MAX_MOUNTS,
    MAX_PATH_BYTES, MAX_PLATFORMS, MAX_PORTS, MAX_REPLICAS, MAX_SCHEDULE_BYTES, MAX_SECRET_USES,
    MAX_STORAGE, MAX_TIMEZONE_BYTES, MAX_VERSION_BYTES, ManifestError, validate, validate_on_node,
};
