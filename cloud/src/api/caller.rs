//! Who is calling: the [`Caller`] extractor, the one place where a handler learns the
//! identity that its commands are recorded under.
//!
//! API tokens arrive in a later release; until then the API listens on loopback and the
//! caller is the peer's address ([`Actor::Anonymous`]). When they arrive, the auth layer
//! (`auth.rs`, on the router of the routes that are not public: see [`super::router_with`])
//! checks the token and leaves the caller's identity in the request's extensions, and this
//! extractor reads it there: the handlers do not change.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use skerry_shared::event::Actor;

/// The caller of a request, as the [`Actor`] its commands are recorded under.
///
/// It is taken from the connection's peer address (axum's [`ConnectInfo`]); a request without
/// one is refused as [`ConnectInfo`] refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = <ConnectInfo<SocketAddr> as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        Ok(Caller(Actor::Anonymous {
            peer: peer.ip().to_string(),
        }))
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
            caller.ok(),
            Some(Caller(Actor::Anonymous {
                peer: "127.0.0.1".to_owned()
            }))
        );
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
