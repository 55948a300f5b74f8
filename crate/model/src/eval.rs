//! Measuring a model on any Python files (`ward eval-model`): masked-token accuracy and
//! cross-entropy at fixed, seeded masking rates over windows of the model's sequence length.
//!
//! The files are read in sorted order, each tokenized without special tokens and followed by
//! `<|endoftext|>` (as the trainer builds its streams); the stream is cut into consecutive
//! windows of `max_position_embeddings` tokens, of which at most `max_windows` evenly spaced
//! ones are measured. Each token of a window is masked with probability `rate` (at least one
//! per window), from a generator seeded with `seed` and the rate, so a figure is reproducible
//! to the last digit on the same files, model and backend. For checkpoints whose logits are
//! shifted by one (the Dream family), the prediction of position `i` is read at `i − 1`.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::Model;

/// The `.py` files of `paths`: a file is taken as it is (whatever its extension), a folder is
/// searched recursively for `*.py` (hidden folders and `__pycache__` skipped). Sorted, without
/// duplicates. A path that does not exist, or no file at all, is an error naming the path.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::invalid("no --data path given"));
    }
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_file() {
            out.push(p.clone());
            continue;
        }
        let before = out.len();
        out.extend(crate::corpus::walk_py(
            p,
            |dir| !dir.starts_with('.') && dir != "__pycache__",
            |_| true,
        )?);
        if out.len() == before {
            return Err(Error::invalid(format!(
                "{}: no Python (*.py) files in this folder",
                p.display()
            )));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads `files` as UTF-8 text; a file that is not UTF-8 is an error naming it.
pub fn read_files(files: &[PathBuf]) -> Result<Vec<(PathBuf, String)>> {
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                Error::invalid(format!(
                    "{}: not UTF-8 (byte {})",
                    f.display(),
                    e.utf8_error().valid_up_to()
                ))
            })?;
            Ok((f.clone(), text))
        })
        .collect()
}

/// One token stream of `texts`, `eos` after each.
pub fn token_stream(tok: &tokenizers::Tokenizer, texts: &[&str], eos: u32) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for t in texts {
        out.extend(crate::tokenizer::encode(tok, t)?);
        out.push(eos);
    }
    Ok(out)
}

/// At most `max` evenly spaced, consecutive non-overlapping windows of `len` tokens; a stream
/// shorter than one window gives one window of the whole stream.
pub fn windows(stream: &[u32], len: usize, max: usize) -> Vec<Vec<u32>> {
    let len = len.max(1);
    let total = stream.len() / len;
    if total == 0 {
        return if stream.len() >= 2 {
            vec![stream.to_vec()]
        } else {
            Vec::new()
        };
    }
    let n = total.min(max.max(1));
    (0..n)
        .map(|i| {
            let w = i * total / n;
            stream[w * len..(w + 1) * len].to_vec()
        })
        .collect()
}

/// The figures at one masking rate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MaskedFigures {
    /// Probability with which each token was masked.
    pub rate: f64,
    /// Share of masked tokens whose most likely prediction is the original token.
    pub accuracy: f64,
    /// Mean cross-entropy (natural log) of the original tokens at the masked positions.
    pub cross_entropy: f64,
    /// Masked tokens measured.
    pub masked_tokens: usize,
}

/// Masked-token accuracy and cross-entropy of `model` on `windows` at `rate`, in chunks of
/// `chunk` windows of equal length (a shorter last window is measured alone).
pub fn masked_figures(
    model: &Model,
    windows: &[Vec<u32>],
    rate: f64,
    seed: u64,
    chunk: usize,
) -> Result<MaskedFigures> {
    let mask = model
        .mask_token_id()
        .ok_or_else(|| Error::invalid("the model config has no mask_token_id"))?;
    if !(0.0..=1.0).contains(&rate) || rate == 0.0 {
        return Err(Error::invalid(format!(
            "masking rate {rate}: expected a number in (0, 1]"
        )));
    }
    let shift = model.config().shifted_logits();
    let mut rng = StdRng::seed_from_u64(seed ^ (rate * 1e6) as u64);
    let (mut ce, mut correct, mut count) = (0.0f64, 0usize, 0usize);
    // Consecutive windows of one length, at most `chunk` at a time.
    let mut start = 0;
    for i in 1..=windows.len() {
        if i == windows.len()
            || windows[i].len() != windows[start].len()
            || i - start == chunk.max(1)
        {
            let part = &windows[start..i];
            let (c, k, n) = crate::train::masked_counts(
                model.net(),
                part,
                rate,
                mask,
                &mut rng,
                shift,
                model.device(),
            )?;
            ce += c;
            correct += k;
            count += n;
            start = i;
        }
    }
    Ok(MaskedFigures {
        rate,
        accuracy: correct as f64 / count.max(1) as f64,
        cross_entropy: ce / count.max(1) as f64,
        masked_tokens: count,
    })
}

