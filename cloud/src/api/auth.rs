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
/// `operator`'s; the rest (environments, node names and membership, removal, API tokens,
/// secrets) is `admin`'s.
pub const ROUTES: &[Route] = &[
    row(Method::GET, "/api/v1/environments", Role::Viewer),
    row(Method::POST, "/api/v1/environments", Role::Admin),
    row(Method::GET, "/api/v1/environments/{env}", Role::Viewer),
    row(Method::DELETE, "/api/v1/environments/{env}", Role::Admin),
    row(Method::POST, "/api/v1/enrollment-tokens", Role::Operator),
    row(Method::GET, "/api/v1/nodes", Role::Viewer),
    row(Method::GET, "/api/v1/nodes/{node}", Role::Viewer),
    row(Method::PATCH, "/api/v1/nodes/{node}", Role::Admin),
    row(Method::DELETE, "/api/v1/nodes/{node}", Role::Admin),
    row(Method::POST, "/api/v1/nodes/{node}/labels", Role::Operator),
    row(Method::POST, "/api/v1/nodes/{node}/environments", Role::Admin),
    row(
        Method::DELETE,
        "/api/v1/nodes/{node}/environments/{env}",
        Role::Admin,
    ),
    row(Method::GET, "/api/v1/nodes/{node}/logs", Role::Viewer),
    row(Method::GET, "/api/v1/apps", Role::Viewer),
    row(Method::POST, "/api/v1/apps", Role::Operator),
    row(Method::GET, "/api/v1/apps/{app}", Role::Viewer),
    row(Method::GET, "/api/v1/apps/{app}/versions/{version}", Role::Viewer),
    row(Method::GET, "/api/v1/instances", Role::Viewer),
    row(Method::POST, "/api/v1/instances", Role::Operator),
    row(Method::GET, "/api/v1/instances/{name}", Role::Viewer),
    row(Method::DELETE, "/api/v1/instances/{name}", Role::Operator),
    row(Method::POST, "/api/v1/instances/{name}/upgrade", Role::Operator),
    row(Method::POST, "/api/v1/instances/{name}/rollback", Role::Operator),
    row(Method::GET, "/api/v1/events", Role::Viewer),
    row(Method::GET, "/api/v1/events/verify", Role::Viewer),
    row(Method::GET, "/api/v1/logs", Role::Viewer),
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
