//! Prints the model's top tokens at each hole of a prompt (first step, no policy): a quick
//! look at what the model wants. `cargo run --release -p ward-sampler --example peek -- 'x = <|hole:4|>'`
use ward_sampler::model::LoadedModel;
use ward_sampler::{GenerateRequest, LogitsSource};

fn main() {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "import os\nos.<|hole:4|>".into());
    let dir = ward_model::default_model_dir().unwrap();
    let mut l = LoadedModel::load(&dir, &ward_model::Device::flex()).unwrap();
    let engine = l.engine(None).unwrap();
    let req = GenerateRequest {
        enforce: false,
        ..GenerateRequest::new(prompt)
    };
    let (s, start) = engine.start(&req, &l.tokenizer).unwrap();
    let ids = s.model_ids().to_vec();
    println!("canvas: {:?}", ids);
    let v = l.source.vocab_size();
    let out = l.source.logits(&ids, &start.holes).unwrap();
    for (k, &h) in start.holes.iter().enumerate() {
        let row = &out[k * v..(k + 1) * v];
        let mut idx: Vec<usize> = (0..v).collect();
        idx.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
        let top: Vec<String> = idx[..6]
            .iter()
            .map(|&t| {
                format!(
                    "{:?}:{:.1}",
                    String::from_utf8_lossy(l.vocab.bytes(t as u32)),
                    row[t]
                )
            })
            .collect();
        println!("{h}: {}", top.join("  "));
    }
}
