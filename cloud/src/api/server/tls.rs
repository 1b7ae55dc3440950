//! The API's TLS: whether the API serves https or plain http (the listen policy), and the
//! acceptor the accept loop hands each connection to.
//!
//! # The policy ([`plan`])
//! - A certificate of the operator's own in the keys directory ([`API_CERT`] and
//!   [`API_KEY`], the key mode 0600): https with it, on any address; clients that ask for
//!   `localhost` or a `--tls-name` (SNI) get one from the cloud's CA instead (below).
//! - Else, names given with `--tls-name` (`tls_names`): https with a certificate that the
//!   cloud's CA issues at each start for those names, and for `localhost`, `127.0.0.1`, `::1`
//!   and the listen address when it is a single one. Its key stays in memory.
//! - Else, a loopback listen address: plain http.
//! - Else (an address beyond loopback, `0.0.0.0` and `::` included), `--insecure-http`: plain
//!   http, said loudly at start; without it the cloud refuses to start
//!   ([`TlsError::NeedsTls`], exit 2).
//!
//! # The local node
//! The local node enrolls through the API, and an agent trusts an https cloud only through
//! the cloud's CA (the hash its token carries), with that CA in the chain the server sends.
//! So every chain the cloud issues is sent with the CA certificate after the leaf, and with a
//! certificate of one's own, a client that asks (SNI) for `localhost` or for a name given
//! with `--tls-name` gets the cloud-issued certificate instead ([`SniResolver`]): the local
//! node dials `https://localhost:PORT` ([`local_api_url`]), and remote agents dial a name
//! set aside for them (`--tls-name agents.example`) while browsers and the CLI see the
//! operator's certificate. A client that dials an IP address sends no name and gets the
//! operator's certificate.
//!
//! The crypto provider is ring, named explicitly, as for the MQTT endpoint. Only HTTP/1.1 is
//! offered (ALPN), since the server speaks HTTP/1 alone.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::pki::Pki;

/// The API's own certificate (PEM, the leaf first, then any intermediates), in the keys
/// directory.
pub const API_CERT: &str = "api.crt";
/// The private key of [`API_CERT`] (PEM), in the keys directory, mode 0600.
pub const API_KEY: &str = "api.key";

/// The names every certificate the cloud issues for the API also carries, so that the local
/// node and a client on the same host can reach it.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why the API's TLS could not be set up. Every variant but [`TlsError::Build`] is a
/// refusal of the configuration (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Beyond loopback without TLS and without `--insecure-http`.
    #[error(
        "the API would listen on {addr}, beyond loopback, without TLS: give --tls-name NAME (repeatable) for a certificate from the cloud's CA, or put a certificate and key of your own in the keys directory ({keys}/{API_CERT} and {keys}/{API_KEY}, mode 0600), or give --insecure-http to serve plain http anyway"
    )]
    NeedsTls { addr: SocketAddr, keys: String },
    /// One half of the own certificate pair.
    #[error(
        "{found} is in the keys directory but {missing} is not: the API's own certificate needs both"
    )]
    HalfPair { found: String, missing: String },
    /// The own key is readable by others.
    #[error("{path}: the API's private key has mode {mode:o}; make it 0600 (chmod 600 {path})")]
    KeyMode { path: String, mode: u32 },
    /// An own file that cannot be read or parsed.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// The configuration could not be built from valid parts.
    #[error("the API's TLS: {0}")]
    Build(String),
}

/// What the API serves, as [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Plain http on loopback.
    Plain,
    /// Plain http beyond loopback, because `--insecure-http` said so.
    Insecure,
    /// https with a certificate from the cloud's CA for these names (as given).
    Issued { names: Vec<String> },
    /// https with the operator's own certificate and key; one from the cloud's CA for
    /// clients that ask for `localhost` or one of `names`.
    Own {
        cert: PathBuf,
        key: PathBuf,
        names: Vec<String>,
    },
}

impl Plan {
    /// Whether the API speaks https.
    pub fn is_tls(&self) -> bool {
        matches!(self, Plan::Issued { .. } | Plan::Own { .. })
    }
}

