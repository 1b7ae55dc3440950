//! The CLI's HTTP client for the REST API.
//!
//! [`Client`] adds the base URL and the bearer token to every request; a [`Call`] sends one
//! request and turns the answer into a typed body or a [`CliError`] (`error`: which error
//! is which exit status):
//! - a 2xx answer whose body is not the expected JSON is an unexpected answer;
//! - a non-2xx answer with Skerry's `{"error": ...}` body is [`CliError::Api`]; one without
//!   it (or a 2xx that is not JSON) is [`CliError::NotSkerry`], except a 413, which is
//!   [`CliError::TooLarge`], and a proxy's 502 to 504;
//! - a body too large for the cloud, whether it answered 413 or closed the connection while
//!   the body was still being sent, is [`CliError::TooLarge`];
//! - a connection that cannot be made is [`CliError::Unreachable`].
//!
//! With `--ca FILE` (`SKERRY_CA`) the client also trusts the CA certificates in that PEM
//! file, as for a cloud that serves https with a certificate from its own CA
//! (`DATA/keys/ca.crt`); a file that is missing, unreadable or holds no PEM certificate is a
//! usage error naming `--ca`. Without it, the roots reqwest has apply.
//!
//! [`Call::lines`] reads a streamed NDJSON answer (`--follow`) as [`Lines`].

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, CliError, quote, root_cause, too_large};
use super::lines::Lines;
use crate::api::dto::ErrorBody;
pub use crate::api::error::MAX_BODY_BYTES;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request that is not a stream may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

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

/// The most bytes of a `--ca` file read: a CA bundle is a few kilobytes.
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// The certificates of the PEM file `path` (`--ca`), each checked to parse.
fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, CliError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use std::io::Read as _;
    let usage = |reason: String| CliError::Usage {
        message: format!("--ca: {}: {reason}", path.display()),
        field: Some("--ca".to_owned()),
    };
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut pem))
        .map_err(|e| usage(format!("cannot read it ({e})")))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(usage(format!(
            "it is over {} KiB; give the PEM file of the cloud's CA (DATA/keys/ca.crt)",
            MAX_CA_FILE_BYTES >> 10
        )));
    }
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(format!("not a PEM certificate ({e})")))?;
    if ders.is_empty() {
        return Err(usage(
            "holds no PEM certificate; give the cloud's CA certificate (DATA/keys/ca.crt)"
                .to_owned(),
        ));
    }
    ders.iter()
        .map(|der| {
            x509_parser::parse_x509_certificate(der.as_ref())
                .map_err(|e| usage(format!("a certificate in it does not parse ({e})")))?;
            reqwest::Certificate::from_der(der.as_ref())
                .map_err(|e| usage(format!("a certificate in it is refused ({e})")))
        })
        .collect()
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
        Self::with_ca(base, token, None)
    }

    /// Like [`Client::new`], also trusting the CA certificates in the PEM file `ca`
    /// (`--ca`).
    pub fn with_ca(base: Url, token: Option<String>, ca: Option<&Path>) -> Result<Self, CliError> {
        let token = token.filter(|t| !t.is_empty());
        if let Some(t) = &token
            && !t.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(CliError::Usage {
                message: "--token must be printable ASCII without spaces".to_owned(),
                field: Some("--token".to_owned()),
            });
        }
        let mut builder = reqwest::Client::builder();
        if let Some(path) = ca {
            for cert in ca_certificates(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
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

    pub fn put(&self, segments: &[&str]) -> Call {
        self.call(Method::PUT, segments)
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
        let Answer {
            method,
            path,
            response,
            ..
        } = self.send(None).await?;
        Ok(Lines::new(response, method, path))
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

#[cfg(test)]
mod tests {
    use super::*;

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
    #[allow(clippy::unwrap_used)]
    fn ca_files_must_hold_pem_certificates() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let base = || Url::parse("https://cloud:8443").unwrap();
        let field = |r: Result<Client, CliError>| match r {
            Err(CliError::Usage { field, message }) => {
                assert!(message.starts_with("--ca: "), "{message}");
                field
            }
            other => panic!("{other:?}"),
        };
        let missing = dir.path().join("missing.crt");
        assert_eq!(
            field(Client::with_ca(base(), None, Some(&missing))).as_deref(),
            Some("--ca")
        );
        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        assert_eq!(
            field(Client::with_ca(base(), None, Some(&junk))).as_deref(),
            Some("--ca")
        );
        let garbled = dir.path().join("garbled.crt");
        std::fs::write(
            &garbled,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert_eq!(
            field(Client::with_ca(base(), None, Some(&garbled))).as_deref(),
            Some("--ca")
        );
        let pki = crate::pki::Pki::load_or_create(&dir.path().join("keys")).unwrap();
        let ca = dir.path().join("keys").join("ca.crt");
        assert!(!pki.ca_pem().is_empty());
        assert!(Client::with_ca(base(), None, Some(&ca)).is_ok());
    }

    #[test]
    fn tokens_must_be_header_safe() {
        let base = Url::parse("http://cloud:8080").ok();
        let bad = base.map(|b| Client::new(b, Some("a b".into())));
        assert!(matches!(bad, Some(Err(CliError::Usage { .. }))));
    }
}
