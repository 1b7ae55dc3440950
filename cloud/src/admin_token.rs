//! The admin token: the first API token, made by `skerry serve` itself.
//!
//! At a start where the log holds no live admin token (no token of role `admin` for every
//! environment that is neither revoked nor expired), the cloud makes one. That is its first
//! start, and also a start after every such token was revoked: whoever can start the cloud
//! on its data directory holds every right already, so this is not a way in. The token is
//! written to `<data>/admin.token` (mode 0600) before its event is appended, so a crash in
//! between loses nothing: the next start finds the file, sees that the log does not know the
//! token, and records that same token. Then it is printed once on standard output,
//! `admin token: <token>`, never through the log. Later starts print where the file is.

use std::path::{Path, PathBuf};

use skerry_shared::access::{ApiToken, Role};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::Actor;

use crate::command::Command;
use crate::command::token::NewApiToken;
use crate::engine::{Engine, EngineError};
use crate::pki::PkiError;

/// The admin token's file in the data directory.
pub fn path(data: &Path) -> PathBuf {
    data.join("admin.token")
}

/// Why the admin token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error(transparent)]
    Write(#[from] PkiError),
    #[error("cannot record the admin token: {0}")]
    Record(#[from] EngineError),
}

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// A new admin token was made (or one written before a crash was recorded): the token.
    Made(String),
    /// A live admin token exists; its file is at this path.
    Exists(PathBuf),
    /// A live admin token exists, but the file at this path is missing or holds another
    /// (a revoked one, say).
    Elsewhere(PathBuf),
}

/// Makes sure a live admin token exists (see the module docs), and prints what a person
/// starting the cloud needs to know on standard output.
pub async fn ensure(engine: &Engine, data: &Path) -> Result<AdminToken, AdminTokenError> {
    let file = path(data);
    let outcome = make_if_missing(engine, &file).await?;
    match &outcome {
        AdminToken::Made(token) => {
            println!("admin token: {token}");
            println!(
                "(written to {}; send it as SKERRY_TOKEN or --token)",
                file.display()
            );
        }
        AdminToken::Exists(at) => println!("admin token: in {}", at.display()),
        AdminToken::Elsewhere(at) => println!(
            "admin token: a live admin token exists, but {} does not hold it (it was replaced or removed); use the one you keep, or revoke every admin token and restart to make a new one",
            at.display()
        ),
    }
    Ok(outcome)
}

async fn make_if_missing(engine: &Engine, file: &Path) -> Result<AdminToken, AdminTokenError> {
    let now = Timestamp::now();
    let is_live_admin = |t: &crate::projections::ApiTokenState| {
        t.role == Role::Admin && t.envs.is_empty() && t.is_live(now)
    };
    let (live, file_is_live, known_in_file) = {
        let p = engine.read();
        let live = p.api_tokens.iter().any(is_live_admin);
        let in_file = read(file);
        let file_is_live = in_file.as_ref().is_some_and(|t| {
            p.api_tokens
                .get(&t.id)
                .is_some_and(|s| s.secret_hash == t.secret_hash() && is_live_admin(s))
        });
        let unknown = in_file.filter(|t| p.api_tokens.get(&t.id).is_none());
        (live, file_is_live, unknown)
    };
    if live {
        return Ok(if file_is_live {
            AdminToken::Exists(file.to_owned())
        } else {
            AdminToken::Elsewhere(file.to_owned())
        });
    }
    // A token in the file that the log does not know was written just before a crash:
    // record that one, so that the file stays right.
    let token = match known_in_file {
        Some(t) => t,
        None => {
            let t = crate::api::tokens::random_token();
            let text = format!("{t}\n");
            let path = file.to_owned();
            tokio::task::spawn_blocking(move || {
                crate::pki::write_private(&path, text.as_bytes(), 0o600)
            })
            .await
            .map_err(|e| PkiError::Io {
                path: file.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })??;
            t
        }
    };
    let new = NewApiToken {
        id: token.id,
        secret_hash: token.secret_hash(),
        role: Role::Admin,
        envs: Vec::new(),
        expires: None,
        description: "the admin token, made by skerry serve".to_owned(),
        within: None,
    };
    engine
        .submit(Actor::Cloud, Command::CreateApiToken(Box::new(new)))
        .await?;
    Ok(AdminToken::Made(token.to_string()))
}

/// The token in `file`, if it holds one.
fn read(file: &Path) -> Option<ApiToken> {
    let text = std::fs::read_to_string(file).ok()?;
    text.trim().parse().ok()
}
