//! Errors of the sampler.

use std::fmt;

use ward_guard::GuardError;

/// Why a generation could not start or go on. Every variant names its cause.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SamplerError {
    /// The prompt text is malformed (a hole marker).
    Prompt {
        /// Byte offset of the marker in the prompt.
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// A request field is out of range.
    Request {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The fixed text of the prompt already violates an enforced rule.
    PromptViolates {
        /// The rule id.
        rule_id: String,
        /// The rule's message.
        message: String,
        /// Byte span in the prompt's fixed text (prefix up to the first hole).
        start: usize,
        /// End of the span (exclusive).
        end: usize,
        /// The violating text.
        snippet: String,
    },
    /// The guard refused the canvas or an operation (other than a violation of the prompt).
    Guard(String),
    /// The logits source failed (model error, wrong shape).
    Source(String),
    /// Tokenizer, vocabulary or special-token problem.
    Tokens(String),
    /// Remasking did not resolve a conflict between modules within the budget.
    Stuck {
        /// The hole that no token could fill.
        position: usize,
        /// Ids of the rules of the modules in conflict.
        rule_ids: Vec<String>,
        /// Remasks spent.
        remasks: usize,
    },
    /// The generation was cancelled.
    Cancelled,
    /// The final re-scan found a violation of an enforced rule: a bug in Ward.
    CertificateViolation(String),
}

impl SamplerError {
    pub(crate) fn prompt(offset: usize, message: String) -> Self {
        SamplerError::Prompt { offset, message }
    }

    pub(crate) fn request(field: &'static str, message: impl Into<String>) -> Self {
        SamplerError::Request {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn guard(context: &str, e: &GuardError) -> Self {
        SamplerError::Guard(format!("{context}: {e}"))
    }
}

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplerError::Prompt { offset, message } => {
                write!(f, "prompt, byte {offset}: {message}")
            }
            SamplerError::Request { field, message } => write!(f, "request field `{field}`: {message}"),
            SamplerError::PromptViolates {
                rule_id,
                message,
                start,
                end,
                snippet,
            } => write!(
                f,
                "the prompt already violates {rule_id} at bytes {start}..{end} ({snippet:?}), nothing generated: {}",
                message.trim()
            ),
            SamplerError::Guard(m) => write!(f, "guard: {m}"),
            SamplerError::Source(m) => write!(f, "logits source: {m}"),
            SamplerError::Tokens(m) => write!(f, "tokens: {m}"),
            SamplerError::Stuck {
                position,
                rule_ids,
                remasks,
            } => write!(
                f,
                "no token can fill position {position}: the modules of rules [{}] are in conflict there, and {remasks} remasks did not resolve it",
                rule_ids.join(", ")
            ),
            SamplerError::Cancelled => write!(f, "cancelled"),
            SamplerError::CertificateViolation(m) => write!(
                f,
                "BUG: the final re-scan found a violation of an enforced rule: {m}"
            ),
        }
    }
}

impl std::error::Error for SamplerError {}

/// Result with [`SamplerError`].
pub type Result<T, E = SamplerError> = std::result::Result<T, E>;
