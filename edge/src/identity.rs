//! The node's identity on disk, under the agent's data directory:
//!
//! ```text
//! DATA/identity/            mode 0700
//!   node.key                the node's private key (PEM), mode 0600; it never leaves the node
//!   node.crt                the node's certificate (PEM), issued by the cloud's CA
//!   ca.crt                  the cloud's CA certificate (PEM): the only CA the agent trusts
//!   node.json               {node_id, name, env, mqtt, nats, cloud}
//! ```
//!
//! Every file is written atomically (a temporary file with its final mode, then a rename),
//! and `node.json` is written last: a node is enrolled when `node.json` exists. A crash in
//! the middle of [`Identity::save`] leaves no `node.json`, so the next run sees no identity.
//!
//! [`Identity::load`] checks that the three PEM files parse and that the certificate is for
//! the key, and tightens the key's mode to 0600 (with a warning) if it finds it wider.
//! [`Identity::tls_client_config`] gives the rustls configuration of every TLS connection
//! the agent makes to the cloud's link: the stored CA as the only root, the node's
//! certificate and key as the client's credentials, and ring as the crypto provider. Key
//! material never reaches a log: the [`Identity`]'s `Debug` leaves it out.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use serde::{Deserialize, Serialize};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};

/// The identity's directory under the data directory.
pub const DIR: &str = "identity";
/// The private key's file.
pub const KEY_FILE: &str = "node.key";
/// The node certificate's file.
pub const CERT_FILE: &str = "node.crt";
/// The CA certificate's file.
pub const CA_FILE: &str = "ca.crt";
/// The node's record: written last, so its presence marks a finished enrollment.
pub const NODE_FILE: &str = "node.json";

const KEY_MODE: u32 = 0o600;
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;

/// What can go wrong with the identity on disk.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file of the identity is missing while `node.json` exists.
    #[error(
        "{path} is missing: the node's identity is incomplete; restore it, or remove {dir} and enroll again with a new token",
        dir = .path.parent().map_or_else(String::new, |p| p.display().to_string())
    )]
    Missing { path: PathBuf },
    /// A file does not hold what it should.
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The certificate, key and CA do not make a TLS configuration.
    #[error("the node's TLS credentials are not usable: {0}")]
    Tls(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> IdentityError {
    IdentityError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// `node.json`: who the node is, and where its cloud is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The id the cloud assigned at enrollment; it never changes.
    pub node_id: NodeId,
    /// The name the node enrolled with (the cloud may rename it later).
    pub name: Name,
    /// The environment the enrollment token was issued for.
    pub env: Name,
    /// The MQTT endpoints the cloud advertised (`host:port`, TLS).
    pub mqtt: Vec<String>,
    /// The NATS URLs the cloud advertised, when it runs on NATS.
    pub nats: Vec<String>,
    /// The cloud's HTTP address, as given at enrollment.
    pub cloud: String,
}

/// The node's identity: its record, key, certificate and the cloud's CA.
pub struct Identity {
    record: NodeRecord,
    key_pem: String,
    certificate_pem: String,
    ca_pem: String,
    key: PrivateKeyDer<'static>,
    certificate: CertificateDer<'static>,
    ca: CertificateDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("Identity")
            .field("record", &self.record)
            .field("ca", &self.ca_digest())
            .finish_non_exhaustive()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            record: self.record.clone(),
            key_pem: self.key_pem.clone(),
            certificate_pem: self.certificate_pem.clone(),
            ca_pem: self.ca_pem.clone(),
            key: self.key.clone_key(),
            certificate: self.certificate.clone(),
            ca: self.ca.clone(),
        }
    }
}

/// The ring crypto provider: the one provider every TLS connection of the agent uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The only certificate in a PEM text.
fn one_cert(pem: &str, what: &Path) -> Result<CertificateDer<'static>, IdentityError> {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
    let first = certs
        .next()
        .ok_or_else(|| invalid(what, "holds no PEM certificate"))?
        .map_err(|e| invalid(what, format!("not a PEM certificate: {e}")))?;
    if certs.next().is_some() {
        return Err(invalid(what, "holds more than one certificate"));
    }
    Ok(first)
}

