//! First-run enrollment: the node's key pair, its certificate signing request, and the
//! check of what the cloud answers against the token.
//!
//! [`enroll`] runs once, on a node with no identity:
//! 1. it parses the token (`skr1.<id>.<secret>.<ca-sha256>`);
//! 2. it makes a P-256 key pair, and a CSR whose subject names the node;
//! 3. it sends `POST {cloud}/api/v1/enroll` with the token, the CSR, the name and the
//!    firmware profile;
//! 4. it checks the answer: the CA certificate's SHA-256 is the token's, the node
//!    certificate is issued by that CA for client authentication, names the node id the
//!    cloud assigned, and carries the node's own public key;
//! 5. only then it saves the identity ([`crate::identity`]). The private key never leaves
//!    the node, and nothing is written when a check fails.
//!
//! # HTTPS
//! The cloud's address may be `http://` or `https://`. Before enrollment the agent knows
//! no CA but the one whose hash the token carries, so an `https://` cloud is trusted only
//! when the certificate chain it presents includes that very CA (its DER's SHA-256 equals
//! the token's hash) and the server's certificate verifies against it for the host name.
//! A front with a certificate from a public CA is refused: the agent carries no public
//! roots. Over `http://` the token's secret crosses the network in the clear (a warning
//! says so unless the cloud is on loopback); the cloud's identity is still checked
//! through the CA hash, so a man in the middle can at worst spend the token, never
//! enroll the node with a cloud of its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use reqwest::{StatusCode, Url};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Deserialize;
use skerry_shared::enroll::{EnrollRequest, EnrollResponse, EnrollmentToken, TokenFormatError};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::profile::FirmwareProfile;

use crate::identity::{self, Identity, IdentityError, NodeRecord, crypto_provider};

/// How long a connection to the cloud may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the whole enrollment request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
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

/// Enrolls the node with the cloud at `cloud` (its HTTP address) using `token`, and
/// saves its identity under `data`. See the module docs for each step and check.
pub async fn enroll(
    cloud: &str,
    token: &str,
    name: &Name,
    profile: &FirmwareProfile,
    data: &Path,
) -> Result<Identity, EnrollError> {
    // A bad token or URL is reported before an existing identity, as it always was.
    let _: EnrollmentToken = token.parse()?;
    cloud_url(cloud)?;
    if let Some(existing) = Identity::load(data)? {
        return Err(EnrollError::AlreadyEnrolled {
            node: existing.node_id(),
            dir: Identity::dir(data).display().to_string(),
        });
    }
    let identity = request(cloud, token, name, profile).await?;
    let data = data.to_owned();
    let identity = tokio::task::spawn_blocking(move || identity.save(&data).map(|()| identity))
        .await
        .map_err(|e| {
            EnrollError::Internal(format!("the task that saves the identity failed: {e}"))
        })??;
    tracing::info!(
        node = %identity.node_id(),
        env = %identity.env(),
        mqtt = ?identity.mqtt(),
        "enrolled"
    );
    Ok(identity)
}

/// Steps 1 to 4 of [`enroll`]: the identity the cloud issued, checked, and not saved (the
/// fleet simulator keeps its nodes' identities in memory).
pub async fn request(
    cloud: &str,
    token: &str,
    name: &Name,
    profile: &FirmwareProfile,
) -> Result<Identity, EnrollError> {
    let parsed: EnrollmentToken = token.parse()?;
    let base = cloud_url(cloud)?;
    let url = endpoint(&base);
    if base.scheme() == "http" && !is_loopback(&base) {
        tracing::warn!(
            cloud = %base,
            "enrolling over plain http: the token's secret crosses the network unencrypted; \
             the cloud's identity is still checked against the token's CA hash"
        );
    }

    let key = KeyPair::generate().map_err(|e| EnrollError::Key(e.to_string()))?;
    let csr = csr_pem(&key, name)?;
    let request = EnrollRequest {
        token: parsed.to_string(),
        csr,
        name: name.clone(),
        profile: profile.clone(),
    };
    tracing::info!(cloud = %base, token = %parsed.id, name = %name, "enrolling");
    let verdict = Verdict::default();
    let client = http_client(parsed.ca, verdict.clone())?;
    let answer = client
        .post(url)
        .json(&request)
        .send()
        .await
        .map_err(|e| send_error(&base, &e, &verdict))?;
    let status = answer.status();
    let text = answer
        .text()
        .await
        .map_err(|e| send_error(&base, &e, &verdict))?;
    if status != StatusCode::CREATED {
        return Err(refusal(&base, status, &text));
    }
    let response: EnrollResponse =
        serde_json::from_str(&text).map_err(|e| EnrollError::Unexpected {
            url: base.to_string(),
            reason: format!("the 201 answer is not an enrollment: {e}"),
        })?;
    check_ca(&response, parsed.ca)?;
    check_certificate(&response, &key)?;
    if &response.name != name {
        tracing::warn!(asked = %name, got = %response.name, "the cloud enrolled the node under another name");
    }

    let identity = Identity::new(
        NodeRecord {
            node_id: response.node_id,
            name: response.name,
            env: response.env,
            mqtt: response.mqtt,
            nats: response.nats,
            cloud: base.as_str().trim_end_matches('/').to_owned(),
        },
        key.serialize_pem(),
        response.certificate,
        response.ca,
    )
    .map_err(|e| EnrollError::BadCertificate(e.to_string()))?;
    Ok(identity)
}