/// A short function body of a Python file: the byte range of its lines (from the start of the
/// first body line to the end of the last, without the final newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionBody {
    /// Byte offset of the first body line.
    pub start: usize,
    /// Byte offset just after the last body line (before its newline).
    pub end: usize,
    /// 1-based line number of the `def`.
    pub def_line: usize,
}

/// Function bodies of `text` with between 1 and `max_lines` non-blank lines, found line by line:
/// a `def` (or `async def`) whose signature ends on its own line with `:`, and the lines after
/// it that are blank or indented deeper. Nested functions are found too.
pub fn short_function_bodies(text: &str, max_lines: usize) -> Vec<FunctionBody> {
    let mut lines = Vec::new();
    let mut off = 0;
    for l in text.split_inclusive('\n') {
        let body = l.strip_suffix('\n').unwrap_or(l);
        let body = body.strip_suffix('\r').unwrap_or(body);
        lines.push((off, body));
        off += l.len();
    }
    let indent = |s: &str| s.len() - s.trim_start_matches([' ', '\t']).len();
    let mut out = Vec::new();
    for (i, &(_, l)) in lines.iter().enumerate() {
        let t = l.trim_start();
        let is_def = t.starts_with("def ") || t.starts_with("async def ");
        let code = t.split(" #").next().unwrap_or(t).trim_end();
        if !is_def || !code.ends_with(':') || !code.contains(')') {
            continue;
        }
        let d = indent(l);
        let (mut last, mut nonblank) = (None, 0usize);
        for (j, &(_, b)) in lines.iter().enumerate().skip(i + 1) {
            if b.trim().is_empty() {
                continue;
            }
            if indent(b) <= d {
                break;
            }
            nonblank += 1;
            last = Some(j);
        }
        if let Some(j) = last {
            if (1..=max_lines).contains(&nonblank) {
                out.push(FunctionBody {
                    start: lines[i + 1].0,
                    end: lines[j].0 + lines[j].1.len(),
                    def_line: i + 1,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_even_and_bounded() {
        let s: Vec<u32> = (0..1000).collect();
        let w = windows(&s, 100, 4);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0][0], 0);
        assert_eq!(w[1][0], 200);
        assert!(w.iter().all(|x| x.len() == 100));
        assert_eq!(windows(&s, 100, 100).len(), 10);
        assert_eq!(windows(&s[..50], 100, 4), vec![s[..50].to_vec()]);
        assert!(windows(&s[..1], 100, 4).is_empty());
    }

    #[test]
    fn finds_short_bodies_and_skips_long_ones() {
        let src = "import os\n\ndef a(x):\n    return x\n\nclass C:\n    def b(self, y):  # note\n        z = y\n\n        return z\n\n    async def c(self):\n        pass\n\ndef long():\n    a = 1\n    b = 2\n    c = 3\n    return a\n";
        let bodies = short_function_bodies(src, 3);
        let texts: Vec<&str> = bodies.iter().map(|b| &src[b.start..b.end]).collect();
        assert_eq!(
            texts,
            vec![
                "    return x",
                "        z = y\n\n        return z",
                "        pass"
            ]
        );
        assert_eq!(bodies[0].def_line, 3);
        // `class C` has a 5-line body but is not a function; `long` has 4 lines.
        assert_eq!(short_function_bodies(src, 4).len(), 4);
    }

    #[test]
    fn multi_line_signatures_and_one_liners_are_not_bodies() {
        let src = "def f(a,\n      b):\n    return a\n\ndef g(): return 1\n";
        assert!(short_function_bodies(src, 5).is_empty());
    }

    #[test]
    fn missing_and_empty_paths_are_errors() {
        let e = collect_files(&[PathBuf::from("/nonexistent/ward")]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ward"), "{e}");
        let dir = std::env::temp_dir().join(format!("ward-eval-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = collect_files(std::slice::from_ref(&dir)).unwrap_err();
        assert!(e.to_string().contains("no Python"), "{e}");
        std::fs::write(dir.join("a.py"), "x = 1\n").unwrap();
        assert_eq!(collect_files(std::slice::from_ref(&dir)).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
