//! What every request passes before a handler sees it: the origin check, the body's media
//! type, and the body itself read whole within its size limit and its deadline.
//!
//! - **Cross-origin requests.** A browser marks the requests a web page makes: `Origin` names
//!   the page's origin, and `Sec-Fetch-Site` says whether it is the server's own site. A
//!   request whose `Origin` is not the cloud's own (`http://` or `https://` and the `Host`
//!   it was sent to), or whose `Sec-Fetch-Site` is `cross-site` or `same-site`, is answered
//!   403 `cross_origin`, unless its origin is one of `[http] allowed_origins`. Those origins
//!   also get CORS answers (preflights, `Access-Control-Allow-Origin`), so a console served
//!   from them can call the API. A browser's request must also name the cloud by an address
//!   or `localhost` (or an allowed origin's host), against DNS rebinding. Requests without
//!   these headers (the CLI, curl, agents) are not concerned.
//! - **Media type.** A request that carries a body, or names a content type on a method that
//!   takes one, must be `application/json` (the manifest route also takes YAML types); else
//!   415 `unsupported_media_type`. `text/plain` and the form types are what a page can send
//!   without a preflight, so a page cannot post a body the API reads.
//! - **The body** is read here, whole, before the handler runs: at most
//!   [`MAX_BODY_BYTES`] (413 `payload_too_large`, naming the limit), within the body
//!   deadline (408 `request_timeout`). Handlers then read a body that is already in memory,
//!   so every body error is answered here in the error shape, whatever the handler's
//!   extractor.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use skerry_shared::manifest::MAX_MANIFEST_BYTES;

use super::limits::DEFAULT_BODY_TIMEOUT;
use crate::api::error::{ApiError, MAX_BODY_BYTES};

/// How much of a body over [`MAX_BODY_BYTES`] is still read, and thrown away, before the
/// 413 is sent: a client that is still sending (reqwest, the CLI) reads an answer only
/// once its body is written, and a connection closed under it shows it a broken pipe
/// instead of the 413. A larger body is answered at once and the connection closed.
pub const DRAIN_BYTES: u64 = 16 << 20;

/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The request guard's settings (`[http]` in the config file).
#[derive(Debug, Clone)]
pub struct Guard {
    /// Origins (`https://console.example`) whose pages may call the API.
    pub allowed_origins: Arc<Vec<String>>,
    /// How long a request's body may take to arrive, from the end of its head.
    pub body_timeout: Duration,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            allowed_origins: Arc::new(Vec::new()),
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

impl Guard {
    fn allows(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/')))
    }

    /// Whether `host` is the host (and port) of an allowed origin.
    fn allows_host(&self, host: &str) -> bool {
        !host.is_empty()
            && self.allowed_origins.iter().any(|o| {
                o.split_once("://")
                    .is_some_and(|(_, h)| h.eq_ignore_ascii_case(host))
            })
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// Whether `origin` is the cloud's own: the scheme and the `Host` the request was sent to.
fn is_own_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = header(headers, &header::HOST) else {
        return false;
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
}

/// 403 `cross_origin`, or `Ok(Some(origin))` for a configured origin (its answers get CORS
/// headers), or `Ok(None)` for a request that is not cross-origin.
fn check_origin(guard: &Guard, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let origin = header(headers, &header::ORIGIN);
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Some(origin) = origin
        && guard.allows(origin)
    {
        return Ok(Some(origin.to_owned()));
    }
    if let Some(origin) = origin
        && !is_own_origin(origin, headers)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            Some("origin"),
            format!(
                "requests from the web origin \"{origin}\" are refused; add it to [http] allowed_origins in the cloud's configuration to allow it"
            ),
        ));
    }
    if let Some(site @ ("cross-site" | "same-site")) = fetch_site {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            Some("sec-fetch-site"),
            format!(
                "a request that the browser marks {site} is refused; add the page's origin to [http] allowed_origins in the cloud's configuration to allow it"
            ),
        ));
    }
    // A page can point a name of its own at the cloud's address (DNS rebinding), and is
    // then same-origin with it: a browser's request must name the cloud by an address or
    // `localhost`, which no page can rebind, or by the host of an allowed origin.
    if origin.is_some() || fetch_site.is_some() {
        let host = header(headers, &header::HOST).unwrap_or("");
        if !(host_is_fixed(host) || guard.allows_host(host)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_origin",
                Some("host"),
                format!(
                    "a browser's request to the cloud by the name \"{host}\" is refused, as a web page may have pointed that name at the cloud; use its IP address or localhost, or add the origin (http://{host}) to [http] allowed_origins"
                ),
            ));
        }
    }
    Ok(None)
}

