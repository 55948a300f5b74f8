//! Where the time of one generation goes, natively: lifting the policy to the vocabulary
//! (`Engine::new`), `start` (the guard over the prompt), each step, and `result` (the
//! certificate's independent re-scan). `cargo run --release -p ward-sampler --example startup`
use std::time::Instant;

use ward_sampler::model::LoadedModel;
use ward_sampler::GenerateRequest;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let prompt = std::env::args().nth(1).unwrap_or_else(|| {
        "import subprocess\n\ndef run(cmd):\n    return subprocess.run(cmd, <|hole:16|>)\n".into()
    });
    let dir = ward_model::default_model_dir().expect("the default model");
    let mut l = LoadedModel::load(&dir, &ward_model::Device::flex()).expect("loads");
    let t = Instant::now();
    let policy = ward_policy::PolicyBuilder::new()
        .compile_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../policies/python"
        ))
        .expect("compiles");
    println!("compile: {:.1} ms", ms(t));
    let policy = std::sync::Arc::new(policy);
    for round in 0..2 {
        let t = Instant::now();
        let engine = l.engine(Some(policy.clone())).expect("engine");
        println!("round {round}: engine (lift): {:.1} ms", ms(t));
        let req = GenerateRequest {
            seed: 7,
            ..GenerateRequest::new(prompt.clone())
        };
        let t = Instant::now();
        let (mut s, _) = engine.start(&req, &l.tokenizer).expect("start");
        println!("round {round}: start: {:.1} ms", ms(t));
        let mut k = 0;
        loop {
            let t = Instant::now();
            let ev = s.step(&mut l.source).expect("step");
            let Some(ev) = ev else { break };
            println!(
                "round {round}: step {k}: {:.1} ms (model {:.1}, guard {:.1})",
                ms(t),
                ev.model_ms,
                ev.guard_ms
            );
            k += 1;
        }
        let t = Instant::now();
        let r = s.result().expect("result");
        println!(
            "round {round}: result (certificate): {:.1} ms; timings {:?}",
            ms(t),
            r.timings
        );
    }
}
