//! [`DockerEngine`]: the agent's one client of the local Docker engine.
//!
//! The agent makes it once and hands clones to whatever talks to the engine: the
//! [`DockerRuntime`](super::DockerRuntime) (built on it by
//! [`DockerRuntime::connect_on`](super::DockerRuntime::connect_on)) and the log collector,
//! which gets only an [`OutputReader`] from it. Clones share one connection pool and one
//! API version, so the version that connecting the runtime negotiates is the one every
//! clone speaks.

use bollard::Docker;

use super::error;
use super::output::OutputReader;
use crate::runtime::RuntimeError;

/// A handle on the local Docker engine (cheap to clone: clones are the same client).
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
}

impl DockerEngine {
    /// The local engine: `DOCKER_HOST=unix://...` or `/var/run/docker.sock`. Nothing is
    /// asked of the engine yet (it need not be running): [`DockerEngine::negotiate`] is the
    /// first request.
    pub fn local() -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| error::engine("connect to the Docker engine", &e))?;
        Ok(Self { docker })
    }

    /// Asks the engine for its version and speaks the older of its API and the client's,
    /// so an older engine (20.10 speaks API 1.41) is answered in its own version. Fails
    /// when the engine does not answer.
    pub async fn negotiate(&self) -> Result<(), RuntimeError> {
        let docker = self
            .docker
            .clone()
            .negotiate_version()
            .await
            .map_err(|e| error::engine("negotiate the Docker API version", &e))?;
        tracing::debug!(api = %docker.client_version(), "connected to the Docker engine");
        Ok(())
    }

    /// Reads containers' own output (for the log collector).
    pub fn output(&self) -> OutputReader {
        OutputReader::new(self.docker.clone())
    }

    /// The bollard client.
    pub(super) fn client(&self) -> &Docker {
        &self.docker
    }
}
