//! `/api/v1/enrollment-tokens` and `/api/v1/enroll`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use skerry_shared::clock::Timestamp;
use skerry_shared::enroll::{EnrollRequest, EnrollResponse, EnrollmentToken};
use skerry_shared::event::{Actor, EventPayload};
use skerry_shared::ids::NodeId;
use skerry_shared::secret::NodeSecretsKey;

use super::caller::Caller;
use super::dto::{CreateEnrollmentToken, EnrollmentTokenDto};
use super::error::{ApiError, Body};
use super::state::AppState;
use crate::command::{Command, Enrollment};

const DEFAULT_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

pub async fn issue_token(
    State(s): State<AppState>,
    Caller { actor, scope, .. }: Caller,
    Body(req): Body<CreateEnrollmentToken>,
) -> Result<(StatusCode, Json<EnrollmentTokenDto>), ApiError> {
    super::state::seen_env(&scope, "env", &req.env)?;
    let ttl = match &req.ttl {
        None => DEFAULT_TTL,
        Some(t) => humantime::parse_duration(t).map_err(|e| {
            ApiError::bad_request(
                "invalid_ttl",
                "ttl",
                format!("\"{t}\" is not a duration like 24h or 30m: {e}"),
            )
        })?,
    };
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            "ttl",
            "an enrollment token lives more than 0 s and at most 365 days",
        ));
    }
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let token = s.pki.new_token();
    let expires = Timestamp::now().plus_millis(ttl_ms);
    s.engine
        .submit(
            actor,
            Command::IssueEnrollmentToken {
                env: req.env.clone(),
                id: token.id,
                secret_hash: token.secret_hash(),
                expires,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentTokenDto {
            id: token.id.to_string(),
            env: req.env,
            expires: expires.to_rfc3339(),
            token: token.to_string(),
        }),
    ))
}

fn refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "invalid_token",
        Some("token"),
        "the enrollment token is unknown, used or expired",
    )
}

/// `POST /api/v1/enroll`, a public route: the token is the credential and the node's
/// identity is made here, so the caller is not asked for (the peer's address is recorded as
/// the node's).
pub async fn enroll(
    State(s): State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    Body(req): Body<EnrollRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    let token: EnrollmentToken = req.token.parse().map_err(|_| refused())?;
    // A token that names another CA was not made here (or was altered): refuse it before
    // it is spent, so the agent's CA check never has to burn a good token.
    if token.ca != s.pki.ca_digest() {
        tracing::warn!(peer = %peer.0, token = %token.id, "enrollment refused: the token names another CA");
        return Err(refused());
    }
    // A cheap check before any signing work; the command handler checks again,
    // authoritatively, in the single writer.
    {
        let p = s.engine.read();
        let ok = p.tokens.get(&token.id).is_some_and(|t| {
            t.secret_hash == token.secret_hash()
                && t.used_by.is_none()
                && t.expires > Timestamp::now()
        });
        if !ok {
            tracing::warn!(peer = %peer.0, token = %token.id, "enrollment refused");
            return Err(refused());
        }
    }
    let node = NodeId::random();
    let (certificate, digest) = s
        .pki
        .sign_node(&req.csr, node)
        .map_err(|e| ApiError::bad_request("invalid_csr", "csr", e.to_string()))?;
    let events = s
        .engine
        .submit(
            Actor::Node(node),
            Command::Enroll(Box::new(Enrollment {
                token,
                node,
                name: req.name.clone(),
                profile: req.profile,
                address: peer.0.ip().to_string(),
                certificate: digest,
                secrets_key: req
                    .secrets_key
                    .as_deref()
                    .map(|k| {
                        NodeSecretsKey::from_hex(k).ok_or_else(|| {
                            ApiError::bad_request(
                                "invalid_secrets_key",
                                "secrets_key",
                                "not 64 hex digits (an X25519 public key)",
                            )
                        })
                    })
                    .transpose()?,
            })),
        )
        .await?;
    let env = events
        .iter()
        .find_map(|e| match &e.payload {
            EventPayload::NodeEnrolled { env, .. } => Some(env.clone()),
            _ => None,
        })
        .ok_or_else(|| ApiError::internal("enrollment recorded no node"))?;
    tracing::info!(node = %node, name = %req.name, env = %env, "node enrolled");
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            node_id: node,
            name: req.name,
            env,
            certificate,
            ca: s.pki.ca_pem().to_owned(),
            mqtt: s.mqtt.clone(),
            nats: s.nats.clone(),
        }),
    ))
}
