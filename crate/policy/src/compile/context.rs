//! The look-around context of a position as the compiler keeps it: look-behind bits in a DFA
//! state, the next byte (or the end of the text), and the byte-class boundaries that the
//! assertions (`\b`, `^`, `$`) need.

use crate::nfa::{self, Ctx, LookNeeds};

/// Look-behind bit of a DFA state: the previous byte is a word byte.
pub(super) const CTX_WORD: u8 = 1;
/// Look-behind bit: at a line start (after `\n`, or at the start of the text).
pub(super) const CTX_LF: u8 = 2;
/// Look-behind bit: at the start of the text.
pub(super) const CTX_START: u8 = 4;
/// The "next byte" that stands for the end of the text.
pub(super) const EOI: u16 = 256;

/// The context of a position from its look-behind bits and the next byte (or [`EOI`]).
pub(super) fn ctx_of(bits: u8, next: u16) -> Ctx {
    Ctx {
        prev_word: bits & CTX_WORD != 0,
        prev_lf: bits & CTX_LF != 0,
        at_start: bits & CTX_START != 0,
        next: if next == EOI { None } else { Some(next as u8) },
    }
}

/// Add the byte-class boundaries that look-around needs: word/non-word bytes for `\b`, and
/// `\n` for multi-line anchors.
pub(super) fn mark_look_boundaries(needs: LookNeeds, split: &mut [bool; 256]) {
    if needs.word {
        for b in 0..255u8 {
            if nfa::is_word_byte(b) != nfa::is_word_byte(b + 1) {
                split[b as usize] = true;
            }
        }
    }
    if needs.line {
        split[b'\n' as usize] = true;
        split[b'\n' as usize - 1] = true;
    }
}