/// Whether `host` (`host:port`) is an IP address or `localhost`: names no web page can
/// point at another address.
fn host_is_fixed(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Whether the request carries a body: a non-zero `Content-Length`, or any
/// `Transfer-Encoding`.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || header(headers, &header::CONTENT_LENGTH).is_some_and(|v| v.trim() != "0")
}

/// Whether the route takes a manifest (YAML) body.
fn takes_manifest(method: &Method, path: &str) -> bool {
    method == Method::POST && path.trim_end_matches('/') == "/api/v1/apps"
}

/// 415 `unsupported_media_type` unless a body (or a content type on a method that takes
/// one) is JSON, or YAML on the manifest route.
fn check_media_type(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = header(headers, &header::CONTENT_TYPE);
    let takes_body = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let concerned = has_body(headers) || (takes_body && content_type.is_some());
    if !concerned {
        return Ok(());
    }
    let manifest = takes_manifest(method, path);
    let essence = content_type
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let ok = essence == "application/json"
        || (manifest
            && matches!(
                essence.as_str(),
                "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
            ));
    if ok {
        return Ok(());
    }
    let wanted = if manifest {
        "application/yaml or application/json"
    } else {
        "application/json"
    };
    let given = match content_type {
        Some(t) => format!("is \"{t}\""),
        None => "is missing".to_owned(),
    };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        Some("content-type"),
        format!("the request body's content type {given}; send {wanted}"),
    ))
}

/// Whether the connection should be closed after the answer (a body left unread).
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn too_large(manifest: bool, size: Option<u64>) -> ApiError {
    let what = if manifest {
        "the manifest"
    } else {
        "the request body"
    };
    let size = match size {
        Some(n) => format!("is {n} bytes"),
        None => "is over the limit".to_owned(),
    };
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
        format!(
            "{what} {size}; at most {MAX_BODY_BYTES} bytes ({} MiB) are accepted",
            MAX_BODY_BYTES >> 20
        ),
    )
}

/// Why a body could not be read whole.
enum BodyFault {
    TooLarge { read: u64 },
    Broken(String),
}

/// Reads `body` whole, or at most `limit` bytes of it. Past the limit it goes on reading,
/// and discarding, up to [`DRAIN_BYTES`] in all.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyFault> {
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut read: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyFault::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        read += data.len() as u64;
        if read > limit as u64 {
            if read >= DRAIN_BYTES {
                return Err(BodyFault::TooLarge { read });
            }
            kept = Vec::new();
            continue;
        }
        kept.extend_from_slice(&data);
    }
    if read > limit as u64 {
        return Err(BodyFault::TooLarge { read });
    }
    Ok(Bytes::from(kept))
}

/// The middleware: origin, media type, body.
pub async fn guard(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let cors = match check_origin(&guard, &parts.headers) {
        Ok(cors) => cors,
        Err(e) => return e.into_response(),
    };
    if let Some(origin) = &cors
        && parts.method == Method::OPTIONS
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return with_cors(StatusCode::NO_CONTENT.into_response(), origin, true);
    }
    let answer = match guarded(&guard, &mut parts, body).await {
        Ok(body) => next.run(Request::from_parts(parts, body)).await,
        Err(response) => response,
    };
    match cors {
        Some(origin) => with_cors(answer, &origin, false),
        None => answer,
    }
}

