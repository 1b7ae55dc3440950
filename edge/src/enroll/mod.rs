//! First-run enrollment: the node's key pair, its certificate signing request, and the
//! check of what the cloud answers against the token.
//!
//! [`enroll`] runs once, on a node with no identity:
//! 1. it parses the token (`skr1.<id>.<secret>.<ca-sha256>`);
//! 2. it makes a P-256 key pair, and a CSR whose subject names the node, and an X25519
//!    key pair for secrets (`crate::runtime::secrets`), whose public half goes with the
//!    request;
//! 3. it sends `POST {cloud}/api/v1/enroll` with the token, the CSR, the name and the
//!    firmware profile;
//! 4. it checks the answer: the CA certificate's SHA-256 is the token's, the node
//!    certificate is issued by that CA for client authentication, names the node id the
//!    cloud assigned, and carries the node's own public key;
//! 5. only then it saves the identity ([`crate::identity`]), then the secrets key
//!    (`identity/secrets.key`, mode 0600). The private keys never leave the node, and
//!    nothing is written when a check fails.
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
//!
//! # Layout
//! - `mod.rs`: [`enroll`] and [`request`], the exchange with the cloud, and its URL.
//! - `error.rs`: [`EnrollError`], its exit codes, and what a refusal from the cloud means.
//! - `key.rs`: the key pair's CSR, and the checks of the CA and the certificate the cloud
//!   sent.
//! - `tls.rs`: the HTTP client, trusting only the token's CA (`PinnedCa`).
//! - `late_key.rs`: [`secrets_key`], the key for secrets of a node enrolled without one,
//!   made at start.
//! - `tests.rs`: the unit tests.

mod error;
mod key;
pub(crate) use key::{check_issued, renewal_csr};
mod late_key;
pub use late_key::secrets_key;
#[cfg(test)]
mod tests;
mod tls;

use std::path::Path;

use rcgen::KeyPair;
use reqwest::{StatusCode, Url};
use skerry_shared::enroll::{EnrollRequest, EnrollResponse, EnrollmentToken};
use skerry_shared::ids::Name;
use skerry_shared::profile::FirmwareProfile;

use crate::identity::{Identity, NodeRecord};

pub use self::error::EnrollError;
use self::error::refusal;
use self::key::{check_ca, check_certificate, csr_pem};
use self::tls::{Verdict, http_client, send_error};

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
    // The node's key for secrets: its public half goes with the request, the private
    // half is saved beside the identity (mode 0600) once the identity is.
    let secrets_key = crate::runtime::secrets::NodeKey::generate();
    let identity =
        request_with_key(cloud, token, name, profile, Some(secrets_key.public())).await?;
    let data = data.to_owned();
    let identity = tokio::task::spawn_blocking(move || {
        identity.save(&data)?;
        secrets_key
            .save(&data)
            .map_err(|e| crate::identity::IdentityError::Io {
                path: crate::runtime::secrets::NodeKey::path(&data),
                source: e,
            })?;
        Ok::<_, crate::identity::IdentityError>(identity)
    })
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
    request_with_key(cloud, token, name, profile, None).await
}

/// [`request`], sending the node's public key for secrets when there is one.
pub async fn request_with_key(
    cloud: &str,
    token: &str,
    name: &Name,
    profile: &FirmwareProfile,
    secrets_key: Option<skerry_shared::secret::NodeSecretsKey>,
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
        secrets_key: secrets_key.map(|k| k.to_hex()),
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
