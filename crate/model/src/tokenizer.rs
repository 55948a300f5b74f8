//! The byte-level BPE tokenizer: training on the corpus, loading, and checks against a config.

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer, TokenizerBuilder,
};

use crate::config::ModelConfig;
use crate::corpus::{self, Split};
use crate::error::{Error, Result};

/// The end-of-text token, placed between files.
pub const EOS_TOKEN: &str = "<|endoftext|>";
/// The mask token of the diffusion objective.
pub const MASK_TOKEN: &str = "[MASK]";
/// Default vocabulary size (special tokens included).
pub const DEFAULT_VOCAB_SIZE: usize = 8192;

/// Arguments of `ward train-tokenizer`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenizerArgs {
    /// Root of the Python sources (default: the stdlib of `python3`).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Vocabulary size, special tokens included.
    #[arg(long, default_value_t = DEFAULT_VOCAB_SIZE)]
    pub vocab_size: usize,
    /// Minimum pair frequency for a merge.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// Where to write `tokenizer.json`.
    #[arg(long, default_value = "tokenizer.json")]
    pub out: PathBuf,
}

/// What [`run_train_tokenizer`] produced.
#[derive(Debug, Clone)]
pub struct TokenizerReport {
    /// Number of training files.
    pub files: usize,
    /// Final vocabulary size.
    pub vocab_size: usize,
    /// Id of [`EOS_TOKEN`].
    pub eos_id: u32,
    /// Id of [`MASK_TOKEN`].
    pub mask_id: u32,
}

/// Trains a byte-level BPE on the train split of the corpus and writes `tokenizer.json`.
pub fn run_train_tokenizer(args: &TokenizerArgs) -> Result<TokenizerReport> {
    let root = match &args.corpus {
        Some(p) => p.clone(),
        None => corpus::python_stdlib_dir()?,
    };
    let files = corpus::split_files(&root, Split::Train)?;
    let tok = train_bpe(&files, args.vocab_size, args.min_frequency)?;
    if let Some(parent) = args.out.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
    }
    tok.save(&args.out, false)
        .map_err(|e| Error::tokenizer(Some(args.out.clone()), e.to_string()))?;
    let (eos_id, mask_id) = special_ids(&tok, Some(&args.out))?;
    Ok(TokenizerReport {
        files: files.len(),
        vocab_size: tok.get_vocab_size(true),
        eos_id,
        mask_id,
    })
}

/// Trains a byte-level BPE with the two special tokens on the given files.
pub fn train_bpe(files: &[PathBuf], vocab_size: usize, min_frequency: u64) -> Result<Tokenizer> {
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .show_progress(false)
        .special_tokens(vec![
            AddedToken::from(EOS_TOKEN, true),
            AddedToken::from(MASK_TOKEN, true),
        ])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let byte_level = ByteLevel::default().add_prefix_space(false);
    let mut tok = TokenizerBuilder::<
        ModelWrapper,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default().into())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(byte_level.into()))
    .with_post_processor(Some(byte_level.into()))
    .with_decoder(Some(byte_level.into()))
    .build()
    .map_err(|e| Error::tokenizer(None, e.to_string()))?;
    let names: Vec<String> = files.iter().map(|p| p.to_string_lossy().into()).collect();
    tok.train_from_files(&mut trainer, names)
        .map_err(|e| Error::tokenizer(None, e.to_string()))?;
    Ok(Tokenizer::from(tok))
}

/// Loads `tokenizer.json`.
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    Tokenizer::from_file(path)
        .map_err(|e| Error::tokenizer(Some(path.to_path_buf()), e.to_string()))
}

/// The ids of [`EOS_TOKEN`] and [`MASK_TOKEN`].
pub fn special_ids(tok: &Tokenizer, path: Option<&Path>) -> Result<(u32, u32)> {
    let get = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| Error::tokenizer(path.map(Path::to_path_buf), format!("no `{t}` token")))
    };
    Ok((get(EOS_TOKEN)?, get(MASK_TOKEN)?))
}

/// Loads `tokenizer.json` and checks it against a model config: same vocabulary size, and the
/// config's mask / eos ids name the tokenizer's special tokens.
pub fn load_tokenizer_for(path: impl AsRef<Path>, cfg: &ModelConfig) -> Result<Tokenizer> {
    let path = path.as_ref();
    let tok = load_tokenizer(path)?;
    let n = tok.get_vocab_size(true);
    if n != cfg.vocab_size {
        return Err(Error::tokenizer(
            Some(path.to_path_buf()),
            format!(
                "the tokenizer has {n} tokens but the model config says vocab_size = {}",
                cfg.vocab_size
            ),
        ));
    }
    if let (Some(m), Ok((_, mask))) = (cfg.mask_token_id, special_ids(&tok, Some(path))) {
        if m != mask {
            return Err(Error::tokenizer(
                Some(path.to_path_buf()),
                format!("`{MASK_TOKEN}` has id {mask} but the config says mask_token_id = {m}"),
            ));
        }
    }
    Ok(tok)
}

/// Encodes a text to ids (no special tokens added).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tok
        .encode_fast(text, false)
        .map_err(|e| Error::tokenizer(None, e.to_string()))?
        .get_ids()
        .to_vec())
}
