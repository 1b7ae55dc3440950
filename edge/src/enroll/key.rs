//! The node's side of the certificate: the CSR for its key pair, and the checks of what
//! the cloud sent back (the CA is the token's, the certificate is for this node and key).

use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::UnixTime;
use rustls::server::WebPkiClientVerifier;
use skerry_shared::enroll::EnrollResponse;
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;

use super::error::EnrollError;
use crate::identity::{self, crypto_provider};

/// A PKCS#10 request for `key`; its subject's common name is the node's name (the cloud
/// replaces it with the node id).
pub(super) fn csr_pem(key: &KeyPair, name: &Name) -> Result<String, EnrollError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name.as_str());
    params.distinguished_name = dn;
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(|e| EnrollError::Key(e.to_string()))
}

/// A renewal's request: for the node's own key (`key_pem`; it is never replaced), with
/// its id as the subject's common name. Also returns the key pair, to check the answer.
pub(crate) fn renewal_csr(
    key_pem: &str,
    node: skerry_shared::ids::NodeId,
) -> Result<(KeyPair, String), EnrollError> {
    // rcgen's messages never quote the key.
    let key = KeyPair::from_pem(key_pem).map_err(|e| EnrollError::Key(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node.to_string());
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| EnrollError::Key(e.to_string()))?;
    Ok((key, csr))
}

/// The CA the cloud sent is the one the token names.
pub(super) fn check_ca(response: &EnrollResponse, expected: Digest) -> Result<(), EnrollError> {
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
pub(super) fn check_certificate(
    response: &EnrollResponse,
    key: &KeyPair,
) -> Result<(), EnrollError> {
    check_issued(&response.ca, &response.certificate, response.node_id, key)
}

/// `certificate_pem` is issued by the CA of `ca_pem` for client authentication, names
/// `node` (common name, and every DNS name), and carries `key`'s public key: the checks of
/// an enrollment's certificate and of a renewed one.
pub(crate) fn check_issued(
    ca_pem: &str,
    certificate_pem: &str,
    node_id: skerry_shared::ids::NodeId,
    key: &KeyPair,
) -> Result<(), EnrollError> {
    let bad = EnrollError::BadCertificate;
    let ca = identity::pem_certificate(ca_pem).map_err(bad)?;
    let cert = identity::pem_certificate(certificate_pem)
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
    let node = node_id.to_string();
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