/// The cloud's base URL: `http` or `https`, with a host, no query.
fn cloud_url(cloud: &str) -> Result<Url, EnrollError> {
    let bad = |reason: Option<String>| EnrollError::BadUrl {
        url: cloud.to_owned(),
        reason,
    };
    let url = Url::parse(cloud.trim()).map_err(|e| bad(Some(e.to_string())))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(None));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(Some("it has a query or fragment".into())));
    }
    Ok(url)
}

/// `{base}/api/v1/enroll`, keeping any path prefix of the base.
fn endpoint(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!("{}/api/v1/enroll", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A PKCS#10 request for `key`; its subject's common name is the node's name (the cloud
/// replaces it with the node id).
fn csr_pem(key: &KeyPair, name: &Name) -> Result<String, EnrollError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name.as_str());
    params.distinguished_name = dn;
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(|e| EnrollError::Key(e.to_string()))
}

/// The HTTP client for enrollment: TLS through ring, trusting only the token's CA.
fn http_client(ca: Digest, verdict: Verdict) -> Result<reqwest::Client, EnrollError> {
    let provider = crypto_provider();
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| EnrollError::Internal(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            ca,
            provider,
            verdict,
        }))
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| EnrollError::Internal(format!("cannot set up the HTTP client: {}", chain(&e))))
}

/// An error and its causes, `a: b: c`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
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

/// A request that got no answer: refused by the verifier (its verdict), or unreachable.
fn send_error(base: &Url, e: &reqwest::Error, verdict: &Verdict) -> EnrollError {
    let url = base.to_string();
    match verdict.lock().take() {
        Some(reason) => EnrollError::ServerNotTrusted { url, reason },
        None => EnrollError::Unreachable {
            url,
            reason: chain(e),
        },
    }
}

fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// What a non-201 answer means.
fn refusal(base: &Url, status: StatusCode, text: &str) -> EnrollError {
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

/// The CA the cloud sent is the one the token names.
fn check_ca(response: &EnrollResponse, expected: Digest) -> Result<(), EnrollError> {
    let ca = identity::pem_certificate(&response.ca).map_err(|e| {
        EnrollError::BadCertificate(format!("the CA certificate does not parse: {e}"))
    })?;
    let got = Digest::of(&ca);
    if got != expected {
        return Err(EnrollError::CaMismatch { expected, got });
    }
    Ok(())
}

/// The node certificate is issued by the CA for client authentication, names the node
/// id (common name, and every DNS name), and carries `key`'s public key.
fn check_certificate(response: &EnrollResponse, key: &KeyPair) -> Result<(), EnrollError> {
    let bad = EnrollError::BadCertificate;
    let ca = identity::pem_certificate(&response.ca).map_err(bad)?;
    let cert = identity::pem_certificate(&response.certificate)
        .map_err(|e| bad(format!("it does not parse: {e}")))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| bad(format!("the CA certificate is not usable: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
        .build()
        .map_err(|e| bad(e.to_string()))?;
    verifier
        .verify_client_cert(&cert, &[], UnixTime::now())
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYet)
            | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYetContext {
                ..
            }) => bad(format!(
                "{e}: is this node's clock right? ({})",
                time::OffsetDateTime::now_utc()
            )),
            other => bad(format!("it is not issued by the token's CA: {other}")),
        })?;

    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).map_err(|e| bad(e.to_string()))?;
    let node = response.node_id.to_string();
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    if cn != Some(node.as_str()) {
        return Err(bad(format!(
            "its common name is {cn:?}, not the node id {node}"
        )));
    }
    if let Some(san) = parsed
        .subject_alternative_name()
        .map_err(|e| bad(e.to_string()))?
    {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name
                && *dns != node
            {
                return Err(bad(format!(
                    "it names {dns}, which is not the node id {node}"
                )));
            }
        }
    }
    if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(bad("it is for another key than this node's".into()));
    }
    Ok(())
}

/// Trusts a TLS server only when the chain it presents includes the CA whose DER's
/// SHA-256 the token names, and its certificate verifies against that CA for the name
/// the agent asked for.
#[derive(Debug)]
struct PinnedCa {
    ca: Digest,
    provider: Arc<CryptoProvider>,
    /// Why the server was refused: the HTTP client's error wraps the TLS error in
    /// layers that do not all expose it, so the verifier says it here.
    verdict: Verdict,
}

