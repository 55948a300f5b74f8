//! `cargo run -p ward-model --release --example train -- <flags of ward train>`

use clap::Parser;
use ward_model::train::{run_train, TrainArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: TrainArgs,
}

fn main() {
    let cli = Cli::parse();
    match run_train(&cli.args) {
        Ok(r) => println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
