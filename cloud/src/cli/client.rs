//! The CLI's HTTP client for the REST API, and the mapping from what happened to an exit
//! status.
//!
//! [`Client`] adds the base URL and the bearer token to every request; a [`Call`] sends one
//! request and turns the answer into a typed body or a [`CliError`]:
//! - a 2xx answer whose body is not the expected JSON is an unexpected answer (exit 1);
//! - 400 and 409 are refusals (exit 2), 404 is not found (exit 4), 401 and 403 are not
//!   allowed (exit 5), anything else is exit 1; the server's `{"error": ...}` body is kept;
//! - an answer that is not in Skerry's shape (an error without the JSON error body, a 2xx
//!   that is not JSON) says `URL is not a Skerry cloud: it answered STATUS CONTENT-TYPE`
//!   (exit 1), whatever its status: a web server's 404 page is not "not found";
//! - a body too large for the cloud, whether it answered 413 or closed the connection while
//!   the body was still being sent, is a refusal (exit 2) that names the limit
//!   ([`MAX_BODY_BYTES`]);
//! - a connection that cannot be made says `cannot reach the cloud at URL: reason` (exit 1).
//!
//! [`Lines`] reads a streamed NDJSON answer (`--follow`) one value at a time.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::dto::{ErrorBody, ErrorDetail};
pub use crate::api::error::MAX_BODY_BYTES;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request that is not a stream may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
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

fn quote(text: &str) -> String {
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
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_timeout() {
        return format!("timed out ({cause})");
    }
    cause.to_string()
}

/// True when a transport error is the peer closing the connection under a request that was
/// still being sent (a broken pipe, a reset).
fn cut_off(e: &reqwest::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            )
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The refusal of a request body of `bytes` bytes that the cloud does not take.
fn too_large(bytes: usize, how: &str) -> CliError {
    CliError::TooLarge {
        message: format!(
            "the request body is {bytes} bytes and {how}; a Skerry cloud takes at most {MAX_BODY_BYTES} bytes ({} MiB)",
            MAX_BODY_BYTES >> 20
        ),
    }
}

