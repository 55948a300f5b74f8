//! The `ward` command: check code against security policies (text, JSON, SARIF), explain
//! the effective policy of a pack.
#![deny(missing_docs)]

mod check;

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
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/python"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => check::run_check(&a),
        Command::Explain(a) => check::run_explain(&a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ward: error: {e}");
            ExitCode::from(2)
        }
    }
}
