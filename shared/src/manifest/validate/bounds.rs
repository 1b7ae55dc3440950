//! The bounds of a manifest: every count and size it may carry (docs/manifest.md,
//! "Limits"), and the checks of counts, sizes and argument lists against them.

use super::errors::Errors;
use crate::manifest::model::Manifest;

// Bounds. Each is documented in docs/manifest.md ("Limits"); a manifest past one is
// refused with `invalid_manifest`, the field named and the limit in the message.

/// The most components in one manifest.
pub const MAX_COMPONENTS: usize = 64;
/// The most copies of a component on one node (`replicas`).
pub const MAX_REPLICAS: u32 = 64;
/// The most entries in one component's `depends_on`.
pub const MAX_DEPENDS_ON: usize = MAX_COMPONENTS;
/// The most `secrets` entries of one component.
pub const MAX_SECRET_USES: usize = 64;
/// The most `ports` of one component.
pub const MAX_PORTS: usize = 64;
/// The most `mounts` of one component.
pub const MAX_MOUNTS: usize = 64;
/// The most `storage` entries of one component.
pub const MAX_STORAGE: usize = 64;
/// The most `env` variables of one component (and `deploy --set` overrides per deploy).
pub const MAX_ENV: usize = 256;
/// The longest environment variable name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// The longest environment variable value, in bytes (16 KiB).
pub const MAX_ENV_VALUE_BYTES: usize = 16 * 1024;
/// The most arguments of `exec`, `command` and `health.command`, the program included.
pub const MAX_ARGS: usize = 256;
/// The longest single argument of `exec`, `command` and `health.command`, in bytes.
pub const MAX_ARG_BYTES: usize = 4096;
/// The longest `version`, in bytes, pre-release and build parts included.
pub const MAX_VERSION_BYTES: usize = 128;
/// The longest `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// The most entries in `platforms`. Only three platforms are known and none may be listed
/// twice, so three is the most a valid list has; the bound leaves room for new platforms.
pub const MAX_PLATFORMS: usize = 8;
/// The longest `image` reference, in bytes.
pub const MAX_IMAGE_BYTES: usize = 512;
/// The longest path (`mounts`, `storage[].container`, `log_dir`), in bytes (Linux' PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest cron `schedule`, in bytes.
pub const MAX_SCHEDULE_BYTES: usize = 256;
/// The longest `timezone` name (the IANA database's longest is 32 bytes).
pub const MAX_TIMEZONE_BYTES: usize = 64;
/// The longest a job's `timeout` may be: 7 days.
pub const MAX_JOB_TIMEOUT_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// The most `health.retries`.
pub const MAX_HEALTH_RETRIES: u32 = 100;
/// The longest `health.interval` and `health.timeout`, in milliseconds (one day).
pub const MAX_HEALTH_DURATION_MS: u64 = 24 * 60 * 60 * 1000;
/// The most problems one refusal lists; past it, one more entry says how many were left out.
pub const MAX_ERRORS_REPORTED: usize = 64;

/// The most dependency cycles reported; the search stops at the next one.
pub const MAX_CYCLES_REPORTED: usize = 16;

/// `n` items of a list at `field`, at most `max`: or why not.
pub(super) fn count_within(
    errors: &mut Errors,
    field: &str,
    what: &str,
    n: usize,
    max: usize,
) -> bool {
    if n > max {
        errors.push(field, format!("{n} {what}; at most {max} are accepted"));
        return false;
    }
    true
}

/// A string at `field` of at most `max` bytes: or why not.
pub(super) fn bytes_within(errors: &mut Errors, field: &str, s: &str, max: usize) -> bool {
    if s.len() > max {
        errors.push(
            field,
            format!("{} bytes long; at most {max} bytes are accepted", s.len()),
        );
        return false;
    }
    true
}

/// An argument list (`exec`, `command`, `health.command`): its length and each argument's.
pub(super) fn check_args(errors: &mut Errors, field: &str, args: &[String]) -> bool {
    if !count_within(errors, field, "arguments", args.len(), MAX_ARGS) {
        return false;
    }
    let mut ok = true;
    for (j, arg) in args.iter().enumerate() {
        ok &= bytes_within(errors, &format!("{field}[{j}]"), arg, MAX_ARG_BYTES);
    }
    ok
}

/// The bounds of the manifest's top level; false when `components` is past its bound, so
/// its components are not checked one by one.
pub(super) fn check_top_bounds(errors: &mut Errors, manifest: &Manifest) -> bool {
    let version = manifest.version.to_string();
    if version.len() > MAX_VERSION_BYTES {
        errors.push(
            "version",
            format!(
                "the version is {} bytes long; at most {MAX_VERSION_BYTES} bytes are accepted",
                version.len()
            ),
        );
    }
    if let Some(d) = &manifest.description {
        bytes_within(errors, "description", d, MAX_DESCRIPTION_BYTES);
    }
    count_within(
        errors,
        "components",
        "components",
        manifest.components.len(),
        MAX_COMPONENTS,
    )
}
