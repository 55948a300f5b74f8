//! Fuzz the guard on the real python pack and vocabulary: a canvas (prompt, holes, suffix)
//! and a sequence of commits, uncommits, snapshots and restores. No panic; every commit of an
//! allowed token succeeds and a forbidden one is refused; the masks equal those of a fresh
//! guard over the same committed canvas; a completed canvas violates no enforced rule. The
//! check is shared with the regression test of the findings (`crate/guard/tests/fuzz/guard.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz/guard.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::run(data));