/// Whether a listen address stays on this host. `0.0.0.0` and `::` do not.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Decides what the API on `listen` serves (see the module docs): the own certificate in
/// `keys`, else `tls_names`, else plain http on loopback or with `insecure_http`.
pub fn plan(
    listen: SocketAddr,
    keys: &Path,
    tls_names: &[String],
    insecure_http: bool,
) -> Result<Plan, TlsError> {
    let cert = keys.join(API_CERT);
    let key = keys.join(API_KEY);
    let show = |p: &Path| p.display().to_string();
    match (cert.exists(), key.exists()) {
        (true, true) => {
            check_key_mode(&key)?;
            return Ok(Plan::Own {
                cert,
                key,
                names: tls_names.to_vec(),
            });
        }
        (true, false) => {
            return Err(TlsError::HalfPair {
                found: show(&cert),
                missing: show(&key),
            });
        }
        (false, true) => {
            return Err(TlsError::HalfPair {
                found: show(&key),
                missing: show(&cert),
            });
        }
        (false, false) => {}
    }
    if !tls_names.is_empty() {
        return Ok(Plan::Issued {
            names: tls_names.to_vec(),
        });
    }
    if is_loopback(&listen) {
        return Ok(Plan::Plain);
    }
    if insecure_http {
        return Ok(Plan::Insecure);
    }
    Err(TlsError::NeedsTls {
        addr: listen,
        keys: show(keys),
    })
}

