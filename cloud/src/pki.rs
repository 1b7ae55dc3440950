//! The cloud's PKI: its CA, enrollment tokens and node certificates.
//!
//! At first start the cloud makes a CA key pair and a self-signed CA certificate with
//! rcgen and keeps them in the keys directory: `ca.crt` and `ca.key`, the key with mode
//! 0600 (the directory 0700). Later starts, and replicas given the same directory, load
//! them. A node's certificate is issued from its CSR's public key only: the subject and
//! names come from the cloud (the node id), never from the request, and it is valid for
//! the node certificate lifetime in force ([`DEFAULT_NODE_CERT_LIFETIME`], 90 days, unless
//! `[pki] node_certificate_lifetime` says otherwise); agents renew theirs over the link.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use skerry_shared::enroll::EnrollmentToken;
use skerry_shared::hash::Digest;
use skerry_shared::ids::{NodeId, TokenId};

/// What can go wrong with keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Cert { what: &'static str, reason: String },
    #[error("the certificate signing request is not valid: {0}")]
    BadCsr(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn cert(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |e| PkiError::Cert {
        what,
        reason: e.to_string(),
    }
}

/// How long a node certificate is valid by default.
pub const DEFAULT_NODE_CERT_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(90 * 24 * 3600);

/// How far back a certificate's `not_before` is set, for clocks a little behind.
const BACKDATE: std::time::Duration = std::time::Duration::from_secs(3600);

/// A node certificate just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertificate {
    pub pem: String,
    /// SHA-256 of its DER.
    pub digest: Digest,
    /// Its `not_after`.
    pub expires: skerry_shared::clock::Timestamp,
}

/// The CA.
pub struct Pki {
    ca_pem: String,
    ca_digest: Digest,
    issuer: Issuer<'static, KeyPair>,
    node_lifetime: std::time::Duration,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("Pki")
            .field("ca_digest", &self.ca_digest)
            .finish_non_exhaustive()
    }
}

/// Writes `bytes` to `path` with `mode`, atomically and durably (a temporary file synced,
/// a rename, then the directory synced, so that the new name survives a power loss).
pub(crate) fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let (_, parsed) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| PkiError::Cert {
            what: "CA certificate",
            reason: e.to_string(),
        })?;
    Ok(parsed.contents)
}