/// Whether a `Content-Type` value names JSON (`application/json`, `application/x-ndjson`,
/// `application/problem+json`, with any parameters).
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json"
            || essence == "application/x-ndjson"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// A client of one cloud.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client of the cloud at `base`, sending `token` (if any) as `Authorization: Bearer`.
    pub fn new(base: Url, token: Option<String>) -> Result<Self, CliError> {
        let token = token.filter(|t| !t.is_empty());
        if let Some(t) = &token
            && !t.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(CliError::Usage {
                message: "--token must be printable ASCII without spaces".to_owned(),
                field: Some("--token".to_owned()),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(crate::api::server::CLIENT_POOL_IDLE)
            .user_agent(concat!("skerry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Internal(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self { http, base, token })
    }

    /// The cloud's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `base` + `/api/v1/` + the segments, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    /// A request to `/api/v1/{segments...}`.
    pub fn call(&self, method: Method, segments: &[&str]) -> Call {
        let url = self.url(segments);
        let path = url.path().to_owned();
        let mut req = self.http.request(method.clone(), url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        Call {
            base: self.base.to_string(),
            method,
            path,
            req,
            body_len: None,
        }
    }

    pub fn get(&self, segments: &[&str]) -> Call {
        self.call(Method::GET, segments)
    }

    pub fn post(&self, segments: &[&str]) -> Call {
        self.call(Method::POST, segments)
    }

    pub fn patch(&self, segments: &[&str]) -> Call {
        self.call(Method::PATCH, segments)
    }

    pub fn delete(&self, segments: &[&str]) -> Call {
        self.call(Method::DELETE, segments)
    }
}

/// One request, ready to send.
#[derive(Debug)]
pub struct Call {
    base: String,
    method: Method,
    path: String,
    req: reqwest::RequestBuilder,
    /// The length of the body, when it has one.
    body_len: Option<usize>,
}

impl Call {
    /// Adds query parameters; `None` values are left out.
    pub fn query(mut self, params: &[(&str, Option<&str>)]) -> Self {
        let present: Vec<(&str, &str)> = params
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect();
        if !present.is_empty() {
            self.req = self.req.query(&present);
        }
        self
    }

    /// Sends `body` as JSON.
    pub fn json<B: Serialize + ?Sized>(self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.bytes(bytes, "application/json"),
            // Not reached for the API's types; reqwest reports the failure when sending.
            Err(_) => Self {
                req: self.req.json(body),
                ..self
            },
        }
    }

    /// Sends `bytes` as they are, with this content type.
    pub fn bytes(mut self, bytes: Vec<u8>, content_type: &str) -> Self {
        self.body_len = Some(bytes.len());
        self.req = self
            .req
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        self
    }

    /// Sends the request; a non-2xx answer becomes [`CliError::Api`].
    async fn send(self, timeout: Option<Duration>) -> Result<Answer, CliError> {
        let Call {
            base,
            method,
            path,
            req,
            body_len,
        } = self;
        let req = match timeout {
            Some(t) => req.timeout(t),
            None => req,
        };
        let body_len = body_len.unwrap_or(0);
        let not_skerry = |status, content_type| CliError::NotSkerry {
            url: base.clone(),
            status,
            content_type,
            method: method.clone(),
            path: path.clone(),
        };
        let response = match req.send().await {
            Ok(response) => response,
            // The cloud stops reading a body over its limit; a client still sending it
            // sees the connection closed before it can read the 413.
            Err(e) if body_len > MAX_BODY_BYTES && cut_off(&e) => {
                return Err(too_large(
                    body_len,
                    "the cloud closed the connection while it was being sent",
                ));
            }
            Err(e) => {
                return Err(CliError::Unreachable {
                    url: base.clone(),
                    reason: root_cause(&e),
                });
            }
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if status.is_success() {
            // A 204 carries no body and so no content type.
            if status != StatusCode::NO_CONTENT && !is_json(content_type.as_deref()) {
                return Err(not_skerry(status, content_type));
            }
            return Ok(Answer {
                base,
                method,
                path,
                response,
            });
        }
        let text = response.text().await.unwrap_or_default();
        let body = is_json(content_type.as_deref())
            .then(|| serde_json::from_str::<ErrorBody>(&text).ok())
            .flatten();
        if body.is_none() {
            match status.as_u16() {
                // A proxy in front of the cloud may refuse a body with its own page.
                413 => {
                    return Err(too_large(body_len, &format!("was refused with {status}")));
                }
                // A proxy in front of a cloud that is down or slow.
                502..=504 => {}
                _ => return Err(not_skerry(status, content_type)),
            }
        }
        Err(CliError::Api(Box::new(ApiError {
            status,
            method,
            path,
            body,
            text,
        })))
    }

    /// Sends the request and reads the whole answer.
    async fn fetch_bytes(self) -> Result<(StatusCode, Vec<u8>, Method, String), CliError> {
        let Answer {
            base,
            method,
            path,
            response,
        } = self.send(Some(REQUEST_TIMEOUT)).await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| CliError::Unreachable {
            url: base,
            reason: root_cause(&e),
        })?;
        Ok((status, bytes.to_vec(), method, path))
    }

    /// Sends the request and decodes a JSON answer; returns the status too, since some
    /// endpoints say different things with 200 and 201.
    pub async fn fetch_with_status<T: DeserializeOwned>(self) -> Result<(StatusCode, T), CliError> {
        let (status, bytes, method, path) = self.fetch_bytes().await?;
        decode(&bytes, method, path).map(|value| (status, value))
    }

    /// Sends the request and decodes a JSON answer.
    pub async fn fetch<T: DeserializeOwned>(self) -> Result<T, CliError> {
        self.fetch_with_status().await.map(|(_, v)| v)
    }

    /// Sends the request and takes whatever JSON comes back; an empty body (204) is `null`.
    pub async fn fetch_any(self) -> Result<serde_json::Value, CliError> {
        let (_, bytes, method, path) = self.fetch_bytes().await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        decode(&bytes, method, path)
    }

    /// Sends the request and reads the answer as a stream of NDJSON values.
    pub async fn lines(self) -> Result<Lines, CliError> {
        let answer = self.send(None).await?;
        Ok(Lines {
            answer,
            buf: Vec::new(),
            ended: false,
        })
    }
}

/// Decodes a JSON body, or says what was wrong with it.
fn decode<T: DeserializeOwned>(bytes: &[u8], method: Method, path: String) -> Result<T, CliError> {
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(bytes);
        let reason = if text.trim().is_empty() {
            format!("an empty body ({e})")
        } else {
            format!("{e} in {}", quote(text.trim()))
        };
        CliError::Unexpected {
            method,
            path,
            reason,
        }
    })
}

/// A 2xx answer and what was asked.
#[derive(Debug)]
struct Answer {
    base: String,
    method: Method,
    path: String,
    response: reqwest::Response,
}

/// A streamed NDJSON answer: one JSON value per line; blank lines are keep-alives.
#[derive(Debug)]
pub struct Lines {
    answer: Answer,
    buf: Vec<u8>,
    ended: bool,
}

impl Lines {
    /// The next value, or [`CliError::StreamClosed`] when the stream ends.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<T, CliError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if let Some(value) = self.decode(&line)? {
                    return Ok(value);
                }
                continue;
            }
            if self.ended {
                // A last line without a newline still counts.
                let rest = std::mem::take(&mut self.buf);
                if let Some(value) = self.decode(&rest)? {
                    return Ok(value);
                }
                return Err(CliError::StreamClosed { reason: None });
            }
            match self.answer.response.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => self.ended = true,
                Err(e) => {
                    return Err(CliError::StreamClosed {
                        reason: Some(root_cause(&e)),
                    });
                }
            }
        }
    }

    fn decode<T: DeserializeOwned>(&self, line: &[u8]) -> Result<Option<T>, CliError> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        serde_json::from_str::<T>(text)
            .map(Some)
            .map_err(|e| CliError::Unexpected {
                method: self.answer.method.clone(),
                path: self.answer.path.clone(),
                reason: format!("{e} in the line {}", quote(text)),
            })
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
    fn urls_keep_a_base_path_and_encode_segments() -> Result<(), CliError> {
        let base = Url::parse("http://cloud:8080/skerry/")
            .map_err(|e| CliError::Internal(e.to_string()))?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(base, None)?;
        assert_eq!(
            client.url(&["nodes", "a b/c"]).as_str(),
            "http://cloud:8080/skerry/api/v1/nodes/a%20b%2Fc"
        );
        Ok(())
    }

    #[test]
    fn json_content_types_are_recognised() {
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/x-ndjson",
            "application/problem+json",
        ] {
            assert!(is_json(Some(ct)), "{ct}");
        }
        for ct in ["text/html", "text/plain", "application/octet-stream", ""] {
            assert!(!is_json(Some(ct)), "{ct}");
        }
        assert!(!is_json(None));
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

    #[test]
    fn tokens_must_be_header_safe() {
        let base = Url::parse("http://cloud:8080").ok();
        let bad = base.map(|b| Client::new(b, Some("a b".into())));
        assert!(matches!(bad, Some(Err(CliError::Usage { .. }))));
    }
}
