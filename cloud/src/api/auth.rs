//! Who may call what: the table of routes and the least role each needs ([`ROUTES`]), and
//! the auth layer that checks every request of [`super::protected`] against it.
//!
//! A request's `Authorization: Bearer ska1...` token is looked up in the API-token read
//! model ([`crate::projections::ApiTokens`]): its secret's hash must match, and it must be
//! neither revoked nor expired. No token, a malformed, unknown, revoked or expired one: 401
//! `unauthenticated`. A token whose role is below the route's: 403 `forbidden`. A route
//! that is not in the table needs `admin`, so a route added without a row is closed, not
//! open; a test checks that every routed path has its row.
//!
//! The layer leaves the token's [`Identity`] in the request's extensions, where the
//! [`super::Caller`] extractor finds it: handlers learn who calls (the actor their events
//! are recorded under) and which environments the token may see.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use skerry_shared::access::{ApiToken, Role};
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, TokenId};

use super::error::ApiError;
use super::state::AppState;
use crate::projections::ApiTokens;

/// One row of the table: a route (as axum matches it) and the least role it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub role: Role,
}

const fn row(method: Method, path: &'static str, role: Role) -> Route {
    Route { method, path, role }
}

/// Every protected route, with the least role it needs. Reads are `viewer`'s; what an
/// operator does day to day (publish, deploy, undeploy, node labels, enrollment tokens) is
/// `operator`'s; the rest (environments, node names, addresses and membership, removal, API
/// tokens, secrets) is `admin`'s.
pub const ROUTES: &[Route] = &[
    row(Method::GET, "/api/v1/environments", Role::Viewer),
    row(Method::POST, "/api/v1/environments", Role::Admin),
    row(Method::GET, "/api/v1/environments/{env}", Role::Viewer),
    row(Method::PATCH, "/api/v1/environments/{env}", Role::Admin),
    row(Method::DELETE, "/api/v1/environments/{env}", Role::Admin),
    row(
        Method::POST,
        "/api/v1/environments/{env}/rename",
        Role::Admin,
    ),
    row(Method::POST, "/api/v1/enrollment-tokens", Role::Operator),
    row(Method::GET, "/api/v1/nodes", Role::Viewer),
    row(Method::GET, "/api/v1/nodes/{node}", Role::Viewer),
    row(Method::PATCH, "/api/v1/nodes/{node}", Role::Admin),
    row(Method::DELETE, "/api/v1/nodes/{node}", Role::Admin),
    row(Method::POST, "/api/v1/nodes/{node}/labels", Role::Operator),
    row(
        Method::POST,
        "/api/v1/nodes/{node}/environments",
        Role::Admin,
    ),
    row(
        Method::DELETE,
        "/api/v1/nodes/{node}/environments/{env}",
        Role::Admin,
    ),
    row(Method::GET, "/api/v1/nodes/{node}/logs", Role::Viewer),
    row(Method::GET, "/api/v1/apps", Role::Viewer),
    row(Method::POST, "/api/v1/apps", Role::Operator),
    row(Method::GET, "/api/v1/apps/{app}", Role::Viewer),
    row(
        Method::GET,
        "/api/v1/apps/{app}/versions/{version}",
        Role::Viewer,
    ),
    row(Method::GET, "/api/v1/instances", Role::Viewer),
    row(Method::POST, "/api/v1/instances", Role::Operator),
    row(Method::GET, "/api/v1/instances/{name}", Role::Viewer),
    row(Method::DELETE, "/api/v1/instances/{name}", Role::Operator),
    row(
        Method::POST,
        "/api/v1/instances/{name}/upgrade",
        Role::Operator,
    ),
    row(
        Method::POST,
        "/api/v1/instances/{name}/rollback",
        Role::Operator,
    ),
    row(
        Method::GET,
        "/api/v1/instances/{name}/rollout",
        Role::Viewer,
    ),
    row(
        Method::POST,
        "/api/v1/instances/{name}/rollout",
        Role::Operator,
    ),
    row(
        Method::POST,
        "/api/v1/instances/{name}/stop",
        Role::Operator,
    ),
    row(
        Method::POST,
        "/api/v1/instances/{name}/start",
        Role::Operator,
    ),
    row(
        Method::POST,
        "/api/v1/instances/{name}/restart",
        Role::Operator,
    ),
    row(Method::GET, "/api/v1/events", Role::Viewer),
    row(Method::GET, "/api/v1/events/verify", Role::Viewer),
    row(Method::GET, "/api/v1/logs", Role::Viewer),
    row(Method::GET, "/api/v1/instances/{name}/jobs", Role::Viewer),
    row(Method::GET, "/api/v1/tokens", Role::Admin),
    row(Method::POST, "/api/v1/tokens", Role::Admin),
    row(Method::DELETE, "/api/v1/tokens/{id}", Role::Admin),
    row(Method::GET, "/api/v1/secrets", Role::Viewer),
    row(Method::PUT, "/api/v1/secrets/{name}", Role::Admin),
    row(Method::DELETE, "/api/v1/secrets/{name}", Role::Admin),
];

