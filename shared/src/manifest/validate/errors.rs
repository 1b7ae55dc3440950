//! A refused manifest's reasons: one [`FieldError`] per broken rule, and the list the
//! checks push them to.

use std::fmt;

/// One refused field: where (`components[2].depends_on`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldError {
    /// The field's path; empty when the error concerns the document as a whole.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// A refused manifest: every reason found, in document order. Displays as the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.first())]
pub struct ManifestError {
    pub errors: Vec<FieldError>,
}

static NO_ERROR: FieldError = FieldError {
    field: String::new(),
    message: String::new(),
};

impl ManifestError {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// The first error (an empty one if `errors` was emptied by hand).
    pub fn first(&self) -> &FieldError {
        self.errors.first().unwrap_or(&NO_ERROR)
    }
}

impl From<FieldError> for ManifestError {
    fn from(e: FieldError) -> Self {
        Self { errors: vec![e] }
    }
}

/// The errors found so far, in document order.
#[derive(Default)]
pub(super) struct Errors(pub(super) Vec<FieldError>);

impl Errors {
    pub(super) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
}
