//! Ward's policy layer: the rule language, packs and their hierarchy, and the compiler from
//! security rules to byte-level automaton modules.
//!
//! Nothing here knows about tokens, models or wasm. See `policies/README.md` for the rule
//! language.
//!
//! ```text
//! pack.yaml ─► load + resolve hierarchy ─► EffectivePolicy ─► compile ─► CompiledPolicy
//!                                                                          ├─ modules (enforced rules, DFAs)
//!                                                                          └─ check(text) → findings
//! ```
#![deny(missing_docs)]

mod check;
pub mod clock;
mod compile;
pub mod digest;
mod error;
pub mod explain;
mod fidelity;
mod finding;
mod lexer;
mod module;
mod nfa;
mod pack;
mod pcre;
mod regex_check;
pub mod sarif;
mod span;

pub use compile::{
    artefact_sources, ArtefactSources, CompileStats, CompiledPolicy, ModuleStats, PolicyBuilder,
    PolicyConfig, ARTEFACT_FORMAT,
};
pub use error::{CompileError, ErrorKind};
pub use finding::{Finding, LineCol};
pub use lexer::{scan, scope_of_bytes, Scope};
pub use module::{Module, RuleIndex, StateId};
pub use pack::{Alternative, EffectivePolicy, Pattern, Rule, RuleScope, Severity};
pub use regex_check::RegexChecker;