async fn guarded(
    guard: &Guard,
    parts: &mut axum::http::request::Parts,
    body: Body,
) -> Result<Body, Response> {
    let path = parts.uri.path().to_owned();
    check_media_type(&parts.method, &path, &parts.headers).map_err(|e| e.into_response())?;
    if !has_body(&parts.headers) {
        return Ok(Body::empty());
    }
    let manifest = takes_manifest(&parts.method, &path);
    let declared =
        header(&parts.headers, &header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared
        && n > DRAIN_BYTES
    {
        return Err(closing(too_large(manifest, Some(n)).into_response()));
    }
    let limit = if manifest {
        MAX_MANIFEST_BYTES.min(MAX_BODY_BYTES)
    } else {
        MAX_BODY_BYTES
    };
    match tokio::time::timeout(guard.body_timeout, read_body(body, limit)).await {
        Ok(Ok(bytes)) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, bytes.len().into());
            parts.headers.remove(header::TRANSFER_ENCODING);
            Ok(Body::from(bytes))
        }
        Ok(Err(BodyFault::TooLarge { read })) => Err(closing(
            too_large(manifest, declared.or((read < DRAIN_BYTES).then_some(read))).into_response(),
        )),
        Ok(Err(BodyFault::Broken(e))) => Err(closing(
            ApiError::bad_request(
                "invalid_body",
                "",
                format!("the request body could not be read: {e}"),
            )
            .into_response(),
        )),
        Err(_) => Err(closing(
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                None,
                format!(
                    "the request body did not arrive within {} (the cloud's [http] body_timeout)",
                    humantime::format_duration(guard.body_timeout)
                ),
            )
            .into_response(),
        )),
    }
}

fn with_cors(mut response: Response, origin: &str, preflight: bool) -> Response {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, authorization"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origins_other_than_the_hosts_own_are_refused_unless_configured() {
        let guard = Guard {
            allowed_origins: Arc::new(vec!["https://console.example".into()]),
            ..Guard::default()
        };
        let own = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(check_origin(&guard, &own).unwrap().is_none());
        let none = headers(&[("host", "127.0.0.1:8080")]);
        assert!(check_origin(&guard, &none).unwrap().is_none());
        for bad in [
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]),
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8081"),
            ]),
            headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-site")]),
        ] {
            let e = check_origin(&guard, &bad).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str()),
                (StatusCode::FORBIDDEN, "cross_origin")
            );
        }
        // A name that a page may have rebound to the cloud's address.
        for rebound in [
            headers(&[
                ("host", "evil.example:8080"),
                ("origin", "http://evil.example:8080"),
            ]),
            headers(&[
                ("host", "evil.example:8080"),
                ("sec-fetch-site", "same-origin"),
            ]),
        ] {
            let e = check_origin(&guard, &rebound).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("host"));
        }
        for fixed in ["localhost:8080", "[::1]:8080", "10.0.0.7", "LOCALHOST"] {
            assert!(host_is_fixed(fixed), "{fixed}");
        }
        assert!(!host_is_fixed("cloud.example:8080"));
        let named = headers(&[
            ("host", "console.example"),
            ("origin", "https://console.example"),
        ]);
        assert!(check_origin(&guard, &named).unwrap().is_some());
        // Without a browser's headers the name does not matter (the CLI, curl).
        let cli = headers(&[("host", "cloud.example:8080")]);
        assert!(check_origin(&guard, &cli).unwrap().is_none());
        let allowed = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://console.example"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert_eq!(
            check_origin(&guard, &allowed).unwrap().as_deref(),
            Some("https://console.example")
        );
    }

    #[test]
    fn bodies_must_be_json_and_manifests_may_be_yaml() {
        let post = Method::POST;
        let json = headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", "2"),
        ]);
        assert!(check_media_type(&post, "/api/v1/environments", &json).is_ok());
        let yaml = headers(&[
            ("content-type", "application/yaml"),
            ("content-length", "2"),
        ]);
        assert!(check_media_type(&post, "/api/v1/apps", &yaml).is_ok());
        assert!(check_media_type(&post, "/api/v1/environments", &yaml).is_err());
        for t in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let mut h = headers(&[("content-length", "2")]);
            h.insert("content-type", HeaderValue::from_str(t).unwrap());
            let e = check_media_type(&post, "/api/v1/apps", &h).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{t}");
        }
        // A body without a content type, or a form type on an empty POST.
        assert!(
            check_media_type(&post, "/api/v1/apps", &headers(&[("content-length", "5")])).is_err()
        );
        let form = headers(&[("content-type", "text/plain"), ("content-length", "0")]);
        assert!(check_media_type(&post, "/api/v1/instances", &form).is_err());
        // No body and no content type: a DELETE from the CLI.
        assert!(
            check_media_type(&Method::DELETE, "/api/v1/instances/x", &HeaderMap::new()).is_ok()
        );
    }
}
