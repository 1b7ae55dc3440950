//! The HTTP client of enrollment: TLS through ring, trusting a server only through the CA
//! the token names ([`PinnedCa`]; see "HTTPS" in the module docs of [`super`]).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use skerry_shared::hash::Digest;

use super::error::EnrollError;
use super::error::chain;
use crate::identity::crypto_provider;

/// How long a connection to the cloud may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the whole enrollment request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP client for enrollment: TLS through ring, trusting only the token's CA.
pub(super) fn http_client(ca: Digest, verdict: Verdict) -> Result<reqwest::Client, EnrollError> {
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

/// A request that got no answer: refused by the verifier (its verdict), or unreachable.
pub(super) fn send_error(base: &Url, e: &reqwest::Error, verdict: &Verdict) -> EnrollError {
    let url = base.to_string();
    match verdict.lock().take() {
        Some(reason) => EnrollError::ServerNotTrusted { url, reason },
        None => EnrollError::Unreachable {
            url,
            reason: chain(e),
        },
    }
}

/// Trusts a TLS server only when the chain it presents includes the CA whose DER's
/// SHA-256 the token names, and its certificate verifies against that CA for the name
/// the agent asked for.
#[derive(Debug)]
pub(super) struct PinnedCa {
    pub(super) ca: Digest,
    pub(super) provider: Arc<CryptoProvider>,
    /// Why the server was refused: the HTTP client's error wraps the TLS error in
    /// layers that do not all expose it, so the verifier says it here.
    pub(super) verdict: Verdict,
}

/// The reason a [`PinnedCa`] refused a server, if it did.
pub(super) type Verdict = Arc<parking_lot::Mutex<Option<String>>>;

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
