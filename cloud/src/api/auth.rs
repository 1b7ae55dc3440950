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

use axum::http::Method;
use skerry_shared::access::Role;

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
