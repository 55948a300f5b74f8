//! `cargo run -p ward-model --release --example bench -- [--backend flex|wgpu] [--model DIR]`
//! (the same flags as `ward bench model`).

use clap::Parser;
use ward_model::bench::{run_bench, BenchArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() {
    let cli = Cli::parse();
    match run_bench(&cli.args) {
        Ok(r) => println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