/// The least role `method path` needs; a route without a row needs `admin`.
pub fn role_for(method: &Method, path: &str) -> Role {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map_or(Role::Admin, |r| r.role)
}

/// Who a checked token is: what the [`super::Caller`] extractor reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: TokenId,
    pub role: Role,
    /// The environments the token is limited to; empty: every environment.
    pub envs: Vec<Name>,
}

fn unauthenticated(message: impl Into<String>) -> Response {
    let mut answer =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", None, message).into_response();
    answer.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"skerry\""),
    );
    answer
}

/// Why a request's credentials do not let it in: a 401 answer's message, or `Ok` with the
/// token's identity.
pub fn authenticate(
    tokens: &ApiTokens,
    authorization: Option<&HeaderValue>,
    now: Timestamp,
) -> Result<Identity, &'static str> {
    let Some(value) = authorization else {
        return Err("this call needs an API token: send it as Authorization: Bearer TOKEN");
    };
    let text = value
        .to_str()
        .map_err(|_| "the Authorization header is not text")?;
    let (scheme, credential) = text
        .split_once(' ')
        .ok_or("the Authorization header must read Bearer TOKEN")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the Authorization header must read Bearer TOKEN");
    }
    let token: ApiToken = credential
        .trim()
        .parse()
        .map_err(|_| "the API token is malformed")?;
    let state = tokens
        .get(&token.id)
        .filter(|t| t.secret_hash == token.secret_hash())
        .ok_or("the API token is not known to this cloud")?;
    if state.revoked.is_some() {
        return Err("the API token was revoked");
    }
    if !state.is_live(now) {
        return Err("the API token has expired");
    }
    Ok(Identity {
        id: state.id,
        role: state.role,
        envs: state.envs.clone(),
    })
}

/// Whether `token` is still accepted (`None`: a caller without a token, on a public
/// route): what a follow checks as it goes, so that a revoked or expired token's stream
/// ends at its next event, page or keep-alive.
pub fn still_live(state: &AppState, token: Option<TokenId>) -> bool {
    let Some(id) = token else { return true };
    let now = Timestamp::now();
    state
        .engine
        .read()
        .api_tokens
        .get(&id)
        .is_some_and(|t| t.is_live(now))
}

