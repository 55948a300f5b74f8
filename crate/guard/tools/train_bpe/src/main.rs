//! Trains a byte-level BPE of Qwen2's size and shape on Python source with the `tokenizers`
//! crate: NFC normalizer, Qwen2's split regex, GPT-2 byte-level alphabet, 151 643 BPE tokens,
//! then Qwen2's 22 added tokens (151 665 ids in all), written as a `tokenizer.json`.
//!
//! ```sh
//! cargo run --release --manifest-path crate/guard/tools/train_bpe/Cargo.toml -- OUT.json [DIR...]
//! ```
//! Without a directory the Python standard library of `python3` (without site-packages) is
//! the corpus.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    SplitDelimiterBehavior, TokenizerImpl,
};

/// Qwen2's pre-tokenizer regex (from its `tokenizer.json`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's BPE size (ids 0..151 643) and its added tokens (ids 151 643..151 665).
const BPE_TOKENS: usize = 151_643;
const ADDED: &[&str] = &[
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

fn py_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n != "site-packages" && n != "__pycache__")
            {
                py_files(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "py") {
            out.push(p);
        }
    }
}

fn stdlib_dir() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .expect("python3 runs (or give corpus directories)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn main() -> tokenizers::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .ok_or("usage: ward-train-bpe OUT.json [DIR...]")?;
    let dirs: Vec<PathBuf> = if args.len() > 1 {
        args[1..].iter().map(PathBuf::from).collect()
    } else {
        vec![stdlib_dir()]
    };
    let mut files = Vec::new();
    for d in &dirs {
        py_files(d, &mut files);
    }
    // Only files that are valid UTF-8 (the trainer reads text).
    let files: Vec<String> = files
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| std::str::from_utf8(&b).is_ok()))
        .map(|p| p.display().to_string())
        .collect();
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    eprintln!(
        "corpus: {} files, {:.1} MiB",
        files.len(),
        bytes as f64 / 1048576.0
    );

    let mut tok: TokenizerImpl<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    > = TokenizerImpl::new(BPE::default());
    tok.with_normalizer(Some(NFC));
    tok.with_pre_tokenizer(Some(Sequence::new(vec![
        Split::new(
            SplitPattern::Regex(QWEN2_SPLIT.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )?
        .into(),
        ByteLevel::new(false, false, false).into(),
    ])));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(BPE_TOKENS)
        .min_frequency(0)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build();
    let t = std::time::Instant::now();
    tok.train_from_files(&mut trainer, files)?;
    let n = tok.get_vocab_size(false);
    eprintln!(
        "trained {n} BPE tokens in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let added: Vec<AddedToken> = ADDED
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    tok.add_special_tokens(added);
    tok.save(out, false)?;
    eprintln!("wrote {out}: {} ids", tok.get_vocab_size(true));
    Ok(())
}
