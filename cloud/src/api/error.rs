//! API errors: `{"error": {"code", "message", "field"}}` with 400, 401/403, 404, 409 or 500,
//! and the JSON body extractor that names the field a bad request got wrong.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::dto::{ErrorBody, ErrorDetail};
use crate::command::{Refusal, RefusalKind};
use crate::engine::EngineError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn bad_request(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            code,
            (!field.is_empty()).then_some(field),
            message,
        )
    }

    pub fn not_found(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, Some(field), message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", None, message)
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match r.kind {
            RefusalKind::Invalid => StatusCode::BAD_REQUEST,
            RefusalKind::Conflict => StatusCode::CONFLICT,
            RefusalKind::NotFound => StatusCode::NOT_FOUND,
            RefusalKind::Forbidden => StatusCode::FORBIDDEN,
        };
        ApiError {
            status,
            code: r.code.to_owned(),
            field: r.field,
            message: r.message,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused(r) => r.into(),
            other => {
                tracing::error!(error = %other, "command failed");
                ApiError::internal(other.to_string())
            }
        }
    }
}

impl From<crate::log::LogError> for ApiError {
    fn from(e: crate::log::LogError) -> Self {
        tracing::error!(error = %e, "event log read failed");
        ApiError::internal(e.to_string())
    }
}

impl From<crate::reports::ReportError> for ApiError {
    fn from(e: crate::reports::ReportError) -> Self {
        tracing::error!(error = %e, "report store read failed");
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The largest request body the API reads, in bytes (1 MiB, the manifest limit of
/// `docs/manifest.md` too): a larger one is answered 413 `payload_too_large`, naming the
/// limit. Clients can check a body against it before they send it.
pub const MAX_BODY_BYTES: usize = 1 << 20;

const _: () = assert!(MAX_BODY_BYTES >= skerry_shared::manifest::MAX_MANIFEST_BYTES);

/// The field a serde error names: its path, and for a missing or duplicate field (which
/// serde reports at the path of the map that lacks or repeats it) that field's name too.
fn field_of(path: &str, message: &str) -> String {
    let base = if path == "." || path == "?" { "" } else { path };
    let named = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match named {
        Some(name) if base.is_empty() => name.to_owned(),
        Some(name) => format!("{base}.{name}"),
        None => base.to_owned(),
    }
}

/// A JSON request body whose errors name the field (`nodes[0].weight`), answered 400.
///
/// The request guard ([`super::server::guard`]) has read the body already, within its size
/// limit and deadline, and checked its media type.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid_request", None, e.body_text()))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Body).map_err(|e| {
            let message = e.inner().to_string();
            let field = field_of(&e.path().to_string(), &message);
            ApiError::bad_request("invalid_request", &field, message)
        })
    }
}

/// Query parameters whose errors are answered 400 `invalid_query` in the API's error
/// shape, naming the parameter (`limit`).
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let message = e.inner().to_string();
                let field = field_of(&e.path().to_string(), &message);
                let shown = if field.is_empty() || message.contains(&field) {
                    message
                } else {
                    format!("{field}: {message}")
                };
                ApiError::bad_request("invalid_query", &field, shown)
            })
    }
}

/// A path parameter whose errors (`/api/v1/environments/%ff`: not UTF-8) are answered 400
/// `invalid_path` in the API's error shape, naming the parameter.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let key = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::ParseErrorAtKey { key, .. } => key.clone(),
                    ErrorKind::ParseErrorAtIndex { index, .. } => index.to_string(),
                    _ => String::new(),
                };
                let message = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        format!("the path parameter {key} is not UTF-8 once percent-decoded")
                    }
                    other => other.to_string(),
                };
                Err(ApiError::bad_request("invalid_path", &key, message))
            }
            Err(other) => Err(ApiError::new(
                other.status(),
                "invalid_path",
                None,
                other.body_text(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        node: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        nodes: Vec<Inner>,
        limit: Option<usize>,
    }

    fn json_field(text: &str) -> String {
        let de = &mut serde_json::Deserializer::from_str(text);
        let e = serde_path_to_error::deserialize::<_, Outer>(de).unwrap_err();
        field_of(&e.path().to_string(), &e.inner().to_string())
    }

    fn query_field(text: &str) -> String {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(text.as_bytes()));
        let e = serde_path_to_error::deserialize::<_, Outer>(de).unwrap_err();
        field_of(&e.path().to_string(), &e.inner().to_string())
    }

    #[test]
    fn serde_errors_name_the_field() {
        assert_eq!(json_field("{}"), "name");
        assert_eq!(json_field(r#"{"name": "a", "name": "b"}"#), "name");
        assert_eq!(json_field(r#"{"name": "a", "bogus": 1}"#), "bogus");
        assert_eq!(
            json_field(r#"{"name": "a", "nodes": [{}]}"#),
            "nodes[0].node"
        );
        assert_eq!(
            json_field(r#"{"name": "a", "nodes": [{"node": "n", "x": 1}]}"#),
            "nodes[0].x"
        );
        assert_eq!(json_field(r#"{"name": 1}"#), "name");
        assert_eq!(json_field("{"), "");
        assert_eq!(query_field("name=a&limit=abc"), "limit");
        assert_eq!(query_field("name=a&bogus=1"), "bogus");
        assert_eq!(query_field("limit=1"), "name");
    }
}
