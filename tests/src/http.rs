//! A small blocking client of the REST API for tests, and the readiness probe.
//!
//! [`Api`] wraps reqwest with its own current-thread tokio runtime, so plain `#[test]`
//! functions can call the API without being async. It must not be used from inside an async
//! context (a runtime cannot block inside another); async tests use reqwest directly, with a
//! client from [`http_client`].
//!
//! [`healthz`] speaks HTTP/1.1 over a plain `TcpStream`, so waiting for a server needs no
//! runtime at all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Once;
use std::time::Duration;

use serde_json::Value;

use crate::error::Error;

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The API's largest page of events.
const EVENT_PAGE: usize = 100_000;

/// Installs rustls' ring provider as the process default, once (reqwest is built with
/// `rustls-no-provider`).
pub fn init_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client for tests, with the crypto provider installed.
pub fn http_client() -> Result<reqwest::Client, Error> {
    http_client_with(None)
}

/// The headers that send `token` as `Authorization: Bearer`.
pub fn bearer(token: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")) {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    headers
}

/// A reqwest client for tests that sends `token` (if any) with every request.
pub fn http_client_with(token: Option<&str>) -> Result<reqwest::Client, Error> {
    init_crypto();
    reqwest::Client::builder()
        .default_headers(token.map(bearer).unwrap_or_default())
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(skerry_cloud::api::server::CLIENT_POOL_IDLE)
        .build()
        .map_err(|e| Error::Http {
            method: "-".to_owned(),
            url: "-".to_owned(),
            reason: format!("cannot build the HTTP client: {e}"),
        })
}

/// `GET /healthz` on `addr` answered 200.
pub fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}

/// An answer: its status and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_str(&self.body)
            .map_err(|e| Error::unexpected(format!("the body is not JSON ({e}): {}", self.body)))
    }

    /// `error.field` of an `{"error": ...}` body.
    pub fn error_field(&self) -> Option<String> {
        let v = self.json().ok()?;
        v["error"]["field"].as_str().map(str::to_owned)
    }

    /// `error.code` of an `{"error": ...}` body.
    pub fn error_code(&self) -> Option<String> {
        let v = self.json().ok()?;
        v["error"]["code"].as_str().map(str::to_owned)
    }

    /// The body as JSON when the status is `expected`; otherwise an error quoting both.
    pub fn expect_status(&self, expected: u16) -> Result<Value, Error> {
        if self.status != expected {
            return Err(Error::unexpected(format!(
                "expected HTTP {expected}, got {}: {}",
                self.status, self.body
            )));
        }
        self.json()
    }
}

/// A blocking client of one cloud's REST API.
#[derive(Debug)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    /// A client of the cloud at `base` (`http://127.0.0.1:PORT`), without a token (which
    /// reaches `/healthz` and `/api/v1/enroll` only).
    pub fn new(base: &str) -> Result<Api, Error> {
        Self::with_token(base, None)
    }

    /// A client of the cloud at `base` that sends `token` with every request.
    pub fn with_token(base: &str, token: Option<&str>) -> Result<Api, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start a tokio runtime", e))?;
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client_with(token)?,
            runtime,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Any request: `method path`, with an optional body and its content type.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<HttpResponse, Error> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some((bytes, content_type)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let fail = |reason: String| Error::Http {
            method: method.to_string(),
            url: url.clone(),
            reason,
        };
        self.runtime.block_on(async {
            let response = req.send().await.map_err(|e| fail(e.to_string()))?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(|e| fail(e.to_string()))?;
            Ok(HttpResponse { status, body })
        })
    }

    fn json_body(body: &Value) -> Option<(Vec<u8>, &'static str)> {
        Some((body.to_string().into_bytes(), "application/json"))
    }

    /// `GET path` (`/api/v1/...`, with any query).
    pub fn get(&self, path: &str) -> Result<HttpResponse, Error> {
        self.request(reqwest::Method::GET, path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<HttpResponse, Error> {
        self.request(reqwest::Method::POST, path, Self::json_body(body))
    }

    /// `POST path` with a body of this content type.
    pub fn post_bytes(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<HttpResponse, Error> {
        self.request(reqwest::Method::POST, path, Some((body, content_type)))
    }

    /// `PATCH path` with a JSON body.
    pub fn patch_json(&self, path: &str, body: &Value) -> Result<HttpResponse, Error> {
        self.request(reqwest::Method::PATCH, path, Self::json_body(body))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<HttpResponse, Error> {
        self.request(reqwest::Method::DELETE, path, None)
    }

    /// `GET path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Result<Value, Error> {
        self.get(path)?.expect_status(200)
    }

    /// The whole command log, in order, read page by page.
    pub fn events(&self) -> Result<Vec<Value>, Error> {
        let mut all: Vec<Value> = Vec::new();
        loop {
            let after = all.last().and_then(|e| e["seq"].as_u64()).unwrap_or(0);
            let page =
                self.get_json(&format!("/api/v1/events?after={after}&limit={EVENT_PAGE}"))?;
            let page = page
                .as_array()
                .ok_or_else(|| Error::unexpected(format!("events: not an array: {page}")))?
                .clone();
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// How many events the command log holds (`GET /api/v1/events?limit=100000`).
    pub fn event_count(&self) -> Result<usize, Error> {
        Ok(self.events()?.len())
    }

    /// Issues an enrollment token for `env` (`POST /api/v1/enrollment-tokens`).
    pub fn enrollment_token(&self, env: &str, ttl: Option<&str>) -> Result<String, Error> {
        let mut body = serde_json::json!({ "env": env });
        if let Some(ttl) = ttl {
            body["ttl"] = Value::from(ttl);
        }
        let answer = self
            .post_json("/api/v1/enrollment-tokens", &body)?
            .expect_status(201)?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::unexpected(format!("no token in {answer}")))
    }
}

/// A multi-threaded tokio runtime of two workers, for tests that drive many async clients
/// at once from a plain `#[test]`.
#[allow(clippy::expect_used)]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A client whose connections leave from `ip` (any 127.x.y.z reaches the cloud on
/// 127.0.0.1), so the cloud counts it as a client of its own.
#[allow(clippy::expect_used)]
pub fn client_from(ip: std::net::IpAddr) -> reqwest::Client {
    client_from_with(ip, None)
}

/// [`client_from`], sending `token` (if any) with every request.
#[allow(clippy::expect_used)]
pub fn client_from_with(ip: std::net::IpAddr, token: Option<&str>) -> reqwest::Client {
    init_crypto();
    reqwest::Client::builder()
        .default_headers(token.map(bearer).unwrap_or_default())
        .local_address(ip)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client")
}

/// The `n`th loopback address from 127.0.1.0 up: clear of 127.0.0.1, which the rest of a
/// test uses.
pub fn loopback(n: u32) -> std::net::IpAddr {
    use std::net::Ipv4Addr;
    std::net::IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 1, 0)) + n))
}

/// A GET of `url`, answered (its body not read yet).
#[allow(clippy::expect_used)]
pub async fn open(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).send().await.expect("an answer")
}