fn check_key_mode(key: &Path) -> Result<(), TlsError> {
    let meta = fs::metadata(key).map_err(|e| TlsError::File {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyMode {
            path: key.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// The names a certificate the cloud issues for the API carries: `names`, the loopback
/// names, and the listen address's IP when it is a single address; each once, in order.
pub fn issued_names(names: &[String], listen: SocketAddr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let ip = (!listen.ip().is_unspecified()).then(|| listen.ip().to_string());
    for name in names
        .iter()
        .cloned()
        .chain(LOOPBACK_NAMES.iter().map(|n| (*n).to_owned()))
        .chain(ip)
    {
        if !out.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            out.push(name);
        }
    }
    out
}

/// The URL the local node enrolls through: the listen address (a loopback address in place
/// of `0.0.0.0` or `::`), and with TLS `localhost` for a loopback or unspecified address, so
/// that it asks for the name that always gets a certificate from the cloud's CA.
pub fn local_api_url(listen: SocketAddr, tls: bool) -> String {
    let port = listen.port();
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let host = SocketAddr::new(ip, port);
    if !tls {
        return format!("http://{host}");
    }
    if ip.is_loopback() {
        format!("https://localhost:{port}")
    } else {
        format!("https://{host}")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate from the cloud's CA for `names`, chained to the CA certificate.
fn issued_key(
    pki: &Pki,
    names: &[String],
    provider: &Arc<CryptoProvider>,
) -> Result<CertifiedKey, TlsError> {
    let build = |what: &str| {
        let what = what.to_owned();
        move |e: String| TlsError::Build(format!("{what}: {e}"))
    };
    let (cert_pem, key_pem) = pki
        .issue_server_cert(names)
        .map_err(|e| build("the API's certificate")(e.to_string()))?;
    let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| build("the API's certificate")(e.to_string()))?;
    let ca = CertificateDer::from_pem_slice(pki.ca_pem().as_bytes())
        .map_err(|e| build("the CA certificate")(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| build("the API's key")(e.to_string()))?;
    CertifiedKey::from_der(vec![leaf, ca], key, provider)
        .map_err(|e| build("the API's certificate")(e.to_string()))
}

/// The operator's own certificate chain and key, read and checked against each other.
fn own_key(
    cert: &Path,
    key: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<CertifiedKey, TlsError> {
    let file = |path: &Path, reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let cert_pem = fs::read(cert).map_err(|e| file(cert, e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file(cert, format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(file(cert, "holds no PEM certificate".to_owned()));
    }
    let key_pem = fs::read(key).map_err(|e| file(key, e.to_string()))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file(key, format!("not a PEM private key ({e})")))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        file(
            key,
            format!("does not fit the certificate in {} ({e})", cert.display()),
        )
    })
}

/// With a certificate of one's own: the cloud-issued one for clients that ask for one of
/// its names (`localhost`, the `--tls-name`s), the own one for every other.
#[derive(Debug)]
struct SniResolver {
    own: Arc<CertifiedKey>,
    issued: Arc<CertifiedKey>,
    /// The DNS names of `issued` (an IP address is never sent as SNI).
    issued_names: Vec<String>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            Some(name)
                if self
                    .issued_names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name)) =>
            {
                Some(self.issued.clone())
            }
            _ => Some(self.own.clone()),
        }
    }
}

/// A resolver with one certificate.
#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl ResolvesServerCert for Single {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The acceptor for `plan` (none for plain http), with certificates from `pki` where the
/// plan asks for them; `listen` is the address bound.
pub fn acceptor(
    plan: &Plan,
    pki: &Pki,
    listen: SocketAddr,
) -> Result<Option<TlsAcceptor>, TlsError> {
    let provider = provider();
    let resolver: Arc<dyn ResolvesServerCert> = match plan {
        Plan::Plain | Plan::Insecure => return Ok(None),
        Plan::Issued { names } => Arc::new(Single(Arc::new(issued_key(
            pki,
            &issued_names(names, listen),
            &provider,
        )?))),
        Plan::Own { cert, key, names } => {
            let names = issued_names(names, listen);
            Arc::new(SniResolver {
                own: Arc::new(own_key(cert, key, &provider)?),
                issued: Arc::new(issued_key(pki, &names, &provider)?),
                issued_names: names
                    .into_iter()
                    .filter(|n| n.parse::<IpAddr>().is_err())
                    .collect(),
            })
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Build(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Says at start what the API serves: https and its certificate in the log; plain http
/// beyond loopback loudly, on standard error and in the log.
pub fn announce(plan: &Plan, listen: SocketAddr) {
    match plan {
        Plan::Plain => {}
        Plan::Insecure => {
            eprintln!(
                "WARNING: --insecure-http: the API serves plain http on {listen}, beyond loopback; API tokens and enrollment tokens cross the network in the clear"
            );
            tracing::warn!(
                addr = %listen,
                "--insecure-http: the API serves plain http beyond loopback; API tokens and enrollment tokens cross the network in the clear"
            );
        }
        Plan::Issued { names } => tracing::info!(
            addr = %listen,
            names = ?issued_names(names, listen),
            "the API serves https with a certificate from the cloud's CA"
        ),
        Plan::Own { cert, names, .. } => tracing::info!(
            addr = %listen,
            cert = %cert.display(),
            ca_names = ?issued_names(names, listen),
            "the API serves https with its own certificate; clients that ask for one of ca_names get one from the cloud's CA"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn beyond_loopback_needs_tls_or_insecure_http() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path();
        let names = ["cloud.example".to_owned()];
        assert_eq!(
            plan(addr("127.0.0.1:8080"), keys, &[], false).unwrap(),
            Plan::Plain
        );
        assert_eq!(
            plan(addr("[::1]:8080"), keys, &[], false).unwrap(),
            Plan::Plain
        );
        for beyond in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080"] {
            let e = plan(addr(beyond), keys, &[], false).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, TlsError::NeedsTls { .. }), "{beyond}: {e}");
            for flag in ["--tls-name", "--insecure-http", API_CERT, API_KEY] {
                assert!(text.contains(flag), "{text}");
            }
            assert_eq!(plan(addr(beyond), keys, &[], true).unwrap(), Plan::Insecure);
            assert!(plan(addr(beyond), keys, &names, false).unwrap().is_tls());
        }
        // TLS may be asked for on loopback too.
        assert!(
            plan(addr("127.0.0.1:8080"), keys, &names, false)
                .unwrap()
                .is_tls()
        );
    }

    #[test]
    fn an_own_certificate_needs_both_files_and_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path();
        let listen = addr("0.0.0.0:8443");
        fs::write(keys.join(API_CERT), "x").unwrap();
        assert!(matches!(
            plan(listen, keys, &[], true).unwrap_err(),
            TlsError::HalfPair { .. }
        ));
        fs::write(keys.join(API_KEY), "x").unwrap();
        fs::set_permissions(keys.join(API_KEY), fs::Permissions::from_mode(0o644)).unwrap();
        let e = plan(listen, keys, &[], false).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(keys.join(API_KEY), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            plan(listen, keys, &[], false).unwrap(),
            Plan::Own { .. }
        ));
        let Plan::Own { names, .. } = plan(listen, keys, &["a.example".to_owned()], false).unwrap()
        else {
            panic!("an own certificate is used with --tls-name too");
        };
        assert_eq!(names, ["a.example"]);
    }

    #[test]
    fn issued_certificates_also_name_loopback_and_the_listen_address() {
        let names = issued_names(
            &["cloud.example".to_owned(), "LOCALHOST".to_owned()],
            addr("10.0.0.5:8443"),
        );
        assert_eq!(
            names,
            ["cloud.example", "LOCALHOST", "127.0.0.1", "::1", "10.0.0.5"]
        );
        assert_eq!(
            issued_names(&[], addr("0.0.0.0:1")),
            ["localhost", "127.0.0.1", "::1"]
        );
    }

    #[test]
    fn the_local_node_dials_loopback_and_localhost_with_tls() {
        assert_eq!(
            local_api_url(addr("0.0.0.0:8080"), false),
            "http://127.0.0.1:8080"
        );
        assert_eq!(local_api_url(addr("[::]:8080"), false), "http://[::1]:8080");
        assert_eq!(
            local_api_url(addr("0.0.0.0:8443"), true),
            "https://localhost:8443"
        );
        assert_eq!(
            local_api_url(addr("127.0.0.1:8443"), true),
            "https://localhost:8443"
        );
        assert_eq!(
            local_api_url(addr("10.0.0.5:8443"), true),
            "https://10.0.0.5:8443"
        );
    }

    #[test]
    fn acceptors_are_built_from_issued_and_own_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(&dir.path().join("keys")).unwrap();
        let listen = addr("0.0.0.0:8443");
        assert!(acceptor(&Plan::Plain, &pki, listen).unwrap().is_none());
        let issued = Plan::Issued {
            names: vec!["cloud.example".to_owned()],
        };
        assert!(acceptor(&issued, &pki, listen).unwrap().is_some());
        let bad = Plan::Issued {
            names: vec!["not a name".to_owned()],
        };
        assert!(matches!(
            acceptor(&bad, &pki, listen),
            Err(TlsError::Build(_))
        ));
        // An own certificate, from another CA.
        let other = Pki::load_or_create(&dir.path().join("other")).unwrap();
        let (cert, key) = other
            .issue_server_cert(&["cloud.example".to_owned()])
            .unwrap();
        let (cert_path, key_path) = (dir.path().join(API_CERT), dir.path().join(API_KEY));
        fs::write(&cert_path, &cert).unwrap();
        fs::write(&key_path, &key).unwrap();
        let own = Plan::Own {
            cert: cert_path.clone(),
            key: key_path.clone(),
            names: vec!["agents.example".to_owned()],
        };
        assert!(acceptor(&own, &pki, listen).unwrap().is_some());
        // A key that is not the certificate's.
        let (_, wrong) = other
            .issue_server_cert(&["cloud.example".to_owned()])
            .unwrap();
        fs::write(&key_path, &wrong).unwrap();
        let Err(e) = acceptor(&own, &pki, listen) else {
            panic!("a key that is not the certificate's was taken");
        };
        assert!(e.to_string().contains("does not fit"), "{e}");
        fs::write(&cert_path, "not pem").unwrap();
        assert!(matches!(
            acceptor(&own, &pki, listen),
            Err(TlsError::File { .. })
        ));
    }
}
