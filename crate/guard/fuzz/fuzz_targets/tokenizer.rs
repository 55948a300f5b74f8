//! Fuzz "tokenizer.json → vocabulary" (`ward_guard::vocab::from_tokenizer_json`): a
//! vocabulary within the limits or a clean `VocabError`, never a panic. The check is shared
//! with the regression test of the findings (`crate/guard/tests/fuzz/tokenizer.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz/tokenizer.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::run(data));
