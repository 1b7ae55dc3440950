//! Tests of enrollment's parts: the pinned CA, URLs, refusals, the CSR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData as _,
};
use reqwest::StatusCode;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;

use super::error::refusal;
use super::key::csr_pem;
use super::tls::{PinnedCa, Verdict};
use super::{EnrollError, cloud_url, endpoint, is_loopback};
use crate::identity::crypto_provider;

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

#[test]
fn a_renewal_csr_is_for_the_nodes_own_key_and_its_answer_is_checked() {
    use rcgen::{CertificateSigningRequestParams, ExtendedKeyUsagePurpose};
    use skerry_shared::ids::NodeId;
    let ca = ca();
    let node = NodeId::random();
    let key = KeyPair::generate().unwrap();
    let (again, csr) = super::renewal_csr(&key.serialize_pem(), node).unwrap();
    assert_eq!(again.public_key_raw(), key.public_key_raw());
    let parsed = CertificateSigningRequestParams::from_pem(&csr).unwrap();
    assert_eq!(parsed.public_key.der_bytes(), key.public_key_raw());
    // What the cloud signs for the CSR's key and the node id passes the checks.
    let issue = |id: NodeId, public: &CertificateSigningRequestParams| {
        let mut params = CertificateParams::new(vec![id.to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, id.to_string());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params
            .signed_by(&public.public_key, &ca.issuer)
            .unwrap()
            .pem()
    };
    let ca_pem = ca.cert.pem();
    let good = issue(node, &parsed);
    super::check_issued(&ca_pem, &good, node, &again).unwrap();
    // Another node's id, another key or another CA: refused.
    assert!(super::check_issued(&ca_pem, &issue(NodeId::random(), &parsed), node, &again).is_err());
    let stranger = KeyPair::generate().unwrap();
    assert!(super::check_issued(&ca_pem, &good, node, &stranger).is_err());
    assert!(super::check_issued(&self::ca().cert.pem(), &good, node, &again).is_err());
    assert!(super::renewal_csr("not a key", node).is_err());
}
