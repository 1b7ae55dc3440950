//! Images: made available as the component's `pull` policy says (`never`, `if-missing`,
//! `always` with the node's copy as a fallback).

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use skerry_shared::manifest::PullPolicy;

use super::super::RuntimeError;
use super::{DockerRuntime, error};

impl DockerRuntime {
    /// Makes `image` available as `policy` says.
    pub(super) async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
    ) -> Result<(), RuntimeError> {
        match policy {
            PullPolicy::Never => {
                if self.image_exists(image).await? {
                    Ok(())
                } else {
                    Err(RuntimeError::Unrunnable(format!(
                        "image {image} is not on this node (pull: never)"
                    )))
                }
            }
            PullPolicy::IfMissing => {
                if self.image_exists(image).await? {
                    return Ok(());
                }
                self.pull(image).await.map_err(|why| {
                    RuntimeError::Pull(format!(
                        "image {image} is not on this node and could not be pulled: {why}"
                    ))
                })
            }
            PullPolicy::Always => match self.pull(image).await {
                Ok(()) => Ok(()),
                Err(why) => {
                    if self.image_exists(image).await? {
                        tracing::warn!(%image, "pull failed, running the node's copy: {why}");
                        Ok(())
                    } else {
                        Err(RuntimeError::Pull(format!(
                            "image {image} could not be pulled and is not on this node: {why}"
                        )))
                    }
                }
            },
        }
    }

    pub(super) async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if error::not_found(&e) => Ok(false),
            Err(e) => Err(error::engine(format!("inspect image {image}"), &e)),
        }
    }

    /// Pulls `image`; the error is the engine's reason.
    pub(super) async fn pull(&self, image: &str) -> Result<(), String> {
        let (repository, tag) = split_reference(image);
        let mut options = CreateImageOptionsBuilder::new().from_image(repository);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        tracing::info!(%image, "pulling");
        let mut progress = Box::pin(self.docker.create_image(Some(options.build()), None, None));
        while let Some(step) = progress.next().await {
            step.map_err(|e| match error::status(&e) {
                Some((_, m)) => m.to_owned(),
                None => e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Splits an image reference into the repository and the tag for a pull: `busybox` →
/// (`busybox`, `latest`), `reg:5000/app:1` → (`reg:5000/app`, `1`). A reference by digest
/// is pulled as it is (without a tag the engine would pull every tag of the repository).
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], Some(&image[name_start + i + 1..])),
        None => (image, Some("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_for_pull() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(
            split_reference("reg.local:5000/team/app"),
            ("reg.local:5000/team/app", Some("latest"))
        );
        assert_eq!(
            split_reference("reg.local:5000/team/app:2"),
            ("reg.local:5000/team/app", Some("2"))
        );
        assert_eq!(
            split_reference("app@sha256:abcd"),
            ("app@sha256:abcd", None)
        );
    }
}
