//! Ward's sampler: guarded masked-diffusion denoising.
//!
//! A canvas of prompt tokens and `[MASK]` holes is denoised over a few steps. Each step runs
//! one forward pass of a [`LogitsSource`] (the model, or a test adversary), applies the
//! guard's masks (the vocabulary mask always; the guard's fast path `allows` on the chosen
//! token, and the exact position mask when that fails), chooses positions by a
//! [`Strategy`], commits them through the guard one at a time (each re-checked against the
//! updated state sets), and reports a [`StepEvent`]. At the end the text is re-scanned by
//! ward-policy's independent checker and a [`Certificate`] is issued.
//!
//! ```text
//! GenerateRequest ─► Engine::start ─► Session ─► step() ─► StepEvent … ─► result() ─► text + Certificate
//!                       │                 │
//!                  Prompt, Canvas     LogitsSource (model | adversary | oracle)
//!                       └─ Guard (ward-guard): allows / mask / commit / uncommit / retire_prefix
//! ```
//!
//! # End of text
//! A canvas longer than the answer ends in end tokens, as in LLaDA. By default
//! (`end_in_holes: false`) the guard never lets a hole end the text, so its masks are exact
//! for every position; the sampler itself decides the end: when the chosen token at a
//! position is the end token and nothing was committed after it, every open position from
//! there on is committed to the guard as a text-free pad, so the guard judges exactly the
//! text that is returned. With `end_in_holes: true`, the end token is an ordinary guarded
//! token and later holes are filled with it. The choice is measured in the crate README.
//!
//! # Remasking
//! When a hole has no token that every module allows (a liveness conflict across modules),
//! the sampler reopens the most recent commit that constrains it (the second time at the
//! same hole, every constraining commit), forbids the reopened tokens at their positions,
//! and goes on; a bounded budget, then [`SamplerError::Stuck`] naming the rules.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use ward_guard::{TokenKind, Vocab};
//! use ward_sampler::{Engine, GenerateRequest, GreedyEncoder, ModelInfo, SpecialTokens, UniformSource};
//! let toks: Vec<&[u8]> = vec![b"", b"", b"x", b" ", b"=", b"1", b"\n"];
//! let mut kinds = vec![TokenKind::Text; toks.len()];
//! kinds[0] = TokenKind::End;
//! kinds[1] = TokenKind::Empty;
//! let vocab = Arc::new(Vocab::from_parts(&toks, kinds).unwrap());
//! let engine = Engine::new(vocab.clone(), None, SpecialTokens { mask: 1, eos: Some(0) }, ModelInfo::default()).unwrap();
//! let mut src = UniformSource { vocab: vocab.len() };
//! let req = GenerateRequest { seed: 3, ..GenerateRequest::new("x = <|hole:2|>\n") };
//! let out = engine.generate(&req, &GreedyEncoder(vocab), &mut src, |_| true).unwrap();
//! assert!(out.text.starts_with("x = ") && out.text.ends_with('\n'));
//! ```
#![deny(missing_docs)]

pub mod certificate;
mod dist;
pub mod error;
pub mod events;
#[cfg(feature = "model")]
pub mod model;
pub mod prompt;
pub mod request;
mod rng;
mod session;
pub mod source;

pub use certificate::{Certificate, ModelInfo};
pub use error::{Result, SamplerError};
pub use events::{Blocked, Committed, GenerationResult, Remask, StartEvent, StepEvent, Timings};
pub use prompt::{Prompt, Segment};
pub use request::{GenerateRequest, Strategy};
pub use rng::Rng;
pub use session::{Clock, Engine, GreedyEncoder, Session, SpecialTokens, TextEncoder};
pub use source::{LogitsSource, OracleSource, UniformSource};
