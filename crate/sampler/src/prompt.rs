//! Prompts with holes: `<|hole:N|>` marks a hole of N tokens (an infill hole may end early:
//! `GenerateRequest::early_end`).

use crate::error::SamplerError;

/// Opening of a hole marker.
pub const HOLE_OPEN: &str = "<|hole:";
/// Closing of a hole marker.
pub const HOLE_CLOSE: &str = "|>";
/// Largest hole accepted, in tokens.
pub const MAX_HOLE: usize = 8192;

/// One piece of a prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Fixed text (prefix, text between holes, suffix).
    Text(String),
    /// A hole of this many tokens.
    Hole(usize),
}

/// A prompt: fixed text and holes, in order.
///
/// # Example
/// ```
/// use ward_sampler::{Prompt, Segment};
/// let p = Prompt::parse("run(cmd, <|hole:8|>)\n").unwrap();
/// assert_eq!(p.segments[1], Segment::Hole(8));
/// assert!(Prompt::parse("x = <|hole:abc|>").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// The pieces, in order; empty text pieces are left out.
    pub segments: Vec<Segment>,
}

impl Prompt {
    /// Parses a prompt. Errors name the byte offset of a malformed marker.
    pub fn parse(text: &str) -> Result<Prompt, SamplerError> {
        let mut segments = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(k) = rest.find(HOLE_OPEN) {
            if k > 0 {
                segments.push(Segment::Text(rest[..k].to_string()));
            }
            let at = offset + k;
            let after = &rest[k + HOLE_OPEN.len()..];
            let Some(end) = after.find(HOLE_CLOSE) else {
                return Err(SamplerError::prompt(
                    at,
                    format!("`{HOLE_OPEN}` without a closing `{HOLE_CLOSE}`"),
                ));
            };
            let num = &after[..end];
            let n: usize = num.trim().parse().map_err(|_| {
                SamplerError::prompt(
                    at,
                    format!("hole length `{num}` is not a number (write `<|hole:16|>`)"),
                )
            })?;
            if n == 0 || n > MAX_HOLE {
                return Err(SamplerError::prompt(
                    at,
                    format!("hole length {n} is outside 1..={MAX_HOLE}"),
                ));
            }
            segments.push(Segment::Hole(n));
            let used = k + HOLE_OPEN.len() + end + HOLE_CLOSE.len();
            offset += used;
            rest = &rest[used..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_string()));
        }
        Ok(Prompt { segments })
    }

    /// True when the prompt has at least one hole.
    pub fn has_holes(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Hole(_)))
    }

    /// The prompt with a trailing hole of `n` tokens when it has none (plain continuation).
    pub fn or_continue(mut self, n: usize) -> Prompt {
        if !self.has_holes() {
            self.segments.push(Segment::Hole(n));
        }
        self
    }

    /// Total hole tokens.
    pub fn hole_tokens(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Hole(n) => *n,
                Segment::Text(_) => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_holes_and_text() {
        let p = Prompt::parse("a<|hole:3|>b<|hole: 2 |>").unwrap();
        assert_eq!(
            p.segments,
            vec![
                Segment::Text("a".into()),
                Segment::Hole(3),
                Segment::Text("b".into()),
                Segment::Hole(2)
            ]
        );
        assert_eq!(p.hole_tokens(), 5);
        let p = Prompt::parse("x = 1\n").unwrap().or_continue(7);
        assert_eq!(p.segments.last(), Some(&Segment::Hole(7)));
    }

    #[test]
    fn errors_name_the_offset() {
        let e = Prompt::parse("abc <|hole:4").unwrap_err().to_string();
        assert!(e.contains("byte 4"), "{e}");
        let e = Prompt::parse("<|hole:0|>").unwrap_err().to_string();
        assert!(e.contains("outside"), "{e}");
        let e = Prompt::parse("xy<|hole:-1|>").unwrap_err().to_string();
        assert!(e.contains("byte 2") && e.contains("not a number"), "{e}");
    }
}
