//! Who is calling: the [`Caller`] extractor, the one place where a handler learns the
//! identity that its commands are recorded under and the environments it may see.
//!
//! On the routes that need a token, the auth layer ([`super::auth::check`]) has checked it
//! and left its [`Identity`] in the request's extensions: the caller is that token
//! ([`Actor::Token`], its id and role) with the token's scope. On the public routes
//! (`/healthz`, `/api/v1/enroll`) there is no token, and the caller is the peer's address
//! ([`Actor::Anonymous`]) with no scope of its own (enrollment's token is its credential).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use skerry_shared::event::{Actor, InstanceSpec};
use skerry_shared::ids::{Name, TokenId};

use super::auth::Identity;
use crate::projections::Node;

/// The environments a caller may see and change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(Option<Vec<Name>>);

impl Scope {
    /// Every environment.
    pub fn all() -> Scope {
        Scope(None)
    }

    /// These environments only (empty: every environment, as a token's scope reads).
    pub fn of(envs: &[Name]) -> Scope {
        Scope((!envs.is_empty()).then(|| envs.to_vec()))
    }

    /// The environments, or `None` for every one.
    pub fn envs(&self) -> Option<&[Name]> {
        self.0.as_deref()
    }

    pub fn is_all(&self) -> bool {
        self.0.is_none()
    }

    pub fn sees_env(&self, env: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|envs| envs.iter().any(|e| e.as_str() == env))
    }

    /// A node is seen when it is in one of the environments.
    pub fn sees_node(&self, node: &Node) -> bool {
        self.0
            .as_ref()
            .is_none_or(|envs| envs.iter().any(|e| node.envs.contains(e)))
    }

    pub fn sees_instance(&self, spec: &InstanceSpec) -> bool {
        self.sees_env(spec.env.as_str())
    }
}

/// The caller of a request: the [`Actor`] its commands are recorded under, and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    pub scope: Scope,
    /// The API token, on the routes that need one: a long-lived answer (a follow) ends once
    /// it is no longer live ([`super::auth::still_live`]).
    pub token: Option<TokenId>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = <ConnectInfo<SocketAddr> as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(Caller {
                actor: Actor::Token {
                    id: identity.id.to_string(),
                    role: identity.role.to_string(),
                },
                scope: Scope::of(&identity.envs),
                token: Some(identity.id),
            });
        }
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        Ok(Caller {
            actor: Actor::Anonymous {
                peer: peer.ip().to_string(),
            },
            scope: Scope::all(),
            token: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::extract::{ConnectInfo, FromRequestParts};
    use axum::http::{Request, StatusCode};
    use axum::response::IntoResponse;
    use skerry_shared::event::Actor;

    use super::Caller;

    #[tokio::test]
    async fn the_caller_is_the_peers_address() {
        let peer: SocketAddr = ([127, 0, 0, 1], 40_000).into();
        let (mut parts, ()) = Request::builder()
            .extension(ConnectInfo(peer))
            .body(())
            .map(Request::into_parts)
            .unwrap_or_else(|e| panic!("a request: {e}"));
        let caller = Caller::from_request_parts(&mut parts, &()).await;
        assert_eq!(
            caller.ok().map(|c| c.actor),
            Some(Actor::Anonymous {
                peer: "127.0.0.1".to_owned()
            })
        );
    }

    #[tokio::test]
    async fn the_caller_is_the_checked_token_with_its_scope() {
        let id = skerry_shared::ids::TokenId::random();
        let envs =
            vec![skerry_shared::ids::Name::parse("plant-a").unwrap_or_else(|e| panic!("{e}"))];
        let (mut parts, ()) = Request::builder()
            .extension(super::Identity {
                id,
                role: skerry_shared::access::Role::Operator,
                envs: envs.clone(),
            })
            .body(())
            .map(Request::into_parts)
            .unwrap_or_else(|e| panic!("a request: {e}"));
        let caller = Caller::from_request_parts(&mut parts, &())
            .await
            .unwrap_or_else(|_| panic!("a caller"));
        assert_eq!(
            caller.actor,
            Actor::Token {
                id: id.to_string(),
                role: "operator".to_owned()
            }
        );
        assert!(caller.scope.sees_env("plant-a"));
        assert!(!caller.scope.sees_env("plant-b"));
    }

    #[tokio::test]
    async fn without_a_peer_it_is_refused_as_connect_info_is() {
        let (mut parts, ()) = Request::new(()).into_parts();
        let caller = Caller::from_request_parts(&mut parts, &()).await;
        let (mut parts, ()) = Request::new(()).into_parts();
        let info = ConnectInfo::<SocketAddr>::from_request_parts(&mut parts, &()).await;
        match (caller, info) {
            (Err(a), Err(b)) => {
                let (a, b) = (a.into_response(), b.into_response());
                assert_eq!(a.status(), b.status());
                assert_eq!(a.status(), StatusCode::INTERNAL_SERVER_ERROR);
            }
            _ => panic!("both are refused"),
        }
    }
}
