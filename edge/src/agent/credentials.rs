//! The credentials task: the node's certificate renewed over the link, and the identity
//! forgotten when the node is removed. It owns the identity from the start on.
//!
//! - **Renewal.** The cloud asks (`RenewCertificate`, when two thirds of the certificate's
//!   life have passed, or it outlives the cloud's lifetime in force); the task answers with
//!   a CSR for the key the node already has (`CertificateRequest`): the key never leaves
//!   the node and is never replaced, so a renewal changes one file and a crash at any
//!   point leaves a certificate for the key on disk. The certificate that comes back
//!   (`Certificate`) is checked (issued by the stored CA, for this node id and key), then
//!   written to `identity/node.crt` atomically and durably, and only then does the link
//!   reconnect with it. Apps are not touched: the reconciler never hears of it.
//! - **Removal.** Once the commit path has committed this node's `node.removed` (the
//!   reducer empties the desired state, so the scheduler stops and removes every app; named
//!   storage stays on disk), the task forgets the identity (`node.json` first, then the
//!   key, the certificate and the CA) and stops the link for good, saying so in the log.
//!   The agent then runs on with nothing to run; to use the machine again, enroll it with a
//!   new token (`skerry-edge run --cloud URL --token TOKEN`: the old journal is set aside).

use std::path::PathBuf;

use skerry_shared::frame::{self, DownFrame, UpFrame};
use tokio::sync::mpsc;

use super::io::send;
use crate::identity::Identity;
use crate::link::Link;

/// What the commit path hands the credentials task.
#[derive(Debug)]
pub(super) enum ToCredentials {
    /// A renewal frame from the cloud.
    Frame(DownFrame),
    /// This node's removal is committed to the journal.
    Removed,
}

/// The credentials task; see the module docs.
pub(super) struct CredentialsTask<'a> {
    pub identity: Identity,
    /// The agent's data directory (the identity is under it).
    pub data: PathBuf,
    pub link: &'a dyn Link,
    pub inbox: mpsc::UnboundedReceiver<ToCredentials>,
}

impl CredentialsTask<'_> {
    /// Runs until the commit path closes the inbox.
    pub async fn run(mut self) {
        let mut forgotten = false;
        while let Some(msg) = self.inbox.recv().await {
            match msg {
                ToCredentials::Removed if !forgotten => {
                    forgotten = true;
                    self.forget();
                }
                ToCredentials::Removed => {}
                ToCredentials::Frame(_) if forgotten => {}
                ToCredentials::Frame(DownFrame::RenewCertificate { reason }) => {
                    self.request(&reason).await;
                }
                ToCredentials::Frame(DownFrame::Certificate {
                    certificate,
                    expires,
                }) => self.store(certificate, expires),
                ToCredentials::Frame(DownFrame::CertificateRefused { reason }) => {
                    tracing::warn!(%reason, "the cloud did not renew this node's certificate; it keeps the one it has and is asked again at a later connection");
                }
                ToCredentials::Frame(other) => {
                    tracing::debug!(frame = ?std::mem::discriminant(&other), "not a renewal frame");
                }
            }
        }
    }

    /// The answer to `RenewCertificate`: a CSR for the node's key.
    async fn request(&self, reason: &str) {
        tracing::info!(%reason, "the cloud asks this node to renew its certificate");
        let csr = match crate::enroll::renewal_csr(self.identity.key_pem(), self.identity.node_id())
        {
            Ok((_, csr)) => csr,
            Err(e) => {
                tracing::error!(error = %e, "cannot make a certificate request for the node's key");
                return;
            }
        };
        match frame::encode_up(&UpFrame::CertificateRequest { csr }) {
            Ok(bytes) => send(self.link, bytes).await,
            Err(e) => tracing::error!(error = %e, "the certificate request does not encode"),
        }
    }

    /// A renewed certificate: checked, stored durably, then the link reconnects with it.
    fn store(&mut self, certificate: String, expires: skerry_shared::clock::Timestamp) {
        let node = self.identity.node_id();
        let checked =
            crate::enroll::renewal_csr(self.identity.key_pem(), node).and_then(|(key, _)| {
                crate::enroll::check_issued(self.identity.ca_pem(), &certificate, node, &key)
            });
        if let Err(e) = checked {
            tracing::error!(error = %e, "the renewed certificate from the cloud is refused; keeping the current one");
            return;
        }
        let renewed = match self.identity.with_certificate(certificate) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "the renewed certificate is not usable; keeping the current one");
                return;
            }
        };
        if let Err(e) = renewed.save_certificate(&self.data) {
            tracing::error!(error = %e, "cannot store the renewed certificate; keeping the current one");
            return;
        }
        tracing::info!(%expires, "renewed this node's certificate; reconnecting with it");
        if let Err(e) = self.link.renewed(&renewed) {
            tracing::error!(error = %e, "the link cannot take the renewed certificate; it is used from the next start");
        }
        self.identity = renewed;
    }

    /// The node was removed: forget the identity and stop the link.
    fn forget(&self) {
        let node = self.identity.node_id();
        self.link.forget();
        match Identity::forget(&self.data) {
            Ok(()) => {
                tracing::warn!(%node, "this node was removed from the cloud: its apps are stopped and removed (named storage stays on disk) and it has forgotten its identity (certificate, key and enrollment); it will not connect again. To use this machine again, enroll it with a new token")
            }
            Err(e) => {
                tracing::error!(%node, error = %e, "this node was removed from the cloud, but its identity could not be deleted; delete it by hand before enrolling again")
            }
        }
    }
}
