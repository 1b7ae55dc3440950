//! The endpoint's TLS: a server certificate issued by the cloud's CA at each start (its key
//! stays in memory), client certificates required and verified against that CA only, and
//! the node id read from the client certificate. The crypto provider is ring, named
//! explicitly rather than taken from a process-wide default.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use skerry_shared::ids::NodeId;

use super::MqttError;
use crate::pki::Pki;

fn tls_error(what: &'static str) -> impl FnOnce(String) -> MqttError {
    move |reason| MqttError::Tls { what, reason }
}

/// The server configuration: a fresh certificate for `names`, and client certificates
/// from the cloud's CA required.
pub(crate) fn server_config(pki: &Pki, names: &[String]) -> Result<Arc<ServerConfig>, MqttError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (cert_pem, key_pem) = pki.issue_server_cert(names)?;
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| tls_error("server certificate")(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| tls_error("server key")(e.to_string()))?;
    let ca = CertificateDer::from_pem_slice(pki.ca_pem().as_bytes())
        .map_err(|e| tls_error("CA certificate")(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| tls_error("CA certificate")(e.to_string()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls_error("client certificate verifier")(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("protocol versions")(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .map_err(|e| tls_error("server certificate")(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The node id, digest and validity of a verified client certificate (see [`node_id`]).
pub(crate) fn peer(
    peer: Option<&[CertificateDer<'static>]>,
) -> Result<crate::sync::PeerCertificate, String> {
    let node = node_id(peer)?;
    let Some(leaf) = peer.and_then(<[_]>::first) else {
        return Err("no client certificate".to_owned());
    };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let time = |t: x509_parser::time::ASN1Time| {
        skerry_shared::clock::Timestamp(t.timestamp().saturating_mul(1000))
    };
    Ok(crate::sync::PeerCertificate {
        node,
        digest: skerry_shared::hash::Digest::of(leaf.as_ref()),
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
    })
}

/// The node id a verified client certificate names: its subject common name, which must
/// parse as a node id and, when the certificate has DNS names, be one of them (the cloud's
/// CA issues node certificates with the id as both).
pub(crate) fn node_id(peer: Option<&[CertificateDer<'static>]>) -> Result<NodeId, String> {
    let Some(leaf) = peer.and_then(<[_]>::first) else {
        return Err("no client certificate".to_owned());
    };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or("the client certificate has no subject common name")?;
    let node: NodeId = cn
        .parse()
        .map_err(|e| format!("the client certificate's common name is not a node id: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("the client certificate's alternative names: {e}"))?;
    if let Some(san) = san {
        let id = node.to_string();
        let dns: Vec<&str> = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some(*dns),
                _ => None,
            })
            .collect();
        if !dns.is_empty() && !dns.contains(&id.as_str()) {
            return Err(format!(
                "the client certificate's DNS names {dns:?} do not include its common name {id}"
            ));
        }
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn node_cert(pki: &Pki, node: NodeId) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let (pem, _) = pki.sign_node(&csr, node).unwrap();
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn reads_the_node_id_from_a_node_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let node = NodeId::random();
        let cert = node_cert(&pki, node);
        assert_eq!(node_id(Some(&[cert])), Ok(node));
    }

    #[test]
    fn refuses_certificates_that_name_no_node() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        assert!(node_id(None).is_err());
        assert!(node_id(Some(&[])).is_err());
        // The endpoint's own server certificate: issued by the same CA, names no node.
        let (server_pem, _) = pki.issue_server_cert(&["localhost".to_owned()]).unwrap();
        let server = CertificateDer::from_pem_slice(server_pem.as_bytes()).unwrap();
        assert!(node_id(Some(&[server])).is_err());
        let ca = CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap();
        assert!(node_id(Some(&[ca])).is_err());
    }

    #[test]
    fn builds_a_server_config_for_names_and_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let names = [
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "::1".to_owned(),
        ];
        assert!(server_config(&pki, &names).is_ok());
        assert!(server_config(&pki, &[]).is_err());
        assert!(server_config(&pki, &["not a name".to_owned()]).is_err());
    }
}
