//! Where the text or an infill hole may end, and ending it: the end token is the sampler's
//! decision at the canvas tail (exact masks) and in infill holes (`early_end`).

use super::*;

impl Session {
    /// The end of the infill hole holding `pos` (the first prompt position after it), or
    /// None where no prompt text follows (the canvas tail).
    pub(super) fn infill_end(&self, pos: usize) -> Option<usize> {
        match self.next_fixed.get(pos) {
            Some(&q) if q != u32::MAX => Some(q as usize),
            _ => None,
        }
    }

    /// May the text end at `pos` (all later positions become end-of-text), or, in an infill
    /// hole with `early_end`, the hole (its later positions become empty)?
    pub(super) fn end_permitted(&self, pos: usize) -> bool {
        if self.special.eos.is_none() {
            return false;
        }
        if let Some(e) = self.infill_end(pos) {
            // Only at the hole's tail (nothing but pads after it in the hole), never at its
            // first position, and never right after blank text alone: where every earlier
            // position of the hole is committed and blank, the end is refused (an infill of
            // indentation alone was the commonest failure of the default model).
            return self.req.early_end
                && self.slots[pos + 1..e]
                    .iter()
                    .all(|p| matches!(p, Pos::Hole | Pos::Pad))
                && self.text_or_open_before_in_hole(pos);
        }
        if self.guard.is_some() && !self.req.end_in_holes {
            // Exact masks: the text may only end where nothing was committed after it.
            return self.slots[pos + 1..]
                .iter()
                .all(|p| matches!(p, Pos::Hole | Pos::Ended));
        }
        true
    }

    /// Whether the infill hole of `pos`, before `pos`, has a position still open or a
    /// committed token with a byte that is not blank (`u8::is_ascii_whitespace`: space, tab,
    /// form feed, carriage return or newline). False at the hole's first position.
    pub(super) fn text_or_open_before_in_hole(&self, pos: usize) -> bool {
        self.slots[..pos]
            .iter()
            .rev()
            .take_while(|p| !matches!(p, Pos::Fixed(_)))
            .any(|p| match *p {
                Pos::Token(t) => self.vocab.bytes(t).iter().any(|b| !b.is_ascii_whitespace()),
                Pos::Hole => true,
                _ => false,
            })
    }

    /// Whether the end token at `pos` is the sampler's decision rather than the guard's:
    /// always without `end_in_holes`, and in an infill hole (where it empties the hole).
    pub(super) fn eos_is_samplers(&self, pos: usize) -> bool {
        !self.req.end_in_holes || self.infill_end(pos).is_some()
    }

    /// Ends the text at `pos`: every open position from `pos` on becomes end-of-text. With a
    /// guard and exact masks, a text-free pad token is committed there (the guard then judges
    /// exactly the text that is returned); with `end_in_holes`, the end token itself. In an
    /// infill hole (`early_end`) only the hole ends: its open positions from `pos` on get the
    /// pad token, and the text goes on after the hole. False when the guard refuses (ending
    /// here would leave a violation).
    pub(super) fn try_end(&mut self, pos: usize, committed: &mut Vec<Committed>) -> Result<bool> {
        let Some(eos) = self.special.eos else {
            return Ok(false);
        };
        if !self.end_permitted(pos) {
            return Ok(false);
        }
        let infill = self.infill_end(pos);
        let n = infill.unwrap_or(self.slots.len());
        let targets: Vec<usize> = (pos..n).filter(|&q| self.slots[q] == Pos::Hole).collect();
        if let Some(g) = &mut self.guard {
            let fill = if self.req.end_in_holes && infill.is_none() {
                eos
            } else {
                match self.pad {
                    Some(p) => p,
                    None => return Ok(false),
                }
            };
            let snap = g.snapshot();
            let order: Vec<usize> = if fill == eos {
                targets.clone()
            } else {
                targets.iter().rev().copied().collect()
            };
            for &q in &order {
                if g.commit(q, fill).is_err() {
                    g.restore(&snap)
                        .map_err(|e| SamplerError::guard("restoring after a refused end", &e))?;
                    return Ok(false);
                }
            }
        }
        for &q in &targets {
            self.slots[q] = if infill.is_some() {
                Pos::Pad
            } else {
                Pos::Ended
            };
            self.ids[q] = eos;
            committed.push(Committed {
                position: q,
                token: eos,
                text: String::new(),
                probability: 1.0,
                end: true,
            });
        }
        Ok(true)
    }
}
