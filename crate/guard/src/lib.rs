//! Ward's guard: exact token masks over a canvas with holes, so that no commit can ever
//! complete a violation of an enforced rule.
//!
//! ```text
//! CompiledPolicy (byte DFAs) ─┐
//!                             ├─► TokenPolicy (lifted, shared) ─► Guard (one canvas)
//! Vocab (token → bytes) ──────┘                                     ├─ allows(i, t)   fast path
//!                                                                   ├─ mask(i)        exact TokenMask
//!                                                                   ├─ commit(i, t)   refuses forbidden tokens
//!                                                                   └─ snapshot / restore / uncommit
//! ```
//!
//! # Guarantee
//! For every enforced rule (severity ERROR, CRITICAL or HIGH) and every module of the
//! policy, a token is allowed at a hole iff some completion of the whole canvas with that
//! token there violates none of that module's rules; a token is allowed iff every module
//! allows it. Hence no sequence of successful commits can complete a violation of an
//! enforced rule, and a complete canvas violates none. Liveness across modules is not
//! exact: a hole may have no token that every module allows ([`Conflict`]); the sampler
//! then remasks. Rules of lower severity are not enforced here (only reported by the
//! policy's checker).
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use ward_guard::{Canvas, Guard, TokenPolicy, Vocab};
//! let policy = ward_policy::PolicyBuilder::new().compile_path("policies/python").unwrap();
//! let vocab = Vocab::from_token_bytes(&[b"eval".as_slice(), b"(", b"x", b" "]).unwrap();
//! let tp = Arc::new(TokenPolicy::new(Arc::new(policy), Arc::new(vocab)));
//! let mut g = Guard::new(tp, &Canvas::infill(&[0], 2, &[])).unwrap();
//! assert!(!g.allows(1, 1)); // "eval(" would complete python.eval
//! g.commit(1, 2).unwrap();
//! ```
#![deny(missing_docs)]

mod error;
mod guard;
mod lift;
mod mask;
mod sets;
pub mod vocab;

pub use error::{Blame, BlameKind, Conflict, GuardError};
pub use guard::{BlockedMass, Canvas, Guard, GuardConfig, Slot, Snapshot};
pub use lift::{LiftArtefactError, LiftStats, TokenPolicy, LIFT_FORMAT_VERSION};
pub use mask::TokenMask;
pub use vocab::{TokenKind, Vocab, VocabError};
