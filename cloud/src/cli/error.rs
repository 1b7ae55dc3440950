//! Why a CLI command did not finish ([`CliError`]), and what it means: the exit status
//! (docs/cli.md, "Exit status"), the message, and the `{"error": ...}` body of `-o json`.
//!
//! - 400 and 409 are refusals (exit 2), 404 is not found (exit 4), 401 and 403 are not
//!   allowed (exit 5), anything else is exit 1; the server's `{"error": ...}` body is kept;
//! - an answer that is not in Skerry's shape says `URL is not a Skerry cloud: it answered
//!   STATUS CONTENT-TYPE` (exit 1), whatever its status: a web server's 404 page is not
//!   "not found";
//! - a body too large for the cloud is a refusal (exit 2) that names the limit
//!   ([`MAX_BODY_BYTES`]);
//! - a connection that cannot be made says `cannot reach the cloud at URL: reason` (exit 1).

use reqwest::{Method, StatusCode};

use crate::api::dto::{ErrorBody, ErrorDetail};
use crate::api::error::MAX_BODY_BYTES;

/// How much of an unexpected body is quoted in a message.
const QUOTE_LIMIT: usize = 300;

/// Why a command did not finish; each kind has its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's own input was refused before anything was sent (an unreadable file).
    #[error("{message}")]
    Usage {
        message: String,
        field: Option<String>,
    },
    /// No connection could be made, or it broke before an answer came.
    #[error("cannot reach the cloud at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The cloud answered with a status other than 2xx.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The URL answered, but not as a Skerry cloud does: an error without Skerry's JSON
    /// error body, or a 2xx that is not JSON.
    #[error("{url} is not a Skerry cloud: it answered {status} {} to {method} {path}", .content_type.as_deref().unwrap_or("without a content type"))]
    NotSkerry {
        url: String,
        status: StatusCode,
        content_type: Option<String>,
        method: Method,
        path: String,
    },
    /// A request body larger than the cloud takes: refused before it was sent, answered
    /// 413 without Skerry's error body (a proxy's), or cut off while it was being sent.
    #[error("{message}")]
    TooLarge { message: String },
    /// A 2xx answer that is not what the API promises.
    #[error("unexpected answer from the cloud to {method} {path}: {reason}")]
    Unexpected {
        method: Method,
        path: String,
        reason: String,
    },
    /// A followed stream ended.
    #[error("the cloud closed the stream{}", .reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    StreamClosed { reason: Option<String> },
    /// Writing to standard output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The CLI could not set itself up (the async runtime, the HTTP client).
    #[error("{0}")]
    Internal(String),
}

/// A non-2xx answer: what was asked, the status, and the body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub method: Method,
    pub path: String,
    /// The server's `{"error": ...}` body, when the answer was one.
    pub body: Option<ErrorBody>,
    /// The answer's text, as it came.
    pub text: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ApiError {
            status,
            method,
            path,
            body,
            text,
        } = self;
        match body {
            Some(body) => f.write_str(&body.error.message),
            None => {
                write!(f, "the cloud answered {status} to {method} {path}")?;
                let text = text.trim();
                if text.is_empty() {
                    Ok(())
                } else {
                    write!(f, ": {}", quote(text))
                }
            }
        }
    }
}

pub(super) fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

impl CliError {
    /// The process's exit status for this error (docs/cli.md, "Exit status").
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. } | CliError::TooLarge { .. } => 2,
            CliError::Api(api) => match api.status.as_u16() {
                400 | 409 | 413 | 415 | 422 => 2,
                404 => 4,
                401 | 403 => 5,
                _ => 1,
            },
            CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            CliError::Unreachable { .. }
            | CliError::NotSkerry { .. }
            | CliError::Unexpected { .. }
            | CliError::StreamClosed { .. }
            | CliError::Output(_)
            | CliError::Internal(_) => 1,
        }
    }

    /// True when nothing should be reported (the reader of our output went away).
    pub fn is_silent(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The error as an `{"error": ...}` body: the server's own when it sent one, otherwise
    /// one made here with a code that names what happened.
    pub fn to_body(&self) -> ErrorBody {
        if let CliError::Api(api) = self
            && let Some(body) = &api.body
        {
            return body.clone();
        }
        let (code, field) = match self {
            CliError::Usage { field, .. } => ("invalid_argument", field.clone()),
            CliError::Unreachable { .. } => ("unreachable", None),
            CliError::NotSkerry { .. } => ("not_skerry", None),
            CliError::TooLarge { .. } => ("payload_too_large", None),
            CliError::Api(api) => (status_code_name(api.status), None),
            CliError::Unexpected { .. } => ("unexpected_response", None),
            CliError::StreamClosed { .. } => ("stream_closed", None),
            CliError::Output(_) => ("output_failed", None),
            CliError::Internal(_) => ("internal", None),
        };
        ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                field,
            },
        }
    }
}

