//! Errors of the guard and the reports it gives (conflicts, blame).

use std::fmt;
use std::ops::Range;

use ward_policy::RuleIndex;

/// Why a forbidden token is forbidden, for one rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Blame {
    /// Index of the rule in the policy's rules.
    pub rule: RuleIndex,
    /// The rule's id, e.g. `python.eval`.
    pub rule_id: String,
    /// The module (automaton) that forbids the token.
    pub module: usize,
    /// Whether the token completes the rule's pattern or makes it unavoidable.
    pub kind: BlameKind,
}

/// How a forbidden token leads to a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlameKind {
    /// The token's bytes complete the rule's pattern.
    Completes,
    /// After the token, every completion of the rest of the canvas violates the rule.
    Unavoidable,
}

/// A hole where no token is allowed by every module at once (a liveness conflict across
/// modules; each module alone still has a safe completion). The sampler should remask:
/// restore a snapshot taken before one of [`Conflict::constraining`] and try another token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The hole.
    pub position: usize,
    /// The modules whose masks have an empty intersection there.
    pub modules: Vec<usize>,
    /// Ids of the rules enforced by those modules.
    pub rule_ids: Vec<String>,
    /// Committed positions whose commit alone constrains this hole (reopening it would change
    /// the hole's state sets), most recent first.
    pub constraining: Vec<usize>,
}

/// Errors of the guard. Nothing in the guard panics on bad input: every misuse is one of
/// these.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardError {
    /// The canvas has no position at all.
    EmptyCanvas,
    /// The canvas is longer than [`crate::GuardConfig::max_len`].
    CanvasTooLong {
        /// Its length in tokens.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A token id is outside the vocabulary.
    TokenOutOfRange {
        /// Position in the canvas.
        position: usize,
        /// The token id.
        token: u32,
        /// The vocabulary size.
        vocab_len: usize,
    },
    /// The fixed prompt (the text before the first hole) already violates an enforced rule.
    CanvasViolates {
        /// Index of the rule.
        rule: RuleIndex,
        /// Id of the rule.
        rule_id: String,
        /// Byte span of the violation in the prompt text.
        span: Range<usize>,
    },
    /// The fixed tokens leave no safe completion for some module (e.g. a suffix that
    /// violates, or a canvas too short to finish a pending match).
    NoSafeCompletion {
        /// The fixed token position where a violation becomes certain, if one is.
        position: Option<usize>,
        /// The modules without a safe completion.
        modules: Vec<usize>,
        /// Rules that every completion violates (or, failing that, those modules' rules).
        rule_ids: Vec<String>,
    },
    /// The vocabulary decodes the first text token of a text differently from the same
    /// token later on (e.g. SentencePiece drops its leading space), and a hole comes before
    /// the canvas's first fixed text token: start the canvas with a fixed text token.
    OpenTextStart {
        /// The hole.
        position: usize,
    },
    /// A position outside the canvas (or already retired by block-wise decoding).
    PositionOutOfRange {
        /// The position.
        position: usize,
        /// The canvas length.
        len: usize,
    },
    /// The position is not a hole (fixed or already committed).
    NotAHole {
        /// The position.
        position: usize,
    },
    /// The position holds no committed token (to uncommit).
    NotCommitted {
        /// The position.
        position: usize,
    },
    /// The token is not allowed at this hole: committing it would complete a violation or
    /// make one unavoidable.
    Forbidden {
        /// The hole.
        position: usize,
        /// The token.
        token: u32,
        /// The rules responsible.
        blame: Vec<Blame>,
    },
    /// No token is allowed at this hole by every module at once.
    Conflict(Conflict),
    /// Positions before the block boundary still have holes.
    BlockNotFinished {
        /// The first hole before the boundary.
        hole: usize,
    },
    /// The snapshot belongs to another guard or an earlier block layout.
    SnapshotMismatch,
    /// The probability vector does not match the vocabulary.
    LengthMismatch {
        /// Expected length (the vocabulary size).
        expected: usize,
        /// Given length.
        got: usize,
    },
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::EmptyCanvas => write!(f, "the canvas is empty"),
            GuardError::CanvasTooLong { len, max } => {
                write!(f, "the canvas has {len} positions, more than the limit of {max}")
            }
            GuardError::TokenOutOfRange { position, token, vocab_len } => write!(
                f,
                "token {token} at position {position} is outside the vocabulary of {vocab_len} tokens"
            ),
            GuardError::CanvasViolates { rule_id, span, .. } => write!(
                f,
                "the prompt already violates rule {rule_id} at bytes {}..{}; nothing is generated",
                span.start, span.end
            ),
            GuardError::NoSafeCompletion { position, rule_ids, .. } => {
                write!(f, "the canvas has no completion that satisfies rule(s) {}", rule_ids.join(", "))?;
                if let Some(p) = position {
                    write!(f, " (a violation is certain at fixed position {p})")?;
                }
                Ok(())
            }
            GuardError::OpenTextStart { position } => write!(
                f,
                "position {position} is a hole before the first text token, but this tokenizer decodes the first token of a text differently (e.g. SentencePiece drops its leading space); start the canvas with a fixed text token"
            ),
            GuardError::PositionOutOfRange { position, len } => {
                write!(f, "position {position} is outside the canvas of {len} positions")
            }
            GuardError::NotAHole { position } => write!(f, "position {position} is not a hole"),
            GuardError::NotCommitted { position } => {
                write!(f, "position {position} holds no committed token")
            }
            GuardError::Forbidden { position, token, blame } => {
                write!(f, "token {token} is forbidden at position {position}")?;
                if !blame.is_empty() {
                    let ids: Vec<&str> = blame.iter().map(|b| b.rule_id.as_str()).collect();
                    write!(f, " by {}", ids.join(", "))?;
                }
                Ok(())
            }
            GuardError::Conflict(c) => write!(
                f,
                "no token at position {} satisfies every module (modules {:?} conflict: {})",
                c.position,
                c.modules,
                c.rule_ids.join(", ")
            ),
            GuardError::BlockNotFinished { hole } => {
                write!(f, "position {hole} before the block boundary is still a hole")
            }
            GuardError::SnapshotMismatch => write!(f, "the snapshot belongs to another guard state"),
            GuardError::LengthMismatch { expected, got } => {
                write!(f, "expected {expected} values (the vocabulary size), got {got}")
            }
        }
    }
}

impl std::error::Error for GuardError {}
