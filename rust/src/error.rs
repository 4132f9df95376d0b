//! The one error type of the core, with a variant per kind of problem so the bindings can map
//! each kind to a specific Python exception.

use thiserror::Error;

/// Errors raised by the core for invalid input.
///
/// Every message names the argument, what was expected and what arrived.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// An array has the wrong number of dimensions or a size that disagrees with another input.
    #[error("invalid shape for {argument}: expected {expected}, got {got}")]
    Shape {
        argument: &'static str,
        expected: String,
        got: String,
    },

    /// A scalar or array value is out of range (k, area, aspect, non-finite saliency, boxes).
    #[error("invalid value for {argument}: expected {expected}, got {got}")]
    Value {
        argument: &'static str,
        expected: String,
        got: String,
    },

    /// An array has an element type the operation does not support.
    #[error("invalid dtype for {argument}: expected {expected}, got {got}")]
    Dtype {
        argument: &'static str,
        expected: String,
        got: String,
    },
}

impl Error {
    pub(crate) fn shape(
        argument: &'static str,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Self::Shape {
            argument,
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub(crate) fn value(
        argument: &'static str,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Self::Value {
            argument,
            expected: expected.into(),
            got: got.into(),
        }
    }

    /// Builds a dtype error; the core itself is generic, so only the bindings raise it.
    pub fn dtype(
        argument: &'static str,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Self::Dtype {
            argument,
            expected: expected.into(),
            got: got.into(),
        }
    }
}

/// Result alias used throughout the core.
pub type Result<T> = std::result::Result<T, Error>;