fn status_code_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        s if s >= 500 => "internal",
        _ => "unexpected_status",
    }
}

/// The innermost cause of a transport error, e.g. `Connection refused (os error 111)`.
pub(super) fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_timeout() {
        return format!("timed out ({cause})");
    }
    cause.to_string()
}

/// The refusal of a request body of `bytes` bytes that the cloud does not take.
pub(super) fn too_large(bytes: usize, how: &str) -> CliError {
    CliError::TooLarge {
        message: format!(
            "the request body is {bytes} bytes and {how}; a Skerry cloud takes at most {MAX_BODY_BYTES} bytes ({} MiB)",
            MAX_BODY_BYTES >> 20
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: Option<ErrorBody>) -> CliError {
        CliError::Api(Box::new(ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            method: Method::GET,
            path: "/api/v1/x".to_owned(),
            body,
            text: String::new(),
        }))
    }

    #[test]
    fn statuses_map_to_exit_codes() {
        let codes: Vec<u8> = [400, 409, 404, 401, 403, 500, 503, 405]
            .into_iter()
            .map(|s| api(s, None).exit_code())
            .collect();
        assert_eq!(codes, vec![2, 2, 4, 5, 5, 1, 1, 1]);
        let unreachable = CliError::Unreachable {
            url: "u".into(),
            reason: "r".into(),
        };
        assert_eq!(unreachable.exit_code(), 1);
        assert_eq!(unreachable.to_string(), "cannot reach the cloud at u: r");
        assert_eq!(
            CliError::StreamClosed { reason: None }.to_string(),
            "the cloud closed the stream"
        );
        let usage = CliError::Usage {
            message: "m".into(),
            field: None,
        };
        assert_eq!(usage.exit_code(), 2);
    }

    #[test]
    fn the_servers_error_body_is_kept() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: "invalid_manifest".into(),
                message: "components[2].depends_on: no such component".into(),
                field: Some("components[2].depends_on".into()),
            },
        };
        let e = api(400, Some(body));
        assert_eq!(e.to_string(), "components[2].depends_on: no such component");
        assert_eq!(e.to_body().error.code, "invalid_manifest");
        let bare = api(404, None);
        assert_eq!(
            bare.to_string(),
            "the cloud answered 404 Not Found to GET /api/v1/x"
        );
        assert_eq!(bare.to_body().error.code, "not_found");
    }

    #[test]
    fn foreign_answers_and_large_bodies_have_their_exit_codes() {
        let foreign = CliError::NotSkerry {
            url: "http://web:8000/".into(),
            status: StatusCode::NOT_FOUND,
            content_type: Some("text/html".into()),
            method: Method::GET,
            path: "/api/v1/environments".into(),
        };
        assert_eq!(foreign.exit_code(), 1);
        assert_eq!(
            foreign.to_string(),
            "http://web:8000/ is not a Skerry cloud: it answered 404 Not Found text/html to GET /api/v1/environments"
        );
        assert_eq!(foreign.to_body().error.code, "not_skerry");
        let large = too_large(4_000_000, "was refused with 413 Payload Too Large");
        assert_eq!(large.exit_code(), 2);
        assert_eq!(large.to_body().error.code, "payload_too_large");
        assert!(
            large
                .to_string()
                .contains(&format!("at most {MAX_BODY_BYTES} bytes")),
            "{large}"
        );
        assert_eq!(api(413, None).exit_code(), 2);
    }
}
