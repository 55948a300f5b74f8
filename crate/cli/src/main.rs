//! The `ward` command: check code against security policies (text, JSON, SARIF), explain
//! the effective policy of a pack, train and benchmark the model (feature `model`).
#![deny(missing_docs)]

#[cfg(feature = "model")]
mod bench_generate;
mod check;
mod compile_policy;
#[cfg(feature = "model")]
mod eval_model;
#[cfg(feature = "model")]
mod generate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Secure-by-construction code generation: policies, checks and models.
#[derive(Parser, Debug)]
#[command(name = "ward", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Scan files and folders for policy findings (exit 0 clean, 1 findings, 2 error).
    Check(check::CheckArgs),
    /// Print the effective policy of a pack: every rule, its severity and where it came from.
    Explain(check::ExplainArgs),
    /// Compile a pack once and write its precompiled artefact (`*.wardpol`, loaded by the
    /// browser instead of compiling).
    CompilePolicy(compile_policy::CompilePolicyArgs),
    /// Generate code with the policy enforced during generation (exit 0 done, 2 bad input, 3
    /// the certificate found a violation of an enforced rule: a bug).
    #[cfg(feature = "model")]
    Generate(generate::GenerateArgs),
    /// Measure a model on Python files: masked-token accuracy and cross-entropy per masking
    /// rate, and the share of short function-body infills that parse.
    #[cfg(feature = "model")]
    EvalModel(eval_model::EvalModelArgs),
    /// Train the masked-diffusion code model (MDLM objective) on the CPython stdlib.
    #[cfg(feature = "model")]
    Train(ward_model::train::TrainArgs),
    /// Train the byte-level BPE tokenizer on the CPython stdlib.
    #[cfg(feature = "model")]
    TrainTokenizer(ward_model::tokenizer::TokenizerArgs),
    /// Benchmarks.
    #[cfg(feature = "model")]
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `ward bench ...`
#[cfg(feature = "model")]
#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Time one forward pass of the model (batch 1, 256 tokens by default).
    Model(ward_model::bench::BenchArgs),
    /// Generation benchmark: guard overhead, tokens per forward pass and quality per
    /// strategy, tokens per second, guard cost per committed token.
    Generate(bench_generate::BenchGenerateArgs),
}

/// The default pack when no `--policy` is given.
pub(crate) fn default_policy() -> PathBuf {
    if let Ok(dir) = std::env::var("WARD_POLICY_DIR") {
        return PathBuf::from(dir).join("python");
    }
    let local = PathBuf::from("policies/python");
    if local.join("pack.yaml").exists() {
        return local;
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/python"
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => check::run_check(&a),
        Command::Explain(a) => check::run_explain(&a),
        Command::CompilePolicy(a) => compile_policy::run_compile_policy(&a),
        #[cfg(feature = "model")]
        Command::Generate(a) => generate::run_generate(&a),
        #[cfg(feature = "model")]
        Command::EvalModel(a) => eval_model::run_eval_model(&a),
        #[cfg(feature = "model")]
        Command::Bench(BenchCommand::Generate(a)) => bench_generate::run_bench_generate(&a),
        #[cfg(feature = "model")]
        Command::Train(a) => ward_model::train::run_train(&a)
            .map(|r| {
                check::emit(&(serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"));
                0
            })
            .map_err(|e| e.to_string()),
        #[cfg(feature = "model")]
        Command::TrainTokenizer(a) => ward_model::tokenizer::run_train_tokenizer(&a)
            .map(|r| {
                check::emit(&format!("{r:#?}\n"));
                0
            })
            .map_err(|e| e.to_string()),
        #[cfg(feature = "model")]
        Command::Bench(BenchCommand::Model(a)) => ward_model::bench::run_bench(&a)
            .map(|r| {
                check::emit(&(serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"));
                0
            })
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ward: error: {e}");
            ExitCode::from(2)
        }
    }
}
