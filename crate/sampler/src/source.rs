//! Where logits come from: the [`LogitsSource`] seam (the model, test adversaries, the
//! oracle of the security evaluation).

use crate::error::{Result, SamplerError};

/// A source of logits over a canvas. Implemented by the burn model and by test adversaries,
/// so the guarantee is tested without a model.
pub trait LogitsSource {
    /// Number of logits per position (may exceed the tokenizer's vocabulary: padded rows are
    /// never chosen).
    fn vocab_size(&self) -> usize;

    /// Logits at `positions` of the canvas `ids` (holes hold the mask token id), row-major:
    /// `positions.len() × vocab_size()` values.
    fn logits(&mut self, ids: &[u32], positions: &[usize]) -> Result<Vec<f32>>;
}

impl<S: LogitsSource + ?Sized> LogitsSource for Box<S> {
    fn vocab_size(&self) -> usize {
        (**self).vocab_size()
    }
    fn logits(&mut self, ids: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        (**self).logits(ids, positions)
    }
}

impl<S: LogitsSource + ?Sized> LogitsSource for &mut S {
    fn vocab_size(&self) -> usize {
        (**self).vocab_size()
    }
    fn logits(&mut self, ids: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        (**self).logits(ids, positions)
    }
}

/// Uniform logits (every token equally likely): a source with no preference.
#[derive(Clone, Debug)]
pub struct UniformSource {
    /// Vocabulary size.
    pub vocab: usize,
}

impl LogitsSource for UniformSource {
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn logits(&mut self, _ids: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        Ok(vec![0.0; positions.len() * self.vocab])
    }
}

/// The oracle adversary: wraps a source and, at every position where `target` names a
/// token, makes that token the most likely by a wide margin. With the insecure original
/// continuation as target, the "model" wants the violation with certainty.
pub struct OracleSource<S> {
    inner: S,
    target: Vec<Option<u32>>,
    margin: f32,
}

impl<S: LogitsSource> OracleSource<S> {
    /// `target[i]` is the preferred token at canvas position `i` (None: the inner source's
    /// choice).
    pub fn new(inner: S, target: Vec<Option<u32>>) -> Self {
        OracleSource {
            inner,
            target,
            margin: 30.0,
        }
    }

    /// The wrapped source.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: LogitsSource> LogitsSource for OracleSource<S> {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn logits(&mut self, ids: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        let v = self.inner.vocab_size();
        let mut out = self.inner.logits(ids, positions)?;
        if out.len() != positions.len() * v {
            return Err(SamplerError::Source(format!(
                "{} logits for {} positions × {v}",
                out.len(),
                positions.len()
            )));
        }
        for (k, &p) in positions.iter().enumerate() {
            if let Some(Some(t)) = self.target.get(p) {
                let row = &mut out[k * v..(k + 1) * v];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if let Some(x) = row.get_mut(*t as usize) {
                    *x = max.max(0.0) + self.margin;
                }
            }
        }
        Ok(out)
    }
}
