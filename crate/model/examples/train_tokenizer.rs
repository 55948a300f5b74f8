//! `cargo run -p ward-model --release --example train_tokenizer -- --out models/ward-tiny-code/tokenizer.json`
//! (the same flags as `ward train-tokenizer`).

use clap::Parser;
use ward_model::tokenizer::{run_train_tokenizer, TokenizerArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: TokenizerArgs,
}

fn main() {
    let cli = Cli::parse();
    match run_train_tokenizer(&cli.args) {
        Ok(r) => println!(
            "trained on {} files: vocab {} (eos {}, mask {}) -> {}",
            r.files,
            r.vocab_size,
            r.eos_id,
            r.mask_id,
            cli.args.out.display()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
