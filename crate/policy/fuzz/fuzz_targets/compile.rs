//! Fuzz "YAML + regex → compiled policy → check": any input must give Ok or a clean
//! `CompileError`, never a panic, a hang or unbounded memory (limits are set small), and the
//! DFA and regex checkers must agree. The check itself is shared with the regression test of
//! the findings (`crate/policy/tests/fuzz/compile.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz/compile.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::run(data));
