//! What a command handler returns: the events a command causes, each with the nodes it
//! concerns ([`Pending`]), or why the command is refused ([`Refusal`]).

use skerry_shared::event::EventPayload;
use skerry_shared::ids::NodeId;

/// How a refusal maps to the API: 400, 409, 404 or 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    Invalid,
    Conflict,
    NotFound,
    Forbidden,
}

/// A refused command: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

impl Refusal {
    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RefusalKind::Invalid, code, field, message)
    }
    pub fn conflict(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RefusalKind::Conflict, code, field, message)
    }
    pub fn not_found(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RefusalKind::NotFound, code, field, message)
    }
    pub fn forbidden(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RefusalKind::Forbidden, code, field, message)
    }
    fn new(
        kind: RefusalKind,
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let field = field.into();
        Refusal {
            kind,
            code,
            field: (!field.is_empty()).then_some(field),
            message: message.into(),
        }
    }
}

/// An event a command causes, and the nodes it concerns (each gets a `node_seq`).
#[derive(Debug, Clone)]
pub struct Pending {
    pub payload: EventPayload,
    pub audience: Vec<NodeId>,
}

impl Pending {
    pub fn cloud_only(payload: EventPayload) -> Self {
        Pending {
            payload,
            audience: Vec::new(),
        }
    }
}