/// The reason a [`PinnedCa`] refused a server, if it did.
type Verdict = Arc<parking_lot::Mutex<Option<String>>>;

impl PinnedCa {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(anchor) = intermediates.iter().find(|c| Digest::of(c) == self.ca) else {
            return Err(rustls::Error::General(format!(
                "its certificate chain does not include the CA the token names ({})",
                self.ca.short()
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let rest: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| Digest::of(c) != self.ca)
            .cloned()
            .collect();
        verifier.verify_server_cert(end_entity, &rest, server_name, ocsp_response, now)
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.check(end_entity, intermediates, server_name, ocsp_response, now);
        if let Err(e) = &verified {
            let reason = match e {
                rustls::Error::General(reason) => reason.clone(),
                other => other.to_string(),
            };
            *self.verdict.lock() = Some(reason);
        }
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, IsCa, Issuer, PublicKeyData as _};

    struct Ca {
        cert: rcgen::Certificate,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let cert = params.self_signed(&key).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&cert.pem(), key).unwrap();
        Ca { cert, issuer }
    }

    fn server_cert(ca: &Ca, name: &str) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    fn pinned(ca: &Ca) -> PinnedCa {
        PinnedCa {
            ca: Digest::of(ca.cert.der()),
            provider: crypto_provider(),
            verdict: Verdict::default(),
        }
    }

    fn verify(
        v: &PinnedCa,
        leaf: &CertificateDer<'_>,
        chain: &[CertificateDer<'_>],
        name: &str,
    ) -> bool {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(leaf, chain, &name, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn https_trusts_only_a_chain_through_the_tokens_ca() {
        let ours = ca();
        let other = ca();
        let v = pinned(&ours);
        let leaf = server_cert(&ours, "cloud.example");
        let ca_der = ours.cert.der().clone();
        assert!(verify(
            &v,
            &leaf,
            std::slice::from_ref(&ca_der),
            "cloud.example"
        ));
        // The chain must present the CA: the token names it, the agent has no other.
        assert!(!verify(&v, &leaf, &[], "cloud.example"));
        // The right CA, another host name.
        assert!(!verify(
            &v,
            &leaf,
            std::slice::from_ref(&ca_der),
            "other.example"
        ));
        // A server of another CA that presents the token's CA beside its own chain.
        let forged = server_cert(&other, "cloud.example");
        assert!(!verify(
            &v,
            &forged,
            &[other.cert.der().clone(), ca_der],
            "cloud.example"
        ));
    }

    #[test]
    fn urls_and_endpoints() {
        assert!(cloud_url("ftp://x").is_err());
        assert!(cloud_url("not a url").is_err());
        assert!(cloud_url("http://x/?a=b").is_err());
        let u = cloud_url("http://127.0.0.1:8080").unwrap();
        assert!(is_loopback(&u));
        assert_eq!(endpoint(&u).as_str(), "http://127.0.0.1:8080/api/v1/enroll");
        let u = cloud_url("https://edge.example/skerry/").unwrap();
        assert!(!is_loopback(&u));
        assert_eq!(
            endpoint(&u).as_str(),
            "https://edge.example/skerry/api/v1/enroll"
        );
    }

    #[test]
    fn refusals_map_to_exit_codes() {
        let base = cloud_url("http://127.0.0.1:1").unwrap();
        let body = r#"{"error":{"code":"invalid_csr","message":"bad","field":"csr"}}"#;
        let e = refusal(&base, StatusCode::BAD_REQUEST, body);
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("field csr"), "{e}");
        let e = refusal(&base, StatusCode::FORBIDDEN, body);
        assert!(matches!(e, EnrollError::TokenRefused));
        assert_eq!(e.exit_code(), 5);
        let e = refusal(&base, StatusCode::SERVICE_UNAVAILABLE, "down");
        assert!(e.is_retryable());
        assert_eq!(e.exit_code(), 1);
        let e = refusal(&base, StatusCode::CONFLICT, body);
        assert_eq!(e.exit_code(), 2);
        let e = refusal(&base, StatusCode::NOT_FOUND, "no route");
        assert_eq!(e.exit_code(), 4);
        let e = EnrollError::CaMismatch {
            expected: Digest::ZERO,
            got: Digest::ZERO,
        };
        assert_eq!(e.exit_code(), 3);
        let e = EnrollError::ServerNotTrusted {
            url: "u".into(),
            reason: "r".into(),
        };
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn a_csr_carries_the_name_and_the_key() {
        let key = KeyPair::generate().unwrap();
        let pem = csr_pem(&key, &Name::parse("gw-1").unwrap()).unwrap();
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        assert_eq!(csr.public_key.der_bytes(), key.public_key_raw());
        assert!(!pem.contains("PRIVATE"));
    }
}
