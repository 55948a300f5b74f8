//! Ward in WebAssembly: the only crate with `#[wasm_bindgen]`.
//!
//! JavaScript hands over bytes and text (policy files, tokenizer, model files); the wasm never
//! fetches. The default build is **policy and guard only** (`Policy`, `TokenGuard`,
//! `GuardedCanvas`: compile a pack hierarchy from a file map, `explain`, `check`, exact token
//! masks and commits for a caller's own model). The JavaScript API, its argument and return
//! shapes and its errors are documented in `crate/web/README.md`.
//!
//! Layout: [`policy`] and [`guard`] are plain Rust (tested natively); [`js`] is the thin
//! `#[wasm_bindgen]` layer over them; [`error`] is the one error type, which crosses as a JS
//! `Error` named `WardError` with `kind`, `rule`, `file`, `line`, `column` and `span`.
#![deny(missing_docs)]
// Errors are rare and cross into JavaScript once, where they become an `Error` with fields;
// their size on the Rust side does not matter.
#![allow(clippy::result_large_err)]

pub mod clock;
pub mod error;
#[cfg(feature = "model")]
pub mod generator;
pub mod guard;
pub mod js;
#[cfg(feature = "model")]
pub mod js_generator;
pub mod policy;

pub use error::{Kind, WebError};
