//! `cargo run -p ward-model --release --example finalize_run -- RUN_DIR [SEQ_LEN]`: writes
//! `heldout.json` and `final_metrics.json` for the last checkpoint of a training run (for a run
//! stopped early by `--max-minutes`; a finished run writes them itself).

fn main() {
    let mut a = std::env::args().skip(1);
    let run = std::path::PathBuf::from(a.next().expect("usage: finalize_run RUN_DIR [SEQ_LEN]"));
    let seq: usize = a.next().map_or(256, |s| s.parse().expect("SEQ_LEN"));
    match ward_model::train::finalize_run(&run, seq) {
        Ok(r) => println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
