//! Why enrollment did not finish ([`EnrollError`]), the exit status each reason gives,
//! and what a non-201 answer of the cloud means.

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use skerry_shared::enroll::TokenFormatError;
use skerry_shared::hash::Digest;
use skerry_shared::ids::NodeId;

use crate::identity::IdentityError;

/// How much of an unexpected answer is quoted in a message.
const QUOTE_LIMIT: usize = 300;

/// Why enrollment did not finish.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The token does not parse.
    #[error(transparent)]
    Token(#[from] TokenFormatError),
    /// The cloud's address is not an `http://` or `https://` URL.
    #[error("--cloud: \"{url}\" is not an http:// or https:// URL{}", .reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    BadUrl { url: String, reason: Option<String> },
    /// The node already has an identity: enrollment runs once.
    #[error("this node is already enrolled (as {node}); its identity is in {dir}")]
    AlreadyEnrolled { node: NodeId, dir: String },
    /// No answer came: the cloud is down or out of reach. Worth another try.
    #[error("cannot reach the cloud at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The cloud's TLS certificate is not from the CA the token names.
    #[error("the cloud at {url} is not trusted: {reason}")]
    ServerNotTrusted { url: String, reason: String },
    /// 403: the token is not (or no longer) good.
    #[error("the token is unknown, used or expired")]
    TokenRefused,
    /// 400, 409 and other refusals of the request, with the cloud's reason and field.
    #[error("the cloud refused the enrollment: {message}{}", .field.as_deref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Refused {
        status: u16,
        code: Option<String>,
        field: Option<String>,
        message: String,
    },
    /// The cloud failed (5xx). Worth another try.
    #[error("the cloud at {url} failed ({status}): {message}")]
    CloudFailed {
        url: String,
        status: u16,
        message: String,
    },
    /// An answer that the API does not promise.
    #[error("unexpected answer from the cloud at {url}: {reason}")]
    Unexpected { url: String, reason: String },
    /// The CA the cloud sent is not the one the token names.
    #[error(
        "the cloud's CA does not match the token: the token names CA {expected}, the cloud sent {got}; nothing was saved"
    )]
    CaMismatch { expected: Digest, got: Digest },
    /// The certificate the cloud issued is not one this node can use.
    #[error("the certificate the cloud issued is not valid for this node: {0}; nothing was saved")]
    BadCertificate(String),
    /// The key pair or the CSR could not be made.
    #[error("cannot make the node's key or certificate request: {0}")]
    Key(String),
    /// The identity could not be saved.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The agent could not set itself up (the HTTP client, a task).
    #[error("{0}")]
    Internal(String),
}

impl EnrollError {
    /// The exit status of `skerry-edge run` for this error, with the meanings `skerry`
    /// gives them (docs/cli.md, "Exit status"): 2 for input that is wrong (a malformed
    /// token or URL, a request the cloud refused with 400 or 409); 3 when checking the
    /// cloud against the token found a fault (its CA is not the token's, its TLS
    /// certificate does not chain to it, or the certificate it issued is not for this
    /// node); 4 when `--cloud` has no enrollment route (404); 5 for a token the cloud does
    /// not accept (401, 403); 1 for the rest (unreachable, a failing cloud, a local
    /// failure).
    pub fn exit_code(&self) -> u8 {
        match self {
            EnrollError::Token(_)
            | EnrollError::BadUrl { .. }
            | EnrollError::AlreadyEnrolled { .. } => 2,
            EnrollError::CaMismatch { .. }
            | EnrollError::ServerNotTrusted { .. }
            | EnrollError::BadCertificate(_) => 3,
            EnrollError::Refused { status, .. } => match status {
                401 | 403 => 5,
                404 => 4,
                _ => 2,
            },
            EnrollError::TokenRefused => 5,
            EnrollError::Unreachable { .. }
            | EnrollError::CloudFailed { .. }
            | EnrollError::Unexpected { .. }
            | EnrollError::Key(_)
            | EnrollError::Identity(_)
            | EnrollError::Internal(_) => 1,
        }
    }

    /// Whether the same enrollment may succeed later (the cloud was out of reach or
    /// failed); the token has not been spent then.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EnrollError::Unreachable { .. } | EnrollError::CloudFailed { .. }
        )
    }
}

/// The API's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    message: String,
    #[serde(default)]
    field: Option<String>,
}

/// An error and its causes, `a: b: c`.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// What a non-201 answer means.
pub(super) fn refusal(base: &Url, status: StatusCode, text: &str) -> EnrollError {
    let body = serde_json::from_str::<ErrorBody>(text)
        .ok()
        .map(|b| b.error);
    let message = body
        .as_ref()
        .map_or_else(|| quote(text), |b| b.message.clone());
    match status.as_u16() {
        403 => EnrollError::TokenRefused,
        s if status.is_server_error() => EnrollError::CloudFailed {
            url: base.to_string(),
            status: s,
            message,
        },
        s if status.is_client_error() => match body {
            Some(b) => EnrollError::Refused {
                status: s,
                code: b.code,
                field: b.field,
                message: b.message,
            },
            None => EnrollError::Refused {
                status: s,
                code: None,
                field: None,
                message: format!("{status}: {message}"),
            },
        },
        _ => EnrollError::Unexpected {
            url: base.to_string(),
            reason: format!("{status}: {message}"),
        },
    }
}
