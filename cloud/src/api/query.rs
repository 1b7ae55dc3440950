//! Query parameters that several routes read the same way.

use skerry_shared::clock::Timestamp;

use super::error::ApiError;

/// A `since` query parameter (RFC 3339 or a duration before now), or 400 `invalid_time`.
pub(crate) fn since(since: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    since
        .map(|t| Timestamp::parse_cli(t, Timestamp::now()))
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_time", "since", e))
}
