//! `cargo run -p ward-model --release --example heldout -- MODEL_DIR DATA_PATH [N]`: writes
//! `MODEL_DIR/heldout.json`, N (default 32) evenly spaced windows of the model's sequence
//! length from the `.py` files of DATA_PATH (the held-out packages), and prints the masked-token
//! accuracy at 15 % on them with the seed of the shipped-model test
//! (`ward_model::train::HELDOUT_SEED`), the figure that test checks against `metrics.json`.

fn main() {
    let mut a = std::env::args().skip(1);
    let usage = "usage: heldout MODEL_DIR DATA_PATH [N]";
    let dir = std::path::PathBuf::from(a.next().expect(usage));
    let data = std::path::PathBuf::from(a.next().expect(usage));
    let n: usize = a.next().map_or(32, |s| s.parse().expect("N"));
    let run = || -> ward_model::Result<f64> {
        let model = ward_model::Model::load(&dir, &ward_model::Device::flex())?;
        let tok =
            ward_model::tokenizer::load_tokenizer_for(dir.join("tokenizer.json"), model.config())?;
        let files = ward_model::eval::collect_files(&[data.clone()])?;
        let texts = ward_model::eval::read_files(&files)?;
        let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
        let eos = model.eos_token_id().unwrap_or(0);
        let stream = ward_model::eval::token_stream(&tok, &refs, eos)?;
        let wins = ward_model::eval::windows(&stream, model.config().max_position_embeddings, n);
        let json = serde_json::to_string(&wins).unwrap_or_default();
        std::fs::write(dir.join("heldout.json"), json + "\n").expect("write heldout.json");
        ward_model::train::model_masked_accuracy(
            &model,
            &wins,
            0.15,
            ward_model::train::HELDOUT_SEED,
        )
    };
    match run() {
        Ok(acc) => println!("{{\"heldout_windows\": {n}, \"heldout_acc15\": {acc}}}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