/// The auth layer of [`super::protected`]: checks the request's token against the table and
/// leaves its [`Identity`] in the request for the handler.
pub async fn check(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        // The layer sits on matched routes only (route_layer): a request without a matched
        // path did not come through the router.
        return ApiError::internal("the request has no matched route").into_response();
    };
    let identity = {
        let projections = state.engine.read();
        authenticate(
            &projections.api_tokens,
            request.headers().get(header::AUTHORIZATION),
            Timestamp::now(),
        )
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(why) => return unauthenticated(why),
    };
    let needed = role_for(request.method(), &path);
    if !identity.role.includes(needed) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            None,
            format!(
                "{} {path} needs the {needed} role; this token's role is {}",
                request.method(),
                identity.role
            ),
        )
        .into_response();
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route(PATH, METHOD(..)...)` of `protected()` in `mod.rs`, read from its
    /// source: axum does not list a router's routes, and a route without a row would need
    /// `admin` silently.
    fn routed() -> Vec<(String, String)> {
        let source = include_str!("mod.rs");
        let protected = source
            .split("pub fn protected()")
            .nth(1)
            .unwrap_or_else(|| panic!("mod.rs has protected()"));
        let mut routes = Vec::new();
        for call in protected.split(".route(").skip(1) {
            let mut quoted = call.split('"');
            let path = quoted
                .nth(1)
                .unwrap_or_else(|| panic!("a path in {call}"))
                .to_owned();
            // The handlers of this route: up to the next call of the chain at its indent.
            let handlers = call.split("\n        .").next().unwrap_or(call);
            for (name, method) in [
                ("get(", "GET"),
                ("post(", "POST"),
                ("put(", "PUT"),
                ("patch(", "PATCH"),
                ("delete(", "DELETE"),
            ] {
                if handlers.contains(name) {
                    routes.push((method.to_owned(), path.clone()));
                }
            }
        }
        routes
    }

    #[test]
    fn every_protected_route_has_its_row_and_every_row_its_route() {
        let routed = routed();
        assert!(routed.len() >= 20, "{routed:?}");
        for (method, path) in &routed {
            assert!(
                ROUTES
                    .iter()
                    .any(|r| r.method.as_str() == method && r.path == path),
                "{method} {path} is routed but has no row in ROUTES"
            );
        }
        for r in ROUTES {
            assert!(
                routed
                    .iter()
                    .any(|(m, p)| m == r.method.as_str() && p == r.path),
                "{} {} has a row but is not routed",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn a_route_without_a_row_needs_admin() {
        assert_eq!(role_for(&Method::GET, "/api/v1/not-a-route"), Role::Admin);
        assert_eq!(role_for(&Method::GET, "/api/v1/nodes"), Role::Viewer);
        assert_eq!(
            role_for(&Method::DELETE, "/api/v1/nodes/{node}"),
            Role::Admin
        );
    }

    fn tokens_with(role: Role, revoked: bool, expires: Option<Timestamp>) -> (ApiTokens, ApiToken) {
        let token = ApiToken {
            id: TokenId::random(),
            secret: [9; 32],
        };
        let mut tokens = ApiTokens::default();
        tokens.insert_for_test(crate::projections::ApiTokenState {
            id: token.id,
            role,
            envs: Vec::new(),
            secret_hash: token.secret_hash(),
            expires,
            description: String::new(),
            created: Timestamp(0),
            revoked: revoked.then_some(Timestamp(1)),
        });
        (tokens, token)
    }

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_token_is_checked_for_its_secret_its_revocation_and_its_end() {
        let now = Timestamp(1_000);
        let (tokens, t) = tokens_with(Role::Operator, false, None);
        let good = header(&format!("Bearer {t}"));
        assert_eq!(
            authenticate(&tokens, Some(&good), now).map(|i| i.role),
            Ok(Role::Operator)
        );
        assert!(authenticate(&tokens, Some(&header(&format!("bearer {t}"))), now).is_ok());
        assert!(authenticate(&tokens, None, now).is_err());
        assert!(authenticate(&tokens, Some(&header(&format!("Basic {t}"))), now).is_err());
        let wrong = ApiToken {
            id: t.id,
            secret: [8; 32],
        };
        assert_eq!(
            authenticate(&tokens, Some(&header(&format!("Bearer {wrong}"))), now),
            Err("the API token is not known to this cloud")
        );
        let (revoked, t) = tokens_with(Role::Admin, true, None);
        assert_eq!(
            authenticate(&revoked, Some(&header(&format!("Bearer {t}"))), now),
            Err("the API token was revoked")
        );
        let (expired, t) = tokens_with(Role::Admin, false, Some(now));
        assert_eq!(
            authenticate(&expired, Some(&header(&format!("Bearer {t}"))), now),
            Err("the API token has expired")
        );
    }
}
