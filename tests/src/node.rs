//! [`TestNode`]: an enrollment client that does what an agent does at its first start, with
//! real keys and a real PKCS#10 CSR, and checks the answer the way an agent must.
//!
//! It makes a P-256 key pair and a CSR with rcgen, and posts `{token, csr, name, profile}`
//! to `POST /api/v1/enroll`. On 201 it checks, like the agent:
//! - the SHA-256 of the returned CA certificate (DER) is the hash the token carries, so the
//!   node trusts that CA and no other;
//! - the issued certificate's subject common name is the node id the cloud assigned, its
//!   public key is the node's own, and its signature verifies with the CA's public key.

use rcgen::PublicKeyData;
use serde_json::Value;
use skerry_shared::enroll::{EnrollRequest, EnrollResponse, EnrollmentToken};
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;
use skerry_shared::profile::{FirmwareProfile, builtin};
use x509_parser::pem::parse_x509_pem;

use crate::error::Error;
use crate::http::{Api, HttpResponse};
use crate::mqtt::ClientKey;

/// The firmware profile a [`TestNode`] reports unless told otherwise.
pub const DEFAULT_PROFILE: &str = "raspberry-pi-4";

/// A node about to enroll: its name, key pair, CSR and firmware profile.
#[derive(Debug)]
pub struct TestNode {
    name: String,
    key: ClientKey,
    profile: FirmwareProfile,
}

/// A checked enrollment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub response: EnrollResponse,
    /// The SHA-256 of the CA certificate's DER, as checked against the token.
    pub ca_sha256: Digest,
}

impl Enrolled {
    /// The node id the cloud assigned, as text.
    pub fn id(&self) -> String {
        self.response.node_id.to_string()
    }
}

impl TestNode {
    /// A node named `name` with the [`DEFAULT_PROFILE`].
    pub fn new(name: &str) -> Result<TestNode, Error> {
        let profile = builtin(DEFAULT_PROFILE).ok_or_else(|| {
            Error::unexpected(format!("no builtin firmware profile {DEFAULT_PROFILE}"))
        })?;
        Self::with_profile(name, profile)
    }

    /// A node named `name` with this profile.
    pub fn with_profile(name: &str, profile: FirmwareProfile) -> Result<TestNode, Error> {
        // What the node calls itself; the cloud decides the subject of the certificate.
        let key = ClientKey::generate(name)?;
        Ok(TestNode {
            name: name.to_owned(),
            key,
            profile,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CSR, PEM.
    pub fn csr_pem(&self) -> &str {
        self.key.csr_pem()
    }

    pub fn profile(&self) -> &FirmwareProfile {
        &self.profile
    }

    /// The enrollment request body, with this CSR.
    pub fn request_body(&self, token: &str, csr_pem: &str) -> Result<Value, Error> {
        let name = Name::parse(&self.name)
            .map_err(|e| Error::unexpected(format!("node name {}: {e}", self.name)))?;
        let request = EnrollRequest {
            token: token.to_owned(),
            csr: csr_pem.to_owned(),
            name,
            profile: self.profile.clone(),
            secrets_key: None,
        };
        serde_json::to_value(&request)
            .map_err(|e| Error::unexpected(format!("enrollment request to JSON: {e}")))
    }

    /// Posts the enrollment as it is and returns the raw answer, whatever its status.
    pub fn try_enroll(&self, api: &Api, token: &str) -> Result<HttpResponse, Error> {
        self.try_enroll_with_csr(api, token, self.key.csr_pem())
    }

    /// Posts an enrollment with another CSR (a garbage one, say).
    pub fn try_enroll_with_csr(
        &self,
        api: &Api,
        token: &str,
        csr_pem: &str,
    ) -> Result<HttpResponse, Error> {
        api.post_json("/api/v1/enroll", &self.request_body(token, csr_pem)?)
    }

    /// Enrolls: the answer must be 201 and pass the agent's checks (see the module docs).
    pub fn enroll(&self, api: &Api, token: &str) -> Result<Enrolled, Error> {
        let answer = self.try_enroll(api, token)?;
        let body = answer.expect_status(201)?;
        let response: EnrollResponse = serde_json::from_value(body.clone())
            .map_err(|e| Error::unexpected(format!("not an EnrollResponse ({e}): {body}")))?;
        let token: EnrollmentToken = token
            .parse()
            .map_err(|e| Error::unexpected(format!("the token does not parse: {e}")))?;
        let ca_sha256 = self.check(&token, &response)?;
        Ok(Enrolled {
            response,
            ca_sha256,
        })
    }

    /// The agent's checks of an enrollment answer; returns the CA certificate's hash.
    pub fn check(
        &self,
        token: &EnrollmentToken,
        response: &EnrollResponse,
    ) -> Result<Digest, Error> {
        if response.name.as_str() != self.name {
            return Err(Error::unexpected(format!(
                "enrolled as {}, asked for {}",
                response.name, self.name
            )));
        }
        let (_, ca_pem) = parse_x509_pem(response.ca.as_bytes())
            .map_err(|e| Error::unexpected(format!("the CA is not PEM: {e}")))?;
        let ca_sha256 = Digest::of(&ca_pem.contents);
        if ca_sha256 != token.ca {
            return Err(Error::unexpected(format!(
                "the CA certificate's SHA-256 is {}, the token says {}",
                ca_sha256.to_hex(),
                token.ca.to_hex()
            )));
        }
        let ca = ca_pem
            .parse_x509()
            .map_err(|e| Error::unexpected(format!("the CA certificate does not parse: {e}")))?;
        let (_, cert_pem) = parse_x509_pem(response.certificate.as_bytes())
            .map_err(|e| Error::unexpected(format!("the certificate is not PEM: {e}")))?;
        let cert = cert_pem
            .parse_x509()
            .map_err(|e| Error::unexpected(format!("the certificate does not parse: {e}")))?;
        let common_names: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .collect();
        let node_id = response.node_id.to_string();
        if common_names != [node_id.as_str()] {
            return Err(Error::unexpected(format!(
                "the certificate's subject CN is {common_names:?}, the node id is {node_id}"
            )));
        }
        if cert.public_key().raw != self.key.key_pair().subject_public_key_info().as_slice() {
            return Err(Error::unexpected(
                "the certificate does not carry the node's public key",
            ));
        }
        cert.verify_signature(Some(ca.public_key())).map_err(|e| {
            Error::unexpected(format!("the certificate is not signed by the CA: {e}"))
        })?;
        Ok(ca_sha256)
    }
}
