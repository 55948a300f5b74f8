//! Errors of the bindings: one type with a kind and the location fields JavaScript can read.
//!
//! Every error crosses into JavaScript as an `Error` whose `name` is `"WardError"`, whose
//! `message` names the cause, and which carries `kind` plus, where known, `rule`, `file`,
//! `line`, `column` and `span` (`[start, end]` byte offsets). See `README.md`.

use std::fmt;

use ward_guard::GuardError;
use ward_policy::CompileError;

/// What went wrong, as a short stable string JavaScript can switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A policy pack does not load or compile (YAML, regex, hierarchy, limits).
    Policy,
    /// A precompiled policy artefact is malformed, of another version, or fails its checksum.
    Artefact,
    /// The tokenizer JSON does not parse or does not fit the model.
    Tokenizer,
    /// An argument from JavaScript has the wrong shape or value.
    Argument,
    /// The fixed text of a canvas (the prompt) already violates an enforced rule.
    PromptViolates,
    /// The guard refused a token (it would complete or force a violation).
    Forbidden,
    /// No token is allowed at a hole by every module at once (the sampler remasks).
    Conflict,
    /// Any other guard error (position out of range, canvas too long, ...).
    Guard,
    /// The model files do not load (config field, safetensors tensor, shapes) or a forward
    /// pass failed.
    Model,
    /// The WebGPU backend was asked for and is not available.
    Backend,
    /// A generation request field is wrong (name, type or range).
    Request,
    /// The prompt text is malformed (a hole marker; `span` gives the byte offset).
    Prompt,
    /// The generation was cancelled.
    Cancelled,
    /// The certificate's re-scan found a violation of an enforced rule (a bug in Ward).
    Certificate,
}

impl Kind {
    /// The JavaScript spelling (`error.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Policy => "policy",
            Kind::Artefact => "artefact",
            Kind::Tokenizer => "tokenizer",
            Kind::Argument => "argument",
            Kind::PromptViolates => "prompt_violates",
            Kind::Forbidden => "forbidden",
            Kind::Conflict => "conflict",
            Kind::Guard => "guard",
            Kind::Model => "model",
            Kind::Backend => "backend",
            Kind::Request => "request",
            Kind::Prompt => "prompt",
            Kind::Cancelled => "cancelled",
            Kind::Certificate => "certificate",
        }
    }
}

/// An error of the bindings, with the location details that JavaScript receives as fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebError {
    /// The kind.
    pub kind: Kind,
    /// The full message (names file, line, column, rule, span where known).
    pub message: String,
    /// The rule id the error is about.
    pub rule: Option<String>,
    /// Rule ids involved (conflicts, refused tokens).
    pub rule_ids: Vec<String>,
    /// The policy file.
    pub file: Option<String>,
    /// 1-based line in the file.
    pub line: Option<usize>,
    /// 1-based column (in the file, or in the regex for regex errors).
    pub column: Option<usize>,
    /// Byte span in the text (prompt violations).
    pub span: Option<(usize, usize)>,
}

impl WebError {
    /// An error of `kind` with a message and no location.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        WebError {
            kind,
            message: message.into(),
            rule: None,
            rule_ids: Vec::new(),
            file: None,
            line: None,
            column: None,
            span: None,
        }
    }

    /// An argument error.
    pub fn argument(message: impl Into<String>) -> Self {
        WebError::new(Kind::Argument, message)
    }
}

impl fmt::Display for WebError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WebError {}

impl From<CompileError> for WebError {
    fn from(e: CompileError) -> Self {
        WebError {
            kind: Kind::Policy,
            message: format!("policy: {e}"),
            rule: e.rule().map(String::from),
            rule_ids: e.rule().map(String::from).into_iter().collect(),
            file: e.file().map(|p| p.display().to_string()),
            line: e.line(),
            column: e.column(),
            span: None,
        }
    }
}

impl From<GuardError> for WebError {
    fn from(e: GuardError) -> Self {
        let message = format!("guard: {e}");
        match e {
            GuardError::CanvasViolates { rule_id, span, .. } => WebError {
                kind: Kind::PromptViolates,
                rule: Some(rule_id.clone()),
                rule_ids: vec![rule_id],
                span: Some((span.start, span.end)),
                ..WebError::new(Kind::PromptViolates, message)
            },
            GuardError::Forbidden { blame, .. } => {
                let mut ids: Vec<String> = blame.iter().map(|b| b.rule_id.clone()).collect();
                ids.dedup();
                WebError {
                    rule: ids.first().cloned(),
                    rule_ids: ids,
                    ..WebError::new(Kind::Forbidden, message)
                }
            }
            GuardError::NoSafeCompletion { rule_ids, .. } => WebError {
                rule: rule_ids.first().cloned(),
                rule_ids,
                ..WebError::new(Kind::PromptViolates, message)
            },
            GuardError::Conflict(c) => WebError {
                rule_ids: c.rule_ids.clone(),
                ..WebError::new(Kind::Conflict, message)
            },
            _ => WebError::new(Kind::Guard, message),
        }
    }
}

/// Result of the bindings' core.
pub type Result<T> = std::result::Result<T, WebError>;