impl Pki {
    /// Loads the CA from `dir`, or creates it there at first start.
    pub fn load_or_create(dir: &Path) -> Result<Pki, PkiError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        if !key.exists() {
            let key_pair = KeyPair::generate().map_err(cert("CA key"))?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "Skerry cloud CA");
            dn.push(DnType::OrganizationName, "Skerry");
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::hours(1);
            params.not_after = now + time::Duration::days(3650);
            let ca = params
                .self_signed(&key_pair)
                .map_err(cert("CA certificate"))?;
            write_private(&key, key_pair.serialize_pem().as_bytes(), 0o600)?;
            write_private(&crt, ca.pem().as_bytes(), 0o644)?;
            tracing::info!(dir = %dir.display(), "created the cloud's CA");
        }
        let key_pem = fs::read_to_string(&key).map_err(io(&key))?;
        let mode = fs::metadata(&key).map_err(io(&key))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %key.display(), mode = format!("{mode:o}"), "the CA key is readable by others; setting mode 0600");
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).map_err(io(&key))?;
        }
        let ca_pem = fs::read_to_string(&crt).map_err(io(&crt))?;
        let key_pair = KeyPair::from_pem(&key_pem).map_err(cert("CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key_pair).map_err(cert("CA certificate"))?;
        let ca_digest = Digest::of(&pem_to_der(&ca_pem)?);
        Ok(Pki {
            ca_pem,
            ca_digest,
            issuer,
            node_lifetime: DEFAULT_NODE_CERT_LIFETIME,
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// SHA-256 of the CA certificate's DER: what tokens carry.
    pub fn ca_digest(&self) -> Digest {
        self.ca_digest
    }

    /// A fresh token (the caller records only its secret's hash).
    pub fn new_token(&self) -> EnrollmentToken {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        EnrollmentToken {
            id: TokenId::random(),
            secret,
            ca: self.ca_digest,
        }
    }

    /// Node certificates issued from now on are valid for `lifetime`.
    pub fn with_node_lifetime(mut self, lifetime: std::time::Duration) -> Pki {
        self.node_lifetime = lifetime;
        self
    }

    /// How long the node certificates issued now are valid.
    pub fn node_lifetime(&self) -> std::time::Duration {
        self.node_lifetime
    }

    /// Issues a client certificate for `node` to the key in `csr_pem`, after checking the
    /// request's signature. Returns the certificate (PEM) and the SHA-256 of its DER.
    pub fn sign_node(&self, csr_pem: &str, node: NodeId) -> Result<(String, Digest), PkiError> {
        self.issue_node(csr_pem, node).map(|c| (c.pem, c.digest))
    }

    /// [`Pki::sign_node`], with the certificate's expiry: valid from an hour ago (for
    /// clocks a little behind) until the node lifetime from now.
    pub fn issue_node(&self, csr_pem: &str, node: NodeId) -> Result<NodeCertificate, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let id = node.to_string();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, id.clone());
        dn.push(DnType::OrganizationName, "Skerry node");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::DnsName(
            id.clone().try_into().map_err(cert("node certificate"))?,
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        let lifetime =
            time::Duration::try_from(self.node_lifetime).map_err(|e| PkiError::Cert {
                what: "node certificate",
                reason: format!("lifetime: {e}"),
            })?;
        let backdate = time::Duration::try_from(BACKDATE).unwrap_or(time::Duration::ZERO);
        params.not_before = now - backdate;
        params.not_after = now + lifetime;
        let certificate = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(cert("node certificate"))?;
        // Whole seconds, as the certificate holds it.
        let expires =
            skerry_shared::clock::Timestamp(params.not_after.unix_timestamp().saturating_mul(1000));
        Ok(NodeCertificate {
            pem: certificate.pem(),
            digest: Digest::of(certificate.der()),
            expires,
        })
    }

    /// Issues a fresh server certificate, and its key, for the cloud's MQTT endpoint: one
    /// subject alternative name per entry of `names` (an IP address when it parses as one,
    /// else a DNS name), extended key usage server authentication, valid for 825 days.
    /// Returns the certificate and a new PKCS#8 private key, both PEM. The caller keeps the
    /// key in memory: it is made again at each start and never written to disk.
    pub fn issue_server_cert(&self, names: &[String]) -> Result<(String, String), PkiError> {
        let Some(first) = names.first() else {
            return Err(PkiError::Cert {
                what: "server certificate",
                reason: "no DNS name or IP address to issue it for".to_owned(),
            });
        };
        for name in names {
            if name.parse::<std::net::IpAddr>().is_err()
                && rustls::pki_types::DnsName::try_from(name.as_str()).is_err()
            {
                return Err(PkiError::Cert {
                    what: "server certificate",
                    reason: format!("\"{name}\" is neither a DNS name nor an IP address"),
                });
            }
        }
        let mut params =
            CertificateParams::new(names.to_vec()).map_err(cert("server certificate"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, first.clone());
        dn.push(DnType::OrganizationName, "Skerry cloud");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(825);
        let key_pair = KeyPair::generate().map_err(cert("server key"))?;
        let certificate = params
            .signed_by(&key_pair, &self.issuer)
            .map_err(cert("server certificate"))?;
        Ok((certificate.pem(), key_pair.serialize_pem()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_live_as_long_as_the_lifetime_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let life = |pki: &Pki| {
            let c = pki.issue_node(&csr, NodeId::random()).unwrap();
            let der = pem_to_der(&c.pem).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            assert_eq!(c.digest, Digest::of(&der));
            assert_eq!(c.expires.0 / 1000, cert.validity().not_after.timestamp());
            cert.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()
        };
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let default = life(&pki);
        assert!(
            (90 * 86400 - 5..=90 * 86400).contains(&default),
            "{default}"
        );
        let pki = pki.with_node_lifetime(std::time::Duration::from_secs(5));
        assert!((3..=5).contains(&life(&pki)));
    }

    #[test]
    fn creates_then_loads_the_same_ca_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path()).unwrap();
        let b = Pki::load_or_create(dir.path()).unwrap();
        assert_eq!(a.ca_digest(), b.ca_digest());
        let mode = fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn signs_a_real_csr_for_the_node_id_only() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "someone-else");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let node = NodeId::random();
        let (pem, _) = pki.sign_node(&csr, node).unwrap();
        let der = pem_to_der(&pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, node.to_string());
        assert!(!pem.is_empty());
        assert!(pki.sign_node("not a csr", node).is_err());
    }

    #[test]
    fn issues_a_server_certificate_for_names_and_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let names = [
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let (pem, key_pem) = pki.issue_server_cert(&names).unwrap();
        assert!(key_pem.contains("PRIVATE KEY"));
        assert!(KeyPair::from_pem(&key_pem).is_ok());
        let der = pem_to_der(&pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let found: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => (*d).to_owned(),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string(),
                    _ => std::net::IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string(),
                },
                other => other.to_string(),
            })
            .collect();
        assert_eq!(found, names);
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth && !eku.value.client_auth);
        let ca_der = pem_to_der(pki.ca_pem()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
            / 86_400;
        assert!((825..=826).contains(&days), "{days} days");
        // Fresh at each call: a new key every time.
        let (_, other_key) = pki.issue_server_cert(&names).unwrap();
        assert_ne!(key_pem, other_key);
        assert!(pki.issue_server_cert(&[]).is_err());
        assert!(
            pki.issue_server_cert(&["not a host name".to_owned()])
                .is_err()
        );
        assert!(pki.issue_server_cert(&["host:7883".to_owned()]).is_err());
    }
}