/// The first certificate in a PEM text, as DER (for checks of what the cloud sent).
pub(crate) fn pem_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())
}

impl Identity {
    /// Builds an identity from its parts, checking that each PEM parses and that the
    /// certificate is for the key.
    pub fn new(
        record: NodeRecord,
        key_pem: String,
        certificate_pem: String,
        ca_pem: String,
    ) -> Result<Identity, IdentityError> {
        // Errors name the files these parts are kept in.
        // The PEM parser's messages may quote lines of the file: say only what is wrong.
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|_| invalid(Path::new(KEY_FILE), "holds no readable PEM private key"))?;
        let certificate = one_cert(&certificate_pem, Path::new(CERT_FILE))?;
        let ca = one_cert(&ca_pem, Path::new(CA_FILE))?;
        let provider = crypto_provider();
        let signing = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| invalid(Path::new(KEY_FILE), format!("unusable key: {e}")))?;
        rustls::sign::CertifiedKey::new(vec![certificate.clone()], signing)
            .keys_match()
            .map_err(|e| {
                invalid(
                    Path::new(CERT_FILE),
                    format!("the certificate is not for the node's key: {e}"),
                )
            })?;
        Ok(Identity {
            record,
            key_pem,
            certificate_pem,
            ca_pem,
            key,
            certificate,
            ca,
        })
    }

    /// `DATA/identity`.
    pub fn dir(data: &Path) -> PathBuf {
        data.join(DIR)
    }

    /// Loads the identity under `data`; `None` when the node has not enrolled (no
    /// `node.json`). A key file readable by others is set to 0600, with a warning.
    pub fn load(data: &Path) -> Result<Option<Identity>, IdentityError> {
        let dir = Self::dir(data);
        let node = dir.join(NODE_FILE);
        let text = match fs::read_to_string(&node) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&node)(e)),
        };
        let record: NodeRecord =
            serde_json::from_str(&text).map_err(|e| invalid(&node, e.to_string()))?;
        tighten(&dir, DIR_MODE, "the identity directory")?;
        let key_path = dir.join(KEY_FILE);
        let read = |path: &Path| match fs::read_to_string(path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(IdentityError::Missing {
                path: path.to_owned(),
            }),
            Err(e) => Err(io(path)(e)),
        };
        let key_pem = read(&key_path)?;
        tighten(&key_path, KEY_MODE, "the node's private key")?;
        let cert_path = dir.join(CERT_FILE);
        let ca_path = dir.join(CA_FILE);
        let certificate_pem = read(&cert_path)?;
        let ca_pem = read(&ca_path)?;
        // Name the real paths in errors.
        Identity::new(record, key_pem, certificate_pem, ca_pem)
            .map(Some)
            .map_err(|e| match e {
                IdentityError::Invalid { path, reason } => IdentityError::Invalid {
                    path: dir.join(path),
                    reason,
                },
                other => other,
            })
    }

    /// Writes the identity under `data`: the directory with mode 0700, the key with 0600,
    /// each file atomically, `node.json` last.
    pub fn save(&self, data: &Path) -> Result<(), IdentityError> {
        let dir = Self::dir(data);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(DIR_MODE)).map_err(io(&dir))?;
        write_atomic(&dir, KEY_FILE, self.key_pem.as_bytes(), KEY_MODE)?;
        write_atomic(&dir, CERT_FILE, self.certificate_pem.as_bytes(), FILE_MODE)?;
        write_atomic(&dir, CA_FILE, self.ca_pem.as_bytes(), FILE_MODE)?;
        let json = serde_json::to_vec_pretty(&self.record)
            .map_err(|e| invalid(&dir.join(NODE_FILE), e.to_string()))?;
        write_atomic(&dir, NODE_FILE, &json, FILE_MODE)?;
        // The renames are durable once the directory is.
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        tracing::info!(dir = %dir.display(), node = %self.record.node_id, "saved the node's identity");
        Ok(())
    }

    /// The same identity with a renewed `certificate_pem` (checked to be for the node's
    /// key, as at [`Identity::new`]).
    pub fn with_certificate(&self, certificate_pem: String) -> Result<Identity, IdentityError> {
        Identity::new(
            self.record.clone(),
            self.key_pem.clone(),
            certificate_pem,
            self.ca_pem.clone(),
        )
    }

    /// Replaces `node.crt` under `data` with this identity's certificate, atomically and
    /// durably (the key and the record stay as they are): a crash leaves the old
    /// certificate or the new one, each for the same key.
    pub fn save_certificate(&self, data: &Path) -> Result<(), IdentityError> {
        let dir = Self::dir(data);
        write_atomic(&dir, CERT_FILE, self.certificate_pem.as_bytes(), FILE_MODE)?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))
    }

    /// Forgets the identity under `data`: `node.json` first (so that the node counts as
    /// not enrolled from then on, whatever happens next), then the key, the certificate
    /// and the CA, then the directory. Nothing there: nothing to do.
    pub fn forget(data: &Path) -> Result<(), IdentityError> {
        let dir = Self::dir(data);
        for name in [NODE_FILE, KEY_FILE, CERT_FILE, CA_FILE] {
            let path = dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            if name == NODE_FILE && dir.exists() {
                fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io(&dir))?;
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&dir)(e)),
        }
    }

    /// The node's private key, PEM (for a renewal's CSR; never logged).
    pub(crate) fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// When the node's certificate stops being valid (its `not_after`), in milliseconds
    /// since the epoch; `None` if it does not parse (it did when loaded).
    pub fn certificate_expires(&self) -> Option<skerry_shared::clock::Timestamp> {
        let (_, cert) = x509_parser::parse_x509_certificate(self.certificate.as_ref()).ok()?;
        Some(skerry_shared::clock::Timestamp(
            cert.validity().not_after.timestamp().saturating_mul(1000),
        ))
    }

    /// The node's record (`node.json`).
    pub fn record(&self) -> &NodeRecord {
        &self.record
    }

    /// The node's id.
    pub fn node_id(&self) -> NodeId {
        self.record.node_id
    }

    /// The name the node enrolled with.
    pub fn name(&self) -> &Name {
        &self.record.name
    }

    /// The environment the node enrolled into.
    pub fn env(&self) -> &Name {
        &self.record.env
    }

    /// The MQTT endpoints (`host:port`) the cloud advertised.
    pub fn mqtt(&self) -> &[String] {
        &self.record.mqtt
    }

    /// The NATS URLs the cloud advertised.
    pub fn nats(&self) -> &[String] {
        &self.record.nats
    }

    /// The cloud's HTTP address.
    pub fn cloud(&self) -> &str {
        &self.record.cloud
    }

    /// The node's certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// SHA-256 of the CA certificate's DER (what enrollment tokens carry).
    pub fn ca_digest(&self) -> Digest {
        Digest::of(&self.ca)
    }

    /// The TLS client configuration for the cloud's link: the stored CA is the only root,
    /// the node's certificate and key authenticate the client, ring is the provider.
    pub fn tls_client_config(&self) -> Result<Arc<ClientConfig>, IdentityError> {
        let tls = |e: rustls::Error| IdentityError::Tls(e.to_string());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(tls)?;
        let config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![self.certificate.clone()], self.key.clone_key())
            .map_err(tls)?;
        Ok(Arc::new(config))
    }
}

/// Sets `path`'s mode to `mode` when it is wider, with a warning.
fn tighten(path: &Path, mode: u32, what: &str) -> Result<(), IdentityError> {
    let found = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
    if found & !mode != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{found:o}"),
            "{what} is open to others; setting mode {mode:o}"
        );
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))?;
    }
    Ok(())
}

/// Writes `dir/name` atomically: a temporary file created with `mode`, synced, renamed.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    // A temporary file left by a crash may have another mode: start afresh, so the mode
    // below is the one the file is created with, before any byte is written.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    // The umask may have narrowed the mode; it never widens it. Make it exact.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    /// A CA, and a node certificate it issued for a fresh key: (key, cert, ca) PEMs.
    fn credentials(node: NodeId) -> (String, String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca.pem(), ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![node.to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, node.to_string());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (key.serialize_pem(), cert.pem(), ca.pem())
    }

    fn record(node: NodeId) -> NodeRecord {
        NodeRecord {
            node_id: node,
            name: Name::parse("gw-1").unwrap(),
            env: Name::parse("prod").unwrap(),
            mqtt: vec!["127.0.0.1:7883".into()],
            nats: vec![],
            cloud: "http://127.0.0.1:8080".into(),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_renewed_certificate_replaces_only_node_crt_and_forget_leaves_nothing() {
        let data = tempfile::tempdir().unwrap();
        let node = NodeId::random();
        let (key, cert, ca) = credentials(node);
        let id = Identity::new(record(node), key.clone(), cert.clone(), ca.clone()).unwrap();
        id.save(data.path()).unwrap();
        assert!(id.certificate_expires().is_some());
        // A certificate for another key is refused; one for the node's key is taken.
        let (_, other_cert, _) = credentials(node);
        assert!(id.with_certificate(other_cert).is_err());
        let dir = Identity::dir(data.path());
        let key_before = fs::read(dir.join(KEY_FILE)).unwrap();
        let renewed = id.with_certificate(cert.clone()).unwrap();
        renewed.save_certificate(data.path()).unwrap();
        assert_eq!(fs::read(dir.join(KEY_FILE)).unwrap(), key_before);
        assert_eq!(fs::read_to_string(dir.join(CERT_FILE)).unwrap(), cert);
        assert!(Identity::load(data.path()).unwrap().is_some());

        Identity::forget(data.path()).unwrap();
        assert!(!dir.exists());
        assert!(Identity::load(data.path()).unwrap().is_none());
        // Nothing there: nothing to do.
        Identity::forget(data.path()).unwrap();
        // A crash after node.json went: the node counts as not enrolled.
        id.save(data.path()).unwrap();
        fs::remove_file(dir.join(NODE_FILE)).unwrap();
        assert!(Identity::load(data.path()).unwrap().is_none());
    }

    #[test]
    fn saves_loads_and_keeps_the_key_private() {
        let data = tempfile::tempdir().unwrap();
        assert!(Identity::load(data.path()).unwrap().is_none());
        let node = NodeId::random();
        let (key, cert, ca) = credentials(node);
        let id = Identity::new(record(node), key.clone(), cert, ca).unwrap();
        id.save(data.path()).unwrap();
        let dir = Identity::dir(data.path());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "temporary files left: {names:?}"
        );

        let loaded = Identity::load(data.path()).unwrap().unwrap();
        assert_eq!(loaded.record(), id.record());
        assert_eq!(loaded.ca_digest(), id.ca_digest());
        loaded.tls_client_config().unwrap();
        // Debug shows no key material.
        let shown = format!("{loaded:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        let body: String = key.lines().nth(1).unwrap().to_owned();
        assert!(!shown.contains(&body));
    }

    #[test]
    fn a_key_open_to_others_is_made_private_on_load() {
        let data = tempfile::tempdir().unwrap();
        let node = NodeId::random();
        let (key, cert, ca) = credentials(node);
        Identity::new(record(node), key, cert, ca)
            .unwrap()
            .save(data.path())
            .unwrap();
        let key_path = Identity::dir(data.path()).join(KEY_FILE);
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
        Identity::load(data.path()).unwrap().unwrap();
        assert_eq!(mode(&key_path), 0o600);
    }

    #[test]
    fn a_certificate_for_another_key_is_refused() {
        let node = NodeId::random();
        let (_, cert, ca) = credentials(node);
        let (other_key, _, _) = credentials(node);
        let err = Identity::new(record(node), other_key, cert, ca).unwrap_err();
        assert!(err.to_string().contains("not for the node's key"), "{err}");
    }

    #[test]
    fn a_missing_or_damaged_file_is_an_error_not_a_fresh_start() {
        let data = tempfile::tempdir().unwrap();
        let node = NodeId::random();
        let (key, cert, ca) = credentials(node);
        Identity::new(record(node), key, cert, ca)
            .unwrap()
            .save(data.path())
            .unwrap();
        let dir = Identity::dir(data.path());
        fs::write(dir.join(CA_FILE), "garbage").unwrap();
        let err = Identity::load(data.path()).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        fs::remove_file(dir.join(CERT_FILE)).unwrap();
        let err = Identity::load(data.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Missing { .. }), "{err}");
    }
}
